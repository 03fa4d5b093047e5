"""The QEMU releases virtio_lab models, as data: what differs between 5.2, 7.2 and 10.0.

The plug runs one code path for every release. What a release changes is held here (memory
region names, firmware files, what the code does for a property the release lacks, and the
few behaviours that are not a property at all) or beside it in ``data/qemu-<release>/``:
``props/TYPE.txt`` (``-device TYPE,help``: which properties exist, with their defaults),
``compat.json`` (the machine types and their compat properties, transcribed from the
release's hw/core/machine.c, hw/i386/pc.c, pc_piix.c and pc_q35.c by
``tools/compat_tables.py``) and ``qom-types.json`` (the QOM parent of every type a compat
property may name).  Each entry below names the source it was read from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from ..errors import VirtioLabError

__all__ = ["Release", "RELEASES", "DEFAULT_RELEASE", "release", "release_names", "RULES",
           "rule_differences"]

#: The release a plug models when none is named: Debian 12's QEMU, the one the project's
#: corpora, guest captures and notebooks were made with (and the one ``apt-get install
#: qemu-system-x86`` gives on the machines the course targets).
DEFAULT_RELEASE = "7.2"


def _frozen(d: dict) -> Mapping:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class Release:
    """One QEMU release: its Debian build and what its code does differently."""

    version: str
    debian: str  # the Debian package version of qemu-system-x86
    suite: str  # where Debian keeps that build
    seabios: str  # the SeaBIOS Debian ships beside it (the guest side's firmware)
    #: hw/virtio/virtio-pci.c: virtio_pci_modern_regions_init names the regions
    #: "virtio-pci-common-virtio-net" (7.2+) or "virtio-pci-common" (5.2)
    region_names_with_device: bool
    #: hw/pci/pcie.c: pcie_cap_fill_link_ep_usp sets Link Status DLLLA for an endpoint when
    #: x-pcie-lnksta-dllla is on (5.2); from 6.0 only a slot's hot-plug sets it
    endpoint_lnksta_dllla: bool
    #: hw/i386/pc.c: pc_get_hotplug_handler takes virtio-iommu-pci (6.0+); without it
    #: virtio_iommu_pci_realize refuses the device ("... fails to create iommu-map ...")
    machine_plugs_virtio_iommu: bool
    #: How -device options reach the properties (softmmu/qdev-monitor.c: qdev_device_add):
    #: ``qemu_opts`` (5.2: each option as written, duplicates too, through the string input
    #: visitor) or ``keyval`` (6.0+: the last value of each, in QDict order, through the
    #: keyval input visitor) — the order decides which bad value is reported, the visitor
    #: its words
    option_parser: str
    #: hw/virtio/virtio-pci.c: virtio_pci_realize adds the PM capability through
    #: pci_pm_init (9.x+, which also records it as the device's PM capability) rather than
    #: calling pci_add_capability itself
    pm_init_helper: bool
    #: QEMU's refusal of a machine type it does not offer (vl.c / system/vl.c:
    #: machine_parse / select_machine), ``{name}`` standing for the -M value
    unsupported_machine: str
    #: the firmware files romfile= finds (name -> size in bytes), from the Debian packages
    #: QEMU runs with (ipxe-qemu's efi-virtio.rom, seabios's vgabios-virtio.bin)
    rom_files: Mapping[str, int] = field(default_factory=dict)
    #: What the release's code does where it has no property (-device TYPE,help lacks
    #: it, so a user cannot set it): property name -> the value its code behaves as.
    hardwired: Mapping[str, Any] = field(default_factory=dict)
    #: Why each hardwired value holds (property name -> the source that fixes it).
    hardwired_why: Mapping[str, str] = field(default_factory=dict)
    #: Error texts this release words differently from 7.2 (key -> format string); see
    #: ``text``. Each is the release's own message, as its binary prints it.
    messages: Mapping[str, str] = field(default_factory=dict)

    def text(self, key: str, default: str, **values: Any) -> str:
        """Message ``key`` in this release's words (``default``: 7.2's), formatted."""
        return self.messages.get(key, default).format(**values)

    @property
    def label(self) -> str:
        return f"QEMU {self.version}"


RELEASES: dict[str, Release] = {
    "5.2": Release(
        version="5.2", debian="1:5.2+dfsg-11+deb11u3", suite="bullseye (Debian 11)",
        seabios="1.14.0", region_names_with_device=False, endpoint_lnksta_dllla=True,
        machine_plugs_virtio_iommu=False, option_parser="qemu_opts", pm_init_helper=False,
        unsupported_machine="-M {name}: unsupported machine type",
        rom_files=_frozen({"efi-virtio.rom": 249344, "vgabios-virtio.bin": 39424}),
        hardwired=_frozen({"x-ats-page-aligned": True, "queue_reset": False, "aer": False,
                           "x-pcie-ext-tag": False, "x-pcie-err-unc-mask": False}),
        hardwired_why=_frozen({
            "x-ats-page-aligned": "hw/pci/pcie.c: pcie_ats_init always sets Page Aligned Request",
            "queue_reset": "5.2 knows no VIRTIO_F_RING_RESET (feature bit 40, added in 7.2)",
            "aer": "hw/virtio/virtio-pci.c: virtio_pci_realize adds no AER capability",
            "x-pcie-ext-tag": "hw/pci/pcie.c: pcie_cap_v1_fill sets no Extended Tag bit",
            "x-pcie-err-unc-mask": "no AER capability at all",
        }),
    ),
    "7.2": Release(
        version="7.2", debian="1:7.2+dfsg-7+deb12u18", suite="bookworm (Debian 12)",
        seabios="1.16.2", region_names_with_device=True, endpoint_lnksta_dllla=False,
        machine_plugs_virtio_iommu=True, option_parser="keyval", pm_init_helper=False,
        unsupported_machine="unsupported machine type",
        rom_files=_frozen({"efi-virtio.rom": 249344, "vgabios-virtio.bin": 39936}),
        hardwired=_frozen({"x-pcie-ext-tag": False, "x-pcie-err-unc-mask": False}),
        hardwired_why=_frozen({
            "x-pcie-ext-tag": "hw/pci/pcie.c: pcie_cap_v1_fill sets no Extended Tag bit",
            "x-pcie-err-unc-mask": "hw/pci/pcie_aer.c: pcie_aer_init leaves the "
                                   "Uncorrectable Error Mask at 0",
        }),
    ),
    "10.0": Release(
        version="10.0", debian="1:10.0.2+ds-2+deb13u1~bpo12+1",
        suite="bookworm-backports (Debian 13's 10.0)", seabios="1.16.3",
        region_names_with_device=True,
        endpoint_lnksta_dllla=False, machine_plugs_virtio_iommu=True, option_parser="keyval",
        pm_init_helper=True,
        unsupported_machine='unsupported machine type: "{name}"',
        rom_files=_frozen({"efi-virtio.rom": 249344, "vgabios-virtio.bin": 39936}),
        messages=_frozen({
            # util/block-helpers.c: check_block_size (one message for both checks)
            "blocksize-range": "parameter {name} must be a power of 2 between 512 and 2097152",
            "blocksize-pow2": "parameter {name} must be a power of 2 between 512 and 2097152",
            # hw/display/virtio-gpu.c: virtio_gpu_device_realize (rutabaga joined udmabuf)
            "gpu-blob": "need rutabaga or udmabuf for blob resources",
        }),
    ),
}


#: The release-guarded rules, in words, for ``diff``: field -> (what it does when true,
#: a word the differences it makes contain).
RULES = {
    "endpoint_lnksta_dllla": ("an endpoint behind a root port reports Data Link Layer Link "
                              "Active in Link Status (hw/pci/pcie.c: pcie_cap_fill_link_ep_usp)",
                              "lnksta"),
    "region_names_with_device": ("the virtio memory regions carry the device's name "
                                 "(virtio-pci-common-virtio-net)", "virtio-pci-"),
}


def rule_differences(a: Release, b: Release, lines: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The rules and firmware files that differ between two releases, one phrase each;
    with ``lines`` (differences), only those that can have made one of them."""
    out = []
    for name, (what, marker) in RULES.items():
        va, vb = getattr(a, name), getattr(b, name)
        if va != vb and (not lines or any(marker in x for x in lines)):
            out.append(f"{a.version if va else b.version} only: {what}")
    for rom in sorted(set(a.rom_files) | set(b.rom_files)):
        if a.rom_files.get(rom) != b.rom_files.get(rom) and (not lines or any("ROM" in x for x in lines)):
            out.append(f"{rom}: {a.rom_files.get(rom)} -> {b.rom_files.get(rom)} bytes")
    return out


def release_names() -> tuple[str, ...]:
    return tuple(RELEASES)


def release(name: Any = None) -> Release:
    """The profile of release ``name`` ("5.2", "7.2", "10.0"; None: the default)."""
    if isinstance(name, Release):
        return name
    key = DEFAULT_RELEASE if name is None else str(name).strip()
    found = RELEASES.get(key)
    if found is None:
        raise VirtioLabError(f"unknown QEMU release '{name}': virtio_lab models "
                             f"{', '.join(RELEASES)} (--qemu 5.2|7.2|10.0)")
    return found
