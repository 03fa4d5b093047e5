"""Cross-check the emulation against a real QEMU: the local one, or a release of the QEMU kit.

For a ``-device`` spec, :func:`crosscheck` plugs it twice — into a real
``qemu-system-x86_64`` read back over qtest (:mod:`virtio_lab.live.qemu`) and into the
emulation of the same release (:func:`virtio_lab.text.dump.dump`) — and names every
difference: which byte of which field of which capability, which BAR, which feature word,
or which refusal text.  ``qemu="10.0"`` runs that release (the QEMU kit's, ``make
qemu-kit``); without it the local QEMU runs and its ``--version`` says which release to
emulate, or, for a release virtio_lab does not model, the nearest one (:func:`target`
says so: differences are then expected).  :func:`crosscheck_many` does the same for many cases with
several devices per QEMU process and a few processes in parallel; the sweep
(:func:`sweep_cases`) is every device type × ``pc``, ``q35``, ``q35 --root-port``.

Command line (``python -m virtio_lab crosscheck``)::

    crosscheck SPEC [--machine M] [--root-port] [--qemu X.Y] [--json]   # exit 1 on a difference
    crosscheck --all [--qemu X.Y] [--jobs N] [--json]                   # every type x machine
    crosscheck SPEC --guest [--qemu X.Y] [--machine ...]                # a real Linux guest
    crosscheck --guest --all [--qemu X.Y]                               # the 8 guest cases CI boots

``--machine`` is pc, q35 or a versioned machine type (pc-i440fx-5.2, pc-q35-7.2).

Exit status: 0 identical, 1 a difference, 2 bad input or QEMU (or the guest kit)
missing — then one line says how to install it.

Standard library only.  No QEMU code: the truth side only looks at a running QEMU.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..hw.device_config import (
    DEVICE_CONFIG_FIELDS,  # device-config layouts per virtio id
)
from .guest import COMPARED_FIELDS

__all__ = [
    "BACKENDS",
    "GUEST_CASES",
    "MACHINES",
    "GuestResult",
    "Result",
    "Target",
    "add_arguments",
    "compare_guest",
    "crosscheck",
    "crosscheck_guest",
    "crosscheck_guest_many",
    "crosscheck_many",
    "describe",
    "emulate",
    "format_guest_result",
    "format_result",
    "machine_label",
    "run_cli",
    "sweep_cases",
    "target",
    "with_backend",
]

#: The three places a device can sit: (machine, root_port).
MACHINES: tuple[tuple[str, bool], ...] = (("pc", False), ("q35", False), ("q35", True))

#: Backend references a model cannot start without (the ids ``virtio_lab.live.qemu.backend_args``
#: creates and the local corpus leaves out of its case names).
BACKENDS: dict[str, str] = {
    "virtio-blk": "drive=d0",
    "virtio-9p": "fsdev=fs0,mount_tag=share",
    "virtio-crypto": "cryptodev=cr0",
    "virtio-mem": "memdev=mem0",
    "virtio-pmem": "memdev=mem0",
}

_BYTE_LINE = re.compile(r"^(config|config_ext|wmask) 0x([0-9a-f]+) (.*): ([0-9a-f]{2}) != ([0-9a-f]{2})$")


def backend_for(type_name: str) -> str:
    """The backend options a device type needs (``""`` when it needs none)."""
    for prefix, opts in BACKENDS.items():
        if type_name == prefix + "-pci" or type_name.startswith(prefix + "-pci-"):
            return opts
    return ""


def with_backend(type_name: str, options: str = "") -> str:
    """``TYPE[,backend ids][,options]`` — a spec both QEMU and the emulation accept.

    A backend option that ``options`` sets itself (e.g. ``mount_tag=x``) is not added."""
    given = {o.split("=", 1)[0] for o in options.split(",") if o}
    backend = ",".join(o for o in backend_for(type_name).split(",")
                       if o and o.split("=", 1)[0] not in given)
    return ",".join(p for p in (type_name, backend, options) if p)


def machine_label(machine: str, root_port: bool) -> str:
    return machine + "rp" if root_port else machine


# --------------------------------------------------------------------------
# which QEMU runs, and which release the emulation models for it

@dataclass(frozen=True)
class Target:
    """The real QEMU a cross-check runs and the release the emulation models beside it.

    ``note`` is set when that QEMU is no release virtio_lab models: it names the nearest
    modelled one (which ``release`` then is) and says that differences are expected."""

    binary: str
    version: str
    release: str
    note: str = ""


def modelled_releases() -> tuple[str, ...]:
    """The releases the emulation models (virtio_lab.hw.release)."""
    try:
        from ..hw.release import release_names
    except ImportError:   # seam until the release profiles land: the 7.2 emulation only
        return ("7.2",)
    return tuple(release_names())


def _number(release: str) -> float:
    major, minor = (int(x) for x in release.split("."))
    return major + minor / 100


def nearest_release(release: str, modelled: Sequence[str]) -> str:
    """The modelled release closest to ``release`` (``"8.2"`` -> ``"7.2"``; the newer of
    two as close)."""
    return min(modelled, key=lambda r: (abs(_number(r) - _number(release)), -_number(r)))


def target(qemu: str | None = None) -> Target:
    """Which binary runs and which release is emulated: ``qemu`` (a modelled release, from
    the local QEMU or the QEMU kit), else the local QEMU and the release its version names.

    Raises :class:`virtio_lab.errors.VirtioLabError`, one line, when that QEMU is not here
    (how to get it) or the release is not modelled."""
    from ..errors import VirtioLabError
    from . import qemu as real
    modelled = modelled_releases()
    if qemu is not None and qemu not in modelled:
        raise VirtioLabError(f"unknown QEMU release {qemu!r}: virtio_lab models "
                             f"{', '.join(modelled)} (--qemu {'|'.join(modelled)})")
    try:
        binary = real.qemu_binary(qemu)
        version = real.qemu_version(binary)
    except real.QemuUnavailable as err:
        raise VirtioLabError(str(err)) from None
    found = real.release_of(version)
    if qemu is not None or found in modelled:
        return Target(binary, version, qemu or found)
    from .qemu_kit import RELEASES as KIT
    near = nearest_release(found or modelled[-1], modelled)
    kit = " or ".join(f"--qemu {r}" for r in modelled if r in KIT)
    return Target(binary, version, near,
                  f"the local QEMU is {found or version!r}, a release virtio_lab does not "
                  f"model; comparing with the nearest one it models, {near}: differences "
                  f"are expected" + (f" ({kit} runs Debian's build of a modelled release: "
                                     f"make qemu-kit)" if kit else ""))


def sweep_cases(types: Iterable[str] | None = None) -> list[tuple[str, str, bool]]:
    """Every device type (default: all supported) × pc, q35, q35 behind a root port."""
    if types is None:
        from ..hw.devices import supported_types
        types = sorted(supported_types())
    return [(with_backend(t), m, rp) for m, rp in MACHINES for t in types]


# --------------------------------------------------------------------------
# comparing

@dataclass
class _Case:
    """What every cross-check result holds: the case and the differences found.

    ``diffs`` is declared by each subclass, after its own sides (a dataclass field with
    a default must follow those without one); an empty list means identical."""

    spec: str
    machine: str
    root_port: bool

    @property
    def qemu(self) -> str | None:
        """The release compared (the emulated side's ``qemu``)."""
        return self.emulated.get("qemu")  # type: ignore[attr-defined]

    @property
    def identical(self) -> bool:
        return not self.diffs   # type: ignore[attr-defined]

    @property
    def where(self) -> str:
        return machine_label(self.machine, self.root_port)

    def as_dict(self) -> dict[str, Any]:
        out = {"spec": self.spec, "machine": self.machine, "root_port": self.root_port,
               "qemu": self.qemu, "identical": self.identical,
               "diffs": self.diffs}  # type: ignore[attr-defined]
        return out


@dataclass
class Result(_Case):
    """One case: what real QEMU and the emulation gave and how they differ."""

    real: dict[str, Any]
    emulated: dict[str, Any]
    diffs: list[str] = field(default_factory=list)
    target: Target | None = None

    @property
    def refused(self) -> bool:
        return "error" in self.real

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "refused": self.refused,
                "real_error": self.real.get("error"), "emulated_error": self.emulated.get("error")}


