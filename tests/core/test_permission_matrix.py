"""Every route, every persona: anonymous, no grant (404), view only (403 on actions), allowed.

`test_every_route_is_in_the_matrix` walks the URL and WebSocket routers and fails when a route has
no row here, so a new page or endpoint cannot ship without its permission test.
"""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from kvmpanel.asgi import application
from kvmpanel.routing import websocket_urlpatterns
from tests.core.matrix_rows import extra_routes
from tests.support.matrix import Route

A_VM_XML = """<domain type='test'><name>matrix</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type></os><devices/></domain>"""


def vm(world):
    return world.vm.pk


def running(world):
    return world.running_vm.pk


def a_job(world):
    """A queued volume.create job on the host, requested by root (a fresh one per request)."""
    from apps.jobs.models import Job

    params = {"pool": "default", "name": "matrix.qcow2", "format": "qcow2", "capacity_bytes": 1 << 20}
    return Job.objects.create(kind="volume.create", host=world.host, requested_by=world.root, params=params).pk


def an_audit_event(world):
    """An event about alice's VM (the fixtures' grants wrote some too; this one is certain)."""
    from apps.audit.services import record_event

    return record_event(actor=world.alice, verb="vm.start", target=world.vm).pk


def a_volume_job(world):
    return {
        "kind": "volume.create",
        "host": world.host.pk,
        "params": {"pool": "default", "name": "matrix.qcow2", "capacity_bytes": 1 << 20},
    }


def a_cloneable_vm(world):
    """The shut-off VM vm0002, with the host's pools synced (a clone's disk paths come from them)."""
    a_pool(world)
    return world.vm.pk


def a_vm_to_create(world):
    a_pool(world)
    return {"host": world.host.pk, "name": "matrix-new", "disk_pool": "default", "disk_size_bytes": 1 << 20}


def a_pool(world):
    """The test host's pool "default" (four VM disks in it), synced into the inventory."""
    from apps.storage.sync import sync_pools

    return sync_pools(world.host, names=["default"])[0].pk


def an_empty_pool(world):
    """A fresh empty dir pool "matrix" on the test host (deletable)."""
    from apps.storage.sync import sync_pools
    from kvmpanel.virt import storage

    if "matrix" not in {p.name for p in storage.list_pools(world.host.uri, with_volumes=False)}:
        storage.create_dir_pool(world.host.uri, "matrix", "/srv/matrix")
    return sync_pools(world.host, names=["matrix"])[0].pk


def a_volume(world, name: str = "matrix.raw"):
    """(pool id, volume id) of an unused 1 MiB volume in pool "default" (vm0003.qcow2 is a shut-off VM's disk)."""
    from apps.storage.models import StorageVolume
    from kvmpanel.virt import storage

    if name != "vm0003.qcow2" and storage.volume_info(world.host.uri, "default", name) is None:
        storage.create_volume(world.host.uri, "default", name, capacity_bytes=1 << 20, fmt="raw")
    pool = a_pool(world)
    return pool, StorageVolume.objects.get(pool_id=pool, name=name).pk


def a_snapshot(world) -> str:
    """The name of an internal snapshot "matrix" of alice's shut-off VM vm0002."""
    from kvmpanel.virt import snapshots

    if "matrix" not in {s.name for s in snapshots.list_snapshots(world.host.uri, world.vm.uuid)}:
        snapshots.create_snapshot(world.host.uri, world.vm.uuid, "matrix")
    return "matrix"


def an_api_token(world):
    """A fresh API token of alice's (id)."""
    from apps.accounts.services import create_api_token

    return create_api_token(actor=world.alice, user=world.alice)[0].pk


def a_user(world):
    """A plain user to disable, enable or reset (id), so the personas stay as they are."""
    from apps.accounts.models import User

    return User.objects.get_or_create(username="matrix-user")[0].pk


def a_group(world):
    from django.contrib.auth.models import Group

    return Group.objects.get_or_create(name="matrix-group")[0].pk


def a_role(world):
    from apps.accounts.models import Role

    return Role.objects.get(name="VMUser").pk


def a_project(world):
    """Project "matrix" (id) that carol may view (Viewer on it), bob may not see at all."""
    from apps.accounts.models import Project
    from apps.accounts.services import grant_role

    project, created = Project.objects.get_or_create(name="matrix")
    if created:
        grant_role(actor=world.root, role="Viewer", scope=project.scope, user=world.carol)
    return project.pk


def a_custom_role(world):
    from apps.accounts.models import Role

    return Role.objects.get_or_create(name="MatrixRole", defaults={"privileges": ["vm.view"]})[0].pk


def alices_grant(world):
    """Alice's VMUser grant on her VM (id): hers to see, invisible to others without user.manage."""
    from apps.accounts.models import Grant

    return Grant.objects.get(user=world.alice, scope=world.vm.scope).pk


