"""The VM job kinds register themselves when their modules are imported (apps/jobs/registry.py)."""

import apps.vms.disks  # registers vm.disk.convert and vm.disk.move
import apps.vms.snapshots  # noqa: F401 - registers vm.snapshot.create, .revert and .delete
from apps.vms import provisioning  # noqa: F401 - registers vm.create and vm.clone
