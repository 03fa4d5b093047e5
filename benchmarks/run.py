"""Run every benchmark in benchmarks/bench_*.py and print one table: name | median | budget | ok.

Each bench file exposes ``BENCHMARKS = [(name, budget, callable), ...]``:

* ``budget`` is in seconds (``None``: the figure is only noted, never judged);
* ``callable()`` returning ``None`` is timed here: warm-up, then the median of many
  ``time.perf_counter`` runs (as many as fit in about a second, at least 5);
* returning a number means the callable measured itself (e.g. an import timed inside
  a fresh subprocess): the number is seconds, and the median of a few calls is used;
* returning a :class:`dict` reports a figure that is not a duration, measured once:
  ``{"value": 1.3e6, "unit": "B" | "x", "budget": 2e6, "higher_is_better": False,
  "note": "..."}`` (memory in bytes, a speed ratio...); ``"value": None`` means
  "not measurable here" and is listed with its note.

Nothing is written anywhere: the table goes to stdout (``--markdown`` prints it as
the Markdown that benchmarks/README.md holds, with the machine it ran on).

    python benchmarks/run.py [-k SUBSTRING] [--markdown] [--strict]

Exit status 0, or with ``--strict`` 1 when a budget is missed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # run from a clone without installing
    sys.path.insert(0, str(ROOT))

TARGET_SECONDS = 0.5  # time spent on one timed benchmark, roughly (make bench stays ~2 min)
MIN_RUNS, MAX_RUNS = 5, 5000


def discover() -> list[tuple[str, Any, Callable[[], Any]]]:
    """Import benchmarks/bench_*.py in name order and collect their BENCHMARKS."""
    out = []
    for path in sorted(HERE.glob("bench_*.py")):
        spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out.extend(getattr(module, "BENCHMARKS", []))
    return out


def _fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return _fmt_time(value)
    if unit == "B":
        return f"{value / 1e6:.2f} MB" if value >= 1e5 else f"{value / 1e3:.1f} kB"
    if unit == "x":
        return f"{value:,.0f}×"
    return f"{value:g} {unit}"


def measure(fn: Callable[[], Any]) -> dict[str, Any]:
    """Warm up, then return {"value", "unit", "runs", ...} for one benchmark."""
    t0 = time.perf_counter()
    first = fn()  # warm-up (imports, caches)
    warm = time.perf_counter() - t0
    if isinstance(first, dict):
        return {"unit": "s", "runs": 1, **first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        values = [float(first)] + [float(fn()) for _ in range(MIN_RUNS - 1)]
        return {"value": statistics.median(values), "unit": "s", "runs": len(values)}
    for _ in range(2):
        fn()
    runs = max(MIN_RUNS, min(MAX_RUNS, int(TARGET_SECONDS / max(warm, 1e-7))))
    times, cpu = [], []
    perf, proc = time.perf_counter, time.process_time
    for _ in range(runs):
        t, c = perf(), proc()
        fn()
        times.append(perf() - t)
        cpu.append(proc() - c)
    # the CPU time this process spent: on a shared machine the wall median also holds the
    # time other processes had the CPU, so both are shown
    return {"value": statistics.median(times), "unit": "s", "runs": runs,
            "cpu": statistics.median(cpu)}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"load average {load}; {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}), "
            f"{cpu}, Python {platform.python_version()} ({platform.python_implementation()}), "
            f"{platform.system()} {platform.release()}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run the virtio_lab benchmarks and print the budget table.")
    ap.add_argument("-k", dest="filter", default="", help="only benchmarks whose name contains this")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a budget is missed")
    args = ap.parse_args(argv)

    rows = []
    missed = 0
    for name, budget, fn in discover():
        if args.filter and args.filter not in name:
            continue
        try:
            r = measure(fn)
        except Exception as err:  # a broken benchmark is a row, not a crash
            msg = f"{type(err).__name__}: {err}".splitlines()[0]
            rows.append((name, "error", "", "ERROR", msg[:100]))
            missed += 1
            continue
        unit = r.get("unit", "s")
        b = r.get("budget", budget)
        higher = r.get("higher_is_better", False)
        if r["value"] is None:  # could not be measured here (e.g. an optional extra missing)
            rows.append((name, "n/a", "—" if b is None else _fmt(b, unit), "note", r.get("note", "")))
            continue
        if b is None:
            ok = "note"
        else:
            good = r["value"] >= b if higher else r["value"] <= b
            ok = "ok" if good else "MISSED"
            missed += not good
        btxt = "—" if b is None else (("≥ " if higher else "≤ ") + _fmt(b, unit))
        note = r.get("note", "")
        if "cpu" in r and r["cpu"] > 1e-4:  # process_time ticks are coarse below ~0.1 ms
            note = f"CPU {_fmt_time(r['cpu'])}" + (f"; {note}" if note else "")
        rows.append((name, _fmt(r["value"], unit), btxt, ok, note))

    head = ("benchmark", "median", "budget", "ok", "note")
    if args.markdown:
        print(f"Machine: {machine()}\n")
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(4)]
        print(f"# {machine()}")
        for row in [head] + rows:
            line = "  ".join(str(c).ljust(w) for c, w in zip(row[:4], widths))
            print(line + (f"  {row[4]}" if row[4] else ""))
        print(f"{len(rows) - missed}/{len(rows)} within budget" if missed else f"all {len(rows)} within budget")
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
