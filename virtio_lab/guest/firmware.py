"""SeaBIOS 1.16 on QEMU's pc and q35: sizing, placing and enabling the PCI functions.

Mirrors src/fw/pciinit.c (pci_setup: pci_bios_check_devices, pci_bios_map_devices,
pci_bios_init_devices), src/optionroms.c (map_pcirom) and SeaBIOS's own virtio
drivers (src/hw/virtio-pci.c: vp_init_simple, vp_find_vq; virtio-blk.c, virtio-scsi.c),
which drive a virtio disk or SCSI controller before Linux starts. The virtio device's
accesses go through :class:`~virtio_lab.hw.guest_access.GuestDevice` (so every BAR
sizing write is a real write-rule event); the machine's other functions are known
from QEMU 7.2's pc/q35 boards with ``-nodefaults`` and appear as narrated events.
Written from SeaBIOS's behaviour (LGPLv3); no code copied. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..hw.board import BOARD, IO, MEM, PREFMEM, FwBar, multifunction_slot
from ..hw.guest_access import GuestDevice
from ..pci import regs
from ..pci.bits import align_up

__all__ = ["PciFunction", "FwBar", "platform_functions", "pci_setup", "Placement", "MEMORY",
           "option_rom_setup"]

SRC = "src/fw/pciinit.c"
TYPE_NAMES = ("io", "mem", "prefmem")
PCI_DEVICE_MEM_MIN = 1 << 12  # a memory BAR takes at least a page
PCI_BRIDGE_MEM_MIN = 1 << 21  # bridge memory windows: 2 MiB (huge page)
PCI_BRIDGE_IO_MIN = 0x1000  # bridge IO windows: 4 KiB (PCI bridge spec)
PCI_CLASS_DISPLAY_VGA, PCI_CLASS_DISPLAY_OTHER = 0x0300, 0x0380  # hw/pci_ids.h
PCIMEM_END = 0xFEC00000  # BUILD_PCIMEM_END: the IOAPIC sits right above
PCI_IRQS = (10, 10, 11, 11)  # pci_irqs[]: the ISA IRQs behind PCI INTA..INTD (LNKA..LNKD)
MEMORY = 128 << 20  # QEMU's default -m; SeaBIOS's window starts depend on it
Q35_PCIEXBAR = (0xB0000000, 256 << 20)  # Q35_HOST_BRIDGE_PCIEXBAR_ADDR / _SIZE
MAX_QUEUE_NUM = 128  # SeaBIOS's vrings hold at most 128 descriptors


@dataclass(frozen=True)
class PciFunction:
    """Another PCI function of the machine (QEMU 7.2, -nodefaults), as SeaBIOS meets it."""

    bus: int
    dev: int
    fn: int
    name: str
    bars: tuple[FwBar, ...] = ()
    pin: int = 0
    secondary: int = 0  # a PCI bridge's secondary bus (0: not a bridge)
    note: str = ""
    fixed: dict = field(default_factory=dict)  # (bar, type) -> address its pci_init_device sets

    @property
    def bdf(self) -> str:
        return f"{self.bus:02x}:{self.dev:02x}.{self.fn}"


#: What -M pc / -M q35 -nodefaults put on bus 0 besides the device under study (virtio_lab.hw.board).
PLATFORM = {machine: tuple(PciFunction(0, f.slot, f.fn, f.name, f.bars, f.pin, note=f.note, fixed=f.fixed)
                           for f in fns)
            for machine, fns in BOARD.items()}
ROOT_PORT = PciFunction(0, 2, 0, "pcie-root-port", (FwBar(0, MEM, 4096),), pin=1, secondary=1,
                        note="generic root port: MSI-X in BAR0, slot implemented (hot-plug), "
                             "64-bit prefetchable window, QEMU resource-reserve capability with no hints")


def platform_functions(machine: str, root_port: bool) -> tuple[PciFunction, ...]:
    return PLATFORM[machine] + ((ROOT_PORT,) if root_port else ())


@dataclass
class Entry:
    """pci_region_entry: one BAR (bar >= 0) or one bridge window (bar = -1) waiting for an address."""

    owner: str
    bar: int
    size: int
    align: int
    type: int
    is64: bool
    secondary: int = 0
    address: int | None = None


@dataclass
class Placement:
    """Where firmware put everything: the device's BARs and the windows on the way."""

    bars: dict[int, int] = field(default_factory=dict)  # target BAR index -> address
    others: list[Entry] = field(default_factory=list)
    io_base: int = 0
    mem_base: int = 0
    prefmem_base: int = 0
    mem64: bool = False


