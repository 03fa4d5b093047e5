"""Live cross-check: the emulation against the locally installed QEMU 7.2.

Needs ``qemu-system-x86_64`` (CI installs Debian's qemu-system-x86); elsewhere the
real-QEMU tests skip with the reason.  Against real QEMU:

* every device type x pc, q35, q35 behind a root port, with the backend ids each
  needs — all identical;
* random option combinations drawn with hypothesis from each type's own QEMU
  property list (a strategy per property type, with values at the edges; up to six
  options, so several bad values at once check QEMU's order), real vs emulated
  identical, refusals included (QEMU's error text).  Derandomized, so CI draws the
  same cases every run; the number tried is printed and recorded;
* with the guest kit (``make guest-kit``), a real Linux 6.1 guest for the common
  devices against ``virtio_lab.probe``.

Without QEMU: the comparison's wording, the notebook view, the command line's
one-line errors (how to install QEMU, how to build the guest kit).

A difference lists every failing spec with the fields that differ and is also
appended to ``$VIRTIO_LAB_FINDINGS`` (default: a file in pytest's tmp dir).
"""
from __future__ import annotations

import json
import os
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA, NO_QEMU, needs_qemu
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from virtio_lab.live import qemu
from virtio_lab.live.crosscheck import (
    GUEST_CASES,
    MACHINES,
    GuestResult,
    Result,
    compare_guest,
    crosscheck,
    crosscheck_guest_many,
    crosscheck_many,
    format_guest_result,
    describe,
    format_result,
    sweep_cases,
    with_backend,
)
from virtio_lab.text.compare import refusal
from virtio_lab.hw.devices import supported_types
from virtio_lab.text.dump import dump
from virtio_lab.live.guest_kit import KitError, load_kit
from virtio_lab.hw.spec import type_properties
from virtio_lab.views.crosscheck import CrossCheckView, crosscheck_html

ROOT = Path(__file__).resolve().parent.parent


def _report(results: list[Result], tmp_dir: Path | None = None) -> str:
    bad = [r for r in results if not r.identical]
    text = "\n".join(format_result(r) + f"\n    machine={r.machine} root_port={r.root_port}"
                     for r in bad)
    if bad:
        out = os.environ.get("VIRTIO_LAB_FINDINGS") or (str(tmp_dir / "crosscheck_findings.txt")
                                                         if tmp_dir else None)
        if out:
            with open(out, "a") as fh:
                fh.write(text + "\n")
    return text


# --------------------------------------------------------------------------
# without QEMU: the comparison itself and the command line

def _case(name, folder="qemu-7.2-local"):
    """A stored real capture: a real-QEMU case, or with ``folder="guest"`` a real guest's."""
    return json.loads((DATA / folder / f"{name}.json").read_text())


def test_describe_names_capability_and_register():
    real = _case("q35rp__virtio-net-pci__ats-on+aer-on")
    emu = json.loads(json.dumps(real))
    cfg = bytearray.fromhex(emu["config"])
    caps = {c["id"]: c["offset"] for c in real["caps"]}
    exp = caps[0x10]
    cfg[exp + 0x10] ^= 0x40                   # PCI Express link control
    emu["config"] = cfg.hex()
    ext = bytearray.fromhex(emu["config_ext"])
    first_ext = real["ext_caps"][0]["offset"]
    ext[first_ext + 4] ^= 0x01                # a byte inside the first extended capability
    emu["config_ext"] = ext.hex()
    emu["common_cfg"]["num_queues"] += 1
    lines = describe(real, emu)
    assert any(f"config 0x{exp + 0x10:03x} PCI Express cap @0x{exp:02x}.lnkctl" in l for l in lines), lines
    assert any(l.startswith(f"config_ext 0x{first_ext + 4:03x}") for l in lines), lines
    assert any("num_queues" in l for l in lines), lines
    assert describe(real, real) == []


