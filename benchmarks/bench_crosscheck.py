"""Benchmarks for the live cross-check: the emulated plug vs a real-QEMU probe of the same device.

``BENCHMARKS`` is a list of ``(name, budget_seconds, callable)`` (the convention
``benchmarks/run.py`` follows; a callable returning a dict reports a ratio).  The
real-QEMU rows say why they have no figure where ``qemu-system-x86_64`` (or the
guest kit) is missing.  Run this file directly for the side-by-side timings:

    python benchmarks/bench_crosscheck.py [--repeat 5]
"""
from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from virtio_lab.live import qemu
from virtio_lab.live.crosscheck import crosscheck, crosscheck_many, sweep_cases
from virtio_lab.hw.devices import supported_types
from virtio_lab.text.dump import dump

SPEC, MACHINE, ROOT_PORT = "virtio-net-pci", "q35", True
WHERE = "virtio-net-pci on q35 behind a root port"


def emulated_plug():
    """The emulation: plug + read back everything the probe reads (the probe's schema)."""
    assert "config" in dump(SPEC, MACHINE, ROOT_PORT)


def real_probe():
    """Real QEMU 7.2: start it, plug the device, read it back over qtest, stop it."""
    assert "config" in qemu.probe(SPEC, MACHINE, ROOT_PORT, lspci=False)


def crosscheck_one():
    assert crosscheck(SPEC, MACHINE, ROOT_PORT).identical


def crosscheck_sweep():
    """Every device type x pc, q35, q35rp (what ``crosscheck --all`` runs)."""
    res = crosscheck_many(sweep_cases())
    assert len(res) == 3 * len(supported_types()) and all(r.identical for r in res)


def _median(fn, repeat: int) -> float:
    fn()  # warm up (imports, caches, the page cache for QEMU's binary)
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def probe_ratio() -> dict:
    """Side by side, measured now: a real-QEMU probe over an emulated plug of the same device."""
    real = _median(real_probe, 5)
    emu = _median(emulated_plug, 50)
    return {"value": real / emu, "unit": "x", "budget": None,
            "note": f"{WHERE}: real QEMU {real * 1e3:.1f} ms vs emulated {emu * 1e3:.2f} ms"}


def guest_ratio() -> dict:
    """A real Linux guest boot over ``virtio_lab.probe`` (the emulated firmware + driver)."""
    from virtio_lab.live import guest
    from virtio_lab.guest.probe import probe
    t0 = time.perf_counter()
    guest.capture("virtio-net-pci", "pc", False)
    boot = time.perf_counter() - t0
    emu = _median(lambda: probe("virtio-net-pci", "pc", False), 10)
    return {"value": boot / emu, "unit": "x", "budget": None,
            "note": f"virtio-net-pci on pc: guest boot {boot:.1f} s vs virtio_lab.probe {emu * 1e3:.1f} ms"}


def _have_qemu() -> bool:
    try:
        qemu.qemu_binary()
        return True
    except qemu.QemuUnavailable:
        return False


def _have_kit() -> bool:
    from virtio_lab.live.guest_kit import KitError, load_kit
    try:
        load_kit()
        return True
    except KitError:
        return False


def _missing(note: str):
    return lambda: {"value": None, "unit": "x", "budget": None, "note": note}


NO_QEMU = "skipped: qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"
BENCHMARKS = [(f"crosscheck: emulated plug of {WHERE}", 0.5, emulated_plug)]
if _have_qemu():
    BENCHMARKS += [
        (f"crosscheck: real-QEMU probe of {WHERE}", 5.0, real_probe),
        ("crosscheck: real-QEMU probe / emulated plug, same device", None, probe_ratio),
        ("crosscheck: one spec, real vs emulated", 5.0, crosscheck_one),
        ("crosscheck --all: every type x pc/q35/q35rp", 600.0, crosscheck_sweep),
    ]
    BENCHMARKS.append(("crosscheck --guest: real guest boot / virtio_lab.probe", None,
                       guest_ratio if _have_kit() else _missing("skipped: no guest kit (make guest-kit)")))
else:  # the rows stay in the table, saying why they have no figure
    BENCHMARKS += [("crosscheck: real-QEMU probe / emulated plug, same device", None, _missing(NO_QEMU)),
                   ("crosscheck --guest: real guest boot / virtio_lab.probe", None, _missing(NO_QEMU))]


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)
    emu = _median(emulated_plug, a.repeat * 10)
    print(f"emulated plug    {WHERE}: {emu * 1e3:8.2f} ms (median)")
    if not _have_qemu():
        print(qemu.INSTALL_HINT)
        return 0
    real = _median(real_probe, a.repeat)
    print(f"real-QEMU probe  {WHERE}: {real * 1e3:8.2f} ms (median)  -> {real / emu:.0f}x the emulation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
