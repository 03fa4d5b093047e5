"""Guest RAM as a virtio device reaches it: QEMU 7.2's system address space, for DMA.

A virtio device without ``iommu_platform=on`` does its DMA straight into
``address_space_memory`` (hw/virtio/virtio-bus.c:virtio_bus_device_plugged sets
``vdev->dma_as``). What a device access finds there depends on the flat view's
section at the address (softmmu/physmem.c):

* **RAM** — the machine's ``-m`` (128 MiB by default on pc and q35, all of it below
  4 GiB): [0, 0xa0000) and [1 MiB, ram size). The 0xa0000-0xfffff window between
  them (VGA, SMRAM, the PAM-controlled BIOS shadow) is a different section.
* **unassigned** — the hole above RAM where nothing is mapped: reads give 0,
  writes vanish (the memory core's unassigned region; a real QEMU over qtest
  reads 0 there too).

The two rules that decide what a ring or a buffer there does:

* ``address_space_cache_init`` (the ring caches of ``virtio_init_region_cache``)
  maps as much of [addr, addr+len) as the *section of addr* holds: a ring that
  starts in RAM and runs past that section's end maps short, and QEMU says
  ``Cannot map desc`` (or ``used``/``avail``). A ring in the unassigned hole maps
  whole and is read access by access (zeros).
* ``address_space_map`` (``dma_memory_map``, for the buffers of
  ``virtqueue_map_desc``) maps RAM directly up to the section's end; anything
  else goes through the one bounce buffer, at most a page (TARGET_PAGE_SIZE
  4096) and one user at a time: a second non-RAM piece fails and virtqueue_pop
  says ``virtio: bogus descriptor or out of resources``.

Addresses this model does not cover (the 0xa0000-0xfffff window, MMIO from
0xb0000000 up, RAM above 4 GiB) are refused with one line. The storage is sparse
(4 KiB pages made on first write), so 128 MiB cost nothing. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import VirtioLabError

__all__ = ["GuestRAM", "NotModelled", "UnmodelledAddress", "Section", "MapPiece", "DEFAULT_RAM_SIZE", "TARGET_PAGE_SIZE"]

DEFAULT_RAM_SIZE = 128 << 20  # hw/i386/pc.c (pc_machine_class_init): default_ram_size = 128 MiB
TARGET_PAGE_SIZE = 4096
LOW_RAM_END = 0xA0000  # where the legacy VGA/SMRAM window starts
HIGH_RAM_START = 0x100000
MMIO_START = 0xB0000000  # q35's MMCONFIG window and the PCI devices are at or above this
PAGE = 4096


class NotModelled(VirtioLabError):
    """The device reached something virtio_lab does not model (one line: what, and what to do)."""


class UnmodelledAddress(NotModelled):
    """A device access reached memory this model does not cover."""


@dataclass(frozen=True)
class Section:
    """One range of the flat view: RAM or the unassigned hole."""

    kind: str  # "ram" | "unassigned"
    start: int
    end: int  # exclusive


@dataclass(frozen=True)
class MapPiece:
    """One piece of a dma_memory_map: where, how long, and whether it is RAM or bounced."""

    addr: int
    length: int
    bounced: bool


class GuestRAM:
    """The machine's RAM and the hole above it, as QEMU's address_space_memory answers a device.

    ``read`` / ``write`` are plain accesses (``address_space_read`` / ``_write``): RAM
    holds the bytes, the hole reads 0 and drops writes. ``map`` follows
    address_space_map's rules for a buffer, ``cache_len`` address_space_cache_init's
    for a ring.
    """

    def __init__(self, size: int = DEFAULT_RAM_SIZE):
        if not isinstance(size, int) or not HIGH_RAM_START < size <= MMIO_START:
            raise VirtioLabError(f"guest RAM size is an integer between 1 MiB and "
                                 f"0x{MMIO_START:x}, not {size!r}")
        self.size = size
        self.pages: dict[int, bytearray] = {}
        self.bounce_in_use = False
        self.sections = (Section("ram", 0, LOW_RAM_END), Section("ram", HIGH_RAM_START, size),
                         Section("unassigned", size, MMIO_START))

    # ------------------------------------------------------------ sections
    def section(self, addr: int) -> Section:
        """The flat-view section holding ``addr``; one clear line for a range not modelled."""
        if not isinstance(addr, int) or isinstance(addr, bool) or addr < 0:
            raise VirtioLabError(f"a guest-physical address is a non-negative integer, not {addr!r}")
        for s in self.sections:
            if s.start <= addr < s.end:
                return s
        where = ("the legacy VGA/SMRAM/BIOS window 0xa0000-0xfffff" if LOW_RAM_END <= addr < HIGH_RAM_START
                 else "MMIO space (PCI devices, MMCONFIG, the APIC, the BIOS) or RAM above 4 GiB")
        raise UnmodelledAddress(f"address 0x{addr:x} is in {where}, which virtio_lab does not model: "
                             f"put rings and buffers in RAM (0-0x9ffff, 0x100000-0x{self.size - 1:x}) "
                             f"or the unassigned hole 0x{self.size:x}-0x{MMIO_START - 1:x}")

    def _in_ram(self, addr: int, length: int) -> bool:
        """Inside one RAM section (no bounds checks beyond that: callers pass ints)."""
        return (HIGH_RAM_START <= addr and addr + length <= self.size) or (0 <= addr and addr + length <= LOW_RAM_END)

    def is_ram(self, addr: int, length: int = 1) -> bool:
        s = self.section(addr)
        return s.kind == "ram" and addr + length <= s.end

    # ------------------------------------------------------------ accesses
    def read(self, addr: int, length: int) -> bytes:
        """address_space_read: RAM bytes, 0 for the hole (each byte dispatched by its address)."""
        if length <= 0:
            return b""
        page, off = divmod(addr, PAGE)
        if off + length <= PAGE and 0 <= addr and self._in_ram(addr, length):  # the common case
            p = self.pages.get(page)
            return bytes(p[off:off + length]) if p is not None else bytes(length)
        out = bytearray()
        pos, end = addr, addr + length
        while pos < end:
            s = self.section(pos)
            stop = min(end, s.end)
            if s.kind == "ram":
                out += self._ram_read(pos, stop - pos)
            else:
                out += bytes(stop - pos)
            pos = stop
        return bytes(out)

    def write(self, addr: int, data: bytes) -> tuple[tuple[int, bytes, bytes], ...]:
        """address_space_write: store into RAM, drop what falls in the hole.

        Returns the RAM pieces written as (address, old bytes, new bytes), for the trace.
        """
        page, off = divmod(addr, PAGE)
        if off + len(data) <= PAGE and self._in_ram(addr, len(data)):  # the common case
            p = self.pages.get(page)
            if p is None:
                p = self.pages[page] = bytearray(PAGE)
            old = bytes(p[off:off + len(data)])
            p[off:off + len(data)] = data
            return ((addr, old, bytes(data)),)
        done = []
        pos, end, i = addr, addr + len(data), 0
        while pos < end:
            s = self.section(pos)
            stop = min(end, s.end)
            if s.kind == "ram":
                chunk = bytes(data[i:i + stop - pos])
                done.append((pos, self._ram_read(pos, len(chunk)), chunk))
                self._ram_write(pos, chunk)
            i += stop - pos
            pos = stop
        return tuple(done)

    def read_int(self, addr: int, size: int) -> int:
        return int.from_bytes(self.read(addr, size), "little")

    def _ram_read(self, addr: int, length: int) -> bytes:
        out = bytearray()
        while length:
            page, off = divmod(addr, PAGE)
            n = min(length, PAGE - off)
            p = self.pages.get(page)
            out += p[off:off + n] if p is not None else bytes(n)
            addr += n
            length -= n
        return bytes(out)

    def _ram_write(self, addr: int, data: bytes) -> None:
        i = 0
        while i < len(data):
            page, off = divmod(addr + i, PAGE)
            n = min(len(data) - i, PAGE - off)
            p = self.pages.get(page)
            if p is None:
                p = self.pages[page] = bytearray(PAGE)
            p[off:off + n] = data[i:i + n]
            i += n

    # ------------------------------------------------------------ mappings
    def cache_len(self, addr: int, length: int) -> int:
        """address_space_cache_init: how much of [addr, addr+length) one cache covers.

        RAM maps up to the end of its section; the unassigned section spans the whole
        address space (phys_section_unassigned), so a hole address maps everything.
        """
        s = self.section(addr)
        return min(length, s.end - addr) if s.kind == "ram" else length

    def map(self, addr: int, length: int) -> list[MapPiece] | None:
        """dma_memory_map for ``length`` bytes from ``addr``, piece by piece as
        virtqueue_map_desc loops: RAM to its section's end, the rest through the bounce
        buffer (one page, one user). None when a piece cannot be mapped."""
        pieces = []
        pos, left = addr, length
        while left:
            s = self.section(pos)
            if s.kind == "ram":
                n = min(left, s.end - pos)
                pieces.append(MapPiece(pos, n, False))
            else:
                if self.bounce_in_use:
                    self.unmap(pieces)
                    return None
                self.bounce_in_use = True
                n = min(left, TARGET_PAGE_SIZE)
                pieces.append(MapPiece(pos, n, True))
            pos += n
            left -= n
        return pieces

    def unmap(self, pieces) -> None:
        """address_space_unmap: a bounced piece frees the bounce buffer (its write-back
        goes to the hole, where it vanishes)."""
        if any(p.bounced for p in pieces):
            self.bounce_in_use = False

    def snapshot(self) -> dict[int, bytes]:
        """The RAM pages written so far (page number -> 4 KiB), for views and tests."""
        return {k: bytes(v) for k, v in self.pages.items()}
