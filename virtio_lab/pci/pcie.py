"""The PCI Express side of a virtio-pci device behind a root port.

Mirrors hw/pci/pcie.c (pcie_endpoint_cap_init, pcie_cap_deverr_init,
pcie_cap_lnkctl_init, pcie_cap_flr_init, pcie_ats_init), hw/pci/pcie_aer.c
(pcie_aer_init) and the PM block of hw/virtio/virtio-pci.c: virtio_pci_realize.
"""

from __future__ import annotations

from . import regs
from .capability import pci_add_capability, pcie_add_capability
from .config_space import ConfigSpace

__all__ = ["pcie_endpoint_cap_init", "virtio_pci_pcie_caps"]

_SRC = "hw/pci/pcie.c"

# values from pci_regs.h / pcie_regs.h
PCI_EXP_TYPE_ENDPOINT = 0x0
PCI_EXP_DEVCAP_RBER = 0x8000
PCI_EXP_DEVCAP_EXT_TAG = 0x0020
PCI_EXP_LNKSTA_DLLLA = 0x2000
PCI_PM_CTRL_NO_SOFT_RESET = 0x0008
PCI_EXP_DEVCAP_FLR = 0x10000000
PCI_EXP_LNKCAP_ASPMS_0S = 0x400
PCI_EXP_LNK_X1 = 0x10
PCI_EXP_LNK_2_5GT = 0x1
PCI_EXP_DEVCAP2_EFF = 0x100000
PCI_EXP_DEVCAP2_EETLPP = 0x200000
PCI_EXP_DEVCTL2_EETLPPB = 0x8000
PCI_EXP_DEVCTL_ERRORS = 0x000F  # CERE | NFERE | FERE | URRE
PCI_EXP_DEVSTA_ERRORS = 0x000F  # CED | NFED | FED | URD
PCI_EXP_LNKCTL_CCC_ES = 0x00C0
PCI_EXP_DEVCTL_BCR_FLR = 0x8000
PCI_PM_CTRL_STATE_MASK = 0x0003

PCI_ERR_VER = 2
PCI_ERR_SIZEOF = 0x48
PCI_ERR_UNCOR_STATUS, PCI_ERR_UNCOR_MASK, PCI_ERR_UNCOR_SEVER = 4, 8, 12
PCI_ERR_COR_STATUS, PCI_ERR_COR_MASK, PCI_ERR_CAP = 16, 20, 24
PCI_ERR_UNC_MASK_DEFAULT = 0x00400000 | 0x02000000  # internal error | TLP prefix blocked (10.0)
PCI_ERR_UNC_SUPPORTED = 0x03FFF030  # every uncorrectable error QEMU models
PCI_ERR_UNC_SEVERITY_DEFAULT = 0x00462030
PCI_ERR_COR_SUPPORTED = 0x0000F1C1
PCI_ERR_COR_MASK_DEFAULT = 0x0000E000  # advisory non-fatal, internal, header log overflow
PCI_ERR_CAP_DEFAULT = 0x000000A0  # ECRC_GENC | ECRC_CHKC (no header log: aer_log.log_max is 0)
PCI_ERR_CAP_WMASK = 0x00000140  # ECRC_GENE | ECRC_CHKE

PCI_EXT_CAP_ATS_SIZEOF = 8
PCI_ATS_CAP, PCI_ATS_CTRL = 4, 6
PCI_ATS_CAP_PAGE_ALIGNED = 0x0020


