"""Execute the course notebooks in place, the way they are committed.

    .venv/bin/python notebooks/execute.py            # every NN-*.ipynb of the course
    .venv/bin/python notebooks/execute.py 04-bars    # one (or a few) by name

Outputs are the real ones, kept byte-stable so re-running changes nothing: no
per-cell timing metadata, no saved widget state, stable cell ids. A widget's
output is stored as a one-line note instead of its random model id (without a
kernel no page can draw it; the static views beside it show the same thing on
GitHub, nbviewer and in HTML exports), and a default repr's memory address
(``<...HexGrid at 0x7f...>``, the text/plain beside an HTML view) is dropped;
consecutive prints are stored as one stream output, however the kernel split them.
The collapsed solution cells (tag ``solution``) are executed like every cell,
then their outputs are removed so a rendered notebook does not give the answers
away. Prints the time each notebook took and the total (the course's budget is
60 s for all of them).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
ADDRESS = re.compile(r"<([\w.]+) at 0x[0-9a-fA-F]+>")


def stable(output: dict) -> None:
    """Make one output independent of the run: no model ids, no memory addresses."""
    data = output.get("data")
    if not data:
        return
    if WIDGET_VIEW in data:
        name = str(data.get("text/plain", "widget")).split("(", 1)[0]
        output["data"] = {"text/plain": f"[{name}: an interactive widget. Run this cell in Jupyter to use it;"
                                        " the static views in this notebook show the same thing.]"}
    elif "text/html" in data and "text/plain" in data:
        data["text/plain"] = ADDRESS.sub(r"<\1>", str(data["text/plain"]))


def coalesce_streams(outputs: list) -> list:
    """One stream output per run of prints: how a busy kernel splits them varies."""
    merged: list = []
    for output in outputs:
        if (output.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                and merged[-1].get("name") == output.get("name")):
            merged[-1]["text"] += output["text"]
        else:
            merged.append(output)
    return merged


def execute(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=120, kernel_name="python3", record_timing=False,
                   store_widget_state=False, resources={"metadata": {"path": str(path.parent)}}).execute()
    took = time.perf_counter() - start
    for cell in nb.cells:
        if "solution" in cell.metadata.get("tags", []):
            cell.outputs = []
            cell.execution_count = None
        if "outputs" in cell:
            cell.outputs = coalesce_streams(cell.outputs)
        for output in cell.get("outputs", []):
            stable(output)
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return took


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in HERE.glob("[0-9][0-9]-*.ipynb"))
    total = 0.0
    for name in names:
        path = HERE / (name if name.endswith(".ipynb") else f"{name}.ipynb")
        took = execute(path)
        total += took
        print(f"{path.name:40} {took:5.1f} s")
    print(f"{'total':40} {total:5.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
