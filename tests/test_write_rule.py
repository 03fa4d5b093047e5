"""QEMU's one write rule (hw/pci/pci.c: pci_default_write_config) on a plugged device."""

from hypothesis import given, settings, strategies as st

from virtio_lab.pci.access import ConfigAccess
from virtio_lab.hw.plug import plug

NET = plug("virtio-net-pci").final


def test_read_only_bytes_hold():
    acc = ConfigAccess(NET)
    acc.config_write(0x00, 0xFFFFFFFF, 4)  # vendor/device id
    assert acc.config_read(0x00, 4) == 0x10001AF4


def test_command_status_dword_reads_back_as_qemu():
    # real QEMU 7.2: writing all ones to dword 0x04 reads back 0x00100507
    acc = ConfigAccess(NET)
    acc.config_write(0x04, 0xFFFFFFFF, 4)
    assert acc.config_read(0x04, 4) == 0x00100507


def test_w1c_bits_clear_when_written_with_one():
    acc = ConfigAccess(NET)
    acc.config[0x07] |= 0x80  # pretend the device detected a parity error
    acc.config_write(0x06, 0x8000, 2)
    assert acc.config_read(0x06, 2) & 0x8000 == 0
    assert acc.config_read(0x06, 2) & 0x10  # CAP_LIST untouched


def test_bar_sizing_reads_back_size_mask():
    # sizes from the oracle: BAR0 IO 32 B, BAR1 4 KiB, BAR4 64-bit 16 KiB, ROM 256 KiB
    acc = ConfigAccess(NET)
    for off in (0x10, 0x14, 0x20, 0x24, 0x30):
        acc.config_write(off, 0xFFFFFFFF, 4)
    assert acc.config_read(0x10, 4) == 0xFFFFFFE1
    assert acc.config_read(0x14, 4) == 0xFFFFF000
    assert acc.config_read(0x20, 4) == 0xFFFFC00C
    assert acc.config_read(0x24, 4) == 0xFFFFFFFF
    assert acc.config_read(0x30, 4) == 0xFFFC0001


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.sampled_from([1, 2, 4]), st.integers(0, 2**32 - 1)),
                max_size=40))
def test_random_writes_never_change_read_only_bits(writes):
    acc = ConfigAccess(NET)
    for addr, size, value in writes:
        addr = min(addr, 256 - size)
        acc.config_write(addr, value & ((1 << 8 * size) - 1), size)
    for i in range(256):
        ro = ~(NET.wmask[i] | NET.w1cmask[i]) & 0xFF
        assert acc.config[i] & ro == NET.config[i] & ro
