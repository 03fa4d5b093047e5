"""The course without a kernel: `jupyter nbconvert --to html` of the committed notebooks.

GitHub, nbviewer and an HTML export show only the stored outputs, so the static views must
carry the lesson by themselves. Each notebook is converted from its stored outputs (nothing
is executed: the kernel named below does not exist), and the pages are read back: the hex
grids, capability chains and BAR maps each notebook shows are there, and where a view shows
a finished plug its bytes, chain and BARs are those of a real QEMU 7.2 (tests/data/qemu-7.2)
or of a real Linux guest (tests/data/guest). The same file checks the course's shape: goals
first, at least two checked exercises a notebook, every exercise used, solutions collapsed
and not given away in the stored outputs.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from virtio_lab.course.exercises import EXERCISES, NOTEBOOKS

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"
DATA = Path(__file__).parent / "data"

# What each notebook shows as static HTML: (view, truth). truth names a real capture whose
# bytes / chain / BARs the view must equal; None where the view shows a step mid-plug or
# bytes the learner changed (then only its shape is checked).
QEMU = "qemu-7.2/{}.json"
SHOWN: dict[str, list[tuple[str, str | None]]] = {
    "00-start": [("hex", None), ("chain", None), ("bars", None)],              # StepView at msix_init
    "01-config-space": [("hex", QEMU.format("pc__virtio-net-pci")), ("hex", None)],
    "02-config-access": [("hex", QEMU.format("pc__virtio-net-pci"))],       # read through 0xcf8/0xcfc
    "03-capabilities": [("chain", QEMU.format("pc__virtio-net-pci")), ("hex", QEMU.format("pc__virtio-net-pci"))],
    "04-bars": [("bars", QEMU.format("pc__virtio-net-pci"))],
    "05-virtio-primer": [("bars", QEMU.format("pc__virtio-net-pci"))],
    "06-virtio-pci": [("bars", QEMU.format("pc__virtio-net-pci")),
                      ("hex", QEMU.format("pc__virtio-net-pci__disable-modern-on"))],
    "07-plug-timeline": [("hex", None), ("chain", None), ("bars", None)],      # StepView mid-plug
    "08-interrupts": [("hex", "guest/pc__virtio-net-pci.json#config")],   # probe at virtio_device_ready
    "09-pcie": [("chain", QEMU.format("q35rp__virtio-net-pci"))],
    # the ring after request 1: its used ring is the bytes real QEMU 7.2 wrote (tests/data/queue)
    "12-device-at-work": [("ring", "queue/rng-pc.json#after:1")],
    # the plug + the firmware's writes by hand, and probe's replay where SeaBIOS hands over = the real VM
    # before any driver loaded
    "10-firmware": [("hex", "guest/pc__virtio-net-pci.json#config_before_drivers"),
                    ("chain", QEMU.format("pc__virtio-net-pci")), ("bars", QEMU.format("pc__virtio-net-pci"))],
    # probe's replay at virtio_device_ready = the real VM after Linux's virtio_net driver
    "11-linux-driver": [("hex", "guest/pc__virtio-net-pci.json#config"),
                        ("chain", QEMU.format("pc__virtio-net-pci")), ("bars", QEMU.format("pc__virtio-net-pci"))],
    "14-what-if-and-real-machines": [("chain", QEMU.format("q35rp__virtio-net-pci"))],
    "15-why-bar4-0x3000": [("bars", QEMU.format("pc__virtio-net-pci"))],
}

WIDGETS = re.compile(r"\b(PlugExplorer|WhatIf|RingExplorer)\(")
CHECK = re.compile(r"""\bcheck\(\s*["']([\w-]+)["']""")


# --- the pages ----------------------------------------------------------------------------------
class Views(HTMLParser):
    """Collect the static views of a page: each hex grid's bytes, chain's nodes, BAR map's BARs.

    Every `<div class="vl vl-hex|vl-chain|vl-bars">` starts a view; the cells, nodes and BARs
    after it belong to it (the views never nest inside each other).
    """

    KINDS = {"vl-hex": "hex", "vl-chain": "chain", "vl-bars": "bars", "vl-ringview": "ring"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.views: list[dict] = []
        self._cell: int | None = None
        self._bar_text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "div" and "vl" in classes:
            kind = next((self.KINDS[c] for c in classes if c in self.KINDS), None)
            if kind:
                self.views.append({"kind": kind, "bytes": {}, "caps": [], "bars": {}})
                if kind == "ring":  # the used ring's bytes ride on the view's root
                    self.views[-1]["used"] = (int(a["data-used-addr"]), bytes.fromhex(a["data-used-hex"]))
                return
        if not self.views:
            return
        view = self.views[-1]
        if view["kind"] == "hex" and tag == "td" and "data-off" in a:
            self._cell = int(a["data-off"])
        elif view["kind"] == "chain" and tag == "div" and "data-id" in a and "data-off" in a:
            view["caps"].append((int(a["data-off"]), int(a["data-id"])))
        elif view["kind"] == "bars" and tag == "div" and "data-bar-index" in a:
            self._bar_text = []
            view["bars"][int(a["data-bar-index"])] = self._bar_text

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None
        if tag == "table":          # a BAR's header ends where its region table starts
            self._bar_text = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None and data.strip():
            self.views[-1]["bytes"][self._cell] = int(data.strip(), 16)
        if self._bar_text is not None:
            self._bar_text.append(data)


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, list[dict]]:
    """Convert every course notebook with the real `jupyter nbconvert` CLI, in one run."""
    out = tmp_path_factory.mktemp("html")
    notebooks = [str(NB_DIR / f"{name}.ipynb") for name in NOTEBOOKS]
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--output-dir", str(out),
                    "--ExecutePreprocessor.kernel_name=no-such-kernel", *notebooks],
                   check=True, capture_output=True, timeout=300)
    views = {}
    for name in NOTEBOOKS:
        parser = Views()
        parser.feed((out / f"{name}.html").read_text(encoding="utf-8"))
        views[name] = parser.views
    return views


