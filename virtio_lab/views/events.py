"""The event log: a stdlib HTML list around the current step, and a pandas table (EventLog)."""

from __future__ import annotations

from ._common import esc, style_tag

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


def event_list_html(trace, step: int, *, window: int | None = 6, css: bool = True) -> str:
    """Events around ``step`` (all with ``window=None``): past plain, current bold ▶, future dimmed."""
    n = len(trace.events)
    lo, hi = (0, n) if window is None else (max(0, step - window), min(n, step + window + 1))
    out = [style_tag() if css else "", '<div class="vl"><table class="vl-events vl-table">'
           '<tr><th>step</th><th>QEMU function</th><th>config bytes written</th></tr>']
    if lo > 0:
        out.append(f'<tr class="vl-fut"><td colspan="3">… {lo} earlier steps</td></tr>')
    for e in trace.events[lo:hi]:
        cls = "vl-cur" if e.index == step else ("vl-fut" if e.index > step else "")
        name = ("&nbsp;&nbsp;" * e.depth) + esc(e.function) + (" <span class='vl-kind'>(cont.)</span>"
                                                               if e.continued else "")
        out.append(f'<tr class="{cls}" data-step="{e.index}" title="{esc(e.explanation, quote=True)}">'
                   f'<td>{e.index}</td><td class="mono">{name}</td>'
                   f'<td class="mono">{esc(writes_text(e, limit=2))}</td></tr>')
    if hi < n:
        out.append(f'<tr class="vl-fut"><td colspan="3">… {n - hi} later steps</td></tr>')
    out.append("</table></div>")
    return "".join(out)


class EventLog:
    """The whole trace as a pandas table: step, QEMU function, source, explanation, bytes written.

    ``EventLog(trace).dataframe()`` returns the DataFrame (pandas imported on first use).
    """

    def __init__(self, trace, step: int | None = None):
        self.trace, self.step = trace, step

    def dataframe(self):
        import pandas as pd  # lazily: only the event log needs pandas
        rows = [{"step": e.index,
                 "function": ("  " * e.depth) + e.function + (" (cont.)" if e.continued else ""),
                 "source": e.source, "explanation": e.explanation,
                 "config written": writes_text(e, limit=100),
                 "config bytes": len(e.touched("config"))} for e in self.trace.events]
        return pd.DataFrame(rows).set_index("step")

    def _repr_html_(self) -> str:
        df = self.dataframe()
        if self.step is not None:  # a marker column: a visible, colour-free "you are here"
            df.insert(0, "now", ["▶" if i == self.step else "" for i in df.index])
        return df.to_html(escape=True)

    def __str__(self) -> str:
        return self.trace.narrate()
