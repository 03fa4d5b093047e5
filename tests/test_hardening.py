"""Issue 14's failures, one test each: no lost file, bounded reads that never block, user
text escaped in every message (and, with a real QEMU, no option smuggled onto its command
line: tests/test_crosscheck.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from virtio_lab import cli
from virtio_lab.course.session import Session, load, loads, save
from virtio_lab.errors import LINE_MAX, VirtioLabError, VirtioLabTypeError, one_line, shown
from virtio_lab.files import MAX_INPUT, read_input, write_atomic
from virtio_lab.views.report import write_report

ROOT = Path(__file__).resolve().parent.parent
OLD = b"<!-- the report from yesterday -->\n" * 100


def _cli(argv, capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


# -- item 2: a failed write leaves the old file as it was ------------------------------
def test_a_failing_report_leaves_the_old_file_byte_identical(tmp_path, capsys):
    """The issue's case: ``report -o FILE`` of ``id=\\xff`` (QEMU refuses that id before
    anything is plugged) leaves the report already there as it was."""
    out = tmp_path / "plug.html"
    out.write_bytes(OLD)
    code, _, err = _cli(["report", "virtio-net-pci,id=\udcff", "-o", str(out)], capsys)
    assert code == 2 and "Parameter 'id' expects an identifier" in err
    assert out.read_bytes() == OLD
    assert os.listdir(tmp_path) == ["plug.html"]


def test_a_write_failing_half_way_keeps_the_old_file(tmp_path, monkeypatch):
    """The disk fills after a few bytes of the new report: the old one survives, whole, and
    no temporary file is left behind."""
    out = tmp_path / "plug.html"
    out.write_bytes(OLD)
    real_write = os.write
    calls = []

    def full_disk(fd, data):
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real_write(fd, bytes(data[:100]))

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(VirtioLabError, match="cannot write the report to .*No space left on device"):
        write_report("virtio-net-pci", out)
    monkeypatch.undo()
    assert len(calls) == 2
    assert out.read_bytes() == OLD
    assert os.listdir(tmp_path) == ["plug.html"]


def test_a_failing_session_save_keeps_the_old_session(tmp_path, monkeypatch):
    path = tmp_path / "lab.json"
    save(Session("virtio-net-pci", step=3), path)
    before = path.read_bytes()
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    with pytest.raises(VirtioLabError, match="cannot write the session to .*Input/output error"):
        save(Session("virtio-blk-pci,drive=d0"), path)
    monkeypatch.undo()
    assert path.read_bytes() == before and load(path).step == 3
    assert os.listdir(tmp_path) == ["lab.json"]


def test_atomic_write_keeps_the_mode_and_writes_through_links_and_streams(tmp_path):
    target = tmp_path / "kept.html"
    target.write_bytes(OLD)
    os.chmod(target, 0o640)
    link = tmp_path / "link.html"
    link.symlink_to(target)
    write_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert (target.stat().st_mode & 0o777) == 0o640
    write_atomic(os.devnull, b"into the void")  # a device is written, never replaced
    assert Path(os.devnull).is_char_device()
    with pytest.raises(VirtioLabError, match="it is a directory"):
        write_atomic(tmp_path, b"x")
    with pytest.raises(VirtioLabTypeError, match="not int"):
        write_atomic(1, b"x")


# -- item 3: bounded reads that never block -------------------------------------------
def _fifo(tmp_path: Path) -> Path:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return fifo


@pytest.mark.parametrize("command", ["explain", "session"])
@pytest.mark.parametrize("source", ["/dev/zero", "fifo"])
def test_dev_zero_and_a_fifo_are_refused_within_a_second(command, source, tmp_path, capsys):
    path = str(_fifo(tmp_path)) if source == "fifo" else source
    t0 = time.monotonic()
    code, _, err = _cli([command, path], capsys)
    assert time.monotonic() - t0 < 1.0
    assert code == 2
    kind = "a FIFO (named pipe)" if source == "fifo" else "a character device"
    assert f"it is {kind}, not a regular file" in err and err.count("\n") == 1


def test_a_fifo_without_writer_does_not_hang_a_real_process(tmp_path):
    fifo = _fifo(tmp_path)
    r = subprocess.run([sys.executable, "-m", "virtio_lab", "explain", str(fifo)],
                       capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert r.returncode == 2 and "FIFO" in r.stderr


def test_input_over_the_limit_is_refused_by_its_size(tmp_path):
    big = tmp_path / "vm.txt"
    with open(big, "wb") as f:  # sparse: 100 MiB that costs nothing to make
        f.truncate(100 << 20)
    t0 = time.monotonic()
    with pytest.raises(VirtioLabError, match=r"'.*vm.txt' is 100.0 MiB; at most 16.0 MiB is read"):
        read_input(big, MAX_INPUT, "explain input")
    with pytest.raises(VirtioLabError, match=r"session file '.*vm.txt' is 100.0 MiB; at most 1.0 MiB"):
        load(big)
    assert time.monotonic() - t0 < 1.0


def test_stdin_is_read_up_to_the_limit():
    r = subprocess.run([sys.executable, "-m", "virtio_lab", "explain", "-"], stdin=open("/dev/zero", "rb"),
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr == "virtio_lab explain: explain input on stdin holds more than 16.0 MiB; at most 16.0 MiB is read\n"


@pytest.mark.parametrize("path, expect", [
    ("", "no file name given"),
    ("/", "it is a directory, not a regular file"),
    ("no/such/file.json", "No such file or directory"),
    ("a\0b", "contains a NUL byte"),
    ("x" * 5000, "File name too long"),
])
def test_session_paths_that_are_no_file(path, expect):
    with pytest.raises(VirtioLabError, match=expect):
        load(path)


@pytest.mark.parametrize("value", [None, b"x", 1, 2.5])
def test_session_load_of_a_wrong_type(value):
    if isinstance(value, bytes):  # a bytes path is a path (os.fsdecode), and this one is missing
        with pytest.raises(VirtioLabError, match="No such file"):
            load(value)
        return
    with pytest.raises(VirtioLabTypeError, match=f"not {type(value).__name__}"):
        load(value)


# -- item 4: control characters escaped, long values shortened ------------------------
def test_shown_escapes_and_shortens():
    assert shown("virtio-net-pci") == "'virtio-net-pci'"
    assert shown("a\rb\x1b[31mc\x7f\u202ed\udcff\n") == "'a\\rb\\x1b[31mc\\x7f\\u202ed\\xff\\n'"
    long = shown("x" * 1_000_000)
    assert len(long) == 62 and long.endswith("…'")
    assert shown("ab\x00", quote='"') == '"ab\\x00"'
    nested: list = []
    for _ in range(5000):
        nested = [nested]
    assert shown(nested, '"') == "[[[…]]]"
    assert shown(10 ** 5000) == "<a number of 5001 digits>"
    assert len(one_line("x\n" * 10_000)) == LINE_MAX


@pytest.mark.parametrize("argv", [
    ["plug", "virtio-net-pci,mac=\x1b]0;owned\x07\r"],
    ["dump", "virtio-net-pci,\x1b[2J=1"],
    ["lspci", "\x1b[31mvirtio-net-pci"],
    ["plug", "virtio-net-pci,mac=" + "a" * 100_000],
    ["diff", "virtio-net-pci,mac=\r\x1b[1A", "virtio-net-pci"],
    ["plugg\x1b[31m"],
])
def test_error_lines_show_control_characters_escaped(argv, capsys):
    code, out, err = _cli(argv, capsys)
    assert code == 2 and out == ""
    line = err.rstrip("\n")
    assert "\n" not in line and len(line) <= LINE_MAX
    assert line.isprintable(), repr(line)
    if "\x1b" in "".join(argv):
        assert "\\x1b" in line


def test_session_messages_show_file_values_escaped():
    with pytest.raises(VirtioLabError) as err:
        loads('{"format": "virtio_lab-session", "version": 1, "spec": "virtio-net-pci", '
              '"machine": "pc\\u001b[31m' + "x" * 1000 + '"}')
    assert str(err.value) == ('session "machine" must be "pc" or "q35", not '
                              '"pc\\x1b[31m' + "x" * 29 + '…"')  # 40 characters in all


def test_a_value_the_output_echoes_reaches_the_terminal_escaped(capsys):
    """plug's narration quotes a ROM file name the user typed: its ESC and BEL arrive as
    text, and a non-UTF-8 byte from the command line as \\xff, not an encoding error."""
    code, out, err = _cli(["plug", "virtio-net-pci,rombar=0,romfile=\x1b]0;owned\x07\udcff"], capsys)
    assert code == 0 and err == ""
    assert "rombar=0: \\x1b]0;owned\\x07\\xff is handed to the firmware" in out
    assert "\x1b" not in out and "\x07" not in out


@pytest.mark.parametrize("call, expect", [
    (lambda: __import__("virtio_lab").text.lspci.lspci_text("virtio-net-pci", verbose=" "),
     "verbose is 0 to 3"),
    (lambda: __import__("virtio_lab").text.lspci.lspci_text("virtio-net-pci", level=[3]),
     "a hex dump level is 1, 3 or 4"),
    (lambda: save("not a session", "x.json"), "save() takes a Session"),
    (lambda: Session.of("virtio-net-pci"), "Session.of() takes a trace"),
    (lambda: __import__("virtio_lab.pci.access").pci.access.ConfigAccess("x"),
     "ConfigAccess takes a plugged device's state"),
    (lambda: __import__("virtio_lab.views.events").views.events.EventLog("x"),
     "EventLog shows a trace"),
    (lambda: load(None), "a file name is a str or a Path, not NoneType"),
    (lambda: loads(1), "a session is JSON text"),
])
def test_wrong_types_are_type_errors_with_one_line(call, expect):
    """Item 6: the API's entry points check their arguments (a TypeError subclass of the
    package's error, so ``except TypeError`` and ``except VirtioLabError`` both work)."""
    with pytest.raises(VirtioLabTypeError) as err:
        call()
    assert isinstance(err.value, TypeError) and expect in str(err.value)
    assert "\n" not in str(err.value)


def test_stdin_that_cannot_be_read_is_one_line(monkeypatch, capsys):
    """Found by make fuzz: ``explain -`` where stdin raises (closed, or none at all)."""
    class Broken:
        class buffer:
            @staticmethod
            def read(n):
                raise OSError(5, "Input/output error")

    for stdin in (Broken(), None):
        monkeypatch.setattr("sys.stdin", stdin)
        code, _, err = _cli(["explain", "-"], capsys)
        assert code == 2 and err.startswith("virtio_lab explain: cannot read explain input on stdin")