def _labels(config_hex: str):
    from ..pci.layout import field_map
    try:
        return field_map(bytes.fromhex(config_hex))
    except Exception:  # a config that does not parse still gets offsets
        return None


def virtio_device_id(config: bytes) -> int | None:
    """The virtio device id of a virtio-pci function (modern id, else the legacy subsystem id)."""
    if len(config) < 0x30 or config[0:2] != b"\xf4\x1a":
        return None
    dev = int.from_bytes(config[2:4], "little")
    return dev - 0x1040 if dev >= 0x1040 else int.from_bytes(config[0x2E:0x30], "little")


def _device_cfg_name(vid: int | None, off: int) -> str:
    for start, width, name in DEVICE_CONFIG_FIELDS.get(vid or -1, ()):
        if start <= off < start + width:
            return name
    return "?"


def _runs(diffs: Iterable[tuple[str, int, str, Any, Any]]) -> list[list]:
    """Differing bytes ``(area, offset, field, emulated, real)``, in offset order, as runs:
    ``[area, start, end, field, [emulated...], [real...]]``, one per stretch of adjacent
    bytes of the same field — so a 4-byte register that differs is one line, not four."""
    runs: list[list] = []
    for area, off, name, got, want in diffs:
        last = runs[-1] if runs else None
        if last and last[0] == area and last[3] == name and last[2] == off - 1:
            last[2] = off
            last[4].append(got)
            last[5].append(want)
        else:
            runs.append([area, off, off, name, [got], [want]])
    return runs


