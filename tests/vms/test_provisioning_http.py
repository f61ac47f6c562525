"""Create and clone over HTTP: the API (`POST /api/v1/vms/`, `POST /api/v1/vms/{id}/clone/`, 202 with
the job or a clear refusal), the create wizard (review, errors on their field, the job page) and the
clone form."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.jobs.models import Job
from apps.storage.sync import sync_pools
from kvmpanel.virt import storage

MIB = 1 << 20


@pytest.fixture
def world(world):
    storage.create_volume(world.host.uri, "default", "installer.iso", capacity_bytes=1 << 20, fmt="raw")
    sync_pools(world.host)
    return world


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def create(world, **changes) -> dict:
    return {"host": world.host.pk, "name": "api1", "disk_pool": "default", "disk_size_bytes": 8 * MIB, **changes}


def post(user, url: str, data: dict):
    return client_for(user).post(url, data, content_type="application/json")


def test_creating_answers_202_with_the_job(world):
    response = post(world.oscar, reverse("vm-list"), create(world, memory_mib=256, max_memory_mib=512))
    assert response.status_code == 202, response.content
    job = response.json()["job"]
    assert (job["kind"], job["status"], job["host"]) == ("vm.create", "queued", world.host.pk)
    assert job["params"]["name"] == "api1" and job["params"]["max_memory_mib"] == 512
    assert job["params"]["machine"] == "q35"  # from the default OS variant


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"name": "../../etc"}, "VM name"),
        ({"name": "x" * 300}, "VM name"),
        ({"name": "<script>"}, "VM name"),
        ({"disk_size_bytes": 0}, "Disk size"),
        ({"disk_size_bytes": -5}, "Disk size"),
        ({"disk_size_bytes": 1 << 60}, "Disk size"),
        ({"memory_mib": 1 << 40}, "Memory"),
        ({"vcpus": "many"}, "Invalid input"),
        ({"name": "vm0001"}, "already exists"),
    ],
)
def test_bad_input_is_a_400_or_409_with_a_message_and_no_job(world, changes, words):
    response = post(world.root, reverse("vm-list"), create(world, **changes))
    assert response.status_code in {400, 409}, response.content
    assert words in response.json()["detail"]
    assert not Job.objects.exists()


def test_creating_needs_vm_create_on_a_visible_host(world):
    assert post(world.bob, reverse("vm-list"), create(world)).status_code == 404
    assert post(world.carol, reverse("vm-list"), create(world)).status_code == 403
    assert client_for(world.oscar).post(reverse("vm-list"), create(world)).status_code in {202, 415}


def test_cloning_answers_202_and_a_second_job_on_the_vm_gets_409(world):
    url = reverse("vm-clone", args=[world.vm.pk])
    first = post(world.oscar, url, {"start": True})
    assert first.status_code == 202, first.content
    assert first.json()["job"]["params"]["name"] == "vm0002-clone"
    second = post(world.oscar, url, {})
    assert second.status_code == 409
    assert (
        second.json()["detail"] == f"Another job (vm.clone #{first.json()['job']['id']}) is already running on this VM."
    )


def test_a_running_vm_clone_is_a_409_that_says_what_to_do(world):
    response = post(world.root, reverse("vm-clone", args=[world.running_vm.pk]), {})
    assert response.status_code == 409
    assert "shut the VM down or pause it first" in response.json()["detail"]
    assert not Job.objects.exists()


def test_cloning_is_refused_to_owners_without_vm_clone_and_to_strangers(world):
    url = reverse("vm-clone", args=[world.vm.pk])
    assert post(world.alice, url, {}).status_code == 403
    assert post(world.bob, url, {}).status_code == 404
    assert client_for(world.root).get(url).status_code == 405


# ---- pages ----


def wizard(world, **changes) -> dict:
    return {
        "host": world.host.pk,
        "name": "wiz1",
        "os_variant": "debian12",
        "virt_type": "qemu",
        "vcpus": "2",
        "max_vcpus": "8",
        "memory_mib": "2048",
        "max_memory_mib": "4096",
        "disk_pool": "default",
        "disk_size": "64",
        "disk_unit": "MiB",
        "disk_format": "qcow2",
        "iso": "default/installer.iso",
        "install": "on",
        "step": "review",
        **changes,
    }


def test_the_wizard_offers_the_hosts_pools_and_isos(world):
    page = client_for(world.oscar).get(reverse("vms:create")).content.decode()
    assert '<option value="default"' in page and "default/installer.iso" in page
    assert "Debian 12" in page and "Windows Server 2022" in page


def test_review_shows_the_equivalent_virt_install_command_and_creates_nothing(world):
    response = client_for(world.oscar).post(reverse("vms:create"), wizard(world))
    page = response.content.decode()
    assert response.status_code == 200 and 'id="create-commands"' in page
    assert "virsh vol-create-as default wiz1.qcow2 67108864b --format qcow2" in page
    assert "virt-install --virt-type qemu --name wiz1 --os-variant debian12 --machine q35" in page
    assert "--memory 4096,currentMemory=2048" in page and "--vcpus 2,maxvcpus=8" in page
    assert "--cdrom /pool/installer.iso" in page and "--wait -1" in page
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "no/slashes"}, "name"),
        ({"name": "x" * 300}, "name"),
        ({"disk_size": "0"}, "disk_size"),
        ({"disk_size": "9999999", "disk_unit": "GiB"}, "disk_size"),
        ({"memory_mib": "8192"}, "memory_mib"),
        ({"iso": "", "install": "on"}, "iso"),
    ],
)
def test_a_refusal_is_shown_on_its_field(world, changes, field):
    page = client_for(world.oscar).post(reverse("vms:create"), wizard(world, **changes)).content.decode()
    assert f'data-field-error="{field}"' in page
    assert 'id="create-commands"' not in page and not Job.objects.exists()


def test_create_queues_the_job_and_opens_its_page(world):
    response = client_for(world.oscar).post(reverse("vms:create"), wizard(world, step="create"))
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("jobs:detail", args=[job.pk])
    assert (job.kind, job.params["name"], job.params["install"], job.requested_by) == (
        "vm.create",
        "wiz1",
        True,
        world.oscar,
    )


def test_the_clone_form_queues_a_clone_or_says_why_not(world):
    client = client_for(world.oscar)
    assert 'id="clone-form"' in client.get(reverse("vms:detail", args=[world.vm.pk])).content.decode()
    response = client.post(reverse("vms:clone", args=[world.vm.pk]), {"name": "", "pool": "default"})
    job = Job.objects.get(kind="vm.clone")
    assert response["Location"] == reverse("jobs:detail", args=[job.pk])
    assert job.params["name"] == "vm0002-clone" and job.params["pool"] == "default"
    refused = client.post(reverse("vms:clone", args=[world.running_vm.pk]), {}, follow=True)
    assert "shut the VM down or pause it first" in refused.content.decode()
    assert Job.objects.count() == 1


def test_owners_without_vm_clone_see_no_clone_form(world):
    page = client_for(world.alice).get(reverse("vms:detail", args=[world.vm.pk])).content.decode()
    assert 'id="clone-form"' not in page
