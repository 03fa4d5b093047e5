"""The static report (``python -m virtio_lab report``) opened from disk, as a student would.

One file, no server, no network: every request the page makes must be the file itself.
Its inline controls (◀ ▶, the slider, Play, the arrow keys) step through the plug, and
each step shows the bytes real QEMU's plug writes, in a light and a dark colour scheme.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .browser_kit import assert_no_console_errors, assert_readable, expected_written, qemu_case, trace_for


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    """The report of virtio-net-pci on pc, written by the CLI the README documents."""
    out = tmp_path_factory.mktemp("report") / "plug.html"
    subprocess.run([sys.executable, "-m", "virtio_lab", "report", "virtio-net-pci", "-o", str(out)],
                   check=True, cwd=Path(__file__).resolve().parents[2], capture_output=True)
    return out


class Report:
    def __init__(self, page):
        self.page = page

    @property
    def step(self) -> int:
        visible = self.page.locator("section.vl-s:not([hidden])")
        assert visible.count() == 1, f"{visible.count()} steps shown at once"
        return int(visible.get_attribute("data-step"))

    def written(self) -> set[int]:
        return {int(o) for o in self.page.locator("section.vl-s:not([hidden]) .vl-grid td.vl-w").evaluate_all(
            "cells => cells.map(c => c.dataset.off)")}

    def wait_step(self, step: int) -> None:
        self.page.locator(f"section.vl-s[data-step='{step}']:not([hidden])").wait_for()
        assert self.page.locator("#vl-n").text_content().startswith(f"{step} /")


def open_report(page, path, *, dark: bool):
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.emulate_media(color_scheme="dark" if dark else "light")
    page.goto(path.as_uri())
    page.locator("section.vl-s").first.wait_for(state="attached")
    return Report(page), requests


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_report_from_disk(page, report_file, scheme, shot):
    dark = scheme == "dark"
    trace = trace_for("virtio-net-pci")
    last = len(trace.events) - 1
    rep, requests = open_report(page, report_file, dark=dark)
    rep.wait_step(0)
    assert page.locator("section.vl-s").count() == len(trace.events)
    # ▶ and ◀: one step each, the outline follows the step's writes
    first_write = next(e.index for e in trace.events if e.touched("config"))
    for _ in range(first_write):
        page.click("#vl-f")
    rep.wait_step(first_write)
    assert rep.written() == expected_written(trace, first_write) != set()
    page.click("#vl-b")
    rep.wait_step(first_write - 1)
    assert rep.written() == expected_written(trace, first_write - 1)
    # the slider, and the arrow keys
    page.locator("#vl-r").fill(str(last))
    rep.wait_step(last)
    real = bytes.fromhex(qemu_case("pc__virtio-net-pci")["config"])
    cells = dict(page.locator(f"section.vl-s[data-step='{last}'] .vl-grid td[data-off]").evaluate_all(
        "cells => cells.map(c => [+c.dataset.off, c.textContent.trim()])"))
    assert bytes(int(cells[o], 16) for o in range(256)) == real, "the last step is not real QEMU's config"
    page.keyboard.press("ArrowLeft")
    rep.wait_step(last - 1)
    page.keyboard.press("ArrowRight")
    rep.wait_step(last)
    # Play (fast) from the start: it advances by itself, and Pause stops it
    page.select_option("#vl-v", "250")
    page.click("#vl-p")  # at the end, Play starts over from step 0
    page.wait_for_function("() => +document.getElementById('vl-r').value >= 3")
    page.click("#vl-p")
    stopped = rep.step
    page.wait_for_timeout(600)
    assert rep.step == stopped, "Pause did not stop Play"
    # a step with written bytes (the MSI-X capability), for the eye and the picture
    fill = trace.index_of("msix_init") + 1
    page.locator("#vl-r").fill(str(fill))
    rep.wait_step(fill)
    assert rep.written()
    assert_readable(page.locator(f"section.vl-s[data-step='{fill}']"), dark=dark)
    shot(page, f"report-{scheme}", docs=dark)
    assert report_file.as_uri() in requests  # the listener sees the page's own load
    others = [u for u in requests if u != report_file.as_uri() and not u.startswith(("data:", "about:"))]
    assert not others, f"the report made network requests: {others}"
    assert_no_console_errors(page)
