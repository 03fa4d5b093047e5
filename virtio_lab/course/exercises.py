"""Checked exercises for the course notebooks: feedback that points at the first difference.

    >>> from virtio_lab.course.exercises import check, solution, hint
    >>> check("cap-chain-offsets", [0x98, 0x84, 0x70, 0x60, 0x50, 0x40])
    ✓ cap-chain-offsets: correct. ...

Every answer is computed from the emulation (``virtio_lab.plug``) when it is first
asked for, never typed in here, so the checkers follow the model. A wrong answer
gets a message in the style of nand2tetris' compare files: *where* the first
difference is (list position, dictionary key, test case), what you gave, and a hint
saying where in the bytes or the trace to look — never just "wrong". Malformed input
(a string where a list belongs, an unknown exercise name, a function that raises)
gets one clear line, never a traceback. ``solution(name)`` shows the answer and why.

Standard library only.
"""

from __future__ import annotations

import difflib
import html
import inspect
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from ..errors import shown
from ..hw.qemu_names import DEFAULT_RELEASE, cite, names_of

__all__ = ["check", "solution", "hint", "given", "exercises", "Feedback", "Exercise", "EXERCISES",
           "NOTEBOOKS"]

#: notebook file name (without .ipynb) -> its exercises, in the order they appear
NOTEBOOKS = ("00-start", "01-config-space", "02-config-access", "03-capabilities", "04-bars", "05-virtio-primer", "06-virtio-pci",
             "07-plug-timeline", "08-interrupts", "09-pcie", "10-firmware", "11-linux-driver",
             "12-device-at-work",
             "14-what-if-and-real-machines",
             "15-why-bar4-0x3000")


class _Bad(Exception):
    """The answer's shape is wrong: one line for the learner."""


# --------------------------------------------------------------------------
# the emulation, cached (answers are computed from it)

@lru_cache(maxsize=64)
def _trace(spec: str, machine: str = "pc", root_port: bool = False):
    from ..hw.plug import plug
    return plug(spec, machine, root_port)


def _final(spec: str, machine: str = "pc", root_port: bool = False):
    return _trace(spec, machine, root_port).final


def _le(buf: bytes, off: int, n: int) -> int:
    return int.from_bytes(buf[off:off + n], "little")


def _access(spec: str, machine: str = "pc", root_port: bool = False):
    from ..pci.access import ConfigAccess
    return ConfigAccess(_final(spec, machine, root_port))


# --------------------------------------------------------------------------
# feedback objects

@dataclass(frozen=True)
class Feedback:
    """The checker's verdict: ``ok``, and a message that says what to look at next."""

    name: str
    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return f"{'✓' if self.ok else '✗'} {self.name}: {self.message}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = "rgba(46,160,67,.9)" if self.ok else "rgba(220,70,70,.9)"
        return (f'<div class="vl-feedback" style="border-left:4px solid {colour};padding:2px 8px;'
                f'white-space:pre-wrap">{html.escape(str(self))}</div>')


@dataclass(frozen=True)
class _Text:
    """A block of text shown as is (solutions, hints, exercise lists)."""

    text: str

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return f'<pre class="vl-solution">{html.escape(self.text)}</pre>'


# --------------------------------------------------------------------------
# normalising answers

def _type_name(x: Any) -> str:
    name = type(x).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _as_int(x: Any, what: str) -> int:
    if isinstance(x, bool):
        raise _Bad(f"{what} should be a number, not {shown(x)}")
    if isinstance(x, int):
        return x
    if isinstance(x, str):
        try:
            return int(x.strip().replace("_", ""), 0)
        except ValueError:
            raise _Bad(f"{what}: {shown(x)} is not a number (write 0x98 or 152)") from None
    raise _Bad(f"{what} should be a number like 0x98, not {_type_name(x)}")


def _as_list(x: Any, what: str) -> list:
    if isinstance(x, (str, bytes, dict, set, frozenset)) or not hasattr(x, "__iter__"):
        raise _Bad(f"expected a list of {what}, like [..., ...], not {_type_name(x)}")
    return list(x)


def _as_set(x: Any, what: str) -> set:
    if isinstance(x, (str, bytes, dict)) or not hasattr(x, "__iter__"):
        raise _Bad(f"expected a set (or list) of {what}, like {{..., ...}}, not {_type_name(x)}")
    return set(x)


def _norm_key(k: Any) -> Any:
    if isinstance(k, str):
        s = k.strip()
        try:
            return int(s, 0)
        except ValueError:
            return s.lower()
    return k


def _as_dict(x: Any, what: str) -> dict:
    if not isinstance(x, dict):
        raise _Bad(f"expected a dict of {what}, like {{key: value, ...}}, not {_type_name(x)}")
    return {_norm_key(k): v for k, v in x.items()}


class _Dec(int):
    """An int shown in decimal (steps, sizes in bytes); other ints show in hex."""


def _dec(v: Any, what: str) -> _Dec:
    return _Dec(_as_int(v, what))


def _hex(v: int) -> str:
    return f"0x{v:x}" if v.bit_length() <= 200 else shown(v)  # an answer of 5000 digits: briefly


def _show(v: Any) -> str:
    """An answer (or part of one) as feedback quotes it: at most 60 characters."""
    text = _show_whole(v)
    return text if len(text) <= 60 else text[:59] + "…"


def _show_whole(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, int) and v.bit_length() > 200:  # no answer is that long: say so, briefly
        return shown(int(v))
    if isinstance(v, (list, tuple, set, frozenset, dict)) and len(v) > 20:
        return f"a {type(v).__name__} of {len(v)} items"
    if isinstance(v, _Dec):
        return str(int(v))
    if isinstance(v, int):
        return _hex(v) if v >= 10 else str(v)
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_show_whole(i) for i in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner}{',' if len(v) == 1 else ''})"
    if isinstance(v, (set, frozenset)):
        return "{" + ", ".join(_show_whole(i) for i in sorted(v, key=str)) + "}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_show_whole(k)}: {_show_whole(val)}" for k, val in v.items()) + "}"
    return repr(v)


def _direction(got: int, want: int) -> str:
    return " (too high)" if got > want else " (too low)"


def _bit_ranges(mask: int) -> str:
    """'bit 3', 'bits 3, 5', 'bits 15:11': the set bits of ``mask``, runs folded."""
    runs, bit = [], 0
    while mask >> bit:
        if mask >> bit & 1:
            top = bit
            while mask >> (top + 1) & 1:
                top += 1
            runs.append(f"{top}:{bit}" if top > bit else str(bit))
            bit = top + 1
        else:
            bit += 1
    return f"bit{'s' if len(runs) > 1 or ':' in runs[0] else ''} {', '.join(runs)}" if runs else "no bit"


#: COMMAND's bits, named as Linux's pci_regs.h names them (PCI_COMMAND_*); 15:11 are reserved
_COMMAND_BITS = {0: "IO (I/O space decode)", 1: "MEMORY (memory decode)", 2: "MASTER (bus master)",
                 3: "SPECIAL (special cycles)", 4: "INVALIDATE (memory write and invalidate)",
                 5: "VGA_PALETTE (palette snoop)", 6: "PARITY (parity error response)",
                 7: "WAIT (stepping)", 8: "SERR (SERR# enable)", 9: "FAST_BACK (fast back-to-back)",
                 10: "INTX_DISABLE (INTx off)"}


def _bit_names(mask: int, names: dict[int, str]) -> list[str]:
    """The named bits set in ``mask``, then the unnamed ones as 'reserved bits ...'."""
    out = [f"bit {b} {n}" for b, n in names.items() if mask >> b & 1]
    rest = mask & ~sum(1 << b for b in names)
    return out + ([f"reserved {_bit_ranges(rest)}"] if rest else [])


def _cmp_bits(got: Any, want: int, width: int, names: dict[int, str], what: str, why: str) -> str | None:
    """Name the bits that differ: which are set but should be clear, and the other way round."""
    g = _as_int(got, what)
    if g == want:
        return None
    if not 0 <= g < 1 << width:
        return f"you gave {_hex(g)} for {what}, which does not fit in {width} bits"
    extra, missing = (g ^ want) & g, (g ^ want) & want
    parts = []
    if extra:
        parts.append(f"{', '.join(_bit_names(extra, names))} should read back 0")
    if missing:
        parts.append(f"{', '.join(_bit_names(missing, names))} should read back 1")
    return f"you gave {_hex(g)} for {what}: " + "; ".join(parts) + f" — {why}"


# --------------------------------------------------------------------------
# comparators: each returns None when equal, else the first difference as a sentence

def _cmp_int(got: Any, want: int, what: str) -> str | None:
    g = _as_int(got, what)
    g = _Dec(g) if isinstance(want, _Dec) else g
    if g == want:
        return None
    return f"you gave {_show(g)} for {what}, which is not it{_direction(g, want)}"


def _cmp_list(got: Any, want: list, what: str, item: Callable[[Any], Any] = lambda v: v,
              where: Callable[[int], str] | None = None) -> str | None:
    g = [item(v) for v in _as_list(got, what)]
    for i, w in enumerate(want):
        if i >= len(g):
            more = len(want) - len(g)
            return (f"your list stops after {len(g)} item{'s' if len(g) != 1 else ''}; "
                    f"{more} more belong{'s' if more == 1 else ''} after {_show(g[-1]) if g else 'the start'}"
                    + (f" — {where(i)}" if where else ""))
        if g[i] != w:
            return (f"the first difference is at position {i} (counting from 0): you gave {_show(g[i])}"
                    + (f" — {where(i)}" if where else ""))
    if len(g) > len(want):
        return (f"the first {len(want)} items are right, but the list should end there; "
                f"drop {_show(g[len(want):])}")
    return None


def _cmp_dict(got: Any, want: dict, what: str, value: Callable[[Any, Any], Any] = lambda k, v: v,
              where: Callable[[Any], str] | None = None) -> str | None:
    g = _as_dict(got, what)
    for k, w in want.items():
        if k not in g:
            return f"key {_show(k)} is missing" + (f" — {where(k)}" if where else "")
    extra = [k for k in g if k not in want]
    if extra:
        return (f"key {_show(extra[0])} should not be there (expected keys: "
                f"{', '.join(_show(k) for k in want)})")
    for k, w in want.items():
        v = value(k, g[k])
        if v != w:
            d = _direction(v, w) if isinstance(v, int) and isinstance(w, int) and not isinstance(v, bool) else ""
            return (f"the first wrong value is for {_show(k)}: you gave {_show(v)}{d}"
                    + (f" — {where(k)}" if where else ""))
    return None


def _cmp_set(got: Any, want: set, what: str, item: Callable[[Any], Any] = lambda v: v,
             why_missing: Callable[[Any], str] | None = None,
             why_extra: Callable[[Any], str] | None = None) -> str | None:
    g = {item(v) for v in _as_set(got, what)}
    missing = sorted(want - g, key=str)
    extra = sorted(g - want, key=str)
    if missing:
        n = len(missing)
        return (f"{n} {'is' if n == 1 else 'are'} missing; the first (in sorted order) is "
                f"{_show(missing[0])}" + (f" — {why_missing(missing[0])}" if why_missing else ""))
    if extra:
        return (f"{_show(extra[0])} should not be in it"
                + (f" — {why_extra(extra[0])}" if why_extra else ""))
    return None


def _cmp_function(fn: Any, cases: list[tuple[str, tuple, Any]], what: str,
                  result: Callable[[Any], Any] = lambda v: v) -> str | None:
    if not callable(fn):
        raise _Bad(f"pass your function itself (its name, without calling it), not {_type_name(fn)}")
    for label, args, want, *why in cases:
        try:
            got = fn(*args)
        except Exception as err:  # the learner's code: report it in one line
            return (f"on {label} your function raised {type(err).__name__}: {err}".rstrip(": ")
                    + f" — it should return {what}")
        try:
            got = result(got)
        except _Bad as bad:
            return f"on {label}: {bad}"
        if got != want:
            return (f"on {label} your function returned {_show(got)}, which is not right"
                    + (f" — {why[0]}" if why else ""))
    return None


