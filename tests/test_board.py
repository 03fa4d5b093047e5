"""virtio_lab.hw.board: one table of the board's own functions for the plug and the firmware.

Which functions a guest scans: a function 1-7 only where function 0 answers. The real-guest
captures tests/data/guest-probe/pc__virtio-rng-pci__addr-1.2.json and
q35__virtio-rng-pci__addr-1f.1.json (driven, status 15) are checked by test_probe.py; here the
refusals and the single source of the names.
"""

from __future__ import annotations

import pytest

from virtio_lab.hw.board import BOARD, multifunction_slot
from virtio_lab.errors import VirtioLabError
from virtio_lab.guest.firmware import PLATFORM, device_slot
from virtio_lab.hw.machine import Machine
from virtio_lab.hw.plug import plug
from virtio_lab.guest.probe import probe


def test_firmware_and_plug_read_the_same_table():
    for machine, fns in BOARD.items():
        assert [(f.dev << 3 | f.fn) for f in PLATFORM[machine]] == [f.devfn for f in fns]


@pytest.mark.parametrize("machine, slot, multi", [("pc", 1, True), ("pc", 0, False), ("pc", 3, False),
                                                  ("q35", 0x1F, True), ("q35", 0, False)])
def test_multifunction_slots(machine, slot, multi):
    assert multifunction_slot(machine, slot) is multi


@pytest.mark.parametrize("spec, machine, where", [("virtio-rng-pci,addr=1.2", "pc", (0, 1, 2)),
                                                  ("virtio-rng-pci,addr=1f.1", "q35", (0, 0x1F, 1)),
                                                  ("virtio-rng-pci,addr=6", "q35", (0, 6, 0))])
def test_device_slot_beside_a_multifunction_function_0(spec, machine, where):
    assert device_slot(plug(spec, Machine(machine))) == where


@pytest.mark.parametrize("spec, machine", [("virtio-rng-pci,addr=5.1", "pc"), ("virtio-rng-pci,addr=3.2", "q35")])
def test_function_without_function_0_is_refused(spec, machine):
    with pytest.raises(VirtioLabError, match="never scanned by SeaBIOS or Linux"):
        probe(spec, machine, False)