def truth(ref: str) -> dict:
    path, _, field = ref.partition("#")
    case = json.loads((DATA / path).read_text())
    if field.startswith("after:"):  # a queue capture: the RAM ranges after request N
        return {"ram": case["after"][int(field[6:]) - 1]["ram"]}
    if field:
        case = dict(case, config=case[field])
    return case


def matches(view: dict, case: dict) -> bool:
    if view["kind"] == "ring":
        addr, used = view["used"]
        return any(r["addr"] <= addr and addr + len(used) <= r["addr"] + len(r["hex"]) // 2
                   and bytes.fromhex(r["hex"])[addr - r["addr"]:addr - r["addr"] + len(used)] == used
                   for r in case["ram"])
    if view["kind"] == "hex":
        config = bytes.fromhex(case["config"])
        return len(view["bytes"]) >= 64 and all(config[off] == value for off, value in view["bytes"].items())
    if view["kind"] == "chain":
        caps = case["caps"] if isinstance(case["caps"], list) else ast.literal_eval(case["caps"])
        return view["caps"] == [(c["offset"], c["id"]) for c in caps]
    sizes = {i: int(re.search(r"\((\d+) bytes\)", "".join(text)).group(1)) for i, text in view["bars"].items()}
    want = {b["index"]: b["size"] for b in case["bars"]}
    if case.get("rom_size"):        # the expansion ROM is shown as BAR 6, as QEMU registers it
        want[6] = case["rom_size"]
    return sizes == want


