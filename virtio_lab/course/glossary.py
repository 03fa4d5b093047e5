"""The course's glossary: every term a notebook uses, what it means, where it is introduced.

One table (:data:`TERMS`) serves three readers: ``docs/glossary.md`` is generated from it
(``python -m virtio_lab.course.glossary > docs/glossary.md``; a test keeps the file in step),
the views' hover texts end with the entry of the structure or field under the pointer
(:func:`tip`), and ``glossary("BAR")`` prints an entry in a notebook. Each term names the
notebook that introduces it; ``tests/test_glossary.py`` checks that no notebook before it uses
the term, and that the notebook does define it (in bold) no later than its first use there.

Standard library only.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Term", "TERMS", "term", "tip", "glossary", "markdown"]


@dataclass(frozen=True)
class Term:
    """One glossary entry. ``uses`` are the regular expressions (case-sensitive unless they
    start with ``(?i)``) that find the term in a notebook's text; ``notebook`` introduces it."""

    name: str
    anchor: str
    notebook: str
    text: str
    uses: tuple[str, ...] = ()  # empty: an everyday word (driver, window) the test does not chase

    def short(self) -> str:
        """The first sentence: what a hover text shows."""
        return self.text.split(". ", 1)[0].rstrip(".") + "."


def _t(name: str, notebook: str, text: str, *uses: str, anchor: str | None = None,
       everyday: bool = False) -> Term:
    slug = anchor or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return Term(name, slug, notebook, text, () if everyday else (uses or (re.escape(name),)))


