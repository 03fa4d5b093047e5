"""Explain an ``lspci -x/-xxx/-xxxx`` dump from any VMM, and name the QEMU spec behind it.

    >>> from virtio_lab.text.explain import explain
    >>> reports = explain(open("vm.txt").read())      # one DeviceReport per device
    >>> reports[0].qemu["spec"]                          # e.g. 'virtio-net-pci,vectors=2'

Input: what ``lspci -x``, ``-xxx`` or ``-xxxx`` prints (one or many devices, 64, 256
or 4096 bytes each), with or without the ``-v`` text around it, pasted from QEMU, a
cloud VM, another hypervisor or hardware. A device starts at a line ``bb:dd.f ...``
(``dddd:bb:dd.f`` too); its hex lines are ``xx: b0 .. b15``; indented lines (lspci's
``-v`` text) and lines that are neither are skipped. Malformed hex raises
:class:`~virtio_lab.errors.VirtioLabError` with the line number.

For each device: the header fields and BARs explained, the capability list in chain
order with every field decoded (virtio ``cfg_type`` structures by name), warnings for
what is suspicious, and — when it looks like QEMU — the ``-device`` spec and machine
that reproduce it, found by plugging candidate specs with :func:`virtio_lab.plug` and
comparing bytes. What firmware and the guest driver change (BAR and ROM addresses,
COMMAND, cache line, latency, interrupt line, MSI-X enable/mask, PCIe and PM control
registers, the PCI-cfg window) is reported as such, not as a difference in the device.

Backends: a spec that needs one keeps the core's stand-in (``drive=d0`` for
virtio-blk, ``memdev=mem0``, ``fsdev=fs0,mount_tag=share``, ``cryptodev=cr0``): QEMU
refuses the device without it, and nothing in config space tells which backend it was.
Options that live outside PCI config space (MAC address, feature bits, queue sizes,
``rombar``/``romfile`` before firmware maps the ROM) cannot be recovered from a dump.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..errors import VirtioLabError, VirtioLabTypeError, shown, type_name
from ..hw.release import DEFAULT_RELEASE
from ..pci import regs
from ..pci.bits import get_le
from ..pci.capability import walk_capabilities, walk_ext_capabilities

__all__ = ["DeviceReport", "explain", "parse_dump", "render", "VIRTIO_TYPES", "cap_explanation"]

#: virtio device ids (VIRTIO spec 5: Device Types) → name
VIRTIO_TYPES = {
    1: "network", 2: "block", 3: "console", 4: "entropy (rng)", 5: "memory balloon",
    8: "SCSI host", 9: "9P transport", 16: "GPU", 18: "input", 19: "socket (vsock)",
    20: "crypto", 23: "IOMMU", 24: "memory (virtio-mem)", 26: "file system (virtiofs)",
    27: "persistent memory", 25: "sound",
}
_CFG_TYPES = {1: "common", 2: "notify", 3: "isr", 4: "device", 5: "pci-cfg", 8: "shared-memory",
              9: "vendor"}
_CAP_NAMES = {0x01: "Power Management", 0x05: "MSI", 0x09: "Vendor Specific", 0x10: "PCI Express",
              0x11: "MSI-X", 0x03: "VPD", 0x0D: "Bridge subsystem vendor", 0x12: "SATA", 0x13: "AF"}
_EXT_NAMES = {0x0001: "Advanced Error Reporting", 0x000F: "Address Translation Service",
              0x0003: "Device Serial Number", 0x0010: "SR-IOV", 0x000B: "Vendor Specific"}
_PORT_TYPES = {0: "Endpoint", 1: "Legacy Endpoint", 4: "Root Port", 5: "Upstream Port",
               6: "Downstream Port", 7: "PCIe-to-PCI Bridge", 8: "PCI-to-PCIe Bridge",
               9: "Root Complex Integrated Endpoint", 10: "Root Complex Event Collector"}

FIRMWARE_NOTE = ("BAR/ROM addresses, COMMAND, cache line, latency timer, interrupt line, MSI-X "
                 "enable/mask and the PCIe/PM control registers are firmware/driver state: "
                 "QEMU's freshly plugged device has them 0")


# ----------------------------------------------------------------------------- parsing
_HEADER = re.compile(r"^(?:(?P<dom>[0-9a-fA-F]{4,6}):)?(?P<bus>[0-9a-fA-F]{2}):(?P<dev>[0-9a-fA-F]{2})"
                     r"\.(?P<fn>[0-7])(?=\s|$)")
_HEXISH = re.compile(r"^(?P<off>[0-9a-fA-F]+):(?P<rest>(?:\s.*)?)$")
_HEX_INDENTED = re.compile(r"^\s+[0-9a-fA-F]{2,3}:(\s+[0-9a-fA-F]{2}){1,16}\s*$")
_BYTE = re.compile(r"^[0-9a-fA-F]{2}$")


#: The line lspci prints 16 bytes at a time: parsed in one step (most of a dump's lines).
_HEX_FULL = re.compile(r"([0-9a-fA-F]{2,3}): ((?:[0-9a-fA-F]{2} ){15}[0-9a-fA-F]{2})[ \t\r]*")

#: The device explain reports for hex lines pasted without their ``bb:dd.f`` line.
NO_BDF = "??:??.?"


@dataclass
class _Block:
    bdf: str
    header: str
    line: int
    data: bytearray = field(default_factory=bytearray)
    last_line: int = 0
    #: the line that holds fewer than 16 bytes, and why: fine if it is the device's last
    short: tuple[int, str] | None = None


def _text(data: str | bytes) -> str:
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        try:
            s = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data[:err.start].count(b"\n") + 1
            raise VirtioLabError(f"line {line}: binary data (byte 0x{data[err.start]:02x}), "
                                 "not lspci text") from None
    elif isinstance(data, str):
        s = data
    else:
        raise VirtioLabTypeError(f"explain() takes lspci text (str or bytes), not {type_name(data)}")
    m = _CONTROL.search(s)
    if m:
        line = s.count("\n", 0, m.start()) + 1
        raise VirtioLabError(f"line {line}: binary data (control byte 0x{ord(m.group()):02x}), "
                             "not lspci text")
    return s


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\ud800-\udfff]")


def parse_dump(data: str | bytes) -> list[tuple[str, str, int, bytes]]:
    """Split lspci hex-dump text into devices: ``[(bdf, header line, line number, bytes)]``.

    A dump may stop anywhere (a forum post cut short): its bytes run from offset 0 to where
    the text ends, the last line may hold fewer than 16 bytes (a last byte cut to one
    digit is dropped), and hex lines pasted without their ``bb:dd.f`` line are one device
    (bdf :data:`NO_BDF`). What is refused is what is not a dump: binary data, no hex line
    at all, a hex line that is not lspci's, offsets out of order. Linear in the input."""
    text = _text(data)
    if not text.strip():
        raise VirtioLabError("line 1: empty input: expected lspci -x, -xxx or -xxxx output "
                             "(a 'bb:dd.f ...' line, then 'xx: ..' hex lines)")
    blocks: list[_Block] = []
    cur: _Block | None = None
    lines = text.split("\n")
    for no, line in enumerate(lines, 1):
        m = _HEX_FULL.fullmatch(line)
        if m and cur is not None and cur.short is None and int(m[1], 16) == len(cur.data) < 4096:
            cur.data += bytes.fromhex(m[2])  # the common line, in one step
            cur.last_line = no
            continue
        line = line.rstrip("\r")
        if not line.strip():
            if cur is not None and cur.data:
                cur = None
            continue
        h = _HEADER.match(line)
        if h:
            bdf = f"{h['bus']}:{h['dev']}.{h['fn']}".lower()
            if h["dom"]:
                bdf = f"{h['dom'].lower()}:{bdf}"
            cur = _Block(bdf, line, no)
            blocks.append(cur)
            continue
        if line[0] in " \t":
            if not _HEX_INDENTED.match(line):
                continue  # lspci -v text
            line = line.strip()
        hm = _HEXISH.match(line)
        if not hm:
            continue  # prose, a shell prompt, lspci's stderr noise...
        if cur is None and int(hm["off"], 16) == 0 and 2 <= len(hm["off"]) <= 3:
            cur = _Block(NO_BDF, "", no)  # hex lines pasted without their device line
            blocks.append(cur)
        _hex_line(cur, no, hm["off"], hm["rest"])
    if not any(b.data for b in blocks):
        if blocks:
            raise VirtioLabError(f"line {blocks[0].line}: device {blocks[0].bdf} has no hex dump "
                                 "lines (run lspci with -x, -xxx or -xxxx)")
        raise VirtioLabError(f"line {len(lines)}: no device found: expected a 'bb:dd.f Class: "
                             "Vendor Device' line followed by 'xx: ..' hex lines (lspci -x, -xxx "
                             "or -xxxx output)")
    return [(b.bdf, b.header, b.line, bytes(b.data)) for b in blocks]


