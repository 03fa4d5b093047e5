"""The core works where JupyterLite runs it: Pyodide's standard library, no processes, no threads.

Pyodide (docs "Pyodide Python compatibility") removes some stdlib modules, ships ssl,
lzma and sqlite3 only on request, and cannot start processes, threads or sockets. A
fresh interpreter with exactly those limits imports virtio_lab and runs what a lesson
runs: plug every model, render every view, write the self-contained report, decode
with lspci. The wheel side (pure Python, no dependencies) is checked from the sources.
See docs/jupyterlite.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: removed from Pyodide's stdlib, or excluded (fcntl & co.), or unvendored (loaded only on request)
ABSENT = ["curses", "dbm", "ensurepip", "idlelib", "lib2to3", "tkinter", "turtle", "turtledemo", "venv",
          "fcntl", "grp", "pwd", "resource", "syslog", "termios", "pty", "tty",
          "ssl", "_ssl", "lzma", "_lzma", "sqlite3", "_sqlite3"]

BROWSER_LIKE = f"""
import sys, importlib.abc
class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ABSENT!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in Pyodide)", name=name)
sys.meta_path.insert(0, _Absent())
for name in {ABSENT!r}:
    sys.modules.pop(name, None)

def _refuse(*a, **k):
    raise RuntimeError("the browser (WebAssembly) cannot start processes, threads or sockets")
import subprocess, threading, socket, os
subprocess.Popen.__init__ = _refuse
threading.Thread.start = _refuse
socket.socket.__init__ = _refuse
os.fork = _refuse
"""

LESSON = """
import virtio_lab
from virtio_lab import plug
from virtio_lab.hw.devices import supported_types
from virtio_lab.views.report import report_html
from virtio_lab.views import bar_map_html, chain_html, event_list_html, hex_grid_html, tree_html
from virtio_lab.text.lspci import lspci_text

BACKEND = {"virtio-blk": "drive=d0", "virtio-9p": "fsdev=fs0,mount_tag=share", "virtio-crypto": "cryptodev=cr0",
           "virtio-mem": "memdev=mem0", "virtio-pmem": "memdev=mem0"}
plugged = 0
for t in sorted(supported_types()):
    family = t.split("-pci")[0]
    spec = t + ("," + BACKEND[family] if family in BACKEND else "")
    for machine, rp in (("pc", False), ("q35", True)):
        try:
            trace = plug(spec, machine, rp)
        except virtio_lab.errors.VirtioLabError:
            continue  # a QEMU refusal (e.g. virtio-iommu behind a root port) is a result too
        plugged += 1
net = plug("virtio-net-pci")
for view in (hex_grid_html, chain_html, bar_map_html, tree_html, event_list_html):
    assert "<" in view(net, 45)
page = report_html(net)
assert page.startswith("<!DOCTYPE html>") and "http://" not in page and "https://" not in page
assert "Red Hat, Inc." in lspci_text("virtio-net-pci")
print("plugged", plugged)
print("loaded", sorted(m for m in sys.modules if m.split(".")[0] in ("ipywidgets", "matplotlib", "pandas")))
"""


def test_core_runs_with_pyodides_limits():
    run = subprocess.run([sys.executable, "-I", "-c", BROWSER_LIKE + LESSON], cwd=REPO,
                         capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr[-3000:]
    out = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    assert int(out["plugged"]) >= 55  # 30 models on pc and behind a q35 root port, less a few refusals
    assert out["loaded"] == "[]"  # the core pulls in neither widgets nor plotting nor pandas


def test_the_limits_are_real():
    """The same preamble does stop what the browser cannot do (so the test above means something)."""
    probe = BROWSER_LIKE + """
import subprocess, threading
for attempt in (lambda: __import__("termios"), lambda: __import__("sqlite3"),
                lambda: subprocess.run(["true"]), lambda: threading.Thread(target=print).start()):
    try:
        attempt()
    except (ImportError, RuntimeError) as err:
        print(type(err).__name__)
"""
    run = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, timeout=60)
    assert run.stdout.split() == ["ModuleNotFoundError", "ModuleNotFoundError", "RuntimeError", "RuntimeError"]


def test_the_wheel_is_pure_python_without_dependencies():
    """py3-none-any: no compiled code in the package, no runtime requirement, one package shipped."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["dependencies"] == []
    assert meta["build-system"]["build-backend"] == "hatchling.build"
    assert meta["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["virtio_lab"]
    compiled = [p for p in (REPO / "virtio_lab").rglob("*")
                if p.suffix in {".so", ".pyd", ".dylib", ".c", ".pyx", ".cpp"}]
    assert compiled == []
