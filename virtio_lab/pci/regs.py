"""Register offsets and values, spelled as in Linux's pci_regs.h and virtio_pci.h.

QEMU includes the same headers (include/standard-headers/linux/pci_regs.h,
virtio_pci.h); keeping their names lets a reader jump from here to QEMU's source.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

# --- sizes (hw/pci/pci.h) ---
PCI_CONFIG_HEADER_SIZE: Final = 0x40
PCI_CONFIG_SPACE_SIZE: Final = 0x100
PCIE_CONFIG_SPACE_SIZE: Final = 0x1000

# --- type 0 header ---
PCI_VENDOR_ID: Final = 0x00
PCI_DEVICE_ID: Final = 0x02
PCI_COMMAND: Final = 0x04
PCI_STATUS: Final = 0x06
PCI_REVISION_ID: Final = 0x08
PCI_CLASS_PROG: Final = 0x09
PCI_CLASS_DEVICE: Final = 0x0A
PCI_CLASS_NETWORK_ETHERNET: Final = 0x0200  # include/hw/pci/pci_ids.h
PCI_CACHE_LINE_SIZE: Final = 0x0C
PCI_LATENCY_TIMER: Final = 0x0D
PCI_HEADER_TYPE: Final = 0x0E
PCI_BIST: Final = 0x0F
PCI_BASE_ADDRESS_0: Final = 0x10
PCI_CARDBUS_CIS: Final = 0x28
PCI_SUBSYSTEM_VENDOR_ID: Final = 0x2C
PCI_SUBSYSTEM_ID: Final = 0x2E
PCI_ROM_ADDRESS: Final = 0x30
PCI_CAPABILITY_LIST: Final = 0x34
PCI_INTERRUPT_LINE: Final = 0x3C
PCI_INTERRUPT_PIN: Final = 0x3D
PCI_MIN_GNT: Final = 0x3E
PCI_MAX_LAT: Final = 0x3F

PCI_ROM_SLOT: Final = 6
PCI_NUM_REGIONS: Final = 7

PCI_COMMAND_IO: Final = 0x1
PCI_COMMAND_MEMORY: Final = 0x2
PCI_COMMAND_MASTER: Final = 0x4
PCI_COMMAND_SERR: Final = 0x100
PCI_COMMAND_INTX_DISABLE: Final = 0x400

PCI_STATUS_INTERRUPT: Final = 0x08
PCI_STATUS_CAP_LIST: Final = 0x10
PCI_STATUS_PARITY: Final = 0x100
PCI_STATUS_SIG_TARGET_ABORT: Final = 0x800
PCI_STATUS_REC_TARGET_ABORT: Final = 0x1000
PCI_STATUS_REC_MASTER_ABORT: Final = 0x2000
PCI_STATUS_SIG_SYSTEM_ERROR: Final = 0x4000
PCI_STATUS_DETECTED_PARITY: Final = 0x8000

PCI_HEADER_TYPE_MULTI_FUNCTION: Final = 0x80

PCI_BASE_ADDRESS_SPACE_IO: Final = 0x01
PCI_BASE_ADDRESS_SPACE_MEMORY: Final = 0x00
PCI_BASE_ADDRESS_MEM_TYPE_64: Final = 0x04
PCI_BASE_ADDRESS_MEM_PREFETCH: Final = 0x08
PCI_ROM_ADDRESS_ENABLE: Final = 0x01

PCI_VENDOR_ID_REDHAT_QUMRANET: Final = 0x1AF4
PCI_SUBVENDOR_ID_REDHAT_QUMRANET: Final = 0x1AF4
PCI_SUBDEVICE_ID_QEMU: Final = 0x1100
PCI_DEVICE_ID_VIRTIO_10_BASE: Final = 0x1040


class CapID(IntEnum):
    """Standard capability ids (PCI_CAP_ID_*)."""

    PM = 0x01  # PCI_CAP_ID_PM
    MSI = 0x05  # PCI_CAP_ID_MSI
    VNDR = 0x09  # PCI_CAP_ID_VNDR
    EXP = 0x10  # PCI_CAP_ID_EXP
    MSIX = 0x11  # PCI_CAP_ID_MSIX


class ExtCapID(IntEnum):
    """PCIe extended capability ids (PCI_EXT_CAP_ID_*)."""

    ERR = 0x0001  # PCI_EXT_CAP_ID_ERR (AER)
    ATS = 0x000F  # PCI_EXT_CAP_ID_ATS


class VirtioCfgType(IntEnum):
    """virtio_pci_cap.cfg_type (VIRTIO_PCI_CAP_*_CFG)."""

    COMMON_CFG = 1
    NOTIFY_CFG = 2
    ISR_CFG = 3
    DEVICE_CFG = 4
    PCI_CFG = 5
    SHARED_MEMORY_CFG = 8


CAP_NAMES: Final = {
    CapID.PM: "Power Management",
    CapID.MSI: "MSI",
    CapID.VNDR: "Vendor Specific",
    CapID.EXP: "PCI Express",
    CapID.MSIX: "MSI-X",
}

VIRTIO_CFG_NAMES: Final = {
    VirtioCfgType.COMMON_CFG: "common",
    VirtioCfgType.NOTIFY_CFG: "notify",
    VirtioCfgType.ISR_CFG: "isr",
    VirtioCfgType.DEVICE_CFG: "device",
    VirtioCfgType.PCI_CFG: "pci-cfg",
    VirtioCfgType.SHARED_MEMORY_CFG: "shared-memory",
}

# --- virtio_pci_cap layout (include/standard-headers/linux/virtio_pci.h) ---
VIRTIO_PCI_CAP_LEN: Final = 16  # sizeof(struct virtio_pci_cap)
VIRTIO_PCI_NOTIFY_CAP_LEN: Final = 20  # sizeof(struct virtio_pci_notify_cap)
VIRTIO_PCI_CFG_CAP_LEN: Final = 20  # sizeof(struct virtio_pci_cfg_cap)
VIRTIO_PCI_CAP_BAR: Final = 4
VIRTIO_PCI_CAP_ID: Final = 5
VIRTIO_PCI_CAP_OFFSET: Final = 8
VIRTIO_PCI_CAP_LENGTH: Final = 12
VIRTIO_PCI_CAP_DATA: Final = 16  # notify_off_multiplier / pci_cfg_data

# --- MSI-X (hw/pci/msix.h, pci_regs.h) ---
MSIX_CAP_LENGTH: Final = 12
PCI_MSIX_FLAGS: Final = 2
PCI_MSIX_TABLE: Final = 4
PCI_MSIX_PBA: Final = 8
PCI_MSIX_FLAGS_QSIZE: Final = 0x07FF
PCI_MSIX_FLAGS_ENABLE: Final = 0x8000
PCI_MSIX_FLAGS_MASKALL: Final = 0x4000
PCI_MSIX_FLAGS_BIRMASK: Final = 0x7
PCI_MSIX_ENTRY_SIZE: Final = 16

# --- PCI Express capability (pci_regs.h) ---
PCI_EXP_VER2_SIZEOF: Final = 0x3C
PCI_EXP_FLAGS: Final = 2
PCI_EXP_DEVCAP: Final = 4
PCI_EXP_DEVCTL: Final = 8
PCI_EXP_DEVSTA: Final = 10
PCI_EXP_LNKCAP: Final = 12
PCI_EXP_LNKCTL: Final = 16
PCI_EXP_LNKSTA: Final = 18
PCI_EXP_DEVCAP2: Final = 36
PCI_EXP_DEVCTL2: Final = 40
PCI_EXP_LNKCAP2: Final = 44
PCI_EXP_LNKCTL2: Final = 48
PCI_EXP_LNKSTA2: Final = 50
PCI_PM_SIZEOF: Final = 8
PCI_PM_PMC: Final = 2
PCI_PM_CTRL: Final = 4

# --- virtio legacy IO header (virtio_pci.h) ---
VIRTIO_PCI_HOST_FEATURES: Final = 0
VIRTIO_PCI_GUEST_FEATURES: Final = 4
VIRTIO_PCI_QUEUE_PFN: Final = 8
VIRTIO_PCI_QUEUE_NUM: Final = 12
VIRTIO_PCI_QUEUE_SEL: Final = 14
VIRTIO_PCI_QUEUE_NOTIFY: Final = 16
VIRTIO_PCI_STATUS: Final = 18
VIRTIO_PCI_ISR: Final = 19
VIRTIO_MSI_CONFIG_VECTOR: Final = 20
VIRTIO_MSI_QUEUE_VECTOR: Final = 22
VIRTIO_PCI_VRING_ALIGN: Final = 4096  # a legacy ring's used ring starts on this boundary


def VIRTIO_PCI_CONFIG_OFF(msix_enabled: bool) -> int:
    """Where device config starts in the legacy IO BAR (virtio_pci.h)."""
    return 24 if msix_enabled else 20


VIRTIO_QUEUE_MAX: Final = 1024
VIRTQUEUE_MAX_SIZE: Final = 1024  # the most entries one virtqueue may have
QEMU_VIRTIO_PCI_QUEUE_MEM_MULT: Final = 0x1000
VIRTIO_NO_VECTOR: Final = 0xFFFF