# --------------------------------------------------------------------------
# the exercise catalogue

@dataclass(frozen=True)
class Exercise:
    """One checked question: where it lives, what it asks, how to check and explain it."""

    name: str
    notebook: str
    question: str
    expected: Callable[[], Any]
    compare: Callable[[Any, Any], str | None]
    hint: str
    why: Callable[[], str]  # computed when first shown: its numbers come from the emulation
    shape: str  # what an answer looks like, for "no answer yet"
    praise: str = ""


EXERCISES: dict[str, Exercise] = {}


def _exercise(name: str, notebook: str, question: str, *, shape: str, hint: str,
              why: str | Callable[[], str], praise: str = "", compare: Callable[[Any, Any], str | None]):
    """Register an exercise. ``why`` is a sentence without numbers of the emulation's, or a
    function that builds it from the emulation (so a changed model never leaves it stale)."""
    explain = why if callable(why) else (lambda: why)

    def register(fn: Callable[[], Any]) -> Callable[[], Any]:
        EXERCISES[name] = Exercise(name, notebook, question, lru_cache(maxsize=1)(fn), compare, hint,
                                   lru_cache(maxsize=1)(explain), shape, praise)
        return fn
    return register


# ---- 00-start ----------------------------------------------------------------

def _five(release: str = DEFAULT_RELEASE) -> tuple[str, ...]:
    """The five milestones as ``release`` names them (qbus_init since QEMU 6.2)."""
    return ("virtio_pci_realize", "virtio_pci_bus_new", cite("hw/core/bus.c", "qbus_init", release)[1],
            "virtio_bus_device_plugged", "virtio_pci_device_plugged")


_FIVE = _five()


def _cmp_plug_order(got, want):
    """Any modelled release's name of a milestone counts as that milestone (a reader of the
    older texts writes qbus_create_inplace for 7.2's qbus_init)."""
    names = []
    for x in _as_list(got, "function names"):
        n = str(x).strip()
        real = next((f for f in want if n in names_of(f)), None)
        if real is None:
            close = difflib.get_close_matches(n, [*want, *(a for f in want for a in names_of(f))], 1)
            raise _Bad(f"{shown(n)} is not one of the five functions"
                       + (f" (did you mean {close[0]!r}?)" if close else f": {', '.join(want)}"))
        names.append(real)
    return _cmp_list(names, want, "function names",
                     where=lambda i: "trace.index_of(name) gives the step where each one is first "
                                     "called; sort by it")


@_exercise("plug-order", "00-start",
           f"Put the five QEMU functions {', '.join(_FIVE[:2])}, {_FIVE[2]} (qbus_create_inplace before "
           f"QEMU 6.2), {', '.join(_FIVE[3:])} in the order the plug of virtio-net-pci first calls them.",
           shape='a list of the five names, e.g. ["virtio_pci_realize", ...]',
           hint="Each event has .function; trace.index_of(name) is the first step that calls name.",
           why="The proxy is realized first (virtio_pci_realize), creates its own virtio bus "
               f"(virtio_pci_bus_new → {_FIVE[2]}), then its wrapper realizes the virtio device on "
               "that bus (qdev_realize → virtio_device_realize), which announces itself "
               "(virtio_bus_device_plugged) and hands over to the PCI side "
               "(virtio_pci_device_plugged) to build capabilities and BARs.",
           compare=_cmp_plug_order)
def _plug_order():
    t = _trace("virtio-net-pci")
    return sorted(_FIVE, key=t.index_of)


@_exercise("first-cap-step", "00-start",
           "At which step (event index) does the plug of virtio-net-pci on pc add its first capability?",
           shape="a step number (an int)",
           hint="Capabilities are added by pci_add_capability: find the first event with that function "
                "(trace.index_of does it), or step through the explorer until the chain view grows.",
           why="On pc nothing before virtio_pci_device_plugged touches the capability list: the header, the "
               "masks and the virtio bus come first, and the common capability is the first one added "
               "(behind a PCIe root port virtio_pci_realize adds PCI Express and PM first: notebook 09).",
           compare=lambda g, w: _cmp_int(g, w, "the step"))
def _first_cap_step():
    return _Dec(_trace("virtio-net-pci").index_of("pci_add_capability"))


# ---- 01-config-space --------------------------------------------------------

_ID_FIELDS = {"vendor_id": (0x00, 2), "device_id": (0x02, 2), "revision_id": (0x08, 1),
              "class": (0x0A, 2), "subsystem_vendor_id": (0x2C, 2), "subsystem_id": (0x2E, 2)}


@_exercise("header-ids", "01-config-space",
           "Read the identity of virtio-net-pci,disable-legacy=on from its config bytes: vendor_id, "
           "device_id, revision_id, class (the 16-bit word at 0x0a), subsystem_vendor_id, subsystem_id.",
           shape='a dict {"vendor_id": 0x..., "device_id": 0x..., ...}',
           hint="All fields are little-endian: the byte at the lower offset is the low byte.",
           why=lambda: _header_ids_why(),
           compare=lambda g, w: _cmp_dict(
               g, w, "field values", lambda k, v: _as_int(v, f"the value for {shown(k)}"),
               where=lambda k: (f"it is {_ID_FIELDS[k][1]} byte{'s' if _ID_FIELDS[k][1] > 1 else ''} at "
                                f"0x{_ID_FIELDS[k][0]:02x}, little-endian")))
def _header_ids():
    cfg = _final("virtio-net-pci,disable-legacy=on").config
    return {k: _le(cfg, off, n) for k, (off, n) in _ID_FIELDS.items()}


def _virtio_id(spec: str = "virtio-net-pci") -> int:
    """The virtio device id the plug announced (virtio_bus_get_vdev_id)."""
    return next(e.detail("virtio_id") for e in _trace(spec).events if e.detail("virtio_id") is not None)


def _header_ids_why() -> str:
    v = _header_ids()
    base = v["device_id"] - _virtio_id()
    return (f"A modern-only device (disable-legacy=on) gets device id {_hex(base)} + its virtio id "
            f"({_hex(v['device_id'])}: net is virtio device {_virtio_id()}) and revision "
            f"{v['revision_id']} (virtio_pci_device_plugged); its subsystem stays QEMU's default "
            f"{v['subsystem_vendor_id']:04x}:{v['subsystem_id']:04x} (pci_set_default_subsystem_id). "
            f"The class word {v['class']:#06x} says 'Ethernet controller'.")


@_exercise("command-readback", "01-config-space",
           "A guest writes 0xffff to COMMAND (offset 0x04, 2 bytes) of a freshly plugged virtio-net-pci. "
           "What does it read back?",
           shape="a 16-bit number, e.g. 0x1234",
           hint="Only bits set in the write mask change: new = (old & ~wmask) | (value & wmask). Look at "
                "state.wmask[4:6] (little-endian), or try it with ConfigAccess.",
           why=lambda: (f"pci_init_wmask makes {', '.join(_bit_names(_command_wmask(), _COMMAND_BITS))} "
                        f"writable (wmask {_command_wmask():#06x}); every other COMMAND bit is read-only "
                        "and stays 0."),
           compare=lambda g, w: _cmp_bits(g, w, 16, _COMMAND_BITS, "the value read back",
                                          "those bits are read-only here: look at state.wmask[4:6]"))
def _command_readback():
    acc = _access("virtio-net-pci")
    acc.config_write(0x04, 0xFFFF, 2)
    return acc.config_read(0x04, 2)


def _command_wmask(spec: str = "virtio-net-pci") -> int:
    return _le(_final(spec).wmask, 0x04, 2)


def _header_field_names() -> tuple[str, ...]:
    from ..pci.layout import HEADER
    return tuple(f.name for f in HEADER)


def _writable_why_missing(name: str) -> str:
    from ..pci.layout import HEADER
    f = next(f for f in HEADER if f.name == name)
    return (f"look at state.wmask[0x{f.offset:02x}:0x{f.offset + f.width:02x}]: "
            "any non-zero byte means a guest can change it")


def _writable_why_extra(name: str) -> str:
    names = _header_field_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, 1)
        return ("that is not a header field name" + (f" (did you mean {close[0]!r}?)" if close else
                "; the names are in virtio_lab.layout.HEADER"))
    if name == "status":
        return "STATUS has wmask 0: its error bits are write-1-to-clear (w1cmask), which is not 'writable'"
    return "its write-mask bytes are all zero, so a guest's write leaves it unchanged"


@_exercise("writable-header-fields", "01-config-space",
           "Which header fields (names as in virtio_lab.layout.HEADER) of virtio-net-pci on pc can a "
           "guest change at least one bit of?",
           shape='a set of field names, e.g. {"command", ...}',
           hint="A field is writable when any of its bytes has a non-zero wmask. Unused BARs have wmask 0.",
           why=lambda: (f"COMMAND (wmask {_command_wmask():#06x}), the cache line size and interrupt line "
                        "(firmware fills those in), the registered BARs (their wmask ~(size-1) is how "
                        "firmware sizes and places them: "
                        + ", ".join(f"BAR{i}" + (f" with its upper half BAR{i + 1}" if b.kind == "mem64" else "")
                                    for i, b in _bars("virtio-net-pci").items())
                        + ") and the ROM address. Identity, class, STATUS and the capability pointer "
                        "are read-only."),
           compare=lambda g, w: _cmp_set(g, w, "field names", lambda v: str(v).strip().lower(),
                                         _writable_why_missing, _writable_why_extra))
def _writable_header_fields():
    from ..pci.layout import HEADER
    st = _final("virtio-net-pci")
    return {f.name for f in HEADER if any(st.wmask[f.offset:f.offset + f.width])}


# ---- 02-config-access --------------------------------------------------------

#: CONFIG_ADDRESS's fields, as QEMU's pci_dev_find_by_addr and pci_data_* take them apart
_CF8_FIELDS = (("enable", 31, 1), ("bus", 16, 0xFF), ("device", 11, 0x1F), ("function", 8, 7),
               ("register", 2, 0x3F), ("low bits 1:0", 0, 3))


def _field_diff(got: int, want: int, fields, what: str) -> str | None:
    """Name the first field whose bits differ (without giving the right value)."""
    for name, shift, mask in fields:
        g, w = got >> shift & mask, want >> shift & mask
        if g != w:
            top = shift + mask.bit_length() - 1
            bits = f"bit {shift}" if top == shift else f"bits {top}:{shift}"
            return f"{what}: {bits} ({name}) hold {_hex(g)}, which is not it{_direction(g, w)}"
    return None


_CF8_TASK = ("pc", 0x0E)  # the header type byte of the device on pc


def _cmp_config_address(got, want):
    g = _as_dict(got, "the two values")
    for k in want:
        if k not in g:
            raise _Bad(f"key {shown(k)} is missing (expected keys: 'cf8', 'port')")
    cf8 = _as_int(g["cf8"], "the value for 'cf8'")
    why = _field_diff(cf8, want["cf8"], _CF8_FIELDS, "the CONFIG_ADDRESS value")
    if why:
        return why
    port = _as_int(g["port"], "the value for 'port'")
    if port != want["port"]:
        return (f"the data port {_hex(port)} reads a different byte: the register field picks the dword, "
                f"the port 0xcfc + (offset & 3) picks the byte in it")
    return None


@_exercise("config-address", "02-config-access",
           "Which value does a guest write to port 0xcf8, and which port does it then read one byte from, "
           "to get the header type (offset 0x0e) of virtio-net-pci on pc?",
           shape='a dict {"cf8": 0x..., "port": 0x...}',
           hint="trace.machine.bdf is the device's bus:device.function. CONFIG_ADDRESS = bit 31 (enable) | "
                "bus << 16 | device << 11 | function << 8 | (offset & 0xfc); the byte within the dword "
                "comes from the data port, 0xcfc + (offset & 3).",
           why="QEMU's pci_host_data_read forwards the read to config_reg | (port & 3): the dword "
               "register comes from 0xcf8, the byte inside it from which of 0xcfc-0xcff you read.",
           compare=_cmp_config_address)
