"""The device as ``lspci`` shows it: hex dumps real ``lspci -F`` reads back, and a -vvv decoding.

:func:`hexdump` writes the config space in the format of ``lspci -x`` (64 bytes),
``-xxx`` (256) or ``-xxxx`` (4096): a device line ``bb:dd.f Class: Vendor Device``
(``lspci -F`` only needs ``bb:dd.f`` followed by a space), lines ``xx: b0 .. b15`` in
lower case, then a blank line. Feed it to the real tool with
``lspci -F FILE -vvv -nn`` (tests/test_lspci.py checks that the result is exactly
what ``lspci`` printed for the real QEMU 7.2 capture).

:func:`describe` is the project's own lspci-like decoding (``python -m virtio_lab
lspci SPEC -vvv``): the same line formats for the header, BARs and capabilities,
with the virtio ``cfg_type`` names, plus what a dump cannot know — BAR sizes, taken
from the trace's facts. Written from the PCI and virtio specifications and the
observed output format; no pciutils code.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from ..errors import VirtioLabError, VirtioLabTypeError, shown
from ..pci import regs
from ..pci.bits import get_le
from ..pci.capability import walk_capabilities, walk_ext_capabilities

__all__ = ["LEVELS", "hexdump", "header_line", "describe", "class_name", "device_name",
           "vendor_name", "format_size", "VIRTIO_CAP_NAMES"]

#: -x / -xxx / -xxxx → bytes shown
LEVELS = {1: 64, 2: 64, 3: 256, 4: 4096}

_VENDORS = {0x1AF4: "Red Hat, Inc.", 0x8086: "Intel Corporation", 0x1B36: "Red Hat, Inc.",
            0x1414: "Microsoft Corporation", 0x15AD: "VMware", 0x80EE: "InnoTek Systemberatung GmbH",
            0x1D0F: "Amazon.com, Inc.", 0x1AE0: "Google, Inc."}
# names of the virtio ids as the pci.ids database spells them (the names lspci prints)
_VIRTIO_DEVICES = {
    0x1000: "Virtio network device", 0x1001: "Virtio block device", 0x1002: "Virtio memory balloon",
    0x1003: "Virtio console", 0x1004: "Virtio SCSI", 0x1005: "Virtio RNG",
    0x1009: "Virtio filesystem", 0x1041: "Virtio 1.0 network device",
    0x1042: "Virtio 1.0 block device", 0x1043: "Virtio 1.0 console", 0x1044: "Virtio 1.0 RNG",
    0x1045: "Virtio 1.0 memory balloon", 0x1048: "Virtio 1.0 SCSI",
    0x1049: "Virtio 1.0 filesystem", 0x1050: "Virtio 1.0 GPU", 0x1052: "Virtio 1.0 input",
    0x1053: "Virtio 1.0 socket", 0x105A: "Virtio file system",
}
_BASE_CLASSES = {
    0x00: "Unclassified device", 0x01: "Mass storage controller", 0x02: "Network controller",
    0x03: "Display controller", 0x04: "Multimedia controller", 0x05: "Memory controller",
    0x06: "Bridge", 0x07: "Communication controller", 0x08: "Generic system peripheral",
    0x09: "Input device controller", 0x0A: "Docking station", 0x0B: "Processor",
    0x0C: "Serial bus controller", 0x0D: "Wireless controller", 0x0E: "Intelligent controller",
    0x0F: "Satellite communications controller", 0x10: "Encryption controller",
    0x11: "Signal processing controller", 0x12: "Processing accelerators",
    0x13: "Non-Essential Instrumentation", 0x40: "Coprocessor", 0xFF: "Unassigned class",
}
_SUBCLASSES = {
    0x0000: "Non-VGA unclassified device", 0x0001: "VGA compatible unclassified device",
    0x0005: "Image coprocessor", 0x0100: "SCSI storage controller",
    0x0180: "Mass storage controller", 0x0200: "Ethernet controller", 0x0280: "Network controller",
    0x0300: "VGA compatible controller", 0x0380: "Display controller",
    0x0604: "PCI bridge", 0x0780: "Communication controller", 0x0880: "System peripheral",
    0x0900: "Keyboard controller", 0x0902: "Mouse controller", 0x0980: "Input device controller",
    0x0C03: "USB controller",
}

_PROG_IFS = {(0x0300, 0x00): "VGA controller", (0x0300, 0x01): "8514 controller",
             (0x0C03, 0x30): "XHCI", (0x0106, 0x01): "AHCI 1.0"}

#: cfg_type names as lspci 3.9 prints them (SharedMemory only from pciutils 3.14)
VIRTIO_CAP_NAMES = {1: "CommonCfg", 2: "Notify", 3: "ISR", 4: "DeviceCfg"}
#: the spec's names, for our own decoding
VIRTIO_CFG_SPEC_NAMES = {1: "CommonCfg", 2: "Notify", 3: "ISR", 4: "DeviceCfg", 5: "PciCfg",
                         8: "SharedMemory", 9: "VendorCfg"}


def vendor_name(vid: int) -> str:
    return _VENDORS.get(vid, f"Device {vid:04x}")


def device_name(vid: int, did: int, numeric: bool = False) -> str:
    if vid == 0x1AF4 and did in _VIRTIO_DEVICES:
        return _VIRTIO_DEVICES[did]
    return "Device" if numeric else f"Device {did:04x}"


def class_name(cls: int) -> str:
    """Class word (base << 8 | subclass) → the name lspci prints."""
    if cls in _SUBCLASSES:
        return _SUBCLASSES[cls]
    return _BASE_CLASSES.get(cls >> 8, f"Class {cls:04x}")


def header_line(config: bytes, bdf: str, numeric: bool = False) -> str:
    """``bb:dd.f Class: Vendor Device (rev xx)`` as plain ``lspci`` (``-nn`` with numeric)."""
    vid, did = get_le(config, 0, 2), get_le(config, 2, 2)
    cls = get_le(config, 0x0A, 2)
    rev = config[0x08]
    c = class_name(cls) + (f" [{cls:04x}]" if numeric else "")
    if vid in _VENDORS:
        d = f"{_VENDORS[vid]} {device_name(vid, did, numeric)}"
    else:
        d = "Device" if numeric else f"Device {vid:04x}:{did:04x}"
    line = f"{bdf} {c}: {d}" + (f" [{vid:04x}:{did:04x}]" if numeric else "")
    if rev:
        line += f" (rev {rev:02x})"
    return line


def _level(level: int | str) -> int:
    if isinstance(level, bool) or not isinstance(level, (int, str)):
        raise VirtioLabTypeError(f"a hex dump level is 1, 3 or 4 (or '-x', '-xxx', '-xxxx'), not "
                                 f"{shown(level)}")
    if isinstance(level, str):
        s = level.lstrip("-")
        if not s or set(s) != {"x"} or len(s) > 4:
            raise VirtioLabError(f"bad hex dump level {shown(level)}: use -x, -xxx or -xxxx")
        level = len(s)
    if level not in LEVELS:
        raise VirtioLabError(f"bad hex dump level {level}: use 1 (-x), 3 (-xxx) or 4 (-xxxx)")
    return level


def hexdump(config: bytes, bdf: str = "00:03.0", level: int | str = 3, header: str | None = None) -> str:
    """The config space as ``lspci -x`` (level 1), ``-xxx`` (3) or ``-xxxx`` (4) prints it.

    A device with only 256 bytes of config space (conventional PCI) prints 256 bytes
    at level 4, as lspci does. Ends with the blank line that closes a device block.
    """
    n = min(LEVELS[_level(level)], len(config))
    if n < 64:
        raise VirtioLabError(f"config space of {len(config)} bytes: at least 64 needed for a dump")
    lines = [header if header is not None else header_line(config, bdf)]
    for row in range(0, n, 16):
        lines.append(f"{row:02x}: " + " ".join(f"{b:02x}" for b in config[row:row + 16]))
    return "\n".join(lines) + "\n\n"


# ----------------------------------------------------------------------------- -vvv decoding
def format_size(size: int) -> str:
    """lspci's [size=..] spelling: 32, 4K, 16K, 256K, 1M, 8G."""
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift}{unit}"
    return str(size)


