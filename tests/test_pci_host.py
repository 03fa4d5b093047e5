"""The host bridge's two doors (virtio_lab.hw.pci_host) against real QEMU 7.2 captures.

Reading a device dword by dword through ports 0xcf8/0xcfc, or through the q35 ECAM window,
must give the bytes a real QEMU 7.2 exposes (tests/data/qemu-7.2: `config`, and `config_ext`,
all 4 KiB, behind a root port); empty slots, a disabled CONFIG_ADDRESS and
offsets past a function's size read all ones, as QEMU's pci_data_read / pci_host_data_read do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import virtio_lab
from virtio_lab.errors import VirtioLabError
from virtio_lab.hw.pci_host import ECAM_BASE, PciHost, config_address, decode_config_address, ecam_offset

DATA = Path(__file__).parent / "data" / "qemu-7.2"


def capture(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def through_ports(host: PciHost, bus: int, devfn: int) -> bytes:
    out = bytearray()
    for off in range(0, 256, 4):
        host.io_write(0xCF8, config_address(bus, devfn >> 3, devfn & 7, off), 4)
        out += host.io_read(0xCFC, 4).to_bytes(4, "little")
    return bytes(out)


@pytest.mark.parametrize("name,spec,machine,rp", [
    ("pc__virtio-net-pci", "virtio-net-pci", "pc", False),
    ("q35__virtio-net-pci", "virtio-net-pci", "q35", False),
    ("q35rp__virtio-net-pci", "virtio-net-pci", "q35", True),
])
def test_ports_read_the_real_config_space(name, spec, machine, rp):
    trace = virtio_lab.plug(spec, machine=machine, root_port=rp)
    m = trace.machine
    assert through_ports(PciHost(trace), m.bus_number, m.slot_devfn) == bytes.fromhex(capture(name)["config"])


def test_ecam_reads_the_extended_space_behind_a_root_port():
    case = capture("q35rp__virtio-net-pci")
    trace = virtio_lab.plug("virtio-net-pci", machine="q35", root_port=True)
    host = PciHost(trace)
    base = ECAM_BASE["q35"] + ecam_offset(1, 0, 0, 0)
    seen = b"".join(host.mmcfg_read(base + off, 4).to_bytes(4, "little") for off in range(0, 4096, 4))
    assert seen[:256] == bytes.fromhex(case["config"])
    assert seen == bytes.fromhex(case["config_ext"])      # all 4 KiB, the extended space included


def test_byte_lanes_and_empty_slots():
    trace = virtio_lab.plug("virtio-net-pci")
    host = PciHost(trace)
    cfg = bytes.fromhex(capture("pc__virtio-net-pci")["config"])
    host.io_write(0xCF8, config_address(0, 3, 0, 0x0C), 4)
    assert [host.io_read(0xCFC + i, 1) for i in range(4)] == list(cfg[0x0C:0x10])
    assert host.io_read(0xCFE, 2) == int.from_bytes(cfg[0x0E:0x10], "little")
    host.io_write(0xCF8, config_address(0, 5, 0, 0), 4)            # nobody at 00:05.0
    assert host.io_read(0xCFC, 4) == 0xFFFFFFFF
    host.io_write(0xCF8, config_address(0, 3, 0, 0) & ~(1 << 31), 4)   # enable bit clear
    assert host.io_read(0xCFC, 2) == 0xFFFF
    host.io_write(0xCF8, 0x80001800, 2)                           # a 2-byte write to 0xcf8 is dropped
    assert host.io_read(0xCF8, 4) == config_address(0, 3, 0, 0) & ~(1 << 31)


def test_writes_go_through_the_write_rule():
    host = PciHost(virtio_lab.plug("virtio-net-pci"))
    host.io_write(0xCF8, config_address(0, 3, 0, 0x3C), 4)
    host.io_write(0xCFC, 11, 1)            # interrupt line: writable
    host.io_write(0xCF8, config_address(0, 3, 0, 0x00), 4)
    host.io_write(0xCFC, 0xDEAD, 2)        # vendor id: read-only
    assert host.device.config[0x3C] == 11 and host.device.config[0:2] == b"\xf4\x1a"


def test_the_ports_cannot_name_extended_offsets_and_pc_has_no_ecam():
    with pytest.raises(VirtioLabError, match="need ECAM"):
        config_address(0, 3, 0, 0x100)
    with pytest.raises(VirtioLabError, match="no ECAM"):
        PciHost(virtio_lab.plug("virtio-net-pci")).mmcfg_read(0xB0000000, 4)
    rp = PciHost(virtio_lab.plug("virtio-net-pci", machine="q35", root_port=True))
    with pytest.raises(VirtioLabError, match="does not model"):   # the root port at 00:02.0
        rp.mmcfg_read(ECAM_BASE["q35"] + ecam_offset(0, 2, 0, 0), 4)
    # on the q35 root bus the device is conventional PCI: 256 bytes, all ones past them
    q35 = PciHost(virtio_lab.plug("virtio-net-pci", machine="q35"))
    assert q35.mmcfg_read(ECAM_BASE["q35"] + ecam_offset(0, 3, 0, 0x100), 4) == 0xFFFFFFFF
    assert decode_config_address(0x8001_1A0C) == {"enable": 1, "bus": 1, "device": 3, "function": 2,
                                                  "register": 0x0C}
