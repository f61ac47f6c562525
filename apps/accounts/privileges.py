"""The privilege catalogue and the built-in roles (DESIGN.md §4).

A privilege is a dotted verb that guards one kind of action; docs/permissions.md lists the action
each guards. Roles are named sets of privileges; grants give a role on a scope.
"""

from django.utils.translation import gettext_lazy as _

PRIVILEGES: dict[str, str] = {
    "vm.view": _("See a VM, its state, hardware, addresses and XML"),
    "vm.power": _("Start, shut down, force off, reboot, suspend and resume a VM"),
    "vm.console": _("Open a VM's console"),
    "vm.console.view": _("Watch a VM's console without input"),
    "vm.config": _("Rename a VM and change its autostart setting"),
    "vm.config.cpu": _("Change a VM's vCPUs and pinning"),
    "vm.config.memory": _("Change a VM's memory"),
    "vm.config.disk": _("Attach, detach and resize a VM's disks"),
    "vm.config.network": _("Attach and detach a VM's network interfaces"),
    "vm.snapshot": _("Create and delete a VM's snapshots"),
    "vm.snapshot.rollback": _("Revert a VM to a snapshot"),
    "vm.clone": _("Clone a VM"),
    "vm.migrate": _("Migrate a VM to another host"),
    "vm.create": _("Create or define VMs (on a host or project)"),
    "vm.delete": _("Delete a VM, optionally with its disks"),
    "template.use": _("Deploy VMs from a template"),
    "template.manage": _("Create, edit and delete templates"),
    "host.view": _("See a host and its capabilities"),
    "host.manage": _("Add, refresh and remove hosts"),
    "storage.manage": _("Manage storage pools and volumes"),
    "network.manage": _("Manage virtual networks"),
    "user.manage": _("Manage users, groups and grants"),
    "audit.view": _("Read the audit log"),
}

ADMINISTRATOR = "Administrator"
OPERATOR = "Operator"
VM_USER = "VMUser"
TEMPLATE_USER = "TemplateUser"
AUDITOR = "Auditor"
NO_ACCESS = "NoAccess"

# The creator of a VM gets this role on it (scope /vms/{id}).
OWNER_ROLE = VM_USER

_VM_OWNER_PRIVILEGES = [
    "vm.view",
    "vm.power",
    "vm.console",
    "vm.console.view",
    "vm.config",
    "vm.config.cpu",
    "vm.config.memory",
    "vm.config.disk",
    "vm.config.network",
    "vm.snapshot",
    "vm.snapshot.rollback",
    "vm.delete",
]

BUILTIN_ROLES: dict[str, list[str]] = {
    ADMINISTRATOR: sorted(PRIVILEGES),
    OPERATOR: [*_VM_OWNER_PRIVILEGES, "vm.clone", "vm.migrate", "vm.create", "host.view", "template.use"],
    # vm.create counts on a project (create the team's VMs on its placement hosts); a VM owner's
    # VMUser grant on /vms/{id} gives nothing more by it.
    VM_USER: [*_VM_OWNER_PRIVILEGES, "vm.create"],
    TEMPLATE_USER: ["template.use"],
    AUDITOR: ["vm.view", "host.view", "audit.view"],
    NO_ACCESS: [],
}