def an_upload(world):
    """(pool id, upload id) of an upload root started in pool "default" (its volume exists, empty)."""
    from apps.storage import transfers
    from apps.storage.models import StoragePool, StorageUpload

    pool = StoragePool.objects.select_related("host").get(pk=a_pool(world))
    upload = StorageUpload.objects.filter(pool=pool, name="matrix.iso").first()
    if upload is None:
        upload = transfers.start_upload(pool, actor=world.root, name="matrix.iso", size=1 << 20)
    return pool.pk, upload.pk


ROUTES = [
    Route("home", "get", lambda w: reverse("home"), 302, 302, 302, "alice", 302),
    Route("health", "get", lambda w: reverse("health"), 200, 200, 200, "alice", 200),
    Route("login", "get", lambda w: reverse("login"), 200, 302, 302, "alice", 302),
    Route("logout", "post", lambda w: reverse("logout"), 302, 302, 302, "alice", 302),
    Route(
        "set-language",
        "post",
        lambda w: reverse("set-language"),
        302,
        302,
        302,
        "alice",
        302,
        data=lambda w: {"language": "zh-hans"},
    ),
    # API tokens: everyone has their own page and list; someone else's token is 404 (tests/api/test_token_api.py).
    Route("account-tokens", "get", lambda w: reverse("account-tokens"), 302, 200, 200, "alice", 200),
    Route(
        "account-token-revoke",
        "post",
        lambda w: reverse("account-token-revoke", args=[an_api_token(w)]),
        302,
        404,
        404,
        "alice",
        302,
    ),
    Route("token-list", "get", lambda w: reverse("token-list"), 401, 200, 200, "alice", 200, api=True),
    Route(
        "token-detail",
        "get",
        lambda w: reverse("token-detail", args=[an_api_token(w)]),
        401,
        404,
        404,
        "alice",
        200,
        api=True,
    ),
    Route(
        "token-revoke",
        "post",
        lambda w: reverse("token-revoke", args=[an_api_token(w)]),
        401,
        404,
        404,
        "alice",
        200,
        api=True,
    ),
    # Groups page: `user.manage` on "/" or 403. Grants page: everyone sees the grants they hold or made; another's
    # grant is 404 (tests/accounts/test_admin_api_grant_pages.py).
    Route("account-groups", "get", lambda w: reverse("account-groups"), 302, 403, 403, "root", 200),
    Route(
        "account-group-delete",
        "post",
        lambda w: reverse("account-group-delete", args=[a_group(w)]),
        302,
        403,
        403,
        "root",
        302,
    ),
    Route("account-grants", "get", lambda w: reverse("account-grants"), 302, 200, 200, "alice", 200),
    Route(
        "account-grant-revoke",
        "post",
        lambda w: reverse("account-grant-revoke", args=[alices_grant(w)]),
        302,
        404,
        404,
        "alice",
        302,
    ),
    # The roles page: everyone reads it; deleting a custom role needs `user.manage` on "/".
    Route("account-roles", "get", lambda w: reverse("account-roles"), 302, 200, 200, "alice", 200),
    Route(
        "account-role-delete",
        "post",
        lambda w: reverse("account-role-delete", args=[a_custom_role(w)]),
        302,
        403,
        403,
        "root",
        302,
    ),
    # The users page: `user.manage` on "/" (root) or 403 (tests/accounts/test_admin_api_pages.py).
    Route("account-users", "get", lambda w: reverse("account-users"), 302, 403, 403, "root", 200),
    Route(
        "account-user-disable",
        "post",
        lambda w: reverse("account-user-disable", args=[a_user(w)]),
        302,
        403,
        403,
        "root",
        302,
    ),
    Route(
        "account-user-enable",
        "post",
        lambda w: reverse("account-user-enable", args=[a_user(w)]),
        302,
        403,
        403,
        "root",
        302,
    ),
    Route(
        "account-user-reset-password",
        "post",
        lambda w: reverse("account-user-reset-password", args=[a_user(w)]),
        302,
        403,
        403,
        "root",
        200,
    ),
    # Users and groups: `user.manage` on "/" (root) or 403; roles are readable by all; grants are one's own
    # (others' 404) or everyone's for managers. Writes and delegation: tests/accounts/test_admin_api.py.
    Route("user-list", "get", lambda w: reverse("user-list"), 401, 403, 403, "root", 200, api=True),
    Route(
        "user-detail", "get", lambda w: reverse("user-detail", args=[a_user(w)]), 401, 403, 403, "root", 200, api=True
    ),
    Route(
        "user-disable",
        "post",
        lambda w: reverse("user-disable", args=[a_user(w)]),
        401,
        403,
        403,
        "root",
        200,
        api=True,
    ),
    Route(
        "user-enable", "post", lambda w: reverse("user-enable", args=[a_user(w)]), 401, 403, 403, "root", 200, api=True
    ),
    Route(
        "user-reset-password",
        "post",
        lambda w: reverse("user-reset-password", args=[a_user(w)]),
        401,
        403,
        403,
        "root",
        200,
        api=True,
    ),
    Route("group-list", "get", lambda w: reverse("group-list"), 401, 403, 403, "root", 200, api=True),
    Route(
        "group-detail",
        "get",
        lambda w: reverse("group-detail", args=[a_group(w)]),
        401,
        403,
        403,
        "root",
        200,
        api=True,
    ),
    Route("role-list", "get", lambda w: reverse("role-list"), 401, 200, 200, "alice", 200, api=True),
    Route(
        "role-detail", "get", lambda w: reverse("role-detail", args=[a_role(w)]), 401, 200, 200, "alice", 200, api=True
    ),
    Route("grant-list", "get", lambda w: reverse("grant-list"), 401, 200, 200, "alice", 200, api=True),
    Route(
        "grant-detail",
        "get",
        lambda w: reverse("grant-detail", args=[alices_grant(w)]),
        401,
        404,
        404,
        "alice",
        200,
        api=True,
    ),
    # Projects: visible to user managers and to whoever holds vm.view on them; writes and quotas need
    # user.manage on "/"; a user's quota is their own to read (tests/accounts/test_quotas_api.py).
    Route("project-list", "get", lambda w: reverse("project-list"), 401, 200, 200, "root", 200, api=True),
    Route(
        "project-list",
        "post",
        lambda w: reverse("project-list"),
        401,
        403,
        403,
        "root",
        201,
        lambda w: {"name": "new"},
        True,
    ),
    Route(
        "project-detail",
        "get",
        lambda w: reverse("project-detail", args=[a_project(w)]),
        401,
        404,
        200,
        "root",
        200,
        api=True,
    ),
    Route(
        "project-usage",
        "get",
        lambda w: reverse("project-usage", args=[a_project(w)]),
        401,
        404,
        200,
        "root",
        200,
        api=True,
    ),
    Route(
        "project-quota",
        "post",
        lambda w: reverse("project-quota", args=[a_project(w)]),
        401,
        404,
        403,
        "root",
        200,
        lambda w: {"max_vms": 2},
        True,
    ),
    Route("account-quotas", "get", lambda w: reverse("account-quotas"), 302, 403, 403, "root", 200),
    Route(
        "user-quota", "get", lambda w: reverse("user-quota", args=[w.alice.pk]), 401, 403, 403, "root", 200, api=True
    ),
    Route(
        "user-quota",
        "post",
        lambda w: reverse("user-quota", args=[w.alice.pk]),
        401,
        403,
        403,
        "root",
        200,
        lambda w: {"max_vms": 2},
        True,
    ),
    Route("vms:list", "get", lambda w: reverse("vms:list"), 302, 200, 200, "alice", 200),
    Route("vms:define", "get", lambda w: reverse("vms:define"), 302, 403, 403, "oscar", 200),
    Route("vms:create", "get", lambda w: reverse("vms:create"), 302, 403, 403, "oscar", 200),
    Route("vms:clone", "post", lambda w: reverse("vms:clone", args=[a_cloneable_vm(w)]), 302, 404, 403, "oscar", 302),
    Route(
        "vm-clone",
        "post",
        lambda w: reverse("vm-clone", args=[a_cloneable_vm(w)]),
        401,
        404,
        403,
        "oscar",
        202,
        api=True,
    ),
    Route("vms:detail", "get", lambda w: reverse("vms:detail", args=[vm(w)]), 302, 404, 200, "alice", 200),
    Route("vms:xml", "get", lambda w: reverse("vms:xml", args=[vm(w)]), 302, 404, 200, "alice", 200),
    Route(
        "vms:rename",
        "post",
        lambda w: reverse("vms:rename", args=[vm(w)]),
        302,
        404,
        403,
        "alice",
        302,
        data=lambda w: {"name": "renamed"},
    ),
    Route(
        "vms:autostart",
        "post",
        lambda w: reverse("vms:autostart", args=[vm(w)]),
        302,
        404,
        403,
        "alice",
        302,
        data=lambda w: {"enabled": "1"},
    ),
    Route("vms:delete", "get", lambda w: reverse("vms:delete", args=[vm(w)]), 302, 404, 403, "alice", 200),
    Route("vms:console", "get", lambda w: reverse("vms:console", args=[running(w)]), 302, 404, 403, "alice", 200),
    Route("vms:serial", "get", lambda w: reverse("vms:serial", args=[running(w)]), 302, 404, 403, "alice", 200),
    Route("vms:action", "post", lambda w: reverse("vms:action", args=[vm(w), "start"]), 302, 404, 403, "alice", 302),
    Route("hosts:list", "get", lambda w: reverse("hosts:list"), 302, 200, 200, "oscar", 200),
    Route("hosts:add", "get", lambda w: reverse("hosts:add"), 302, 403, 403, "root", 200),
    Route("hosts:detail", "get", lambda w: reverse("hosts:detail", args=[w.host.pk]), 302, 404, 200, "oscar", 200),
    Route("hosts:refresh", "post", lambda w: reverse("hosts:refresh", args=[w.host.pk]), 302, 404, 403, "root", 302),
    # API: anonymous gets 401 (token auth challenges), invisible objects 404, no privilege 403.
    Route("api-root", "get", lambda w: reverse("api-root"), 401, 200, 200, "alice", 200, api=True),
    Route("api-schema", "get", lambda w: reverse("api-schema"), 401, 200, 200, "alice", 200, api=True),
    Route("api-docs", "get", lambda w: reverse("api-docs"), 401, 200, 200, "alice", 200),
    Route("host-list", "get", lambda w: reverse("host-list"), 401, 200, 200, "oscar", 200, api=True),
    Route(
        "host-detail", "get", lambda w: reverse("host-detail", args=[w.host.pk]), 401, 404, 200, "oscar", 200, api=True
    ),
    Route(
        "host-refresh",
        "post",
        lambda w: reverse("host-refresh", args=[w.host.pk]),
        401,
        404,
        403,
        "root",
        200,
        api=True,
    ),
    Route("vm-list", "get", lambda w: reverse("vm-list"), 401, 200, 200, "alice", 200, api=True),
    Route("vm-detail", "get", lambda w: reverse("vm-detail", args=[vm(w)]), 401, 404, 200, "alice", 200, api=True),
    Route("vm-xml", "get", lambda w: reverse("vm-xml", args=[vm(w)]), 401, 404, 200, "alice", 200, api=True),
    Route("vm-start", "post", lambda w: reverse("vm-start", args=[vm(w)]), 401, 404, 403, "alice", 200, api=True),
    # The power actions that need a running VM: alice owns one.
    *(
        Route(
            f"vm-{name}",
            "post",
            lambda w, name=name: reverse(f"vm-{name}", args=[running(w)]),
            401,
            404,
            403,
            "alice",
            200,
            api=True,
        )
        for name in ("shutdown", "force-off", "reboot", "suspend")
    ),
    Route(
        "vm-resume", "post", lambda w: reverse("vm-resume", args=[running(w)]), 401, 404, 403, "alice", 409, api=True
    ),  # allowed, but the VM is running: a clear refusal, not a permission error
    Route(
        "vm-rename",
        "post",
        lambda w: reverse("vm-rename", args=[vm(w)]),
        401,
        404,
        403,
        "alice",
        200,
        data=lambda w: {"name": "renamed"},
        api=True,
    ),
    Route(
        "vm-autostart",
        "post",
        lambda w: reverse("vm-autostart", args=[vm(w)]),
        401,
        404,
        403,
        "alice",
        200,
        data=lambda w: {"enabled": True},
        api=True,
    ),
    # The test driver's VMs have no VNC console: allowed users get the clear 409, not a ticket.
    Route(
        "vm-console", "post", lambda w: reverse("vm-console", args=[running(w)]), 401, 404, 403, "alice", 409, api=True
    ),
    Route(
        "vm-define",
        "post",
        lambda w: reverse("vm-define"),
        401,
        404,
        403,
        "oscar",
        201,
        data=lambda w: {"host": w.host.pk, "xml": A_VM_XML},
        api=True,
    ),
    Route("job-list", "get", lambda w: reverse("job-list"), 401, 200, 200, "alice", 200, api=True),
    Route("job-detail", "get", lambda w: reverse("job-detail", args=[a_job(w)]), 401, 404, 200, "root", 200, api=True),
    Route("job-cancel", "post", lambda w: reverse("job-cancel", args=[a_job(w)]), 401, 404, 403, "root", 200, api=True),
    Route("job-log", "get", lambda w: reverse("job-log", args=[a_job(w)]), 401, 404, 200, "root", 200, api=True),
    # Job pages: bob sees none of root's jobs (404), carol sees the host's jobs but may not cancel them.
    Route("jobs:list", "get", lambda w: reverse("jobs:list"), 302, 200, 200, "alice", 200),
    Route("jobs:panel", "get", lambda w: reverse("jobs:panel"), 302, 200, 200, "alice", 200),
    Route("jobs:detail", "get", lambda w: reverse("jobs:detail", args=[a_job(w)]), 302, 404, 200, "root", 200),
    Route("jobs:log", "get", lambda w: reverse("jobs:log", args=[a_job(w)]), 302, 404, 200, "root", 200),
    Route("jobs:cancel", "post", lambda w: reverse("jobs:cancel", args=[a_job(w)]), 302, 404, 403, "root", 302),
    # The audit log: all-or-nothing, `audit.view` at `/` (root here); everyone else 403, as there is no object to hide.
    Route("audit:list", "get", lambda w: reverse("audit:list"), 302, 403, 403, "root", 200),
    Route("audit:export", "get", lambda w: reverse("audit:export"), 302, 403, 403, "root", 200),
    Route("audit-event-list", "get", lambda w: reverse("audit-event-list"), 401, 403, 403, "root", 200, api=True),
    Route(
        "audit-event-detail",
        "get",
        lambda w: reverse("audit-event-detail", args=[an_audit_event(w)]),
        401,
        403,
        403,
        "root",
        200,
        api=True,
    ),
    # Storage: a pool belongs to its host (host.view to see it, storage.manage for the rest). Carol
    # sees the host; oscar (Operator) has no storage.manage; root does. The test driver cannot
    # resize, upload or download: allowed users get its clear 409 there.
    Route("storage:list", "get", lambda w: reverse("storage:list"), 302, 200, 200, "carol", 200),
    Route("storage:pool-add", "get", lambda w: reverse("storage:pool-add"), 302, 403, 403, "root", 200),
    Route(
        "storage:pool-detail",
        "get",
        lambda w: reverse("storage:pool-detail", args=[a_pool(w)]),
        302,
        404,
        200,
        "carol",
        200,
    ),
    Route(
        "storage:pool-action",
        "post",
        lambda w: reverse("storage:pool-action", args=[a_pool(w), "refresh"]),
        302,
        404,
        403,
        "root",
        302,
    ),
    Route(
        "storage:pool-autostart",
        "post",
        lambda w: reverse("storage:pool-autostart", args=[a_pool(w)]),
        302,
        404,
        403,
        "root",
        302,
        data=lambda w: {"enabled": "1"},
    ),
    Route(
        "storage:pool-delete",
        "post",
        lambda w: reverse("storage:pool-delete", args=[an_empty_pool(w)]),
        302,
        404,
        403,
        "root",
        302,
    ),
    Route(
        "storage:host-refresh",
        "post",
        lambda w: reverse("storage:host-refresh", args=[w.host.pk]),
        302,
        404,
        403,
        "root",
        302,
    ),
    Route(
        "storage:volume-create",
        "post",
        lambda w: reverse("storage:volume-create", args=[a_pool(w)]),
        302,
        404,
        403,
        "root",
        302,
        data=lambda w: {"name": "matrix.qcow2", "format": "qcow2", "capacity_0": "1", "capacity_1": "MiB"},
    ),
    Route(
        "storage:volume-resize",
        "post",
        lambda w: reverse("storage:volume-resize", args=[a_volume(w)[1]]),
        302,
        404,
        403,
        "root",
        302,
        data=lambda w: {"capacity_0": "2", "capacity_1": "MiB"},
    ),
    Route(
        "storage:volume-delete",
        "post",
        lambda w: reverse("storage:volume-delete", args=[a_volume(w)[1]]),
        302,
        404,
        403,
        "root",
        302,
    ),
    Route("pool-list", "get", lambda w: reverse("pool-list"), 401, 200, 200, "carol", 200, api=True),
    Route(
        "pool-detail", "get", lambda w: reverse("pool-detail", args=[a_pool(w)]), 401, 404, 200, "carol", 200, api=True
    ),
    Route("pool-stop", "post", lambda w: reverse("pool-stop", args=[a_pool(w)]), 401, 404, 403, "root", 200, api=True),
    Route(
        "pool-start", "post", lambda w: reverse("pool-start", args=[a_pool(w)]), 401, 404, 403, "root", 409, api=True
    ),  # allowed, but the pool is already active
    Route(
        "pool-autostart",
        "post",
        lambda w: reverse("pool-autostart", args=[a_pool(w)]),
        401,
        404,
        403,
        "root",
        200,
        data=lambda w: {"enabled": True},
        api=True,
    ),
    Route(
        "pool-refresh",
        "post",
        lambda w: reverse("pool-refresh", args=[a_pool(w)]),
        401,
        404,
        403,
        "root",
        200,
        api=True,
    ),
    Route(
        "pool-volume-list",
        "get",
        lambda w: reverse("pool-volume-list", args=[a_pool(w)]),
        401,
        404,
        200,
        "carol",
        200,
        api=True,
    ),
    Route(
        "pool-volume-detail",
        "get",
        lambda w: reverse("pool-volume-detail", args=a_volume(w)),
        401,
        404,
        200,
        "carol",
        200,
        api=True,
    ),
    Route(
        "pool-volume-resize",
        "post",
        lambda w: reverse("pool-volume-resize", args=a_volume(w, "vm0003.qcow2")),
        401,
        404,
        403,
        "root",
        409,
        data=lambda w: {"capacity_bytes": 128 << 20},
        api=True,
    ),
    Route(
        "pool-upload-list",
        "get",
        lambda w: reverse("pool-upload-list", args=[a_pool(w)]),
        401,
        404,
        200,
        "carol",
        200,
        api=True,
    ),
    Route(
        "pool-upload-detail",
        "get",
        lambda w: reverse("pool-upload-detail", args=an_upload(w)),
        401,
        404,
        200,
        "carol",
        200,
        api=True,
    ),
    Route(
        "storage:upload-abort",
        "post",
        lambda w: reverse("storage:upload-abort", args=[an_upload(w)[1]]),
        302,
        404,
        403,
        "root",
        302,
    ),
    Route(
        "pool-volume-download",
        "get",
        lambda w: reverse("pool-volume-download", args=a_volume(w)),
        401,
        404,
        403,  # reading a VM's disk takes storage.manage, not just host.view
        "root",
        409,
        api=True,
    ),
    # The VM page's disk and snapshot forms: every answer is a redirect (to the page with a message,
    # or to the job's page); the snapshot tree is a fragment the page loads.
    Route("vms:snapshots", "get", lambda w: reverse("vms:snapshots", args=[vm(w)]), 302, 404, 200, "alice", 200),
    *(
        Route(name, "post", url, 302, 404, 403, "alice", 302, data=data)
        for name, url, data in [
            (
                "vms:disk-attach",
                lambda w: reverse("vms:disk-attach", args=[a_cloneable_vm(w)]),
                lambda w: {"source": "new", "pool": "default", "name": "matrix.qcow2", "size": 1, "persistent": "on"},
            ),
            ("vms:disk-detach", lambda w: reverse("vms:disk-detach", args=[vm(w), "vda"]), None),
            (
                "vms:disk-grow",
                lambda w: reverse("vms:disk-grow", args=[vm(w), "vda"]),
                lambda w: {"size": 128, "unit": 1 << 20},
            ),
            ("vms:disk-media", lambda w: reverse("vms:disk-media", args=[vm(w), "vda"]), lambda w: {"eject": "1"}),
            (
                "vms:disk-convert",
                lambda w: reverse("vms:disk-convert", args=[a_cloneable_vm(w), "vda"]),
                lambda w: {"format": "raw"},
            ),
            (
                "vms:disk-move",
                lambda w: reverse("vms:disk-move", args=[a_cloneable_vm(w), "vda"]),
                lambda w: {"pool": "default", "name": "matrix-moved.qcow2"},
            ),
            ("vms:snapshot-create", lambda w: reverse("vms:snapshot-create", args=[vm(w)]), lambda w: {"name": "m2"}),
            ("vms:snapshot-revert", lambda w: reverse("vms:snapshot-revert", args=[vm(w), a_snapshot(w)]), None),
            ("vms:snapshot-delete", lambda w: reverse("vms:snapshot-delete", args=[vm(w), a_snapshot(w)]), None),
        ]
    ),
    # Disks and snapshots of alice's shut-off VM (the test driver has no hot-plug or volume resize:
    # allowed users get its clear 409; vda is no CD-ROM: a clear 400).
    *(
        Route(name, "get", url, 401, 404, 200, "alice", 200, api=True)
        for name, url in [
            ("vm-disk-list", lambda w: reverse("vm-disk-list", args=[vm(w)])),
            ("vm-disk-detail", lambda w: reverse("vm-disk-detail", args=[vm(w), "vda"])),
            ("vm-snapshot-list", lambda w: reverse("vm-snapshot-list", args=[vm(w)])),
            ("vm-snapshot-detail", lambda w: reverse("vm-snapshot-detail", args=[vm(w), a_snapshot(w)])),
        ]
    ),
    *(
        Route(name, "post", url, 401, 404, 403, "alice", allowed, data=data, api=True)
        for name, url, allowed, data in [
            (
                "vm-disk-resize",
                lambda w: reverse("vm-disk-resize", args=[vm(w), "vda"]),
                409,
                lambda w: {"size_bytes": 128 << 20},
            ),
            (
                "vm-disk-convert",
                lambda w: reverse("vm-disk-convert", args=[a_cloneable_vm(w), "vda"]),
                202,
                lambda w: {"format": "raw"},
            ),
            (
                "vm-disk-move",
                lambda w: reverse("vm-disk-move", args=[a_cloneable_vm(w), "vda"]),
                202,
                lambda w: {"pool": "default", "name": "matrix-moved.qcow2"},
            ),
            (
                "vm-disk-media",
                lambda w: reverse("vm-disk-media", args=[a_cloneable_vm(w), "vda"]),
                400,
                lambda w: {"path": "/pool/vm0003.qcow2"},
            ),
            (
                "vm-snapshot-revert",
                lambda w: reverse("vm-snapshot-revert", args=[vm(w), a_snapshot(w)]),
                202,
                None,
            ),
        ]
    ),
]
# vm-detail also answers DELETE; it has its own row so the method is covered.
# The host still has VMs: allowed users get the clear 409.
HOST_DELETE_ROUTE = Route(
    "host-detail", "delete", lambda w: reverse("host-detail", args=[w.host.pk]), 401, 404, 403, "root", 409, api=True
)
DELETE_ROUTE = Route(
    "vm-detail", "delete", lambda w: reverse("vm-detail", args=[vm(w)]), 401, 404, 403, "alice", 200, api=True
)
# job-list also answers POST (start a job): its own row, outside ROUTES (GET on it is the list, not 405).
JOB_CREATE_ROUTE = Route(
    "job-list", "post", lambda w: reverse("job-list"), 401, 404, 403, "root", 202, data=a_volume_job, api=True
)
# vm-list also answers POST (create a VM, a job): its own row, outside ROUTES like job-list's.
VM_CREATE_ROUTE = Route(
    "vm-list", "post", lambda w: reverse("vm-list"), 401, 404, 403, "oscar", 202, data=a_vm_to_create, api=True
)
# Storage creation (POST on the lists) and deletion (DELETE on the details): their own rows.
STORAGE_WRITE_ROUTES = [
    Route(
        "pool-list",
        "post",
        lambda w: reverse("pool-list"),
        401,
        404,
        403,
        "root",
        201,
        data=lambda w: {"host": w.host.pk, "name": "matrix-new", "path": "/srv/matrix-new"},
        api=True,
    ),
    Route(
        "pool-detail",
        "delete",
        lambda w: reverse("pool-detail", args=[an_empty_pool(w)]),
        401,
        404,
        403,
        "root",
        204,
        api=True,
    ),
    Route(
        "pool-volume-list",
        "post",
        lambda w: reverse("pool-volume-list", args=[a_pool(w)]),
        401,
        404,
        403,
        "root",
        201,
        data=lambda w: {"name": "matrix.qcow2", "capacity_bytes": 1 << 20},
        api=True,
    ),
    Route(
        "pool-upload-list",
        "post",
        lambda w: reverse("pool-upload-list", args=[a_pool(w)]),
        401,
        404,
        403,
        "root",
        201,
        data=lambda w: {"name": "matrix-new.iso", "size": 1 << 20},
        api=True,
    ),
    # A part is the raw body; the test driver cannot stream it: allowed users get its clear 409.
    Route(
        "pool-upload-detail",
        "put",
        lambda w: reverse("pool-upload-detail", args=an_upload(w)) + "?offset=0",
        401,
        404,
        403,
        "root",
        409,
        data=lambda w: b"x" * 4096,
        api=True,
    ),
    Route(
        "pool-upload-detail",
        "delete",
        lambda w: reverse("pool-upload-detail", args=an_upload(w)),
        401,
        404,
        403,
        "root",
        204,
        api=True,
    ),
    Route(
        "pool-volume-detail",
        "delete",
        lambda w: reverse("pool-volume-detail", args=a_volume(w)),
        401,
        404,
        403,
        "root",
        204,
        api=True,
    ),
]
# Attach (POST on the disk list), detach (DELETE on a disk), eject (DELETE on media), snapshot create
# (POST on the list) and delete (DELETE on one): their own rows.
DISK_WRITE_ROUTES = [
    Route(
        "vm-disk-list",
        "post",
        lambda w: reverse("vm-disk-list", args=[a_cloneable_vm(w)]),
        401,
        404,
        403,
        "alice",
        409,
        data=lambda w: {"pool": "default", "name": "matrix-disk.qcow2", "size_bytes": 1 << 20, "persistent": True},
        api=True,
    ),
    Route(
        "vm-disk-detail",
        "delete",
        lambda w: reverse("vm-disk-detail", args=[vm(w), "vda"]),
        401,
        404,
        403,
        "alice",
        409,
        api=True,
    ),
    Route(
        "vm-disk-media",
        "delete",
        lambda w: reverse("vm-disk-media", args=[vm(w), "vda"]),
        401,
        404,
        403,
        "alice",
        400,
        api=True,
    ),
    Route(
        "vm-snapshot-list",
        "post",
        lambda w: reverse("vm-snapshot-list", args=[vm(w)]),
        401,
        404,
        403,
        "alice",
        202,
        data=lambda w: {"name": "matrix-new"},
        api=True,
    ),
    Route(
        "vm-snapshot-detail",
        "delete",
        lambda w: reverse("vm-snapshot-detail", args=[vm(w), a_snapshot(w)]),
        401,
        404,
        403,
        "alice",
        202,
        api=True,
    ),
]
# Rows kept beside a feature's own code (tests/core/matrix_rows/*.py), in the same matrix.
ROUTES += extra_routes()
# The admin is Django's own (staff only, its own permission system), tested by Django itself.
EXEMPT = {"admin"}
WEBSOCKET_ROUTES = {"ws-vms", "ws-vm", "ws-hosts", "ws-vm-serial", "ws-job", "ws-jobs"}


