"""Machine types and their compat properties, applied as QEMU applies global properties.

Each versioned machine type (``pc-i440fx-5.2``, ``pc-q35-7.2``) carries a list of global
properties (hw/core/machine.c ``hw_compat_X_Y``, hw/i386/pc.c ``pc_compat_X_Y``) that put
back the defaults of QEMU X.Y, so a guest migrated from that QEMU sees the same device.
The lists are data (``data/qemu-<release>/compat.json``, transcribed from the release's
source by ``tools/compat_tables.py``); this module only reads and applies them:

- qom/object.c: object_apply_global_props: a global applies to an object whose type is
  the global's driver or inherits from it (object_dynamic_cast), in list order, so a later
  entry for the same property wins; hw/core/qdev.c: device_post_init runs it (through
  object_apply_compat_props) once the instance, and the child its instance_init creates,
  exists, so the user's ``-device`` options, set afterwards, win over every global.
- The QOM parents come from the release's own binary (``data/qemu-<release>/qom-types.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from ..errors import VirtioLabError
from .release import release

__all__ = ["GlobalProperty", "machine_types", "machine_globals", "qom_ancestors",
           "device_globals", "MACHINE_PREFIX"]

#: The board each machine-type family builds, and how QEMU names its versioned types.
MACHINE_PREFIX = {"pc": "pc-i440fx", "q35": "pc-q35"}


@dataclass(frozen=True)
class GlobalProperty:
    """One compat property: set ``property`` to ``value`` on every ``driver`` (and subtypes)."""

    driver: str
    property: str
    value: str
    array: str  # the C array it is transcribed from: hw_compat_5_2, pc_compat_9_1, ...
    optional: bool = False


def _data(qemu: str, name: str) -> dict:
    path = resources.files("virtio_lab").joinpath("data").joinpath(f"qemu-{qemu}").joinpath(name)
    return json.loads(path.read_text())


@lru_cache(maxsize=None)
def _compat(qemu: str) -> dict:
    return _data(release(qemu).version, "compat.json")


@lru_cache(maxsize=None)
def _parents(qemu: str) -> dict:
    return _data(release(qemu).version, "qom-types.json")["parents"]


def machine_types(qemu: str) -> tuple[str, ...]:
    """The versioned machine types release ``qemu`` offers that virtio_lab models (5.2 up)."""
    return tuple(_compat(qemu)["machines"])


@lru_cache(maxsize=None)
def machine_globals(qemu: str, machine_type: str) -> tuple[GlobalProperty, ...]:
    """The compat properties of ``machine_type`` in release ``qemu``, in QEMU's order."""
    data = _compat(qemu)
    arrays = data["machines"].get(machine_type)
    if arrays is None:
        raise VirtioLabError(f"QEMU {qemu} has no machine type {machine_type}")
    return tuple(GlobalProperty(row[0], row[1], row[2], name, "optional" in row[3:])
                 for name in arrays for row in data["arrays"][name])


@lru_cache(maxsize=None)
def qom_ancestors(qemu: str, type_name: str) -> tuple[str, ...]:
    """``type_name`` and its QOM parents up to ``object`` (release ``qemu``'s hierarchy)."""
    parents = _parents(qemu)
    out = []
    name: Any = type_name
    while name and name not in out:
        out.append(name)
        name = parents.get(name)
    return tuple(out)


@lru_cache(maxsize=1024)
def device_globals(qemu: str, machine_type: str, proxy_type: str,
                   vdev_type: str) -> tuple[GlobalProperty, ...]:
    """The compat properties that reach one virtio-pci device: those whose driver is the
    proxy's type or a parent of it, or the virtio child's (its properties are aliased onto
    the proxy, so one flat property set holds both)."""
    types = set(qom_ancestors(qemu, proxy_type)) | set(qom_ancestors(qemu, vdev_type))
    return tuple(g for g in machine_globals(qemu, machine_type) if g.driver in types)
