"""The device at work, drawn: the split ring, guest memory, the interrupt path (stdlib HTML).

Each view is a pure function of a :class:`~virtio_lab.guest.queue.QueueRun` and a step (an
event index of its trace); RAM at a step comes from the trace's own "ram" writes
(:func:`ram_at`), so stepping back is indexing. The bytes the step wrote are outlined, bold
and underlined (colour is never the only signal); hovering a cell names the field, its
address and value.

* :func:`ring_html` — the descriptor table, the available ring and the used ring of one
  queue, with their indices, where each side is (``avail->idx`` and ``used->idx`` modulo the
  ring size: the wrap), and what each descriptor points at;
* :func:`memory_map_html` — where the rings and the buffers live in guest RAM;
* :func:`interrupt_path_html` — from the device's ``virtio_notify`` to the driver's callback:
  the decision, the ISR, the MSI-X entry or the INTx line, the handler.
"""

from __future__ import annotations

from bisect import bisect_right

from ..errors import VirtioLabError
from ._common import esc, style_tag

__all__ = ["ram_at", "ring_html", "memory_map_html", "interrupt_path_html", "RingView", "MemoryMap",
           "InterruptPath", "RING_CSS"]

PAGE = 4096
CHECKPOINT = 256  # events between RAM snapshots
MAX_ROWS = 24  # descriptor rows shown before the rest is summarised
RECENT = 8  # requests whose buffers the memory map lists

RING_CSS = """
.vl-ring{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
.vl-ring td.vl-here{border-left:3px solid currentColor}
.vl-ring td.vl-head{font-weight:700}
.vl-path{display:flex;flex-wrap:wrap;align-items:stretch;gap:0}
.vl-path .vl-node{min-width:150px;max-width:240px;margin:2px 0}
.vl-path .vl-to{align-self:center;padding:0 5px;font-size:15px}
.vl-path .vl-off{opacity:.55;border-style:dashed}
"""


