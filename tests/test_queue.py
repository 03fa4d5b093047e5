"""The device at work against a real QEMU 7.2: virtqueues, notifications, interrupts.

tests/data/queue/ holds real-QEMU runs of the queue replay (captured by capture.py there:
qemu-system-x86_64 over qtest with a halting BIOS, -seed 1, QMP): every read's value and the
state after each request. Each test here runs the same case in the emulation and compares
with the capture, byte for byte; the live tests (CI) run fresh ones. The rest are invariants
and hand-computed values from the virtio spec and Linux's headers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import needs_qemu
from virtio_lab.errors import VirtioLabError
from virtio_lab.guest.hands import FAULTS, Hands, fault
from virtio_lab.guest.queue import queue
from virtio_lab.guest.virtio_ring import vring_layout, vring_size
from virtio_lab.hw.guest_random import GuestRandom
from virtio_lab.hw.qtest import Op
from virtio_lab.hw.virtqueue import split_layout, vring_need_event
from virtio_lab.live.queue_replay import Observed, compare, crosscheck_queue, ops_digest

DATA = Path(__file__).parent / "data" / "queue"
CAPTURES = sorted(DATA.glob("*.json"))


def _run(case: dict):
    run = queue(case["spec"], case["machine"], case["root_port"], case["requests"])
    if case.get("fault"):
        fault(run, case["fault"])
    return run


@pytest.mark.parametrize("path", CAPTURES, ids=[p.stem for p in CAPTURES])
def test_queue_matches_real_qemu(path):
    case = json.loads(path.read_text())
    run = _run(case)
    doc = run.to_json()
    # the comparison means something only if the driver still makes the same accesses:
    # when the guest side changes, re-capture (python tests/data/queue/capture.py)
    assert len(doc["driver_ops"]) == case["driver_ops"]
    assert ops_digest(doc) == case["ops_sha256"]
    obs = Observed(reads=case["reads"], after=case["after"], stderr=case["stderr"],
                   timeouts=case["timeouts"])
    assert compare(doc, obs) == []
    if run.disk is not None:  # the sectors QEMU's writes changed, byte for byte
        changed = {str(s): bytes(run.disk[s * 512:(s + 1) * 512]).hex() for s in range(len(run.disk) // 512)
                   if run.disk[s * 512:(s + 1) * 512] != run.initial[s * 512:(s + 1) * 512]}
        assert changed == case["disk_sectors"]


def test_the_captures_cover_each_device_machine_and_fault():
    ids = {p.stem for p in CAPTURES}
    for dev in ("rng", "blk", "net"):
        for m in ("pc", "q35", "q35rp"):
            assert f"{dev}-{m}" in ids and f"{dev}-legacy-{m}" in ids and f"{dev}-intx-{m}" in ids
        for f in FAULTS:
            assert f"{dev}-fault-{f}-pc" in ids
    errors = {e for p in CAPTURES for e in json.loads(p.read_text())["stderr"].splitlines()}
    assert any("Looped descriptor" in e for e in errors)  # the captures saw QEMU's texts
    assert any("Desc next is" in e for e in errors)


def test_captured_rng_bytes_are_qemus_seeded_stream():
    case = json.loads((DATA / "rng-pc.json").read_text())
    buf = next(r for r in case["after"][0]["ram"] if len(r["hex"]) == 128)
    assert bytes.fromhex(buf["hex"]) == GuestRandom(1).getrandom(64)


@needs_qemu
@pytest.mark.parametrize("spec,machine,rp,f", [
    ("virtio-rng-pci", "pc", False, None),
    ("virtio-blk-pci,disable-modern=on", "pc", False, None),
    ("virtio-net-pci,netdev=n0,vectors=0", "q35", True, None),
    ("virtio-blk-pci", "q35", True, "loop"),
    ("virtio-net-pci,netdev=n0", "pc", False, "before-driver-ok"),
])
def test_live_crosscheck(spec, machine, rp, f):
    res = crosscheck_queue(spec, machine, rp, 4, fault=f)
    assert res.differences == []


# ----------------------------------------------------------------------------- invariants
def test_vring_need_event_as_the_spec_defines_it():
    # virtio 1.2 §2.7.10: notify when new_idx has passed event_idx since old
    assert vring_need_event(0, 1, 0)
    assert not vring_need_event(5, 5, 4)       # event 5 not yet passed (new is 5)
    assert vring_need_event(5, 6, 4)
    assert vring_need_event(0xFFFF, 0, 0xFFFE)  # across the 16-bit wrap
    assert not vring_need_event(10, 3, 2)


def test_ring_layouts_from_the_headers():
    # include/uapi/linux/virtio_ring.h vring_size: 16*256 + 2*(3+256) = 4614 -> 8192, + 6 + 8*256
    assert vring_size(256, 4096) == 10246
    assert vring_size(8, 64) == 192 + 6 + 64  # 128 + 2*(3+8) = 150 -> 192
    assert vring_layout(0x1000, 8, 64) == (0x1080, 0x10C0)
    # QEMU's legacy layout counts no used_event: avail 4 + 2*num, then the 4096 boundary
    assert split_layout(0x10000, 256, 4096) == (0x11000, 0x12000)


def test_rng_ring_wraps_after_eight():
    run = queue("virtio-rng-pci", requests=20)
    assert [r.posted.detail.get("bytes") is not None for r in run.requests] == [True] * 20
    vq = run.vqs[0]
    assert vq.num == 8 and vq.last_used_idx == 20 and vq.avail_idx_shadow == 20
    ram = run.ram
    assert ram.read_int(vq.used + 2, 2) == 20
    assert ram.read_int(vq.avail + 4 + 2 * (19 % 8), 2) == run.requests[-1].head


def test_blk_reads_the_image_and_writes_it():
    run = queue("virtio-blk-pci", requests=3)
    read, write, again = run.requests
    assert (read.used_len, write.used_len, again.used_len) == (513, 1, 513)
    assert bytes.fromhex(read.posted.detail["data"]) == bytes(i % 251 for i in range(512, 1024))
    assert bytes.fromhex(again.posted.detail["data"]).startswith(b"virtio_lab wrote sector 1\n")
    assert read.posted.detail["status"] == 0


def test_net_frame_reaches_the_peer_without_its_header():
    run = queue("virtio-net-pci,netdev=n0", requests=2)
    frames = run.frames
    assert len(frames) == 2 and frames[0][:6] == b"\xff" * 6 and frames[0][12:14] == b"\x08\x06"
    assert len(frames[0]) == 42  # the 12-byte virtio_net_hdr stayed behind
    assert [r.used_len for r in run.requests] == [0, 0]


def test_the_replay_answers_what_the_linux_run_saw():
    """Replaying driver_ops on a fresh device leaves the device-written bytes the Linux-driven
    run left (the convention's different history changes none of them)."""
    for spec in ("virtio-rng-pci", "virtio-blk-pci", "virtio-net-pci,netdev=n0,vectors=0"):
        run = queue(spec, requests=3)
        doc = run.to_json()
        last = doc["requests"][-1]["after"]
        for r in last["ram"]:
            assert run.ram.read(r["addr"], len(r["hex"]) // 2).hex() == r["hex"]


def test_every_queue_citation_is_a_function_of_that_file():
    from test_citations import missing
    cites = {}
    for spec in ("virtio-rng-pci", "virtio-blk-pci", "virtio-net-pci,netdev=n0",
                 "virtio-net-pci,netdev=n0,tx=timer,disable-modern=on,vectors=0"):
        run = queue(spec, requests=3)
        for f in ("loop", "before-driver-ok"):
            fault(run, f)
        for e in run.trace.events:
            if e.source != "(you)":  # the learner's own steps cite nothing
                cites.setdefault((e.source, e.function), f"{spec} event {e.index}")
    assert missing(cites) == []


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call,text", [
    (lambda: queue("virtio-rng-pci", requests=-1), "requests is a whole number"),
    (lambda: queue("virtio-balloon-pci"), "models virtio-rng, virtio-blk and virtio-net"),
    (lambda: queue(42), "a -device spec"),
    (lambda: queue("virtio-blk-pci", disk=b"x" * 100), "whole number of 512-byte sectors"),
    (lambda: queue("virtio-rng-pci", machine="isapc"), "machine"),
    (lambda: queue("virtio-rng-pci", seed=-1), "seed"),
    (lambda: fault(queue("virtio-rng-pci"), "nope"), "no fault 'nope'"),
    (lambda: fault(queue("virtio-rng-pci,disable-modern=on"), "queue-enable-value"), "modern device"),
    (lambda: Hands(queue("virtio-rng-pci")).desc(0, -1, 4), "addr is an integer"),
    (lambda: queue("virtio-rng-pci").post("3"), "whole number"),
    (lambda: Op.from_json({"op": "mmio_write", "addr": 1, "size": 3, "value": 0}), "size"),
    (lambda: Op.from_json({"op": "bogus"}), "op"),
])
def test_bad_input_is_one_line(call, text):
    with pytest.raises(VirtioLabError) as err:
        call()
    assert text in str(err.value) and "\n" not in str(err.value)


