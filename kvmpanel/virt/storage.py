"""Storage pools and volumes, through libvirt's storage API so remote hosts need no agent.

Only what the foundation needs lives here (pool paths, one volume for the demo VM); the storage
issue grows it into full pool and volume management.
"""

import xml.etree.ElementTree as ET

import libvirt
from django.utils.translation import gettext as _

from kvmpanel.virt.connection import call
from kvmpanel.virt.errors import HypervisorError
from kvmpanel.virt.xml import validate_name


def create_volume(uri: str, pool_name: str, volume_name: str, *, capacity_bytes: int, fmt: str = "qcow2") -> str:
    """`qemu-img create -f FMT` inside a pool (sparse): returns the new volume's path."""
    if fmt not in {"qcow2", "raw"}:
        raise HypervisorError(_("Unsupported volume format %(format)r.") % {"format": fmt}, code="invalid-argument")
    validate_name(volume_name.rsplit(".", 1)[0])
    volume = ET.Element("volume")
    ET.SubElement(volume, "name").text = volume_name
    ET.SubElement(volume, "allocation").text = "0"
    ET.SubElement(volume, "capacity", unit="bytes").text = str(capacity_bytes)
    target = ET.SubElement(volume, "target")
    ET.SubElement(target, "format", type=fmt)
    xml_text = ET.tostring(volume, encoding="unicode")

    def run(conn: libvirt.virConnect) -> str:
        pool = conn.storagePoolLookupByName(pool_name)
        return pool.createXML(xml_text, 0).path()

    return call(uri, run)


def find_volume_in_pool(uri: str, pool_name: str, file_name: str) -> str | None:
    """The path of `file_name` in a pool, refreshing the pool first so new files are seen."""

    def run(conn: libvirt.virConnect) -> str | None:
        pool = conn.storagePoolLookupByName(pool_name)
        pool.refresh(0)
        try:
            return pool.storageVolLookupByName(file_name).path()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                return None
            raise

    return call(uri, run)


def ensure_dir_pool(uri: str, name: str, path: str) -> str:
    """The name of an active pool over directory `path`: an existing one (a host refuses two pools
    on one directory), else a new one, like `virsh pool-define-as NAME dir --target PATH; pool-start`."""
    pool_element = ET.Element("pool", type="dir")
    ET.SubElement(pool_element, "name").text = name
    target = ET.SubElement(pool_element, "target")
    ET.SubElement(target, "path").text = path
    xml_text = ET.tostring(pool_element, encoding="unicode")

    def run(conn: libvirt.virConnect) -> str:
        for pool in conn.listAllStoragePools(0):
            root = ET.fromstring(pool.XMLDesc(0))  # noqa: S314 - libvirt's own XML
            if root.findtext("./target/path", "").rstrip("/") == path.rstrip("/"):
                break
        else:
            pool = conn.storagePoolDefineXML(xml_text, 0)
        if not pool.isActive():
            pool.create(0)
        return pool.name()

    return call(uri, run)


def delete_volume(uri: str, pool_name: str, volume_name: str) -> None:
    """`virsh vol-delete VOLUME --pool POOL`."""
    call(uri, lambda conn: conn.storagePoolLookupByName(pool_name).storageVolLookupByName(volume_name).delete(0))
