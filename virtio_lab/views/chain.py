"""The capability chain: the linked list from 0x34, node by node, next pointers as arrows.

The newest node (the last one ``pci_add_capability`` placed: QEMU prepends, so it is
the head) carries a NEW badge and a thick border; nodes the current step wrote are
outlined; a broken list (pointer into the header, misaligned, looping, out of
range) is drawn as a dashed red break with the reason. PCIe extended capabilities
(from 0x100) follow when the device has a 4 KiB config space.
"""

from __future__ import annotations

from typing import Any

from ..course.glossary import tip as glossary_tip
from ..pci import regs
from ..pci.capability import walk_capabilities, walk_ext_capabilities
from ._common import PALETTE, esc, newest_cap, resolve, style_tag

__all__ = ["chain_html", "CapChain"]

_EXT_NAMES = {0x0001: "AER", 0x000F: "ATS", 0x0003: "Device Serial Number", 0x0010: "SR-IOV"}
_CFG_TYPE = {1: "common", 2: "notify", 3: "isr", 4: "device", 5: "pci-cfg", 8: "shared memory"}


def _tint(name: str) -> str:
    for k in ("virtio common", "virtio notify", "virtio isr", "virtio device", "virtio pci-cfg",
              "MSI-X", "PCI Express", "Power Management"):
        if name.startswith(k):
            return PALETTE[k]
    return PALETTE["cap"]


def _fields_rows(cap) -> str:
    f = dict(cap.fields)
    rows: list[tuple[str, str]] = []
    if cap.id == regs.CapID.VNDR and "cfg_type" in f:
        ct = f["cfg_type"]
        rows.append(("cfg_type", f"{ct} ({_CFG_TYPE.get(ct, '?')})"))
        if ct == regs.VirtioCfgType.PCI_CFG:
            rows.append(("window", f"bar {f['bar']}, offset 0x{f['cap_offset']:x}, length {f['length']} "
                                   "(a driver fills these in)"))
        else:
            rows.append(("in BAR", f"{f['bar']} at 0x{f['cap_offset']:x}, length 0x{f['length']:x}"))
        if "notify_off_multiplier" in f:
            rows.append(("notify_off_multiplier", f"{f['notify_off_multiplier']} "
                         f"(queue n at 0x{f['cap_offset']:x} + n×{f['notify_off_multiplier']})"))
        rows.append(("cap_len", str(f["cap_len"])))
    elif cap.id == regs.CapID.MSIX:
        rows.append(("table", f"{f['table_size']} {'entry' if f['table_size'] == 1 else 'entries'} in BAR{f['table_bir']} at 0x{f['table_offset']:x}"))
        rows.append(("PBA", f"BAR{f['pba_bir']} at 0x{f['pba_offset']:x}"))
    for k, v in f.items():
        if cap.id == regs.CapID.VNDR and "cfg_type" not in f:
            rows.append((k, str(v)))
    return "".join(f"<tr><td>{esc(k)}</td><td class='mono'>{esc(v)}</td></tr>" for k, v in rows)


def chain_html(source: Any, step: int | None = None, *, select: Any = None, css: bool = True) -> str:
    """Render the capability list of a trace at ``step`` (default: last) or of a state.

    Every node carries ``data-off``/``data-id`` attributes (its offset and capability id).
    ``select`` (a capability offset) marks that node with a dashed border.
    """
    state, ev, trace = resolve(source, step)
    config = bytes(state.config)
    walk = walk_capabilities(config[:256])
    written = ev.touched("config") if ev is not None else frozenset()
    newest = newest_cap(trace, ev.index) if ev is not None else (walk.caps[0].offset if walk.caps else None)
    out = [style_tag() if css else "", '<div class="vl vl-chain">']
    ptr = config[regs.PCI_CAPABILITY_LIST]
    status_cap = bool(config[regs.PCI_STATUS] & regs.PCI_STATUS_CAP_LIST)
    w_ptr = regs.PCI_CAPABILITY_LIST in written
    out.append(f'<div class="vl-node{" vl-w" if w_ptr else ""}" data-ptr="1" '
               f'title="{esc(glossary_tip("header", "capabilities_ptr"), quote=True)}"><b>0x34 capabilities pointer</b>'
               f' = <code>0x{ptr:02x}</code><br><span class="vl-kind">STATUS.CAP_LIST '
               f'{"set" if status_cap else "clear"}</span></div>')
    if not walk.caps and not walk.problems:
        out.append('<div class="vl-arrow">(no capabilities yet)</div>')
    for cap in walk.caps:
        out.append(f'<div class="vl-arrow">↓ 0x{cap.offset:02x}</div>')
        cls = ["vl-node"]
        if cap.offset == newest:
            cls.append("vl-new")
        if any(o in written for o in range(cap.offset, cap.offset + max(cap.length, 2))):
            cls.append("vl-w")
        if select is not None and select == cap.offset:
            cls.append("vl-sel")
        badge = '<span class="vl-badge">NEW</span>' if cap.offset == newest else ""
        out.append(f'<div class="{" ".join(cls)}" style="background-color:{_tint(cap.name)}" '
                   f'data-off="{cap.offset}" data-id="{cap.id}" '
                   f'title="{esc(cap.name + chr(10) + glossary_tip(cap.name + " cap", "cap_id"), quote=True)}">'
                   f'<b>0x{cap.offset:02x} {esc(cap.name)}</b> <span class="vl-kind">id 0x{cap.id:02x}'
                   f'</span>{badge}<table>{_fields_rows(cap)}</table>'
                   f'<span class="vl-kind">next = 0x{cap.next:02x}</span></div>')
    if walk.problems:
        for p in walk.problems:
            out.append(f'<div class="vl-broken" data-broken="1">✕ broken list: {esc(p)}</div>')
    elif walk.caps:
        out.append('<div class="vl-arrow">↓ 0x00: end of list</div>')
    if state.facts.config_size > 256 and len(config) > 256:
        ext = walk_ext_capabilities(config)
        out.append('<h4>PCI Express extended capabilities (from 0x100)</h4>')
        if not ext:
            out.append('<div class="vl-arrow">(none: the header at 0x100 is zero)</div>')
        for e in ext:
            w = any(o in written for o in range(e.offset, e.offset + 4))
            out.append(f'<div class="vl-node{" vl-w" if w else ""}" style="background-color:{PALETTE["ext"]}" '
                       f'data-ext-off="{e.offset}" data-ext-id="{e.id}"><b>0x{e.offset:03x} '
                       f'{esc(_EXT_NAMES.get(e.id, f"ext cap 0x{e.id:04x}"))}</b> '
                       f'<span class="vl-kind">id 0x{e.id:04x} v{e.version}</span><br>'
                       f'<span class="vl-kind">next = 0x{e.next:03x}</span></div>')
            out.append(f'<div class="vl-arrow">↓ {"0x%03x" % e.next if e.next else "end of list"}</div>')
    out.append("</div>")
    return "".join(out)


class CapChain:
    """``CapChain(trace, step)``: the capability chain as a notebook object."""

    def __init__(self, source: Any, step: int | None = None, *, select: Any = None):
        self.source, self.step, self.select = source, step, select

    def _repr_html_(self) -> str:
        return chain_html(self.source, self.step, select=self.select)

    def __str__(self) -> str:
        state, _, _ = resolve(self.source, self.step)
        walk = state.caps
        lines = [f"0x{c.offset:02x} {c.name} -> 0x{c.next:02x}" for c in walk.caps]
        return "\n".join(lines + [f"broken: {p}" for p in walk.problems]) or "(no capabilities)"