def pcie_endpoint_cap_init(cs: ConfigSpace, extcap_init: bool, ext_tag: bool = False,
                           lnksta_dllla: bool = False) -> int:
    """Add the 60-byte PCI Express capability of an Endpoint (v2), x1 at 2.5 GT/s.

    ``ext_tag``: 10.0's x-pcie-ext-tag (pcie_cap_v1_fill: Extended Tag Field Supported);
    ``lnksta_dllla``: 5.2's pcie_cap_fill_link_ep_usp sets Data Link Layer Link Active."""
    tr = cs.tracer
    with tr.call("pcie_endpoint_cap_init", _SRC,
                 "The device sits behind a PCIe root port, so it presents itself as a PCI Express "
                 "Endpoint: add the PCI Express capability (v2), one lane at 2.5 GT/s."):
        pos = pci_add_capability(cs, regs.CapID.EXP, regs.PCI_EXP_VER2_SIZEOF, "PCI Express")
        tr.phase("Fill the PCI Express capability: Endpoint type, version 2, role-based error "
                 "reporting, link x1 2.5 GT/s, and the v2 device capabilities (extended fmt "
                 "field, end-end TLP prefix).", cap_offset=pos)
        cs.set(pos + regs.PCI_EXP_FLAGS, 2, (PCI_EXP_TYPE_ENDPOINT << 4) | 2)
        cs.set(pos + regs.PCI_EXP_DEVCAP, 4, PCI_EXP_DEVCAP_RBER | (PCI_EXP_DEVCAP_EXT_TAG if ext_tag else 0))
        cs.set(pos + regs.PCI_EXP_LNKCAP, 4, PCI_EXP_LNKCAP_ASPMS_0S | (PCI_EXP_LNK_X1 << 0) | PCI_EXP_LNK_2_5GT)
        cs.set(pos + regs.PCI_EXP_LNKSTA, 2, PCI_EXP_LNK_X1 | PCI_EXP_LNK_2_5GT
               | (PCI_EXP_LNKSTA_DLLLA if lnksta_dllla else 0))
        cs.set(pos + regs.PCI_EXP_DEVCAP2, 4, PCI_EXP_DEVCAP2_EFF | PCI_EXP_DEVCAP2_EETLPP)
        cs.set(pos + regs.PCI_EXP_DEVCTL2, 2, PCI_EXP_DEVCTL2_EETLPPB, "wmask")
        if extcap_init:
            tr.phase("Make the extended capability header at 0x100 read-only, a 'NULL' extended "
                     "capability (x-pcie-extcap-init).")
            cs.set(regs.PCI_CONFIG_SPACE_SIZE, 4, 0, "wmask")
    return pos


