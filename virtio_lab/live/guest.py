"""The guest's truth: boot a real Linux 6.1 guest in QEMU and read what it left.

``capture(spec, machine="pc", root_port=False)`` boots ``qemu-system-x86_64``
(TCG, its default SeaBIOS firmware, ``-nodefaults``) with the guest kit built by
``python -m virtio_lab.live.guest_kit build`` and one ``-device SPEC``; the kit's
``/init`` loads Debian's virtio modules, waits for the drivers to reach
DRIVER_OK and prints, for every PCI function, the sysfs ``config`` (as root:
256 bytes, 4096 on PCI Express), ``resource``, ``irq``, ``msi_irqs``, the bound
driver, the virtio device's ``features`` and ``status``, and for virtio
functions the common configuration and MSI-X table read back from BAR memory
(``iomem=relaxed`` + busybox ``devmem``: only the select registers are
written, the ISR is never read).  This module parses that console into the
same fields ``virtio_lab.probe`` produces (see :data:`COMPARED_FIELDS`).

CLI::

    python -m virtio_lab.live.guest capture SPEC [--machine pc|q35] [--root-port] [--qemu X.Y]
                                            [-o FILE]
    python -m virtio_lab.live.guest regen [--qemu X.Y] [--out tests/data/guest] [--jobs 2] [CASE...]

``--qemu 10.0`` boots the guest under that release (the QEMU kit's, ``make qemu-kit``, on its
own SeaBIOS: 10.0's 1.16.3) and records it as the capture's ``qemu``; ``regen --qemu X.Y``
writes ``tests/data/guest-X.Y``.

Standard library only.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import VirtioLabError
from ..files import write_atomic
from . import qemu as real_qemu
from .guest_kit import INSTALL_QEMU, QEMU_BIN, KitError, load_kit
from .qemu import backend_args, checked_opts, placement

#: Fields that are the same on every boot of the same case and that the emulated
#: probe (firmware + driver replay) must reproduce.
COMPARED_FIELDS = ("config", "bars", "rom_address", "command", "interrupt_line",
                   "msix_enabled", "status", "driver_features", "vectors_used")

#: Fields that vary from boot to boot (or with timing) and are never compared.
VOLATILE_FIELDS = ("boot_seconds", "interrupts", "proc_interrupts", "dmesg",
                   "settle_ticks")

KERNEL_APPEND = "console=ttyS0 loglevel=1 panic=-1 iomem=relaxed"
MEMORY = "128M"   # QEMU's default; SeaBIOS's PCI windows depend on it

#: The captured cases: (spec, machine, root_port).
CASES = (
    ("virtio-net-pci", "pc", False),
    ("virtio-blk-pci", "pc", False),
    ("virtio-scsi-pci", "pc", False),
    ("virtio-rng-pci", "pc", False),
    ("virtio-balloon-pci", "pc", False),
    ("virtio-serial-pci", "pc", False),
    ("virtio-net-pci", "q35", False),
    ("virtio-net-pci", "q35", True),
    ("virtio-blk-pci", "q35", True),
    ("virtio-net-pci,disable-modern=on", "pc", False),
    # cheap extras
    ("virtio-net-pci,disable-modern=on,vectors=0", "pc", False),
    ("virtio-net-pci,vectors=0", "pc", False),
    ("virtio-net-pci,vectors=2", "pc", False),
    ("virtio-net-pci,page-per-vq=on", "pc", False),
    ("virtio-net-pci,modern-pio-notify=on", "pc", False),
    ("virtio-net-pci,disable-legacy=on", "pc", False),
    ("virtio-net-pci,romfile=", "pc", False),
    ("virtio-net-pci,mq=on,vectors=6", "pc", False),
    ("virtio-net-pci-non-transitional", "pc", False),
    ("virtio-net-pci-non-transitional", "q35", False),
    ("virtio-blk-pci,num-queues=4", "pc", False),
    ("virtio-blk-pci-non-transitional", "pc", False),
    ("virtio-rng-pci,vectors=0", "pc", False),
    ("virtio-scsi-pci,disable-modern=on", "pc", False),
    ("virtio-scsi-pci", "q35", True),
    ("virtio-rng-pci", "q35", True),
    ("virtio-balloon-pci", "q35", False),
    ("virtio-serial-pci", "q35", True),
    ("virtio-keyboard-pci", "pc", False),
    ("virtio-tablet-pci", "q35", True),
    ("virtio-gpu-pci", "pc", False),
)


class GuestError(RuntimeError):
    """One line saying why the guest could not be booted or read."""


def case_name(spec: str, machine: str = "pc", root_port: bool = False) -> str:
    """``MACHINE__MODEL[__OPT+OPT]`` as in the shared oracle (``q35rp`` = root port)."""
    model, *opts = spec.split(",")
    name = f"{'q35rp' if root_port else machine}__{model}"
    if opts:
        name += "__" + "+".join(o.replace("=", "-") for o in opts)
    return name


# --------------------------------------------------------------------------
# QEMU command line

#: The offline backends a model gets when the spec names none: (reference, id, QEMU args).
_DEFAULT_BACKENDS = (("virtio-blk", "drive", "d0"), ("virtio-net", "netdev", "n0"),
                     ("virtio-crypto", "cryptodev", "c0"))


def _device(spec: str):
    """The spec as QEMU splits it (refused if a backend id is no identifier: see
    virtio_lab.live.qemu.checked_opts), with the default backend reference its model
    needs added: (DeviceOpts, extra QEMU args for every backend it names)."""
    from dataclasses import replace
    opts = checked_opts(spec)
    given = {k for k, _ in opts.options}
    for model, key, bid in _DEFAULT_BACKENDS:
        if model in (opts.driver or "") and key not in given:
            opts = replace(opts, options=opts.options + ((key, bid),))
    return opts, backend_args(opts.quoted())


def qemu_command(spec: str, machine: str = "pc", root_port: bool = False,
                 kit: dict | None = None, qemu: str = QEMU_BIN) -> list:
    kit = kit or load_kit()
    opts, extra = _device(spec)
    memory = MEMORY
    if "-m" in extra:  # a memory device's backend: the guest's RAM, with the slots it needs
        at = extra.index("-m")
        memory = MEMORY + "," + extra[at + 1].split(",", 1)[1]
        extra = extra[:at] + extra[at + 2:]
    args = [qemu, "-M", machine, "-accel", "tcg", "-m", memory, "-nodefaults",
            "-display", "none", "-serial", "stdio", "-no-reboot",
            "-kernel", kit["kernel"], "-initrd", kit["initrd"],
            "-append", KERNEL_APPEND] + extra
    if root_port:
        if real_qemu.machine_family(machine) != "q35":
            raise GuestError("a pcie-root-port needs --machine q35")
        args += ["-device", "pcie-root-port,id=rp0,bus=pcie.0,addr=02.0,chassis=1"]
    return args + ["-device", placement(opts, 3, root_port)[0]]


def target_bdf(spec: str, machine: str, root_port: bool) -> str:
    _, bus, devfn = placement(spec, 3, root_port)
    return "0000:%02x:%02x.%x" % (bus, devfn >> 3, devfn & 7)


# --------------------------------------------------------------------------
# console parsing

def parse_console(text: str) -> dict:
    """Split the kit's console into ``{"global": {...}, "devices": {bdf: {...}}}``."""
    glob, devs = {}, {}
    cur = None  # (dict, field)
    dev = None
    seen_end = False
    for raw in text.replace("\r", "").split("\n"):
        if raw.startswith("@@VLAB "):
            parts = raw.split()
            kind = parts[1]
            if kind == "G":
                cur = (glob, parts[2]); glob[parts[2]] = []
            elif kind == "PRE":
                pre = devs.setdefault(parts[2], {})
                cur = (pre, "config_before_drivers"); pre["config_before_drivers"] = []
                dev = None
                continue
            elif kind == "DEV":
                dev = devs.setdefault(parts[2], {}); cur = None
            elif kind == "F" and dev is not None:
                cur = (dev, parts[2]); dev[parts[2]] = []
            elif kind == "INSMOD-FAILED":
                glob.setdefault("insmod_failed", []).append(parts[2])
            elif kind == "END":
                seen_end = True; cur = None
            continue
        if cur is not None:
            cur[0][cur[1]].append(raw)
    if not seen_end:
        raise GuestError("the guest did not finish its report (no @@VLAB END on the console)")
    return {"global": glob, "devices": devs}