#: by topic; docs/glossary.md orders them by the notebook that introduces each
TERMS: tuple[Term, ...] = (
    # 00 · start
    _t("realize", "00-start",
       "QEMU's second stage of creating a device: after the object exists (instance_init), realizing it "
       "puts it on its bus and builds what the guest will see. Here: virtio_pci_realize and the functions "
       "it calls.", r"\brealiz(?:e|es|ed|ing)\b"),
    _t("configuration space", "00-start",
       "The registers every PCI function has besides its BARs: 256 bytes, 4 KiB for PCI Express. The "
       "first 64 are the header; the rest holds the capabilities. Software reads and writes it through "
       "the host bridge (notebook 02).", r"(?i)\bconfig(?:uration)? space\b", anchor="config-space"),
    _t("capability", "00-start",
       "An optional feature described by a small structure in config space: an ID byte, a next "
       "pointer, a body. The capabilities form a linked list (notebook 03).", r"\bcapabilit(?:y|ies)\b"),
    _t("BAR", "00-start",
       "Base Address Register: a header register through which a function asks for a window of memory "
       "or I/O space of a fixed size, and through which firmware tells it where the window is "
       "(notebook 04).", r"\bBARs?\b"),
    _t("event", "00-start",
       "One step of virtio_lab's trace: a QEMU function (or a phase inside one) with its source file, "
       "its call depth, a plain-language explanation and the bytes it wrote. Steps are numbered from 0.",
       r"\bevents?\b"),
    _t("trace", "00-start",
       "The ordered, frozen list of events one plug (or a plug and the guest's probe) produced; "
       "trace.state_at(i) rebuilds the device after step i.", r"\btraces?\b"),
    _t("virtio", "00-start",
       "A standard interface between a guest's driver and a virtual device: feature bits, a status byte "
       "and virtqueues, carried over a transport such as PCI (notebook 05).", r"\bvirtio\b(?![-_])"),
    # 01 · config space
    _t("header", "01-config-space",
       "The first 64 bytes of config space: identity, COMMAND, STATUS, the BARs and pointers. Its layout "
       "from 0x10 on depends on the header type: type 0 for an endpoint, type 1 for a bridge.",
       r"\b[Hh]eader\b(?! type)", anchor="header"),
    _t("header type", "01-config-space",
       "The byte at 0x0e: bits 6:0 say which layout 0x10-0x3f has (0: endpoint, with six BARs and "
       "subsystem ids; 1: PCI-to-PCI bridge, with bus numbers and windows), bit 7 that the device has "
       "several functions.", r"(?i)\bheader type\b", r"(?i)\btype[ -][01]\b"),
    _t("vendor id", "01-config-space",
       "The 16-bit word at 0x00: who made the function. 0x1af4 (Red Hat / Qumranet) for virtio; 0xffff "
       "means no function answers.", r"(?i)\bvendor(?: id|_id)\b", anchor="vendor-id"),
    _t("device id", "01-config-space",
       "The 16-bit word at 0x02: which device of that vendor. virtio-pci uses 0x1000-0x103f for "
       "transitional devices and 0x1040 + the virtio device id for modern ones.",
       r"(?i)\bdevice(?: id|_id)\b"),
    _t("revision", "01-config-space",
       "The byte at 0x08. virtio-pci sets 1 for a modern-only device and leaves 0 for a transitional "
       "one; Linux's legacy probe insists on 0.", r"\brevision\b"),
    _t("class code", "01-config-space",
       "The three bytes at 0x09-0x0b: base class (0x02 network, 0x01 storage, ...), sub-class and "
       "programming interface (prog-if). Tells generic software what kind of device this is.",
       r"(?i)\bclass code\b", r"\bprog-if\b"),
    _t("subsystem ids", "01-config-space",
       "Subsystem vendor id (0x2c) and subsystem id (0x2e). For a transitional virtio device the "
       "subsystem id is the virtio device id, which the legacy driver and Linux's modern probe both "
       "read; a modern-only device keeps QEMU's default 1af4:1100.", r"(?i)\bsubsystem(?: ids?|_id)?\b"),
    _t("little-endian", "01-config-space",
       "Multi-byte values are stored low byte first: the bytes f4 1a at 0x00 are the value 0x1af4.",
       r"(?i)\blittle-endian\b"),
    _t("COMMAND", "01-config-space",
       "The 16-bit register at 0x04 by which software switches a function on: bit 0 decodes its I/O "
       "BARs, bit 1 its memory BARs, bit 2 lets it master the bus (DMA), bit 10 turns INTx off. 0 after "
       "reset.", r"\bCOMMAND\b", anchor="command"),
    _t("STATUS", "01-config-space",
       "The 16-bit register at 0x06 by which a function reports: bit 4 (CAP_LIST) says it has a "
       "capability list, bit 3 that its INTx is asserted; error bits are cleared by writing 1.",
       r"\bSTATUS\b(?!\.)", anchor="status"),
    _t("wmask", "01-config-space",
       "QEMU's write mask, one byte per config byte: the bits a guest may change. A guest write stores "
       "(old & ~wmask) | (value & wmask).", r"\bwmask\b"),
    _t("w1cmask", "01-config-space",
       "QEMU's write-1-to-clear mask: bits a guest clears by writing 1 to them (STATUS's error flags).",
       r"\bw1cmask\b"),
    _t("cmask", "01-config-space",
       "QEMU's check mask: bytes whose value must match when a device migrates (identity, "
       "capability list).", r"\bcmask\b"),
    _t("endpoint", "01-config-space",
       "A function that is a device (type 0 header), as opposed to a bridge. 'PCI Express endpoint' "
       "is an endpoint with a PCI Express capability (notebook 09).", r"\bendpoints?\b"),
    _t("bridge", "01-config-space",
       "A function that connects a second bus (type 1 header): the host bridge connects the CPU to bus "
       "0, a PCI-to-PCI bridge or root port connects another bus behind it.", r"\bbridges?\b"),
    # 02 · config access
    _t("host bridge", "02-config-access",
       "The chip between the CPU and PCI bus 0 (i440FX on pc, the MCH on q35); it performs config "
       "accesses for the CPU.", r"(?i)\bhost bridge\b"),
    _t("B:D.F", "02-config-access",
       "bus:device.function, a function's address: bus 0-255, device (slot) 0-31, function 0-7, "
       "written in hex as lspci prints it (00:03.0).", r"\bB:D\.F\b", anchor="bdf"),
    _t("devfn", "02-config-access",
       "Device and function in one byte, device × 8 + function: what QEMU's addr= sets.", r"\bdevfn\b"),
    _t("CONFIG_ADDRESS", "02-config-access",
       "I/O port 0xcf8: the guest writes enable bit, bus, device, function and register number here, "
       "then reads or writes CONFIG_DATA at 0xcfc-0xcff (configuration mechanism #1).",
       r"\bCONFIG_(?:ADDRESS|DATA)\b", r"\b0xcf[8c]\b", anchor="config-address"),
    _t("ECAM", "02-config-access",
       "Enhanced Configuration Access Mechanism (MMCONFIG): a memory window where each function's whole "
       "4 KiB config space is one page; a plain load or store is a config access. q35 has one, pc does "
       "not.", r"\bECAM\b", r"\bMMCONFIG\b"),
    _t("PCI Express", "00-start",
       "PCIe: point-to-point links in place of the shared PCI bus, with the same software model (config "
       "space, capabilities, BARs) and 4 KiB of config space per function (notebook 09).",
       r"\bPCI Express\b", r"\bPCIe\b"),
    _t("extended space", "02-config-access",
       "Bytes 0x100-0xfff of a PCI Express function's config space, reachable only through ECAM.",
       r"(?i)\bextended (?:configuration )?space\b"),
    _t("firmware", "01-config-space",
       "The code the machine runs before the OS: here SeaBIOS, which sizes and places the BARs, routes "
       "interrupts and fills in a few header fields.", everyday=True),
    # 03 · capabilities
    _t("capabilities pointer", "03-capabilities",
       "The byte at 0x34: the offset of the first capability in the list (QEMU: the newest).",
       r"(?i)\bcapabilit(?:y|ies) pointer\b", r"\bcapabilities_ptr\b"),
    _t("CAP_LIST", "03-capabilities",
       "STATUS bit 4: set when the function has a capability list. Without it the byte at 0x34 means "
       "nothing.", r"\bCAP_LIST\b"),
    _t("vendor-specific capability", "03-capabilities",
       "A capability with ID 0x09 whose body the vendor defines; virtio-pci's five capabilities are of "
       "this kind, told apart by their cfg_type (notebook 06).",
       r"(?i)\bvendor[- ]specific capabilit(?:y|ies)\b", r"(?i)\bvendor capabilit(?:y|ies)\b"),
    _t("MSI-X", "00-start",
       "Message Signalled Interrupts, extended: the device interrupts by writing a message (data) to a "
       "memory address, one table entry (vector) per interrupt source, instead of raising a wire. Its "
       "capability (ID 0x11) says where the table and the PBA are (notebook 08).", r"\bMSI-X\b"),
    _t("MSI-X table", "03-capabilities",
       "The array of 16-byte entries (message address, message data, vector control) in a BAR that the "
       "MSI-X capability points at.", r"(?i)\bMSI-X table\b", r"(?i)\bvector table\b"),
    _t("PBA", "03-capabilities",
       "Pending Bit Array: one bit per MSI-X vector, set while the vector is masked and has a message to "
       "send.", r"\bPBA\b"),
    _t("BIR", "03-capabilities",
       "BAR Indicator Register: the low 3 bits of the MSI-X Table and PBA dwords, the index of the BAR "
       "that holds the table or PBA.", r"\bBIR\b"),
    # 04 · BARs
    _t("I/O space", "01-config-space",
       "x86's separate 64 KiB port address space (in/out instructions). An I/O BAR (bit 0 set) asks for "
       "a window there.", r"(?i)\bI/O (?:space|BARs?|ports?)\b"),
    _t("memory space", "01-config-space",
       "The physical address space loads and stores reach. A memory BAR (bit 0 clear) asks for a window "
       "there: 32-bit (below 4 GiB) or 64-bit (anywhere).", r"(?i)\bmemory (?:space|BARs?)\b"),
    _t("64-bit BAR", "04-bars",
       "A memory BAR whose type bits 2:1 are 10: it uses two registers, the next one holding address "
       "bits 63:32, so it can be placed above 4 GiB.", r"(?i)\b64-bit (?:memory )?BARs?\b"),
    _t("prefetchable", "04-bars",
       "BAR bit 3: reads have no side effects, so the host may read ahead or merge writes. Bridges "
       "forward prefetchable and non-prefetchable memory through separate windows.",
       r"(?i)\bprefetchable\b"),
    _t("decoding", "01-config-space",
       "A function answers accesses to its BARs only while COMMAND's IO (I/O BARs) or MEMORY (memory "
       "BARs) bit is set. Linux clears both while it sizes a BAR.", r"(?i)\bdecod(?:e|es|ing)\b"),
    _t("option ROM", "04-bars",
       "Firmware code a device offers through its ROM BAR at 0x30 (QEMU: a network boot ROM for "
       "virtio-net); firmware copies and runs it at boot.", r"(?i)\b(?:option|expansion) ROM\b",
       r"\bROM BAR\b"),
    # 05 · virtio primer
    _t("device (virtio)", "05-virtio-primer",
       "The side of virtio that does the work: in QEMU the backend object (type virtio-net-device, "
       "child 'virtio-backend' of the PCI proxy).", anchor="virtio-device", everyday=True),
    _t("driver", "05-virtio-primer",
       "The guest's side of virtio, e.g. Linux's virtio_net module; the transport has a driver of its "
       "own (virtio-pci).", everyday=True),
    _t("transport", "05-virtio-primer",
       "What carries the conversation between driver and device: PCI here (virtio-pci), MMIO or "
       "channel I/O elsewhere.", r"\btransports?\b"),
    _t("virtqueue", "05-virtio-primer",
       "A queue of requests in guest memory shared by driver and device; a device has one or more.",
       r"\bvirtqueues?\b"),
    _t("split virtqueue", "05-virtio-primer",
       "The virtqueue layout with three separate parts: descriptor table, available ring (driver "
       "writes) and used ring (device writes).", r"(?i)\bsplit virtqueue\b"),
    _t("descriptor", "05-virtio-primer",
       "A 16-byte entry of the descriptor table: a buffer's guest-physical address, length, flags "
       "(NEXT, WRITE) and the next descriptor of a chain.", r"\bdescriptors?\b"),
    _t("available ring", "05-virtio-primer",
       "The driver's ring: heads of descriptor chains it offers the device, and its idx.",
       r"(?i)\bavail(?:able)? ring\b"),
    _t("used ring", "05-virtio-primer",
       "The device's ring: (head id, bytes written) of each chain it has finished, and its idx.",
       r"(?i)\bused ring\b"),
    _t("notification", "05-virtio-primer",
       "Driver to device: 'a queue has work', a write to the queue's notify address (a kick).",
       r"\bnotifications?\b", r"\bkicks?\b"),
    _t("feature bits", "05-virtio-primer",
       "What the device offers and the driver accepts, one bit per feature; the space is open-ended "
       "(read in 32-bit words chosen by device_feature_select), and QEMU 7.2 and Linux 6.1 use 64 bits.",
       r"(?i)\bfeature bits?\b"),
    _t("VERSION_1", "05-virtio-primer",
       "Feature bit 32: virtio 1.0 or later. A modern interface needs it.", r"\bVERSION_1\b"),
    _t("device status", "05-virtio-primer",
       "The byte where the driver records its progress: ACKNOWLEDGE 1, DRIVER 2, FEATURES_OK 8, "
       "DRIVER_OK 4 (FAILED 0x80); writing 0 resets the device.", r"(?i)\bdevice status\b",
       r"\bdevice_status\b"),
    # 06 · virtio-pci
    _t("proxy", "05-virtio-primer",
       "The PCI device QEMU creates for -device virtio-net-pci (a VirtIOPCIProxy): it owns config space "
       "and BARs, and carries the virtio device on a virtio bus of its own.", r"\bproxy\b"),
    _t("cfg_type", "06-virtio-pci",
       "Byte 3 of a virtio vendor capability: 1 common, 2 notify, 3 isr, 4 device, 5 pci-cfg.",
       r"\bcfg_type\b"),
    _t("common configuration", "06-virtio-pci",
       "virtio-pci's register block for features, device status and queue setup (cfg_type 1).",
       r"(?i)\bcommon config(?:uration)?\b", r"\bcommon cfg\b"),
    _t("legacy", "01-config-space",
       "The pre-1.0 virtio-pci interface: fixed registers in an I/O BAR0, no capabilities.",
       r"\blegacy\b"),
    _t("modern", "01-config-space",
       "The virtio 1.0+ interface: registers found through vendor capabilities, in a memory BAR.",
       r"\bmodern\b"),
    _t("transitional", "01-config-space",
       "A device that offers both interfaces (legacy ids 0x1000-0x103f, revision 0); the default for "
       "virtio-net-pci on pc.", r"\btransitional\b"),
    _t("notify_off_multiplier", "06-virtio-pci",
       "The notify capability's factor: queue n is kicked at the notify offset + queue_notify_off(n) × "
       "multiplier.", r"\bnotify_off_multiplier\b", r"\bqueue_notify_off\b"),
    _t("page-per-vq", "06-virtio-pci",
       "A virtio-pci option: the notify multiplier becomes a page, so every queue's doorbell is on a "
       "page of its own (notebook 15).", r"\bpage-per-vq\b"),
    # 07 · plug timeline
    _t("call depth", "00-start",
       "How deep in QEMU's call tree an event happened; narrate() and the outlines indent by it.",
       r"(?i)\bcall depth\b"),
    # 08 · interrupts
    _t("INTx", "08-interrupts",
       "PCI's interrupt wires INTA#-INTD#: shared and level-triggered; Interrupt Pin says which one a "
       "function uses, Interrupt Line which IRQ firmware found for it.", r"\bINT[xA]#?\b"),
    _t("ISR status", "08-interrupts",
       "virtio-pci's interrupt status byte (the isr region): bit 0 a queue, bit 1 a configuration "
       "change; reading it clears it and lowers INTx.", r"\bISR\b"),
    _t("vector", "03-capabilities",
       "One MSI-X table entry; the driver assigns vectors to interrupt sources (msix_config, "
       "queue_msix_vector). NO_VECTOR (0xffff) means none.", r"\bvectors?\b"),
    _t("IRQ", "08-interrupts",
       "An interrupt request line of the interrupt controller, numbered; INTx wires are routed to IRQs.",
       r"\bIRQs?\b"),
    # 09 · PCI Express
    _t("root port", "02-config-access",
       "A PCI Express port of the root complex: to software a PCI-to-PCI bridge (type 1 header) with one "
       "bus behind it.", r"(?i)\broot ports?\b"),
    _t("extended capability", "09-pcie",
       "A capability in the PCIe extended space, whose list starts at 0x100 and whose header is one "
       "32-bit word (ID, version, next).", r"(?i)\bextended capabilit(?:y|ies)\b", r"(?i)\bextended list\b"),
    _t("window", "09-pcie",
       "A range of I/O, memory or prefetchable memory addresses a bridge forwards to the bus behind it.",
       everyday=True),
    # 10 · firmware
    _t("SeaBIOS", "02-config-access",
       "The BIOS QEMU boots by default (1.16 with QEMU 7.2): it sizes and places every BAR, routes INTx "
       "and runs option ROMs before the OS starts.", r"\bSeaBIOS\b"),
    _t("interrupt link", "10-firmware",
       "One of the board's four PCI interrupt lines LNKA-LNKD; each slot's pins reach them rotated by "
       "the slot number, and firmware routes each link to an IRQ.", r"\bLNK[A-D]\b", r"(?i)\binterrupt links?\b"),
    # 11 · Linux driver
    _t("probe", "05-virtio-primer",
       "A driver's function that claims a device and sets it up (virtio_pci_probe, vp_modern_probe); "
       "also virtio_lab's probe(), which replays SeaBIOS and Linux.", r"(?<![`.])\bprob(?:e|es|ed|ing)\b(?![`(])"),
    # 12 · the device at work
    _t("ioeventfd", "12-device-at-work",
       "An event notifier QEMU hangs on each queue's notify address once the driver sets DRIVER_OK "
       "(virtio_device_start_ioeventfd_impl): a guest write there only signals it — KVM does so in the "
       "kernel, QEMU's memory core under TCG (memory_region_dispatch_write_eventfds) — and QEMU's main "
       "loop then runs the queue's handler. ioeventfd=off keeps notifies in virtio_pci_notify_write.",
       r"\bioeventfd\b"),
    # 15 · why BAR4 + 0x3000
    _t("vhost-user", "15-why-bar4-0x3000",
       "A virtio device implemented in another process than QEMU (vDPA: in hardware or the kernel); "
       "with page-per-vq QEMU can map its doorbells straight into the guest.", r"\bvhost-user\b", r"\bvDPA\b"),
)

