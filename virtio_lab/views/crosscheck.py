"""HTML for a cross-check: emulated and real bytes side by side, differences highlighted.

    >>> from virtio_lab.views.crosscheck import crosscheck_html, CrossCheckView
    >>> crosscheck_html(stored_case)                       # doctest: +SKIP  (no QEMU needed)
    >>> CrossCheckView(virtio_lab.live.crosscheck.crosscheck("virtio-net-pci"))   # doctest: +SKIP

``source`` is a :class:`virtio_lab.live.crosscheck.Result` (a live run against QEMU), a
:class:`virtio_lab.live.crosscheck.GuestResult` (a real Linux guest against
``virtio_lab.probe``) or a real-QEMU case dict in the oracle schema
(``tests/data/qemu-7.2*/*.json``); with a dict and no ``emulated`` the emulation is
run for the case's spec and machine.
Pure function of its inputs; standard library only; every differing byte is
tinted *and* outlined, bold and underlined, so the signal does not rely on colour.
"""

from __future__ import annotations

from typing import Any

from ..errors import VirtioLabError
from ._common import esc, style_tag

__all__ = ["CrossCheckView", "crosscheck_html"]

_CSS = """<style>
.vl-xc td.vl-xd{background:rgba(220,60,60,.30);outline:2px solid #d33;outline-offset:-2px;font-weight:700;text-decoration:underline}
.vl-xc .vl-xv-ok{border-left:4px solid rgba(46,160,67,.8);padding:2px 8px;margin:3px 0}
.vl-xc .vl-xv-bad{border-left:4px solid #d33;padding:2px 8px;margin:3px 0}
.vl-xc th.vl-side{font-weight:600;opacity:1}
</style>"""


#: Column names: (emulated side, real side, what "real" is).
_QEMU_SIDES = ("emulated", "real QEMU", "real QEMU")
_GUEST_SIDES = ("virtio_lab.probe", "real guest", "a real Linux 6.1 guest")


def _guest_fields_table(real: dict, emu: dict) -> str:
    from ..live.guest import COMPARED_FIELDS

    def show(d: dict, k: str) -> str:
        v = d.get(k, "—")
        if k == "bars" and isinstance(v, list):
            return ", ".join(f"BAR{b['index']} {b['address']:#x}" for b in v) or "none"
        if k in ("command", "status") and isinstance(v, int):
            return f"{v:#06x}" if k == "command" else f"{v:#04x}"
        if k == "rom_address" and isinstance(v, int):
            return f"{v:#x}"
        return str(v)
    return _side_by_side("What the guest left", _GUEST_SIDES,
                         [(k, show(emu, k), show(real, k)) for k in COMPARED_FIELDS if k != "config"])


