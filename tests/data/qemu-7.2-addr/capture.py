"""Capture how a real QEMU 7.2 takes ``addr=`` and ``bus=`` on the command line (accepted,
or its refusal), for tests/test_addr.py.  Run: python tests/data/qemu-7.2-addr/capture.py"""
import json
import subprocess
from pathlib import Path

VALUES = ["3", "03.0", "0x3", "0x1f", "+3", " 3", "3 ", "3.", ".1", "3.8", "03.9", "20", "-1",
          "zz", "0x", "3.0x1", "1f.7", "0", "1", "1.1", "1.2", "1.3", "0.1", "1f", "1f.1", "1f.2",
          "1f.3", "2", "5.3"]
BUS_VALUES = ["pci.0", "pcie.0", "rp0", "rp1", "foo", "", "pci.0/", "pcie.0/", "rp0/",
              "/i440FX-pcihost/pci.0", "/q35-pcihost/pcie.0", "/pci.0", "pci.0//"]
MACHINES = [("pc", False), ("q35", False), ("q35", True)]


def run(value: str, machine: str, root_port: bool, prop: str = "addr") -> str | None:
    args = ["qemu-system-x86_64", "-nodefaults", "-S", "-display", "none", "-M", machine]
    if root_port:
        args += ["-device", "pcie-root-port,id=rp0,bus=pcie.0,chassis=1,addr=2",
                 "-device", f"virtio-rng-pci,bus=rp0,addr={value}" if prop == "addr"
                 else f"virtio-rng-pci,bus={value}"]
    else:
        args += ["-device", f"virtio-rng-pci,{prop}={value}"]
    # accepted: the monitor's quit ends it; refused: QEMU exits before reading it
    p = subprocess.run(args + ["-monitor", "stdio"], input="quit\n",
                       capture_output=True, text=True, timeout=30)
    for line in p.stderr.splitlines():
        if line.startswith("qemu-system-x86_64: -device virtio-rng-pci"):
            return line.split(f"{prop}={value}: ", 1)[1]
    return None


def main() -> None:
    out = {"qemu": subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                                  text=True).stdout.splitlines()[0],
           "cases": [{"addr": v, "machine": m, "root_port": rp, "error": run(v, m, rp)}
                     for m, rp in MACHINES for v in VALUES],
           "bus_cases": [{"bus": v, "machine": m, "root_port": rp, "error": run(v, m, rp, "bus")}
                         for m, rp in MACHINES for v in BUS_VALUES]}
    Path(__file__).with_name("cases.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
