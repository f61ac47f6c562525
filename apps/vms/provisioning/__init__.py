"""Create and clone VMs (seed §3.3 virt-install, §5.4 virt-clone) as jobs.

`create_vm` and `clone_vm` validate everything in the request, before a Job row exists, and refuse
with a FieldError naming the field (400 for bad input, 409 for a clash with what exists). The jobs
(`vm.create` on a host, `vm.clone` on the source VM) run idempotent steps in the worker and record
each thing they make with `ctx.remember` the moment it exists, so the cleanup after a failure, a
cancel or a dead worker deletes exactly the volumes and domain the job made, nothing else.

The domain is defined through `services.define_vm`, the one define path: the panel's XML checks,
the inventory row and the owner grant for the requester come with it.
"""

from apps.vms.provisioning.clone import auto_clone_name, clone_vm, validate_clone
from apps.vms.provisioning.common import FieldError, clean_vm_name, human_bytes, name_taken
from apps.vms.provisioning.create import (
    create_commands,
    create_vm,
    disk_volume_name,
    validate_create,
    wizard_choices,
)

__all__ = [
    "FieldError",
    "auto_clone_name",
    "clean_vm_name",
    "clone_vm",
    "create_commands",
    "create_vm",
    "disk_volume_name",
    "human_bytes",
    "name_taken",
    "validate_clone",
    "validate_create",
    "wizard_choices",
]
