"""Input rules for pools and volumes: pure functions (no database, no hypervisor) that return the
value when it is acceptable and raise ServiceError (400) with a message saying what is, otherwise.

Names and paths are checked here before they reach libvirt or any XML; the checks against the
host as it is (free space, names in use, overlapping pools) live in apps/storage/services.py.
"""

import re

from django.utils.translation import gettext as _

from apps.core.errors import ServiceError
from kvmpanel.virt.xml import NAME_PATTERN

VOLUME_FORMATS = ("qcow2", "raw")
CREATABLE_POOL_TYPES = ("dir",)
# Far beyond any real disk (1 EiB): sizes above it are refused as absurd before any arithmetic.
MAX_VOLUME_BYTES = 1 << 60

# A pool's directory becomes a place where volumes are created and *deleted*: never over the
# system's own trees, nor over a top-level directory whose every entry would become a "volume".
SYSTEM_TREES = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var/run",
    "/var/lib/libvirt/qemu",
    "/var/lib/libvirt/dnsmasq",
)
TOP_LEVELS = ("/", "/home", "/var", "/var/lib", "/var/lib/libvirt", "/tmp", "/srv", "/opt", "/mnt", "/media")  # noqa: S108 - refused, not used
PATH_PATTERN = re.compile(r"^/[A-Za-z0-9._+/-]*$")
MAX_PATH_CHARS = 1024


def invalid(message: str, code: str = "invalid") -> ServiceError:
    """A refusal of bad input (400)."""
    return ServiceError(message, status=400, code=code)


def conflict(message: str, code: str = "exists") -> ServiceError:
    """A refusal because of what already exists on the host (409)."""
    return ServiceError(message, status=409, code=code)


def _plain_name(name: object) -> bool:
    return isinstance(name, str) and name.isascii() and bool(NAME_PATTERN.match(name)) and ".." not in name


def validate_volume_name(name: object) -> str:
    """A volume (file) name: 1-63 ASCII letters, digits, '.', '_' or '-', starting with a letter
    or digit, never '..' (so never a path, never XML, never a hidden file)."""
    if not _plain_name(name):
        raise invalid(
            _(
                "A volume name is 1-63 ASCII characters: letters, digits, '.', '_' or '-', starting with a "
                "letter or digit, and never '..'."
            ),
            code="invalid-name",
        )
    return name


def validate_pool_name(name: object) -> str:
    """A pool name, by the same rule as a volume name."""
    if not _plain_name(name):
        raise invalid(
            _(
                "A pool name is 1-63 ASCII characters: letters, digits, '.', '_' or '-', starting with a "
                "letter or digit, and never '..'."
            ),
            code="invalid-name",
        )
    return name


def validate_volume_format(fmt: object) -> str:
    if fmt not in VOLUME_FORMATS:
        raise invalid(_("The volume format must be qcow2 or raw."), code="invalid-format")
    return fmt


def validate_capacity(size: object) -> int:
    """A size in bytes: a whole number, above zero, not absurd (the pool's room is checked apart)."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise invalid(_("The volume size must be a whole number of bytes."), code="invalid-size")
    if size <= 0:
        raise invalid(_("The volume size must be greater than zero."), code="invalid-size")
    if size > MAX_VOLUME_BYTES:
        raise invalid(
            _("%(size)d bytes is not a real disk size (the limit is 1 EiB).") % {"size": size}, code="invalid-size"
        )
    return size


def validate_pool_path(path: object) -> str:
    """An absolute, normalized directory path of plain characters, outside the system's trees."""
    if not isinstance(path, str) or not path:
        raise invalid(_("Enter the pool's directory, an absolute path such as /srv/images."), code="invalid-path")
    if len(path) > MAX_PATH_CHARS or not PATH_PATTERN.match(path):
        raise invalid(
            _(
                "A pool directory is an absolute path of at most %(max)d characters: ASCII letters, digits, "
                "'/', '.', '_', '+' or '-'."
            )
            % {"max": MAX_PATH_CHARS},
            code="invalid-path",
        )
    parts = path.split("/")[1:]
    if any(part in {"", ".", ".."} for part in parts) and path != "/":
        raise invalid(
            _("Write the directory without '..', '.', '//' or a trailing '/': %(path)s") % {"path": path},
            code="invalid-path",
        )
    if path in TOP_LEVELS or any(path == tree or path.startswith(tree + "/") for tree in SYSTEM_TREES):
        raise invalid(
            _("%(path)s is a system directory; choose a directory of its own, such as /srv/images.") % {"path": path},
            code="invalid-path",
        )
    return path


def inside(path: str, directory: str) -> bool:
    directory = directory.rstrip("/") or "/"
    return path == directory or path.startswith(directory.rstrip("/") + "/")
