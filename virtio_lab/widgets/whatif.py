"""WhatIf: change the device model, machine, root port or an option, re-plug, see the diff."""

from __future__ import annotations

import ipywidgets as w

from ..errors import VirtioLabError
from ..hw.devices import supported_types
from ..hw.machine import Machine
from ..hw.plug import plug
from ..hw.spec import type_properties, unknown_model
from ..hw.virtio_pci import PlugError
from ..text.diff import diff
from ..views import bar_map_html, chain_html, hex_grid_html
from ..views._common import esc, style_tag
from ..views.diffview import diff_html

__all__ = ["WhatIf"]


class WhatIf(w.VBox):
    """A what-if panel: every change re-runs the plug and diffs it with the previous one.

    ``type`` (device model), ``machine`` (pc/q35), ``root_port``, ``options`` (the
    ``-device`` options after the type, QEMU syntax), and ``option``/``option_value``
    with ``set_button`` to set one option from the model's property list.
    ``.diff`` is the last :class:`~virtio_lab.text.diff.Diff`; ``.trace`` the current plug.
    """

    def __init__(self, spec: str = "virtio-net-pci", machine: str = "pc", root_port: bool = False, **kwargs):
        if not isinstance(spec, str):
            raise VirtioLabError(f"a device spec is a string such as \"virtio-net-pci,disable-legacy=on\", "
                                 f"not {type(spec).__name__}")
        Machine(machine, bool(root_port) and machine == "q35")  # one line for a machine typo
        type_name, _, opts = spec.strip().partition(",")
        if type_name not in supported_types():
            raise unknown_model(type_name, sorted(supported_types()))
        self.type = w.Dropdown(options=sorted(supported_types()), value=type_name, description="device")
        self.machine = w.Dropdown(options=["pc", "q35"], value=machine, description="machine")
        self.root_port = w.Checkbox(value=root_port, description="behind a pcie-root-port (q35)")
        self.options = w.Text(value=opts, description="options", placeholder="disable-legacy=on,vectors=2",
                              continuous_update=False, layout=w.Layout(width="520px"))
        self.option = w.Dropdown(options=self._props(type_name), description="option")
        self.option_value = w.Text(description="value", layout=w.Layout(width="220px"))
        self.set_button = w.Button(description="set", tooltip="add or replace this option")
        self.status = w.HTML()
        self.diff_view = w.HTML()
        self.grid = w.HTML()
        self.chain = w.HTML()
        self.bars = w.HTML()
        self.trace = None
        self.diff = None
        self._previous = None  # (spec, machine, root_port) last plugged
        for c in (self.type, self.machine, self.root_port, self.options):
            c.observe(self._changed, names="value")
        self.type.observe(lambda c: setattr(self.option, "options", self._props(c["new"])), names="value")
        self.set_button.on_click(lambda _: self.set_option(self.option.value, self.option_value.value))
        tabs = w.Tab(children=[self.diff_view, self.grid, self.chain, self.bars])
        for i, t in enumerate(("diff vs previous", "config space", "capabilities", "BARs")):
            tabs.set_title(i, t)
        super().__init__([w.HBox([self.type, self.machine, self.root_port]), self.options,
                          w.HBox([self.option, self.option_value, self.set_button]),
                          self.status, tabs], **kwargs)
        self._replug()

    @staticmethod
    def _props(type_name: str) -> list[str]:
        return sorted(p.name for p in type_properties(type_name).values() if not p.type.startswith("child<"))

    @property
    def spec(self) -> str:
        opts = self.options.value.strip().strip(",")
        return f"{self.type.value},{opts}" if opts else self.type.value

    def set_option(self, name: str, value: str) -> None:
        """Add ``name=value`` to the options, replacing an earlier value of ``name``."""
        kept = [o for o in self.options.value.split(",") if o and o.split("=", 1)[0] != name]
        self.options.value = ",".join(kept + [f"{name}={value}"])

    def _changed(self, change) -> None:
        self._replug()

    def _replug(self) -> None:
        machine, rp = self.machine.value, self.root_port.value and self.machine.value == "q35"
        current = (self.spec, machine, rp)
        try:
            trace = plug(current[0], machine, rp)
            error = None
        except PlugError as err:
            trace, error = err.trace, str(err)
        except VirtioLabError as err:
            trace, error = None, str(err)
        note = " (root port needs q35: ignored)" if self.root_port.value and machine != "q35" else ""
        if error:
            self.status.value = (f'{style_tag()}<div class="vl vl-err"><b>QEMU refuses</b> '
                                 f'<code>{esc(current[0])}</code>: {esc(error)}</div>')
        else:
            self.status.value = (f'{style_tag()}<div class="vl">plugged <code>{esc(current[0])}</code> on '
                                 f'{esc(trace.machine.label)}: {len(trace.events)} steps{esc(note)}</div>')
        if trace is None:  # the spec did not parse: nothing to compare; keep the last good one
            return
        if self._previous is not None and self._previous != current:
            pspec, pm, prp = self._previous
            self.diff = diff(pspec, current[0], machine=pm, root_port=prp, machine_b=machine, root_port_b=rp)
            self.diff_view.value = diff_html(self.diff)
        elif self._previous is None:
            self.diff_view.value = f"{style_tag()}<div class='vl'>Change something to see what it changes.</div>"
        if trace is not None and trace.events:
            self.trace = trace
            self.grid.value = hex_grid_html(trace)
            self.chain.value = chain_html(trace)
            self.bars.value = bar_map_html(trace)
        self._previous = current
