"""HTML for :class:`virtio_lab.text.diff.Diff`: each section a list, every difference named."""

from __future__ import annotations

from ._common import esc, style_tag

__all__ = ["diff_html"]


def diff_html(d, *, css: bool = True) -> str:
    out = [style_tag() if css else "", '<div class="vl vl-diff">',
           f'<div><b>a:</b> <code>{esc(d.a)}</code><br><b>b:</b> <code>{esc(d.b)}</code></div>']
    if not d:
        same = f" (QEMU refuses both: {esc(d.errors[0])})" if d.errors[0] else ""
        out.append(f'<div class="vl-ok">no differences{same}</div></div>')
        return "".join(out)
    for title, items in d.sections():
        if not items:
            continue
        out.append(f'<h4>{esc(title)} ({len(items)})</h4><ul>')
        for it in items:
            mark = "➕ " if it.startswith(("added", "+ ")) else "➖ " if it.startswith(("removed", "- ")) else ""
            out.append(f"<li class='mono'>{mark}{esc(it)}</li>")
        out.append("</ul>")
    out.append("</div>")
    return "".join(out)
