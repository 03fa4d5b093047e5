"""virtio-net's transmit side (hw/net/virtio-net.c): frames from the TX queue to the peer.

Queues come in pairs, receive then transmit (``input.N`` / ``output.N`` in Linux's
names), plus the control queue last when ``ctrl_vq`` is on. A transmitted frame is
one chain of device-readable buffers starting with the ``struct virtio_net_hdr``
(12 bytes with VERSION_1 or MRG_RXBUF, else 10). A notify on a TX queue runs
``virtio_net_handle_tx_bh`` (the default ``tx=bh``): it turns the queue's
notifications off and schedules ``virtio_net_tx_bh`` in QEMU's main loop, which calls
``virtio_net_flush_tx``: pop, drop the guest's header when the peer takes none
(``host_hdr_len`` 0: a datagram socket, or no netdev at all), hand the frame to the
peer (``qemu_sendv_packet_async``), push with length 0 (the device wrote nothing),
notify; then notifications back on and one more flush for late arrivals. ``tx=timer``
(``virtio_net_handle_tx_timer``) waits ``x-txtimer`` ns of virtual time first.

The receive queue's notify (``virtio_net_handle_rx``) only flushes packets the peer
queued (none here); the control queue is not modelled.
"""

from __future__ import annotations

from . import virtqueue as vqm

__all__ = ["VirtIONet"]

NET = "hw/net/virtio-net.c"
VERSION_1, MRG_RXBUF, HASH_REPORT, CTRL_VQ, MQ = 32, 15, 57, 17, 22


