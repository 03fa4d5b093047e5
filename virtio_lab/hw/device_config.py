"""Device-specific configuration layouts: what lives at BAR4 + 0x2000 (modern) or after the
legacy header, by virtio device id (the virtio 1.2 specification, section 5)."""

from __future__ import annotations

__all__ = ["DEVICE_CONFIG_FIELDS", "device_config_field"]

#: Device-specific configuration layouts (the virtio 1.2 specification), by virtio device id:
#: (offset, width, field name). crosscheck names differing device-config bytes with it; the
#: Linux driver replay (guest/driver.py) reads fields by name through :func:`device_config_field`.
DEVICE_CONFIG_FIELDS: dict[int, tuple[tuple[int, int, str], ...]] = {
    1: ((0, 6, "mac"), (6, 2, "status"), (8, 2, "max_virtqueue_pairs"), (10, 2, "mtu"),
        (12, 4, "speed"), (16, 1, "duplex"), (17, 1, "rss_max_key_size"),
        (18, 2, "rss_max_indirection_table_length"), (20, 4, "supported_hash_types")),
    2: ((0, 8, "capacity"), (8, 4, "size_max"), (12, 4, "seg_max"), (16, 2, "geometry.cylinders"),
        (18, 1, "geometry.heads"), (19, 1, "geometry.sectors"), (20, 4, "blk_size"),
        (24, 1, "physical_block_exp"), (25, 1, "alignment_offset"), (26, 2, "min_io_size"),
        (28, 4, "opt_io_size"), (32, 1, "writeback"), (34, 2, "num_queues"),
        (36, 4, "max_discard_sectors"), (40, 4, "max_discard_seg"),
        (44, 4, "discard_sector_alignment"), (48, 4, "max_write_zeroes_sectors"),
        (52, 4, "max_write_zeroes_seg"), (56, 1, "write_zeroes_may_unmap"),
        (60, 4, "max_secure_erase_sectors"), (64, 4, "max_secure_erase_seg"),
        (68, 4, "secure_erase_sector_alignment")),
    3: ((0, 2, "cols"), (2, 2, "rows"), (4, 4, "max_nr_ports"), (8, 4, "emerg_wr")),
    5: ((0, 4, "num_pages"), (4, 4, "actual"), (8, 4, "free_page_hint_cmd_id"),
        (12, 4, "poison_val")),
    8: ((0, 4, "num_queues"), (4, 4, "seg_max"), (8, 4, "max_sectors"), (12, 4, "cmd_per_lun"),
        (16, 4, "event_info_size"), (20, 4, "sense_size"), (24, 4, "cdb_size"),
        (28, 2, "max_channel"), (30, 2, "max_target"), (32, 4, "max_lun")),
    9: ((0, 2, "tag_len"), (2, 254, "tag")),
    16: ((0, 4, "events_read"), (4, 4, "events_clear"), (8, 4, "num_scanouts"),
         (12, 4, "num_capsets")),
    18: ((0, 1, "select"), (1, 1, "subsel"), (2, 1, "size"), (8, 128, "u")),
    20: ((0, 4, "status"), (4, 4, "max_dataqueues"), (8, 4, "crypto_services"),
         (12, 4, "cipher_algo_l"), (16, 4, "cipher_algo_h"), (20, 4, "hash_algo"),
         (24, 4, "mac_algo_l"), (28, 4, "mac_algo_h"), (32, 4, "aead_algo"), (36, 4, "max_size")),
    23: ((0, 8, "page_size_mask"), (8, 8, "input_range.start"), (16, 8, "input_range.end"),
         (24, 4, "domain_range.start"), (28, 4, "domain_range.end"), (32, 4, "probe_size"),
         (36, 1, "bypass")),
    24: ((0, 8, "block_size"), (8, 2, "node_id"), (16, 8, "addr"), (24, 8, "region_size"),
         (32, 8, "usable_region_size"), (40, 8, "plugged_size"), (48, 8, "requested_size")),
    27: ((0, 8, "start"), (8, 8, "size")),
}


def device_config_field(virtio_id: int, name: str) -> tuple[int, int]:
    """(offset, width) of a device-config field by its spec name, for virtio device ``virtio_id``."""
    for start, width, field_name in DEVICE_CONFIG_FIELDS.get(virtio_id, ()):
        if field_name == name:
            return start, width
    raise KeyError(f"virtio device {virtio_id} has no device-config field {name!r}")
