"""Voilà: ``make app`` serves notebooks/app.ipynb as an app; it must work with no code shown.

The app (a device picker over the explorer) is walked the same way as in JupyterLab,
then a second device is picked and its last step compared with real QEMU 7.2. The
dark theme (``?theme=dark``) is checked for readable text.
"""

from __future__ import annotations

import re

from .browser_kit import (Explorer, assert_no_console_errors, assert_readable, check_explorer, expected_written,
                         qemu_case, trace_for, wait_for_explorers)

#: Voilà's lab template (voila/templates/lab/index.html.j2) links Font Awesome from
#: cdn.jsdelivr.net; offline that request fails. The widgets' icons come from the copy
#: bundled with the widget manager (assert_icons_render checks they draw).
OFFLINE_CDN = (re.compile(r"^https://cdn\.jsdelivr\.net/npm/@fortawesome/"),)


def open_app(page, server, **query) -> None:
    page.goto(server.url("", **query))
    page.locator(".vl-app").first.wait_for(timeout=120_000)


def pick(page, device: str, spec: str) -> Explorer:
    """Choose ``device`` in the picker; the new explorer, once it shows ``spec`` at step 0."""
    app = page.locator(".vl-app").first
    app.get_by_label("device", exact=True).select_option(device)
    # the old explorer is replaced, not updated: wait for the one naming the new device
    root = app.locator(".vl-explorer", has=page.locator(".vl-step-h", has_text=re.compile(
        rf"Step 0 /.*-device {re.escape(spec)} on pc")))
    root.wait_for()
    root.evaluate("(el, tag) => el.dataset.vlTest = tag", device)  # pin it: its step will change
    return Explorer(app.locator(f".vl-explorer[data-vl-test='{device}']"), trace_for(spec))


def assert_icons_render(ex: Explorer) -> None:
    """Play/Stop draw their Font Awesome glyphs without the CDN: a loaded icon font, a real width."""
    for icon in ("fa-play", "fa-stop"):
        el = ex.root.locator(f".widget-play i.{icon}").first
        font = el.evaluate("e => { const s = getComputedStyle(e, '::before'); return s.fontFamily + '|' + s.content; }")
        assert "Font Awesome" in font and "none" not in font, f"{icon}: {font}"
        assert el.bounding_box()["width"] >= 8, f"{icon} has no width"
    loaded = ex.page.evaluate("() => [...document.fonts].filter(f => f.status === 'loaded').map(f => f.family)")
    assert any("Font Awesome" in f for f in loaded), f"no Font Awesome face loaded: {loaded}"


def assert_no_code(page) -> None:
    """Outputs only: no code cell inputs, no editor, no source text (markdown stays)."""
    assert page.locator(".jp-CodeCell .jp-InputArea, .jp-CodeMirrorEditor, .cm-editor").count() == 0
    body = page.locator("body").text_content()
    assert "from virtio_lab" not in body and "PlugApp(" not in body


def test_app_in_voila(voila_app, page, shot):
    open_app(page, voila_app)
    assert_no_code(page)
    assert page.locator(".vl-app").count() == 1
    check_explorer(page, trace_for("virtio-net-pci"), qemu=qemu_case("pc__virtio-net-pci"))
    # the device picker: another model, re-plugged, its explorer back at step 0
    ex = pick(page, "virtio-blk-pci", "virtio-blk-pci,drive=d0")
    ex.slider_key("End")
    ex.wait_step(len(ex.trace.events) - 1)
    ex.wait_grid(bytes.fromhex(qemu_case("pc__virtio-blk-pci")["config"]),
                 "virtio-blk-pci's last step is not real QEMU's config space")
    assert ex.byte(2) + ex.byte(3) == "0110"  # device id 0x1001: transitional virtio-blk
    # back to the app's default, at a step that writes, for the picture in docs/
    ex = pick(page, "virtio-net-pci", "virtio-net-pci")
    ex.run_to("msix_init")
    ex.wait_step(ex.trace.index_of("msix_init"))
    ex.next()
    ex.wait_step(ex.trace.index_of("msix_init") + 1)
    ex.wait_written(expected_written(ex.trace, ex.trace.index_of("msix_init") + 1), "the MSI-X capability step")
    assert ex.written(), "the MSI-X step writes config bytes"
    assert_readable(page.locator(".vl-app").first, dark=False)
    page.evaluate("() => window.scrollTo(0, 0)")
    shot(page, "voila", docs=True)
    assert_icons_render(ex)
    assert_no_console_errors(page, allow=OFFLINE_CDN)


def test_app_in_voila_dark(voila_app, page, shot):
    open_app(page, voila_app, theme="dark")
    assert_no_code(page)
    ex = Explorer(wait_for_explorers(page)[0], trace_for("virtio-net-pci"))
    ex.run_to("msix_init")
    ex.wait_step(ex.trace.index_of("msix_init"))
    ex.next()
    ex.wait_step(ex.trace.index_of("msix_init") + 1)
    ex.wait_written(expected_written(ex.trace, ex.trace.index_of("msix_init") + 1), "the MSI-X capability step")
    assert_readable(page.locator(".vl-app").first, dark=True)
    shot(page, "voila-dark", docs=True)
    assert_no_console_errors(page, allow=OFFLINE_CDN)