def _insert(lst: list[Entry], e: Entry) -> None:
    """pci_region_create_entry keeps each list sorted: larger alignment first, then larger size."""
    for i, pos in enumerate(lst):
        if pos.align < e.align or (pos.align == e.align and pos.size < e.size):
            lst.insert(i, e)
            return
    lst.append(e)


def _align(lst: list[Entry]) -> int:
    return lst[0].align if lst else 1


def _sum(lst: list[Entry]) -> int:
    return sum(e.size for e in lst)


def pci_bios_get_bar(dev: GuestDevice, index: int) -> FwBar | None:
    """Size one BAR the firmware way: save, write all ones, read back, restore."""
    d = dev
    ofs = regs.PCI_ROM_ADDRESS if index == regs.PCI_ROM_SLOT else regs.PCI_BASE_ADDRESS_0 + 4 * index
    old = d.config_read(ofs, 4)
    typ, is64 = MEM, False
    if index == regs.PCI_ROM_SLOT:
        mask = 0xFFFFF800  # PCI_ROM_ADDRESS_MASK
        d.config_write(ofs, mask, 4)
    else:
        if old & regs.PCI_BASE_ADDRESS_SPACE_IO:
            mask, typ = 0xFFFFFFFC, IO
        else:
            mask = 0xFFFFFFF0
            typ = PREFMEM if old & 0x8 else MEM
            is64 = (old & 0x6) == 0x4
        d.config_write(ofs, 0xFFFFFFFF, 4)
    val = d.config_read(ofs, 4)
    d.config_write(ofs, old, 4)
    if is64:
        hold = d.config_read(ofs + 4, 4)
        d.config_write(ofs + 4, 0xFFFFFFFF, 4)
        high = d.config_read(ofs + 4, 4)
        d.config_write(ofs + 4, hold, 4)
        size = ((~((high << 32 | val) & (0xFFFFFFFF << 32 | mask))) + 1) & (2**64 - 1)
    else:
        size = ((~(val & mask)) + 1) & 0xFFFFFFFF
    return FwBar(index, typ, size, is64) if size else None


def _slot_irq(machine: str, chain: list[int], pin: int) -> int:
    """piix_pci_slot_get_irq / mch_pci_slot_get_irq: swizzle up to the root slot, then LNKA-D."""
    *below, root = chain  # device numbers from the function up to its root-bus slot
    if machine == "pc":
        return PCI_IRQS[(pin - 1 + sum(below) + root - 1) & 3]
    if root <= 24:
        return PCI_IRQS[(pin - 1 + sum(below) + root) & 3]
    return PCI_IRQS[(pin - 1 + sum(below)) & 3]


def device_slot(trace) -> tuple[int, int, int]:
    """(bus, slot, function) of the plugged device: 00:03.0 or 01:00.0 (behind the port), or
    what ``addr=`` said (the plug has already parsed it and refused the board's own functions,
    as QEMU does).

    Firmware and Linux only scan a slot whose function 0 answers, and a downstream port's
    single device number 0: such a device is refused here with one line, as the guest would
    never see it. A function 1-7 is scanned in a slot where the board has a multifunction
    function 0 (PIIX3 at 1 on pc, ICH9-LPC at 0x1f on q35; a real guest drives
    virtio-rng-pci,addr=1.2 there).
    """
    from ..errors import VirtioLabError
    m = trace.machine
    bus, slot, fn = m.bus_number, m.slot_devfn >> 3, m.slot_devfn & 7
    if m.root_port and slot:
        raise VirtioLabError(f"{m.bdf}: behind a pcie-root-port the guest scans slot 0 only "
                             f"(a downstream port has a single device)")
    if fn and (m.root_port or not multifunction_slot(m.name, slot)):
        raise VirtioLabError(f"{m.bdf}: function {fn} without a function 0 in slot {slot:#x} is "
                             f"never scanned by SeaBIOS or Linux; use addr={slot:x}.0")
    return bus, slot, fn