def _pm(b: int, s: str) -> str:
    return f"{s}{'+' if b else '-'}"


def _bar_lines(config: bytes, sizes: dict[int, int] | None, kinds: dict[int, str] | None) -> list[str]:
    cmd = get_le(config, regs.PCI_COMMAND, 2)
    out = []
    i = 0
    while i < 6:
        off = 0x10 + 4 * i
        if off + 4 > len(config):
            break
        raw = get_le(config, off, 4)
        size = (sizes or {}).get(i)
        kind = (kinds or {}).get(i)
        if raw & 1 or kind == "io":
            addr = raw & ~3
            where = f"{addr:x}" if addr else "<unassigned>"
            line = f"Region {i}: I/O ports at {where}"
            if not cmd & 1:
                line += " [disabled]"
            if size:
                line += f" [size={format_size(size)}]"
            out.append(line)
            i += 1
            continue
        is64 = (raw & 6) == 4 or kind == "mem64"
        addr = raw & ~0xF
        if is64 and off + 8 <= len(config):
            addr |= get_le(config, off + 4, 4) << 32
        pref = bool(raw & 8) or (kind is not None and size is not None and (raw & 8) == 8)
        if raw == 0 and not size and not (is64 and kind):
            i += 1  # nothing there (or an unassigned 32-bit BAR a dump cannot see)
            continue
        where = f"{addr:08x}" if addr else "<unassigned>"
        line = (f"Region {i}: Memory at {where} ({'64-bit' if is64 else '32-bit'}, "
                f"{'prefetchable' if pref else 'non-prefetchable'})")
        if not cmd & 2:
            line += " [disabled]"
        if size:
            line += f" [size={format_size(size)}]"
        out.append(line)
        i += 2 if is64 else 1
    return out


