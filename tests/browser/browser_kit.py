"""What the browser tests do to a page: JupyterLab's notebook, the explorer, colour checks.

The checks are plain functions of a Playwright page (or a locator), so the same
``check_explorer`` runs in JupyterLab and Voilà, and the meta-test can run it against a
deliberately broken kernel and expect it to fail.
"""

from __future__ import annotations

import functools
import re
import time

from virtio_lab import plug

#: how long a rendered output may take to become a widget once its cell has run
RENDER_MS = 30_000

# -- JupyterLab ------------------------------------------------------------------------

_CURRENT = "window.jupyterapp && window.jupyterapp.shell.currentWidget"
_KERNEL = f"{_CURRENT} && {_CURRENT}.sessionContext.session && {_CURRENT}.sessionContext.session.kernel"

#: done when every code cell has run, or one failed (Run All stops there) and the kernel is idle
_RUN_STATE = f"""() => {{
  const nb = {_CURRENT};
  if (!nb || !nb.content) return null;
  const cells = nb.content.widgets.filter(c => c.model.type === 'code');
  const errors = cells.filter(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'))
                      .map(c => c.model.sharedModel.getSource().slice(0, 80));
  const kernel = nb.sessionContext.session && nb.sessionContext.session.kernel;
  const idle = !!kernel && kernel.status === 'idle';
  const ran = cells.every(c => c.model.executionCount !== null);
  return {{idle, ran, errors, cells: cells.length}};
}}"""


def open_notebook(page, server, path: str, timeout: float = 120) -> None:
    """Open ``path`` in JupyterLab and wait for its kernel to be idle."""
    page.goto(server.url(f"lab/tree/{path}", reset=""))
    page.wait_for_function(f"() => !!({_KERNEL}) && {_KERNEL}.status === 'idle'", timeout=timeout * 1000)
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # the notebook gets the width


def run_all(page, timeout: float = 120) -> dict:
    """Clear every output, then Run > Run All Cells; wait until every cell ran (or one failed).

    The course notebooks are committed executed: clearing first means the counts and
    outputs checked afterwards are this run's, not the stored ones. Returns the run state.
    """
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.wait_for_function(f"() => {_CURRENT}.content.widgets.filter(c => c.model.type === 'code')"
                           ".every(c => c.model.executionCount === null && c.model.outputs.length === 0)")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.monotonic() + timeout
    state: dict = {}
    while time.monotonic() < deadline:
        state = page.evaluate(_RUN_STATE) or {}
        if state.get("idle") and (state.get("ran") or state.get("errors")):
            return state
        page.wait_for_timeout(250)
    raise AssertionError(f"cells still running after {timeout}s: {state}")


def set_lab_theme(page, dark: bool) -> None:
    """Settings > Theme, and wait until the page says it is (not) light."""
    theme = "JupyterLab Dark" if dark else "JupyterLab Light"
    page.evaluate(f"() => window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{theme}'}})")
    page.wait_for_selector(f"body[data-jp-theme-light='{'false' if dark else 'true'}']", state="attached")
    page.wait_for_timeout(300)  # the theme's CSS variables land a frame later


# -- the explorer ----------------------------------------------------------------------

#: what ipywidgets shows instead of a widget it cannot build (missing/mismatched extension)
_WIDGET_ERRORS = re.compile(r"Error displaying widget|Failed to load (model|view) class|"
                            r"Error creating (widget|view)|model not found", re.I)


