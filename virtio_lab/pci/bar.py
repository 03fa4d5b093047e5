"""BARs: the records of a registered BAR and the regions in it, and their registration
(the type bits in config space and a write mask that encodes the size)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import regs
from .config_space import ConfigSpace

__all__ = ["Region", "Bar", "pci_register_bar", "bar_offset"]


@dataclass(frozen=True)
class Region:
    """A memory region mapped inside a BAR (a subregion of its container MR)."""

    name: str
    offset: int
    size: int
    role: str  # common | isr | device | notify | notify-pio | msix-table | msix-pba | legacy | rom


@dataclass(frozen=True)
class Bar:
    """A registered BAR (PCIIORegion): slot, kind and size, plus what lives in it."""

    index: int  # 0-5, or 6 for the ROM slot (PCI_ROM_SLOT)
    kind: str  # io | mem32 | mem64 | rom
    size: int
    prefetchable: bool
    name: str  # QEMU's memory region name
    regions: tuple[Region, ...] = ()

    @property
    def type_bits(self) -> int:
        if self.kind == "io":
            return 0x1
        return (0x4 if self.kind == "mem64" else 0) | (0x8 if self.prefetchable else 0)

    def as_dict(self) -> dict[str, Any]:
        """The oracle's BAR record."""
        d: dict[str, Any] = {"index": self.index, "kind": self.kind}
        if self.kind != "io":
            d["prefetchable"] = self.prefetchable
        d["size"] = self.size
        return d


def bar_offset(index: int) -> int:
    """Config offset of BAR ``index`` (PCI_ROM_SLOT → 0x30)."""
    return regs.PCI_ROM_ADDRESS if index == regs.PCI_ROM_SLOT else regs.PCI_BASE_ADDRESS_0 + 4 * index


def pci_register_bar(cs: ConfigSpace, bar: Bar, why: str) -> None:
    """Register a BAR: write its type bits, make the size-aligned address bits writable.

    Mirrors hw/pci/pci.c: pci_register_bar. ``wmask = ~(size - 1)`` is what makes a
    guest's all-ones write read back as the size mask; the ROM slot also gets its
    enable bit writable; a 64-bit BAR takes two slots and a 64-bit mask.
    """
    size = bar.size
    assert size & (size - 1) == 0, "BAR sizes are powers of two"
    off = bar_offset(bar.index)
    kind = {"io": "I/O", "mem32": "32-bit memory", "mem64": "64-bit memory", "rom": "expansion ROM"}[bar.kind]
    pf = ", prefetchable" if bar.prefetchable else ""
    with cs.tracer.call("pci_register_bar", "hw/pci/pci.c",
                        f"Register BAR{bar.index if bar.index < 6 else ' ROM'} as {kind}{pf}, "
                        f"{_human(size)}: {why}. The type bits go into 0x{off:02x}; the write mask "
                        f"~(size-1) lets firmware discover the size by writing all ones.",
                        bar=bar.index, size=size, kind=bar.kind, name=bar.name):
        if bar.kind == "mem64":
            cs.set(off, 4, bar.type_bits)
            cs.set(off, 8, ~(size - 1) & 0xFFFFFFFFFFFFFFFF, "wmask")
            cs.fill("cmask", off, 8, 0xFF)
        else:
            wmask = ~(size - 1) & 0xFFFFFFFF
            if bar.index == regs.PCI_ROM_SLOT:
                wmask |= regs.PCI_ROM_ADDRESS_ENABLE
            cs.set(off, 4, bar.type_bits if bar.kind != "rom" else 0)
            cs.set(off, 4, wmask, "wmask")
            cs.fill("cmask", off, 4, 0xFF)
        cs.tracer.set_facts(cs.tracer.facts.with_bar(bar))


def _human(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} bytes"
