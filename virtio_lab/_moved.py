"""Module paths from before the layers had folders (virtio_lab 0.1), still importable.

``import virtio_lab.layout`` gives the module that now lives at ``virtio_lab.pci.layout``
— the same module object, so nothing is loaded twice. Not kept: ``virtio_lab.plug``,
``.probe``, ``.dump`` and ``.diff`` are the functions (importing a module of the same name
would replace the function on the package; the modules are ``hw.plug``, ``guest.probe``,
``text.dump`` and ``text.diff``), and ``virtio_lab.guest`` is now the guest-side package
(the real-guest runner is ``virtio_lab.live.guest``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__all__ = ["MOVED", "install"]

MOVED = {
    "virtio_lab.regs": "virtio_lab.pci.regs",
    "virtio_lab.bits": "virtio_lab.pci.bits",
    "virtio_lab.config_space": "virtio_lab.pci.config_space",
    "virtio_lab.capability": "virtio_lab.pci.capability",
    "virtio_lab.bar": "virtio_lab.pci.bar",
    "virtio_lab.msix": "virtio_lab.pci.msix",
    "virtio_lab.pcie": "virtio_lab.pci.pcie",
    "virtio_lab.access": "virtio_lab.pci.access",
    "virtio_lab.checks": "virtio_lab.pci.checks",
    "virtio_lab.layout": "virtio_lab.pci.layout",
    "virtio_lab.state": "virtio_lab.hw.state",
    "virtio_lab.devices": "virtio_lab.hw.devices",
    "virtio_lab.virtio_pci": "virtio_lab.hw.virtio_pci",
    "virtio_lab.board": "virtio_lab.hw.board",
    "virtio_lab.spec": "virtio_lab.hw.spec",
    "virtio_lab.guest_access": "virtio_lab.hw.guest_access",
    "virtio_lab.firmware": "virtio_lab.guest.firmware",
    "virtio_lab.driver": "virtio_lab.guest.driver",
    "virtio_lab.lspci": "virtio_lab.text.lspci",
    "virtio_lab.explain": "virtio_lab.text.explain",
    "virtio_lab.compare": "virtio_lab.text.compare",
    "virtio_lab.qemu": "virtio_lab.live.qemu",
    "virtio_lab.crosscheck": "virtio_lab.live.crosscheck",
    "virtio_lab.guest_kit": "virtio_lab.live.guest_kit",
    "virtio_lab.exercises": "virtio_lab.course.exercises",
    "virtio_lab.session": "virtio_lab.course.session",
    "virtio_lab.report": "virtio_lab.views.report",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path and loads it as the module at its new path."""

    def find_spec(self, name, path=None, target=None):
        if name not in MOVED:
            return None
        return importlib.util.spec_from_loader(name, self)

    def exec_module(self, module) -> None:
        # The import system returns whatever sys.modules holds under the name once this
        # returns, so the old name binds the real module (its own __spec__ untouched).
        sys.modules[module.__name__] = importlib.import_module(MOVED[module.__name__])


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
