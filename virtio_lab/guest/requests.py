"""Linux 6.1's drivers at work: one request each, and the interrupt that ends it.

What each driver puts on its queue, and what it does when the interrupt comes:

* **virtio_rng** (drivers/char/hw_random/virtio-rng.c): ``request_entropy`` posts the
  driver's one 64-byte buffer (``vi->data``, SMP_CACHE_BYTES on x86-64) as a
  device-writable chain and kicks; ``random_recv_done`` takes it back with
  ``virtqueue_get_buf`` (the length the device wrote). The probe posts the first
  one right after ``virtio_device_ready``; the hwrng core's reader then drains each
  answer (``copy_data``) and posts again.
* **virtio_blk** (drivers/block/virtio_blk.c): ``virtio_queue_rq`` fills the request's
  ``virtio_blk_outhdr`` (type, ioprio, sector), ``virtblk_add_req`` chains header, data
  and the status byte, kicks if ``virtqueue_kick_prepare`` says so; ``virtblk_done``
  drains the used ring with callbacks off, then turns them back on.
* **virtio_net** (drivers/net/virtio_net.c): ``start_xmit`` first frees what the device
  already sent (callbacks off, ``free_old_xmit_skbs``, ``virtqueue_enable_cb_delayed``),
  ``xmit_skb`` pushes the 12- or 10-byte ``virtio_net_hdr`` in front of the frame (one
  buffer: ``can_push``), kicks; the TX interrupt (``skb_xmit_done``) schedules NAPI,
  whose ``virtnet_poll_tx`` frees the frame and re-arms the callback.

Interrupts reach the CPU as QEMU delivered them (:meth:`GuestDevice.take_interrupts`):
an MSI-X vector's handler is ``vring_interrupt`` for its queue (``vp_vring_interrupt``
on a shared vector, ``vp_config_changed`` on the config vector); INTx is
``vp_interrupt``, which reads the ISR (reading clears it). The CPU takes them once the
driver's notify write has returned. Buffer addresses are the kernel allocators'
choice and illustrative. Written from Linux's behaviour (GPLv2); no code copied.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import VirtioLabError
from ..pci import regs

__all__ = ["request_entropy", "rng_read", "virtio_queue_rq", "start_xmit", "service_interrupts",
           "arp_request", "Posted"]

RNG_SRC = "drivers/char/hw_random/virtio-rng.c"
BLK_SRC = "drivers/block/virtio_blk.c"
NET_SRC = "drivers/net/virtio_net.c"
PCI_SRC = "drivers/virtio/virtio_pci_common.c"
RNG_BUF = 64  # sizeof(vi->data): SMP_CACHE_BYTES
VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT = 0, 1


@dataclass
class Posted:
    """One request the driver made: what it posted, and what it got back."""

    kind: str  # "entropy" | "read" | "write" | "frame"
    queue: int
    head: int
    buffers: tuple[tuple[int, int, bool], ...]  # (address, length, device-writable)
    detail: dict
    used_len: int | None = None
    done: bool = False


# --------------------------------------------------------------------------- kicking
def kick(lx, vq) -> bool:
    """virtqueue_kick: kick_prepare, then vp_notify if the device wants it."""
    if vq.kick_prepare():
        notify(lx, vq)
        return True
    return False


def notify(lx, vq) -> None:
    """vp_notify: iowrite16(queue index) to the queue's notify address (modern), or to
    BAR0 + VIRTIO_PCI_QUEUE_NOTIFY (legacy)."""
    bar, off = vq.notify_at
    with lx.call("vp_notify", PCI_SRC,
                 f"Notify the device: write the queue index {vq.index} (16 bits) to 0x{vq.notify_address:x} "
                 f"(BAR{bar} + 0x{off:x}). The write carries only the index; the device finds the "
                 f"work in the rings.", queue=vq.index, address=vq.notify_address):
        lx.d.bar_write(bar, off, vq.index, 2)


# --------------------------------------------------------------------------- interrupts
def service_interrupts(lx) -> int:
    """The CPU takes what the device delivered: each MSI-X message runs its vector's
    handler; a raised INTx line runs vp_interrupt until the line is low. Returns how many."""
    d = lx.d
    taken = 0
    for _ in range(64):
        pending = d.take_interrupts()
        level = lx.intx and d.irq_level and not d._intx_disabled()
        if not pending and not level:
            return taken
        for it in pending:
            taken += 1
            if it.kind == "msix":
                route, q = lx.irq_routes.get(it.vector, ("", None))
                with lx.call("handle_edge_irq", "kernel/irq/chip.c",
                             f"The CPU takes interrupt vector 0x{it.data & 0xFF:02x}: MSI-X entry "
                             f"{it.vector}'s message. Its handler: "
                             + {"config": "vp_config_changed (device config changed)",
                                "vp_vring_interrupt": "vp_vring_interrupt (every queue with a callback)",
                                "vring_interrupt": f"vring_interrupt for queue {q}"}.get(route, "none")
                             + ".", vector=it.vector):
                    if route == "vring_interrupt":
                        vring_interrupt(lx, lx.vqs[q])
                    elif route == "vp_vring_interrupt":
                        vp_vring_interrupt(lx)
                    elif route == "config":
                        vp_config_changed(lx)
        if level:
            taken += 1
            with lx.call("handle_fasteoi_irq", "kernel/irq/chip.c",
                         f"The INTx line (IRQ {d.config[regs.PCI_INTERRUPT_LINE]}) is up: the shared "
                         f"handler vp_interrupt runs."):
                vp_interrupt(lx)
    return taken


def vp_interrupt(lx) -> None:
    """vp_interrupt: read the ISR (it clears), config change if bit 1, then the queues."""
    d = lx.d
    with lx.call("vp_interrupt", PCI_SRC,
                 "INTx: read the ISR byte (reading clears it and lowers the line); bit 0 means a "
                 "queue was used, bit 1 a config change."):
        if lx.modern:
            bar, off = lx.caps["isr"][0], lx.caps["isr"][1]
        else:
            bar, off = 0, regs.VIRTIO_PCI_ISR
        isr = d.bar_read(bar, off, 1)
        if not isr:
            lx.tr.phase("ISR is 0: not this device (IRQ_NONE).")
            return
        if isr & 2:
            vp_config_changed(lx)
        vp_vring_interrupt(lx)


def vp_config_changed(lx) -> None:
    with lx.call("vp_config_changed", PCI_SRC,
                 "virtio_config_changed: the driver's config_changed hook runs (work queued; "
                 "its reads of device config are not modelled here)."):
        pass


def vp_vring_interrupt(lx) -> None:
    """vp_vring_interrupt: vring_interrupt on every queue with a callback (the list is built
    by list_add, so the newest queue comes first)."""
    with lx.call("vp_vring_interrupt", PCI_SRC, "Ask every queue with a callback whether it has "
                 "new used chains (newest queue first)."):
        for vq in reversed(lx.vqs):
            if vq.callback:
                vring_interrupt(lx, vq)


def vring_interrupt(lx, vq) -> None:
    with lx.call("vring_interrupt", "drivers/virtio/virtio_ring.c",
                 f"Queue {vq.index} ({vq.name}): new used chains? Then the driver's callback.",
                 queue=vq.index):
        vq.interrupt(lambda q: CALLBACKS[lx.res.driver](lx, q))


# --------------------------------------------------------------------------- virtio_rng
class _Rng:
    """struct virtrng_info: the one data buffer and what is left of its last answer."""

    def __init__(self, lx):
        self.data = lx.mem.kmalloc(256) + 0x80  # vi->data inside the kzalloc'd virtrng_info
        self.data_avail = 0
        self.posted: Posted | None = None


def _rng(lx) -> _Rng:
    if lx.state.get("rng") is None:
        lx.state["rng"] = _Rng(lx)
    return lx.state["rng"]


def request_entropy(lx) -> Posted:
    """virtio-rng.c:request_entropy: post vi->data (64 bytes, device-writable) and kick."""
    st = _rng(lx)
    vq = lx.vqs[0]
    with lx.call("request_entropy", RNG_SRC,
                 f"Ask for entropy: one device-writable buffer, vi->data ({RNG_BUF} bytes at "
                 f"0x{st.data:x}, inside the driver's kzalloc'd virtrng_info: illustrative), then kick."):
        head = vq.add([], [(st.data, RNG_BUF)], "vi->data", "vi->data")
        st.posted = Posted("entropy", vq.index, head, ((st.data, RNG_BUF, True),), {})
        kick(lx, vq)
    service_interrupts(lx)
    return st.posted


def random_recv_done(lx, vq) -> None:
    """random_recv_done: take the buffer back; data_avail = the length the device wrote."""
    st = _rng(lx)
    with lx.call("random_recv_done", RNG_SRC,
                 "The data arrived: virtqueue_get_buf hands back vi->data and the length written; "
                 "complete(&have_data) wakes the reader."):
        got = vq.get_buf()
        if got is None:
            lx.tr.phase("virtqueue_get_buf: nothing (a spurious callback).")
            return
        st.data_avail = got[1]
        if st.posted is not None:
            st.posted.used_len, st.posted.done = got[1], True
            st.posted.detail["bytes"] = lx.d.ram.read(st.data, got[1]).hex()


def rng_read(lx) -> Posted:
    """The hwrng core's reader (hwrng_fillfn → virtio_read): copy_data drains the answer,
    which posts the buffer again (request_entropy)."""
    st = _rng(lx)
    with lx.call("virtio_read", RNG_SRC,
                 f"The hwrng core reads {RNG_BUF} bytes: copy_data takes the {st.data_avail} "
                 f"available; with none left, request_entropy posts vi->data again."):
        st.data_avail = 0
        return request_entropy(lx)


# --------------------------------------------------------------------------- virtio_blk
def virtio_queue_rq(lx, kind: str, sector: int, data: bytes | None = None, count: int = 1) -> Posted:
    """virtio_queue_rq for one read or write of ``count`` sectors at ``sector``."""
    if kind not in ("read", "write"):
        raise VirtioLabError(f"a virtio-blk request is 'read' or 'write', not {kind!r}")
    if not isinstance(sector, int) or sector < 0:
        raise VirtioLabError(f"a sector is a non-negative integer, not {sector!r}")
    size = 512 * count
    if kind == "write":
        if data is None or len(data) != size:
            raise VirtioLabError(f"a write of {count} sector(s) takes exactly {size} bytes of data")
    vq = lx.vqs[0]
    n = lx.state.setdefault("blk_n", 0)
    lx.state["blk_n"] = n + 1
    tag = n % vq.num
    vbr = lx.mem.SLAB + 0x100000 + 0x100 * tag  # the request's pdu (struct virtblk_req)
    page = lx.mem.DATA + 0x1000 * (n % 64)
    typ = VIRTIO_BLK_T_OUT if kind == "write" else VIRTIO_BLK_T_IN
    with lx.call("virtio_queue_rq", BLK_SRC,
                 f"blk-mq hands the driver a {kind} of {count} sector(s) at sector {sector} (tag {tag}): "
                 f"virtblk_setup_cmd fills the request's virtio_blk_outhdr at 0x{vbr:x}, then "
                 f"virtblk_add_req chains header, data (a page-cache page at 0x{page:x}) and the status "
                 f"byte at 0x{vbr + 16:x} (addresses illustrative).",
                 sector=sector, tag=tag):
        if kind == "write":
            lx.tr.phase(f"The page at 0x{page:x} holds the {size} bytes to write (put there by the "
                        f"page cache before the request).")
            lx.mem.store(page, data)
        lx.mem.store(vbr, typ.to_bytes(4, "little") + (0).to_bytes(4, "little") + sector.to_bytes(8, "little"))
        lx.tr.phase(f"out_hdr: type {typ} ({'VIRTIO_BLK_T_OUT' if typ else 'VIRTIO_BLK_T_IN'}), ioprio 0, "
                    f"sector {sector}.")
        data_sg = (page, size)
        out = [(vbr, 16)] + ([data_sg] if kind == "write" else [])
        ins = ([] if kind == "write" else [data_sg]) + [(vbr + 16, 1)]
        head = vq.add(out, ins, ("blk", n), f"a {kind} request")
        bufs = tuple((a, l, False) for a, l in out) + tuple((a, l, True) for a, l in ins)
        posted = Posted(kind, vq.index, head, bufs, {"sector": sector, "count": count, "status_at": vbr + 16,
                                                     "data_at": page})
        lx.state.setdefault("blk_posted", {})[("blk", n)] = posted
        if vq.kick_prepare():  # bd->last: this is the last request of the batch
            notify(lx, vq)
    service_interrupts(lx)
    return posted


def virtblk_done(lx, vq) -> None:
    """virtblk_done: callbacks off, take every used request, callbacks back on (again if
    more arrived)."""
    with lx.call("virtblk_done", BLK_SRC,
                 "Complete what the device finished: disable callbacks, virtqueue_get_buf until "
                 "empty (blk_mq_complete_request reads each status byte), enable callbacks."):
        for _ in range(vq.num + 1):
            vq.disable_cb()
            while True:
                got = vq.get_buf()
                if got is None:
                    break
                token, length = got
                posted = lx.state.get("blk_posted", {}).pop(token, None)
                if posted is not None:
                    posted.used_len, posted.done = length, True
                    posted.detail["status"] = lx.d.ram.read(posted.detail["status_at"], 1)[0]
                    if posted.kind == "read":
                        posted.detail["data"] = lx.d.ram.read(posted.detail["data_at"],
                                                              512 * posted.detail["count"]).hex()
            if vq.broken or vq.enable_cb():
                return


# --------------------------------------------------------------------------- virtio_net
def arp_request(mac: bytes, n: int = 0) -> bytes:
    """An ARP request from the guest (10.0.2.15, QEMU's user-network address) for 10.0.2.(2+n):
    42 bytes, broadcast."""
    target = bytes([10, 0, 2, (2 + n) % 256])
    return (b"\xff" * 6 + mac + b"\x08\x06"  # Ethernet: broadcast, from us, ARP
            + bytes.fromhex("0001 0800 06 04 0001".replace(" ", ""))  # Ethernet/IPv4, request
            + mac + bytes([10, 0, 2, 15]) + bytes(6) + target)


def start_xmit(lx, frame: bytes, q: int = 0) -> Posted:
    """start_xmit: free what was sent, put the frame (header pushed in front) on TX queue q, kick."""
    if not isinstance(frame, (bytes, bytearray)) or not 14 <= len(frame) <= 65535:
        raise VirtioLabError("a frame is 14 to 65535 bytes (an Ethernet header and its payload)")
    vq = lx.vqs[2 * q + 1]
    n = lx.state.setdefault("net_n", 0)
    lx.state["net_n"] = n + 1
    hdr_len = 12 if lx.res.features >> 32 & 1 or lx.res.features >> 15 & 1 else 10
    buf = lx.mem.DATA + 0x800 * (n % 128)  # the skb's buffer; data starts after the headroom
    data = buf + 0x80
    with lx.call("start_xmit", NET_SRC,
                 f"The stack hands the driver a {len(frame)}-byte frame (its skb data at 0x{data:x}, "
                 f"illustrative) for TX queue {vq.index}.", queue=vq.index):
        lx.mem.store(data, bytes(frame))
        lx.tr.phase(f"The frame's bytes, as the network stack built them: destination "
                    f"{bytes(frame[:6]).hex(':')}, source {bytes(frame[6:12]).hex(':')}, EtherType "
                    f"0x{bytes(frame[12:14]).hex()}.")
        # free up old buffers first (napi_tx: callbacks off, then on with a delay)
        for _ in range(vq.num + 1):
            vq.disable_cb()
            free_old_xmit_skbs(lx, vq)
            if vq.enable_cb_delayed():
                break
        with lx.call("xmit_skb", NET_SRC,
                     f"can_push: the {hdr_len}-byte virtio_net_hdr goes in the headroom right before the "
                     f"frame (virtio_net_hdr_from_skb: no checksum offload, no GSO: all zero), so header "
                     f"and frame are one buffer of {hdr_len + len(frame)} bytes at 0x{data - hdr_len:x}."):
            lx.mem.store(data - hdr_len, bytes(hdr_len))
            head = vq.add([(data - hdr_len, hdr_len + len(frame))], [], ("skb", n), "a frame")
        posted = Posted("frame", vq.index, head, ((data - hdr_len, hdr_len + len(frame), False),),
                        {"frame": bytes(frame).hex(), "hdr_len": hdr_len})
        lx.state.setdefault("net_posted", {})[("skb", n)] = posted
        if vq.num_free < 2 + 17:  # 2 + MAX_SKB_FRAGS: stop the queue
            lx.tr.phase("Fewer than 2 + MAX_SKB_FRAGS descriptors free: netif_stop_subqueue.")
            vq.enable_cb_delayed()
        kick(lx, vq)
    service_interrupts(lx)
    run_napi(lx)
    return posted


def free_old_xmit_skbs(lx, vq) -> int:
    """free_old_xmit_skbs: take back every frame the device has sent."""
    with lx.call("free_old_xmit_skbs", NET_SRC, f"Take back frames the device already sent on "
                 f"queue {vq.index} (virtqueue_get_buf until empty)."):
        count = 0
        while True:
            got = vq.get_buf()
            if got is None:
                break
            posted = lx.state.get("net_posted", {}).pop(got[0], None)
            if posted is not None:
                posted.used_len, posted.done = got[1], True
            count += 1
        lx.tr.phase(f"{count} frame(s) freed.")
        return count


def skb_xmit_done(lx, vq) -> None:
    """skb_xmit_done: callbacks off, schedule the TX NAPI (virtnet_poll_tx runs from softirq)."""
    with lx.call("skb_xmit_done", NET_SRC, "The TX interrupt: suppress further ones "
                 "(virtqueue_disable_cb) and schedule NAPI for this queue."):
        vq.disable_cb()
        lx.state.setdefault("napi", []).append(vq)


def run_napi(lx) -> None:
    """net_rx_action: run the scheduled NAPI polls (virtnet_poll_tx)."""
    while lx.state.get("napi"):
        vq = lx.state["napi"].pop(0)
        with lx.call("virtnet_poll_tx", NET_SRC,
                     f"NAPI poll for TX queue {vq.index}: free the sent frames, then re-arm the callback "
                     f"(virtqueue_enable_cb_prepare, napi_complete_done, virtqueue_poll)."):
            vq.disable_cb()
            free_old_xmit_skbs(lx, vq)
            opaque = vq.enable_cb_prepare()
            if vq.poll(opaque):
                vq.disable_cb()
                lx.state["napi"].append(vq)


CALLBACKS = {
    "virtio_rng": random_recv_done,
    "virtio_blk": virtblk_done,
    "virtio_net": lambda lx, vq: skb_xmit_done(lx, vq) if vq.index % 2 else None,
}
