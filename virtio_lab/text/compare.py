"""Compare two devices in the oracle schema and name every difference.

Used by the fidelity tests, ``crosscheck`` (emulated vs a real QEMU) and ``diff``.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import one_line, shown
from ..pci.layout import field_map
from .dump import PROBE_SKIP

__all__ = ["compare_dumps", "byte_differences", "refusal", "as_shown"]


def byte_differences(want: bytes, got: bytes, names_from: bytes, skip=frozenset()) -> list[str]:
    """One line per differing byte: offset, the field it belongs to, both values."""
    labels = field_map(names_from)
    out = []
    for i in range(min(len(want), len(got))):
        if i in skip or want[i] == got[i]:
            continue
        lab = labels[i] if i < len(labels) else None
        where = f"{lab.structure}.{lab.field}" if lab else "?"
        out.append(f"0x{i:03x} {where}: {got[i]:02x} != {want[i]:02x}")
    if len(want) != len(got):
        out.append(f"length {len(got)} != {len(want)}")
    return out


def refusal(error: str) -> str:
    """The message of QEMU's refusal in a probe's error text: the first line of the first
    ``qemu-system-x86_64:`` report that is not a warning (warn_report lines, and what
    error_printf appends to them, come before the error on stderr), after its location."""
    reports = error.split("qemu-system-x86_64: ")[1:]
    errors = [r for r in reports if ": warning: " not in r.split("\n")[0]
              and not r.startswith("warning: ")]
    return (errors[0] if errors else error).split("\n")[0].split(": ")[-1].strip()


_QUOTED = re.compile(r"'([^'\n]*)'|\"([^\"\n]*)\"")


def as_shown(message: str) -> str:
    """QEMU's message as virtio_lab words it: every quoted value through
    :func:`virtio_lab.errors.shown` (control characters and non-UTF-8 bytes escaped, a long
    value shortened), the whole on one printable line."""
    text = _QUOTED.sub(lambda m: shown(m[1], "'") if m[1] is not None else shown(m[2], '"'), message)
    return one_line(text, limit=10 * len(text) + 1)  # escaped, never cut: \U0001f600 is 10


def compare_dumps(want: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Every difference between ``got`` and ``want`` (the truth), as readable lines.

    Compares what the oracle's comparison compares: config, the extended config past
    0x100, the probed write mask, BARs, ROM size, feature words, queues and the
    leading device-config bytes (the probe reads backend-dependent tails too).
    """
    if "error" in want or "error" in got:
        if "error" in want and "error" in got:
            w = as_shown(refusal(want["error"]))
            return [] if w in got["error"] else [f"error: {got['error']!r} lacks {w!r}"]
        return [f"error: {got.get('error')!r} != {want.get('error')!r}"]
    out: list[str] = []
    wc, gc = bytes.fromhex(want["config"]), bytes.fromhex(got.get("config", ""))
    out += [f"config {d}" for d in byte_differences(wc, gc[:256], wc)]
    if "config_ext" in want:
        we, ge = bytes.fromhex(want["config_ext"]), bytes.fromhex(got.get("config_ext", ""))
        out += [f"config_ext {d}" for d in byte_differences(we[256:], ge[256:], b"")]
    skip = set(PROBE_SKIP)
    for c in want.get("caps", []):
        if c["id"] == 9 and c.get("cfg_type") == 5:
            skip |= set(range(c["offset"] + 16, c["offset"] + 20))
    if "wmask" in want:
        out += [f"wmask {d}" for d in byte_differences(bytes.fromhex(want["wmask"]),
                                                       bytes.fromhex(got.get("wmask", "")), wc, skip)]

    def bars(b):
        return sorted((x["index"], x["kind"], x["size"], bool(x.get("prefetchable", False))) for x in b)
    if bars(want.get("bars", [])) != bars(got.get("bars", [])):
        out.append(f"bars {bars(got.get('bars', []))} != {bars(want.get('bars', []))}")
    if want.get("rom_size") != got.get("rom_size"):
        out.append(f"rom_size {got.get('rom_size')} != {want.get('rom_size')}")
    wcc, gcc = want.get("common_cfg"), got.get("common_cfg")
    if wcc:
        if not gcc:
            out.append("common_cfg missing")
        else:
            if wcc["device_feature"] != gcc.get("device_feature"):
                out.append(f"device_feature {gcc.get('device_feature')} != {wcc['device_feature']}")
            if wcc["num_queues"] != gcc.get("num_queues"):
                out.append(f"num_queues {gcc.get('num_queues')} != {wcc['num_queues']}")
            wq = [(q["size"], q["notify_off"]) for q in wcc["queues"]]
            gq = [(q["size"], q["notify_off"]) for q in gcc.get("queues", [])]
            if wq != gq:
                out.append(f"queues (size, notify_off) {gq[:6]} != {wq[:6]}")
    elif gcc:
        out.append("common_cfg present but the truth has none")
    wd, gd = want.get("device_cfg"), got.get("device_cfg")
    if wd and "memdev=" not in want.get("device", ""):
        g = (gd or "")[:len(wd)]
        if not g or g != wd[:len(g)] or len(g) < min(len(wd), 32):
            out.append(f"device_cfg {g[:48]} != {wd[:48]}")
    wl, gl = want.get("legacy"), got.get("legacy")
    if wl and gl and wl.get("host_features") != gl.get("host_features"):
        out.append(f"legacy host_features {gl.get('host_features')} != {wl.get('host_features')}")
    if wl and gl and wl.get("queue_num_q0") != gl.get("queue_num_q0"):
        out.append(f"legacy queue_num_q0 {gl.get('queue_num_q0')} != {wl.get('queue_num_q0')}")
    if bool(wl) != bool(gl):
        out.append(f"legacy interface {'present' if gl else 'absent'} but truth has it {'present' if wl else 'absent'}")
    return out
