"""One step, every view: header (function, caller chain, explanation, writes), warnings,
hex grid, capability chain, BAR maps, device tree and the event list around it.

``step_html`` is what the explorer widget shows and what the static report pre-renders.
"""

from __future__ import annotations

from typing import Any

from ..pci.checks import check_state
from ._common import esc, style_tag, trace_step
from .barmap import bar_map_html
from .chain import chain_html
from .events import call_stack, event_list_html, writes_text
from .hexgrid import hex_grid_html
from .tree import tree_html

__all__ = ["step_header_html", "warnings_html", "step_html", "StepView"]


def step_header_html(trace, step: int, *, css: bool = True) -> str:
    step = trace_step(trace, step, "step_header_html")
    ev = trace.events[step]
    stack = " → ".join(f"<code>{esc(e.function)}</code>" for e in call_stack(trace, step))
    w = writes_text(ev, limit=8)
    masks = sorted({x.space for x in ev.writes if x.space != "config"})
    wtxt = (f"<div><b>config written:</b> <code>{esc(w)}</code></div>" if w else
            "<div class='vl-kind'>no config bytes written at this step</div>")
    if masks:
        wtxt += f"<div class='vl-kind'>also written: {esc(', '.join(masks))}</div>"
    err = ""
    if trace.error is not None and step == len(trace.events) - 1:
        err = f'<div class="vl-err"><b>QEMU refuses this device:</b> {esc(str(trace.error))}</div>'
    return (f'{style_tag() if css else ""}<div class="vl vl-step-h"><div><b>Step {step} / '
            f'{len(trace.events) - 1}</b> · <code>{esc(ev.citation)}</code>'
            f'{" (continued)" if ev.continued else ""} · <span class="vl-kind">-device '
            f'<code>{esc(trace.spec.text)}</code> on {esc(trace.machine.label)}</span></div><div class="vl-kind">{stack}</div>'
            f'<div>{esc(ev.explanation)}</div>{wtxt}{err}</div>')


def warnings_html(state, *, css: bool = True) -> str:
    found = check_state(state)
    if not found:
        return ""
    items = "".join(f'<div class="vl-warn" data-code="{esc(f.code, quote=True)}">⚠ {esc(f.message)}</div>'
                    for f in found)
    return f'{style_tag() if css else ""}<div class="vl">{items}</div>'


def step_html(trace, step: int, *, radix: str = "hex", select: Any = None, css: bool = True,
              window: int | None = 6) -> str:
    """Everything about one step as one HTML fragment."""
    step = trace_step(trace, step, "step_html")
    state = trace.state_at(step)
    parts = [style_tag() if css else "", '<div class="vl">',
             step_header_html(trace, step, css=False), warnings_html(state, css=False),
             '<div class="vl-row2"><div><h4>Config space</h4>',
             hex_grid_html(trace, step, radix=radix, select=select, css=False),
             '</div><div><h4>Capability list</h4>',
             chain_html(trace, step, select=select if isinstance(select, int) else None, css=False),
             '</div></div><div class="vl-row2"><div><h4>BARs</h4>',
             bar_map_html(trace, step, css=False),
             '</div><div><h4>Objects (QOM tree)</h4>', tree_html(trace, step, css=False),
             '<h4>Plug path</h4>', event_list_html(trace, step, window=window, css=False),
             '</div></div></div>']
    return "".join(parts)


class StepView:
    """``StepView(trace, step)``: every view of one step, as a notebook object."""

    def __init__(self, trace, step: int | None = None, *, radix: str = "hex", select: Any = None):
        self.trace = trace
        self.step = trace_step(trace, -1 if step is None else step, "StepView")
        self.radix, self.select = radix, select

    def _repr_html_(self) -> str:
        return step_html(self.trace, self.step, radix=self.radix, select=self.select)
