"""Guest accesses to a plugged device's config space, through QEMU's write rule and hooks.

Mirrors hw/virtio/virtio-pci.c: virtio_write_config (pci_default_write_config, then
the FLR hook) and pci_default_read_config. The device here is a copy of a plug's
final state; the trace it came from is never changed.
"""

from __future__ import annotations

from ..errors import VirtioLabError, VirtioLabTypeError, shown, type_name
from . import regs
from .bits import get_le
from .pcie import PCI_EXP_DEVCTL_BCR_FLR

__all__ = ["ConfigAccess"]


class ConfigAccess:
    """A guest's view of one device's config space (reads and writes by offset/size)."""

    def __init__(self, state, flr: bool = False):
        """``state``: a plugged device's state (:class:`virtio_lab.hw.state.PlugState`)."""
        if not all(hasattr(state, a) for a in ("config", "wmask", "w1cmask", "facts", "caps")):
            raise VirtioLabTypeError(f"ConfigAccess takes a plugged device's state (trace.final, "
                                     f"trace.state_at(step)), not {type_name(state)}")
        self.config = bytearray(state.config)
        self.wmask = state.wmask
        self.w1cmask = state.w1cmask
        self.size = state.facts.config_size
        caps = state.caps
        self.exp_cap = next((c.offset for c in caps if c.id == regs.CapID.EXP), 0)
        self.flr = flr and bool(self.exp_cap)

    @staticmethod
    def _check(addr: int, size: int) -> None:
        if not isinstance(addr, int) or not isinstance(size, int) or addr < 0 or size not in (1, 2, 4):
            raise VirtioLabError(f"a config access is 1, 2 or 4 bytes at a non-negative offset, "
                                 f"not {shown(size)} bytes at {shown(addr)}")

    @staticmethod
    def _check_value(value: int, what: str = "a config write") -> None:
        if not isinstance(value, int):
            raise VirtioLabTypeError(f"{what} stores an integer, not {type_name(value)}")

    def config_read(self, addr: int, size: int) -> int:
        """pci_default_read_config: a copy of the bytes (all ones past the config size)."""
        self._check(addr, size)
        if addr + size > self.size:
            return (1 << (8 * size)) - 1
        return get_le(self.config, addr, size)

    def config_write(self, addr: int, value: int, size: int) -> None:
        """virtio_write_config: the write rule byte by byte, then the FLR self-clear.

        Only the low ``size`` bytes of ``value`` reach the device (the data bus is that wide).
        """
        self._check(addr, size)
        self._check_value(value)
        if addr + size > self.size:
            return
        value &= (1 << (8 * size)) - 1
        for i, v in enumerate(value.to_bytes(size, "little")):
            o = addr + i
            w, w1c = self.wmask[o], self.w1cmask[o]
            self.config[o] = ((self.config[o] & ~w) | (v & w)) & ~(v & w1c) & 0xFF
        if self.flr:
            devctl = self.exp_cap + regs.PCI_EXP_DEVCTL
            if addr <= devctl + 1 < addr + size:
                value = get_le(self.config, devctl, 2)
                if value & PCI_EXP_DEVCTL_BCR_FLR:  # initiating FLR resets the function; the bit self-clears
                    self.config[devctl:devctl + 2] = (value & ~PCI_EXP_DEVCTL_BCR_FLR).to_bytes(2, "little")
