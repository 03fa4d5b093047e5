"""Debian's Chromium for Playwright: where it is, and how every suite launches it.

Shared by the browser tests (tests/browser/conftest.py) and the JupyterLite check
(tests/lite/run_lite.py, ``offline=True``). Playwright's own browser download is not
used: ``VIRTIO_LAB_CHROMIUM`` or ``chromium`` on PATH (.ci/run installs Debian's).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
#: no host name resolves but loopback: a request that slips past a route still goes nowhere
OFFLINE_FLAGS = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
MISSING = ("no Chromium: `apt-get install chromium` (.ci/run does this) "
           "or set VIRTIO_LAB_CHROMIUM to a Chromium binary")


def chromium_path() -> str | None:
    env = os.environ.get("VIRTIO_LAB_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def launch(pw, profile: Path, *, offline: bool = False, args: tuple[str, ...] = (), **context_options):
    """A persistent context (the only way to give Chromium its own fresh ``--user-data-dir``) of
    Debian's Chromium, headless, 1400×1000; ``offline``: host resolution blocked but loopback."""
    path = chromium_path()
    if not path:
        raise RuntimeError(MISSING)
    return pw.chromium.launch_persistent_context(
        str(profile), executable_path=path, headless=True,
        args=[*FLAGS, *(OFFLINE_FLAGS if offline else []), *args],
        viewport={"width": 1400, "height": 1000}, device_scale_factor=1, **context_options)
