"""The observable record of a plug: frozen events in call order, replayable to any step.

Python Tutor's idea applied to QEMU: run once, record every step, then render any
index. An :class:`Event` names the QEMU function, explains it in plain words and
lists the exact writes it made. :meth:`Trace.state_at` rebuilds the state after any
event from those writes, so stepping back is indexing, never re-running.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Write", "Event", "Tracer", "SPACES", "new_write"]

#: The per-byte arrays QEMU keeps for a PCI device (hw/pci/pci.c: pci_config_alloc).
SPACES = ("config", "wmask", "w1cmask", "cmask", "used")


@dataclass(frozen=True)
class Write:
    """One store into one of the per-byte arrays: which array, where, and before/after."""

    space: str
    offset: int
    old: bytes
    new: bytes

    @property
    def width(self) -> int:
        return len(self.new)

    @property
    def value(self) -> int:
        """The stored value read little-endian (as QEMU's pci_set_* wrote it)."""
        return int.from_bytes(self.new, "little")

    @property
    def old_value(self) -> int:
        return int.from_bytes(self.old, "little")

    def changed_offsets(self) -> tuple[int, ...]:
        """Byte offsets whose value actually changed."""
        return tuple(self.offset + i for i, (a, b) in enumerate(zip(self.old, self.new)) if a != b)


@dataclass(frozen=True)
class Event:
    """One step of the plug: a QEMU function (or a phase inside it) and what it wrote.

    ``function`` is always a function defined in ``source`` (a phase, or a macro such as
    error_setg, cites the function it runs in); ``depth`` counts the calls from the
    trace's roots, with QEMU's generic dispatch (QOM property setters, hotplug handlers)
    folded into the call it dispatches to.

    ``facts`` is the device's non-byte state after the step (BARs, bus tree,
    features...), shared by reference between events until it changes.
    """

    index: int
    function: str
    source: str
    explanation: str
    depth: int
    writes: tuple[Write, ...]
    details: tuple[tuple[str, Any], ...]
    facts: Any
    continued: bool = False

    def detail(self, key: str, default: Any = None) -> Any:
        for k, v in self.details:
            if k == key:
                return v
        return default

    @property
    def citation(self) -> str:
        """``file:function``, the way the docs cite QEMU."""
        return f"{self.source}:{self.function}"

    def changed(self, space: str = "config") -> frozenset[int]:
        """Offsets of ``space`` whose value this event changed."""
        return frozenset(o for w in self.writes if w.space == space for o in w.changed_offsets())

    def touched(self, space: str = "config") -> frozenset[int]:
        """Offsets of ``space`` this event wrote, changed or not."""
        return frozenset(o for w in self.writes if w.space == space
                         for o in range(w.offset, w.offset + w.width))


class _Segment:
    """The event being collected: its function, explanation and writes so far."""

    __slots__ = ("function", "source", "explanation", "depth", "details", "continued", "writes")

    def __init__(self, function: str, source: str, explanation: str, depth: int,
                 details: tuple[tuple[str, Any], ...], continued: bool):
        self.function, self.source, self.explanation = function, source, explanation
        self.depth, self.details, self.continued = depth, details, continued
        self.writes: list[Write] = []


class Tracer:
    """Collects events while the emulation runs; passed explicitly, never global.

    A call opens a segment; writes go to the innermost open segment. When a nested
    call returns and its caller writes again, the caller gets a continuation event,
    so the list stays in true execution order.
    """

    def __init__(self, facts: Any = None):
        self.events: list[Event] = []
        self.facts = facts
        self._stack: list[tuple[str, str, int]] = []
        self._open: _Segment | None = None

    @property
    def current(self) -> tuple[str, str] | None:
        """``(function, source)`` of the innermost open call, or None outside any call."""
        return self._stack[-1][:2] if self._stack else None

    # -- structure -------------------------------------------------------
    def call(self, function: str, source: str, explanation: str, **details: Any) -> "Tracer":
        """Enter a QEMU function: one event, nested under the caller.

        Use as ``with tracer.call(...):``; the tracer itself is the context manager
        (the event opens here, and leaving the block returns to the caller), which
        keeps the ~50 calls of a plug free of per-call objects.
        """
        self._flush()
        depth = len(self._stack)
        self._stack.append((function, source, depth))
        self._open = _Segment(function, source, explanation, depth, tuple(details.items()), False)
        return self

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        self._flush()
        self._stack.pop()

    def phase(self, explanation: str, **details: Any) -> None:
        """Start a new event inside the current function (what it does next)."""
        self._flush()
        function, source, depth = self._stack[-1]
        self._open = _Segment(function, source, explanation, depth, tuple(details.items()), True)

    def annotate(self, **details: Any) -> None:
        """Add details to the open event (e.g. the offset a capability landed at)."""
        if self._open is None:
            self.phase("(continued)")
        assert self._open is not None
        self._open.details = self._open.details + tuple(details.items())

    def record(self, write: Write) -> None:
        seg = self._open
        if seg is None:
            self.phase("(continued)")
            seg = self._open
            assert seg is not None
        seg.writes.append(write)

    def detached(self) -> "_Detached":
        """Record the events of another thread (QEMU's main loop) at depth 0, then return to
        the calls still open: ``with tracer.detached(): ...``."""
        return _Detached(self)

    def set_facts(self, facts: Any) -> None:
        self.facts = facts

    def close(self) -> tuple[Event, ...]:
        self._flush()
        return tuple(self.events)

    def _flush(self) -> None:
        seg, self._open = self._open, None
        if seg is None:
            return
        self.events.append(_new_event(len(self.events), seg.function, seg.source, seg.explanation,
                                      seg.depth, tuple(seg.writes), seg.details, self.facts,
                                      seg.continued))


class _Detached:
    """Tracer.detached's context: an empty call stack inside, the caller's back outside."""

    __slots__ = ("tracer", "saved")

    def __init__(self, tracer: Tracer):
        self.tracer = tracer
        self.saved: list = []

    def __enter__(self) -> None:
        self.tracer._flush()
        self.saved, self.tracer._stack = self.tracer._stack, []

    def __exit__(self, *exc: Any) -> None:
        self.tracer._flush()
        self.tracer._stack = self.saved


# Frozen dataclasses pay one object.__setattr__ per field in __init__; a plug makes
# ~150 of these records, so the tracer builds them with one __dict__ assignment.
_new_object = object.__new__
_set = object.__setattr__


def _new_write(space: str, offset: int, old: bytes, new: bytes) -> Write:
    w = _new_object(Write)
    _set(w, "__dict__", {"space": space, "offset": offset, "old": old, "new": new})
    return w


def _new_event(index: int, function: str, source: str, explanation: str, depth: int,
               writes: tuple[Write, ...], details: tuple[tuple[str, Any], ...], facts: Any,
               continued: bool) -> Event:
    e = _new_object(Event)
    _set(e, "__dict__", {"index": index, "function": function, "source": source,
                         "explanation": explanation, "depth": depth, "writes": writes,
                         "details": details, "facts": facts, "continued": continued})
    return e


#: Build a :class:`Write` without the per-field cost of the frozen dataclass __init__.
new_write = _new_write
