"""The device interrupting (GuestDevice.virtio_irq / virtio_notify_config) after a real guest's setup.

The vectors, MSI-X messages and the config vector are those the real Linux 6.1 guest programmed
(tests/data/guest/pc__virtio-net-pci.json: msix_table, common_cfg); the INTx and ISR rules are
QEMU 7.2's (virtio_pci_notify: pci_set_irq(isr & 1); virtio_pci_isr_read: read clears and
deasserts; msix_notify: a masked vector only sets its PBA bit; msix_set_mask: unmasking sends it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from virtio_lab.errors import VirtioLabError
from virtio_lab.guest.probe import probe

REAL = json.loads((Path(__file__).parent / "data" / "guest" / "pc__virtio-net-pci.json").read_text())
INTERRUPT_STATUS = 0x08  # PCI_STATUS_INTERRUPT, bit 3 of the Status register


def test_msix_message_is_the_real_guests_entry():
    dev = probe("virtio-net-pci").device
    for q in REAL["common_cfg"]["queues"]:
        said = dev.virtio_irq(q["index"])
        if q["msix_vector"] == 0xFFFF:
            assert "NO_VECTOR" in said
            continue
        entry = REAL["msix_table"][q["msix_vector"]]
        assert f"vector {q['msix_vector']}:" in said
        assert f"writes 0x{entry['data']:x} to 0x{entry['addr_hi'] << 32 | entry['addr_lo']:x}" in said
    cfg = REAL["msix_table"][REAL["common_cfg"]["msix_config"]]
    assert f"writes 0x{cfg['data']:x}" in dev.virtio_notify_config()


def test_masked_vector_is_pending_until_unmasked():
    dev = probe("virtio-net-pci").device
    vector = REAL["common_cfg"]["queues"][0]["msix_vector"]
    table_bar = next(c for c in dev.caps if c.id == 0x11).get("table_bir")
    dev.bar_write(table_bar, 16 * vector + 12, 1, 4)
    assert "masked" in dev.virtio_irq(0)
    assert dev.msix_pba[vector // 8] == 1 << vector % 8
    dev.bar_write(table_bar, 16 * vector + 12, 0, 4)
    assert not any(dev.msix_pba)


def test_intx_follows_isr_bit0_and_the_isr_read_clears_it():
    dev = probe("virtio-net-pci,vectors=0").device
    isr_bar, isr_off = dev.region("isr")
    assert not dev.config_read(0x06, 2) & INTERRUPT_STATUS
    dev.virtio_irq(0)
    assert dev.config_read(0x06, 2) & INTERRUPT_STATUS
    assert dev.bar_read(isr_bar, isr_off, 1) == 1
    assert not dev.config_read(0x06, 2) & INTERRUPT_STATUS
    assert dev.bar_read(isr_bar, isr_off, 1) == 0
    dev.virtio_notify_config()                       # config change: ISR |= 3, the line rises
    assert dev.config_read(0x06, 2) & INTERRUPT_STATUS
    assert [dev.bar_read(isr_bar, isr_off, 1), dev.bar_read(isr_bar, isr_off, 1)] == [3, 0]
    # the read that cleared it is an event that wrote the Status register
    last_isr = [e for e in dev.tracer.events if e.function == "virtio_pci_isr_read"][-2]
    assert 0x06 in last_isr.changed()


def test_legacy_isr_read_deasserts_too():
    dev = probe("virtio-net-pci,disable-modern=on,vectors=0").device
    dev.virtio_irq(0)
    assert dev.config_read(0x06, 2) & INTERRUPT_STATUS
    assert dev.bar_read(0, 19, 1) == 1                # VIRTIO_PCI_ISR in the legacy header
    assert not dev.config_read(0x06, 2) & INTERRUPT_STATUS


def test_no_config_interrupt_before_driver_ok_and_bad_queue():
    dev = probe("virtio-net-pci").device
    dev.common_write("device_status", 0)            # reset: DRIVER_OK gone
    assert "DRIVER_OK" in dev.virtio_notify_config()
    with pytest.raises(VirtioLabError, match="does not exist"):
        dev.virtio_irq(7)
