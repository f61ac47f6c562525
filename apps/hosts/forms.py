from django import forms
from django.utils.translation import gettext_lazy as _


class AddHostForm(forms.Form):
    name = forms.SlugField(label=_("Name"), max_length=64)
    uri = forms.CharField(
        label=_("libvirt URI"),
        max_length=300,
        help_text=_(
            "qemu:///system, qemu+unix:///system?socket=/path, qemu+ssh://root@host/system, qemu+tls://host/system"
        ),
    )
