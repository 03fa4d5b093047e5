"""Save and load a learner's session as versioned JSON (never pickle).

A session is what it takes to come back to the same screen: the ``-device`` spec,
the machine, whether a PCIe root port sits in between, the step being looked at,
and the guest's config-space writes so far (replayed through QEMU's write rule)::

    {"format": "virtio_lab-session", "version": 1,
     "spec": "virtio-net-pci", "machine": "pc", "root_port": false, "step": 12,
     "writes": [{"offset": 4, "size": 2, "value": 7}]}

Loading checks everything and fails with one :class:`VirtioLabError` line: a file
that is not JSON, not a session, from a newer or older format version, or whose
fields are out of range. Loading also re-plugs the spec, so a session naming a
device QEMU would refuse fails with QEMU's message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VirtioLabError, VirtioLabTypeError, shown, type_name
from ..files import read_input, size_text, write_atomic

__all__ = ["FORMAT", "VERSION", "GuestWrite", "Session", "load", "save", "loads", "dumps"]

FORMAT = "virtio_lab-session"
VERSION = 1
MAX_BYTES = 1 << 20  # a session is a few hundred bytes; refuse anything absurd
MAX_WRITES = 100_000
_FIELDS = ("format", "version", "spec", "machine", "root_port", "step", "writes")


@dataclass(frozen=True)
class GuestWrite:
    """One guest store into config space: ``size`` bytes (1, 2 or 4) at ``offset``."""

    offset: int
    size: int
    value: int

    def as_dict(self) -> dict[str, int]:
        return {"offset": self.offset, "size": self.size, "value": self.value}


@dataclass(frozen=True)
class Session:
    """A plug to come back to: device, machine, step, and the guest's writes."""

    spec: str
    machine: str = "pc"
    root_port: bool = False
    step: int = -1  # -1: the last event
    writes: tuple[GuestWrite, ...] = field(default=())

    def __post_init__(self):
        """Check every field (a Session built in Python is held to what load() checks)."""
        if not isinstance(self.spec, str) or not self.spec.strip():
            raise VirtioLabError("session \"spec\" must be a non-empty -device string such as "
                                 "\"virtio-net-pci\"")
        if self.machine not in ("pc", "q35"):
            raise VirtioLabError(f"session \"machine\" must be \"pc\" or \"q35\", not "
                                 f"{_show(self.machine)}")
        if not isinstance(self.root_port, bool):
            raise VirtioLabError(f"session \"root_port\" must be true or false, not "
                                 f"{_show(self.root_port)}")
        if self.root_port and self.machine != "q35":
            raise VirtioLabError("session \"root_port\" is true but a pcie-root-port needs "
                                 "\"machine\": \"q35\"")
        if not _is_int(self.step):
            raise VirtioLabError(f"session \"step\" must be an integer, not {_show(self.step)}")
        if not isinstance(self.writes, (list, tuple)):
            raise VirtioLabError(f"session \"writes\" must be a list of {{offset, size, value}}, "
                                 f"not {_kind(self.writes)}")
        if len(self.writes) > MAX_WRITES:
            raise VirtioLabError(f"session has {len(self.writes)} writes; at most {MAX_WRITES} "
                                 f"are kept")
        object.__setattr__(self, "writes", tuple(
            _write(w.as_dict() if isinstance(w, GuestWrite) else w, i)
            for i, w in enumerate(self.writes)))

    @classmethod
    def of(cls, trace, step: int = -1, writes=()) -> "Session":
        """The session of a :class:`~virtio_lab.plug.Trace` at ``step`` (what a view shows)."""
        from ..hw.plug import Trace
        if not isinstance(trace, Trace):
            raise VirtioLabTypeError(f"Session.of() takes a trace (virtio_lab.plug(...)), not "
                                     f"{type_name(trace)}")
        m = trace.machine
        return cls(trace.spec.text, m.name, m.root_port, step,
                   tuple(writes) if isinstance(writes, (list, tuple)) else writes)

    # -- the objects a session stands for ------------------------------------
    def trace(self):
        from ..hw.plug import plug
        return plug(self.spec, self.machine, self.root_port)

    def state(self):
        """The device after the saved step."""
        return self.trace().state_at(self.step)

    def access(self):
        """A :class:`~virtio_lab.pci.access.ConfigAccess` on the plugged device with the
        guest's writes replayed (the FLR hook on when x-pcie-flr-init is)."""
        from ..pci.access import ConfigAccess
        trace = self.trace()
        acc = ConfigAccess(trace.final, flr=bool(trace.spec.value("x-pcie-flr-init")))
        for w in self.writes:
            acc.config_write(w.offset, w.value, w.size)
        return acc

    def with_write(self, offset: int, size: int, value: int) -> "Session":
        w = _write({"offset": offset, "size": size, "value": value}, len(self.writes))
        return Session(self.spec, self.machine, self.root_port, self.step, self.writes + (w,))

    # -- JSON -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "spec": self.spec, "machine": self.machine,
                "root_port": self.root_port, "step": self.step,
                "writes": [w.as_dict() for w in self.writes]}

    @classmethod
    def from_dict(cls, data: Any, check: bool = True) -> "Session":
        """Validate a decoded JSON object; ``check`` also re-plugs to validate spec and step."""
        if not isinstance(data, dict):
            raise VirtioLabError(f"not a virtio_lab session: expected a JSON object, got "
                                 f"{_kind(data)}")
        if data.get("format") != FORMAT:
            raise VirtioLabError(f"not a virtio_lab session: \"format\" must be \"{FORMAT}\"")
        version = data.get("version")
        if not _is_int(version):
            raise VirtioLabError("session has no valid \"version\": re-save it with this virtio_lab")
        if version > VERSION:
            raise VirtioLabError(f"session format version {version} is newer than this virtio_lab "
                                 f"reads (version {VERSION}): upgrade virtio_lab to open it")
        if version < VERSION:
            raise VirtioLabError(f"session format version {version} is older than this virtio_lab "
                                 f"reads (version {VERSION}): recreate the session and save it again")
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise VirtioLabError(f"session has an unknown field {unknown[0]!r}; version {VERSION} "
                                 f"has only: {', '.join(_FIELDS)}")
        writes = data.get("writes", [])
        if not isinstance(writes, list):
            raise VirtioLabError(f"session \"writes\" must be a list of {{offset, size, value}}, "
                                 f"not {_kind(writes)}")
        session = cls(data.get("spec"), data.get("machine", "pc"), data.get("root_port", False),
                      data.get("step", -1), tuple(writes))
        if check:
            session.validate()
        return session

    def validate(self) -> None:
        """Re-plug the device: the spec must plug, the step and writes must fit it."""
        try:
            trace = self.trace()
        except VirtioLabError as err:  # QEMU's own message, said to come from the file
            raise VirtioLabError(f"session \"spec\" {_show(self.spec)} does not plug: {err}") from None
        n = len(trace.events)
        if not -n <= self.step < n:
            raise VirtioLabError(f"session step {self.step} is outside this trace's steps "
                                 f"0..{n - 1}")
        size = trace.final.facts.config_size
        for i, w in enumerate(self.writes):
            if w.offset + w.size > size:
                raise VirtioLabError(f"session write {i} at 0x{w.offset:x} (size {w.size}) is past "
                                     f"the device's {size}-byte config space")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", tuple: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(v), "a number")