def test_a_buffer_in_unmodelled_memory_is_one_line():
    run = queue("virtio-rng-pci", requests=1)
    h = Hands(run)
    with h.request("vga window"):
        h.desc(1, 0xA0000, 64, 2)
        h.publish(1)
        with pytest.raises(VirtioLabError) as err:
            h.kick()
            if run.device.unmodelled:
                raise VirtioLabError(run.device.unmodelled)
    assert "0xa0000" in str(err.value) and "does not model" in str(err.value)


def test_cli_queue_json_and_bad_input():
    out = subprocess.run([sys.executable, "-m", "virtio_lab", "queue", "virtio-blk-pci", "--requests", "2",
                          "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["bars"] and doc["driver_ops"] and len(doc["requests"]) == 2
    assert all(Op.from_json(o) for o in doc["driver_ops"])
    bad = subprocess.run([sys.executable, "-m", "virtio_lab", "queue", "virtio-rng-pci", "--requests", "x"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- views
def test_ram_at_replays_every_store_the_run_made():
    """RAM rebuilt from the trace's writes alone equals the run's RAM: no store goes unrecorded."""
    from virtio_lab.views.ring import ram_at
    for spec in ("virtio-rng-pci", "virtio-blk-pci,disable-modern=on", "virtio-net-pci,netdev=n0,vectors=0"):
        run = queue(spec, requests=12)
        fault(run, "outside-ram")
        last = len(run.trace.events) - 1
        forward = ram_at(run, last, forward=True)
        for page in set(run.ram.pages) | set(forward.pages):
            assert forward.read(page * 4096, 4096) == run.ram.read(page * 4096, 4096), (spec, hex(page))
        mid = last - 30  # undoing the later writes from the end gives the same as replaying up to it
        assert ram_at(run, mid).read(run.vqs[0].avail, 64) == ram_at(run, mid, forward=True).read(run.vqs[0].avail, 64)


def test_ring_view_outlines_the_steps_writes():
    import re
    from virtio_lab.views.ring import interrupt_path_html, memory_map_html, ring_html
    run = queue("virtio-rng-pci", requests=2)
    r = run.requests[1]
    ev = next(e for e in run.trace.events[r.first_event:] if e.detail("avail_idx") == 2)
    page = ring_html(run, ev.index)
    # the cell of avail->idx is the one written: outlined (vl-w) and its hover says what it is
    cells = re.findall(r'<td class="([^"]*)" title="([^"]*)">([^<]*)</td>', page)
    written = [(t, v) for c, t, v in cells if "vl-w" in c]
    assert written == [(f"avail-&gt;idx at 0x{run.vqs[0].avail + 2:x}: the next slot is 2 mod 8 = 2", "2")]
    used = re.search(r'data-used-hex="([0-9a-f]+)"', page).group(1)
    assert bytes.fromhex(used)[2:4] == (1).to_bytes(2, "little")  # the device has used one so far
    assert "vl-ringview" in page and "0x2a00000" in page
    assert "request 2" in memory_map_html(run, ev.index)
    assert "MSI-X message" in interrupt_path_html(run, 2) and "vring_interrupt" in interrupt_path_html(run)
    with pytest.raises(VirtioLabError):
        ring_html(run, 10 ** 6)
    with pytest.raises(VirtioLabError):
        interrupt_path_html(run, 9)


def test_ring_explorer_posts_and_resizes():
    pytest.importorskip("ipywidgets")
    from virtio_lab.widgets import RingExplorer
    ex = RingExplorer("virtio-blk-pci,queue-size=4", requests=3)
    last = ex.slider.max
    assert ex.step == last and ex.next_button.disabled and 'data-step="%d"' % last in ex.ring.value
    ex.post_button.click()
    assert len(ex.run.requests) == 4 and ex.slider.max > last and ex.step == ex.slider.max
    assert ex.run.ram.read_int(ex.run.vqs[0].used + 2, 2) == 4
    ex.prev_button.click()
    assert ex.step == ex.slider.max - 1
    ex.size.value = 8
    assert ex.run.vqs[0].num == 8 and len(ex.run.requests) == 4 and "8 entries" in ex.ring.value
    assert RingExplorer("virtio-rng-pci").size.disabled  # virtio-rng's queue is fixed at 8
