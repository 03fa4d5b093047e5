"""JupyterLab: notebook 12 (the device at work) runs in a real browser and its RingExplorer works.

Every cell is run; the explorer must show the ring the emulation computes (the used ring's
bytes ride on the view), "post a request" must add one (used->idx moves on, the ring wraps
on the 4-entry queue), ◀ must step back one event; the page must read in the light and the
dark theme and keep the console clean.
"""

from __future__ import annotations

import re

from virtio_lab.guest.queue import queue

from .browser_kit import RENDER_MS, assert_no_console_errors, assert_readable, open_notebook, run_all, set_lab_theme

SPEC = "virtio-blk-pci,queue-size=4"


def _ring(root):
    view = root.locator(".vl-ringview").first
    return int(view.get_attribute("data-step")), bytes.fromhex(view.get_attribute("data-used-hex"))


def _wait(page, root, step: int) -> bytes:
    page.wait_for_function("([el, s]) => { const v = el.querySelector('.vl-ringview');"
                           " return v && +v.dataset.step === s; }", arg=[root.element_handle(), step],
                           timeout=RENDER_MS)
    return _ring(root)[1]


def test_ring_explorer_in_jupyterlab(lab, page, shot):
    run = queue(SPEC, requests=3)
    last = len(run.trace.events) - 1
    open_notebook(page, lab, "notebooks/12-device-at-work.ipynb")
    set_lab_theme(page, dark=False)
    state = run_all(page)
    assert not state["errors"], f"cells failed in notebook 12: {state['errors']}"
    root = page.locator(".vl-ring-explorer:has(.vl-ringview)").first
    root.wait_for(timeout=RENDER_MS)
    root.scroll_into_view_if_needed()
    used = _wait(page, root, last)
    assert used[2:4] == (3).to_bytes(2, "little"), "the explorer's used->idx is not the emulation's"
    assert used == run.ram.read(run.vqs[0].used, len(used))
    # one more request: used->idx 4, its element back in slot 3, the next slot 0 (the wrap)
    run.post(1)
    root.get_by_role("button", name=re.compile("post a request")).click()
    used = _wait(page, root, len(run.trace.events) - 1)
    assert used == run.ram.read(run.vqs[0].used, len(used))
    assert int.from_bytes(used[2:4], "little") == 4
    root.get_by_role("button", name="◀").click()
    _wait(page, root, len(run.trace.events) - 2)
    assert_readable(root, dark=False)
    shot(page, "lab-12")
    set_lab_theme(page, dark=True)
    assert_readable(root, dark=True)
    shot(page, "lab-12-dark")
    set_lab_theme(page, dark=False)  # the theme is a saved setting: leave it as found
    assert_no_console_errors(page)