def _config_address():
    from ..hw.pci_host import CONFIG_DATA, config_address
    t = _trace("virtio-net-pci", _CF8_TASK[0])
    devfn, off = t.machine.slot_devfn, _CF8_TASK[1]
    return {"cf8": config_address(t.machine.bus_number, devfn >> 3, devfn & 7, off),
            "port": CONFIG_DATA + (off & 3)}


#: an ECAM offset's fields (pcie_host.h: PCIE_MMCFG_BUS/DEVFN/CONFOFFSET)
_ECAM_FIELDS = (("base", 28, 0xF), ("bus", 20, 0xFF), ("device", 15, 0x1F), ("function", 12, 7),
                ("offset", 0, 0xFFF))
_ECAM_TASKS = {"q35 offset 0x34": ("q35", False, 0x34), "q35 root port offset 0x100": ("q35", True, 0x100)}


@_exercise("ecam-address", "02-config-access",
           "At which guest-physical address does a q35 guest read (a) the byte at offset 0x34 of "
           "virtio-net-pci on the root bus, (b) offset 0x100 of virtio-net-pci behind a root port? "
           "SeaBIOS put the ECAM window at virtio_lab.hw.pci_host.ECAM_BASE['q35'].",
           shape='a dict {"q35 offset 0x34": 0x..., "q35 root port offset 0x100": 0x...}',
           hint="address = base + (bus << 20 | device << 15 | function << 12 | offset); the device's "
                "bus:device.function is trace.machine.bdf (a different bus behind the root port).",
           why="Each function owns one 4 KiB page of the window, so the 12-bit offset reaches its whole "
               "extended space; the bus number is bits 27:20, so the window spans 256 MiB.",
           compare=lambda g, w: _cmp_dict(
               g, w, "addresses", lambda k, v: _as_int(v, f"the address for {shown(k)}"),
               where=lambda k: _field_diff(_as_int(_as_dict(g, "addresses")[k], "an address"), w[k],
                                           _ECAM_FIELDS, "that address") or ""))
def _ecam_address():
    from ..hw.pci_host import ECAM_BASE, ecam_offset
    out = {}
    for key, (machine, rp, off) in _ECAM_TASKS.items():
        m = _trace("virtio-net-pci", machine, rp).machine
        out[key] = ECAM_BASE[machine] + ecam_offset(m.bus_number, m.slot_devfn >> 3, m.slot_devfn & 7, off)
    return out


# ---- 03-capabilities --------------------------------------------------------

def _chain(spec="virtio-net-pci", machine="pc", root_port=False) -> list[int]:
    return [c.offset for c in _final(spec, machine, root_port).caps]


@_exercise("cap-chain-offsets", "03-capabilities",
           "Walk the capability list of virtio-net-pci on pc by hand: list the offsets of the "
           "capabilities in list order, starting from the capabilities pointer.",
           shape="a list of offsets, e.g. [0x40, 0x50]",
           hint="The walk starts at the byte at 0x34; each capability's next pointer is its second byte.",
           why="QEMU prepends: each new capability becomes the head and points at the previous head, so "
               "the list runs newest → oldest (MSI-X, added last, comes first) while the offsets were "
               "handed out first-fit from 0x40 upwards.",
           compare=lambda g, w: _cmp_list(
               g, w, "offsets", lambda v: _as_int(v, "each offset"),
               where=lambda i: ("the list starts at the capabilities pointer, the byte at 0x34" if i == 0
                                else f"it is the cap_next byte of the capability at 0x{w[i - 1]:02x}, "
                                     f"i.e. config[0x{w[i - 1] + 1:02x}]")))
def _cap_chain_offsets():
    return _chain()


_MSIX_KEYS = {"offset": "the MSI-X capability's offset (its ID is 0x11)",
              "table_size": "Message Control (cap+2, 16 bits): the low 11 bits hold table size − 1",
              "table_bar": "the Table dword (cap+4): its low 3 bits are the BAR index (BIR)",
              "table_offset": "the Table dword (cap+4) with the low 3 bits cleared",
              "pba_bar": "the PBA dword (cap+8): its low 3 bits are the BAR index (BIR)",
              "pba_offset": "the PBA dword (cap+8) with the low 3 bits cleared"}


_MSIX_SPEC = "virtio-blk-pci,drive=d0,num-queues=4"


@_exercise("msix-cap", "03-capabilities",
           "Decode the MSI-X capability of virtio-blk-pci,drive=d0,num-queues=4: its offset, "
           "table_size, table_bar, table_offset, pba_bar, pba_offset.",
           shape='a dict {"offset": 0x.., "table_size": .., "table_bar": .., "table_offset": 0x.., '
                 '"pba_bar": .., "pba_offset": 0x..}',
           hint="Find the capability with ID 0x11, then read the three fields after its 2-byte header.",
           why=lambda: (f"The MSI-X capability was added last, so it is the list's head, at "
                        f"{_hex(_msix_cap()['offset'])}. virtio-blk asks for num-queues + 1 vectors (one per queue "
                        f"plus one for configuration changes), so {_msix_cap()['table_size']}. "
                        "msix_init_exclusive_bar puts the table and "
                        f"the PBA alone in BAR{_msix_cap()['table_bar']}: the table at "
                        f"{_hex(_msix_cap()['table_offset'])}, the PBA at {_hex(_msix_cap()['pba_offset'])}, "
                        f"the second half of the {_bars(_MSIX_SPEC)[_msix_cap()['table_bar']].size}-byte BAR."),
           compare=lambda g, w: _cmp_dict(g, w, "MSI-X fields",
                                          lambda k, v: _as_int(v, f"the value for {shown(k)}"),
                                          where=lambda k: _MSIX_KEYS[k]))
def _msix_cap():
    st = _final(_MSIX_SPEC)
    cap = next(c for c in st.caps if c.id == 0x11)
    return {"offset": cap.offset, "table_size": cap.get("table_size"), "table_bar": cap.get("table_bir"),
            "table_offset": cap.get("table_offset"), "pba_bar": cap.get("pba_bir"),
            "pba_offset": cap.get("pba_offset")}


_WALK_CASES = (("virtio-net-pci", "pc", False), ("virtio-net-pci,disable-modern=on", "pc", False),
               ("virtio-net-pci,disable-modern=on,vectors=0", "pc", False),
               ("virtio-rng-pci,vectors=0", "pc", False), ("virtio-net-pci", "q35", True))


def _case_label(spec: str, machine: str, root_port: bool) -> str:
    return f"{spec} on {machine}{' behind a root port' if root_port else ''}"


def _stale_list() -> bytes:
    """virtio-net-pci's bytes with STATUS.CAP_LIST cleared and 0x34 left as it was: a pointer
    the spec says means nothing (real hardware can leave one; Linux's __pci_bus_find_cap_start
    checks the bit first)."""
    cfg = bytearray(_final("virtio-net-pci").config[:256])
    cfg[0x06] &= ~0x10
    return bytes(cfg)


def _pairs(v: Any) -> list[tuple[int, int]]:
    out = []
    for p in _as_list(v, "(offset, cap_id) pairs"):
        if not isinstance(p, (tuple, list)) or len(p) != 2:
            raise _Bad(f"each item should be an (offset, cap_id) pair, not {shown(p)}")
        out.append((_as_int(p[0], "an offset"), _as_int(p[1], "a cap id")))
    return out


@_exercise("walk-caps", "03-capabilities",
           "Write walk(config) that takes 256 config bytes and returns the capability list as "
           "(offset, cap_id) pairs in list order. It is tested on five devices, including one with "
           "no capabilities at all, and on bytes whose STATUS says there is no list while 0x34 still "
           "holds a stale pointer.",
           shape="your function, e.g. check('walk-caps', walk)",
           hint="Check STATUS bit 4 (0x10 in the byte at 0x06) first: without it there is no list. Then "
                "start at config[0x34] and follow config[offset + 1] until it is 0.",
           why="This is what lspci and the Linux PCI core do: STATUS.CAP_LIST says a list exists, 0x34 "
               "holds the head, byte +1 of each capability the next pointer, 0 ends the list. Real "
               "walkers also mask the low two bits and stop after 48 hops in case the list loops.",
           compare=lambda g, w: _cmp_function(g, w, "a list of (offset, cap_id) pairs", _pairs))
def _walk_caps_expected():
    cases = [(_case_label(*c), (bytes(_final(*c).config[:256]),), [(cap.offset, cap.id) for cap in _final(*c).caps])
             for c in _WALK_CASES]
    stale = _stale_list()
    return cases + [(f"virtio-net-pci's bytes with STATUS bit 4 (CAP_LIST) cleared and 0x34 still "
                     f"holding {_hex(stale[0x34])}", (stale,), [],
                     "without STATUS.CAP_LIST the byte at 0x34 means nothing: check the bit before you "
                     "follow the pointer")]


def _walk_reference(config: bytes) -> list[tuple[int, int]]:
    """Reference walk: STATUS.CAP_LIST, then follow next pointers from 0x34."""
    if not config[0x06] & 0x10:
        return []
    out, ptr, hops = [], config[0x34] & ~3, 0
    while ptr >= 0x40 and hops < 48:
        out.append((ptr, config[ptr]))
        ptr, hops = config[ptr + 1] & ~3, hops + 1
    return out


# ---- 04-bars ----------------------------------------------------------------

def _bars(spec: str, machine: str = "pc", root_port: bool = False) -> dict[int, Any]:
    return {b.index: b for b in _final(spec, machine, root_port).facts.bars if b.index < 6}


_KIND_WORDS = {"io": "I/O", "mem32": "32-bit memory", "mem64": "64-bit memory"}


def _size_words(n: int) -> str:
    return f"{n >> 10} KiB" if n >= 1024 and n % 1024 == 0 else f"{n} bytes"


def _bar_sizes_why() -> str:
    from ..pci.regs import VIRTIO_PCI_CONFIG_OFF
    t = _trace("virtio-net-pci")
    config_len = next(e.detail("config_len") for e in t.events if e.detail("config_len") is not None)
    msix = any(c.id == 0x11 for c in t.final.caps)
    header = VIRTIO_PCI_CONFIG_OFF(msix)
    words = {"io": f"the legacy virtio header ({header} bytes while an MSI-X capability is present) plus "
                   f"{config_len} bytes of net config, rounded up to a power of two",
             "mem32": "the MSI-X table and PBA", "mem64": "the modern regions common, isr, device and notify"}
    return " ".join(f"BAR{i}{f' (+BAR{i + 1})' if b.kind == 'mem64' else ''}: {words[b.kind]}, "
                    f"{_size_words(b.size)}{', prefetchable' if b.kind == 'mem64' else ''}."
                    for i, b in _bars("virtio-net-pci").items())


@_exercise("bar-sizes", "04-bars",
           "Which BARs does virtio-net-pci on pc implement, and how big is each? (BAR index → size in "
           "bytes; leave out the ROM and the upper half of a 64-bit BAR.)",
           shape="a dict {index: size}, e.g. {0: 64}",
           hint="Size a BAR from its write mask: size = ~(wmask & ~type_bits) + 1 over 32 (or, for a "
                "64-bit BAR, 64) bits; a BAR whose wmask is 0 is not implemented.",
           why=lambda: _bar_sizes_why(),
           compare=lambda g, w: _cmp_dict(
               g, w, "BAR sizes", lambda k, v: _dec(v, f"the size of BAR{k}"),
               where=lambda k: f"BAR{k} is at 0x{0x10 + 4 * k:02x}; size it from state.wmask there"))
def _bar_sizes():
    return {i: _Dec(b.size) for i, b in _bars("virtio-net-pci").items()}


def _bar_register(off: int, spec: str = "virtio-net-pci") -> tuple[str, Any]:
    """('BAR1', its facts) for a BAR register, ('BAR5', the 64-bit BAR it is the upper half of)."""
    bars = _bars(spec)
    i = (off - 0x10) // 4
    if i in bars:
        return f"BAR{i}", bars[i]
    prev = bars.get(i - 1)
    return f"BAR{i}", prev if prev is not None and prev.kind == "mem64" else None


