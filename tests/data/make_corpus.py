#!/usr/bin/env python3
"""Regenerate a real-QEMU truth corpus: tests/data/qemu-X.Y-local or qemu-X.Y-machines.

    python tests/data/make_corpus.py [--qemu X.Y] [--machines] [--jobs 2] [--only SUBSTRING]
                                     [--list] [--out DIR]

Every case is one `-device SPEC` plugged into `qemu-system-x86_64` and read back by
`virtio_lab.live.qemu.probe` (the capture procedure of the shared oracle).  `--qemu X.Y`
picks the release (the local QEMU by default; 5.2 and 10.0 come from the QEMU kit,
`make qemu-kit`) and records it in each case's `qemu` field.

Without `--machines` (tests/data/qemu-X.Y-local): every model x options on `pc`, `q35`
(root bus, device 00:03.0) and `q35rp` (behind a pcie-root-port, device 01:00.0), each the
release's newest machine type.  With `--machines` (tests/data/qemu-X.Y-machines): a few
devices and options where compat properties bite, on every versioned machine type the
release offers from 5.2 up (`pc-i440fx-X.Y`, `pc-q35-X.Y`, read from
virtio_lab/data/qemu-X.Y/machines.txt), recorded with `machine_type`.

Files are named like the oracle's, `MACHINE__DEVICE[__OPT-VAL+OPT-VAL].json` (MACHINE
`pc`, `q35`, `q35rp`, or the machine type, `pc-q35-7.2rp` behind a root port), with the
same schema; cases QEMU refuses hold `error` (QEMU's exact stderr, prefixed "qemu exited: ").

Devices that cannot start on a plain host are left out: virtio-gpu-gl-pci and
virtio-vga-gl ("opengl is not available" with -display none), vhost-vsock-pci
(needs /dev/vhost-vsock), vhost-user-* (need a vhost-user daemon),
vhost-scsi-pci (needs a kernel target), virtio-input-host-pci (needs an evdev).
"""
import argparse
import concurrent.futures as cf
import glob
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, ROOT)
from virtio_lab.files import write_atomic  # noqa: E402
from virtio_lab.live import qemu  # noqa: E402

MACHINES = [("pc", False), ("q35", False), ("q35", True)]

# model -> (device names, backend options every spec of the model carries)
MODELS = {
    "net": (["virtio-net-pci", "virtio-net-pci-transitional",
             "virtio-net-pci-non-transitional"], ""),
    "blk": (["virtio-blk-pci", "virtio-blk-pci-transitional",
             "virtio-blk-pci-non-transitional"], "drive=d0"),
    "scsi": (["virtio-scsi-pci", "virtio-scsi-pci-transitional",
              "virtio-scsi-pci-non-transitional"], ""),
    "serial": (["virtio-serial-pci", "virtio-serial-pci-transitional",
                "virtio-serial-pci-non-transitional"], ""),
    "rng": (["virtio-rng-pci", "virtio-rng-pci-transitional",
             "virtio-rng-pci-non-transitional"], ""),
    "balloon": (["virtio-balloon-pci", "virtio-balloon-pci-transitional",
                 "virtio-balloon-pci-non-transitional"], ""),
    "9p": (["virtio-9p-pci", "virtio-9p-pci-transitional",
            "virtio-9p-pci-non-transitional"], "fsdev=fs0,mount_tag=share"),
    "gpu": (["virtio-gpu-pci"], ""),
    "vga": (["virtio-vga"], ""),
    "keyboard": (["virtio-keyboard-pci"], ""),
    "mouse": (["virtio-mouse-pci"], ""),
    "tablet": (["virtio-tablet-pci"], ""),
    "crypto": (["virtio-crypto-pci"], "cryptodev=cr0"),
    "iommu": (["virtio-iommu-pci"], ""),
    "mem": (["virtio-mem-pci"], "memdev=mem0"),
    "pmem": (["virtio-pmem-pci"], "memdev=mem0"),
}

