"""layout.DEVICE_CONFIG_FIELDS: the virtio 1.2 device-config layouts, checked against the
device-config bytes real QEMU 7.2 exposed (tests/data/qemu-7.2-local, ``device_cfg``) for
cases whose ``-device`` property sets a field; the Linux driver replay reads these by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from virtio_lab.hw.device_config import DEVICE_CONFIG_FIELDS, device_config_field

CORPUS = Path(__file__).parent / "data" / "qemu-7.2-local"


@pytest.mark.parametrize("case, vid, field, want", [
    ("pc__virtio-net-pci__host_mtu-9000+mq-on+speed-100+duplex-full", 1, "mtu", 9000),
    ("pc__virtio-net-pci__host_mtu-9000+mq-on+speed-100+duplex-full", 1, "speed", 100),
    ("pc__virtio-net-pci__host_mtu-9000+mq-on+speed-100+duplex-full", 1, "duplex", 1),
    ("pc__virtio-net-pci__host_mtu-9000+mq-on+speed-100+duplex-full", 1, "mac", 0x563412005452),
    ("pc__virtio-blk-pci__num-queues-16", 2, "num_queues", 16),
    ("pc__virtio-blk-pci__num-queues-16", 2, "blk_size", 512),  # logical_block_size's default
    ("pc__virtio-blk-pci__physical_block_size-4096", 2, "physical_block_exp", 3),  # 4096 = 512 << 3
    ("pc__virtio-scsi-pci__num_queues-4", 8, "num_queues", 4),
    ("pc__virtio-serial-pci__max_ports-32", 3, "max_nr_ports", 32),
])
def test_named_field_holds_the_property_real_qemu_set(case, vid, field, want):
    cfg = bytes.fromhex(json.loads((CORPUS / f"{case}.json").read_text())["device_cfg"])
    off, width = device_config_field(vid, field)
    assert int.from_bytes(cfg[off:off + width], "little") == want


@pytest.mark.parametrize("vid", sorted(DEVICE_CONFIG_FIELDS))
def test_fields_do_not_overlap(vid):
    spans = sorted((s, s + w) for s, w, _ in DEVICE_CONFIG_FIELDS[vid])
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))


def test_unknown_field_is_a_key_error():
    with pytest.raises(KeyError, match="no device-config field 'nope'"):
        device_config_field(1, "nope")
