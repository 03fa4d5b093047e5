"""The trace: ordered frozen events, and state_at as pure indexing."""

import dataclasses

import pytest

from virtio_lab.errors import VirtioLabError
from virtio_lab.hw.plug import plug
from virtio_lab.hw.virtio_pci import PlugError


def test_events_are_frozen():
    ev = plug("virtio-rng-pci").events[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.function = "x"


def test_state_at_is_stable_when_stepping_back():
    t = plug("virtio-net-pci")
    mid = len(t) // 2
    first = t.state_at(mid)
    t.state_at(len(t) - 1)
    assert t.state_at(mid) == first


def test_each_capability_and_bar_is_its_own_step():
    t = plug("virtio-net-pci")
    caps = [e for e in t.events if e.function == "pci_add_capability"]
    bars = [e for e in t.events if e.function == "pci_register_bar"]
    assert [e.detail("cap_offset") for e in caps] == [0x40, 0x50, 0x60, 0x70, 0x84, 0x98]
    assert sorted(e.detail("bar") for e in bars) == [0, 1, 4, 6]


def test_capability_step_changes_list_head_and_status():
    t = plug("virtio-net-pci")
    e = next(e for e in t.events if e.function == "pci_add_capability")
    assert {0x34, 0x06, 0x40, 0x41} <= set(e.touched("config"))
    assert t.state_at(e.index).config[0x34] == 0x40
    assert t.state_at(e.index - 1).config[0x34] == 0x00


def test_replayed_writes_equal_final_state():
    t = plug("virtio-scsi-pci", "q35", True)
    assert t.state_at(-1).config == t.final.config


@pytest.mark.parametrize("spec,message,where", [
    ("virtio-net-pci,disable-legacy=on,disable-modern=on",
     "device cannot work as neither modern nor legacy mode is enabled", "virtio_pci_realize"),
    ("virtio-net-pci,iommu_platform=on",
     "VIRTIO_F_IOMMU_PLATFORM was supported by neither legacy nor transitional device",
     "virtio_pci_device_plugged"),
    ("virtio-gpu-pci,disable-legacy=on,disable-modern=on",
     "device cannot work as neither modern nor legacy mode is enabled", "virtio_pci_realize"),
    ("virtio-net-pci,romsize=3000", "ROM size 3000 is not a power of two", "pci_qdev_realize"),
    ("virtio-net-pci,romfile=nosuch.rom", 'failed to find romfile "nosuch.rom"', "pci_add_option_rom"),
    ("virtio-blk-pci", "drive property not set", "virtio_blk_device_realize"),
    ("virtio-iommu-pci", "virtio-iommu-pci must be plugged on the root bus", "virtio_iommu_pci_realize"),
])
def test_refused_combinations_use_qemu_message(spec, message, where):
    """The refusal is the last event, of the QEMU function that calls error_setg (a macro,
    so never cited itself), at that function's depth."""
    machine = ("q35", True) if spec == "virtio-iommu-pci" else ("pc", False)
    with pytest.raises(PlugError) as err:
        plug(spec, *machine)
    assert message in str(err.value)
    last = err.value.trace.events[-1]
    assert last.function == where and last.detail("error") == message
    assert all(e.function != "error_setg" for e in err.value.trace.events)
    opened = next(e for e in err.value.trace.events if e.function == where)
    assert last.depth == opened.depth


@pytest.mark.parametrize("spec", ["", "virtio-nope", "virtio-net-pci,vectors=-", "virtio-net-pci,mq=perhaps"])
def test_bad_input_is_a_virtiolab_error(spec):
    with pytest.raises(VirtioLabError):
        plug(spec)


def test_bad_machine():
    with pytest.raises(VirtioLabError, match="q35"):
        plug("virtio-net-pci", "pc", root_port=True)