def _cap_lines(config: bytes, verbose: int) -> list[str]:
    vid, did = get_le(config, 0, 2), get_le(config, 2, 2)
    virtio = vid == regs.PCI_VENDOR_ID_REDHAT_QUMRANET and 0x1000 <= did <= 0x107F
    out: list[str] = []
    walk = walk_capabilities(config)
    for cap in walk.caps:
        o = cap.offset
        head = f"Capabilities: [{o:02x}] "
        if cap.id == regs.CapID.MSIX and o + 12 <= len(config):
            ctrl = get_le(config, o + 2, 2)
            out.append(head + f"MSI-X: Enable{'+' if ctrl & 0x8000 else '-'} Count={(ctrl & 0x7FF) + 1} "
                       f"Masked{'+' if ctrl & 0x4000 else '-'}")
            if verbose >= 2:
                t, p = get_le(config, o + 4, 4), get_le(config, o + 8, 4)
                out.append(f"\tVector table: BAR={t & 7} offset={t & ~7:08x}")
                out.append(f"\tPBA: BAR={p & 7} offset={p & ~7:08x}")
        elif cap.id == regs.CapID.VNDR:
            ln = config[o + 2] if o + 2 < len(config) else 0
            if virtio and ln >= 16 and o + 16 <= len(config):
                t = config[o + 3]
                name = VIRTIO_CFG_SPEC_NAMES.get(t, "<unknown>")
                out.append(head + f"Vendor Specific Information: VirtIO: {name}")
                if verbose >= 2:
                    line = (f"\tBAR={config[o + 4]} offset={get_le(config, o + 8, 4):08x} "
                            f"size={get_le(config, o + 12, 4):08x}")
                    if t == 2 and ln >= 20 and o + 20 <= len(config):
                        line += f" multiplier={get_le(config, o + 16, 4):08x}"
                    out.append(line)
            else:
                out.append(head + f"Vendor Specific Information: Len={ln:02x} <?>")
        elif cap.id == regs.CapID.PM and o + 8 <= len(config):
            pmc, ctl = get_le(config, o + 2, 2), get_le(config, o + 4, 2)
            out.append(head + f"Power Management version {pmc & 7}")
            if verbose >= 2:
                aux = [0, 55, 100, 160, 220, 270, 320, 375][(pmc >> 6) & 7]
                out.append(f"\tFlags: {_pm(pmc & 8, 'PMEClk')} {_pm(pmc & 0x20, 'DSI')} "
                           f"{_pm(pmc & 0x200, 'D1')} {_pm(pmc & 0x400, 'D2')} AuxCurrent={aux}mA "
                           f"PME(D0{'+' if pmc & 0x800 else '-'},D1{'+' if pmc & 0x1000 else '-'},"
                           f"D2{'+' if pmc & 0x2000 else '-'},D3hot{'+' if pmc & 0x4000 else '-'},"
                           f"D3cold{'+' if pmc & 0x8000 else '-'})")
                out.append(f"\tStatus: D{ctl & 3} {_pm(ctl & 8, 'NoSoftRst')} {_pm(ctl & 0x100, 'PME-Enable')} "
                           f"DSel={(ctl >> 9) & 15} DScale={(ctl >> 13) & 3} {_pm(ctl & 0x8000, 'PME')}")
        elif cap.id == regs.CapID.EXP and o + 20 <= len(config):
            out.extend(_express_lines(config, o, head, verbose))
        elif cap.id == regs.CapID.MSI and o + 4 <= len(config):
            ctrl = get_le(config, o + 2, 2)
            out.append(head + f"MSI: Enable{'+' if ctrl & 1 else '-'} Count={1 << ((ctrl >> 4) & 7)}/"
                       f"{1 << ((ctrl >> 1) & 7)} Maskable{'+' if ctrl & 0x100 else '-'} "
                       f"64bit{'+' if ctrl & 0x80 else '-'}")
        else:
            out.append(head + regs.CAP_NAMES.get(cap.id, f"Capability ID {cap.id:#04x}"))
    for p in walk.problems:
        if "loops" in p:
            out.append("Capabilities: [" + p.rsplit("0x", 1)[-1] + "] <chain looped>")
        elif "beyond" in p:
            out.append("Capabilities: [" + p.split("0x", 1)[1][:2] + "] <access denied>")
        elif "header" in p or "aligned" in p:
            out.append(f"Capabilities: <chain broken: {p}>")
    return out


