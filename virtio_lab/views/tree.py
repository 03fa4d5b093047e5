"""The device/bus tree: pci bus → virtio-pci proxy → virtio-bus → virtio device (QOM/qdev)."""

from __future__ import annotations

from typing import Any

from ._common import esc, resolve, style_tag

__all__ = ["tree_html", "DeviceTree"]


def tree_html(source: Any, step: int | None = None, *, css: bool = True) -> str:
    """Nested list of the objects created so far; objects new at this step get a NEW badge."""
    state, ev, trace = resolve(source, step)
    nodes = state.facts.tree
    before = set()
    if trace is not None and ev is not None and ev.index > 0:
        before = {n.path for n in trace.events[ev.index - 1].facts.tree}
    out = [style_tag() if css else "", '<div class="vl vl-tree">']
    if not nodes:
        out.append('<div class="vl-arrow">(no objects yet)</div></div>')
        return "".join(out)
    depth = 0
    out.append("<ul>")
    first = True
    for n in sorted(nodes, key=lambda n: n.path):
        d = n.path.count("/")
        if not first:
            if d > depth:
                out.append("<ul>" * (d - depth))
            else:
                out.append("</li>" + "</ul></li>" * (depth - d))
        first = False
        depth = d
        name = n.path.rsplit("/", 1)[-1]
        icon = "▭ bus" if n.kind == "bus" else "◆ device"
        new = '<span class="vl-badge">NEW</span>' if trace is not None and n.path not in before else ""
        note = f' <span class="vl-kind">— {esc(n.note)}</span>' if n.note else ""
        out.append(f'<li data-path="{esc(n.path, quote=True)}"><span class="vl-kind">{icon}</span> '
                   f'<b>{esc(name)}</b> <code>{esc(n.type)}</code>{note}{new}')
    out.append("</li>" + "</ul></li>" * depth + "</ul></div>")
    return "".join(out)


class DeviceTree:
    """``DeviceTree(trace, step)``: the QOM/qdev tree as a notebook object."""

    def __init__(self, source: Any, step: int | None = None):
        self.source, self.step = source, step

    def _repr_html_(self) -> str:
        return tree_html(self.source, self.step)

    def __str__(self) -> str:
        state, _, _ = resolve(self.source, self.step)
        return "\n".join(f"{'  ' * n.path.count('/')}{n.path.rsplit('/', 1)[-1]} ({n.type})"
                         for n in sorted(state.facts.tree, key=lambda n: n.path))