def _text(lines) -> str:
    return "\n".join(l for l in (lines or [])).strip()


def _resource(lines) -> list:
    out = []
    for i, line in enumerate(l for l in lines or [] if l.strip()):
        start, end, flags = (int(x, 16) for x in line.split())
        out.append((i, start, end, flags))
    return out


def _walk_caps(cfg: bytes) -> list:
    caps, seen = [], 0
    if len(cfg) < 64 or not cfg[6] & 0x10:
        return caps
    p = cfg[0x34]
    while p >= 0x40 and seen < 48 and p + 1 < len(cfg):
        p &= ~3
        caps.append((p, cfg[p]))
        p = cfg[p + 1]
        seen += 1
    return caps


def _kv(line: str) -> dict:
    return {k: int(v, 16) if v != "?" else None
            for k, v in (t.split("=", 1) for t in line.split()[2:])}


def _common_cfg(lines) -> dict | None:
    out, queues = {}, []
    for line in lines or []:
        t = line.split()
        if not t:
            continue
        if t[0] == "queue":
            q = _kv(line)
            q["index"] = int(t[1])
            queues.append(q)
        elif len(t) == 2 and t[1] != "?":
            out[t[0]] = int(t[1], 16)
    if not out:
        return None
    out["device_feature"] = ["0x%08x" % out.pop("device_feature%d" % i) for i in (0, 1)
                             if "device_feature%d" % i in out]
    out["driver_feature"] = ["0x%08x" % out.pop("driver_feature%d" % i) for i in (0, 1)
                             if "driver_feature%d" % i in out]
    out["queues"] = [{"index": q["index"], "size": q["size"], "msix_vector": q["msix_vector"],
                      "enable": q["enable"], "notify_off": q["notify_off"]}
                     for q in queues]
    return out


