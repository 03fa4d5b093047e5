"""Capability placement (QEMU's rules) and decoding (anyone's config space).

Placement mirrors hw/pci/pci.c: pci_find_space + pci_add_capability: first fit
from 0x40 over the ``used`` map, and the new capability becomes the list head.
Decoding is pure: it walks any bytes, including broken lists, without looping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import regs
from .bits import align_up, get_le
from .config_space import ConfigSpace

__all__ = ["pci_find_space", "pci_add_capability", "Capability", "walk_capabilities",
           "ExtCapability", "walk_ext_capabilities", "pcie_add_capability"]

_SRC = "hw/pci/pci.c"


def pci_find_space(used: bytes | bytearray, size: int) -> int:
    """Return the first offset >= 0x40 with ``size`` free bytes below 0x100, or 0.

    Mirrors hw/pci/pci.c: pci_find_space (no alignment step: the dword rounding of
    ``used`` is what keeps capabilities aligned).
    """
    if size <= 0:
        return 0
    # the first run of ``size`` free bytes in 0x40..0xff is the first fit
    offset = used.find(bytes(size), regs.PCI_CONFIG_HEADER_SIZE, regs.PCI_CONFIG_SPACE_SIZE)
    return offset if offset > 0 else 0


def pci_add_capability(cs: ConfigSpace, cap_id: int, size: int, name: str, explanation: str = "",
                       **details: Any) -> int:
    """Add a capability at the first free offset, making it the head of the list.

    Mirrors hw/pci/pci.c: pci_add_capability with offset 0 (every virtio, MSI-X,
    PCIe and PM caller asks for automatic placement). Returns the offset.
    """
    tr = cs.tracer
    offset = pci_find_space(cs.used, size)
    if offset == 0:  # QEMU asserts here: a programming error, not a user error
        raise RuntimeError(f"no room for a {size}-byte capability")
    old_head = cs.config[regs.PCI_CAPABILITY_LIST]
    with tr.call("pci_add_capability", _SRC,
                 explanation or f"Add the {name} capability: first free {size} bytes from 0x40 "
                 f"are at 0x{offset:02x}; it becomes the list head and points at the old head "
                 f"0x{old_head:02x}.",
                 cap_id=cap_id, cap_offset=offset, cap_size=size, cap_name=name,
                 next=old_head, **details):
        cs.set(offset, 1, cap_id)
        cs.set(offset + 1, 1, old_head)
        cs.set(regs.PCI_CAPABILITY_LIST, 1, offset)
        cs.set_bits(regs.PCI_STATUS, 2, regs.PCI_STATUS_CAP_LIST)
        cs.fill("used", offset, align_up(size, 4), 0xFF)
        cs.fill("wmask", offset, size, 0)
        cs.fill("cmask", offset, size, 0xFF)
    return offset


def pcie_add_capability(cs: ConfigSpace, cap_id: int, version: int, offset: int, size: int,
                        name: str) -> None:
    """Add a PCIe extended capability at a fixed offset, chaining it after the last one.

    Mirrors hw/pci/pcie.c: pcie_add_capability (header = id | version << 16 | next << 20).
    """
    tr = cs.tracer
    with tr.call("pcie_add_capability", "hw/pci/pcie.c",
                 f"Add the {name} extended capability at 0x{offset:03x} (PCIe extended "
                 f"space starts at 0x100; extended caps are chained in the order added).",
                 cap_id=cap_id, cap_offset=offset, cap_size=size, cap_name=name):
        if offset != regs.PCI_CONFIG_SPACE_SIZE:
            prev = regs.PCI_CONFIG_SPACE_SIZE
            while True:
                header = cs.get(prev, 4)
                nxt = header >> 20
                if not nxt:
                    break
                prev = nxt
            cs.set(prev, 4, (cs.get(prev, 4) & 0x000FFFFF) | (offset << 20))
        cs.set(offset, 4, cap_id | (version << 16))
        cs.fill("wmask", offset, size, 0)
        cs.fill("w1cmask", offset, size, 0)
        cs.fill("cmask", offset, size, 0xFF)


@dataclass(frozen=True)
class Capability:
    """One node of a capability list as found in the bytes."""

    offset: int
    id: int
    next: int
    fields: tuple[tuple[str, int], ...] = ()
    length: int = 2

    @property
    def name(self) -> str:
        base = regs.CAP_NAMES.get(self.id, f"cap 0x{self.id:02x}")
        if self.id == regs.CapID.VNDR and "cfg_type" in dict(self.fields):
            cfg = dict(self.fields)["cfg_type"]
            return f"virtio {regs.VIRTIO_CFG_NAMES.get(cfg, f'cfg_type {cfg}')}"
        return base

    def get(self, key: str, default: int | None = None) -> int | None:
        return dict(self.fields).get(key, default)

    def as_dict(self) -> dict[str, int]:
        """The oracle's decoding: offset, id, next, then the decoded fields."""
        return {"offset": self.offset, "id": self.id, "next": self.next, **dict(self.fields)}


