"""Names for config-space bytes: which structure and field an offset belongs to.

Small frozen ``Field`` tables in spec order (the type 0 header, the virtio_pci_cap
family, MSI-X, PCI Express, PM), and :func:`field_map`, which labels every byte of
a config space by walking its capability list. Views, diffs and ``explain`` share it.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import regs
from .capability import walk_capabilities, walk_ext_capabilities

__all__ = ["Field", "Label", "HEADER", "field_map", "label_at", "cap_fields"]


@dataclass(frozen=True)
class Field:
    """A named field: offset within its structure, width in bytes, access, meaning."""

    name: str
    offset: int
    width: int
    access: str = "ro"  # ro | rw | rw1c | mixed
    meaning: str = ""


@dataclass(frozen=True)
class Label:
    """What one byte of config space is: structure, field, and where that field starts."""

    structure: str  # "header", "virtio common cap @0x40", "free", ...
    field: str
    start: int
    width: int
    meaning: str = ""
    kind: str = "header"  # header | cap | free | ext | reserved


HEADER: tuple[Field, ...] = (
    Field("vendor_id", 0x00, 2, "ro", "who made it (0x1af4: Red Hat / Qumranet, the virtio vendor)"),
    Field("device_id", 0x02, 2, "ro", "which device (0x1000-0x103f transitional, 0x1040+id modern)"),
    Field("command", 0x04, 2, "rw", "IO/MEMORY decode, bus MASTER, SERR, INTx disable"),
    Field("status", 0x06, 2, "rw1c", "CAP_LIST (bit 4) says a capability list exists; error bits clear on write 1"),
    Field("revision_id", 0x08, 1, "ro", "0 transitional/legacy, 1 modern-only"),
    Field("prog_if", 0x09, 1, "ro", "programming interface"),
    Field("subclass", 0x0A, 1, "ro", "sub-class, the middle byte of the 24-bit class code (prog-if 0x09, sub-class 0x0a, base class 0x0b)"),
    Field("class", 0x0B, 1, "ro", "base class, the top byte of the class code (02 network, 01 storage, ...)"),
    Field("cache_line_size", 0x0C, 1, "rw", "firmware writes the CPU cache line size"),
    Field("latency_timer", 0x0D, 1, "ro", ""),
    Field("header_type", 0x0E, 1, "ro", "layout of 0x10-0x3f: 0 = type 0 (endpoint), 1 = type 1 (bridge, e.g. a root port); bit 7 = multifunction"),
    Field("bist", 0x0F, 1, "ro", ""),
    *(Field(f"bar{i}", 0x10 + 4 * i, 4, "rw", "base address register: type bits low, address high")
      for i in range(6)),
    Field("cardbus_cis", 0x28, 4, "ro", ""),
    Field("subsystem_vendor_id", 0x2C, 2, "ro", "0x1af4"),
    Field("subsystem_id", 0x2E, 2, "ro", "device id below 0x1040 (transitional/legacy): the virtio device id, which legacy drivers and Linux's modern probe both read; modern-only: QEMU's default 0x1100"),
    Field("rom_address", 0x30, 4, "rw", "expansion ROM base address; bit 0 enables it"),
    Field("capabilities_ptr", 0x34, 1, "ro", "offset of the first (newest) capability"),
    Field("reserved", 0x35, 7, "ro", ""),
    Field("interrupt_line", 0x3C, 1, "rw", "IRQ number firmware routed INTx to"),
    Field("interrupt_pin", 0x3D, 1, "ro", "1 = INTA#"),
    Field("min_gnt", 0x3E, 1, "ro", ""),
    Field("max_lat", 0x3F, 1, "ro", ""),
)

_VIRTIO_CAP: tuple[Field, ...] = (
    Field("cap_vndr", 0, 1, "ro", "0x09: vendor-specific capability"),
    Field("cap_next", 1, 1, "ro", "offset of the next capability (0 ends the list)"),
    Field("cap_len", 2, 1, "ro", "length of this structure"),
    Field("cfg_type", 3, 1, "ro", "1 common, 2 notify, 3 isr, 4 device, 5 pci-cfg"),
    Field("bar", 4, 1, "ro", "which BAR holds the region"),
    Field("id", 5, 1, "ro", "distinguishes several caps of one type (0)"),
    Field("padding", 6, 2, "ro", ""),
    Field("offset", 8, 4, "ro", "where the region starts inside the BAR"),
    Field("length", 12, 4, "ro", "how long the region is"),
)
_NOTIFY_EXTRA = (Field("notify_off_multiplier", 16, 4, "ro",
                       "queue n is notified at offset + queue_notify_off(n) × multiplier"),)
_PCI_CFG_EXTRA = (Field("pci_cfg_data", 16, 4, "rw", "data read/written at bar+offset through the window"),)
_MSIX: tuple[Field, ...] = (
    Field("cap_id", 0, 1, "ro", "0x11: MSI-X"), Field("cap_next", 1, 1, "ro", "next capability"),
    Field("message_control", 2, 2, "mixed", "table size - 1; bit 15 enable, bit 14 function mask"),
    Field("table", 4, 4, "ro", "table offset | BIR (BAR index)"),
    Field("pba", 8, 4, "ro", "pending bit array offset | BIR"),
)
_EXP: tuple[Field, ...] = (
    Field("cap_id", 0, 1, "ro", "0x10: PCI Express"), Field("cap_next", 1, 1, "ro", "next capability"),
    Field("flags", 2, 2, "ro", "version 2, device/port type"),
    Field("devcap", 4, 4, "ro", "device capabilities (RBER, FLR)"),
    Field("devctl", 8, 2, "rw", "device control"), Field("devsta", 10, 2, "rw1c", "device status"),
    Field("lnkcap", 12, 4, "ro", "link capabilities (x1, 2.5 GT/s)"),
    Field("lnkctl", 16, 2, "rw", "link control"), Field("lnksta", 18, 2, "ro", "link status"),
    Field("sltcap", 20, 4, "ro", ""), Field("sltctl", 24, 2, "ro", ""), Field("sltsta", 26, 2, "ro", ""),
    Field("rootctl", 28, 2, "ro", ""), Field("rootcap", 30, 2, "ro", ""), Field("rootsta", 32, 4, "ro", ""),
    Field("devcap2", 36, 4, "ro", "device capabilities 2"), Field("devctl2", 40, 2, "rw", "device control 2"),
    Field("devsta2", 42, 2, "ro", ""), Field("lnkcap2", 44, 4, "ro", ""), Field("lnkctl2", 48, 2, "ro", ""),
    Field("lnksta2", 50, 2, "ro", ""), Field("sltcap2", 52, 4, "ro", ""), Field("sltctl2", 56, 2, "ro", ""),
    Field("sltsta2", 58, 2, "ro", ""),
)
_PM: tuple[Field, ...] = (
    Field("cap_id", 0, 1, "ro", "0x01: Power Management"), Field("cap_next", 1, 1, "ro", "next capability"),
    Field("pmc", 2, 2, "ro", "PM capabilities"), Field("pm_ctrl", 4, 2, "rw", "power state D0..D3hot"),
    Field("pm_bse", 6, 1, "ro", ""), Field("data", 7, 1, "ro", ""),
)


def cap_fields(cap_id: int, cfg_type: int | None = None, cap_len: int = 0) -> tuple[Field, ...]:
    """The field table of a capability structure."""
    if cap_id == regs.CapID.VNDR:
        if cfg_type == regs.VirtioCfgType.NOTIFY_CFG and cap_len >= 20:
            return _VIRTIO_CAP + _NOTIFY_EXTRA
        if cfg_type == regs.VirtioCfgType.PCI_CFG and cap_len >= 20:
            return _VIRTIO_CAP + _PCI_CFG_EXTRA
        return _VIRTIO_CAP
    return {regs.CapID.MSIX: _MSIX, regs.CapID.EXP: _EXP, regs.CapID.PM: _PM}.get(
        cap_id, (Field("cap_id", 0, 1), Field("cap_next", 1, 1)))


def field_map(config: bytes) -> list[Label]:
    """Label every byte of ``config`` (256 or 4096 bytes) by structure and field."""
    size = len(config)
    labels: list[Label | None] = [None] * size
    for f in HEADER:
        for i in range(f.offset, min(f.offset + f.width, size)):
            labels[i] = Label("header", f.name, f.offset, f.width, f.meaning, "header")
    for cap in walk_capabilities(config).caps:
        name = f"{cap.name} cap @0x{cap.offset:02x}"
        fields = cap_fields(cap.id, cap.get("cfg_type"), cap.get("cap_len") or 0)
        end = cap.offset + max(cap.length, fields[-1].offset + fields[-1].width if fields else 2)
        for f in fields:
            for i in range(cap.offset + f.offset, min(cap.offset + f.offset + f.width, size)):
                labels[i] = Label(name, f.name, cap.offset + f.offset, f.width, f.meaning, "cap")
        for i in range(cap.offset, min(end, size)):
            if labels[i] is None:
                labels[i] = Label(name, "(body)", i, 1, "", "cap")
    if size > 256:
        for ext in walk_ext_capabilities(config):
            name = {1: "AER", 0xF: "ATS"}.get(ext.id, f"ext cap 0x{ext.id:04x}") + f" @0x{ext.offset:03x}"
            labels[ext.offset] = Label(name, "header", ext.offset, 4, "id, version, next", "ext")
    for i in range(size):
        if labels[i] is None:
            labels[i] = Label("free" if i < 256 else "extended space", "(unused)", i, 1,
                              "not part of any structure", "free")
    return labels  # type: ignore[return-value]


def label_at(config: bytes, offset: int) -> Label:
    return field_map(config)[offset]