_PORT_TYPES = {0: "Endpoint", 1: "Legacy Endpoint", 4: "Root Port (Slot-)", 5: "Upstream Port",
               6: "Downstream Port (Slot-)", 7: "PCI-Express to PCI/PCI-X Bridge",
               8: "PCI/PCI-X to PCI-Express Bridge", 9: "Root Complex Integrated Endpoint",
               10: "Root Complex Event Collector"}
_SPEEDS = {1: "2.5GT/s", 2: "5GT/s", 3: "8GT/s", 4: "16GT/s", 5: "32GT/s", 6: "64GT/s"}


_L0S = ["<64ns", "<128ns", "<256ns", "<512ns", "<1us", "<2us", "<4us", "unlimited"]
_L1 = ["<1us", "<2us", "<4us", "<8us", "<16us", "<32us", "<64us", "unlimited"]
_ASPM_CAP = {0: "not supported", 1: "L0s", 2: "L1", 3: "L0s L1"}
_ASPM_CTL = ["Disabled", "L0s Enabled", "L1 Enabled", "L0s L1 Enabled"]
_OBFF_CAP = ["Not Supported", "Via message", "Via WAKE#", "Via message/WAKE#"]
_OBFF_CTL = ["Disabled", "Via message A", "Via message B", "Via WAKE#"]
_CTO = {0: "50us to 50ms", 1: "50us to 100us", 2: "1ms to 10ms", 5: "16ms to 55ms", 6: "65ms to 210ms",
        9: "260ms to 900ms", 10: "1s to 3.5s", 13: "4s to 13s", 14: "17s to 64s"}


