"""The guest's hands on a plugged device: config space and BAR regions, as QEMU 7.2 answers.

:class:`GuestDevice` extends :class:`~virtio_lab.pci.access.ConfigAccess` (the write
rule) with what QEMU's hooks do around it and with the memory regions the BARs
expose once firmware has placed them:

* config space — ``virtio_write_config`` / ``virtio_read_config``
  (hw/virtio/virtio-pci.c): the write rule (wmask, w1cmask, so BAR sizing with
  all ones reads back the size mask), clearing Bus Master drops DRIVER_OK, the
  MSI-X Enable/Function Mask side effects (hw/pci/msix.c: msix_write_config) and
  the VIRTIO_PCI_CAP_PCI_CFG window that reads and writes the modern BAR through
  ``pci_cfg_data``;
* the modern regions — ``virtio_pci_common_read/write`` (common configuration),
  ``virtio_pci_isr_read`` (read clears), ``virtio_pci_notify_write`` (and the
  ``-pio`` variant), ``virtio_pci_device_read/write`` (``virtio_config_modern_readb``
  and friends: 0xff.. past the device's config length);
* the MSI-X table and PBA — ``msix_table_mmio_read/write``, ``msix_pba_mmio_read``;
* the legacy IO header — ``virtio_pci_config_read/write`` → ``virtio_ioport_read/write``.

Every access is an :class:`~virtio_lab.trace.Event` in the same stream as the plug
(config writes carry their :class:`~virtio_lab.trace.Write` records, so
``Trace.state_at`` replays them). Behaviour is written from QEMU's source; no
QEMU code is copied. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterator

from ..errors import VirtioLabError, shown
from ..pci import regs
from ..pci.access import ConfigAccess
from ..pci.bar import Bar, Region
from ..pci.bits import get_le, ranges_overlap
from ..pci.layout import field_map
from ..trace import Tracer, new_write
from . import virtqueue as vqm
from .guest_ram import GuestRAM, NotModelled
from .state import PlugState
from .virtqueue import VirtQueue

__all__ = ["GuestDevice", "VirtQueue", "VirtioDevice", "Interrupt", "COMMON_CFG", "STATUS_NAMES"]

VPC = "hw/virtio/virtio-pci.c"
VIO = "hw/virtio/virtio.c"
MSIX = "hw/pci/msix.c"
NO_VECTOR = regs.VIRTIO_NO_VECTOR

#: struct virtio_pci_common_cfg (virtio spec 4.1.4.3; QEMU's VIRTIO_PCI_COMMON_* offsets).
COMMON_CFG = {
    0x00: ("device_feature_select", 4), 0x04: ("device_feature", 4),
    0x08: ("driver_feature_select", 4), 0x0C: ("driver_feature", 4),
    0x10: ("msix_config", 2), 0x12: ("num_queues", 2), 0x14: ("device_status", 1),
    0x15: ("config_generation", 1), 0x16: ("queue_select", 2), 0x18: ("queue_size", 2),
    0x1A: ("queue_msix_vector", 2), 0x1C: ("queue_enable", 2), 0x1E: ("queue_notify_off", 2),
    0x20: ("queue_desc_lo", 4), 0x24: ("queue_desc_hi", 4), 0x28: ("queue_avail_lo", 4),
    0x2C: ("queue_avail_hi", 4), 0x30: ("queue_used_lo", 4), 0x34: ("queue_used_hi", 4),
    0x3A: ("queue_reset", 2),
}
COMMON_OFFSET = {name: off for off, (name, _) in COMMON_CFG.items()}

#: The legacy header (include/uapi/linux/virtio_pci.h).
LEGACY_CFG = {
    0: "host_features", 4: "guest_features", 8: "queue_pfn", 12: "queue_num", 14: "queue_sel",
    16: "queue_notify", 18: "status", 19: "isr", 20: "msix_config_vector", 22: "msix_queue_vector",
}

STATUS_NAMES = ((1, "ACKNOWLEDGE"), (2, "DRIVER"), (8, "FEATURES_OK"), (4, "DRIVER_OK"),  # handshake order
                (0x40, "DEVICE_NEEDS_RESET"), (0x80, "FAILED"))
DRIVER_OK, FEATURES_OK, NEEDS_RESET = 4, 8, 0x40
VERSION_1 = 1 << 32
ACCESS_PLATFORM = 1 << 33  # VIRTIO_F_ACCESS_PLATFORM (QEMU: VIRTIO_F_IOMMU_PLATFORM)


def status_text(v: int) -> str:
    names = [n for bit, n in STATUS_NAMES if v & bit]
    return f"0x{v:02x} ({'|'.join(names) or 'reset'})"


@dataclass
class VirtioDevice:
    """The VirtIODevice's guest-visible state (hw/virtio/virtio.c) and the proxy's selectors."""

    host_features: int
    hidden_features: int  # vdc->legacy_features: never shown to a modern driver
    queues: list[VirtQueue]
    config: bytes  # what get_config fills in (the device-owned bytes)
    nvectors: int
    status: int = 0
    guest_features: int = 0
    proxy_guest_features: list[int] = field(default_factory=lambda: [0, 0])
    dfselect: int = 0
    gfselect: int = 0
    queue_sel: int = 0
    config_vector: int = NO_VECTOR
    isr: int = 0
    generation: int = 0
    broken: bool = False
    disabled: bool = False
    started: bool = False

    def queue(self, n: int) -> VirtQueue | None:
        return self.queues[n] if 0 <= n < len(self.queues) else None


@dataclass(frozen=True)
class Interrupt:
    """An interrupt the device raised: an MSI-X message that reached the CPU, or INTx going up."""

    kind: str  # "msix" | "intx"
    vector: int = NO_VECTOR  # the MSI-X table entry
    address: int = 0
    data: int = 0
    event: int = -1  # the trace event that raised it


def _desc_flags(flags: int) -> str:
    """A descriptor's flags by name (NEXT 1, WRITE 2, INDIRECT 4)."""
    names = [n for bit, n in ((1, "NEXT"), (2, "WRITE"), (4, "INDIRECT")) if flags & bit]
    return "|".join(names) or "0"


def _common_offset(name: str) -> int:
    """The offset of a common-configuration register, by its spec name."""
    if name not in COMMON_OFFSET:
        raise VirtioLabError(f"no common-configuration register {shown(name)}: one of "
                             + ", ".join(COMMON_OFFSET))
    return COMMON_OFFSET[name]


def _check_address(addr: int, what: str) -> None:
    if not isinstance(addr, int) or addr < 0:
        raise VirtioLabError(f"{what} is a non-negative integer, not {shown(addr)}")


def _hex(v: int, size: int) -> str:
    return f"0x{v:0{2 * size}x}"


