"""Execute the course notebooks in place, the way they are committed.

    .venv/bin/python notebooks/execute.py            # all of 0*.ipynb
    .venv/bin/python notebooks/execute.py 03-bars    # one (or a few) by name

Outputs are the real ones, kept deterministic: no per-cell timing metadata, no
saved widget state (random model ids; the static views stand in for widgets on
GitHub, nbviewer and in HTML exports), stable cell ids. The collapsed solution
cells (tag ``solution``) are executed like every cell, then their outputs are
removed so a rendered notebook does not give the answers away. Prints the time
each notebook took and the total (the course's budget is 60 s for all of them).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


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
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return took


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in HERE.glob("0*.ipynb"))
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
