"""Linux 6.1's side of a split virtqueue (drivers/virtio/virtio_ring.c), store by store.

:class:`Vring` is a ``struct vring_virtqueue`` with its split ring: the three areas in
guest RAM (``vring_create_virtqueue_split`` → ``vring_alloc_queue_split`` →
``vring_init``: the descriptor table, the available ring right after it, the used ring
at the next ``vring_align`` boundary after ``avail->ring[num]`` and ``used_event``) and
the driver's private bookkeeping that never leaves the guest: the free list
(``desc_extra[i].next``, initially i + 1), ``free_head``, ``num_free``, the tokens
(``desc_state[head].data``), ``avail_idx_shadow``, ``avail_flags_shadow``,
``num_added`` and ``last_used_idx``.

The functions are Linux's: ``virtqueue_add_split`` (indirect when negotiated and more
than one buffer: ``alloc_indirect_split``), ``virtqueue_kick_prepare_split``
(``vring_need_event`` on ``avail_event`` with EVENT_IDX, else ``VRING_USED_F_NO_NOTIFY``),
``virtqueue_get_buf_ctx_split`` (+ ``detach_buf_split``), ``virtqueue_disable_cb_split``,
``virtqueue_enable_cb_prepare_split``, ``virtqueue_poll_split``,
``virtqueue_enable_cb_delayed_split`` and ``vring_interrupt``. Every store into the
shared areas is a :class:`~virtio_lab.trace.Write` in space ``"ram"`` on the event of
the function that made it; the guest's loads of the used ring are plain reads.

Addresses are the kernel allocator's choice (``alloc_pages_exact`` for the ring: no DMA
API without ACCESS_PLATFORM, so physical pages; ``kmalloc`` for indirect tables): the
ones here are illustrative and fixed, so every run is the same. Written from Linux's
behaviour (GPLv2); no code copied.
"""

from __future__ import annotations

from ..hw.virtqueue import (
    VRING_AVAIL_F_NO_INTERRUPT,
    VRING_DESC_F_INDIRECT,
    VRING_DESC_F_NEXT,
    VRING_DESC_F_WRITE,
    VRING_USED_F_NO_NOTIFY,
    vring_need_event,
)
from ..errors import VirtioLabError
from ..trace import new_write

__all__ = ["Vring", "vring_size", "vring_layout", "GuestMemory", "RING", "SMP_CACHE_BYTES"]

RING = "drivers/virtio/virtio_ring.c"
SMP_CACHE_BYTES = 64  # x86-64: the modern ring's alignment (virtio_pci_modern.c: setup_vq)
PAGE_SIZE = 4096


def vring_layout(desc: int, num: int, align: int) -> tuple[int, int]:
    """include/uapi/linux/virtio_ring.h:vring_init: (avail, used) for a table at ``desc``."""
    avail = desc + 16 * num
    used = (avail + 4 + 2 * num + 2 + align - 1) & ~(align - 1)
    return avail, used


def vring_size(num: int, align: int) -> int:
    """include/uapi/linux/virtio_ring.h:vring_size: the bytes the three areas take."""
    return ((16 * num + 2 * (3 + num) + align - 1) & ~(align - 1)) + 2 * 3 + 8 * num


