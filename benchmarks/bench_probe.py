"""The guest's side: probe() (SeaBIOS + Linux 6.1 replay on top of a plug), and the
10,000-write sweep test_guest_access runs.

Collected by benchmarks/run.py; see its docstring for the BENCHMARKS convention.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from virtio_lab.hw.guest_access import GuestDevice  # noqa: E402
from virtio_lab.guest.probe import probe  # noqa: E402

CASES = [(p.stem, p) for p in sorted((ROOT / "tests" / "data" / "guest").glob("*.json"))]


def _all_captures() -> float:
    """All 31 guest-capture cases, probed once each (plug included)."""
    import json
    specs = [json.loads(p.read_text()) for _, p in CASES]
    t0 = time.perf_counter()
    for c in specs:
        probe(c["device"], c["machine"], c["root_port"])
    return time.perf_counter() - t0


def _writes() -> float:
    """10,000 random guest writes (config space and BAR regions), events recorded."""
    r = probe("virtio-net-pci")
    dev = GuestDevice(r.trace)
    rnd = random.Random(1)
    bars = [b for b in dev.facts.bars if b.index != 6]
    t0 = time.perf_counter()
    for _ in range(10_000):
        if rnd.random() < 0.5:
            dev.config_write(rnd.randrange(256), rnd.getrandbits(32), rnd.choice((1, 2, 4)))
        else:
            b = rnd.choice(bars)
            dev.bar_write(b.index, rnd.randrange(b.size), rnd.getrandbits(64), rnd.choice((1, 2, 4, 8)))
    return time.perf_counter() - t0


BENCHMARKS = [
    ("probe virtio-net-pci (pc): plug + SeaBIOS + Linux", 0.05, lambda: probe("virtio-net-pci") and None),
    ("probe virtio-serial-pci (q35, root port): 64 queues", 0.1,
     lambda: probe("virtio-serial-pci", "q35", True) and None),
    ("probe all 31 guest-capture cases", 1.0, _all_captures),
    ("10,000 random guest writes, recorded", 2.0, _writes),
]
