"""Parse a ``-device`` spec the way QEMU 7.2 does: type name, properties, typed values.

The property set and defaults of every device type are QEMU's own, recorded from
``qemu-system-x86_64 -device TYPE,help`` of each release into
``data/qemu-<release>/props/TYPE.txt``. Values are
checked by the property's QAPI type, with QEMU's error texts.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from importlib import resources
from typing import Any

from ..errors import VirtioLabError, VirtioLabTypeError, shown
from ..errors import type_name as type_name_of
from .release import DEFAULT_RELEASE, release

__all__ = ["PropDef", "DeviceSpec", "DeviceOpts", "parse_spec", "device_opts", "qemu_opts",
           "id_wellformed", "type_properties", "known_types", "qdict_order"]

_LINE = re.compile(r"^  ([A-Za-z0-9_.-]+)=<([^>]+>?)>\s*(?:-\s*(.*?))?\s*$")
_DEFAULT = re.compile(r"\(default: (.*)\)\s*$")
_TYPE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class PropDef:
    """One QOM property of a device type: name, QAPI type, default (None when unset)."""

    name: str
    type: str
    default: Any
    help: str = ""


def _convert_default(ptype: str, text: str | None) -> Any:
    """A default as ``-device TYPE,help`` prints it (5.2/7.2: ``true``/``false``; 10.0:
    ``on``/``off``)."""
    if text is None:
        return None
    text = text.strip('"')
    if ptype == "bool":
        return text in ("true", "on")
    if ptype in ("uint8", "uint16", "uint32", "uint64", "int32", "int64", "int", "size"):
        return int(text)
    return text


def _props_dir(qemu: str):
    """Where ``-device TYPE,help`` of release ``qemu`` is recorded (data/qemu-7.2/props)."""
    return resources.files("virtio_lab").joinpath("data").joinpath(f"qemu-{qemu}").joinpath("props")


@lru_cache(maxsize=None)
def type_properties(type_name: str, qemu: str = DEFAULT_RELEASE) -> dict[str, PropDef]:
    """The properties QEMU ``qemu`` lists for ``type_name`` (an empty dict if unknown)."""
    if not _TYPE_NAME.fullmatch(type_name):  # never a path: "../x", NUL bytes, slashes
        return {}
    try:
        text = _props_dir(qemu).joinpath(f"{type_name}.txt").read_text()
    except OSError:  # no such type; or a name too long for a file name
        return {}
    props: dict[str, PropDef] = {}
    for line in text.splitlines()[1:]:
        m = _LINE.match(line)
        if not m:
            continue
        name, ptype, rest = m.group(1), m.group(2), m.group(3) or ""
        d = _DEFAULT.search(rest)
        help_text = _DEFAULT.sub("", rest).strip()
        if help_text.startswith(_DEVFN_HELP):  # 10.0 prints the PCI address as <str>
            ptype = "int32"
        props[name] = PropDef(name, ptype, _convert_default(ptype, d.group(1) if d else None), help_text)
    return props


@lru_cache(maxsize=None)
def known_types(qemu: str = DEFAULT_RELEASE) -> tuple[str, ...]:
    files = _props_dir(qemu)
    return tuple(sorted(p.name[:-4] for p in files.iterdir() if p.name.endswith(".txt")))


_BOOL_TRUE = ("on", "yes", "true", "y")
_BOOL_FALSE = ("off", "no", "false", "n")
_INT_RANGES = {
    "uint8": (0, 0xFF, "uint8_t"), "uint16": (0, 0xFFFF, "uint16_t"),
    "uint32": (0, 0xFFFFFFFF, "uint32_t"), "uint64": (0, 2**64 - 1, "uint64_t"),
    "int32": (-(2**31), 2**31 - 1, "int32_t"), "int64": (-(2**63), 2**63 - 1, "int64_t"),
    "int": (-(2**63), 2**63 - 1, "int64_t"),
}
_SIZE_SUFFIX = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
                "p": 1 << 50, "e": 1 << 60}


_SIZE = re.compile(r"[ \t\n\v\f\r]*\+?(?:0[xX](?P<hex>[0-9a-fA-F]+)|(?P<int>[0-9]+)(?P<frac>\.[0-9]*)?)"
                   r"(?P<suffix>[bBkKmMgGtTpPeE]?)")


def _decimal(digits: str) -> int:
    """``int(digits)``, saturated at 2^100 past 30 significant digits: every QEMU integer
    overflows long before, and Python refuses to convert more than 4300 digits."""
    significant = digits.lstrip("-").lstrip("0")
    if len(significant) > 30:
        return -(2**100) if digits.startswith("-") else 2**100
    return int(digits, 10)


def _parse_size(name: str, text: str) -> int:
    """QEMU 7.2's qemu_strtosz (util/cutils.c: do_strtosz), as -device reads a size.

    Decimal or 0x hex, an optional B/K/M/G/T/P/E suffix (powers of 1024, either
    case); a decimal fraction only with a scaling suffix (``1.5k``; ``1.0`` and
    ``1.`` pass, ``1.5`` does not), rounded to the nearest byte, half up; no sign
    but ``+``, no exponent, no trailing text; results from 2^64 up are refused."""
    fail = VirtioLabError(f"Parameter '{name}' expects size")
    m = _SIZE.fullmatch(text)
    if not m:
        raise fail
    mul = _SIZE_SUFFIX[m.group("suffix").lower()]
    if m.group("hex") is not None:
        value = int(m.group("hex"), 16) * mul
    else:
        whole = _decimal(m.group("int"))
        if whole >= 2**64:
            raise fail  # strtoull overflows
        # the fraction as a 64-bit binary fixed-point number, as QEMU keeps it
        # (a fraction that rounds to 1.0 wraps to 0 in the conversion, as on x86-64)
        frac = int(float("0" + m.group("frac")) * 2.0**64) % 2**64 if m.group("frac") else 0
        if frac and mul == 1:
            raise fail
        part = frac * mul
        value = whole * mul + (part >> 64) + ((part >> 63) & 1)
    if value >= 2**64:
        raise fail
    return value


def _parse_int(text: str) -> int | None:
    """QEMU's qemu_strtou64 with base 0: decimal, 0x hex, leading-0 octal."""
    t = text.strip()
    try:
        if re.fullmatch(r"-?0[xX][0-9a-fA-F]+", t):
            return int(t, 16)
        if re.fullmatch(r"-?0[0-7]+", t):
            return int(t, 8)
        if re.fullmatch(r"-?[0-9]+", t):
            return _decimal(t)
    except ValueError:
        return None
    return None


