from django.utils.translation import gettext_lazy as _

from kvmpanel.virt.errors import HypervisorError


class ServiceError(Exception):
    """A refusal or failure a user can act on; views show `message`, the API answers `status`."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = str(message)
        self.code = code
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class AccessDenied(ServiceError):
    status = 403

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or _("You do not have permission to do this."), code="forbidden")


def from_hypervisor(error: HypervisorError, *, host_name: str) -> ServiceError:
    """Turn a hypervisor failure into a message naming the host, with a status that fits it."""
    if error.code == "unreachable":
        return ServiceError(
            _("Host %(host)s is unreachable: %(reason)s") % {"host": host_name, "reason": error.message},
            status=503,
            code="host-unreachable",
        )
    if error.code == "no-domain":
        return ServiceError(error.message, status=409, code="missing")
    if error.code in {"invalid-xml", "forbidden-xml", "invalid-name", "invalid-argument"}:
        return ServiceError(error.message, status=400, code=error.code)
    return ServiceError(error.message, status=409, code=error.code)