def pci_setup(dev: GuestDevice, machine: str, root_port: bool) -> Placement:
    """pci_setup: probe, size, place and enable every function (the device through its hooks)."""
    tr = dev.tracer
    bus, slot, fn = device_slot(dev.trace)
    me = f"{bus:02x}:{slot:02x}.{fn}"
    others = platform_functions(machine, root_port)
    order = sorted(others + (PciFunction(bus, slot, fn, "virtio device"),), key=lambda f: (f.bus, f.dev, f.fn))
    place = Placement()
    with tr.call("pci_setup", SRC,
                 f"SeaBIOS 1.16 sets up PCI on {machine}{' with a pcie-root-port at 00:02.0' if root_port else ''}: "
                 f"{len(order)} functions in bus order ({', '.join(f.bdf for f in order)}); the virtio "
                 f"device is {me}."):
        pcimem_start = 0x80000000 if machine == "pc" else sum(Q35_PCIEXBAR)
        dev._note("pci_bios_init_platform", SRC,
                  f"{'i440fx_mem_addr_setup' if machine == 'pc' else 'mch_mem_addr_setup'}: with "
                  f"{MEMORY >> 20} MiB of RAM the 32-bit PCI window is 0x{pcimem_start:x}-0x{PCIMEM_END - 1:x}; "
                  f"interrupt routing is {'PIIX' if machine == 'pc' else 'ICH9'} (LNKA-D = IRQ 10, 10, 11, 11).",
                  pcimem_start=pcimem_start)
        lists = {0: ([], [], []), 1: ([], [], [])}
        with tr.call("pci_bios_check_devices", SRC,
                     "Size every BAR (write all ones, read back) and queue it on its bus, largest "
                     "alignment first; then size each bridge window from what is behind it."):
            for f in order:
                lst = lists[f.bus if root_port else 0]
                if f.name == "virtio device":
                    sized = [pci_bios_get_bar(dev, i) for i in _bar_indexes(dev)]
                    bars = tuple(b for b in sized if b)
                else:
                    bars = f.bars
                    if bars or f.note:
                        dev._note("pci_bios_get_bar", SRC,
                                  f"{f.bdf} {f.name}: " + (", ".join(
                                      f"BAR{b.index} {TYPE_NAMES[b.type]} {b.size:#x}" for b in bars)
                                      or "no BARs") + (f" ({f.note})" if f.note else "") + ".",
                                  bdf=f.bdf)
                for b in bars:
                    size = max(b.size, PCI_DEVICE_MEM_MIN) if b.type != IO else b.size
                    _insert(lst[b.type], Entry(f.bdf if f.name != "virtio device" else "device",
                                               b.index, size, size, b.type, b.is64))
            if root_port:
                _bridge_windows(dev, lists)
        with tr.call("pci_bios_map_devices", SRC,
                     "Place the queued BARs: IO from 0xc000 up, memory packed below the IOAPIC "
                     "(0xfec00000), each list in its sorted order."):
            _map(dev, lists, pcimem_start, place, root_port)
        with tr.call("pci_bios_init_devices", SRC,
                     "Per function: interrupt line from the board's routing, device-specific setup, "
                     "then Command |= IO | Memory | SERR."):
            for f in order:
                if f.name != "virtio device":
                    moved = ""
                    for e in place.others:
                        if e.owner == f.bdf and (e.bar, e.type) in f.fixed:
                            e.address = f.fixed[(e.bar, e.type)]  # pci_init_device's own setup
                            moved = f"; its setup moves BAR{e.bar} to 0x{e.address:x}"
                    if f.pin or moved:
                        chain = [f.dev] if f.bus == 0 else [f.dev, ROOT_PORT.dev]
                        irq = f"interrupt line {_slot_irq(machine, chain, f.pin)}; " if f.pin else ""
                        dev._note("pci_bios_init_device", SRC,
                                  f"{f.bdf} {f.name}: {irq}Command |= IO|MEM|SERR{moved}.", bdf=f.bdf)
                    continue
                with tr.call("pci_bios_init_device", SRC,
                             f"{me}: map INT{'ABCD'[max(dev.config[regs.PCI_INTERRUPT_PIN], 1) - 1]} to an ISA "
                             f"IRQ and turn on IO, memory decoding and SERR#."):
                    pin = dev.config_read(regs.PCI_INTERRUPT_PIN, 1)
                    if pin:
                        chain = [slot] + ([ROOT_PORT.dev] if root_port else [])
                        dev.config_write(regs.PCI_INTERRUPT_LINE, _slot_irq(machine, chain, pin), 1)
                    cmd = dev.config_read(regs.PCI_COMMAND, 2)
                    dev.config_write(regs.PCI_COMMAND, cmd | regs.PCI_COMMAND_IO | regs.PCI_COMMAND_MEMORY
                                     | regs.PCI_COMMAND_SERR, 2)
        if pci_class(dev) == PCI_CLASS_DISPLAY_VGA:
            pci_enable_default_vga(dev, root_port)
    return place


