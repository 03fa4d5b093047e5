"""The split virtqueue as QEMU 7.2's device side runs it (hw/virtio/virtio.c).

A virtqueue is three areas of guest RAM the driver allocates and the device reads
and writes by DMA (virtio 1.2 §2.7):

* the **descriptor table** — ``num`` entries of 16 bytes: ``addr`` (8), ``len`` (4),
  ``flags`` (2: NEXT 1, WRITE 2, INDIRECT 4), ``next`` (2);
* the **available ring** (driver area) — ``flags`` (2), ``idx`` (2), ``ring[num]``
  (2 each: heads of descriptor chains), then ``used_event`` (2) with EVENT_IDX;
* the **used ring** (device area) — ``flags`` (2), ``idx`` (2), ``ring[num]`` (8 each:
  ``id`` = the head, ``len`` = bytes the device wrote), then ``avail_event`` (2).

This module holds :class:`VirtQueue` (QEMU's VirtQueue plus the proxy's
VirtIOPCIQueue shadow) and the functions that walk it, named after QEMU's:
``virtio_init_region_cache``, ``virtqueue_split_pop`` (with ``virtqueue_num_heads``,
``virtqueue_get_head``, ``virtqueue_split_read_next_desc``, ``virtqueue_map_desc``),
``virtqueue_fill`` / ``virtqueue_flush`` / ``virtqueue_push``,
``virtqueue_get_avail_bytes``, ``virtio_queue_set_notification``,
``virtio_split_should_notify`` and ``virtio_notify``. The checks and their
``virtio_error`` texts are QEMU's (``Looped descriptor``, ``Desc next is %u``,
``Guest says index %u is available``, ...). The packed ring (VIRTIO_F_RING_PACKED)
is not modelled: a device that negotiated it refuses with one line.

Every RAM store is a :class:`~virtio_lab.trace.Write` in space ``"ram"`` on the event
of the QEMU function that made it. ``dev`` is the
:class:`~virtio_lab.hw.guest_access.GuestDevice` (its ``vdev``, ``ram``, ``tracer``).
Written from QEMU's behaviour; no QEMU code is copied. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import VirtioLabError
from .guest_ram import NotModelled, UnmodelledAddress

__all__ = ["VirtQueue", "Element", "Desc", "vring_need_event", "VIRTIO_PCI_VRING_ALIGN",
           "VRING_DESC_F_NEXT", "VRING_DESC_F_WRITE", "VRING_DESC_F_INDIRECT",
           "VRING_USED_F_NO_NOTIFY", "VRING_AVAIL_F_NO_INTERRUPT", "EVENT_IDX", "INDIRECT_DESC",
           "NOTIFY_ON_EMPTY", "RING_PACKED", "split_layout"]

VIO = "hw/virtio/virtio.c"
VIRTIO_PCI_VRING_ALIGN = 4096
VIRTQUEUE_MAX_SIZE = 1024
NO_VECTOR = 0xFFFF
VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_DESC_F_INDIRECT = 1, 2, 4
VRING_USED_F_NO_NOTIFY = 1
VRING_AVAIL_F_NO_INTERRUPT = 1
NOTIFY_ON_EMPTY, INDIRECT_DESC, EVENT_IDX, RING_PACKED = 24, 28, 29, 34  # feature bits
VERSION_1 = 32


def vring_need_event(event_idx: int, new_idx: int, old: int) -> bool:
    """include/standard-headers/linux/virtio_ring.h:vring_need_event — has ``new`` passed
    ``event_idx`` since ``old``? (16-bit wrap-around arithmetic, shared by both sides.)"""
    return (new_idx - event_idx - 1) & 0xFFFF < (new_idx - old) & 0xFFFF


def split_layout(desc: int, num: int, align: int) -> tuple[int, int]:
    """(avail, used) for a ring at ``desc`` the legacy way: virtio_queue_update_rings puts
    the available ring right after the table and the used ring at the next ``align``
    boundary after ``avail->ring[num]`` (QEMU counts no used_event there)."""
    avail = desc + 16 * num
    used = (avail + 4 + 2 * num + align - 1) & ~(align - 1)
    return avail, used


@dataclass
class VirtQueue:
    """QEMU's VirtQueue (vring addresses and indices) plus the proxy's VirtIOPCIQueue shadow.

    The ``desc``/``avail``/``used`` pairs are what a modern driver wrote to common config
    (proxy->vqs[n], applied on queue_enable); ``vring_*`` are the addresses the device
    uses (0 until the queue is enabled or given a PFN).
    """

    num_default: int  # virtio_add_queue's size: what the device offers
    num: int = 0  # vring.num (queue_size as read)
    vector: int = NO_VECTOR
    enabled: int = 0
    reset: int = 0
    pending_num: int = 0  # proxy->vqs[n].num: written queue_size, applied on enable
    desc: list[int] = field(default_factory=lambda: [0, 0])
    avail: list[int] = field(default_factory=lambda: [0, 0])
    used: list[int] = field(default_factory=lambda: [0, 0])
    align: int = VIRTIO_PCI_VRING_ALIGN
    vring_desc: int = 0
    vring_avail: int = 0
    vring_used: int = 0
    caches: tuple[int, int, int] | None = None  # mapped lengths of desc, avail, used
    last_avail_idx: int = 0
    shadow_avail_idx: int = 0
    used_idx: int = 0
    signalled_used: int = 0
    signalled_used_valid: bool = False
    notification: bool = True
    inuse: int = 0
    handler: str = ""  # the device's handle_output, by name (set by the device model)

    def __post_init__(self):
        self.num = self.num_default

    def reset_ring(self) -> None:
        """__virtio_queue_reset: addresses and indices back to zero, the default size, no vector."""
        self.vring_desc = self.vring_avail = self.vring_used = 0
        self.last_avail_idx = self.shadow_avail_idx = self.used_idx = 0
        self.vector = NO_VECTOR
        self.signalled_used, self.signalled_used_valid = 0, False
        self.notification = True
        self.num = self.num_default
        self.inuse = 0
        self.caches = None


@dataclass(frozen=True)
class Desc:
    """One descriptor as the device read it: where it sits (table address, index) and its fields."""

    table: int
    index: int
    addr: int
    len: int
    flags: int
    next: int

    @property
    def write(self) -> bool:
        return bool(self.flags & VRING_DESC_F_WRITE)


@dataclass
class Element:
    """A VirtQueueElement: the chain's head and its mapped pieces (out: device reads, in: writes)."""

    index: int
    descs: list[Desc]
    out_sg: list  # MapPiece, device-readable
    in_sg: list  # MapPiece, device-writable
    ndescs: int = 1

    @property
    def in_len(self) -> int:
        return sum(p.length for p in self.in_sg)

    @property
    def out_len(self) -> int:
        return sum(p.length for p in self.out_sg)


