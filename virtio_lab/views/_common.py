"""Shared pieces of the HTML views: CSS, palette, escaping, resolving (trace, step) to a state.

The palette is translucent (rgba) so the same tint reads on JupyterLab's light and
dark themes, text colour is inherited, and every colour signal has a second,
colour-free one: written bytes are outlined, bold and underlined; a selection is
hatched; a new node carries a "NEW" badge and a thick border.
"""

from __future__ import annotations

import html
from functools import lru_cache
from typing import Any

from ..errors import VirtioLabError, VirtioLabTypeError, type_name
from ..hw.state import Facts, PlugState
from ..pci.layout import Label, field_map

esc = html.escape

#: one tint per structure family (background, translucent)
PALETTE = {
    "hdr-id": "rgba(128,128,128,.20)",
    "hdr-ctl": "rgba(150,110,210,.26)",
    "hdr-bar": "rgba(70,130,180,.30)",
    "virtio common": "rgba(46,160,67,.30)",
    "virtio notify": "rgba(230,140,30,.32)",
    "virtio isr": "rgba(220,70,70,.28)",
    "virtio device": "rgba(30,160,200,.30)",
    "virtio pci-cfg": "rgba(160,160,40,.34)",
    "MSI-X": "rgba(200,80,170,.28)",
    "PCI Express": "rgba(90,100,230,.28)",
    "Power Management": "rgba(150,105,60,.32)",
    "ext": "rgba(110,110,110,.30)",
    "cap": "rgba(120,160,120,.28)",
    "free": "transparent",
}
ROLE_TINT = {"common": PALETTE["virtio common"], "notify": PALETTE["virtio notify"],
             "notify-pio": PALETTE["virtio notify"], "isr": PALETTE["virtio isr"],
             "device": PALETTE["virtio device"], "msix-table": PALETTE["MSI-X"],
             "msix-pba": "rgba(200,80,170,.45)", "legacy": PALETTE["hdr-id"],
             "rom": PALETTE["Power Management"]}

_HDR_CTL = {"command", "status", "capabilities_ptr", "interrupt_line", "interrupt_pin",
            "cache_line_size", "header_type"}

CSS = """
.vl{font-family:var(--jp-ui-font-family,system-ui,-apple-system,'Segoe UI',sans-serif);font-size:13px;line-height:1.4;color:inherit}
.vl code,.vl .mono{font-family:var(--jp-code-font-family,ui-monospace,'DejaVu Sans Mono',monospace);font-size:12px}
.vl h4{margin:.6em 0 .3em;font-size:13px;font-weight:600}
.vl-grid{border-collapse:collapse;font-family:var(--jp-code-font-family,ui-monospace,'DejaVu Sans Mono',monospace);font-size:12px}
.vl-grid td,.vl-grid th{padding:1px 3px;text-align:center;border:1px solid rgba(128,128,128,.28);min-width:1.6em}
.vl-grid th{font-weight:normal;opacity:.75}
.vl-grid th.vl-row{text-align:right;padding-right:6px}
.vl-grid td.vl-gap,.vl-grid th.vl-gap{border:none;min-width:4px;padding:0}
.vl-grid td.vl-st{border-left:3px solid rgba(128,128,128,.85)}
.vl-grid td.vl-fr{opacity:.55}
.vl-grid td.vl-w{outline:2px solid #e8a317;outline-offset:-2px;font-weight:700;text-decoration:underline}
.vl-grid td.vl-sel,.vl-strip .vl-sel{background-image:repeating-linear-gradient(45deg,rgba(128,128,128,.45) 0 2px,transparent 2px 6px)}
.vl-grid td.vl-skip{text-align:left;font-style:italic;opacity:.7}
.vl-legend{display:flex;flex-wrap:wrap;gap:4px 10px;margin:4px 0;font-size:12px;max-width:440px}
.vl-sw{display:inline-block;width:1.1em;height:1em;vertical-align:-2px;border:1px solid rgba(128,128,128,.6);margin-right:3px}
.vl-sw.vl-w{outline:2px solid #e8a317;outline-offset:-2px}
.vl-sw.vl-sel{background-image:repeating-linear-gradient(45deg,rgba(128,128,128,.55) 0 2px,transparent 2px 6px)}
.vl-chain{display:flex;flex-direction:column;align-items:flex-start;gap:0}
.vl-node{border:1px solid rgba(128,128,128,.7);border-radius:4px;padding:3px 7px;min-width:230px}
.vl-node.vl-new{border-width:3px}
.vl-node.vl-w{outline:2px solid #e8a317;outline-offset:1px}
.vl-node.vl-sel{border-style:dashed;border-width:3px}
.vl-node table{border-collapse:collapse;font-size:12px}
.vl-node td{padding:0 6px 0 0}
.vl-arrow{padding:1px 0 1px 18px;font-size:12px;opacity:.85}
.vl-broken{border:2px dashed #d33;padding:2px 6px;border-radius:4px;margin:3px 0}
.vl-badge{display:inline-block;font-size:10px;font-weight:700;border:1px solid currentColor;border-radius:3px;padding:0 3px;margin-left:5px;letter-spacing:.04em}
.vl-bar{margin:0 0 10px 0}
.vl-strip{position:relative;height:30px;border:1px solid rgba(128,128,128,.7);margin:3px 0;max-width:760px;background:repeating-linear-gradient(90deg,transparent 0 9px,rgba(128,128,128,.12) 9px 10px)}
.vl-reg{position:absolute;top:0;bottom:0;border-right:1px solid rgba(128,128,128,.9);border-left:1px solid rgba(128,128,128,.9);overflow:hidden;white-space:nowrap;font-size:11px;padding:0 2px;min-width:2px;box-sizing:border-box;line-height:30px}
.vl-table{border-collapse:collapse;font-size:12px}
.vl-table td,.vl-table th{border-bottom:1px solid rgba(128,128,128,.3);padding:1px 8px 1px 0;text-align:left;vertical-align:top}
.vl-table td.mono,.vl-table td:first-child{white-space:nowrap}
.vl-warn{border-left:4px solid #d33;padding:2px 8px;margin:3px 0}
.vl-ok{opacity:.75}
.vl-tree ul{list-style:none;margin:0;padding-left:18px;border-left:1px dotted rgba(128,128,128,.7)}
.vl-tree>ul{border-left:none;padding-left:0}
.vl-tree li{margin:1px 0}
.vl-kind{font-size:11px;opacity:.75}
.vl-events td{padding:0 8px 0 0;vertical-align:top}
.vl-events tr.vl-cur{font-weight:700}
.vl-events tr.vl-cur td:first-child::before{content:'\\25B6  '}
.vl-events tr.vl-fut{opacity:.6}
.vl-events tr.vl-fut .vl-kind{opacity:1}
.vl-step-h{border-bottom:1px solid rgba(128,128,128,.5);padding-bottom:4px;margin-bottom:6px}
.vl-row2{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.vl-err{border:2px solid #d33;padding:4px 8px;border-radius:4px;margin:4px 0}
"""