def _bar_bit_fields(off: int, spec: str = "virtio-net-pci") -> tuple[tuple[str, int], ...]:
    """A BAR register's fields as (name, bit mask): type bits below, address bits above."""
    name, bar = _bar_register(off, spec)
    if bar is not None and bar.index != (off - 0x10) // 4:
        return ((f"address bits 63:32 (the upper half of BAR{bar.index})", 0xFFFFFFFF),)
    if bar is not None and bar.kind == "io":
        return (("bit 0, the I/O space indicator", 1), ("bit 1, reserved", 2), ("address bits 31:2", ~3 & 0xFFFFFFFF))
    return (("bit 0, the memory space indicator", 1), ("bits 2:1, the memory type (00 32-bit, 10 64-bit)", 6),
            ("bit 3, prefetchable", 8), ("address bits 31:4", ~0xF & 0xFFFFFFFF))


def _cmp_readback(got, want):
    g = _as_dict(got, "read-back values")
    for k in want:
        if k not in g:
            return f"key {_hex(k)} is missing (expected keys: {', '.join(_hex(k) for k in want)})"
    extra = [k for k in g if k not in want]
    if extra:
        return f"key {_show(extra[0])} should not be there (expected keys: {', '.join(_hex(k) for k in want)})"
    for off, w in want.items():
        v = _as_int(g[off], f"the value at {_hex(off)}")
        if v == w:
            continue
        name, _ = _bar_register(off)
        fields = [(field, (v ^ w) & mask) for field, mask in _bar_bit_fields(off) if (v ^ w) & mask]
        why = []
        if any(not f.startswith("address") for f, _ in fields):
            why.append("type bits are read-only: they keep the value the plug gave them")
        if any(f.startswith("address") for f, _ in fields):
            why.append("address bits below the BAR's size are read-only 0, the ones above it writable")
        named = "; ".join(f"{f} (its {_bit_ranges(d)})" if f.startswith("address") else f for f, d in fields)
        return (f"the first wrong value is at {_hex(off)} ({name}): you gave {_hex(v)}, which differs in "
                f"{named} — {' and '.join(why)}: look at state.wmask[{_hex(off)}:{_hex(off + 4)}] and the "
                "config bytes there")
    return None


def _readback_why() -> str:
    parts = []
    for off, v in _sizing_readback().items():
        name, bar = _bar_register(off)
        if bar is None:
            parts.append(f"{_hex(off)} ({name}): {v:#010x}, not implemented.")
        elif bar.index != (off - 0x10) // 4:
            parts.append(f"{_hex(off)} ({name}, the upper half of BAR{bar.index}): {v:#010x}, all address bits, "
                         "so all writable.")
        else:
            low = 3 if bar.kind == "io" else 0xF
            parts.append(f"{_hex(off)} ({name}, {_KIND_WORDS[bar.kind]}{', prefetchable' if v & 8 and bar.kind != 'io' else ''}, "
                         f"{_size_words(bar.size)}): {v:#010x}, ~(size − 1) over the address bits and the "
                         f"type bits {_hex(v & low)} kept.")
    return " ".join(parts)


_READBACK_REGS = (0x10, 0x14, 0x20, 0x24)


@_exercise("sizing-readback", "04-bars",
           "Firmware writes 0xffffffff to the BAR registers at 0x10, 0x14, 0x20 and 0x24 of "
           "virtio-net-pci and reads each back. What does it read? (offset → 32-bit value)",
           shape="a dict {0x10: 0x..., 0x14: 0x..., 0x20: 0x..., 0x24: 0x...}",
           hint="Each byte becomes (old & ~wmask) | (0xff & wmask): the writable address bits turn to 1, "
                "the read-only type bits keep their value. ConfigAccess lets you try it.",
           why=lambda: _readback_why(),
           compare=_cmp_readback)
def _sizing_readback():
    out = {}
    for off in _READBACK_REGS:
        acc = _access("virtio-net-pci")
        acc.config_write(off, 0xFFFFFFFF, 4)
        out[off] = acc.config_read(off, 4)
    return out


def _size_cases() -> list[tuple[str, tuple, int]]:
    cases = []
    for spec in ("virtio-net-pci", "virtio-blk-pci,drive=d0", "virtio-net-pci,page-per-vq=on",
                 "virtio-net-pci,modern-pio-notify=on"):
        for i, bar in _bars(spec).items():
            acc = _access(spec)
            off = 0x10 + 4 * i
            acc.config_write(off, 0xFFFFFFFF, 4)
            lo = acc.config_read(off, 4)
            hi = None
            if bar.kind == "mem64":
                acc.config_write(off + 4, 0xFFFFFFFF, 4)
                hi = acc.config_read(off + 4, 4)
            label = f"BAR{i} of {spec} (lo={_hex(lo)}, hi={_hex(hi) if hi is not None else None})"
            case = (label, (lo, hi), _Dec(bar.size))
            if all(c[1] != case[1] for c in cases):
                cases.append(case)
    return cases


@_exercise("size-from-readback", "04-bars",
           "Write bar_size(lo, hi) that turns the all-ones read-back of a BAR (lo, and for a 64-bit BAR "
           "the upper register's read-back hi, else None) into its size in bytes.",
           shape="your function, e.g. check('size-from-readback', bar_size)",
           hint="Clear the type bits first: the low 2 bits for I/O (bit 0 is 1), the low 4 bits for memory. "
                "For 64-bit, combine (hi << 32) | lo. Then size = (~value + 1) in 32 or 64 bits.",
           why="Only the address bits above the size are writable, so the read-back is ~(size-1) plus "
               "the type bits; inverting after clearing the type bits and adding 1 gives the size.",
           compare=lambda g, w: _cmp_function(g, w, "a size in bytes (an int)",
                                              lambda v: _dec(v, "the size")))
def _size_from_readback():
    return _size_cases()


def _size_reference(lo: int, hi: int | None = None) -> int:
    """Reference: clear the type bits, invert, add one (in 32 or 64 bits)."""
    if lo & 1:  # I/O
        return (~(lo & ~0x3) + 1) & 0xFFFFFFFF
    if hi is not None:
        value = (hi << 32) | (lo & ~0xF)
        return (~value + 1) & 0xFFFFFFFFFFFFFFFF
    return (~(lo & ~0xF) + 1) & 0xFFFFFFFF


#: where SeaBIOS 1.16 starts its 64-bit window when the 32-bit one is full and the guest has no
#: RAM above 4 GiB (pci_bios_map_devices: 4 GiB + RamSizeOver4G, aligned to 1 GiB)
_HIGH_ADDRESS = 1 << 32
_HIGH_BAR = 4


@_exercise("bar-high", "04-bars",
           f"Firmware places the 64-bit BAR{_HIGH_BAR} of virtio-net-pci at {_hex(_HIGH_ADDRESS)} (4 GiB: above "
           f"what 32 bits can address): it writes the low 32 bits of the address to "
           f"{_hex(0x10 + 4 * _HIGH_BAR)} and the high 32 bits to {_hex(0x14 + 4 * _HIGH_BAR)}. What do the "
           "two registers read back? (offset → 32-bit value)",
           shape=f'a dict {{{_hex(0x10 + 4 * _HIGH_BAR)}: 0x..., {_hex(0x14 + 4 * _HIGH_BAR)}: 0x...}}',
           hint="Split the address: low = address & 0xffffffff, high = address >> 32. Then apply the write "
                "rule to each register: the type bits of the low one are read-only.",
           why=lambda: (f"The low register keeps its type bits ({_hex(_bar_high()[0x10 + 4 * _HIGH_BAR] & 0xF)}: "
                        "64-bit, prefetchable) under address bits 31:4, all 0 here; the upper register holds "
                        f"address bits 63:32, {_hex(_bar_high()[0x14 + 4 * _HIGH_BAR])}. A 32-bit BAR could not "
                        "go there at all: that is why SeaBIOS moves only 64-bit BARs above 4 GiB."),
           compare=_cmp_readback)
def _bar_high():
    acc = _access("virtio-net-pci")
    off = 0x10 + 4 * _HIGH_BAR
    acc.config_write(off, _HIGH_ADDRESS & 0xFFFFFFFF, 4)
    acc.config_write(off + 4, _HIGH_ADDRESS >> 32, 4)
    return {off: acc.config_read(off, 4), off + 4: acc.config_read(off + 4, 4)}


@_exercise("bar-kinds", "04-bars",
           "For virtio-net-pci,modern-pio-notify=on: what kind is each implemented BAR? (BAR index → "
           '"io", "mem32" or "mem64")',
           shape='a dict {index: "io" | "mem32" | "mem64"}',
           hint="Bit 0 of a BAR register set means I/O; otherwise bits 2:1 say 32-bit (00) or 64-bit (10). "
                "A BAR with wmask 0 is not implemented.",
           why=lambda: (f"modern-pio-notify=on adds BAR{_PIO_BAR()}, an I/O BAR of {_size_words(_bars(_PIO_SPEC)[_PIO_BAR()].size)} "
                        "for notifications (a second notify capability points into it), next to "
                        + ", ".join(f"BAR{i} ({b.kind})" for i, b in _bars(_PIO_SPEC).items() if i != _PIO_BAR())
                        + "; the 64-bit one also uses the next register."),
           compare=lambda g, w: _cmp_dict(
               g, w, "BAR kinds", lambda k, v: str(v).strip().lower(),
               where=lambda k: f"read the low bits of the BAR register at 0x{0x10 + 4 * k:02x}"))
def _bar_kinds():
    return {i: b.kind for i, b in _bars(_PIO_SPEC).items()}


_PIO_SPEC = "virtio-net-pci,modern-pio-notify=on"


def _PIO_BAR() -> int:  # noqa: N802 - the BAR the option adds
    return next(i for i in _bars(_PIO_SPEC) if i not in _bars("virtio-net-pci"))


# ---- 05-virtio-primer ---------------------------------------------------------

_RING_PARTS = {"desc": "the descriptor table: 16 bytes a descriptor (addr 8, len 4, flags 2, next 2)",
               "avail": "the available ring: flags, idx, one 2-byte entry a descriptor, used_event (2 bytes each)",
               "used": "the used ring: flags, idx, one 8-byte element (id 4, len 4) a descriptor, avail_event"}


def _queue_sizes(spec: str = "virtio-net-pci") -> list[int]:
    from ..hw.guest_access import GuestDevice
    dev = GuestDevice(_trace(spec), record=False)
    return [q.num_default for q in dev.vdev.queues]


@_exercise("ring-sizes", "05-virtio-primer",
           "Queue 0 of virtio-net-pci has the size the device offers in queue_size. How many bytes do its "
           "descriptor table, available ring and used ring take in a split virtqueue (with the event-index "
           "fields)?",
           shape='a dict {"desc": .., "avail": .., "used": ..} (sizes in bytes)',
           hint="Read queue_size first (it is N, the number of descriptors). Then count the fields of each "
                "part: every field is a little-endian integer of 2, 4 or 8 bytes.",
           why="The virtio spec (2.7) sizes them 16·N, 6 + 2·N and 6 + 8·N: one descriptor, one available "
               "entry and one used element per slot, plus flags, idx and the event field in both rings.",
           compare=lambda g, w: _cmp_dict(g, w, "ring sizes", lambda k, v: _dec(v, f"the size of {shown(k)}"),
                                          where=lambda k: _RING_PARTS[k]))
def _ring_sizes():
    n = _queue_sizes()[0]
    return {"desc": _Dec(16 * n), "avail": _Dec(6 + 2 * n), "used": _Dec(6 + 8 * n)}


def _status_bits(v: int) -> str:
    from ..hw.guest_access import STATUS_NAMES
    return "|".join(name for bit, name in STATUS_NAMES if v & bit) or "0 (reset)"


