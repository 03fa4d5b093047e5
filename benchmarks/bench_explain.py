"""Budget of ``explain`` on large input (issue 14, item 3): a 10,000-device dump in at most
2 s, linear in the input.

The dump is built from every real capture in tests/data (QEMU 7.2's freshly plugged devices
and what real Linux guests left in theirs: about 600 distinct devices, every model, machine
and option the corpora hold), cycled to 10,000 devices at distinct bus:device.function
addresses, as ``lspci -xxx`` prints them. Each run starts cold: explain's caches (candidate
plugs, spec searches, reports, rendered lines) are emptied first, so the ~600 distinct devices
are each decoded and matched against QEMU from scratch and the repeats cost what a repeat
costs. A second row gives every device its own BAR addresses (firmware state), so no two are
the same bytes. Collected by benchmarks/run.py.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from virtio_lab.text import explain as ex  # noqa: E402
from virtio_lab.text.lspci import hexdump  # noqa: E402

DEVICES = 10_000
FOLDERS = ("qemu-7.2", "qemu-7.2-local", "guest", "guest-probe")


def _configs() -> list[bytes]:
    out = []
    for folder in FOLDERS:
        for path in sorted((ROOT / "tests" / "data" / folder).glob("*.json")):
            case = json.loads(path.read_text())
            if isinstance(case.get("config"), str) and len(case["config"]) >= 512:
                out.append(bytes.fromhex(case["config"])[:256])
    return out


def _dump(distinct: bool) -> str:
    configs = _configs()
    blocks = []
    for i in range(DEVICES):
        cfg = bytearray(configs[i % len(configs)])
        if distinct:  # BAR4 (or BAR0) moved as another firmware run would place it
            bar = 0x20 if cfg[0x20] & 0x04 else 0x10
            cfg[bar + 2:bar + 4] = (0xFE00 - i).to_bytes(2, "little")
        bus, slot = divmod(i, 32)
        blocks.append(hexdump(bytes(cfg), f"{bus % 256:02x}:{slot:02x}.0", 3))
    return "".join(blocks)


_TEXT = {}


def _cold() -> None:
    """Empty every cache explain keeps, so a run pays for each distinct device again."""
    ex._REPORTS.clear()
    ex._SEARCHES.clear()
    ex._CAPS.clear()
    for cached in (ex._candidate, ex._labels, ex._field_line, ex._cap_lines):
        cached.cache_clear()


def explain_dump(distinct: bool = False, budget: float | None = None) -> dict:
    """Parse, explain and render the dump (what ``python -m virtio_lab explain FILE`` does
    after reading it), from cold caches, three times: the median wall time, and the CPU
    time of this process beside it (on a shared machine the wall time holds the others')."""
    text = _TEXT.setdefault(distinct, _dump(distinct))
    walls, cpus = [], []
    for _ in range(3):
        _cold()
        t0, c0 = time.perf_counter(), time.process_time()
        out = ex.render(ex.explain(text))
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        assert out.count("QEMU 7.2: -device") >= DEVICES * 9 // 10
    wall, cpu = sorted(walls)[1], sorted(cpus)[1]
    return {"value": wall, "unit": "s", "budget": budget,
            "note": f"CPU {cpu:.2f} s, {cpu / DEVICES * 1e6:.0f} µs a device"}


BENCHMARKS = [
    ("explain: a 10,000-device dump (real captures), cold", 2.0, lambda: explain_dump(False, 2.0)),
    ("explain: 10,000 devices, no two the same bytes, cold", None, lambda: explain_dump(True)),
]
