"""The browser checks can fail: run them against a kernel whose explorer cannot render.

A second JupyterLab runs every kernel with broken_widget_startup.py (the
``VIRTIO_LAB_KERNEL_STARTUP`` hook), which leaves the Python side intact but points the
explorer at a front-end module the page does not have. The notebook still runs without
an error, so only the browser shows the problem, and the same ``check_explorer`` the
real tests use must fail on it, fast, naming what the page shows.
"""

from __future__ import annotations

import time

import pytest

from virtio_lab.views.report import write_report

from .browser_kit import assert_readable, check_explorer, open_notebook, run_all, trace_for


def test_explorer_check_fails_when_the_widget_cannot_render(broken_lab, page):
    open_notebook(page, broken_lab, "browser/explorer.ipynb")
    state = run_all(page)
    assert not state["errors"], "the broken kernel should still run the cell: only the browser can tell"
    started = time.monotonic()
    with pytest.raises(AssertionError, match="the explorer did not render") as failed:
        check_explorer(page, trace_for("virtio-net-pci", "q35", True))
    assert time.monotonic() - started < 20, "the check should fail fast, not wait out its timeout"
    assert "@virtio-lab/not-installed" in str(failed.value), "the failure should say what is missing"
    print(f"check_explorer failed as it should: {failed.value}")
    # and the console check, on its own, would have failed the test as well
    assert page.console_log.errors(), "no console error for a widget that cannot load"


def test_readability_check_fails_on_a_dark_theme_clash(page, tmp_path):
    """Text with a hard-coded dark colour on a dark page (a CSS clash) must fail assert_readable."""
    path = write_report("virtio-net-pci", tmp_path / "plug.html")
    page.emulate_media(color_scheme="dark")
    page.goto(path.as_uri())
    section = page.locator("section.vl-s:not([hidden])")
    assert_readable(section, dark=True)  # as shipped: readable
    page.add_style_tag(content=".vl-grid td, .vl-node { color: #222 !important }")
    with pytest.raises(AssertionError, match="unreadable text in the dark theme"):
        assert_readable(section, dark=True)