def request(client: Client, route: Route, world):
    url = route.url(world)
    data = route.data(world) if route.data else {}
    if route.method == "get":
        return client.get(url)
    if route.method == "delete":
        return client.delete(url)
    if route.method == "put":
        return client.put(url, data, content_type="application/octet-stream")
    if route.api:
        return client.post(url, data, content_type="application/json")
    return client.post(url, data)


def client_for(world, persona: str | None) -> Client:
    client = Client()
    if persona:
        client.force_login(getattr(world, persona))
    return client


# Every row, each tested per persona here and for grant precedence in test_permission_precedence.py.
EVERY_ROUTE = [
    *ROUTES,
    DELETE_ROUTE,
    HOST_DELETE_ROUTE,
    JOB_CREATE_ROUTE,
    VM_CREATE_ROUTE,
    *STORAGE_WRITE_ROUTES,
    *DISK_WRITE_ROUTES,
]


@pytest.mark.parametrize("route", EVERY_ROUTE, ids=lambda r: f"{r.method}-{r.name}")
@pytest.mark.parametrize("persona", ["anonymous", "stranger", "viewer", "allowed"])
def test_the_route_answers_each_persona_as_it_should(world, route, persona):
    user = {"anonymous": None, "stranger": "bob", "viewer": "carol", "allowed": route.allowed_as}[persona]
    expected = {
        "anonymous": route.anonymous,
        "stranger": route.stranger,
        "viewer": route.viewer,
        "allowed": route.allowed,
    }[persona]
    response = request(client_for(world, user), route, world)
    assert response.status_code == expected, getattr(response, "content", b"")[:300]
    if route.api and expected >= 400:
        assert b"detail" in response.content
    if persona == "anonymous" and not route.api and expected == 302 and route.name not in {"home", "logout"}:
        assert response["Location"].startswith(reverse("login"))