def _express_lines(config: bytes, o: int, head: str, verbose: int) -> list[str]:
    """The PCI Express capability in lspci's -vv layout (endpoint registers)."""
    def w(k: int) -> int:
        return get_le(config, o + k, 2) if o + k + 2 <= len(config) else 0

    def d(k: int) -> int:
        return get_le(config, o + k, 4) if o + k + 4 <= len(config) else 0

    flags = w(2)
    ver, ptype = flags & 0xF, (flags >> 4) & 0xF
    out = [head + f"Express (v{ver}) {_PORT_TYPES.get(ptype, 'Unknown type')}, MSI {(flags >> 9) & 0x1F:02x}"]
    if verbose < 2:
        return out
    devcap, devctl, devsta = d(4), w(8), w(10)
    lnkcap, lnkctl, lnksta = d(12), w(16), w(18)
    out.append(f"\tDevCap:\tMaxPayload {128 << (devcap & 7)} bytes, PhantFunc {(devcap >> 3) & 3}, "
               f"Latency L0s {_L0S[(devcap >> 6) & 7]}, L1 {_L1[(devcap >> 9) & 7]}")
    power = ((devcap >> 18) & 0xFF) * [1.0, 0.1, 0.01, 0.001][(devcap >> 26) & 3]
    out.append(f"\t\t{_pm(devcap & 0x20, 'ExtTag')} {_pm(devcap & 0x1000, 'AttnBtn')} "
               f"{_pm(devcap & 0x2000, 'AttnInd')} {_pm(devcap & 0x4000, 'PwrInd')} "
               f"{_pm(devcap & 0x8000, 'RBE')} {_pm(devcap & 0x10000000, 'FLReset')} "
               f"SlotPowerLimit {power:g}W")
    out.append(f"\tDevCtl:\t{_pm(devctl & 1, 'CorrErr')} {_pm(devctl & 2, 'NonFatalErr')} "
               f"{_pm(devctl & 4, 'FatalErr')} {_pm(devctl & 8, 'UnsupReq')}")
    out.append(f"\t\t{_pm(devctl & 0x10, 'RlxdOrd')} {_pm(devctl & 0x100, 'ExtTag')} "
               f"{_pm(devctl & 0x200, 'PhantFunc')} {_pm(devctl & 0x400, 'AuxPwr')} "
               f"{_pm(devctl & 0x800, 'NoSnoop')}"
               + (f" {_pm(devctl & 0x8000, 'FLReset')}" if devcap & 0x10000000 else ""))
    out.append(f"\t\tMaxPayload {128 << ((devctl >> 5) & 7)} bytes, MaxReadReq {128 << ((devctl >> 12) & 7)} bytes")
    out.append(f"\tDevSta:\t{_pm(devsta & 1, 'CorrErr')} {_pm(devsta & 2, 'NonFatalErr')} "
               f"{_pm(devsta & 4, 'FatalErr')} {_pm(devsta & 8, 'UnsupReq')} "
               f"{_pm(devsta & 0x10, 'AuxPwr')} {_pm(devsta & 0x20, 'TransPend')}")
    aspm = (lnkcap >> 10) & 3
    lat = []
    if aspm & 1:
        lat.append(f"L0s {_L0S[(lnkcap >> 12) & 7]}")
    if aspm & 2:
        lat.append(f"L1 {_L1[(lnkcap >> 15) & 7]}")
    out.append(f"\tLnkCap:\tPort #{lnkcap >> 24}, Speed {_SPEEDS.get(lnkcap & 0xF, 'unknown')}, "
               f"Width x{(lnkcap >> 4) & 0x3F}, ASPM {_ASPM_CAP[aspm]}"
               + (f", Exit Latency {', '.join(lat)}" if lat else ""))
    out.append(f"\t\t{_pm(lnkcap & 0x40000, 'ClockPM')} {_pm(lnkcap & 0x80000, 'Surprise')} "
               f"{_pm(lnkcap & 0x100000, 'LLActRep')} {_pm(lnkcap & 0x200000, 'BwNot')} "
               f"{_pm(lnkcap & 0x400000, 'ASPMOptComp')}")
    out.append(f"\tLnkCtl:\tASPM {_ASPM_CTL[lnkctl & 3]}; RCB {128 if lnkctl & 8 else 64} bytes, "
               f"{_pm(lnkctl & 0x10, 'Disabled')} {_pm(lnkctl & 0x40, 'CommClk')}")
    out.append(f"\t\t{_pm(lnkctl & 0x80, 'ExtSynch')} {_pm(lnkctl & 0x100, 'ClockPM')} "
               f"{_pm(lnkctl & 0x200, 'AutWidDis')} {_pm(lnkctl & 0x400, 'BWInt')} "
               f"{_pm(lnkctl & 0x800, 'AutBWInt')}")
    speed, width = lnksta & 0xF, (lnksta >> 4) & 0x3F
    out.append(f"\tLnkSta:\tSpeed {_SPEEDS.get(speed, 'unknown')}"
               + (" (downgraded)" if speed < (lnkcap & 0xF) else "")
               + f", Width x{width}" + (" (downgraded)" if width < ((lnkcap >> 4) & 0x3F) else ""))
    out.append(f"\t\t{_pm(lnksta & 0x400, 'TrErr')} {_pm(lnksta & 0x800, 'Train')} "
               f"{_pm(lnksta & 0x1000, 'SlotClk')} {_pm(lnksta & 0x2000, 'DLActive')} "
               f"{_pm(lnksta & 0x4000, 'BWMgmt')} {_pm(lnksta & 0x8000, 'ABWMgmt')}")
    if ver < 2:
        return out
    dc2, dctl2 = d(36), w(40)
    lc2, lctl2, lsta2 = d(44), w(48), w(50)
    cto = dc2 & 0xF
    ranges = "".join(c for i, c in enumerate("ABCD") if cto & (1 << i))
    out.append(f"\tDevCap2: Completion Timeout: {'Range ' + ranges if cto else 'Not Supported'}, "
               f"{_pm(dc2 & 0x10, 'TimeoutDis')} {_pm(dc2 & 0x400, 'NROPrPrP')} {_pm(dc2 & 0x800, 'LTR')}")
    line = (f"\t\t {_pm(dc2 & 0x10000, '10BitTagComp')} {_pm(dc2 & 0x20000, '10BitTagReq')} "
            f"OBFF {_OBFF_CAP[(dc2 >> 18) & 3]}, {_pm(dc2 & 0x100000, 'ExtFmt')} {_pm(dc2 & 0x200000, 'EETLPPrefix')}")
    if dc2 & 0x200000:
        line += f", MaxEETLPPrefixes {((dc2 >> 22) & 3) or 4}"
    out.append(line)
    epr = ["Not Supported", "Dev Specific", "Form Factor Dev Specific", "Reserved"][(dc2 >> 24) & 3]
    out.append(f"\t\t EmergencyPowerReduction {epr}, {_pm(dc2 & 0x4000000, 'EmergencyPowerReductionInit')}")
    out.append(f"\t\t {_pm(dc2 & 0x80000000, 'FRS')} {_pm(dc2 & 0x1000, 'TPHComp')} {_pm(dc2 & 0x2000, 'ExtTPHComp')}")
    out.append(f"\t\t AtomicOpsCap: {_pm(dc2 & 0x80, '32bit')} {_pm(dc2 & 0x100, '64bit')} {_pm(dc2 & 0x200, '128bitCAS')}")
    out.append(f"\tDevCtl2: Completion Timeout: {_CTO.get(dctl2 & 0xF, 'Unknown')}, "
               f"{_pm(dctl2 & 0x10, 'TimeoutDis')} {_pm(dctl2 & 0x400, 'LTR')} "
               f"{_pm(dctl2 & 0x1000, '10BitTagReq')} OBFF {_OBFF_CTL[(dctl2 >> 13) & 3]},")
    out.append(f"\t\t AtomicOpsCtl: {_pm(dctl2 & 0x40, 'ReqEn')}")
    if lc2:
        sp = [v for k, v in sorted(_SPEEDS.items()) if lc2 & (1 << k)]
        out.append(f"\tLnkCap2: Supported Link Speeds: {sp[0] + '-' + sp[-1] if sp else 'RsvdP'}, "
                   f"Crosslink{'+' if lc2 & 0x100 else '-'} Retimer{'+' if lc2 & 0x800000 else '-'} "
                   f"2Retimers{'+' if lc2 & 0x1000000 else '-'} DRS{'+' if lc2 & 0x80000000 else '-'}")
    out.append(f"\tLnkCtl2: Target Link Speed: {_SPEEDS.get((lctl2 & 0xF) or 1, 'unknown')}, "
               f"{_pm(lctl2 & 0x10, 'EnterCompliance')} {_pm(lctl2 & 0x20, 'SpeedDis')}")
    margin = (lctl2 >> 7) & 7
    out.append(f"\t\t Transmit Margin: {'Normal Operating Range' if margin == 0 else f'Value {margin}'}, "
               f"{_pm(lctl2 & 0x400, 'EnterModifiedCompliance')} {_pm(lctl2 & 0x800, 'ComplianceSOS')}")
    preset = (lctl2 >> 12) & 0xF
    out.append("\t\t Compliance Preset/De-emphasis: "
               + ("-6dB de-emphasis, 0dB preshoot" if preset == 0 else f"preset {preset}"))
    out.append(f"\tLnkSta2: Current De-emphasis Level: {'-3.5dB' if lsta2 & 1 else '-6dB'}, "
               f"{_pm(lsta2 & 2, 'EqualizationComplete')} {_pm(lsta2 & 4, 'EqualizationPhase1')}")
    out.append(f"\t\t {_pm(lsta2 & 8, 'EqualizationPhase2')} {_pm(lsta2 & 0x10, 'EqualizationPhase3')} "
               f"{_pm(lsta2 & 0x20, 'LinkEqualizationRequest')}")
    cross = ["unsupported", "Upstream Port", "Downstream Port", "completed"][(lsta2 >> 8) & 3]
    out.append(f"\t\t {_pm(lsta2 & 0x40, 'Retimer')} {_pm(lsta2 & 0x80, '2Retimers')} CrosslinkRes: {cross}")
    return out