#: Properties ``-device TYPE,help`` prints as ``<size>`` but QEMU stores in 32 bits
#: (DEFINE_PROP_SIZE32: the block properties of DEFINE_BLOCK_PROPERTIES_BASE).
_SIZE32 = frozenset({"min_io_size", "opt_io_size", "discard_granularity"})
#: The description QEMU gives its block-size property type (qdev_prop_blocksize).
_BLOCKSIZE_HELP = "A power of two between 512 B and 2 MiB"
_BLOCKSIZE_MIN, _BLOCKSIZE_MAX = 512, 2 * 1024 * 1024


def _check_size_kind(prop: PropDef, owner: str, value: int, qemu: str = DEFAULT_RELEASE) -> int:
    """The setters of QEMU's size-like property types (hw/core/qdev-properties*.c:
    set_size32 — at most UINT32_MAX, named by the owning virtio device's type;
    set_blocksize — 0 (unset) or a power of two in [512 B, 2 MiB], named with the
    (empty) id of the inner device)."""
    if prop.name in _SIZE32 and value > 0xFFFFFFFF:
        raise VirtioLabError(f"Property {owner}.{prop.name} doesn't take value {value} "
                             f"(maximum: {0xFFFFFFFF})")
    if prop.help.startswith(_BLOCKSIZE_HELP) and value:
        rel = release(qemu)
        if not _BLOCKSIZE_MIN <= value <= _BLOCKSIZE_MAX:
            raise VirtioLabError(rel.text(
                "blocksize-range", "Property .{name} doesn't take value {value} "
                "(minimum: {lo}, maximum: {hi})", name=prop.name, value=value,
                lo=_BLOCKSIZE_MIN, hi=_BLOCKSIZE_MAX))
        if value & (value - 1):
            raise VirtioLabError(rel.text(
                "blocksize-pow2", "Property .{name} doesn't take value '{value}', it's not a "
                "power of 2", name=prop.name, value=value))
    return value