def pci_class(dev: GuestDevice) -> int:
    """The 16-bit class (base class, subclass) SeaBIOS keeps from its bus scan (pci->class)."""
    return dev.config[regs.PCI_CLASS_DEVICE] | dev.config[regs.PCI_CLASS_DEVICE + 1] << 8


def is_pci_vga(dev: GuestDevice, bridges_forward_vga: bool) -> bool:
    """optionroms.c: is_pci_vga: a VGA-class device decoding IO and memory, and every bridge
    above it forwarding VGA (on bus 0 there is none; the root port forwards VGA once
    pci_enable_default_vga has set its Bridge Control VGA bit)."""
    if pci_class(dev) != PCI_CLASS_DISPLAY_VGA:
        return False
    cmd = dev.config_read(regs.PCI_COMMAND, 2)
    both = regs.PCI_COMMAND_IO | regs.PCI_COMMAND_MEMORY
    return cmd & both == both and bridges_forward_vga


def pci_enable_default_vga(dev: GuestDevice, root_port: bool) -> None:
    """pciinit.c: pci_enable_default_vga, the last step of pci_setup: with no VGA device already
    routed, the first VGA-class one gets IO|MEM decoding and VGA forwarding on its bridges."""
    with dev.tracer.call("pci_enable_default_vga", SRC,
                         "The machine's primary VGA: the virtio device is the only VGA-class function."):
        if is_pci_vga(dev, bridges_forward_vga=not root_port):
            return
        cmd = dev.config_read(regs.PCI_COMMAND, 2)
        dev.config_write(regs.PCI_COMMAND, cmd | regs.PCI_COMMAND_IO | regs.PCI_COMMAND_MEMORY, 2)
        dev._note("pci_enable_default_vga", SRC,
                  f"{ROOT_PORT.bdf} {ROOT_PORT.name}: Bridge Control |= VGA, Command |= IO|MEM.")


