"""A self-contained HTML report of one plug: every step pre-rendered, stepped by inline JS.

``python -m virtio_lab report SPEC -o plug.html`` writes one file with no network
access and no kernel: the same views as the notebook (hex grid, capability chain,
BAR maps, QOM tree, plug path) for every step, ◀ ▶, a slider, Play and the arrow
keys. It is how a lesson travels by mail or sits on a course page. Standard library only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import QEMU_VERSION, __version__
from ..files import write_atomic
from ..hw.plug import Trace, plug
from ..hw.virtio_pci import PlugError
from ._common import CSS, esc
from .step import step_html

__all__ = ["report_html", "write_report"]

_JS = """
(function(){var s=document.querySelectorAll('section.vl-s'),r=document.getElementById('vl-r'),
n=document.getElementById('vl-n'),p=document.getElementById('vl-p'),t=null;
function show(i){i=Math.max(0,Math.min(s.length-1,i));s.forEach(function(e,k){e.hidden=k!==i});
r.value=i;n.textContent=i+' / '+(s.length-1);location.hash='step-'+i;}
window.vlShow=show;r.oninput=function(){show(+r.value)};
document.getElementById('vl-b').onclick=function(){show(+r.value-1)};
document.getElementById('vl-f').onclick=function(){show(+r.value+1)};
p.onclick=function(){if(t){clearInterval(t);t=null;p.textContent='Play';return}
if(+r.value>=s.length-1)show(0);p.textContent='Pause';t=setInterval(function(){
if(+r.value>=s.length-1){clearInterval(t);t=null;p.textContent='Play'}else show(+r.value+1)},
+document.getElementById('vl-v').value)};
document.addEventListener('keydown',function(e){if(e.target.tagName==='INPUT'&&e.target.type!=='range')return;
if(e.key==='ArrowRight'){show(+r.value+1);e.preventDefault()}
if(e.key==='ArrowLeft'){show(+r.value-1);e.preventDefault()}});
var m=/step-(\\d+)/.exec(location.hash);show(m?+m[1]:0);})();
"""

_PAGE_CSS = """
body{margin:16px;background:Canvas;color:CanvasText}
:root{color-scheme:light dark}
.vl-bar-ctl{position:sticky;top:0;background:Canvas;padding:6px 0;border-bottom:1px solid rgba(128,128,128,.5);
display:flex;gap:8px;align-items:center;z-index:2;flex-wrap:wrap}
.vl-bar-ctl button{font-size:14px;min-width:2.5em}
.vl-bar-ctl input[type=range]{width:360px}
"""


def report_trace(source: Any, machine: str = "pc", root_port: bool = False,
                 qemu: str | None = None) -> Trace:
    """The trace a report shows: ``source`` itself, its plug, or the steps up to QEMU's refusal."""
    if isinstance(source, Trace):
        return source
    try:
        return plug(source, machine, root_port, qemu)
    except PlugError as err:
        if err.trace is None or not err.trace.events:
            raise
        return err.trace


def report_html(source: Any, machine: str = "pc", root_port: bool = False, *, radix: str = "hex",
                qemu: str | None = None) -> str:
    """The whole report as one HTML string (``source``: a spec or a trace)."""
    trace = report_trace(source, machine, root_port, qemu)
    n = len(trace.events)
    title = f"{trace.spec.text} on {trace.machine.label}"
    sections = "".join(f'<section class="vl-s" id="s{i}" data-step="{i}"{" hidden" if i else ""}>'
                       f'{step_html(trace, i, radix=radix, css=False)}</section>' for i in range(n))
    refused = (f'<div class="vl vl-err"><b>QEMU refuses this device:</b> {esc(str(trace.error))}</div>'
               if trace.error else "")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{esc(title)} — virtio_lab</title><style>{CSS}{_PAGE_CSS}</style></head><body>'
            f'<div class="vl"><h3 style="margin:0 0 4px">How QEMU {QEMU_VERSION} plugs <code>{esc(trace.spec.text)}'
            f'</code> on {esc(trace.machine.label)}</h3><div class="vl-kind">virtio_lab {__version__} · '
            f'{n} steps · hover any byte for its field and meaning · ← → keys step</div>{refused}</div>'
            f'<div class="vl vl-bar-ctl"><button id="vl-b" title="previous step (←)">◀</button>'
            f'<input id="vl-r" type="range" min="0" max="{n - 1}" value="0" aria-label="step">'
            f'<button id="vl-f" title="next step (→)">▶</button><span id="vl-n" class="mono">0 / {n - 1}</span>'
            f'<button id="vl-p">Play</button><label>speed <select id="vl-v"><option value="1500">slow'
            f'</option><option value="700" selected>normal</option><option value="250">fast</option>'
            f'</select></label></div>{sections}<script>{_JS}</script></body></html>')


def write_report(source: Any, path: str | Path = "plug.html", machine: str = "pc",
                 root_port: bool = False) -> Path:
    """Write the report to ``path`` and return it; the whole page is made first and renamed
    into place, so a failure leaves an existing file as it was."""
    return write_atomic(path, report_html(source, machine, root_port), "the report")
