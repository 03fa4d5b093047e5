"""probe(): SeaBIOS + Linux 6.1 replay against real-guest captures (tests/data/guest)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from virtio_lab.live.guest import COMPARED_FIELDS
from virtio_lab.guest.probe import ProbeResult, probe, probe_json

GUEST = Path(__file__).parent / "data" / "guest"
#: more real-guest captures of cases the probe was not built from (same kit, same fields)
EXTRA = Path(__file__).parent / "data" / "guest-probe"
CASES = sorted(GUEST.glob("*.json")) + sorted(EXTRA.glob("*.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _bar_key(bars: list[dict]) -> list[tuple]:
    return [(b["index"], b["kind"], b["address"], b["size"], b["prefetchable"]) for b in bars]


@pytest.fixture(scope="module")
def results() -> dict[str, ProbeResult]:
    out = {}
    for path in CASES:
        c = _load(path)
        out[path.stem] = probe(c["device"], c["machine"], c["root_port"])
    return out


def test_every_capture_is_checked():
    assert len(list(GUEST.glob("*.json"))) >= 31  # new captures join automatically


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_probe_matches_real_guest(path, results):
    want = _load(path)
    got = results[path.stem].to_json()
    for field in COMPARED_FIELDS:
        if field == "bars":
            assert _bar_key(got["bars"]) == _bar_key(want["bars"])
        elif field == "config":
            a, b = bytes.fromhex(got["config"]), bytes.fromhex(want["config"])
            assert len(a) == len(b)
            diff = [f"0x{i:03x}: {a[i]:02x} != {b[i]:02x}" for i in range(len(a)) if a[i] != b[i]]
            assert not diff, diff[:8]
        else:
            assert got[field] == want[field], field


@pytest.mark.parametrize("path", [p for p in CASES if _load(p).get("notify")],
                         ids=lambda p: p.stem)
def test_queue0_notify_address(path, results):
    """notify address = BAR base + notify cap offset + queue_notify_off x multiplier, from the bytes."""
    want = _load(path)["notify"]
    r = results[path.stem]
    cfg = r.config
    # the first NOTIFY vendor capability in list order, read straight from the final config bytes
    pos, cap = cfg[0x34], None
    while pos:
        if cfg[pos] == 0x09 and cfg[pos + 3] == 2 and cfg[pos + 4] < 6:
            cap = pos
            break
        pos = cfg[pos + 1]
    assert cap is not None
    bar = cfg[cap + 4]
    off = int.from_bytes(cfg[cap + 8:cap + 12], "little")
    mult = int.from_bytes(cfg[cap + 16:cap + 20], "little")
    reg = int.from_bytes(cfg[0x10 + 4 * bar:0x18 + 4 * bar], "little")
    base = reg & ~0xF if not reg & 1 else reg & 0xFFFC
    if reg & 1 or (reg >> 1) & 3 != 2:
        base &= 0xFFFFFFFF
    expected = base + off + want["queue0_notify_off"] * mult
    assert expected == want["queue0_address"]
    assert r.notify["queue0_address"] == expected
    if r.linux.notify:  # the driver's own setup_vq computed the same address
        assert r.linux.notify["queue0_address"] == expected


def test_statuses_name_the_handshake(results):
    assert results["pc__virtio-net-pci"].status == 0xF  # ACK | DRIVER | FEATURES_OK | DRIVER_OK
    assert results["pc__virtio-net-pci__disable-modern-on"].status == 0x7  # legacy: no FEATURES_OK
    assert results["pc__virtio-gpu-pci"].status == 0x1  # no driver in the guest: ACKNOWLEDGE only


def test_trace_continues_the_plug(results):
    """The guest's events extend the plug's list; replaying their writes rebuilds the config."""
    r = results["q35rp__virtio-net-pci"]
    assert r.first_guest_event > 0
    assert [e.index for e in r.trace.events] == list(range(len(r.trace.events)))
    assert bytes(r.trace.state_at(-1).config[:len(r.config)]) == r.config
    fns = [e.function for e in r.guest_events]
    for step in ("pci_setup", "pci_bios_get_bar", "vp_modern_probe", "virtio_pci_find_capability",
                 "register_virtio_device", "virtio_dev_probe", "vp_find_vqs", "setup_vq",
                 "virtio_device_ready"):
        assert step in fns
    assert all(e.explanation for e in r.guest_events)


def test_status_sequence_is_ack_driver_features_ok_driver_ok(results):
    """After SeaBIOS's own use of the disk, Linux resets it and walks virtio spec 3.1.1."""
    r = results["pc__virtio-blk-pci"]
    start = next(e.index for e in r.guest_events if e.function == "register_virtio_device")
    writes = [e.detail("value") for e in r.trace.events[start:]
              if e.function == "virtio_pci_common_write" and e.detail("offset") == 0x14]
    assert writes == [0x0, 0x1, 0x3, 0xB, 0xF]
    seabios = [e.detail("value") for e in r.trace.events[r.first_guest_event:start]
               if e.function == "virtio_pci_common_write" and e.detail("offset") == 0x14]
    assert seabios[-1] & 0x4  # SeaBIOS had it at DRIVER_OK before Linux's reset


