"""The config-space hex grid: 16 bytes a row, coloured by structure, the step's writes outlined.

Wireshark's byte pane for PCI: hover any byte for its offset, field, width, value and
meaning; the bytes the current step wrote are outlined, bold and underlined; a
selected capability or field is hatched. 256 bytes, plus the PCI Express extended
space (to 4 KiB) when the device has one, with runs of untouched zero rows folded.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterable

from ..errors import VirtioLabError, shown
from ..pci.capability import walk_capabilities, walk_ext_capabilities
from ..course.glossary import tip as glossary_tip
from ..pci.layout import Label
from ._common import PALETTE, esc, labels_for, resolve, structure_family, style_tag

__all__ = ["hex_grid_html", "HexGrid", "RADIXES", "selection_offsets"]

RADIXES = ("hex", "dec", "bin")
_FMT = {"hex": "{:02x}", "dec": "{:d}", "bin": "{:08b}"}
_TEXT = {r: tuple(f.format(b) for b in range(256)) for r, f in _FMT.items()}  # cell text per byte value
_HEX = _TEXT["hex"]
_WHERE2 = tuple(f"0x{o:02x}" for o in range(256))
_WHERE3 = tuple(f"0x{o:03x}" for o in range(4096))


def _field_value(config: bytes, start: int, width: int) -> int:
    return int.from_bytes(config[start:start + width], "little")


def selection_offsets(config: bytes, select: Any) -> frozenset[int]:
    """The byte offsets a selection names.

    ``select`` is a capability's offset (int: the whole capability, or the field
    holding that byte when no capability starts there), a field name (``"command"``,
    ``"cap_next"``: every byte of every field so named), a structure name or its
    prefix (``"MSI-X"``, ``"virtio notify"``), or an iterable of offsets.
    """
    if select is None or select == "":
        return frozenset()
    if isinstance(select, (set, frozenset, list, tuple, range)):
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in select):
            raise VirtioLabError(f"select offsets are integers, not {shown(select)}")
        return frozenset(select)
    labels = labels_for(bytes(config))
    if isinstance(select, int):
        if any(c.offset == select for c in walk_capabilities(config).caps):
            struct = labels[select].structure
            return frozenset(i for i, lab in enumerate(labels) if lab.structure == struct)
        if 0 <= select < len(labels):
            lab = labels[select]
            return frozenset(range(lab.start, lab.start + lab.width))
        return frozenset()
    if isinstance(select, str):
        s = select.strip().lower()
        hits = [i for i, lab in enumerate(labels)
                if lab.kind != "free" and (lab.field.lower() == s or lab.structure.lower() == s
                                           or lab.structure.lower().startswith(s + " "))]
        if not hits:  # forgiving: "notify" names "virtio notify", "msix" names "MSI-X"
            key = re.sub(r"[^a-z0-9]", "", s)
            hits = [i for i, lab in enumerate(labels) if lab.kind != "free" and len(key) >= 3
                    and key in re.sub(r"[^a-z0-9]", "", lab.structure.lower())]
        return frozenset(hits)
    try:
        return frozenset(int(x) for x in select)
    except (TypeError, ValueError):
        raise VirtioLabError(f"select names a capability offset, a field or structure name, or "
                             f"offsets, not {shown(select)}") from None


def _field_tip(config: bytes, lab) -> str:
    width = lab.width
    val = _field_value(config, lab.start, width)
    lines = [f"{lab.structure} · {lab.field}",
             f"field 0x{lab.start:02x}, width {width} · value 0x{val:0{2 * width}x} ({val})"]
    if lab.meaning:
        lines.append(lab.meaning)
    term = glossary_tip(lab.structure, lab.field)
    if term:
        lines.append(term)
    return "\n".join(lines)


def _cell(config: bytes, wmask: bytes, off: int, lab, fmt: tuple[str, ...], wide: bool,
          per_field: dict) -> tuple[str, str, str]:
    """(base classes, the cell's attributes and text after the class, structure family)."""
    key = (lab.start, lab.field, lab.structure)
    pf = per_field.get(key)
    if pf is None:
        fam = structure_family(lab)
        if fam == "free":
            ft = f"{lab.structure} · {lab.field}\n{lab.meaning}"
        else:
            ft = _field_tip(config, lab)
        style = f' style="background-color:{PALETTE[fam]}"' if fam != "free" else ""
        pf = per_field[key] = (fam, esc(ft, quote=True), style)
    fam, ft, style = pf
    where = _WHERE3[off] if wide else _WHERE2[off]
    pos = f" (byte {off - lab.start} of {lab.width})" if lab.width > 1 else ""
    wm = "&#10;guest-writable bits (wmask) 0x" + _HEX[wmask[off]] if off < len(wmask) else ""
    if fam == "free":
        base = "vl-fr"
    elif lab.start == off and (off == 0 or lab.field in ("cap_vndr", "cap_id", "header")):
        base = "vl-st"
    else:
        base = ""
    v = config[off]
    return (base, f'{style} data-off="{off}" title="{where}{pos} = 0x{_HEX[v]}&#10;{ft}{wm}">'
            f'{fmt[v]}</td>', fam)


@lru_cache(maxsize=512)
def _cells(config: bytes, wmask: bytes, radix: str) -> tuple[tuple[str, str, str], ...]:
    """The 256-byte space's cells, memoised: stepping back and forth re-renders the same bytes."""
    labels = labels_for(config)
    tips: dict = {}
    return tuple(_cell(config, wmask, off, lab, _TEXT[radix], False, tips) for off, lab in enumerate(labels))


def _ext_label(ext_caps, off: int) -> Label:
    for e in ext_caps:
        if e.offset <= off < e.offset + 4:
            name = {1: "AER", 0xF: "ATS"}.get(e.id, f"ext cap 0x{e.id:04x}") + f" @0x{e.offset:03x}"
            return Label(name, "header", e.offset, 4, "id (bits 0-15), version (16-19), next (20-31)", "ext")
    return Label("extended space", "(unused)", off, 1, "not part of any structure", "free")


def _legend(families: Iterable[str]) -> str:
    names = {"hdr-id": "header: identity", "hdr-ctl": "header: control/status/pointers",
             "hdr-bar": "header: BARs, ROM"}
    items = [f'<span><span class="vl-sw" style="background-color:{PALETTE[f]}"></span>{esc(names.get(f, f))}</span>'
             for f in families if f != "free"]
    items.append('<span><span class="vl-sw vl-w"></span><b><u>written this step</u></b></span>')
    items.append('<span><span class="vl-sw vl-sel"></span>selected</span>')
    items.append('<span><span class="vl-sw" style="border-left:3px solid rgba(128,128,128,.85)"></span>'
                 'structure starts</span>')
    return f'<div class="vl-legend">{"".join(items)}</div>'


def hex_grid_html(source: Any, step: int | None = None, *, radix: str = "hex", select: Any = None,
                  written: Iterable[int] | None = None, extended: bool | None = None,
                  legend: bool = True, css: bool = True) -> str:
    """Render config space as an HTML table.

    ``source`` is a trace (then ``step`` picks the event; default the last) or a
    :class:`~virtio_lab.hw.state.PlugState`. ``written`` overrides the highlighted
    offsets (default: every config byte the step's writes touched). ``extended``
    shows 0x100..0xfff (default: when the device has a 4 KiB config space).
    """
    if radix not in RADIXES:
        raise VirtioLabError(f"radix must be one of {', '.join(RADIXES)}, not {shown(radix)}")
    state, ev, _ = resolve(source, step)
    if written is None:
        written = ev.touched("config") if ev is not None else frozenset()
    written = frozenset(written)
    if extended is None:
        extended = state.facts.config_size > 256 and len(state.config) > 256
    size = 4096 if extended and len(state.config) >= 4096 else 256
    config = bytes(state.config[:size])
    sel = selection_offsets(config[:256], select)
    base = _cells(config[:256], bytes(state.wmask[:256]), radix)
    ext_caps = walk_ext_capabilities(config) if size > 256 else ()
    families: dict[str, None] = {}
    out = [style_tag() if css else "", '<div class="vl vl-hex">']
    head = "".join(f"<th>{c:x}</th>" + ('<th class="vl-gap"></th>' if c == 7 else "") for c in range(16))
    out.append(f'<table class="vl-grid"><tr><th></th>{head}</tr>')
    wide = size > 256
    ext_rows = {0x100} | {e.offset & ~15 for e in ext_caps} | {o & ~15 for o in written | sel}
    tips: dict = {}

    def plain(r: int) -> bool:
        return r not in ext_rows and not any(config[r:r + 16])

    row = 0
    while row < size:
        if row >= 256 and plain(row):  # fold runs of zero rows that belong to no structure
            run = row
            while run < size and plain(run):
                run += 16
            if run - row >= 32:
                out.append(f'<tr><th class="vl-row">{row:03x}</th><td class="vl-skip" colspan="17">'
                           f'0x{row:03x}–0x{run - 1:03x}: {(run - row) // 16} rows of zero bytes, '
                           f'not part of any structure</td></tr>')
                row = run
                continue
        cells = []
        for off in range(row, row + 16):
            if off < 256:
                b, rest, fam = base[off]
            else:
                b, rest, fam = _cell(config, state.wmask, off, _ext_label(ext_caps, off),
                                     _TEXT[radix], True, tips)
            families[fam] = None
            cls = b
            if off in written:
                cls += " vl-w"
            if off in sel:
                cls += " vl-sel"
            cells.append(f'<td class="{cls.strip()}"{rest}' if cls else f"<td{rest}")
            if off % 16 == 7:
                cells.append('<td class="vl-gap"></td>')
        rl = f"{row:03x}" if wide else f"{row:02x}"
        out.append(f'<tr><th class="vl-row">{rl}</th>{"".join(cells)}</tr>')
        row += 16
    out.append("</table>")
    if legend:
        out.append(_legend(families))
    out.append("</div>")
    return "".join(out)


class HexGrid:
    """``HexGrid(trace, step)``: the hex grid as a notebook object (``_repr_html_``)."""

    def __init__(self, source: Any, step: int | None = None, *, radix: str = "hex",
                 select: Any = None, extended: bool | None = None):
        self.source, self.step, self.radix, self.select, self.extended = source, step, radix, select, extended

    def _repr_html_(self) -> str:
        return hex_grid_html(self.source, self.step, radix=self.radix, select=self.select,
                             extended=self.extended)

    def __str__(self) -> str:
        state, _, _ = resolve(self.source, self.step)
        cfg = state.config[:256]
        return "\n".join(f"{r:02x}: " + " ".join(f"{b:02x}" for b in cfg[r:r + 16]) for r in range(0, 256, 16))