#: QOM properties with a getter and no setter, by proxy type (transitional variants
#: included) -> (the type QEMU names, property names).  ``-device TYPE,help`` lists
#: them like the others, but setting one fails before its value is even read
#: (qom/object.c: object_property_set).
_READ_ONLY = {"virtio-mem-pci": ("virtio-mem", frozenset({"size"})),
              "virtio-balloon-pci": ("virtio-balloon-device", frozenset({"guest-stats"}))}


def _check_writable(type_name: str, key: str) -> None:
    owner, names = _READ_ONLY.get(re.sub(r"-(non-)?transitional$", "", type_name), ("", ()))
    if key in names:
        raise VirtioLabError(f"Property '{owner}.{key}' is not writable")


def _poll_interval(value: int, owner: str, qemu: str = DEFAULT_RELEASE) -> int:
    """virtio-balloon.c: balloon_stats_set_poll_interval — seconds, 0 (off) up to UINT32_MAX."""
    if value < 0:
        raise VirtioLabError("timer value must be greater than zero")
    if value > 0xFFFFFFFF:
        raise VirtioLabError("timer value is too big")
    return value


def _mem_block_size(value: int, owner: str, qemu: str = DEFAULT_RELEASE) -> int:
    """virtio-mem.c: virtio_mem_set_block_size — a power of two, at least 1 MiB."""
    if value < 1 << 20:
        raise VirtioLabError("'block-size' property has to be at least 0x100000")
    if value & (value - 1):
        raise VirtioLabError("'block-size' property has to be a power of two")
    return value


def _reserved_regions_len(value: int, owner: str, qemu: str = DEFAULT_RELEASE) -> int:
    """virtio-iommu-pci's reserved-regions array: QEMU 7.2 refuses any length but 0 given
    on -device ("set more than once": the length was already taken when it is set); 5.2's
    QemuOpts path sets it once and takes it (10.0 has a list property instead)."""
    if value and release(qemu).option_parser == "keyval":
        raise VirtioLabError("array size property len-reserved-regions may not be set more than once")
    return value


_MAC = re.compile(r"[0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){5}")


def _macaddr(value: str, owner: str, qemu: str = DEFAULT_RELEASE) -> str:
    """hw/core/qdev-properties-system.c: set_mac — six two-digit hex bytes, each
    separator ':' or '-'."""
    if not _MAC.fullmatch(value):
        raise VirtioLabError(f"Property '{owner}.mac' doesn't take value {shown(value)}")
    return value


#: Setters that check a value after its type did (property name -> check(value, owner)).
_SETTER_CHECKS = {"guest-stats-polling-interval": _poll_interval, "block-size": _mem_block_size,
                  "len-reserved-regions": _reserved_regions_len, "mac": _macaddr}


def _inner_type(type_name: str) -> str:
    """The virtio device inside a proxy (virtio-blk-pci-transitional -> virtio-blk-device)."""
    return re.sub(r"-pci(-(non-)?transitional)?$", "", type_name) + "-device"


