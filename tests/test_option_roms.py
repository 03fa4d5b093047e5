"""SeaBIOS 1.16's option-ROM passes (src/optionroms.c) as probe() replays them.

vgarom_setup maps the ROM of the VGA device (class 0x0300, is_pci_vga); with no VGA on the
machine, try_setup_display_other maps a class 0x0380 display's; optionrom_setup skips both
display classes and devices SeaBIOS drives itself, and maps every other device's ROM. map_pcirom
sizes the ROM BAR whether or not the device has one. The resulting ROM register is checked
against real guests by test_probe.py (pc__virtio-vga, q35rp__virtio-gpu-pci, ...).
"""

from __future__ import annotations

import pytest

from virtio_lab import regs
from virtio_lab.guest.probe import probe


def _caller_of_map_pcirom(r) -> list[str]:
    ev = r.trace.events[r.first_guest_event:]
    out = []
    for i, e in enumerate(ev):
        if e.function == "map_pcirom":
            out.append(next(p.function for p in reversed(ev[:i]) if p.depth == e.depth - 1))
    return out


@pytest.mark.parametrize("spec, machine, root_port, callers", [
    ("virtio-vga", "pc", False, ["vgarom_setup"]),
    ("virtio-vga", "q35", True, ["vgarom_setup"]),
    ("virtio-gpu-pci", "q35", True, ["try_setup_display_other"]),
    ("virtio-rng-pci", "pc", False, ["optionrom_setup"]),
    ("virtio-blk-pci", "pc", False, []),  # have_driver: SeaBIOS's own virtio-blk driver took it
])
def test_which_pass_maps_the_rom(spec, machine, root_port, callers):
    assert _caller_of_map_pcirom(probe(spec, machine, root_port)) == callers


def _rom_accesses(r) -> list[tuple[str, int]]:
    ev = r.trace.events[r.first_guest_event:]
    start = next(i for i, e in enumerate(ev) if e.function == "map_pcirom")
    out = []
    for e in ev[start + 1:]:
        if e.depth <= ev[start].depth:
            break
        if e.function in ("virtio_read_config", "virtio_write_config") and e.detail("addr") == regs.PCI_ROM_ADDRESS:
            out.append((e.function, e.detail("value")))
    return out


def test_map_pcirom_sizes_a_rom_it_does_not_have():
    """virtio-gpu-pci has no ROM BAR: the sizing reads 0 and the 0 is written back."""
    r = probe("virtio-gpu-pci", "q35", True)
    assert _rom_accesses(r) == [("virtio_read_config", 0), ("virtio_write_config", 0xFFFFFFFE),
                                ("virtio_read_config", 0), ("virtio_write_config", 0)]


def test_map_pcirom_enables_then_restores_a_real_rom():
    r = probe("virtio-vga", "pc", False)
    acc = _rom_accesses(r)
    orig = acc[0][1] & ~1
    size = r.trace.events[-1].facts.bar(regs.PCI_ROM_SLOT).size
    assert acc[1] == ("virtio_write_config", 0xFFFFFFFE)
    assert acc[2] == ("virtio_read_config", (~(size - 1) & 0xFFFFFFFF) | 0)  # the size mask, enable clear
    assert acc[3:] == [("virtio_write_config", orig | 1), ("virtio_write_config", orig)]


def test_vga_is_routed_as_the_primary_vga():
    """pci_enable_default_vga (pciinit.c): behind a root port the device was not yet a usable
    VGA (the port did not forward VGA), so Command |= IO|MEM is written once more."""
    for machine, root_port, writes in (("pc", False, 0), ("q35", True, 1)):
        r = probe("virtio-vga", machine, root_port)
        ev = r.trace.events[r.first_guest_event:]
        start = next(i for i, e in enumerate(ev) if e.function == "pci_enable_default_vga")
        inside = []
        for e in ev[start + 1:]:
            if e.depth <= ev[start].depth:
                break
            inside.append(e)
        assert sum(e.function == "virtio_write_config" and e.detail("addr") == regs.PCI_COMMAND
                   for e in inside) == writes