def _differing(real: bytes, emulated: bytes, name_of: Callable[[int], str], area: str = ""):
    """``(area, offset, field, emulated, real)`` for each byte that differs (shorter length)."""
    return ((area, i, name_of(i), emulated[i], real[i])
            for i in range(min(len(real), len(emulated))) if real[i] != emulated[i])


def _device_cfg_diff(real: dict[str, Any], emulated: dict[str, Any]) -> list[str]:
    want = bytes.fromhex(real.get("device_cfg") or "")
    got = bytes.fromhex(emulated.get("device_cfg") or "")
    vid = virtio_device_id(bytes.fromhex(real.get("config", "")))
    out = []
    for _, a, b, name, g, w in _runs(_differing(want, got, lambda i: _device_cfg_name(vid, i))):
        span = f"+0x{a:02x}" if a == b else f"+0x{a:02x}-0x{b:02x}"
        out.append(f"device config {span} {name}: emulated {bytes(g).hex(' ')}, real {bytes(w).hex(' ')}")
    if len(got) < len(want):
        out.append(f"device config: emulated {len(got)} bytes, real {len(want)}")
    return out


def describe(real: dict[str, Any], emulated: dict[str, Any]) -> list[str]:
    """Every difference between the real device and the emulated one, as lines.

    The verdict is :func:`virtio_lab.text.compare.compare_dumps` (real QEMU is the truth);
    byte differences are grouped by field and named after the real device's layout
    (``config 0x050-0x051 PCI Express cap @0x40.lnkctl: emulated 40 00, real 00 00``),
    extended-space bytes after the real extended capability list.
    """
    from ..errors import shown
    from ..text.compare import compare_dumps, refusal
    lines = compare_dumps(real, emulated)
    if "error" in real or "error" in emulated:
        if not lines:
            return []
        r = real.get("error")
        e = emulated.get("error")
        if r and e:
            return [f"refusal text differs: real {shown(refusal(r), limit=200)}, emulated "
                    f"{shown(e, limit=200)}"]
        if r:
            return [f"real QEMU refuses ({shown(refusal(r), '', 200)}) but the emulation plugs "
                    "the device"]
        return [f"the emulation refuses ({shown(e, '', 200)}) but real QEMU plugs the device"]
    ext_labels = _labels(real["config_ext"]) if real.get("config_ext") else None
    byte_diffs: list[tuple[str, int, str, str, str]] = []
    other: list[str] = []
    for line in lines:
        if line.startswith("device_cfg "):
            other += _device_cfg_diff(real, emulated) or [line]
            continue
        m = _BYTE_LINE.match(line)
        if not m:
            other.append(line)
            continue
        area, off, name, got, want = m.group(1), int(m.group(2), 16), m.group(3), m.group(4), m.group(5)
        if area == "config_ext":
            off += 0x100
            lab = ext_labels[off] if ext_labels and off < len(ext_labels) else None
            name = f"{lab.structure}.{lab.field}" if lab else "?"
            if name.endswith(".(unused)") and lab and lab.kind == "free":
                name = "extended space (no capability)"
        byte_diffs.append((area, off, name, got, want))
    out = []
    for area, start, end, name, got, want in _runs(byte_diffs):
        span = f"0x{start:03x}" if start == end else f"0x{start:03x}-0x{end:03x}"
        what = "write mask" if area == "wmask" else area
        out.append(f"{what} {span} {name}: emulated {' '.join(got)}, real {' '.join(want)}")
    return out + [_emulated_real(x) for x in other]


