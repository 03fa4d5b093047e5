"""The virtio-pci proxy and QEMU 7.2's plug path, one traced function at a time.

Mirrors hw/virtio/virtio-pci.c (virtio_pci_dc_realize, virtio_pci_realize,
virtio_pci_bus_new, virtio_pci_pre_plugged, virtio_pci_device_plugged,
virtio_pci_modern_regions_init, virtio_pci_modern_mem_region_map ->
virtio_pci_modern_region_map -> virtio_pci_add_mem_cap), hw/virtio/virtio.c
(virtio_instance_init_common, virtio_device_realize), hw/virtio/virtio-bus.c
(virtio_bus_device_plugged), hw/core/qdev.c (qdev_realize, device_set_realized) and
hw/pci/pci.c (pci_qdev_realize, do_pci_register_device, pci_add_option_rom). The
device's own functions (wrapper, backend realize, get_features) are data on its
DeviceModel (``model.code``). Written from QEMU's behaviour; no QEMU code is copied.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Mapping

from ..errors import VirtioLabError, shown
from ..pci import regs
from ..pci.bar import Bar, Region, pci_register_bar
from ..pci.bits import pow2ceil
from ..pci.capability import pci_add_capability
from ..pci.config_space import ConfigSpace
from ..pci.msix import msix_init_exclusive_bar
from ..pci.pcie import virtio_pci_pcie_caps
from ..trace import Tracer
from .devices import (
    VIRTIO_F_BAD_FEATURE,
    VIRTIO_F_IOMMU_PLATFORM,
    VIRTIO_F_VERSION_1,
    DeviceModel,
    TypeInfo,
)
from .qemu_names import DEFAULT_RELEASE, cite
from .release import release as release_profile
from .spec import DeviceSpec
from .state import TreeNode

__all__ = ["VirtIOPCIProxy", "PlugError", "VIRTIO_LEGACY_ALLOWED"]

VPC = "hw/virtio/virtio-pci.c"
PCI = "hw/pci/pci.c"
QDEV = "hw/core/qdev.c"
VIRTIO = "hw/virtio/virtio.c"

#: sizeof(struct virtio_pci_cap64): a virtio_pci_cap with 32-bit offset_hi and length_hi
VIRTIO_PCI_CAP64_LEN = 24
#: include/hw/virtio/virtio-gpu.h: the shared-memory region id of host-visible memory
VIRTIO_GPU_SHM_ID_HOST_VISIBLE = 1

#: virtio_legacy_allowed(): device ids that may still speak the legacy interface.
VIRTIO_LEGACY_ALLOWED = frozenset({1, 2, 3, 4, 5, 7, 8, 9, 11, 12})  # + RPMSG, RPROC_SERIAL, CAIF


def romfile_size(name: str, rom_files: Mapping[str, int] | None = None) -> int:
    """The size QEMU finds for ``romfile=NAME`` (-1: not found), as hw/pci/pci.c:
    pci_add_option_rom looks it up: softmmu/datadir.c: qemu_find_file tries NAME as a path
    first (any readable file, relative to the working directory), then the firmware
    directory (``rom_files``: the release's Debian files, Release.rom_files); the size is loader.c: get_image_size's, the
    end of the file (lseek). Opened without blocking: QEMU would wait on a FIFO forever."""
    if os.access(name, os.R_OK):
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError:
            return -1
        try:
            return os.lseek(fd, 0, os.SEEK_END)
        except OSError:
            return -1
        finally:
            os.close(fd)
    return (release_profile().rom_files if rom_files is None else rom_files).get(name, -1)


class PlugError(VirtioLabError):
    """QEMU refused the plug; ``trace`` holds the events up to the refusal."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, hint)
        self.trace = None


@dataclass(frozen=True)
class VirtIOPCIRegion:
    """One of the five modern regions (VirtIOPCIRegion): where it sits and its cap type."""

    name: str
    offset: int
    size: int
    cfg_type: int
    role: str


class VirtIOPCIProxy:
    """The PCI side of one virtio device while QEMU realizes and plugs it."""

    def __init__(self, info: TypeInfo, spec: DeviceSpec, tracer: Tracer, *, bus_path: str,
                 pcie_port: bool, bus_is_express: bool, bdf: str, release: str = DEFAULT_RELEASE,
                 machine_type: str = ""):
        self.info = info
        self.release = release
        self.model: DeviceModel = info.model
        self.spec = spec
        self.tr = tracer
        self.bus_path = bus_path
        self.pcie_port = pcie_port
        self.bus_is_express = bus_is_express
        self.bdf = bdf
        self.profile = release_profile(spec.qemu)
        self.machine_type = machine_type
        self.cs: ConfigSpace | None = None
        # properties as the variant's instance_init and the user leave them
        if info.variant == "transitional":
            self.disable_legacy, self.disable_modern = "off", False
        elif info.variant == "non-transitional":
            self.disable_legacy, self.disable_modern = "on", False
        else:
            self.disable_legacy = spec.value("disable-legacy")
            self.disable_modern = bool(spec.value("disable-modern"))
        self.express = False
        self.nvectors = 0
        self.class_code = 0
        self.host_features = 0
        self.config_len = 0
        self.queues: list[int] = []
        self.device_config = b""
        self.mult = regs.QEMU_VIRTIO_PCI_QUEUE_MEM_MULT if spec.value("page-per-vq") else 4
        self.legacy_io_bar_idx, self.msix_bar_idx = 0, 1
        self.modern_io_bar_idx, self.modern_mem_bar_idx = 2, 4
        self.config_cap = 0

    # -- helpers -----------------------------------------------------------
    @property
    def legacy(self) -> bool:
        return self.disable_legacy == "off"

    @property
    def modern(self) -> bool:
        return not self.disable_modern

    def facts(self, **changes) -> None:
        self.tr.set_facts(self.tr.facts.evolve(**changes))

    def fail(self, message: str, hint: str | None = None, where: str | None = None,
             source: str | None = None) -> None:
        """QEMU's refusal (error_setg, a macro): a phase of the running function, or of
        ``where`` in ``source`` when that callee is the one that refuses."""
        text = f"QEMU refuses the device here (error_setg): {message}" + (f". Hint: {hint}" if hint else "")
        current = self.tr.current
        if where is None or (current is not None and (where, source or current[1]) == current):
            self.tr.phase(text, error=message)
        else:
            with self.tr.call(where, source or VPC, text, error=message):
                pass
        raise PlugError(message, hint)

    # -- Step 0: object creation ---------------------------------------------
    def instance_init(self) -> None:
        """qdev_device_add's qdev_new: QOM runs the instance_init of each class of the type,
        the wrapper's last but for the -transitional/-non-transitional type's own."""
        m, spec, tr = self.model, self.spec, self.tr
        init_file, init_fn = m.code.instance_init
        with tr.call(init_fn, init_file,
                     f"-device {spec.type}: qdev_device_add has created the proxy object "
                     f"(qdev_new); its instance_init now sets up the virtio side. Nothing is on "
                     f"a bus yet.", type=spec.type):
            with tr.call("virtio_instance_init_common", VIRTIO,
                         f"Create the proxy's child object 'virtio-backend', of type "
                         f"{m.vdev_type} (the virtio device), and alias the child's properties "
                         f"onto the proxy so options like mq= or num-queues= work on the PCI "
                         f"device."):
                self.facts(tree=(TreeNode(self.bus_path, "bus",
                                          "PCIEBus" if self.bus_is_express else "PCIBus"),))
        if self.info.variant != "generic":
            forced = "off" if self.info.variant == "transitional" else "on"
            with tr.call(f"virtio_pci_{self.info.variant.replace('-', '_')}_instance_init", VPC,
                         f"The {spec.type} type's own instance_init: disable-legacy={forced}, "
                         f"disable-modern=off."):
                pass

    # -- Step 2-4: PCI core ---------------------------------------------------
    def memory_device_pre_plug(self) -> None:
        """The machine's pre-plug check of a memory device (virtio-mem, virtio-pmem): it runs
        before any realize (device_set_realized -> hotplug_handler_pre_plug ->
        pc_machine_device_pre_plug_cb -> pc_virtio_md_pci_pre_plug)."""
        with self.tr.call("pc_virtio_md_pci_pre_plug", "hw/i386/pc.c",
                          "The machine's hotplug handler (pc_machine_device_pre_plug_cb) checks a "
                          "memory device before anything is realized."):
            with self.tr.call("memory_device_pre_plug", "hw/mem/memory-device.c",
                              "Check where the device's memory will go (memaddr) in the "
                              "machine's device-memory range."):
                try:
                    self.model.pre_plug(self.spec)
                except PlugError:
                    raise
                except VirtioLabError as err:
                    self.fail(err.message, err.hint)

    def virtio_pci_dc_realize(self, parent_dc_realize) -> None:
        """Decide Express, then call the parent class's realize (pci_qdev_realize)."""
        x_disable_pcie = bool(self.spec.value("x-disable-pcie"))
        self.express = not x_disable_pcie and not self.disable_modern
        why = ("x-disable-pcie is on" if x_disable_pcie else "modern mode is off"
               if self.disable_modern else "modern mode is on and x-disable-pcie is off")
        with self.tr.call("virtio_pci_dc_realize", VPC,
                          f"Decide whether the device may be PCI Express: "
                          f"{'yes' if self.express else 'no'}, because {why}. An Express device "
                          f"gets a 4 KiB config space while it registers. Then hand over to the "
                          f"parent class's realize, pci_qdev_realize.",
                          express=self.express):
            self.facts(express=self.express, config_size=4096 if self.express else 256)
            parent_dc_realize()

    def do_pci_register_device(self, slot_conflict: str | None = None) -> None:
        m, tr = self.model, self.tr
        size = 4096 if self.express else 256
        with tr.call("do_pci_register_device", PCI,
                     f"Claim slot {self.bdf} and allocate the config space and its masks "
                     f"({size} bytes each: config, wmask, w1cmask, cmask, used).",
                     config_size=size, bdf=self.bdf):
            if slot_conflict:
                self.fail(slot_conflict)
            self.cs = cs = ConfigSpace(size, tr)
            tr.phase(f"Write the class's identity: vendor 0x1af4 (Red Hat/Qumranet), device "
                     f"0x{m.pci_device_id:04x}"
                     + (" (this class sets no transitional id)" if not m.pci_device_id else
                        " (the transitional/legacy id)")
                     + f", revision 0, class 0x{m.class_id:04x}.")
            cs.set(regs.PCI_VENDOR_ID, 2, regs.PCI_VENDOR_ID_REDHAT_QUMRANET)
            cs.set(regs.PCI_DEVICE_ID, 2, m.pci_device_id)
            cs.set(regs.PCI_REVISION_ID, 1, 0)
            cs.set(regs.PCI_CLASS_DEVICE, 2, m.class_id)
            with tr.call("pci_set_default_subsystem_id", PCI,
                         "No subsystem ids were given: default to 1af4:1100 (Red Hat, QEMU)."):
                cs.set(regs.PCI_SUBSYSTEM_VENDOR_ID, 2, regs.PCI_SUBVENDOR_ID_REDHAT_QUMRANET)
                cs.set(regs.PCI_SUBSYSTEM_ID, 2, regs.PCI_SUBDEVICE_ID_QEMU)
            with tr.call("pci_init_cmask", PCI,
                         "Mark the identity bytes, STATUS.CAP_LIST and the capability pointer as "
                         "checked on migration (cmask)."):
                cs.fill("cmask", regs.PCI_VENDOR_ID, 4, 0xFF)
                cs.set(regs.PCI_STATUS, 1, regs.PCI_STATUS_CAP_LIST, "cmask")
                cs.fill("cmask", regs.PCI_REVISION_ID, 4, 0xFF)
                cs.set(regs.PCI_HEADER_TYPE, 1, 0xFF, "cmask")
                cs.set(regs.PCI_CAPABILITY_LIST, 1, 0xFF, "cmask")
            with tr.call("pci_init_wmask", PCI,
                         "Decide what a guest may write: cache line size, interrupt line, the "
                         "COMMAND bits IO|MEMORY|MASTER|SERR|INTX_DISABLE (0x0507), and every "
                         "byte from 0x40 to the end (capabilities will make theirs read-only)."):
                cs.set(regs.PCI_CACHE_LINE_SIZE, 1, 0xFF, "wmask")
                cs.set(regs.PCI_INTERRUPT_LINE, 1, 0xFF, "wmask")
                cs.set(regs.PCI_COMMAND, 2, regs.PCI_COMMAND_IO | regs.PCI_COMMAND_MEMORY
                       | regs.PCI_COMMAND_MASTER | regs.PCI_COMMAND_INTX_DISABLE
                       | regs.PCI_COMMAND_SERR, "wmask")
                cs.fill("wmask", regs.PCI_CONFIG_HEADER_SIZE, size - regs.PCI_CONFIG_HEADER_SIZE, 0xFF)
            with tr.call("pci_init_w1cmask", PCI,
                         "STATUS error bits are write-1-to-clear (0xf900): a guest clears an "
                         "error by writing 1 to it."):
                cs.set(regs.PCI_STATUS, 2, regs.PCI_STATUS_PARITY | regs.PCI_STATUS_SIG_TARGET_ABORT
                       | regs.PCI_STATUS_REC_TARGET_ABORT | regs.PCI_STATUS_REC_MASTER_ABORT
                       | regs.PCI_STATUS_SIG_SYSTEM_ERROR | regs.PCI_STATUS_DETECTED_PARITY, "w1cmask")
            if self.spec.value("multifunction"):
                with tr.call("pci_init_multifunction", PCI,
                             "multifunction=on: set bit 7 of the header type."):
                    cs.set_bits(regs.PCI_HEADER_TYPE, 1, regs.PCI_HEADER_TYPE_MULTI_FUNCTION)

    # -- Step 5: virtio_pci_realize -------------------------------------------
    def virtio_pci_realize(self) -> None:
        tr, spec = self.tr, self.spec
        notify_size = self.mult * regs.VIRTIO_QUEUE_MAX
        self.regions = [
            VirtIOPCIRegion("common", 0x0000, 0x1000, regs.VirtioCfgType.COMMON_CFG, "common"),
            VirtIOPCIRegion("isr", 0x1000, 0x1000, regs.VirtioCfgType.ISR_CFG, "isr"),
            VirtIOPCIRegion("device", 0x2000, 0x1000, regs.VirtioCfgType.DEVICE_CFG, "device"),
            VirtIOPCIRegion("notify", 0x3000, notify_size, regs.VirtioCfgType.NOTIFY_CFG, "notify"),
        ]
        self.modern_bar_size = pow2ceil(0x3000 + notify_size)
        with tr.call("virtio_pci_realize", VPC,
                     f"Lay out the modern interface: BAR indexes (legacy IO 0, MSI-X 1, modern IO "
                     f"2, modern memory 4) and the regions common 0x0, isr 0x1000, device 0x2000, "
                     f"notify 0x3000 (+{notify_size:#x}: {self.mult} bytes per queue × 1024"
                     f"{', page-per-vq' if self.mult != 4 else ''}), in a "
                     f"{self.modern_bar_size // 1024} KiB container.",
                     notify_off_multiplier=self.mult, modern_bar_size=self.modern_bar_size):
            if self.disable_legacy == "auto":
                resolved = "on" if self.pcie_port else "off"
                tr.phase(f"disable-legacy=auto resolves to {resolved}: the device "
                         f"{'sits behind a PCIe port (PCIe bus, not a root bus)' if self.pcie_port else 'is not on a PCIe port'}.",
                         disable_legacy=resolved)
                self.disable_legacy = resolved
            if not self.modern and not self.legacy:
                self.fail("device cannot work as neither modern nor legacy mode is enabled",
                          "Set either disable-modern or disable-legacy to off")
            self.facts(modern=self.modern, legacy=self.legacy)
            if self.pcie_port and self.express:
                virtio_pci_pcie_caps(
                    self.cs, aer=bool(spec.value("aer")), deverr=bool(spec.value("x-pcie-deverr-init")),
                    lnkctl=bool(spec.value("x-pcie-lnkctl-init")), pm=bool(spec.value("x-pcie-pm-init")),
                    ats=bool(spec.value("ats")), ats_page_aligned=bool(spec.value("x-ats-page-aligned")),
                    flr=bool(spec.value("x-pcie-flr-init")), extcap_init=bool(spec.value("x-pcie-extcap-init")),
                    ext_tag=bool(spec.value("x-pcie-ext-tag")), err_unc_mask=bool(spec.value("x-pcie-err-unc-mask")),
                    lnksta_dllla=self.profile.endpoint_lnksta_dllla and bool(spec.value("x-pcie-lnksta-dllla")),
                    pm_no_soft_reset=bool(spec.value("x-pcie-pm-no-soft-reset")),
                    pm_init_helper=self.profile.pm_init_helper)
            elif self.express:
                tr.phase("Not on a PCIe port: drop the Express capability, so only the first "
                         "256 bytes of config space are reachable.", express=False)
                self.express = False
                self.facts(express=False, config_size=256)
            self.virtio_pci_bus_new()
            self.wrapper_realize()

    def virtio_pci_bus_new(self) -> None:
        source, qbus = cite("hw/core/bus.c", "qbus_init", self.release)
        with self.tr.call("virtio_pci_bus_new", VPC,
                          "Create the proxy's own virtio bus, which will hold exactly one virtio "
                          "device."):
            with self.tr.call(qbus, source,
                              f"{qbus}(TYPE_VIRTIO_PCI_BUS, \"virtio-bus\"): the bus object, with "
                              f"max_dev = 1 (the function is qbus_init since QEMU 6.2, "
                              f"qbus_create_inplace before)."):
                path = f"{self.bus_path}/{self.spec.type}/virtio-bus"
                self.facts(tree=self.tr.facts.tree + (TreeNode(path, "bus", "virtio-pci-bus", "max_dev = 1"),))

    # -- Step 6: the wrapper (virtio_net_pci_realize, ...) ----------------------
    def wrapper_realize(self) -> None:
        m, spec, tr = self.model, self.spec, self.tr
        source, fn = m.code.wrapper
        with tr.call(fn, source,
                     f"The {m.name} wrapper (VirtioPCIClass.realize): settle the MSI-X vector count"
                     + (", the PCI class" if m.class_code(spec) else "")
                     + (", force virtio 1.0" if m.forced_modern else "")
                     + f", then realize the child 'virtio-backend' ({m.vdev_type}) on the virtio "
                       f"bus."):
            vectors = spec.get("vectors") if spec.has("vectors") else None
            if vectors is None:
                prop = spec.value("vectors")
                if prop is None:
                    vectors, why = 0, f"{m.name} has no vectors property: 0, so no MSI-X"
                elif prop == 0xFFFFFFFF and m.nvectors is not None:
                    vectors, why = m.nvectors(spec), "the device's rule for an unset vectors"
                else:
                    vectors, why = prop, spec.origin_text("vectors")
            else:
                why = "vectors= from the spec"
            self.nvectors = vectors
            self.class_code = m.class_code(spec)
            tr.phase(f"nvectors = {vectors} ({why})."
                     + (f" class_code = 0x{self.class_code:04x}." if self.class_code else ""),
                     nvectors=vectors)
            self.facts(nvectors=vectors)
            if m.name == "virtio-iommu-pci" and not self.profile.machine_plugs_virtio_iommu:
                self.fail(f"{self.machine_type} machine fails to create iommu-map device tree bindings",
                          "Check your machine implements a hotplug handler for the virtio-iommu-pci "
                          "device; check the guest is booted without FW or with -no-acpi")
            if m.name == "virtio-iommu-pci" and self.pcie_port:
                self.fail("virtio-iommu-pci must be plugged on the root bus")
            if m.name == "virtio-vga":
                self.virtio_vga_layout()
            elif spec.value("hostmem"):
                self.virtio_gpu_hostmem()
            if m.forced_modern:
                tr.phase("virtio_pci_force_virtio_1: this device exists only as virtio 1.0, so "
                         "disable-legacy=on and disable-modern=off regardless of the spec.")
                self.disable_legacy, self.disable_modern = "on", False
                self.facts(modern=True, legacy=False)
            self.qdev_realize_backend()

    def virtio_vga_layout(self) -> None:
        """virtio_vga_base_realize: VRAM in BAR0, virtio moved to BAR2 and to its end."""
        tr, cs = self.tr, self.cs
        assert cs is not None
        pci_register_bar(cs, Bar(0, "mem32", 8 << 20, True, "vga.vram",
                                 (Region("vga.vram", 0, 8 << 20, "vram"),)),
                         "the VGA frame buffer (8 MiB of video RAM)")
        self.modern_mem_bar_idx, self.msix_bar_idx, self.modern_io_bar_idx = 2, 4, 5
        if self.spec.value("hostmem"):
            self.virtio_gpu_hostmem()
        if self.mult == 4:
            self.regions[0] = replace(self.regions[0], size=0x800)
            self.regions[1] = replace(self.regions[1], size=0x800)
        offset = self.modern_bar_size
        for i in (3, 2, 1, 0):  # notify, device, isr, common: counted down from the BAR's end
            offset -= self.regions[i].size
            self.regions[i] = replace(self.regions[i], offset=offset)
        tr.phase(f"virtio-vga moves the modern registers to BAR2 (MSI-X to BAR4, notify port to "
                 f"BAR5) and packs the virtio regions at the end of BAR2 (common 0x{self.regions[0].offset:x}, "
                 f"isr 0x{self.regions[1].offset:x}, device 0x{self.regions[2].offset:x}, notify "
                 f"0x{self.regions[3].offset:x}), leaving its start for the VGA registers.")

    def virtio_gpu_hostmem(self) -> None:
        """hostmem= (virtio-gpu-pci, virtio-vga; 10.0): the host-visible memory becomes BAR4
        (64-bit, prefetchable), MSI-X moves to BAR1, the modern registers to BAR2, and a
        shared-memory capability (virtio_pci_add_shm_cap: cfg_type 8, id 1 = host visible)
        describes it, ahead of every other capability."""
        cs, tr = self.cs, self.tr
        assert cs is not None
        size = self.spec.value("hostmem")
        if size & (size - 1):
            self.fail("hw/pci/pci.c:1476: pci_register_bar: Assertion `is_power_of_2(size)' failed.",
                      "QEMU aborts: a BAR's size must be a power of two, and hostmem= is BAR4's")
        self.msix_bar_idx, self.modern_mem_bar_idx = 1, 2
        pci_register_bar(cs, Bar(4, "mem64", size, True, "virtio-gpu-hostmem",
                                 (Region("virtio-gpu-hostmem", 0, size, "hostmem"),)),
                         f"hostmem={size}: the host-visible memory a driver maps blobs into")
        shm = VirtIOPCIRegion("hostmem", 0, size, regs.VirtioCfgType.SHARED_MEMORY_CFG, "shm")
        with tr.call("virtio_pci_add_shm_cap", VPC,
                     f"Describe BAR4 with a shared-memory capability: cfg_type 8, id "
                     f"{VIRTIO_GPU_SHM_ID_HOST_VISIBLE} (host visible), offset 0, length {size:#x}, "
                     f"in the 64-bit form (virtio_pci_cap64)."):
            self.virtio_pci_add_mem_cap(
                shm, 4, 0, size, None, VIRTIO_PCI_CAP64_LEN,
                f"Add the {VIRTIO_PCI_CAP64_LEN}-byte vendor capability (virtio shared-memory) "
                f"to the list and copy the structure into it.", shm_id=VIRTIO_GPU_SHM_ID_HOST_VISIBLE)

    # -- Step 7-8 -------------------------------------------------------------
    def qdev_realize_backend(self) -> None:
        """qdev_realize(vdev, proxy's virtio-bus): the child joins the bus, then is realized."""
        m, spec, tr = self.model, self.spec, self.tr
        with tr.call("qdev_realize", QDEV,
                     f"Put the child 'virtio-backend' ({m.vdev_type}) on the proxy's virtio-bus "
                     f"and set its realized property to true."):
            path = f"{self.bus_path}/{spec.type}/virtio-bus/virtio-backend"
            self.facts(tree=tr.facts.tree + (TreeNode(path, "device", m.vdev_type,
                                                      f"the proxy's child, a {m.vdev_name}"),))
            with tr.call("device_set_realized", QDEV,
                         f"The realized setter runs the class realize of {m.vdev_type}: "
                         f"virtio_device_realize."):
                self.virtio_device_realize()

    def virtio_device_realize(self) -> None:
        m, spec, tr = self.model, self.spec, self.tr
        source, fn = m.code.realize
        with tr.call("virtio_device_realize", VIRTIO,
                     f"Realize the virtio device {m.vdev_type}: the device class's own realize "
                     f"(vdc->realize), then announce it to the bus (virtio_bus_device_plugged)."):
            with tr.call(fn, source,
                         (m.realize_note or "The device model checks its options, sizes its "
                          "config space and creates its virtqueues.")):
                try:
                    m.realize_check(spec, self.legacy)
                except PlugError:
                    raise
                except VirtioLabError as err:
                    self.fail(err.message, err.hint)
                self.config_len = m.config_len(spec)
                self.queues = m.queues(spec)
                if len(self.queues) > regs.VIRTIO_QUEUE_MAX or max(self.queues, default=0) > regs.VIRTQUEUE_MAX_SIZE:
                    self.fail("qemu-system-x86_64 died of SIGABRT without a message",
                              f"virtio_add_queue aborts: {len(self.queues)} virtqueues of up to "
                              f"{max(self.queues)} entries; at most VIRTIO_QUEUE_MAX "
                              f"({regs.VIRTIO_QUEUE_MAX}) queues of VIRTQUEUE_MAX_SIZE "
                              f"({regs.VIRTQUEUE_MAX_SIZE}) entries", where="virtio_add_queue",
                              source=VIRTIO)
                self.device_config = m.device_config(spec)
                tr.phase(f"virtio_init: device id {m.virtio_id} ({m.vdev_name}), config space "
                         f"{self.config_len} bytes, {len(self.queues)} virtqueue(s) of size "
                         f"{', '.join(map(str, self.queues))}.",
                         virtio_id=m.virtio_id, config_len=self.config_len, queues=tuple(self.queues))
            self.virtio_bus_device_plugged()

    def virtio_bus_device_plugged(self) -> None:
        m, spec, tr = self.model, self.spec, self.tr
        with tr.call("virtio_bus_device_plugged", "hw/virtio/virtio-bus.c",
                     "Tell the transport a device arrived: fix the feature bits, then let "
                     "virtio-pci build the PCI side."):
            has_iommu = bool(spec.value("iommu_platform"))
            with tr.call("virtio_pci_pre_plugged", VPC,
                         "Before the device reports features: a modern transport offers "
                         "VERSION_1 (bit 32)"
                         + ("" if self.modern else " (not this one: disable-modern=on)")
                         + ", and every device carries BAD_FEATURE (bit 30), which only legacy "
                           "drivers see."):
                f = 0
                if self.modern:
                    f |= 1 << VIRTIO_F_VERSION_1
                f |= 1 << VIRTIO_F_BAD_FEATURE
            source, fn = m.code.get_features
            with tr.call(fn, source,
                         f"vdc->get_features: {m.vdev_type} adds its feature bits (from its "
                         f"properties) and drops what its backend cannot do."):
                f = m.get_features(spec, f | m.property_features(spec))
                self.host_features = f
                tr.annotate(host_features=f)
                self.facts(host_features=f)
            self.virtio_pci_device_plugged()
            if has_iommu:
                tr.phase("iommu_platform=on: keep ACCESS_PLATFORM (bit 33) and take the DMA "
                         "address space from the PCI bus (plain memory here: no vIOMMU).")
                self.host_features |= 1 << VIRTIO_F_IOMMU_PLATFORM

    # -- Step 9: virtio_pci_device_plugged -------------------------------------
    def virtio_pci_device_plugged(self) -> None:
        m, spec, tr, cs = self.model, self.spec, self.tr, self.cs
        assert cs is not None
        with tr.call("virtio_pci_device_plugged", VPC,
                     "Build everything the guest will see of the device in config space: ids, "
                     "interrupt pin, virtio capabilities, BARs and MSI-X."):
            if not spec.value("x-ignore-backend-features") and not self.host_features >> VIRTIO_F_VERSION_1 & 1:
                tr.phase("disable-modern=on: virtio_pci_pre_plugged did not add VERSION_1, so the "
                         "check 'no VERSION_1, no modern interface' finds it missing and "
                         "virtio_pci_disable_modern keeps modern mode off."
                         if self.disable_modern else
                         "The device's features lack VERSION_1, so modern mode is switched off "
                         "(virtio_pci_disable_modern).")
                self.disable_modern = True
                self.facts(modern=False)
                if not self.legacy:
                    self.fail("Device doesn't support modern mode, and legacy mode is disabled",
                              "Set disable-legacy to off")
            if self.class_code:
                tr.phase(f"pci_config_set_class: the wrapper chose class 0x{self.class_code:04x}.")
                cs.set(regs.PCI_CLASS_DEVICE, 2, self.class_code)
            if self.legacy:
                if m.virtio_id not in VIRTIO_LEGACY_ALLOWED and not spec.value("x-disable-legacy-check"):
                    self.fail("device is modern-only, use disable-legacy=on")
                if self.host_features >> VIRTIO_F_IOMMU_PLATFORM & 1:
                    self.fail("VIRTIO_F_IOMMU_PLATFORM was supported by neither legacy nor "
                              "transitional device")
                kind = ("Transitional device (legacy and modern)" if self.modern
                        else "Legacy-only device (disable-modern=on)")
                tr.phase(f"{kind}: keep the transitional device id 0x{m.pci_device_id:04x} and "
                         f"revision 0; the subsystem id carries the virtio device id "
                         f"({m.virtio_id}). Legacy drivers tell devices apart by it, and so does "
                         f"a modern driver for a device id below 0x1040 (virtio spec 1.2 "
                         f"4.1.2.1; Linux's vp_modern_probe).")
                cs.set(regs.PCI_SUBSYSTEM_ID, 2, m.virtio_id)
            else:
                did = regs.PCI_DEVICE_ID_VIRTIO_10_BASE + m.virtio_id
                tr.phase(f"Modern-only device: device id 0x1040 + {m.virtio_id} = 0x{did:04x}, "
                         f"revision 1; the subsystem stays 1af4:1100.")
                cs.set(regs.PCI_VENDOR_ID, 2, regs.PCI_VENDOR_ID_REDHAT_QUMRANET)
                cs.set(regs.PCI_DEVICE_ID, 2, did)
                cs.set(regs.PCI_REVISION_ID, 1, 1)
            tr.phase("Interrupt pin = 1 (INTA#), for drivers that do not use MSI-X.")
            cs.set(regs.PCI_INTERRUPT_PIN, 1, 1)
            if self.modern:
                self.modern_caps()
            if self.nvectors:
                if not msix_init_exclusive_bar(cs, self.nvectors, self.msix_bar_idx, spec.type):
                    tr.phase(f"MSI-X refused {self.nvectors} vectors: QEMU warns 'unable to init "
                             f"msix vectors to {self.nvectors}' and goes on without MSI-X.",
                             warning=f"unable to init msix vectors to {self.nvectors}")
                    self.nvectors = 0
                    self.facts(nvectors=0)
            tr.phase("Install virtio_write_config/virtio_read_config as the config-space hooks: a "
                     "write that clears Bus Master in COMMAND disables the device and drops "
                     "DRIVER_OK from its status"
                     + (f"; a read or write of the PCI cfg window's data field (at "
                        f"0x{self.config_cap + regs.VIRTIO_PCI_CAP_DATA:02x}) reaches the BAR "
                        f"register the window points at." if self.config_cap else "."))
            if self.legacy:
                msix_present = bool(self.nvectors)
                base = regs.VIRTIO_PCI_CONFIG_OFF(msix_present)
                size = pow2ceil(base + self.config_len)
                # the BAR is sized for the header with the MSI-X vector registers; the device
                # config itself starts at VIRTIO_PCI_CONFIG_OFF(MSI-X *enabled*): 0x14 now,
                # 0x18 once a driver enables MSI-X (hw/virtio/virtio-pci.c: virtio_pci_config_read)
                now = regs.VIRTIO_PCI_CONFIG_OFF(False)
                regions = (Region("legacy header", 0, now, "legacy"),
                           Region("device config", now, self.config_len, "device"))
                pci_register_bar(cs, Bar(self.legacy_io_bar_idx, "io", size, False, "virtio-pci", regions),
                                 f"the legacy virtio header ({base} bytes"
                                 f"{' with the MSI-X vector registers' if msix_present else ''}) plus "
                                 f"{self.config_len} bytes of device config, rounded up to a power of two")

    def region_name(self, role: str) -> str:
        """virtio_pci_modern_regions_init's memory region names: after the device from 7.2
        (virtio-pci-common-virtio-net), plain in 5.2 (virtio-pci-common)."""
        suffix = f"-{self.model.vdev_name}" if self.profile.region_names_with_device else ""
        return f"virtio-pci-{role}{suffix}"

    def modern_caps(self) -> None:
        cs, tr, spec = self.cs, self.tr, self.spec
        assert cs is not None
        with tr.call("virtio_pci_modern_regions_init", VPC,
                     f"Create the memory regions of the modern interface and their handlers: "
                     f"{self.region_name('common')}, -isr-, -device-, -notify- and "
                     f"-{self.region_name('notify-pio').removeprefix('virtio-pci-')} (nothing is "
                     f"mapped or written yet)."):
            pass
        for r in self.regions:
            self.add_mem_cap(r, self.modern_mem_bar_idx, r.offset, r.size,
                             self.mult if r.role == "notify" else None, self.region_name(r.role))
        if spec.value("modern-pio-notify"):
            pci_register_bar(cs, Bar(self.modern_io_bar_idx, "io", 4, False, "virtio-pci-io",
                                     (Region(self.region_name("notify-pio"), 0, 4, "notify-pio"),)),
                             "modern-pio-notify=on: a 4-byte port a driver writes a queue index to")
            pio = VirtIOPCIRegion("notify-pio", 0, 4, regs.VirtioCfgType.NOTIFY_CFG, "notify-pio")
            self.add_mem_cap(pio, self.modern_io_bar_idx, 0, 4, 0, self.region_name("notify-pio"))
        bar_regions = tuple(Region(self.region_name(r.role), r.offset, r.size, r.role)
                            for r in self.regions)
        pci_register_bar(cs, Bar(self.modern_mem_bar_idx, "mem64", self.modern_bar_size, True,
                                 "virtio-pci", bar_regions),
                         "the modern virtio registers: common, isr, device and notify regions")
        cfg = VirtIOPCIRegion("pci-cfg", 0, 0, regs.VirtioCfgType.PCI_CFG, "pci-cfg")
        self.config_cap = self.add_mem_cap(cfg, 0, 0, 0, None, "", cap_len=regs.VIRTIO_PCI_CFG_CAP_LEN)
        tr.phase(f"Open the PCI cfg window at 0x{self.config_cap:02x}: make its bar, offset, "
                 f"length and data fields writable, so a driver can reach any BAR register "
                 f"through config space alone.", cap_offset=self.config_cap)
        c = self.config_cap
        cs.set(c + regs.VIRTIO_PCI_CAP_BAR, 1, 0xFF, "wmask")
        cs.set(c + regs.VIRTIO_PCI_CAP_OFFSET, 4, 0xFFFFFFFF, "wmask")
        cs.set(c + regs.VIRTIO_PCI_CAP_LENGTH, 4, 0xFFFFFFFF, "wmask")
        cs.set(c + regs.VIRTIO_PCI_CAP_DATA, 4, 0xFFFFFFFF, "wmask")

    def add_mem_cap(self, r: VirtIOPCIRegion, bar: int, offset: int, length: int,
                    multiplier: int | None, mr_name: str, cap_len: int | None = None) -> int:
        """virtio_pci_modern_{mem,io}_region_map -> virtio_pci_modern_region_map ->
        virtio_pci_add_mem_cap, or virtio_pci_add_mem_cap alone for the PCI cfg window."""
        tr = self.tr
        cap_len = cap_len or (regs.VIRTIO_PCI_NOTIFY_CAP_LEN if multiplier is not None
                              else regs.VIRTIO_PCI_CAP_LEN)
        label = regs.VIRTIO_CFG_NAMES[r.cfg_type]
        if r.role == "pci-cfg":
            return self.virtio_pci_add_mem_cap(
                r, bar, offset, length, multiplier, cap_len,
                "The PCI cfg access capability (cfg_type 5): a window whose bar/offset/length a "
                "driver fills in, then reads or writes the data field to reach that register.")
        if r.role == "notify-pio":
            fn, why = "virtio_pci_modern_io_region_map", (
                "Map the 4-byte notify port at offset 0 of BAR2 and describe it with a second "
                "notify capability (cfg_type 2, multiplier 0).")
        else:
            fn, why = "virtio_pci_modern_mem_region_map", (
                f"Map the {label} region ({mr_name}) at 0x{offset:x} in BAR{bar} and describe it "
                f"with a vendor capability.")
        with tr.call(fn, VPC, why, cfg_type=int(r.cfg_type), bar=bar, region_offset=offset,
                     region_length=length):
            with tr.call("virtio_pci_modern_region_map", VPC,
                         f"Add {mr_name} as a subregion of BAR{bar} at 0x{offset:x} and fill the "
                         f"capability: cfg_type {int(r.cfg_type)}, bar {bar}, offset 0x{offset:x}, "
                         f"length 0x{length:x}"
                         + (f", notify_off_multiplier {multiplier}" if multiplier else "") + "."):
                return self.virtio_pci_add_mem_cap(
                    r, bar, offset, length, multiplier, cap_len,
                    f"Add the {cap_len}-byte vendor capability (virtio {label}) to the list and "
                    f"copy the structure into it.")

    def virtio_pci_add_mem_cap(self, r: VirtIOPCIRegion, bar: int, offset: int, length: int,
                               multiplier: int | None, cap_len: int, why: str, shm_id: int = 0) -> int:
        cs, tr = self.cs, self.tr
        assert cs is not None
        label = regs.VIRTIO_CFG_NAMES[r.cfg_type]
        with tr.call("virtio_pci_add_mem_cap", VPC, why, cfg_type=int(r.cfg_type), bar=bar,
                     region_offset=offset, region_length=length):
            pos = pci_add_capability(cs, regs.CapID.VNDR, cap_len, f"virtio {label}")
            tr.phase(f"Copy the rest of the {cap_len}-byte structure into "
                     f"0x{pos + 2:02x}..0x{pos + cap_len - 1:02x}.", cap_offset=pos)
            body = bytearray(cap_len - 2)
            body[0] = cap_len
            body[1] = int(r.cfg_type)
            body[2] = bar
            body[3] = shm_id
            body[6:10] = (offset & 0xFFFFFFFF).to_bytes(4, "little")
            body[10:14] = (length & 0xFFFFFFFF).to_bytes(4, "little")
            if cap_len == VIRTIO_PCI_CAP64_LEN:  # offset_hi, length_hi
                body[14:18] = (offset >> 32).to_bytes(4, "little")
                body[18:22] = (length >> 32).to_bytes(4, "little")
            if multiplier is not None:
                body[14:18] = multiplier.to_bytes(4, "little")
            cs.store("config", pos + 2, bytes(body))
        return pos

    # -- Step 9b: back in pci_qdev_realize: a failover primary ----------------------
    def failover_check(self, devfn: int) -> None:
        """hw/pci/pci.c: pci_qdev_realize, after the class realize — a device with
        ``failover_pair_id`` is the primary of a virtio-net failover pair: it must sit on a
        PCI Express bus, be an Ethernet controller, and have its slot to itself."""
        cs = self.cs
        assert cs is not None
        self.tr.phase(f"failover_pair_id is set: the device is the primary of a virtio-net "
                      "failover pair, so it must be on a PCI Express bus, an Ethernet controller "
                      "(class 0x0200), and alone in its slot.")
        if not self.bus_is_express:
            self.fail("failover primary device must be on PCIExpress bus")
        if cs.get(regs.PCI_CLASS_DEVICE, 2) != regs.PCI_CLASS_NETWORK_ETHERNET:
            self.fail("failover primary device is not an Ethernet device")
        if self.spec.value("multifunction") or devfn & 7:
            self.fail("failover: primary device must be in its own PCI slot")

    # -- Step 10: back in pci_qdev_realize: the option ROM ------------------------
    def pci_add_option_rom(self) -> None:
        m, spec, tr, cs = self.model, self.spec, self.tr, self.cs
        assert cs is not None
        romfile = spec.get("romfile") if spec.has("romfile") else m.rom
        with tr.call("pci_add_option_rom", PCI,
                     "Attach the option ROM (boot firmware for the device), if any."
                     + (f" Default for this class: {m.rom}." if m.rom else " This class has none.")):
            if not romfile:
                tr.annotate(rom=None)
                return
            if not spec.value("rombar"):
                tr.phase(f"rombar=0: {romfile} is handed to the firmware through fw_cfg, so no "
                         f"ROM BAR appears in config space.")
                return
            fsize = romfile_size(romfile, self.profile.rom_files)
            shown_name = shown(romfile, '"')
            if fsize < 0:
                self.fail(f"failed to find romfile {shown_name}")
            if fsize == 0:
                self.fail(f"romfile {shown_name} is empty")
            if fsize > 2 << 30:
                self.fail(f"romfile {shown_name} too large (size cannot exceed 2 GiB)")
            romsize = spec.value("romsize")
            if romsize is None or romsize == 0xFFFFFFFF:
                romsize = pow2ceil(fsize)
            elif fsize > romsize:
                self.fail(f'romfile {shown_name} ({fsize} bytes) is too large for ROM size {romsize}')
            pci_register_bar(cs, Bar(regs.PCI_ROM_SLOT, "rom", romsize, False, f"{spec.type}.rom",
                                     (Region(romfile, 0, fsize, "rom"),)),
                             f"{romfile} ({fsize} bytes, rounded up to a power of two)")