def _hex_line(cur: _Block | None, no: int, off_text: str, rest: str) -> None:
    if cur is None:
        raise VirtioLabError(f"line {no}: hex dump line before any device line (expected "
                             "'bb:dd.f Class: Vendor Device' first, as lspci -x prints)")
    if not 2 <= len(off_text) <= 8:
        raise VirtioLabError(f"line {no}: bad offset {shown(off_text + ':', limit=20)} (lspci "
                             "writes 2 or 3 hex digits)")
    off = int(off_text, 16)
    if off % 16:
        raise VirtioLabError(f"line {no}: bad offset 0x{off:x}: lspci starts a line every 16 bytes")
    if off >= 4096:
        raise VirtioLabError(f"line {no}: offset 0x{off:x} is beyond 4096 bytes, the end of PCIe "
                             "config space")
    expected = len(cur.data)
    if cur.short:  # a short line is where a paste ends; one the dump goes on after is broken
        raise VirtioLabError(f"line {cur.short[0]}: {cur.short[1]} (and the dump goes on at line {no})")
    if off < expected:
        raise VirtioLabError(f"line {no}: duplicate offset 0x{off:02x} (device {cur.bdf} already has "
                             f"bytes up to 0x{expected - 1:02x})")
    if off > expected:
        raise VirtioLabError(f"line {no}: offset 0x{off:02x} where 0x{expected:02x} was expected "
                             "(lines missing or out of order)")
    tokens = rest.split()
    half = None
    if tokens and len(tokens[-1]) == 1 and tokens[-1] in _HEX_DIGITS and len(tokens) <= 16:
        half = tokens.pop()  # the paste ends inside a byte: the half byte says nothing
    for t in tokens:
        if not _BYTE.match(t):
            if re.fullmatch(r"[0-9a-fA-F]+", t):
                raise VirtioLabError(f"line {no}: {shown(t, limit=20)} is not a byte: lspci prints "
                                     "two hex digits per byte")
            raise VirtioLabError(f"line {no}: {shown(t, limit=20)} is not a hex byte")
    if len(tokens) > 16:
        raise VirtioLabError(f"line {no}: {len(tokens)} bytes at 0x{off:02x}; lspci prints 16 per "
                             "line")
    cur.data += bytes.fromhex("".join(tokens))
    cur.last_line = no
    if half is not None:
        cur.short = (no, f"{shown(half)} is not a byte: lspci prints two hex digits per byte")
    elif len(tokens) < 16:
        cur.short = (no, f"{len(tokens)} bytes at 0x{off:02x}; lspci prints 16 per line")


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


# ----------------------------------------------------------------------------- decoding
@dataclass
class DeviceReport:
    """One device of a dump: decoded fields, capabilities, warnings, the QEMU match."""

    bdf: str
    header: str
    line: int
    config: bytes
    # None: the field lies past the end of the dump
    vendor_id: int | None
    device_id: int | None
    revision: int | None
    class_code: int | None  # class word: base << 8 | subclass (lspci -nn's [0200])
    prog_if: int | None
    subsystem_vendor: int | None
    subsystem_id: int | None
    fields: list[tuple[str, str, str]] = field(default_factory=list)  # (where, name, explanation)
    bars: list[dict[str, Any]] = field(default_factory=list)
    caps: list[dict[str, Any]] = field(default_factory=list)
    ext_caps: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    virtio: dict[str, Any] | None = None
    qemu: dict[str, Any] | None = None

    @property
    def bytes_available(self) -> int:
        return len(self.config)

    def as_dict(self) -> dict[str, Any]:
        return {"bdf": self.bdf, "vendor_id": self.vendor_id, "device_id": self.device_id,
                "revision": self.revision, "class": self.class_code, "prog_if": self.prog_if,
                "subsystem_vendor": self.subsystem_vendor, "subsystem_id": self.subsystem_id,
                "bytes_available": self.bytes_available, "bars": self.bars, "caps": self.caps,
                "ext_caps": self.ext_caps, "virtio": self.virtio, "warnings": self.warnings,
                "qemu": self.qemu}


def _bar_kinds(cfg: bytes) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    i = 0
    while i < 6:
        raw = get_le(cfg, 0x10 + 4 * i, 4)
        if raw & 1:
            out.append({"index": i, "kind": "io", "address": raw & ~3, "raw": raw})
            i += 1
        elif (raw & 6) == 4:
            hi = get_le(cfg, 0x14 + 4 * i, 4) if i < 5 else 0
            out.append({"index": i, "kind": "mem64", "prefetchable": bool(raw & 8),
                        "address": (raw & ~0xF) | (hi << 32), "raw": raw})
            i += 2
        elif raw:
            out.append({"index": i, "kind": "mem32" if (raw & 6) == 0 else "mem-reserved-type",
                        "prefetchable": bool(raw & 8), "address": raw & ~0xF, "raw": raw})
            i += 1
        else:
            out.append({"index": i, "kind": "unknown", "address": 0, "raw": 0})
            i += 1
    return out