def virtio_pci_pcie_caps(cs: ConfigSpace, *, aer: bool, deverr: bool, lnkctl: bool, pm: bool,
                         ats: bool, ats_page_aligned: bool, flr: bool, extcap_init: bool,
                         ext_tag: bool = False, lnksta_dllla: bool = False,
                         err_unc_mask: bool = False, pm_no_soft_reset: bool = False,
                         pm_init_helper: bool = False) -> int:
    """The PCIe block of virtio_pci_realize: Express cap, PM cap, then AER/ATS/FLR options.

    Called while virtio_pci_realize runs: its own steps are phases of that call."""
    tr = cs.tracer
    exp = pcie_endpoint_cap_init(cs, extcap_init, ext_tag, lnksta_dllla)
    if pm_init_helper:  # 10.0: hw/pci/pci.c: pci_pm_init adds it and records it as the PM cap
        with tr.call("pci_pm_init", "hw/pci/pci.c",
                     "Add the Power Management capability and record it as the device's "
                     "(pm_cap, so config writes to PM Control reach pci_pm_update)."):
            pm_pos = pci_add_capability(cs, regs.CapID.PM, regs.PCI_PM_SIZEOF, "Power Management")
    else:
        pm_pos = pci_add_capability(cs, regs.CapID.PM, regs.PCI_PM_SIZEOF, "Power Management")
    tr.phase("Power Management capability: PMC = 0x0003 (version 3 of the PCI Power "
             "Management Interface, no optional power states).", cap_offset=pm_pos)
    cs.set(pm_pos + regs.PCI_PM_PMC, 2, 0x3)
    last = regs.PCI_CONFIG_SPACE_SIZE
    if aer:
        with tr.call("pcie_aer_init", "hw/pci/pcie_aer.c",
                     "aer=on: add Advanced Error Reporting at 0x100 with its default severities "
                     "and masks."):
            pcie_add_capability(cs, regs.ExtCapID.ERR, PCI_ERR_VER, last, PCI_ERR_SIZEOF,
                                "Advanced Error Reporting")
            tr.phase("Fill AER: uncorrectable status bits are write-1-to-clear, default "
                     "severities, the advisory non-fatal mask, ECRC and multiple-header "
                     "capability bits.")
            cs.set(last + PCI_ERR_UNCOR_STATUS, 4, PCI_ERR_UNC_SUPPORTED, "w1cmask")
            if err_unc_mask:  # 10.0's x-pcie-err-unc-mask
                cs.set(last + PCI_ERR_UNCOR_MASK, 4, PCI_ERR_UNC_MASK_DEFAULT)
                cs.set(last + PCI_ERR_UNCOR_MASK, 4, PCI_ERR_UNC_SUPPORTED, "wmask")
            cs.set(last + PCI_ERR_UNCOR_SEVER, 4, PCI_ERR_UNC_SEVERITY_DEFAULT)
            cs.set(last + PCI_ERR_UNCOR_SEVER, 4, PCI_ERR_UNC_SUPPORTED, "wmask")
            cs.set_bits(last + PCI_ERR_COR_STATUS, 4, PCI_ERR_COR_SUPPORTED, "w1cmask")
            cs.set(last + PCI_ERR_COR_MASK, 4, PCI_ERR_COR_MASK_DEFAULT)
            cs.set(last + PCI_ERR_COR_MASK, 4, PCI_ERR_COR_SUPPORTED, "wmask")
            cs.set(last + PCI_ERR_CAP, 4, PCI_ERR_CAP_DEFAULT)
            cs.set(last + PCI_ERR_CAP, 4, PCI_ERR_CAP_WMASK, "wmask")
        last += PCI_ERR_SIZEOF
    if deverr:
        with tr.call("pcie_cap_deverr_init", _SRC,
                     "Let the guest enable error reporting in Device Control and clear the "
                     "error bits of Device Status by writing 1 (x-pcie-deverr-init)."):
            cs.set_bits(exp + regs.PCI_EXP_DEVCTL, 2, PCI_EXP_DEVCTL_ERRORS, "wmask")
            cs.set_bits(exp + regs.PCI_EXP_DEVSTA, 2, PCI_EXP_DEVSTA_ERRORS, "w1cmask")
    if lnkctl:
        with tr.call("pcie_cap_lnkctl_init", _SRC,
                     "Make Common Clock Configuration and Extended Synch writable in Link "
                     "Control (x-pcie-lnkctl-init)."):
            cs.set_bits(exp + regs.PCI_EXP_LNKCTL, 2, PCI_EXP_LNKCTL_CCC_ES, "wmask")
    if pm_no_soft_reset:  # 10.0's x-pcie-pm-no-soft-reset: No_Soft_Reset in PM Control
        cs.set(pm_pos + regs.PCI_PM_CTRL, 2, PCI_PM_CTRL_NO_SOFT_RESET)
    if pm:
        tr.phase("Make the power state field of PM Control writable (x-pcie-pm-init).")
        cs.set(pm_pos + regs.PCI_PM_CTRL, 2, PCI_PM_CTRL_STATE_MASK, "wmask")
    if ats:
        with tr.call("pcie_ats_init", _SRC,
                     f"ats=on: add Address Translation Services at 0x{last:03x}"
                     f"{' (page-aligned requests)' if ats_page_aligned else ''}."):
            pcie_add_capability(cs, regs.ExtCapID.ATS, 1, last, PCI_EXT_CAP_ATS_SIZEOF,
                                "Address Translation Services")
            tr.phase("Fill ATS: capability word, control disabled with Enable and STU writable.")
            cs.set(last + PCI_ATS_CAP, 2, PCI_ATS_CAP_PAGE_ALIGNED if ats_page_aligned else 0)
            cs.set(last + PCI_ATS_CTRL, 2, 0)
            cs.set(last + PCI_ATS_CTRL, 2, 0x800F, "wmask")
    if flr:
        with tr.call("pcie_cap_flr_init", _SRC,
                     "Advertise Function Level Reset in Device Capabilities and make the "
                     "Initiate-FLR bit of Device Control writable (x-pcie-flr-init)."):
            cs.set_bits(exp + regs.PCI_EXP_DEVCAP, 4, PCI_EXP_DEVCAP_FLR)
            cs.set_bits(exp + regs.PCI_EXP_DEVCTL, 2, PCI_EXP_DEVCTL_BCR_FLR, "wmask")
    return exp