# every model, every machine
COMMON = ["disable-legacy=on", "disable-legacy=off", "disable-modern=on", "vectors=0"]

# transport options: net on pc and q35rp (a subset on the q35 root bus), a subset for
# blk/rng/gpu on pc and q35rp
TRANSPORT = [
    "disable-legacy=auto", "disable-legacy=on,disable-modern=on",
    "disable-modern=on,vectors=0", "disable-modern=on,disable-legacy=off",
    "vectors=1", "vectors=3", "vectors=64", "vectors=300", "vectors=2048", "vectors=2049",
    "vectors=65537", "page-per-vq=on", "modern-pio-notify=on",
    "modern-pio-notify=on,disable-legacy=on", "ats=on", "aer=on", "ats=on,aer=on",
    "iommu_platform=on", "iommu_platform=on,disable-legacy=on", "rombar=0", "romfile=",
    "x-disable-pcie=on", "x-pcie-flr-init=off", "x-pcie-pm-init=off",
    "x-pcie-lnkctl-init=off", "x-pcie-deverr-init=off", "x-pcie-extcap-init=off",
    "multifunction=on", "event_idx=off", "indirect_desc=off", "packed=on",
    "queue_reset=off", "x-ignore-backend-features=on", "use-disabled-flag=off",
    "notify_on_empty=off", "any_layout=off",
]
TRANSPORT_SUBSET = [
    "vectors=3", "vectors=2048", "vectors=2049", "page-per-vq=on", "modern-pio-notify=on",
    "ats=on", "aer=on", "iommu_platform=on,disable-legacy=on", "rombar=0",
    "x-disable-pcie=on", "x-pcie-flr-init=off", "multifunction=on",
]

# device options, on pc (and q35rp for the ones marked *)
DEVICE_OPTS = {
    "net": ["mq=on", "*mq=on,vectors=10", "host_mtu=9000", "speed=1000,duplex=full",
            "speed=10000,duplex=half", "status=off", "rss=on", "hash=on", "*mq=on,rss=on",
            "mac=52:54:00:ab:cd:ef", "csum=off", "ctrl_vq=off", "mrg_rxbuf=off",
            "guest_announce=off", "rx_queue_size=1024", "tx_queue_size=512",
            "rx_queue_size=100", "netdev=n0", "guest_rsc_ext=on", "ctrl_guest_offloads=off",
            "host_mtu=9000,mq=on,speed=100,duplex=full", "*class=0x0280"],
    "blk": ["num-queues=1", "*num-queues=4", "num-queues=16", "discard=off", "write-zeroes=off",
            "discard=off,write-zeroes=off", "config-wce=off", "serial=abc123", "queue-size=512",
            "queue-size=100", "seg-max-adjust=off", "logical_block_size=4096",
            "physical_block_size=4096", "min_io_size=8192,opt_io_size=65536", "scsi=on",
            "*class=0x0100", "num-queues=4,vectors=3"],
    "scsi": ["num_queues=1", "*num_queues=4", "max_sectors=1024", "cmd_per_lun=64",
             "virtqueue_size=512", "seg_max_adjust=off", "hotplug=off"],
    "serial": ["max_ports=1", "*max_ports=4", "max_ports=32", "emergency-write=off",
               "class=0x0780", "*vectors=4"],
    "rng": ["max-bytes=1024,period=1000", "period=0"],
    "balloon": ["deflate-on-oom=on", "free-page-reporting=on", "*page-poison=off",
                "free-page-hint=on", "qemu-4-0-config-size=on", "guest-stats-polling-interval=2"],
    "9p": ["mount_tag=hostshare"],
    "gpu": ["*max_outputs=2", "max_outputs=16", "max_outputs=17", "xres=1024,yres=768",
            "edid=off", "blob=on", "vectors=0,disable-legacy=on"],
    "vga": ["*max_outputs=2", "edid=off", "disable-legacy=on"],
    "keyboard": ["serial=kbd0"],
    "mouse": [],
    "tablet": ["*vectors=4"],
    "crypto": ["*disable-legacy=on"],
    "iommu": ["boot-bypass=off", "len-reserved-regions=0"],
    "mem": ["*requested-size=256M", "block-size=4M"],
    "pmem": [],
}