_EXT_NAMES = {0x0001: "Advanced Error Reporting", 0x000F: "Address Translation Service (ATS)",
              0x0003: "Device Serial Number", 0x000B: "Vendor Specific Information",
              0x0010: "Single Root I/O Virtualization (SR-IOV)"}


def describe(config: bytes, bdf: str = "00:03.0", verbose: int = 3,
             bar_sizes: dict[int, int] | None = None, bar_kinds: dict[int, str] | None = None,
             rom_size: int | None = None) -> str:
    """An lspci ``-vvv -nn``-like decoding of ``config`` (sizes from the caller when known)."""
    if len(config) < 64:
        raise VirtioLabError(f"config space of {len(config)} bytes: at least 64 needed")
    ssv, ssid = get_le(config, 0x2C, 2), get_le(config, 0x2E, 2)
    cmd, sta = get_le(config, 4, 2), get_le(config, 6, 2)
    lines = [header_line(config, bdf, numeric=True)]
    if verbose >= 1:
        pi = config[0x09]
        pname = _PROG_IFS.get((get_le(config, 0x0A, 2), pi))
        if pname:
            lines[0] += f" (prog-if {pi:02x} [{pname}])"
        elif pi:
            lines[0] += f" (prog-if {pi:02x})"
    if verbose >= 1:
        lines.append(f"\tSubsystem: {vendor_name(ssv)} Device [{ssv:04x}:{ssid:04x}]")
    if verbose >= 2:
        c = [(1, "I/O"), (2, "Mem"), (4, "BusMaster"), (8, "SpecCycle"), (0x10, "MemWINV"),
             (0x20, "VGASnoop"), (0x40, "ParErr"), (0x80, "Stepping"), (0x100, "SERR"),
             (0x200, "FastB2B"), (0x400, "DisINTx")]
        lines.append("\tControl: " + " ".join(_pm(cmd & m, n) for m, n in c))
        devsel = ["fast", "medium", "slow", "??"][(sta >> 9) & 3]
        lines.append(f"\tStatus: {_pm(sta & 0x10, 'Cap')} {_pm(sta & 0x20, '66MHz')} {_pm(sta & 0x40, 'UDF')} "
                     f"{_pm(sta & 0x80, 'FastB2B')} {_pm(sta & 0x100, 'ParErr')} DEVSEL={devsel} "
                     f"{_pm(sta & 0x800, '>TAbort')} {_pm(sta & 0x1000, '<TAbort')} "
                     f"{_pm(sta & 0x2000, '<MAbort')} {_pm(sta & 0x4000, '>SERR')} "
                     f"{_pm(sta & 0x8000, '<PERR')} {_pm(sta & 0x8, 'INTx')}")
        if cmd & 4:
            lines.append(f"\tLatency: {config[0x0D]}")
    else:
        flags = ["bus master"] if cmd & 4 else []
        lines.append("\tFlags: " + ", ".join(flags + ["fast devsel"]))
    pin, irq = config[0x3D], config[0x3C]
    if pin:
        lines.append(f"\tInterrupt: pin {chr(ord('A') + pin - 1) if pin <= 4 else '?'} routed to IRQ {irq}")
    lines += ["\t" + s for s in _bar_lines(config, bar_sizes, bar_kinds)]
    rom = get_le(config, 0x30, 4)
    if rom or rom_size:
        where = f"{rom & ~0x7FF:08x}" if rom & ~0x7FF else "<unassigned>"
        line = f"\tExpansion ROM at {where} [{'enabled' if rom & 1 else 'disabled'}]"
        if rom_size:
            line += f" [size={format_size(rom_size)}]"
        lines.append(line)
    if verbose >= 1 and sta & regs.PCI_STATUS_CAP_LIST:
        lines += ["\t" + s.replace("\n", "\n\t") for s in _cap_lines(config, verbose)]
        for ext in walk_ext_capabilities(config) if len(config) > 256 else ():
            lines.append(f"\tCapabilities: [{ext.offset:03x} v{ext.version}] "
                         + _EXT_NAMES.get(ext.id, f"Extended Capability ID {ext.id:#x}"))
    return "\n".join(lines) + "\n\n"


