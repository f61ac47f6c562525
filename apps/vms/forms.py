from django import forms
from django.utils.translation import gettext_lazy as _

from apps.hosts.models import Host
from apps.vms.os_variants import DEFAULT_VARIANT, variant_choices
from kvmpanel.virt.xml import DISK_BUSES, MACHINE_TYPES, MAX_UPLOAD_BYTES, NIC_MODELS


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


SIZE_UNITS = {"MiB": 1 << 20, "GiB": 1 << 30}


class CreateVMForm(forms.Form):
    """The create wizard (virt-install, seed §3.3). Empty hardware fields take the OS variant's
    defaults; the choices (pools, ISOs, networks) are the chosen host's, from the inventory."""

    host = forms.ModelChoiceField(label=_("Host"), queryset=Host.objects.none())
    name = forms.CharField(label=_("Name"), max_length=300, help_text=_("1-63 letters, digits, '.', '_' or '-'"))
    project = forms.ChoiceField(
        label=_("Project"), required=False, help_text=_("The VM counts against the project's quota.")
    )
    os_variant = forms.ChoiceField(label=_("OS variant"), initial=DEFAULT_VARIANT)
    virt_type = forms.ChoiceField(
        label=_("Acceleration"),
        choices=[("kvm", _("KVM (hardware)")), ("qemu", _("QEMU TCG (software emulation)"))],
        help_text=_("virt-install --virt-type"),
    )
    vcpus = forms.IntegerField(label=_("vCPUs"), required=False)
    max_vcpus = forms.IntegerField(label=_("Maximum vCPUs"), required=False, help_text=_("virsh setvcpus --live"))
    memory_mib = forms.IntegerField(label=_("Memory (MiB)"), required=False)
    max_memory_mib = forms.IntegerField(
        label=_("Maximum memory (MiB)"), required=False, help_text=_("virsh setmem --live")
    )
    disk_pool = forms.ChoiceField(label=_("Storage pool"))
    disk_size = forms.DecimalField(label=_("Disk size"), required=False, min_value=0, decimal_places=3)
    disk_unit = forms.ChoiceField(label=_("Unit"), choices=[(unit, unit) for unit in SIZE_UNITS], initial="GiB")
    disk_format = forms.ChoiceField(
        label=_("Format"), choices=[("qcow2", _("qcow2 (sparse, snapshots)")), ("raw", _("raw (sparse file)"))]
    )
    iso = forms.ChoiceField(label=_("Installer or live ISO"), required=False)
    install = forms.BooleanField(
        label=_("Install mode"),
        required=False,
        help_text=_("Wait for the installer to power the VM off, eject the ISO, then boot from the disk."),
    )
    network = forms.ChoiceField(label=_("Network"), required=False)
    machine = forms.ChoiceField(label=_("Machine type"), required=False)
    disk_bus = forms.ChoiceField(label=_("Disk bus"), required=False)
    nic_model = forms.ChoiceField(label=_("NIC model"), required=False)

    # Where each service parameter is shown: a refusal naming a parameter lands on its field.
    FIELD_OF_PARAM = {"disk_size_bytes": "disk_size", "iso_pool": "iso", "iso_volume": "iso", "vm": None}

    def __init__(
        self, *args, hosts, host: Host | None, pools=(), isos=(), projects=(), project_required=False, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["host"].queryset = hosts
        # Without a grant on the host, a VM can only be created in a project placed on it.
        personal = [] if project_required else [("", _("none (your own)"))]
        self.fields["project"].choices = personal + [(str(p.pk), p.name) for p in projects]
        self.fields["project"].required = project_required
        if not projects:
            del self.fields["project"]
        self.fields["os_variant"].choices = variant_choices()
        default = _("default of the OS variant")
        self.fields["disk_pool"].choices = [(pool, pool) for pool in pools]
        self.fields["iso"].choices = [("", _("none"))] + [(f"{pool}/{name}", f"{pool}/{name}") for pool, name in isos]
        networks = [n["name"] for n in (host.networks if host else []) if isinstance(n, dict) and n.get("active")]
        self.fields["network"].choices = [("", _("none"))] + [(name, name) for name in networks]
        self.fields["machine"].choices = [("", default)] + [(m, m) for m in MACHINE_TYPES]
        self.fields["disk_bus"].choices = [("", default)] + [(bus, bus) for bus in DISK_BUSES]
        self.fields["nic_model"].choices = [("", default)] + [(model, model) for model in NIC_MODELS]
        if host is not None:
            self.fields["host"].initial = host.pk
            self.fields["virt_type"].initial = "kvm" if host.kvm_usable else "qemu"
        if "default" in pools:
            self.fields["disk_pool"].initial = "default"

    def params(self) -> dict:
        """The service's parameters: blanks left out (the OS variant decides), the size in bytes."""
        data = self.cleaned_data
        params = {
            key: data[key]
            for key in ("name", "os_variant", "virt_type", "disk_pool", "disk_format", "install", "network")
        }
        for key in ("vcpus", "max_vcpus", "memory_mib", "max_memory_mib", "machine", "disk_bus", "nic_model"):
            if data.get(key) not in (None, ""):
                params[key] = data[key]
        if data.get("disk_size") is not None:
            params["disk_size_bytes"] = int(data["disk_size"] * SIZE_UNITS[data["disk_unit"]])
        if data.get("iso"):
            params["iso_pool"], params["iso_volume"] = data["iso"].split("/", 1)
        if data.get("project"):
            params["project"] = int(data["project"])
        return params

    def add_service_error(self, field: str | None, message: str) -> None:
        field = self.FIELD_OF_PARAM.get(field, field)
        self.add_error(field if field in self.fields else None, message)


class CloneForm(forms.Form):
    name = forms.CharField(
        label=_("Name of the clone"), required=False, max_length=300, help_text=_("Empty: NAME-clone, NAME-clone-1…")
    )
    pool = forms.CharField(
        label=_("Pool for the disk copies"), required=False, help_text=_("Empty: each disk's own pool")
    )
    start = forms.BooleanField(label=_("Start the clone"), required=False)
