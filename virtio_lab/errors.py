"""The one exception type the API raises for anything a user got wrong, and how a message
shows what the user typed."""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["VirtioLabError", "VirtioLabTypeError", "shown", "one_line", "printable", "type_name",
           "LINE_MAX"]

#: The longest line an error prints (a value it quotes is shortened well before).
LINE_MAX = 300


class VirtioLabError(ValueError):
    """Bad input or a combination QEMU refuses.

    The message is a single line that says what to do; where QEMU 7.2 has its own
    message for the problem, the message contains QEMU's text verbatim.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # one line, hint appended the way QEMU prints it
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return " ".join(text.split("\n")) if "\n" in text else text


class VirtioLabTypeError(VirtioLabError, TypeError):
    """An argument of the wrong type (``save(s, 1)``, ``ConfigAccess("x")``): a TypeError
    too, so ``except TypeError`` catches it where Python would raise one."""


def type_name(value: Any) -> str:
    """The type of ``value`` as a message names it (``str``, ``NoneType``...)."""
    return type(value).__name__


#: Escapes for the control characters a message shows by name.
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(text: str, keep: str = "") -> str:
    """``text`` with every character a terminal would act on or not show written as an escape:
    C0/C1 controls, DEL, format characters (bidi overrides), separators; a lone surrogate
    \\udcXX (a non-UTF-8 byte from the command line, decoded by Python's surrogateescape) as
    the byte it stands for, \\xXX."""
    if text.isprintable():
        return text
    out = []
    for c in text:
        if c.isprintable() or c in keep:
            out.append(c)
        elif c in _NAMED:
            out.append(_NAMED[c])
        elif "\udc80" <= c <= "\udcff":
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif ord(c) < 0x100:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
    return "".join(out)


def _json_like(value: Any, depth: int = 0) -> str:
    """A short JSON-style rendering that never recurses deep nor converts a huge int."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        if value.bit_length() > 200:  # str() of a 4300-digit int raises; no message needs it
            return f"{'-' if value < 0 else ''}<a number of {int(value.bit_length() * 0.30103) + 1} digits>"
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, (bytes, bytearray)):
        return _escaped(repr(bytes(value[:200])))
    if isinstance(value, str):
        return '"' + _escaped(value[:200]).replace('"', '\\"') + '"'
    if depth >= 2:
        return "[…]" if isinstance(value, (list, tuple)) else "{…}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_json_like(v, depth + 1) for v in value[:8]) + (", …" if len(value) > 8 else "") + "]"
    if isinstance(value, dict):
        items = list(value.items())[:8]
        return "{" + ", ".join(f"{_json_like(str(k), depth + 1)}: {_json_like(v, depth + 1)}"
                               for k, v in items) + (", …" if len(value) > 8 else "") + "}"
    return f"<{type_name(value)}>"


def shown(value: Any, quote: str = "'", limit: int = 60, tail: bool = False) -> str:
    """``value`` as a message may quote it: the one place user text enters a message.

    A string is wrapped in ``quote`` (QEMU's messages use ``'``, the session's JSON ``"``)
    with control and other unprintable characters escaped (``\\r``, ``\\x1b``, ``\\u202e``,
    a non-UTF-8 byte as ``\\xff``) and cut to ``limit`` characters, ending in ``…`` inside the
    quotes. Any other value is written as JSON would write it, shortened the same way and
    never recursing into deep nesting. Short printable text comes back as QEMU prints it,
    so QEMU's own messages stay verbatim. ``tail`` keeps the end of a long string instead
    (a file name: ``'…/lab/vm.txt'``)."""
    if isinstance(value, str):
        if tail:  # escaping only lengthens: what is cut off never needs escaping
            body = _escaped(value[-(limit + 1):])
            return f"{quote}…{body[-(limit - 1):]}{quote}" if len(body) > limit else f"{quote}{body}{quote}"
        body = _escaped(value[:limit + 1])
        cut = len(body) > limit
        return f"{quote}{body[:max(1, limit - 1)] if cut else body}{'…' if cut else ''}{quote}"
    text = _json_like(value)
    return text if len(text) <= limit else text[:max(1, limit - 1)] + "…"


def one_line(text: str, limit: int = LINE_MAX) -> str:
    """An error line as the terminal gets it: one line, nothing a terminal would act on, at
    most ``limit`` characters (a value it quotes was already cut where it was quoted)."""
    return shown(str(text).replace("\n", " "), quote="", limit=limit)


_UNPRINTABLE = re.compile(r"[^\n\t\x20-\x7e\xa0-\uffff]|[\xad\u0600-\u0605\u061c\u06dd\u070f"
                          r"\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb"
                          r"\ud800-\udfff]")


def printable(text: str) -> str:
    """Text for a terminal, lines and tabs kept: what :func:`shown` escapes in a value, escaped
    everywhere in ``text`` (the command line's output may hold a value a user typed)."""
    return _UNPRINTABLE.sub(lambda m: _escaped(m.group()), text)