def _parse_size_strtod(name: str, text: str) -> int:
    """QEMU 5.2's qemu_strtosz (util/cutils.c: do_strtosz), the string input visitor's size:
    the number is read with strtod (so 1e3, 1.5 and hex floats parse), then a B/K/M/G/T/P/E
    suffix; a fraction needs a scaling suffix; negative or from 2^64 up is out of range."""
    bad = VirtioLabError(f"Parameter '{name}' expects a non-negative number below 2^64",
                         "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, "
                         "tera-, peta- and exabytes, respectively.")
    m = _STRTOD.match(text)
    if not m or not m.group(0).strip():
        raise bad
    number, rest = m.group(0), text[m.end():]
    try:
        val = float.fromhex(number) if "x" in number.lower() else float(number)
    except (ValueError, OverflowError):
        raise bad from None
    if val != val or val in (float("inf"), float("-inf")):
        if not _STRTOD_OVERFLOW.fullmatch(number.strip()):
            raise bad  # inf, nan: qemu_strtod_finite refuses them
        if rest:
            raise bad
        raise VirtioLabError(f"Value '{text}' is out of range for parameter '{name}'")
    mul = _SIZE_SUFFIX.get(rest[:1].lower()) if rest else None
    if mul is not None:
        rest = rest[1:]
    else:
        mul = 1
    if rest or (mul == 1 and val != int(val)):
        raise bad
    if val * mul > 18446744073709549568.0 or val < 0:  # nextafter(0x1p64, 0)
        raise VirtioLabError(f"Value '{text}' is out of range for parameter '{name}'")
    return int(val * mul)


#: What C's strtod reads: spaces, a sign, then a decimal or hex float (or inf/nan).
_STRTOD = re.compile(r"[ \t\n\v\f\r]*[+-]?(?:0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)"
                     r"(?:[pP][+-]?[0-9]+)?|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
                     r"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])")
#: a finite-looking decimal whose value overflows a double (strtod: ERANGE)
_STRTOD_OVERFLOW = re.compile(r"[+-]?[0-9.]+[eE][+-]?[0-9]+")


def parse_value(prop: PropDef, text: str, owner: str = "", qemu: str = DEFAULT_RELEASE) -> Any:
    """Convert one property value from its spec text, raising QEMU ``qemu``'s message on failure.

    ``owner`` is the type QEMU names in a size32 range error (the inner virtio device).
    5.2 reads values with the string input visitor (qapi/string-input-visitor.c), 7.2 and
    10.0 with the keyval one (qapi/qobject-input-visitor.c): the checks match, the words not."""
    opts = release(qemu).option_parser == "qemu_opts"
    t = prop.type
    if t == "bool":
        if text in _BOOL_TRUE:
            return True
        if text in _BOOL_FALSE:
            return False
        raise VirtioLabError(f"Parameter '{prop.name}' expects 'on' or 'off'")
    if t == "OnOffAuto":
        if text in ("on", "off", "auto"):
            return text
        if opts:  # qapi-visit-core.c: input_type_enum
            raise VirtioLabError(f"Invalid parameter {shown(text)}")
        raise VirtioLabError(f"Parameter '{prop.name}' does not accept value {shown(text)}")
    if t in _INT_RANGES:
        lo, hi, cname = _INT_RANGES[t]
        v = _parse_int(text)
        # what the visitor says when the text is no 64-bit number
        nan = (f"Parameter '{prop.name}' expects {'uint64' if t.startswith('u') else 'int64'}"
               if opts else f"Parameter '{prop.name}' expects integer")
        if v is None:
            raise VirtioLabError(nan)
        # the visitor reads every integer as 64 bits first (qemu_strtou64 wraps a negative,
        # qemu_strtoi64 does not), and refuses what overflows that; then the type's range
        fits = -(2**64) < v < 2**64 if t.startswith("u") else -(2**63) <= v < 2**63
        if not fits:
            raise VirtioLabError(nan)
        if v < 0 and t.startswith("u"):
            v &= 2**64 - 1  # strtoull wraps negatives, then the range check refuses them
        if not lo <= v <= hi:
            raise VirtioLabError(f"Parameter '{prop.name}' expects {cname}")
        return v
    if t == "size":
        size = _parse_size_strtod(prop.name, text) if opts else _parse_size(prop.name, text)
        return _check_size_kind(prop, owner, size, qemu)
    return text  # str, links (backend ids), enums kept verbatim