def test_describe_groups_bytes_of_one_field():
    real = _case("pc__virtio-net-pci")
    emu = json.loads(json.dumps(real))
    cfg = bytearray.fromhex(emu["config"])
    cfg[0x2C] ^= 0xFF
    cfg[0x2D] ^= 0xFF
    emu["config"] = cfg.hex()
    assert describe(real, emu) == [
        f"config 0x02c-0x02d header.subsystem_vendor_id: emulated {cfg[0x2C]:02x} {cfg[0x2D]:02x}, "
        f"real {cfg[0x2C] ^ 0xFF:02x} {cfg[0x2D] ^ 0xFF:02x}"]


def test_describe_names_device_config_fields():
    """Device-config bytes are named after the virtio spec's layout (virtio-net: mac, status)."""
    real = _case("pc__virtio-net-pci")
    want = bytes.fromhex(real["device_cfg"])
    emu = json.loads(json.dumps(real))
    dev = bytearray(want)
    dev[3:7] = b"\xaa\xbb\xcc\x00"        # the last three MAC bytes and the link status
    emu["device_cfg"] = dev[:-2].hex()      # and two bytes short
    assert describe(real, emu) == [
        f"device config +0x03-0x05 mac: emulated aa bb cc, real {want[3:6].hex(' ')}",
        f"device config +0x06 status: emulated 00, real {want[6]:02x}",
        f"device config: emulated {len(want) - 2} bytes, real {len(want)}"]


def test_describe_refusals():
    refused = _case("pc__virtio-net-pci__vectors-abc")
    ok = _case("pc__virtio-net-pci")
    assert describe(refused, {"error": "Parameter 'vectors' expects integer"}) == []
    assert describe(refused, {"error": "something else"})[0].startswith("refusal text differs")
    assert describe(refused, ok)[0].startswith("real QEMU refuses")
    assert describe(ok, {"error": "no"})[0].startswith("the emulation refuses")


def test_a_warning_before_the_refusal_is_not_the_refusal():
    # real QEMU 7.2's stderr: warn_report, error_printf's continuation, then the error
    real = {"error": "qemu exited: qemu-system-x86_64: -device virtio-net-pci,tx=nope,"
            "iommu_platform=on,disable-modern=on,addr=03.0: warning: virtio-net: Unknown option "
            "tx=nope, valid options: \"timer\" \"bh\"\nDefaulting to \"bh\"qemu-system-x86_64: "
            "-device virtio-net-pci,tx=nope,iommu_platform=on,disable-modern=on,addr=03.0: "
            "VIRTIO_F_IOMMU_PLATFORM was supported by neither legacy nor transitional device"}
    assert refusal(real["error"]) == ("VIRTIO_F_IOMMU_PLATFORM was supported by neither legacy "
                                      "nor transitional device")
    emulated = dump("virtio-net-pci,tx=nope,iommu_platform=on,disable-modern=on")
    assert describe(real, emulated) == []
    assert describe(real, {"error": "Unknown option tx=nope"})[0].startswith("refusal text differs")


def test_sweep_cases_cover_every_type_and_machine():
    cases = sweep_cases()
    types = supported_types()
    assert len(cases) == 3 * len(types)
    assert ("virtio-blk-pci,drive=d0", "q35", True) in cases
    assert ("virtio-9p-pci-transitional,fsdev=fs0,mount_tag=share", "pc", False) in cases
    assert with_backend("virtio-pmem-pci", "memaddr=0") == "virtio-pmem-pci,memdev=mem0,memaddr=0"


def _cli(*args, env=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "virtio_lab", "crosscheck", *args],
                          capture_output=True, text=True, cwd=ROOT, env=e, timeout=600)


@pytest.mark.parametrize("args", [[], ["virtio-net-pci", "--all"], ["virtio-net-pci", "--machine", "isapc"],
                                  ["virtio-net-pci", "--root-port"]])
def test_cli_bad_input_exits_2(args):
    r = _cli(*args)
    assert r.returncode == 2, r
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_cli_without_qemu_says_how_to_install():
    r = _cli("virtio-net-pci", env={"VIRTIO_LAB_QEMU": "/nonexistent/qemu-system-x86_64"})
    assert r.returncode == 2
    assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1
    assert "apt-get install qemu-system-x86" in r.stderr