def test_the_list_shows_a_stranger_nothing_and_an_owner_only_their_vms(world):
    assert client_for(world, "bob").get(reverse("vm-list")).json()["count"] == 0
    names = {row["name"] for row in client_for(world, "alice").get(reverse("vm-list")).json()["results"]}
    assert names == {"vm0000", "vm0002"}
    page = client_for(world, "bob").get(reverse("vms:list")).content.decode()
    assert "vm0002" not in page


# A POST whose URL also answers GET (a list that creates, a quota read and set) reads on GET.
READ_TOO = {r.name for r in ROUTES if r.method == "get"}


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r.method == "post" and r.name not in READ_TOO], ids=lambda r: r.name
)
def test_state_changes_refuse_get(world, route):
    response = client_for(world, "root").get(route.url(world))
    assert response.status_code == 405


@pytest.mark.parametrize(
    "route",
    [
        r
        for r in [*ROUTES, JOB_CREATE_ROUTE, VM_CREATE_ROUTE, *STORAGE_WRITE_ROUTES, *DISK_WRITE_ROUTES]
        if r.method == "post" and r.name != "logout"
    ],
    ids=lambda r: r.name,
)
def test_state_changes_need_a_csrf_token(world, route):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.root)
    response = request(client, route, world)
    assert response.status_code == 403
    assert world.vm.__class__.objects.get(pk=world.vm.pk).state == "shutoff"


