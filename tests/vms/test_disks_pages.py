"""The VM page's disk and snapshot forms on libvirt's test:/// driver."""

import pytest
from django.urls import reverse

from apps.jobs.models import Job
from kvmpanel.virt import snapshots as virt_snapshots
from kvmpanel.virt.connection import count_hypervisor_calls
from tests.vms.test_disks_api import _storage_inventory, client_for  # noqa: F401 - an autouse fixture


def test_the_vm_page_shows_the_disk_forms_with_their_commands_and_no_hypervisor_call(world):
    with count_hypervisor_calls() as calls:
        page = client_for(world.alice).get(reverse("vms:detail", args=[world.vm.pk])).content.decode()
    assert calls.count == 0
    for url in ("disk-grow", "disk-convert", "disk-move", "disk-detach"):
        assert reverse(f"vms:{url}", args=[world.vm.pk, "vda"]) in page
    assert reverse("vms:disk-attach", args=[world.vm.pk]) in page
    assert "virsh vol-resize /pool/vm0002.qcow2 SIZE" in page  # shut off: the volume grows
    assert "qemu-img convert -p -O FORMAT /pool/vm0002.qcow2 NEW" in page
    assert "virsh attach-disk vm0002 PATH vdX --driver qemu --subdriver qcow2 --targetbus virtio --config" in page
    assert f'hx-get="{reverse("vms:snapshots", args=[world.vm.pk])}"' in page
    assert reverse("vms:snapshot-create", args=[world.vm.pk]) in page


def test_a_viewer_sees_the_disks_but_no_forms(world):
    page = client_for(world.carol).get(reverse("vms:detail", args=[world.vm.pk])).content.decode()
    assert "/pool/vm0002.qcow2" in page
    assert reverse("vms:disk-attach", args=[world.vm.pk]) not in page
    assert reverse("vms:snapshot-create", args=[world.vm.pk]) not in page


def test_the_snapshot_fragment_shows_the_tree_and_the_allowed_actions(world):
    uri, uuid = world.host.uri, world.vm.uuid
    virt_snapshots.create_snapshot(uri, uuid, "base", "before <b>upgrade</b>")
    virt_snapshots.create_snapshot(uri, uuid, "later")
    fragment = client_for(world.alice).get(reverse("vms:snapshots", args=[world.vm.pk])).content.decode()
    assert 'data-snapshot="base"' in fragment and 'data-snapshot="later" class="current"' in fragment
    assert "before &lt;b&gt;upgrade&lt;/b&gt;" in fragment  # escaped
    assert reverse("vms:snapshot-revert", args=[world.vm.pk, "base"]) in fragment
    assert "virsh snapshot-delete vm0002 later" in fragment
    seen_by_viewer = client_for(world.carol).get(reverse("vms:snapshots", args=[world.vm.pk])).content.decode()
    assert 'data-snapshot="later"' in seen_by_viewer
    assert reverse("vms:snapshot-revert", args=[world.vm.pk, "base"]) not in seen_by_viewer


def test_a_convert_from_the_page_opens_the_jobs_page(world):
    response = client_for(world.alice).post(
        reverse("vms:disk-convert", args=[world.vm.pk, "vda"]), {"format": "raw", "delete_source": "on"}
    )
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("jobs:detail", args=[job.pk])
    assert (job.kind, job.params["format"], job.params["delete_source"]) == ("vm.disk.convert", "raw", True)


def test_a_snapshot_from_the_page_opens_the_jobs_page_and_a_raw_refusal_comes_back_as_a_message(world):
    client = client_for(world.alice)
    response = client.post(reverse("vms:snapshot-create", args=[world.vm.pk]), {"name": "s1", "description": "x"})
    assert response["Location"] == reverse("jobs:detail", args=[Job.objects.get().pk])
    bad = client.post(reverse("vms:snapshot-create", args=[world.vm.pk]), {"name": "a/b"}, follow=True)
    assert "A snapshot name is 1-63 ASCII characters" in bad.content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [({"size": "lots", "unit": 1 << 30}, "whole number"), ({"size": "-2", "unit": 1 << 30}, "greater than zero")],
)
def test_a_bad_size_comes_back_as_a_message(world, data, message):
    response = client_for(world.alice).post(reverse("vms:disk-grow", args=[world.vm.pk, "vda"]), data, follow=True)
    assert message in response.content.decode()


def test_an_htmx_refusal_is_shown_in_place(world):
    response = client_for(world.alice).post(
        reverse("vms:disk-media", args=[world.vm.pk, "vda"]), {"eject": "1"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200 and response["X-Action-Result"] == "refused"
    assert "vda is not a CD-ROM drive" in response.content.decode()


def test_an_htmx_snapshot_delete_navigates_to_its_job(world):
    virt_snapshots.create_snapshot(world.host.uri, world.vm.uuid, "old")
    response = client_for(world.alice).post(
        reverse("vms:snapshot-delete", args=[world.vm.pk, "old"]), headers={"HX-Request": "true"}
    )
    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("jobs:detail", args=[Job.objects.get(kind="vm.snapshot.delete").pk])