def _msix_table(lines) -> list:
    out = []
    for line in lines or []:
        t = line.split()
        if t and t[0] == "entry":
            e = _kv(line)
            e = {"entry": int(t[1]), **e}
            out.append(e)
    return out


def _diff(before: bytes, after: bytes) -> list:
    """Changed bytes as ``[offset, before, after]`` (what the drivers wrote)."""
    return [[i, b, a] for i, (b, a) in enumerate(zip(before, after)) if a != b]


def function_summary(d: dict) -> dict:
    """The comparable fields of one PCI function from its parsed console section."""
    cfg = bytes.fromhex(_text(d.get("config")))
    res = _resource(d.get("resource"))
    bars = []
    i = 0
    while i < 6 and len(cfg) >= 0x28:
        reg = int.from_bytes(cfg[0x10 + 4 * i:0x14 + 4 * i], "little")
        r = res[i] if i < len(res) else (i, 0, 0, 0)
        size = r[2] - r[1] + 1 if r[2] else 0
        is64 = not reg & 1 and (reg >> 1) & 3 == 2
        if reg & 1:
            addr, kind = reg & ~3, "io"
        else:
            addr = reg & ~0xF
            if is64:
                addr |= int.from_bytes(cfg[0x14 + 4 * i:0x18 + 4 * i], "little") << 32
            kind = "mem64" if is64 else "mem32"
        if size:
            bars.append({"index": i, "address": addr, "size": size, "flags": r[3],
                         "kind": kind, "prefetchable": bool(not reg & 1 and reg & 8),
                         "linux_start": r[1]})
        i += 2 if is64 else 1
    header_type = cfg[0x0e] & 0x7f if len(cfg) > 0x0e else 0
    rom_off = 0x30 if header_type == 0 else 0x38
    rom_reg = int.from_bytes(cfg[rom_off:rom_off + 4], "little") if len(cfg) >= 0x40 else 0
    caps = _walk_caps(cfg)
    msix = next((p for p, cid in caps if cid == 0x11), None)
    msix_ctrl = int.from_bytes(cfg[msix + 2:msix + 4], "little") if msix else None
    msi_irqs = [int(x) for x in _text(d.get("msi_irqs")).split()]
    pre = _text(d.get("config_before_drivers"))
    out = {
        "config": cfg.hex(),
        # before any driver: what SeaBIOS (and the Linux PCI core's enumeration) left
        "config_before_drivers": pre or None,
        "driver_writes": _diff(bytes.fromhex(pre), cfg) if pre else None,
        "config_length": len(cfg),
        "bars": bars,
        "rom_address": rom_reg & ~0x7FF if rom_reg & ~0x7FF else None,
        "rom_enabled": bool(rom_reg & 1),
        "rom_linux": ({"address": res[6][1], "size": res[6][2] - res[6][1] + 1,
                       "flags": res[6][3]} if len(res) > 6 and res[6][2] else None),
        "command": int.from_bytes(cfg[4:6], "little"),
        "status_register": int.from_bytes(cfg[6:8], "little"),
        "interrupt_line": cfg[0x3c] if len(cfg) > 0x3d else None,
        "interrupt_pin": cfg[0x3d] if len(cfg) > 0x3d else None,
        "msix_enabled": bool(msix_ctrl & 0x8000) if msix_ctrl is not None else False,
        "msix_function_masked": bool(msix_ctrl & 0x4000) if msix_ctrl is not None else False,
        "irq": int(_text(d.get("irq")) or 0),
        "enable": int(_text(d.get("enable")) or 0),
        "msi_irqs": msi_irqs,
        "driver": _text(d.get("driver")).strip("-") or None,
    }
    return out


