#!/usr/bin/env python3
"""Re-probe stored real-QEMU cases with virtio_lab.live.qemu and compare field by field.

usage: python tests/qemu_vs_cases.py CASE_DIR [CASE_DIR...] [-j N] [--verbose]

Every field of each stored case must come back identical (lspci: the text up to
lspci's stderr noise, e.g. the libkmod warning, which depends on the host).
Last line: `qemu reproduction: N/M identical`.
"""
import argparse
import concurrent.futures as cf
import glob
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from virtio_lab.live import qemu  # noqa: E402


def strip_noise(text):
    return "\n".join(l for l in (text or "").splitlines() if not l.startswith("lspci: ")).strip()


def compare(case, got):
    diffs = []
    for k in sorted(set(case) | set(got)):
        if k == "id":      # a name (the corpus may disambiguate it), not behaviour
            continue
        a, b = case.get(k), got.get(k)
        if k == "lspci":
            a, b = strip_noise(a), strip_noise(b)
        if a != b:
            if isinstance(a, str) and isinstance(b, str) and len(a) == len(b) and k != "lspci":
                pos = [i // 2 for i in range(0, len(a), 2) if a[i:i + 2] != b[i:i + 2]]
                diffs.append(f"{k}: bytes {', '.join(hex(p) for p in pos[:8])} differ")
            else:
                diffs.append(f"{k}: {json.dumps(b)[:160]} != {json.dumps(a)[:160]}")
    return diffs


def run(path):
    case = json.load(open(path))
    got = qemu.probe(case["device"], case.get("machine_type", case["machine"]),
                     case.get("root_port", False), qemu=case.get("qemu"))
    return path, case, got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("-j", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    files = sorted(f for d in a.dirs for f in glob.glob(os.path.join(d, "*.json")))
    ok = 0
    t0 = time.time()
    with cf.ThreadPoolExecutor(a.j) as ex:
        for path, case, got in ex.map(run, files):
            d = compare(case, got)
            if d:
                print(f"DIFF {os.path.basename(path)}: " + "; ".join(d))
            else:
                ok += 1
                if a.verbose:
                    print(f"ok   {os.path.basename(path)}")
    print(f"qemu reproduction: {ok}/{len(files)} identical ({time.time() - t0:.1f}s)")
    sys.exit(0 if ok == len(files) else 1)


if __name__ == "__main__":
    main()