_BY_KEY = {t.anchor: t for t in TERMS}

#: hover texts: a header field or capability family -> the term it is an instance of
FIELD_TERMS = {
    "vendor_id": "vendor-id", "device_id": "device-id", "command": "command", "status": "status",
    "revision_id": "revision", "prog_if": "class-code", "subclass": "class-code", "class": "class-code",
    "header_type": "header-type", "subsystem_vendor_id": "subsystem-ids", "subsystem_id": "subsystem-ids",
    "rom_address": "option-rom", "capabilities_ptr": "capabilities-pointer", "interrupt_line": "intx",
    "interrupt_pin": "intx", "cfg_type": "cfg-type", "notify_off_multiplier": "notify-off-multiplier",
    **{f"bar{i}": "bar" for i in range(6)},
}
STRUCTURE_TERMS = (("virtio common", "common-configuration"), ("virtio notify", "notify-off-multiplier"),
                   ("virtio isr", "isr-status"), ("virtio", "vendor-specific-capability"),
                   ("MSI-X", "msi-x"), ("PCI Express", "pci-express"), ("AER", "extended-capability"),
                   ("ATS", "extended-capability"), ("ext cap", "extended-capability"),
                   ("extended", "extended-capability"))


def term(name: str) -> Term | None:
    """The entry for ``name`` (its anchor or its name, any case), or None."""
    key = str(name).strip().lower()
    return _BY_KEY.get(key) or next((t for t in TERMS if t.name.lower() == key), None) \
        or _BY_KEY.get(re.sub(r"[^a-z0-9]+", "-", key).strip("-"))


