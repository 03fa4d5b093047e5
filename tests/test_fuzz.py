"""A hostile user, bounded and seeded (issue 14, acceptance 1): specs through every
subcommand, command-line options, session files, explain input and the API's public
functions, with hypothesis.

What must hold for every input: the command exits 0 (or 1 where a difference is the answer:
``diff``, ``crosscheck``) or 2; on 2 it prints exactly one printable line of at most 300
characters, never "internal error" nor a traceback; nothing hangs (each input has a time
limit). The API raises nothing but :class:`VirtioLabError`, one printable line.

``make test`` runs a few hundred inputs (derandomized: the same ones every run, well under a
minute); ``make fuzz`` runs the same properties with ``VIRTIO_LAB_FUZZ_SCALE`` times as many
fresh ones and writes the figures (inputs tried per target) to ``$VIRTIO_LAB_FUZZ_REPORT``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import string
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from conftest import time_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import virtio_lab
from virtio_lab import cli
from virtio_lab.course.session import FORMAT, VERSION, Session, loads
from virtio_lab.errors import LINE_MAX, VirtioLabError
from virtio_lab.hw.devices import supported_types
from virtio_lab.hw.spec import ALIASED, type_properties
from virtio_lab.text.lspci import hexdump

SCALE = int(os.environ.get("VIRTIO_LAB_FUZZ_SCALE", "0") or 0)  # 0: the make-test run
SETTINGS = dict(deadline=None, database=None, derandomize=not SCALE,
                suppress_health_check=list(HealthCheck))
TRIED: Counter = Counter()
TYPES = sorted(supported_types())
NET = virtio_lab.plug("virtio-net-pci")
SCRATCH = tempfile.mkdtemp(prefix="virtio_lab-fuzz-")  # the commands' working directory


def examples(n: int) -> int:
    return n * SCALE if SCALE else n


def teardown_module(module) -> None:
    shutil.rmtree(SCRATCH, ignore_errors=True)
    out = os.environ.get("VIRTIO_LAB_FUZZ_REPORT")
    if out:
        Path(out).write_text(json.dumps(dict(TRIED), indent=1) + "\n")


def run(argv: list[str], target: str, no_qemu: bool = False) -> tuple[int, str, str]:
    """``python -m virtio_lab ARGV`` in this process: (exit status, stdout, stderr);
    ``no_qemu``: as where no QEMU is installed (nothing is started)."""
    TRIED[target] += 1
    out, err = io.StringIO(), io.StringIO()
    old = os.environ.get("VIRTIO_LAB_QEMU")
    if no_qemu:
        os.environ["VIRTIO_LAB_QEMU"] = "/nonexistent/qemu-system-x86_64"
    here = os.getcwd()
    os.chdir(SCRATCH)  # what a command writes by default (report's plug.html) lands here
    try:
        with time_limit(20), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as exit_:  # argparse
                code = exit_.code
    finally:
        os.chdir(here)
        if no_qemu and old is None:
            os.environ.pop("VIRTIO_LAB_QEMU")
        elif no_qemu:
            os.environ["VIRTIO_LAB_QEMU"] = old
    return code, out.getvalue(), err.getvalue()


def check_exit(argv: list[str], code: int, out: str, err: str, ok=(0,)) -> None:
    assert code in (*ok, 2), f"exit {code} for {argv!r}: {err!r}"
    if code == 2:
        assert err.endswith("\n") and err.count("\n") == 1, f"not one line for {argv!r}: {err!r}"
        line = err[:-1]
        assert line.isprintable() and len(line) <= LINE_MAX, f"{argv!r}: {line!r}"
        assert "internal error" not in line and "Traceback" not in line, line
    else:
        assert "Traceback" not in err and "internal error" not in err, err
    assert "\x1b" not in out and "\r" not in out, f"a control character reached stdout for {argv!r}"


def run_on_file(data: bytes, command: list[str], target: str) -> None:
    """``COMMAND FILE [--json]`` on ``data`` written to a temporary file, checked."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"virtio_lab-fuzz-{os.getpid()}-{target}"
    path.write_bytes(data)
    try:
        argv = command[:1] + [str(path)] + command[1:]
        check_exit(argv, *run(argv, target))
    finally:
        path.unlink(missing_ok=True)


