from django.db import models
from django.utils.translation import gettext_lazy as _


class VolumeFormat(models.TextChoices):
    """The formats a new volume can be created in (`qemu-img create -f ...`)."""

    QCOW2 = "qcow2", _("qcow2 (copy-on-write, snapshots, grows as written)")
    RAW = "raw", _("raw (plain sparse file, fastest)")


class SizeUnit(models.TextChoices):
    MIB = "MiB", "MiB"
    GIB = "GiB", "GiB"
    TIB = "TiB", "TiB"


UNIT_BYTES = {SizeUnit.MIB: 1 << 20, SizeUnit.GIB: 1 << 30, SizeUnit.TIB: 1 << 40}