def _cmp_status(got, want):
    g = [_as_int(v, "each status value") for v in _as_list(got, "status values")]
    for i, w in enumerate(want):
        if i >= len(g):
            return f"your list stops after {len(g)} values; the driver writes {len(want) - len(g)} more"
        if g[i] != w and w == 0:
            return (f"write {i} (counting from 0) is {_hex(g[i])} = {_status_bits(g[i])}, but the driver "
                    "first resets the device: that write is 0 (reset)")
        if g[i] != w:
            from ..hw.guest_access import STATUS_NAMES
            extra = [n for b, n in STATUS_NAMES if g[i] & b and not w & b]
            missing = [n for b, n in STATUS_NAMES if w & b and not g[i] & b]
            return (f"write {i} (counting from 0) is {_hex(g[i])} = {_status_bits(g[i])}: "
                    + "; ".join(x for x in (f"{', '.join(missing)} should be set" if missing else "",
                                            f"{', '.join(extra)} is not set yet" if extra else "") if x)
                    + " (the driver only adds bits, in the order of the handshake)")
    if len(g) > len(want):
        return f"the first {len(want)} values are right; the driver writes no more after them"
    return None


@_exercise("status-sequence", "05-virtio-primer",
           "List, in order, the values Linux 6.1's virtio-net driver writes to device_status of "
           "virtio-net-pci on pc, from the reset to the end of the handshake.",
           shape="a list of status values, e.g. [0, ...]",
           hint="The driver starts with a reset (0), then adds one status bit at a time: ACKNOWLEDGE (1), "
                "DRIVER (2), FEATURES_OK (8), DRIVER_OK (4). Each write keeps the bits already set.",
           why="ACKNOWLEDGE: a driver saw the device. DRIVER: it knows how to drive it. FEATURES_OK: it "
               "wrote its features and the device accepted them (the driver reads the status back to "
               "check). DRIVER_OK: queues are set up, the device may start work.",
           compare=_cmp_status)
def _status_sequence():
    from ..guest.probe import probe
    from ..hw.guest_access import COMMON_OFFSET
    return [e.detail("value") for e in probe(_trace("virtio-net-pci")).guest_events
            if e.function == "virtio_pci_common_write" and e.detail("region") == "common"
            and e.detail("offset") == COMMON_OFFSET["device_status"]]


# ---- 06-virtio-pci ------------------------------------------------------------

_ID_SPECS = ("virtio-net-pci", "virtio-net-pci,disable-legacy=on", "virtio-blk-pci-non-transitional,drive=d0",
             "virtio-gpu-pci")


@_exercise("device-ids", "06-virtio-pci",
           "What PCI device id does each of these get: " + ", ".join(_ID_SPECS) + "?",
           shape='a dict {"virtio-net-pci": 0x..., ...} with the four specs as keys',
           hint="Transitional devices keep the class's id 0x1000 + n; modern-only ones get 0x1040 + the "
                "virtio device id (python -m virtio_lab devices lists the ids). GPU is modern-only.",
           why=lambda: _device_ids_why(),
           compare=lambda g, w: _cmp_dict(
               g, w, "device ids", lambda k, v: _as_int(v, f"the id for {shown(k)}"),
               where=lambda k: f"plug {shown(k)} and read the 2 bytes at 0x02"))
def _device_ids():
    return {s: _le(_final(s).config, 2, 2) for s in _ID_SPECS}


def _device_ids_why() -> str:
    ids = _device_ids()
    t = ids[_ID_SPECS[0]]
    modern = [f"{s.split(',')[0]}: {_hex(ids[s] - _virtio_id(s))} + {_virtio_id(s)} = {_hex(ids[s])}"
              for s in _ID_SPECS[1:]]
    return (f"virtio-net-pci is transitional by default on pc and keeps its class's id {_hex(t)} "
            "(transitional ids are 0x1000 + a number of their own, not the virtio id). disable-legacy=on or "
            "a -non-transitional type makes a device modern-only, and virtio-gpu-pci has no legacy mode at "
            "all: modern ids are 0x1040 + the virtio device id (" + "; ".join(modern) + ").")


_NOTIFY_SPECS = ("virtio-net-pci", "virtio-net-pci,page-per-vq=on")


_NOTIFY_Q = 2


def _notify_cap(spec: str):
    return next(c for c in _final(spec).caps if c.id == 0x09 and c.get("cfg_type") == 2)


def _notify_addr(spec: str, queue: int) -> int:
    from ..text.dump import dump
    cap = _notify_cap(spec)
    notify_off = dump(_trace(spec))["common_cfg"]["queues"][queue]["notify_off"]
    return cap.get("cap_offset") + notify_off * cap.get("notify_off_multiplier")


@_exercise("notify-address", "06-virtio-pci",
           "Where inside BAR4 does a driver write to notify (kick) queue 2? Answer for virtio-net-pci and "
           "for virtio-net-pci,page-per-vq=on (spec → offset in the BAR).",
           shape='a dict {"virtio-net-pci": 0x..., "virtio-net-pci,page-per-vq=on": 0x...}',
           hint="offset = cap.offset + queue_notify_off × notify_off_multiplier, from the notify capability "
                "(cfg_type 2); QEMU reports queue_notify_off = the queue's index.",
           why=lambda: " ".join(
               f"{s}: the notify capability says offset {_hex(_notify_cap(s).get('cap_offset'))} and multiplier "
               f"{_hex(_notify_cap(s).get('notify_off_multiplier'))}, so queue {_NOTIFY_Q} is at "
               f"{_hex(_notify_cap(s).get('cap_offset'))} + {_NOTIFY_Q} × "
               f"{_hex(_notify_cap(s).get('notify_off_multiplier'))} = {_hex(_notify_addr(s, _NOTIFY_Q))}."
               for s in _NOTIFY_SPECS) + " page-per-vq=on gives each queue a page of its own (notebook 15 says why).",
           compare=lambda g, w: _cmp_dict(
               g, w, "notify offsets", lambda k, v: _as_int(v, f"the offset for {shown(k)}"),
               where=lambda k: f"read the notify capability of {shown(k)}: its offset at +8 and multiplier at +16"))
def _notify_address():
    return {s: _notify_addr(s, _NOTIFY_Q) for s in _NOTIFY_SPECS}


_REFUSAL_SPECS = ("virtio-net-pci,disable-legacy=on,disable-modern=on", "virtio-net-pci,disable-modern=on",
                  "virtio-net-pci,iommu_platform=on", "virtio-net-pci,iommu_platform=on,disable-legacy=on",
                  "virtio-gpu-pci,disable-legacy=off", "virtio-blk-pci")


def _refused(spec: str) -> bool:
    from ..errors import VirtioLabError
    try:
        _trace(spec)
    except VirtioLabError:
        return True
    return False


def _refusal_why_missing(spec: str) -> str:
    return f"QEMU does refuse it; virtio_lab.plug({spec!r}) shows QEMU's message"


def _refusal_why_extra(spec: str) -> str:
    if spec not in _REFUSAL_SPECS:
        return "it is not one of the six specs in the question"
    return f"QEMU accepts it; virtio_lab.plug({spec!r}).narrate() shows how"


@_exercise("refused-specs", "06-virtio-pci",
           "Which of these does QEMU 7.2 refuse to plug on pc? " + "; ".join(_REFUSAL_SPECS),
           shape='a set of specs (strings), e.g. {"virtio-net-pci,disable-modern=on"}',
           hint="Think about which mode (legacy, modern) is left, what a legacy device cannot offer "
                "(IOMMU_PLATFORM) and which backend a device needs.",
           why="Neither mode left: refused in virtio_pci_realize. iommu_platform=on with legacy enabled: "
               "legacy drivers cannot do it, refused in virtio_pci_device_plugged. virtio-blk-pci needs a "
               "drive. virtio-gpu-pci,disable-legacy=off is accepted: the GPU wrapper forces modern-only "
               "later, overriding the option.",
           compare=lambda g, w: _cmp_set(g, w, "specs", lambda v: str(v).strip(),
                                         _refusal_why_missing, _refusal_why_extra))
def _refused_specs():
    return {s for s in _REFUSAL_SPECS if _refused(s)}


# ---- 07-plug-timeline --------------------------------------------------------

@_exercise("cap-ptr-writers", "07-plug-timeline",
           "Which steps of the virtio-net-pci plug change the capabilities pointer (the byte at 0x34)? "
           "List their indexes in order.",
           shape="a list of step numbers, e.g. [3, 7]",
           hint="event.changed() is the set of config offsets a step changed: test 0x34 in it for every "
                "event, or watch the hex grid's outline on byte 0x34 while stepping.",
           why=lambda: ("Every pci_add_capability makes its capability the new head, so 0x34 changes once "
                        "per capability: " + ", ".join(c.name for c in reversed(list(_final("virtio-net-pci").caps)))
                        + f" — {len(_cap_ptr_writers())} steps."),
           compare=lambda g, w: _cmp_list(
               g, w, "step numbers", lambda v: _dec(v, "each step"),
               where=lambda i: f"it is the {_ordinal(i + 1)} call of pci_add_capability"))
def _cap_ptr_writers():
    return [_Dec(e.index) for e in _trace("virtio-net-pci").events if 0x34 in e.changed()]


@_exercise("bar-order", "07-plug-timeline",
           "In what order does the virtio-net-pci plug register its BARs? List the BAR indexes in the "
           "order pci_register_bar is called (the ROM slot is 6).",
           shape="a list of BAR indexes, e.g. [0, 1]",
           hint="Filter trace.events for function == 'pci_register_bar'; each has detail('bar').",
           why="virtio_pci_device_plugged registers the modern BAR4 right after the four region "
               "capabilities, msix_init_exclusive_bar registers BAR1, the legacy BAR0 comes at the very "
               "end of device_plugged, and pci_qdev_realize adds the ROM (slot 6) last.",
           compare=lambda g, w: _cmp_list(
               g, w, "BAR indexes", lambda v: _as_int(v, "each BAR index"),
               where=lambda i: f"look at the {_ordinal(i + 1)} pci_register_bar event"))
def _bar_order():
    return [e.detail("bar") for e in _trace("virtio-net-pci").events if e.function == "pci_register_bar"]


# ---- 08-interrupts ---------------------------------------------------------------

_ISR_BITS = ((1, "bit 0, a queue interrupt"), (2, "bit 1, a configuration change"))


def _cmp_isr(got, want):
    g = [_as_int(v, "each ISR value") for v in _as_list(got, "ISR values")]
    if len(g) != len(want):
        return f"give {len(want)} values, one for each read; you gave {len(g)}"
    for i, (x, w) in enumerate(zip(g, want)):
        if x != w:
            diff = [name for bit, name in _ISR_BITS if (x ^ w) & bit]
            return (f"read {i + 1} gives {_hex(x)}; it differs in {' and '.join(diff) or 'bits the ISR does not have'}"
                    + (" — remember what a read does to the ISR" if i else ""))
    return None


@_exercise("isr-reads", "08-interrupts",
           "Without MSI-X (virtio-net-pci,vectors=0, after Linux's probe), the device signals a "
           "configuration change (virtio_notify_config). The driver then reads the ISR status byte "
           "twice. What do the two reads return?",
           shape="a list of two numbers, e.g. [0x0, 0x0]",
           hint="A configuration change sets two ISR bits (a config interrupt is also an interrupt). "
                "virtio_pci_isr_read returns the ISR and resets it to 0 in the same access.",
           why="virtio_notify_config ORs 3 into the ISR: bit 1 says 'config changed', and bit 0 is set too "
               "because QEMU drives the INTx line from bit 0 (virtio_pci_notify: pci_set_irq(isr & 1)). "
               "Reading the ISR clears it and deasserts INTx, so the second read finds 0 — the read is "
               "the acknowledge.",
           compare=_cmp_isr)
def _isr_reads():
    from ..guest.probe import probe
    dev = probe(_trace("virtio-net-pci,vectors=0")).device
    dev.virtio_notify_config()
    bar, off = dev.region("isr")
    return [dev.bar_read(bar, off, 1), dev.bar_read(bar, off, 1)]


def _queue_vector_key(k: Any) -> str:
    return "msix_config" if k == "config" else f"queue_msix_vector of queue {k}"