@dataclass(frozen=True)
class DeviceSpec:
    """A parsed ``-device`` spec: the type and the properties the user set, typed.

    ``qemu`` is the release whose properties and defaults apply; ``globals`` the values the
    machine type's compat properties give this type, ``(name, value, origin)`` in the order
    QEMU applies them (a later one wins, the user's own options win over all of them)."""

    type: str
    options: tuple[tuple[str, Any], ...]
    text: str
    qemu: str = DEFAULT_RELEASE
    globals: tuple[tuple[str, Any, str], ...] = ()
    #: values put in by hand, as a compat property would be but after the machine type's
    #: (``diff`` asks "what if this one property had b's value?"): ``(name, value)``
    whatif: tuple[tuple[str, Any], ...] = ()

    @cached_property
    def _set(self) -> dict[str, Any]:
        """The options as a dict (a later duplicate wins, as in QEMU)."""
        return dict(self.options)

    @cached_property
    def _effective(self) -> dict[str, Any]:
        """QEMU's defaults for this type, then the machine type's globals, then the user's options."""
        props = type_properties(self.type, self.qemu)
        values = {name: value for name, value in release(self.qemu).hardwired.items()
                  if name not in props}
        values.update((name, p.default) for name, p in props.items())
        values.update((name, value) for name, value, _ in self.globals)
        values.update(self.whatif)
        values.update(self._set)
        return values

    def get(self, name: str, default: Any = None) -> Any:
        return self._set.get(name, default)

    def has(self, name: str) -> bool:
        return name in self._set

    def value(self, name: str) -> Any:
        """The effective value: the user's, else the machine type's, else QEMU's default."""
        return self._effective.get(name)

    def origin(self, name: str) -> str:
        """Where ``value(name)`` comes from: ``"user"``, the compat property that set it
        (``"pc-i440fx-5.2 (hw_compat_5_2)"``), ``"default"`` or ``"hardwired"`` (the
        release has no such property; its code behaves as this value)."""
        if name in self._set:
            return "user"
        if name in dict(self.whatif):
            return "what-if"
        for prop, _, where in reversed(self.globals):
            if prop == name:
                return where
        return "default" if name in type_properties(self.type, self.qemu) else "hardwired"

    def origin_text(self, name: str) -> str:
        """``origin(name)`` in words, for the narration: "the property's default",
        "pc-i440fx-5.2 sets it (hw_compat_5_2)", "QEMU 5.2 has no such property"..."""
        where = self.origin(name)
        if where == "user":
            return f"{name}= from the spec"
        if where == "default":
            return "the property's default"
        if where == "hardwired":
            return f"QEMU {self.qemu} has no {name} property"
        if where == "what-if":
            return "set by a what-if"
        machine, _, array = where.partition(" ")
        return f"{machine} sets it {array}".rstrip()

    def with_globals(self, globals: tuple[tuple[str, Any, str], ...]) -> "DeviceSpec":
        return replace(self, globals=tuple(globals))


#: QEMU's identifiers (util/id.c: id_wellformed): an ASCII letter, then letters, digits,
#: '-', '.' and '_'. ``id=`` of a device and every backend id must be one.
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")
ID_HINT = "Identifiers consist of letters, digits, '-', '.', '_', starting with a letter."


def id_wellformed(text: str) -> bool:
    return isinstance(text, str) and _IDENTIFIER.fullmatch(text) is not None


def _opt_value(text: str, p: int) -> tuple[str, int]:
    """util/qemu-option.c: get_opt_value — a value runs to the next single ',' (',,' is a
    literal comma); returns (value, where the ',' or the end is)."""
    parts = []
    while True:
        end = text.find(",", p)
        if end < 0:
            parts.append(text[p:])
            return "".join(parts), len(text)
        if text.startswith(",,", end):
            parts.append(text[p:end + 1])
            p = end + 2
            continue
        parts.append(text[p:end])
        return "".join(parts), end


