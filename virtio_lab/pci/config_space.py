"""A PCI function's configuration space: QEMU's per-byte arrays and its one write rule.

Mirrors hw/pci/pci.c: ``config`` holds the bytes the guest reads, ``wmask`` the
bits a guest write may change, ``w1cmask`` the bits a guest clears by writing 1,
``cmask`` the bytes migration compares, and ``used`` the bytes taken by
capabilities (pci_find_space looks for free runs in it).
"""

from __future__ import annotations

from ..trace import SPACES, Tracer, new_write
from .bits import get_le

__all__ = ["ConfigSpace"]


class ConfigSpace:
    """The five arrays of one device, every store recorded on the tracer.

    Stores made by the device model itself (``set``) bypass the masks, like QEMU's
    pci_set_word(); guest stores go through :meth:`pci_default_write_config`.
    """

    def __init__(self, size: int, tracer: Tracer):
        self.size = size
        self.tracer = tracer
        self.arrays = {name: bytearray(size) for name in SPACES}
        self.config = self.arrays["config"]
        self.wmask = self.arrays["wmask"]
        self.w1cmask = self.arrays["w1cmask"]
        self.cmask = self.arrays["cmask"]
        self.used = self.arrays["used"]

    # -- traced stores ------------------------------------------------------
    def store(self, space: str, offset: int, new: bytes) -> None:
        """Replace bytes of one array and record the write."""
        self.set_raw(space, offset, bytes(new))

    def set(self, offset: int, width: int, value: int, space: str = "config") -> None:
        """pci_set_byte/word/long/quad: a little-endian store that ignores the masks.

        Like the C helpers (which take a uint8_t..uint64_t), a value wider than the
        field keeps only its low bytes: class=65537 stores 0x0001.
        """
        self.set_raw(space, offset, (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little"))

    def set_raw(self, space: str, offset: int, new: bytes) -> None:
        """The one traced store (``new`` must be ``bytes``): copy in, record old and new."""
        arr = self.arrays[space]
        end = offset + len(new)
        old = bytes(arr[offset:end])
        arr[offset:end] = new
        write = new_write(space, offset, old, new)
        seg = self.tracer._open  # Tracer.record, inlined: ~90 stores a plug
        if seg is None:
            self.tracer.record(write)
        else:
            seg.writes.append(write)

    def fill(self, space: str, offset: int, length: int, byte: int) -> None:
        """memset over one array (pci_init_wmask's 0x40..end, pci_add_capability's masks)."""
        self.store(space, offset, bytes([byte]) * length)

    def set_bits(self, offset: int, width: int, bits: int, space: str = "config") -> None:
        """pci_word_test_and_set_mask and friends: OR bits into a field."""
        self.set(offset, width, self.get(offset, width, space) | bits, space)

    def clear_bits(self, offset: int, width: int, bits: int, space: str = "config") -> None:
        self.set(offset, width, self.get(offset, width, space) & ~bits, space)

    def get(self, offset: int, width: int, space: str = "config") -> int:
        return get_le(self.arrays[space], offset, width)

    # -- the guest's view ---------------------------------------------------
    def pci_default_read_config(self, addr: int, length: int) -> int:
        """Mirrors hw/pci/pci.c: pci_default_read_config (a plain copy of the bytes)."""
        return get_le(self.config, addr, length)

    def pci_default_write_config(self, addr: int, value: int, length: int) -> None:
        """Apply a guest write byte by byte: mask in the writable bits, then clear w1c bits.

        Mirrors hw/pci/pci.c: pci_default_write_config. For each byte,
        ``new = (old & ~wmask) | (val & wmask)`` and then ``new &= ~(val & w1cmask)``.
        """
        data = value.to_bytes(length, "little")
        out = bytearray(self.config[addr:addr + length])
        for i, v in enumerate(data):
            w = self.wmask[addr + i]
            w1c = self.w1cmask[addr + i]
            out[i] = ((out[i] & ~w) | (v & w)) & ~(v & w1c) & 0xFF
        self.store("config", addr, bytes(out))

    def snapshot(self) -> dict[str, bytes]:
        return {name: bytes(arr) for name, arr in self.arrays.items()}
