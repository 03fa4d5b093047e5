"""The emulated device as a qtest client finds a real QEMU: the queue replay's convention.

A replay is a list of :class:`Op` (every access a driver made, in order) that any qtest
client can send to a real ``qemu-system-x86_64`` (``writeb/w/l``, ``readb/w/l``,
``outb/w/l``, ``inb/w/l``, ``write ADDR SIZE 0xHEX``, config space through 0xcf8/0xcfc).
For the answers to mean something on both sides, the state before op 0 is fixed:

* the device plugged alone at 00:03.0 (01:00.0 behind a ``pcie-root-port`` at 00:02.0),
  no firmware having run;
* its BARs at the addresses the replay names (``bars``), COMMAND = 0x0007 (IO, memory,
  Bus Master);
* guest RAM all zero.

:func:`start` builds that state in the emulation and :func:`apply` plays one op on it
(QEMU's main loop work, bottom halves and I/O completions, runs before the next op: the
live replay waits for the used ring to reach the same index). :func:`snapshot` is what
the device left that a client can observe: RAM bytes, ISR, pending MSI-X bits, status,
the queues' indices (QEMU's ``x-query-virtio-queue-status``), virtio_error messages.
Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import VirtioLabError
from ..pci import regs
from .guest_access import GuestDevice
from .plug import plug

__all__ = ["Op", "start", "apply", "snapshot", "indices", "OP_KINDS", "COMMAND"]

COMMAND = regs.PCI_COMMAND_IO | regs.PCI_COMMAND_MEMORY | regs.PCI_COMMAND_MASTER  # 0x0007
OP_KINDS = ("cfg_read", "cfg_write", "mmio_read", "mmio_write", "io_read", "io_write", "ram_write")


@dataclass(frozen=True)
class Op:
    """One guest access: config offset / guest-physical address / IO port, width, value.

    Reads carry the value the emulation answered; ``ram_write`` carries its bytes.
    ``event`` is the index of the trace event that made it (for views; not replayed).
    """

    kind: str
    addr: int
    size: int = 0
    value: int | None = None
    data: bytes = b""
    event: int = -1
    #: (queue, last_avail_idx, used_idx): where the device's indices stand once its main loop
    #: has finished this op's work (a client polls x-query-virtio-queue-status for it)
    wait: tuple[tuple[int, int, int], ...] = ()
    notify: bool = False  # the write notified a queue (QEMU may work on it after the write returns)

    @property
    def is_read(self) -> bool:
        return self.kind.endswith("_read")

    def to_json(self) -> dict:
        out = {"op": self.kind, "addr": self.addr}
        if self.kind == "ram_write":
            out["hex"] = self.data.hex()
        else:
            out["size"] = self.size
            out["value"] = self.value
        if self.event >= 0:
            out["event"] = self.event
        if self.notify:
            out["notify"] = True
        if self.wait:
            out["wait"] = [{"queue": q, "last_avail_idx": a, "used_idx": u} for q, a, u in self.wait]
        return out

    @classmethod
    def from_json(cls, d: dict) -> "Op":
        """One op from replay JSON; one clear line for anything malformed."""
        if not isinstance(d, dict) or d.get("op") not in OP_KINDS:
            raise VirtioLabError(f"a driver op is an object with \"op\" one of {', '.join(OP_KINDS)}, "
                                 f"not {d!r:.80}")
        addr = d.get("addr")
        if not isinstance(addr, int) or isinstance(addr, bool) or addr < 0:
            raise VirtioLabError(f"op {d['op']}: \"addr\" is a non-negative integer, not {addr!r:.40}")
        if d["op"] == "ram_write":
            try:
                data = bytes.fromhex(d.get("hex", ""))
            except (TypeError, ValueError):
                raise VirtioLabError(f"op ram_write at 0x{addr:x}: \"hex\" is a string of hex digits") from None
            return cls("ram_write", addr, len(data), None, data, d.get("event", -1))
        size, value = d.get("size"), d.get("value")
        if size not in (1, 2, 4):
            raise VirtioLabError(f"op {d['op']} at 0x{addr:x}: \"size\" is 1, 2 or 4, not {size!r:.20}")
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 0 <= value < 1 << (8 * size)):
            raise VirtioLabError(f"op {d['op']} at 0x{addr:x}: \"value\" is an integer that fits "
                                 f"{size} byte(s), not {value!r:.40}")
        if value is None and not d["op"].endswith("_read"):
            raise VirtioLabError(f"op {d['op']} at 0x{addr:x} needs a \"value\"")
        wait = d.get("wait", [])
        keys = ("queue", "last_avail_idx", "used_idx")
        if not isinstance(wait, list) or not all(
                isinstance(w, dict) and all(isinstance(w.get(k), int) for k in keys) for w in wait):
            raise VirtioLabError(f"op {d['op']} at 0x{addr:x}: \"wait\" is a list of "
                                 f"{{queue, last_avail_idx, used_idx}}")
        return cls(d["op"], addr, size, value, b"", d.get("event", -1),
                   tuple(tuple(w[k] for k in keys) for w in wait), bool(d.get("notify")))


def indices(dev: GuestDevice) -> dict[int, tuple[int, int, int]]:
    """queue -> (queue, last_avail_idx, used_idx): the device's progress, as QMP reports it."""
    return {i: (i, q.last_avail_idx, q.used_idx) for i, q in enumerate(dev.vdev.queues)}


