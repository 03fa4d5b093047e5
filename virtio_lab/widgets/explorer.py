"""PlugExplorer: step through one plug, every view kept in step."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from ..errors import VirtioLabError
from ..hw.plug import Trace, plug
from ..hw.virtio_pci import PlugError
from ..views import bar_map_html, chain_html, event_list_html, hex_grid_html, tree_html
from ..views._common import style_tag
from ..views.step import step_header_html, warnings_html

__all__ = ["PlugExplorer"]

_SPEEDS = {"slow (1.5 s)": 1500, "normal (0.7 s)": 700, "fast (0.25 s)": 250}


def _step(step: Any) -> int:
    """A step typed by a learner: an integer (bools and floats are not steps)."""
    if isinstance(step, bool) or not isinstance(step, int):
        raise VirtioLabError(f"a step is an event index (an integer), not {type(step).__name__}")
    return step


def _load(spec: Any, machine: str, root_port: bool) -> Trace:
    if isinstance(spec, Trace):
        return spec
    try:
        return plug(spec, machine, root_port)
    except PlugError as err:  # show how far QEMU got, and its refusal at the last step
        if err.trace is None or not err.trace.events:
            raise
        return err.trace


class PlugExplorer(w.VBox):
    """Step through QEMU 7.2's plug of one device.

    Controls: ◀ / ▶ (one step), the step slider, Play (with a speed choice), a
    "run to" QEMU function (the next step calling it, wrapping around), radix
    (hex/dec/bin) and a selection that highlights a capability or field in the grid.
    All views are ``widgets.HTML`` fed by :mod:`virtio_lab.views`.
    """

    def __init__(self, spec: Any = "virtio-net-pci", machine: str = "pc", root_port: bool = False,
                 step: int = 0, **kwargs):
        step = _step(step)
        self.trace = _load(spec, machine, root_port)
        n = len(self.trace.events)
        last = n - 1
        self.prev_button = w.Button(description="◀", tooltip="previous step (back)",
                                    layout=w.Layout(width="44px"))
        self.next_button = w.Button(description="▶", tooltip="next step",
                                    layout=w.Layout(width="44px"))
        self.slider = w.IntSlider(value=min(max(step, 0), last), min=0, max=last, description="step",
                                  continuous_update=True, layout=w.Layout(width="420px"))
        self.play = w.Play(value=self.slider.value, min=0, max=last, step=1, interval=700,
                           description="play", show_repeat=False)
        self.speed = w.Dropdown(options=list(_SPEEDS), value="normal (0.7 s)", description="speed",
                                layout=w.Layout(width="210px"))
        functions = list(dict.fromkeys(e.function for e in self.trace.events))
        self.run_to_choice = w.Dropdown(options=functions, description="run to",
                                        layout=w.Layout(width="360px"))
        self.run_to_button = w.Button(description="go", tooltip="jump to the next step that calls "
                                      "this QEMU function", layout=w.Layout(width="50px"))
        self.radix = w.ToggleButtons(options=["hex", "dec", "bin"], value="hex",
                                     tooltips=["hexadecimal", "decimal", "binary"],
                                     style={"button_width": "50px"})
        self.select = w.Dropdown(options=self._select_options(), value=None, description="highlight",
                                 layout=w.Layout(width="360px"))
        self.header = w.HTML()
        self.warnings = w.HTML()
        self.grid = w.HTML()
        self.chain = w.HTML()
        self.bars = w.HTML()
        self.tree = w.HTML()
        self.events_view = w.HTML()

        self.prev_button.on_click(lambda _: self.go(self.step - 1))
        self.next_button.on_click(lambda _: self.go(self.step + 1))
        self.run_to_button.on_click(lambda _: self.run_to(self.run_to_choice.value))
        self.slider.observe(self._on_slider, names="value")
        self.play.observe(self._on_play, names="value")
        self.speed.observe(lambda c: setattr(self.play, "interval", _SPEEDS[c["new"]]), names="value")
        self.radix.observe(lambda c: self._render_grid(), names="value")
        self.select.observe(lambda c: self._render_grid_and_chain(), names="value")

        controls = w.HBox([self.prev_button, self.slider, self.next_button, self.play, self.speed])
        controls2 = w.HBox([self.run_to_choice, self.run_to_button, self.radix, self.select])
        tabs = w.Tab(children=[self.bars, self.tree, self.events_view])
        for i, t in enumerate(("BARs", "QOM tree", "plug path")):
            tabs.set_title(i, t)
        views = w.HBox([w.VBox([w.HTML(style_tag() + "<b class='vl'>Config space</b>"), self.grid]),
                        w.VBox([w.HTML("<b class='vl'>Capability list</b>"), self.chain])])
        super().__init__([controls, controls2, self.header, self.warnings, views, tabs], **kwargs)
        self.add_class("vl-explorer")  # a stable hook for page CSS and the browser tests
        self._render()

    # -- state -------------------------------------------------------------
    @property
    def step(self) -> int:
        return self.slider.value

    @property
    def state(self):
        return self.trace.state_at(self.step)

    def go(self, step: int) -> None:
        """Show ``step`` (clamped to the trace)."""
        self.slider.value = min(max(_step(step), 0), len(self.trace.events) - 1)

    def run_to(self, function: str) -> int:
        """Jump to the next step calling ``function`` (wrapping to the first); returns it."""
        try:
            target = self.trace.index_of(function, self.step + 1)
        except Exception:
            target = self.trace.index_of(function)
        self.go(target)
        return target

    def _select_options(self):
        final = self.trace.final
        opts: list[tuple[str, Any]] = [("(nothing)", None)]
        opts += [(f"0x{c.offset:02x} {c.name}", c.offset) for c in final.caps.caps]
        opts += [(f"header: {f}", f) for f in ("vendor_id", "device_id", "command", "status",
                                                 "subsystem_id", "capabilities_ptr", "bar0", "bar1",
                                                 "bar4", "rom_address", "interrupt_pin")]
        return opts

    # -- rendering ---------------------------------------------------------
    def _on_slider(self, change) -> None:
        if self.play.value != change["new"]:
            self.play.value = change["new"]
        self._render()

    def _on_play(self, change) -> None:
        if self.slider.value != change["new"]:
            self.slider.value = change["new"]

    def _render_grid(self) -> None:
        self.grid.value = hex_grid_html(self.trace, self.step, radix=self.radix.value,
                                        select=self.select.value, css=False)

    def _render_grid_and_chain(self) -> None:
        self._render_grid()
        sel = self.select.value if isinstance(self.select.value, int) else None
        self.chain.value = chain_html(self.trace, self.step, select=sel, css=False)

    def _render(self) -> None:
        t, i = self.trace, self.step
        self.prev_button.disabled = i == 0
        self.next_button.disabled = i == len(t.events) - 1
        # no <style> in a per-step update: a new stylesheet restyles the whole page every step
        # (the explorer's CSS is sent once, with the views' titles)
        self.header.value = step_header_html(t, i, css=False)
        self.warnings.value = warnings_html(t.state_at(i), css=False)
        self._render_grid_and_chain()
        self.bars.value = bar_map_html(t, i, css=False)
        self.tree.value = tree_html(t, i, css=False)
        self.events_view.value = event_list_html(t, i, css=False)
