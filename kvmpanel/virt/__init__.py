"""The one door to the hypervisor.

Only this package imports `libvirt` (a ruff banned-api rule enforces it). Everything it returns is a
frozen dataclass from `kvmpanel.virt.types`; every failure is a `HypervisorError`.
"""

from kvmpanel.virt.errors import HypervisorError

__all__ = ["HypervisorError"]