def _bar_of(bars: list[dict[str, Any]], index: int) -> tuple[dict[str, Any] | None, bool]:
    """(the BAR record, whether ``index`` is the upper half of a 64-bit BAR)."""
    for b in bars:
        if b["index"] == index:
            return b, False
        if b["kind"] == "mem64" and b["index"] + 1 == index:
            return b, True
    return None, False


def _decode_cap(cfg: bytes, cap, is_virtio: bool) -> dict[str, Any]:
    d: dict[str, Any] = {"offset": cap.offset, "id": cap.id,
                         "name": _CAP_NAMES.get(cap.id, f"capability 0x{cap.id:02x}"), "next": cap.next}
    d.update(dict(cap.fields))
    o, n = cap.offset, len(cfg)
    if cap.id == regs.CapID.VNDR and "cfg_type" in d:
        d["virtio"] = is_virtio
        d["cfg_type_name"] = _CFG_TYPES.get(d["cfg_type"], "unknown")
        if d["cfg_type"] == regs.VirtioCfgType.PCI_CFG and d.get("cap_len", 0) >= 20 and o + 20 <= n:
            d["pci_cfg_data"] = get_le(cfg, o + 16, 4)
        if d["cfg_type"] == regs.VirtioCfgType.SHARED_MEMORY_CFG and d.get("cap_len", 0) >= 24 and o + 24 <= n:
            d["cap_offset"] |= get_le(cfg, o + 16, 4) << 32
            d["length"] |= get_le(cfg, o + 20, 4) << 32
    elif cap.id == regs.CapID.MSIX and o + 4 <= n:
        ctrl = get_le(cfg, o + 2, 2)
        d["enabled"] = bool(ctrl & regs.PCI_MSIX_FLAGS_ENABLE)
        d["function_masked"] = bool(ctrl & regs.PCI_MSIX_FLAGS_MASKALL)
        d.setdefault("table_size", (ctrl & regs.PCI_MSIX_FLAGS_QSIZE) + 1)
    elif cap.id == regs.CapID.EXP and o + 4 <= n:
        flags = get_le(cfg, o + 2, 2)
        d["version"] = flags & 0xF
        d["port_type"] = _PORT_TYPES.get((flags >> 4) & 0xF, f"type {(flags >> 4) & 0xF}")
        if o + 8 <= n:
            devcap = get_le(cfg, o + 4, 4)
            d["max_payload"] = 128 << (devcap & 7)
            d["flr"] = bool(devcap & (1 << 28))
            d["rber"] = bool(devcap & (1 << 15))
        if o + 20 <= n:
            lnk = get_le(cfg, o + 12, 4)
            d["link_width"] = (lnk >> 4) & 0x3F
            d["link_speed_code"] = lnk & 0xF
    elif cap.id == regs.CapID.PM and o + 6 <= n:
        pmc, ctl = get_le(cfg, o + 2, 2), get_le(cfg, o + 4, 2)
        d["version"] = pmc & 7
        d["power_state"] = f"D{ctl & 3}"
    elif cap.id == regs.CapID.MSI and o + 4 <= n:
        ctrl = get_le(cfg, o + 2, 2)
        d["enabled"] = bool(ctrl & 1)
        d["vectors"] = 1 << ((ctrl >> 1) & 7)
        d["addr64"] = bool(ctrl & 0x80)
    return d


_VIRTIO_ROLE = {
    1: "common configuration: feature words, queue select/size/enable/addresses, device status",
    2: "notification area: the driver writes a queue index at offset + queue_notify_off x multiplier",
    3: "ISR status: reading it returns and clears the interrupt cause (INTx)",
    4: "device-specific configuration (MAC, capacity, ...)",
    5: "PCI configuration access window: reach BAR contents through config space (no BAR needed)",
    8: "shared memory region", 9: "vendor data",
}


def cap_explanation(c: dict[str, Any]) -> str:
    """One sentence on what a decoded capability means."""
    if "cfg_type" in c:
        role = _VIRTIO_ROLE.get(c["cfg_type"], "unknown virtio structure")
        if c["cfg_type"] == 5:
            return role
        return f"{role}; BAR{c['bar']} + 0x{c['cap_offset']:x}, {c['length']} bytes"
    if c["id"] == regs.CapID.MSIX and "table_bir" in c:
        return (f"{c['table_size']} MSI-X vectors; table in BAR{c['table_bir']} + 0x{c['table_offset']:x}, "
                f"PBA in BAR{c['pba_bir']} + 0x{c['pba_offset']:x}; "
                f"{'enabled' if c.get('enabled') else 'not enabled'} (the driver enables it)")
    if c["id"] == regs.CapID.EXP and "port_type" in c:
        return (f"PCI Express v{c['version']} {c['port_type']}: the device sits on a PCIe link "
                "(QEMU: behind a root port)")
    if c["id"] == regs.CapID.PM and "version" in c:
        return f"power management v{c['version']}, currently {c['power_state']}"
    if c["id"] == regs.CapID.VNDR:
        return f"vendor-specific capability, {c.get('cap_len', '?')} bytes (not a virtio structure)"
    return ""


#: The header fields explain names: (offset, width, name).
_HEADER_FIELDS = ((0x00, 2, "vendor_id"), (0x02, 2, "device_id"), (0x04, 2, "command"),
                  (0x06, 2, "status"), (0x08, 1, "revision"), (0x09, 3, "class"),
                  (0x0C, 1, "cache_line_size"), (0x0E, 1, "header_type"), (0x2C, 4, "subsystem"),
                  (0x30, 4, "rom_address"), (0x34, 1, "capabilities_ptr"), (0x3C, 2, "interrupt"))
_FIELD_END = {name: off + width for off, width, name in _HEADER_FIELDS}


def _not_dumped(n: int) -> str:
    return f"not in the dump (it ends at 0x{n:02x})"


def _header_fields(r: DeviceReport, cfg: bytes, n: int) -> None:
    """The header's fields from ``cfg`` (the dump, zero-padded to 64 bytes); a field past
    the ``n`` bytes dumped is marked as not in the dump."""
    _header_texts(r, cfg)
    for i, (where, name, text) in enumerate(r.fields):
        end = _FIELD_END.get(name)
        if end is None:  # a BAR: its own dword (two for a 64-bit one)
            b = next(b for b in r.bars if f"bar{b['index']}" == name)
            end = 0x14 + 4 * b["index"] + (4 if b["kind"] == "mem64" else 0)
        if end > n:
            r.fields[i] = (where, name, _not_dumped(n))
    for b in r.bars:
        if 0x14 + 4 * b["index"] > n:
            b.update(kind="not dumped", address=None)