@_exercise("queue-vectors", "08-interrupts",
           "After Linux 6.1's probe of virtio-net-pci on pc, which MSI-X vector does each interrupt "
           "source use? Give the config vector and each queue's vector (NO_VECTOR is 0xffff).",
           shape='a dict {"config": .., 0: .., 1: .., 2: ..}',
           hint="The driver writes msix_config once, then selects each queue (queue_select) and writes "
                "queue_msix_vector. result.device.common_read('queue_msix_vector') reads back the "
                "selected queue's vector; a queue without a callback gets none.",
           why="Linux's vp_find_vqs_msix gives the config interrupt vector 0 and each queue with a "
               "callback its own vector (1, 2, ...). virtio-net's control queue has no callback (the "
               "driver polls it), so it gets VIRTIO_MSI_NO_VECTOR; QEMU would also answer NO_VECTOR for "
               "a vector beyond the table (msix_vector_use fails).",
           compare=lambda g, w: _cmp_dict(g, w, "vectors", lambda k, v: _as_int(v, f"the vector for {shown(k)}"),
                                          where=lambda k: f"read back {_queue_vector_key(k)}"))
def _queue_vectors():
    from ..guest.probe import probe
    d = probe(_trace("virtio-net-pci")).device.vdev
    return {"config": d.config_vector, **{n: q.vector for n, q in enumerate(d.queues)}}


# ---- 09-pcie ----------------------------------------------------------------------

_EXT_SPEC = ("virtio-net-pci,aer=on,ats=on", "q35", True)


def _ext_triples(v: Any) -> list[tuple[int, int, int]]:
    out = []
    for t in _as_list(v, "(offset, id, version) triples"):
        if not isinstance(t, (tuple, list)) or len(t) != 3:
            raise _Bad(f"each item should be an (offset, id, version) triple, not {shown(t)}")
        out.append(tuple(_as_int(x, "a number") for x in t))
    return out


def _cmp_ext(got, want):
    g = _ext_triples(got)
    for i, w in enumerate(want):
        if i >= len(g):
            return (f"your list stops after {len(g)}; the header at 0x{want[i - 1][0]:03x} has a non-zero next "
                    "offset (bits 31:20)" if i else "the list is not empty: read the header at 0x100")
        if g[i] != w:
            if g[i][0] != w[0]:
                return (f"item {i} (counting from 0) has offset {_hex(g[i][0])}: "
                        + ("the extended list always starts at 0x100 (there is no pointer to it)" if i == 0 else
                           f"follow the next offset, bits 31:20 of the header at 0x{want[i - 1][0]:03x}"))
            part = "id (bits 15:0)" if g[i][1] != w[1] else "version (bits 19:16)"
            return (f"item {i} at {_hex(w[0])}: its {part} is not {_hex(g[i][1] if g[i][1] != w[1] else g[i][2])}; "
                    f"read config[0x{w[0]:03x}:0x{w[0] + 4:03x}] as one little-endian word")
    if len(g) > len(want):
        return f"the first {len(want)} items are right; the last one's next offset is 0: the list ends there"
    return None


@_exercise("ext-cap-walk", "09-pcie",
           "Walk the extended capability list of virtio-net-pci,aer=on,ats=on on q35 behind a root port: "
           "give (offset, capability id, version) for each, in list order.",
           shape="a list of triples, e.g. [(0x100, 0x.., ..), ...]",
           hint="Start at 0x100. Each header is one 32-bit little-endian word: id = bits 15:0, version = "
                "bits 19:16, next = bits 31:20 (0 ends the list).",
           why=lambda: ("QEMU appends extended capabilities (pcie_add_capability links the new one after the "
                        "last), unlike the standard list, which grows at its head: "
                        + ", then ".join(f"id {_hex(i)} (version {v}) at {_hex(o)}" for o, i, v in _ext_cap_walk())
                        + f", in the order virtio_pci_realize adds them ({_EXT_SPEC[0].split(',', 1)[1]})."),
           compare=_cmp_ext)
def _ext_cap_walk():
    return [(c.offset, c.id, c.version) for c in _final(*_EXT_SPEC).ext_caps]


_ROOT_PORT_CAPTURE = "q35rp__virtio-net-pci"  # a real q35 guest behind a root port (package data)
_ROOT_PORT_BDF = "0000:00:02.0"
_BRIDGE_FIELDS = {"secondary_bus": "byte 0x19", "subordinate_bus": "byte 0x1a",
                  "mem_base": "the word at 0x20: bits 15:4 are address bits 31:20 (1 MiB units)",
                  "mem_limit": "the word at 0x22: bits 15:4 are address bits 31:20; the low 20 bits are all ones"}


def _root_port_config() -> bytes:
    from .captures import guest_capture
    # the root port is not emulated, only captured: the header the real guest read
    return bytes.fromhex(guest_capture(_ROOT_PORT_CAPTURE)["other_functions"][_ROOT_PORT_BDF]["config"])


def _bridge_given() -> str:
    from ..text.lspci import hexdump
    return hexdump(_root_port_config()[:64], "00:02.0", 1,
                   header="00:02.0 PCI bridge: the pcie-root-port of a real q35 guest (lspci -x)")


@_exercise("bridge-windows", "09-pcie",
           "given('bridge-windows') is the type-1 header of the root port in a real q35 guest. Read its "
           "secondary and subordinate bus numbers and its memory window (first and last address).",
           shape='a dict {"secondary_bus": .., "subordinate_bus": .., "mem_base": 0x..., "mem_limit": 0x...}',
           hint="In a type-1 header the bus numbers are at 0x18 (primary), 0x19 (secondary), 0x1a "
                "(subordinate); the memory window's base and limit are 16-bit words at 0x20 and 0x22, "
                "each holding address bits 31:20 in its bits 15:4.",
           why="The port forwards config cycles for buses secondary..subordinate (here just the one bus "
               "behind it) and memory accesses between base and limit, where the device's non-prefetchable "
               "BARs were placed (its prefetchable BAR4 is in the window at 0x24). The limit's low 20 bits "
               "read as all ones: memory windows have 1 MiB granularity.",
           compare=lambda g, w: _cmp_dict(g, w, "bridge fields", lambda k, v: _as_int(v, f"the value for {shown(k)}"),
                                          where=lambda k: _BRIDGE_FIELDS[k]))
def _bridge_windows():
    cfg = _root_port_config()
    return {"secondary_bus": cfg[0x19], "subordinate_bus": cfg[0x1A],
            "mem_base": (_le(cfg, 0x20, 2) & 0xFFF0) << 16,
            "mem_limit": (_le(cfg, 0x22, 2) & 0xFFF0) << 16 | 0xFFFFF}


# ---- 10-firmware ------------------------------------------------------------

_GUEST_SPECS = ("virtio-net-pci", "virtio-blk-pci,drive=d0", "virtio-net-pci,page-per-vq=on,modern-pio-notify=on",
                "virtio-net-pci,disable-modern=on")


def _size_bars_reference(access) -> dict[int, int]:
    """Reference: size each BAR as Linux's __pci_read_base does — decoding off, save, write all
    ones, read back, restore, decoding back on."""
    command = access.config_read(0x04, 2)
    access.config_write(0x04, command & ~0x3, 2)   # IO and MEMORY decode off while BARs hold all ones
    sizes, i = {}, 0
    while i < 6:
        off = 0x10 + 4 * i
        old = access.config_read(off, 4)
        access.config_write(off, 0xFFFFFFFF, 4)
        lo = access.config_read(off, 4)
        access.config_write(off, old, 4)
        is64 = not lo & 1 and (lo >> 1) & 3 == 2
        hi = None
        if is64:
            old_hi = access.config_read(off + 4, 4)
            access.config_write(off + 4, 0xFFFFFFFF, 4)
            hi = access.config_read(off + 4, 4)
            access.config_write(off + 4, old_hi, 4)
        if lo & ~0xF or (lo & 1 and lo & ~0x3) or hi:
            sizes[i] = _size_reference(lo, hi)
        i += 2 if is64 else 1
    access.config_write(0x04, command, 2)
    return sizes


def _sizes(v: Any) -> dict[int, int]:
    d = _as_dict(v, "BAR sizes")
    return {_as_int(k, "a BAR index"): _dec(s, "a size") for k, s in d.items()}


class _Watched:
    """A ConfigAccess that notes each all-ones BAR write made while the device decodes."""

    def __init__(self, access):
        self._access = access
        self.ones_while_decoding: list[tuple[int, int]] = []

    def config_read(self, addr, size=4):
        return self._access.config_read(addr, size)

    def config_write(self, addr, value, size=4):
        if (isinstance(addr, int) and isinstance(size, int) and 0x10 <= addr < 0x28
                and value == (1 << 8 * size) - 1):
            command = self._access.config_read(0x04, 2)
            if command & 0x3:
                self.ones_while_decoding.append((addr, command))
        self._access.config_write(addr, value, size)

    def __getattr__(self, name):
        return getattr(self._access, name)


def _placed_high():
    """virtio-net-pci as SeaBIOS left it (BARs placed, decoding on), its 64-bit BAR moved to 4 GiB."""
    from ..guest.probe import probe
    from ..pci.access import ConfigAccess
    r = probe(_trace("virtio-net-pci"))
    acc = ConfigAccess(r.trace.state_at(r.trace.index_of("pci_scan_device") - 1))
    off = 0x10 + 4 * _HIGH_BAR
    acc.config_write(off, _HIGH_ADDRESS & 0xFFFFFFFF, 4)
    acc.config_write(off + 4, _HIGH_ADDRESS >> 32, 4)
    return (f"virtio-net-pci as firmware left it (COMMAND {acc.config_read(0x04, 2):#06x}: decoding on), "
            f"BAR{_HIGH_BAR} at {_hex(_HIGH_ADDRESS)}"), acc


def _header_field_at(off: int) -> str:
    from ..pci.layout import HEADER
    return next(f.name for f in HEADER if f.offset <= off < f.offset + f.width)


def _cmp_size_all_bars(fn, cases):
    if not callable(fn):
        raise _Bad(f"pass your function itself (its name, without calling it), not {_type_name(fn)}")
    for label, make, want in cases:
        access = _Watched(make())
        before = bytes(access.config[:0x40])
        try:
            got = fn(access)
        except Exception as err:  # the learner's code: report it in one line
            return (f"on {label} your function raised {type(err).__name__}: {err}".rstrip(": ")
                    + " — it should return a dict {BAR index: size}")
        try:
            got = _sizes(got)
        except _Bad as bad:
            return f"on {label}: {bad}"
        if got != want:
            return f"on {label} your function returned {_show(got)}, which is not right"
        if access.ones_while_decoding:
            addr, command = access.ones_while_decoding[0]
            on = " and ".join(n for b, n in ((1, "I/O"), (2, "memory")) if command & b)
            return (f"on {label}: the sizes are right, but your function wrote all ones to "
                    f"{_header_field_at(addr)} ({_hex(addr)}) while COMMAND ({command:#06x}) had {on} decoding "
                    "on: for that moment the device answers at the all-ones address, on top of whatever lives "
                    "there. Clear IO and MEMORY (bits 1:0) in COMMAND first and restore COMMAND afterwards")
        after = bytes(access.config[:0x40])
        changed = [i for i in range(0x40) if before[i] != after[i]]
        if changed:
            off = changed[0] & ~3 if changed[0] >= 0x10 else changed[0] & ~1
            width = 4 if off >= 0x10 else 2
            return (f"on {label}: the sizes are right, but your function left {_header_field_at(off)} "
                    f"({_hex(off)}) at {_le(after, off, width):#0{2 + 2 * width}x}; it was "
                    f"{_le(before, off, width):#0{2 + 2 * width}x} — read each register before you write "
                    "all ones to it, and write that value back")
    return None


