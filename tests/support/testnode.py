"""Node files for libvirt's test:/// driver: a fake host with N domains, a pool and a network.

`test:///abs/path/node.xml` opens a private in-memory host built from the file, so unit tests and
benchmarks get real libvirt behaviour (state machine, errors, events) with no QEMU.
"""

import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
RUNSTATE_SHUTOFF = "5"
POOL_PATH = "/pool"


def domain_uuid(host_index: int, vm_index: int) -> str:
    return str(uuid.UUID(int=(host_index << 32) | vm_index | (1 << 120)))


def write_test_node(
    path: Path,
    *,
    vms: int = 2,
    running: int | None = None,
    host_index: int = 0,
    name_prefix: str = "vm",
) -> str:
    """Write a node file with `vms` domains (the first `running` started, the rest shut off)."""
    ET.register_namespace("test", TEST_NS)
    running = vms // 2 if running is None else running
    node = ET.Element("node")
    cpu = ET.SubElement(node, "cpu")
    for tag, value in [
        ("nodes", "1"),
        ("sockets", "1"),
        ("cores", "8"),
        ("threads", "1"),
        ("mhz", "2000"),
        ("model", "x86_64"),
        ("active", "8"),
    ]:
        ET.SubElement(cpu, tag).text = value
    ET.SubElement(node, "memory").text = str(64 * 1024 * 1024)
    pool = ET.SubElement(node, "pool", type="dir")
    ET.SubElement(pool, "name").text = "default"
    ET.SubElement(pool, "uuid").text = str(uuid.UUID(int=host_index + 7))
    ET.SubElement(ET.SubElement(pool, "target"), "path").text = POOL_PATH
    for index in range(vms):
        name = f"{name_prefix}{index:04d}"
        domain = ET.SubElement(node, "domain", type="test")
        ET.SubElement(domain, "name").text = name
        ET.SubElement(domain, "uuid").text = domain_uuid(host_index, index)
        ET.SubElement(domain, "memory", unit="MiB").text = "512"
        ET.SubElement(domain, "currentMemory", unit="MiB").text = "384"
        ET.SubElement(domain, "vcpu", current="1").text = "2"
        ET.SubElement(ET.SubElement(domain, "os"), "type", arch="x86_64").text = "hvm"
        devices = ET.SubElement(domain, "devices")
        disk = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type="qcow2")
        ET.SubElement(disk, "source", file=f"{POOL_PATH}/{name}.qcow2")
        ET.SubElement(disk, "target", dev="vda", bus="virtio")
        nic = ET.SubElement(devices, "interface", type="network")
        ET.SubElement(nic, "mac", address=f"52:54:00:{host_index:02x}:{index >> 8:02x}:{index & 0xFF:02x}")
        ET.SubElement(nic, "source", network="isolated")
        if index >= running:
            ET.SubElement(domain, f"{{{TEST_NS}}}runstate").text = RUNSTATE_SHUTOFF
        volume = ET.SubElement(pool, "volume", type="file")
        ET.SubElement(volume, "name").text = f"{name}.qcow2"
        ET.SubElement(volume, "capacity", unit="MiB").text = "64"
        ET.SubElement(ET.SubElement(volume, "target"), "format", type="qcow2")
    network = ET.SubElement(node, "network")
    ET.SubElement(network, "name").text = "isolated"
    ET.SubElement(network, "bridge", name="virbr-test")
    ET.SubElement(network, "ip", address="192.168.250.1", netmask="255.255.255.0")
    path.write_text(ET.tostring(node, encoding="unicode"))
    return f"test://{path.resolve()}"
