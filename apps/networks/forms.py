"""Networks forms. They only shape input (text, a number, a choice); every rule about names,
addresses and ranges is in apps/networks/validators.py, applied by the services."""

from django import forms
from django.utils.translation import gettext_lazy as _

MODE_CHOICES = [
    ("isolated", _("isolated: guests and the host only (no forwarding)")),
    ("nat", _("NAT: guests reach outside through the host's address")),
    ("route", _("routed: guests' subnet is routed to the host's networks")),
    ("bridge", _("existing host bridge: guests sit on the host's LAN")),
]


class NetworkForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=1024, help_text=_("e.g. backend, lab-iso"))
    mode = forms.ChoiceField(label=_("Mode"), choices=MODE_CHOICES, initial="isolated")
    bridge = forms.CharField(
        label=_("Bridge"),
        required=False,
        max_length=64,
        help_text=_("Empty: libvirt picks virbrN. Required for mode bridge."),
    )
    address = forms.CharField(
        label=_("Host address"),
        required=False,
        max_length=64,
        help_text=_("The host's IPv4 address on it, e.g. 10.10.0.1"),
    )
    prefix = forms.IntegerField(label=_("Prefix length"), required=False, initial=24, min_value=0, max_value=32)
    dhcp_start = forms.CharField(label=_("DHCP from"), required=False, max_length=64)
    dhcp_end = forms.CharField(label=_("DHCP to"), required=False, max_length=64)
    autostart = forms.BooleanField(label=_("Start with the host (autostart)"), required=False)

    def clean_prefix(self):
        prefix = self.cleaned_data.get("prefix")
        return 24 if prefix is None else prefix


class StaticHostForm(forms.Form):
    mac = forms.CharField(label=_("MAC"), max_length=64, help_text=_("e.g. 52:54:00:12:34:56"))
    ip = forms.CharField(label=_("IP address"), max_length=64)
    hostname = forms.CharField(label=_("Hostname"), required=False, max_length=128)
