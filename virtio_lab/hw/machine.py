"""Where a device is plugged: the machine (pc, q35), its root bus, and an optional PCIe root port.

Mirrors what hw/i386/pc_piix.c and hw/i386/pc_q35.c build with ``-nodefaults``, and how
qdev-monitor.c resolves ``bus=`` on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import VirtioLabError, VirtioLabTypeError, shown, type_name
from .board import board_function, multifunction_slot
from .compat import MACHINE_PREFIX, machine_types
from .release import DEFAULT_RELEASE, release

__all__ = ["Machine", "MACHINES", "ROOT_BUS", "machine_family"]

MACHINES = ("pc", "q35")

#: Each machine's host bridge and its root bus (the bus ``bus=`` names, and its QOM path).
ROOT_BUS = {"pc": ("i440FX-pcihost", "pci.0"), "q35": ("q35-pcihost", "pcie.0")}


_VERSIONED = re.compile(r"(pc-i440fx|pc-q35)-(\d+)\.(\d+)")


def machine_family(name: str) -> str | None:
    """The board a machine name builds: ``pc``, ``q35`` or None (not a pc/q35 name)."""
    if name in MACHINES:
        return name
    m = _VERSIONED.fullmatch(name) if isinstance(name, str) else None
    return None if m is None else ("pc" if m.group(1) == "pc-i440fx" else "q35")


def _unsupported(rel, name) -> VirtioLabError:
    """QEMU's refusal of a machine it does not offer, naming what this release offers."""
    text = rel.unsupported_machine.format(name=shown(str(name), quote=""))
    said = "" if shown(str(name), quote="") in text else f"--machine {shown(str(name), quote='')}: "
    return VirtioLabError(text, f"{said}QEMU {rel.version} offers pc, q35 and pc-i440fx-X.Y / "
                                f"pc-q35-X.Y from 5.2 to {rel.version}; python -m virtio_lab "
                                f"machines --qemu {rel.version} lists them")


@dataclass(frozen=True)
class Machine:
    """Where the device is plugged: the board, its machine type, and whether a PCIe root
    port sits in between.

    ``name`` is the board (``pc`` or ``q35``); ``Machine("pc-q35-7.2", qemu="10.0")`` is
    the q35 board with the compat properties of machine type pc-q35-7.2. ``type`` is the
    versioned machine type (``pc`` and ``q35`` alias the release's newest, as QEMU's do)."""

    name: str = "pc"
    root_port: bool = False
    #: the device's devfn on its bus (``addr=``); -1: the default slot (3, or 0 behind the port)
    devfn: int = -1
    #: the QEMU release (5.2, 7.2, 10.0)
    qemu: str = DEFAULT_RELEASE
    #: the versioned machine type; "" resolves to the release's newest for ``name``
    type: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise VirtioLabTypeError(f"a machine is \"pc\", \"q35\" or a machine type such as "
                                     f"\"pc-q35-7.2\", not {type_name(self.name)}")
        rel = release(self.qemu)
        object.__setattr__(self, "qemu", rel.version)
        name = self.name.strip()
        family = machine_family(name)
        if family is None:
            raise _unsupported(rel, self.name)
        mtype = (self.type or f"{MACHINE_PREFIX[name]}-{rel.version}") if name in MACHINES else name
        object.__setattr__(self, "name", family)
        object.__setattr__(self, "type", mtype)
        self._check_type(rel, family, mtype)
        if self.root_port not in (True, False):  # 0/1 and numpy bools compare equal, "yes" does not
            raise VirtioLabTypeError(f"root_port is True or False, not {shown(self.root_port)}")
        if self.root_port and self.name != "q35":
            raise VirtioLabError("a pcie-root-port needs a PCI Express machine: use --machine q35 "
                                 "with --root-port")

    @staticmethod
    def _check_type(rel, family: str, mtype: str) -> None:
        """The machine type must be one the release registers (QEMU's own refusal
        otherwise), from 5.2 up (older ones carry compat properties virtio_lab leaves out)."""
        if mtype in machine_types(rel.version):
            return
        m = _VERSIONED.fullmatch(mtype)
        if m and m.group(1) == MACHINE_PREFIX[family] and (int(m.group(2)), int(m.group(3))) < (5, 2):
            raise VirtioLabError(f"machine type {mtype} is older than virtio_lab models: choose "
                                 f"{MACHINE_PREFIX[family]}-5.2 or newer",
                                 f"python -m virtio_lab machines --qemu {rel.version} lists them")
        raise _unsupported(rel, mtype)

    @property
    def newest(self) -> bool:
        """Whether this is the release's newest machine type (what ``pc``/``q35`` alias)."""
        return self.type == f"{MACHINE_PREFIX[self.name]}-{self.qemu}"

    @property
    def type_version(self) -> str:
        """The QEMU version the machine type freezes (pc-q35-7.2 -> "7.2")."""
        return self.type.rsplit("-", 1)[1]

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
        board = self.name if self.newest else self.type
        return f"{board}{' behind a pcie-root-port' if self.root_port else ''}"
