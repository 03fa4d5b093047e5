"""The explorer and what-if widgets, driven headless: set .value, .click(), read the views."""

from __future__ import annotations

import re

import pytest

widgets = pytest.importorskip("ipywidgets")

import virtio_lab  # noqa: E402
from virtio_lab.widgets import PlugExplorer, WhatIf  # noqa: E402


def written(page: str) -> set[int]:
    return {int(o) for o in re.findall(r'<td class="[^"]*\bvl-w\b[^"]*"[^>]*data-off="(\d+)"', page)}


def config_writes(ev) -> set[int]:
    return {o for w in ev.writes if w.space == "config" for o in range(w.offset, w.offset + len(w.new))}


@pytest.fixture()
def ex():
    return PlugExplorer("virtio-net-pci", machine="pc")


def test_buttons_step_and_views_follow(ex):
    assert ex.step == 0 and ex.prev_button.disabled
    ex.next_button.click()
    ex.next_button.click()
    assert ex.step == 2 and ex.slider.value == 2
    assert "Step 2 /" in ex.header.value
    ex.prev_button.click()
    assert ex.step == 1 and "Step 1 /" in ex.header.value
    ex.go(10_000)
    assert ex.step == len(ex.trace.events) - 1 and ex.next_button.disabled


def test_slider_moves_every_view(ex):
    target = next(e.index for e in ex.trace.events if e.detail("cap_name") == "MSI-X")
    before = (ex.grid.value, ex.chain.value, ex.bars.value, ex.events_view.value)
    ex.slider.value = target
    assert written(ex.grid.value) == config_writes(ex.trace.events[target])
    assert 'data-off="152" data-id="17"' in ex.chain.value  # MSI-X at 0x98 now in the chain
    assert (ex.grid.value, ex.chain.value, ex.bars.value, ex.events_view.value) != before
    assert re.search(rf'<tr class="vl-cur" data-step="{target}"', ex.events_view.value)


def test_play_drives_the_slider(ex):
    ex.speed.value = "fast (0.25 s)"
    assert ex.play.interval == 250
    ex.play.value = 7  # what the browser's Play timer does
    assert ex.step == 7 and "Step 7 /" in ex.header.value
    ex.slider.value = 3
    assert ex.play.value == 3  # and Play resumes from where the learner is


def test_run_to_function(ex):
    ex.run_to_choice.value = "msix_init"
    ex.run_to_button.click()
    assert ex.trace.events[ex.step].function == "msix_init"
    first = ex.step
    ex.run_to_choice.value = "pci_add_capability"
    ex.run_to_button.click()
    assert ex.step > first and ex.trace.events[ex.step].function == "pci_add_capability"


def test_radix_and_highlight(ex):
    ex.go(len(ex.trace.events) - 1)
    ex.radix.value = "bin"
    assert 'data-off="0" title=' in ex.grid.value and ">11110100</td>" in ex.grid.value
    ex.select.value = 0x98
    sel = {int(o) for o in re.findall(r'class="[^"]*\bvl-sel\b[^"]*"[^>]*data-off="(\d+)"', ex.grid.value)}
    assert sel == set(range(0x98, 0x98 + 12))
    assert "vl-sel" in ex.chain.value


def test_refused_spec_shows_qemu_message_escaped():
    ex = PlugExplorer("virtio-net-pci,romfile=<b>x</b>")
    ex.go(10_000)
    assert "refuses" in ex.header.value and "&lt;b&gt;x&lt;/b&gt;" in ex.header.value
    assert "<b>x</b>" not in ex.header.value


def test_whatif_replugs_and_diffs():
    wi = WhatIf("virtio-net-pci")
    assert wi.diff is None and 'data-off="0"' in wi.grid.value
    wi.set_option("disable-legacy", "on")
    assert wi.spec == "virtio-net-pci,disable-legacy=on"
    text = str(wi.diff)
    assert "device_id" in text and "removed BAR0" in text
    assert "device_id" in wi.diff_view.value
    wi.machine.value = "q35"
    wi.root_port.value = True
    assert "added PCI Express" in str(wi.diff)
    wi.type.value = "virtio-rng-pci"
    assert wi.trace.spec.type == "virtio-rng-pci"
    wi.options.value = "romfile=<b>x</b>"
    assert "refuses" in wi.status.value and "<b>x</b>" not in wi.status.value


def test_widget_step_is_fast(ex):
    import time
    t0 = time.perf_counter()
    for _ in range(20):
        ex.next_button.click()
    assert (time.perf_counter() - t0) / 20 < 0.1  # the benchmark holds the 30 ms budget


def test_a_step_sends_no_stylesheet():
    """What a step updates carries no <style>: a new stylesheet restyles the whole page each step.
    The CSS comes once, with the explorer."""
    ex = PlugExplorer("virtio-net-pci")
    ex.go(45)
    stepped = (ex.header, ex.warnings, ex.grid, ex.chain, ex.bars, ex.tree, ex.events_view)
    assert all("<style" not in v.value for v in stepped)
    static = [w for w in _descendants(ex) if isinstance(w, widgets.HTML) and w not in stepped]
    assert sum("<style" in w.value for w in static) == 1


def _descendants(widget):
    for child in getattr(widget, "children", ()):
        yield child
        yield from _descendants(child)
