"""The device at work (issue 17): one request end to end, a 1,000-request run, stepping the ring view.

Collected by benchmarks/run.py; see its docstring for the BENCHMARKS convention.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from virtio_lab.guest.queue import queue  # noqa: E402
from virtio_lab.views.ring import ring_html  # noqa: E402

_RUNS: dict[str, object] = {}


def _post(spec: str):
    """One more request on a warm run: the driver's stores and kick, QEMU's device, the
    interrupt and the driver's handler, every event recorded."""
    run = _RUNS.get(spec)
    if run is None:
        run = _RUNS[spec] = queue(spec, requests=1)
    return lambda: run.post(1) and None


def _thousand(spec: str):
    """CPU time of this process (time.process_time): on a shared machine the wall clock of a
    one-second job mostly measures the other processes."""
    def go() -> float:
        t0 = time.process_time()
        queue(spec, requests=1000)
        return time.process_time() - t0
    return go


def _replay(spec: str):
    run = queue(spec, requests=1000)

    def go() -> float:
        run._invalidate()
        t0 = time.process_time()
        run.to_json()
        return time.process_time() - t0
    return go


def _stepping():
    """One ▶ of the ring view, late in a 1,000-request run (RAM rebuilt from the trace)."""
    run = queue("virtio-blk-pci", requests=1000)
    last = len(run.trace.events) - 1
    ring_html(run, last - 500)  # the checkpoints up to here exist, as after the first step
    state = {"step": last - 500}

    def go() -> None:
        state["step"] = state["step"] + 1 if state["step"] < last else last - 500
        ring_html(run, state["step"])
    return go


BENCHMARKS = [
    ("one request end to end: virtio-rng (driver + device + interrupt)", 0.002, _post("virtio-rng-pci")),
    ("one request end to end: virtio-blk read/write", 0.002, _post("virtio-blk-pci")),
    ("one request end to end: virtio-net frame", 0.002, _post("virtio-net-pci,netdev=n0")),
    ("1,000-request run, CPU time: virtio-rng (plug + probe + requests)", 1.0, _thousand("virtio-rng-pci")),
    ("1,000-request run, CPU time: virtio-blk", 1.0, _thousand("virtio-blk-pci")),
    ("1,000-request run, CPU time: virtio-net", 1.0, _thousand("virtio-net-pci,netdev=n0")),
    ("its replay JSON, CPU time (driver_ops replayed on a fresh device): virtio-blk, 1,000", None,
     _replay("virtio-blk-pci")),
    ("ring view: one step, late in a 1,000-request virtio-blk run", 0.030, _stepping()),
]