def _show(v: Any) -> str:
    """A value from the file as the message quotes it (JSON style, escaped, shortened)."""
    return shown(v, '"', 40)


def _write(w: Any, i: int) -> GuestWrite:
    if not isinstance(w, dict) or set(w) != {"offset", "size", "value"}:
        raise VirtioLabError(f"session write {i} must be an object with exactly offset, size "
                             f"and value")
    offset, size, value = w["offset"], w["size"], w["value"]
    if not all(_is_int(x) for x in (offset, size, value)):
        raise VirtioLabError(f"session write {i}: offset, size and value must be integers")
    if size not in (1, 2, 4):
        raise VirtioLabError(f"session write {i}: size must be 1, 2 or 4 bytes, not {size}")
    if not 0 <= offset <= 4096 - size:
        raise VirtioLabError(f"session write {i}: offset {offset} is outside config space "
                             f"(0..{4096 - size})")
    if offset % 4 + size > 4:  # config mechanism #1 reaches one dword per access
        raise VirtioLabError(f"session write {i}: a {size}-byte access at 0x{offset:x} crosses "
                             f"a 4-byte boundary")
    if not 0 <= value < 1 << (8 * size):
        raise VirtioLabError(f"session write {i}: value {value} does not fit in {size} "
                             f"byte{'s' if size > 1 else ''}")
    return GuestWrite(offset, size, value)


def dumps(session: Session) -> str:
    if not isinstance(session, Session):
        raise VirtioLabTypeError(f"dumps() takes a Session, not {type_name(session)}")
    return json.dumps(session.to_dict(), indent=1) + "\n"


def loads(text: str | bytes, check: bool = True) -> Session:
    """Parse a session from JSON text; any problem is one VirtioLabError line."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise VirtioLabError("session file is not UTF-8 text: is it really a saved "
                                 "virtio_lab session?") from None
    if not isinstance(text, str):
        raise VirtioLabTypeError(f"a session is JSON text (str or bytes), not {type_name(text)}")
    if len(text) > MAX_BYTES:
        raise VirtioLabError(f"session text is {size_text(len(text))}; a session is under "
                             f"{size_text(MAX_BYTES)}, so this is not one")
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_int=_int)
    except json.JSONDecodeError as err:
        raise VirtioLabError(f"session file is not valid JSON (line {err.lineno}, column "
                             f"{err.colno}: {err.msg}); it may be truncated or corrupt") from None
    except RecursionError:
        raise VirtioLabError("session file nests too deeply to be a virtio_lab session") from None
    return Session.from_dict(data, check)


def _int(digits: str) -> int:
    """A JSON integer; one of thousands of digits (past Python's int-string limit) is no
    session value."""
    if len(digits.lstrip("-")) > 40:
        raise VirtioLabError(f"session file holds a number of {len(digits.lstrip('-'))} digits, "
                             "which no session field takes")
    return int(digits)


def _no_constant(name: str) -> Any:
    raise VirtioLabError(f"session file contains {name}, which is not valid JSON")


def save(session: Session, path: str | Path) -> Path:
    """Write ``session`` to ``path`` as JSON (through a temporary file: a failure leaves an
    existing file as it was)."""
    if not isinstance(session, Session):
        raise VirtioLabTypeError(f"save() takes a Session (Session.of(trace)), not "
                                 f"{type_name(session)}")
    return write_atomic(path, dumps(session), "the session")


def load(path: str | Path, check: bool = True) -> Session:
    """Read a session file (a regular file under 1 MiB; ``-`` is stdin) and check it."""
    return loads(read_input(path, MAX_BYTES, "session file"), check)
