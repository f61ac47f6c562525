"""The lab hosts of scripts/lab/lab.sh, as the panel registers them (make run, the tests)."""

import subprocess

from django.conf import settings

LAB_SCRIPT = settings.BASE_DIR / "scripts" / "lab" / "lab.sh"


def lab_uri(number: int) -> str:
    result = subprocess.run(["bash", str(LAB_SCRIPT), "uri", str(number)], check=True, capture_output=True, text=True)
    return result.stdout.strip()


def lab_path_map(number: int) -> dict[str, str]:
    """The lab host's /var/lib/libvirt (VNC sockets live there) is var/lab/hostN/lib on this machine."""
    return {"/var/lib/libvirt": str(settings.VAR_DIR / "lab" / f"host{number}" / "lib")}
