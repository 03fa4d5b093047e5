"""MSI-X: a capability in config space pointing at a vector table and PBA inside a BAR."""

from __future__ import annotations

from . import regs
from .bar import Bar, Region, pci_register_bar
from .bits import align_up, pow2ceil
from .capability import pci_add_capability
from .config_space import ConfigSpace

__all__ = ["msix_exclusive_bar_layout", "msix_init_exclusive_bar"]

_SRC = "hw/pci/msix.c"
MSIX_MAX_ENTRIES = regs.PCI_MSIX_FLAGS_QSIZE + 1  # 2048


def msix_exclusive_bar_layout(nentries: int) -> tuple[int, int, int]:
    """Return (bar size, table offset, pba offset) for a BAR holding only MSI-X.

    Mirrors hw/pci/msix.c: msix_init_exclusive_bar: the table starts at 0, the PBA
    at half of a 4 KiB BAR unless the table needs more room, and the BAR grows to
    the next power of two when the two do not fit in 4 KiB.
    """
    table_size = nentries * regs.PCI_MSIX_ENTRY_SIZE
    pba_size = align_up(nentries, 64) // 8
    bar_size, pba_offset = 4096, 2048
    if table_size > pba_offset:
        pba_offset = table_size
    if pba_offset + pba_size > bar_size:
        bar_size = pba_offset + pba_size
    return pow2ceil(bar_size), 0, pba_offset


def msix_init_exclusive_bar(cs: ConfigSpace, nentries: int, bar_nr: int, dev_name: str) -> bool:
    """Give the device ``nentries`` MSI-X vectors in a BAR of their own; False if refused.

    ``nentries`` is an unsigned short in QEMU 7.2, so larger vector counts wrap
    (65537 becomes 1) before msix_init checks 1..2048.
    """
    n = nentries & 0xFFFF
    tr = cs.tracer
    with tr.call("msix_init_exclusive_bar", _SRC,
                 f"Create a BAR{bar_nr} that holds only the MSI-X table ({n} entries of 16 bytes) "
                 f"and the pending-bit array, then let msix_init describe them in a capability.",
                 nentries=n, bar=bar_nr):
        bar_size, table_off, pba_off = msix_exclusive_bar_layout(n)
        with tr.call("msix_init", _SRC,
                     f"Check the vector count (1..{MSIX_MAX_ENTRIES}), then add the 12-byte MSI-X "
                     f"capability: Message Control = entries-1, Table at 0x{table_off:x} and PBA at "
                     f"0x{pba_off:x}, both in BAR{bar_nr}.", nentries=n):
            if not 1 <= n <= MSIX_MAX_ENTRIES:
                tr.annotate(refused=True)
                return False
            cap = pci_add_capability(cs, regs.CapID.MSIX, regs.MSIX_CAP_LENGTH, "MSI-X")
            tr.phase(f"Fill the MSI-X capability at 0x{cap:02x} and make Enable and Function "
                     f"Mask (the top two bits of Message Control) writable.", cap_offset=cap)
            cs.set(cap + regs.PCI_MSIX_FLAGS, 2, n - 1)
            cs.set(cap + regs.PCI_MSIX_TABLE, 4, table_off | bar_nr)
            cs.set(cap + regs.PCI_MSIX_PBA, 4, pba_off | bar_nr)
            cs.set_bits(cap + regs.PCI_MSIX_FLAGS + 1, 1, 0xC0, "wmask")
            tr.set_facts(tr.facts.evolve(msix=(n, table_off, pba_off)))
        regions = (Region("msix-table", table_off, n * regs.PCI_MSIX_ENTRY_SIZE, "msix-table"),
                   Region("msix-pba", pba_off, align_up(n, 64) // 8, "msix-pba"))
        pci_register_bar(cs, Bar(bar_nr, "mem32", bar_size, False, f"{dev_name}-msix", regions),
                         "the MSI-X table and PBA")
    return True