def _header_texts(r: DeviceReport, cfg: bytes) -> None:
    cmd, sta = get_le(cfg, 4, 2), get_le(cfg, 6, 2)
    f = r.fields
    vid, did = get_le(cfg, 0, 2), get_le(cfg, 2, 2)
    vendor = "Red Hat / Qumranet: the virtio vendor" if vid == 0x1AF4 else "vendor"
    f.append(("0x00", "vendor_id", f"0x{vid:04x} ({vendor})"))
    if vid == 0x1AF4 and 0x1000 <= did <= 0x103F:
        dmeaning = "transitional/legacy virtio id: the virtio type is the subsystem id"
    elif vid == 0x1AF4 and 0x1040 <= did <= 0x107F:
        dmeaning = f"modern virtio id 0x1040 + {did - 0x1040} ({VIRTIO_TYPES.get(did - 0x1040, 'type')})"
    else:
        dmeaning = "device id"
    f.append(("0x02", "device_id", f"0x{did:04x} ({dmeaning})"))
    bits = [n for m, n in ((1, "I/O decode"), (2, "memory decode"), (4, "bus master"),
                           (0x100, "SERR#"), (0x400, "INTx disabled")) if cmd & m]
    f.append(("0x04", "command", f"0x{cmd:04x} ({', '.join(bits) or 'nothing enabled'}; set by "
              "firmware and the driver, 0 right after QEMU's plug)"))
    sb = [n for m, n in ((0x10, "capability list"), (0x08, "INTx pending"), (0x20, "66 MHz"),
                         (0x100, "parity error"), (0x800, "target abort signalled"),
                         (0x2000, "master abort"), (0x4000, "SERR signalled"),
                         (0x8000, "parity error detected")) if sta & m]
    f.append(("0x06", "status", f"0x{sta:04x} ({', '.join(sb) or 'none'})"))
    rev = cfg[8]
    f.append(("0x08", "revision", f"0x{rev:02x} ({'modern-only devices use 1' if rev else '0: transitional or legacy'})"))
    f.append(("0x09", "class", f"0x{get_le(cfg, 0x0A, 2):04x} prog-if 0x{cfg[9]:02x}"))
    f.append(("0x0c", "cache_line_size", f"{cfg[0x0C]} (firmware writes it)"))
    ht = cfg[0x0E]
    f.append(("0x0e", "header_type", f"0x{ht:02x} (type {ht & 0x7F}"
              + (", multifunction" if ht & 0x80 else "") + ")"))
    for b in r.bars:
        where = f"0x{0x10 + 4 * b['index']:02x}"
        if b["kind"] == "unknown":
            f.append((where, f"bar{b['index']}", "0 (unimplemented, or a 32-bit memory BAR firmware has "
                      "not placed yet: a dump cannot tell; lspci -F does not show it)"))
            continue
        addr = f"0x{b['address']:x}" if b["address"] else "unassigned"
        kind = {"io": "I/O", "mem32": "32-bit memory", "mem64": "64-bit memory"}.get(b["kind"], b["kind"])
        pre = ", prefetchable" if b.get("prefetchable") else ""
        f.append((where, f"bar{b['index']}", f"{kind}{pre} at {addr} (address: firmware state)"))
    f.append(("0x2c", "subsystem", f"{get_le(cfg, 0x2C, 2):04x}:{get_le(cfg, 0x2E, 2):04x}"))
    rom = get_le(cfg, 0x30, 4)
    f.append(("0x30", "rom_address", f"0x{rom:08x}" + (" (firmware placed the option ROM)" if rom else
                                                       " (not placed: ROM size is not visible in a dump)")))
    f.append(("0x34", "capabilities_ptr", f"0x{cfg[0x34]:02x}" + ("" if sta & 0x10 else " (ignored: STATUS.CAP_LIST clear)")))
    f.append(("0x3c", "interrupt", f"line {cfg[0x3C]} (firmware), pin {cfg[0x3D]} "
              f"({'INT' + chr(64 + cfg[0x3D]) if 1 <= cfg[0x3D] <= 4 else 'none'})"))


def _virtio_checks(r: DeviceReport, cfg: bytes) -> None:
    did = r.device_id
    legacy_id = did < 0x1040
    vtype = r.subsystem_id if legacy_id else did - 0x1040  # None: the subsystem id is not dumped
    vcaps = [c for c in r.caps if c["id"] == regs.CapID.VNDR and "cfg_type" in c]
    by_type: dict[int, dict[str, Any]] = {}
    for c in vcaps:
        by_type.setdefault(c["cfg_type"], c)  # Linux takes the first of each type
    modern = 1 in by_type if r.caps_ok else None  # None: the capabilities are not in the dump
    r.virtio = {"type": vtype, "name": VIRTIO_TYPES.get(vtype, "unknown"),
                "id_kind": "transitional" if legacy_id else "modern",
                "legacy_interface": legacy_id, "modern_interface": modern}
    w = r.warnings
    if legacy_id:
        which = (f"virtio type {vtype} ({VIRTIO_TYPES.get(vtype, 'unknown')}) from the subsystem id"
                 if vtype is not None else "the virtio type is the subsystem id, past the dump's end")
        r.notes.append(f"transitional/legacy id 0x{did:04x}: {which}; the legacy "
                       "virtio 0.9.5 header lives in BAR0 (I/O)")
        b0, _ = _bar_of(r.bars, 0)
        if b0 and b0["kind"] not in ("io", "unknown", "not dumped"):
            w.append(f"BAR0 is {b0['kind']}, but a transitional virtio device needs its legacy "
                     "header in an I/O BAR0 (virtio spec 4.1.5.1.1.1)")
        if not vcaps and r.caps_ok:
            w.append("legacy device without virtio capabilities: only the legacy (0.9.5) interface; "
                     "a modern (virtio 1.x) driver has nothing to bind to")
            if r.revision:
                w.append(f"legacy-only device with revision 0x{r.revision:02x}: the Linux legacy "
                         "driver requires revision 0")
    else:
        if r.revision == 0:
            w.append("modern-only virtio id with revision 0 (the spec says revision 1 or higher)")
        if not vcaps and r.caps_ok:
            w.append("modern virtio id but no virtio capabilities: no driver can probe it")
    if vcaps:
        missing = [n for t, n in ((1, "common"), (3, "isr"), (2, "notify")) if t not in by_type]
        if missing:
            w.append(f"no virtio {'/'.join(missing)} capability: the Linux modern driver "
                     + ("falls back to the legacy driver" if 1 not in by_type else "fails the probe"))
    for c in vcaps:
        t, name = c["cfg_type"], c["cfg_type_name"]
        where = f"virtio {name} cap at 0x{c['offset']:02x}"
        if t in (1, 2, 3, 4):
            if c["bar"] > 5:
                w.append(f"{where}: bar {c['bar']} is not a BAR (0-5); drivers skip it")
            else:
                bar, upper = _bar_of(r.bars, c["bar"])
                if upper:
                    w.append(f"{where}: bar {c['bar']} is the upper half of 64-bit BAR{c['bar'] - 1} "
                             "(BAR of the wrong kind)")
                elif bar and bar["kind"] == "unknown" and get_le(cfg, 4, 2) & 3:
                    w.append(f"{where}: BAR{c['bar']} reads 0 although firmware enabled decoding: "
                             "unimplemented BAR?")
            if c["length"] == 0:
                w.append(f"{where}: zero-length region" + (" (Linux: 'bad capability len 0', probe fails)"
                                                           if t == 4 else ""))
            minlen = {1: 56, 2: 2, 3: 1}.get(t, 0)
            if c["length"] and c["length"] < minlen:
                w.append(f"{where}: length {c['length']} < {minlen}, the minimum the driver maps")
            align = {1: 4, 2: 2, 4: 4}.get(t, 1)
            if c["cap_offset"] % align:
                w.append(f"{where}: offset 0x{c['cap_offset']:x} not {align}-aligned")
        if t == 2 and c.get("cap_len", 0) < 20:
            w.append(f"{where}: cap_len {c['cap_len']} < 20: no notify_off_multiplier")
        if t == 5 and c.get("cap_len", 0) < 20:
            w.append(f"{where}: cap_len {c['cap_len']} < 20 (struct virtio_pci_cfg_cap is 20 bytes)")
    for c in r.caps:
        if c["id"] == regs.CapID.MSIX:
            for key in ("table_bir", "pba_bir"):
                if key in c:
                    bar, upper = _bar_of(r.bars, c[key])
                    if c[key] > 5 or upper or (bar and bar["kind"] == "io"):
                        w.append(f"MSI-X {key.split('_')[0]} in BAR{c[key]}: must be a memory BAR "
                                 "(BAR of the wrong kind)")