def check_api_error(err: VirtioLabError) -> None:
    line = str(err)
    assert "\n" not in line and line.isprintable() and len(line) <= LINE_MAX, repr(line)


# ----------------------------------------------------------------------------- specs
#: The characters that break parsers: QEMU's separators, quotes, control and bidi characters,
#: a non-UTF-8 byte as Python decodes it from argv (a lone surrogate), markup.
NASTY = ",=,, \t\r\n\x00\x1b\x7f\u202e\udcff'\"<>&;/.-_é€😀"
values = st.one_of(
    st.sampled_from(["", "on", "off", "yes", "no", "auto", "true", "0", "1", "-1", "0x10", "00.0",
                     "03.0", "1f.7", "0x", "4294967296", "18446744073709551616", "9" * 5000,
                     "1.5k", "16M", "52:54:00:12:34:56", "d0", "n0", "rp0", "pci.0", "pcie.0",
                     "/dev/null", "/etc/passwd", "efi-virtio.rom", "help", "x" * 400]),
    st.integers(-(2**70), 2**70).map(str),
    st.text(alphabet=NASTY + string.ascii_letters + string.digits, max_size=24),
)
names = st.one_of(
    st.sampled_from(TYPES + list(ALIASED) + [a[:-4] for a in ALIASED] + ["", "help", "?", "e1000",
                    "virtio-pci", "{\"driver\":\"virtio-net-pci\"}", "x" * 300, "driver=virtio-net-pci"]),
    st.text(alphabet=NASTY + "virtio-netpcblk", max_size=20),
)