def option_rom_setup(dev: GuestDevice, root_port: bool) -> None:
    """Which of SeaBIOS's option-ROM passes meets a device no SeaBIOS driver took (optionroms.c).

    vgarom_setup runs first: the VGA device (class 0x0300, is_pci_vga) gets init_pcirom as a
    VGA ROM; with no VGA on the machine, try_setup_display_other maps the ROM of a class 0x0380
    display. optionrom_setup then skips both display classes and gives every other device
    init_pcirom, which maps its ROM (RunPCIroms: etc/pci-optionrom-exec is absent, default 2;
    no pciVVVV,DDDD.rom file, as QEMU puts a ROM in the ROM BAR unless rombar=0).
    """
    cls = pci_class(dev)
    if cls == PCI_CLASS_DISPLAY_VGA:
        with dev.tracer.call("vgarom_setup", "src/optionroms.c",
                             "Scan for a VGA option ROM: the primary VGA's ROM is mapped and its "
                             "VGA BIOS run (init_optionrom; the BIOS's own accesses are not modelled)."):
            if is_pci_vga(dev, bridges_forward_vga=True):  # pci_enable_default_vga saw to it
                map_pcirom(dev)
    elif cls == PCI_CLASS_DISPLAY_OTHER:
        with dev.tracer.call("try_setup_display_other", "src/optionroms.c",
                             "No VGA device on the machine: the first other-display function's ROM "
                             "is mapped and run."):
            map_pcirom(dev)
    else:
        with dev.tracer.call("optionrom_setup", "src/optionroms.c",
                             "Scan for option ROMs: a device without a SeaBIOS driver gets init_pcirom."):
            map_pcirom(dev)


def _bar_indexes(dev: GuestDevice) -> list[int]:
    """BAR0..5 then the ROM slot, skipping the high half of a 64-bit BAR."""
    out, i = [], 0
    while i < 6:
        out.append(i)
        reg = dev.config[regs.PCI_BASE_ADDRESS_0 + 4 * i]
        i += 2 if not reg & 1 and reg & 0x6 == 0x4 else 1
    return out + [regs.PCI_ROM_SLOT]


def _bridge_windows(dev: GuestDevice, lists) -> None:
    """The root port's IO, memory and prefetchable windows, sized from bus 1's lists."""
    for typ in (IO, MEM, PREFMEM):
        child = lists[1][typ]
        align = max(PCI_BRIDGE_IO_MIN if typ == IO else PCI_BRIDGE_MEM_MIN, _align(child))
        total = _sum(child)
        # hot-pluggable PCIe slot: reserve a minimum window, except IO (optional on PCIe)
        optional = typ == IO
        if not total and not optional:
            total = align
        size = align_up(total, align)
        is64 = typ == PREFMEM and all(e.is64 for e in child)
        e = Entry(ROOT_PORT.bdf, -1, size, align, typ, is64, secondary=ROOT_PORT.secondary)
        _insert(lists[0][typ], e)
        dev._note("pci_bios_check_devices", SRC,
                  f"Bridge {ROOT_PORT.bdf} {TYPE_NAMES[typ]} window: {size:#x} bytes aligned to "
                  f"{align:#x} ({_sum(child):#x} needed behind it"
                  + ("; IO is optional behind a PCIe hot-plug port, so nothing is reserved" if optional and not size
                     else "; a hot-plug slot gets at least the minimum" if not _sum(child) else "")
                  + (", 64-bit" if is64 else "") + ").", bdf=ROOT_PORT.bdf, type=TYPE_NAMES[typ], size=size)