#: Reports already made, by (config bytes, on bus 0): the same bytes always explain the same
#: way, and a dump of many devices repeats a few (a fleet's VMs, a host's virtual functions).
_REPORTS: dict[tuple[bytes, bool, str], DeviceReport] = {}
_REPORTS_MAX = 1024


def _on_bus0(bdf: str) -> bool:
    return bdf == NO_BDF or bdf.split(":")[-2] == "00"


def _decode(bdf: str, header: str, line: int, cfg: bytes, qemu: str = DEFAULT_RELEASE) -> DeviceReport:
    key = (cfg, _on_bus0(bdf), qemu)
    done = _REPORTS.get(key)
    if done is None:
        if len(_REPORTS) >= _REPORTS_MAX:
            _REPORTS.clear()
        done = _REPORTS[key] = _decode_bytes(bdf, header, line, cfg, qemu)
    return _copy(done, bdf, header, line)


def _copy(r: DeviceReport, bdf: str, header: str, line: int) -> DeviceReport:
    """``r`` for another device with the same bytes: nothing of it shared but immutable values."""
    qemu = None if r.qemu is None else {**r.qemu, "differences": [dict(d) for d in r.qemu["differences"]]}
    copy = DeviceReport(bdf, header, line, r.config, r.vendor_id, r.device_id, r.revision,
                        r.class_code, r.prog_if, r.subsystem_vendor, r.subsystem_id, list(r.fields),
                        [dict(b) for b in r.bars], [dict(c) for c in r.caps],
                        [dict(e) for e in r.ext_caps], list(r.warnings), list(r.notes),
                        None if r.virtio is None else dict(r.virtio), qemu)
    copy.caps_ok = r.caps_ok
    copy.release = r.release
    return copy


def _decode_bytes(bdf: str, header: str, line: int, cfg: bytes,
                  qemu: str = DEFAULT_RELEASE) -> DeviceReport:
    n = len(cfg)
    full = cfg + bytes(64 - n) if n < 64 else cfg  # the header, zeros past the dump (marked)

    def at(offset: int, width: int) -> int | None:
        return get_le(full, offset, width) if offset + width <= n else None

    r = DeviceReport(bdf=bdf, header=header, line=line, config=cfg,
                     vendor_id=at(0, 2), device_id=at(2, 2), revision=at(8, 1),
                     class_code=at(0x0A, 2), prog_if=at(9, 1),
                     subsystem_vendor=at(0x2C, 2), subsystem_id=at(0x2E, 2))
    if r.vendor_id == 0xFFFF:
        r.warnings.append("vendor id 0xffff: no device answered (or the dump is all ones)")
    if n > 0x0E and cfg[0x0E] & 0x7F:
        r.warnings.append(f"header type {cfg[0x0E] & 0x7F}: not a type 0 endpoint; decoded as type 0")
    r.release = qemu
    r.bars = [{k: v for k, v in b.items() if k != "raw"} for b in _bar_kinds(full)]
    _header_fields(r, full, n)  # (marks the BARs past the dump too)
    is_virtio = r.vendor_id == 0x1AF4 and r.device_id is not None and 0x1000 <= r.device_id <= 0x107F
    r.caps, problems, cut = _capabilities(cfg, is_virtio)
    r.warnings += problems
    r.caps_ok = cut is None
    if cut:
        r.warnings.append(cut)
        if n < 256:
            r.notes.append("the dump is too short for the capability list: use lspci -xxx (256 bytes)")
    if n > 256:
        r.ext_caps = [{**e.as_dict(), "name": _EXT_NAMES.get(e.id, f"extended capability 0x{e.id:04x}")}
                      for e in walk_ext_capabilities(cfg)]
    if is_virtio:
        _virtio_checks(r, full)
        try:
            r.qemu = _match_qemu(r, cfg, qemu)
        except VirtioLabError:  # pragma: no cover - candidate specs are built to be valid
            r.qemu = None
    return r


#: The size of the capabilities whose size their id gives (MSI-X 12, PM 8, PCIe v2 60).
_CAP_SIZES = {regs.CapID.MSIX: 12, regs.CapID.PM: regs.PCI_PM_SIZEOF,
              regs.CapID.EXP: regs.PCI_EXP_VER2_SIZEOF}


def _cap_size(cfg: bytes, c) -> int:
    """How many bytes capability ``c`` spans, as far as the dump can tell: by its id, by its
    own length byte (vendor-specific), by its flags (MSI: 64-bit address, per-vector mask)."""
    o, n = c.offset, len(cfg)
    if c.id == regs.CapID.VNDR:
        return max(cfg[o + 2], 3) if o + 2 < n else 3
    if c.id == regs.CapID.MSI:
        if o + 4 > n:
            return 4
        flags = get_le(cfg, o + 2, 2)
        return 10 + (4 if flags & 0x80 else 0) + (10 if flags & 0x100 else 0)
    return max(_CAP_SIZES.get(c.id, 2), c.length)


#: The capability list decoded, by what it depends on: STATUS.CAP_LIST, the pointer at 0x34,
#: bytes 0x40-0xff and the dump's length (the same device at other BAR addresses, a fleet).
_CAPS: dict[tuple, tuple] = {}


