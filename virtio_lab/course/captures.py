"""Real captures the notebooks read, shipped with the package (``virtio_lab/data``).

The notebooks compare the emulation with real machines: what a real QEMU 7.2 reported over qtest
for a plugged device (``qemu_capture``) and what a real Linux 6.1 guest read from it after
SeaBIOS 1.16 and its driver ran (``guest_capture``). They are package data, not files of the
repository's test suite, so a notebook finds them wherever virtio_lab is installed: a Binder
image, a JupyterHub, or JupyterLite, where the kernel has no filesystem but the package's.

The files are the captures themselves (``tests/data/`` links to them: the test suite checks the
emulation against the same bytes). Each is a name such as ``pc__virtio-net-pci`` (machine, two
underscores, the ``-device`` type; ``q35rp`` is q35 behind a pcie-root-port).
"""

from __future__ import annotations

import json
from importlib import resources

from ..errors import VirtioLabError

__all__ = ["guest_capture", "qemu_capture", "capture_names"]

#: kind -> folder under virtio_lab/data
_FOLDERS = {"guest": ("guest",), "qemu": ("qemu-7.2", "cases")}


def _folder(kind: str):
    return resources.files("virtio_lab").joinpath("data", *_FOLDERS[kind])


def capture_names(kind: str = "guest") -> list[str]:
    """The stored captures of ``kind`` ("guest" or "qemu"), by name."""
    return sorted(p.name[:-5] for p in _folder(kind).iterdir() if p.name.endswith(".json"))


def _load(kind: str, name: str) -> dict:
    names = capture_names(kind)
    if name not in names:  # also keeps a name from being a path ("../x")
        raise VirtioLabError(f"no stored {kind} capture named {name!r}; there are: {', '.join(names)}")
    return json.loads(_folder(kind).joinpath(f"{name}.json").read_text())


def guest_capture(name: str = "pc__virtio-net-pci") -> dict:
    """What a real Linux 6.1 guest under QEMU 7.2 and SeaBIOS 1.16 read from the device: ``config``
    (hex), ``bars`` (index, kind, size, address), ``rom_address``, ``interrupt_line``, ``status``,
    ``driver_features``, ... as ``python -m virtio_lab.live.guest`` captured it."""
    return _load("guest", name)


def qemu_capture(name: str = "pc__virtio-net-pci") -> dict:
    """What a real QEMU 7.2 reported for the plugged device over qtest, before any guest ran
    (``virtio_lab.live.qemu.probe``'s record: config, wmask, bars, caps, feature words, ...)."""
    return _load("qemu", name)