def _map(dev: GuestDevice, lists, pcimem_start: int, place: Placement, root_port: bool) -> None:
    root = lists[0]
    total_io = _sum(root[IO])
    place.io_base = 0xC000 if total_io < 0x4000 else 0x1000

    def init_mem() -> bool:
        r_end, r_start = root[PREFMEM], root[MEM]
        swapped = _align(r_start) < _align(r_end)
        if swapped:
            r_end, r_start = r_start, r_end
        end_base = (PCIMEM_END - _sum(r_end)) // _align(r_end) * _align(r_end)
        start_base = (end_base - _sum(r_start)) // _align(r_start) * _align(r_start)
        if swapped:
            place.mem_base, place.prefmem_base = end_base, start_base
        else:
            place.mem_base, place.prefmem_base = start_base, end_base
        return pcimem_start <= start_base <= PCIMEM_END

    high: list[tuple[list[Entry], int]] = []
    if not init_mem():
        # too big for 32 bits: move the 64-bit BARs above 4 GiB and try again
        r64 = ([e for e in root[MEM] if e.is64], [e for e in root[PREFMEM] if e.is64])
        for typ, moved in ((MEM, r64[0]), (PREFMEM, r64[1])):
            root[typ][:] = [e for e in root[typ] if not e.is64]
        init_mem()
        base = align_up(align_up(1 << 32, _align(r64[0])), 1 << 30)
        pref = align_up(align_up(base + _sum(r64[0]), _align(r64[1])), 1 << 30)
        high = [(r64[0], base), (r64[1], pref)]
        place.mem64 = True
    if dev.record:  # pci_bios_init_root_regions_io and _mem, pci_bios_map_devices' helpers
        dev.tracer.phase(
            f"pci_bios_init_root_regions_io/_mem: IO from 0x{place.io_base:x} ({total_io:#x} bytes); "
            f"memory from 0x{place.mem_base:x}, prefetchable from 0x{place.prefmem_base:x} (each list "
            f"ends as close to 0xfec00000 as its alignment allows)"
            + ("; 64-bit BARs go above 4 GiB" if high else "") + ".")
    bases = {0: [place.io_base, place.mem_base, place.prefmem_base], 1: [0, 0, 0]}
    for lst, base in high:
        _map_list(dev, lst, base, bases, place)
    for bus in (0, 1) if root_port else (0,):
        for typ in (IO, MEM, PREFMEM):
            _map_list(dev, lists[bus][typ], bases[bus][typ], bases, place)


def _map_list(dev: GuestDevice, lst: list[Entry], base: int, bases, place: Placement) -> None:
    """pci_region_map_entries: hand out addresses in list order."""
    for e in lst:
        e.address = base
        base += e.size
        if e.bar == -1:
            bases[e.secondary][e.type] = e.address
            limit = e.address + e.size - 1
            dev._note("pci_region_map_one_entry", SRC,
                      f"Bridge {e.owner} {TYPE_NAMES[e.type]} window 0x{e.address:x}-0x{limit:x}"
                      + (" (empty: base above limit, disabled)" if not e.size else "") + ".",
                      bdf=e.owner, type=TYPE_NAMES[e.type], address=e.address, size=e.size)
            place.others.append(e)
        elif e.owner == "device":
            with dev.tracer.call("pci_set_io_region_addr", SRC,
                                 f"Place the device's {'ROM' if e.bar == regs.PCI_ROM_SLOT else f'BAR{e.bar}'} "
                                 f"({TYPE_NAMES[e.type]}, {e.size:#x} bytes) at 0x{e.address:x}.",
                                 bar=e.bar, address=e.address, size=e.size):
                ofs = regs.PCI_ROM_ADDRESS if e.bar == regs.PCI_ROM_SLOT else regs.PCI_BASE_ADDRESS_0 + 4 * e.bar
                dev.config_write(ofs, e.address & 0xFFFFFFFF, 4)
                if e.is64:
                    dev.config_write(ofs + 4, e.address >> 32, 4)
            place.bars[e.bar] = e.address
        else:
            dev._note("pci_region_map_one_entry", SRC,
                      f"{e.owner} BAR{e.bar} ({TYPE_NAMES[e.type]}) at 0x{e.address:x}.",
                      bdf=e.owner, bar=e.bar, address=e.address)
            place.others.append(e)


# --------------------------------------------------------------------------
# after pci_setup: option ROMs and SeaBIOS's own virtio drivers

def seabios_drives(dev: GuestDevice) -> str | None:
    """Which SeaBIOS driver claims the device (virtio-blk / virtio-scsi; both IDs), if any."""
    did = dev.config_read(regs.PCI_DEVICE_ID, 2)
    return {0x1001: "virtio-blk", 0x1042: "virtio-blk", 0x1004: "virtio-scsi",
            0x1048: "virtio-scsi"}.get(did)