_GOT_WANT = re.compile(r"^(\S+) (.*) != (.*)$")


def _emulated_real(line: str) -> str:
    """compare_dumps' ``name GOT != WANT`` as ``name: emulated GOT, real WANT``."""
    m = _GOT_WANT.match(line)
    return f"{m.group(1)}: emulated {m.group(2)}, real {m.group(3)}" if m else line


def emulate(spec: str, machine: str = "pc", root_port: bool = False,
            qemu: str | None = None) -> dict[str, Any]:
    """The emulated device of release ``qemu`` in the probe's schema (refusals:
    ``{"error": ...}``), tagged with the release it stands for."""
    import inspect

    from ..text.dump import dump
    if "qemu" in inspect.signature(dump).parameters:
        return dump(spec, machine, root_port, qemu=qemu)
    # seam until dump takes the release: the 7.2 emulation, said so
    return {**dump(spec, machine, root_port), "qemu": "7.2"}


def _check_input(spec: str, machine: str, root_port: bool) -> None:
    """Everything that would make the case meaningless or unsafe, refused before any QEMU
    starts: the machine, and the spec as :func:`virtio_lab.live.qemu.checked_opts` takes it
    (a string QEMU splits into options whose backend ids are QEMU identifiers)."""
    from ..errors import VirtioLabError, shown
    from .qemu import _MACHINE, checked_opts, machine_family
    if not isinstance(machine, str) or not _MACHINE.fullmatch(machine):
        raise VirtioLabError(f"unknown machine {shown(machine)}: use pc, q35 or a machine type "
                             f"(pc-i440fx-X.Y, pc-q35-X.Y)")
    if root_port and machine_family(machine) != "q35":
        raise VirtioLabError("--root-port needs a q35 machine (a pcie-root-port is a PCIe device)")
    if isinstance(spec, str) and not spec.strip():
        raise VirtioLabError("empty device spec: give a device type such as virtio-net-pci")
    checked_opts(spec)


def crosscheck(spec: str, machine: str = "pc", root_port: bool = False, *,
               qemu: str | None = None, timeout: float = 60.0) -> Result:
    """Plug ``spec`` into real QEMU (release ``qemu``, else the local one: see
    :func:`target`) and into the emulation of that release, and compare.

    Raises :class:`virtio_lab.errors.VirtioLabError` (one line: how to get it) when that
    QEMU is not here.
    """
    from . import qemu as real_qemu
    _check_input(spec, machine, root_port)
    where = target(qemu)
    real = real_qemu.probe(spec, machine, root_port, lspci=False, timeout=timeout,
                           qemu=where.binary)
    emu = emulate(spec, machine, root_port, where.release)
    return Result(spec, machine, root_port, real, emu, describe(real, emu), where)


