"""Budget of the course (issue 9): all notebooks run top to bottom in ≤ 60 s.

Each of notebooks/[0-9][0-9]-*.ipynb is executed in memory with nbclient in a fresh kernel
(the kernel start is part of the time, as it is for a learner pressing "Run all");
nothing is written back. Measured once: the figure is the sum, the note names the
slowest notebook. Collected by benchmarks/run.py (see its docstring).
"""

from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def run_all() -> dict:
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError as err:
        return {"value": None, "note": f"skipped: {err.name} not installed (pip install -e '.[test]')"}
    took = {}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        t = time.perf_counter()
        NotebookClient(nb, timeout=120, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        took[path.stem] = time.perf_counter() - t
    slowest = max(took, key=took.get)
    return {"value": sum(took.values()), "unit": "s", "budget": 60.0,
            "note": f"{len(took)} notebooks, fresh kernel each; slowest {slowest} "
                    f"{took[slowest]:.1f} s"}


BENCHMARKS = [("notebooks: run all, top to bottom", 60.0, run_all)] if NOTEBOOKS else []
