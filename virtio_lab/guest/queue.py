"""queue(): the device at work — after the probe, requests through a virtqueue, end to end.

    >>> import virtio_lab
    >>> run = virtio_lab.queue("virtio-blk-pci", requests=3)
    >>> [(r.kind, r.used_len) for r in run.requests]
    [('read', 513), ('write', 1), ('read', 513)]

The trace continues :func:`~virtio_lab.guest.probe.probe`'s: the plug, SeaBIOS, the Linux
6.1 probe (which set up the queues and, for virtio-rng, already posted the first
request), then each request as the driver makes it and QEMU 7.2 answers it: the guest's
stores into the rings, the notify write, the device's handler, ``virtqueue_pop`` /
``virtqueue_push``, ``virtio_notify`` and the interrupt back into the driver.

The requests: virtio-rng's entropy buffer (request 1 is the probe's own
``request_entropy``; each further one is the hwrng reader draining it and posting again);
virtio-blk reads and writes of sector 1, 2, ... (read, write, read again) on a 1 MiB raw
image whose byte i is i mod 251; virtio-net one ARP request frame each on TX queue 0. A
booted guest would already have made other requests (the partition-table read, IPv6
neighbour discovery, the receive queue's buffers): they are not shown, so these
requests start on fresh rings.

:meth:`QueueRun.to_json` is the replay a qtest client can play on a real QEMU
(:mod:`virtio_lab.hw.qtest` gives the convention): ``bars``, ``driver_ops`` (every guest
access from the driver's reset on) and per request ``after`` (the bytes the device
wrote, ISR, pending MSI-X bits, status, the queues' indices), computed by replaying the
same ops on a freshly plugged emulated device.
"""

from __future__ import annotations

import gc
from bisect import bisect_left, bisect_right
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..errors import VirtioLabError
from ..hw import qtest
from ..hw.guest_access import GuestDevice, status_text
from ..hw.guest_random import DEFAULT_SEED
from ..hw.machine import Machine
from ..hw.plug import Trace, plug
from ..hw.virtio_blk import default_disk
from ..pci import regs
from . import requests as rq
from .probe import _bars, boot, event_lines, with_default_backend

__all__ = ["queue", "QueueRun", "Request", "MODELLED", "blk_plan", "FORMAT"]

FORMAT = "virtio_lab queue replay 1"
#: virtio device id -> the driver whose requests are modelled
MODELLED = {4: "virtio_rng", 2: "virtio_blk", 1: "virtio_net"}
MAX_REQUESTS = 100_000