def _default_jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def crosscheck_many(cases: Sequence[tuple[str, str, bool]], *, jobs: int | None = None,
                    chunk: int = 12, timeout: float = 60.0, qemu: str | None = None,
                    progress: Callable[[Result], None] | None = None) -> list[Result]:
    """Cross-check many ``(spec, machine, root_port)`` cases; results in input order.

    Cases are grouped by machine and cut into chunks; each chunk is one
    :func:`virtio_lab.live.qemu.probe_many` call (several devices per QEMU process,
    each refusal re-probed alone so it keeps its own message), ``jobs`` chunks at
    a time.  The emulation runs in this thread while QEMU works.
    ``progress(result)`` is called as each case completes.  ``qemu``: as for
    :func:`crosscheck`.
    """
    from . import qemu as real_qemu
    cases = [(s, m, bool(rp)) for s, m, rp in cases]
    for s, m, rp in cases:
        _check_input(s, m, rp)
    where = target(qemu)   # one line before any work
    jobs = jobs or _default_jobs()
    by_where: dict[tuple[str, bool], list[int]] = {}
    for i, (_, m, rp) in enumerate(cases):
        by_where.setdefault((m, rp), []).append(i)
    chunks = []
    for (m, rp), idx in by_where.items():
        n = max(1, min(chunk, -(-len(idx) // max(1, jobs))))   # enough chunks to fill the jobs
        for k in range(0, len(idx), n):
            chunks.append((idx[k:k + n], m, rp))
    chunks.sort(key=lambda c: -len(c[0]))
    results: list[Result | None] = [None] * len(cases)
    with cf.ThreadPoolExecutor(jobs) as ex:
        futs = {ex.submit(real_qemu.probe_many, [cases[i][0] for i in idx], m, rp,
                          lspci=False, timeout=timeout, qemu=where.binary): idx
                for idx, m, rp in chunks}
        emus = {}
        for i, (s, m, rp) in enumerate(cases):     # emulate while QEMU runs
            emus[i] = emulate(s, m, rp, where.release)
        for fut in cf.as_completed(futs):
            idx = futs[fut]
            for i, real in zip(idx, fut.result()):
                s, m, rp = cases[i]
                res = Result(s, m, rp, real, emus[i], describe(real, emus[i]), where)
                results[i] = res
                if progress:
                    progress(res)
    return results  # type: ignore[return-value]


def format_result(res: Result) -> str:
    """``identical`` (or the refusal both gave) or the differences, one a line."""
    head = f"{res.where:5} {res.spec}"
    if res.identical:
        if res.refused:
            # QEMU's message and hint, as the emulation words them on one line
            return f"{head}: identical (both refuse: {res.emulated.get('error') or res.real['error']})"
        return f"{head}: identical"
    return _with_diffs(head, res.diffs)


def _with_diffs(head: str, diffs: list[str]) -> str:
    """``HEAD: N differences`` and the differences below it, indented, one a line."""
    body = "\n".join(f"    {d}" for d in diffs)
    return f"{head}: {len(diffs)} difference{'s' if len(diffs) != 1 else ''}\n{body}"


# --------------------------------------------------------------------------
# against a real Linux guest (virtio_lab.live.guest) and the emulated one (virtio_lab.probe)

#: The cases ``crosscheck --guest --all`` boots (CI runs them): the common devices on
#: pc, and virtio-net on q35 with and without a root port.
GUEST_CASES: tuple[tuple[str, str, bool], ...] = (
    ("virtio-net-pci", "pc", False), ("virtio-blk-pci", "pc", False),
    ("virtio-scsi-pci", "pc", False), ("virtio-rng-pci", "pc", False),
    ("virtio-balloon-pci", "pc", False), ("virtio-serial-pci", "pc", False),
    ("virtio-net-pci", "q35", False), ("virtio-net-pci", "q35", True))


@dataclass
class GuestResult(_Case):
    """One device seen by a real Linux guest and by the emulated one (firmware + driver)."""

    guest: dict[str, Any]
    emulated: dict[str, Any]
    diffs: list[str] = field(default_factory=list)
    boot_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "boot_seconds": round(self.boot_seconds, 2)}


def _group_bytes(area: str, real: bytes, emulated: bytes, labels, base: int = 0) -> list[str]:
    """Differing bytes, one line per run of bytes of the same field."""
    def name_of(i: int) -> str:
        lab = labels[base + i] if labels and base + i < len(labels) else None
        return f"{lab.structure}.{lab.field}" if lab else "?"
    out = []
    for _, a, b, name, e, r in _runs(_differing(real, emulated, name_of)):
        span = f"0x{base + a:03x}" if a == b else f"0x{base + a:03x}-0x{base + b:03x}"
        out.append(f"{area} {span} {name}: emulated {bytes(e).hex(' ')}, real {bytes(r).hex(' ')}")
    if len(real) != len(emulated):
        out.append(f"{area}: emulated {len(emulated)} bytes, real {len(real)}")
    return out


def _bar_list(bars) -> list[tuple[int, str]]:
    return sorted((b["index"], f"{b['address']:#x}") for b in bars or [])


def compare_guest(real: dict[str, Any], emulated: dict[str, Any],
                  fields: Sequence[str] = COMPARED_FIELDS) -> list[str]:
    """What the emulated guest (``virtio_lab.probe(...).to_json()``) gets wrong about a
    real guest capture, field by field (default: :data:`virtio_lab.live.guest.COMPARED_FIELDS`);
    config bytes named after the real layout."""
    out = []
    for k in fields:
        r, e = real.get(k), emulated.get(k)
        if k not in emulated:
            out.append(f"{k}: the emulated guest does not give it (real {r!r})")
        elif k == "config" and isinstance(r, str) and isinstance(e, str):
            out += _group_bytes("config", bytes.fromhex(r), bytes.fromhex(e), _labels(r))
        elif k == "bars":
            if _bar_list(r) != _bar_list(e):
                out.append(f"bars (index, address): emulated {_bar_list(e)}, real {_bar_list(r)}")
        elif r != e:
            out.append(f"{k}: emulated {e!r}, real {r!r}")
    return out


def _guest_modules():
    """(virtio_lab.guest, virtio_lab.probe's probe) or a one-line VirtioLabError."""
    from ..errors import VirtioLabError
    from . import guest
    try:
        from ..guest.probe import probe
    except ImportError:
        raise VirtioLabError("crosscheck --guest compares with virtio_lab.probe (the emulated "
                             "firmware + driver), which this checkout does not have yet") from None
    return guest, probe


def crosscheck_guest(spec: str, machine: str = "pc", root_port: bool = False, *,
                     qemu: str | None = None, timeout: float = 180.0) -> GuestResult:
    """Boot a real Linux 6.1 guest with ``-device SPEC`` under QEMU (release ``qemu`` with
    its own SeaBIOS, else the local one: see :func:`target`) and compare what it left with
    ``virtio_lab.probe`` of that release (the emulation's firmware and driver replay).

    Raises :class:`virtio_lab.errors.VirtioLabError` (one line: how to get QEMU or
    build the guest kit) when the guest cannot be booted."""
    _check_input(spec, machine, root_port)
    guest, probe = _guest_modules()
    where = target(qemu)
    emulated = _emulated_guest(probe, spec, machine, root_port, where.release)  # bad input
    t0 = time.monotonic()                                                      # fails first
    real = _boot(guest, spec, machine, root_port, timeout, where.binary)
    return GuestResult(spec, machine, root_port, real, emulated,
                       compare_guest(real, emulated), time.monotonic() - t0)


def _emulated_guest(probe, spec: str, machine: str, root_port: bool, release: str) -> dict:
    import inspect
    if "qemu" in inspect.signature(probe).parameters:
        return {**probe(spec, machine, root_port, qemu=release).to_json(), "qemu": release}
    # seam until the guest probe takes the release: the 7.2 emulation, said so
    return {**probe(spec, machine, root_port).to_json(), "qemu": "7.2"}


def _boot(guest, spec: str, machine: str, root_port: bool, timeout: float,
          binary: str | None = None) -> dict[str, Any]:
    """guest.capture, booted a second time if the first guest stopped before its report
    (seen once in many boots on a host loaded far beyond its cores); the console of a
    failed boot is kept in a temporary file named in the error."""
    import tempfile

    from ..errors import VirtioLabError
    for attempt in (1, 2):
        fd, log = tempfile.mkstemp(prefix="virtio_lab-guest-", suffix=".log")
        os.close(fd)
        try:
            real = guest.capture(spec, machine, root_port, timeout=timeout, raw_log=log,
                                 qemu=binary)
        except guest.GuestError as err:
            line = str(err).splitlines()[0]
            if attempt == 1 and "did not finish its report" in line:
                os.unlink(log)
                continue
            if os.path.getsize(log):
                line += f" (console kept in {log})"
            else:
                os.unlink(log)
            raise VirtioLabError(line) from None
        os.unlink(log)
        return real
    raise AssertionError("unreachable")


def crosscheck_guest_many(cases: Sequence[tuple[str, str, bool]] = GUEST_CASES, *,
                          jobs: int = 2, timeout: float = 180.0, qemu: str | None = None,
                          progress: Callable[[GuestResult], None] | None = None) -> list[GuestResult]:
    """:func:`crosscheck_guest` for many cases, ``jobs`` guests booting at a time."""
    from ..errors import VirtioLabError
    from .guest_kit import KitError, load_kit
    _guest_modules()
    # one clear line before any boot: QEMU first (the kit is of no use without it)
    target(qemu)
    try:
        load_kit()
    except KitError as err:
        raise VirtioLabError(str(err).splitlines()[0]) from None
    results: list[GuestResult | None] = [None] * len(cases)
    with cf.ThreadPoolExecutor(max(1, jobs)) as ex:
        futs = {ex.submit(crosscheck_guest, s, m, rp, qemu=qemu, timeout=timeout): i
                for i, (s, m, rp) in enumerate(cases)}
        for fut in cf.as_completed(futs):
            results[futs[fut]] = res = fut.result()
            if progress:
                progress(res)
    return results  # type: ignore[return-value]


def format_guest_result(res: GuestResult) -> str:
    head = f"guest {res.where:5} {res.spec}"
    if res.identical:
        return f"{head}: identical (boot {res.boot_seconds:.1f} s)"
    return _with_diffs(head, res.diffs)


def _run_guest(args: argparse.Namespace) -> int:
    cases = list(GUEST_CASES) if args.all else [(args.spec, args.machine, args.root_port)]
    t0 = time.monotonic()

    def show(res: GuestResult) -> None:
        if not args.json:
            print(format_guest_result(res), flush=True)
    results = crosscheck_guest_many(cases, jobs=args.jobs or 2, qemu=args.qemu, progress=show)
    secs = time.monotonic() - t0
    bad = [r for r in results if not r.identical]
    if args.json:
        print(json.dumps({"cases": len(results), "identical": len(results) - len(bad),
                          "seconds": round(secs, 1), "results": [r.as_dict() for r in results]}))
    elif len(results) > 1:
        print(f"crosscheck --guest: {len(results) - len(bad)}/{len(results)} identical to a real "
              f"Linux 6.1 guest in {secs:.1f} s" + ("" if not bad else "; differ: " + ", ".join(
                  f"{r.where} {r.spec}" for r in bad)))
    return 1 if bad else 0


# --------------------------------------------------------------------------
# command line

def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``crosscheck`` subcommand's arguments (the CLI parser calls this)."""
    p.add_argument("spec", nargs="?", help="a -device spec, e.g. virtio-net-pci,disable-legacy=on")
    p.add_argument("--machine", default="pc",
                   help="pc (i440fx), q35, or a versioned machine type such as pc-i440fx-5.2 "
                        "or pc-q35-7.2 (default: pc, the release's newest)")
    p.add_argument("--qemu", default=None, metavar="X.Y",
                   help="the QEMU release to compare with (the QEMU kit's 5.2 and 10.0: make "
                        "qemu-kit; default: the local QEMU, emulated as the release it is)")
    p.add_argument("--root-port", action="store_true",
                   help="plug behind a pcie-root-port (q35 only)")
    p.add_argument("--all", action="store_true",
                   help="every device type x pc, q35, q35 --root-port (with the backends each needs)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--jobs", type=int, default=None,
                   help=f"QEMU processes at a time for --all (default {_default_jobs()})")
    p.add_argument("--guest", action="store_true",
                   help="boot a real Linux guest and compare it with virtio_lab.probe (needs the "
                        "guest kit: make guest-kit); with --all: the CI cases")
    p.add_argument("--queue", action="store_true",
                   help="replay the queue run (python -m virtio_lab queue SPEC) in a real QEMU over "
                        "qtest: used rings, buffers, ISR, MSI-X pending bits, queue indices, frames, disk")
    p.add_argument("--requests", type=int, default=3, metavar="N",
                   help="with --queue: how many requests (default 3)")
    p.add_argument("--fault", default=None, metavar="NAME",
                   help="with --queue: then one bad request (python -m virtio_lab queue --help lists them)")


def run_cli(args: argparse.Namespace) -> int:
    from ..errors import VirtioLabError, one_line
    from .qemu import QemuUnavailable
    prog = "virtio_lab crosscheck"
    if args.all == bool(args.spec):
        print(f"{prog}: give a SPEC or --all (not both)", file=sys.stderr)
        return 2
    if args.jobs is not None and args.jobs < 1:
        print(f"{prog}: --jobs must be at least 1", file=sys.stderr)
        return 2
    try:
        if args.spec:
            _check_input(args.spec, args.machine, args.root_port)
        where = target(args.qemu)
        if where.note:
            print(one_line(f"{prog}: note: {where.note}"), file=sys.stderr)
        if args.guest:
            return _run_guest(args)
        if args.queue:
            return _run_queue(args)
        if args.all:
            return _run_all(args)
        res = crosscheck(args.spec, args.machine, args.root_port, qemu=args.qemu)
    except (QemuUnavailable, VirtioLabError) as err:
        print(one_line(f"{prog}: {err}"), file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**res.as_dict(), "note": where.note}))
    else:
        print(format_result(res))
    return 0 if res.identical else 1