def _connect(world, path: str, persona: str | None):
    async def run():
        communicator = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://127.0.0.1")])
        if persona:
            communicator.scope["user"] = getattr(world, persona)
        connected, code = await communicator.connect()
        await communicator.disconnect()
        return connected, code

    return async_to_sync(run)()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("path", "persona", "accepted"),
    [
        ("/ws/vms/", None, False),
        ("/ws/vms/", "bob", True),  # the list stream filters each message by the gate
        ("/ws/vms/{vm}/", None, False),
        ("/ws/vms/{vm}/", "bob", False),
        ("/ws/vms/{vm}/", "carol", True),
        ("/ws/vms/{vm}/", "alice", True),
        ("/ws/hosts/", None, False),
        ("/ws/hosts/", "bob", True),  # filtered per message, like the VM list stream
        ("/ws/jobs/", None, False),
        ("/ws/jobs/", "bob", True),  # filtered per job: only the jobs bob may see (tests/jobs/test_panel_consumer.py)
        # The serial console also needs a console ticket from the same session: without one, nobody
        # gets in (tests/console/test_serial.py covers tickets, against a real daphne and guest).
        ("/ws/vms/{vm}/serial/", None, False),
        ("/ws/vms/{vm}/serial/", "bob", False),
        ("/ws/vms/{vm}/serial/", "carol", False),
        ("/ws/vms/{vm}/serial/", "alice", False),
    ],
)
def test_websocket_routes_answer_each_persona_as_they_should(world, path, persona, accepted):
    connected, _code = _connect(world, path.format(vm=world.vm.pk), persona)
    assert connected is accepted


def _names(patterns, namespace: str = "") -> set[str]:
    names = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            names |= _names(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            names.add(namespace + pattern.name)
    return names


def test_every_route_is_in_the_matrix():
    routed = {name for name in _names(get_resolver().url_patterns) if name.split(":")[0] not in EXEMPT}
    routed = {name for name in routed if not name.endswith("-format") and "format" not in name}
    covered = {route.name for route in ROUTES}
    assert routed - covered == set(), "routes without a permission test"
    assert {p.name for p in websocket_urlpatterns} == WEBSOCKET_ROUTES
