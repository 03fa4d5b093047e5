"""Sessions saved as versioned JSON come back as the same screen; bad files fail in one line."""

import json
import pickle

import pytest

from virtio_lab.errors import VirtioLabError
from virtio_lab.hw.plug import plug
from virtio_lab.course.session import FORMAT, VERSION, Session, dumps, load, loads, save


def test_round_trip_through_a_file(tmp_path):
    s = (Session("virtio-blk-pci,drive=d0,disable-legacy=on", "q35", True, 7)
         .with_write(0x04, 2, 0x0007).with_write(0x10, 4, 0xFFFFFFFF))
    path = save(s, tmp_path / "lab.json")
    back = load(path)
    assert back == s
    assert back.trace().state_at(7).config == plug(s.spec, "q35", True).state_at(7).config


def test_file_is_plain_json_not_pickle(tmp_path):
    path = save(Session("virtio-net-pci", step=3), tmp_path / "s.json")
    raw = path.read_bytes()
    data = json.loads(raw)
    assert data["format"] == FORMAT and data["version"] == VERSION
    assert not raw.startswith(b"\x80")  # a pickle protocol >= 2 header
    with pytest.raises(VirtioLabError, match="not UTF-8|not valid JSON"):
        loads(pickle.dumps(data))


def test_guest_writes_replay_through_qemus_write_rule():
    # real QEMU 7.2: all ones into BAR1 (4 KiB memory BAR) reads back its size mask,
    # and vendor id is read-only
    s = Session("virtio-net-pci").with_write(0x14, 4, 0xFFFFFFFF).with_write(0x00, 2, 0x1234)
    acc = loads(dumps(s)).access()
    assert acc.config_read(0x14, 4) == 0xFFFFF000
    assert acc.config_read(0x00, 2) == 0x1AF4


def test_session_of_a_trace():
    t = plug("virtio-net-pci", "q35")
    s = Session.of(t, 5)
    assert (s.spec, s.machine, s.root_port, s.step) == ("virtio-net-pci", "q35", False, 5)
    assert s.state().config == t.state_at(5).config


def _doc(**over):
    d = {"format": FORMAT, "version": VERSION, "spec": "virtio-net-pci", "machine": "pc",
         "root_port": False, "step": -1, "writes": []}
    d.update(over)
    return json.dumps(d)


@pytest.mark.parametrize("text, words", [
    (_doc(version=VERSION + 1), "newer than this virtio_lab reads"),
    (_doc(version=VERSION - 1), "older than this virtio_lab reads"),
    (_doc(version="1"), "no valid \"version\""),
    (_doc(format="jupyter"), "not a virtio_lab session"),
    (_doc()[:-9], "not valid JSON"),
    ("", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (_doc(spec=""), "non-empty -device string"),
    (_doc(spec="virtio-nett-pci"), "is not a valid device model name"),
    (_doc(spec="virtio-net-pci,vectors=abc"), "Parameter 'vectors' expects integer"),
    (_doc(machine="i440fx"), "\"machine\" must be \"pc\" or \"q35\""),
    (_doc(root_port=True), "needs \"machine\": \"q35\""),
    (_doc(root_port="yes"), "must be true or false"),
    (_doc(step=10_000), "outside this trace's steps"),
    (_doc(step=1.5), "\"step\" must be an integer"),
    (_doc(writes={"offset": 4}), "must be a list"),
    (_doc(writes=[{"offset": 4, "size": 3, "value": 1}]), "size must be 1, 2 or 4"),
    (_doc(writes=[{"offset": 3, "size": 2, "value": 1}]), "crosses a 4-byte boundary"),
    (_doc(writes=[{"offset": 4, "size": 1, "value": 256}]), "does not fit in 1 byte"),
    (_doc(writes=[{"offset": 0x100, "size": 4, "value": 0}]), "past the device's 256-byte"),
    (_doc(writes=[{"offset": 4, "size": 2}]), "exactly offset, size and value"),
    (_doc(extra=1), "unknown field 'extra'"),
    ('{"format": "virtio_lab-session", "version": NaN}', "NaN"),
])
def test_bad_files_fail_in_one_line(text, words):
    with pytest.raises(VirtioLabError) as err:
        loads(text)
    msg = str(err.value)
    assert words in msg
    assert "\n" not in msg


def test_unreadable_path(tmp_path):
    with pytest.raises(VirtioLabError, match="cannot read session file"):
        load(tmp_path / "missing.json")


def test_sessions_built_in_python_are_checked_too():
    with pytest.raises(VirtioLabError, match="machine"):
        Session("virtio-net-pci", machine="pc-q35")
    with pytest.raises(VirtioLabError, match="offset"):
        Session("virtio-net-pci").with_write(-4, 4, 0)


def _cli(*args):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "virtio_lab", *args], capture_output=True,
                          text=True)


def test_cli_saves_and_opens_a_session(tmp_path):
    path = tmp_path / "s.json"
    r = _cli("plug", "virtio-net-pci", "--machine", "q35", "--save", str(path))
    assert r.returncode == 0, r.stderr
    assert load(path) == Session("virtio-net-pci", "q35", False, -1)
    path.write_text(dumps(load(path).with_write(0x04, 2, 0x0007)))
    r = _cli("session", str(path))
    assert r.returncode == 0, r.stderr
    # command register 0x0007 after the guest write; vendor/device 1af4:1000 (real QEMU)
    assert "00: f4 1a 00 10 07 00 10 00" in r.stdout


def test_cli_refuses_a_newer_session_in_one_line(tmp_path):
    path = tmp_path / "new.json"
    path.write_text(_doc(version=VERSION + 1))
    r = _cli("session", str(path))
    assert r.returncode == 2
    assert r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "upgrade virtio_lab" in r.stderr