def qemu_opts(text: str, firstname: str | None = "driver") -> list[tuple[str, str]]:
    """``text`` split the way QEMU's option parser splits it (util/qemu-option.c:
    opts_do_parse -> get_opt_name_value), as ``(name, value)`` in order, duplicates kept.

    A name runs to the first '=' or ','; ``name=value`` takes the value up to the next
    single ',' (',,' is a comma inside it). A first option without '=' is ``firstname``'s
    value (-device: the driver). Any other option without '=' is a flag: ``name`` is
    name=on, ``noname`` name=off — and a flag name cannot hold a comma, so
    ``mq,,vectors=2`` is mq=on, an empty flag ``=on``, vectors=2. One trailing ',' ends
    the last option and adds none."""
    out, p = [], 0
    while p < len(text):
        stop = min((i for i in (text.find("=", p), text.find(",", p)) if i >= 0), default=len(text))
        if stop == len(text) or text[stop] != "=":
            if firstname:
                name = firstname
                value, p = _opt_value(text, p)
            else:
                name, p = text[p:stop], stop
                name, value = (name[2:], "off") if name.startswith("no") else (name, "on")
        else:
            name = text[p:stop]
            value, p = _opt_value(text, stop + 1)
        out.append((name, value))
        firstname = None
        if p < len(text):  # at a ','
            p += 1
    return out


@dataclass(frozen=True)
class DeviceOpts:
    """``-device TEXT`` as QEMU's option parser leaves it, before any property is looked up:
    the id (the first ``id=``: softmmu's opts_parse_id), the driver (the last one written:
    qemu_opts_to_qdict replaces earlier ones) and the other options in order."""

    id: str | None
    driver: str | None
    options: tuple[tuple[str, str], ...]

    def quoted(self) -> str:
        """The -device text QEMU splits back into exactly these options: each value's commas
        doubled, a flag written as name=on/off, the driver first (bare unless it holds a
        '=', which would make it an option). Names never hold ',' or '=' (the split ends
        them there), so nothing can become a new option."""
        parts = []
        if self.driver is not None:
            driver = self.driver.replace(",", ",,")
            bare = "=" not in self.driver and not self.driver.startswith("{")  # '{': JSON syntax
            parts.append(driver if bare else f"driver={driver}")
        if self.id is not None:
            parts.append(f"id={self.id.replace(',', ',,')}")
        parts += [f"{name}={value.replace(',', ',,')}" for name, value in self.options]
        return ",".join(parts)


def device_opts(text: str, check_id: bool = True) -> DeviceOpts:
    """QEMU's first look at ``-device TEXT`` (qemu_opts_parse_noisily): split it, and refuse
    an id that is not an identifier before anything else (qemu_opts_create)."""
    dev_id = next((v for k, v in qemu_opts(text, None) if k == "id"), None)
    if check_id and dev_id is not None and not id_wellformed(dev_id):
        raise VirtioLabError("Parameter 'id' expects an identifier", ID_HINT)
    opts = qemu_opts(text)
    driver = next((v for k, v in reversed(opts) if k == "driver"), None)
    return DeviceOpts(dev_id, driver, tuple((k, v) for k, v in opts if k not in ("id", "driver")))


#: softmmu/qdev-monitor.c: qdev_alias_table — the short names QEMU takes for the virtio-pci
#: types on x86 (``-device virtio-net`` is virtio-net-pci); each is the type without "-pci".
ALIASED = ("virtio-9p-pci", "virtio-balloon-pci", "virtio-blk-pci", "virtio-gpu-pci",
           "virtio-gpu-gl-pci", "virtio-input-host-pci", "virtio-iommu-pci", "virtio-keyboard-pci",
           "virtio-mouse-pci", "virtio-net-pci", "virtio-rng-pci", "virtio-scsi-pci",
           "virtio-serial-pci", "virtio-tablet-pci")