def has(dev, bit: int) -> bool:
    """virtio_vdev_has_feature: negotiated by the driver."""
    return bool(dev.vdev.guest_features >> bit & 1)


def disabled(dev) -> bool:
    """virtio_device_disabled: Bus Master off (disabled) or virtio_error (broken)."""
    return dev.vdev.disabled or dev.vdev.broken


# ---------------------------------------------------------------- RAM stores
def _store(dev, addr: int, data: bytes) -> None:
    """A device store (address_space_write / stw/stl through the cache), recorded."""
    dev.store(addr, data)


def _ld16(dev, addr: int) -> int:
    return dev.ram.read_int(addr, 2)


# ---------------------------------------------------------------- setup
def init_region_cache(dev, n: int, vq: VirtQueue) -> str:
    """virtio_init_region_cache: map the three areas; a short map is a virtio_error.

    Returns what happened, for the caller's event."""
    vq.caches = None
    if not vq.vring_desc:
        return "no descriptor table: no caches"
    if has(dev, RING_PACKED):
        return "a packed ring (VIRTIO_F_RING_PACKED): virtio_lab models only the split ring's areas"
    s = 2 if has(dev, EVENT_IDX) else 0
    sizes = (("desc", vq.vring_desc, 16 * vq.num), ("used", vq.vring_used, 4 + 8 * vq.num + s),
             ("avail", vq.vring_avail, 4 + 2 * vq.num + s))
    lens = {}
    for name, addr, size in sizes:  # QEMU's order: desc, used, avail
        try:
            got = dev.ram.cache_len(addr, size)
        except UnmodelledAddress as err:
            dev.unmodelled = str(err)
            return f"not mapped here: {err}"
        if got < size:
            return dev.virtio_error(f"Cannot map {name}")
        lens[name] = got
    vq.caches = (lens["desc"], lens["avail"], lens["used"])
    return (f"ring caches mapped: descriptor table 0x{vq.vring_desc:x} ({16 * vq.num} bytes), "
            f"available ring 0x{vq.vring_avail:x}, used ring 0x{vq.vring_used:x}")