@pytest.mark.parametrize("args", [["virtio-net-pci"], ["--all"], ["virtio-net-pci", "--guest"],
                                  ["--guest", "--all"]])
def test_cli_without_qemu_on_the_path_one_line(args):
    r = _cli(*args, env={"PATH": "/nonexistent", "VIRTIO_LAB_QEMU": ""})
    assert r.returncode == 2 and r.stdout == "", r
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert "apt-get install qemu-system-x86" in r.stderr


@pytest.mark.parametrize("args", [["virtio-blk-pci", "--guest"], ["--guest", "--all"]])
def test_cli_guest_without_kit_says_make_guest_kit(args):
    r = _cli(*args, env={"VIRTIO_LAB_GUEST_KIT": "/nonexistent/guest-kit"})
    assert r.returncode == 2 and r.stdout == "", r
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert ("apt-get install qemu-system-x86" if NO_QEMU else "make guest-kit") in r.stderr


def test_guest_cases_are_the_ci_set():
    want = {(f"virtio-{d}-pci", "pc", False) for d in ("net", "blk", "scsi", "rng", "balloon", "serial")}
    want |= {("virtio-net-pci", "q35", False), ("virtio-net-pci", "q35", True)}
    assert set(GUEST_CASES) == want


# --------------------------------------------------------------------------
# comparing with a real guest: the comparison itself, on a stored real capture

def test_compare_guest_names_each_field():
    real = _case("q35rp__virtio-net-pci", "guest")
    assert compare_guest(real, real) == []
    emu = json.loads(json.dumps(real))
    cfg = bytearray.fromhex(emu["config"])
    cfg[0x04] ^= 0x04                                      # bus master off
    emu["config"] = cfg.hex()
    emu["bars"][-1]["address"] += 0x100000
    emu["status"] = 0x0B                                   # FEATURES_OK without DRIVER_OK
    del emu["vectors_used"]
    lines = compare_guest(real, emu)
    assert lines[0] == (f"config 0x004 header.command: emulated {cfg[4]:02x}, real {cfg[4] ^ 0x04:02x}")
    assert any(line.startswith("bars (index, address): emulated") for line in lines), lines
    assert f"status: emulated 11, real {real['status']}" in lines
    assert any(line.startswith("vectors_used: the emulated guest does not give it") for line in lines)
    assert len(lines) == 4


# --------------------------------------------------------------------------
# the notebook view

def test_view_side_by_side_highlights_the_differing_byte():
    real = _case("q35rp__virtio-net-pci__ats-on+aer-on")
    emu = json.loads(json.dumps(real))
    cfg = bytearray.fromhex(emu["config"])
    cfg[0x04] ^= 0x02
    emu["config"] = cfg.hex()
    page = crosscheck_html(real, emu)
    assert "1 difference</b>" in page
    assert page.count("<td class='vl-xd'") == 2            # the byte, on each side
    assert "0x004 header.command: emulated" in page          # hover text names the field
    assert f">{cfg[4]:02x}</td>" in page and f">{cfg[4] ^ 0x02:02x}</td>" in page
    assert CrossCheckView(real, emu)._repr_html_() == page


def test_view_identical_runs_the_emulation_for_a_stored_case():
    page = crosscheck_html(_case("pc__virtio-net-pci"))
    assert "<b>identical</b>" in page and "<td class='vl-xd'" not in page


def test_view_of_a_guest_result():
    real = _case("q35rp__virtio-net-pci", "guest")
    emu = json.loads(json.dumps(real))
    cfg = bytearray.fromhex(emu["config"])
    cfg[0x3C] ^= 0x01                                       # interrupt line
    emu["config"] = cfg.hex()
    emu["status"] = 0x0B
    res = GuestResult("virtio-net-pci", "q35", True, real, emu, compare_guest(real, emu))
    page = CrossCheckView(res)._repr_html_()
    assert "2 differences</b> (virtio_lab.probe vs a real Linux 6.1 guest)" in page
    assert ">virtio_lab.probe</th>" in page and ">real guest</th>" in page
    assert page.count("<td class='vl-xd'") == 2                # the interrupt line byte
    assert page.count("<td class='mono vl-xd'>") == 2          # the status row, both sides
    assert "<td class='mono vl-xd'>0x0b</td>" in page