ALIASES = {name[:-len("-pci")]: name for name in ALIASED}


#: QDICT_BUCKET_MAX in QEMU's qobject/qdict.c: the hash table size of a QDict.
_QDICT_BUCKETS = 512


def _qdict_bucket(key: str) -> int:
    """The bucket QEMU's QDict files ``key`` under (qobject/qdict.c: tdb_hash, mod 512).

    The hash (from the TDB project): start from the key length times 0x238F13AF, add
    each byte shifted left by ``5*i mod 24`` bits, then one linear-congruential step;
    all in 32-bit unsigned arithmetic."""
    raw = key.encode("utf-8", "surrogateescape")  # a non-UTF-8 byte from argv is that byte
    h = (0x238F13AF * len(raw)) & 0xFFFFFFFF
    for i, byte in enumerate(raw):
        h = (h + (byte << (i * 5 % 24))) & 0xFFFFFFFF
    return ((1103515243 * h + 12345) & 0xFFFFFFFF) % _QDICT_BUCKETS


def qdict_order(keys: list[str]) -> list[str]:
    """``keys`` (distinct, in insertion order) in the order QEMU's ``qdict_first/next`` visits them.

    qdev_device_add turns the -device options into a QDict and sets the properties
    by walking it (qdev-monitor.c: qdev_device_add_from_qdict ->
    object_set_properties_from_keyval), so a spec with several bad values fails on
    the first one in *this* order, not the first one written: buckets in index
    order, and within a bucket the key written first first (entries are pushed at
    the head of a bucket's list, and the copy qdev keeps of the dict reverses that)."""
    return [k for _, _, k in sorted((_qdict_bucket(k), i, k) for i, k in enumerate(keys))]


#: How ``-device TYPE,help`` describes the PCI address property (qdev_prop_pci_devfn).
_DEVFN_HELP = "Slot and optional function number"
_HEX = re.compile(r"[ \t\n\v\f\r]*(?P<sign>[+-]?)(?P<prefix>0[xX])?(?P<digits>[0-9a-fA-F]*)")


def _scan_hex(text: str) -> tuple[int | None, str]:
    """One ``%x`` conversion of glibc's sscanf: (value or None when nothing matched, rest).

    Leading white space and a sign are taken; a ``0x`` prefix counts as read even with no
    digit after it (``addr=0x`` is slot 0, as real QEMU shows)."""
    m = _HEX.match(text)
    if not m["prefix"] and not m["digits"]:
        return None, text
    value = int(m["digits"] or "0", 16)
    return (-value % 2**64 if m["sign"] == "-" else value), text[m.end():]


def parse_devfn(type_name: str, key: str, text: str) -> int:
    """The PCI address property as -device parses it (hw/core/qdev-properties-system.c:
    set_pci_devfn, which scans ``%x.%x`` then ``%x`` and wants the whole string used):
    ``SLOT[.FN]`` in hex, slot ≤ 0x1f, function ≤ 7; returns the devfn."""
    fail = VirtioLabError(f"Property '{type_name}.{key}' doesn't take value {shown(text)}")
    slot, rest = _scan_hex(text)
    fn = 0
    if slot is None:
        raise fail
    if rest.startswith("."):
        fn, rest = _scan_hex(rest[1:])
        if fn is None:
            raise fail
    if rest or slot > 0x1F or fn > 7:
        raise fail
    return slot << 3 | fn


def unknown_model(type_name: str, known) -> VirtioLabError:
    """QEMU's refusal of an unknown ``-device`` type, with the nearest name (or the list) as hint."""
    known = tuple(known)
    close = difflib.get_close_matches(type_name[:200], known, n=1, cutoff=0.75)
    hint = (f"did you mean {close[0]}?" if close else
            f"python -m virtio_lab devices lists the {len(known)} models")
    return VirtioLabError(f"{shown(type_name)} is not a valid device model name", hint)