def trace_bar_info(state) -> tuple[dict[int, int], dict[int, str], int]:
    """(sizes, kinds, rom size) from a PlugState's facts."""
    sizes = {b.index: b.size for b in state.facts.bars if b.index < regs.PCI_ROM_SLOT}
    kinds = {b.index: b.kind for b in state.facts.bars if b.index < regs.PCI_ROM_SLOT}
    rom = state.facts.bar(regs.PCI_ROM_SLOT)
    return sizes, kinds, (rom.size if rom else 0)


def device_config(state) -> bytes:
    """The bytes a guest sees: 4096 for a PCIe device, else 256."""
    size = state.facts.config_size if state.facts.config_size in (256, 4096) else 256
    return bytes(state.config[:size])


def lspci_text(spec: str, machine: str = "pc", root_port: bool = False, level: int | str | None = 3,
               verbose: int = 0, qemu: str | None = None) -> str:
    """What ``python -m virtio_lab lspci`` prints: the -vvv decoding and/or the hex dump."""
    from ..hw.plug import plug
    if isinstance(verbose, bool) or not isinstance(verbose, int) or not 0 <= verbose <= 3:
        raise VirtioLabTypeError(f"verbose is 0 to 3 (lspci -v, -vv, -vvv), not {shown(verbose)}")
    if level is not None:
        _level(level)
    trace = plug(spec, machine, root_port, qemu)
    st = trace.final
    cfg = device_config(st)
    bdf = trace.machine.bdf
    if verbose:
        sizes, kinds, rom = trace_bar_info(st)
        text = describe(cfg, bdf, verbose, sizes, kinds, rom)
        if level:
            # lspci -v -x: the decoded block, then the hex lines, one blank line at the end
            text = text[:-1] + hexdump(cfg, bdf, level).split("\n", 1)[1]
        return text
    return hexdump(cfg, bdf, level or 3)


def parse_levels(args: Iterable[str]) -> Sequence[int]:  # pragma: no cover - tiny helper
    return [_level(a) for a in args]
