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
            why = "; ".join(c.name for c in d.causes_of(it))
            tag = f" <span class='vl-why' title='{esc(why)}'>← {esc(why)}</span>" if why else ""
            out.append(f"<li class='mono'>{mark}{esc(it)}{tag}</li>")
        out.append("</ul>")
    causes = d.causes
    if causes:
        out.append(f"<h4>why ({len(causes)})</h4><ul class='vl-causes'>")
        for c in causes:
            out.append(f"<li><b>{esc(c.name)}</b>: {esc(c.text)}<ul>"
                       + "".join(f"<li class='mono'>{esc(x)}</li>" for x in c.explains) + "</ul></li>")
        out.append("</ul>")
    out.append("</div>")
    return "".join(out)