@lru_cache(maxsize=512)
def tip(structure: str, field: str) -> str:
    """The glossary line a hover text ends with, for one byte's structure and field ('' if none)."""
    key = FIELD_TERMS.get(field)
    if key is None:
        key = next((k for prefix, k in STRUCTURE_TERMS if structure.startswith(prefix)), None)
    if key is None:
        key = "header" if structure == "header" else "capability" if "cap" in structure else None
    t = _BY_KEY.get(key) if key else None
    return f"{t.name}: {t.short()} (glossary: docs/glossary.md#{t.anchor})" if t else ""


class _Entry(str):
    """A glossary entry that prints as itself in a notebook."""

    def __repr__(self) -> str:
        return str(self)


def glossary(name: str | None = None) -> str:
    """One entry (``glossary("BAR")``), or the list of terms."""
    if name is None:
        return _Entry("\n".join(f"{t.name:28} {t.notebook}" for t in TERMS))
    t = term(name)
    if t is None:
        import difflib
        close = difflib.get_close_matches(str(name), [x.name for x in TERMS], 1)
        return _Entry(f"no glossary entry {name!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    return _Entry(f"{t.name}: {t.text} (introduced in {t.notebook})")


def markdown() -> str:
    """docs/glossary.md: every entry, grouped by the notebook that introduces it."""
    from .exercises import NOTEBOOKS
    out = ["# Glossary", "",
           "Every term the course uses, in the order the notebooks introduce them. Generated from",
           "`virtio_lab/course/glossary.py` (`python -m virtio_lab.course.glossary > docs/glossary.md`);",
           "in a notebook, `glossary(\"BAR\")` prints one entry, and hovering a byte in a view shows the",
           "entry of its field.", ""]
    index = sorted(TERMS, key=lambda t: t.name.lower())
    out.append(" · ".join(f"[{t.name}](#{t.anchor})" for t in index))
    for nb in NOTEBOOKS:
        terms = [t for t in TERMS if t.notebook == nb]
        if not terms:
            continue
        out += ["", f"## [{nb}](../notebooks/{nb}.ipynb)", ""]
        for t in terms:
            out += [f'<a id="{t.anchor}"></a>**{t.name}** — {t.text}', ""]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