def set_rings(dev, n: int, vq: VirtQueue, desc: int, avail: int, used: int) -> str:
    """virtio_queue_set_rings (modern queue_enable): take the addresses, map the caches."""
    if not vq.num:
        return "queue has size 0: ignored"
    vq.vring_desc, vq.vring_avail, vq.vring_used = desc, avail, used
    return init_region_cache(dev, n, vq)


def set_addr(dev, n: int, vq: VirtQueue, desc: int) -> str:
    """virtio_queue_set_addr (legacy QUEUE_PFN): the table address; the rest follows by layout."""
    if not vq.num:
        return "queue has size 0: ignored"
    vq.vring_desc = desc
    if not vq.num or not desc or not vq.align:
        return "not set up yet"
    vq.vring_avail, vq.vring_used = split_layout(desc, vq.num, vq.align)
    return init_region_cache(dev, n, vq)


# ---------------------------------------------------------------- reads
def avail_idx(dev, vq: VirtQueue) -> int:
    """vring_avail_idx: read avail->idx (0 without caches) into shadow_avail_idx."""
    if vq.caches is None:
        return 0
    vq.shadow_avail_idx = _ld16(dev, vq.vring_avail + 2)
    return vq.shadow_avail_idx


def avail_flags(dev, vq: VirtQueue) -> int:
    return 0 if vq.caches is None else _ld16(dev, vq.vring_avail)


def avail_ring(dev, vq: VirtQueue, i: int) -> int:
    return 0 if vq.caches is None else _ld16(dev, vq.vring_avail + 4 + 2 * i)


def used_event(dev, vq: VirtQueue) -> int:
    """vring_get_used_event: the driver's used_event, avail->ring[num]."""
    return avail_ring(dev, vq, vq.num)


def read_desc(dev, table: int, i: int) -> Desc:
    """vring_split_desc_read: one 16-byte descriptor, little-endian (virtio 1.x and x86 legacy)."""
    raw = dev.ram.read(table + 16 * i, 16)
    return Desc(table, i, int.from_bytes(raw[0:8], "little"), int.from_bytes(raw[8:12], "little"),
                int.from_bytes(raw[12:14], "little"), int.from_bytes(raw[14:16], "little"))


def queue_empty(dev, vq: VirtQueue) -> bool:
    """virtio_queue_split_empty: nothing new when avail->idx equals last_avail_idx."""
    if disabled(dev) or not vq.vring_avail:
        return True
    if vq.shadow_avail_idx != vq.last_avail_idx:
        return False
    return avail_idx(dev, vq) == vq.last_avail_idx


