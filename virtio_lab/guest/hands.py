"""A driver without Linux's rules: the learner's hands on the rings and registers.

:class:`Hands` stores descriptors and ring entries where the learner says, writes device
registers and notifies, so that what QEMU does with a chain that loops, a head past the
table, a buffer outside RAM, a queue never enabled or a request before DRIVER_OK can be
seen (and replayed on a real QEMU: every store and access joins the replay's
``driver_ops``). Its steps are events of their own (function ``hand``, source
``(you)``); QEMU's answers are QEMU's events as always. The CPU takes no interrupt
while the hands work (Linux's handlers would trip over chains they did not post), so a
raised INTx line stays up and an MSI-X message waits, as on a real QEMU replaying the
same ops.

:data:`FAULTS` names the classic mistakes, each a function of a :class:`Hands`.
"""

from __future__ import annotations

from contextlib import contextmanager

from ..errors import VirtioLabError
from ..hw.guest_ram import DEFAULT_RAM_SIZE
from ..pci import regs
from . import requests as rq

__all__ = ["Hands", "FAULTS", "fault"]

SRC = "(you)"
HOLE = DEFAULT_RAM_SIZE + 0x100000  # an address in the unassigned hole above RAM
NEXT, WRITE, INDIRECT = 1, 2, 4


class Hands:
    """Raw guest access on a :class:`~virtio_lab.guest.queue.QueueRun`."""

    def __init__(self, run):
        self.run = run
        self.dev = run.device
        self.lx = run.kernel
        self.mem = run.kernel.mem

    # ------------------------------------------------------------ bookkeeping
    def step(self, text: str, **details):
        return self.dev.tracer.call("hand", SRC, text, **details)

    @contextmanager
    def request(self, label: str, queue: int | None = None):
        """Group the steps inside as one request of the run (kind ``label``)."""
        dev = self.dev
        dev.tracer._flush()
        start_ev, start_op = len(dev.tracer.events), len(dev.ops)
        q = self.data_queue if queue is None else queue
        posted = rq.Posted(label, q, -1, (), {})
        yield posted
        self.run._record(posted, start_ev, start_op, max(len(dev.ops) - 1, start_op))
        self.run._invalidate()

    @property
    def data_queue(self) -> int:
        """The queue the device's requests go on: rng 0, blk 0, net TX 1."""
        return 1 if self.run.vid == 1 else 0

    def vq(self, q: int | None = None):
        q = self.data_queue if q is None else q
        if not isinstance(q, int) or not 0 <= q < len(self.lx.vqs):
            raise VirtioLabError(f"queue is 0..{len(self.lx.vqs) - 1} (the driver's queues), not {q!r}")
        return self.lx.vqs[q]

    # ------------------------------------------------------------ ring stores
    def desc(self, index: int, addr: int, length: int, flags: int = 0, next: int = 0,
             queue: int | None = None, table: int | None = None) -> None:
        """Write one 16-byte descriptor (in the ring's table, or at ``table``)."""
        vq = self.vq(queue)
        for name, v, lim in (("index", index, 1 << 16), ("addr", addr, 1 << 64), ("length", length, 1 << 32),
                             ("flags", flags, 1 << 16), ("next", next, 1 << 16)):
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < lim:
                raise VirtioLabError(f"a descriptor's {name} is an integer from 0 to {lim - 1}, not {v!r}")
        base = vq.desc if table is None else table
        at = base + 16 * index
        with self.step(f"Write descriptor {index} at 0x{at:x}: addr 0x{addr:x}, len {length}, flags "
                       f"{flags} ({_flags(flags)}), next {next}.", queue=vq.index, index=index):
            self.mem.store(at, addr.to_bytes(8, "little") + length.to_bytes(4, "little")
                           + flags.to_bytes(2, "little") + next.to_bytes(2, "little"))

    def publish(self, *heads: int, queue: int | None = None, idx: int | None = None) -> None:
        """Put ``heads`` in the available ring after the driver's last entry, then avail->idx
        (or ``idx`` itself, to lie about how many there are)."""
        vq = self.vq(queue)
        with self.step(f"Publish head(s) {', '.join(map(str, heads)) or 'none'} on queue {vq.index}.",
                       queue=vq.index):
            for h in heads:
                slot = vq.avail_idx_shadow % vq.num
                self.mem.store16(vq.avail + 4 + 2 * slot, h)
                vq.avail_idx_shadow = (vq.avail_idx_shadow + 1) & 0xFFFF
            value = vq.avail_idx_shadow if idx is None else idx
            self.mem.store16(vq.avail + 2, value)

    def kick(self, queue: int | None = None) -> None:
        """The notify write for ``queue``: what vp_notify does, without asking kick_prepare."""
        vq = self.vq(queue)
        bar, off = vq.notify_at
        with self.step(f"Notify queue {vq.index}: write {vq.index} to 0x{vq.notify_address:x}.",
                       queue=vq.index):
            self.dev.bar_write(bar, off, vq.index, 2)

    def notify_raw(self, queue: int) -> None:
        """A notify for any queue number (one the driver never set up, too)."""
        if not isinstance(queue, int) or not 0 <= queue < 1024:
            raise VirtioLabError(f"a queue number is 0..1023, not {queue!r}")
        with self.step(f"Notify queue {queue}."):
            if self.lx.modern:
                self.dev.bar_write(self.lx.notify_bar, self.lx.notify_offset + queue * self.lx.notify_mult,
                                   queue, 2)
            else:
                self.dev.bar_write(0, regs.VIRTIO_PCI_QUEUE_NOTIFY, queue, 2)

    # ------------------------------------------------------------ registers
    def status(self, value: int) -> None:
        with self.step(f"Write device status 0x{value:02x}."):
            self.lx.set_status(value)

    def common(self, name: str, value: int) -> None:
        if not self.lx.modern:
            raise VirtioLabError("a legacy device has no common configuration: use the legacy header")
        with self.step(f"Write common config {name} = 0x{value:x}."):
            self.dev.common_write(name, value)

    def reset_and_setup(self, q: int, desc: int, avail: int, used: int, num: int, *,
                        enable: bool = True, driver_ok: bool = True) -> None:
        """Reset the device and set one queue up by hand: features (the driver's), the ring
        at ``desc``/``avail``/``used`` (legacy: the PFN of ``desc``), optionally no
        queue_enable and no DRIVER_OK."""
        lx, d = self.lx, self.dev
        feats = lx.res.features
        with self.step(f"Reset, negotiate 0x{feats:x} again, set queue {q} up at 0x{desc:x} ({num} entries)"
                       + ("" if enable else ", but never enable it")
                       + ("" if driver_ok else ", and stop before DRIVER_OK") + "."):
            lx.set_status(0)
            lx.set_status(1)
            lx.set_status(3)
            if lx.modern:
                d.common_write("driver_feature_select", 0)
                d.common_write("driver_feature", feats & 0xFFFFFFFF)
                d.common_write("driver_feature_select", 1)
                d.common_write("driver_feature", feats >> 32)
                lx.set_status(0xB)
                d.common_write("queue_select", q)
                d.common_write("queue_size", num)
                for reg, addr in (("desc", desc), ("avail", avail), ("used", used)):
                    d.common_write(f"queue_{reg}_lo", addr & 0xFFFFFFFF)
                    d.common_write(f"queue_{reg}_hi", addr >> 32)
                if enable:
                    d.common_write("queue_enable", 1)
            else:
                d.bar_write(0, regs.VIRTIO_PCI_GUEST_FEATURES, feats & 0xFFFFFFFF, 4)
                d.bar_write(0, regs.VIRTIO_PCI_QUEUE_SEL, q, 2)
                if enable:
                    d.bar_write(0, regs.VIRTIO_PCI_QUEUE_PFN, desc >> 12, 4)
            if driver_ok:
                lx.set_status(0xF if lx.modern else 7)
        vq = self.vq(q)
        vq.avail_idx_shadow = 0