def _side_by_side(title: str, sides, rows) -> str:
    """A field table, emulated | real, with the rows that differ marked."""
    out = [f"<h4>{esc(title)}</h4><table class='vl-table'><tr><th>field</th>"
           f"<th>{esc(sides[0])}</th><th>{esc(sides[1])}</th></tr>"]
    for name, a, b in rows:
        cls = "mono vl-xd" if a != b else "mono"
        out.append(f"<tr><td>{esc(name)}</td><td class='{cls}'>{esc(str(a))}</td>"
                   f"<td class='{cls}'>{esc(str(b))}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _split(source: Any, emulated: dict | None):
    if hasattr(source, "guest") and hasattr(source, "emulated"):     # crosscheck.GuestResult
        real = dict(source.guest, device=source.spec, machine=source.machine,
                    root_port=source.root_port)
        return real, source.emulated, list(source.diffs)
    if hasattr(source, "real") and hasattr(source, "emulated"):      # crosscheck.Result
        return source.real, source.emulated, list(getattr(source, "diffs", []) or [])
    if not isinstance(source, dict) or "device" not in source:
        what = "a dict without 'device'" if isinstance(source, dict) else type(source).__name__
        raise VirtioLabError("crosscheck_html shows a virtio_lab.crosscheck Result or GuestResult, or "
                             f"a real-QEMU case dict (tests/data/qemu-7.2*/*.json), not {what}")
    real = source
    if emulated is None:
        from ..text.dump import dump
        emulated = dump(real["device"], real.get("machine", "pc"), bool(real.get("root_port")))
    from ..live.crosscheck import describe
    return real, emulated, describe(real, emulated)


def _names(config: bytes):
    try:
        from ..pci.layout import field_map
        return field_map(config)
    except Exception:
        return None


def _hex_rows(title: str, emu: bytes, real: bytes, *, base: int = 0, names=None,
              only_interesting: bool = False, sides=_QEMU_SIDES) -> str:
    """Two 16-byte grids per row (emulated | real) with differing bytes marked."""
    n = max(len(emu), len(real))
    head = "".join(f"<th>{i:x}</th>" for i in range(16))
    out = [f"<h4>{esc(title)}</h4><table class='vl-grid'><tr><th class='vl-row'></th>"
           f"<th class='vl-side' colspan='16'>{esc(sides[0])}</th><th class='vl-gap'></th>"
           f"<th class='vl-side' colspan='16'>{esc(sides[1])}</th></tr>"
           f"<tr><th class='vl-row'></th>{head}<th class='vl-gap'></th>{head}</tr>"]
    skipped = 0

    def flush_skipped() -> None:   # one line for a stretch of rows left out
        nonlocal skipped
        if skipped:
            out.append(f"<tr><td class='vl-skip' colspan='34'>… {skipped} row"
                       f"{'s' if skipped > 1 else ''} of 00/ff, identical</td></tr>")
            skipped = 0
    for row in range(0, n, 16):
        e = emu[row:row + 16]
        r = real[row:row + 16]
        differs = e != r
        if only_interesting and not differs and all(b in (0x00, 0xFF) for b in r):
            skipped += 1
            continue
        flush_skipped()
        cells = []
        for side in (e, r):
            other = r if side is e else e
            for i in range(16):
                off = base + row + i
                b = side[i] if i < len(side) else None
                o = other[i] if i < len(other) else None
                lab = names[off] if names and off < len(names) else None
                tip = f"0x{off:03x}" + (f" {lab.structure}.{lab.field}" if lab else "")
                if b is None:
                    cells.append(f"<td class='vl-fr' title='{esc(tip)}'>··</td>")
                    continue
                cls = " class='vl-xd'" if b != o else ""
                if b != o and o is not None:
                    tip += f": emulated {e[i]:02x}, real {r[i]:02x}"
                cells.append(f"<td{cls} title='{esc(tip)}'>{b:02x}</td>")
            if side is e:
                cells.append("<td class='vl-gap'></td>")
        out.append(f"<tr><th class='vl-row'>{base + row:03x}</th>{''.join(cells)}</tr>")
    flush_skipped()
    out.append("</table>")
    return "".join(out)


def _fields_table(real: dict, emu: dict) -> str:
    def bars(d):
        return ", ".join(f"BAR{b['index']} {b['kind']} {b['size']:#x}" for b in d.get("bars", [])) or "none"

    def cc(d, key):
        c = d.get("common_cfg") or {}
        if key == "queues":
            return " ".join(str(q["size"]) for q in c.get("queues", [])) or "—"
        v = c.get(key)
        return " ".join(v) if isinstance(v, list) else ("—" if v is None else str(v))
    rows = [("BARs", bars(emu), bars(real)),
            ("ROM size", str(emu.get("rom_size")), str(real.get("rom_size"))),
            ("device features", cc(emu, "device_feature"), cc(real, "device_feature")),
            ("queues", cc(emu, "num_queues"), cc(real, "num_queues")),
            ("queue sizes", cc(emu, "queues"), cc(real, "queues")),
            ("legacy host features", (emu.get("legacy") or {}).get("host_features", "—"),
             (real.get("legacy") or {}).get("host_features", "—"))]
    return _side_by_side("Other observed fields", _QEMU_SIDES, rows)


def crosscheck_html(source: Any, emulated: dict | None = None, *, css: bool = True,
                    all_rows: bool = False) -> str:
    """Emulated vs real: verdict, named differences, config / extended config / write mask
    grids side by side, and the other observed fields.  Differing bytes are highlighted;
    hovering a byte names its field.  ``all_rows`` also shows extended-space rows that are
    00/ff on both sides.  Any other ``source`` raises
    :class:`~virtio_lab.errors.VirtioLabError` in one line saying what to pass."""
    from ..live.crosscheck import machine_label
    real, emu, diffs = _split(source, emulated)
    guest = hasattr(source, "guest")
    sides = _GUEST_SIDES if guest else _QEMU_SIDES
    spec = real.get("device", "?")
    where = machine_label(real.get("machine", "?"), bool(real.get("root_port")))
    out = [style_tag() if css else "", _CSS if css else "", '<div class="vl vl-xc">',
           f"<div><b>{esc(where)}</b> <code>{esc(spec)}</code></div>"]
    if diffs:
        out.append(f"<div class='vl-xv-bad'><b>{len(diffs)} difference{'s' if len(diffs) > 1 else ''}"
                   f"</b> ({esc(sides[0])} vs {esc(sides[2])})<ul>"
                   + "".join(f"<li class='mono'>{esc(d)}</li>" for d in diffs) + "</ul></div>")
    else:
        out.append(f"<div class='vl-xv-ok'><b>identical</b>: {esc(sides[0])} matches {esc(sides[2])} "
                   "byte for byte</div>")
    if "error" in real or "error" in emu:
        out.append("<table class='vl-table'><tr><th></th><th>refusal</th></tr>"
                   f"<tr><td>emulated</td><td class='mono'>{esc(str(emu.get('error', '(plugs the device)')))}</td></tr>"
                   f"<tr><td>real QEMU</td><td class='mono'>{esc(str(real.get('error', '(plugs the device)')))}</td></tr>"
                   "</table></div>")
        return "".join(out)
    rc, ec = bytes.fromhex(real["config"]), bytes.fromhex(emu.get("config", ""))
    if guest:  # the config space as the drivers left it, then the guest's other fields
        out.append(_hex_rows("Config space after the drivers (0x000-0x0ff)", ec[:256], rc[:256],
                             names=_names(rc), sides=sides))
        if len(rc) > 256 and (rc[256:] != ec[256:] or all_rows
                              or any(b not in (0x00, 0xFF) for b in rc[256:])):
            out.append(_hex_rows("Extended config space (0x100-0xfff)", ec[256:], rc[256:],
                                 base=0x100, names=_names(rc), only_interesting=not all_rows,
                                 sides=sides))
        out.append(_guest_fields_table(real, emu))
        out.append("</div>")
        return "".join(out)
    out.append(_hex_rows("Config space (0x000-0x0ff)", ec, rc, names=_names(rc)))
    if real.get("config_ext") and emu.get("config_ext"):
        rx, ex = bytes.fromhex(real["config_ext"]), bytes.fromhex(emu["config_ext"])
        if rx[256:] != b"\xff" * (len(rx) - 256) or rx != ex or all_rows:
            out.append(_hex_rows("Extended config space (0x100-0xfff)", ex[256:], rx[256:], base=0x100,
                                 names=_names(rx), only_interesting=not all_rows))
    if real.get("wmask") and emu.get("wmask") and real["wmask"] != emu["wmask"]:
        out.append(_hex_rows("Write mask (observed)", bytes.fromhex(emu["wmask"]),
                             bytes.fromhex(real["wmask"]), names=_names(rc)))
    out.append(_fields_table(real, emu))
    out.append("</div>")
    return "".join(out)


class CrossCheckView:
    """Notebook object: ``CrossCheckView(result_or_case)`` renders :func:`crosscheck_html`."""

    def __init__(self, source: Any, emulated: dict | None = None, **kw: Any) -> None:
        self.source, self.emulated, self.kw = source, emulated, kw

    def _repr_html_(self) -> str:
        return crosscheck_html(self.source, self.emulated, **self.kw)