class GuestMemory:
    """The guest kernel's view of RAM: CPU stores (recorded) and the illustrative allocators.

    ``alloc_pages`` hands out zeroed page-aligned blocks (alloc_pages_exact) and
    ``kmalloc`` small blocks, each from its own fixed region, so the addresses are
    stable from run to run; the kernel's real choices differ.
    """

    PAGES = 0x02A00000  # rings (setup_vq's dma allocations)
    SLAB = 0x03000000  # kmalloc: indirect tables, request headers, driver structs
    DATA = 0x04000000  # pages for data: the page cache, socket buffers
    HANDS = 0x05000000  # buffers the learner's hands (guest/hands.py) use

    def __init__(self, dev):
        self.dev = dev
        self.ram = dev.ram
        self.tr = dev.tracer
        self._next = {"pages": self.PAGES, "slab": self.SLAB, "data": self.DATA, "hands": self.HANDS}
        self._free: dict[int, list[int]] = {}

    def store(self, addr: int, data: bytes) -> None:
        """A CPU store into guest RAM, recorded on the open event (and as a guest access)."""
        for a, old, new in self.ram.write(addr, data):
            if self.dev.record:
                self.tr.record(new_write("ram", a, old, new))
                self.dev.ops.append(("ram", a, new, len(self.tr.events)))

    def store16(self, addr: int, v: int) -> None:
        self.store(addr, (v & 0xFFFF).to_bytes(2, "little"))

    def load16(self, addr: int) -> int:
        return self.ram.read_int(addr, 2)

    def load32(self, addr: int) -> int:
        return self.ram.read_int(addr, 4)

    def alloc(self, pool: str, size: int, align: int = 8) -> int:
        addr = (self._next[pool] + align - 1) & ~(align - 1)
        self._next[pool] = addr + size
        return addr

    def ring_pages(self, index: int, size: int) -> int:
        """Queue ``index``'s ring: 64 KiB apart from PAGES up (room for 1024 entries even with
        the legacy 4096-byte alignment), zeroed as alloc_pages_exact(__GFP_ZERO) gives them."""
        if size > 0x10000:
            raise VirtioLabError(f"a ring of {size} bytes does not fit the 64 KiB this model gives each queue")
        return self.PAGES + 0x10000 * index

    def alloc_pages(self, size: int) -> int:
        """alloc_pages_exact(PAGE_ALIGN(size), __GFP_ZERO): zeroed whole pages (RAM starts zeroed)."""
        return self.alloc("pages", (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1), PAGE_SIZE)

    def kmalloc(self, size: int) -> int:
        """kmalloc: an object of the power-of-two size class that fits (>= 8); the last one
        freed comes back first, as SLUB's per-CPU freelist gives it."""
        cls = max(8, 1 << (size - 1).bit_length())
        free = self._free.get(cls)
        return free.pop() if free else self.alloc("slab", cls, cls)

    def kfree(self, addr: int, size: int) -> None:
        self._free.setdefault(max(8, 1 << (size - 1).bit_length()), []).append(addr)