def style_tag() -> str:
    return f"<style>{CSS}</style>"


def trace_step(trace: Any, step: Any, what: str) -> int | None:
    """``step`` of ``trace`` as an index from 0 (None stays None), or one VirtioLabError line:
    a view that needs the events takes a trace (not a state or bytes) and a step inside it."""
    if not (hasattr(trace, "events") and hasattr(trace, "state_at")):
        raise VirtioLabTypeError(f"{what} shows a trace (virtio_lab.plug(...)), not {type_name(trace)}")
    return None if step is None else trace.state_at(step).step  # StepError: not an index of it


def resolve(source: Any, step: int | None = None):
    """(trace or state, step) -> (state, event or None, trace or None).

    ``source`` may also be raw config-space bytes (an lspci dump, anyone's device):
    64 to 4096 of them, shown with no write masks. Anything else, or a step outside
    the trace, raises :class:`~virtio_lab.errors.VirtioLabError` in one line.
    """
    events = getattr(source, "events", None)
    if events is not None and hasattr(source, "state_at"):
        i = len(events) - 1 if step is None else step
        state = source.state_at(i)  # StepError for a step that is not an index of the trace
        return state, events[state.step], source
    if isinstance(source, PlugState):
        return source, None, None
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _state_of_bytes(bytes(source)), None, None
    raise VirtioLabTypeError(f"a view shows a trace (virtio_lab.plug(...)), a state "
                             f"(trace.state_at(step)) or config-space bytes, not {type_name(source)}")


def _state_of_bytes(config: bytes) -> PlugState:
    """A read-only state for bytes from elsewhere, padded with zeros to 256 or 4096."""
    if not 64 <= len(config) <= 4096:
        raise VirtioLabError(f"config space is 64 to 4096 bytes (lspci -x to -xxxx), not "
                             f"{len(config)}")
    size = 256 if len(config) <= 256 else 4096
    config = config.ljust(size, b"\0")
    zeros = bytes(size)
    return PlugState(config, zeros, zeros, zeros, zeros, Facts(config_size=size))


@lru_cache(maxsize=256)
def labels_for(config: bytes) -> tuple[Label, ...]:
    """field_map, memoised: stepping back and forth re-renders the same bytes."""
    return tuple(field_map(config))


def structure_family(lab: Label) -> str:
    if lab.kind == "header":
        if lab.field.startswith("bar") or lab.field == "rom_address":
            return "hdr-bar"
        return "hdr-ctl" if lab.field in _HDR_CTL else "hdr-id"
    if lab.kind == "cap":
        for k in ("virtio common", "virtio notify", "virtio isr", "virtio device", "virtio pci-cfg",
                  "MSI-X", "PCI Express", "Power Management"):
            if lab.structure.startswith(k):
                return k
        return "cap"
    if lab.kind == "ext":
        return "ext"
    return "free"


def human_size(n: int) -> str:
    for unit, s in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= s and n % s == 0:
            return f"{n // s} {unit}"
    return f"{n} B"


def newest_cap(trace, step: int) -> int | None:
    """Offset of the capability most recently added at or before ``step``."""
    if trace is None:
        return None
    for ev in reversed(trace.events[:step + 1]):
        if ev.function == "pci_add_capability":
            return ev.detail("cap_offset")
    return None