@_exercise("size-all-bars", "10-firmware",
           "Write size_bars(access) that sizes every BAR of a device through a ConfigAccess the way "
           "Linux's PCI core does (__pci_read_base): switch I/O and memory decoding off in COMMAND, save "
           "the BAR, write all ones, read it back, restore it, switch decoding back on; return {BAR index: "
           "size}. A 64-bit BAR uses two registers. It is tested on freshly plugged devices and on one "
           "that firmware has already placed, with its 64-bit BAR above 4 GiB.",
           shape="your function, e.g. check('size-all-bars', size_bars)",
           hint="Save COMMAND and write it back with bits 1:0 cleared. Walk i = 0..5; a BAR whose read-back "
                "is 0 is not implemented; if bits 2:1 of a memory BAR are 10 it is 64-bit: size it with the "
                "next register as the upper half (save and restore that one too) and skip it. Restore COMMAND "
                "at the end.",
           why="That is the loop SeaBIOS and Linux run before assigning addresses: the read-back carries the "
               "size (~(size-1)) and the type, skipping the upper half of a 64-bit BAR keeps it from looking "
               "like a BAR of its own, and restoring every register leaves the device where firmware put it. "
               "Linux turns decoding off because a BAR holding all ones is, for that moment, a live window at "
               "the top of the address space; at boot SeaBIOS finds COMMAND still 0.",
           compare=_cmp_size_all_bars)
def _size_all_bars():
    cases = [(f"{s} (a fresh ConfigAccess)", (lambda s=s: _access(s)), {i: _Dec(b.size) for i, b in _bars(s).items()})
             for s in _GUEST_SPECS]
    label, _ = _placed_high()
    return cases + [(label, lambda: _placed_high()[1],
                     {i: _Dec(b.size) for i, b in _bars("virtio-net-pci").items()})]


_IRQ_SPECS = ("virtio-net-pci", "virtio-net-pci,addr=4", "virtio-net-pci,addr=5")


def _irq_line(spec: str) -> int:
    from ..guest.probe import probe
    return probe(_trace(spec)).config[0x3C]


def _slot(spec: str) -> int:
    return _trace(spec).machine.slot_devfn >> 3


@_exercise("interrupt-line", "10-firmware",
           "SeaBIOS writes each function's Interrupt Line (0x3c): the IRQ its INTx pin reaches. Which IRQ "
           "does it give virtio-net-pci on pc in slot 3 (the default, 00:03.0), in slot 4 (addr=4) and in "
           "slot 5 (addr=5)?",
           shape='a dict {"virtio-net-pci": .., "virtio-net-pci,addr=4": .., "virtio-net-pci,addr=5": ..}',
           hint="The device uses pin INTA# (Interrupt Pin 1). The board wires each slot's pins to the four "
                "interrupt links LNKA-LNKD rotated by the slot number: PIIX's rule (SeaBIOS's "
                "piix_pci_slot_get_irq) takes link (pin - 1 + slot - 1) & 3, and SeaBIOS routes link n to "
                "pci_irqs[n] (the table is virtio_lab.guest.firmware.PCI_IRQS).",
           why=lambda: ("The links rotate with the slot so that single-function devices in neighbouring slots, "
                        "all on INTA#, spread over the four links (and so over the IRQs): "
                        + "; ".join(f"slot {_slot(s)}: link LNK{'ABCD'[(_slot(s) - 1) & 3]}, IRQ {_irq_line(s)}"
                                    for s in _IRQ_SPECS)
                        + ". Linux reads the line (or asks ACPI) when it uses INTx."),
           compare=lambda g, w: _cmp_dict(
               g, w, "IRQ numbers", lambda k, v: _dec(v, f"the IRQ for {shown(k)}"),
               where=lambda k: f"{shown(k)} is in slot {_slot(k)}: work out which link its INTA# reaches"))
def _interrupt_line():
    return {s: _Dec(_irq_line(s)) for s in _IRQ_SPECS}


# ---- 11-linux-driver ------------------------------------------------------------

_LINUX_TYPES = {"common": 1, "notify": 2, "isr": 3, "device": 4}


def _linux_pick(state) -> dict[str, int]:
    """The Linux modern probe's rule: first vendor cap of the type in list order, bar < 6, BAR implemented."""
    implemented = {b.index for b in state.facts.bars if b.index < 6}
    out = {}
    for name, t in _LINUX_TYPES.items():
        for c in state.caps:
            if c.id == 0x09 and c.get("cfg_type") == t and (c.get("bar") or 0) < 6 and c.get("bar") in implemented:
                out[name] = c.offset
                break
    return out


@_exercise("linux-cap-pick", "11-linux-driver",
           "The Linux modern driver looks for its four structures by walking the vendor capabilities in "
           "list order. For virtio-net-pci on q35 behind a root port, at which config offset does it find "
           "common, isr, notify and device?",
           shape='a dict {"common": 0x.., "isr": 0x.., "notify": 0x.., "device": 0x..}',
           hint="Vendor capabilities have ID 0x09; cfg_type is their byte +3 (1 common, 2 notify, 3 isr, "
                "4 device). Behind a root port the PCI Express and PM capabilities come first, so nothing "
                "sits where it does on pc.",
           why=lambda: _linux_cap_pick_why(),
           compare=lambda g, w: _cmp_dict(
               g, w, "offsets", lambda k, v: _as_int(v, f"the offset for {shown(k)}"),
               where=lambda k: f"find the vendor capability (ID 0x09) whose byte +3 is {_LINUX_TYPES[k]}"))
def _linux_cap_pick():
    return _linux_pick(_final("virtio-net-pci", "q35", True))


def _linux_cap_pick_why() -> str:
    st = _final("virtio-net-pci", "q35", True)
    first = [c for c in st.caps if c.id != 0x09]
    return ("Behind the root port " + " and ".join(f"the {c.name} capability sits at {_hex(c.offset)}"
                                                   for c in reversed(first) if c.id in (0x10, 0x01))
            + ", taken before any virtio capability was added, so every virtio capability moved up: "
            + ", ".join(f"{k} {_hex(v)}" for k, v in _linux_cap_pick().items())
            + ". Linux takes the first match of each cfg_type whose BAR is below 6 and implemented.")


_PROBE_SPECS = ("virtio-net-pci", "virtio-net-pci,disable-modern=on", "virtio-net-pci,disable-legacy=on")


def _which_probe(spec: str) -> str:
    st = _final(spec)
    if "common" in _linux_pick(st):
        return "modern"
    did, rev = _le(st.config, 2, 2), st.config[8]
    return "legacy" if 0x1000 <= did <= 0x103F and rev == 0 else "none"


@_exercise("driver-mode", "11-linux-driver",
           "Linux tries its modern probe first and falls back to the legacy one. Which one binds each of: "
           + ", ".join(_PROBE_SPECS) + '? (spec → "modern" or "legacy")',
           shape='a dict {"virtio-net-pci": "modern" | "legacy", ...}',
           hint="The modern probe needs a common-config capability (vendor cap, cfg_type 1); without it, "
                "the legacy probe needs device id 0x1000–0x103f and revision 0.",
           why="A transitional device offers both, and Linux prefers modern, so plain virtio-net-pci is "
               "driven through BAR4. disable-modern=on removes every virtio capability: only the legacy "
               "probe (BAR0, revision 0) is left. disable-legacy=on is modern only.",
           compare=lambda g, w: _cmp_dict(
               g, w, "driver modes", lambda k, v: str(v).strip().lower(),
               where=lambda k: f"check whether {shown(k)} has a vendor capability with cfg_type 1"))
def _driver_mode():
    return {s: _which_probe(s) for s in _PROBE_SPECS}


# ---- 14-what-if-and-real-machines -------------------------------------------

_DIFF_A, _DIFF_B = "virtio-net-pci", "virtio-net-pci,disable-legacy=on"


def _field_names_differing(a: bytes, b: bytes) -> set[str]:
    from ..pci.layout import field_map
    labels = field_map(a)
    out = set()
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            lab = labels[i]
            out.add(lab.field if lab.kind == "header" else f"{lab.structure}.{lab.field}")
    return out


@_exercise("legacy-diff", "14-what-if-and-real-machines",
           "Which header fields differ between virtio-net-pci and virtio-net-pci,disable-legacy=on on pc? "
           "(field names as in virtio_lab.layout.HEADER)",
           shape='a set of field names, e.g. {"device_id"}',
           hint="virtio_lab.diff(a, b) lists the config bytes that differ with the field each belongs to; "
                "or compare the two hex grids byte by byte.",
           why=lambda: _legacy_diff_why(),
           compare=lambda g, w: _cmp_set(g, w, "field names", lambda v: str(v).strip().lower(),
                                         lambda n: "its bytes differ between the two devices",
                                         lambda n: "its bytes are identical in both devices"))
def _legacy_diff():
    return _field_names_differing(bytes(_final(_DIFF_A).config[:256]), bytes(_final(_DIFF_B).config[:256]))


def _legacy_diff_why() -> str:
    from ..pci.layout import HEADER
    a, b = _final(_DIFF_A).config, _final(_DIFF_B).config
    changes = [f"{f.name} {_hex(_le(a, f.offset, f.width))} → {_hex(_le(b, f.offset, f.width))}"
               for f in HEADER if f.name in _legacy_diff()]
    return ("Dropping legacy changes the identity and removes the legacy I/O BAR: " + ", ".join(changes)
            + ". The capabilities, the other BARs and MSI-X stay exactly the same.")


_MYSTERY = ("virtio-blk-pci,drive=d0,num-queues=4", "q35", True)
_MYSTERY_KEYS = {"virtio_id": "device id 0x1040 + n means virtio id n (for 0x1000–0x103f, read the subsystem id)",
                 "transitional": "transitional devices have revision 0 and a device id below 0x1040",
                 "msix_vectors": "find capability ID 0x11; Message Control's low 11 bits + 1",
                 "pcie": "is there a capability with ID 0x10 (PCI Express)?"}


def _mystery_value(key: Any, value: Any) -> Any:
    if key in ("transitional", "pcie"):
        if not isinstance(value, bool):
            raise _Bad(f"{key} should be True or False, not {shown(value)}")
        return value
    return _as_int(value, f"the value for {shown(key)}")


@_exercise("mystery-lspci", "14-what-if-and-real-machines",
           "given('mystery-lspci') is an `lspci -xxx` dump of a device from an unknown command line. "
           "Read it: virtio_id (an int), transitional (True/False), msix_vectors (an int), pcie (True/False).",
           shape='a dict {"virtio_id": .., "transitional": .., "msix_vectors": .., "pcie": ..}',
           hint="Line '00:' holds vendor, device, command, status, revision; walk the capabilities from the "
                "byte at 0x34 as in notebook 03.",
           why=lambda: (f"Device id {_hex(_le(_final(*_MYSTERY).config, 2, 2))} with revision "
                        f"{_final(*_MYSTERY).config[8]}: a modern-only block device (virtio id "
                        f"{_mystery_lspci()['virtio_id']}). MSI-X Message Control says "
                        f"{_mystery_lspci()['msix_vectors']} vectors (one a queue plus one for configuration "
                        "changes). The PCI Express capability means it sits behind a PCIe root port — where "
                        "disable-legacy=auto turns legacy off."),
           compare=lambda g, w: _cmp_dict(g, w, "answers", _mystery_value, where=lambda k: _MYSTERY_KEYS[k]))
def _mystery_lspci():
    st = _final(*_MYSTERY)
    cfg = st.config
    did = _le(cfg, 2, 2)
    msix = next((c for c in st.caps if c.id == 0x11), None)
    return {"virtio_id": did - 0x1040 if did >= 0x1040 else _le(cfg, 0x2E, 2),
            "transitional": did < 0x1040 and cfg[8] == 0,
            "msix_vectors": msix.get("table_size") if msix else 0,
            "pcie": any(c.id == 0x10 for c in st.caps)}


def _mystery_text() -> str:
    from ..text.lspci import device_config, hexdump
    t = _trace(*_MYSTERY)
    # the device line would name the device: keep only the address lspci -F needs
    return hexdump(device_config(t.final)[:256], t.machine.bdf, 3,
                   header=f"{t.machine.bdf} Unknown device (lspci -xxx from an unknown command line)")


_GIVEN: dict[str, Callable[[], Any]] = {"mystery-lspci": _mystery_text, "bridge-windows": _bridge_given}

_PUBLIC_NAMES = {"_walk_reference": "walk", "_size_bars_reference": "size_bars",
                 "_size_reference": "bar_size"}

