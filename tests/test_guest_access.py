"""Guest accesses (GuestDevice) keep every read-only bit: 10,000 random writes, nothing raises.

Hypothesis draws 100 devices x 100 writes of random size, offset and value, spread over
config space and every BAR region (common, ISR, device, notify, MSI-X table/PBA, legacy
IO header), through the BAR hooks and through guest-physical addresses. Afterwards:

* config space: every bit that is neither writable (wmask) nor write-1-to-clear
  (w1cmask) has its old value — except Status.Interrupt, which the device itself drives
  (INTx level);
* the device's read-only registers read back as before: device_feature for both selects,
  num_queues, queue_notify_off of each queue, the legacy host features, the device config
  bytes and the all-ones past its end.
"""

from __future__ import annotations

from functools import lru_cache

from hypothesis import given, settings
from hypothesis import strategies as st

from virtio_lab import regs
from virtio_lab.hw.guest_access import GuestDevice
from virtio_lab.hw.plug import Trace
from virtio_lab.guest.probe import boot, probe

SPECS = (("virtio-net-pci", "pc", False), ("virtio-blk-pci", "q35", True),
         ("virtio-net-pci,disable-modern=on", "pc", False), ("virtio-scsi-pci", "q35", False),
         ("virtio-net-pci,modern-pio-notify=on", "pc", False), ("virtio-balloon-pci", "pc", False))


@lru_cache(maxsize=None)
def _probed(i: int):
    return probe(*SPECS[i])


def _fresh(i: int) -> GuestDevice:
    """A device in the state Linux left it in (a new GuestDevice replaying the same steps)."""
    r = _probed(i)
    dev = GuestDevice(Trace(r.trace.spec, r.trace.machine, r.trace.events[:r.first_guest_event],
                            r.trace.size), record=False)
    boot(dev)
    assert bytes(dev.config[:len(r.config)]) == r.config
    return dev


def _read_only_registers(dev: GuestDevice) -> dict:
    """What a guest reads from the device's read-only registers (select registers restored)."""
    out: dict = {}
    vdev = dev.vdev
    sel = (vdev.dfselect, vdev.queue_sel)
    if any(r.role == "common" for _, r in dev._modern_regions):
        for s in (0, 1):
            dev.common_write("device_feature_select", s)
            out[f"device_feature{s}"] = dev.common_read("device_feature")
        out["num_queues"] = dev.common_read("num_queues")
        for q in range(out["num_queues"]):
            dev.common_write("queue_select", q)
            out[f"notify_off{q}"] = dev.common_read("queue_notify_off")
        bar, base = dev.region("device")
        n = len(vdev.config)
        out["device_config"] = bytes(dev.bar_read(bar, base + i, 1) for i in range(n))
        out["past_end"] = dev.bar_read(bar, base + n, 4)
    legacy = dev.facts.bar(0)
    if legacy is not None and any(r.role == "legacy" for r in legacy.regions):
        out["host_features"] = dev.bar_read(0, regs.VIRTIO_PCI_HOST_FEATURES, 4)
        out["queue_num"] = []
        for q in range(len(vdev.queues)):
            dev.bar_write(0, regs.VIRTIO_PCI_QUEUE_SEL, q, 2)
            out["queue_num"].append(dev.bar_read(0, regs.VIRTIO_PCI_QUEUE_NUM, 2))
    vdev.dfselect, vdev.queue_sel = sel
    return out


# one write: where (config space or a BAR index), a fraction of that space, size, value
WRITE = st.tuples(st.integers(0, 6), st.floats(0, 1, exclude_max=True),
                  st.sampled_from((1, 2, 4, 8)), st.integers(0, 2**64 - 1))


def _apply(dev: GuestDevice, target: int, frac: float, size: int, value: int) -> None:
    bars = [b for b in dev.facts.bars if b.index != regs.PCI_ROM_SLOT]
    if target == 0 or target > len(bars) + 1:
        size = min(size, 4)
        dev.config_write(int(frac * dev.size) & ~(size - 1) if frac < 0.5 else int(frac * dev.size),
                         value, size)
        return
    if target == len(bars) + 1:  # through the address map, wherever the BARs now decode
        bar = bars[int(frac * len(bars)) % len(bars)]
        base = dev.bar_address(bar.index)
        if base is not None:
            off = int(frac * bar.size) % bar.size
            if bar.kind == "io":
                dev.io_write(base + off, value, min(size, 4))
            else:
                dev.mem_write(base + off, value, size)
        return
    bar = bars[target - 1]
    dev.bar_write(bar.index, int(frac * bar.size), value, size)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(SPECS) - 1), st.lists(WRITE, min_size=100, max_size=100))
def test_random_writes_keep_read_only_bits(case, writes):
    dev = _fresh(case)
    before = bytes(dev.config)
    fixed = bytes(~(w | c) & 0xFF for w, c in zip(dev.wmask, dev.w1cmask))
    regs_before = _read_only_registers(dev)
    for w in writes:
        _apply(dev, *w)
    after = bytes(dev.config)
    for o in range(dev.size):
        keep = fixed[o]
        if o == regs.PCI_STATUS:
            keep &= ~regs.PCI_STATUS_INTERRUPT  # the INTx level, driven by the device
        assert (before[o] ^ after[o]) & keep == 0, f"read-only bits of config 0x{o:03x} changed"
    assert _read_only_registers(dev) == regs_before