def _capabilities(cfg: bytes, is_virtio: bool) -> tuple[list[dict[str, Any]], list[str], str | None]:
    """(the capabilities in chain order, decoded and explained; the list's problems; the
    one warning of a dump cut short, or None)."""
    n = len(cfg)
    key = (cfg[6] & 0x10 if n > 6 else None, cfg[0x34] if n > 0x34 else None, cfg[0x40:256],
           n, is_virtio)
    done = _CAPS.get(key)
    if done is None:
        walk = walk_capabilities(cfg)
        caps = [_decode_cap(cfg, c, is_virtio) for c in walk.caps]
        for c in caps:
            c["explanation"] = cap_explanation(c)
        cut = _cut(caps, walk, cfg)
        problems = tuple(p for p in walk.problems if "beyond" not in p and "too short" not in p)
        if len(_CAPS) >= _REPORTS_MAX:
            _CAPS.clear()
        done = _CAPS[key] = (tuple(tuple(c.items()) for c in caps), problems, cut)
    return [dict(items) for items in done[0]], list(done[1]), done[2]


def _cut(caps: list[dict[str, Any]], walk, cfg: bytes) -> str | None:
    """The one warning a dump cut short gets: where it ends, and which structure it cuts
    (the header, a capability, or the list before the capability it points to); None
    when every structure the dump shows is whole."""
    n = len(cfg)
    if n < regs.PCI_CONFIG_HEADER_SIZE:
        return (f"the dump ends at 0x{n:02x}, inside the 64-byte header: the fields from there "
                "on are not in it, nor are the capabilities")
    for c, d in zip(walk.caps, caps):
        size = _cap_size(cfg, c)
        if c.offset + size > n:
            d["cut_at"] = n
            return (f"the dump ends at 0x{n:02x}, inside the {d['name']} capability at "
                    f"0x{c.offset:02x} ({size} bytes): its fields from 0x{n:02x} on are not "
                    "in the dump")
    beyond = next((p for p in walk.problems if "beyond" in p), None)
    if beyond:
        return f"{beyond}: the dump ends at 0x{n:02x}, before the rest of the list"
    return None


DeviceReport.caps_ok = True  # type: ignore[attr-defined]
DeviceReport.release = DEFAULT_RELEASE  # type: ignore[attr-defined]


def explain(text: str | bytes, qemu: str | None = None) -> list[DeviceReport]:
    """Decode every device of an lspci hex dump; see the module docstring. The spec that
    reproduces a virtio device is searched on QEMU ``qemu`` (5.2, 7.2, 10.0; default 7.2)."""
    from ..hw.release import release
    rel = release(qemu).version
    return [_decode(*blk, rel) for blk in parse_dump(text)]


# ----------------------------------------------------------------------------- QEMU match
_BACKENDS = {"drive": "drive=d0", "memdev": "memdev=mem0", "fsdev": "fsdev=fs0,mount_tag=share",
             "cryptodev": "cryptodev=cr0"}
_TOGGLES = ("x-pcie-flr-init=off", "x-pcie-pm-init=off", "x-pcie-lnkctl-init=off",
            "x-pcie-deverr-init=off", "x-pcie-extcap-init=off", "aer=on", "ats=on",
            "x-pcie-lnksta-dllla=off")


def _firmware_mask(cand: bytes, kinds: dict[int, str]) -> dict[int, int]:
    """offset → bits that are firmware/driver state (not compared)."""
    m: dict[int, int] = {4: 0xFF, 5: 0xFF, 6: 0x0F, 7: 0xF9, 0x0C: 0xFF, 0x0D: 0xFF, 0x3C: 0xFF}
    for o in range(0x30, 0x34):
        m[o] = 0xFF
    i = 0
    while i < 6:
        base = 0x10 + 4 * i
        kind = kinds.get(i)
        keep = 0x1 if kind == "io" else 0xF
        m[base] = 0xFF & ~keep
        for k in range(1, 4):
            m[base + k] = 0xFF
        if kind == "mem64":
            for k in range(4, 8):
                m[base + k] = 0xFF
            i += 2
        else:
            i += 1
    for c in walk_capabilities(cand).caps:
        o = c.offset
        if c.id == regs.CapID.MSIX:
            m[o + 3] = 0xC0
        elif c.id == regs.CapID.EXP:
            for k in (8, 9, 10, 11, 16, 17, 40, 41):
                m[o + k] = 0xFF
        elif c.id == regs.CapID.PM:
            m[o + 4] = m[o + 5] = 0xFF
        elif c.id == regs.CapID.VNDR and c.get("cfg_type") == regs.VirtioCfgType.PCI_CFG:
            m[o + 4] = 0xFF
            for k in range(8, 20):
                m[o + k] = 0xFF
    return m


@dataclass(frozen=True)
class _Candidate:
    """A plugged candidate spec: its config bytes, as an integer too, and the bits compared
    (everything but firmware/driver state), for a comparison in a few integer operations."""

    config: bytes
    value: int
    compared: int


_NONZERO = re.compile(rb"[^\x00]")


def _positions(x: int, n: int) -> list[int]:
    """The offsets of the bytes of ``x`` (little-endian, ``n`` bytes) that are not zero."""
    return [m.start() for m in _NONZERO.finditer(x.to_bytes(n, "little"))] if x else []


def _compare(dump: bytes, cand: _Candidate) -> tuple[int, list[int], list[int]]:
    """(structural difference count, structural offsets, firmware-state offsets)."""
    n = min(len(dump), len(cand.config)) if len(dump) <= 256 or len(cand.config) > 256 else 256
    width = (1 << (8 * n)) - 1
    x = (int.from_bytes(dump[:n], "little") ^ cand.value) & width
    real = _positions(x & cand.compared, n)
    fw = [i for i in _positions(x & ~cand.compared, n) if i not in set(real)] if x else []
    if len(dump) > 256 and len(cand.config) <= 256:
        real += [m.start() + 256 for m in _EXTRA.finditer(dump, 256)][:64]
    return len(real), real, fw


_EXTRA = re.compile(rb"[^\x00\xff]")


@lru_cache(maxsize=256)
def _labels(config: bytes):
    """Each byte's field in a candidate's config space (one field map per candidate)."""
    from ..pci.layout import field_map
    return field_map(config if len(config) in (256, 4096) else (config + b"\0" * 256)[:256])


@lru_cache(maxsize=1024)  # at most a few MiB: each holds a 4 KiB config and two integers of it
def _candidate(spec: str, machine: str, rp: bool, qemu: str = DEFAULT_RELEASE) -> _Candidate | None:
    """The plug of a candidate spec (None: QEMU refuses it); each is plugged once a process."""
    from ..hw.plug import plug
    try:
        st = plug(spec, machine, rp, qemu).final
    except VirtioLabError:
        return None
    size = st.facts.config_size if st.facts.config_size in (256, 4096) else 256
    kinds = {b.index: b.kind for b in st.facts.bars if b.index < 6}
    config = bytes(st.config[:size])
    compared = bytearray(b"\xff" * size)
    for offset, ignored in _firmware_mask(config, kinds).items():
        compared[offset] &= ~ignored
    return _Candidate(config, int.from_bytes(config, "little"), int.from_bytes(compared, "little"))