def summarize(parsed: dict, spec: str, machine: str, root_port: bool) -> dict:
    bdf = target_bdf(spec, machine, root_port)
    devs = parsed["devices"]
    if bdf not in devs:
        raise GuestError(f"the guest saw no PCI function at {bdf} (saw {', '.join(devs)})")
    d = devs[bdf]
    fn = function_summary(d)
    glob = parsed["global"]
    interrupts_all = glob.get("interrupts", [])
    vname = _text(d.get("virtio_name"))
    bits = _text(d.get("virtio_features"))
    features = sum(1 << i for i, c in enumerate(bits) if c == "1") if bits else None
    status = int(_text(d.get("virtio_status")), 16) if d.get("virtio_status") else None
    dev_irqs = [l for l in interrupts_all
                if vname and re.search(r"\b%s-" % re.escape(vname), l)]
    ccfg = _common_cfg(d.get("common_cfg"))
    vcaps = [list(map(int, l.split())) for l in d.get("caps", []) if l and l[0].isdigit()]
    notify = None
    for cfg_type, bar, off, length, mult in vcaps:
        if cfg_type == 2 and bar < 6:
            base = next((b["address"] for b in fn["bars"] if b["index"] == bar), None)
            if base is not None:
                q0 = ccfg["queues"][0]["notify_off"] if ccfg and ccfg.get("queues") else None
                notify = {"bar": bar, "offset": off, "length": length, "multiplier": mult,
                          "queue0_notify_off": q0,
                          "queue0_address": (base + off + q0 * mult) if q0 is not None else None}
            break
    out = {
        "device": spec, "machine": machine, "root_port": root_port, "bdf": bdf,
        **{k: fn[k] for k in ("config", "config_before_drivers", "driver_writes",
                              "config_length", "bars", "rom_address",
                              "rom_enabled", "rom_linux", "command", "status_register",
                              "interrupt_line", "interrupt_pin", "msix_enabled",
                              "msix_function_masked")},
        "status": status,
        "driver_features": "0x%x" % features if features is not None else None,
        "vectors_used": len(fn["msi_irqs"]) if fn["msix_enabled"] else 0,
        "irq": fn["irq"], "msi_irqs": fn["msi_irqs"],
        "driver": fn["driver"],
        "virtio": {"name": vname or None,
                   "device_id": int(_text(d.get("virtio_device")), 16) if d.get("virtio_device") else None,
                   "driver": _text(d.get("virtio_driver")).strip("-") or None},
        "common_cfg": ccfg,
        "notify": notify,
        "msix_table": _msix_table(d.get("msix_table")),
        "interrupts": dev_irqs,
        "kernel": _text(glob.get("kernel")),
        "other_functions": {b: function_summary(x) for b, x in sorted(devs.items()) if b != bdf},
        "iomem": glob.get("iomem", []),
        "ioports": glob.get("ioports", []),
        "proc_interrupts": interrupts_all,
        "dmesg": [re.sub(r"^\[\s*[0-9.]+\] ", "", l) for l in glob.get("dmesg", [])
                  if re.search(r"virtio|%s|pci 0000|pcieport|PCI: " % re.escape(bdf[5:]), l)],
        "insmod_failed": glob.get("insmod_failed", []),
        "settle_ticks": int(_text(glob.get("settle_ticks")) or 0),
        "bios": _bios(glob.get("dmesg", [])),
    }
    return out


def _bios(dmesg: list) -> str | None:
    """The firmware's version as Linux prints it from the SMBIOS tables SeaBIOS built
    (drivers/firmware/dmi_scan.c: dmi_present, ``DMI: ..., BIOS 1.16.3-debian-1.16.3-2~bpo12+1
    04/01/2014``): which SeaBIOS booted the guest."""
    for line in dmesg:
        m = re.search(r"\bDMI: .*, BIOS (\S+)", line)
        if m:
            return m.group(1)
    return None


# --------------------------------------------------------------------------
# boot

