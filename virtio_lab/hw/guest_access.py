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

from dataclasses import dataclass, field
from typing import Any, Iterator

from ..errors import VirtioLabError, shown
from ..pci import regs
from ..pci.access import ConfigAccess
from ..pci.bar import Bar, Region
from ..pci.bits import get_le, ranges_overlap
from ..pci.layout import field_map
from ..trace import Tracer, new_write
from .state import PlugState

__all__ = ["GuestDevice", "VirtQueue", "VirtioDevice", "COMMON_CFG", "STATUS_NAMES"]

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
class VirtQueue:
    """One VirtQueue plus the proxy's VirtIOPCIQueue shadow (num, enabled, ring addresses)."""

    num_default: int  # virtio_add_queue's size: what the device offers
    num: int = 0  # vring.num (queue_size as read)
    vector: int = NO_VECTOR
    enabled: int = 0
    reset: int = 0
    pending_num: int = 0  # proxy->vqs[n].num: written queue_size, applied on enable
    desc: list[int] = field(default_factory=lambda: [0, 0])
    avail: list[int] = field(default_factory=lambda: [0, 0])
    used: list[int] = field(default_factory=lambda: [0, 0])
    pfn_addr: int = 0  # legacy: vring.desc as set through QUEUE_PFN

    def __post_init__(self):
        self.num = self.num_default


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

    def queue(self, n: int) -> VirtQueue | None:
        return self.queues[n] if 0 <= n < len(self.queues) else None


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
        for off, n, shift in self._split(offset, size):
            value |= self._bar_access(bar, off, n, None) << shift
        return value

    def bar_write(self, index: int, offset: int, value: int, size: int) -> None:
        """A write of ``value`` (``size`` bytes) to BAR ``index`` at ``offset``: the region's write hook."""
        bar = self._bar(index)
        self._check_value(value, "a BAR write")
        value &= (1 << (8 * size)) - 1
        for off, n, shift in self._split(offset, size):
            self._bar_access(bar, off, n, (value >> shift) & ((1 << (8 * n)) - 1))

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
        fn, src = self._WRITE_HOOKS[role]
        if role == "legacy" and rel >= regs.VIRTIO_PCI_CONFIG_OFF(self.msix_enabled):
            fn = "virtio_pci_config_write"
        where = f"BAR{bar.index}+0x{region.offset + rel:x} ({role} +0x{rel:x})"
        # the event opens first so that config bytes the hook changes (Status.Interrupt, Bus
        # Master) are recorded on it; its explanation is completed once the hook has run
        with (self._event(fn, src, f"The guest writes {_hex(value, size)} at {where}.", bar=bar.index,
                          region=role, offset=rel, size=size, value=value)
              if self.record else _NULL):
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
                self._complete_explanation(f"The guest writes {_hex(value, size)} at {where}: {what}.")

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

    def _complete_explanation(self, text: str) -> None:
        """Finish the open event's explanation (the Tracer's open segment is still this write)."""
        seg = self.tracer._open
        if seg is not None and not seg.continued:
            seg.explanation = text

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
                q.enabled = 1
                return f"queue {sel} enabled (size {q.num}, rings from desc/avail/used)"
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
        q.num, q.vector, q.enabled, q.pending_num = q.num_default, NO_VECTOR, 0, 0
        q.desc, q.avail, q.used, q.pfn_addr = [0, 0], [0, 0], [0, 0], 0

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
        d.status = val
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
        for q in d.queues:
            self._queue_reset(q)
        self.msix_used = [0] * len(self.msix_used)
        self._set_irq(0)

    def _virtio_error(self, why: str) -> str:
        """virtio_error: the device is broken; a modern one asks for a reset and says so."""
        d = self.vdev
        d.broken = True
        if d.guest_features & VERSION_1:
            d.status |= NEEDS_RESET
            self._notify_config()
        return f"virtio_error: {why} (DEVICE_NEEDS_RESET)"

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
        with self._maybe_event("virtio_irq", VIO, f"The device signals queue {queue}: ISR bit 0 set, then "
                               "virtio_pci_notify with the queue's vector.", queue=queue, vector=q.vector):
            self.vdev.isr |= 1
            return self._notify_vector(q.vector)

    def virtio_notify_config(self) -> str:
        """The device's config changed (hw/virtio/virtio.c: virtio_notify_config): after DRIVER_OK,
        ISR |= 3 (bit 1 says config), a new config_generation, the config vector. Returns what happened."""
        with self._maybe_event("virtio_notify_config", VIO, "The device's config changed: after DRIVER_OK, "
                               "ISR |= 3, a new config_generation and the config vector."):
            return self._notify_config()

    def _maybe_event(self, function: str, source: str, explanation: str, **details: Any):
        return self._event(function, source, explanation, **details) if self.record else _NULL

    def _notify_config(self) -> str:
        """virtio_notify_config: only after DRIVER_OK; ISR |= 3, new generation, an interrupt."""
        d = self.vdev
        if not d.status & DRIVER_OK:
            return "nothing: the driver has not set DRIVER_OK yet"
        d.isr |= 3
        d.generation = (d.generation + 1) & 0xFF
        return "ISR bits 0 and 1 set, config_generation advanced; " + self._notify_vector(d.config_vector)

    def _notify_vector(self, vector: int) -> str:
        """virtio_pci_notify: an MSI-X message, or the INTx level following ISR bit 0."""
        if self.vdev.broken or self.vdev.disabled:  # virtio_notify_vector: virtio_device_disabled
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
            return f"MSI-X vector {vector}: the device writes 0x{data:x} to 0x{addr:x} (msix_notify)"
        self._set_irq(self.vdev.isr & 1)
        return f"INTx level {self.irq_level} (the Interrupt Status bit of the Status register follows it)"

    def _set_irq(self, level: int) -> None:
        """pci_set_irq: the Interrupt Status bit of the Status register follows the INTx level."""
        if level == self.irq_level:
            return
        self.irq_level = level
        before = bytes(self.config[regs.PCI_STATUS:regs.PCI_STATUS + 1])
        if level:
            self.config[regs.PCI_STATUS] |= regs.PCI_STATUS_INTERRUPT
        else:
            self.config[regs.PCI_STATUS] &= ~regs.PCI_STATUS_INTERRUPT & 0xFF
        self._record_config(before, regs.PCI_STATUS)

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
        if queue >= regs.VIRTIO_QUEUE_MAX:
            return f"queue {queue} does not exist: ignored"
        q = self.vdev.queue(queue)
        if q is None or not q.num:
            return f"virtio_queue_notify(queue {queue}): no such queue, nothing happens"
        return f"virtio_queue_notify(queue {queue}): the device looks at the available ring"

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

    def _msix_notify(self, v: int) -> None:
        if self._vector_masked(v):
            self.msix_pba[v // 8] |= 1 << (v % 8)  # msix_set_pending

    def _msix_fire_pending(self, v: int) -> None:
        if not self._vector_masked(v) and self.msix_pba[v // 8] >> (v % 8) & 1:
            self.msix_pba[v // 8] &= ~(1 << (v % 8)) & 0xFF  # the message goes out now

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
                "queue_pfn": (q.pfn_addr >> 12) if q else 0,
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
                q.pfn_addr = val << 12
                q.enabled = 1
                what = f"queue {d.queue_sel} ring at 0x{val << 12:x}"
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
