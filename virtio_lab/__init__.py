"""virtio_lab: step through how QEMU 7.2 plugs a virtio-pci device, byte for byte.

    >>> import virtio_lab
    >>> trace = virtio_lab.plug("virtio-net-pci")
    >>> trace.events[0].function
    'virtio_instance_init_common'

The core is standard-library only; ``virtio_lab.views`` renders HTML and
``virtio_lab.widgets`` (ipywidgets) steps through a trace interactively.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"
QEMU_VERSION = "7.2"

# name -> module that defines it; imported on first use so `import virtio_lab` stays light
_LAZY = {
    "plug": "virtio_lab.plug",
    "probe": "virtio_lab.probe",
    "Trace": "virtio_lab.plug",
    "Machine": "virtio_lab.plug",
    "dump": "virtio_lab.dump",
    "VirtioLabError": "virtio_lab.errors",
    "PlugError": "virtio_lab.virtio_pci",
    "ConfigAccess": "virtio_lab.access",
    "compare_dumps": "virtio_lab.compare",
    "diff": "virtio_lab.diff",
    "Session": "virtio_lab.session",
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
