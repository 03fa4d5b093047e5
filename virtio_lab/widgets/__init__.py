"""Interactive layer (ipywidgets): the only package in virtio_lab that imports ipywidgets.

``PlugExplorer(spec)`` steps through a plug with ◀ ▶, a slider, Play and "run to";
``WhatIf()`` re-plugs on every change and shows the diff against the previous
configuration; ``PlugApp()`` is the explorer under a device picker (the Voilà
app, ``make app``). They only index into a precomputed trace and feed ``widgets.HTML``
from the pure views in :mod:`virtio_lab.views`, so their logic runs headless:
set ``.value``, call ``.click()``, read ``.value`` back.
"""

from .app import PlugApp
from .explorer import PlugExplorer
from .ring import RingExplorer
from .whatif import WhatIf

__all__ = ["PlugExplorer", "PlugApp", "WhatIf", "RingExplorer"]
