"""The virtio device models: what each QEMU 7.2 wrapper and backend contributes to a plug.

Each :class:`DeviceModel` holds the class-level facts (virtio id, PCI ids, class,
ROM) as data and the few per-device rules (vector count, config length, feature
bits, queues, config contents) as small functions of the parsed spec. Sources are
QEMU 7.2's hw/virtio/*-pci.c wrappers and the device files they name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from ..errors import VirtioLabError, shown
from .release import release
from .spec import ALIASES, DeviceSpec, unknown_model

__all__ = ["DeviceModel", "QemuCode", "MODELS", "model_for", "supported_types", "Features"]

# --- transport feature bits shared by every device (hw/virtio/virtio.h) ---
VIRTIO_F_NOTIFY_ON_EMPTY = 24
VIRTIO_F_ANY_LAYOUT = 27
VIRTIO_RING_F_INDIRECT_DESC = 28
VIRTIO_RING_F_EVENT_IDX = 29
VIRTIO_F_BAD_FEATURE = 30
VIRTIO_F_VERSION_1 = 32
VIRTIO_F_IOMMU_PLATFORM = 33
VIRTIO_F_RING_PACKED = 34
VIRTIO_F_IN_ORDER = 35
VIRTIO_F_RING_RESET = 40

#: DEFINE_VIRTIO_COMMON_FEATURES: property → bit, on every virtio device.
COMMON_FEATURE_PROPS = {
    "indirect_desc": VIRTIO_RING_F_INDIRECT_DESC,
    "event_idx": VIRTIO_RING_F_EVENT_IDX,
    "notify_on_empty": VIRTIO_F_NOTIFY_ON_EMPTY,
    "any_layout": VIRTIO_F_ANY_LAYOUT,
    "iommu_platform": VIRTIO_F_IOMMU_PLATFORM,
    "packed": VIRTIO_F_RING_PACKED,
    "queue_reset": VIRTIO_F_RING_RESET,
    "in_order": VIRTIO_F_IN_ORDER,  # 10.0 (no such property before)
}

#: VIRTIO_LEGACY_FEATURES: bits a modern driver never sees (virtio_pci_common_read masks them).
VIRTIO_LEGACY_FEATURES = (1 << VIRTIO_F_NOTIFY_ON_EMPTY) | (1 << VIRTIO_F_ANY_LAYOUT) | (1 << VIRTIO_F_BAD_FEATURE)

FEATURE_NAMES_COMMON = {
    24: "NOTIFY_ON_EMPTY", 27: "ANY_LAYOUT", 28: "RING_INDIRECT_DESC", 29: "RING_EVENT_IDX",
    30: "BAD_FEATURE", 32: "VERSION_1", 33: "ACCESS_PLATFORM (IOMMU_PLATFORM)",
    34: "RING_PACKED", 35: "IN_ORDER", 36: "ORDER_PLATFORM", 37: "SR_IOV",
    38: "NOTIFICATION_DATA", 40: "RING_RESET",
}

Features = int
_PROPERTY_FEATURES: dict[tuple[str, DeviceSpec], int] = {}
Rule = Callable[[DeviceSpec], int]


def _bit(n: int) -> int:
    return 1 << n


Cite = tuple[str, str]  # (file, function) in QEMU's tree, as the trace cites it


@dataclass(frozen=True)
class QemuCode:
    """Where one model's code lives in QEMU 7.2: each a ``(file, function)``, read from the
    release's source (the class_init that installs each hook), never derived from a type name.

    ``instance_init`` and ``wrapper`` are the -pci wrapper's (TypeInfo.instance_init,
    VirtioPCIClass.realize); ``realize`` and ``get_features`` are the backend's
    VirtioDeviceClass hooks (vdc->realize, vdc->get_features)."""

    instance_init: Cite
    wrapper: Cite
    realize: Cite
    get_features: Cite


def _code(wrapper_file: str, instance_init: str, wrapper: str, backend_file: str, realize: str,
          get_features: str, get_features_file: str = "") -> QemuCode:
    return QemuCode((wrapper_file, instance_init), (wrapper_file, wrapper), (backend_file, realize),
                    (get_features_file or backend_file, get_features))


@dataclass(frozen=True)
class DeviceModel:
    """One virtio-pci device family (e.g. virtio-net-pci and its -transitional forms)."""

    name: str  # generic QOM type, e.g. virtio-net-pci
    vdev_type: str  # the child device, e.g. virtio-net-device
    vdev_name: str  # virtio_id_to_name(), e.g. virtio-net (names its memory regions)
    virtio_id: int
    pci_device_id: int  # class-init device id (transitional id); 0 when the class sets none
    class_id: int  # PCI class word written at 0x0a
    summary: str
    code: QemuCode  # the QEMU functions the plug runs for this model (file, function)
    variants: bool = True  # has -transitional / -non-transitional types
    forced_modern: bool = False  # wrapper calls virtio_pci_force_virtio_1
    feature_props: dict[str, int] = field(default_factory=dict)
    feature_names: dict[int, str] = field(default_factory=dict)
    legacy_features: int = 0  # device bits hidden from modern drivers, on top of VIRTIO_LEGACY_FEATURES
    default_vectors: int = 0  # when the wrapper has a plain vectors default
    rom: str = ""  # default romfile
    rom_size: int = 0  # pow2ceil(size of Debian's file)
    nvectors: Rule | None = None  # rule for DEV_NVECTORS_UNSPECIFIED
    config_len: Rule = lambda s: 0
    queues: Callable[[DeviceSpec], list[int]] = lambda s: []
    #: vdc->get_features: receives the property bits (common + device) already set
    get_features: Callable[[DeviceSpec, int], int] = lambda s, f: f
    device_config: Callable[[DeviceSpec], bytes] = lambda s: b""
    class_code: Rule = lambda s: 0  # proxy->class_code set by the wrapper (0: keep class_id)
    backend: str = ""  # property naming the backend (drive, fsdev, cryptodev, memdev)
    backend_note: str = ""
    realize_check: Callable[[DeviceSpec, bool], None] = lambda s, legacy: None
    realize_note: str = ""
    #: the machine's hotplug handler's check before any realize (memory devices: where they go)
    pre_plug: Callable[[DeviceSpec], None] | None = None

    def property_features(self, spec: DeviceSpec) -> int:
        """host_features as the properties set them (DEFINE_PROP_BIT64 on host_features)."""
        key = (self.name, spec)  # a plug asks several times; specs are frozen
        f = _PROPERTY_FEATURES.get(key)
        if f is None:
            f = 0
            for prop, bit in {**COMMON_FEATURE_PROPS, **self.feature_props}.items():
                if spec.value(prop):
                    f |= _bit(bit)
            if len(_PROPERTY_FEATURES) > 1024:
                _PROPERTY_FEATURES.clear()
            _PROPERTY_FEATURES[key] = f
        return f

    def feature_name(self, bit: int) -> str:
        return self.feature_names.get(bit) or FEATURE_NAMES_COMMON.get(bit, f"bit {bit}")


# ----------------------------------------------------------------------------- net
NET_FEATURES = {
    "csum": 0, "guest_csum": 1, "ctrl_guest_offloads": 2, "gso": 6, "guest_tso4": 7,
    "guest_tso6": 8, "guest_ecn": 9, "guest_ufo": 10, "host_tso4": 11, "host_tso6": 12,
    "host_ecn": 13, "host_ufo": 14, "mrg_rxbuf": 15, "status": 16, "ctrl_vq": 17,
    "ctrl_rx": 18, "ctrl_vlan": 19, "ctrl_rx_extra": 20, "guest_announce": 21, "mq": 22,
    "ctrl_mac_addr": 23, "hash": 57, "rss": 60, "guest_rsc_ext": 61, "failover": 62,
}
NET_NAMES = {
    0: "CSUM", 1: "GUEST_CSUM", 2: "CTRL_GUEST_OFFLOADS", 3: "MTU", 5: "MAC", 6: "GSO",
    7: "GUEST_TSO4", 8: "GUEST_TSO6", 9: "GUEST_ECN", 10: "GUEST_UFO", 11: "HOST_TSO4",
    12: "HOST_TSO6", 13: "HOST_ECN", 14: "HOST_UFO", 15: "MRG_RXBUF", 16: "STATUS",
    17: "CTRL_VQ", 18: "CTRL_RX", 19: "CTRL_VLAN", 20: "CTRL_RX_EXTRA", 21: "GUEST_ANNOUNCE",
    22: "MQ", 23: "CTRL_MAC_ADDR", 57: "HASH_REPORT", 60: "RSS", 61: "RSC_EXT",
    62: "STANDBY", 63: "SPEED_DUPLEX",
}
VIRTIO_NET_F_MTU, VIRTIO_NET_F_MAC, VIRTIO_NET_F_SPEED_DUPLEX = 3, 5, 63
# bits that need a vnet header (or UFO) from the peer; with no netdev there is none
_NET_NEED_VNET_HDR = (0, 11, 12, 13, 1, 7, 8, 9, 57)
_NET_NEED_UFO = (10, 14)


def _net_property_features(s: DeviceSpec) -> int:
    f = MODELS["virtio-net-pci"].property_features(s) | _bit(VIRTIO_NET_F_MAC)
    if s.value("host_mtu"):
        f |= _bit(VIRTIO_NET_F_MTU)
    if s.has("duplex") or s.value("speed") >= 0:  # speed=0 is a speed
        f |= _bit(VIRTIO_NET_F_SPEED_DUPLEX)
    return f


def _net_config_len(s: DeviceSpec) -> int:
    """virtio_net_set_config_size: the end of the last field a feature turns on."""
    f = _net_property_features(s)
    size = 6
    for bit, end in ((VIRTIO_NET_F_MAC, 6), (16, 8), (22, 10), (VIRTIO_NET_F_MTU, 12),
                     (VIRTIO_NET_F_SPEED_DUPLEX, 17), (60, 24), (57, 24)):
        if f & _bit(bit):
            size = max(size, end)
    return size


def _net_get_features(s: DeviceSpec, f: int) -> int:
    f |= _net_property_features(s)  # + MAC (always), MTU and SPEED_DUPLEX (from their options)
    # Neither "no peer" nor a user-mode (slirp) netdev offers a vnet header or UFO, so the
    # offloads that need them go; a tap/vhost peer would keep them (not modelled).
    for bit in _NET_NEED_VNET_HDR + _NET_NEED_UFO:
        f &= ~_bit(bit)
    return f


def _mac_bytes(s: DeviceSpec) -> bytes:
    default = bytes.fromhex("525400123456")  # qemu_macaddr_default_if_unset, first NIC
    mac = s.value("mac")
    if not mac:
        return default
    given = bytes(int(p, 16) for p in re.split("[:-]", mac))  # the spec checked the syntax
    return given if any(given) else default  # all zeros means "unset" to QEMU


def _net_device_config(s: DeviceSpec) -> bytes:
    f = _net_property_features(s)
    speed = s.value("speed")
    duplex = {"half": 0, "full": 1}.get(s.value("duplex") or "", 0xFF)
    cfg = (_mac_bytes(s)
           + (1).to_bytes(2, "little")  # status: LINK_UP (set at realize, status=off or not)
           + (1).to_bytes(2, "little")  # max_virtqueue_pairs
           + (s.value("host_mtu") or 0).to_bytes(2, "little")
           + (speed & 0xFFFFFFFF).to_bytes(4, "little") + bytes([duplex])
           + bytes([40])  # rss_max_key_size
           + (128 if f & _bit(60) else 1).to_bytes(2, "little")  # indirection table: RSS only
           + (0x1FF).to_bytes(4, "little"))  # supported_hash_types
    return cfg[:_net_config_len(s)]


def _net_check(s: DeviceSpec, legacy: bool) -> None:
    """virtio_net_device_realize's order: duplex and speed (they decide the config size),
    then the queue sizes."""
    _mac_bytes(s)
    if s.has("duplex") and s.value("duplex") not in ("half", "full"):
        raise VirtioLabError("'duplex' must be 'half' or 'full'")
    if s.value("speed") < -1:
        raise VirtioLabError("'speed' must be between 0 and INT_MAX")
    for prop in ("rx_queue_size", "tx_queue_size"):
        v = s.value(prop)
        top = _NET_TX_CHECKED_MAX.get(s.qemu, 1024) if prop == "tx_queue_size" else 1024
        if v < 256 or v > top or v & (v - 1):
            raise VirtioLabError(f"Invalid {prop} (= {v}), must be a power of 2 between 256 and {top}"
                                 + ("." if prop == "rx_queue_size" else ""))


#: virtio_net_device_realize checks tx_queue_size against VIRTQUEUE_MAX_SIZE (5.2, 7.2),
#: from 8.x against virtio_net_max_tx_queue_size: 256 unless the peer is vhost-user/vDPA
_NET_TX_CHECKED_MAX = {"10.0": 256}


# ----------------------------------------------------------------------------- blk
BLK_FEATURES = {"scsi": 7, "config-wce": 11, "discard": 13, "write-zeroes": 14}
BLK_NAMES = {1: "SIZE_MAX", 2: "SEG_MAX", 4: "GEOMETRY", 5: "RO", 6: "BLK_SIZE", 7: "SCSI",
             9: "FLUSH (WCE)", 10: "TOPOLOGY", 11: "CONFIG_WCE", 12: "MQ", 13: "DISCARD",
             14: "WRITE_ZEROES"}
NULL_CO_SECTORS = (1 << 30) // 512  # -blockdev driver=null-co defaults to 1 GiB


def _num_queues_auto(value: int, auto: int) -> int:
    """The property's "auto" value (its type's maximum) becomes
    virtio_pci_optimal_num_queues: one queue with one vCPU (the oracle machines have one)."""
    return 1 if value == auto else value


def _blk_num_queues(s: DeviceSpec) -> int:
    return _num_queues_auto(s.value("num-queues"), 0xFFFF)  # VIRTIO_BLK_AUTO_NUM_QUEUES


def _blk_config_len(s: DeviceSpec) -> int:
    if s.value("write-zeroes"):
        return 57
    if s.value("discard"):
        return 48
    return 36


def _blk_get_features(s: DeviceSpec, f: int) -> int:
    f |= _bit(2) | _bit(4) | _bit(10) | _bit(6)  # SEG_MAX, GEOMETRY, TOPOLOGY, BLK_SIZE
    if f & _bit(VIRTIO_F_VERSION_1):
        if s.value("scsi"):
            raise VirtioLabError("Please set scsi=off for virtio-blk devices in order to use virtio 1.0")
    else:
        f &= ~_bit(VIRTIO_F_ANY_LAYOUT)
        f |= _bit(7)
    # WCE (virtio_blk_get_features): offered when the drive caches writes (the null-co
    # drive does unless write-cache=off), or the guest may switch caching (CONFIG_WCE)
    if _blk_write_cache(s) or (s.value("x-enable-wce-if-config-wce") and f & _bit(11)):
        f |= _bit(9)
    if _blk_num_queues(s) > 1:
        f |= _bit(12)
    return f


def _blk_write_cache(s: DeviceSpec) -> bool:
    """blkconf_apply_backend_options: write-cache=auto keeps the drive's (writeback)."""
    return s.value("write-cache") != "off"