_REFERENCES: dict[str, Callable[..., Any]] = {"walk-caps": _walk_reference,
                                              "size-from-readback": _size_reference,
                                              "size-all-bars": _size_bars_reference}


# ---- 15-why-bar4-0x3000 -----------------------------------------------------------

def _kick_parts(spec: str, queue: int) -> dict[str, int]:
    from ..guest.probe import probe
    r = probe(_trace(spec))
    n = r.notify
    return {"bar": r.device.bar_address(n["bar"]), "cap": n["offset"], "queue": queue * n["multiplier"]}


_KICK_Q = 1


def _cmp_kick(got, want):
    g = _as_int(got, "the address")
    if g == want:
        return None
    parts = _kick_parts("virtio-net-pci", _KICK_Q)
    base = parts["bar"]
    if not base <= g < base + 0x4000:
        return (f"{_hex(g)} is not inside BAR4 (result.device.bar_address(4) is where firmware put it): "
                "start from that base")
    rel = g - base
    if rel < parts["cap"]:
        return f"BAR4+{_hex(rel)} is before the notify region: add the notify capability's offset"
    mult = _kick_parts("virtio-net-pci", 1)["queue"]
    return (f"BAR4+{_hex(rel)} is in the notify region, but at queue {(rel - parts['cap']) / mult:g}'s place "
            f"({_direction(g, want).strip(' ()')}): the queue's part is queue_notify_off × notify_off_multiplier")


@_exercise("kick-address", "15-why-bar4-0x3000",
           "After Linux's probe of virtio-net-pci on pc, at which guest-physical address does the driver "
           f"write to kick queue {_KICK_Q} (the transmit queue)?",
           shape="an address, e.g. 0xfebf0000",
           hint="Three parts: where firmware put BAR4 (result.device.bar_address(4)), the notify "
                "capability's offset in the BAR, and queue_notify_off × notify_off_multiplier.",
           why=lambda: ("vp_modern_probe maps the notify capability's window of BAR4 and reads its multiplier; "
                        "for each queue vp_modern_map_vq_notify reads queue_notify_off and adds it × "
                        "notify_off_multiplier. QEMU chose the offset "
                        f"({_hex(_notify_cap('virtio-net-pci').get('cap_offset'))}) and the multiplier "
                        f"({_notify_cap('virtio-net-pci').get('notify_off_multiplier')}) in virtio_pci_realize and "
                        "advertised both in the capability; firmware chose BAR4's address."),
           compare=_cmp_kick)
def _kick_address():
    return sum(_kick_parts("virtio-net-pci", _KICK_Q).values())


_WRITE_AT = {"default, bar4+0x3008": ("virtio-net-pci", 0x3008),
             "page-per-vq=on, bar4+0x5000": ("virtio-net-pci,page-per-vq=on", 0x5000)}


def _queue_for(spec: str, rel: int) -> int:
    cap = next(c for c in _final(spec).caps if c.id == 0x09 and c.get("cfg_type") == 2)
    return (rel - cap.get("cap_offset")) // cap.get("notify_off_multiplier")


@_exercise("notify-queue", "15-why-bar4-0x3000",
           "QEMU's virtio_pci_notify_write gets the offset of a write inside the notify region. Which queue "
           "does it notify for a write at BAR4+0x3008 of virtio-net-pci, and at BAR4+0x5000 of "
           "virtio-net-pci,page-per-vq=on?",
           shape='a dict {"default, bar4+0x3008": .., "page-per-vq=on, bar4+0x5000": ..}',
           hint="Subtract the notify region's start in BAR4, then divide by the multiplier "
                "(virtio_pci_queue_mem_mult: 4, or 0x1000 with page-per-vq). The value written does not matter.",
           why=lambda: ("virtio_pci_notify_write computes queue = addr / virtio_pci_queue_mem_mult(proxy) and "
                        "calls virtio_queue_notify(vdev, queue): the address says which queue, so each queue needs "
                        f"its own notify address — {_notify_cap('virtio-net-pci').get('notify_off_multiplier')} "
                        f"bytes apart by default, {_hex(_notify_cap('virtio-net-pci,page-per-vq=on').get('notify_off_multiplier'))} "
                        "(a page) apart with page-per-vq."),
           compare=lambda g, w: _cmp_dict(g, w, "queue numbers", lambda k, v: _as_int(v, f"the queue for {shown(k)}"),
                                          where=lambda k: "(offset − notify offset) ÷ notify_off_multiplier"))
def _notify_queue():
    return {k: _queue_for(spec, rel) for k, (spec, rel) in _WRITE_AT.items()}


# ---- 12-device-at-work ------------------------------------------------------
# answers from virtio_lab.queue runs: the device's DMA stores (not the flags the driver set),
# the used ring after it wrapped, the ISR a driver under MSI-X never reads

_NB12 = "12-device-at-work"


@lru_cache(maxsize=8)
def _queue_run(spec: str, requests: int):
    from ..guest.queue import queue
    return queue(spec, requests=requests)


def _device_writes() -> set[int]:
    """The indirect-table entries of virtio-blk's request 1 whose buffers the device stored into."""
    run = _queue_run("virtio-blk-pci", 1)
    dev, r = run.device, run.requests[0]
    vq = run.vqs[r.queue]
    ram = dev.ram
    d = vq.desc + 16 * r.head
    table, count = ram.read_int(d, 8), ram.read_int(d + 8, 4) // 16
    stores = [(a, n) for a, n, at in dev.dma if r.dev_ops[0] <= at <= r.dev_ops[1] + 1]
    out = set()
    for j in range(count):
        addr, length = ram.read_int(table + 16 * j, 8), ram.read_int(table + 16 * j + 8, 4)
        if any(a < addr + length and addr < a + n for a, n in stores):
            out.add(j)
    return out


@_exercise("device-writes", _NB12,
           "Request 1 of virtio-blk-pci reads sector 1. The driver put its three buffers in an indirect "
           "table: the header, the data, the status byte. Which entries of that table (by index) does "
           "the device write into?",
           shape="a set or list of table indices, e.g. {0}",
           hint="Look at each entry's flags in the ring view: the device may write a buffer marked WRITE "
                "(2). A read fills the data buffer; every request ends with a status byte.",
           why="The device reads the header (entry 0: type, ioprio, sector) and writes the data it read "
               "from the image (entry 1) and the status byte (entry 2); the used element's len is every "
               "device-writable byte, 512 + 1 = 513.",
           compare=lambda g, w: _cmp_set(g, w, "table indices", lambda v: _as_int(v, "a table index"),
                                         why_missing=lambda j: "the device writes into it",
                                         why_extra=lambda j: "the device only reads that one"))
def _device_writes_answer():
    return _device_writes()


def _wrap() -> dict[str, int]:
    run = _queue_run("virtio-blk-pci,queue-size=4", 6)
    vq, r = run.vqs[0], run.requests[5]
    push = next(e for e in run.trace.events[r.first_event:r.last_event + 1] if e.function == "virtqueue_push")
    return {"used_idx": run.ram.read_int(vq.used + 2, 2), "slot": push.detail("slot")}


@_exercise("used-idx-wrap", _NB12,
           "virtio-blk-pci,queue-size=4 makes six requests, one after the other. What is used->idx "
           "after them, and in which slot of the used ring did the device put the sixth one's element?",
           shape='a dict {"used_idx": .., "slot": ..}',
           hint="The index only counts up (16 bits, wrapping at 65536); the slot is the index modulo "
                "the ring size, taken before the device moves it on.",
           why="used->idx counts every element the device has used: 6. The sixth element went to slot "
               "(6 - 1) mod 4 = 1: the ring wrapped after four, and slots 0 and 1 were used again.",
           compare=lambda g, w: _cmp_dict(g, w, "used-ring numbers", lambda k, v: _as_int(v, f"{k}"),
                                          where=lambda k: "used->idx counts, the slot is idx mod num"))
def _wrap_answer():
    return _wrap()


def _isr_msix() -> int:
    run = _queue_run("virtio-rng-pci", 1)
    return run.requests[0].after["isr"] if run.to_json() else 0


@_exercise("isr-after-msix", _NB12,
           "virtio-rng-pci answered request 1 with an MSI-X interrupt and the driver took the buffer "
           "back. What does the ISR byte hold now?",
           shape="a number (the ISR byte)",
           hint="virtio_irq sets ISR bit 0 whether or not MSI-X is on; who would clear it?",
           why="QEMU's virtio_irq sets ISR bit 0 on every queue interrupt, MSI-X or not; only a read of "
               "the ISR clears it, and with MSI-X Linux never reads it (vring_interrupt is called "
               "straight from the vector). So it stays 1.",
           compare=lambda g, w: _cmp_int(g, w, "the ISR byte"))
def _isr_answer():
    return _isr_msix()


# --------------------------------------------------------------------------
# public API

def _lookup(name: Any) -> Exercise | str:
    if not isinstance(name, str):
        return f"the exercise name should be a string like 'cap-chain-offsets', not {_type_name(name)}"
    key = name.strip().lower().replace("_", "-")
    if key in EXERCISES:
        return EXERCISES[key]
    close = difflib.get_close_matches(key, list(EXERCISES), 1)
    return (f"there is no exercise {shown(name)}" + (f"; did you mean {close[0]!r}?" if close else
            "; exercises() lists them all"))


def check(name: str, answer: Any = ...) -> Feedback:
    """Check ``answer`` for exercise ``name``; the result prints as one helpful message."""
    ex = _lookup(name)
    if isinstance(ex, str):
        return Feedback(str(name), False, ex)
    if answer is ... or answer is None:
        return Feedback(ex.name, False, f"no answer yet. The question: {ex.question} Answer with {ex.shape}.")
    try:
        diff = ex.compare(answer, ex.expected())
    except _Bad as bad:
        return Feedback(ex.name, False, f"{bad}. Answer with {ex.shape}.")
    except Exception as err:  # never a traceback for the learner
        return Feedback(ex.name, False, f"could not check that answer ({type(err).__name__}: {err}). "
                                        f"Answer with {ex.shape}.")
    if diff is None:
        return Feedback(ex.name, True, "correct. " + ex.why())
    return Feedback(ex.name, False, f"not yet: {diff}. Hint: {ex.hint}")


def solution(name: str) -> _Text:
    """The answer to ``name`` (computed from the emulation) and why it is so."""
    ex = _lookup(name)
    if isinstance(ex, str):
        return _Text(ex)
    ref = _REFERENCES.get(ex.name)
    if ref is not None:
        parts = [_size_reference, ref] if ex.name == "size-all-bars" else [ref]
        body = "\n\n".join(inspect.getsource(f).rstrip() for f in parts)
        for private, public in _PUBLIC_NAMES.items():
            body = body.replace(private, public)
        answer = (f"one way to write it:\n\n{body}\n\n"
                  f"check('{ex.name}', {_PUBLIC_NAMES[ref.__name__]}) passes.")
    else:
        answer = _show(ex.expected())
    return _Text(f"Solution to {ex.name}: {answer}\nWhy: {ex.why()}")


def hint(name: str) -> _Text:
    """A nudge for ``name`` without the answer."""
    ex = _lookup(name)
    return _Text(ex if isinstance(ex, str) else f"Hint for {ex.name}: {ex.hint}")


def given(name: str) -> Any:
    """The input an exercise hands you (e.g. the mystery lspci dump)."""
    ex = _lookup(name)
    if isinstance(ex, str):
        return _Text(ex)
    make = _GIVEN.get(ex.name)
    return _Text(make()) if make else _Text(f"{ex.name} has no given input; the question says it all: "
                                            f"{ex.question}")


def exercises(notebook: str | None = None) -> _Text:
    """The exercises, by notebook (or those of one notebook)."""
    lines = []
    for nb in NOTEBOOKS:
        if notebook and not nb.startswith(str(notebook)):
            continue
        lines.append(f"{nb}:")
        lines += [f"  {e.name:24s} {e.question}" for e in EXERCISES.values() if e.notebook == nb]
    return _Text("\n".join(lines) if lines else f"no notebook {shown(notebook)}; they are {', '.join(NOTEBOOKS)}")

