"""JupyterLab: the course notebooks run in a real browser and the explorer works there.

Each notebook is opened from a JupyterLab started for the session, every cell is run,
and the explorer is walked like a student would (▶ ◀, the slider from the keyboard,
"run to"); its last step must show real QEMU 7.2's bytes, capabilities and BARs. The
same page is then checked for readable text in the light and the dark theme, and for
a clean browser console.
"""

from __future__ import annotations

import pytest

from .browser_kit import (Explorer, assert_no_console_errors, assert_readable, check_explorer, expected_written,
                         open_notebook, qemu_case, run_all, set_lab_theme, trace_for, wait_for_explorers)

NOTEBOOKS = {
    # notebook: (device, machine, the QEMU function its explorer opens at, real-QEMU case)
    "00-start.ipynb": ("virtio-net-pci", "pc", "first", "pc__virtio-net-pci"),
    "07-plug-timeline.ipynb": ("virtio-net-pci", "pc", "virtio_pci_device_plugged", "pc__virtio-net-pci"),
}


@pytest.mark.parametrize("notebook", list(NOTEBOOKS))
def test_notebook_explorer_in_jupyterlab(lab, page, notebook, shot):
    device, machine, opens_at, case = NOTEBOOKS[notebook]
    trace = trace_for(device, machine)
    open_notebook(page, lab, f"notebooks/{notebook}")
    set_lab_theme(page, dark=False)
    state = run_all(page)
    assert not state["errors"], f"cells failed in {notebook}: {state['errors']}"
    opens_at = 0 if opens_at == "first" else trace.index_of(opens_at)
    assert Explorer(wait_for_explorers(page)[0], trace).step == opens_at, "the explorer opens at another step"
    ex = check_explorer(page, trace, qemu=qemu_case(case))
    ex.root.scroll_into_view_if_needed()
    stem = notebook.split("-")[0]
    # the MSI-X capability being added: a step with written bytes, as the docs/ pictures show it
    ex.run_to("msix_init")
    ex.wait_step(ex.trace.index_of("msix_init"))
    ex.next()
    fill = ex.trace.index_of("msix_init") + 1
    ex.wait_step(fill)
    ex.wait_written(expected_written(ex.trace, fill), "the MSI-X capability step")
    assert ex.written()
    assert_readable(ex.root, dark=False)
    first = notebook == "00-start.ipynb"
    page.evaluate("el => el.scrollIntoView({block: 'start'})", ex.root.element_handle())
    shot(page, f"lab-{stem}", docs=first and "lab")
    if first:  # the whole explorer: a viewport tall enough to hold it (JupyterLab scrolls inside)
        size = page.viewport_size
        page.set_viewport_size({"width": size["width"], "height": 1500})
        page.evaluate("el => el.scrollIntoView({block: 'start'})", ex.root.element_handle())
        shot(page, "explorer", docs=True, locator=ex.root)
        page.set_viewport_size(size)
    set_lab_theme(page, dark=True)
    assert_readable(ex.root, dark=True)
    shot(page, f"lab-{stem}-dark", docs=not first and "lab-dark")
    set_lab_theme(page, dark=False)  # the theme is a saved setting: leave it as found
    assert_no_console_errors(page)
