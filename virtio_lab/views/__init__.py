"""Views: pure functions of a trace (or a state) that return HTML, and notebook objects.

Every function takes ``(trace, step)`` or a :class:`~virtio_lab.hw.state.PlugState` and
returns an HTML string with inline CSS (no network, light and dark themes alike);
the classes wrap them with ``_repr_html_``. Standard library only, so every view renders
where matplotlib and pandas are absent (JupyterLite); :func:`draw_bar_map` (matplotlib) and
``EventLog.dataframe()`` (pandas) import their library when called.

    >>> from virtio_lab.views import HexGrid
    >>> HexGrid(trace, 28)            # doctest: +SKIP
"""

from __future__ import annotations

from ._common import CSS
from .barmap import BarMap, bar_map_html, draw_bar_map, region_windows
from .chain import CapChain, chain_html
from .crosscheck import CrossCheckView, crosscheck_html
from .diffview import diff_html
from .events import EventLog, event_list_html
from .hexgrid import RADIXES, HexGrid, hex_grid_html, selection_offsets
from .ring import InterruptPath, MemoryMap, RingView, interrupt_path_html, memory_map_html, ring_html
from .step import StepView, step_header_html, step_html, warnings_html
from .tree import DeviceTree, tree_html

__all__ = ["CSS", "RADIXES", "hex_grid_html", "HexGrid", "selection_offsets", "chain_html", "CapChain",
           "bar_map_html", "BarMap", "draw_bar_map", "region_windows", "tree_html", "DeviceTree",
           "event_list_html", "EventLog", "step_html", "step_header_html", "warnings_html",
           "StepView", "diff_html", "crosscheck_html", "CrossCheckView", "RingView", "MemoryMap",
           "InterruptPath", "ring_html", "memory_map_html", "interrupt_path_html"]