def _run_queue(args: argparse.Namespace) -> int:
    """crosscheck --queue SPEC: the queue replay in a real QEMU, step for step."""
    from ..errors import VirtioLabError
    from .queue_replay import crosscheck_queue, format_check
    if args.all or args.guest:
        raise VirtioLabError("--queue takes one SPEC (not --all or --guest)")
    _check_input(args.spec, args.machine, args.root_port)
    where = target(args.qemu)
    if where.release != "7.2":
        raise VirtioLabError(f"the device at work is modelled for QEMU 7.2 only, not {where.release} "
                             f"(give --qemu 7.2, or run a local QEMU 7.2)")
    res = crosscheck_queue(args.spec, args.machine, args.root_port, args.requests, fault=args.fault,
                           binary=where.binary)
    print(json.dumps(res.as_dict()) if args.json else format_check(res))
    return 0 if res.identical else 1


def _run_all(args: argparse.Namespace) -> int:
    cases = sweep_cases()
    t0 = time.monotonic()

    def show(res: Result) -> None:
        if not args.json:
            print(format_result(res), flush=True)
    results = crosscheck_many(cases, jobs=args.jobs, qemu=args.qemu, progress=show)
    secs = time.monotonic() - t0
    bad = [r for r in results if not r.identical]
    refused = sum(r.refused for r in results)
    where = results[0].target if results else target(args.qemu)
    if args.json:
        print(json.dumps({"cases": len(results), "identical": len(results) - len(bad),
                          "refused_by_both": refused, "seconds": round(secs, 1),
                          "qemu": where.release, "qemu_version": where.version,
                          "note": where.note, "results": [r.as_dict() for r in results]}))
    else:
        types = len({r.spec for r in results})
        print(f"crosscheck --all: {len(results) - len(bad)}/{len(results)} identical to "
              f"{where.version} emulated as {where.release} "
              f"({types} device types x pc, q35, q35rp; {refused} refused by both) "
              f"in {secs:.1f} s" + ("" if not bad else f"; {len(bad)} differ: "
                                    + ", ".join(f"{r.where} {r.spec}" for r in bad)))
    return 1 if bad else 0
