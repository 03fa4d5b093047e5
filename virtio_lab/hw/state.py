"""The device after one step: QEMU's five byte arrays, and frozen records of the rest (the bus tree, BARs, features).

The byte arrays live in the trace as writes; these small records ride along on
each event (shared until they change), so a snapshot at any step is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..pci.bar import Bar
from ..pci.capability import (
    CapWalk,
    ExtCapability,
    walk_capabilities,
    walk_ext_capabilities,
)

__all__ = ["TreeNode", "Facts", "PlugState"]


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
