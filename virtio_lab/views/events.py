"""The event log: the events around the current step (the explorer's "plug path"), and the whole
trace as a table (``EventLog``), both stdlib HTML; ``EventLog.dataframe()`` gives pandas users a
DataFrame (pandas imported only then)."""

from __future__ import annotations

from ..errors import VirtioLabTypeError, type_name
from ._common import esc, style_tag, trace_step

__all__ = ["writes_text", "event_list_html", "EventLog", "call_stack"]


def writes_text(ev, space: str = "config", limit: int = 6) -> str:
    """The step's writes to ``space`` as ``0x04: 00 00 → 07 05`` (little-endian bytes in order)."""
    ws = [w for w in ev.writes if w.space == space]
    parts = [f"0x{w.offset:02x}: {w.old.hex(' ')} → {w.new.hex(' ')}" for w in ws[:limit]]
    if len(ws) > limit:
        parts.append(f"… {len(ws) - limit} more")
    return "; ".join(parts)


def call_stack(trace, step: int) -> list:
    """The events that enclose ``step``: its callers, outermost first, then the step itself."""
    ev = trace.events[step]
    stack = [ev]
    depth = ev.depth
    for e in reversed(trace.events[:step]):
        if e.depth < depth and not e.continued:
            stack.append(e)
            depth = e.depth
            if depth == 0:
                break
    return list(reversed(stack))


def event_list_html(trace, step: int | None, *, window: int | None = 6, detail: bool = False,
                    css: bool = True) -> str:
    """Events around ``step`` (all with ``window=None``): past plain, current bold ▶, future dimmed.

    ``detail`` adds each event's source file and explanation as columns and every config write
    (the table ``EventLog`` shows); ``step=None`` marks no step (and shows every event).
    """
    step = trace_step(trace, step, "the event list")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 0):
        raise VirtioLabTypeError(f"window is a number of steps (or None: all), not {type_name(window)}")
    if step is None:
        window = None
    n = len(trace.events)
    lo, hi = (0, n) if window is None else (max(0, step - window), min(n, step + window + 1))
    cols = ["step", "QEMU function", *(["source", "explanation"] if detail else []), "config bytes written"]
    out = [style_tag() if css else "", '<div class="vl"><table class="vl-events vl-table"><tr>',
           *(f"<th>{c}</th>" for c in cols), "</tr>"]
    if lo > 0:
        out.append(f'<tr class="vl-fut"><td colspan="{len(cols)}">… {lo} earlier steps</td></tr>')
    for e in trace.events[lo:hi]:
        cls = "" if step is None else "vl-cur" if e.index == step else "vl-fut" if e.index > step else ""
        name = ("&nbsp;&nbsp;" * e.depth) + esc(e.function) + (" <span class='vl-kind'>(cont.)</span>"
                                                               if e.continued else "")
        more = f"<td class='mono'>{esc(e.source)}</td><td>{esc(e.explanation)}</td>" if detail else ""
        out.append(f'<tr class="{cls}" data-step="{e.index}" title="{esc(e.explanation, quote=True)}">'
                   f'<td>{e.index}</td><td class="mono">{name}</td>{more}'
                   f'<td class="mono">{esc(writes_text(e, limit=100 if detail else 2))}</td></tr>')
    if hi < n:
        out.append(f'<tr class="vl-fut"><td colspan="{len(cols)}">… {n - hi} later steps</td></tr>')
    out.append("</table></div>")
    return "".join(out)


class EventLog:
    """The whole trace as a table: step, QEMU function, source, explanation, config bytes written;
    ``step`` is shown bold with ▶, later steps dimmed. Standard library HTML, so it renders where
    pandas is absent (JupyterLite); ``EventLog(trace).dataframe()`` is the same table in pandas.
    """

    def __init__(self, trace, step: int | None = None):
        self.trace, self.step = trace, trace_step(trace, step, "EventLog")

    def dataframe(self):
        import pandas as pd  # lazily: only the event log needs pandas
        rows = [{"step": e.index,
                 "function": ("  " * e.depth) + e.function + (" (cont.)" if e.continued else ""),
                 "source": e.source, "explanation": e.explanation,
                 "config written": writes_text(e, limit=100),
                 "config bytes": len(e.touched("config"))} for e in self.trace.events]
        return pd.DataFrame(rows).set_index("step")

    def _repr_html_(self) -> str:
        return event_list_html(self.trace, self.step, window=None, detail=True)

    def __str__(self) -> str:
        return self.trace.narrate()
