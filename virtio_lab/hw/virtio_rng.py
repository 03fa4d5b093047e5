"""virtio-rng's device side: one queue of buffers the device fills with random bytes
(hw/virtio/virtio-rng.c, with the default rng-builtin backend).

The driver posts device-writable buffers on queue 0 and notifies. ``handle_input`` →
``virtio_rng_process`` sizes a request from the buffers available
(``get_request_size`` → ``virtqueue_get_avail_bytes``) and asks the backend
(backends/rng.c:rng_backend_request_entropy); rng-builtin answers from a bottom half
in QEMU's main loop (``rng_builtin_receive_entropy_bh``) by calling ``chr_read``,
which pops buffers, copies the bytes in, pushes each with the length written and
notifies once. Nothing happens unless the queue is ready and the status has
DRIVER_OK (``is_guest_ready``); setting the status retries (``virtio_rng_set_status``).
The rate limit (``max-bytes`` per ``period`` ms) is modelled as a quota; its timer,
which refills it, is not (the default quota, 2^63 - 1 bytes, never runs out).
"""

from __future__ import annotations

from . import virtqueue as vqm
from .guest_random import DEFAULT_SEED, GuestRandom

__all__ = ["VirtIORNG"]

RNG = "hw/virtio/virtio-rng.c"


class VirtIORNG:
    """The virtio-rng-device behind the proxy: queue 0 ``input``, handler ``handle_input``."""

    name = "virtio-rng"
    handlers = ("handle_input",)

    def __init__(self, dev, spec, seed: int = DEFAULT_SEED):
        self.dev = dev
        self.quota_remaining = spec.value("max-bytes")
        self.period = spec.value("period")
        self.activate_timer = True
        self.random = GuestRandom(seed)
        self.requests: list[int] = []  # sizes asked of the backend, not yet answered

    # ---------------------------------------------------------------- hooks
    def handle_output(self, n: int) -> None:
        with self.dev.call("handle_input", RNG, "virtio-rng's handler for its one queue: process "
                           "what the driver made available."):
            self.process()

    def set_status(self, status: int) -> None:
        """virtio_rng_set_status: store the status first, then try to process buffers."""
        self.dev.vdev.status = status
        with self.dev.call("virtio_rng_set_status", RNG, "A status change: try to process buffers "
                           "(they may have been posted before DRIVER_OK)."):
            self.process()

    def reset(self) -> None:
        self.requests.clear()

    # ---------------------------------------------------------------- the work
    def guest_ready(self) -> bool:
        """is_guest_ready: the queue has an available ring and the driver said DRIVER_OK."""
        vq = self.dev.vdev.queues[0]
        return bool(vq.vring_avail) and bool(self.dev.vdev.status & 4)

    def process(self) -> None:
        """virtio_rng_process: ask the backend for as many bytes as the buffers hold."""
        dev = self.dev
        vq = dev.vdev.queues[0]
        if not self.guest_ready():
            dev.phase("is_guest_ready is false (no available ring yet, or no DRIVER_OK): "
                      "nothing to do now.")
            return
        if self.activate_timer:
            self.activate_timer = False  # the rate-limit timer is armed once a period
        quota = 0 if self.quota_remaining < 0 else min(self.quota_remaining, 0xFFFFFFFF)
        with dev.call("virtqueue_get_avail_bytes", vqm.VIO,
                      "get_request_size: add up the device-writable bytes of the available chains."):
            size, _ = vqm.get_avail_bytes(dev, vq, quota, 0)
            dev.phase(f"{size} writable byte(s) available (last_avail_idx {vq.last_avail_idx}, "
                      f"avail->idx {vq.shadow_avail_idx}).", bytes=size)
        size = min(self.quota_remaining, size)
        if size:
            with dev.call("rng_backend_request_entropy", "backends/rng.c",
                          f"Ask the rng-builtin backend for {size} bytes: it answers from a bottom "
                          f"half in QEMU's main loop (rng_builtin_request_entropy schedules it).",
                          size=size):
                self.requests.append(size)
                dev.defer(self.receive_entropy)

    def receive_entropy(self) -> None:
        """rng_builtin_receive_entropy_bh: answer every queued request through chr_read."""
        dev = self.dev
        with dev.call("rng_builtin_receive_entropy_bh", "backends/rng-builtin.c",
                      "QEMU's main loop runs the backend's bottom half: each request gets "
                      "qemu_guest_getrandom_nofail bytes (util/guest-random.c; with -seed, GLib's "
                      "Mersenne Twister), handed to chr_read."):
            while self.requests:
                size = self.requests.pop(0)
                self.chr_read(self.random.getrandom(size))

    def chr_read(self, buf: bytes) -> None:
        """chr_read: pop buffers, copy the bytes in, push each with its length, notify once."""
        dev = self.dev
        vq = dev.vdev.queues[0]
        with dev.call("chr_read", RNG, f"{len(buf)} random bytes arrived: fill the driver's buffers "
                      f"in ring order, push each, then one virtio_notify.", size=len(buf)):
            if not self.guest_ready():
                dev.phase("The guest is no longer ready: the bytes are dropped.")
                return
            self.quota_remaining -= len(buf)
            offset = 0
            while offset < len(buf):
                elem = dev.virtqueue_pop(vq)
                if elem is None:
                    break
                n = dev.iov_from_buf(elem.in_sg, 0, buf[offset:], "random bytes")
                offset += n
                dev.virtqueue_push(vq, elem, n)
            dev.virtio_notify(vq)
            if not vqm.queue_empty(dev, vq):
                self.process()
