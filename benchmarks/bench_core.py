"""Budgets of the core (issue 9): plug speed, an option sweep, import time, trace memory,
and how much faster than asking a real QEMU the emulation is.

Collected by benchmarks/run.py; see its docstring for the BENCHMARKS convention.
"""

from __future__ import annotations

import gc
import random
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from itertools import cycle
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from virtio_lab.hw.devices import MODELS  # noqa: E402
from virtio_lab.errors import VirtioLabError  # noqa: E402
from virtio_lab.hw.plug import plug  # noqa: E402
from virtio_lab.hw.spec import type_properties  # noqa: E402

#: the backend each model needs before QEMU will realize it (virtio_lab models these names)
BACKENDS = {"drive": "drive=d0", "fsdev": "fsdev=fs0,mount_tag=share",
            "cryptodev": "cryptodev=cr0", "memdev": "memdev=mem0"}


def model_spec(name: str) -> str:
    backend = BACKENDS.get(MODELS[name].backend)
    return f"{name},{backend}" if backend else name


# ------------------------------------------------------------------ the option sweep
_VALUES = {
    "bool": ("on", "off"), "OnOffAuto": ("on", "off", "auto"),
    "uint8": ("0", "1", "7", "255"), "uint16": ("0", "1", "4", "64", "256", "1024", "65535"),
    "uint32": ("0", "1", "2", "3", "8", "64", "128", "1024", "2048", "4096", "65537"),
    "uint64": ("0", "1", "4096", "0x100000"), "int32": ("-1", "0", "1", "100"),
    "size": ("0", "4096", "1M"),
}
SKIP = {"romfile", "drive", "fsdev", "cryptodev", "memdev", "netdev", "chardev", "iothread", "rng"}
MACHINES = (("pc", False), ("q35", False), ("q35", True))


def sweep_batch(seed: int, n: int = 1000, qemu: str = "7.2",
                machine_types: bool = False) -> list[tuple[str, str, bool]]:
    """``n`` random option combinations, spread over every model and machine of release
    ``qemu`` (with ``machine_types``: over its versioned machine types too)."""
    from virtio_lab.hw.compat import machine_types as types_of
    rng = random.Random(seed)
    names = sorted(MODELS)
    versioned = types_of(qemu)
    out = []
    for i in range(n):
        name = names[i % len(names)]
        props = [p for p in type_properties(name, qemu).values()
                 if p.type in _VALUES and p.name not in SKIP]
        chosen = rng.sample(props, min(len(props), rng.randint(0, 4)))
        opts = [model_spec(name)] + [f"{p.name}={rng.choice(_VALUES[p.type])}" for p in chosen]
        machine, rp = rng.choice(MACHINES)
        if machine_types:
            machine = rng.choice([t for t in versioned if t.startswith("pc-q35" if machine == "q35"
                                                                        else "pc-i440fx")])
        out.append((",".join(opts), machine, rp))
    return out


def _sweeper(qemu: str, machine_types: bool = False):
    batches = cycle([sweep_batch(seed, qemu=qemu, machine_types=machine_types) for seed in range(8)])

    def run() -> None:  # fresh specs run after run
        for spec, machine, root_port in next(batches):
            try:
                plug(spec, machine, root_port, qemu)
            except VirtioLabError:
                pass
    return run


sweep = _sweeper("7.2")