def map_pcirom(dev: GuestDevice) -> None:
    """optionroms.c: map_pcirom: size the ROM again, enable it, copy the image, restore."""
    rom = dev.facts.bar(regs.PCI_ROM_SLOT)
    with dev.tracer.call("map_pcirom", "src/optionroms.c",
                         "Size the ROM BAR; if the device has an option ROM, enable it, copy the image "
                         "into shadow RAM and disable it again (the copy's init code then runs from "
                         "there). Without one the sizing reads 0 and the register is restored.",
                         size=rom.size if rom else 0):
        orig = dev.config_read(regs.PCI_ROM_ADDRESS, 4)
        dev.config_write(regs.PCI_ROM_ADDRESS, 0xFFFFFFFE, 4)
        size = dev.config_read(regs.PCI_ROM_ADDRESS, 4)
        orig &= ~1
        if not size or size == 0xFFFFFFFF or orig == size or (orig + (4 << 20)) & 0xFFFFFFFF < 20 << 20:
            dev.config_write(regs.PCI_ROM_ADDRESS, orig, 4)
            return
        dev.config_write(regs.PCI_ROM_ADDRESS, orig | 1, 4)
        dev._note("copy_rom", "src/optionroms.c",
                  f"Read the ROM image at 0x{orig:x} (signature 55aa, PCI data structure matching "
                  f"the device) and copy it below 1 MiB.")
        dev.config_write(regs.PCI_ROM_ADDRESS, orig, 4)


def seabios_virtio(dev: GuestDevice, kind: str) -> None:
    """init_virtio_blk / init_virtio_scsi: SeaBIOS brings the disk up so it could boot from it."""
    with dev.tracer.call(f"init_{kind.replace('-', '_')}", f"src/hw/{kind}.c",
                         f"SeaBIOS drives the {kind} itself (a boot device): vp_init_simple picks the "
                         f"modern or legacy interface, resets the device, turns on Bus Master and sets "
                         f"ACKNOWLEDGE|DRIVER; then features, one virtqueue and DRIVER_OK."):
        modern = vp_init_caps(dev)
        legacy = 0
        if modern:
            _vp_write(dev, "device_status", 0)
            dev.bar_read(*dev.region("isr"), 1)  # vp_reset reads the ISR to drop a stale interrupt
        else:
            dev.bar_write(legacy, regs.VIRTIO_PCI_STATUS, 0, 1)
            dev.bar_read(legacy, regs.VIRTIO_PCI_ISR, 1)
        cmd = dev.config_read(regs.PCI_COMMAND, 2)
        dev.config_write(regs.PCI_COMMAND, cmd | regs.PCI_COMMAND_MASTER, 2)  # pci_enable_busmaster
        status = 1 | 2
        if modern:
            _vp_write(dev, "device_status", status)
            _vp_write(dev, "device_feature_select", 0)
            lo = _vp_read(dev, "device_feature")
            _vp_write(dev, "device_feature_select", 1)
            hi = _vp_read(dev, "device_feature")
            feats = lo | hi << 32
            want = (1 << 32) | (1 << 33) | ((1 << 6) | (1 << 2) | (1 << 1) if kind == "virtio-blk" else 0)
            _vp_write(dev, "driver_feature_select", 0)
            _vp_write(dev, "driver_feature", feats & want & 0xFFFFFFFF)
            _vp_write(dev, "driver_feature_select", 1)
            _vp_write(dev, "driver_feature", (feats & want) >> 32)
            status |= 8
            _vp_write(dev, "device_status", status)
            _vp_read(dev, "device_status")
        else:
            dev.bar_write(legacy, regs.VIRTIO_PCI_STATUS, status, 1)
        queue = 0 if kind == "virtio-blk" else 2  # virtio-scsi talks on its request queue
        ring = 0x07FBE000  # SeaBIOS's high-memory allocation (illustrative address)
        if modern:
            _vp_write(dev, "queue_select", queue)
            num = _vp_read(dev, "queue_size")
            if num > MAX_QUEUE_NUM:
                _vp_write(dev, "queue_size", MAX_QUEUE_NUM)
                num = _vp_read(dev, "queue_size")
            _vp_read(dev, "queue_enable")
            for name, addr in (("desc", ring), ("avail", ring + 16 * num),
                               ("used", align_up(ring + 16 * num + 6 + 2 * num, 4096))):
                _vp_write(dev, f"queue_{name}_lo", addr)
                _vp_write(dev, f"queue_{name}_hi", 0)
            _vp_write(dev, "queue_enable", 1)
            _vp_read(dev, "queue_notify_off")
        else:
            dev.bar_write(legacy, regs.VIRTIO_PCI_QUEUE_SEL, queue, 2)
            dev.bar_read(legacy, regs.VIRTIO_PCI_QUEUE_NUM, 2)
            dev.bar_read(legacy, regs.VIRTIO_PCI_QUEUE_PFN, 4)
            dev.bar_write(legacy, regs.VIRTIO_PCI_QUEUE_PFN, ring >> 12, 4)
        status |= 4
        if modern:
            _vp_write(dev, "device_status", status)
        else:
            dev.bar_write(legacy, regs.VIRTIO_PCI_STATUS, status, 1)