# refused / bad combinations (pc, some on q35rp too)
ERRORS = [
    "virtio-net-pci,vectors=abc", "virtio-net-pci,disable-legacy=maybe",
    "virtio-net-pci,no-such-prop=1", "virtio-nosuch-pci", "virtio-net-pci,mq=2",
    "virtio-net-pci,speed=1000,duplex=sideways", "virtio-net-pci,mac=zz:zz",
    "virtio-net-pci,romfile=does-not-exist.rom", "virtio-net-pci,disable-modern=maybe",
    "virtio-blk-pci", "virtio-blk-pci,drive=d0,num-queues=0",
    "virtio-blk-pci,drive=d0,queue-size=3", "virtio-blk-pci,drive=d0,num-queues=1025",
    "virtio-gpu-pci,disable-legacy=off", "virtio-gpu-pci,disable-modern=on",
    "virtio-keyboard-pci,disable-legacy=off", "virtio-iommu-pci,disable-legacy=off",
    "virtio-serial-pci,max_ports=0", "virtio-serial-pci,max_ports=1000",
    "virtio-crypto-pci", "virtio-9p-pci,fsdev=fs0", "virtio-mem-pci",
    "virtio-scsi-pci,num_queues=0", "virtio-scsi-pci,virtqueue_size=2",
    "virtio-net-pci,tx_queue_size=2048",
]


# --machines: (spec, family, root_port) on every versioned machine type of the family, with
# the compat property that bites each (hw/core/machine.c hw_compat_X_Y, 10.0's source)
MACHINE_CASES = [
    ("virtio-net-pci", "pc", False),                 # vectors=3 up to 5.2; queue_reset (7.1)
    ("virtio-net-pci,vectors=6", "pc", False),       # the user's option wins over any compat
    ("virtio-net-pci,disable-legacy=on", "pc", False),
    ("virtio-blk-pci,drive=d0", "pc", False),        # report-discard-granularity (5.2)
    ("virtio-scsi-pci", "pc", False),
    ("virtio-rng-pci", "pc", False),                 # vectors=0 up to 7.1
    ("virtio-balloon-pci", "pc", False),             # vectors=0 up to 9.2
    ("virtio-mem-pci,memdev=mem0", "pc", False),     # vectors=0 up to 9.2
    ("virtio-gpu-pci", "pc", False),
    ("virtio-net-pci", "q35", True),                 # x-pcie-ext-tag (9.1), pm-no-soft-reset (9.0)
    ("virtio-net-pci,aer=on", "q35", True),          # x-pcie-err-unc-mask (7.2)
    ("virtio-net-pci-non-transitional", "q35", True),
    ("virtio-blk-pci,drive=d0", "q35", True),
    ("virtio-rng-pci", "q35", True),
    ("virtio-balloon-pci", "q35", True),
    ("virtio-iommu-pci", "q35", False),              # granule, aw-bits (8.2)
]

_TYPE = re.compile(r"^(pc-i440fx|pc-q35)-(\d+)\.(\d+) ", re.M)


def machine_types(release):
    """The release's versioned machine types from 5.2 up, oldest first: {family: [types]}."""
    with open(os.path.join(ROOT, "virtio_lab", "data", f"qemu-{release}", "machines.txt")) as f:
        found = sorted({(m.group(1), int(m.group(2)), int(m.group(3)))
                        for m in _TYPE.finditer(f.read())})
    out = {"pc": [], "q35": []}
    for prefix, major, minor in found:
        if (major, minor) >= (5, 2):
            out["pc" if prefix == "pc-i440fx" else "q35"].append(f"{prefix}-{major}.{minor}")
    return out


def machine_cases(release):
    """[(spec, machine type, root_port)] for --machines."""
    types = machine_types(release)
    return [(spec, t, rp) for spec, family, rp in MACHINE_CASES for t in types[family]]