@st.composite
def specs(draw) -> str:
    """A -device spec: a type (or junk), then options from the type's own QEMU properties
    and others, with values at the edges; sometimes raw text."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(alphabet=NASTY + string.printable, max_size=60))
    name = draw(names)
    props = sorted(type_properties(name)) if name in TYPES else []
    keys = st.one_of(st.sampled_from(props or ["vectors"]),
                     st.sampled_from(["id", "bus", "addr", "driver", "romfile", "failover_pair_id",
                                      "drive", "netdev", "memdev", "help", "no", "nomq", ""]),
                     st.text(alphabet=NASTY + "abcmq", max_size=8))
    parts = [name]
    for _ in range(draw(st.integers(0, 5))):
        key, value = draw(keys), draw(values)
        form = draw(st.integers(0, 5))
        parts.append(key if form == 0 else f"{key}={value.replace(',', ',,') if form < 5 else value}")
    return ",".join(parts) + draw(st.sampled_from(["", "", ",", ",,"]))


SPEC_COMMANDS = [["plug"], ["dump"], ["dump", "--json"], ["lspci"], ["lspci", "-vvv"],
                 ["lspci", "-xxxx"], ["probe"], ["probe", "--json"], ["devices"]]


@settings(max_examples=examples(120), **SETTINGS)
@given(specs(), st.sampled_from(SPEC_COMMANDS), st.sampled_from([[], ["--machine", "q35"],
                                                                  ["--machine", "q35", "--root-port"]]))
def test_specs_through_every_subcommand(spec, command, where):
    argv = command + [spec] + ([] if command == ["devices"] else where)
    check_exit(argv, *run(argv, "spec"))


@settings(max_examples=examples(30), **SETTINGS)
@given(specs(), specs())
def test_specs_through_diff_and_report(a, b):
    argv = ["diff", a, b]
    check_exit(argv, *run(argv, "spec"), ok=(0, 1))
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"virtio_lab-fuzz-{os.getpid()}.html"
    argv = ["report", a, "-o", str(out)]
    check_exit(argv, *run(argv, "spec"))
    out.unlink(missing_ok=True)


@settings(max_examples=examples(40), **SETTINGS)
@given(specs())
def test_specs_through_crosscheck_without_starting_qemu(spec):
    """With no QEMU to start (VIRTIO_LAB_QEMU names none), every spec is refused in one
    line before anything runs: the unsafe ones for what they are, the rest for the install
    hint."""
    argv = ["crosscheck", spec]
    code, out, err = run(argv, "spec", no_qemu=True)
    check_exit(argv, code, out, err)
    assert code == 2


# ----------------------------------------------------------------------------- options
tokens = st.one_of(st.sampled_from(["--machine", "--root-port", "--json", "-o", "--save", "-x",
                                    "-xxx", "-xxxx", "-v", "-vvv", "--machine-b", "--root-port-b",
                                    "--all", "--jobs", "--guest", "--help", "--version", "-", "--",
                                    "pc", "q35", "q35rp", "0", "-1", "virtio-net-pci"]),
                 st.text(alphabet=NASTY + "-abc", max_size=12))
COMMANDS = sorted(cli.COMMANDS) + ["plugg", "", "\x1b[31m"]


@settings(max_examples=examples(150), **SETTINGS)
@given(st.sampled_from(COMMANDS), st.lists(tokens, max_size=6))
def test_command_line_options(command, rest):
    if "--guest" in rest or "--all" in rest:  # would boot guests / run the QEMU sweep
        rest = [t for t in rest if t not in ("--guest", "--all")]
    if "--save" in rest or "-o" in rest:  # never let a random token name a file to write
        rest = [t for t in rest if t not in ("--save", "-o")]
    argv = [command] + rest
    code, out, err = run(argv, "options", no_qemu=True)
    if "--help" in rest or (command == "" and "--version" in rest):
        assert code in (0, 2)
        return
    check_exit(argv, code, out, err, ok=(0, 1) if command in ("diff", "crosscheck") else (0,))


# ----------------------------------------------------------------------------- sessions
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True)
    | st.text(alphabet=NASTY + "abc", max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)


@st.composite
def session_files(draw) -> bytes:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:  # deep nesting, huge numbers: the parser's own limits
        depth = draw(st.integers(1, 3000))
        return ("[" * depth + "]" * depth).encode() if draw(st.booleans()) else \
            ('{"format": "%s", "version": 1, "spec": "virtio-net-pci", "step": %s}'
             % (FORMAT, "9" * draw(st.integers(1, 6000)))).encode()
    doc = {"format": FORMAT, "version": VERSION, "spec": draw(specs()), "machine": "pc",
           "root_port": False, "step": -1, "writes": []}
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(list(doc) + ["extra", "spec", "writes", "step"]))
        if key == "writes" and draw(st.booleans()):
            doc[key] = draw(st.lists(st.fixed_dictionaries(
                {"offset": st.integers(-5, 5000), "size": st.sampled_from([1, 2, 3, 4, 8]),
                 "value": st.integers(-1, 2**33)}), max_size=4))
        else:
            doc[key] = draw(json_values)
    text = json.dumps(doc, allow_nan=True)
    if kind == 5:  # cut short, or a byte changed
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.text(alphabet=NASTY, max_size=3))
    return text.encode("utf-8", "surrogatepass")


@settings(max_examples=examples(100), **SETTINGS)
@given(session_files(), st.booleans())
def test_session_files(data, as_json):
    run_on_file(data, ["session"] + (["--json"] if as_json else []), "session")
    TRIED["session-api"] += 1
    try:
        loads(data)
    except VirtioLabError as err:
        check_api_error(err)


# ----------------------------------------------------------------------------- explain
GOOD = [hexdump(bytes(virtio_lab.plug(s, m, rp).final.config[:4096 if rp else 256]),
                "01:00.0" if rp else "00:03.0", 4 if rp else 3)
        for s, m, rp in (("virtio-net-pci", "pc", False), ("virtio-blk-pci,drive=d0", "q35", True),
                         ("virtio-rng-pci,disable-legacy=on", "q35", False))]


@st.composite
def dumps(draw) -> bytes:
    text = draw(st.sampled_from(GOOD))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.integers(0, 4))
        at = draw(st.integers(0, len(text)))
        if op == 0:
            text = text[:at]  # cut short anywhere
        elif op == 1:
            text = text[:at] + draw(st.text(alphabet=NASTY + "0123456789abcdef: \n", max_size=8)) + text[at:]
        elif op == 2:
            text = text[:at] + text[at + draw(st.integers(1, 40)):]
        elif op == 3:
            text = text[:at] + "\n" + draw(st.sampled_from(["00:04.0 Device", "00:", "ff: ff",
                                                            "0000:00:05.0 x", "$ lspci -xxx"])) + "\n" + text[at:]
        else:
            text = text + draw(st.sampled_from(GOOD))
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    return text.encode("utf-8", "surrogatepass")


@settings(max_examples=examples(120), **SETTINGS)
@given(dumps(), st.booleans())
def test_explain_input(data, as_json):
    run_on_file(data, ["explain"] + (["--json"] if as_json else []), "explain")


# ----------------------------------------------------------------------------- the API
anything = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(),
                     st.text(alphabet=NASTY + "abc", max_size=12), st.binary(max_size=8),
                     st.lists(st.integers(0, 300), max_size=3), st.just(NET), st.just(NET.final),
                     st.just(b"\0" * 256), specs(), st.sampled_from(["pc", "q35", "virtio-net-pci"]))


def _api():
    from virtio_lab.course.session import load, save
    from virtio_lab.pci.access import ConfigAccess
    from virtio_lab.text.explain import explain
    from virtio_lab.text.lspci import lspci_text
    from virtio_lab.views import (bar_map_html, chain_html, event_list_html, hex_grid_html,
                                  step_html, tree_html)
    from virtio_lab.views.report import report_html
    return {
        "plug": lambda a, b, c: virtio_lab.plug(a, b, c),
        "probe": lambda a, b, c: virtio_lab.probe(a, b, c),
        "dump": lambda a, b, c: virtio_lab.dump(a, b, c),
        "diff": lambda a, b, c: virtio_lab.diff(a, b, c),
        "lspci_text": lambda a, b, c: lspci_text("virtio-net-pci", level=b, verbose=c),
        "explain": lambda a, b, c: explain(a),
        "Session": lambda a, b, c: Session(a, b, c),
        "Session.of": lambda a, b, c: Session.of(a, b, c),
        "loads": lambda a, b, c: loads(a),
        "load": lambda a, b, c: load(a),
        "save": lambda a, b, c: save(a, "/nonexistent/dir/s.json"),
        "ConfigAccess": lambda a, b, c: ConfigAccess(a).config_read(b, c),
        "config_write": lambda a, b, c: ConfigAccess(NET.final).config_write(a, b, c),
        "state_at": lambda a, b, c: NET.state_at(a),
        "hex_grid_html": lambda a, b, c: hex_grid_html(a, b),
        "chain_html": lambda a, b, c: chain_html(a, b),
        "bar_map_html": lambda a, b, c: bar_map_html(a, b),
        "tree_html": lambda a, b, c: tree_html(a, b),
        "event_list_html": lambda a, b, c: event_list_html(a, b),
        "step_html": lambda a, b, c: step_html(a, b),
        "report_html": lambda a, b, c: report_html(a, b, c),
        "check": lambda a, b, c: _feedback(a, b),
    }


def _feedback(name, answer):
    """Exercises answer with feedback, never an exception; it quotes the answer briefly."""
    from virtio_lab.course.exercises import EXERCISES, check
    fb = check(name if isinstance(name, str) and name in EXERCISES else sorted(EXERCISES)[0], answer)
    assert str(fb).isprintable()


API = _api()


@settings(max_examples=examples(300), **SETTINGS)
@given(st.sampled_from(sorted(API)), anything, anything, anything)
def test_public_functions_raise_only_one_line_virtio_lab_errors(name, a, b, c):
    TRIED["api"] += 1
    with time_limit(20):
        try:
            API[name](a, b, c)
        except VirtioLabError as err:
            check_api_error(err)
