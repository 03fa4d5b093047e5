"""An IPython startup file that breaks the explorer in the browser only (the meta-test's kernel).

It stands for a missing or mismatched front-end extension, the commonest way a widget
that passes every headless test is blank for the student: the explorer's model now
names an npm module the page does not have. The kernel side still works (the cell
runs, ``PlugExplorer`` steps headless), so only a check in a real browser can notice.
Used by test_broken_widget.py, and by hand:

    VIRTIO_LAB_KERNEL_STARTUP=tests/browser/broken_widget_startup.py pytest tests/browser
"""

import traitlets

import virtio_lab.widgets as _widgets
from virtio_lab.widgets import app as _app
from virtio_lab.widgets import explorer as _explorer

_MISSING = "@virtio-lab/not-installed"


class PlugExplorer(_explorer.PlugExplorer):
    _model_module = traitlets.Unicode(_MISSING).tag(sync=True)
    _view_module = traitlets.Unicode(_MISSING).tag(sync=True)


_explorer.PlugExplorer = _widgets.PlugExplorer = _app.PlugExplorer = PlugExplorer
