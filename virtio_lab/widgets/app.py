"""PlugApp: the explorer as a stand-alone app (Voilà): pick a device, then step through its plug."""

from __future__ import annotations

import ipywidgets as w

from ..errors import VirtioLabError
from ..hw.devices import supported_types
from ..views._common import esc, style_tag
from .explorer import PlugExplorer

__all__ = ["PlugApp"]

#: the backend every model of a family needs before QEMU will start it: the stand-ins
#: the core models (a 1 GiB null-co drive, a local fsdev, the builtin cryptodev, RAM)
_BACKENDS = {"virtio-blk-pci": "drive=d0", "virtio-9p-pci": "fsdev=fs0,mount_tag=share",
             "virtio-crypto-pci": "cryptodev=cr0", "virtio-mem-pci": "memdev=mem0",
             "virtio-pmem-pci": "memdev=mem0"}


def spec_for(type_name: str) -> str:
    """``type_name`` plus the backend ids it cannot start without (``virtio-blk-pci,drive=d0``)."""
    for family, backend in _BACKENDS.items():
        if type_name == family or type_name.startswith(family + "-"):
            return f"{type_name},{backend}"
    return type_name


class PlugApp(w.VBox):
    """A device picker over a :class:`PlugExplorer`: the whole of ``notebooks/app.ipynb``.

    ``device`` (every model QEMU 7.2 registers), ``machine`` (pc/q35) and
    ``root_port`` (q35 only: the checkbox is disabled on pc) re-plug on change and
    swap in a fresh explorer at step 0; ``.explorer`` is the one on screen. Models
    that need a backend get the core's stand-in (``drive=d0``, ...). One widget
    tree, so Voilà (which shows outputs only) needs nothing else.
    """

    def __init__(self, device: str = "virtio-net-pci", machine: str = "pc", root_port: bool = False, **kwargs):
        self.device = w.Dropdown(options=sorted(supported_types()), value=device, description="device",
                                 layout=w.Layout(width="380px"))
        self.machine = w.Dropdown(options=["pc", "q35"], value=machine, description="machine",
                                  layout=w.Layout(width="200px"))
        self.root_port = w.Checkbox(value=root_port, description="behind a pcie-root-port",
                                    disabled=machine != "q35")
        self.status = w.HTML()
        self.explorer: PlugExplorer | None = None
        for c in (self.device, self.machine, self.root_port):
            c.observe(lambda _: self.replug(), names="value")
        super().__init__([], **kwargs)
        self.add_class("vl-app")
        self.replug()

    def replug(self) -> None:
        """Plug the picked device again and show a new explorer (or QEMU's refusal)."""
        q35 = self.machine.value == "q35"
        self.root_port.disabled = not q35
        root_port = self.root_port.value and q35
        try:
            spec = spec_for(self.device.value)
            self.explorer = PlugExplorer(spec, self.machine.value, root_port)
            trace = self.explorer.trace
            refused = f" — QEMU refuses it: {esc(str(trace.error))}" if trace.error else ""
            self.status.value = (f"{style_tag()}<div class='vl'><code>-device {esc(spec)}</code> on "
                                 f"{esc(trace.machine.label)}: {len(trace.events)} steps{refused}</div>")
            body = [self.explorer]
        except VirtioLabError as err:  # nothing to step through: say why, in one line
            self.explorer = None
            self.status.value = f"{style_tag()}<div class='vl vl-err'>{esc(str(err))}</div>"
            body = []
        pickers = w.HBox([self.device, self.machine, self.root_port])
        self.children = [pickers, self.status, *body]