def _search_key(r: DeviceReport, cfg: bytes) -> tuple:
    """What the spec search depends on: the dump without the bits no candidate compares
    (COMMAND, STATUS's error bits, cache line, latency, interrupt line, the ROM BAR and the
    BAR address bits above bit 3) and whether the device sits on bus 0. Dumps that differ
    only in those bits (the same device after another firmware run) find the same spec."""
    key = bytearray(cfg[:256])
    for o, keep in ((4, 0), (5, 0), (6, 0xF0), (7, 0x06), (0x0C, 0), (0x0D, 0), (0x3C, 0),
                    (0x30, 0), (0x31, 0), (0x32, 0), (0x33, 0)):
        if o < len(key):
            key[o] &= keep
    for o in range(0x10, min(0x28, len(key))):
        key[o] &= 0x0F if o % 4 == 0 else 0
    return bytes(key) + cfg[256:], _on_bus0(r.bdf), len(cfg)


def _type_names(r: DeviceReport) -> list[str]:
    from ..hw.devices import supported_types
    vt = r.virtio["type"] if r.virtio else -1
    names = [n for n, info in supported_types().items()
             if info.variant == "generic" and info.model.virtio_id == vt]
    names.sort(key=lambda n: (info_class(n) != r.class_code, n == "virtio-vga", n))
    return names


def info_class(name: str) -> int:
    from ..hw.devices import model_for
    return model_for(name).model.class_id


#: The spec search's outcome for each search key (see _search_key): (spec, machine, root port)
#: or None. Bounded: a dump of many devices repeats few structures.
_SEARCHES: dict[tuple, tuple[str, str, bool] | None] = {}
_SEARCHES_MAX = 1024


def _match_qemu(r: DeviceReport, cfg: bytes, qemu: str = DEFAULT_RELEASE) -> dict[str, Any] | None:
    if r.subsystem_vendor != 0x1AF4:
        return None
    key = _search_key(r, cfg) + (qemu,)
    if key not in _SEARCHES:
        if len(_SEARCHES) >= _SEARCHES_MAX:
            _SEARCHES.clear()
        _SEARCHES[key] = _search(r, cfg, qemu)
    found = _SEARCHES[key]
    if found is None:
        return None
    spec, machine, rp = found
    cand = _candidate(spec, machine, rp, qemu)
    assert cand is not None
    n_real, real, fw = _compare(cfg, cand)
    if n_real > 24:
        r.notes.append(f"does not look like a QEMU {qemu} device: the closest spec ({spec}) differs in "
                       f"{n_real} bytes" + (" (capabilities appended from 0x40: the Rust VMMs' layout)"
                                            if r.caps and r.caps[0]["offset"] == 0x40 and len(r.caps) > 1
                                            and r.caps[-1]["offset"] > 0x40 else ""))
        return None
    return {"spec": spec, "machine": machine, "root_port": rp, "qemu": qemu,
            "exact": n_real == 0,
            "differences": _describe_diffs(cfg, cand.config, real, fw),
            "firmware_state": FIRMWARE_NOTE if fw else "",
            "note": ("options outside PCI config space (MAC, features, queue sizes, ROM file, "
                     "backends) cannot be recovered from a dump")
            + (f"; only {len(cfg)} bytes were dumped, so capabilities were not compared"
               if len(cfg) <= 64 else f"; only {len(cfg)} bytes were dumped, so nothing from "
               f"0x{len(cfg):02x} on was compared" if len(cfg) < 256 else "")
            + ("; q35 without a root port gives the same bytes" if machine == "pc" else "")}


def _search(r: DeviceReport, cfg: bytes, qemu: str = DEFAULT_RELEASE) -> tuple[str, str, bool] | None:
    """The spec and machine that come closest to the dump: the candidates each device type
    allows (backend, legacy/modern mode, class, vectors, the PCIe toggles), fewest
    structural differences first."""
    from ..hw.devices import model_for
    from ..hw.spec import type_properties
    names = _type_names(r)
    if not names:
        return None
    legacy = r.device_id < 0x1040
    modern = bool(r.virtio and r.virtio["modern_interface"]) or not legacy
    has_exp = any(c["id"] == regs.CapID.EXP for c in r.caps)
    msix = next((c for c in r.caps if c["id"] == regs.CapID.MSIX), None)
    caps_visible = r.caps_ok
    vcaps = [c for c in r.caps if c["id"] == regs.CapID.VNDR and "cfg_type" in c]
    if has_exp:
        machines = [("q35", True)]
    elif r.bdf != NO_BDF and r.bdf.split(":")[-2] != "00":
        machines = [("q35", True), ("pc", False)]
    else:
        machines = [("pc", False), ("q35", False)]
    best: tuple[int, int, int, str, str, bool, list[int], list[int], bytes] | None = None
    cache: dict[tuple[str, str, bool], Any] = {}

    def score(spec: str, machine: str, rp: bool):
        key = (spec, machine, rp)
        if key not in cache:
            got = _candidate(spec, machine, rp, qemu)
            cache[key] = None if got is None else (_compare(cfg, got), got.config)
        return cache[key]

    for name in names[:4]:
        model = model_for(name).model
        props = type_properties(name, qemu)
        for mi, (machine, rp) in enumerate(machines):
            backend = ([_BACKENDS[model.backend]] if model.backend in _BACKENDS
                       and _candidate(name, machine, rp, qemu) is None else [])
            modes: list[list[str]] = [[]]
            if not model.forced_modern:
                both = ["disable-legacy=off"] if rp else []
                legacy_only = ["disable-modern=on"] + (["disable-legacy=off"] if rp else [])
                modern_only = [] if rp else ["disable-legacy=on"]
                if legacy and not caps_visible:  # a short dump cannot show the virtio caps
                    modes = [both, legacy_only]
                elif legacy and modern:
                    modes = [both]
                elif legacy:
                    modes = [legacy_only]
                else:
                    modes = [modern_only]
            for mode in modes:
                opts: list[str] = backend + mode
                if rp and not has_exp:
                    opts.append("x-disable-pcie=on")
                if cfg[0x0E] & 0x80:
                    opts.append("multifunction=on")
                if any(c["cfg_type"] == 2 and c.get("notify_off_multiplier") == 0x1000 for c in vcaps):
                    opts.append("page-per-vq=on")
                if any(c["cfg_type"] == 2 and (_bar_of(r.bars, c["bar"])[0] or {}).get("kind") == "io"
                       for c in vcaps):
                    opts.append("modern-pio-notify=on")
                base = opts
                got = score(",".join([name] + base), machine, rp)
                if got is None:
                    continue
                cand_cfg = got[1]
                if "class" in props and get_le(cand_cfg, 0x0A, 2) != r.class_code:
                    alt = base + [f"class=0x{r.class_code:04x}"]
                    if score(",".join([name] + alt), machine, rp) is not None:
                        base = alt
                # vectors: MSI-X table size (no MSI-X cap: vectors=0), preferring the natural option
                if caps_visible:
                    want = msix["table_size"] if msix else 0
                    cur = next((c for c in walk_capabilities(cand_cfg).caps if c.id == regs.CapID.MSIX), None)
                    have = cur.get("table_size") if cur else 0
                    if want != have:
                        tries = []
                        if want > 1 and "num-queues" in props:
                            tries.append(f"num-queues={want - 1}")
                        if want > 3 and "num_queues" in props:
                            tries.append(f"num_queues={want - 3}")
                        if want > 1 and "max_ports" in props:
                            tries.append(f"max_ports={want - 1}")
                        tries.append(f"vectors={want}")
                        for t in tries:
                            res = score(",".join([name] + base + [t]), machine, rp)
                            if res is None:
                                continue
                            cc = next((c for c in walk_capabilities(res[1]).caps if c.id == regs.CapID.MSIX), None)
                            if (cc.get("table_size") if cc else 0) == want:
                                base = base + [t]
                                break
                # the remaining transport options: keep each one that brings the bytes closer
                if has_exp or len(cfg) > 256:
                    for _ in range(2):
                        improved = False
                        for t in _TOGGLES:
                            if any(o.split("=")[0] == t.split("=")[0] for o in base):
                                continue
                            a = score(",".join([name] + base), machine, rp)
                            b = score(",".join([name] + base + [t]), machine, rp)
                            if a and b and b[0][0] < a[0][0]:
                                base = base + [t]
                                improved = True
                        if not improved:
                            break
                res = score(",".join([name] + base), machine, rp)
                if res is None:
                    continue
                (n_real, real, fw), cc = res
                rank = (n_real, mi, len(base))
                if best is None or rank < best[:3]:
                    best = (n_real, mi, len(base), ",".join([name] + base), machine, rp, real, fw, cc)
        if best and best[0] == 0:
            break
    return None if best is None else best[3:6]