class VirtIONet:
    """The virtio-net-device behind the proxy; ``frames`` are what the peer received."""

    name = "virtio-net"

    def __init__(self, dev, spec, peer: str | None = None):
        self.dev = dev
        self.peer = peer  # None: no netdev (frames vanish); else the netdev id
        self.frames: list[bytes] = []
        self.timer = spec.value("tx") == "timer"
        self.tx_burst = spec.value("x-txburst")
        self.tx_timeout = spec.value("x-txtimer")
        nq = len(dev.vdev.queues)
        self.ctrl = nq % 2 == 1
        self.tx_waiting = [False] * (nq // 2)
        tx = "virtio_net_handle_tx_timer" if self.timer else "virtio_net_handle_tx_bh"
        self.handlers = tuple(("virtio_net_handle_rx", tx)[i % 2] for i in range(nq - self.ctrl)) \
            + (("virtio_net_handle_ctrl",) if self.ctrl else ())

    @property
    def guest_hdr_len(self) -> int:
        """virtio_net_set_mrg_rx_bufs: the header the guest puts before every frame."""
        f = self.dev.vdev.guest_features
        if f >> VERSION_1 & 1:
            return 20 if f >> HASH_REPORT & 1 else 12
        return 12 if f >> MRG_RXBUF & 1 else 10

    def set_status(self, status: int) -> None:
        """virtio_net_set_status: a started TX queue with work waiting is kicked again."""
        self.dev.vdev.status = status
        for q, waiting in enumerate(self.tx_waiting):
            if waiting and status & 4:
                self.dev.defer(lambda q=q: self.tx_bh(q))

    def reset(self) -> None:
        self.tx_waiting = [False] * len(self.tx_waiting)

    # ------------------------------------------------------------ handlers
    def handle_output(self, n: int) -> None:
        dev = self.dev
        if self.ctrl and n == len(dev.vdev.queues) - 1:
            with dev.call("virtio_net_handle_ctrl", NET,
                          "The control queue (MAC filters, VLANs, multiqueue...): not modelled by "
                          "virtio_lab; nothing is popped."):
                return
        if n % 2 == 0:
            with dev.call("virtio_net_handle_rx", NET,
                          "A receive queue got buffers: qemu_flush_queued_packets delivers what the "
                          "peer queued while the guest had none (nothing here)."):
                return
        q = n // 2
        vq = dev.vdev.queues[n]
        if self.timer:
            with dev.call("virtio_net_handle_tx_timer", NET,
                          f"TX queue {n} kicked (tx=timer): flush now if frames are already waiting, "
                          f"else arm the timer for {self.tx_timeout} ns of virtual time and turn "
                          f"notifications off."):
                if self.tx_waiting[q]:
                    self.tx_timer(q)
                else:
                    self.tx_waiting[q] = True
                    dev.set_notification(vq, False)
                    dev.defer(lambda: self.tx_timer(q))
            return
        with dev.call("virtio_net_handle_tx_bh", NET,
                      f"TX queue {n} kicked: mark it waiting, turn its notifications off and schedule "
                      f"the transmit bottom half (virtio_net_tx_bh) in QEMU's main loop."):
            if self.tx_waiting[q]:
                dev.phase("A flush is already scheduled: nothing more to do.")
                return
            self.tx_waiting[q] = True
            dev.set_notification(vq, False)
            dev.defer(lambda: self.tx_bh(q))

    def tx_bh(self, q: int, fn: str = "virtio_net_tx_bh") -> None:
        """virtio_net_tx_bh / virtio_net_tx_timer: flush, notifications on, flush once more."""
        dev = self.dev
        vq = dev.vdev.queues[2 * q + 1]
        with dev.call(fn, NET, "QEMU's main loop transmits: flush the queue, then turn notifications "
                      "back on and flush again for frames that came in meanwhile."):
            self.tx_waiting[q] = False
            if not dev.vdev.status & 4:
                dev.phase("No DRIVER_OK (the driver is not ready any more): nothing is sent.")
                return
            ret = self.flush_tx(q)
            if ret < 0:
                return
            if ret >= self.tx_burst:
                self.tx_waiting[q] = True
                dev.defer(lambda: self.tx_bh(q, fn))
                return
            dev.set_notification(vq, True)
            ret = self.flush_tx(q)
            if ret > 0:
                dev.set_notification(vq, False)
                self.tx_waiting[q] = True
                dev.defer(lambda: self.tx_bh(q, fn))

    def tx_timer(self, q: int) -> None:
        self.tx_bh(q, "virtio_net_tx_timer")

    def flush_tx(self, q: int) -> int:
        """virtio_net_flush_tx: send every available frame (up to tx_burst); -1 on an error."""
        dev = self.dev
        vq = dev.vdev.queues[2 * q + 1]
        with dev.call("virtio_net_flush_tx", NET,
                      f"Pop frames, strip the {self.guest_hdr_len}-byte virtio_net_hdr the peer "
                      f"does not take, send each, push it with len 0, notify."):
            if not dev.vdev.status & 4:
                return 0
            sent = 0
            while True:
                elem = dev.virtqueue_pop(vq)
                if elem is None:
                    break
                if not elem.out_sg:
                    dev.virtio_error("virtio-net header not in first element")
                    dev.virtqueue_detach(vq, elem)
                    return -1
                frame = dev.iov_to_buf(elem.out_sg, self.guest_hdr_len, elem.out_len)
                if elem.out_len <= self.guest_hdr_len:
                    dev.virtio_error("virtio-net nothing to send")
                    dev.virtqueue_detach(vq, elem)
                    return -1
                self.send(frame)
                dev.virtqueue_push(vq, elem, 0)
                dev.virtio_notify(vq)
                sent += 1
                if sent >= self.tx_burst:
                    break
            return sent

    def send(self, frame: bytes) -> None:
        """qemu_sendv_packet_async: to the peer (a datagram socket sends at once), or nowhere."""
        dev = self.dev
        to = (f"netdev {self.peer}: one datagram of {len(frame)} bytes" if self.peer
              else f"no netdev: qemu_sendv_packet_async reports {len(frame)} bytes sent and drops them")
        with dev.call("qemu_sendv_packet_async", "net/net.c",
                      f"The frame goes to the peer ({to}); "
                      f"destination {frame[:6].hex(':')}, source {frame[6:12].hex(':')}, "
                      f"EtherType 0x{frame[12:14].hex()}.", length=len(frame), frame=frame.hex()):
            if self.peer:
                self.frames.append(frame)