def num_heads(dev, vq: VirtQueue, idx: int) -> int:
    """virtqueue_num_heads: avail->idx - idx, at most num (else the guest moved it too far)."""
    n = (avail_idx(dev, vq) - idx) & 0xFFFF
    if n > vq.num:
        dev.virtio_error(f"Guest moved used index from {idx} to {vq.shadow_avail_idx}")
        return -1
    return n


def get_head(dev, vq: VirtQueue, idx: int) -> int | None:
    """virtqueue_get_head: avail->ring[idx % num], which must name a descriptor."""
    head = avail_ring(dev, vq, idx % vq.num)
    if head >= vq.num:
        dev.virtio_error(f"Guest says index {head} is available")
        return None
    return head


def read_next_desc(dev, desc: Desc, table: int, limit: int) -> Desc | None | bool:
    """virtqueue_split_read_next_desc: the next descriptor of a chain (False at its end, None
    on the ``Desc next is %u`` error)."""
    if not desc.flags & VRING_DESC_F_NEXT:
        return False
    if desc.next >= limit:
        dev.virtio_error(f"Desc next is {desc.next}")
        return None
    return read_desc(dev, table, desc.next)


# ---------------------------------------------------------------- pop
def set_avail_event(dev, vq: VirtQueue, val: int) -> None:
    """vring_set_avail_event: used->ring[num] = val, only while notifications are on."""
    if not vq.notification or vq.caches is None:
        return
    _store(dev, vq.vring_used + 4 + 8 * vq.num, (val & 0xFFFF).to_bytes(2, "little"))


def _map_desc(dev, pieces: list, desc: Desc, limit_left: int) -> bool:
    """virtqueue_map_desc: map one descriptor's buffer (zero length is an error)."""
    if not desc.len:
        dev.virtio_error("virtio: zero sized buffers are not allowed")
        return False
    got = dev.ram.map(desc.addr, desc.len)
    if got is None:
        dev.virtio_error("virtio: bogus descriptor or out of resources")
        return False
    if len(got) > limit_left:
        dev.ram.unmap(got)
        dev.virtio_error("virtio: too many write descriptors in indirect table")
        return False
    pieces.extend(got)
    return True


def pop(dev, vq: VirtQueue) -> Element | None:
    """virtqueue_pop → virtqueue_split_pop: take the next available chain, or None.

    Reads avail->idx and the head, walks the chain (into an indirect table when the
    head says INDIRECT), maps each buffer; with EVENT_IDX it first tells the driver how
    far it has read (avail_event). Errors are QEMU's virtio_error texts and leave the
    device broken.
    """
    if has(dev, RING_PACKED):
        raise NotModelled("the packed virtqueue (VIRTIO_F_RING_PACKED, bit 34) is not modelled: "
                          "use the split ring (packed=off, QEMU's default)")
    if queue_empty(dev, vq):
        return None
    if vq.inuse >= vq.num:
        dev.virtio_error("Virtqueue size exceeded")
        return None
    head = get_head(dev, vq, vq.last_avail_idx)
    vq.last_avail_idx = (vq.last_avail_idx + 1) & 0xFFFF
    if head is None:
        return None
    if has(dev, EVENT_IDX):
        set_avail_event(dev, vq, vq.last_avail_idx)
    if vq.caches is None:
        dev.virtio_error("Region caches not initialized")
        return None
    limit = vq.num
    if vq.caches[0] < limit * 16:
        dev.virtio_error("Cannot map descriptor ring")
        return None
    table = vq.vring_desc
    desc = read_desc(dev, table, head)
    descs = [desc]
    if desc.flags & VRING_DESC_F_INDIRECT:
        if not desc.len or desc.len % 16:
            dev.virtio_error("Invalid size for indirect buffer table")
            return None
        if dev.ram.cache_len(desc.addr, desc.len) < desc.len:
            dev.virtio_error("Cannot map indirect buffer")
            return None
        limit = desc.len // 16
        table = desc.addr
        desc = read_desc(dev, table, 0)
        descs.append(desc)
    out_sg: list = []
    in_sg: list = []
    entries = 0
    while True:
        if desc.flags & VRING_DESC_F_WRITE:
            ok = _map_desc(dev, in_sg, desc, VIRTQUEUE_MAX_SIZE - len(out_sg) - len(in_sg))
        else:
            if in_sg:
                dev.virtio_error("Incorrect order for descriptors")
                ok = False
            else:
                ok = _map_desc(dev, out_sg, desc, VIRTQUEUE_MAX_SIZE - len(out_sg))
        if not ok:
            dev.ram.unmap(out_sg + in_sg)
            return None
        entries += 1
        if entries > limit:
            dev.ram.unmap(out_sg + in_sg)
            dev.virtio_error("Looped descriptor")
            return None
        nxt = read_next_desc(dev, desc, table, limit)
        if nxt is None:
            dev.ram.unmap(out_sg + in_sg)
            return None
        if nxt is False:
            break
        desc = nxt
        descs.append(desc)
    vq.inuse += 1
    return Element(head, descs, out_sg, in_sg)