def _binary(release: str | None) -> str:
    """The QEMU to boot: the local one, or release X.Y's (see live.qemu.qemu_binary)."""
    if release is None:
        local = shutil.which(QEMU_BIN)
        if not local:
            raise GuestError(INSTALL_QEMU)
        return local
    try:
        return real_qemu.qemu_binary(release)
    except real_qemu.QemuUnavailable as exc:
        raise GuestError(str(exc)) from None


def capture(spec: str, machine: str = "pc", root_port: bool = False,
            timeout: float = 120.0, kit_path=None, raw_log=None, qemu: str | None = None) -> dict:
    """Boot a real Linux 6.1 guest with ``-device SPEC`` under the local QEMU (or release
    ``qemu``, a path or ``X.Y``) and return what it left."""
    release, qemu = qemu, _binary(qemu)
    try:
        kit = load_kit(kit_path)
    except KitError as exc:
        raise GuestError(str(exc)) from None
    cmd = qemu_command(spec, machine, root_port, kit, qemu)
    t0 = time.monotonic()
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        if raw_log:
            write_atomic(raw_log, exc.stdout or b"", "the console log")
        raise GuestError(f"the guest did not power off within {timeout:.0f} s") from None
    elapsed = time.monotonic() - t0
    console = res.stdout.decode("utf-8", "replace")
    if raw_log:
        write_atomic(raw_log, console, "the console log")
    if res.returncode != 0 and "@@VLAB END" not in console:
        err = res.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GuestError("QEMU failed: " + (err[-1] if err else f"exit {res.returncode}"))
    out = summarize(parse_console(console), spec, machine, root_port)
    if release is not None:
        out["qemu"] = real_qemu.qemu_release(qemu)
    if machine not in ("pc", "q35"):
        out["machine_type"] = machine
    out["qemu_version"] = real_qemu.qemu_version(qemu) or None
    out["qemu_args"] = [a if not a.startswith("/") else Path(a).name for a in cmd[1:]]
    out["kernel_package"] = kit.get("kernel_package")
    out["boot_seconds"] = round(elapsed, 2)
    return out


def regen(out_dir, cases=CASES, jobs=2, only=None, verbose=True, qemu=None) -> list:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [c for c in cases if not only or case_name(*c) in only]

    def one(case):
        name = case_name(*case)
        try:
            data = capture(*case, qemu=qemu)
        except GuestError as exc:
            return name, None, str(exc)
        write_atomic(out_dir / f"{name}.json", json.dumps(data, indent=1) + "\n", "the capture")
        return name, data["boot_seconds"], None

    results = []
    with ThreadPoolExecutor(max_workers=jobs) as ex:
        for name, secs, err in ex.map(one, todo):
            results.append((name, secs, err))
            if verbose:
                print(f"{name}: " + (f"{secs:.1f} s" if err is None else f"FAILED: {err}"),
                      flush=True)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m virtio_lab.live.guest",
                                 description="Boot a real Linux guest in QEMU and capture "
                                             "what firmware and the virtio driver left.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture", help="boot one case, print its JSON")
    c.add_argument("spec")
    c.add_argument("--machine", default="pc",
                   help="pc, q35 or a machine type (pc-i440fx-X.Y, pc-q35-X.Y)")
    c.add_argument("--root-port", action="store_true")
    c.add_argument("--qemu", default=None, help="boot under QEMU X.Y (the QEMU kit's)")
    c.add_argument("--timeout", type=float, default=120.0)
    c.add_argument("-o", "--output")
    c.add_argument("--raw", help="also write the raw console here")
    r = sub.add_parser("regen", help="re-capture the stored cases")
    r.add_argument("--qemu", default=None, help="boot under QEMU X.Y (the QEMU kit's)")
    r.add_argument("--out", default=None, help="default tests/data/guest (--qemu: guest-X.Y)")
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("cases", nargs="*", help="case names (default: all)")
    sub.add_parser("cases", help="list the case names")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "capture":
            data = capture(args.spec, args.machine, args.root_port, args.timeout,
                           raw_log=args.raw, qemu=args.qemu)
            text = json.dumps(data, indent=1) + "\n"
            if args.output:
                write_atomic(args.output, text, "the capture")
            else:
                sys.stdout.write(text)
        elif args.cmd == "regen":
            out = args.out or ("tests/data/guest" + (f"-{args.qemu}" if args.qemu else ""))
            res = regen(out, jobs=args.jobs, only=set(args.cases) or None, qemu=args.qemu)
            return 1 if any(e for _, _, e in res) else 0
        else:
            for case in CASES:
                print(case_name(*case))
    except (GuestError, VirtioLabError) as exc:
        print(f"guest: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
