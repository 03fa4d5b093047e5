"""Browser tests: what a student sees in JupyterLab, Voilà and the static report.

Python Playwright (sync API) drives Debian's Chromium by its path: Playwright's own
browser download is not available here. The whole directory skips, with the reason,
only when no Chromium is installed (``.ci/run`` installs it when missing).

Servers run from this venv on free local ports, on a temporary copy of the notebooks
(running cells must not touch the checkout), with private Jupyter config/data/runtime,
settings and workspace dirs, so nothing from the machine's own Jupyter setup leaks in,
and with every network call JupyterLab would make (news, update check, PyPI extension
manager) switched off.

Screenshots go to ``.screenshots/`` (ignored). ``VIRTIO_LAB_DOCS_SCREENSHOTS=1`` also
refreshes the committed ones in ``docs/`` (lab.png, lab-dark.png, voila.png, explorer.png, ...).
``VIRTIO_LAB_KERNEL_STARTUP=FILE`` runs FILE at every kernel's start (an IPython
startup file): the hook for checking that the suite fails when the widget is broken.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .chromium import MISSING, chromium_path, launch

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SHOTS = REPO / ".screenshots"
DOCS_SHOTS = REPO / "docs"
BIN = Path(sys.executable).parent

#: generous: a cold kernel plus matplotlib import on a busy 2-core CI machine
TIMEOUT_MS = 60_000
SERVER_START_S = 90



# the fixture notebooks are run by these tests in a browser, not by nbval
collect_ignore_glob = ["notebooks/*"]


def pytest_collection_modifyitems(config, items):
    """Skip every browser test, with the reason, where no Chromium exists."""
    if chromium_path():
        return
    mark = pytest.mark.skip(reason=MISSING)
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(mark)


# -- browser ---------------------------------------------------------------------------

# Per test module, like the servers: nothing of the browser suite outlives its module, so the
# rest of `make test` (nbval runs its own kernels) has both cores and the memory back.
@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    path = chromium_path()
    if not path:
        pytest.skip("no Chromium")
    try:  # a missing playwright is a broken install (it is in the [test] extra), not a reason to skip
        from playwright import sync_api
    except ImportError as err:
        pytest.fail(f"playwright is not installed ({err}): pip install -e '.[test]'")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        ctx = launch(pw, profile)  # a fresh empty profile each time: no state carried between runs
        ctx.set_default_timeout(TIMEOUT_MS)
        try:
            yield ctx
        finally:
            ctx.close()


@dataclass
class Console:
    """Console messages and uncaught page errors of one page."""

    messages: list = field(default_factory=list)
    page_errors: list = field(default_factory=list)
    failed_requests: list = field(default_factory=list)

    def errors(self, allow: tuple[re.Pattern, ...] = ()) -> list[str]:
        out = [f"pageerror: {e}" for e in self.page_errors]
        for kind, text, url in self.messages:
            if kind not in ("error", "assert"):
                continue
            if any(p.search(text) or p.search(url) for p in allow):
                continue
            out.append(f"console.{kind}: {text} ({url})")
        return out


@pytest.fixture
def page(browser):
    """A fresh tab that records console messages, page errors and failed requests."""
    pg = browser.new_page()
    log = Console()
    pg.on("console", lambda m: log.messages.append((m.type, m.text, (m.location or {}).get("url", ""))))
    pg.on("pageerror", lambda e: log.page_errors.append(str(e)))
    pg.on("requestfailed", lambda r: log.failed_requests.append((r.url, r.failure)))
    pg.console_log = log
    try:
        yield pg
    finally:
        pg.close()


def take_shot(page, name: str, *, docs: bool | str = False, locator=None) -> Path:
    """Screenshot to .screenshots/NAME.png; with ``docs`` (True, or the name to use there) and
    ``VIRTIO_LAB_DOCS_SCREENSHOTS`` set, also to docs/."""
    SHOTS.mkdir(exist_ok=True)
    out = SHOTS / f"{name}.png"
    (locator or page).screenshot(path=str(out))
    if docs and os.environ.get("VIRTIO_LAB_DOCS_SCREENSHOTS"):
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, DOCS_SHOTS / (f"{docs}.png" if isinstance(docs, str) else out.name))
    return out


@pytest.fixture(scope="session")
def shot():
    """``shot(page, name, docs=..., locator=...)``: see :func:`take_shot`."""
    return take_shot


# -- servers ---------------------------------------------------------------------------
#
# Each server runs in its own process group, so stopping it also stops the kernels it
# started, even when it will not shut down cleanly; an atexit hook catches the ones a
# hard interruption left behind.

_RUNNING: set[subprocess.Popen] = set()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = SERVER_START_S) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError) as err:
            last = err
        time.sleep(0.25)
    raise RuntimeError(f"server not up after {timeout}s ({last}):\n{log.read_text()[-3000:]}")


def start(cmd: list[str], *, cwd: Path, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    _RUNNING.add(proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (server + kernels), SIGKILL what is left."""
    _RUNNING.discard(proc)
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        try:  # the server is gone; its kernels may still be shutting down
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