def _flags(flags: int) -> str:
    return "|".join(n for b, n in ((1, "NEXT"), (2, "WRITE"), (4, "INDIRECT")) if flags & b) or "none"


def _buffer(h: Hands) -> tuple[int, int]:
    """A device-sized buffer in RAM for the faults (rng: writable 64 bytes, else readable)."""
    return h.mem.alloc("hands", 4096, 4096), 64


def _dir(h: Hands) -> int:
    return WRITE if h.run.vid == 4 else 0


# ---------------------------------------------------------------- the faults
def _loop(h: Hands) -> None:
    vq, (buf, n) = h.vq(), _buffer(h)
    d = vq.free_head
    h.desc(d, buf, n, NEXT | _dir(h), next=d)  # its own next: the chain never ends
    h.publish(d)
    h.kick()


def _next_out_of_range(h: Hands) -> None:
    vq, (buf, n) = h.vq(), _buffer(h)
    d = vq.free_head
    h.desc(d, buf, n, NEXT | _dir(h), next=vq.num)
    h.publish(d)
    h.kick()


def _head_out_of_range(h: Hands) -> None:
    h.publish(h.vq().num)
    h.kick()


def _zero_length(h: Hands) -> None:
    vq, (buf, _) = h.vq(), _buffer(h)
    d = vq.free_head
    h.desc(d, buf, 0, _dir(h))
    h.publish(d)
    h.kick()


def _outside_ram(h: Hands) -> None:
    """A buffer in the unassigned hole above RAM; blk and net chains are otherwise whole."""
    vq = h.vq()
    d = vq.free_head
    if h.run.vid == 2:  # header in the hole, data and status in RAM
        buf = h.mem.alloc("hands", 4096, 4096)
        h.desc(d, HOLE, 16, NEXT, next=(d + 1) % vq.num)
        h.desc((d + 1) % vq.num, buf, 512, NEXT | WRITE, next=(d + 2) % vq.num)
        h.desc((d + 2) % vq.num, buf + 512, 1, WRITE)
    else:
        h.desc(d, HOLE, 64 if h.run.vid == 4 else 54, _dir(h))
    h.publish(d)
    h.kick()


