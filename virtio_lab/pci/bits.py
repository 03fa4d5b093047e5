"""Little-endian byte helpers named after QEMU's pci_get_*/pci_set_* (include/hw/pci/pci.h)."""

from __future__ import annotations

__all__ = ["get_le", "set_le", "pow2ceil", "align_up", "ranges_overlap"]


def get_le(buf: bytes | bytearray, offset: int, width: int) -> int:
    """Read a little-endian integer of ``width`` bytes (pci_get_byte/word/long/quad)."""
    return int.from_bytes(buf[offset:offset + width], "little")


def set_le(buf: bytearray, offset: int, width: int, value: int) -> None:
    """Store a little-endian integer of ``width`` bytes (pci_set_byte/word/long/quad)."""
    buf[offset:offset + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")


def pow2ceil(value: int) -> int:
    """Smallest power of two >= value (include/qemu/host-utils.h: pow2ceil)."""
    return 1 if value <= 1 else 1 << (value - 1).bit_length()


def align_up(value: int, align: int) -> int:
    """Round up to a multiple of ``align`` (QEMU_ALIGN_UP)."""
    return (value + align - 1) // align * align


def ranges_overlap(a: int, alen: int, b: int, blen: int) -> bool:
    """True when [a, a+alen) and [b, b+blen) share a byte (include/qemu/range.h)."""
    return a < b + blen and b < a + alen
