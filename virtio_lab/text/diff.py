"""diff(a, b): what changes between two plugged devices, every difference named, and why.

``a`` and ``b`` are ``-device`` specs, traces or plug states, on any release and machine
type. The result lists the config bytes that differ (with the structure and field each
belongs to), the capabilities added, removed or changed, the BARs, and the feature bits,
each bit by name; then the causes: every property whose value differs between the two
sides (and where each value comes from: the spec, a machine type's compat property, the
release's default, or a release that has no such property), with the differences it
accounts for, found by plugging ``a`` again with just that property set to ``b``'s value;
what no single property explains is the release's code, the device type or the machine.
``str()`` is plain text (the CLI's ``diff``); in a notebook
:func:`virtio_lab.views.diff_html` renders it. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import VirtioLabError
from ..hw.state import PlugState
from ..pci.layout import field_map

__all__ = ["diff", "Diff", "ByteChange", "Cause"]


@dataclass(frozen=True)
class ByteChange:
    """One field whose bytes differ: where, which structure/field, old and new bytes."""

    offset: int
    width: int
    structure: str
    field: str
    old: bytes
    new: bytes

    def __str__(self) -> str:
        return (f"0x{self.offset:03x} {self.structure}.{self.field}: "
                f"{self.old[::-1].hex()} -> {self.new[::-1].hex()}")


@dataclass(frozen=True)
class Cause:
    """Why some of the differences exist.

    ``kind`` is ``property`` (``name`` is a property whose value differs), ``release``
    (the two releases' code), ``type`` (the device types) or ``machine`` (where the device
    is plugged); ``explains`` holds the difference lines it accounts for."""

    kind: str
    name: str
    text: str
    explains: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.text


@dataclass
class _Side:
    label: str
    state: PlugState | None
    type: str | None
    error: str | None = None
    trace: Any = None


@dataclass
class Diff:
    """The named differences between side ``a`` and side ``b``."""

    a: str
    b: str
    errors: tuple[str | None, str | None] = (None, None)
    bytes: list[ByteChange] = field(default_factory=list)
    caps: list[str] = field(default_factory=list)
    bars: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)

    def __bool__(self) -> bool:
        """Any difference; two sides QEMU refuses with the same message do not differ."""
        return bool(self.bytes or self.caps or self.bars or self.features or self.other
                    or self.errors[0] != self.errors[1])

    def sections(self) -> list[tuple[str, list[str]]]:
        return [("errors", [f"{s}: {e}" for s, e in zip(("a", "b"), self.errors) if e]),
                ("capabilities", self.caps), ("BARs", self.bars), ("features", self.features),
                ("device", self.other), ("config bytes", [str(c) for c in self.bytes])]

    def lines(self) -> list[str]:
        """Every difference, one line each, as the sections list them (errors aside)."""
        return [x for title, items in self.sections()[1:] for x in items]

    def causes_of(self, line: str) -> list[Cause]:
        """The causes that account for one difference line."""
        return [c for c in self.causes if line in c.explains]

    def __str__(self) -> str:
        return self.text()

    def text(self, why: bool = False) -> str:
        """Plain text, one difference a line; ``why``: then each cause with what it explains."""
        lines = [f"a: {self.a}", f"b: {self.b}"]
        if not self:
            same = f" (QEMU refuses both: {self.errors[0]})" if self.errors[0] else ""
            return "\n".join(lines + [f"no differences{same}"])
        for title, items in self.sections():
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines += [f"  {x}" for x in items]
        if why and self.causes:
            lines.append(f"why ({len(self.causes)}):")
            for c in self.causes:
                lines.append(f"  {c.text}")
                lines += [f"      {x}" for x in c.explains]
        return "\n".join(lines)



def _side(x: Any, machine: str, root_port: bool, qemu: str | None = None) -> _Side:
    from ..hw.plug import Trace, plug
    from ..hw.virtio_pci import PlugError
    if isinstance(x, PlugState):
        return _Side(f"state at step {x.step}", x, None)
    if isinstance(x, Trace):
        return _Side(f"{x.spec.text} on {x.machine.label}", x.final, x.spec.type,
                     str(x.error) if x.error else None, x)
    try:
        t = plug(x, machine, root_port, qemu)
    except PlugError as err:
        t = err.trace
        if t is None or not t.events:
            return _Side(str(x), None, None, str(err))
        return _Side(f"{t.spec.text} on {t.machine.label}", t.final, t.spec.type, str(err), t)
    return _Side(f"{t.spec.text} on {t.machine.label}", t.final, t.spec.type, None, t)


def _cap_key(c) -> tuple:
    return (c.id, c.get("cfg_type"))


def _feature_name(type_name: str | None, bit: int) -> str:
    if type_name is None:
        return f"bit {bit}"
    from ..hw.devices import model_for
    try:
        return model_for(type_name).model.feature_name(bit)
    except VirtioLabError:
        return f"bit {bit}"


def _bar_text(b) -> str:
    flags = (", prefetchable" if b.prefetchable else "")
    return f"{b.kind}{flags}, {b.size} bytes ({b.name})"


def diff(a: Any, b: Any, machine: str = "pc", root_port: bool = False,
         machine_b: str | None = None, root_port_b: bool | None = None,
         qemu: str | None = None, qemu_b: str | None = None) -> Diff:
    """Compare two devices (specs, traces or states) and name every difference.

    Specs are plugged on ``machine``/``root_port`` of QEMU ``qemu`` (``machine_b``,
    ``root_port_b``, ``qemu_b`` for ``b`` when given). A spec QEMU refuses is compared as
    far as its plug got.
    """
    sa = _side(a, machine, root_port, qemu)
    sb = _side(b, machine_b or machine, root_port if root_port_b is None else root_port_b,
               qemu_b or qemu)
    if sa.trace is not None and sb.trace is not None and sa.trace.qemu != sb.trace.qemu:
        sa.label += f" (QEMU {sa.trace.qemu})"
        sb.label += f" (QEMU {sb.trace.qemu})"
    d = _compare(sa, sb)
    if d and not any(d.errors) and sa.trace is not None and sb.trace is not None:
        d.causes = _causes(sa.trace, sb.trace, d)
    return d


def _compare(sa: _Side, sb: _Side) -> Diff:
    """The differences between two sides, without their causes."""
    d = Diff(sa.label, sb.label, (sa.error, sb.error))
    if sa.state is None or sb.state is None or sa.error or sb.error:
        return d  # a refused plug has no device to compare: the errors say why
    A, B = sa.state, sb.state
    # -- config bytes, grouped by field
    size = min(len(A.config), len(B.config))
    if A.facts.config_size <= 256 and B.facts.config_size <= 256:
        size = min(size, 256)
    la, lb = field_map(A.config[:size]), field_map(B.config[:size])
    i = 0
    while i < size:
        if A.config[i] == B.config[i]:
            i += 1
            continue
        lab = lb[i] if lb[i].kind != "free" else la[i]
        start, width = lab.start, max(lab.width, 1)
        if not start <= i < start + width:
            start, width = i, 1
        end = start + width
        d.bytes.append(ByteChange(start, width, lab.structure, lab.field,
                                  A.config[start:end], B.config[start:end]))
        i = end
    if A.facts.config_size != B.facts.config_size:
        d.other.append(f"config space size {A.facts.config_size} -> {B.facts.config_size} bytes")
    # -- capabilities, matched by (id, cfg_type)
    ca, cb = list(A.caps.caps), list(B.caps.caps)
    used: set[int] = set()
    for c in ca:
        match = next((j for j, x in enumerate(cb) if j not in used and _cap_key(x) == _cap_key(c)), None)
        if match is None:
            d.caps.append(f"removed {c.name} (was at 0x{c.offset:02x})")
            continue
        used.add(match)
        x = cb[match]
        changes = []
        if x.offset != c.offset:
            changes.append(f"offset 0x{c.offset:02x} -> 0x{x.offset:02x}")
        fa, fb = dict(c.fields), dict(x.fields)
        for k in sorted(set(fa) | set(fb)):
            if fa.get(k) != fb.get(k):
                changes.append(f"{k} {fa.get(k)} -> {fb.get(k)}")
        if changes:
            d.caps.append(f"{c.name}: {', '.join(changes)}")
    for j, x in enumerate(cb):
        if j not in used:
            d.caps.append(f"added {x.name} at 0x{x.offset:02x}")
    for w in A.caps.problems:
        d.caps.append(f"a's list: {w}")
    for w in B.caps.problems:
        d.caps.append(f"b's list: {w}")
    # -- BARs
    ba = {x.index: x for x in A.facts.bars}
    bb = {x.index: x for x in B.facts.bars}
    for idx in sorted(set(ba) | set(bb)):
        name = "ROM BAR" if idx == 6 else f"BAR{idx}"
        x, y = ba.get(idx), bb.get(idx)
        if x is None:
            d.bars.append(f"added {name}: {_bar_text(y)}")
        elif y is None:
            d.bars.append(f"removed {name}: {_bar_text(x)}")
        elif _bar_text(x) != _bar_text(y):
            d.bars.append(f"{name}: {_bar_text(x)} -> {_bar_text(y)}")
        elif x.regions != y.regions:
            ra = {(r.role, r.offset): r.size for r in x.regions}
            rb = {(r.role, r.offset): r.size for r in y.regions}
            for key in sorted(set(ra) | set(rb)):
                role, off = key
                if key not in rb:
                    d.bars.append(f"{name}: region {role} at 0x{off:x} ({ra[key]} bytes) removed")
                elif key not in ra:
                    d.bars.append(f"{name}: region {role} at 0x{off:x} ({rb[key]} bytes) added")
                elif ra[key] != rb[key]:
                    d.bars.append(f"{name}: region {role} at 0x{off:x}: {ra[key]} -> {rb[key]} bytes")
    # -- features, each bit by name
    fa_, fb_ = A.facts.host_features, B.facts.host_features
    if fa_ is not None and fb_ is not None and fa_ != fb_:
        for bit in range(64):
            m = 1 << bit
            if (fa_ ^ fb_) & m:
                nm = _feature_name(sb.type if fb_ & m else sa.type, bit)
                d.features.append(f"{'+' if fb_ & m else '-'} {nm} (bit {bit})")
    elif (fa_ is None) != (fb_ is None):
        d.features.append(f"host features {fa_!r} -> {fb_!r}")
    for attr, what in (("modern", "modern interface"), ("legacy", "legacy interface"),
                       ("nvectors", "MSI-X vectors"), ("express", "PCI Express endpoint")):
        va, vb = getattr(A.facts, attr), getattr(B.facts, attr)
        if va != vb:
            d.other.append(f"{what}: {va} -> {vb}")
    return d


def _show(value: Any, name: str = "") -> str:
    if value is None:
        return "absent"
    if name == "vectors" and value == 0xFFFFFFFF:  # DEV_NVECTORS_UNSPECIFIED
        return "unset (the device's own rule decides)"
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def _where(trace, name: str) -> str:
    """Where a side's value of ``name`` comes from, in words."""
    from ..hw.release import release
    spec, rel = trace.spec, release(trace.qemu)
    where = spec.origin(name)
    if where == "user":
        return "set in the spec"
    if where == "default":
        return f"QEMU {rel.version}'s default"
    if where == "hardwired":
        why = rel.hardwired_why.get(name)
        return f"QEMU {rel.version} has no {name} property" + (f": {why}" if why else "")
    machine, _, array = where.partition(" ")
    return f"{machine} sets it {array}".rstrip()