def get_avail_bytes(dev, vq: VirtQueue, max_in: int, max_out: int) -> tuple[int, int]:
    """virtqueue_get_avail_bytes → virtqueue_split_get_avail_bytes: how many device-writable
    (in) and readable (out) bytes the available chains hold, stopping once both maxima are
    reached. Used by virtio-rng to size its entropy request; errors give (0, 0)."""
    if not vq.vring_desc or vq.caches is None:
        return 0, 0
    if vq.caches[0] < vq.num * 16:
        dev.virtio_error("Cannot map descriptor ring")
        return 0, 0
    idx = vq.last_avail_idx
    total_bufs = in_total = out_total = 0
    while True:
        rc = num_heads(dev, vq, idx)
        if rc < 0:
            return 0, 0
        if rc == 0:
            break
        num_bufs = total_bufs
        limit = vq.num
        i = get_head(dev, vq, idx)
        idx = (idx + 1) & 0xFFFF
        if i is None:
            return 0, 0
        table = vq.vring_desc
        desc = read_desc(dev, table, i)
        indirect = False
        if desc.flags & VRING_DESC_F_INDIRECT:
            if not desc.len or desc.len % 16:
                dev.virtio_error("Invalid size for indirect buffer table")
                return 0, 0
            if num_bufs >= limit:
                dev.virtio_error("Looped descriptor")
                return 0, 0
            if dev.ram.cache_len(desc.addr, desc.len) < desc.len:
                dev.virtio_error("Cannot map indirect buffer")
                return 0, 0
            limit, table, num_bufs, indirect = desc.len // 16, desc.addr, 0, True
            desc = read_desc(dev, table, 0)
        while True:
            num_bufs += 1
            if num_bufs > limit:
                dev.virtio_error("Looped descriptor")
                return 0, 0
            if desc.flags & VRING_DESC_F_WRITE:
                in_total += desc.len
            else:
                out_total += desc.len
            if in_total >= max_in and out_total >= max_out:
                return in_total, out_total
            nxt = read_next_desc(dev, desc, table, limit)
            if nxt is None:
                return 0, 0
            if nxt is False:
                break
            desc = nxt
        total_bufs = total_bufs + 1 if indirect else num_bufs
    return in_total, out_total


# ---------------------------------------------------------------- push
def fill(dev, vq: VirtQueue, elem: Element, length: int, idx: int = 0) -> None:
    """virtqueue_fill → virtqueue_split_fill: unmap the buffers, write used->ring[(used_idx +
    idx) % num] = {id: head, len} (nothing while the device is disabled or broken)."""
    dev.ram.unmap(elem.out_sg + elem.in_sg)
    if disabled(dev) or not vq.vring_used:
        return
    slot = (idx + vq.used_idx) % vq.num
    _store(dev, vq.vring_used + 4 + 8 * slot,
           elem.index.to_bytes(4, "little") + (length & 0xFFFFFFFF).to_bytes(4, "little"))


