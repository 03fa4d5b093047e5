"""diff(a, b): bytes, capabilities, BARs and features, each named; text and HTML; the CLI."""

from __future__ import annotations

import subprocess
import sys

import virtio_lab
from virtio_lab.text.diff import diff
from virtio_lab.views import diff_html


def test_same_device_has_no_differences():
    d = diff("virtio-net-pci", "virtio-net-pci")
    assert not d and "no differences" in str(d)


def test_disable_legacy_names_ids_and_bar0():
    d = diff("virtio-net-pci", "virtio-net-pci,disable-legacy=on")
    fields = {(c.structure, c.field) for c in d.bytes}
    assert ("header", "device_id") in fields and ("header", "revision_id") in fields
    dev = next(c for c in d.bytes if c.field == "device_id")
    assert dev.old == bytes.fromhex("0010") and dev.new == bytes.fromhex("4110")  # 0x1000 -> 0x1041
    assert any("removed BAR0" in b for b in d.bars)
    assert any("legacy interface" in o for o in d.other)


def test_vectors_change_msix_table():
    d = diff("virtio-net-pci", "virtio-net-pci,vectors=2")
    assert any("MSI-X" in c and "table_size 4 -> 2" in c for c in d.caps)
    assert [c.field for c in d.bytes] == ["message_control"]


def test_features_are_named():
    d = diff("virtio-net-pci", "virtio-net-pci,mrg_rxbuf=off,mq=on")
    assert "- MRG_RXBUF (bit 15)" in d.features
    assert "+ MQ (bit 22)" in d.features


def test_machine_change_and_html():
    d = diff("virtio-net-pci", "virtio-net-pci", machine="pc", machine_b="q35", root_port_b=True)
    assert any("added PCI Express" in c for c in d.caps)
    page = diff_html(d)
    assert "PCI Express" in page and "<h4>capabilities" in page


def test_traces_and_refusals():
    a = virtio_lab.plug("virtio-rng-pci")
    d = diff(a, "virtio-rng-pci,romfile=<b>x</b>")
    assert d.errors[1] and "romfile" in d.errors[1]
    assert "<b>x</b>" not in diff_html(d)


def test_cli_diff():
    r = subprocess.run([sys.executable, "-m", "virtio_lab", "diff", "virtio-net-pci",
                        "virtio-net-pci,disable-modern=on"], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert "removed BAR4" in r.stdout and "virtio common" in r.stdout
    r = subprocess.run([sys.executable, "-m", "virtio_lab", "diff", "virtio-net-pci", "virtio-net-pci"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "no differences" in r.stdout


def test_jupyter_shows_a_diff_and_a_probe_as_html():
    """The layers know no screen: importing virtio_lab tells a running IPython which view
    draws a Diff or a ProbeResult (by type name), and nothing is rendered before it is shown."""
    code = ("from IPython.core.interactiveshell import InteractiveShell; import sys; "
            "shell = InteractiveShell.instance(); import virtio_lab; "
            "assert 'virtio_lab.views' not in sys.modules; "
            "fmt = shell.display_formatter.format; "
            "d = fmt(virtio_lab.diff('virtio-net-pci', 'virtio-net-pci,vectors=2'))[0]; "
            "p = fmt(virtio_lab.probe('virtio-rng-pci'))[0]; "
            "assert 'vl-diff' in d['text/html'] and 'MSI-X' in d['text/html'], d; "
            "assert 'DRIVER_OK' in p['text/html'] and '<table>' in p['text/html'], p; "
            "print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "ok", res.stderr


def test_the_cli_exits_0_when_both_sides_are_refused_the_same_way(capsys):
    """Issue 14, item 10: equal refusals are no difference (QEMU refuses both without a drive)."""
    from virtio_lab.cli import main
    assert main(["diff", "virtio-blk-pci", "virtio-blk-pci,vectors=2"]) == 0
    out = capsys.readouterr().out
    assert "no differences (QEMU refuses both: drive property not set" in out
    assert main(["diff", "virtio-blk-pci", "virtio-rng-pci"]) == 1  # one refused, one plugs