def _describe_diffs(dump: bytes, cand: bytes, real: list[int], fw: list[int]) -> list[dict[str, Any]]:
    if not real and not fw:
        return []
    labels = _labels(cand)
    groups: dict[tuple[str, str, int], dict[str, Any]] = {}
    for kind, offs in (("device", real), ("firmware/driver state", fw)):
        for i in offs:
            lab = labels[i] if i < len(labels) else None
            key = (lab.structure if lab else "extended space", lab.field if lab else "(unused)",
                   lab.start if lab else i)
            g = groups.get(key)
            if g is None:
                width = lab.width if lab else 1
                start = lab.start if lab else i
                g = groups[key] = {"offset": start, "structure": key[0], "field": key[1],
                                   "dump": dump[start:start + width][::-1].hex(),
                                   "qemu": cand[start:start + width][::-1].hex(), "kind": kind}
            elif kind == "device":
                g["kind"] = "device"
    return sorted(groups.values(), key=lambda g: (g["kind"] != "device", g["offset"]))


# ----------------------------------------------------------------------------- text
_NOT_SHOWN = frozenset(("offset", "id", "name", "next", "virtio", "cfg_type_name", "explanation"))


@lru_cache(maxsize=4096)
def _field_line(field: tuple[str, str, str]) -> str:
    where, name, text = field
    return f"    {where:5} {name:17} {text}"


@lru_cache(maxsize=4096)
def _cap_lines(items: tuple[tuple[str, Any], ...]) -> tuple[str, ...]:
    """A capability's lines (a dump of many devices repeats a few capabilities)."""
    c = dict(items)
    label = c["name"] + (f" / virtio {c['cfg_type_name']}" if "cfg_type_name" in c else "")
    lines = [f"    [0x{c['offset']:02x}] {label} -> next 0x{c['next']:02x}"]
    if c.get("explanation"):
        lines.append(f"          {c['explanation']}")
    extra = [f"{k}={hex(v) if isinstance(v, int) and not isinstance(v, bool) and v > 9 else v}"
             for k, v in items if k not in _NOT_SHOWN]
    if extra:
        lines.append("          " + ", ".join(extra))
    return tuple(lines)


def render(reports: list[DeviceReport]) -> str:
    out: list[str] = []
    for r in reports:
        head = r.header.strip()
        head = head or "hex lines without their bb:dd.f device line"
        out.append(f"{r.bdf}  (line {r.line}: {head if len(head) <= 70 else head[:69] + '…'})")
        n = r.bytes_available
        out.append(f"  {n} bytes dumped" + ("" if n in (256, 4096) else
                                            " (lspci -x: capabilities need -xxx)" if n == 64 else
                                            " (cut short: what lies past the end is marked)"))
        if r.virtio:
            v = r.virtio
            interfaces = [name for name, on in (("legacy", v["legacy_interface"]),
                                                ("modern", v["modern_interface"])) if on]
            if v["modern_interface"] is None:
                interfaces.append("modern: not known (the capabilities are not in the dump)")
            kind = f"type {v['type']}" if v["type"] is not None else "its type is not in the dump"
            out.append(f"  virtio {v['name']} ({kind}), {v['id_kind']} id; interfaces: "
                       + ", ".join(interfaces))
        out.append("  Header")
        out += map(_field_line, r.fields)
        out.append("  Capabilities (chain order)" if r.caps else "  No capabilities")
        for c in r.caps:
            items = tuple(c.items())
            try:
                out += _cap_lines(items)
            except TypeError:  # a value someone made unhashable: the same lines, uncached
                out += _cap_lines.__wrapped__(items)
        for e in r.ext_caps:
            out.append(f"    [0x{e['offset']:03x}] {e['name']} v{e['version']} -> next 0x{e['next']:03x}")
        for n in r.notes:
            out.append(f"  note: {n}")
        for w in r.warnings:
            out.append(f"  WARNING: {w}")
        if r.qemu:
            q = r.qemu
            where = f"{q['machine']}" + (" --root-port" if q["root_port"] else "")
            out.append(f"  QEMU {q.get('qemu', DEFAULT_RELEASE)}: -device {q['spec']}  (machine {where})"
                       + ("  — every device byte matches" if q["exact"] else ""))
            for d in q["differences"]:
                out.append(f"    0x{d['offset']:02x} {d['structure']} {d['field']}: dump {d['dump']}, "
                           f"QEMU {d['qemu']}  [{d['kind']}]")
            if q["firmware_state"]:
                out.append(f"    ({q['firmware_state']})")
            out.append(f"    ({q['note']})")
        elif r.virtio:
            out.append(f"  QEMU {r.release}: no matching -device spec")
        out.append("")
    return "\n".join(out) + "\n"