def flush(dev, vq: VirtQueue, count: int = 1) -> None:
    """virtqueue_flush → virtqueue_split_flush: used->idx += count (after a write barrier)."""
    if disabled(dev):
        vq.inuse -= count
        return
    if not vq.vring_used:
        return
    old = vq.used_idx
    new = (old + count) & 0xFFFF
    _store(dev, vq.vring_used + 2, new.to_bytes(2, "little"))
    vq.used_idx = new
    vq.inuse -= count
    # (int16_t)(new - signalled_used) < (uint16_t)(new - old): the driver's view went stale
    diff = (new - vq.signalled_used) & 0xFFFF
    if (diff - 0x10000 if diff & 0x8000 else diff) < (new - old) & 0xFFFF:
        vq.signalled_used_valid = False


def push(dev, vq: VirtQueue, elem: Element, length: int) -> None:
    """virtqueue_push: fill one element and flush it."""
    fill(dev, vq, elem, length, 0)
    flush(dev, vq, 1)


def detach(dev, vq: VirtQueue, elem: Element) -> None:
    """virtqueue_detach_element: give the element up without using it (inuse drops)."""
    vq.inuse -= elem.ndescs
    dev.ram.unmap(elem.out_sg + elem.in_sg)


def unpop(dev, vq: VirtQueue, elem: Element) -> None:
    """virtqueue_unpop: pretend the chain was never taken (it will be popped again)."""
    vq.last_avail_idx = (vq.last_avail_idx - 1) & 0xFFFF
    detach(dev, vq, elem)


# ---------------------------------------------------------------- notifications
def set_notification(dev, vq: VirtQueue, enable: bool) -> None:
    """virtio_queue_set_notification → virtio_queue_split_set_notification.

    With EVENT_IDX the device publishes how far it has read (avail_event = avail->idx,
    only while notifications are on); without it, it sets or clears VRING_USED_F_NO_NOTIFY
    in used->flags (a read-modify-write)."""
    vq.notification = enable
    if not vq.vring_desc:
        return
    if has(dev, EVENT_IDX):
        set_avail_event(dev, vq, avail_idx(dev, vq))
    elif vq.caches is not None:
        flags = _ld16(dev, vq.vring_used)
        flags = flags & ~VRING_USED_F_NO_NOTIFY if enable else flags | VRING_USED_F_NO_NOTIFY
        _store(dev, vq.vring_used, flags.to_bytes(2, "little"))


def should_notify(dev, vq: VirtQueue) -> tuple[bool, str]:
    """virtio_split_should_notify: does the driver want an interrupt now? (and why)."""
    if has(dev, NOTIFY_ON_EMPTY) and not vq.inuse and queue_empty(dev, vq):
        return True, "NOTIFY_ON_EMPTY: the queue is empty"
    if not has(dev, EVENT_IDX):
        flags = avail_flags(dev, vq)
        if flags & VRING_AVAIL_F_NO_INTERRUPT:
            return False, "avail->flags has VRING_AVAIL_F_NO_INTERRUPT: the driver asked for none"
        return True, "avail->flags lets interrupts through (no VRING_AVAIL_F_NO_INTERRUPT)"
    v = vq.signalled_used_valid
    vq.signalled_used_valid = True
    old = vq.signalled_used
    new = vq.signalled_used = vq.used_idx
    event = used_event(dev, vq)
    if not v:
        return True, f"EVENT_IDX: first interrupt since the driver last saw used->idx (used_event {event})"
    need = vring_need_event(event, new, old)
    return need, (f"EVENT_IDX: used_event {event}, used->idx went {old} → {new}: "
                  + ("passed, interrupt" if need else "not passed, no interrupt"))
