"""lspci in and out: our hex dumps decoded by the real `lspci -F` equal the real QEMU 7.2 captures.

Each case's `lspci` field is what `lspci -F FILE -vvv -nn` printed for the captured
config space (stdout, then lspci's stderr noise such as "lspci: Unable to load libkmod
resources: error -2"). We feed real lspci *our* `-xxx` dump of the same spec and compare
stdout with the field minus its trailing `lspci: ...` stderr lines.

`-F FILE` makes lspci use its dump access method only (it never reads the host's
devices); `-O hwdb.disable=1` makes names come from pci.ids alone (the captures were
decoded without udev's hwdb, which names more subsystems), so the test does not depend on
whether the host has udev installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from conftest import load_cases
from virtio_lab import plug
from virtio_lab.errors import VirtioLabError
from virtio_lab.text.lspci import describe, device_config, format_size, header_line, hexdump, lspci_text, trace_bar_info

LSPCI = shutil.which("lspci")
#: names from pci.ids only: with udev's hwdb installed lspci would prefer it (and it names
#: subsystems the captures show as "Device [1af4:0005]"); no DNS lookups either
LSPCI_ARGS = ["-O", "hwdb.disable=1"]
needs_lspci = pytest.mark.skipif(LSPCI is None, reason="lspci (pciutils) is not installed")

SHARED = [c for c in load_cases("qemu-7.2") if "config" in c]
LOCAL = [c for c in load_cases("qemu-7.2-local") if "config" in c and "lspci" in c]


def expected_stdout(field: str) -> str:
    """The case's lspci text without the stderr noise lines lspci appended."""
    lines = field.split("\n")
    while lines and (lines[-1] == "" or lines[-1].startswith("lspci: ")):
        lines.pop()
    return "\n".join(lines) + "\n\n"


def run_lspci(tmp_path, text: str, *args: str) -> str:
    f = tmp_path / "dump.txt"
    f.write_text(text)
    p = subprocess.run([LSPCI, *LSPCI_ARGS, "-F", str(f), *args], capture_output=True, text=True,
                       timeout=30, env={**os.environ, "LC_ALL": "C"})
    assert p.returncode == 0, p.stderr
    return p.stdout


def our_dump(case: dict, level: int | str = 3) -> str:
    trace = plug(case["device"], case["machine"], case["root_port"])
    return hexdump(device_config(trace.final), trace.machine.bdf, level)


@needs_lspci
@pytest.mark.parametrize("case", SHARED, ids=[c["id"] for c in SHARED])
def test_real_lspci_decodes_our_dump_like_qemu(case, tmp_path):
    assert run_lspci(tmp_path, our_dump(case), "-vvv", "-nn") == expected_stdout(case["lspci"])


@needs_lspci
@pytest.mark.parametrize("case", LOCAL, ids=[c["id"] for c in LOCAL])
def test_real_lspci_local_corpus(case, tmp_path):
    assert run_lspci(tmp_path, our_dump(case), "-vvv", "-nn") == expected_stdout(case["lspci"])


@needs_lspci
def test_lspci_reads_back_every_level(tmp_path):
    trace = plug("virtio-net-pci", "q35", True)
    cfg = device_config(trace.final)
    assert len(cfg) == 4096
    for level, n in (("-x", 64), ("-xxx", 256), ("-xxxx", 4096)):
        text = hexdump(cfg, "01:00.0", level)
        again = run_lspci(tmp_path, text, "-xxxx")
        rows = [ln for ln in again.splitlines() if re.match(r"^[0-9a-f]{2,3}: ", ln)]
        got = bytes.fromhex("".join(r.split(":", 1)[1] for r in rows))
        assert got[:n] == cfg[:n]


