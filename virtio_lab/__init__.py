"""virtio_lab: step through how QEMU 7.2 plugs a virtio-pci device, byte for byte.

    >>> import virtio_lab
    >>> trace = virtio_lab.plug("virtio-net-pci")
    >>> trace.events[0].function
    'virtio_instance_init_common'

The folders are the layers, each importing only the ones before it: ``pci`` (QEMU's
hw/pci), ``hw`` (the virtio-pci proxy, the devices, the machines, the plug), ``guest``
(SeaBIOS and the Linux driver), ``text`` (lspci, explain, dump, diff), ``live`` (a real
QEMU), ``course`` (exercises, sessions), ``views`` (HTML) and ``widgets`` (ipywidgets).
Everything up to ``course`` is standard-library only.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any

from ._moved import install as _install_moved_modules

__version__ = "0.1.0"
QEMU_VERSION = "7.2"

# name -> module that defines it; imported on first use so `import virtio_lab` stays light
_LAZY = {
    "plug": "virtio_lab.hw.plug",
    "Trace": "virtio_lab.hw.plug",
    "Machine": "virtio_lab.hw.machine",
    "PlugError": "virtio_lab.hw.virtio_pci",
    "probe": "virtio_lab.guest.probe",
    "queue": "virtio_lab.guest.queue",
    "ConfigAccess": "virtio_lab.pci.access",
    "dump": "virtio_lab.text.dump",
    "compare_dumps": "virtio_lab.text.compare",
    "diff": "virtio_lab.text.diff",
    "Session": "virtio_lab.course.session",
    "VirtioLabError": "virtio_lab.errors",
}

#: Results of the layers below that a notebook shows as HTML, and the view that draws each.
#: The layers know no screen; IPython is told by type name (nothing is imported until a
#: result is shown) which function of ``views`` renders them.
_HTML_VIEWS = {
    ("virtio_lab.guest.probe", "ProbeResult"): ("virtio_lab.views.probeview", "probe_html"),
    ("virtio_lab.text.diff", "Diff"): ("virtio_lab.views.diffview", "diff_html"),
}

__all__ = ["__version__", "QEMU_VERSION", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'virtio_lab' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def _html_view(module: str, function: str):
    def render(obj: Any) -> str:
        return getattr(import_module(module), function)(obj)
    return render


def _register_html_views() -> None:
    """Tell a running IPython (Jupyter's kernel) how to show the results in _HTML_VIEWS."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["text/html"]
    for (module, name), (view_module, function) in _HTML_VIEWS.items():
        formatter.for_type_by_name(module, name, _html_view(view_module, function))


_install_moved_modules()
_register_html_views()
