"""Capture the queue replay in a real QEMU 7.2, for tests/test_queue.py.

    python tests/data/queue/capture.py            # every case in CASES (about 2 minutes)
    python tests/data/queue/capture.py rng-pc     # the cases whose id contains "rng-pc"

Each case runs virtio_lab.queue(...) (then a fault of guest/hands.py, if it names one),
plays its driver_ops in qemu-system-x86_64 over qtest (virtio_lab.live.queue_replay.replay)
and saves what QEMU showed: every read's value, the state after each request (RAM ranges,
ISR, MSI-X pending bits, status, broken, queue indices over QMP, frames), the disk image's
changed sectors and QEMU's stderr. Files are written whole (a temp file, then a rename).
"""
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from virtio_lab.live.queue_replay import capture  # noqa: E402

DEVICES = {"rng": "virtio-rng-pci", "blk": "virtio-blk-pci", "net": "virtio-net-pci,netdev=n0"}
VARIANTS = {"": "", "legacy": ",disable-modern=on", "intx": ",vectors=0", "noevent": ",event_idx=off",
            "noindirect": ",indirect_desc=off"}
MACHINES = {"pc": ("pc", False), "q35": ("q35", False), "q35rp": ("q35", True)}
FAULTS = ("loop", "next-out-of-range", "head-out-of-range", "zero-length", "outside-ram",
          "indirect-bad-size", "wrong-order", "avail-jump", "queue-enable-value", "ring-past-ram",
          "not-enabled", "before-driver-ok")


def cases():
    out = []
    for d, spec in DEVICES.items():
        for v, opt in VARIANTS.items():
            for m, (machine, rp) in MACHINES.items():
                if v == "noindirect" and m != "pc":
                    continue
                s = spec + opt + (",disable-legacy=off" if rp and v == "legacy" else "")
                out.append((f"{d}{'-' + v if v else ''}-{m}", s, machine, rp, 3, None))
        for f in FAULTS:
            out.append((f"{d}-fault-{f}-pc", spec, "pc", False, 2, f))
            if f in ("loop", "outside-ram", "not-enabled", "before-driver-ok"):
                out.append((f"{d}-legacy-fault-{f}-q35rp", spec + ",disable-modern=on,disable-legacy=off",
                            "q35", True, 2, f))
    out.append(("rng-many-pc", DEVICES["rng"], "pc", False, 20, None))  # the 8-entry ring wraps
    out.append(("blk-many-pc", DEVICES["blk"], "pc", False, 40, None))
    return out


def main(filters):
    for cid, spec, machine, rp, n, fault in cases():
        if filters and not any(f in cid for f in filters):
            continue
        doc = {"id": cid, **capture(spec, machine, rp, n, fault)}
        path = HERE / f"{cid}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        os.replace(tmp, path)
        print(cid, "ok")


if __name__ == "__main__":
    main(sys.argv[1:])
