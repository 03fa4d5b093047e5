"""Debian 12's Linux 6.1 meets the device: PCI core, virtio_pci_probe and the virtio driver.

A replay, access by access, of what the guest kernel does after SeaBIOS: the PCI
core's enumeration (drivers/pci/probe.c: __pci_read_base), ``virtio_pci_probe``
(drivers/virtio/virtio_pci_common.c) with ``vp_modern_probe`` /
``virtio_pci_find_capability`` / ``vp_modern_map_capability``
(virtio_pci_modern_dev.c) or ``vp_legacy_probe`` (virtio_pci_legacy_dev.c),
``register_virtio_device`` and ``virtio_dev_probe`` (drivers/virtio/virtio.c:
reset, ACKNOWLEDGE, DRIVER, feature negotiation, FEATURES_OK, DRIVER_OK),
``vp_find_vqs`` (MSI-X per queue, then shared, then INTx) with ``setup_vq`` and the
PCI core's MSI-X enable (drivers/pci/msi/msi.c: msix_capability_init).

The named guest is the Linux 6.1 cloud kernel of Debian 12 with the guest kit's
modules (virtio_pci, virtio_net, virtio_blk, virtio_scsi, virtio_rng,
virtio_balloon, virtio_console, virtio_input): its drivers' feature tables and
``validate`` hooks decide what is negotiated; a device type with no driver in the
kit stops at ACKNOWLEDGE. One vCPU. Ring addresses and MSI message data are the
kernel allocator's choice and are illustrative. Written from Linux's behaviour
(GPLv2); no code copied. Spec sections cited are VIRTIO 1.2 (§3.1.1 driver
initialization, §4.1 virtio over PCI).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..hw.device_config import device_config_field
from ..hw.guest_access import DRIVER_OK, FEATURES_OK, NO_VECTOR, GuestDevice
from ..pci import regs
from .virtio_ring import RING, SMP_CACHE_BYTES, GuestMemory, Vring

__all__ = ["Driver", "DRIVERS", "linux_probe", "LinuxResult", "ProbeFailed", "TRANSPORT_FEATURES"]

VPCI = "drivers/virtio/virtio_pci_common.c"
VMOD = "drivers/virtio/virtio_pci_modern_dev.c"
VLEG = "drivers/virtio/virtio_pci_legacy_dev.c"
#: virtio_pci's virtio_config_ops (vp_get_features, vp_finalize_features, vp_config_vector,
#: setup_vq, vp_reset) live in these, one per interface; they call the *_dev.c helpers
OPS = {True: "drivers/virtio/virtio_pci_modern.c", False: "drivers/virtio/virtio_pci_legacy.c"}
VIRTIO = "drivers/virtio/virtio.c"
PCIPROBE = "drivers/pci/probe.c"
MSI = "drivers/pci/msi/msi.c"
ACK, DRIVER, FAILED = 1, 2, 0x80
PAGE_SIZE = 4096
NCPUS = 1

#: vring_transport_features (virtio_ring.c, 6.1): the transport bits (28..40) a 6.1 guest keeps.
TRANSPORT_FEATURES = frozenset({28, 29, 32, 33, 34, 36, 40})  # INDIRECT, EVENT_IDX, VERSION_1,
# ACCESS_PLATFORM, RING_PACKED, ORDER_PLATFORM, RING_RESET (SR_IOV only on a physical function)

_NET = (0, 1, 5, 11, 14, 12, 13, 7, 8, 9, 10, 15, 16, 17, 18, 19, 21, 22, 23, 3, 2, 63, 62, 60, 57, 55)
_BLK = (2, 1, 4, 5, 6, 9, 10, 11, 12, 13, 14, 16)


@dataclass(frozen=True)
class Driver:
    """A virtio driver of the guest: module name, source file, its virtio_driver hooks
    (``.probe``, ``.validate``: the functions 6.1 installs, read from its source) and its
    feature tables."""

    name: str
    source: str
    probe: str
    validate: str | None
    features: tuple[int, ...]
    legacy_features: tuple[int, ...] | None = None

    def table(self, modern: bool) -> int:
        bits = self.features if modern or self.legacy_features is None else self.legacy_features
        return sum(1 << b for b in bits)


#: virtio device id -> the kit's driver for it (drivers' feature_table / feature_table_legacy).
DRIVERS = {
    1: Driver("virtio_net", "drivers/net/virtio_net.c", "virtnet_probe", "virtnet_validate",
              _NET, _NET + (6, 27)),  # + GSO, ANY_LAYOUT
    2: Driver("virtio_blk", "drivers/block/virtio_blk.c", "virtblk_probe", None, _BLK),
    3: Driver("virtio_console", "drivers/char/virtio_console.c", "virtcons_probe", None,
              (0, 1)),  # SIZE, MULTIPORT
    4: Driver("virtio_rng", "drivers/char/hw_random/virtio-rng.c", "virtrng_probe", None, ()),
    5: Driver("virtio_balloon", "drivers/virtio/virtio_balloon.c", "virtballoon_probe",
              "virtballoon_validate", (0, 1, 2, 3, 4, 5)),
    8: Driver("virtio_scsi", "drivers/scsi/virtio_scsi.c", "virtscsi_probe", None,
              (1, 2, 3)),  # HOTPLUG, CHANGE, T10_PI
    18: Driver("virtio_input", "drivers/virtio/virtio_input.c", "virtinput_probe", None, ()),
}


class ProbeFailed(Exception):
    """A Linux probe step returned an error (the message is the kernel's)."""


@dataclass
class LinuxResult:
    """What the guest's drivers left: the fields a real guest's sysfs shows."""

    mode: str = ""  # modern | legacy | none
    driver: str | None = None
    features: int = 0
    vectors_used: int = 0
    msix: bool = False
    error: str | None = None
    queues: list[dict] = field(default_factory=list)
    notify: dict | None = None
    cfg_size: int = 256  # pci_cfg_space_size: what sysfs 'config' shows
    kernel: object = field(default=None, repr=False, compare=False)  # the driver state, to go on


class _Linux:
    """The guest kernel's view of one function (its resources, modern mapping, vectors)."""

    def __init__(self, dev: GuestDevice, machine: str):
        self.d = dev
        self.tr = dev.tracer
        self.machine = machine
        self.res = LinuxResult()
        self.modern_bars = 0
        self.caps: dict[str, tuple[int, int, int]] = {}  # mapped structure -> (bar, offset, length)
        self.notify_mult = 0
        self.notify_len = 0
        self.notify_offset = 0
        self.notify_bar = 0
        self.msix_entries = 0
        self.bars: dict[int, tuple[str, int, int]] = {}  # index -> (kind, start, size)
        self.mem = GuestMemory(dev)
        self.vqs: list[Vring] = []  # vdev->vqs, in creation order
        self.irq_routes: dict[int, tuple[str, int | None]] = {}  # MSI-X vector -> its handler
        self.intx = False  # vp_find_vqs_intx: one shared INTx handler (vp_interrupt)
        self.virtio_id = 0
        self.state: dict = {}  # the drivers' own state once requests run (guest/requests.py)

    # -------------------------------------------------------------- helpers
    def call(self, fn: str, src: str, text: str, **kw):
        return self.tr.call(fn, src, text, **kw)

    def cfg_r(self, off: int, size: int) -> int:
        return self.d.config_read(off, size)

    def cfg_w(self, off: int, value: int, size: int) -> None:
        self.d.config_write(off, value, size)

    # ------------------------------------------------- PCI core enumeration
    def enumerate(self) -> None:
        with self.call("pci_scan_device", PCIPROBE,
                       "Debian 12's Linux 6.1 boots and its PCI core finds the function, reads its "
                       "IDs and header type, sizes its BARs again (with decoding off: "
                       "__pci_read_base) and keeps the firmware's addresses. The virtio_pci module "
                       "loads later and probes it."):
            vendor = self.cfg_r(regs.PCI_VENDOR_ID, 4)
            self.cfg_r(regs.PCI_CLASS_PROG - 1, 4)
            self.cfg_r(regs.PCI_HEADER_TYPE, 1)
            i = 0
            while i < 6:
                i = self._read_base(i)
            self._read_base(regs.PCI_ROM_SLOT)
            self.cfg_r(regs.PCI_STATUS, 2)
            if vendor & 0xFFFF != 0x1AF4:
                raise ProbeFailed("not a virtio vendor id")
            size = 256
            exp = next((c.offset for c in self.d.caps if c.id == regs.CapID.EXP), 0)
            if exp and self.machine == "q35":
                # pci_cfg_space_size_ext: the extended space answers through MMCONFIG
                self.cfg_r(0x100, 4)
                size = 4096
            self.cfg_size = size
            self.tr.phase(f"Config space size {size} bytes (pci_cfg_space_size: "
                          + ("a PCIe function behind MMCONFIG)." if size == 4096
                             else "conventional PCI or no MMCONFIG)."),
                          config_size=size)
        if exp:
            self.pci_configure_device(exp)

    def pci_configure_device(self, exp: int) -> None:
        """PCIe tuning of a new endpoint: MPS, extended tags, LTR, TLP prefixes, ASPM/common clock."""
        with self.call("pci_configure_device", PCIPROBE,
                       "The PCI core tunes a PCI Express function: Max Payload Size against its port, "
                       "extended tags, LTR, End-End TLP prefixes; ASPM and common clock on the link "
                       "(drivers/pci/pcie/aspm.c). It writes only what the capability bits call for."):
            devcap = self.cfg_r(exp + 4, 4)
            devctl = self.cfg_r(exp + 8, 2)
            mps = 128 << (devctl >> 5 & 7)
            port_mps = 128  # QEMU's pcie-root-port resets its Device Control to MPS 128 too
            notes = []
            if mps != port_mps and 128 << (devcap & 7) >= port_mps:
                self.cfg_w(exp + 8, devctl & ~0xE0 | (port_mps.bit_length() - 8) << 5, 2)
                notes.append(f"MPS set to {port_mps} like its port")
            else:
                notes.append(f"MPS {mps} on both ends: nothing to change")
            if devcap & 0x20 and not devctl & 0x100:
                self.cfg_w(exp + 8, self.cfg_r(exp + 8, 2) | 0x100, 2)
                notes.append("extended tags enabled")
            else:
                notes.append("no extended-tag support to enable" if not devcap & 0x20 else "extended tags already on")
            devcap2 = self.cfg_r(exp + 0x24, 4)
            notes.append("LTR " + ("supported (enabled only if the whole path has it)" if devcap2 & 0x800
                                   else "not supported"))
            lnksta = self.cfg_r(exp + 0x12, 2)
            notes.append("no common-clock retraining (Slot Clock Configuration clear)" if not lnksta & 0x1000
                         else "common clock configured by the port")
            notes.append("ASPM: Debian's default policy keeps what firmware set (nothing)")
            self.tr.phase("; ".join(notes) + ".")

    def _read_base(self, i: int) -> int:
        """__pci_read_base: decode off, all ones, read the size, restore, decode back on."""
        pos = regs.PCI_ROM_ADDRESS if i == regs.PCI_ROM_SLOT else regs.PCI_BASE_ADDRESS_0 + 4 * i
        cmd = self.cfg_r(regs.PCI_COMMAND, 2)
        decode = regs.PCI_COMMAND_IO | regs.PCI_COMMAND_MEMORY
        if cmd & decode:
            self.cfg_w(regs.PCI_COMMAND, cmd & ~decode, 2)
        low = self.cfg_r(pos, 4)
        mask = 0xFFFFF800 if i == regs.PCI_ROM_SLOT else 0xFFFFFFFF
        self.cfg_w(pos, low | mask, 4)
        sz = self.cfg_r(pos, 4)
        self.cfg_w(pos, low, 4)
        nxt = i + 1
        is64 = i != regs.PCI_ROM_SLOT and not low & 1 and low & 6 == 4
        high = szhi = 0
        if is64:
            high = self.cfg_r(pos + 4, 4)
            self.cfg_w(pos + 4, 0xFFFFFFFF, 4)
            szhi = self.cfg_r(pos + 4, 4)
            self.cfg_w(pos + 4, high, 4)
            nxt = i + 2
        if cmd & decode:
            self.cfg_w(regs.PCI_COMMAND, cmd, 2)
        if i == regs.PCI_ROM_SLOT:
            size = (~(sz & 0xFFFFF800) + 1) & 0xFFFFFFFF if sz & 0xFFFFF800 else 0
            if size:
                self.bars[i] = ("rom", low & 0xFFFFF800, size)
        elif low & 1:
            size = (~(sz & 0xFFFFFFFC) + 1) & 0xFFFF if sz & 0xFFFFFFFC else 0
            if size:
                self.bars[i] = ("io", low & 0xFFFFFFFC, size)
        else:
            full = (szhi << 32 | sz) if is64 else sz
            m = (0xFFFFFFFF << 32 | 0xFFFFFFF0) if is64 else 0xFFFFFFF0
            size = ((~(full & m)) + 1) & ((1 << 64) - 1 if is64 else 0xFFFFFFFF) if full & m else 0
            if size:
                self.bars[i] = ("mem", (high << 32 | low) & ~0xF, size)
        return nxt

    # --------------------------------------------------------- virtio_pci
    def virtio_pci_probe(self) -> None:
        with self.call("virtio_pci_probe", VPCI,
                       "virtio-pci's id table matches every 1af4 device (PCI_ANY_ID), but its probe "
                       "keeps only what the modern probe (device ids 0x1000-0x107f) or the legacy "
                       "probe (0x1000-0x103f, revision 0) accepts: enable it, try the modern probe, "
                       "fall back to the legacy one, set Bus Master, register the virtio device "
                       "(virtio spec 1.2 §4.1.2 discovery)."):
            self.pci_enable_device()
            try:
                mode = self.vp_modern_probe()
                if mode is None:
                    mode = self.vp_legacy_probe()
                if mode is None:
                    raise ProbeFailed("no usable interface: neither the modern nor the legacy probe claimed it")
            except ProbeFailed as err:
                self.res.error = str(err)
                self.res.mode = "none"
                with self.call("pci_disable_device", "drivers/pci/pci.c",
                               f"The probe failed ({err}): the PCI core turns Bus Master off again."):
                    cmd = self.cfg_r(regs.PCI_COMMAND, 2)
                    if cmd & regs.PCI_COMMAND_MASTER:
                        self.cfg_w(regs.PCI_COMMAND, cmd & ~regs.PCI_COMMAND_MASTER, 2)
                return
            self.res.mode = mode
            with self.call("pci_set_master", "drivers/pci/pci.c",
                           "Let the device do DMA: Command |= Bus Master; x86's pcibios_set_master "
                           "also asks for a latency timer of 64."):
                cmd = self.cfg_r(regs.PCI_COMMAND, 2)
                if not cmd & regs.PCI_COMMAND_MASTER:
                    self.cfg_w(regs.PCI_COMMAND, cmd | regs.PCI_COMMAND_MASTER, 2)
                lat = self.cfg_r(regs.PCI_LATENCY_TIMER, 1)
                if lat < 16:
                    # QEMU's type 0 header has no writable latency timer: the 64 does not stick
                    self.cfg_w(regs.PCI_LATENCY_TIMER, 64, 1)
            self.register_virtio_device()

    def pci_enable_device(self) -> None:
        with self.call("pci_enable_device", "drivers/pci/pci.c",
                       "pci_enable_resources: Command needs IO and/or Memory for the BARs the "
                       "device has (firmware already set both); INTx stays enabled for now."):
            cmd = self.cfg_r(regs.PCI_COMMAND, 2)
            want = cmd
            for kind, _, _ in self.bars.values():
                want |= regs.PCI_COMMAND_IO if kind == "io" else regs.PCI_COMMAND_MEMORY if kind == "mem" else 0
            if want != cmd:
                self.cfg_w(regs.PCI_COMMAND, want, 2)
            if self.cfg_r(regs.PCI_INTERRUPT_PIN, 1):
                cmd = self.cfg_r(regs.PCI_COMMAND, 2)
                if cmd & regs.PCI_COMMAND_INTX_DISABLE:
                    self.cfg_w(regs.PCI_COMMAND, cmd & ~regs.PCI_COMMAND_INTX_DISABLE, 2)

    def _find_cap(self, cap_id: int, start: int = 0) -> int:
        """pci_find_capability / pci_find_next_capability: walk the list (at most 48 hops)."""
        if not start:
            if not self.cfg_r(regs.PCI_STATUS, 2) & regs.PCI_STATUS_CAP_LIST:
                return 0
            pos = self.cfg_r(regs.PCI_CAPABILITY_LIST, 1)
        else:
            pos = self.cfg_r(start + 1, 1)
        for _ in range(48):
            if pos < 0x40:
                return 0
            pos &= ~3
            ent = self.cfg_r(pos, 2)
            cid = ent & 0xFF
            if cid == 0xFF:
                return 0
            if cid == cap_id:
                return pos
            pos = ent >> 8
        return 0

    def find_capability(self, cfg_type: int, name: str) -> int:
        """virtio_pci_find_capability: the first vendor cap of this type whose BAR exists."""
        with self.call("virtio_pci_find_capability", VMOD,
                       f"Walk the vendor capabilities in list order for the first {name} "
                       f"(cfg_type {cfg_type}) whose BAR is < 6 and implemented (virtio spec §4.1.4: "
                       f"the driver uses the first one it can)."):
            pos = self._find_cap(regs.CapID.VNDR)
            while pos:
                typ = self.cfg_r(pos + 3, 1)
                bar = self.cfg_r(pos + regs.VIRTIO_PCI_CAP_BAR, 1)
                if bar < 6 and typ == cfg_type and bar in self.bars and self.bars[bar][0] in ("io", "mem"):
                    self.modern_bars |= 1 << bar
                    self.tr.phase(f"{name} found at 0x{pos:02x} (BAR{bar}).", found=pos, bar=bar)
                    return pos
                pos = self._find_cap(regs.CapID.VNDR, pos)
            self.tr.phase(f"No usable {name} capability.", found=0)
            return 0

    def map_capability(self, off: int, minlen: int, align: int, start: int, size: int,
                       what: str) -> tuple[int, int, int]:
        """vp_modern_map_capability: read bar/offset/length and apply Linux's checks."""
        with self.call("vp_modern_map_capability", VMOD,
                       f"Map the {what} structure: at least {minlen} byte(s), offset aligned to {align}, "
                       f"inside its BAR; map at most {size:#x} bytes."):
            bar = self.cfg_r(off + regs.VIRTIO_PCI_CAP_BAR, 1)
            offset = self.cfg_r(off + regs.VIRTIO_PCI_CAP_OFFSET, 4)
            length = self.cfg_r(off + regs.VIRTIO_PCI_CAP_LENGTH, 4)
            if length <= start:
                raise ProbeFailed(f"virtio_pci: bad capability len {length} (>{start} expected)")
            if length - start < minlen:
                raise ProbeFailed(f"virtio_pci: bad capability len {length} (>={minlen} expected)")
            if (offset + start) & (align - 1):
                raise ProbeFailed(f"virtio_pci: offset {offset + start} not aligned to {align}")
            bsize = self.bars.get(bar, ("", 0, 0))[2]
            if offset + start + minlen > bsize:
                raise ProbeFailed(f"virtio_pci: map virtio {minlen}@{offset + start} out of range on "
                                  f"bar {bar} length {bsize}")
            length = min(length - start, size)
            self.tr.phase(f"Mapped {length:#x} bytes at BAR{bar}+0x{offset + start:x}.",
                          bar=bar, offset=offset, length=length)
            return bar, offset + start, length

    def vp_modern_probe(self) -> str | None:
        with self.call("vp_modern_probe", VMOD,
                       "Modern probe: device id 0x1000-0x107f, then find COMMON (else leave it to the "
                       "legacy driver), ISR and NOTIFY (required), DEVICE (optional), and map them "
                       "(virtio spec §4.1.4)."):
            did = self.cfg_r(regs.PCI_DEVICE_ID, 2)
            if not 0x1000 <= did <= 0x107F:
                self.tr.annotate(result="-ENODEV")
                return None
            vid = self.cfg_r(regs.PCI_SUBSYSTEM_ID, 2) if did < 0x1040 else did - 0x1040
            self.virtio_id = vid
            self.tr.phase(f"Virtio device id {vid}: "
                          + (f"a transitional id (0x{did:04x} < 0x1040) takes it from the "
                             f"subsystem device id, as the legacy driver does (virtio spec 1.2 "
                             f"§4.1.2.1)." if did < 0x1040 else
                             f"device id 0x{did:04x} - 0x1040."), virtio_id=vid)
            common = self.find_capability(regs.VirtioCfgType.COMMON_CFG, "COMMON_CFG")
            if not common:
                self.tr.phase("dev_info: virtio_pci: leaving for legacy driver (no COMMON_CFG "
                              "capability).")
                return None
            isr = self.find_capability(regs.VirtioCfgType.ISR_CFG, "ISR_CFG")
            notify = self.find_capability(regs.VirtioCfgType.NOTIFY_CFG, "NOTIFY_CFG")
            if not isr or not notify:
                raise ProbeFailed(f"virtio_pci: missing capabilities {common}/{isr}/{notify}")
            device = self.find_capability(regs.VirtioCfgType.DEVICE_CFG, "DEVICE_CFG")
            self.caps["common"] = self.map_capability(common, 56, 4, 0, 60, "common configuration")
            self.caps["isr"] = self.map_capability(isr, 1, 1, 0, 1, "ISR")
            self.notify_mult = self.cfg_r(notify + regs.VIRTIO_PCI_CAP_DATA, 4)
            nlen = self.cfg_r(notify + regs.VIRTIO_PCI_CAP_LENGTH, 4)
            noff = self.cfg_r(notify + regs.VIRTIO_PCI_CAP_OFFSET, 4)
            if nlen + noff % PAGE_SIZE <= PAGE_SIZE:
                self.notify_bar, self.notify_offset, self.notify_len = \
                    self.map_capability(notify, 2, 2, 0, nlen, "notification")
            else:
                # a window larger than a page: each queue's 2 bytes get mapped on their own
                self.notify_bar = self.cfg_r(notify + regs.VIRTIO_PCI_CAP_BAR, 1)
                self.notify_offset, self.notify_len = noff, nlen
            if device:
                self.caps["device"] = self.map_capability(device, 0, 4, 0, PAGE_SIZE, "device configuration")
            return "modern"


    def vp_legacy_probe(self) -> str | None:
        with self.call("vp_legacy_probe", VLEG,
                       "Legacy probe: device id 0x1000-0x103f and revision 0 (VIRTIO_PCI_ABI_VERSION); "
                       "map all of BAR0, the IO header (virtio spec §4.1.4.10)."):
            did = self.cfg_r(regs.PCI_DEVICE_ID, 2)
            if not 0x1000 <= did <= 0x103F or self.cfg_r(regs.PCI_REVISION_ID, 1) != 0:
                self.tr.annotate(result="-ENODEV")
                return None
            if 0 not in self.bars or self.bars[0][0] != "io":
                raise ProbeFailed("BAR0 is not an IO BAR holding the legacy header")
            self.virtio_id = self.cfg_r(regs.PCI_SUBSYSTEM_ID, 2)
            return "legacy"

    # --------------------------------------------------- virtio core
    @property
    def modern(self) -> bool:
        return self.res.mode == "modern"

    def get_status(self) -> int:
        if self.modern:
            return self.d.common_read("device_status")
        return self.d.bar_read(0, regs.VIRTIO_PCI_STATUS, 1)

    def set_status(self, v: int) -> None:
        if self.modern:
            self.d.common_write("device_status", v)
        else:
            self.d.bar_write(0, regs.VIRTIO_PCI_STATUS, v, 1)

    def add_status(self, bit: int, fn: str, text: str, source: str = VIRTIO) -> None:
        with self.call(fn, source, text):
            self.set_status(self.get_status() | bit)

    def register_virtio_device(self) -> None:
        with self.call("register_virtio_device", VIRTIO,
                       "Reset the device (write 0, wait until status reads 0), then say ACKNOWLEDGE: "
                       "the guest has noticed it (virtio spec §3.1.1 steps 1-2)."):
            with self.call("vp_reset", OPS[self.modern],
                           "Reset: device_status = 0, then read it back until it is 0 (the spec's "
                           "MUST, which also flushes the write)."):
                self.set_status(0)
                self.get_status()
            self.add_status(ACK, "virtio_add_status", "status |= ACKNOWLEDGE (1).")
        drv = DRIVERS.get(self.virtio_id)
        if drv is None:
            self.d._note("device_add", "drivers/base/core.c",
                         f"No driver for virtio device type {self.virtio_id} in this guest (Debian 12's "
                         f"cloud kernel + the kit's modules): the device stays at ACKNOWLEDGE.")
            return
        self.res.driver = drv.name
        self.virtio_dev_probe(drv)

    def get_features(self) -> int:
        with self.call("vp_get_features", OPS[self.modern],
                       "Read what the device offers: device_feature for select 0 and 1 "
                       "(legacy: the 32-bit host features register)."):
            if self.modern:
                self.d.common_write("device_feature_select", 0)
                lo = self.d.common_read("device_feature")
                self.d.common_write("device_feature_select", 1)
                hi = self.d.common_read("device_feature")
                return lo | hi << 32
            return self.d.bar_read(0, regs.VIRTIO_PCI_HOST_FEATURES, 4)

    def finalize(self, features: int) -> int:
        with self.call("vp_finalize_features", OPS[self.modern],
                       "vring_transport_features drops transport bits 6.1 does not know; a modern "
                       "device must have VERSION_1; write the features (virtio spec §3.1.1 step 5)."):
            for b in range(28, 41):
                if b not in TRANSPORT_FEATURES:
                    features &= ~(1 << b)
            if self.modern:
                if not features >> 32 & 1:
                    raise ProbeFailed("virtio: device uses modern interface but does not have VIRTIO_F_VERSION_1")
                self.d.common_write("driver_feature_select", 0)
                self.d.common_write("driver_feature", features & 0xFFFFFFFF)
                self.d.common_write("driver_feature_select", 1)
                self.d.common_write("driver_feature", features >> 32)
            else:
                self.d.bar_write(0, regs.VIRTIO_PCI_GUEST_FEATURES, features & 0xFFFFFFFF, 4)
            self.tr.phase(f"Driver features written: 0x{features:x}.", features=f"0x{features:x}")
            return features

    def read_config(self, off: int, size: int) -> int:
        """virtio_cread: device config through the modern DEVICE region or the legacy BAR."""
        if self.modern:
            if "device" not in self.caps:
                return 0
            bar, base, _ = self.caps["device"]
            return self.d.bar_read(bar, base + off, size)
        return self.d.bar_read(0, regs.VIRTIO_PCI_CONFIG_OFF(self.d.msix_enabled) + off, size)

    def field(self, name: str) -> tuple[int, int]:
        """(offset, width) of this device type's config field ``name`` (hw/device_config.py)."""
        return device_config_field(self.virtio_id, name)

    def cread(self, name: str) -> int:
        """virtio_cread(vdev, struct virtio_X_config, name, ...): one device-config field by name."""
        return self.read_config(*self.field(name))

    def virtio_dev_probe(self, drv: Driver) -> None:
        with self.call("virtio_dev_probe", VIRTIO,
                       f"The {drv.name} driver matches: DRIVER, read the device's features, keep those "
                       f"in the driver's table (plus the transport bits), let the driver validate, "
                       f"FEATURES_OK, run the driver's probe, DRIVER_OK (virtio spec §3.1.1)."):
            self.add_status(DRIVER, "virtio_add_status", "status |= DRIVER (2): a driver knows how to drive it.")
            offered = self.get_features()
            table = drv.table(bool(offered >> 32 & 1))
            feats = offered & table
            for b in range(28, 41):
                if offered >> b & 1:
                    feats |= 1 << b
            try:
                feats = self.res.features = self.finalize(feats)  # dev->features, what sysfs shows
                before = feats
                feats = self.validate(drv, feats)
                if feats != before:
                    feats = self.res.features = self.finalize(feats)
                if feats >> 32 & 1:
                    self.add_status(FEATURES_OK, "virtio_features_ok",
                                    "status |= FEATURES_OK (8), then read it back: the device accepts the "
                                    "subset (virtio spec §3.1.1 steps 5-6).")
                    if not self.get_status() & FEATURES_OK:
                        raise ProbeFailed(f"virtio: device refuses features: {feats:x}")
                self.driver_probe(drv)
                if not self.get_status() & DRIVER_OK:
                    self.device_ready()
            except ProbeFailed as err:
                self.res.error = str(err)
                self.add_status(FAILED, "virtio_add_status", f"The probe failed ({err}): status |= FAILED (0x80).")

    def validate(self, drv: Driver, feats: int) -> int:
        if drv.validate is None:
            return feats
        with self.call(drv.validate, drv.source, "The driver's validate hook may drop features it cannot use here."):
            if drv.name == "virtio_balloon":
                # no init_on_free / page poisoning in Debian's default boot; no indirect
                # descriptors (page reporting must not allocate); no IOMMU bypass
                feats &= ~((1 << 4) | (1 << 28) | (1 << 33))
            elif drv.name == "virtio_net":
                ctrl = feats >> 17 & 1
                for b in (18, 19, 21, 22, 23, 60, 57, 55):
                    if feats >> b & 1 and not ctrl:
                        raise ProbeFailed(f"virtio_net: device advertises feature {b} but not VIRTIO_NET_F_CTRL_VQ")
                if feats >> 3 & 1 and self.cread("mtu") < 68:
                    feats &= ~(1 << 3)
                if feats >> 62 & 1 and not feats >> 5 & 1:
                    feats &= ~(1 << 62)
            self.tr.phase(f"After validate: 0x{feats:x}.", features=f"0x{feats:x}")
            return feats

    def device_ready(self) -> None:
        self.add_status(DRIVER_OK, "virtio_device_ready",
                        "status |= DRIVER_OK (4): the driver is live (virtio spec §3.1.1 step 8).",
                        source="include/linux/virtio_config.h")

    # ------------------------------------------------------------ drivers
    def vq_plan(self, drv: Driver) -> list[tuple[str, bool]]:
        """The virtqueues the driver's find_vqs asks for: (name, has a callback)."""
        f = self.res.features
        n = drv.name
        if n == "virtio_net":
            pairs = 1
            if (f >> 22 & 1 or f >> 60 & 1) and f >> 17 & 1:
                pairs = self.cread("max_virtqueue_pairs")
                if not 1 <= pairs <= 0x8000:
                    pairs = 1
            vqs = [v for i in range(pairs) for v in ((f"input.{i}", True), (f"output.{i}", True))]
            return vqs + ([("control", False)] if f >> 17 & 1 else [])
        if n == "virtio_blk":
            nq = self.cread("num_queues") if f >> 12 & 1 else 1
            if not nq:
                raise ProbeFailed("virtio_blk: MQ advertised but zero queues reported")
            return [(f"req.{i}", True) for i in range(min(nq, NCPUS))]
        if n == "virtio_scsi":
            nq = min(self.cread("num_queues") or 1, NCPUS)
            return [("control", True), ("event", True)] + [(f"request{i}", True) for i in range(nq)]
        if n == "virtio_console":
            ports = 1
            if f >> 1 & 1:
                ports = self.cread("max_nr_ports")
                if not 0 < ports <= 0x8000:
                    raise ProbeFailed(f"virtio_console: invalid max_nr_ports {ports}")
            vqs = [("input", True), ("output", True)]
            if f >> 1 & 1:
                vqs += [("control-i", True), ("control-o", False)]
                vqs += [v for _ in range(1, ports) for v in (("input", True), ("output", True))]
            return vqs
        if n == "virtio_rng":
            return [("input", True)]
        if n == "virtio_balloon":
            vqs = [("inflate", True), ("deflate", True)]
            if f >> 1 & 1:
                vqs.append(("stats", True))
            if f >> 3 & 1:
                vqs.append(("free_page_vq", False))
            if f >> 5 & 1:
                vqs.append(("reporting_vq", True))
            return vqs
        if n == "virtio_input":
            return [("events", True), ("status", True)]
        return []

    def driver_probe(self, drv: Driver) -> None:
        with self.call(drv.probe, drv.source,
                       f"{drv.name}'s probe: read the device config it needs, then find_vqs sets up "
                       f"the virtqueues and their interrupts."):
            f = self.res.features
            if drv.name == "virtio_net" and f >> 5 & 1:
                self.cread_many(*self.field("mac"), "the MAC address")  # virtio_cread_bytes
            vqs = self.vq_plan(drv)
            self.find_vqs(vqs)
            if drv.name == "virtio_blk":
                self.cread_many(*self.field("capacity"), "capacity (512-byte sectors)", width=4)  # virtblk_update_capacity
                if f >> 6 & 1:  # BLK_SIZE: blk_validate_block_size, 512..PAGE_SIZE, a power of 2
                    bs = self.cread("blk_size")
                    if bs < 512 or bs > PAGE_SIZE or bs & (bs - 1):
                        raise ProbeFailed(f"virtio_blk: invalid block size: 0x{bs:x}")
            if drv.name in ("virtio_net", "virtio_blk", "virtio_scsi", "virtio_console", "virtio_balloon",
                            "virtio_rng"):
                # these drivers call virtio_device_ready themselves before using their queues
                self.device_ready()
            if drv.name == "virtio_rng":
                # probe_common: "we always have a pending entropy request"
                from .requests import request_entropy
                request_entropy(self)

    def cread_many(self, off: int, n: int, what: str, width: int = 1) -> int:
        """__virtio_cread_many: read config_generation around the bytes, retry if it moved."""
        with self.call("__virtio_cread_many", "include/linux/virtio_config.h",
                       f"Read {what}: {n} bytes of device config"
                       + (", bracketed by config_generation reads so a change in between is "
                          "noticed (virtio spec 1.2 §2.5.1)." if self.modern else
                          " in one pass: the legacy interface has no generation counter (its "
                          "config ops have no .generation), so a change in between goes "
                          "unnoticed.")):
            for _ in range(4):
                gen = self.d.common_read("config_generation") if self.modern else 0
                value = 0
                for i in range(0, n, width):
                    value |= self.read_config(off + i, width) << (8 * i)
                if not self.modern or self.d.common_read("config_generation") == gen:
                    return value
            return value

    def find_vqs(self, vqs: list[tuple[str, bool]]) -> None:
        with self.call("vp_find_vqs", VPCI,
                       f"{len(vqs)} virtqueue(s) ({', '.join(n for n, _ in vqs)}): try MSI-X with one "
                       f"vector per queue with a callback plus one for config changes, then MSI-X with "
                       f"two (config + shared), then INTx (virtio spec §4.1.5.1.2)."):
            cap = self.d.msix_cap
            self.msix_entries = (self.cfg_r(cap + regs.PCI_MSIX_FLAGS, 2) & regs.PCI_MSIX_FLAGS_QSIZE) + 1 if cap else 0
            per_vq = 1 + sum(1 for _, cb in vqs if cb)
            for nvec, shared in ((per_vq, False), (2, True)):
                if self.msix_entries >= nvec:
                    self.find_vqs_msix(vqs, nvec, shared)
                    break
                self.d._note("pci_alloc_irq_vectors", "include/linux/pci.h",
                             f"{nvec} MSI-X vectors wanted, the table has {self.msix_entries}: "
                             f"-ENOSPC, try the next way.")
            else:
                self.find_vqs_intx(vqs)
            if self.modern:
                with self.call("vp_modern_find_vqs", OPS[True],
                               "Only now enable every queue: queue_enable = 1 cannot be undone "
                               "except by a reset (virtio spec §4.1.4.3)."):
                    for i in range(len(vqs)):
                        self.d.common_write("queue_select", i)
                        self.d.common_write("queue_enable", 1)

    def find_vqs_msix(self, vqs, nvec: int, shared: bool) -> None:
        with self.call("vp_find_vqs_msix", VPCI,
                       f"MSI-X with {nvec} vectors ("
                       + ("config + one shared by all queues)." if shared else "config + one per queue).")):
            self.msix_capability_init(nvec)
            self.res.msix = True
            self.res.vectors_used = nvec
            self.request_irq(0, "config")
            v = self.config_vector(0)
            if v == NO_VECTOR:
                raise ProbeFailed("virtio_pci: config vector refused (-EBUSY)")
            self.irq_routes[0] = ("config", None)
            if shared:
                self.request_irq(1, "virtqueues")
                self.irq_routes[1] = ("vp_vring_interrupt", None)
            nxt = 1
            for i, (name, cb) in enumerate(vqs):
                vec = NO_VECTOR if not cb else 1 if shared else nxt
                if cb and not shared:
                    nxt += 1
                self.setup_vq(i, name, vec, cb)
                if cb and not shared:
                    self.request_irq(vec, name)
                    self.irq_routes[vec] = ("vring_interrupt", i)

    def find_vqs_intx(self, vqs) -> None:
        with self.call("vp_find_vqs_intx", VPCI,
                       "No MSI-X: one shared INTx handler that reads the ISR (reading clears it) to see "
                       "whether a queue or the config changed (virtio spec §4.1.4.5)."):
            self.intx = True
            for i, (name, cb) in enumerate(vqs):
                self.setup_vq(i, name, NO_VECTOR, cb)

    def msix_capability_init(self, nvec: int) -> None:
        d, cap = self.d, self.d.msix_cap
        with self.call("msix_capability_init", MSI,
                       f"Enable MSI-X with every vector masked, program {nvec} entries, disable INTx "
                       f"(Command bit 10), mask the whole table, then clear Function Mask."):
            ctrl = self.cfg_r(cap + regs.PCI_MSIX_FLAGS, 2)
            self.cfg_w(cap + regs.PCI_MSIX_FLAGS, ctrl | regs.PCI_MSIX_FLAGS_MASKALL | regs.PCI_MSIX_FLAGS_ENABLE, 2)
            self.cfg_r(cap + regs.PCI_MSIX_FLAGS, 2)
            table = self.cfg_r(cap + regs.PCI_MSIX_TABLE, 4)
            self.table_bar, self.table_off = table & 7, table & ~7
            for v in range(nvec):
                d.bar_read(self.table_bar, self.table_off + 16 * v + 12, 4)
            with self.call("pci_intx", "drivers/pci/pci.c", "pci_intx_for_msi: Command |= INTx Disable."):
                cmd = self.cfg_r(regs.PCI_COMMAND, 2)
                if not cmd & regs.PCI_COMMAND_INTX_DISABLE:
                    self.cfg_w(regs.PCI_COMMAND, cmd | regs.PCI_COMMAND_INTX_DISABLE, 2)
            for v in range(self.msix_entries):
                d.bar_write(self.table_bar, self.table_off + 16 * v + 12, 1, 4)
            ctrl = self.cfg_r(cap + regs.PCI_MSIX_FLAGS, 2)
            self.cfg_w(cap + regs.PCI_MSIX_FLAGS, ctrl & ~regs.PCI_MSIX_FLAGS_MASKALL, 2)

    def request_irq(self, v: int, name: str) -> None:
        with self.call("request_irq", "include/linux/interrupt.h",
                       f"Handler for vector {v} ({name}): the MSI message (x86 address 0xfee01004: "
                       f"CPU 0, logical mode; data = the CPU vector the kernel picked) is written, "
                       f"then the entry is unmasked."):
            base = self.table_off + 16 * v
            self.d.bar_write(self.table_bar, base, 0xFEE01004, 4)
            self.d.bar_write(self.table_bar, base + 4, 0, 4)
            self.d.bar_write(self.table_bar, base + 8, 0x26 + v, 4)
            self.d.bar_write(self.table_bar, base + 12, 0, 4)

    def config_vector(self, v: int) -> int:
        with self.call("vp_config_vector", OPS[self.modern],
                       f"Route config-change interrupts to vector {v} and read it back: NO_VECTOR "
                       f"would mean the device refused (virtio spec §4.1.5.1.2)."):
            if self.modern:
                self.d.common_write("msix_config", v)
                return self.d.common_read("msix_config")
            self.d.bar_write(0, regs.VIRTIO_MSI_CONFIG_VECTOR, v, 2)
            return self.d.bar_read(0, regs.VIRTIO_MSI_CONFIG_VECTOR, 2)

    def create_vring(self, i: int, name: str, num: int, callback: bool, ctx: bool = False) -> Vring:
        """vring_create_virtqueue → vring_create_virtqueue_split: the rings in zeroed pages."""
        align = SMP_CACHE_BYTES if self.modern else regs.VIRTIO_PCI_VRING_ALIGN
        f = self.res.features
        vq = Vring(self.mem, i, num, align, name, callback, event=bool(f >> 29 & 1),
                   indirect=bool(f >> 28 & 1) and not ctx)
        with self.call("vring_create_virtqueue_split", RING,
                       f"Allocate queue {i}'s split ring for {num} entries: {vq.size} bytes "
                       f"(vring_size with {align}-byte alignment"
                       + (": SMP_CACHE_BYTES for a modern device" if self.modern else
                          ": the legacy VIRTIO_PCI_VRING_ALIGN") + ") in zeroed pages from "
                       f"alloc_pages_exact at 0x{vq.desc:x} (the allocator's choice: illustrative). "
                       f"Descriptor table 0x{vq.desc:x}, available ring 0x{vq.avail:x}, used ring "
                       f"0x{vq.used:x} (vring_init). Every descriptor is on the free list "
                       f"(desc_extra[i].next = i + 1, driver-private)"
                       + ("" if callback else "; no callback, so avail_flags_shadow gets "
                          "VRING_AVAIL_F_NO_INTERRUPT") + ".",
                       queue=i, desc=vq.desc, avail=vq.avail, used=vq.used, num=num):
            vq.init_split()
        self.vqs.append(vq)
        return vq

    def setup_vq(self, i: int, name: str, vec: int, callback: bool = True) -> None:
        d = self.d
        if not self.modern:
            with self.call("setup_vq", OPS[False],
                           f"Queue {i} ({name}), legacy: read its fixed size and check it is not "
                           f"active (PFN 0), allocate the ring, give its page frame number, then "
                           f"its vector."):
                d.bar_write(0, regs.VIRTIO_PCI_QUEUE_SEL, i, 2)  # vp_legacy_get_queue_size
                num = d.bar_read(0, regs.VIRTIO_PCI_QUEUE_NUM, 2)
                d.bar_write(0, regs.VIRTIO_PCI_QUEUE_SEL, i, 2)  # vp_legacy_get_queue_enable
                if not num or d.bar_read(0, regs.VIRTIO_PCI_QUEUE_PFN, 4):
                    raise ProbeFailed(f"setup_vq: queue {i} unavailable")
                vq = self.create_vring(i, name, num, callback, self.ctx(name))
                d.bar_write(0, regs.VIRTIO_PCI_QUEUE_SEL, i, 2)  # vp_legacy_set_queue_address
                d.bar_write(0, regs.VIRTIO_PCI_QUEUE_PFN, vq.desc >> 12, 4)
                vq.notify_address = self.bars[0][1] + regs.VIRTIO_PCI_QUEUE_NOTIFY
                vq.notify_at = (0, regs.VIRTIO_PCI_QUEUE_NOTIFY)
                if vec != NO_VECTOR:
                    d.bar_write(0, regs.VIRTIO_PCI_QUEUE_SEL, i, 2)  # vp_legacy_queue_vector
                    d.bar_write(0, regs.VIRTIO_MSI_QUEUE_VECTOR, vec, 2)
                    if d.bar_read(0, regs.VIRTIO_MSI_QUEUE_VECTOR, 2) == NO_VECTOR:
                        raise ProbeFailed(f"setup_vq: vector {vec} refused (-EBUSY)")
                vq.vector = vec
                self.res.queues.append({"index": i, "name": name, "size": num, "vector": vec})
            return
        with self.call("setup_vq", OPS[True],
                       f"Queue {i} ({name}): read its size (0 = no such queue; a power of 2) and check "
                       f"it is not enabled yet, allocate the split ring, then vp_active_vq writes its "
                       f"size, its three ring addresses and its MSI-X vector; last, its notify address "
                       f"(virtio spec §4.1.5.1.3)."):
            if i >= d.common_read("num_queues"):
                raise ProbeFailed(f"setup_vq: queue {i} beyond num_queues")
            d.common_write("queue_select", i)  # vp_modern_get_queue_size
            num = d.common_read("queue_size")
            d.common_write("queue_select", i)  # vp_modern_get_queue_enable
            if not num or d.common_read("queue_enable"):
                raise ProbeFailed(f"setup_vq: queue {i} unavailable (-ENOENT)")
            if num & (num - 1):
                raise ProbeFailed(f"setup_vq: bad queue size {num}")
            vq = self.create_vring(i, name, num, callback, self.ctx(name))
            with self.call("vp_active_vq", "drivers/virtio/virtio_pci_modern.c",
                           f"Tell the device where queue {i} lives: queue_size, then queue_desc, "
                           f"queue_driver (avail) and queue_device (used), each as two 32-bit halves"
                           + (f", then vector {vec}" if vec != NO_VECTOR else "") + "."):
                d.common_write("queue_select", i)  # vp_modern_set_queue_size
                d.common_write("queue_size", num)
                d.common_write("queue_select", i)  # vp_modern_queue_address
                for reg, addr in (("desc", vq.desc), ("avail", vq.avail), ("used", vq.used)):
                    d.common_write(f"queue_{reg}_lo", addr & 0xFFFFFFFF)
                    d.common_write(f"queue_{reg}_hi", addr >> 32)
                if vec != NO_VECTOR:
                    d.common_write("queue_select", i)  # vp_modern_queue_vector
                    d.common_write("queue_msix_vector", vec)
                    if d.common_read("queue_msix_vector") == NO_VECTOR:
                        raise ProbeFailed(f"setup_vq: vector {vec} refused (-EBUSY)")
            vq.vector = vec
            d.common_write("queue_select", i)  # vp_modern_get_queue_notify_off
            off = d.common_read("queue_notify_off")
            where = off * self.notify_mult
            if self.notify_len and where + 2 > self.notify_len:
                raise ProbeFailed(f"virtio_pci: bad notification offset {off} (x {self.notify_mult}) "
                                  f"for queue {i} > {self.notify_len}")
            base = self.bars.get(self.notify_bar, ("", 0, 0))[1]
            addr = base + self.notify_offset + where
            vq.notify_address = addr
            vq.notify_at = (self.notify_bar, self.notify_offset + where)
            self.tr.phase(f"vp_modern_map_vq_notify: queue {i} notifies at 0x{addr:x} = BAR{self.notify_bar} "
                          f"0x{base:x} + cap offset 0x{self.notify_offset:x} + queue_notify_off {off} x "
                          f"multiplier {self.notify_mult} (virtio spec §4.1.4.4).", notify_address=addr)
            q = {"index": i, "name": name, "size": num, "vector": vec, "notify_off": off,
                 "notify_address": addr}
            self.res.queues.append(q)
            if i == 0:
                self.res.notify = {"bar": self.notify_bar, "offset": self.notify_offset,
                                   "multiplier": self.notify_mult, "queue0_notify_off": off,
                                   "queue0_address": addr, "bar_address": base}

    def ctx(self, name: str) -> bool:
        """virtnet_find_vqs passes ctx for receive queues with mergeable buffers (no indirect)."""
        return self.res.driver == "virtio_net" and name.startswith("input.") and bool(self.res.features >> 15 & 1)


def linux_probe(dev: GuestDevice, machine: str) -> LinuxResult:
    """Replay Linux 6.1 on the device: enumeration, virtio_pci_probe, the driver's probe."""
    lx = _Linux(dev, machine)
    # Two roots, not one: the PCI core's scan runs from the boot's initcalls, the probe
    # later from loading the virtio_pci module (its pci_register_driver)
    lx.enumerate()
    lx.virtio_pci_probe()
    lx.res.cfg_size = lx.cfg_size
    lx.res.kernel = lx
    return lx.res