def test_view_escapes_specs_and_refusals():
    real = {"device": "virtio-9p-pci,mount_tag=<b>&x", "machine": "pc",
            "error": "mount tag '<b>&x' is odd"}
    page = crosscheck_html(real, {"error": "<script>alert(1)</script>"})
    assert "<b>&x" not in page and "<script>" not in page
    assert "&lt;b&gt;&amp;x" in page and "&lt;script&gt;" in page
    assert "refusal text differs" in page


# --------------------------------------------------------------------------
# against real QEMU

@needs_qemu
def test_cli_single_identical_and_json():
    r = _cli("virtio-net-pci", "--machine", "q35", "--root-port")
    assert r.returncode == 0 and r.stdout.strip().endswith("identical"), r
    r = _cli("virtio-net-pci,vectors=abc", "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["identical"] and out["refused"]


@needs_qemu
def test_view_of_a_live_result():
    res = crosscheck("virtio-blk-pci,drive=d0,disable-legacy=on", "q35")
    assert res.identical, res.diffs
    page = CrossCheckView(res)._repr_html_()
    assert "<b>identical</b>" in page and "real QEMU" in page


@needs_qemu
def test_sweep_every_type_and_machine_identical(tmp_path, record_property):
    t0 = time.monotonic()
    results = crosscheck_many(sweep_cases())
    secs = time.monotonic() - t0
    record_property("sweep_cases", len(results))
    record_property("sweep_seconds", round(secs, 1))
    print(f"\ncrosscheck sweep: {sum(r.identical for r in results)}/{len(results)} identical in {secs:.1f} s")
    assert _report(results, tmp_path) == ""
    assert secs < 600


# --------------------------------------------------------------------------
# against a real Linux guest

def _guest_unavailable() -> str:
    if NO_QEMU:
        return NO_QEMU
    try:
        load_kit()
    except KitError:
        return "the guest kit is not built (make guest-kit)"
    return ""


needs_guest = pytest.mark.skipif(bool(_guest_unavailable()), reason=_guest_unavailable() or "-")


@needs_guest
def test_guest_cases_identical_to_a_real_linux_guest(record_property):
    t0 = time.monotonic()
    results = crosscheck_guest_many(GUEST_CASES, jobs=2)
    secs = time.monotonic() - t0
    record_property("guest_cases", len(results))
    record_property("guest_seconds", round(secs, 1))
    print(f"\ncrosscheck --guest: {sum(r.identical for r in results)}/{len(results)} identical "
          f"in {secs:.1f} s")
    bad = [format_guest_result(r) for r in results if not r.identical]
    assert not bad, "\n".join(bad)
    assert all(r.guest["status"] & 0x04 for r in results)  # the drivers really bound: DRIVER_OK


# --------------------------------------------------------------------------
# random option combinations (hypothesis)

#: combinations per drawn batch, and batches: BATCH * EXAMPLES combinations in all.
#: VIRTIO_LAB_RANDOM_BATCHES=N draws more; VIRTIO_LAB_RANDOM_EXPLORE=1 draws new cases
#: each run instead of CI's fixed ones (to hunt for differences locally).
BATCH = 40
EXAMPLES = int(os.environ.get("VIRTIO_LAB_RANDOM_BATCHES", "8"))
EXPLORE = bool(os.environ.get("VIRTIO_LAB_RANDOM_EXPLORE"))
#: options per combination, at most (several bad values at once test QEMU's order of checks)
MAX_OPTIONS = int(os.environ.get("VIRTIO_LAB_RANDOM_MAX_OPTIONS", "6"))

#: properties not drawn: placement, backend links and host files (the sweep passes the
#: backend ids each model needs), read-only children
NOT_DRAWN = {"addr", "virtio-backend", "drive", "netdev", "fsdev", "cryptodev", "memdev",
             "iothread", "rng", "primary-bus", "failover_pair_id", "display", "guest-stats",
             "chardev"}

#: the transport and device options drawn more often than the rest
FOCUS = ["vectors", "page-per-vq", "modern-pio-notify", "disable-legacy", "disable-modern",
         "ats", "aer", "x-disable-pcie", "x-pcie-flr-init", "x-pcie-pm-init",
         "x-pcie-lnkctl-init", "x-pcie-deverr-init", "x-pcie-extcap-init", "x-pcie-lnksta-dllla",
         "queue-size", "num-queues", "num_queues", "virtqueue_size", "rx_queue_size",
         "tx_queue_size", "mq", "host_mtu", "speed", "duplex", "mac", "serial", "mount_tag",
         "iommu_platform", "packed", "event_idx", "indirect_desc", "rombar", "max_ports",
         "max_outputs", "class", "multifunction"]

EDGE_U16 = [0, 1, 2, 3, 4, 8, 64, 100, 127, 128, 255, 256, 257, 512, 1023, 1024, 1025, 2048,
            4096, 32768, 65535, 65536]
EDGE_U32 = [0, 1, 2, 3, 255, 256, 4096, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32]
EDGE_I32 = [-2**31 - 1, -2**31, -2, -1, 0, 1, 10, 100, 1000, 10000, 2**31 - 1, 2**31]
EDGE_U64 = [0, 1, 1024, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64]
SIZES = ["0", "512", "513", "1024", "4096", "4k", "8192", "65536", "64k", "1M", "2M", "4M",
         "3M", "256M", "1G", "4294967295", "4294967296"]
TEXT = string.ascii_letters + string.digits + "-_.:/@+="


def _ints(edges, lo, hi):
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def _mac():
    octets = st.lists(st.integers(0, 255), min_size=6, max_size=6)
    good = octets.map(lambda o: ":".join(f"{x:02x}" for x in o))
    upper = octets.map(lambda o: ":".join(f"{x:02X}" for x in o))
    return st.one_of(good, good, upper, st.sampled_from(
        ["52:54:00:12:34:56", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "01:00:5e:00:00:01",
         "52:54:00:12:34", "52-54-00-12-34-56", "zz:zz:zz:zz:zz:zz", "52:54:00:12:34:567"]))


def _text(max_size):
    return st.text(alphabet=TEXT, min_size=0, max_size=max_size)


BY_NAME = {
    "vectors": _ints([0, 1, 2, 3, 4, 5, 8, 9, 10, 31, 32, 33, 63, 64, 65, 300, 2047, 2048, 2049,
                      65535, 65536, 65537, 69999, 70000], 0, 70000),
    "num-queues": _ints([0, 1, 2, 3, 4, 8, 16, 63, 64, 1024, 1025, 65535], 0, 2000),
    "num_queues": _ints([0, 1, 2, 3, 4, 8, 16, 63, 64, 1024, 1025, 65535, 2**32 - 1], 0, 2000),
    "queue-size": _ints([0, 2, 3, 4, 64, 100, 128, 256, 512, 1024, 1025, 2048, 4096, 65535, 65536],
                        0, 70000),
    "rx_queue_size": st.sampled_from([0, 64, 100, 128, 256, 512, 1000, 1024, 2048, 4096]),
    "tx_queue_size": st.sampled_from([0, 64, 100, 128, 256, 512, 1000, 1024, 2048]),
    "virtqueue_size": _ints([0, 1, 2, 3, 4, 128, 256, 512, 1024, 1025, 4096], 0, 5000),
    "host_mtu": _ints([0, 1, 67, 68, 576, 1500, 9000, 65535, 65536], 0, 70000),
    "speed": st.sampled_from(EDGE_I32 + [25000, 100000]),
    "duplex": st.sampled_from(["full", "half", "sideways", ""]),
    "mac": _mac(),
    "serial": _text(30),
    "mount_tag": st.one_of(_text(40), st.sampled_from(["", "a" * 31, "a" * 32, "a" * 255, "b" * 300])),
    "class": st.sampled_from([0, 0x0100, 0x0180, 0x0200, 0x0280, 0x0300, 0x0780, 0x0880,
                              0xff00, 0x123456, 2**32 - 1]),
    "max_ports": _ints([0, 1, 2, 30, 31, 32, 33, 510, 511, 512, 1000], 0, 1100),
    "max_outputs": st.integers(0, 20),
    "xres": st.sampled_from([0, 1, 640, 1024, 1280, 4096, 65535]),
    "yres": st.sampled_from([0, 1, 480, 768, 800, 4096, 65535]),
    "rombar": st.sampled_from([0, 1, 2]),
    "romfile": st.just(""),
    "romsize": st.sampled_from([0, 1, 3, 4096, 65536, 262144, 2**32 - 1]),
    "acpi-index": st.sampled_from([0, 1, 2]),
    "bootindex": st.sampled_from([-1, 0, 1, 7]),
    "max-bytes": st.sampled_from(EDGE_U64),
    "period": st.sampled_from([0, 1, 1000, 65536, 2**32 - 1]),
    "memaddr": st.sampled_from([0, 0x123, 0x200000, 0x140000000, 0x140200000, 0x220000000,
                                0x220200000, 2**64 - 1]),
    "node": st.sampled_from([0, 1]),
    "tx": st.sampled_from(["timer", "bh", "nope"]),
    "guest-stats-polling-interval": st.sampled_from([-1, 0, 1, 2, 2**31 - 1, 2**32]),
    "len-reserved-regions": st.sampled_from([0, 1, 2]),
    "head": st.sampled_from([0, 1, 5]),
    "logical_block_size": st.sampled_from(["0", "512", "513", "1024", "4096", "4k", "2M", "4M"]),
    "physical_block_size": st.sampled_from(["0", "512", "1024", "4096", "64k", "2M", "4M"]),
    "block-size": st.sampled_from(["0", "512k", "1M", "2M", "3M", "4M", "1G"]),
    "requested-size": st.sampled_from(["0", "3M", "256M", "1G", "2G"]),
    "size": st.sampled_from(["1G"]),
    "max_hostmem": st.sampled_from(["0", "1M", "256M", "1G"]),
}

BY_TYPE = {
    "bool": st.one_of(st.sampled_from(["on", "off"]), st.sampled_from(["on", "off"]),
                      st.sampled_from(["true", "false", "yes", "no", "maybe"])),
    "OnOffAuto": st.sampled_from(["on", "off", "auto"]),
    "BlockdevOnError": st.sampled_from(["report", "ignore", "enospc", "stop", "auto"]),
    "uint8": _ints([0, 1, 255, 256], 0, 256),
    "uint16": _ints(EDGE_U16, 0, 65536),
    "uint32": _ints(EDGE_U32, 0, 2**32 - 1),
    "uint64": st.sampled_from(EDGE_U64),
    "int32": st.sampled_from(EDGE_I32),
    "int": st.sampled_from(EDGE_I32),
    "size": st.sampled_from(SIZES),
    "str": _text(20),
}

TYPES = sorted(supported_types())


def _drawable(type_name):
    props = type_properties(type_name)
    return sorted(n for n, p in props.items()
                  if n not in NOT_DRAWN and not p.type.startswith(("child<", "link<"))
                  and (n in BY_NAME or p.type in BY_TYPE))


DRAWABLE = {t: _drawable(t) for t in TYPES}


def _value(type_name, prop):
    p = type_properties(type_name)[prop]
    return (BY_NAME[prop] if prop in BY_NAME else BY_TYPE[p.type]).map(str)


@st.composite
def combination(draw):
    """(spec, machine, root_port): one type, 1 to MAX_OPTIONS of its options with drawn values."""
    t = draw(st.sampled_from(TYPES))
    machine, root_port = draw(st.sampled_from(MACHINES))
    names = DRAWABLE[t]
    focus = [n for n in FOCUS if n in names]
    pick = st.one_of(st.sampled_from(focus), st.sampled_from(names)) if focus else st.sampled_from(names)
    chosen = draw(st.lists(pick, min_size=1, max_size=MAX_OPTIONS, unique=True))
    opts = [f"{n}={draw(_value(t, n))}" for n in chosen]
    return with_backend(t, ",".join(opts)), machine, root_port


TRIED: list[Result] = []


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not EXPLORE, database=None,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
@given(st.lists(combination(), min_size=BATCH, max_size=BATCH))
def _random_batches(cases):
    results = crosscheck_many(cases)
    TRIED.extend(results)
    bad = [r for r in results if not r.identical]
    if EXPLORE:  # keep drawing: every difference of the run goes to the findings file
        _report(bad, _random_batches.tmp_dir)
        return
    assert not bad, _report(bad, _random_batches.tmp_dir)


@needs_qemu
def test_random_option_combinations_identical(tmp_path, record_property):
    TRIED.clear()
    _random_batches.tmp_dir = tmp_path
    t0 = time.monotonic()
    try:
        _random_batches()
    finally:
        secs = time.monotonic() - t0
        refused = sum(r.refused for r in TRIED)
        distinct = len({(r.spec, r.machine, r.root_port) for r in TRIED})
        plugged = len({(r.spec, r.machine, r.root_port) for r in TRIED if not r.refused})
        record_property("random_combinations", len(TRIED))
        record_property("random_distinct", distinct)
        record_property("random_plugged", plugged)
        record_property("random_seconds", round(secs, 1))
        print(f"\ncrosscheck random: {len(TRIED)} combinations ({distinct} distinct, {plugged} "
              f"of them plugged, {refused} refused by QEMU), "
              f"{sum(not r.identical for r in TRIED)} differ, {secs:.1f} s")
    assert not [r for r in TRIED if not r.identical], "differences: see the findings file"
    assert plugged >= 100  # valid combinations, each once (hypothesis may draw one twice)
    assert secs < 60 * EXAMPLES


def test_random_draws_cover_every_qemu_property():
    """Every property QEMU 7.2 lists for a type (tests/data/qemu-7.2-props) is drawn, or
    left out on purpose (placement, backends, read-only children)."""
    for t in TYPES:
        lines = (DATA / "qemu-7.2-props" / f"{t}.txt").read_text().splitlines()
        listed = {line.split("=", 1)[0].strip() for line in lines[1:] if "=<" in line}
        assert listed == set(type_properties(t)), t
        left = {n for n in listed if n not in DRAWABLE[t] and n not in NOT_DRAWN
                and not type_properties(t)[n].type.startswith(("child<", "link<"))}
        assert not left, (t, left)


# --------------------------------------------------------------------------
# QEMU's order of checks at the edges of -device (issue 14, item 8): real QEMU 7.2's
# answers captured in tests/data/qemu-7.2-edges (capture.py there), and live

EDGES = DATA / "qemu-7.2-edges"
EDGE_CASES = json.loads((EDGES / "cases.json").read_text())["cases"]


def _edge_id(case: dict) -> str:
    where = "q35rp" if case["root_port"] else case["machine"]
    return f"{where}:{case['device'][:60]!r}"


def test_the_edge_cases_cover_item_8():
    """The captures hold every check issue 14 names, both outcomes of each, and real
    refusals in QEMU's words."""
    refused = {c["device"]: refusal(c["error"]) for c in EDGE_CASES if "error" in c}
    plugged = {c["device"] for c in EDGE_CASES if "error" not in c}
    assert refused["virtio-net-pci,failover_pair_id=x"] == "failover primary device must be on PCIExpress bus"
    assert refused["virtio-net-pci,id=9x"] == "Parameter 'id' expects an identifier"
    assert refused["virtio-net-pci,bus=zz,vectors=-1"] == "Bus 'zz' not found"
    assert refused["a=b"] == "Parameter 'driver' is missing"
    assert refused["virtio-net-pci,driver=virtio-blk-pci"] == "drive property not set"
    assert {"virtio-net-pci,romfile=rom-3000.bin", "virtio-net-pci,failover_pair_id=x",
            "virtio-net-pci,", "virtio-net"} <= plugged
    assert len(EDGE_CASES) >= 45 and len(plugged) >= 12


@pytest.mark.parametrize("case", EDGE_CASES, ids=[_edge_id(c) for c in EDGE_CASES])
def test_edge_cases_answer_as_real_qemu(case, monkeypatch):
    """The emulation against real QEMU 7.2's captured answer: the same refusal, or the same
    device byte for byte (config, write mask, BARs, ROM size, virtio registers)."""
    monkeypatch.chdir(EDGES)  # romfile=rom-3000.bin is found where QEMU found it
    emulated = dump(case["device"], case["machine"], case["root_port"])
    lines = describe(case, emulated)
    assert not lines, "\n".join(lines)


@needs_qemu
def test_edge_cases_identical_to_the_local_qemu(monkeypatch):
    """The same edge cases through ``crosscheck`` against the QEMU installed here: its
    answers are the captured ones, and the emulation's match them."""
    monkeypatch.chdir(EDGES)
    cases = [(c["device"], c["machine"], c["root_port"]) for c in EDGE_CASES]
    results = crosscheck_many(cases, jobs=2)
    bad = [r for r in results if not r.identical]
    assert not bad, _report(bad)
    for res, case in zip(results, EDGE_CASES):
        assert ("error" in res.real) == ("error" in case), res.spec
        if "error" in case:
            assert refusal(res.real["error"]) == refusal(case["error"])


@pytest.mark.parametrize("spec", [
    "virtio-net-pci,netdev=n0,,hostfwd=tcp:127.0.0.1:34567-:22",
    "virtio-blk-pci,drive=d0,,driver=file,,filename=/etc/shadow",
    "virtio-rng-pci,rng=r0,,filename=/etc/shadow",
    "virtio-serial-pci,chardev=c,,path=/tmp/x",
    "virtio-9p-pci,fsdev=fs0,,path=/,mount_tag=share",
])
def test_a_spec_that_adds_a_qemu_option_is_refused_before_qemu_starts(spec, monkeypatch, capsys):
    """QEMU's ',,' escape in a backend reference would become an option of the backend
    crosscheck creates (a listening port, a host file as a disk): refused with one line,
    and no process is started."""
    from virtio_lab import cli
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a) or 1 / 0)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: started.append(a) or 1 / 0)
    assert cli.main(["crosscheck", spec]) == 2
    err = capsys.readouterr().err
    assert "is not a backend id QEMU can create" in err and err.count("\n") == 1
    assert not started
    with pytest.raises(Exception, match="is not a backend id"):
        qemu.probe(spec)
    assert not started


def test_the_device_reaches_qemu_requoted():
    """The -device argument is rebuilt from QEMU's own split of the spec: a trailing comma
    or an escaped one cannot merge with the placement appended, a flag is spelled out, and
    the user's addr= stands."""
    assert qemu.placement("virtio-net-pci,", 3, False) == ("virtio-net-pci,addr=03.0", 0, 3 << 3)
    assert qemu.placement("virtio-net-pci,,", 3, False)[0] == "virtio-net-pci,,,addr=03.0"
    assert qemu.placement("virtio-net-pci,serial=a,,b,mq", 3, False)[0] == \
        "virtio-net-pci,serial=a,,b,mq=on,addr=03.0"
    assert qemu.placement("virtio-net-pci,addr=05.2", 3, False) == ("virtio-net-pci,addr=05.2", 0, 5 << 3 | 2)
    assert qemu.placement("virtio-net-pci", 2, True) == ("virtio-net-pci,bus=rp0,addr=00.0", 1, 0)
    assert qemu.placement("a=1,driver=virtio-net-pci", 3, False)[0] == "virtio-net-pci,a=1,addr=03.0"
    assert qemu.placement("driver=x=y", 3, False)[0] == "driver=x=y,addr=03.0"