def parse_spec(text: str, supported: tuple[str, ...] | None = None, machine=None,
               qemu: str = DEFAULT_RELEASE) -> DeviceSpec:
    """Parse ``TYPE[,prop=value...]`` like QEMU ``qemu``'s -device option, in QEMU's order of
    checks (qemu_opts_parse_noisily, then qdev-monitor.c: qdev_device_add_from_qdict): the id,
    the driver (an alias resolved), ``bus=`` (on ``machine``, when given: its ``check_bus`` and
    the ``device_ids`` already taken), then the properties (6.0+: in QDict order; 5.2: as
    written, qemu_opt_foreach)."""
    qemu = release(qemu).version
    if not isinstance(text, str):
        raise VirtioLabTypeError(f"a device spec is a string such as \"virtio-net-pci,disable-legacy=on\", "
                                 f"not {type_name_of(text)}")
    if not text.strip():
        raise VirtioLabError("empty device spec: give a device type such as virtio-net-pci "
                             "(python -m virtio_lab devices lists them)")
    opts = device_opts(text)
    if machine is not None and opts.id in machine.device_ids:
        raise VirtioLabError(f"Duplicate ID {shown(opts.id)} for device",
                             f"the {'root port' if opts.id == machine.bus_id else 'machine'} has it")
    if opts.driver is None:
        raise VirtioLabError("Parameter 'driver' is missing",
                             "a -device spec starts with the device type, e.g. virtio-net-pci,vectors=2")
    type_name = opts.driver
    if type_name in ("help", "?"):
        raise VirtioLabError(f"-device {type_name} asks QEMU for its device list: "
                             "python -m virtio_lab devices lists the models")
    known = supported if supported is not None else known_types(qemu)
    if type_name not in known and type_name in ALIASES:
        type_name = ALIASES[type_name]
    if type_name not in known:
        if supported is not None and type_properties(type_name, qemu):
            raise VirtioLabError(f"{shown(type_name)} needs a host backend that virtio_lab does not "
                                 "model (python -m virtio_lab devices lists the models)")
        raise unknown_model(type_name, known)
    asks = next((k for k, _ in opts.options if k in ("help", "?")), None)
    if asks:  # qdev_device_help runs before any device is made
        raise VirtioLabError(f"{type_name},{asks} asks QEMU for the options: "
                             f"python -m virtio_lab devices {type_name} lists them")
    bus = next((v for k, v in reversed(opts.options) if k == "bus"), None)
    if machine is not None and bus is not None:
        machine.check_bus(bus)
    props = type_properties(type_name, qemu)
    # 6.0+: one value per key, the last one written (qemu_opts_to_qdict replaces earlier
    # ones), checked in QEMU's QDict order; 5.2: every option as written (qemu_opt_foreach).
    # bus was consumed before that.
    raw = list(opts.options)
    last = dict(raw)
    typed: dict[str, Any] = {}
    if release(qemu).option_parser == "qemu_opts":
        order = raw
    else:
        order = [(key, last[key]) for key in qdict_order(list(last))]
    for key, value in order:
        if key == "bus":
            typed[key] = value
            continue
        prop = props.get(key)
        if prop is None:
            raise VirtioLabError(f"Property {shown(f'{type_name}.{key}')} not found")
        _check_writable(type_name, key)
        if prop.help.startswith(_DEVFN_HELP):
            typed[key] = parse_devfn(type_name, key, value)
            continue
        typed[key] = parse_value(prop, value, _inner_type(type_name), qemu)
        if key in _SETTER_CHECKS:
            typed[key] = _SETTER_CHECKS[key](typed[key], _inner_type(type_name), qemu)
    options = ([("id", opts.id)] if opts.id is not None else []) + [(key, typed[key]) for key, _ in raw]
    return DeviceSpec(type_name, tuple(options), text.strip(), qemu)