def _whatif(trace, name: str, value: Any, user: bool):
    """``trace``'s plug again with just ``name`` set to ``value`` (as an option when ``user``)."""
    from dataclasses import replace
    from ..hw.plug import plug
    spec = trace.spec
    options = tuple((k, v) for k, v in spec.options if k != name) + (((name, value),) if user else ())
    whatif = tuple((k, v) for k, v in spec.whatif if k != name) + (() if user else ((name, value),))
    return plug(replace(spec, options=options, whatif=whatif), trace.machine)


def _causes(ta, tb, d: Diff) -> list[Cause]:
    """Each differing property with the differences it explains (a's plug again with only
    that property changed to b's value: the lines that disappear), then what is left."""
    from ..hw.release import release, rule_differences
    from ..hw.virtio_pci import PlugError
    lines = d.lines()
    causes: list[Cause] = []
    explained: set[str] = set()
    if ta.spec.type == tb.spec.type:
        ea, eb = ta.spec._effective, tb.spec._effective
        for name in sorted(set(ea) | set(eb)):
            va, vb = ea.get(name), eb.get(name)
            if va == vb or name in ("addr", "bus", "id"):
                continue
            try:
                t2 = _whatif(ta, name, vb, tb.spec.origin(name) == "user")
                gone = set(lines) - set(_compare(_Side("", t2.final, t2.spec.type), _Side(
                    "", tb.final, tb.spec.type)).lines())
            except (VirtioLabError, PlugError, TypeError, ValueError, KeyError):
                continue  # that value means nothing to a's release: not a single-property cause
            if not gone:
                continue
            explained |= gone
            causes.append(Cause("property", name,
                                f"{name}: {_show(va, name)} ({_where(ta, name)}) -> {_show(vb, name)} "
                                f"({_where(tb, name)})", tuple(x for x in lines if x in gone)))
    rest = tuple(x for x in lines if x not in explained)
    if not rest:
        return causes
    if ta.qemu != tb.qemu:
        rules = rule_differences(release(ta.qemu), release(tb.qemu), rest)
        causes.append(Cause("release", f"QEMU {ta.qemu} -> {tb.qemu}",
                            f"QEMU {ta.qemu} -> {tb.qemu}: the releases' code differs"
                            + (f" ({'; '.join(rules)})" if rules else ""), rest))
    elif ta.spec.type != tb.spec.type:
        causes.append(Cause("type", f"{ta.spec.type} -> {tb.spec.type}",
                            f"the device type: {ta.spec.type} -> {tb.spec.type}", rest))
    elif (ta.machine.name, ta.machine.root_port, ta.machine.devfn) != (
            tb.machine.name, tb.machine.root_port, tb.machine.devfn):
        causes.append(Cause("machine", f"{ta.machine.label} -> {tb.machine.label}",
                            f"where it is plugged: {ta.machine.label} -> {tb.machine.label}", rest))
    else:
        causes.append(Cause("other", "together", "several properties together (no single one "
                            "changes these alone)", rest))
    return causes
