"""Budgets of the views and widgets (issue 5): grid render ≤ 2 ms, a widget step (kernel
side) ≤ 30 ms, the static report ≤ 1 s.

Collected by benchmarks/run.py (``BENCHMARKS = [(name, budget_seconds, callable), ...]``).
The grid is timed cold (its memo caches cleared every call, as for a state never shown
before) and warm (stepping back and forth over states already seen).
"""

from __future__ import annotations

import sys
from itertools import cycle
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from virtio_lab.hw.plug import plug  # noqa: E402
from virtio_lab.views.report import report_html  # noqa: E402
from virtio_lab.views import hex_grid_html, step_html  # noqa: E402
from virtio_lab.views._common import labels_for  # noqa: E402
from virtio_lab.views.hexgrid import _cells  # noqa: E402

_NET = plug("virtio-net-pci")
_NET_RP = plug("virtio-net-pci", "q35", root_port=True)
_MSIX = next(e.index for e in _NET.events if e.detail("cap_name") == "MSI-X")
_STEPS = cycle(range(len(_NET.events)))


def grid_cold() -> None:
    labels_for.cache_clear()
    _cells.cache_clear()
    hex_grid_html(_NET, _MSIX)


def grid_cold_4k() -> None:
    labels_for.cache_clear()
    _cells.cache_clear()
    hex_grid_html(_NET_RP, len(_NET_RP.events) - 1)


def grid_warm() -> None:
    hex_grid_html(_NET, next(_STEPS))


def step_all_views() -> None:
    step_html(_NET, next(_STEPS))


_explorer = None


def widget_step() -> None:
    """One ▶ click: every widgets.HTML of the explorer re-rendered (kernel side)."""
    global _explorer
    if _explorer is None:
        try:
            from virtio_lab.widgets import PlugExplorer
        except ImportError:  # ipywidgets missing: nothing to time
            return
        _explorer = PlugExplorer("virtio-net-pci")
    if _explorer.step == len(_explorer.trace.events) - 1:
        _explorer.go(0)
    else:
        _explorer.next_button.click()


def report_net() -> None:
    labels_for.cache_clear()  # cold: nothing memoised from earlier runs
    _cells.cache_clear()
    report_html("virtio-net-pci")


def report_net_root_port() -> None:
    labels_for.cache_clear()
    _cells.cache_clear()
    report_html("virtio-net-pci", "q35", True)


BENCHMARKS = [
    ("views: hex grid 256 B, cold (new state)", 0.002, grid_cold),
    ("views: hex grid 256 B + 4 KiB, cold", 0.002, grid_cold_4k),
    ("views: hex grid 256 B, stepping (memoised)", 0.002, grid_warm),
    ("views: one step, all views (HTML)", 0.030, step_all_views),
    ("widgets: PlugExplorer ▶ step (kernel side)", 0.030, widget_step),
    ("report: virtio-net-pci on pc (plug + 52 steps)", 1.0, report_net),
    ("report: virtio-net-pci on q35 root port", 1.0, report_net_root_port),
]
