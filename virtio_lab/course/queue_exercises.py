"""The checked exercises of notebook 12 (the device at work), registered with the others.

Every answer is computed from a :func:`virtio_lab.guest.queue.queue` run when it is first
asked for: which buffers the device stored into (its DMA writes, not the flags the driver
set), where the used ring stands after the ring has wrapped, what the ISR holds when the
driver never reads it.
"""

from __future__ import annotations

from functools import lru_cache

from .exercises import _as_int, _cmp_dict, _cmp_int, _cmp_set, _exercise

__all__: list[str] = []

NOTEBOOK = "12-device-at-work"


@lru_cache(maxsize=8)
def _run(spec: str, requests: int):
    from ..guest.queue import queue
    return queue(spec, requests=requests)


def _device_writes() -> set[int]:
    """The indirect-table entries of virtio-blk's request 1 whose buffers the device stored into."""
    run = _run("virtio-blk-pci", 1)
    dev, r = run.device, run.requests[0]
    vq = run.vqs[r.queue]
    ram = dev.ram
    d = vq.desc + 16 * r.head
    table, count = ram.read_int(d, 8), ram.read_int(d + 8, 4) // 16
    stores = [(a, n) for a, n, at in dev.dma if r.dev_ops[0] <= at <= r.dev_ops[1] + 1]
    out = set()
    for j in range(count):
        addr, length = ram.read_int(table + 16 * j, 8), ram.read_int(table + 16 * j + 8, 4)
        if any(a < addr + length and addr < a + n for a, n in stores):
            out.add(j)
    return out


@_exercise("device-writes", NOTEBOOK,
           "Request 1 of virtio-blk-pci reads sector 1. The driver put its three buffers in an indirect "
           "table: the header, the data, the status byte. Which entries of that table (by index) does "
           "the device write into?",
           shape="a set or list of table indices, e.g. {0}",
           hint="Look at each entry's flags in the ring view: the device may write a buffer marked WRITE "
                "(2). A read fills the data buffer; every request ends with a status byte.",
           why="The device reads the header (entry 0: type, ioprio, sector) and writes the data it read "
               "from the image (entry 1) and the status byte (entry 2); the used element's len is every "
               "device-writable byte, 512 + 1 = 513.",
           compare=lambda g, w: _cmp_set(g, w, "table indices", lambda v: _as_int(v, "a table index"),
                                         why_missing=lambda j: "the device writes into it",
                                         why_extra=lambda j: "the device only reads that one"))
def _device_writes_answer():
    return _device_writes()


def _wrap() -> dict[str, int]:
    run = _run("virtio-blk-pci,queue-size=4", 6)
    vq, r = run.vqs[0], run.requests[5]
    push = next(e for e in run.trace.events[r.first_event:r.last_event + 1] if e.function == "virtqueue_push")
    return {"used_idx": run.ram.read_int(vq.used + 2, 2), "slot": push.detail("slot")}


@_exercise("used-idx-wrap", NOTEBOOK,
           "virtio-blk-pci,queue-size=4 makes six requests, one after the other. What is used->idx "
           "after them, and in which slot of the used ring did the device put the sixth one's element?",
           shape='a dict {"used_idx": .., "slot": ..}',
           hint="The index only counts up (16 bits, wrapping at 65536); the slot is the index modulo "
                "the ring size, taken before the device moves it on.",
           why="used->idx counts every element the device has used: 6. The sixth element went to slot "
               "(6 - 1) mod 4 = 1: the ring wrapped after four, and slots 0 and 1 were used again.",
           compare=lambda g, w: _cmp_dict(g, w, "used-ring numbers", lambda k, v: _as_int(v, f"{k}"),
                                          where=lambda k: "used->idx counts, the slot is idx mod num"))
def _wrap_answer():
    return _wrap()


def _isr_msix() -> int:
    run = _run("virtio-rng-pci", 1)
    return run.requests[0].after["isr"] if run.to_json() else 0


@_exercise("isr-after-msix", NOTEBOOK,
           "virtio-rng-pci answered request 1 with an MSI-X interrupt and the driver took the buffer "
           "back. What does the ISR byte hold now?",
           shape="a number (the ISR byte)",
           hint="virtio_irq sets ISR bit 0 whether or not MSI-X is on; who would clear it?",
           why="QEMU's virtio_irq sets ISR bit 0 on every queue interrupt, MSI-X or not; only a read of "
               "the ISR clears it, and with MSI-X Linux never reads it (vring_interrupt is called "
               "straight from the vector). So it stays 1.",
           compare=lambda g, w: _cmp_int(g, w, "the ISR byte"))
def _isr_answer():
    return _isr_msix()
