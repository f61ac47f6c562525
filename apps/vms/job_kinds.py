"""The VM job kinds register themselves when their modules are imported (apps/jobs/registry.py)."""

from apps.vms import provisioning  # noqa: F401 - registers vm.create and vm.clone