def wait_for_explorers(page, count: int = 1, timeout_ms: int = RENDER_MS):
    """The ``count`` explorers on the page, once each shows its grid; fails fast on a widget error."""
    deadline = time.monotonic() + timeout_ms / 1000
    ready = page.locator(".vl-explorer:has(.vl-grid td[data-off])")
    while True:
        n = ready.count()
        if n >= count:
            return [ready.nth(i) for i in range(n)]
        if page.locator(".jupyter-widgets-error-widget").count():  # ipywidgets' "Click to show javascript error"
            log = getattr(page, "console_log", None)
            console = [e for e in log.errors() if "Error" in e] if log else []
            why = console[0].splitlines()[0] if console else "no console message"
            raise AssertionError(f"the explorer did not render: the page shows ipywidgets' error widget "
                                 f"({n} of {count} explorers rendered; {why})")
        broken = page.locator(".jp-OutputArea-output, .widget-error").filter(has_text=_WIDGET_ERRORS)
        if broken.count():
            text = _WIDGET_ERRORS.search(broken.last.text_content()).group(0)
            raise AssertionError(f"the explorer did not render: the page shows {text!r} "
                                 f"({n} of {count} explorers rendered)")
        if time.monotonic() > deadline:
            raise AssertionError(f"the explorer did not render: {n} of {count} explorers show a grid "
                                 f"after {timeout_ms / 1000:.0f} s")
        page.wait_for_timeout(200)


class Explorer:
    """One rendered PlugExplorer, read and driven the way a student does: clicks and keys."""

    def __init__(self, root, trace):
        self.root, self.trace = root, trace
        self.page = root.page

    @property
    def step(self) -> int:
        return int(self.root.locator(".widget-slider .widget-readout").first.text_content().strip())

    def written(self) -> set[int]:
        """Offsets of the grid cells marked "written this step"."""
        return {int(o) for o in self.root.locator(".vl-grid td.vl-w").evaluate_all(
            "cells => cells.map(c => c.dataset.off)")}

    def wait_written(self, expected: set[int], what: str, timeout_s: float = 15) -> None:
        """Until the outlined bytes are ``expected``: each view is its own widget message, so
        the grid can land a moment after the step header."""
        deadline = time.monotonic() + timeout_s
        while (seen := self.written()) != expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: the grid outlines {sorted(seen)}, expected {sorted(expected)}")
            self.page.wait_for_timeout(100)

    def grid_bytes(self, n: int = 256) -> bytes | None:
        cells = dict(self.root.locator(".vl-grid td[data-off]").evaluate_all(
            "cells => cells.map(c => [+c.dataset.off, c.textContent.trim()])"))
        try:
            return bytes(int(cells[o], 16) for o in range(n))
        except (KeyError, ValueError):
            return None

    def wait_grid(self, expected: bytes, what: str, timeout_s: float = 15) -> None:
        """Until the grid (hex) reads ``expected`` from offset 0."""
        deadline = time.monotonic() + timeout_s
        while (seen := self.grid_bytes(len(expected))) != expected:
            if time.monotonic() > deadline:
                diff = [f"0x{o:02x}: {seen[o]:02x} != {expected[o]:02x}" for o in range(len(expected))
                        if seen and seen[o] != expected[o]][:8]
                raise AssertionError(f"{what}: {diff or 'no grid'}")
            self.page.wait_for_timeout(100)

    def byte(self, off: int) -> str:
        return self.root.locator(f".vl-grid td[data-off='{off}']").first.text_content().strip()

    def header(self) -> str:
        return self.root.locator(".vl-step-h").first.text_content()

    def wait_step(self, step: int) -> None:
        """Until the slider and the step header both show ``step`` (the kernel answered)."""
        self.root.locator(".vl-step-h", has_text=re.compile(rf"Step {step} /")).first.wait_for()
        self.page.wait_for_function(
            "([el, s]) => el.querySelector('.widget-slider .widget-readout').textContent.trim() === s",
            arg=[self.root.element_handle(), str(step)])

    def next(self) -> None:
        self.root.get_by_role("button", name="▶", exact=True).click()

    def prev(self) -> None:
        self.root.get_by_role("button", name="◀", exact=True).click()

    def slider_key(self, key: str) -> None:
        """Focus the slider's handle and press ``key`` (End, Home, ArrowRight, ...)."""
        handle = self.root.locator(".widget-slider .noUi-handle").first
        handle.focus()
        handle.press(key)

    def slider_click(self, fraction: float) -> int:
        """Click the slider's track at ``fraction`` of its width (a mouse user); the step it lands on."""
        track = self.root.locator(".widget-slider .noUi-base").first
        box = track.bounding_box()
        old = self.step
        track.click(position={"x": box["width"] * fraction, "y": box["height"] / 2})
        deadline = time.monotonic() + 15
        while self.step == old and time.monotonic() < deadline:
            self.page.wait_for_timeout(100)
        return self.step

    def run_to(self, function: str) -> None:
        self.root.get_by_label("run to", exact=True).select_option(function)
        self.root.get_by_role("button", name="go", exact=True).click()

    def show_tab(self, title: str) -> None:
        self.root.locator(".lm-TabBar-tab", has_text=title).first.click()


