"""Where a device is plugged: the machine (pc, q35), its root bus, and an optional PCIe root port.

Mirrors what hw/i386/pc_piix.c and hw/i386/pc_q35.c build with ``-nodefaults``, and how
qdev-monitor.c resolves ``bus=`` on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import VirtioLabError, VirtioLabTypeError, shown, type_name
from .board import board_function, multifunction_slot

__all__ = ["Machine", "MACHINES", "ROOT_BUS"]

MACHINES = ("pc", "q35")

#: Each machine's host bridge and its root bus (the bus ``bus=`` names, and its QOM path).
ROOT_BUS = {"pc": ("i440FX-pcihost", "pci.0"), "q35": ("q35-pcihost", "pcie.0")}


@dataclass(frozen=True)
class Machine:
    """Where the device is plugged: the board, and whether a PCIe root port sits in between."""

    name: str = "pc"
    root_port: bool = False
    #: the device's devfn on its bus (``addr=``); -1: the default slot (3, or 0 behind the port)
    devfn: int = -1

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise VirtioLabTypeError(f"a machine is \"pc\" or \"q35\", not {type_name(self.name)}")
        if self.name not in MACHINES:
            raise VirtioLabError(f"unknown machine {shown(self.name)}: choose pc or q35")
        if self.root_port not in (True, False):  # 0/1 and numpy bools compare equal, "yes" does not
            raise VirtioLabTypeError(f"root_port is True or False, not {shown(self.root_port)}")
        if self.root_port and self.name != "q35":
            raise VirtioLabError("a pcie-root-port needs a PCI Express machine: use --machine q35 "
                                 "with --root-port")

    @property
    def bus_number(self) -> int:
        return 1 if self.root_port else 0

    @property
    def slot_devfn(self) -> int:
        """The devfn the device takes: ``addr=``'s, else slot 3 (slot 0 behind the port)."""
        return self.devfn if self.devfn >= 0 else (0 if self.root_port else 3 << 3)

    @property
    def bdf(self) -> str:
        devfn = self.slot_devfn
        return f"{self.bus_number:02x}:{devfn >> 3:02x}.{devfn & 7:x}"

    @property
    def bus_id(self) -> str:
        """The name ``bus=`` gives the device's bus: the root bus, or the root port's ``rp0``."""
        return "rp0" if self.root_port else ROOT_BUS[self.name][1]

    @property
    def device_ids(self) -> tuple[str, ...]:
        """The ids other devices of the machine already hold (the root port's ``rp0``)."""
        return (self.bus_id,) if self.root_port else ()

    def check_bus(self, value: str) -> None:
        """``bus=`` as qdev_device_add resolves it (qdev-monitor.c: qbus_find): the bus's
        id, or its absolute QOM path, a trailing ``/`` allowed; anything else is QEMU's
        "Bus '...' not found"."""
        host, root = ROOT_BUS[self.name]
        root_path = f"/{host}/{root}"
        name = value.rstrip("/") if value.strip("/") else value
        if name == self.bus_id or (name == root_path and not self.root_port):
            return
        if self.root_port and name in (root, root_path):
            raise VirtioLabError(f"bus={shown(value, '')} puts the device on the root bus, not behind the "
                                 f"root port: drop bus= (or --root-port)")
        if name.startswith("/"):
            first = name[1:].split("/", 1)[0]
            raise VirtioLabError(f"Device {shown(first)} not found" if first != host
                                 else f"Bus {shown(name)} not found")
        raise VirtioLabError(f"Bus {shown(name)} not found")

    def slot_conflict(self, type_name: str) -> str | None:
        """QEMU's refusal of an ``addr=`` the board already uses (hw/pci/pci.c:
        do_pci_register_device), or None. Behind the root port the bus is empty."""
        if self.devfn < 0 or self.root_port:
            return None
        slot, fn = self.devfn >> 3, self.devfn & 7
        taken = board_function(self.name, self.devfn)
        if taken:
            return (f"PCI: slot {slot} function {fn} not available for {type_name}, "
                    f"in use by {taken.qemu_name},id=(null)")
        if fn and board_function(self.name, slot << 3) and not multifunction_slot(self.name, slot):
            return f"PCI: single function device can't be populated in function {slot:x}.{fn:x}"
        return None

    @property
    def bus_path(self) -> str:
        if self.root_port:
            return f"{ROOT_BUS[self.name][1]}/pcie-root-port@02.0/{self.bus_id}"
        return self.bus_id

    @property
    def pcie_port(self) -> bool:
        """QEMU's pcie_port: the bus is PCI Express and not a root bus."""
        return self.root_port

    @property
    def bus_is_express(self) -> bool:
        return self.name == "q35"

    @property
    def label(self) -> str:
        return f"{self.name}{' behind a pcie-root-port' if self.root_port else ''}"