# ------------------------------------------------------------------ import time
def _import_time(module: str) -> float:
    """Seconds to import ``module`` in a fresh interpreter (timed inside it)."""
    code = (f"import time; t = time.perf_counter(); import {module}; "
            f"print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    return float(out.stdout.strip())


def import_core() -> float:
    return _import_time("virtio_lab")


def import_core_and_plug() -> float:
    return _import_time("virtio_lab.hw.plug")


def first_plug(qemu: str) -> float:
    """``import virtio_lab`` and a first plug on release ``qemu`` in a fresh interpreter:
    what loading that release's tables (properties, compat tables, QOM parents) costs."""
    return _import_time(f"virtio_lab; virtio_lab.plug('virtio-net-pci', 'pc-q35-5.2', qemu='{qemu}')")


def import_widgets() -> float | dict:
    try:
        return _import_time("virtio_lab.widgets")
    except subprocess.CalledProcessError as err:
        last = (err.stderr or "").strip().splitlines()[-1:] or ["failed"]
        return {"value": None, "note": f"not importable with {Path(sys.executable).name}: {last[0]}"}


# ------------------------------------------------------------------ memory
def largest_case() -> tuple[str, str, bool]:
    """The model and machine whose trace is biggest (events × config size)."""
    best, key = None, -1
    for name in MODELS:
        for machine, rp in MACHINES:
            try:
                t = plug(model_spec(name), machine, rp)
            except VirtioLabError:
                continue
            k = len(t) * t.size
            if k > key:
                best, key = (model_spec(name), machine, rp), k
    assert best is not None
    return best


def trace_memory() -> dict:
    """Bytes held by one trace with every event and every step's snapshot materialized."""
    spec, machine, rp = largest_case()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    t = plug(spec, machine, rp)
    states = [t.state_at(i) for i in range(len(t))]
    _ = [s.caps for s in states[-1:]]
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del states, t
    return {"value": held, "unit": "B", "budget": 2e6,
            "note": f"{spec} on {machine}{' + root port' if rp else ''}"}


# ------------------------------------------------------------------ real QEMU
def qemu_ratio() -> dict:
    """The fastest real-QEMU read of the 256 bytes vs our plug, both measured now."""
    from virtio_lab.live.qemu import fastest_config_read
    qemu = []
    for _ in range(5):
        t = time.perf_counter()
        fastest_config_read("virtio-net-pci")
        qemu.append(time.perf_counter() - t)
    ours = []
    for _ in range(500):
        t = time.perf_counter()
        plug("virtio-net-pci")
        ours.append(time.perf_counter() - t)
    q, o = statistics.median(qemu), statistics.median(ours)
    return {"value": q / o, "unit": "x", "budget": 200, "higher_is_better": True,
            "note": f"QEMU -S -qtest read {q * 1e3:.1f} ms vs plug {o * 1e3:.3f} ms"}


def cpu_reference() -> None:
    """Not a budget: how fast this CPU runs plain Python right now. Every figure above scales
    with it, so it tells a slow or busy machine (a shared VM, other jobs) from slow code."""
    sum(range(1000))


BENCHMARKS = [
    ("reference: sum(range(1000)), this CPU now", None, cpu_reference),
    ("plug virtio-net-pci (pc)", 0.2e-3, lambda: plug("virtio-net-pci")),
    *[(f"plug {name}", 0.5e-3, (lambda s=model_spec(name): plug(s))) for name in sorted(MODELS)],
    ("plug virtio-net-pci (q35 + root port)", 0.5e-3, lambda: plug("virtio-net-pci", "q35", True)),
    *[(f"plug virtio-net-pci (pc, QEMU {q})", 0.5e-3, (lambda q=q: plug("virtio-net-pci", qemu=q)))
      for q in ("5.2", "10.0")],
    *[(f"plug virtio-net-pci (q35 + root port, QEMU {q})", 0.5e-3,
       (lambda q=q: plug("virtio-net-pci", "q35", True, q))) for q in ("5.2", "10.0")],
    ("plug virtio-net-pci (pc-i440fx-5.2 on QEMU 7.2)", 0.5e-3,
     lambda: plug("virtio-net-pci", "pc-i440fx-5.2", qemu="7.2")),
    ("plug virtio-net-pci (pc-q35-7.2 + root port on QEMU 10.0)", 0.5e-3,
     lambda: plug("virtio-net-pci", "pc-q35-7.2", True, "10.0")),
    ("sweep: 1,000 option combinations", 1.0, sweep),
    *[(f"sweep: 1,000 option combinations, QEMU {q}", 1.0, _sweeper(q)) for q in ("5.2", "10.0")],
    *[(f"sweep: 1,000 option combinations, QEMU {q}'s machine types", 1.0, _sweeper(q, True))
      for q in ("7.2", "10.0")],
    ("import virtio_lab (fresh process)", 0.150, import_core),
    ("import virtio_lab.hw.plug (fresh process)", 0.150, import_core_and_plug),
    *[(f"import + first plug on pc-q35-5.2, QEMU {q} (fresh process)", None,
       (lambda q=q: first_plug(q))) for q in ("5.2", "7.2", "10.0")],
    ("full trace + all snapshots, memory", None, trace_memory),
]
if (ROOT / "virtio_lab" / "widgets" / "__init__.py").exists():
    BENCHMARKS.append(("import virtio_lab.widgets (fresh process)", None, import_widgets))
if shutil.which("qemu-system-x86_64"):
    BENCHMARKS.append(("real QEMU read / our plug", None, qemu_ratio))
else:  # the row stays in the table, saying why it has no figure
    BENCHMARKS.append(("real QEMU read / our plug", None, lambda: {
        "value": None, "unit": "x", "budget": 200, "higher_is_better": True,
        "note": "skipped: qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"}))