def expected_written(trace, step: int) -> set[int]:
    """The config bytes the model says ``step`` wrote (what the grid must outline)."""
    return set(trace.events[step].touched("config"))


def check_explorer(page, trace, *, count: int = 1, qemu: dict | None = None) -> Explorer:
    """The acceptance walk through one explorer; returns it, left at the last step.

    Renders; ▶ moves one step at a time and the outlined bytes are the ones the
    step wrote; ◀ goes back; Home/End on the slider reach both ends and a click on its
    track lands mid-way; "run to" jumps
    to the step calling a function; at the end the capability chain lists every
    capability and the BAR tab every BAR. With ``qemu`` (a real-QEMU case of
    tests/data/qemu-7.2-local) the last step must show QEMU's own bytes, capability
    offsets and BARs.
    """
    ex = Explorer(wait_for_explorers(page, count)[0], trace)
    ex.root.scroll_into_view_if_needed()
    here = ex.step
    ex.wait_written(expected_written(trace, here), f"step {here}")
    # ▶ until a step writes config bytes other than the previous step's: each step's outline checked
    while True:
        before = expected_written(trace, here)
        ex.next()
        here += 1
        ex.wait_step(here)
        after = expected_written(trace, here)
        ex.wait_written(after, f"▶ to step {here}")
        if after and after != before:
            break
    ex.prev()
    ex.wait_step(here - 1)
    ex.wait_written(before, f"◀ back to step {here - 1}")
    # the slider, from the keyboard (Home, End) and the mouse (a click mid-track)
    last = len(trace.events) - 1
    ex.slider_key("Home")
    ex.wait_step(0)
    ex.slider_key("End")
    ex.wait_step(last)
    mid = ex.slider_click(0.5)
    assert last // 4 < mid < 3 * last // 4, f"a click mid-track went to step {mid} of {last}"
    ex.wait_step(mid)
    ex.wait_written(expected_written(trace, mid), f"slider to step {mid}")
    # "run to" from the first step: the first msix_init
    ex.slider_key("Home")
    ex.wait_step(0)
    ex.run_to("msix_init")
    ex.wait_step(trace.index_of("msix_init"))
    ex.wait_written(expected_written(trace, trace.index_of("msix_init")), "run to msix_init")
    ex.slider_key("End")
    ex.wait_step(last)
    if qemu is not None:
        ex.wait_grid(bytes.fromhex(qemu["config"]), "the grid at the last step is not real QEMU's config space")
    caps = [c["offset"] for c in qemu["caps"]] if qemu else [c.offset for c in trace.final.caps.caps]
    # BAR indexes; the option ROM is "BAR 6" (its own slot, PCI_ROM_SLOT in QEMU)
    bars = (sorted(b["index"] for b in qemu["bars"]) + ([6] if qemu.get("rom_size") else []) if qemu
            else sorted(b.index for b in trace.final.bars))
    # the capability chain: every capability of the final state, by offset
    chain = ex.root.locator(".vl-chain").first
    chain.wait_for(state="visible")
    text = chain.text_content()
    for off in caps:
        assert f"0x{off:02x}" in text, f"the capability at 0x{off:02x} is not in the chain"
    # the BAR map: one strip per registered BAR, on the (default) BARs tab
    ex.show_tab("BARs")
    strips = ex.root.locator(".vl-bars .vl-bar")
    strips.first.wait_for(state="visible")
    shown = sorted(int(i) for i in strips.evaluate_all("els => els.map(e => e.dataset.barIndex)"))
    assert shown == bars, f"BARs on the map: {shown}, expected {bars}"
    return ex


