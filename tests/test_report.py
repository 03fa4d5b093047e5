"""The static report: one self-contained file, every step pre-rendered, no network."""

from __future__ import annotations

import re
import subprocess
import sys

import virtio_lab
from virtio_lab.views.report import report_html


def test_every_step_prerendered_and_offline():
    trace = virtio_lab.plug("virtio-net-pci", "q35", root_port=True)
    page = report_html(trace)
    steps = re.findall(r'<section class="vl-s" id="s(\d+)" data-step="\d+"( hidden)?>', page)
    assert [int(s) for s, _ in steps] == list(range(len(trace.events)))
    assert [h for _, h in steps].count("") == 1  # only the first is visible
    for needle in ("http://", "https://", "<link", "src=", "@import"):
        assert needle not in page
    assert page.count("<script>") == 1 and "ArrowRight" in page
    msix = next(e.index for e in trace.events if e.detail("cap_name") == "MSI-X")
    section = page.split(f'id="s{msix}"', 1)[1].split("</section>", 1)[0]
    want = {o for w in trace.events[msix].writes if w.space == "config" for o in range(w.offset, w.offset + len(w.new))}
    got = {int(o) for o in re.findall(r'<td class="[^"]*\bvl-w\b[^"]*"[^>]*data-off="(\d+)"', section)}
    assert got == want


def test_report_escapes_and_shows_refusal():
    page = report_html("virtio-net-pci,romfile=<b>x</b>")
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "QEMU refuses" in page


def test_cli_report(tmp_path):
    out = tmp_path / "plug.html"
    r = subprocess.run([sys.executable, "-m", "virtio_lab", "report", "virtio-blk-pci,drive=d0,serial=<i>s</i>",
                        "--machine", "q35", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "&lt;i&gt;s&lt;/i&gt;" in page and "<i>s</i>" not in page
    r = subprocess.run([sys.executable, "-m", "virtio_lab", "report", "virtio-net-pci", "--machine", "pc",
                        "--root-port", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 2 and "q35" in r.stderr and "Traceback" not in r.stderr


def test_cli_report_of_a_refused_device_says_so(tmp_path):
    """The report of a device QEMU refuses is still written (its steps lead to the refusal),
    and the terminal says QEMU refused it, in QEMU's words."""
    import subprocess
    import sys
    out = tmp_path / "blk.html"
    r = subprocess.run([sys.executable, "-m", "virtio_lab", "report", "virtio-blk-pci", "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and out.exists()
    assert "QEMU refuses this device (drive property not set" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