def vp_init_caps(dev: GuestDevice) -> bool:
    """vp_init_simple's walk: every vendor capability in list order, the first of each virtio
    type kept (its BAR read, memory decoding made sure of); modern only if COMMON, NOTIFY, ISR
    and DEVICE are all there, else the legacy header in BAR0."""
    with dev.tracer.call("vp_init_simple", "src/hw/virtio-pci.c",
                         "Walk the vendor capabilities: keep the first COMMON, NOTIFY, ISR and DEVICE "
                         "structure, note where the PCI_CFG window is; all four present means the "
                         "modern (1.0) interface."):
        found: dict[int, int] = {}
        pos = dev.config_read(regs.PCI_CAPABILITY_LIST, 1) \
            if dev.config_read(regs.PCI_STATUS, 2) & regs.PCI_STATUS_CAP_LIST else 0
        for _ in range(48):
            if pos < 0x40:
                break
            if dev.config_read(pos, 1) == regs.CapID.VNDR:
                typ = dev.config_read(pos + 3, 1)
                if typ in (1, 2, 3, 4) and typ not in found:
                    bar = dev.config_read(pos + regs.VIRTIO_PCI_CAP_BAR, 1)
                    dev.config_read(pos + regs.VIRTIO_PCI_CAP_OFFSET, 4)
                    if typ == 2:
                        dev.config_read(pos + regs.VIRTIO_PCI_CAP_DATA, 4)  # notify_off_multiplier
                    base = dev.config_read(regs.PCI_BASE_ADDRESS_0 + 4 * bar, 4) if bar < 6 else 0
                    if bar < 6 and not base & 1:
                        if base & 6 == 4:
                            dev.config_read(regs.PCI_BASE_ADDRESS_0 + 4 * bar + 4, 4)
                        cmd = dev.config_read(regs.PCI_COMMAND, 2)  # pci_enable_membar
                        dev.config_write(regs.PCI_COMMAND, cmd | regs.PCI_COMMAND_MEMORY, 2)
                    found[typ] = pos
            pos = dev.config_read(pos + 1, 1)
        modern = all(t in found for t in (1, 2, 3, 4))
        if not modern:  # pci_enable_iobar: BAR0 must be an IO BAR; IO decoding on
            dev.config_read(regs.PCI_BASE_ADDRESS_0, 4)
            cmd = dev.config_read(regs.PCI_COMMAND, 2)
            dev.config_write(regs.PCI_COMMAND, cmd | regs.PCI_COMMAND_IO, 2)
        dev.tracer.phase("Modern (1.0) virtio mode: all four structures found." if modern else
                         "Legacy (0.9.5) virtio mode: the IO header in BAR0.")
        return modern


def _vp_write(dev: GuestDevice, name: str, value: int) -> None:
    dev.common_write(name, value)


def _vp_read(dev: GuestDevice, name: str) -> int:
    return dev.common_read(name)