def start(spec: str, machine: str, root_port: bool, bars: dict[int, int], *,
          disk: bytearray | None = None, peer: str | None = None, seed: int | None = None,
          record: bool = False) -> GuestDevice:
    """The device as op 0 finds it: plugged, BARs at ``bars``, COMMAND = 7, RAM zero."""
    trace = plug(spec, machine, root_port)
    if trace.error is not None:
        raise trace.error
    dev = GuestDevice(trace, record=record)
    dev.attach_backend(disk=disk, peer=peer, seed=seed)
    for bar in dev.facts.bars:
        if bar.index == regs.PCI_ROM_SLOT:
            continue
        if bar.index not in bars:
            raise VirtioLabError(f"the replay names no address for BAR{bar.index}; give every BAR "
                                 f"the device has: " + ", ".join(str(b.index) for b in dev.facts.bars
                                                                 if b.index != regs.PCI_ROM_SLOT))
        addr = bars[bar.index]
        off = regs.PCI_BASE_ADDRESS_0 + 4 * bar.index
        dev.config_write(off, addr & 0xFFFFFFFF, 4)
        if bar.kind == "mem64":
            dev.config_write(off + 4, addr >> 32, 4)
    dev.config_write(regs.PCI_COMMAND, COMMAND, 2)
    return dev


def apply(dev: GuestDevice, op: Op) -> int | None:
    """Play one op on the emulated device; a read's answer is returned."""
    k = op.kind
    if k == "ram_write":
        dev.ram.write(op.addr, op.data)
        return None
    if k == "cfg_read":
        return dev.config_read(op.addr, op.size)
    if k == "cfg_write":
        dev.config_write(op.addr, op.value, op.size)
        return None
    io = k.startswith("io_")
    if k.endswith("_read"):
        v = dev.io_read(op.addr, op.size) if io else dev.mem_read(op.addr, op.size)
        return ((1 << 8 * op.size) - 1 if io else 0) if v is None else v
    if io:
        dev.io_write(op.addr, op.value, op.size)
    else:
        dev.mem_write(op.addr, op.value, op.size)
    return None


def snapshot(dev: GuestDevice, ranges: list[tuple[int, int]]) -> dict:
    """What a qtest client (and QMP's x-query-virtio-status / -queue-status) can see now."""
    d = dev.vdev
    pending = [v for v in range(len(dev.msix_used)) if dev.msix_pba[v // 8] >> (v % 8) & 1]
    return {
        "ram": [{"addr": a, "hex": dev.ram.read(a, n).hex()} for a, n in ranges],
        "isr": d.isr,
        "msix_pending": pending,
        "status": d.status,
        "broken": d.broken,
        "intx": bool(dev.config[regs.PCI_STATUS] & regs.PCI_STATUS_INTERRUPT),
        "queues": [{"index": i, "last_avail_idx": q.last_avail_idx,
                    "shadow_avail_idx": q.shadow_avail_idx, "used_idx": q.used_idx,
                    "signalled_used": q.signalled_used, "signalled_used_valid": q.signalled_used_valid,
                    "inuse": q.inuse} for i, q in enumerate(d.queues) if q.vring_desc],
        "errors": list(dev.errors),
    }
