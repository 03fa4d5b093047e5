"""Benchmarks for the live cross-check: the emulated plug vs a real-QEMU probe of the same device.

``BENCHMARKS`` is a list of ``(name, budget_seconds, callable)`` (the convention
``benchmarks/run.py`` follows).  The real-QEMU entries are listed only where
``qemu-system-x86_64`` is installed.  Run this file directly for the side-by-side
timings and the ratio:

    python benchmarks/bench_crosscheck.py [--repeat 5]
"""
from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from virtio_lab import qemu  # noqa: E402
from virtio_lab.crosscheck import crosscheck, crosscheck_many, sweep_cases  # noqa: E402
from virtio_lab.dump import dump  # noqa: E402

SPEC, MACHINE, ROOT_PORT = "virtio-net-pci", "q35", True


def emulated_plug():
    """The emulation: plug + read back everything the probe reads (the oracle schema)."""
    out = dump(SPEC, MACHINE, ROOT_PORT)
    assert "config" in out


def real_probe():
    """Real QEMU 7.2: start it, plug the device, read it back over qtest, stop it."""
    out = qemu.probe(SPEC, MACHINE, ROOT_PORT, lspci=False)
    assert "config" in out


def real_config_read():
    """Real QEMU, the cheapest look: start, read 256 config bytes, kill."""
    assert len(qemu.fastest_config_read(SPEC, MACHINE, ROOT_PORT)) == 256


def crosscheck_one():
    assert crosscheck(SPEC, MACHINE, ROOT_PORT).identical


def crosscheck_sweep():
    """Every device type x pc, q35, q35rp (90 cases)."""
    res = crosscheck_many(sweep_cases())
    assert len(res) == 90 or len(res) % 3 == 0


def _have_qemu() -> bool:
    try:
        qemu.qemu_binary()
        return True
    except qemu.QemuUnavailable:
        return False


BENCHMARKS = [("crosscheck: emulated plug of virtio-net-pci (q35rp)", 0.5, emulated_plug)]
if _have_qemu():
    BENCHMARKS += [
        ("crosscheck: real-QEMU probe of virtio-net-pci (q35rp)", 5.0, real_probe),
        ("crosscheck: real-QEMU 256-byte config read (q35rp)", 5.0, real_config_read),
        ("crosscheck: one spec, real vs emulated", 5.0, crosscheck_one),
        ("crosscheck --all: 30 types x pc/q35/q35rp", 120.0, crosscheck_sweep),
    ]


def _time(fn, repeat):
    fn()  # warm up (imports, caches)
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)
    emu = _time(emulated_plug, a.repeat)
    print(f"emulated plug   {SPEC} on q35rp: {emu * 1e3:8.1f} ms (median of {a.repeat})")
    if not _have_qemu():
        print(qemu.INSTALL_HINT)
        return 0
    real = _time(real_probe, a.repeat)
    cfg = _time(real_config_read, a.repeat)
    print(f"real-QEMU probe {SPEC} on q35rp: {real * 1e3:8.1f} ms  -> {real / emu:.0f}x the emulation")
    print(f"real-QEMU 256-byte config read:     {cfg * 1e3:8.1f} ms  -> {cfg / emu:.0f}x the emulation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
