"""Bad input, row by row: the API raises VirtioLabError with one line that says what to do;
``python -m virtio_lab`` prints that line on stderr, exits 2, and never a traceback.

Device refusals come from the real-QEMU corpus (tests/data/qemu-7.2-local): the
expected text is QEMU 7.2's own message as captured, not ours pasted back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from virtio_lab import cli
from virtio_lab.pci.access import ConfigAccess
from virtio_lab.errors import VirtioLabError
from virtio_lab.course.exercises import check
from virtio_lab.text.explain import explain
from virtio_lab.text.lspci import lspci_text
from virtio_lab.hw.machine import Machine
from virtio_lab.hw.plug import plug
from virtio_lab.course.session import FORMAT, Session, loads
from virtio_lab.views import chain_html, hex_grid_html, step_html
from virtio_lab.views.crosscheck import crosscheck_html

NET = plug("virtio-net-pci")


def _guest():
    """A device as a real guest left it (probe(): SeaBIOS and Linux have driven it)."""
    from virtio_lab.guest.probe import probe
    return probe("virtio-net-pci").device
DATA = Path(__file__).parent / "data"  # (not from conftest: tests/browser has a conftest too)


@dataclass(frozen=True)
class Bad:
    """One bad input: how the API meets it, how the CLI meets it, words the line must hold."""

    id: str
    expect: str
    api: Callable[[], Any] | None = None
    cli: tuple[str, ...] | None = None
    files: tuple[tuple[str, bytes], ...] = ()  # written to tmp_path before the CLI runs


# -- QEMU's own refusals, as captured from qemu-system-x86_64 7.2 ----------------------
def _qemu_message(error: str) -> str:
    """The line QEMU printed for the device: after '-device SPEC,addr=..: '; warnings dropped."""
    lines = [ln for ln in error.splitlines() if ": -device " in ln and "warning:" not in ln]
    return lines[0].split(": -device ", 1)[1].split(": ", 1)[1] if lines else ""


def _refusals() -> list[Bad]:
    rows, seen = [], set()
    for path in sorted((DATA / "qemu-7.2-local").glob("*.json")):
        case = json.loads(path.read_text())
        msg = _qemu_message(case.get("error", ""))
        if not msg or msg in seen:
            continue
        seen.add(msg)
        spec, machine, rp = case["device"], case["machine"], case.get("root_port", False)
        argv = ("plug", spec, "--machine", machine) + (("--root-port",) if rp else ())
        rows.append(Bad(f"qemu:{case['id']}", msg, lambda s=spec, m=machine, r=rp: plug(s, m, r), argv))
    return rows


def _release_refusals() -> list[Bad]:
    """Each release's own refusals of a machine type it does not offer and of a property it
    does not have (tests/data/qemu-release-refusals.json, captured from Debian's 5.2, 7.2 and
    10.0): the first line QEMU printed, after its location prefix."""
    rows = []
    doc = json.loads((DATA / "qemu-release-refusals.json").read_text())
    for i, case in enumerate(doc["cases"]):
        rel, args = case["qemu"], case["args"]
        report = next(ln for ln in case["stderr"].splitlines() if ln.startswith("qemu-system-x86_64: "))
        msg = report[len("qemu-system-x86_64: "):]
        if "-device" in args:
            spec = args[args.index("-device") + 1]
            msg = msg.split(f"-device {spec}: ", 1)[1]
            rows.append(Bad(f"release:{rel}:{spec}", msg, lambda s=spec, q=rel: plug(s, qemu=q),
                            ("dump", spec, "--qemu", rel)))
        else:
            machine = args[args.index("-M") + 1]
            rows.append(Bad(f"release:{rel}:-M {machine}", msg,
                            lambda m=machine, q=rel: plug("virtio-net-pci", m, qemu=q),
                            ("plug", "virtio-net-pci", "--machine", machine, "--qemu", rel)))
    return rows


QEMU_ROWS = _refusals() + _release_refusals()

# -- everything else a learner can type ---------------------------------------------
_TRUNCATED = (b"00:03.0 Ethernet controller: Red Hat, Inc. Virtio network device\n00: f4 1a 00 10\n"
              b"10: 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n")  # a short line mid-dump
_NO_HEX = b"00:03.0 Ethernet controller: Red Hat, Inc. Virtio network device\n\n"
_NEWER = json.dumps({"format": FORMAT, "version": 99, "spec": "virtio-net-pci"}).encode()
_NOT_SESSION = b'{"cells": [], "nbformat": 4}'

OTHER_ROWS = [
    # device specs
    Bad("spec:empty", "empty device spec", lambda: plug(""), ("plug", "")),
    Bad("spec:not-a-string", "a device spec is a string", lambda: plug(123)),
    Bad("spec:nul-byte", "is not a valid device model name", lambda: plug("virtio-net-pci\x00"),
        ("plug", "virtio-net-pci\x01")),
    Bad("spec:path", "is not a valid device model name", lambda: plug("../../etc/passwd"),
        ("dump", "../../etc/passwd")),
    Bad("spec:not-virtio", "is not a valid device model name", lambda: plug("e1000"), ("lspci", "e1000")),
    Bad("option:uint32-overflow", "Parameter 'vectors' expects uint32_t",
        lambda: plug("virtio-net-pci,vectors=4294967296"), ("plug", "virtio-net-pci,vectors=4294967296")),
    Bad("option:uint16-negative", "Parameter 'rx_queue_size' expects uint16_t",
        lambda: plug("virtio-net-pci,rx_queue_size=-1")),
    Bad("option:size-word", "Parameter 'block-size' expects size",
        lambda: plug("virtio-mem-pci,memdev=mem0,block-size=lots"),
        ("plug", "virtio-mem-pci,memdev=mem0,block-size=lots")),
    Bad("option:html-mac", "doesn't take value '<script>alert(1)</script>'",
        lambda: plug("virtio-net-pci,mac=<script>alert(1)</script>"),
        ("lspci", "virtio-net-pci,mac=<script>alert(1)</script>")),
    Bad("option:empty-name", "Property 'virtio-net-pci.' not found", lambda: plug("virtio-net-pci,=on")),
    # machines
    Bad("machine:unknown", "unsupported machine type (--machine i440fx: QEMU 7.2 offers pc, q35",
        lambda: plug("virtio-net-pci", "i440fx"), ("plug", "virtio-net-pci", "--machine", "i440fx")),
    Bad("machine:older-than-modelled", "machine type pc-q35-4.2 is older than virtio_lab models: "
        "choose pc-q35-5.2 or newer", lambda: plug("virtio-net-pci", "pc-q35-4.2"),
        ("dump", "virtio-net-pci", "--machine", "pc-q35-4.2", "--json")),
    Bad("machine:type-root-port-on-pc", "a pcie-root-port needs a PCI Express machine",
        lambda: plug("virtio-net-pci", "pc-i440fx-7.2", True),
        ("lspci", "virtio-net-pci", "--machine", "pc-i440fx-7.2", "--root-port")),
    Bad("release:unknown", "unknown QEMU release '6.0': virtio_lab models 5.2, 7.2, 10.0",
        lambda: plug("virtio-net-pci", qemu="6.0"), ("probe", "virtio-net-pci", "--qemu", "6.0")),
    Bad("release:unknown-report", "unknown QEMU release '10'", None,
        ("report", "virtio-net-pci", "--qemu", "10", "-o", "{tmp}/r.html")),
    Bad("release:machine-mismatch", "qemu=10.0 but the Machine is QEMU 7.2's",
        lambda: plug("virtio-net-pci", Machine("q35"), qemu="10.0")),
    Bad("release:devices", "unknown QEMU release 'latest'", None, ("devices", "--qemu", "latest")),
    Bad("release:machines", "unsupported machine type", None,
        ("machines", "pc-q35-8.2", "--qemu", "7.2")),
    Bad("diff:nothing-to-compare", "diff needs something to compare with", None,
        ("diff", "virtio-net-pci")),
    Bad("diff:against-unknown-release", "unknown QEMU release '11.0'", None,
        ("diff", "virtio-net-pci", "--against-qemu", "11.0")),
    Bad("diff:against-too-new-machine", 'unsupported machine type: "pc-q35-10.1"', None,
        ("diff", "virtio-net-pci", "--qemu", "10.0", "--against-machine", "pc-q35-10.1")),
    Bad("machine:root-port-on-pc", "a pcie-root-port needs a PCI Express machine",
        lambda: plug("virtio-net-pci", "pc", True), ("dump", "virtio-net-pci", "--root-port")),
    Bad("machine:root-port-not-bool", "root_port is True or False", lambda: Machine("q35", "yes")),
    Bad("machine:diff-b", "unsupported machine type (--machine q36", None,
        ("diff", "virtio-net-pci", "virtio-blk-pci,drive=d0", "--machine-b", "q36")),
    # steps
    Bad("step:past-end", "step 65 is outside 0..64", lambda: NET.state_at(65)),
    Bad("step:text", "a step is an event index (an integer), not str", lambda: NET.state_at("3")),
    Bad("step:view-past-end", "step 99 is outside 0..64", lambda: hex_grid_html(NET, 99)),
    Bad("step:view-text", "not str", lambda: chain_html(NET, "x")),
    Bad("step:view-before-start", "step -66 is outside", lambda: step_html(NET, -66)),
    Bad("step:index-of", "no step calls nothing_here", lambda: NET.index_of("nothing_here")),
    # views
    Bad("view:radix", "radix must be one of hex, dec, bin", lambda: hex_grid_html(NET, radix="oct")),
    Bad("view:short-bytes", "config space is 64 to 4096 bytes", lambda: hex_grid_html(bytes(10))),
    Bad("view:wrong-object", "a view shows a trace", lambda: chain_html("virtio-net-pci")),
    Bad("view:select-text-offsets", "select offsets are integers", lambda: hex_grid_html(NET, select=["0x10"])),
    Bad("view:select-float", "select names a capability offset", lambda: hex_grid_html(NET, select=0.5)),
    Bad("view:crosscheck-spec", "not str", lambda: crosscheck_html("virtio-net-pci")),
    Bad("view:crosscheck-no-device", "not a dict without 'device'", lambda: crosscheck_html({"config": "00"})),
    # guest config accesses
    Bad("access:size-3", "1, 2 or 4 bytes", lambda: ConfigAccess(NET.final).config_read(0, 3)),
    Bad("access:negative-offset", "non-negative offset", lambda: ConfigAccess(NET.final).config_write(-4, 0, 4)),
    Bad("access:text-value", "stores an integer, not str", lambda: ConfigAccess(NET.final).config_write(4, "7", 2)),
    # a probed device (ProbeResult.device: GuestDevice)
    Bad("guest:config-text-value", "a config write stores an integer, not str", lambda: _guest().config_write(4, "7", 2)),
    Bad("guest:bar-float-value", "a BAR write stores an integer, not float", lambda: _guest().bar_write(4, 0, 1.0, 4)),
    Bad("guest:common-unknown", "no common-configuration register 'nope': one of device_feature_select",
        lambda: _guest().common_read("nope")),
    Bad("guest:mem-text-address", "a guest-physical address is a non-negative integer, not 'x'",
        lambda: _guest().mem_read("x", 4)),
    Bad("guest:io-text-value", "an IO write stores an integer, not str", lambda: _guest().io_write(0xC000, "v", 1)),
    # lspci dumps for explain
    Bad("explain:empty", "empty input", lambda: explain(""), ("explain", "{tmp}/empty.txt"),
        (("empty.txt", b""),)),
    Bad("explain:binary", "binary data", lambda: explain(b"\x7fELF\x02\x01"), ("explain", "{tmp}/a.out"),
        (("a.out", b"\x7fELF\x02\x01\x01\x00"),)),
    Bad("explain:prose", "no device found", lambda: explain("hello, lspci\n"), ("explain", "{tmp}/p.txt"),
        (("p.txt", b"hello, lspci\n"),)),
    Bad("explain:truncated", "line 2: 4 bytes at 0x00; lspci prints 16 per line", lambda: explain(_TRUNCATED), ("explain", "{tmp}/t.txt"),
        (("t.txt", _TRUNCATED),)),
    Bad("explain:no-hex", "has no hex dump lines", lambda: explain(_NO_HEX)),
    Bad("explain:missing-file", "cannot read", None, ("explain", "{tmp}/nope.txt")),
    Bad("lspci:level", "use 1 (-x), 3 (-xxx) or 4 (-xxxx)", lambda: lspci_text("virtio-net-pci", "pc", False, 7)),
    # sessions
    Bad("session:newer", "newer than this virtio_lab reads", lambda: loads(_NEWER), ("session", "{tmp}/new.json"),
        (("new.json", _NEWER),)),
    Bad("session:corrupt", "not valid JSON", lambda: loads(b'{"format": "virtio_lab-ses'),
        ("session", "{tmp}/c.json"), (("c.json", b'{"format": "virtio_lab-ses'),)),
    Bad("session:notebook", "not a virtio_lab session", lambda: loads(_NOT_SESSION),
        ("session", "{tmp}/nb.json"), (("nb.json", _NOT_SESSION),)),
    Bad("session:missing-file", "cannot read session file", None, ("session", "{tmp}/none.json")),
    Bad("session:bad-step", "\"step\" must be an integer", lambda: Session("virtio-net-pci", step="end")),
    Bad("session:refused-spec", "Parameter 'mq' expects 'on' or 'off'",
        lambda: Session("virtio-net-pci,mq=2").validate()),
    Bad("report:unwritable", "cannot write the report to", None,
        ("report", "virtio-net-pci", "-o", "{tmp}/no/such/dir/r.html")),
    # the command line itself
    Bad("cli:unknown-command", "invalid choice: 'plugg'", None, ("plugg", "virtio-net-pci")),
    Bad("cli:missing-spec", "the following arguments are required: spec", None, ("plug",)),
    Bad("cli:unknown-flag", "unrecognized arguments: --fast", None, ("dump", "virtio-net-pci", "--fast")),
]

ROWS = QEMU_ROWS + OTHER_ROWS


def test_the_table_is_big_enough():
    assert len(QEMU_ROWS) >= 15  # distinct QEMU messages in the corpus
    assert len(ROWS) >= 40


def _one_line(text: str) -> str:
    assert "\n" not in text.rstrip("\n"), f"more than one line: {text!r}"
    return text


@pytest.mark.parametrize("row", [r for r in ROWS if r.api], ids=lambda r: r.id)
def test_api_raises_one_line(row):
    with pytest.raises(VirtioLabError) as err:
        row.api()
    msg = _one_line(str(err.value))
    assert row.expect in msg


def _run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("row", [r for r in ROWS if r.cli], ids=lambda r: r.id)
def test_cli_exits_2_with_one_line(row, tmp_path, capsys):
    for name, data in row.files:
        (tmp_path / name).write_bytes(data)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in row.cli]
    code, out, err = _run_cli(argv, capsys)
    assert code == 2
    assert "Traceback" not in out + err
    line = _one_line(err)
    assert line.startswith("virtio_lab")
    assert row.expect in line


@pytest.mark.parametrize("row", [r for r in OTHER_ROWS if r.cli][::6], ids=lambda r: r.id)
def test_cli_in_a_real_process(row, tmp_path):
    """A sample of the CLI rows through ``python -m virtio_lab`` itself."""
    for name, data in row.files:
        (tmp_path / name).write_bytes(data)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in row.cli]
    r = subprocess.run([sys.executable, "-m", "virtio_lab", *argv], capture_output=True, text=True,
                       cwd=Path(__file__).parent.parent)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert row.expect in _one_line(r.stderr)


# -- exercises answer with feedback, never an exception ------------------------------
def _raises(config):
    raise ZeroDivisionError("oops")


@pytest.mark.parametrize("name, answer, expect", [
    ("no-such-exercise", 1, "there is no exercise 'no-such-exercise'"),
    ("cap-chain-offsets", "0x98, 0x84", "expected a list of offsets"),
    ("cap-chain-offsets", [0x98, "x"], "'x' is not a number"),
    ("cap-chain-offsets", None, "no answer yet"),
    ("walk-caps", _raises, "ZeroDivisionError"),
])
def test_exercise_answers_get_one_line_of_feedback(name, answer, expect):
    fb = check(name, answer)
    assert not fb
    assert expect in _one_line(str(fb))


# -- widget inputs -------------------------------------------------------------------
def test_widget_inputs_raise_one_line():
    pytest.importorskip("ipywidgets")
    from virtio_lab.widgets import PlugExplorer, WhatIf
    cases = [
        (lambda: PlugExplorer("virtio-net-pci", step="3"), "not str"),
        (lambda: PlugExplorer("virtio-nett-pci"), "is not a valid device model name"),
        (lambda: PlugExplorer("virtio-net-pci", machine="pc-i440fx-11.0"), "unsupported machine type"),
        (lambda: WhatIf("virtio-nett-pci"), "is not a valid device model name"),
        (lambda: WhatIf(machine="Q35"), "--machine Q35: QEMU 7.2 offers"),
        (lambda: WhatIf(spec=None), "a device spec is a string"),
    ]
    ex = PlugExplorer("virtio-net-pci")
    cases += [(lambda: ex.go(2.5), "not float"), (lambda: ex.run_to("no_such_function"), "no step calls")]
    for make, expect in cases:
        with pytest.raises(VirtioLabError) as err:
            make()
        assert expect in _one_line(str(err.value))
    ex.go(10_000)  # ◀ ▶ past either end clamp, as the buttons do
    assert ex.step == len(ex.trace.events) - 1