def well_formed(view: dict) -> bool:
    if view["kind"] == "ring":      # flags, idx, at least one element and avail_event
        return len(view["used"][1]) >= 4 + 8 + 2
    if view["kind"] == "hex":       # the whole standard header at least, vendor 0x1af4 first
        return set(range(64)) <= set(view["bytes"]) and view["bytes"][0] == 0xF4 and view["bytes"][1] == 0x1A
    if view["kind"] == "chain":
        return bool(view["caps"]) and all(0x40 <= off < 0x100 for off, _ in view["caps"])
    return bool(view["bars"]) and all(0 <= i < 7 for i in view["bars"])


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_static_views_show_the_real_bytes_chain_and_bars(pages, name):
    views = pages[name]
    for kind, ref in SHOWN[name]:
        mine = [v for v in views if v["kind"] == kind]
        assert mine, f"{name}: no static {kind} view in the HTML page"
        assert any(well_formed(v) for v in mine), f"{name}: the {kind} view is empty or cut short"
        if ref is not None:
            case = truth(ref)
            assert any(matches(v, case) for v in mine), f"{name}: no {kind} view equals {ref}"


def test_every_notebook_is_covered():
    assert set(SHOWN) == set(NOTEBOOKS) == {p.stem for p in NB_DIR.glob("[0-9][0-9]-*.ipynb")}


def test_a_wrong_page_is_caught():
    """The comparison can fail: a grid with one byte changed no longer matches QEMU."""
    case = truth(QEMU.format("pc__virtio-net-pci"))
    config = bytes.fromhex(case["config"])
    grid = {"kind": "hex", "bytes": {i: config[i] for i in range(256)}}
    assert matches(grid, case)
    grid["bytes"][0x34] ^= 0x04
    assert not matches(grid, case)


# --- the course's shape -------------------------------------------------------------------------
def load(name: str):
    return nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)


def code(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_opens_with_goals_and_is_executed(name):
    nb = load(name)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "**Learning goals**" in first.source, name
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", name
    for cell in code(nb):
        if "solution" in cell.metadata.get("tags", []):
            continue
        assert cell.execution_count is not None, f"{name} cell {cell.id}: stored without running"
        assert not [o for o in cell.outputs if o.output_type == "error"], f"{name} cell {cell.id}: error stored"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_exercises_are_checked_and_solutions_collapsed(name):
    nb = load(name)
    asked = {m for cell in code(nb) if "solution" not in cell.metadata.get("tags", [])
             for m in CHECK.findall(cell.source)}
    assert len(asked) >= 2, f"{name}: {sorted(asked)}"
    assert asked <= set(EXERCISES)
    solutions = [c for c in code(nb) if "solution" in c.metadata.get("tags", [])]
    shown = {m for c in solutions for m in re.findall(r"""solution\(\s*["']([\w-]+)["']""", c.source)}
    assert asked <= shown, f"{name}: no solution cell for {sorted(asked - shown)}"
    for cell in solutions:         # tag "solution": its stored output would give an answer away
        assert cell.outputs == [], f"{name} {cell.id}: the stored notebook gives the answer away"
        if "solution(" in cell.source:
            hidden = cell.metadata.get("jupyter", {})
            assert hidden.get("source_hidden") is True and hidden.get("outputs_hidden") is True, \
                f"{name} {cell.id}: the solution cell is not collapsed"


def test_every_exercise_is_in_its_notebook():
    assert len(EXERCISES) >= 16
    for ex in EXERCISES.values():
        assert ex.notebook in NOTEBOOKS
        assert re.search(rf"""check\(\s*["']{re.escape(ex.name)}["']""",
                         "\n".join(c.source for c in code(load(ex.notebook)))), ex.name


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_widgets_have_a_static_view_beside_them(name):
    nb = load(name)
    widget_cells = [c for c in code(nb) if WIDGETS.search(c.source)]
    assert widget_cells, f"{name}: no interactive widget"
    static = [o for c in code(nb) for o in c.outputs if "text/html" in o.get("data", {})
              and re.search(r'class="vl vl-(hex|chain|bars|ringview)', o["data"]["text/html"])]
    assert static, f"{name}: the widget has no static view of the same thing"
    for cell in widget_cells:       # stored as a note, not a model id no page can draw
        for o in cell.outputs:
            assert "application/vnd.jupyter.widget-view+json" not in o.get("data", {}), f"{name} {cell.id}"