class _Ram:
    """Guest RAM after one step: pages (page number -> bytes) rebuilt from the trace."""

    def __init__(self, pages: dict[int, bytes]):
        self.pages = pages

    def read(self, addr: int, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            page, off = divmod(addr, PAGE)
            k = min(n, PAGE - off)
            p = self.pages.get(page)
            out += p[off:off + k] if p is not None else bytes(k)
            addr, n = addr + k, n - k
        return bytes(out)

    def u(self, addr: int, n: int) -> int:
        return int.from_bytes(self.read(addr, n), "little")


def _put(pages: dict[int, bytearray], addr: int, data: bytes) -> None:
    i = 0
    while i < len(data):
        page, off = divmod(addr + i, PAGE)
        k = min(len(data) - i, PAGE - off)
        pages.setdefault(page, bytearray(PAGE))[off:off + k] = data[i:i + k]
        i += k


def _apply(pages: dict[int, bytearray], events) -> None:
    """Replay events' RAM writes, oldest first."""
    for ev in events:
        for w in ev.writes:
            if w.space == "ram":
                _put(pages, w.offset, w.new)


def _undo(pages: dict[int, bytearray], events) -> None:
    """Take events' RAM writes back, newest first (each write keeps the bytes it replaced)."""
    for ev in reversed(events):
        for w in reversed(ev.writes):
            if w.space == "ram":
                _put(pages, w.offset, w.old)


def ram_at(run, step: int, *, forward: bool = False) -> _Ram:
    """Guest RAM as it stood after event ``step``: replayed forward from a checkpoint (every
    256 events) or, nearer the end, taken back from the run's final RAM by undoing the later
    writes — whichever is fewer events (``forward``: always from the start's side)."""
    trace = run.trace
    n = len(trace.events)
    if not isinstance(step, int) or isinstance(step, bool) or not -n <= step < n:
        raise VirtioLabError(f"step {step!r} is outside 0..{n - 1}")
    step %= n
    cache = run.__dict__.setdefault("_ram_checkpoints", {})
    if cache.get("n") != n:
        cache.clear()
        cache["n"] = n
    base = step // CHECKPOINT * CHECKPOINT - 1
    if not forward and base not in cache and n - 1 - step < step - max(
            (k for k in cache if isinstance(k, int) and k <= step), default=-1):
        pages = {k: bytearray(v) for k, v in run.ram.pages.items()}
        _undo(pages, trace.events[step + 1:])
        return _Ram({k: bytes(v) for k, v in pages.items()})
    if base not in cache:
        prev = max((k for k in cache if isinstance(k, int) and k < base), default=-1)
        pages = {k: bytearray(v) for k, v in cache.get(prev, {}).items()}
        for cp in range(prev + CHECKPOINT, base + 1, CHECKPOINT):
            _apply(pages, trace.events[max(cp - CHECKPOINT + 1, 0):cp + 1])
            cache[cp] = {k: bytes(v) for k, v in pages.items()}
    pages = {k: bytearray(v) for k, v in cache.get(base, {}).items()} if base >= 0 else {}
    _apply(pages, trace.events[base + 1:step + 1])
    return _Ram({k: bytes(v) for k, v in pages.items()})


def _written(ev) -> set[int]:
    return {w.offset + i for w in ev.writes if w.space == "ram" for i in range(len(w.new))}


def _cell(text: str, title: str, addr: int, width: int, written: set[int], cls: str = "") -> str:
    hit = bool(written) and not written.isdisjoint(range(addr, addr + width))
    c = " ".join(x for x in (cls, "vl-w" if hit else "") if x)
    return f'<td class="{c}" title="{esc(title, quote=True)}">{esc(text)}</td>'


def _flags(f: int) -> str:
    return "|".join(n for b, n in ((1, "NEXT"), (2, "WRITE"), (4, "INDIRECT")) if f & b) or "0"


def _vq(run, queue: int | None):
    vqs = run.vqs
    if queue is None:
        queue = run.requests[-1].queue if run.requests else (1 if run.vid == 1 else 0)
    if not isinstance(queue, int) or not 0 <= queue < len(vqs):
        raise VirtioLabError(f"queue is 0..{len(vqs) - 1}, not {queue!r}")
    return vqs[queue]


def _buffer_index(run) -> dict[int, list[tuple[int, str]]]:
    """address -> [(first event, what it is)] over every request's buffers, in request order
    (built once per run size and kept on the run)."""
    cache = run.__dict__.setdefault("_buffer_index", {})
    if cache.get("n") == len(run.requests):
        return cache["index"]
    index: dict[int, list[tuple[int, str]]] = {}
    for r in run.requests:
        for i, (a, n, w) in enumerate(r.posted.buffers):
            role = {"entropy": "vi->data", "frame": "virtio_net_hdr + frame"}.get(r.kind)
            if role is None and r.kind in ("read", "write"):
                role = ("out_hdr", "data", "status")[min(i, 2)] if len(r.posted.buffers) == 3 else \
                    ("out_hdr", "status")[min(i, 1)]
            index.setdefault(a, []).append((r.first_event, f"{role or r.kind} ({n} bytes, request "
                                            f"{r.number}, {'device writes' if w else 'device reads'})"))
    cache.update(n=len(run.requests), index=index)
    return index


class _Names:
    """What a buffer address is at a step: the latest request up to the step that used it."""

    def __init__(self, run, step: int | None):
        self.index, self.step = _buffer_index(run), step

    def get(self, addr: int, default: str = "") -> str:
        uses = self.index.get(addr)
        if not uses:
            return default
        if self.step is None:
            return uses[-1][1]
        k = bisect_right(uses, self.step, key=lambda u: u[0])
        return uses[k - 1][1] if k else default

    def addresses(self):
        return self.index.keys()


def ring_html(run, step: int | None = None, queue: int | None = None, *, css: bool = True) -> str:
    """One queue's three areas after ``step`` (default: the last event)."""
    trace = run.trace
    step = len(trace.events) - 1 if step is None else step
    ram = ram_at(run, step)
    ev = trace.events[step % len(trace.events)]
    wr = _written(ev)
    vq = _vq(run, queue)
    num, names = vq.num, _Names(run, ev.index)
    a_idx, u_idx = ram.u(vq.avail + 2, 2), ram.u(vq.used + 2, 2)
    # which descriptors to show: those the rings or this step name, then the free head
    heads = {ram.u(vq.avail + 4 + 2 * i, 2) for i in range(num)} | {ram.u(vq.used + 4 + 8 * i, 4)
                                                                     for i in range(num)}
    shown = sorted(i for i in range(num) if i in heads or i < 4
                   or any(a in wr for a in range(vq.desc + 16 * i, vq.desc + 16 * i + 16)))[:MAX_ROWS]
    rows = []
    for i in shown:
        d = vq.desc + 16 * i
        addr, ln, fl, nx = ram.u(d, 8), ram.u(d + 8, 4), ram.u(d + 12, 2), ram.u(d + 14, 2)
        what = names.get(addr, "")
        if fl & 4:
            what = f"indirect table of {ln // 16}"
        rows.append("<tr>" + f"<th>{i}</th>"
                    + _cell(f"0x{addr:x}", f"desc[{i}].addr at 0x{d:x}: 0x{addr:x}", d, 8, wr, "mono")
                    + _cell(str(ln), f"desc[{i}].len at 0x{d + 8:x}: {ln}", d + 8, 4, wr)
                    + _cell(_flags(fl), f"desc[{i}].flags at 0x{d + 12:x}: {fl}", d + 12, 2, wr)
                    + _cell(str(nx), f"desc[{i}].next at 0x{d + 14:x}: {nx}", d + 14, 2, wr)
                    + f"<td class='vl-kind'>{esc(what)}</td></tr>")
    hidden = num - len(shown)
    if hidden:
        rows.append(f"<tr><td colspan='6' class='vl-skip'>… {hidden} more descriptor(s) nobody names</td></tr>")
    indirect = _indirect_tables(run, ram, vq, wr, names)

    def ring_rows(base: int, entry: int, cols, marker: int, label: str) -> list[str]:
        out = []
        for i in range(num):
            at = base + 4 + entry * i
            here = " vl-here" if i == marker % num else ""
            cells = "".join(_cell(str(ram.u(at + off, w)), f"{label}->ring[{i}].{name} at 0x{at + off:x}",
                                  at + off, w, wr, here.strip()) for name, off, w in cols)
            out.append(f"<tr><th>{i}</th>{cells}</tr>")
            if num > MAX_ROWS and i == MAX_ROWS - 1:
                out.append(f"<tr><td colspan='3' class='vl-skip'>… {num - MAX_ROWS} more slot(s)</td></tr>")
                break
        return out

    avail_rows = ring_rows(vq.avail, 2, (("head", 0, 2),), a_idx, "avail")
    used_rows = ring_rows(vq.used, 8, (("id", 0, 4), ("len", 4, 4)), u_idx, "used")
    ue, ae = vq.avail + 4 + 2 * num, vq.used + 4 + 8 * num
    avail_h = (f"<tr><td>flags</td>{_cell(str(ram.u(vq.avail, 2)), f'avail->flags at 0x{vq.avail:x}', vq.avail, 2, wr)}</tr>"
               f"<tr><td>idx</td>{_cell(str(a_idx), f'avail->idx at 0x{vq.avail + 2:x}: the next slot is {a_idx} mod {num} = {a_idx % num}', vq.avail + 2, 2, wr)}</tr>"
               f"<tr><td>used_event</td>{_cell(str(ram.u(ue, 2)), f'used_event (avail->ring[{num}]) at 0x{ue:x}', ue, 2, wr)}</tr>")
    used_h = (f"<tr><td>flags</td>{_cell(str(ram.u(vq.used, 2)), f'used->flags at 0x{vq.used:x}', vq.used, 2, wr)}</tr>"
              f"<tr><td>idx</td>{_cell(str(u_idx), f'used->idx at 0x{vq.used + 2:x}: the next slot is {u_idx} mod {num} = {u_idx % num}', vq.used + 2, 2, wr)}</tr>"
              f"<tr><td>avail_event</td>{_cell(str(ram.u(ae, 2)), f'avail_event (used->ring[{num}]) at 0x{ae:x}', ae, 2, wr)}</tr>")
    wraps = f"avail->idx {a_idx} = {a_idx // num} wrap(s) of {num} + slot {a_idx % num}; used->idx {u_idx} = " \
            f"{u_idx // num} wrap(s) + slot {u_idx % num}"
    head = (f'<div class="vl-step-h"><b>Step {ev.index} / {len(trace.events) - 1}</b> · '
            f'<code>{esc(ev.citation)}</code> · queue {vq.index} ({esc(vq.name)}), {num} entries'
            f'<div>{esc(ev.explanation)}</div>'
            f'<div class="vl-kind">{esc(_ram_text(ev))}</div></div>')
    used_area = ram.read(vq.used, 4 + 8 * num + 2)
    return (f'{style_tag() if css else ""}<style>{RING_CSS}</style><div class="vl vl-ringview" '
            f'data-queue="{vq.index}" data-step="{ev.index}" data-used-addr="{vq.used}" '
            f'data-used-hex="{used_area.hex()}">{head}'
            f'<div class="vl-kind">{esc(wraps)}; ▌ marks the slot each index names next.</div>'
            f'<div class="vl-ring"><div><h4>Descriptor table @ 0x{vq.desc:x}</h4>'
            f'<table class="vl-grid"><tr><th>#</th><th>addr</th><th>len</th><th>flags</th><th>next</th>'
            f'<th>points at</th></tr>{"".join(rows)}</table>{indirect}</div>'
            f'<div><h4>Available ring @ 0x{vq.avail:x} (driver)</h4><table class="vl-grid">{avail_h}</table>'
            f'<table class="vl-grid"><tr><th>slot</th><th>head</th></tr>{"".join(avail_rows)}</table></div>'
            f'<div><h4>Used ring @ 0x{vq.used:x} (device)</h4><table class="vl-grid">{used_h}</table>'
            f'<table class="vl-grid"><tr><th>slot</th><th>id</th><th>len</th></tr>{"".join(used_rows)}</table>'
            f'</div></div></div>')


def _indirect_tables(run, ram: _Ram, vq, wr: set[int], names: "_Names") -> str:
    """The indirect tables the ring's descriptors point at (blk's requests use them)."""
    out = []
    for i in range(vq.num):
        d = vq.desc + 16 * i
        if not ram.u(d + 12, 2) & 4:
            continue
        table, count = ram.u(d, 8), ram.u(d + 8, 4) // 16
        if not count or count > 64:
            continue
        rows = []
        for j in range(count):
            t = table + 16 * j
            addr, ln, fl, nx = ram.u(t, 8), ram.u(t + 8, 4), ram.u(t + 12, 2), ram.u(t + 14, 2)
            rows.append(f"<tr><th>{j}</th>" + _cell(f"0x{addr:x}", f"indirect[{j}].addr at 0x{t:x}", t, 8, wr, "mono")
                        + _cell(str(ln), f"indirect[{j}].len", t + 8, 4, wr)
                        + _cell(_flags(fl), f"indirect[{j}].flags", t + 12, 2, wr)
                        + _cell(str(nx), f"indirect[{j}].next", t + 14, 2, wr)
                        + f"<td class='vl-kind'>{esc(names.get(addr, ''))}</td></tr>")
        out.append(f"<h4>desc[{i}]'s indirect table @ 0x{table:x}</h4><table class='vl-grid'>"
                   f"<tr><th>#</th><th>addr</th><th>len</th><th>flags</th><th>next</th><th>points at</th></tr>"
                   f"{''.join(rows)}</table>")
        if len(out) == 2:
            break
    return "".join(out)


def _ram_text(ev) -> str:
    ws = [w for w in ev.writes if w.space == "ram"]
    if not ws:
        return "no guest RAM written at this step"
    parts = [f"0x{w.offset:x}: {w.old.hex(' ')[:23]} → {w.new.hex(' ')[:23]}" for w in ws[:4]]
    return "RAM written: " + "; ".join(parts) + (f"; … {len(ws) - 4} more" if len(ws) > 4 else "")


def memory_map_html(run, step: int | None = None, *, css: bool = True) -> str:
    """Where the rings and buffers live, in address order (written at ``step`` outlined)."""
    trace = run.trace
    step = len(trace.events) - 1 if step is None else step % len(trace.events)
    wr = _written(trace.events[step])
    regions = []
    for q in run.vqs:
        regions += [(q.desc, 16 * q.num, f"queue {q.index} ({q.name}) descriptor table"),
                    (q.avail, 4 + 2 * q.num + 2, f"queue {q.index} available ring"),
                    (q.used, 4 + 8 * q.num + 2, f"queue {q.index} used ring")]
    names = _Names(run, step)
    shown = [r for r in run.requests if r.first_event <= step][-RECENT:]
    regions += [(a, n, names.get(a)) for r in shown for a, n, _ in r.posted.buffers]
    earlier = sum(1 for r in run.requests if r.first_event <= step) - len(shown)
    ram = ram_at(run, step)
    for q in run.vqs:
        for i in range(q.num):
            d = q.desc + 16 * i
            if ram.u(d + 12, 2) & 4:
                regions.append((ram.u(d, 8), ram.u(d + 8, 4), f"queue {q.index} desc[{i}]'s indirect table"))
    regions = sorted(set(regions))
    rows = []
    for a, n, what in regions:
        hit = any(x in wr for x in range(a, a + n))
        rows.append(f'<tr class="{"vl-cur" if hit else ""}"><td class="mono">0x{a:08x}</td>'
                    f'<td class="mono">0x{a + n - 1:08x}</td><td>{n}</td><td>{esc(what)}'
                    f'{" <b>(written now)</b>" if hit else ""}</td></tr>')
    more = (f"<tr><td colspan='4' class='vl-kind'>… the buffers of {earlier} earlier request(s) are not "
            f"listed</td></tr>") if earlier else ""
    return (f'{style_tag() if css else ""}<div class="vl"><h4>Guest memory (step {step})</h4>'
            f'<div class="vl-kind">RAM is 128 MiB at 0-0x7ffffff; the addresses are the guest '
            f'allocators\' choice here (illustrative), the device reaches them by DMA.</div>'
            f'<table class="vl-table vl-events"><tr><th>from</th><th>to</th><th>bytes</th><th>what</th></tr>'
            f'{"".join(rows)}{more}</table></div>')


#: the interrupt path's stations, in order: (event function, title, how to say what it did)
_PATH = (("virtio_notify", "device: virtio_notify"),
         ("virtio_irq", "ISR |= 1"),
         ("msix_set_pending", "MSI-X: masked, PBA bit set"),
         ("msi_send_message", "MSI-X message"),
         ("pci_set_irq", "INTx line"),
         ("handle_edge_irq", "CPU takes the MSI"),
         ("handle_fasteoi_irq", "CPU takes INTx"),
         ("vp_interrupt", "vp_interrupt reads the ISR"),
         ("vring_interrupt", "vring_interrupt"))


def interrupt_path_html(run, request: int | None = None, *, css: bool = True) -> str:
    """The path of request ``request``'s interrupt (default: the last request)."""
    if not run.requests:
        return f'{style_tag() if css else ""}<div class="vl">No request yet: no interrupt.</div>'
    n = len(run.requests) if request is None else request
    if not isinstance(n, int) or not 1 <= n <= len(run.requests):
        raise VirtioLabError(f"request is 1..{len(run.requests)}, not {request!r}")
    r = run.requests[n - 1]
    events = run.trace.events[r.first_event:r.last_event + 1]
    boxes = []
    for fn, title in _PATH:
        ev = next((e for e in events if e.function == fn and (fn != "virtio_notify" or e.continued)), None)
        if ev is None:
            continue
        boxes.append(f'<div class="vl-node" title="{esc(ev.citation, quote=True)}"><b>{esc(title)}</b>'
                     f' <span class="vl-kind">step {ev.index}</span><div>{esc(ev.explanation)}</div></div>')
    if not boxes:
        boxes.append('<div class="vl-node vl-off">No interrupt in this request.</div>')
    return (f'{style_tag() if css else ""}<style>{RING_CSS}</style><div class="vl">'
            f'<h4>Request {r.number} ({esc(r.kind)}): the interrupt path</h4><div class="vl-path">'
            + '<span class="vl-to">→</span>'.join(boxes) + "</div></div>")


class RingView:
    """``RingView(run, step, queue)``: the ring after one step, for a notebook."""

    def __init__(self, run, step: int | None = None, queue: int | None = None):
        self.run, self.step, self.queue = run, step, queue

    def _repr_html_(self) -> str:
        return ring_html(self.run, self.step, self.queue)


class MemoryMap:
    def __init__(self, run, step: int | None = None):
        self.run, self.step = run, step

    def _repr_html_(self) -> str:
        return memory_map_html(self.run, self.step)


class InterruptPath:
    def __init__(self, run, request: int | None = None):
        self.run, self.request = run, request

    def _repr_html_(self) -> str:
        return interrupt_path_html(self.run, self.request)