class GuestDevice(ConfigAccess):
    """One plugged virtio-pci device as a guest drives it, every access an event.

    ``GuestDevice(trace)`` starts from the plug's final state; its tracer continues
    the plug's event list (``self.tracer.events`` starts with the plug's events).
    """

    def __init__(self, trace, tracer: Tracer | None = None, record: bool = True):
        state: PlugState = trace.final
        super().__init__(state)
        self.trace = trace
        self.facts = state.facts
        self.cmask = state.cmask
        if tracer is None:
            tracer = Tracer(state.facts)
            tracer.events = list(trace.events)
        self.tracer = tracer
        self.record = record
        self._labels = field_map(bytes(self.config[:self.size]))
        caps = state.caps
        self.caps = tuple(caps)
        self.msix_cap = next((c.offset for c in caps if c.id == regs.CapID.MSIX), 0)
        self.config_cap = next((c.offset for c in caps if c.id == regs.CapID.VNDR
                                and c.get("cfg_type") == regs.VirtioCfgType.PCI_CFG), 0)
        self.vdev = _virtio_device(trace)
        n = self.facts.msix[0] if self.facts.msix else 0
        # msix_init: every entry starts masked (vector control bit 0), the PBA clear
        self.msix_table = bytearray(b"".join(bytes(12) + b"\x01\0\0\0" for _ in range(n)))
        self.msix_pba = bytearray((n + 63) // 64 * 8)
        self.msix_used = [0] * n
        self.irq_level = 0
        self.ram = GuestRAM()
        self.errors: list[str] = []  # virtio_error messages, as QEMU prints them on stderr
        self.interrupts: list[Interrupt] = []  # delivered to the CPU, for the guest to take
        self._deferred: list = []  # bottom halves and I/O completions for QEMU's main loop
        self._depth = 0
        self.backend = None  # the device model behind the proxy (attach_backend)
        # VIRTIO_PCI_FLAG_USE_IOEVENTFD (the ioeventfd property, on by default where it exists)
        self.ioeventfd = bool(trace.spec.value("ioeventfd"))
        self.ioeventfd_started = False
        self.notifies = 0  # queue notifications the device has received (for the replay's hints)
        self.unmodelled = ""  # set when the device reached memory this model does not cover
        #: every access the guest made, in order: ("cfg", r/w, offset, size, value, event),
        #: ("bar", r/w, index, offset, size, value, event), ("ram", address, bytes, event)
        self.ops: list[tuple] = []
        self.dma: list[tuple[int, int, int]] = []  # device stores: (address, length, op count)
        self.attach_backend()
        # proxy->regs order (virtio_address_space_lookup walks it): common, isr, device, notify, notify-pio
        self._modern_regions = [(bar, r) for role in ("common", "isr", "device", "notify", "notify-pio")
                                for bar in self.facts.bars if not any(x.role == "legacy" for x in bar.regions)
                                for r in bar.regions if r.role == role]
        # virtio_pci_queue_mem_mult: the memory notify region's stride (the cap that points at it)
        notify_bar = next((bar.index for bar, r in self._modern_regions if r.role == "notify"), None)
        self.mult = next((c.get("notify_off_multiplier") for c in caps if c.id == regs.CapID.VNDR
                          and c.get("cfg_type") == regs.VirtioCfgType.NOTIFY_CFG
                          and c.get("bar") == notify_bar), 4) or 0

    # ------------------------------------------------------------------ events
    def _event(self, function: str, source: str, explanation: str, **details: Any):
        return self.tracer.call(function, source, explanation, **details)

    def _note(self, function: str, source: str, explanation: str, **details: Any) -> None:
        if self.record:
            with self.tracer.call(function, source, explanation, **details):
                pass

    # ---------------------------------------------------- the device at work
    def call(self, function: str, source: str, explanation: str, **details: Any):
        """An event of the device model (a no-op context when not recording)."""
        return self.tracer.call(function, source, explanation, **details) if self.record else _NULL

    def phase(self, explanation: str, **details: Any) -> None:
        if self.record:
            self.tracer.phase(explanation, **details)

    def store(self, addr: int, data: bytes) -> None:
        """A DMA store into guest memory (address_space_write), recorded in space "ram"."""
        for a, old, new in self.ram.write(addr, data):
            self.dma.append((a, len(new), len(self.ops)))
            if self.record:
                self.tracer.record(new_write("ram", a, old, new))

    def defer(self, fn) -> None:
        """Queue work for QEMU's main loop (a bottom half, a timer, an I/O completion)."""
        self._deferred.append(fn)

    def run_main_loop(self) -> None:
        """QEMU's main loop runs what the last guest access scheduled, before the guest's next
        access (a real QEMU over qtest: the replay waits for the used ring to move). Its
        events stand at depth 0: another thread, not a call of the guest's."""
        while self._deferred:
            fn = self._deferred.pop(0)
            if self.record:
                with self.tracer.detached():
                    self._guarded(fn)
            else:
                self._guarded(fn)

    def _guarded(self, fn) -> None:
        """Run device work; if it reaches memory this model does not cover, say so and stop."""
        try:
            fn()
        except NotModelled as err:
            self.unmodelled = str(err)
            with self.call("flatview_translate", "softmmu/physmem.c",
                           f"The device's access stops here, in virtio_lab: {err}."):
                pass

    def iov_from_buf(self, pieces, offset: int, data: bytes, what: str) -> int:
        """iov_from_buf: copy ``data`` into the mapped pieces from byte ``offset``; bytes
        for a bounced piece go to the bounce buffer, whose write-back lands in the hole."""
        plan, copied, pos = [], 0, 0
        for p in pieces:
            if offset >= pos + p.length:
                pos += p.length
                continue
            start = max(offset - pos, 0)
            n = min(p.length - start, len(data) - copied)
            if n <= 0:
                break
            plan.append((p, start, copied, n))
            copied += n
            pos += p.length
        if copied:
            where = ", ".join(f"0x{p.addr + start:x}" + (" (bounced: lost in the hole)" if p.bounced else "")
                              for p, start, _, _ in plan)
            self.phase(f"{copied} byte(s) of {what} written into the buffer at {where}.", bytes=copied)
        for p, start, at, n in plan:
            if not p.bounced:
                self.store(p.addr + start, data[at:at + n])
        return copied

    def iov_to_buf(self, pieces, offset: int, n: int) -> bytes:
        """iov_to_buf: up to ``n`` bytes of the mapped pieces from byte ``offset``."""
        out, pos = bytearray(), 0
        for p in pieces:
            if len(out) >= n:
                break
            if offset >= pos + p.length:
                pos += p.length
                continue
            start = max(offset - pos, 0)
            take = min(p.length - start, n - len(out))
            out += bytes(take) if p.bounced else self.ram.read(p.addr + start, take)
            pos += p.length
        return bytes(out)

    def _qindex(self, vq: VirtQueue) -> int:
        return next(i for i, q in enumerate(self.vdev.queues) if q is vq)

    def virtqueue_pop(self, vq: VirtQueue):
        """virtqueue_pop (→ virtqueue_split_pop), as an event naming what it read."""
        n = self._qindex(vq)
        with self.call("virtqueue_pop", vqm.VIO,
                       f"Queue {n}: is there a new chain? avail->idx against last_avail_idx "
                       f"{vq.last_avail_idx}.", queue=n):
            elem = vqm.pop(self, vq)
            if elem is None:
                self.phase(f"Nothing (more) to pop: avail->idx is {vq.shadow_avail_idx}, "
                           f"last_avail_idx {vq.last_avail_idx}." if not self.vdev.broken else
                           "The device is broken: nothing is popped.", queue=n)
                return None
            chain = "; ".join(f"{'indirect ' if d.table != vq.vring_desc else ''}desc[{d.index}] "
                              f"addr 0x{d.addr:x} len {d.len} flags {_desc_flags(d.flags)}"
                              + (f" next {d.next}" if d.flags & vqm.VRING_DESC_F_NEXT else "")
                              for d in elem.descs)
            self.phase(f"Popped head {elem.index} (avail->ring[{(vq.last_avail_idx - 1) % vq.num}]); "
                       f"last_avail_idx is now {vq.last_avail_idx}. The chain: {chain}. "
                       f"{elem.out_len} byte(s) the device reads, {elem.in_len} it may write.",
                       queue=n, head=elem.index, descs=tuple((d.table, d.index) for d in elem.descs))
            return elem

    def virtqueue_push(self, vq: VirtQueue, elem, length: int) -> None:
        """virtqueue_push: virtqueue_fill (used->ring entry) then virtqueue_flush (used->idx)."""
        n = self._qindex(vq)
        slot = vq.used_idx % vq.num if vq.num else 0
        with self.call("virtqueue_push", vqm.VIO,
                       f"Queue {n}: virtqueue_fill writes used->ring[{slot}] = {{id {elem.index}, len "
                       f"{length}}}, then virtqueue_flush (after a write barrier, smp_wmb) moves "
                       f"used->idx from {vq.used_idx} to {(vq.used_idx + 1) & 0xFFFF}.",
                       queue=n, head=elem.index, len=length, slot=slot):
            vqm.push(self, vq, elem, length)
            if vqm.disabled(self):
                self.phase("The device is disabled or broken: nothing was written.")

    def virtqueue_detach(self, vq: VirtQueue, elem) -> None:
        with self.call("virtqueue_detach_element", vqm.VIO,
                       f"Give up head {elem.index} without using it: unmapped, inuse drops; the "
                       f"used ring is not touched."):
            vqm.detach(self, vq, elem)

    def set_notification(self, vq: VirtQueue, enable: bool) -> None:
        n = self._qindex(vq)
        if vqm.has(self, vqm.EVENT_IDX):
            how = ("avail_event (used->ring[num]) = avail->idx: notify me once you pass it" if enable else
                   "with EVENT_IDX nothing is written: vring_set_avail_event only writes while they are on")
        else:
            how = ("clear" if enable else "set") + " VRING_USED_F_NO_NOTIFY in used->flags"
        with self.call("virtio_queue_set_notification", vqm.VIO,
                       f"Queue {n}: notifications {'on' if enable else 'off'} ({how}).",
                       queue=n, enable=enable):
            vqm.set_notification(self, vq, enable)

    def virtio_notify(self, vq: VirtQueue) -> None:
        """virtio_notify: ask virtio_split_should_notify, then virtio_irq: ISR |= 1 and the vector."""
        n = self._qindex(vq)
        with self.call("virtio_notify", vqm.VIO, f"Queue {n}: tell the driver?", queue=n):
            want, why = vqm.should_notify(self, vq)
            if not want:
                self.phase(f"virtio_split_should_notify: {why}.", notify=False)
                return
            self.phase(f"virtio_split_should_notify: {why}: interrupt.", notify=True)
            self.virtio_irq(n)

    def virtio_error(self, why: str) -> str:
        """virtio_error: QEMU prints the message; a VERSION_1 device sets DEVICE_NEEDS_RESET and
        sends a config interrupt; either way the device is broken until reset."""
        self.errors.append(why)
        d = self.vdev
        modern = bool(d.guest_features & VERSION_1)
        with self.call("virtio_error", vqm.VIO,
                       f"QEMU prints \"{why}\" and marks the device broken (vdev->broken: it ignores "
                       f"notifies and writes no used ring until reset)"
                       + ("; VERSION_1 was negotiated, so status gets DEVICE_NEEDS_RESET (0x40) and "
                          "virtio_notify_config interrupts the driver." if modern else
                          "; a legacy device has no DEVICE_NEEDS_RESET to set."), message=why):
            if modern:
                d.status |= NEEDS_RESET
                self._notify_config()
            d.broken = True
        return f"virtio_error: {why}" + (" (DEVICE_NEEDS_RESET)" if modern else "")

    def take_interrupts(self) -> list[Interrupt]:
        """The interrupts delivered since the last call (the guest's CPU takes them)."""
        out, self.interrupts = self.interrupts, []
        return out

    def _record_config(self, before: bytes, offset: int) -> None:
        after = bytes(self.config[offset:offset + len(before)])
        if self.record and after != before:
            self.tracer.record(new_write("config", offset, before, after))

    def label(self, offset: int) -> str:
        if offset >= len(self._labels):
            return "extended space"
        lab = self._labels[offset]
        return lab.field if lab.structure == "header" else f"{lab.structure} {lab.field}"

    # ------------------------------------------------------------ config space
    def config_read(self, addr: int, size: int) -> int:
        """virtio_read_config: the PCI_CFG window first, then pci_default_read_config."""
        self._check(addr, size)  # ConfigAccess's: 1, 2 or 4 bytes at a non-negative offset
        window = ""
        if self.config_cap and ranges_overlap(addr, size, self.config_cap + regs.VIRTIO_PCI_CAP_DATA, 4):
            window = self._cfg_window(write=False)
        value = super().config_read(addr, size)
        if self.record and not self._depth:
            self.ops.append(("cfg", "r", addr, size, value, len(self.tracer.events)))
        if self.record:
            with self._event("virtio_read_config", VPC,
                             f"The guest reads {size} byte{'s' if size > 1 else ''} of config space "
                             f"at 0x{addr:03x} ({self.label(min(addr, self.size - 1))}): "
                             f"{_hex(value, size)}.{window}", addr=addr, size=size, value=value):
                pass
        return value

    def config_write(self, addr: int, value: int, size: int) -> None:
        """virtio_write_config: the write rule, then Bus Master, MSI-X and PCI_CFG side effects."""
        self._check(addr, size)
        self._check_value(value)
        if self.record and not self._depth:
            self.ops.append(("cfg", "w", addr, size, value & (1 << (8 * size)) - 1, len(self.tracer.events)))
        self._depth += 1
        try:
            self._config_write(addr, value, size)
        finally:
            self._after_access()

    def _after_access(self) -> None:
        """Back from the outermost access: QEMU's main loop runs what it scheduled."""
        self._depth -= 1
        if not self._depth and self._deferred:
            self._depth += 1
            try:
                self.run_main_loop()
            finally:
                self._depth -= 1

    def _config_write(self, addr: int, value: int, size: int) -> None:
        self._check(addr, size)
        self._check_value(value)
        value &= (1 << (8 * size)) - 1
        lo = min(addr, self.size)
        hi = min(addr + size, self.size)
        before = bytes(self.config[lo:hi])
        msix_ctrl = self._msix_ctrl()
        old_cmd = get_le(self.config, regs.PCI_COMMAND, 2)
        notes: list[str] = []
        ctx = None
        if self.record:
            if hi <= lo:
                what = "past the end of config space: dropped"
            else:
                vb = value.to_bytes(size, "little")[:hi - lo]
                after = bytes(((c & ~self.wmask[o]) | (v & self.wmask[o])) & ~(v & self.w1cmask[o]) & 0xFF
                              for o, c, v in zip(range(lo, hi), before, vb))
                stored = int.from_bytes(after, "little")
                what = (f"nothing changes (no writable bit takes the value; it still reads "
                        f"{_hex(stored, hi - lo)})" if after == before else
                        f"the write rule (wmask keeps writable bits, w1cmask clears) stores "
                        f"{_hex(stored, hi - lo)}")
            ctx = self._event("virtio_write_config", VPC,
                              f"The guest writes {_hex(value, size)} to config space at 0x{addr:03x} "
                              f"({self.label(min(addr, self.size - 1))}), {size} byte{'s' if size > 1 else ''}: "
                              f"{what}.", addr=addr, size=size, value=value)
        with ctx or _NULL:
            super().config_write(addr, value, size)
            if hi > lo:
                self._record_config(before, lo)
            if ranges_overlap(addr, size, regs.PCI_COMMAND, 1):
                cmd = get_le(self.config, regs.PCI_COMMAND, 2)
                if not cmd & regs.PCI_COMMAND_MASTER:
                    self.vdev.disabled = True
                    self._stop_ioeventfd()
                    if self.vdev.status & DRIVER_OK:
                        self.vdev.status &= ~DRIVER_OK
                        notes.append("Bus Master is off: virtio_set_status drops DRIVER_OK")
                else:
                    self.vdev.disabled = False
                if (cmd ^ old_cmd) & regs.PCI_COMMAND_INTX_DISABLE:
                    notes.append("INTx " + ("disabled" if cmd & regs.PCI_COMMAND_INTX_DISABLE else "enabled"))
            if self.msix_cap and ranges_overlap(addr, size, self.msix_cap + regs.PCI_MSIX_FLAGS + 1, 1):
                notes.extend(self._msix_write_config(msix_ctrl))
            if self.config_cap and ranges_overlap(addr, size, self.config_cap + regs.VIRTIO_PCI_CAP_DATA, 4):
                w = self._cfg_window(write=True)
                if w:
                    notes.append(w.strip())
            if notes and self.record:
                self._add_effects(notes)

    def _msix_ctrl(self) -> int:
        return get_le(self.config, self.msix_cap + regs.PCI_MSIX_FLAGS, 2) if self.msix_cap else 0

    @property
    def msix_enabled(self) -> bool:
        return bool(self._msix_ctrl() & regs.PCI_MSIX_FLAGS_ENABLE)

    @property
    def msix_function_masked(self) -> bool:
        c = self._msix_ctrl()
        return not c & regs.PCI_MSIX_FLAGS_ENABLE or bool(c & regs.PCI_MSIX_FLAGS_MASKALL)

    def _msix_write_config(self, old_ctrl: int) -> list[str]:
        """msix_write_config: with MSI-X on, INTx is deasserted and unmasked pending vectors fire."""
        new = self._msix_ctrl()
        if not new & regs.PCI_MSIX_FLAGS_ENABLE:
            return ["MSI-X off"] if old_ctrl & regs.PCI_MSIX_FLAGS_ENABLE else []
        self._set_irq(0)
        notes = ["MSI-X on: INTx deasserted"] if not old_ctrl & regs.PCI_MSIX_FLAGS_ENABLE else []
        for v in range(len(self.msix_used)):
            self._msix_fire_pending(v)
        return notes

    def _cfg_window(self, write: bool) -> str:
        """The VIRTIO_PCI_CAP_PCI_CFG window: cap.offset/cap.length choose bytes of the modern BAR."""
        cap = self.config_cap
        off = get_le(self.config, cap + regs.VIRTIO_PCI_CAP_OFFSET, 4)
        length = get_le(self.config, cap + regs.VIRTIO_PCI_CAP_LENGTH, 4)
        if length not in (1, 2, 4):
            return ""
        addr = off & ~(length - 1)  # virtio_address_space_write aligns the guest's offset
        hit = self._modern_lookup(addr, length)
        if hit is None:
            return f" (PCI_CFG window: nothing at modern offset 0x{addr:x})"
        bar, region = hit
        data = cap + regs.VIRTIO_PCI_CAP_DATA
        if write:
            val = get_le(self.config, data, length)
            self._region_write(bar, region, addr - region.offset, val, length)
            return f" PCI_CFG window: wrote {_hex(val, length)} to {region.role} +0x{addr - region.offset:x}."
        val = self._region_read(bar, region, addr - region.offset, length)
        before = bytes(self.config[data:data + length])
        self.config[data:data + length] = val.to_bytes(length, "little")
        self._record_config(before, data)
        return f" PCI_CFG window: {region.role} +0x{addr - region.offset:x} read into pci_cfg_data."

    def _modern_lookup(self, addr: int, length: int) -> tuple[Bar, Region] | None:
        """virtio_address_space_lookup: the first modern region holding [addr, addr+length)."""
        for bar, r in self._modern_regions:
            rel = 0 if r.role == "notify-pio" else r.offset
            if rel <= addr and addr + length <= rel + r.size:
                return bar, r if r.role != "notify-pio" else Region(r.name, 0, r.size, r.role)
        return None

    def region(self, role: str) -> tuple[int, int]:
        """(BAR index, offset in the BAR) of the modern region ``role`` (common, isr, device, notify)."""
        for bar, r in self._modern_regions:
            if r.role == role:
                return bar.index, r.offset
        raise VirtioLabError(f"the device has no {role} region (a legacy-only device has no modern BAR)")

    def common_read(self, name: str) -> int:
        """Read a common-configuration register by its spec name (virtio spec 4.1.4.3)."""
        bar, base = self.region("common")
        off = _common_offset(name)
        return self.bar_read(bar, base + off, COMMON_CFG[off][1])

    def common_write(self, name: str, value: int) -> None:
        bar, base = self.region("common")
        off = _common_offset(name)
        self.bar_write(bar, base + off, value, COMMON_CFG[off][1])

    # --------------------------------------------------------------- BAR decode
    def bar_address(self, index: int) -> int | None:
        """Where BAR ``index`` decodes now (pci_bar_address): None when unmapped or disabled."""
        bar = self.facts.bar(index)
        if bar is None:
            return None
        cmd = get_le(self.config, regs.PCI_COMMAND, 2)
        if index == regs.PCI_ROM_SLOT:
            reg = get_le(self.config, regs.PCI_ROM_ADDRESS, 4)
            if not cmd & regs.PCI_COMMAND_MEMORY or not reg & 1:
                return None
            addr = reg & ~(bar.size - 1) & 0xFFFFF800
        else:
            off = regs.PCI_BASE_ADDRESS_0 + 4 * index
            reg = get_le(self.config, off, 4)
            if bar.kind == "io":
                if not cmd & regs.PCI_COMMAND_IO:
                    return None
                addr = reg & ~(bar.size - 1) & 0xFFFFFFFC
                if addr == 0 or addr + bar.size > 0x10000:
                    return None
                return addr
            if not cmd & regs.PCI_COMMAND_MEMORY:
                return None
            addr = reg & ~0xF
            if bar.kind == "mem64":
                addr |= get_le(self.config, off + 4, 4) << 32
            addr &= ~(bar.size - 1)
        if addr == 0 or addr + bar.size > (1 << 64):
            return None
        return addr

    def _decode(self, addr: int, io: bool) -> tuple[int, int] | None:
        for bar in self.facts.bars:
            if bar.index == regs.PCI_ROM_SLOT or (bar.kind == "io") != io:
                continue
            base = self.bar_address(bar.index)
            if base is not None and base <= addr < base + bar.size:
                return bar.index, addr - base
        return None

    def mem_read(self, addr: int, size: int) -> int | None:
        """A CPU load at a guest-physical address: the BAR that decodes it answers, else None."""
        _check_address(addr, "a guest-physical address")
        hit = self._decode(addr, io=False)
        return None if hit is None else self.bar_read(hit[0], hit[1], size)

    def mem_write(self, addr: int, value: int, size: int) -> bool:
        _check_address(addr, "a guest-physical address")
        self._check_value(value, "a memory write")
        hit = self._decode(addr, io=False)
        if hit is not None:
            self.bar_write(hit[0], hit[1], value, size)
        return hit is not None

    def io_read(self, port: int, size: int) -> int | None:
        """An ``in`` instruction: the IO BAR that decodes the port answers, else None."""
        _check_address(port, "an IO port")
        hit = self._decode(port, io=True)
        return None if hit is None else self.bar_read(hit[0], hit[1], size)

    def io_write(self, port: int, value: int, size: int) -> bool:
        _check_address(port, "an IO port")
        self._check_value(value, "an IO write")
        hit = self._decode(port, io=True)
        if hit is not None:
            self.bar_write(hit[0], hit[1], value, size)
        return hit is not None

    # ------------------------------------------------------------- BAR regions
    def _bar(self, index: int) -> Bar:
        if not isinstance(index, int):
            raise VirtioLabError(f"a BAR index is an integer 0-5, not {type(index).__name__}")
        bar = self.facts.bar(index)
        if bar is None or index == regs.PCI_ROM_SLOT:
            raise VirtioLabError(f"BAR{index} is not implemented by this device; it has "
                                 + ", ".join(f"BAR{b.index}" for b in self.facts.bars
                                             if b.index != regs.PCI_ROM_SLOT))
        return bar

    def _split(self, offset: int, size: int) -> Iterator[tuple[int, int, int]]:
        if size not in (1, 2, 4, 8) or not isinstance(offset, int) or offset < 0:
            raise VirtioLabError(f"a BAR access is 1, 2, 4 or 8 bytes at a non-negative offset, "
                                 f"not {shown(size)} bytes at {shown(offset)}")
        # regions implement at most 4 bytes: the memory core splits a quad access in two
        if size == 8:
            yield offset, 4, 0
            yield offset + 4, 4, 32
        else:
            yield offset, size, 0

    def _region_at(self, bar: Bar, offset: int) -> Region | None:
        if bar.kind == "io" and any(r.role == "legacy" for r in bar.regions):
            return Region("virtio-pci", 0, bar.size, "legacy")  # one region: header + device config
        return next((r for r in bar.regions if r.offset <= offset < r.offset + r.size), None)

    def bar_read(self, index: int, offset: int, size: int) -> int:
        """A read of BAR ``index`` at ``offset`` (whatever address it has): the region's read hook."""
        bar = self._bar(index)
        value = 0
        at = len(self.tracer.events)
        for off, n, shift in self._split(offset, size):
            value |= self._bar_access(bar, off, n, None) << shift
        if self.record and not self._depth:
            self.ops.append(("bar", "r", index, offset, size, value, at))
        return value

    def bar_write(self, index: int, offset: int, value: int, size: int) -> None:
        """A write of ``value`` (``size`` bytes) to BAR ``index`` at ``offset``: the region's write hook."""
        bar = self._bar(index)
        self._check_value(value, "a BAR write")
        value &= (1 << (8 * size)) - 1
        if self.record and not self._depth:
            self.ops.append(("bar", "w", index, offset, size, value, len(self.tracer.events)))
        self._depth += 1
        try:
            for off, n, shift in self._split(offset, size):
                self._bar_access(bar, off, n, (value >> shift) & ((1 << (8 * n)) - 1))
        finally:
            self._after_access()

    def _bar_access(self, bar: Bar, offset: int, size: int, value: int | None) -> int:
        region = self._region_at(bar, offset)
        verb = "reads" if value is None else f"writes {_hex(value, size)} to"
        if region is None or offset + size > region.offset + region.size or offset >= bar.size:
            result = 0 if value is not None else (1 << (8 * size)) - 1
            self._note("unassigned_access", "softmmu/memory.c",
                       f"The guest {verb} BAR{bar.index}+0x{offset:x}: no region of the device is "
                       f"there, so reads give all ones and writes vanish.",
                       bar=bar.index, offset=offset, size=size, value=value)
            return result if value is None else 0
        rel = offset - region.offset
        if rel % size:
            # no .valid.unaligned in these MemoryRegionOps: the memory core refuses the access
            self._note("memory_region_access_valid", "softmmu/memory.c",
                       f"The guest {verb} {region.role} +0x{rel:x} with an unaligned {size}-byte "
                       f"access: the region does not accept it (reads give 0, writes vanish).",
                       bar=bar.index, offset=offset, size=size, value=value)
            return 0
        if region.role in ("msix-table", "msix-pba") and size != 4:
            self._note("memory_region_access_valid", "softmmu/memory.c",
                       f"The guest {verb} the MSI-X {region.role[5:]} with a {size}-byte access: "
                       f"msix_table_mmio_ops accept only 4 or 8 bytes (reads give 0, writes vanish).",
                       bar=bar.index, offset=offset, size=size, value=value)
            return 0
        if value is None:
            return self._region_read(bar, region, rel, size)
        self._region_write(bar, region, rel, value, size)
        return 0

    def _region_read(self, bar: Bar, region: Region, rel: int, size: int) -> int:
        hooks = {
            "common": lambda: ("virtio_pci_common_read", VPC) + self._common_read(rel, size),
            "isr": lambda: ("virtio_pci_isr_read", VPC) + self._isr_read(),
            "device": lambda: ("virtio_pci_device_read", VPC) + self._device_read(rel, size),
            "notify": lambda: ("virtio_pci_notify_read", VPC, 0, "notify reads give 0"),
            "notify-pio": lambda: ("virtio_pci_notify_read", VPC, 0, "notify reads give 0"),
            "msix-table": lambda: ("msix_table_mmio_read", MSIX) + self._table_read(rel),
            "msix-pba": lambda: ("msix_pba_mmio_read", MSIX,
                                 get_le(self.msix_pba, rel, 4), "pending bits, read-only"),
            "legacy": lambda: self._legacy_read(rel, size),
        }
        where = f"BAR{bar.index}+0x{region.offset + rel:x} ({region.role} +0x{rel:x})"
        isr = region.role == "isr" or (region.role == "legacy" and rel == regs.VIRTIO_PCI_ISR)
        if not isr or not self.record:
            fn, src, val, what = hooks[region.role]()
            val &= (1 << (8 * size)) - 1
            self._note(fn, src, f"The guest reads {size} byte{'s' if size > 1 else ''} at {where}: "
                       f"{what} = {_hex(val, size)}.",
                       bar=bar.index, region=region.role, offset=rel, size=size, value=val)
            return val
        # reading the ISR deasserts INTx, a config write (Status.Interrupt): the event opens first
        fn = "virtio_pci_isr_read" if region.role == "isr" else "virtio_ioport_read"
        with self._event(fn, VPC, f"The guest reads {size} byte(s) at {where}.",
                         bar=bar.index, region=region.role, offset=rel, size=size):
            _, _, val, what = hooks[region.role]()
            val &= (1 << (8 * size)) - 1
            self.tracer.annotate(value=val)
            self._complete_explanation(f"The guest reads {size} byte{'s' if size > 1 else ''} at {where}: "
                                       f"{what} = {_hex(val, size)}.")
        return val

    #: the QEMU hook behind each region's writes
    _WRITE_HOOKS = {"common": ("virtio_pci_common_write", VPC), "isr": ("virtio_pci_isr_write", VPC),
                    "device": ("virtio_pci_device_write", VPC), "notify": ("virtio_pci_notify_write", VPC),
                    "notify-pio": ("virtio_pci_notify_write_pio", VPC),
                    "msix-table": ("msix_table_mmio_write", MSIX), "msix-pba": ("msix_pba_mmio_write", MSIX),
                    "legacy": ("virtio_ioport_write", VPC)}

    def _region_write(self, bar: Bar, region: Region, rel: int, value: int, size: int) -> None:
        role = region.role
        queue = self._eventfd_queue(role, rel, value, size)
        if queue is not None:
            self._eventfd_write(bar, region, rel, value, size, queue)
            return
        fn, src = self._WRITE_HOOKS[role]
        if role == "legacy" and rel >= regs.VIRTIO_PCI_CONFIG_OFF(self.msix_enabled):
            fn = "virtio_pci_config_write"
        where = f"BAR{bar.index}+0x{region.offset + rel:x} ({role} +0x{rel:x})"
        # the event opens first so that config bytes the hook changes (Status.Interrupt, Bus
        # Master) are recorded on it; its explanation is completed once the hook has run
        with (self._event(fn, src, f"The guest writes {_hex(value, size)} at {where}.", bar=bar.index,
                          region=role, offset=rel, size=size, value=value)
              if self.record else _NULL):
            index = len(self.tracer.events)  # the number this write's event gets when it closes
            what = {
                "common": lambda: self._common_write(rel, value, size),
                "isr": lambda: "ISR writes are ignored",
                "device": lambda: self._device_write(rel, value, size),
                "notify": lambda: self._notify(rel // self.mult if self.mult else 0),
                "notify-pio": lambda: self._notify(value),
                "msix-table": lambda: self._table_write(rel, value),
                "msix-pba": lambda: "the PBA is read-only: ignored",
                "legacy": lambda: self._legacy_write(rel, value, size),
            }[role]()
            if self.record:
                self._complete_explanation(f"The guest writes {_hex(value, size)} at {where}: {what}.",
                                           index)

    def _eventfd_queue(self, role: str, rel: int, value: int, size: int) -> int | None:
        """virtio_pci_ioeventfd_assign's eventfds, once started: 2-byte writes at queue n's notify
        offset (modern), or of the value n to QUEUE_NOTIFY (legacy, a data match), for every queue
        with a size. The memory core signals them (memory_region_dispatch_write_eventfds)."""
        if not self.ioeventfd_started or size != 2:
            return None
        if role == "notify" and self.mult and rel % self.mult == 0:
            q = rel // self.mult
        elif role in ("notify-pio", "legacy") and (role == "notify-pio" or rel == regs.VIRTIO_PCI_QUEUE_NOTIFY):
            q = value
        else:
            return None
        vq = self.vdev.queue(q)
        return q if vq is not None and vq.num else None

    def _eventfd_write(self, bar: Bar, region: Region, rel: int, value: int, size: int, q: int) -> None:
        self.notifies += 1
        where = f"BAR{bar.index}+0x{region.offset + rel:x} ({region.role} +0x{rel:x})"
        with self.call("memory_region_dispatch_write_eventfds", "softmmu/memory.c",
                       f"The guest writes {_hex(value, size)} at {where}: since DRIVER_OK an ioeventfd "
                       f"sits on queue {q}'s notify address, so the memory core only signals it (no "
                       f"virtio_pci_notify_write); QEMU's main loop then runs "
                       f"virtio_queue_host_notifier_read for queue {q}.",
                       bar=bar.index, region=region.role, offset=rel, size=size, value=value, queue=q):
            self.defer(lambda: self._host_notifier_read(q))

    def _host_notifier_read(self, q: int) -> None:
        """virtio_queue_host_notifier_read → virtio_queue_notify_vq: the handler, unless the queue
        has no table or the device is broken."""
        vq = self.vdev.queues[q]
        ready = bool(vq.vring_desc) and self.backend is not None
        with self.call("virtio_queue_host_notifier_read", vqm.VIO,
                       f"Queue {q}'s eventfd fired: virtio_queue_notify_vq "
                       + ("runs its handler." if ready and not self.vdev.broken else
                          "does nothing: the device is broken." if ready else
                          "does nothing: the queue has no descriptor table."), queue=q):
            if ready and not self.vdev.broken and not self.unmodelled:
                self.backend.handle_output(q)

    def _start_ioeventfd(self) -> None:
        """virtio_pci_start_ioeventfd → virtio_device_start_ioeventfd_impl (on DRIVER_OK)."""
        if not self.ioeventfd or self.ioeventfd_started:
            return
        self.ioeventfd_started = True
        self.notifies += 1  # every queue is kicked: the main loop has work after this write
        queues = [i for i, q in enumerate(self.vdev.queues) if q.num]
        with self.call("virtio_device_start_ioeventfd_impl", vqm.VIO,
                       "DRIVER_OK: QEMU hangs an eventfd on every queue's notify address, then kicks "
                       "each queue once \"to begin processing requests already in vring\" (its main "
                       "loop runs them)."):
            for i in queues:
                self.defer(lambda i=i: self._host_notifier_read(i))

    def _stop_ioeventfd(self) -> None:
        """virtio_pci_stop_ioeventfd: the eventfds go; notifies are handled in the write again."""
        self.ioeventfd_started = False

    def _add_effects(self, notes: list[str]) -> None:
        """Say what the hook did besides the write rule: on the write's own event if it is still
        open, else (nested accesses came first) as a follow-up event of the same call."""
        seg = self.tracer._open
        text = "Side effects: " + "; ".join(notes) + "."
        if seg is not None and not seg.continued:
            seg.explanation += " " + text
            self.tracer.annotate(side_effects=tuple(notes))
        else:
            self.tracer.phase(text, side_effects=tuple(notes))

    def _complete_explanation(self, text: str, index: int | None = None) -> None:
        """Finish the write's explanation: on its open segment, or, when the hook's own events
        (the device at work) already closed it, on its recorded event ``index``."""
        seg = self.tracer._open
        if seg is not None and not seg.continued and (index is None or len(self.tracer.events) == index):
            seg.explanation = text
        elif index is not None and index < len(self.tracer.events):
            ev = self.tracer.events[index]
            self.tracer.events[index] = replace(ev, explanation=text)

    # ----------------------------------------------------------- common config
    def _common_read(self, off: int, size: int) -> tuple[int, str]:
        d = self.vdev
        q = d.queue(d.queue_sel)
        name = COMMON_CFG.get(off, ("(no register)", 0))[0]
        if name == "device_feature":
            v = (d.host_features & ~d.hidden_features) >> (32 * d.dfselect) & 0xFFFFFFFF \
                if d.dfselect <= 1 else 0
        elif name == "driver_feature":
            v = d.proxy_guest_features[d.gfselect] if d.gfselect <= 1 else 0
        elif name == "num_queues":
            v = max((i + 1 for i, x in enumerate(d.queues) if x.num), default=0)
        else:
            v = {
                "device_feature_select": lambda: d.dfselect,
                "driver_feature_select": lambda: d.gfselect,
                "msix_config": lambda: d.config_vector,
                "device_status": lambda: d.status,
                "config_generation": lambda: d.generation,
                "queue_select": lambda: d.queue_sel,
                "queue_size": lambda: q.num if q else 0,
                "queue_msix_vector": lambda: q.vector if q else NO_VECTOR,
                "queue_enable": lambda: q.enabled if q else 0,
                "queue_notify_off": lambda: d.queue_sel,  # "simply map queues in order"
                "queue_desc_lo": lambda: q.desc[0] if q else 0, "queue_desc_hi": lambda: q.desc[1] if q else 0,
                "queue_avail_lo": lambda: q.avail[0] if q else 0, "queue_avail_hi": lambda: q.avail[1] if q else 0,
                "queue_used_lo": lambda: q.used[0] if q else 0, "queue_used_hi": lambda: q.used[1] if q else 0,
                "queue_reset": lambda: q.reset if q else 0,
            }.get(name, lambda: 0)()
        return v, name

    def _common_write(self, off: int, val: int, size: int) -> str:
        d = self.vdev
        name = COMMON_CFG.get(off, ("(no register)", 0))[0]
        sel = d.queue_sel
        q = d.queue(sel)
        if name == "device_feature_select":
            d.dfselect = val
        elif name == "driver_feature_select":
            d.gfselect = val
        elif name == "driver_feature":
            if d.gfselect <= 1:
                d.proxy_guest_features[d.gfselect] = val
                feats = d.proxy_guest_features[0] | d.proxy_guest_features[1] << 32
                if d.status & FEATURES_OK:
                    return "driver_feature: ignored, FEATURES_OK is already set (virtio_set_features)"
                d.guest_features = feats & d.host_features
                return (f"driver_feature[{d.gfselect}] = 0x{val:08x}; virtio_set_features keeps the "
                        f"offered subset: guest_features 0x{d.guest_features:x}")
        elif name == "msix_config":
            d.config_vector = self._use_vector(val)
            return f"msix_config: vector {self._vec(d.config_vector)}"
        elif name == "device_status":
            return self._set_status(val & 0xFF)
        elif name == "queue_select":
            if val < regs.VIRTIO_QUEUE_MAX:
                d.queue_sel = val
        elif name == "queue_size" and sel < regs.VIRTIO_QUEUE_MAX:
            if q is not None:
                q.pending_num = val
                self._set_num(q, val)
                return f"queue_size of queue {sel} = {q.num}"
        elif name == "queue_msix_vector" and sel < regs.VIRTIO_QUEUE_MAX:
            v = self._use_vector(val)
            if q is not None:
                q.vector = v
            return f"queue {sel} vector {self._vec(v)}"
        elif name == "queue_enable" and q is not None:
            if val == 1:
                self._set_num(q, q.pending_num)
                rings = [x[0] | x[1] << 32 for x in (q.desc, q.avail, q.used)]
                what = vqm.set_rings(self, sel, q, *rings)
                q.enabled, q.reset = 1, 0
                return f"queue {sel} enabled (size {q.num}): virtio_queue_set_rings, {what}"
            return self._virtio_error(f"wrong value for queue_enable {val:x}")
        elif name in ("queue_desc_lo", "queue_desc_hi", "queue_avail_lo", "queue_avail_hi",
                      "queue_used_lo", "queue_used_hi") and q is not None:
            getattr(q, name.split("_")[1])[name.endswith("hi")] = val
        elif name == "queue_reset" and q is not None:
            if val == 1:
                self._queue_reset(q)
                return f"queue {sel} reset"
        elif name in ("device_feature", "num_queues", "config_generation", "queue_notify_off"):
            return f"{name} is read-only: ignored"
        else:
            return f"offset 0x{off:x} is no writable register: ignored"
        return f"{name} = 0x{val:x}"

    def _set_num(self, q: VirtQueue, num: int) -> None:
        """virtio_queue_set_num: a queue cannot appear or vanish, and stays at most 1024."""
        if bool(num) != bool(q.num) or num > 1024:
            return
        q.num = num

    def _queue_reset(self, q: VirtQueue) -> None:
        """__virtio_queue_reset plus the proxy's shadow (virtio_pci_reset, queue_reset)."""
        q.reset_ring()
        q.enabled, q.pending_num = 0, 0
        q.desc, q.avail, q.used = [0, 0], [0, 0], [0, 0]

    def _vec(self, v: int) -> str:
        return "NO_VECTOR (0xffff)" if v == NO_VECTOR else str(v)

    def _use_vector(self, val: int) -> int:
        """msix_vector_use: a vector the table does not have reads back as NO_VECTOR."""
        if val < len(self.msix_used):
            self.msix_used[val] += 1
            return val
        return NO_VECTOR

    def _set_status(self, val: int) -> str:
        """virtio_set_status (+ virtio_pci_reset when 0 is written).

        hw/virtio/virtio.c:virtio_set_status: once VERSION_1 is negotiated, setting FEATURES_OK
        first runs virtio_validate_features, and a refusal drops the whole write (the status
        keeps its old value, so the driver reads FEATURES_OK back clear).
        """
        d = self.vdev
        if d.guest_features & VERSION_1 and val & FEATURES_OK and not d.status & FEATURES_OK:
            why = self._validate_features()
            if why:
                return f"device_status = {status_text(val)} refused by virtio_validate_features: {why}"
        if not val & DRIVER_OK:
            self._stop_ioeventfd()
        if self.backend is not None and val != d.status:
            self._guarded(lambda: self.backend.set_status(val))  # k->set_status, before vdev->status
        d.status = val
        if val & DRIVER_OK:
            self._start_ioeventfd()
        if val == 0:
            self._reset()
            return "device_status = 0: virtio_pci_reset resets the device (queues, vectors, features)"
        return f"device_status = {status_text(val)}"

    def _validate_features(self) -> str:
        """virtio_validate_features: a device offering ACCESS_PLATFORM (iommu_platform=on) must
        get it back; '' when the features are acceptable. The device classes' own
        validate_features hooks (virtio-mem; virtio-net with failover=on) are not modelled."""
        d = self.vdev
        if d.host_features & ACCESS_PLATFORM and not d.guest_features & ACCESS_PLATFORM:
            return "the device offers ACCESS_PLATFORM (bit 33) and the driver did not accept it"
        return ""

    def _reset(self) -> None:
        d = self.vdev
        d.status = d.guest_features = d.queue_sel = d.isr = 0
        d.config_vector = NO_VECTOR
        d.broken = d.disabled = False
        if self.backend is not None:
            self.backend.reset()
        for q in d.queues:
            self._queue_reset(q)
        self.msix_used = [0] * len(self.msix_used)
        self._set_irq(0)

    def _virtio_error(self, why: str) -> str:
        return self.virtio_error(why)

    def virtio_irq(self, queue: int) -> str:
        """The device interrupts for ``queue`` (hw/virtio/virtio.c: virtio_notify → virtio_irq).

        ISR bit 0 is set, then virtio_pci_notify sends the queue's MSI-X vector (held pending in
        the PBA while masked) or, without MSI-X, sets the INTx level to ISR bit 0. Whether the
        driver asked for no interrupt (the rings' event index or NO_INTERRUPT flag,
        virtio_should_notify) is not looked at: this is the interrupt once QEMU decided to send it.
        Returns what happened, in one sentence.
        """
        q = self.vdev.queue(queue) if isinstance(queue, int) else None
        if q is None:
            raise VirtioLabError(f"queue {queue!r} does not exist: the device has {len(self.vdev.queues)} queues")
        with self.call("virtio_irq", VIO, f"The device signals queue {queue}: ISR |= 1 (bit 0: a queue "
                       f"was used), then virtio_notify_vector with the queue's vector "
                       f"{self._vec(q.vector)}.", queue=queue, vector=q.vector):
            self.vdev.isr |= 1
            return self._notify_vector(q.vector)

    def virtio_notify_config(self) -> str:
        """The device's config changed (hw/virtio/virtio.c: virtio_notify_config): after DRIVER_OK,
        ISR |= 3 (bit 1 says config), a new config_generation, the config vector. Returns what happened."""
        with self.call("virtio_notify_config", VIO, "The device's config changed: after DRIVER_OK, "
                               "ISR |= 3, a new config_generation and the config vector."):
            return self._notify_config()

    def _notify_config(self) -> str:
        """virtio_notify_config: only after DRIVER_OK; ISR |= 3, new generation, an interrupt."""
        d = self.vdev
        if not d.status & DRIVER_OK:
            return "nothing: the driver has not set DRIVER_OK yet"
        d.isr |= 3
        d.generation = (d.generation + 1) & 0xFF
        return "ISR bits 0 and 1 set, config_generation advanced; " + self._notify_vector(d.config_vector)

    def _notify_vector(self, vector: int) -> str:
        """virtio_notify_vector → virtio_pci_notify: nothing while disabled or broken; else an
        MSI-X message (msix_notify: an unused vector is silent, a masked one pends in the PBA),
        or the INTx level following ISR bit 0 (pci_set_irq). Returns what happened."""
        if vqm.disabled(self):  # virtio_notify_vector: virtio_device_disabled
            return "no interrupt: the device is broken or disabled (virtio_device_disabled)"
        if self.msix_enabled:
            if vector == NO_VECTOR or vector >= len(self.msix_used):
                return "no interrupt: MSI-X is on and no vector is assigned (NO_VECTOR)"
            if not self.msix_used[vector]:  # msix_notify: an entry nobody msix_vector_use'd
                return f"no interrupt: MSI-X vector {vector} is not in use"
            if self._vector_masked(vector):
                self._msix_notify(vector)
                return f"MSI-X vector {vector} is masked: its PBA bit is set, the message waits"
            addr = get_le(self.msix_table, vector * 16, 8)
            data = get_le(self.msix_table, vector * 16 + 8, 4)
            self._msi_send(vector)
            return f"MSI-X vector {vector}: the device writes 0x{data:x} to 0x{addr:x} (msix_notify)"
        with self.call("pci_set_irq", "hw/pci/pci.c",
                       f"No MSI-X: the INTx line follows ISR bit 0, now {self.vdev.isr & 1}"
                       + (" (Command's INTx Disable keeps it from the interrupt controller)."
                          if self._intx_disabled() else "."), level=self.vdev.isr & 1):
            self._set_irq(self.vdev.isr & 1)
        return f"INTx level {self.irq_level} (the Interrupt Status bit of the Status register follows it)"

    def _intx_disabled(self) -> bool:
        return bool(get_le(self.config, regs.PCI_COMMAND, 2) & regs.PCI_COMMAND_INTX_DISABLE)

    def _set_irq(self, level: int) -> None:
        """pci_set_irq: the Interrupt Status bit of the Status register follows the INTx level."""
        if level == self.irq_level:
            return
        self.irq_level = level
        before = bytes(self.config[regs.PCI_STATUS:regs.PCI_STATUS + 1])
        if level:
            self.config[regs.PCI_STATUS] |= regs.PCI_STATUS_INTERRUPT
            if not self._intx_disabled():
                self.interrupts.append(Interrupt("intx", event=len(self.tracer.events)))
        else:
            self.config[regs.PCI_STATUS] &= ~regs.PCI_STATUS_INTERRUPT & 0xFF
        self._record_config(before, regs.PCI_STATUS)

    def _msix_notify(self, v: int) -> None:
        """msix_notify: an unused vector stays silent; a masked one sets its PBA bit; else the
        message goes out (msi_send_message)."""
        if v >= len(self.msix_used) or not self.msix_used[v]:
            self.phase(f"msix_notify: vector {v} is not in use (msix_vector_use never ran for it): "
                       f"no interrupt.")
            return
        if self._vector_masked(v):
            with self.call("msix_set_pending", MSIX,
                           f"Vector {v} is masked ({'the function is masked' if self.msix_function_masked else 'its vector control bit 0 is set'}): "
                           f"its bit in the Pending Bit Array is set; the message goes out when it is "
                           f"unmasked.", vector=v):
                self.msix_pba[v // 8] |= 1 << (v % 8)
            return
        self._msi_send(v)

    def _msi_send(self, v: int) -> None:
        """msi_send_message → pci_msi_trigger: a 4-byte DMA store of the entry's data to its
        address, through the bus-master address space."""
        base = v * regs.PCI_MSIX_ENTRY_SIZE
        addr = get_le(self.msix_table, base, 4) | get_le(self.msix_table, base + 4, 4) << 32
        data = get_le(self.msix_table, base + 8, 4)
        master = get_le(self.config, regs.PCI_COMMAND, 2) & regs.PCI_COMMAND_MASTER
        if not master:
            where = "Bus Master is off, so the bus-master address space drops it"
        elif 0xFEE00000 <= addr < 0xFEF00000:
            where = (f"0x{addr:x} is the local APIC's MSI window: CPU interrupt vector "
                     f"0x{data & 0xFF:02x}")
        else:
            where = f"0x{addr:x} is no APIC address: the 4 bytes land in guest memory there"
        with self.call("msi_send_message", "hw/pci/msi.c",
                       f"MSI-X vector {v} fires: data 0x{data:08x} is stored at 0x{addr:x}; {where}.",
                       vector=v, address=addr, data=data):
            if not master:
                return
            if 0xFEE00000 <= addr < 0xFEF00000:
                self.interrupts.append(Interrupt("msix", v, addr, data, len(self.tracer.events)))
            else:
                self._guarded(lambda: self.store(addr, data.to_bytes(4, "little")))

    # ----------------------------------------------------------------- others
    def _isr_read(self) -> tuple[int, str]:
        v, self.vdev.isr = self.vdev.isr, 0
        self._set_irq(0)
        return v, "ISR (reading clears it and deasserts INTx)"

    def _device_read(self, off: int, size: int) -> tuple[int, str]:
        cfg = self.vdev.config
        if off + size > len(cfg):
            # virtio_config_modern_read*: past config_len the value is (uint32_t)-1
            return (1 << (8 * size)) - 1, f"past the {len(cfg)}-byte device config: all ones"
        return get_le(cfg, off, size), "device config (get_config refreshes it first)"

    def _device_write(self, off: int, val: int, size: int) -> str:
        if off + size > len(self.vdev.config):
            return f"past the {len(self.vdev.config)}-byte device config: ignored"
        return ("set_config sees it; the device keeps its own values for what it owns "
                "(this model does not change device config on writes)")

    def _notify(self, queue: int) -> str:
        """virtio_queue_notify: no descriptor table yet, or a broken device, and nothing happens;
        else the device's handler for that queue runs."""
        self.notifies += 1
        if queue >= regs.VIRTIO_QUEUE_MAX:
            return f"queue {queue} does not exist: ignored"
        q = self.vdev.queue(queue)
        if q is None or not q.vring_desc:
            return (f"virtio_queue_notify(queue {queue}): the queue has no descriptor table "
                    f"(vring.desc is 0: never enabled, or no such queue), so nothing happens")
        if self.vdev.broken:
            return f"virtio_queue_notify(queue {queue}): the device is broken (virtio_error), nothing happens"
        if self.backend is None:
            return (f"virtio_queue_notify(queue {queue}): the device's handler runs (this device "
                    f"type's queue handling is not modelled by virtio_lab)")
        if self.unmodelled:
            return (f"virtio_queue_notify(queue {queue}): not followed, the device already reached "
                    f"memory virtio_lab does not model ({self.unmodelled})")
        with self.call("virtio_queue_notify", vqm.VIO,
                       f"Queue {queue}: the device's handle_output for it runs "
                       f"({self.backend.handlers[queue] if queue < len(self.backend.handlers) else 'none'}).",
                       queue=queue):
            try:
                self.backend.handle_output(queue)
            except NotModelled as err:
                self.unmodelled = str(err)
                self.phase(f"Stopped: {err}.")
        return f"virtio_queue_notify(queue {queue}): the device's handler ran"

    def _table_read(self, rel: int) -> tuple[int, str]:
        entry, word = divmod(rel, regs.PCI_MSIX_ENTRY_SIZE)
        name = ("message address low", "message address high", "message data", "vector control")[word // 4]
        return get_le(self.msix_table, rel & ~3, 4), f"MSI-X entry {entry} {name}"

    def _table_write(self, rel: int, val: int) -> str:
        vector = rel // regs.PCI_MSIX_ENTRY_SIZE
        was = self._vector_masked(vector)
        self.msix_table[rel:rel + 4] = val.to_bytes(4, "little")
        if was and not self._vector_masked(vector):
            self._msix_fire_pending(vector)
        word = ("message address low", "message address high", "message data",
                "vector control")[(rel % 16) // 4]
        return f"MSI-X entry {vector} {word} = 0x{val:08x}" + (
            " (masked)" if word == "vector control" and val & 1 else
            " (unmasked)" if word == "vector control" else "")

    def _vector_masked(self, v: int) -> bool:
        return self.msix_function_masked or bool(self.msix_table[v * 16 + 12] & 1)

    def _msix_fire_pending(self, v: int) -> None:
        """msix_handle_mask_update: an unmasked vector with its PBA bit set clears it and fires."""
        if not self._vector_masked(v) and self.msix_pba[v // 8] >> (v % 8) & 1:
            self.msix_pba[v // 8] &= ~(1 << (v % 8)) & 0xFF
            self._msix_notify(v)

    # ------------------------------------------------------------------ legacy
    def _legacy_read(self, rel: int, size: int) -> tuple[str, str, int, str]:
        """virtio_pci_config_read: the header below VIRTIO_PCI_CONFIG_OFF, device config above."""
        d = self.vdev
        cfg_off = regs.VIRTIO_PCI_CONFIG_OFF(self.msix_enabled)
        if rel >= cfg_off:
            v, what = self._device_read(rel - cfg_off, size)
            return "virtio_pci_config_read", VPC, v, "legacy device config: " + what
        name = LEGACY_CFG.get(rel, "")
        q = d.queue(d.queue_sel)
        if name == "isr":
            v, _ = self._isr_read()
        else:
            v = {
                "host_features": d.host_features & 0xFFFFFFFF,
                "guest_features": d.guest_features & 0xFFFFFFFF,
                "queue_pfn": (q.vring_desc >> 12) if q else 0,
                "queue_num": q.num if q else 0,
                "queue_sel": d.queue_sel,
                "status": d.status,
                "msix_config_vector": d.config_vector,
                "msix_queue_vector": q.vector if q else NO_VECTOR,
            }.get(name, 0xFFFFFFFF)  # an offset that starts no register reads all ones
        return "virtio_ioport_read", VPC, v, f"legacy {name or 'header offset without a register'}"

    def _legacy_write(self, rel: int, val: int, size: int) -> str:
        d = self.vdev
        cfg_off = regs.VIRTIO_PCI_CONFIG_OFF(self.msix_enabled)
        if rel >= cfg_off:
            return "legacy device config: " + self._device_write(rel - cfg_off, val, size)
        name = LEGACY_CFG.get(rel, "")
        q = d.queue(d.queue_sel)
        what = (f"legacy {name} = 0x{val:x}" if name else
                f"no register starts at header offset {rel}: QEMU logs 'unexpected address' and ignores it")
        if name == "guest_features":
            if not d.status & FEATURES_OK:
                d.guest_features = val & d.host_features
            what = f"guest_features = 0x{d.guest_features:08x} (the offered subset)"
        elif name == "queue_pfn":
            if val == 0:
                self._reset()
                what = "queue_pfn = 0: virtio_pci_reset"
            elif q is not None:
                what = (f"queue {d.queue_sel} ring at 0x{val << 12:x} (virtio_queue_set_addr): "
                        + vqm.set_addr(self, d.queue_sel, q, val << 12))
        elif name == "queue_sel":
            if val < regs.VIRTIO_QUEUE_MAX:
                d.queue_sel = val
        elif name == "queue_notify":
            what = self._notify(val)
        elif name == "status":
            what = self._set_status(val & 0xFF)
            cmd = self.config[regs.PCI_COMMAND]
            if val == 1 | 2 and not cmd & regs.PCI_COMMAND_MASTER:
                # Linux before 2.6.34 drove the device without Bus Master: on ACKNOWLEDGE|DRIVER
                # QEMU turns it on for the guest (pci_default_write_config, so the write rule applies)
                before = bytes(self.config[regs.PCI_COMMAND:regs.PCI_COMMAND + 1])
                w = self.wmask[regs.PCI_COMMAND]
                self.config[regs.PCI_COMMAND] = ((cmd & ~w) | ((cmd | regs.PCI_COMMAND_MASTER) & w)) & 0xFF
                self._record_config(before, regs.PCI_COMMAND)
                self.vdev.disabled = False
                what += "; Bus Master switched on for the guest"
        elif name == "msix_config_vector":
            d.config_vector = self._use_vector(val)
            what = f"config vector {self._vec(d.config_vector)}"
        elif name == "msix_queue_vector":
            v = self._use_vector(val)
            if q is not None:
                q.vector = v
            what = f"queue {d.queue_sel} vector {self._vec(v)}"
        elif name in ("host_features", "queue_num", "isr"):
            what = f"legacy {name} is read-only: ignored"
        return what

    # ---------------------------------------------------------------- backends
    def attach_backend(self, disk: bytearray | None = None, peer: str | None = None,
                       seed: int | None = None) -> None:
        """Put the device model behind the proxy: virtio-rng (its -seed stream), virtio-blk (a
        disk image; None is the null-co drive of a plain plug) or virtio-net (``peer`` the
        netdev id whose socket receives the frames; None: no netdev). Other device types keep
        no model: their notifies do nothing here."""
        from .devices import _blk_device_config
        from .guest_random import DEFAULT_SEED
        from .plug import _types
        from .virtio_blk import VirtIOBlock
        from .virtio_net import VirtIONet
        from .virtio_rng import VirtIORNG
        info = _types().get(self.trace.spec.type)
        vid = info.model.virtio_id if info else 0
        spec = self.trace.spec
        if vid == 4:
            self.backend = VirtIORNG(self, spec, DEFAULT_SEED if seed is None else seed)
        elif vid == 2:
            self.backend = VirtIOBlock(self, spec, disk)
            if disk is not None:
                self.vdev.config = _blk_device_config(spec, len(disk) // 512)
        elif vid == 1:
            self.backend = VirtIONet(self, spec, peer)
        else:
            self.backend = None
        for q, h in zip(self.vdev.queues, self.backend.handlers if self.backend else ()):
            q.handler = h

    # ---------------------------------------------------------------- results
    def events(self) -> tuple:
        return self.tracer.close()


class _Null:
    """A do-nothing context manager (accesses made with recording off)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


_NULL = _Null()


def _virtio_device(trace) -> VirtioDevice:
    """The VirtIODevice a plug left: offered features, queues, device config, vectors."""
    from .plug import _types
    facts = trace.final.facts
    info = _types().get(trace.spec.type)
    model = info.model if info else None
    sizes = next((e.detail("queues") for e in trace.events if e.detail("queues") is not None), ())
    from .devices import VIRTIO_LEGACY_FEATURES
    hidden = VIRTIO_LEGACY_FEATURES | (model.legacy_features if model else 0)
    config = model.device_config(trace.spec) if model else b""
    return VirtioDevice(host_features=facts.host_features or 0, hidden_features=hidden,
                        queues=[VirtQueue(n) for n in sizes], config=bytes(config),
                        nvectors=facts.msix[0] if facts.msix else 0)
