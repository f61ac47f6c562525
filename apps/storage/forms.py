"""Storage forms. They only shape input (text, numbers, a unit); every rule about names, paths and
sizes is the services' (apps/storage/validators.py), so the pages and the API refuse alike."""

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.hosts.models import Host
from apps.storage.choices import UNIT_BYTES, SizeUnit, VolumeFormat


class PoolForm(forms.Form):
    host = forms.ModelChoiceField(label=_("Host"), queryset=Host.objects.none())
    name = forms.CharField(label=_("Name"), max_length=1024, help_text=_("e.g. images, isos, fast-ssd"))
    type = forms.ChoiceField(label=_("Type"), choices=[("dir", _("dir: a directory on the host"))], initial="dir")
    path = forms.CharField(
        label=_("Directory on the host"),
        max_length=4096,
        help_text=_("An absolute path such as /srv/images; it is created if it does not exist."),
    )
    autostart = forms.BooleanField(label=_("Start with the host (autostart)"), required=False, initial=True)

    def __init__(self, *args, hosts=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["host"].queryset = hosts if hosts is not None else Host.objects.none()


class SizeWidget(forms.MultiWidget):
    def __init__(self, attrs=None) -> None:
        number = forms.NumberInput(attrs={"step": "1", "min": "1", "class": "size-number"})
        super().__init__([number, forms.Select(choices=SizeUnit.choices)], attrs)

    def decompress(self, value):
        return [value, SizeUnit.MIB] if value else [None, SizeUnit.GIB]


class SizeField(forms.MultiValueField):
    """A whole number and a unit (MiB, GiB, TiB), cleaned to bytes. Signs and zero pass through
    unchanged: the services refuse them with the same words the API gets."""

    widget = SizeWidget

    def __init__(self, **kwargs) -> None:
        super().__init__(
            fields=[forms.IntegerField(), forms.ChoiceField(choices=SizeUnit.choices)],
            require_all_fields=True,
            **kwargs,
        )

    def compress(self, data_list):
        if not data_list:
            return None
        number, unit = data_list
        return int(number) * UNIT_BYTES[unit]


class VolumeForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=1024, help_text=_("e.g. web01-data.qcow2"))
    format = forms.ChoiceField(label=_("Format"), choices=VolumeFormat.choices, initial=VolumeFormat.QCOW2)
    capacity = SizeField(label=_("Size"))


class ResizeForm(forms.Form):
    capacity = SizeField(label=_("New size"))