def test_hexdump_format():
    trace = plug("virtio-net-pci")
    text = hexdump(device_config(trace.final), trace.machine.bdf, "-xxx")
    lines = text.split("\n")
    assert lines[0] == "00:03.0 Ethernet controller: Red Hat, Inc. Virtio network device"
    assert lines[1].startswith("00: f4 1a 00 10 ")
    assert len(lines) == 1 + 16 + 2 and text.endswith("\n\n")
    assert all(re.fullmatch(r"[0-9a-f]{2}:( [0-9a-f]{2}){16}", ln) for ln in lines[1:17])
    assert len(hexdump(device_config(trace.final), "00:03.0", 1).split()) and len(hexdump(device_config(trace.final), "00:03.0", 1).strip().splitlines()) == 1 + 4
    # a conventional device has 256 bytes: -xxxx prints those, as lspci does
    assert len(hexdump(device_config(trace.final), "00:03.0", 4).strip().splitlines()) == 1 + 16
    big = plug("virtio-net-pci", "q35", True)
    lines = hexdump(device_config(big.final), "01:00.0", 4).strip().splitlines()
    assert len(lines) == 1 + 256 and lines[17].startswith("100: ")


def test_header_line_names():
    cfg = device_config(plug("virtio-blk-pci,drive=d0,disable-legacy=on").final)
    assert header_line(cfg, "00:03.0") == "00:03.0 SCSI storage controller: Red Hat, Inc. Virtio 1.0 block device (rev 01)"
    assert header_line(cfg, "00:03.0", numeric=True).endswith("Virtio 1.0 block device [1af4:1042] (rev 01)")


def test_bad_level():
    with pytest.raises(VirtioLabError):
        hexdump(b"\0" * 256, "00:03.0", "-xx x")
    with pytest.raises(VirtioLabError):
        hexdump(b"\0" * 16, "00:03.0", 3)


def test_sizes():
    assert [format_size(n) for n in (32, 4096, 16384, 262144, 1 << 20, 3)] == ["32", "4K", "16K", "256K", "1M", "3"]


def _strip_ours(text: str) -> str:
    """Our -vvv decoding minus what a dump cannot know (sizes; unassigned 32-bit BARs)."""
    out = []
    for ln in text.splitlines():
        if "(32-bit, non-prefetchable)" in ln and "<unassigned>" in ln:
            continue  # lspci -F cannot see an unassigned 32-bit BAR (no flag bits)
        if ln.startswith("\tExpansion ROM at <unassigned>"):
            continue  # the ROM BAR register is 0 until firmware places it
        out.append(re.sub(r" \[size=[^]]+\]", "", ln))
    return "\n".join(out)


@pytest.mark.parametrize("case", SHARED + LOCAL, ids=[c["id"] for c in SHARED + LOCAL])
def test_our_vvv_matches_real_lspci(case):
    """Our decoding uses lspci's line formats (PCI Express block included): the same text
    as the captured real lspci, except the name we give cfg_type 5 (PciCfg; lspci 3.9:
    <unknown>) and what only we know (sizes, BARs and ROM not yet placed)."""
    trace = plug(case["device"], case["machine"], case["root_port"])
    sizes, kinds, rom = trace_bar_info(trace.final)
    # the captured lspci read a 256-byte -xxx dump: no extended capabilities in it
    ours = describe(device_config(trace.final)[:256], trace.machine.bdf, 3, sizes, kinds, rom)
    ours = _strip_ours(ours).replace("VirtIO: PciCfg", "VirtIO: <unknown>")
    assert ours.rstrip("\n") == expected_stdout(case["lspci"]).rstrip("\n")


def test_cli_lspci(capsys):
    from virtio_lab.cli import main
    assert main(["lspci", "virtio-rng-pci", "-x"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("00:03.0 Unclassified device: Red Hat, Inc. Virtio RNG\n00: f4 1a 05 10")
    assert main(["lspci", "virtio-rng-pci", "-vvv"]) == 0
    out = capsys.readouterr().out
    assert "VirtIO: CommonCfg" in out and "[size=4K]" in out and "00: f4" not in out
    assert main(["lspci", "virtio-rng-pci", "-vvv", "-xxx"]) == 0
    out = capsys.readouterr().out
    assert "VirtIO: Notify" in out and "\nf0: " in out
    assert main(["lspci", "virtio-rng-pci", "--machine", "nope"]) == 2
    assert lspci_text("virtio-net-pci", level=3) == our_dump(SHARED[0] | {"device": "virtio-net-pci", "machine": "pc", "root_port": False})