def _decode_fields(cfg: bytes, off: int, cap_id: int) -> tuple[tuple[tuple[str, int], ...], int]:
    """Decode a capability body; returns the fields and the structure's length."""
    def has(n: int) -> bool:
        return off + n <= len(cfg)

    if cap_id == regs.CapID.MSIX and has(12):
        ctrl = get_le(cfg, off + 2, 2)
        table = get_le(cfg, off + 4, 4)
        pba = get_le(cfg, off + 8, 4)
        return ((("table_size", (ctrl & regs.PCI_MSIX_FLAGS_QSIZE) + 1),
                 ("table_bir", table & 7), ("table_offset", table & ~7),
                 ("pba_bir", pba & 7), ("pba_offset", pba & ~7)), 12)
    if cap_id == regs.CapID.VNDR and has(3):
        cap_len = cfg[off + 2]
        if cap_len >= 16 and has(16):
            f = [("cap_len", cap_len), ("cfg_type", cfg[off + 3]), ("bar", cfg[off + 4]),
                 ("id_field", cfg[off + 5]), ("cap_offset", get_le(cfg, off + 8, 4)),
                 ("length", get_le(cfg, off + 12, 4))]
            if cfg[off + 3] == regs.VirtioCfgType.NOTIFY_CFG and cap_len >= 20 and has(20):
                f.append(("notify_off_multiplier", get_le(cfg, off + 16, 4)))
            return tuple(f), cap_len
        return ((("cap_len", cap_len),), max(cap_len, 3))
    if cap_id == regs.CapID.EXP:
        return (), regs.PCI_EXP_VER2_SIZEOF
    if cap_id == regs.CapID.PM:
        return (), regs.PCI_PM_SIZEOF
    return (), 2


@dataclass(frozen=True)
class CapWalk:
    """The capability list plus what was wrong with it (pointer into header, loop...)."""

    caps: tuple[Capability, ...]
    problems: tuple[str, ...] = field(default=())

    def __iter__(self):
        return iter(self.caps)

    def __len__(self) -> int:
        return len(self.caps)


def walk_capabilities(cfg: bytes | bytearray, limit: int = regs.PCI_CONFIG_SPACE_SIZE) -> CapWalk:
    """Follow the list from 0x34 the way lspci does, stopping at loops and bad pointers.

    Works on any bytes (a dump may be shorter than 256): never loops, never raises.
    """
    cfg = bytes(cfg)
    caps: list[Capability] = []
    problems: list[str] = []
    if len(cfg) <= regs.PCI_CAPABILITY_LIST:
        return CapWalk((), ("dump too short to hold a capability pointer",))
    status = get_le(cfg, regs.PCI_STATUS, 2)
    ptr = cfg[regs.PCI_CAPABILITY_LIST]
    if not status & regs.PCI_STATUS_CAP_LIST:
        if ptr:
            problems.append(f"capability pointer 0x{ptr:02x} set but STATUS.CAP_LIST is clear")
        return CapWalk((), tuple(problems))
    seen: set[int] = set()
    while ptr:
        if ptr < regs.PCI_CONFIG_HEADER_SIZE:
            problems.append(f"capability pointer 0x{ptr:02x} points into the header")
            break
        if ptr & 3:
            problems.append(f"capability pointer 0x{ptr:02x} is not dword-aligned")
        if ptr in seen:
            problems.append(f"capability list loops back to 0x{ptr:02x}")
            break
        if ptr + 2 > min(len(cfg), limit):
            problems.append(f"capability at 0x{ptr:02x} lies beyond the {len(cfg)} bytes available")
            break
        seen.add(ptr)
        cap_id, nxt = cfg[ptr], cfg[ptr + 1]
        fields, length = _decode_fields(cfg, ptr, cap_id)
        caps.append(Capability(ptr, cap_id, nxt, fields, length))
        if len(caps) > 48:  # more nodes than fit in 192 bytes: corrupt
            problems.append("capability list too long")
            break
        ptr = nxt
    return CapWalk(tuple(caps), tuple(problems))


@dataclass(frozen=True)
class ExtCapability:
    offset: int
    id: int
    version: int
    next: int

    def as_dict(self) -> dict[str, int]:
        return {"offset": self.offset, "id": self.id, "version": self.version, "next": self.next}


def walk_ext_capabilities(cfg: bytes | bytearray) -> tuple[ExtCapability, ...]:
    """Follow PCIe extended capabilities from 0x100 (lspci's rules; stops on loops)."""
    out: list[ExtCapability] = []
    ptr, seen = regs.PCI_CONFIG_SPACE_SIZE, set()
    while regs.PCI_CONFIG_SPACE_SIZE <= ptr and ptr + 4 <= len(cfg) and ptr not in seen:
        seen.add(ptr)
        header = get_le(cfg, ptr, 4)
        if header in (0, 0xFFFFFFFF):
            break
        out.append(ExtCapability(ptr, header & 0xFFFF, (header >> 16) & 0xF, header >> 20))
        ptr = header >> 20
    return tuple(out)