def blk_plan(k: int) -> tuple[str, int, bytes | None]:
    """Request k (from 0) of the default virtio-blk run: read, write, read again, of sector
    1 + k // 3; the write puts a line of text in the sector."""
    sector = 1 + k // 3
    kind = ("read", "write", "read")[k % 3]
    data = None
    if kind == "write":
        line = f"virtio_lab wrote sector {sector}\n".encode()
        data = (line * (512 // len(line) + 1))[:512]
    return kind, sector, data


@dataclass
class Request:
    """One request end to end: what was posted, its events, ops and the state it left.

    ``dev_ops`` is the span of the device's access log (GuestDevice.ops) it made; ``ops``
    the span of the replay's ``driver_ops`` (known once the replay is built).
    """

    number: int  # from 1
    kind: str
    queue: int
    posted: rq.Posted
    first_event: int
    last_event: int
    dev_ops: tuple[int, int] = (0, 0)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    ops: tuple[int, int] = (0, 0)
    _after: dict | None = field(default=None, repr=False)
    _run: Any = field(default=None, repr=False, compare=False)

    @property
    def after(self) -> dict:
        """What the request left, as the replay on a fresh device sees it (built on first use)."""
        if self._after is None and self._run is not None:
            self._run.ops  # builds the replay, which fills every request's after
        return self._after or {}

    @after.setter
    def after(self, value: dict) -> None:
        self._after = value

    @property
    def used_len(self) -> int | None:
        return self.posted.used_len

    @property
    def head(self) -> int:
        return self.posted.head

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "kind": self.kind, "queue": self.queue, "head": self.head,
                "used_len": self.used_len, "buffers": [{"addr": a, "len": n, "device_writes": w}
                                                       for a, n, w in self.posted.buffers],
                "events": [self.first_event, self.last_event], "ops": list(self.ops),
                "detail": self.posted.detail, "after": self.after}


class QueueRun:
    """The device at work: the trace, the driver and device state, and the replay.

    :meth:`post` makes more requests (the trace and the replay grow); the replay
    (``ops``, each request's ``after``) is built on first use.
    """

    def __init__(self, device: GuestDevice, kernel, first_guest_event: int, reset_at: int,
                 vid: int, seed: int, peer: str | None, initial: bytes | None, bars: dict[int, int]):
        self.device = device
        self.kernel = kernel
        self.first_guest_event = first_guest_event
        self.reset_at = reset_at
        self.vid = vid
        self.seed = seed
        self.peer = peer
        self.initial = initial
        self.bars = bars
        self.requests: list[Request] = []
        self._trace: Trace | None = None
        self._ops: list[qtest.Op] | None = None

    # ------------------------------------------------------------ what it holds
    @property
    def trace(self) -> Trace:
        """Plug, probe and requests as one trace (rebuilt when requests were added)."""
        dev = self.device
        dev.tracer._flush()
        if self._trace is None or len(self._trace.events) != len(dev.tracer.events):
            plug_trace = dev.trace
            self._trace = Trace(plug_trace.spec, plug_trace.machine, tuple(dev.tracer.events),
                                plug_trace.size)
        return self._trace

    @property
    def spec(self) -> str:
        return self.device.trace.spec.text

    @property
    def machine(self) -> Machine:
        return self.device.trace.machine

    @property
    def ram(self):
        return self.device.ram

    @property
    def vqs(self):
        """Linux's virtqueues (guest/virtio_ring.Vring), in creation order."""
        return self.kernel.vqs

    @property
    def disk(self) -> bytearray | None:
        return getattr(self.device.backend, "disk", None)

    @property
    def frames(self) -> list[bytes]:
        return list(getattr(self.device.backend, "frames", []))

    @property
    def ops(self) -> list[qtest.Op]:
        """The replay's driver_ops, with the emulation's answers to the reads."""
        if self._ops is None:
            self._build()
        return self._ops

    # ------------------------------------------------------------ more work
    def post(self, n: int = 1) -> list[Request]:
        """Make ``n`` more requests of the device's default kind (see the module docstring)."""
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_REQUESTS - len(self.requests):
            raise VirtioLabError(f"post takes a whole number of requests, at most "
                                 f"{MAX_REQUESTS - len(self.requests)} more, not {n!r}")
        with _collector_paused():
            new = [self._one(len(self.requests)) for _ in range(n)]
        self._invalidate()
        return new

    def _invalidate(self) -> None:
        """New accesses: the replay (ops, every request's after) is built again when asked for."""
        self._ops = None
        for r in self.requests:
            r._after = None

    def _one(self, k: int) -> Request:
        dev, lx = self.device, self.kernel
        start_ev, start_op = len(dev.tracer.events), len(dev.ops)
        if self.vid == 4:
            posted = rq.rng_read(lx)
        elif self.vid == 2:
            kind, sector, data = blk_plan(k)
            posted = rq.virtio_queue_rq(lx, kind, sector, data)
        else:
            posted = rq.start_xmit(lx, rq.arp_request(bytes(dev.vdev.config[:6]), k))
        if dev.unmodelled:
            raise VirtioLabError(dev.unmodelled)
        return self._record(posted, start_ev, start_op, len(dev.ops) - 1)

    def _record(self, posted: rq.Posted, start_ev: int, start_op: int, end_op: int,
                end_ev: int | None = None) -> Request:
        dev = self.device
        dev.tracer._flush()
        r = Request(len(self.requests) + 1, posted.kind, posted.queue, posted, start_ev,
                    len(dev.tracer.events) - 1 if end_ev is None else end_ev, (start_op, end_op), _run=self)
        r.ranges = _ranges(dev, self.kernel, r)
        self.requests.append(r)
        self._trace = None
        return r

    # ------------------------------------------------------------ the replay
    def _build(self) -> None:
        with _collector_paused():
            ops, where = _ops(self.device, self.bars, self.reset_at)
            for r in self.requests:
                mine = [where[n] for n in range(r.dev_ops[0], r.dev_ops[1] + 1) if n in where]
                r.ops = (min(mine), max(mine)) if mine else (0, 0)
            self._ops = ops
            _replay(self, self.initial, self.peer, self.seed)

    def to_json(self) -> dict[str, Any]:
        """The replay: replayable by any qtest client under :mod:`virtio_lab.hw.qtest`'s convention."""
        ops = self.ops
        m = self.machine
        spec = self.device.trace.spec
        extra = ["-seed", str(self.seed)]
        if spec.has("drive") and self.disk is not None:
            extra += ["-blockdev", f"driver=file,filename=IMAGE,node-name={spec.get('drive')}"]
        if self.peer:
            extra += ["-netdev", f"dgram,id={self.peer},local.type=unix,local.path=DIR/qemu.sock,"
                                 f"remote.type=unix,remote.path=DIR/peer.sock"]
        return {
            "format": FORMAT,
            "device": self.spec,
            "machine": m.name,
            "root_port": m.root_port,
            "qemu": "7.2",
            "address": "01:00.0" if m.root_port else "00:03.0",
            "extra": extra,
            "disk": ({"size": len(self.disk), "pattern": "byte i = i mod 251"}
                     if self.disk is not None else None),
            "bars": {str(k): v for k, v in sorted(self.bars.items())},
            "rings": [{"index": q.index, "name": q.name, "num": q.num, "desc": q.desc, "avail": q.avail,
                       "used": q.used} for q in self.vqs],
            "driver_ops": [op.to_json() for op in ops],
            "requests": [r.as_dict() for r in self.requests],
            "frames": [f.hex() for f in self.frames],
        }

    as_dict = to_json

    @property
    def guest_events(self) -> tuple:
        return self.trace.events[self.first_guest_event:]

    def narrate(self, all_events: bool = False) -> str:
        """The requests' events, one a line (``all_events``: the probe's as well)."""
        events = self.trace.events
        start = self.first_guest_event if all_events else (self.requests[0].first_event
                                                            if self.requests else len(events))
        lines = event_lines(events[start:], "ram", 5)
        self.ops  # the afters
        for r in self.requests:
            a = r.after
            lines.append(f"=> request {r.number} ({r.kind}) on queue {r.queue}: head {r.head}, used len "
                         f"{r.used_len}; ISR {a.get('isr')}, MSI-X pending {a.get('msix_pending')}, "
                         f"status {status_text(a.get('status', 0))}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<QueueRun {self.spec!r} on {self.machine.label}: {len(self.requests)} request(s), "
                f"{len(self.device.tracer.events)} events>")


@contextmanager
def _collector_paused():
    """A run allocates tens of thousands of long-lived, acyclic records (events, writes): the
    cycle collector would walk them all again and again, making a long run quadratic. It
    is paused for the run and restored after (nothing here leaves cycles to collect)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _check(spec: str, machine: str, root_port: bool, requests: int) -> None:
    if not isinstance(spec, str):
        raise VirtioLabError(f"queue takes a -device spec (a string), not {type(spec).__name__}")
    if not isinstance(requests, int) or isinstance(requests, bool) or not 0 <= requests <= MAX_REQUESTS:
        raise VirtioLabError(f"requests is a whole number from 0 to {MAX_REQUESTS}, not {requests!r}")
    Machine(machine, root_port)


def queue(spec: str, machine: str = "pc", root_port: bool = False, requests: int = 1, *,
          disk: bytes | bytearray | None = None, seed: int = DEFAULT_SEED, qemu: str = "7.2") -> QueueRun:
    """Probe ``spec`` as :func:`~virtio_lab.guest.probe.probe` does, then run ``requests``
    requests through its queue (see the module docstring for what each device does).

    ``disk`` is virtio-blk's image (default: 1 MiB, byte i = i mod 251); ``seed`` is the
    ``-seed`` whose stream virtio-rng's bytes come from; ``qemu`` the release (the device at
    work is modelled for 7.2). Bad input raises :class:`~virtio_lab.errors.VirtioLabError`
    with one line.
    """
    if qemu != "7.2":
        raise VirtioLabError(f"the device at work is modelled for QEMU 7.2 only, not {qemu!r}: its "
                             f"virtqueue, device handlers and virtio_error texts are 7.2's (--qemu 7.2)")
    _check(spec, machine, root_port, requests)
    spec = with_default_backend(spec.strip())
    trace = plug(spec, machine, root_port)
    if trace.error is not None:
        raise VirtioLabError(f"QEMU refuses the device: {trace.error}")
    vid = _model(trace)
    if vid not in MODELLED:
        raise VirtioLabError(f"the queue replay models virtio-rng, virtio-blk and virtio-net requests; "
                             f"{trace.spec.type}'s queues are set up by the probe (python -m virtio_lab "
                             f"probe {trace.spec.type}) but its requests are not modelled")
    if disk is not None and not isinstance(disk, (bytes, bytearray)):
        raise VirtioLabError(f"a disk image is bytes, not {type(disk).__name__}")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 1 << 64:
        raise VirtioLabError(f"a seed is an integer from 0 to 2**64 - 1, as QEMU's -seed, not {seed!r}")
    image = (bytearray(disk) if disk is not None else default_disk()) if vid == 2 else None
    peer = trace.spec.get("netdev") if vid == 1 else None
    dev = GuestDevice(trace)
    dev.attach_backend(disk=image, peer=peer, seed=seed)
    first = len(dev.tracer.events)
    _, res = boot(dev)
    lx = res.kernel
    if res.driver != MODELLED[vid] or res.error or not dev.vdev.status & 4:
        raise VirtioLabError(f"the Linux probe did not reach DRIVER_OK ({res.error or 'no driver'}): "
                             f"there is no queue to use")
    if dev.unmodelled:
        raise VirtioLabError(dev.unmodelled)
    dev.tracer._flush()
    reset_at = next(e.index for e in dev.tracer.events[first:] if e.function == "vp_reset")
    config = bytes(dev.config[:res.cfg_size])
    bars = {b["index"]: b["address"] for b in _bars(dev, config)}
    run = QueueRun(dev, lx, first, reset_at, vid, seed, peer,
                   bytes(image) if image is not None else None, bars)
    if vid == 4 and requests:  # request 1 is the probe's own request_entropy
        events = dev.tracer.events
        start_ev = next(e.index for e in events[first:] if e.function == "request_entropy")
        end_ev = max(e.index for e in events if e.function == "random_recv_done")
        ops = [i for i, op in enumerate(dev.ops) if start_ev <= op[-1] <= end_ev]
        run._record(lx.state["rng"].posted, start_ev, ops[0], ops[-1], end_ev)
        requests -= 1
    run.post(requests)
    return run


def _model(trace: Trace) -> int:
    from ..hw.plug import _types
    info = _types().get(trace.spec.type)
    return info.model.virtio_id if info else 0


def _ranges(dev: GuestDevice, lx, r: Request) -> list[tuple[int, int]]:
    """What to compare after a request: its queue's used ring, the buffers the device may
    write, and every byte the device stored meanwhile."""
    vq = lx.vqs[r.queue]
    spans = [(vq.used, 4 + 8 * vq.num + 2)]
    spans += [(a, n) for a, n, w in r.posted.buffers if w]
    lo = bisect_left(dev.dma, r.dev_ops[0], key=lambda t: t[2])  # dma is in access order
    hi = bisect_right(dev.dma, r.dev_ops[1] + 1, key=lambda t: t[2])
    spans += [(a, n) for a, n, _ in dev.dma[lo:hi]]
    spans.sort()
    merged: list[list[int]] = []
    for a, n in spans:
        if merged and a <= merged[-1][0] + merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], a + n - merged[-1][0])
        else:
            merged.append([a, n])
    return [(a, n) for a, n in merged]


def _ops(dev: GuestDevice, bars: dict[int, int], reset_at: int) -> tuple[list[qtest.Op], dict[int, int]]:
    """The guest's accesses from the driver's reset on, as replay ops with absolute addresses
    (contiguous RAM stores of one event merged), and device-op number -> op position."""
    kinds = {b.index: b.kind for b in dev.facts.bars}
    out: list[qtest.Op] = []
    where: dict[int, int] = {}
    for n, op in enumerate(dev.ops):
        if op[-1] < reset_at:
            continue
        if op[0] == "ram":
            _, addr, data, ev = op
            last = out[-1] if out else None
            if last is not None and last.kind == "ram_write" and last.event == ev \
                    and last.addr + len(last.data) == addr:
                out[-1] = qtest.Op("ram_write", last.addr, 0, None, last.data + data, ev)
            else:
                out.append(qtest.Op("ram_write", addr, 0, None, data, ev))
        elif op[0] == "cfg":
            _, rw, off, size, value, ev = op
            out.append(qtest.Op("cfg_read" if rw == "r" else "cfg_write", off, size, value, b"", ev))
        else:
            _, rw, index, off, size, value, ev = op
            space = "io" if kinds.get(index) == "io" else "mmio"
            for part in ((0, 4) if size == 8 else (0,)):
                n_ = 4 if size == 8 else size
                out.append(qtest.Op(f"{space}_{'read' if rw == 'r' else 'write'}", bars[index] + off + part,
                                    n_, (value >> 8 * part) & ((1 << 8 * n_) - 1), b"", ev))
        where[n] = len(out) - 1
    return out, where


def _replay(run: QueueRun, initial: bytes | None, peer: str | None, seed: int) -> None:
    """Play the ops on a fresh emulated device (the convention a real QEMU gets): the reads'
    answers and each request's ``after`` come from there, so both sides start alike."""
    m = run.machine
    dev = qtest.start(run.spec, m.name, m.root_port, run.bars,
                      disk=bytearray(initial) if initial is not None else None, peer=peer, seed=seed)
    stops = {r.ops[1]: r for r in run.requests}
    ops = []
    for i, op in enumerate(run._ops):
        before = qtest.indices(dev) if op.kind in ("mmio_write", "io_write") else None
        notifies = dev.notifies
        value = qtest.apply(dev, op)
        if op.is_read:
            op = qtest.Op(op.kind, op.addr, op.size, value, b"", op.event)
        elif before is not None:
            moved = tuple(v for q, v in qtest.indices(dev).items() if before.get(q) != v)
            if moved or dev.notifies != notifies:
                op = qtest.Op(op.kind, op.addr, op.size, op.value, b"", op.event, moved,
                              dev.notifies != notifies)
        ops.append(op)
        r = stops.get(i)
        if r is not None:
            r.after = qtest.snapshot(dev, r.ranges)
            r.after["frames"] = [f.hex() for f in getattr(dev.backend, "frames", [])]
    run._ops = ops
