"""The inventory follows the hosts: out-of-band changes reach open pages, hosts come and go."""

import json
import subprocess
import time

import pytest
from websockets.sync.client import connect

from apps.hosts.models import Host
from apps.vms import services
from apps.vms.models import VirtualMachine
from tests.conftest import LAB, session_cookie
from tests.support.lab import wait_for

pytestmark = pytest.mark.lab


def open_socket(panel, path: str, user):
    return connect(
        f"ws://127.0.0.1:{panel.port}{path}",
        additional_headers={"Cookie": f"sessionid={session_cookie(user)}", "Origin": panel.url},
        open_timeout=10,
    )


def next_vm_message(socket, vm_id: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        message = json.loads(socket.recv(timeout=remaining))
        if message.get("type") == "vm" and message["vm"]["id"] == vm_id:
            return message["vm"]
    raise TimeoutError


def test_a_virsh_destroy_outside_the_panel_reaches_an_open_page_within_a_second(panel, lab, make_guest, operator):
    vm = services.run_lifecycle(make_guest("oob"), "start", actor=operator)
    with open_socket(panel, f"/ws/vms/{vm.pk}/", operator) as socket:
        assert json.loads(socket.recv(timeout=5))["type"] == "hello"
        time.sleep(0.5)  # let the listener subscribe to this host's events
        started = time.monotonic()
        lab.virsh(1, "destroy", vm.name)
        while (pushed := next_vm_message(socket, vm.pk, timeout=5))["state"] != "shutoff":
            pass
        elapsed = time.monotonic() - started
    assert pushed["state_reason"] == "destroyed"
    assert elapsed < 1.0, f"the push took {elapsed:.2f} s"
    vm.refresh_from_db()
    assert vm.state == "shutoff"


def test_the_list_stream_shows_a_stranger_nothing(panel, lab, make_guest, operator, django_user_model):
    stranger = django_user_model.objects.create_user("stranger", password="x" * 12)
    vm = services.run_lifecycle(make_guest("hidden"), "start", actor=operator)
    with open_socket(panel, "/ws/vms/", stranger) as blind, open_socket(panel, "/ws/vms/", operator) as seeing:
        for socket in (blind, seeing):
            assert json.loads(socket.recv(timeout=5))["type"] == "hello"
        time.sleep(0.5)
        lab.virsh(1, "suspend", vm.name)
        assert next_vm_message(seeing, vm.pk, timeout=5)["state"] == "paused"
        with pytest.raises(TimeoutError):
            blind.recv(timeout=1.5)


def test_a_vm_that_vanishes_is_marked_missing_not_deleted(panel, lab, make_guest, operator):
    vm = make_guest("vanish")
    lab.virsh(1, "undefine", vm.name, "--storage", "vda")  # not --remove-all-storage: it deletes the shared ISO
    vm = wait_for(lambda: VirtualMachine.objects.filter(pk=vm.pk, missing=True).first(), 10, "the VM marked missing")
    assert vm.missing_since is not None and vm.state == "nostate"


def test_a_lab_host_that_stops_goes_unreachable_and_comes_back_by_itself(panel, lab, operator):
    from apps.hosts import services as host_services

    host = host_services.add_host(actor=operator, name="lab2", uri=lab.uris[2])
    wait_for(lambda: Host.objects.get(pk=host.pk).status == "up", 10, "the listener to watch lab2")
    time.sleep(0.5)
    subprocess.run(["bash", str(LAB), "stop-host", "2"], check=True, capture_output=True)
    try:
        down = wait_for(lambda: (h := Host.objects.get(pk=host.pk)).status == "unreachable" and h, 10, "unreachable")
        assert down.status_message
    finally:
        subprocess.run(["bash", str(LAB), "start-host", "2"], check=True, capture_output=True)
    wait_for(lambda: Host.objects.get(pk=host.pk).status == "up", 20, "the host to come back")