def test_probe_json_and_trace_input():
    from virtio_lab.hw.plug import plug
    t = plug("virtio-rng-pci", "q35", True)
    assert probe(t).to_json() == probe_json("virtio-rng-pci", "q35", True)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "virtio_lab", "probe", *args],
                          capture_output=True, text=True, timeout=60)


def test_cli_json_matches_capture():
    want = _load(GUEST / "q35rp__virtio-blk-pci.json")
    res = _cli("virtio-blk-pci", "--machine", "q35", "--root-port", "--json")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    for field in ("config", "rom_address", "command", "interrupt_line", "msix_enabled", "status",
                  "driver_features", "vectors_used"):
        assert got[field] == want[field], field
    assert [(b["index"], b["address"]) for b in got["bars"]] == [(b["index"], b["address"]) for b in want["bars"]]


def test_cli_narrates():
    res = _cli("virtio-net-pci")
    assert res.returncode == 0
    assert "virtio_dev_probe" in res.stdout and "DRIVER_OK" in res.stdout


@pytest.mark.parametrize("args", [("virtio-nope",), ("virtio-net-pci", "--root-port"),
                                  ("virtio-net-pci", "--machine", "isapc"),
                                  ("virtio-blk-pci,num-queues=0",), ("virtio-net-pci,addr=1",),
                                  ("virtio-net-pci,addr=5", "--machine", "q35", "--root-port")])
def test_cli_bad_input_one_line_exit_2(args):
    res = _cli(*args)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_firmware_places_the_other_functions_like_seabios(path, results):
    """The board's own BARs (IDE, AHCI, SMBus, root port) land where the real guest saw them."""
    want = _load(path)["other_functions"]
    placed = {(e.owner, e.bar): e.address for e in results[path.stem].placement.others if e.bar >= 0}
    assert placed
    for (bdf, bar), addr in placed.items():
        real = {b["index"]: b["address"] for b in want[f"0000:{bdf}"]["bars"]}
        assert real.get(bar) == addr, (bdf, bar)


@pytest.mark.parametrize("path", [p for p in CASES if p.stem.startswith("q35rp")], ids=lambda p: p.stem)
def test_root_port_windows(path, results):
    """SeaBIOS's memory and prefetchable windows on the root port (bridge base/limit registers)."""
    cfg = bytes.fromhex(_load(path)["other_functions"]["0000:00:02.0"]["config"])
    word = lambda o: int.from_bytes(cfg[o:o + 2], "little")  # noqa: E731
    real = {1: ((word(0x20) & 0xFFF0) << 16, ((word(0x22) & 0xFFF0) << 16) | 0xFFFFF),
            2: ((word(0x24) & 0xFFF0) << 16, ((word(0x26) & 0xFFF0) << 16) | 0xFFFFF)}
    windows = {e.type: (e.address, e.address + e.size - 1)
               for e in results[path.stem].placement.others if e.bar == -1 and e.size}
    if 0 in windows:  # an IO BAR behind the port: SeaBIOS opens an IO window (else Linux picks one)
        real[0] = ((cfg[0x1C] & 0xF0) << 8 | word(0x30) << 16, (cfg[0x1D] & 0xF0) << 8 | 0xFFF | word(0x32) << 16)
    assert windows == real


def test_html_without_heavy_imports():
    code = ("import sys, virtio_lab; from virtio_lab.views.probeview import probe_html; "
            "r = virtio_lab.probe('virtio-rng-pci'); h = probe_html(r); "
            "assert 'ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK' in h and '<table>' in h; "
            "print(sorted(m for m in ('pandas', 'matplotlib', 'ipywidgets') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_firmware_moves_64bit_bars_above_4g_when_32bit_space_runs_out():
    """pci_bios_map_devices: if the 32-bit window cannot hold everything, the 64-bit BARs go
    above 4 GiB (1 GiB aligned, RAM ends below 4 GiB here) and the rest is placed again."""
    from virtio_lab.guest.firmware import MEM, PREFMEM, Entry, Placement, _insert, _map
    from virtio_lab.hw.guest_access import GuestDevice
    from virtio_lab.hw.plug import plug
    dev = GuestDevice(plug("virtio-rng-pci"), record=False)
    lists = {0: ([], [], []), 1: ([], [], [])}
    big = Entry("00:05.0", 0, 4 << 30, 4 << 30, PREFMEM, True)  # a 4 GiB 64-bit prefetchable BAR
    small = Entry("00:06.0", 1, 0x1000, 0x1000, MEM, False)
    for e in (big, small):
        _insert(lists[0][e.type], e)
    place = Placement()
    _map(dev, lists, 0x80000000, place, root_port=False)
    assert place.mem64
    assert big.address == 1 << 32
    assert small.address == 0xFEC00000 - 0x1000  # alone in the 32-bit window, right below the IOAPIC
