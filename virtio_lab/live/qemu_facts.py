"""What each QEMU release says about itself, captured as the data the emulation reads.

``python -m virtio_lab.live.qemu_facts capture [--qemu X.Y ...]`` (``make qemu-facts``;
default: 5.2, 7.2 and 10.0, the first and last from the QEMU kit, ``make qemu-kit``)
writes, per release:

- ``virtio_lab/data/qemu-X.Y/props/TYPE.txt``: ``qemu-system-x86_64 -M pc -device TYPE,help``
  (its stdout, byte for byte) for every device type virtio_lab models that the release has
  (a type it lacks has no file);
- ``virtio_lab/data/qemu-X.Y/machines.txt``: ``-machine help``;
- ``virtio_lab/data/qemu-X.Y/refusals.json``: the release's own words for a machine type it
  does not offer (one too new, one too old, an unknown name), an unknown property and an
  unknown device type, each as :func:`virtio_lab.live.qemu.probe` records it;
- ``tests/data/qemu-X.Y-props/``: ``-device TYPE,help`` of *every* virtio/vhost PCI type in
  the release's ``-device help`` (``devices.txt`` lists them), modelled or not, for the tests.

Files are written only when they change (temporary file, then rename), so a re-run on the
same QEMU changes no byte: the 7.2 files it writes are the ones committed.

``python -m virtio_lab.live.qemu_facts check`` (the end of ``make qemu-kit``) starts each
release of the kit and the local QEMU, plugs a virtio-net-pci and reads its ids back over
qtest: the kit works.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from . import qemu
from .debian import write_if_changed

__all__ = ["REFUSALS", "capture", "check", "device_help", "pci_virtio_types"]

RELEASES = ("5.2", "7.2", "10.0")
ROOT = Path(__file__).resolve().parents[2]

#: name -> (spec, machine): each refused by every modelled release
REFUSALS = {
    "machine_type_too_new": ("virtio-net-pci", "pc-i440fx-99.0"),
    "machine_type_too_new_q35": ("virtio-net-pci", "pc-q35-99.0"),
    "machine_type_too_old": ("virtio-net-pci", "pc-i440fx-1.0"),
    "unknown_property": ("virtio-net-pci,x-no-such-property=on", "pc"),
    "unknown_device": ("virtio-no-such-pci", "pc"),
}

_TYPE_LINE = re.compile(r'^name "((?:virtio|vhost)[^"]*)", bus PCI')


def _stdout(binary: str, *args: str) -> str:
    """stdout of a QEMU that prints and exits (help texts); its stderr is host noise
    (5.2 warns about the system's 7.2 modules) and is not kept."""
    res = subprocess.run([binary, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True, timeout=60)
    if res.returncode != 0:
        raise qemu.QemuError(f"{binary} {' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout


def pci_virtio_types(binary: str) -> list[str]:
    """The virtio/vhost PCI device types of ``-device help``, in its order."""
    return [m.group(1) for line in _stdout(binary, "-device", "help").splitlines()
            if (m := _TYPE_LINE.match(line))]


def device_help(binary: str, type_name: str) -> str | None:
    """``-M pc -device TYPE,help``, or None when this build cannot load the type (7.2's
    virtio-gpu-gl-pci without Debian's qemu-system-gui module: "missing object type")."""
    try:
        return _stdout(binary, "-M", "pc", "-device", f"{type_name},help")
    except qemu.QemuError:
        return None


#: vendor 0x1af4, device 0x1000: a transitional virtio-net at the probe's 00:03.0
VIRTIO_NET_IDS = bytes.fromhex("f41a0010")


def check(say=print) -> dict[str, str]:
    """Each release of the QEMU kit and the local QEMU plug a virtio-net-pci that reads
    back over qtest; {release: version line}, or QemuError naming the one that did not."""
    from .qemu_kit import load_kit
    binaries = {name: e["wrapper"] for name, e in load_kit()["releases"].items()}
    if not qemu.qemu_unavailable():
        binaries["local"] = qemu.qemu_binary()
    out = {}
    for name, binary in binaries.items():
        cfg = qemu.fastest_config_read("virtio-net-pci", qemu=binary)
        out[name] = version = qemu.qemu_version(binary)
        if cfg[:4] != VIRTIO_NET_IDS:
            raise qemu.QemuError(f"{binary}: 00:03.0 reads {cfg[:4].hex()}, not a virtio-net")
        say(f"qemu-facts check {name}: {version}: virtio-net-pci at 00:03.0")
    return out


def _refusals(release: str) -> dict:
    out = {}
    for name, (spec, machine) in REFUSALS.items():
        got = qemu.probe(spec, machine, lspci=False, timeout=30, qemu=release)
        out[name] = {"device": spec, "machine": machine, "error": got.get("error")}
    return out


def capture(release: str, data: Path, tests: Path, say=print) -> dict:
    """Write the release's files (see the module doc); counts of what was captured."""
    from ..hw.devices import supported_types
    binary = qemu.qemu_binary(release)
    emulator = qemu.qemu_version(release)
    if qemu.release_of(emulator) != release:
        raise qemu.QemuUnavailable(f"{binary} is {emulator}, not {release}")
    types = pci_virtio_types(binary)
    helps = {t: text for t in types if (text := device_help(binary, t)) is not None}
    modelled = sorted(t for t in supported_types() if t in helps)
    rel_dir = data / f"qemu-{release}"
    (rel_dir / "props").mkdir(parents=True, exist_ok=True)
    changed = sum(write_if_changed(rel_dir / "props" / f"{t}.txt", helps[t]) for t in modelled)
    changed += write_if_changed(rel_dir / "machines.txt", _stdout(binary, "-machine", "help"))
    facts = {"qemu": release, "emulator": emulator,
             "how": "virtio_lab.live.qemu.probe(device, machine, qemu=release): QEMU's "
                    "stderr as the probe records it",
             "refusals": _refusals(release)}
    changed += write_if_changed(rel_dir / "refusals.json", json.dumps(facts, indent=1) + "\n")
    every = tests / f"qemu-{release}-props"
    every.mkdir(parents=True, exist_ok=True)
    changed += sum(write_if_changed(every / f"{t}.txt", text) for t, text in helps.items())
    changed += write_if_changed(every / "devices.txt", "".join(f"{t}\n" for t in types))
    say(f"qemu-facts {release}: {emulator}; {len(modelled)} modelled types, "
        f"{len(helps)} virtio/vhost PCI types"
        f"{' (no help: ' + ', '.join(sorted(set(types) - set(helps))) + ')' if len(helps) < len(types) else ''}"
        f", {len(REFUSALS)} refusals; "
        f"{changed} files changed")
    return {"release": release, "modelled": modelled, "types": types, "changed": changed}


def main(argv=None) -> int:
    from .qemu_kit import KitError
    ap = argparse.ArgumentParser(prog="python -m virtio_lab.live.qemu_facts", description=__doc__
                                 .split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="each release of the kit plugs a virtio-net-pci")
    capture_cmd = sub.add_parser("capture", help="write each release's data files")
    capture_cmd.add_argument("--qemu", action="append", choices=RELEASES,
                             help="a release (repeat; default: all three)")
    capture_cmd.add_argument("--data", type=Path, default=ROOT / "virtio_lab" / "data")
    capture_cmd.add_argument("--tests", type=Path, default=ROOT / "tests" / "data")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "check":
            check()
        else:
            for release in args.qemu or RELEASES:
                capture(release, args.data, args.tests)
    except (qemu.QemuUnavailable, qemu.QemuError, KitError) as err:
        print(f"qemu-facts: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
