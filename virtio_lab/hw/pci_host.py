"""How a guest reaches config space: the host bridge's two doors, as QEMU 7.2 answers them.

* **Configuration mechanism #1**, ports 0xcf8 (CONFIG_ADDRESS) and 0xcfc-0xcff (CONFIG_DATA),
  on both machines (hw/pci/pci_host.c): ``pci_host_config_write`` latches a 4-byte write to
  0xcf8 (any other width is dropped); ``pci_host_data_read/write`` forward an access to
  0xcfc + n, when bit 31 of the latch is set, as ``pci_data_read/write(config_reg | n)``,
  which finds the function by bus = bits 23:16 and devfn = bits 15:8 and keeps only bits 7:0
  as the offset (``addr & (PCI_CONFIG_SPACE_SIZE - 1)``): 256 bytes, no more.
* **ECAM** (MMCONFIG), on q35 only (hw/pci/pcie_host.c: ``pcie_mmcfg_data_read/write``): one
  4 KiB page per function at base + (bus << 20 | devfn << 12), the offset 12 bits wide, the
  limit the function's own config size (``pci_config_size``). The base is where SeaBIOS 1.16
  enables the MCH's PCIEXBAR (src/fw/pciinit.c: mch_mmconfig_setup, 0xb0000000); the i440FX of
  ``pc`` has no ECAM at all.

Both doors answer all ones where no function is (``pci_data_read``: ``~0``; vendor id 0xffff
is how a scan sees an empty slot) and past a function's limit. virtio_lab models the plugged
device's bytes only: an address naming one of the board's own functions (or the root port)
is refused with one line rather than answered with bytes it does not have. Standard library
only.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import VirtioLabError, shown
from .board import BOARD

__all__ = ["PciHost", "config_address", "decode_config_address", "ecam_offset", "ECAM_BASE",
           "CONFIG_ADDRESS", "CONFIG_DATA"]

CONFIG_ADDRESS, CONFIG_DATA = 0xCF8, 0xCFC
ENABLE = 1 << 31
#: MMCONFIG base per machine once the firmware has set it up (None: the machine has no ECAM)
ECAM_BASE = {"pc": None, "q35": 0xB0000000}
ECAM_SIZE = 256 << 20  # MCH_HOST_BRIDGE_PCIEXBAR_MAX: 256 buses x 32 devices x 8 functions x 4 KiB
ROOT_PORT_DEVFN = 2 << 3  # the pcie-root-port virtio_lab puts at 00:02.0 (bus 1 behind it)


def config_address(bus: int, device: int, function: int, offset: int) -> int:
    """The CONFIG_ADDRESS value that selects ``offset`` of bus:device.function (bit 31 = enable)."""
    for name, value, top in (("bus", bus, 0xFF), ("device", device, 0x1F), ("function", function, 7),
                             ("offset", offset, 0xFF)):
        if not isinstance(value, int) or not 0 <= value <= top:
            raise VirtioLabError(f"the {name} is 0-{top:#x} through port 0xcf8, not {shown(value)}"
                                 + (" (offsets past 0xff need ECAM)" if name == "offset" else ""))
    return ENABLE | bus << 16 | device << 11 | function << 8 | offset & 0xFC


def decode_config_address(value: int) -> dict[str, int]:
    """CONFIG_ADDRESS split into its fields, as pci_dev_find_by_addr and pci_data_* read them."""
    return {"enable": value >> 31 & 1, "bus": value >> 16 & 0xFF, "device": value >> 11 & 0x1F,
            "function": value >> 8 & 7, "register": value & 0xFC}


def ecam_offset(bus: int, device: int, function: int, offset: int) -> int:
    """The offset from the ECAM base of ``offset`` in bus:device.function (12 offset bits)."""
    if not isinstance(offset, int) or not 0 <= offset <= 0xFFF:
        raise VirtioLabError(f"an ECAM offset is 0-0xfff (4 KiB a function), not {shown(offset)}")
    return bus << 20 | device << 15 | function << 12 | offset


def _read(target, offset: int, size: int) -> int:
    """pci_host_config_read_common: MIN(len, limit - addr) bytes; the bytes past the limit read 0."""
    n = min(size, target.size - offset)
    if n in (1, 2, 4):
        return target.config_read(offset, n)
    return sum(target.config_read(offset + i, 1) << 8 * i for i in range(n))


def _write(target, offset: int, value: int, size: int) -> None:
    """pci_host_config_write_common: only the bytes below the limit are written."""
    n = min(size, target.size - offset)
    if n in (1, 2, 4):
        target.config_write(offset, value & (1 << 8 * n) - 1, n)
    else:
        for i in range(n):
            target.config_write(offset + i, value >> 8 * i & 0xFF, 1)


@dataclass
class PciHost:
    """The machine's host bridge in front of one plugged device.

    ``PciHost(trace)`` puts a :class:`~virtio_lab.pci.access.ConfigAccess` of the plug's final
    state at the device's bus:devfn; ``PciHost(trace, device=...)`` uses the access given
    (a :class:`~virtio_lab.hw.guest_access.GuestDevice`, or one the learner already wrote to).
    """

    trace: object
    device: object = None

    def __post_init__(self):
        if self.device is None:
            from ..pci.access import ConfigAccess
            self.device = ConfigAccess(self.trace.final)
        m = self.trace.machine
        self.machine = m.name
        self.bus, self.devfn = m.bus_number, m.slot_devfn
        self.ecam_base = ECAM_BASE[m.name]
        self.config_reg = 0
        self._board = {(0, f.devfn): f.name for f in BOARD[m.name]}
        if m.root_port:
            self._board[(0, ROOT_PORT_DEVFN)] = "pcie-root-port"

    # ---------------------------------------------------------------- the target
    def _target(self, bus: int, devfn: int):
        if (bus, devfn) == (self.bus, self.devfn):
            return self.device
        name = self._board.get((bus, devfn))
        if name:
            raise VirtioLabError(f"{bus:02x}:{devfn >> 3:02x}.{devfn & 7} is the {name}, which virtio_lab "
                                 f"does not model; the plugged device is at {self.bdf}")
        return None

    @property
    def bdf(self) -> str:
        return f"{self.bus:02x}:{self.devfn >> 3:02x}.{self.devfn & 7}"

    @staticmethod
    def _size(size: int) -> None:
        if size not in (1, 2, 4):
            raise VirtioLabError(f"a port or config access is 1, 2 or 4 bytes, not {shown(size)}")

    # ------------------------------------------------------ mechanism #1 (ports)
    def io_write(self, port: int, value: int, size: int) -> None:
        """An ``out`` to 0xcf8 (pci_host_config_write) or 0xcfc-0xcff (pci_host_data_write)."""
        self._size(size)
        if port == CONFIG_ADDRESS:
            if size == 4:  # a narrower write to 0xcf8 is dropped
                self.config_reg = value & 0xFFFFFFFF
            return
        if not CONFIG_DATA <= port < CONFIG_DATA + 4:
            raise VirtioLabError(f"port {port:#x} is not the host bridge's: 0xcf8 (address), 0xcfc-0xcff (data)")
        if self.config_reg & ENABLE:
            addr = self.config_reg | (port & 3)
            target = self._target(addr >> 16 & 0xFF, addr >> 8 & 0xFF)
            if target is not None and (addr & 0xFF) < target.size:
                _write(target, addr & 0xFF, value, size)

    def io_read(self, port: int, size: int) -> int:
        """An ``in`` from 0xcf8 (the latch) or 0xcfc-0xcff (pci_host_data_read)."""
        self._size(size)
        ones = (1 << 8 * size) - 1
        if port == CONFIG_ADDRESS:
            return self.config_reg & ones
        if not CONFIG_DATA <= port < CONFIG_DATA + 4:
            raise VirtioLabError(f"port {port:#x} is not the host bridge's: 0xcf8 (address), 0xcfc-0xcff (data)")
        if not self.config_reg & ENABLE:
            return ones
        addr = self.config_reg | (port & 3)
        target = self._target(addr >> 16 & 0xFF, addr >> 8 & 0xFF)
        offset = addr & 0xFF
        if target is None or offset >= target.size:
            return ones
        return _read(target, offset, size)

    # ----------------------------------------------------------------- ECAM
    def _ecam(self, addr: int, size: int) -> tuple[object, int] | None:
        self._size(size)
        if self.ecam_base is None:
            raise VirtioLabError(f"the {self.machine} machine (i440FX) has no ECAM: its config space is reached "
                                 "through ports 0xcf8/0xcfc only (use machine='q35')")
        rel = addr - self.ecam_base
        if not 0 <= rel < ECAM_SIZE:
            raise VirtioLabError(f"{addr:#x} is outside the ECAM window {self.ecam_base:#x}-"
                                 f"{self.ecam_base + ECAM_SIZE - 1:#x}")
        target = self._target(rel >> 20 & 0xFF, rel >> 12 & 0xFF)
        return None if target is None else (target, rel & 0xFFF)

    def mmcfg_read(self, addr: int, size: int) -> int:
        """A load from the ECAM window (pcie_mmcfg_data_read): all ones past the function's size."""
        hit = self._ecam(addr, size)
        if hit is None or hit[1] >= hit[0].size:
            return (1 << 8 * size) - 1
        return _read(*hit, size)

    def mmcfg_write(self, addr: int, value: int, size: int) -> None:
        """A store to the ECAM window (pcie_mmcfg_data_write): dropped past the function's size."""
        hit = self._ecam(addr, size)
        if hit is not None and hit[1] < hit[0].size:
            _write(*hit, value, size)