def trace_for(spec: str, machine: str = "pc", root_port: bool = False):
    """The plug the page should show (cached: every test asks for virtio-net-pci on pc)."""
    return _trace(spec, machine, root_port)


@functools.lru_cache(maxsize=None)
def _trace(spec: str, machine: str, root_port: bool):
    return plug(spec, machine, root_port)


# -- colours ---------------------------------------------------------------------------

#: for every element with its own text inside ``root``: its colour (faded by any opacity)
#: against the nearest opaque background behind it (WCAG contrast ratio); the worst few
_CONTRAST = """(root) => {
  const parse = c => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const lin = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const lum = ([r, g, b]) => 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  const bg = el => { for (; el; el = el.parentElement) { const c = parse(getComputedStyle(el).backgroundColor);
      if (c && c[3] >= 0.9) return c; } return [255, 255, 255, 1]; };
  const out = [];
  for (const el of root.querySelectorAll('*')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length) continue;
    const st = getComputedStyle(el);
    if (st.visibility === 'hidden' || +st.opacity === 0) continue;
    // faded text (opacity on it or an ancestor, or a translucent colour) blends into the background
    let alpha = 1;
    for (let e = el; e && e !== document.documentElement; e = e.parentElement) alpha *= +getComputedStyle(e).opacity;
    const c = parse(st.color), b = bg(el), a = alpha * c[3];
    const fg = [0, 1, 2].map(i => a * c[i] + (1 - a) * b[i]);
    const [hi, lo] = [lum(fg), lum(b)].sort((x, y) => y - x);
    out.push({ratio: (hi + 0.05) / (lo + 0.05), text: el.textContent.trim().slice(0, 30),
              color: st.color, background: `rgb(${b[0]}, ${b[1]}, ${b[2]})`});
  }
  out.sort((a, b) => a.ratio - b.ratio);
  return {count: out.length, worst: out.slice(0, 5)};
}"""


def contrast(locator) -> dict:
    return locator.evaluate(_CONTRAST)


def background_luminance(locator) -> float:
    """Relative luminance (0 black .. 1 white) of the opaque background behind ``locator``."""
    return locator.evaluate("""(el) => {
      for (; el; el = el.parentElement) { const m = getComputedStyle(el).backgroundColor.match(/rgba?\\(([^)]+)\\)/);
        if (!m) continue; const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
        if (p.length > 3 && p[3] < 0.9) continue;
        const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
        return 0.2126 * f(p[0]) + 0.7152 * f(p[1]) + 0.0722 * f(p[2]); }
      return 1; }""")


def assert_readable(locator, *, dark: bool, minimum: float = 3.0) -> None:
    """The theme took (dark or light background) and no text is unreadable on it.

    3:1 is WCAG's floor for large text and UI parts: the grid's unused bytes are faded on
    purpose (3.7:1 in JupyterLab Light), as are JupyterLab's own inactive tab labels (4.2:1
    in Dark); a theme clash (dark text on the dark theme) sits near 1:1.
    """
    lum = background_luminance(locator)
    theme = "dark" if dark else "light"
    assert (lum < 0.2) if dark else (lum > 0.6), f"background luminance {lum:.2f} in the {theme} theme"
    c = contrast(locator)
    assert c["count"] > 20, f"only {c['count']} text elements found"
    worst = c["worst"][0]
    assert worst["ratio"] >= minimum, f"unreadable text in the {'dark' if dark else 'light'} theme: {c['worst']}"


# -- ground truth and logs -------------------------------------------------------------

CASES = __import__("pathlib").Path(__file__).resolve().parents[1] / "data" / "qemu-7.2-local"


def qemu_case(name: str) -> dict:
    """A real-QEMU 7.2 case (``pc__virtio-net-pci``): config bytes, capabilities, BARs."""
    import json
    return json.loads((CASES / f"{name}.json").read_text())


def assert_no_console_errors(page, allow: tuple = ()) -> None:
    errors = page.console_log.errors(allow)
    assert not errors, "errors in the browser console:\n" + "\n".join(errors)