def _spec(name, backend, opts=""):
    return ",".join(p for p in (name, backend, opts) if p)


def cases():
    """[(spec, machine, root_port)] without duplicates, in a stable order."""
    out = []
    for model, (names, backend) in MODELS.items():
        for m, rp in MACHINES:
            for n in names:
                out.append((_spec(n, backend), m, rp))
            for o in COMMON:
                out.append((_spec(names[0], backend, o), m, rp))
            if model == "net" and (m, rp) == ("q35", False):
                for o in TRANSPORT_SUBSET + TRANSPORT[:2] + ["iommu_platform=on"]:
                    out.append((_spec(names[0], backend, o), m, rp))
            elif model == "net":
                for o in TRANSPORT:
                    out.append((_spec(names[0], backend, o), m, rp))
            elif model in ("blk", "rng", "gpu") and (m, rp) != ("q35", False):
                for o in TRANSPORT_SUBSET:
                    out.append((_spec(names[0], backend, o), m, rp))
        for o in DEVICE_OPTS[model]:
            star = o.startswith("*")
            o = o.lstrip("*")
            out.append((_spec(names[0], backend, o), "pc", False))
            if star:
                out.append((_spec(names[0], backend, o), "q35", True))
    for s in ERRORS:
        out.append((s, "pc", False))
    for s in ERRORS[:4] + ["virtio-iommu-pci"]:
        out.append((s, "q35", True))
    seen, uniq = set(), []
    for c in out:
        if c not in seen:
            seen.add(c)
            uniq.append(c)
    return uniq


def ids(todo):
    """case id of each case; a spec that lacks its model's backend (a refusal) and
    would share a name with the normal case gets the suffix `__no-backend`."""
    out, taken = {}, {}
    for c in todo:
        cid = qemu.case_id(*c)
        if cid in taken and taken[cid] != c:
            cid += "__no-backend"
        taken[cid] = c
        out[c] = cid
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qemu", default=None, help="the release (default: the local QEMU)")
    ap.add_argument("--machines", action="store_true",
                    help="every versioned machine type from 5.2 up, a few devices")
    ap.add_argument("--jobs", type=int, default=max(1, os.cpu_count() or 1))
    ap.add_argument("--only", default="")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--out", default=None,
                    help="default: tests/data/qemu-X.Y-local (--machines: qemu-X.Y-machines)")
    a = ap.parse_args()
    release = a.qemu or qemu.qemu_release()
    allc = machine_cases(release) if a.machines else cases()
    names = ids(allc)
    todo = [c for c in allc if a.only in names[c]]
    if a.list:
        for c in todo:
            print(names[c], "\t", c[0])
        print(len(todo), "cases")
        return
    out = a.out or os.path.join(HERE, f"qemu-{release}-{'machines' if a.machines else 'local'}")
    os.makedirs(out, exist_ok=True)
    # one probe_many call per (machine, chunk): several devices per QEMU process
    chunks = []
    for where in dict.fromkeys((m, rp) for _, m, rp in todo):
        sub = [c for c in todo if (c[1], c[2]) == where]
        for i in range(0, len(sub), 24):
            chunks.append(sub[i:i + 24])
    t0 = time.time()
    n = errs = 0
    with cf.ThreadPoolExecutor(a.jobs) as ex:
        futs = {ex.submit(qemu.probe_many, [c[0] for c in chunk], chunk[0][1], chunk[0][2],
                          qemu=a.qemu): chunk for chunk in chunks}
        for f in cf.as_completed(futs):
            for case, r in zip(futs[f], f.result()):
                r["id"] = names[case]
                write_atomic(os.path.join(out, r["id"] + ".json"), json.dumps(r, indent=1) + "\n")
                n += 1
                errs += "error" in r
    size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(out, "*.json")))
    print(f"{n} cases ({errs} refused) in {time.time() - t0:.1f}s; "
          f"folder {size / 1e6:.2f} MB; {qemu.qemu_version(a.qemu)}")


if __name__ == "__main__":
    main()
