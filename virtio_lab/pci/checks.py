"""Warnings on suspicious device state, the way CPUlator and Wireshark's expert info do it.

:func:`check_state` looks at one :class:`~virtio_lab.hw.state.PlugState` (or any config
bytes plus BAR records) and returns :class:`Finding` records: a capability pointer
into the header, a misaligned or looping list, a virtio capability whose window
lies outside its BAR, BARs that overlap, a BAR size that is not a power of two.
QEMU's own plug never produces them; a learner editing bytes, or a broken dump, does.
Standard library only: the views show the findings, the core does not need them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from . import regs
from .bits import get_le
from .capability import walk_capabilities

__all__ = ["Finding", "check_state", "check_config", "check_bars"]


@dataclass(frozen=True)
class Finding:
    """One suspicious thing: a short code, a sentence, and the config offsets involved."""

    code: str  # cap-into-header | cap-misaligned | cap-loop | cap-beyond | cap-list | bar-pow2 | ...
    message: str
    offsets: tuple[int, ...] = ()

    def __str__(self) -> str:
        return self.message


def _problem_code(text: str) -> str:
    for key, code in (("into the header", "cap-into-header"), ("dword-aligned", "cap-misaligned"),
                      ("loops", "cap-loop"), ("beyond", "cap-beyond")):
        if key in text:
            return code
    return "cap-list"


def check_config(config: bytes, bars: Iterable = ()) -> list[Finding]:
    """Findings about the capability list in ``config`` (and windows against ``bars``)."""
    out: list[Finding] = []
    walk = walk_capabilities(config)
    for p in walk.problems:
        out.append(Finding(_problem_code(p), p, (regs.PCI_CAPABILITY_LIST,)))
    sizes = {b.index: b.size for b in bars}
    for cap in walk.caps:
        if cap.id != regs.CapID.VNDR or cap.get("cfg_type") in (None, regs.VirtioCfgType.PCI_CFG):
            continue
        bar, off, length = cap.get("bar"), cap.get("cap_offset") or 0, cap.get("length") or 0
        if bar is None or not sizes:
            continue
        if bar not in sizes:
            out.append(Finding("cap-no-bar", f"{cap.name} capability at 0x{cap.offset:02x} names "
                               f"BAR{bar}, which is not registered", (cap.offset + 4,)))
        elif off + length > sizes[bar]:
            out.append(Finding("cap-window", f"{cap.name} window 0x{off:x}+0x{length:x} runs past "
                               f"the end of BAR{bar} (0x{sizes[bar]:x} bytes)",
                               tuple(range(cap.offset + 8, cap.offset + 16))))
    return out


def _bar_address(config: bytes, index: int, kind: str) -> int:
    off = regs.PCI_ROM_ADDRESS if index == regs.PCI_ROM_SLOT else 0x10 + 4 * index
    if off + 4 > len(config):
        return 0
    low = get_le(config, off, 4)
    if kind == "io":
        return low & ~0x3
    if kind == "rom":
        return low & ~0x7FF
    addr = low & ~0xF
    if kind == "mem64" and off + 8 <= len(config):
        addr |= get_le(config, off + 4, 4) << 32
    return addr


def check_bars(bars: Iterable, config: bytes | None = None) -> list[Finding]:
    """Findings about BAR records: sizes, regions inside them, overlapping assigned ranges."""
    out: list[Finding] = []
    bars = list(bars)
    for b in bars:
        label = "ROM BAR" if b.index == regs.PCI_ROM_SLOT else f"BAR{b.index}"
        if b.size <= 0 or b.size & (b.size - 1):
            out.append(Finding("bar-pow2", f"{label} size {b.size} is not a power of two: "
                               f"the write-all-ones sizing probe cannot express it"))
        regions = sorted(getattr(b, "regions", ()), key=lambda r: r.offset)
        for r in regions:
            if r.offset + r.size > b.size and r.role != "rom":
                out.append(Finding("region-beyond", f"{label}: region {r.name} "
                                   f"(0x{r.offset:x}+0x{r.size:x}) runs past the BAR's 0x{b.size:x} bytes"))
        for r1, r2 in zip(regions, regions[1:]):
            if r1.offset + r1.size > r2.offset:
                out.append(Finding("region-overlap", f"{label}: regions {r1.name} and {r2.name} overlap"))
    if config is not None:  # after address assignment: ranges in one address space must not overlap
        ranges = []
        for b in bars:
            addr = _bar_address(config, b.index, b.kind)
            if addr:
                space = "io" if b.kind == "io" else "mem"
                ranges.append((space, addr, addr + b.size, b.index))
        ranges.sort()
        for (s1, a1, e1, i1), (s2, a2, e2, i2) in zip(ranges, ranges[1:]):
            if s1 == s2 and a2 < e1:
                out.append(Finding("bar-overlap", f"BAR{i1} [0x{a1:x}, 0x{e1:x}) and BAR{i2} "
                                   f"[0x{a2:x}, 0x{e2:x}) overlap in {s1} space"))
    return out


def check_state(state) -> list[Finding]:
    """Every finding for one plug state (config bytes plus its BARs)."""
    return check_config(state.config, state.facts.bars) + check_bars(state.facts.bars, state.config)