def _indirect_bad_size(h: Hands) -> None:
    vq, (buf, _) = h.vq(), _buffer(h)
    d = vq.free_head
    h.desc(d, buf, 24, INDIRECT)  # not a multiple of 16
    h.publish(d)
    h.kick()


def _wrong_order(h: Hands) -> None:
    vq, (buf, _) = h.vq(), _buffer(h)
    d = vq.free_head
    h.desc(d, buf, 16, NEXT | WRITE, next=(d + 1) % vq.num)
    h.desc((d + 1) % vq.num, buf + 64, 16, 0)  # readable after writable
    h.publish(d)
    h.kick()


def _avail_jump(h: Hands) -> None:
    vq = h.vq()
    h.publish(idx=(vq.avail_idx_shadow + vq.num + 1) & 0xFFFF)
    h.kick()


def _queue_enable_value(h: Hands) -> None:
    vq = h.vq()
    h.common("queue_select", vq.index)
    h.common("queue_enable", 2)


def _ring_past_ram(h: Hands) -> None:
    vq = h.vq()
    desc = DEFAULT_RAM_SIZE - 0x1000  # the table fits; the rings after it run off the end of RAM
    avail, used = desc + 16 * vq.num, DEFAULT_RAM_SIZE - 8
    h.reset_and_setup(vq.index, desc, avail, used, vq.num)


def _not_enabled(h: Hands) -> None:
    vq = h.vq()
    h.reset_and_setup(vq.index, vq.desc, vq.avail, vq.used, vq.num, enable=False)
    _post_one(h)
    h.kick()


def _before_driver_ok(h: Hands) -> None:
    vq = h.vq()
    h.reset_and_setup(vq.index, vq.desc, vq.avail, vq.used, vq.num, driver_ok=False)
    _post_one(h)
    h.kick()
    h.status(0xF if h.lx.modern else 7)


def _post_one(h: Hands) -> None:
    """One well-formed request in descriptor 0 (rng: a 64-byte buffer; blk: a read of sector 1;
    net: an ARP frame)."""
    vq = h.vq()
    buf = h.mem.alloc("hands", 4096, 4096)
    if h.run.vid == 4:
        h.desc(0, buf, 64, WRITE)
    elif h.run.vid == 2:
        with h.step("A read of sector 1: header, data, status."):
            h.mem.store(buf, (0).to_bytes(8, "little") + (1).to_bytes(8, "little"))
        h.desc(0, buf, 16, NEXT, next=1)
        h.desc(1, buf + 512, 512, NEXT | WRITE, next=2)
        h.desc(2, buf + 16, 1, WRITE)
    else:
        frame = bytes(12) + rq.arp_request(bytes(h.dev.vdev.config[:6]))
        with h.step("An ARP frame behind a zero virtio_net_hdr."):
            h.mem.store(buf, frame)
        h.desc(0, buf, len(frame), 0)
    h.publish(0)
    del vq


#: name -> (what it does, which devices, the steps)
FAULTS = {
    "loop": ("a chain whose descriptor names itself as next", _loop),
    "next-out-of-range": ("a NEXT pointing past the descriptor table", _next_out_of_range),
    "head-out-of-range": ("an available-ring entry naming no descriptor", _head_out_of_range),
    "zero-length": ("a buffer of length 0", _zero_length),
    "outside-ram": ("a buffer in the unassigned hole above RAM", _outside_ram),
    "indirect-bad-size": ("an INDIRECT table whose length is not a multiple of 16", _indirect_bad_size),
    "wrong-order": ("a device-readable buffer after a writable one", _wrong_order),
    "avail-jump": ("avail->idx moved further ahead than the ring is long", _avail_jump),
    "queue-enable-value": ("queue_enable written with 2 (modern only)", _queue_enable_value),
    "ring-past-ram": ("a queue whose rings run past the end of RAM", _ring_past_ram),
    "not-enabled": ("a queue set up but never enabled, then used", _not_enabled),
    "before-driver-ok": ("a request before DRIVER_OK, then DRIVER_OK", _before_driver_ok),
}


def fault(run, name: str):
    """Play fault ``name`` (see FAULTS) on ``run`` as one more request; returns it."""
    if name not in FAULTS:
        raise VirtioLabError(f"no fault {name!r}: one of {', '.join(FAULTS)}")
    if name == "queue-enable-value" and not run.kernel.modern:
        raise VirtioLabError("queue-enable-value needs a modern device (a legacy one has no queue_enable)")
    h = Hands(run)
    with h.request(f"fault {name}"):
        FAULTS[name][1](h)
    return run.requests[-1]
