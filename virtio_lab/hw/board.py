"""The board's own PCI functions: what QEMU 7.2's -M pc and -M q35 put on bus 0 with -nodefaults.

One table for two readers: the plug (QEMU's device names, which its slot-conflict messages quote,
hw/pci/pci.c:do_pci_register_device) and the firmware (what SeaBIOS 1.16 sizes and sets up in
src/fw/pciinit.c). Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FwBar", "BoardFunction", "BOARD", "board_function", "multifunction_slot",
           "IO", "MEM", "PREFMEM"]

IO, MEM, PREFMEM = 0, 1, 2  # SeaBIOS's PCI_REGION_TYPE_*: the three per-bus resource lists


@dataclass(frozen=True)
class FwBar:
    """One BAR as pci_bios_get_bar sizes it: index (6 = ROM), region type, size, 64-bit."""

    index: int
    type: int
    size: int
    is64: bool = False


@dataclass(frozen=True)
class BoardFunction:
    """One function of the board: its devfn on bus 0 and what each reader needs of it."""

    devfn: int
    qemu_name: str  # the name QEMU's "in use by ..." message gives
    name: str  # what it is, for the firmware's narration
    multifunction: bool = False  # function 0 of a multifunction device: functions 1-7 may be added
    bars: tuple[FwBar, ...] = ()
    pin: int = 0
    note: str = ""
    fixed: dict = field(default_factory=dict)  # (bar, type) -> address its pci_init_device sets

    @property
    def slot(self) -> int:
        return self.devfn >> 3

    @property
    def fn(self) -> int:
        return self.devfn & 7


BOARD = {
    "pc": (  # hw/i386/pc_piix.c: i440FX host bridge, PIIX3 (multifunction) with IDE and PM
        BoardFunction(0x00, "i440FX", "i440FX host bridge",
                      note="sets the PCI window start (i440fx_mem_addr_setup)"),
        BoardFunction(0x08, "PIIX3", "PIIX3 ISA bridge", multifunction=True,
                      note="routes PIRQA-D to IRQ 10/10/11/11"),
        BoardFunction(0x09, "piix3-ide", "PIIX3 IDE", bars=(FwBar(4, IO, 16),),
                      note="legacy IDE ports are fixed; only the bus-master DMA BAR4 is allocated"),
        BoardFunction(0x0B, "PIIX4_PM", "PIIX4 ACPI", pin=1,
                      note="PM base 0x600 and SMBus 0x700 set by piix4_pm_setup"),
    ),
    "q35": (  # hw/i386/pc_q35.c: MCH, ICH9 LPC (multifunction) with AHCI and SMBus at 1f
        BoardFunction(0x00, "mch", "Q35 MCH host bridge",
                      note="MMCONFIG at 0xb0000000 (mch_mem_addr_setup)"),
        BoardFunction(0xF8, "ICH9-LPC", "ICH9 LPC bridge", multifunction=True,
                      note="ACPI PM base 0x600 (ich9_lpc_setup)"),
        BoardFunction(0xFA, "ich9-ahci", "ICH9 AHCI", bars=(FwBar(4, IO, 32), FwBar(5, MEM, 4096)),
                      pin=1),
        BoardFunction(0xFB, "ICH9-SMB", "ICH9 SMBus", bars=(FwBar(4, IO, 64),), pin=1,
                      note="ich9_smbus_setup later moves BAR4 to 0x700", fixed={(4, IO): 0x700}),
    ),
}


def board_function(machine: str, devfn: int) -> BoardFunction | None:
    """The board's function at devfn on bus 0, or None."""
    return next((f for f in BOARD[machine] if f.devfn == devfn), None)


def multifunction_slot(machine: str, slot: int) -> bool:
    """Whether the board has a multifunction function 0 in this slot (PIIX3 at 1, ICH9-LPC at
    0x1f): a device added as function 1-7 there is scanned, since function 0 answers."""
    first = board_function(machine, slot << 3)
    return bool(first and first.multifunction)
