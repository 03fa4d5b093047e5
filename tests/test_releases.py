"""Releases and machine types: the compat tables are QEMU's own, applied as QEMU applies them.

Expected values here are read from each release's source or from its binary (named in each
test), never computed by virtio_lab: the byte-level truth is in test_fidelity.py's corpora.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import virtio_lab
from virtio_lab.errors import VirtioLabError
from virtio_lab.hw.compat import device_globals, machine_globals, machine_types, qom_ancestors
from virtio_lab.hw.machine import Machine
from virtio_lab.hw.release import RELEASES, release
from virtio_lab.hw.spec import type_properties

ROOT = Path(__file__).resolve().parent.parent
QEMU_SRC = Path("/work/qemu-src")


@pytest.mark.skipif(not all((QEMU_SRC / r / "hw/core/machine.c").exists() for r in RELEASES),
                    reason="needs the QEMU sources unpacked in /work/qemu-src/<release> "
                           "(apt-get source --download-only qemu=VERSION, see "
                           "tools/compat_tables.py)")
def test_compat_tables_are_what_the_source_says():
    """data/qemu-*/compat.json is tools/compat_tables.py's transcription of each source tree."""
    r = subprocess.run([sys.executable, "tools/compat_tables.py", "--check", str(QEMU_SRC)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


def test_machine_types_from_5_2_to_the_release():
    """What `-machine help` of Debian's builds lists, from 5.2 up (7.2 and 10.0 read off the
    real binaries; 10.0 has a type for every release 5.2 ... 9.2 and 10.0, but no 6.3/7.3)."""
    assert machine_types("5.2") == ("pc-i440fx-5.2", "pc-q35-5.2")
    v72 = ("5.2", "6.0", "6.1", "6.2", "7.0", "7.1", "7.2")
    assert set(machine_types("7.2")) == {f"{f}-{v}" for f in ("pc-i440fx", "pc-q35") for v in v72}
    v10 = v72 + ("8.0", "8.1", "8.2", "9.0", "9.1", "9.2", "10.0")
    assert set(machine_types("10.0")) == {f"{f}-{v}" for f in ("pc-i440fx", "pc-q35") for v in v10}


def test_compat_rows_read_from_the_source():
    """Rows of hw/core/machine.c and hw/i386/pc_q35.c, as each release's file has them."""
    rows = lambda q, m: [(g.driver, g.property, g.value, g.array) for g in machine_globals(q, m)]  # noqa: E731
    assert rows("10.0", "pc-q35-10.0") == [("virtio-iommu-pci", "aw-bits", "39", "pc_q35_compat_defaults")]
    assert rows("10.0", "pc-i440fx-10.0") == []
    assert ("pci-device", "x-pcie-ext-tag", "false", "hw_compat_9_1") in rows("10.0", "pc-q35-9.1")
    assert ("pci-device", "x-pcie-ext-tag", "false", "hw_compat_9_1") not in rows("10.0", "pc-q35-9.2")
    assert ("virtio-net-pci-base", "vectors", "3", "hw_compat_5_2") in rows("7.2", "pc-i440fx-5.2")
    assert ("virtio-device", "queue_reset", "false", "hw_compat_7_1") in rows("7.2", "pc-q35-7.1")
    assert rows("7.2", "pc-q35-7.2") == [] and rows("5.2", "pc-i440fx-5.2") == []
    # the newer arrays come first (each *_options function calls the newer one first)
    order = [g.array for g in machine_globals("10.0", "pc-q35-8.2")]
    assert order.index("pc_q35_compat_defaults") < order.index("hw_compat_9_2") < order.index("hw_compat_8_2")


def test_qom_parents_are_the_binaries():
    """qom-list-types of each release: the -transitional types share the -base parent."""
    assert qom_ancestors("7.2", "virtio-net-pci-transitional") == (
        "virtio-net-pci-transitional", "virtio-net-pci-base", "virtio-pci", "pci-device", "device", "object")
    assert "virtio-device" in qom_ancestors("10.0", "virtio-blk-device")


def test_a_global_reaches_subtypes_only():
    """hw_compat_5_2's virtio-net-pci-base row reaches all three net types; hw_compat_9_2 names
    the balloon types one by one, so nothing else gets vectors=0."""
    for t in ("virtio-net-pci", "virtio-net-pci-transitional", "virtio-net-pci-non-transitional"):
        got = {(g.property, g.value) for g in device_globals("7.2", "pc-q35-5.2", t, "virtio-net-device")}
        assert ("vectors", "3") in got and ("queue_reset", "false") in got
    blk = {(g.driver, g.property) for g in device_globals("10.0", "pc-q35-7.2", "virtio-blk-pci",
                                                          "virtio-blk-device")}
    assert ("virtio-balloon-pci", "vectors") not in blk and ("pci-device", "x-pcie-ext-tag") in blk


def test_the_users_option_wins_over_the_machine_type():
    t = virtio_lab.plug("virtio-net-pci,vectors=5", "pc-i440fx-5.2")
    assert t.final.facts.nvectors == 5 and t.spec.origin("vectors") == "user"
    t = virtio_lab.plug("virtio-net-pci", "pc-i440fx-5.2")
    assert t.final.facts.nvectors == 3 and t.spec.origin("vectors") == "pc-i440fx-5.2 (hw_compat_5_2)"
    assert "vectors=3" in t.narrate() and "pc-i440fx-5.2 sets it (hw_compat_5_2)" in t.narrate()


def test_machine_aliases_and_labels():
    assert Machine("pc", qemu="10.0").type == "pc-i440fx-10.0"
    assert Machine("q35", qemu="5.2").type == "pc-q35-5.2"
    assert Machine("pc-q35-7.2", True, qemu="10.0").name == "q35"
    assert Machine("pc-q35-10.0", qemu="10.0") == Machine("q35", qemu="10.0")
    assert Machine("pc-q35-7.2", qemu="10.0").label == "pc-q35-7.2"


@pytest.mark.parametrize("name", ["virtio-net-pci", "virtio-rng-pci", "virtio-balloon-pci"])
def test_properties_per_release_are_the_help_texts(name):
    """-device TYPE,help of each release (data/qemu-*/props): 5.2 lacks queue_reset, 10.0 adds
    x-pcie-ext-tag; 10.0 prints bool defaults as on/off and the address as <str>."""
    assert "queue_reset" not in type_properties(name, "5.2")
    assert "queue_reset" in type_properties(name, "7.2")
    assert type_properties(name, "10.0")["x-pcie-ext-tag"].default is True
    assert type_properties(name, "10.0")["addr"].default == -1
    assert type_properties(name, "10.0")["rombar"].default == -1


def test_release_names():
    assert release().version == "7.2" and release("10.0").seabios == "1.16.3"
    with pytest.raises(VirtioLabError, match="unknown QEMU release"):
        release("7")


def test_dump_names_release_and_machine_type():
    out = virtio_lab.dump("virtio-net-pci", "pc-q35-7.2", qemu="10.0")
    assert out["qemu"] == "10.0" and out["machine_type"] == "pc-q35-7.2" and out["machine"] == "q35"


def test_diff_names_the_cause_of_each_difference():
    """7.2 -> 10.0 behind a root port: only Device Capabilities' Extended Tag differs, and the
    cause is x-pcie-ext-tag (no such property in 7.2; on by default in 10.0). Facts from
    tests/data/qemu-7.2 and qemu-10.0 (q35rp__virtio-net-pci)."""
    d = virtio_lab.diff("virtio-net-pci", "virtio-net-pci", "q35", True, qemu="7.2", qemu_b="10.0")
    assert [c.field for c in d.bytes] == ["devcap"]
    assert [c.name for c in d.causes] == ["x-pcie-ext-tag"]
    assert d.causes_of(str(d.bytes[0]))[0].kind == "property"
    d = virtio_lab.diff("virtio-balloon-pci", "virtio-balloon-pci", "pc", qemu="10.0",
                        machine_b="pc-i440fx-7.2")
    vec = next(c for c in d.causes if c.name == "vectors")
    assert "pc-i440fx-7.2 sets it (hw_compat_9_2)" in vec.text
    assert any("MSI-X" in x for x in vec.explains)
    d = virtio_lab.diff("virtio-rng-pci", "virtio-rng-pci", "q35", True, qemu="5.2", qemu_b="7.2")
    assert any(c.kind == "release" and "Link Active" in c.text for c in d.causes)


def test_cli_diff_against_a_release(capsys):
    from virtio_lab import cli
    code = cli.main(["diff", "virtio-net-pci", "--qemu", "5.2", "--against-qemu", "7.2"])
    out = capsys.readouterr().out
    assert code == 1 and "RING_RESET (bit 40)" in out and "why (" in out
    assert "queue_reset: off (QEMU 5.2 has no queue_reset property" in out


def test_machines_cli_lists_compat_tables(capsys):
    from virtio_lab import cli
    assert cli.main(["machines", "pc-q35-9.1", "--qemu", "10.0", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = data["machines"][0]["compat"]
    assert {"driver": "pci-device", "property": "x-pcie-ext-tag", "value": "false",
            "array": "hw_compat_9_1"} in rows


def test_explain_searches_the_release_it_is_told():
    """Real 5.2 bytes (tests/data/qemu-5.2: virtio-net-pci on pc, MSI-X with 3 vectors) are
    plain virtio-net-pci on 5.2, but need vectors=3 on 7.2."""
    from virtio_lab.text.explain import explain
    from virtio_lab.text.lspci import hexdump
    case = json.loads((ROOT / "tests/data/qemu-5.2/pc__virtio-net-pci.json").read_text())
    text = hexdump(bytes.fromhex(case["config"]), "00:03.0", 3)
    on52 = explain(text, qemu="5.2")[0].qemu
    assert on52["spec"] == "virtio-net-pci" and on52["exact"] and on52["qemu"] == "5.2"
    on72 = explain(text)[0].qemu
    assert on72["spec"] == "virtio-net-pci,vectors=3" and on72["qemu"] == "7.2"


def test_the_guest_side_says_which_firmware_it_models():
    with pytest.raises(VirtioLabError, match="SeaBIOS 1.14.0, which virtio_lab does not model"):
        virtio_lab.probe("virtio-net-pci", qemu="5.2")
