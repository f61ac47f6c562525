from django import forms
from django.utils.translation import gettext_lazy as _

from apps.hosts.models import Host
from kvmpanel.virt.xml import MAX_UPLOAD_BYTES


class VMFilterForm(forms.Form):
    q = forms.CharField(label=_("Name"), required=False)
    host = forms.ModelChoiceField(label=_("Host"), queryset=Host.objects.none(), required=False)
    state = forms.ChoiceField(label=_("State"), required=False)

    def __init__(self, *args, hosts=None, states=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["host"].queryset = hosts if hosts is not None else Host.objects.none()
        self.fields["state"].choices = [("", _("any")), *states]


class RenameForm(forms.Form):
    name = forms.CharField(label=_("New name"), max_length=63)


class DeleteForm(forms.Form):
    remove_disks = forms.BooleanField(
        label=_("Also delete its disk volumes"),
        required=False,
        help_text=_("CD-ROM images are never deleted."),
    )
    confirm_name = forms.CharField(label=_("Type the VM's name to confirm"))

    def __init__(self, *args, vm_name: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.vm_name = vm_name

    def clean_confirm_name(self) -> str:
        value = self.cleaned_data["confirm_name"].strip()
        if value != self.vm_name:
            raise forms.ValidationError(_("The name does not match."))
        return value


class DefineForm(forms.Form):
    host = forms.ModelChoiceField(label=_("Host"), queryset=Host.objects.none())
    xml_file = forms.FileField(label=_("Domain XML file"), required=False)
    xml_text = forms.CharField(label=_("…or paste the XML"), widget=forms.Textarea(attrs={"rows": 14}), required=False)

    def __init__(self, *args, hosts=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["host"].queryset = hosts if hosts is not None else Host.objects.none()

    def clean(self) -> dict:
        cleaned = super().clean()
        upload = cleaned.get("xml_file")
        if upload is not None:
            if upload.size > MAX_UPLOAD_BYTES:
                raise forms.ValidationError(_("The XML file is larger than 256 KiB."))
            try:
                cleaned["xml_text"] = upload.read().decode("utf-8")
            except UnicodeDecodeError as exc:
                raise forms.ValidationError(_("The file is not UTF-8 text.")) from exc
        if not (cleaned.get("xml_text") or "").strip():
            raise forms.ValidationError(_("Upload a file or paste the domain XML."))
        return cleaned