def test_bar_sizing_reads_back_the_size_mask():
    """Writing all ones to a BAR reads back ~(size-1) | type bits (pci_default_write_config)."""
    dev = _fresh(0)
    for bar in dev.facts.bars:
        off = regs.PCI_ROM_ADDRESS if bar.index == regs.PCI_ROM_SLOT else regs.PCI_BASE_ADDRESS_0 + 4 * bar.index
        old = dev.config_read(off, 4)
        dev.config_write(off, 0xFFFFFFFF, 4)
        got = dev.config_read(off, 4)
        dev.config_write(off, old, 4)
        mask = (~(bar.size - 1)) & 0xFFFFFFFF
        if bar.index == regs.PCI_ROM_SLOT:
            assert got == mask | 1
        elif bar.kind == "io":
            assert got == (mask | 1) & 0xFFFFFFFF
        else:
            assert got == mask | bar.type_bits


def test_isr_read_clears_and_device_config_reads_all_ones_past_its_end():
    dev = _fresh(0)
    dev.vdev.isr = 3
    bar, isr = dev.region("isr")
    assert dev.bar_read(bar, isr, 1) == 3
    assert dev.bar_read(bar, isr, 1) == 0
    bar, base = dev.region("device")
    n = len(dev.vdev.config)
    assert dev.bar_read(bar, base + n, 1) == 0xFF
    assert dev.bar_read(bar, base + n, 4) == 0xFFFFFFFF
    assert dev.bar_read(bar, base + n - 2, 4) == 0  # unaligned: the region refuses it (reads 0)
    assert dev.bar_read(bar, base, 4) == int.from_bytes(dev.vdev.config[:4], "little")


def test_pci_cfg_window_reaches_into_the_modern_bar():
    """VIRTIO_PCI_CAP_PCI_CFG: offset/length select bytes of the modern BAR; data reads them."""
    dev = _fresh(0)
    cap = dev.config_cap
    assert cap
    dev.config_write(cap + regs.VIRTIO_PCI_CAP_OFFSET, 0x12, 4)  # num_queues in common config
    dev.config_write(cap + regs.VIRTIO_PCI_CAP_LENGTH, 2, 4)
    assert dev.config_read(cap + regs.VIRTIO_PCI_CAP_DATA, 2) == len(dev.vdev.queues)
    dev.config_write(cap + regs.VIRTIO_PCI_CAP_OFFSET, 0x14, 4)  # device_status: a write goes through
    dev.config_write(cap + regs.VIRTIO_PCI_CAP_LENGTH, 1, 4)
    dev.config_write(cap + regs.VIRTIO_PCI_CAP_DATA, 0, 1)
    assert dev.vdev.status == 0  # the window wrote 0: a reset


def test_clearing_bus_master_drops_driver_ok():
    dev = _fresh(0)
    assert dev.vdev.status & 4
    cmd = dev.config_read(regs.PCI_COMMAND, 2)
    dev.config_write(regs.PCI_COMMAND, cmd & ~regs.PCI_COMMAND_MASTER, 2)
    assert not dev.vdev.status & 4


def test_legacy_header_moves_with_msix_enable():
    """Device config starts at 24 with MSI-X enabled, at 20 without (VIRTIO_PCI_CONFIG_OFF)."""
    dev = _fresh(2)
    mac = dev.vdev.config[0]
    assert dev.msix_enabled and dev.bar_read(0, 24, 1) == mac
    cap = dev.msix_cap
    dev.config_write(cap + regs.PCI_MSIX_FLAGS + 1, 0, 1)
    assert not dev.msix_enabled and dev.bar_read(0, 20, 1) == mac


def _features_ok_after(dev: GuestDevice, driver_features: int) -> int:
    """Reset, ACKNOWLEDGE|DRIVER, write the driver features, set FEATURES_OK: the status read back."""
    dev.common_write("device_status", 0)
    dev.common_write("device_status", 3)
    for sel in (0, 1):
        dev.common_write("driver_feature_select", sel)
        dev.common_write("driver_feature", driver_features >> (32 * sel) & 0xFFFFFFFF)
    dev.common_write("device_status", 0x0B)
    return dev.common_read("device_status")


def test_features_ok_refused_without_access_platform():
    """virtio_set_status -> virtio_validate_features: a device offering ACCESS_PLATFORM (bit 33)
    keeps FEATURES_OK clear when the driver drops it (real guest: balloon, status 0x83)."""
    r = probe("virtio-net-pci,disable-legacy=on,iommu_platform=on", "pc", False)
    dev = GuestDevice(Trace(r.trace.spec, r.trace.machine, r.trace.events[:r.first_guest_event],
                            r.trace.size), record=False)
    boot(dev)
    assert _features_ok_after(dev, 1 << 32) == 0x03
    assert _features_ok_after(dev, 1 << 32 | 1 << 33) == 0x0B
    plain = _fresh(0)  # no iommu_platform: VERSION_1 alone is fine
    assert _features_ok_after(plain, 1 << 32) == 0x0B
