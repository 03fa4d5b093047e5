"""QEMU's function names that differ between the releases virtio_lab models, as data.

The trace cites QEMU 7.2 (``DEFAULT_RELEASE``) as ``file:function``. A function another
release spells differently is a row of ``RENAMED``: keyed by release, then by the 7.2
citation, giving that release's. A release profile passes its release to :func:`cite`;
everything else stays one code path. Each row was read in that release's source (and
tests/test_citations.py checks every row against the release's function index).
"""

from __future__ import annotations

__all__ = ["DEFAULT_RELEASE", "RELEASES", "RENAMED", "cite", "names_of"]

from .release import DEFAULT_RELEASE, release_names

RELEASES = release_names()

Cite = tuple[str, str]  # (file, function)

#: release -> {QEMU 7.2's (file, function): that release's (file, function)}
RENAMED: dict[str, dict[Cite, Cite]] = {
    # qbus_create_inplace was renamed qbus_init in QEMU 6.2
    "5.2": {("hw/core/bus.c", "qbus_init"): ("hw/core/bus.c", "qbus_create_inplace")},
    "7.2": {},
    "10.0": {},
}


def cite(source: str, function: str, release: str = DEFAULT_RELEASE) -> Cite:
    """``(file, function)`` of 7.2's ``source:function`` as ``release`` names it."""
    return RENAMED.get(release, {}).get((source, function), (source, function))


def names_of(function: str) -> frozenset[str]:
    """Every name any modelled release gives the function 7.2 (or another release) calls
    ``function``: ``names_of("qbus_create_inplace") == {"qbus_create_inplace", "qbus_init"}``."""
    names = {function}
    for table in RENAMED.values():
        for (_, new72), (_, other) in table.items():
            if function in (new72, other):
                names |= {new72, other}
    return frozenset(names)
