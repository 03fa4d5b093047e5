"""Frozen records of a device's non-byte state: BARs, the regions inside them, the bus tree.

The byte arrays live in the trace as writes; these small records ride along on
each event (shared until they change), so a snapshot at any step is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .capability import CapWalk, ExtCapability, walk_capabilities, walk_ext_capabilities

__all__ = ["Region", "Bar", "TreeNode", "Facts", "PlugState"]


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


@dataclass(frozen=True)
class TreeNode:
    """One object in the QOM/qdev tree: pci bus → proxy → virtio-bus → virtio device."""

    path: str  # e.g. "pci.0/virtio-net-pci/virtio-bus/virtio-net-device"
    kind: str  # bus | device
    type: str
    note: str = ""


@dataclass(frozen=True)
class Facts:
    """Everything but the config bytes, as of one event."""

    config_size: int = 256
    bars: tuple[Bar, ...] = ()
    tree: tuple[TreeNode, ...] = ()
    host_features: int | None = None
    modern: bool | None = None
    legacy: bool | None = None
    nvectors: int | None = None
    express: bool = False
    msix: tuple[int, int, int] | None = None  # (entries, table offset, pba offset)
    extra: tuple[tuple[str, Any], ...] = field(default=())

    def evolve(self, **changes: Any) -> "Facts":
        """``dataclasses.replace`` for this record, without re-running __init__ (a plug calls
        it a dozen times)."""
        unknown = changes.keys() - _FACT_FIELDS
        if unknown:
            raise TypeError(f"Facts has no field {sorted(unknown)[0]!r}")
        new = object.__new__(Facts)
        object.__setattr__(new, "__dict__", {**self.__dict__, **changes})
        return new

    def with_bar(self, bar: Bar) -> "Facts":
        bars = tuple(b for b in self.bars if b.index != bar.index) + (bar,)
        return self.evolve(bars=tuple(sorted(bars, key=lambda b: b.index)))

    def bar(self, index: int) -> Bar | None:
        return next((b for b in self.bars if b.index == index), None)


_FACT_FIELDS = frozenset(f.name for f in fields(Facts))


@dataclass(frozen=True)
class PlugState:
    """The device after one event: QEMU's five arrays plus the non-byte facts."""

    config: bytes
    wmask: bytes
    w1cmask: bytes
    cmask: bytes
    used: bytes
    facts: Facts
    step: int = -1

    @property
    def caps(self) -> CapWalk:
        return walk_capabilities(self.config)

    @property
    def ext_caps(self) -> tuple[ExtCapability, ...]:
        return walk_ext_capabilities(self.config) if len(self.config) > 256 else ()

    @property
    def bars(self) -> tuple[Bar, ...]:
        return self.facts.bars

    def array(self, space: str) -> bytes:
        return getattr(self, space)