class Vring:
    """One ``struct vring_virtqueue`` on a split ring (see the module docstring)."""

    def __init__(self, mem: GuestMemory, index: int, num: int, align: int, name: str,
                 callback: bool, event: bool, indirect: bool):
        self.mem, self.index, self.num, self.align, self.name = mem, index, num, align, name
        self.callback, self.event, self.indirect = callback, event, indirect
        self.size = vring_size(num, align)
        self.desc = mem.ring_pages(index, self.size)
        self.avail, self.used = vring_layout(self.desc, num, align)
        self.free_head = 0
        self.num_free = num
        self.extra_next = [i + 1 for i in range(num - 1)] + [0]  # vring_alloc_desc_extra
        self.extra_len = [0] * num
        self.extra_flags = [0] * num
        self.data: list = [None] * num  # desc_state[head].data: the driver's token
        self.indir: list = [None] * num  # desc_state[head].indir_desc: (table address, count)
        self.avail_idx_shadow = 0
        self.avail_flags_shadow = 0
        self.num_added = 0
        self.last_used_idx = 0
        self.event_triggered = False
        self.broken = False
        self.notify_address = 0  # vq->priv: where vp_notify writes
        self.notify_at = (0, 0)  # the same, as (BAR index, offset in the BAR)
        self.vector = 0xFFFF  # the MSI-X vector setup_vq gave it (info->msix_vector)

    @property
    def used_event(self) -> int:
        """vring_used_event: avail->ring[num], where the driver says when it wants an interrupt."""
        return self.avail + 4 + 2 * self.num

    @property
    def avail_event(self) -> int:
        """vring_avail_event: used->ring[num], where the device says when it wants a notify."""
        return self.used + 4 + 8 * self.num

    def call(self, fn: str, text: str, **kw):
        return self.mem.dev.call(fn, RING, text, **kw)

    # ---------------------------------------------------------------- setup
    def init_split(self) -> None:
        """virtqueue_vring_init_split: no callback means "don't bother me": avail_flags_shadow
        gets NO_INTERRUPT and, without EVENT_IDX, avail->flags too."""
        if not self.callback:
            self.avail_flags_shadow |= VRING_AVAIL_F_NO_INTERRUPT
            if not self.event:
                self.mem.store16(self.avail, self.avail_flags_shadow)

    # ---------------------------------------------------------------- add
    def add(self, out: list[tuple[int, int]], ins: list[tuple[int, int]], token, what: str) -> int:
        """virtqueue_add_split: ``out`` buffers the device reads, then ``ins`` it writes, as
        one chain; returns the head (or -1 when the ring is full: -ENOSPC)."""
        total = len(out) + len(ins)
        m = self.mem
        use_indirect = self.indirect and total > 1 and self.num_free
        head = self.free_head
        with self.call("virtqueue_add_split",
                       f"Queue {self.index} ({self.name}): put {what} on the ring as one chain of "
                       f"{total} buffer{'s' if total > 1 else ''} ({len(out)} the device reads, "
                       f"{len(ins)} it writes), head {head} from the free list"
                       + (": more than one buffer and INDIRECT_DESC negotiated, so they go in an "
                          "indirect table and take one ring descriptor." if use_indirect else "."),
                       queue=self.index, head=head, indirect=bool(use_indirect)):
            if use_indirect:
                table = m.kmalloc(16 * total)
                m.tr.phase(f"alloc_indirect_split: kmalloc'd a {total}-entry table at 0x{table:x} "
                           f"(illustrative), its next fields preset to 1..{total}; then the buffers "
                           f"go in it, NEXT on all but the last.", table=table)
                for i in range(total):  # each entry's next is preset to i + 1
                    m.store16(table + 16 * i + 14, i + 1)
                descs, i, used_descs = table, 0, 1
            else:
                descs, i, used_descs = self.desc, head, total
            if self.num_free < used_descs:
                m.tr.phase(f"Only {self.num_free} free descriptor(s): -ENOSPC.")
                return -1
            prev = i
            for n, (addr, length) in enumerate(out + ins):
                flags = VRING_DESC_F_NEXT | (VRING_DESC_F_WRITE if n >= len(out) else 0)
                prev = i
                i = self._add_desc(descs, i, addr, length, flags, use_indirect)
            # the last one doesn't continue
            last = descs + 16 * prev
            m.store16(last + 12, m.load16(last + 12) & ~VRING_DESC_F_NEXT)
            if use_indirect:
                m.tr.phase(f"The ring's desc[{head}] points at the table: addr 0x{descs:x}, len {16 * total}, "
                           f"flags INDIRECT.", head=head)
                self._add_desc(self.desc, head, descs, 16 * total, VRING_DESC_F_INDIRECT, False)
                self.indir[head] = (descs, total)
            self.num_free -= used_descs
            self.free_head = self.extra_next[head] if use_indirect else i
            self.data[head] = token
            slot = self.avail_idx_shadow & (self.num - 1)
            m.tr.phase(f"avail->ring[{slot}] = {head}: the chain's head goes in the available ring "
                       f"(slot = avail_idx_shadow {self.avail_idx_shadow} mod {self.num}).", slot=slot)
            m.store16(self.avail + 4 + 2 * slot, head)
            self.avail_idx_shadow = (self.avail_idx_shadow + 1) & 0xFFFF
            self.num_added += 1
            m.tr.phase(f"virtio_wmb (a write barrier: descriptors and ring entry before the index), then "
                       f"avail->idx = {self.avail_idx_shadow}: the chain is published (num_free "
                       f"{self.num_free}, free_head {self.free_head}).", avail_idx=self.avail_idx_shadow)
            m.store16(self.avail + 2, self.avail_idx_shadow)
        return head

    def _add_desc(self, table: int, i: int, addr: int, length: int, flags: int, indirect: bool) -> int:
        """virtqueue_add_desc_split: flags, addr, len (and, in the ring, next from the free list)."""
        m = self.mem
        d = table + 16 * i
        m.store16(d + 12, flags)
        m.store(d, addr.to_bytes(8, "little"))
        m.store(d + 8, length.to_bytes(4, "little"))
        if indirect:
            return m.load16(d + 14)
        nxt = self.extra_next[i]
        m.store16(d + 14, nxt)
        self.extra_len[i], self.extra_flags[i] = length, flags
        return nxt

    # ---------------------------------------------------------------- kick
    def kick_prepare(self) -> bool:
        """virtqueue_kick_prepare_split: does the device want to hear about the new chains?"""
        m = self.mem
        old = (self.avail_idx_shadow - self.num_added) & 0xFFFF
        new = self.avail_idx_shadow
        self.num_added = 0
        with self.call("virtqueue_kick_prepare_split",
                       f"Queue {self.index}: virtio_mb (a full barrier: the new avail->idx must be "
                       f"visible before the device's request for notifications is read), then decide."):
            if self.event:
                ev = m.load16(self.avail_event)
                kick = vring_need_event(ev, new, old)
                m.tr.phase(f"EVENT_IDX: avail_event (used->ring[{self.num}]) = {ev}; avail->idx went "
                           f"{old} → {new}: vring_need_event says {'notify' if kick else 'no notify'}.",
                           kick=kick)
            else:
                flags = m.load16(self.used)
                kick = not flags & VRING_USED_F_NO_NOTIFY
                m.tr.phase(f"used->flags = {flags}: VRING_USED_F_NO_NOTIFY is "
                           f"{'clear: notify' if kick else 'set: the device asked for no notify'}.",
                           kick=kick)
            return kick

    # ---------------------------------------------------------------- used
    def more_used(self) -> bool:
        return self.last_used_idx != self.mem.load16(self.used + 2)

    def get_buf(self):
        """virtqueue_get_buf_ctx_split: the next used chain as (token, len), or None."""
        m = self.mem
        if self.broken or not self.more_used():
            return None
        with self.call("virtqueue_get_buf_ctx_split",
                       f"Queue {self.index}: used->idx {m.load16(self.used + 2)} is past last_used_idx "
                       f"{self.last_used_idx}; virtio_rmb, then read the used element."):
            slot = self.last_used_idx & (self.num - 1)
            head = m.load32(self.used + 4 + 8 * slot)
            length = m.load32(self.used + 8 + 8 * slot)
            if head >= self.num or self.data[head] is None:
                m.tr.phase(f"BAD_RING: id {head} {'out of range' if head >= self.num else 'is not a head'}; "
                           f"the queue is broken.")
                self.broken = True
                return None
            token = self.data[head]
            self.detach_buf(head)
            self.last_used_idx = (self.last_used_idx + 1) & 0xFFFF
            text = (f"used->ring[{slot}] = {{id {head}, len {length}}}: the chain goes back on the free "
                    f"list (free_head {self.free_head}, num_free {self.num_free}); last_used_idx "
                    f"{self.last_used_idx}.")
            arm = not self.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT
            if arm:
                text += f" used_event = {self.last_used_idx} (virtio_store_mb): interrupt for the next one."
            m.tr.phase(text, head=head, len=length, slot=slot)
            if arm:
                m.store16(self.used_event, self.last_used_idx)
            return token, length

    def detach_buf(self, head: int) -> None:
        """detach_buf_split: walk the chain by its NEXT flags back onto the free list."""
        m = self.mem
        self.data[head] = None
        i = head
        while m.load16(self.desc + 16 * i + 12) & VRING_DESC_F_NEXT:
            i = self.extra_next[i]
            self.num_free += 1
        self.extra_next[i] = self.free_head
        self.free_head = head
        self.num_free += 1
        if self.indir[head] is not None:  # kfree(indir_desc)
            table, count = self.indir[head]
            m.kfree(table, 16 * count)
        self.indir[head] = None

    # ---------------------------------------------------------------- callbacks
    def disable_cb(self) -> None:
        """virtqueue_disable_cb_split: ask for no interrupts (used_event = 0 is the EVENT_IDX
        hack; else avail->flags = NO_INTERRUPT), unless the device already sent one."""
        if self.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT:
            return
        with self.call("virtqueue_disable_cb_split",
                       f"Queue {self.index}: callbacks off (avail_flags_shadow |= NO_INTERRUPT)."):
            self.avail_flags_shadow |= VRING_AVAIL_F_NO_INTERRUPT
            if self.event_triggered:
                self.mem.tr.phase("event_triggered: the device already interrupted, so nothing is "
                                  "written.")
                return
            if self.event:
                self.mem.tr.phase("EVENT_IDX: used_event = 0 (Linux's placeholder value).")
                self.mem.store16(self.used_event, 0)
            else:
                self.mem.tr.phase("avail->flags = VRING_AVAIL_F_NO_INTERRUPT (1).")
                self.mem.store16(self.avail, self.avail_flags_shadow)

    def enable_cb_prepare(self) -> int:
        """virtqueue_enable_cb_prepare_split: callbacks back on; used_event = last_used_idx."""
        with self.call("virtqueue_enable_cb_prepare_split",
                       f"Queue {self.index}: callbacks on again; used_event = last_used_idx "
                       f"{self.last_used_idx} (interrupt for the next used chain)."):
            self._callbacks_on()
            self.mem.store16(self.used_event, self.last_used_idx)
            return self.last_used_idx

    def _callbacks_on(self) -> None:
        """Clear NO_INTERRUPT from the shadow; without EVENT_IDX avail->flags follows it."""
        if self.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT:
            self.avail_flags_shadow &= ~VRING_AVAIL_F_NO_INTERRUPT
            if not self.event:
                self.mem.store16(self.avail, self.avail_flags_shadow)

    def poll(self, last_used_idx: int) -> bool:
        """virtqueue_poll_split: has the device used more since ``last_used_idx``?"""
        return (last_used_idx & 0xFFFF) != self.mem.load16(self.used + 2)

    def enable_cb(self) -> bool:
        """virtqueue_enable_cb: False when more arrived meanwhile (the caller loops)."""
        return not self.poll(self.enable_cb_prepare())

    def enable_cb_delayed(self) -> bool:
        """virtqueue_enable_cb_delayed_split: callbacks on, but an interrupt only after 3/4 of
        the outstanding chains are used."""
        self.event_triggered = False
        m = self.mem
        bufs = ((self.avail_idx_shadow - self.last_used_idx) & 0xFFFF) * 3 // 4
        with self.call("virtqueue_enable_cb_delayed_split",
                       f"Queue {self.index}: callbacks on, delayed: used_event = last_used_idx "
                       f"{self.last_used_idx} + {bufs} (3/4 of the chains still out)."):
            self._callbacks_on()
            m.store16(self.used_event, (self.last_used_idx + bufs) & 0xFFFF)
            return not ((m.load16(self.used + 2) - self.last_used_idx) & 0xFFFF) > bufs

    def interrupt(self, handler) -> bool:
        """vring_interrupt: nothing new means IRQ_NONE; else note event_triggered and run the
        driver's callback. True when handled."""
        if not self.more_used():
            self.mem.dev.phase(f"vring_interrupt: queue {self.index} has no new used chain (IRQ_NONE).")
            return False
        if self.broken:
            return True
        if self.event:
            self.event_triggered = True
        if self.callback and handler is not None:
            handler(self)
        return True