@atexit.register
def _stop_leftovers() -> None:
    for proc in list(_RUNNING):
        stop(proc)


def make_home(root: Path, startup: str | None = None) -> dict:
    """A private Jupyter home (config, data, runtime, settings, workspaces, IPython): its env.

    ``startup`` is copied in as an IPython startup file, so it runs at every kernel's start.
    """
    env = dict(os.environ)
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                     ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("IPYTHONDIR", "ipython")):
        (root / sub).mkdir(parents=True)
        env[var] = str(root / sub)
    env.pop("JUPYTER_PATH", None)
    env.pop("VIRTIO_LAB_KERNEL_STARTUP", None)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYTHONHASHSEED"] = "0"
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    settings = root / "settings"
    # never ask about news, never fetch it; toasts would cover the notebook in screenshots
    notif = settings / "@jupyterlab" / "apputils-extension"
    notif.mkdir(parents=True)
    (notif / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    if startup:
        dest = root / "ipython" / "profile_default" / "startup"
        dest.mkdir(parents=True)
        shutil.copyfile(startup, dest / "00-virtio-lab-test.py")
    return env


@pytest.fixture(scope="session")
def jupyter_home(tmp_path_factory) -> tuple[Path, dict]:
    """The servers' private home; ``VIRTIO_LAB_KERNEL_STARTUP`` (if set) runs in every kernel."""
    home = tmp_path_factory.mktemp("jupyter-home")
    return home, make_home(home, os.environ.get("VIRTIO_LAB_KERNEL_STARTUP"))


@pytest.fixture(scope="session")
def served_root(tmp_path_factory) -> Path:
    """A copy of the notebooks the servers serve: notebooks/ plus this suite's own."""
    root = tmp_path_factory.mktemp("served")
    if (REPO / "notebooks").is_dir():
        shutil.copytree(REPO / "notebooks", root / "notebooks",
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    else:
        (root / "notebooks").mkdir()
    shutil.copytree(HERE / "notebooks", root / "browser")
    return root


@dataclass
class Server:
    base: str
    token: str
    root: Path
    log: Path

    def url(self, path: str, **query: str) -> str:
        q = "&".join([f"{k}={v}" if v != "" else k for k, v in query.items()] + [f"token={self.token}"])
        return f"{self.base}/{path.lstrip('/')}?{q}"


def start_lab(root: Path, env: dict, log: Path) -> tuple[subprocess.Popen, Server]:
    """JupyterLab from this venv on a free port with a token, headless, no outside network.

    ``expose_app_in_browser`` gives the tests ``window.jupyterapp`` (as Galata does):
    commands for "run all" and the theme, and the kernel's status.
    """
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--ServerApp.terminals_enabled=False", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:  # CI containers run as root; JupyterLab refuses that unless told
        cmd.append("--ServerApp.allow_root=True")
    proc = start(cmd, cwd=root, env=env, log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/status?token={token}", proc, log)
    except BaseException:
        stop(proc)
        raise
    return proc, Server(base, token, root, log)


@pytest.fixture(scope="module")
def lab(jupyter_home, served_root, tmp_path_factory):
    """JupyterLab serving the copy of the notebooks."""
    _, env = jupyter_home
    proc, srv = start_lab(served_root, env, tmp_path_factory.mktemp("lab-log") / "lab.log")
    try:
        yield srv
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def voila_app(jupyter_home, served_root, tmp_path_factory):
    """Voilà serving the app notebook on a free port with a token (``?theme=dark`` allowed)."""
    _, env = jupyter_home
    if shutil.which("voila", path=str(BIN)) is None:
        pytest.fail("voila is not installed in this venv: it is in the [lab] extra")
    app = served_root / "notebooks" / "app.ipynb"
    port, token = free_port(), secrets.token_hex(16)
    log = tmp_path_factory.mktemp("voila-log") / "voila.log"
    cmd = [str(BIN / "voila"), str(app), "--no-browser", "--Voila.ip=127.0.0.1", f"--port={port}",
           "--Voila.port_retries=0", f"--token={token}", "--show_tracebacks=True"]
    proc = start(cmd, cwd=served_root / "notebooks", env=env, log=log)
    try:
        base = f"http://127.0.0.1:{port}"
        # a static file: the page itself would start a kernel (Voilà has no /api/status)
        wait_http(f"{base}/voila/static/voila.js", proc, log)
        yield Server(base, token, served_root, log)
    finally:
        stop(proc)


#: the kernel startup file of the meta-test: the explorer cannot render in the browser
BROKEN_STARTUP = HERE / "broken_widget_startup.py"


@pytest.fixture(scope="module")
def broken_lab(served_root, tmp_path_factory):
    """A second JupyterLab whose kernels all run broken_widget_startup.py."""
    home = tmp_path_factory.mktemp("broken-home")
    proc, srv = start_lab(served_root, make_home(home, str(BROKEN_STARTUP)), home / "lab.log")
    try:
        yield srv
    finally:
        stop(proc)