def _blk_geometry(s: DeviceSpec, sectors: int = NULL_CO_SECTORS) -> tuple[int, int, int]:
    """(cylinders, heads, sectors): the user's when any is set, else guessed
    (hw/block/block.c: blkconf_geometry -> hd_geometry_guess; a null-co disk has no
    partition table, so the guess is the LBA one: 16 heads, 63 sectors)."""
    given = (s.value("cyls"), s.value("heads"), s.value("secs"))
    if any(given):
        return given
    return min(max(sectors // (16 * 63), 2), 16383), 16, 63


def _blk_config_sectors(s: DeviceSpec, heads: int, secs: int, logical: int,
                        sectors: int = NULL_CO_SECTORS) -> int:
    """The geometry's sectors field (virtio-blk.c: virtio_blk_update_config): when the
    disk's bytes per track are not a whole number of logical blocks, the count is
    rounded down to a multiple of the logical block size in 512-byte sectors."""
    per_track = sectors * 512 // heads // secs
    return secs & ~(logical // 512 - 1) if per_track % logical else secs


def _blk_device_config(s: DeviceSpec, sectors: int = NULL_CO_SECTORS) -> bytes:
    """virtio_blk_update_config for a drive of ``sectors`` 512-byte sectors (the 1 GiB null-co
    drive by default; the queue replay's raw image is smaller)."""
    logical, physical = _blk_sizes(s)
    cyls, heads, secs = _blk_geometry(s, sectors)
    granularity = s.value("discard_granularity")
    if granularity == 0xFFFFFFFF or not s.value("report-discard-granularity"):
        granularity = logical  # unset (-1), or not reported: the logical block size
    qsize = s.value("queue-size")
    seg_max = qsize - 2 if s.value("seg-max-adjust") else 126
    def le(v: int, n: int) -> bytes:
        return v.to_bytes(n, "little")
    cfg = (le(sectors, 8) + le(0, 4) + le(seg_max, 4)  # capacity, size_max, seg_max
           + le(cyls & 0xFFFF, 2) + bytes([heads & 0xFF, _blk_config_sectors(s, heads, secs, logical, sectors) & 0xFF])
           + le(logical, 4) + bytes([(physical // logical).bit_length() - 1, 0])
           + le((s.value("min_io_size") or 0) // logical, 2)
           + le((s.value("opt_io_size") or 0) // logical, 4)  # blk_size and topology
           + bytes([int(_blk_write_cache(s)), 0])  # writeback, unused
           + le(_blk_num_queues(s), 2)
           + (le(s.value("max-discard-sectors"), 4) + le(1, 4) + le(granularity >> 9, 4)
              if s.value("discard")
              else bytes(12))  # discard limits (zero when discard=off)
           + le(s.value("max-write-zeroes-sectors"), 4) + le(1, 4) + bytes([1]))
    return cfg[:_blk_config_len(s)]


def _blk_sizes(s: DeviceSpec) -> tuple[int, int]:
    """(logical, physical) block size: 512 unless set (blkconf_blocksizes on a null-co drive)."""
    logical = s.value("logical_block_size") or 512
    physical = s.value("physical_block_size") or 512
    return logical, physical


def _blk_check(s: DeviceSpec, legacy: bool) -> None:
    if not s.has("drive"):
        raise VirtioLabError("drive property not set",
                             "add drive=d0: virtio_lab then models a 1 GiB null-co drive, "
                             "like -blockdev driver=null-co,node-name=d0")
    n = _blk_num_queues(s)
    if n == 0:
        raise VirtioLabError("num-queues property must be larger than 0")
    q = s.value("queue-size")
    if q <= 2:
        raise VirtioLabError(f"invalid queue-size property ({q}), must be > 2")
    if q & (q - 1) or q > 1024:
        raise VirtioLabError(f"invalid queue-size property ({q}), must be a power of 2 (max 1024)")
    _blkconf_geometry_check(s, 65535, 255, 255)
    _blkconf_blocksizes_check(s)
    for feature, prop in (("discard", "max-discard-sectors"),
                          ("write-zeroes", "max-write-zeroes-sectors")):
        v = s.value(prop)
        if s.value(feature) and not 1 <= v <= BDRV_REQUEST_MAX_SECTORS:
            raise VirtioLabError(f"invalid {prop} property ({v}), must be between 1 and "
                                 f"{BDRV_REQUEST_MAX_SECTORS}")


#: The largest request the block layer takes (INT_MAX bytes) in 512-byte sectors.
BDRV_REQUEST_MAX_SECTORS = 4194303


def _blkconf_geometry_check(s: DeviceSpec, cyls_max: int, heads_max: int, secs_max: int) -> None:
    """hw/block/block.c: blkconf_geometry — a geometry given in part is refused field by field."""
    if not any(s.value(n) for n in ("cyls", "heads", "secs")):
        return
    for name, top in (("cyls", cyls_max), ("heads", heads_max), ("secs", secs_max)):
        if not 1 <= s.value(name) <= top:
            raise VirtioLabError(f"{name} must be between 1 and {top}")


def _blkconf_blocksizes_check(s: DeviceSpec) -> None:
    """hw/block/block.c: blkconf_blocksizes — sizes must be whole logical blocks."""
    logical, physical = _blk_sizes(s)
    if logical > physical:
        raise VirtioLabError("logical_block_size > physical_block_size not supported")
    min_io = s.value("min_io_size") or 0
    if min_io % logical:
        raise VirtioLabError("min_io_size must be a multiple of logical_block_size")
    if min_io // logical > 0xFFFF:  # the guest sees it as a 16-bit count of blocks
        raise VirtioLabError("min_io_size must not exceed 65535 logical blocks")
    if (s.value("opt_io_size") or 0) % logical:
        raise VirtioLabError("opt_io_size must be a multiple of logical_block_size")
    granularity = s.value("discard_granularity")
    if granularity != 0xFFFFFFFF and granularity % logical:
        raise VirtioLabError("discard_granularity must be a multiple of logical_block_size")


# ----------------------------------------------------------------------------- scsi
def _scsi_num_queues(s: DeviceSpec) -> int:
    return _num_queues_auto(s.value("num_queues"), 0xFFFFFFFF)  # VIRTIO_SCSI_AUTO_NUM_QUEUES


def _scsi_check(s: DeviceSpec, legacy: bool) -> None:
    n = _scsi_num_queues(s)
    if n == 0 or n > 1024 - 2:
        raise VirtioLabError("Invalid number of queues (= %u), must be a positive integer less "
                             "than %d." % (n, 1024 - 2))
    q = s.value("virtqueue_size")
    if q <= 2:
        raise VirtioLabError(f"invalid virtqueue_size property (= {q}), must be > 2")


def _scsi_device_config(s: DeviceSpec) -> bytes:
    q = s.value("virtqueue_size")
    # num_queues, seg_max, max_sectors, cmd_per_lun, event_info_size, sense_size, cdb_size
    fields = [_scsi_num_queues(s), (q - 2) if s.value("seg_max_adjust") else 126,
              s.value("max_sectors"), s.value("cmd_per_lun"), 16, 96, 32]
    return b"".join(v.to_bytes(4, "little") for v in fields) + (0).to_bytes(2, "little") \
        + (255).to_bytes(2, "little") + (16383).to_bytes(4, "little")


# ----------------------------------------------------------------------------- serial
def _serial_class_code(s: DeviceSpec) -> int:
    cls = s.value("class")
    return cls if cls in (0x0780, 0x0380, 0x00FF) else 0x0780


def _serial_get_features(s: DeviceSpec, f: int) -> int:
    if s.value("emergency-write"):
        f |= _bit(2)
    if s.value("max_ports") > 1:
        f |= _bit(1)
    return f


def _serial_queues(s: DeviceSpec) -> list[int]:
    """Port 0's rx/tx, then (with MULTIPORT) the control rx/tx pair, then the other ports."""
    ports = s.value("max_ports")
    return [128, 128, 32, 32] + [128, 128] * (ports - 1)


def _serial_check(s: DeviceSpec, legacy: bool) -> None:
    ports = s.value("max_ports")
    if ports == 0:
        raise VirtioLabError("Maximum number of serial ports not specified")
    if ports > (1024 - 2) // 2:
        raise VirtioLabError(f"maximum ports supported: {(1024 - 2) // 2}")


def _serial_device_config(s: DeviceSpec) -> bytes:
    return (0).to_bytes(2, "little") * 2 + s.value("max_ports").to_bytes(4, "little") \
        + (0).to_bytes(4, "little")


# ----------------------------------------------------------------------------- balloon
BALLOON_FEATURES = {"deflate-on-oom": 2, "free-page-hint": 3, "page-poison": 4, "free-page-reporting": 5}


def _balloon_config_len(s: DeviceSpec) -> int:
    if s.value("qemu-4-0-config-size") or s.value("page-poison"):
        return 16
    if s.value("free-page-hint"):
        return 12
    return 8


def _balloon_queues(s: DeviceSpec) -> list[int]:
    q = [128, 128, 128]
    if s.value("free-page-hint"):
        q.append(0x4000 // 128 if False else 128)
    if s.value("free-page-reporting"):
        q.append(32)
    return q


def _balloon_check(s: DeviceSpec, legacy: bool) -> None:
    if s.value("free-page-hint") and not s.has("iothread"):
        raise VirtioLabError("'free-page-hint' requires 'iothread' to be set")


def _positive(s: DeviceSpec, prop: str) -> None:
    if not s.value(prop):
        raise VirtioLabError(f"'{prop}' parameter expects a positive integer")


def _rng_check(s: DeviceSpec, legacy: bool) -> None:
    """virtio_rng_device_realize: max-bytes is a uint64 QEMU then wants below 2^63."""
    _positive(s, "period")
    if s.value("max-bytes") > 2**63 - 1:
        raise VirtioLabError("'max-bytes' parameter must be non-negative, and less than 2^63")


# ----------------------------------------------------------------------------- memory devices
#: The machine virtio_lab models for memory devices (as the probe starts QEMU):
#: -m 512M,slots=2,maxmem=4G and -object memory-backend-ram,id=mem0,size=1G.
MEMDEV_SIZE = 1 << 30
#: Device memory starts at 4 GiB (all 512 MiB of RAM sit below it) and spans
#: maxmem - ram plus 1 GiB per slot (pc_memory_init with enforce_aligned_dimm).
DEVICE_MEMORY_BASE = 1 << 32
DEVICE_MEMORY_SIZE = (4 << 30) - (512 << 20) + 2 * (1 << 30)
#: A RAM backend's alignment on x86-64 hosts (QEMU_VMALLOC_ALIGN: transparent huge pages).
HOST_PAGE_ALIGN = 2 << 20


#: Releases whose memory_device_pre_plug asks for the machine's device memory before the
#: device's memory region (8.2+: "the configuration is not prepared for memory devices")
_DEVICE_MEMORY_CHECKED_FIRST = frozenset({"10.0"})


def _memory_device_pre_plug(s: DeviceSpec, no_memdev: str, align: int) -> None:
    """hw/mem/memory-device.c: memory_device_pre_plug -> memory_device_get_free_addr.

    memaddr=0 lets QEMU choose; any other address must be aligned and the whole
    device must fit inside the machine's device-memory range."""
    if not s.has("memdev"):
        if s.qemu in _DEVICE_MEMORY_CHECKED_FIRST:  # the modelled machine has maxmem only with a memdev
            raise VirtioLabError("the configuration is not prepared for memory devices (e.g., for "
                                 "memory hotplug), consider specifying the maxmem option")
        raise VirtioLabError(no_memdev)
    hint = s.value("memaddr") or 0  # 0: QEMU chooses
    if hint % align:
        raise VirtioLabError(f"address must be aligned to {align:#x} bytes")
    if MEMDEV_SIZE % align:
        raise VirtioLabError(f"backend memory size must be multiple of {align:#x}")
    if not hint:
        return
    end = DEVICE_MEMORY_BASE + DEVICE_MEMORY_SIZE
    if hint < DEVICE_MEMORY_BASE or hint + MEMDEV_SIZE > end:
        raise VirtioLabError(f"can't add memory device [{hint:#x}:{MEMDEV_SIZE:#x}], usable range "
                             f"for memory devices [{DEVICE_MEMORY_BASE:#x}:{DEVICE_MEMORY_SIZE:#x}]")


def _mem_check(s: DeviceSpec, legacy: bool) -> None:
    """virtio-mem.c: virtio_mem_device_realize, the checks a RAM backend can fail."""
    if not s.has("memdev"):
        raise VirtioLabError("'memdev' property must be set",
                             "add memdev=mem0: virtio_lab models -object memory-backend-ram,id=mem0")
    if s.value("node") >= NUMA_NODES:  # QEMU's message lacks a space after "exceeds"
        raise VirtioLabError(f"'node' property has value '{s.value('node')}', which exceedsthe "
                             f"number of numa nodes: {NUMA_NODES}")
    # 10.0's dynamic-memslots needs unplugged-inaccessible on (auto is off for a RAM backend)
    if s.value("dynamic-memslots") and s.value("unplugged-inaccessible") != "on":
        raise VirtioLabError("'dynamic-memslots' property set to 'on' requires "
                             "'unplugged-inaccessible' to be 'on'")
    block = s.value("block-size") or HOST_PAGE_ALIGN
    if (s.value("requested-size") or 0) % block:
        raise VirtioLabError(f"'requested-size' property has to be multiples of 'block-size' ({block:#x})")


#: virtio-mem.c: virtio_mem_get_features adds VIRTIO_MEM_F_PERSISTENT_SUSPEND (bit 2) from
#: 9.0 on when the machine can wake from suspend (pc and q35 can)
_MEM_RELEASE_FEATURES = {"10.0": _bit(2)}

#: No -numa options: QEMU counts one node.
NUMA_NODES = 1


# ----------------------------------------------------------------------------- table
def _fixed(n: int) -> Rule:
    return lambda s: n


def _q(*sizes: int) -> Callable[[DeviceSpec], list[int]]:
    return lambda s: list(sizes)


MODELS: dict[str, DeviceModel] = {}


def _register(m: DeviceModel) -> None:
    MODELS[m.name] = m


_register(DeviceModel(
    name="virtio-net-pci", vdev_type="virtio-net-device", vdev_name="virtio-net", virtio_id=1,
    pci_device_id=0x1000, class_id=0x0200, summary="network card",
    code=_code("hw/virtio/virtio-net-pci.c", "virtio_net_pci_instance_init", "virtio_net_pci_realize",
               "hw/net/virtio-net.c", "virtio_net_device_realize", "virtio_net_get_features"),
    feature_props=NET_FEATURES, feature_names=NET_NAMES, legacy_features=_bit(6),
    rom="efi-virtio.rom", rom_size=256 * 1024,
    nvectors=lambda s: 2 * 1 + 2,  # 2 * max(peer queues, 1) + 2: one netdev queue pair
    config_len=_net_config_len,
    # tx queues stay at 256 unless the peer is vhost-user/vdpa (virtio_net_max_tx_queue_size)
    queues=lambda s: [s.value("rx_queue_size"), min(s.value("tx_queue_size"), 256), 64],
    get_features=_net_get_features, device_config=_net_device_config,
    backend="netdev", realize_check=_net_check,
    realize_note="virtio_net_device_realize sizes the config from the feature properties "
                 "(MAC, STATUS, MQ, MTU, SPEED_DUPLEX, RSS) and adds one rx/tx queue pair plus the "
                 "control queue.",
))
_register(DeviceModel(
    name="virtio-blk-pci", vdev_type="virtio-blk-device", vdev_name="virtio-blk", virtio_id=2,
    pci_device_id=0x1001, class_id=0x0100, summary="block device (disk)",
    code=_code("hw/virtio/virtio-blk-pci.c", "virtio_blk_pci_instance_init", "virtio_blk_pci_realize",
               "hw/block/virtio-blk.c", "virtio_blk_device_realize", "virtio_blk_get_features"),
    feature_props=BLK_FEATURES, feature_names=BLK_NAMES,
    nvectors=lambda s: _blk_num_queues(s) + 1,
    config_len=_blk_config_len,
    queues=lambda s: [s.value("queue-size")] * _blk_num_queues(s),
    get_features=_blk_get_features, device_config=_blk_device_config,
    class_code=lambda s: s.value("class") or 0,
    backend="drive", backend_note="a 1 GiB null-co drive (-blockdev driver=null-co)",
    realize_check=_blk_check,
))
_register(DeviceModel(
    name="virtio-scsi-pci", vdev_type="virtio-scsi-device", vdev_name="virtio-scsi", virtio_id=8,
    pci_device_id=0x1004, class_id=0x0100, summary="SCSI host bus adapter",
    code=_code("hw/virtio/virtio-scsi-pci.c", "virtio_scsi_pci_instance_init", "virtio_scsi_pci_realize",
               "hw/scsi/virtio-scsi.c", "virtio_scsi_device_realize", "virtio_scsi_get_features"),
    feature_props={"hotplug": 1, "param_change": 2},
    feature_names={0: "INOUT", 1: "HOTPLUG", 2: "CHANGE", 3: "T10_PI"},
    nvectors=lambda s: _scsi_num_queues(s) + 3,
    config_len=_fixed(36),
    queues=lambda s: [s.value("virtqueue_size")] * (2 + _scsi_num_queues(s)),
    device_config=_scsi_device_config, realize_check=_scsi_check,
))
_register(DeviceModel(
    name="virtio-serial-pci", vdev_type="virtio-serial-device", vdev_name="virtio-serial",
    virtio_id=3, pci_device_id=0x1003, class_id=0x0780, summary="serial ports (virtio-console)",
    # virtio-serial-bus.c names its get_features hook plainly get_features
    code=_code("hw/virtio/virtio-serial-pci.c", "virtio_serial_pci_instance_init",
               "virtio_serial_pci_realize", "hw/char/virtio-serial-bus.c",
               "virtio_serial_device_realize", "get_features"),
    feature_names={0: "SIZE", 1: "MULTIPORT", 2: "EMERG_WRITE"},
    default_vectors=2, nvectors=lambda s: s.value("max_ports") + 1,
    config_len=lambda s: 12 if s.value("emergency-write") else 8,
    queues=_serial_queues, get_features=_serial_get_features,
    device_config=_serial_device_config, class_code=_serial_class_code,
    realize_check=_serial_check,
))
_register(DeviceModel(
    name="virtio-rng-pci", vdev_type="virtio-rng-device", vdev_name="virtio-rng", virtio_id=4,
    pci_device_id=0x1005, class_id=0x00FF, summary="entropy source",
    code=_code("hw/virtio/virtio-rng-pci.c", "virtio_rng_initfn", "virtio_rng_pci_realize",
               "hw/virtio/virtio-rng.c", "virtio_rng_device_realize", "get_features"),
    nvectors=lambda s: 2, config_len=_fixed(0), queues=_q(8),
    realize_check=_rng_check,
))
_register(DeviceModel(
    name="virtio-balloon-pci", vdev_type="virtio-balloon-device", vdev_name="virtio-balloon",
    virtio_id=5, pci_device_id=0x1002, class_id=0x00FF, summary="memory balloon",
    code=_code("hw/virtio/virtio-balloon-pci.c", "virtio_balloon_pci_instance_init",
               "virtio_balloon_pci_realize", "hw/virtio/virtio-balloon.c",
               "virtio_balloon_device_realize", "virtio_balloon_get_features"),
    feature_props=BALLOON_FEATURES,
    feature_names={0: "MUST_TELL_HOST", 1: "STATS_VQ", 2: "DEFLATE_ON_OOM", 3: "FREE_PAGE_HINT",
                   4: "PAGE_POISON", 5: "REPORTING"},
    nvectors=lambda s: 2,  # 10.0's vectors property (virtio_balloon_pci_realize); 5.2/7.2 have none
    config_len=_balloon_config_len, queues=_balloon_queues,
    get_features=lambda s, f: f | _bit(1),  # STATS_VQ
    device_config=lambda s: bytes(_balloon_config_len(s)),
    class_code=lambda s: 0x00FF, realize_check=_balloon_check,
))
def _require(prop: str, message: str, hint: str) -> Callable[[DeviceSpec, bool], None]:
    def check(s: DeviceSpec, legacy: bool) -> None:
        if not s.has(prop):
            raise VirtioLabError(message, hint)
    return check


def _9p_check(s: DeviceSpec, legacy: bool) -> None:
    if not s.has("fsdev"):
        raise VirtioLabError("9pfs device couldn't find fsdev with the id = NULL",
                             "add fsdev=fs0,mount_tag=share (virtio_lab models a local fsdev)")
    tag = s.value("mount_tag")
    if tag is None:  # an empty tag is a tag (hw/9pfs/9p.c: v9fs_device_realize_common)
        raise VirtioLabError(f"fsdev with id {shown(s.value('fsdev'), '')} needs mount_tag arguments")
    n = len(tag.encode())
    if n > MAX_TAG_LEN - 1:  # the tag and its NUL fit MAX_TAG_LEN bytes
        raise VirtioLabError(f"mount tag {shown(tag)} ({n} bytes) is longer than maximum "
                             f"({MAX_TAG_LEN - 1} bytes)")


#: hw/9pfs/9p.h: the longest mount tag, its terminating NUL included.
MAX_TAG_LEN = 32


_register(DeviceModel(
    name="virtio-9p-pci", vdev_type="virtio-9p-device", vdev_name="virtio-9p", virtio_id=9,
    pci_device_id=0x1009, class_id=0x0002, summary="9p file system sharing",
    code=_code("hw/virtio/virtio-9p-pci.c", "virtio_9p_pci_instance_init", "virtio_9p_pci_realize",
               "hw/9pfs/virtio-9p-device.c", "virtio_9p_device_realize", "virtio_9p_get_features"),
    feature_names={0: "MOUNT_TAG"}, default_vectors=2,
    config_len=lambda s: 2 + len((s.value("mount_tag") or "").encode()),
    queues=_q(128), get_features=lambda s, f: f | _bit(0),
    device_config=lambda s: len((s.value("mount_tag") or "").encode()).to_bytes(2, "little")
    + (s.value("mount_tag") or "").encode(),
    backend="fsdev", realize_check=_9p_check,
))


def _gpu_check(s: DeviceSpec, legacy: bool) -> None:
    if s.value("max_outputs") > 16:
        raise VirtioLabError("invalid max_outputs > 16")
    if s.value("blob"):
        raise VirtioLabError(release(s.qemu).text("gpu-blob", "cannot enable blob resources without udmabuf"),
                             "QEMU first warns 'open /dev/udmabuf: No such file or directory': "
                             "the probed host has no udmabuf")


def _vga_check(s: DeviceSpec, legacy: bool) -> None:
    """virtio-vga.c: virtio_vga_base_realize hands the first scanout's console to the VGA
    core; with max_outputs=0 there is none, and QEMU 7.2 crashes on the null pointer."""
    _gpu_check(s, legacy)
    if s.value("max_outputs") == 0:
        raise VirtioLabError("qemu-system-x86_64 died of SIGSEGV without a message",
                             "virtio-vga needs at least one output (scanout 0 is the VGA console)")


def _gpu_model(name: str, class_id: int, summary: str, wrapper_file: str, instance_init: str,
               wrapper: str, **kw) -> DeviceModel:
    """virtio-gpu's get_features hook is the shared base class's (virtio-gpu-base.c)."""
    return DeviceModel(
        name=name, vdev_type="virtio-gpu-device", vdev_name="virtio-gpu", virtio_id=16,
        pci_device_id=0, class_id=class_id, summary=summary, variants=False, forced_modern=True,
        code=_code(wrapper_file, instance_init, wrapper, "hw/display/virtio-gpu.c",
                   "virtio_gpu_device_realize", "virtio_gpu_base_get_features",
                   "hw/display/virtio-gpu-base.c"),
        feature_names={0: "VIRGL", 1: "EDID", 2: "RESOURCE_UUID", 3: "RESOURCE_BLOB"},
        default_vectors=3, config_len=_fixed(16), queues=_q(64, 16),
        get_features=lambda s, f: f | (_bit(1) if s.value("edid") else 0) | (_bit(3) if s.value("blob") else 0),
        device_config=lambda s: (0).to_bytes(4, "little") * 2 + s.value("max_outputs").to_bytes(4, "little")
        + (0).to_bytes(4, "little"),
        **{"realize_check": _gpu_check, **kw})


_register(_gpu_model("virtio-gpu-pci", 0x0380, "GPU (2D)", "hw/display/virtio-gpu-pci.c",
                     "virtio_gpu_initfn", "virtio_gpu_pci_base_realize"))
_register(_gpu_model("virtio-vga", 0x0300, "GPU with VGA compatibility (the boot display)",
                     "hw/display/virtio-vga.c", "virtio_vga_inst_initfn", "virtio_vga_base_realize",
                     rom="vgabios-virtio.bin", rom_size=64 * 1024, realize_check=_vga_check))

#: largest config entry of each input device (name, ids, event bitmaps), from probes of 7.2
_INPUT_MAX_ENTRY = {"keyboard": 29, "mouse": 43, "tablet": 43}
for _name, _cls, _summary in (("keyboard", 0x0900, "keyboard"), ("mouse", 0x0902, "mouse"),
                              ("tablet", 0x0980, "tablet (absolute pointer)")):
    def _input_len(s: DeviceSpec, _n: str = _name) -> int:
        """virtio_input_device_realize: 8-byte header + the largest config entry."""
        return 8 + max(_INPUT_MAX_ENTRY[_n], len((s.value("serial") or "").encode()))
    _register(DeviceModel(
        name=f"virtio-{_name}-pci", vdev_type=f"virtio-{_name}-device", vdev_name="virtio-input",
        virtio_id=18, pci_device_id=0, class_id=_cls, summary=f"input: {_summary}",
        # one wrapper file for the three; the backend realize is virtio-input's, which calls
        # the HID class's vic->realize (virtio-input-hid.c: virtio_input_hid_realize)
        code=_code("hw/virtio/virtio-input-pci.c", f"virtio_{_name}_initfn", "virtio_input_pci_realize",
                   "hw/input/virtio-input.c", "virtio_input_device_realize",
                   "virtio_input_get_features"),
        variants=False, forced_modern=True, default_vectors=2,
        config_len=_input_len, queues=_q(64, 64),
        device_config=lambda s, _f=_input_len: bytes(_f(s)),  # select = 0: nothing selected yet
    ))

def _crypto_config(services: int, akcipher: int, max_size: int) -> bytes:
    """virtio_crypto_config as the builtin cryptodev backend fills it: status HW_READY, one
    data queue, the services, algorithm masks (AES-CBC, SHA1), key limits, akcipher
    algorithms, and the largest request (LONG_MAX less the size of the backend's request
    struct, which changed between releases)."""
    le = lambda v, n=4: v.to_bytes(n, "little")  # noqa: E731
    return (le(1) + le(1) + le(services) + le(8) + le(0) + le(4) + le(0) + le(0) + le(0)
            + le(64) + le(512) + le(akcipher) + le(max_size, 8))


#: backends/cryptodev-builtin.c: cryptodev_builtin_init, per release, as probed: 7.2 adds the
#: akcipher service (RSA); 10.0 offers it only when its crypto library does RSA raw padding
#: (Debian's build does not); max_size is LONG_MAX - sizeof(CryptoDevBackendSymOpInfo) (5.2)
#: or - sizeof(CryptoDevBackendOpInfo) (7.2, 10.0).
_CRYPTO_BUILTIN_CONFIG = {
    "5.2": _crypto_config(0x07, 0, 2**63 - 1 - 0x58),
    "7.2": _crypto_config(0x17, 0x02, 2**63 - 1 - 0x18),
    "10.0": _crypto_config(0x07, 0, 2**63 - 1 - 0x40),
}
#: hw/virtio/virtio-crypto.c: virtio_crypto_device_realize: the control queue's size
#: (64 in 5.2, 1024 from 7.2)
_CRYPTO_CTRL_QUEUE = {"5.2": 64}
_register(DeviceModel(
    name="virtio-crypto-pci", vdev_type="virtio-crypto-device", vdev_name="virtio-crypto",
    virtio_id=20, pci_device_id=0, class_id=0x00FF, summary="crypto accelerator",
    code=_code("hw/virtio/virtio-crypto-pci.c", "virtio_crypto_initfn", "virtio_crypto_pci_realize",
               "hw/virtio/virtio-crypto.c", "virtio_crypto_device_realize",
               "virtio_crypto_get_features"),
    variants=False, forced_modern=True, default_vectors=2, config_len=_fixed(56),
    queues=lambda s: [1024, _CRYPTO_CTRL_QUEUE.get(s.qemu, 1024)], backend="cryptodev",
    device_config=lambda s: _CRYPTO_BUILTIN_CONFIG[s.qemu],
    realize_check=_require("cryptodev", "'cryptodev' parameter expects a valid object",
                           "add cryptodev=cr0: virtio_lab models -object cryptodev-backend-builtin,id=cr0"),
))


#: virtio-iommu.c: the page_size_mask of each granule= (10.0; host: the host's 4 KiB pages)
_IOMMU_GRANULE = {"4k": 4 << 10, "8k": 8 << 10, "16k": 16 << 10, "64k": 64 << 10, "host": 4 << 10}


def _iommu_config(s: DeviceSpec) -> bytes:
    """virtio_iommu_device_realize: page_size_mask from granule=, input_range up to
    aw-bits= (both 10.0; before, 4 KiB pages and 64 bits), all domains, probe size."""
    le = int.to_bytes
    aw_bits = s.value("aw-bits") or 64
    return (le(-_IOMMU_GRANULE[s.value("granule") or "host"] % 2**64, 8, "little")
            + le(0, 8, "little") + le(2**64 - 1 if aw_bits == 64 else (1 << aw_bits) - 1, 8, "little")
            + le(0, 4, "little") + le(2**32 - 1, 4, "little")  # domain_range
            + le(0x200, 4, "little")  # probe_size
            + bytes([1 if s.value("boot-bypass") else 0, 0, 0, 0]))


def _iommu_check(s: DeviceSpec) -> None:
    aw_bits = s.value("aw-bits")
    if aw_bits is not None and not 32 <= aw_bits <= 64:
        raise VirtioLabError("aw-bits must be within [32,64]")


_register(DeviceModel(
    name="virtio-iommu-pci", vdev_type="virtio-iommu-device", vdev_name="virtio-iommu",
    virtio_id=23, pci_device_id=0, class_id=0x00FF, summary="paravirtual IOMMU",
    code=_code("hw/virtio/virtio-iommu-pci.c", "virtio_iommu_pci_instance_init",
               "virtio_iommu_pci_realize", "hw/virtio/virtio-iommu.c", "virtio_iommu_device_realize",
               "virtio_iommu_get_features"),
    variants=False, forced_modern=True, config_len=_fixed(40), queues=_q(256, 256),
    feature_names={0: "INPUT_RANGE", 1: "DOMAIN_RANGE", 2: "MAP_UNMAP", 3: "BYPASS", 4: "PROBE",
                   5: "MMIO", 6: "BYPASS_CONFIG"},
    # virtio_iommu_get_features ORs in its own set, which has EVENT_IDX, INDIRECT_DESC and
    # VERSION_1 whatever event_idx= and indirect_desc= say
    get_features=lambda s, f: f | 0x77 | _bit(28) | _bit(29) | _bit(32), device_config=_iommu_config,
    realize_check=lambda s, legacy: _iommu_check(s),
    class_code=lambda s: s.value("class") or 0,
))
_register(DeviceModel(
    name="virtio-mem-pci", vdev_type="virtio-mem", vdev_name="virtio-mem", virtio_id=24,
    pci_device_id=0, class_id=0x00FF, summary="hot-pluggable memory", variants=False,
    code=_code("hw/virtio/virtio-mem-pci.c", "virtio_mem_pci_instance_init", "virtio_mem_pci_realize",
               "hw/virtio/virtio-mem.c", "virtio_mem_device_realize", "virtio_mem_get_features"),
    forced_modern=True, config_len=_fixed(56), queues=_q(128), backend="memdev",
    nvectors=lambda s: 2,  # 10.0's vectors property (virtio_mem_pci_realize); 5.2/7.2 have none
    feature_names={0: "ACPI_PXM", 1: "UNPLUGGED_INACCESSIBLE", 2: "PERSISTENT_SUSPEND"},
    # ACPI_PXM: x86 machines describe memory with ACPI; UNPLUGGED_INACCESSIBLE only when
    # asked (auto is off for a RAM backend, which has the shared zero page);
    # PERSISTENT_SUSPEND (10.0): the x86 machines support wake-up from suspend
    get_features=lambda s, f: (f | _bit(0) | (_bit(1) if s.value("unplugged-inaccessible") == "on" else 0)
                               | _MEM_RELEASE_FEATURES.get(s.qemu, 0)),
    realize_check=_mem_check,
    pre_plug=lambda s: _memory_device_pre_plug(
        s, "'memdev' property must be set", max(HOST_PAGE_ALIGN, s.value("block-size") or 0)),
))
_register(DeviceModel(
    name="virtio-pmem-pci", vdev_type="virtio-pmem", vdev_name="virtio-pmem", virtio_id=27,
    pci_device_id=0, class_id=0x00FF, summary="persistent memory", variants=False,
    code=_code("hw/virtio/virtio-pmem-pci.c", "virtio_pmem_pci_instance_init", "virtio_pmem_pci_realize",
               "hw/virtio/virtio-pmem.c", "virtio_pmem_realize", "virtio_pmem_get_features"),
    forced_modern=True, config_len=_fixed(16), queues=_q(128), backend="memdev",
    realize_check=_require("memdev", "'memdev' property is not set",
                           "add memdev=mem0: virtio_lab models -object memory-backend-ram,id=mem0"),
    pre_plug=lambda s: _memory_device_pre_plug(s, "'memdev' property must be set", HOST_PAGE_ALIGN),
))


@dataclass(frozen=True)
class TypeInfo:
    """A concrete QOM type name: its family and what its instance_init forces."""

    type_name: str
    model: DeviceModel
    variant: str  # generic | transitional | non-transitional


def supported_types() -> dict[str, TypeInfo]:
    out: dict[str, TypeInfo] = {}
    for m in MODELS.values():
        out[m.name] = TypeInfo(m.name, m, "generic")
        if m.variants:
            out[f"{m.name}-transitional"] = TypeInfo(f"{m.name}-transitional", m, "transitional")
            out[f"{m.name}-non-transitional"] = TypeInfo(f"{m.name}-non-transitional", m, "non-transitional")
    return out


def model_for(type_name: str) -> TypeInfo:
    """The model of a type name, or of QEMU's short name for it (``virtio-net``)."""
    types = supported_types()
    if type_name not in types and isinstance(type_name, str):
        type_name = ALIASES.get(type_name, type_name)
    if type_name not in types:
        raise unknown_model(type_name, sorted(types))
    return types[type_name]
