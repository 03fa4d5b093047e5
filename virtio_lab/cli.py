"""Command line: ``python -m virtio_lab COMMAND ...`` (argparse subcommands).

Every user error prints one line on stderr and exits 2; no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

from .errors import VirtioLabError, one_line, printable, shown

__all__ = ["main", "build_parser"]

PROG = "virtio_lab"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit 2) instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, one_line(f"{self.prog}: error: {message} (see --help)") + "\n")



def _add_qemu(p: argparse.ArgumentParser) -> None:
    p.add_argument("--qemu", default=None, metavar="X.Y",
                   help="the QEMU release to model: 5.2, 7.2 or 10.0 (default: 7.2)")


def _add_target(p: argparse.ArgumentParser, spec: str = "spec") -> None:
    p.add_argument(spec, help="a -device spec, e.g. virtio-net-pci or virtio-blk-pci,disable-legacy=on")
    p.add_argument("--machine", default="pc",
                   help="pc (i440fx), q35, or a versioned machine type such as pc-q35-7.2 "
                        "(pc and q35 are the release's newest; default: pc)")
    p.add_argument("--root-port", action="store_true",
                   help="plug behind a pcie-root-port (q35 only): the device becomes a PCIe endpoint")
    _add_qemu(p)


def _machine(args: argparse.Namespace):
    """The machine the arguments name (a bad machine or release is a usage error, exit 2)."""
    from .hw.machine import Machine
    return Machine(args.machine, args.root_port, qemu=args.qemu)


def cmd_devices(args: argparse.Namespace) -> int:
    from .hw.devices import MODELS, model_for, supported_types
    from .hw.spec import type_properties
    # one model (any of its type names) with its options, or every model
    from .hw.release import release
    qemu = release(args.qemu).version
    models = [model_for(args.model.strip()).model] if args.model else list(MODELS.values())
    verbose = args.verbose or bool(args.model)
    if args.json:
        out = {}
        for name, info in sorted(supported_types().items()):
            if info.model not in models:
                continue
            out[name] = {"virtio_id": info.model.virtio_id, "summary": info.model.summary,
                         "variant": info.variant,
                         "options": {p.name: {"type": p.type, "default": p.default}
                                     for p in type_properties(name, qemu).values()
                                     if not p.type.startswith("child<")}}
        print(json.dumps(out, indent=1))
        return 0
    for m in models:
        names = [m.name] + ([f"{m.name}-transitional", f"{m.name}-non-transitional"] if m.variants else [])
        print(f"{m.name:22} virtio id {m.virtio_id:2}  {m.summary}"
              + ("  [modern only]" if m.forced_modern else ""))
        if verbose:
            if len(names) > 1:
                print(f"{'':22} also: {', '.join(names[1:])}")
            for p in type_properties(m.name, qemu).values():
                if p.type.startswith("child<"):
                    continue
                default = "" if p.default is None else f" (default {p.default})"
                print(f"{'':24}{p.name}=<{p.type}>{default}")
    if not verbose:
        print("\n(devices MODEL lists one model's options, -v every model's; --json prints JSON)")
    return 0


def cmd_machines(args: argparse.Namespace) -> int:
    """What ``-machine help`` lists, for the types virtio_lab models, with their compat tables."""
    from .hw.compat import MACHINE_PREFIX, machine_globals, machine_types
    from .hw.machine import Machine
    from .hw.release import release
    rel = release(args.qemu)
    names = machine_types(rel.version)
    if args.type:
        names = (Machine(args.type, qemu=rel.version).type,)
    rows = []
    for name in names:
        alias = next((a for a, prefix in MACHINE_PREFIX.items() if name == f"{prefix}-{rel.version}"), None)
        rows.append({"name": name, "alias": alias,
                     "compat": [{"driver": g.driver, "property": g.property, "value": g.value,
                                 "array": g.array} for g in machine_globals(rel.version, name)]})
    if args.json:
        print(json.dumps({"qemu": rel.version, "machines": rows}, indent=1))
        return 0
    print(f"QEMU {rel.version} machine types that virtio_lab models (pc and q35 alias the newest):")
    for r in rows:
        n = len(r["compat"])
        print(f"  {r['name']:16} {('(' + r['alias'] + ')') if r['alias'] else '':6} "
              f"{n} compat propert{'y' if n == 1 else 'ies'}")
        if args.type or args.verbose:
            for g in r["compat"]:
                print(f"      {g['array']:24} {g['driver']}.{g['property']}={g['value']}")
    if not (args.type or args.verbose):
        print("\n(machines TYPE lists one type's compat properties, -v every type's)")
    return 0


def cmd_plug(args: argparse.Namespace) -> int:
    from .hw.plug import plug
    from .hw.virtio_pci import PlugError
    try:
        trace = plug(args.spec, args.machine, args.root_port, args.qemu)
    except PlugError as err:
        if err.trace is not None:
            print(err.trace.narrate())
        raise
    print(trace.narrate())
    if args.save:
        from .course.session import Session, save
        path = save(Session.of(trace), args.save)
        print(f"saved the session to {path} (python -m virtio_lab session {path} opens it)")
    return 0


def cmd_session(args: argparse.Namespace) -> int:
    from .course.session import load
    s = load(args.file)
    trace = s.trace()
    step = s.step % len(trace.events)
    ev = trace.events[step]
    acc = s.access()
    if args.json:
        print(json.dumps({**s.to_dict(), "function": ev.function,
                          "config": bytes(acc.config[:acc.size]).hex()}))
        return 0
    print(f"{s.spec} on {trace.machine.label}: step {step} of {len(trace.events) - 1}")
    print(f"{ev.index:3d} {ev.function}: {ev.explanation}")
    print(f"config space after the plug and {len(s.writes)} guest "
          f"write{'s' if len(s.writes) != 1 else ''}:")
    cfg = bytes(acc.config[:256])
    for row in range(0, len(cfg), 16):
        print(f"{row:02x}: " + " ".join(f"{b:02x}" for b in cfg[row:row + 16]))
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    from .text.dump import dump
    _machine(args)  # machine errors are usage errors, not QEMU refusals
    out = dump(args.spec, args.machine, args.root_port, args.qemu)
    if args.json:
        print(json.dumps(out))  # the refusal in the schema for programs, and in one line below
    if "error" in out:
        raise VirtioLabError(out["error"])
    if args.json:
        return 0
    cfg = bytes.fromhex(out["config"])
    for row in range(0, len(cfg), 16):
        print(f"{row:02x}: " + " ".join(f"{b:02x}" for b in cfg[row:row + 16]))
    return 0


def cmd_lspci(args: argparse.Namespace) -> int:
    from .text.lspci import lspci_text
    _machine(args)
    level = args.level if args.level else (None if args.verbose else 3)
    print(lspci_text(args.spec, args.machine, args.root_port, level, args.verbose, args.qemu), end="")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .files import MAX_INPUT, read_input
    from .text.explain import explain, render
    reports = explain(read_input(args.file, MAX_INPUT, "explain input"), args.qemu)
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], indent=1))
    else:
        print(render(reports), end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .views.report import report_trace, write_report
    _machine(args)
    trace = report_trace(args.spec, args.machine, args.root_port, args.qemu)
    path = write_report(trace, args.output)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB): open it in any browser, no network needed")
    if trace.error:  # the report still shows the steps up to QEMU's refusal
        print(f"note: QEMU refuses this device ({trace.error}); the report steps up to the refusal",
              file=sys.stderr)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from .hw.machine import Machine, machine_family
    from .text.diff import diff
    if args.spec_b is None and not (args.machine_b or args.qemu_b or args.root_port_b):
        raise VirtioLabError("diff needs something to compare with: a second spec, "
                             "--against-qemu X.Y or --against-machine TYPE")
    _machine(args)
    mb = args.machine_b or args.machine
    rpb = args.root_port_b or (args.root_port and machine_family(mb) == machine_family(args.machine))
    Machine(mb, rpb, qemu=args.qemu_b or args.qemu)
    d = diff(args.spec, args.spec_b or args.spec, args.machine, args.root_port, machine_b=mb,
             root_port_b=rpb, qemu=args.qemu, qemu_b=args.qemu_b)
    print(d.text(why=True))
    return 1 if d else 0


COMMANDS: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
    "devices": ("list the device models and their options", cmd_devices),
    "machines": ("list the machine types of a release and their compat properties", cmd_machines),
    "plug": ("narrate QEMU's plug path for a device, one event a line", cmd_plug),
    "dump": ("print the plugged device's config space (--json: the oracle schema)", cmd_dump),
    "lspci": ("print the config space as lspci -x/-xxx/-xxxx does (-vvv: decoded)", cmd_lspci),
    "explain": ("explain an lspci -x/-xxx/-xxxx dump from any VMM (FILE or -)", cmd_explain),
    "report": ("write one self-contained HTML file stepping through the plug (-o FILE)", cmd_report),
    "diff": ("name what changes between two devices: bytes, capabilities, BARs, features",
             cmd_diff),
    "session": ("open a saved session (JSON): the step it shows, the config space after the "
                "guest writes", cmd_session),
}


def cmd_crosscheck(args: argparse.Namespace) -> int:
    from .live.crosscheck import run_cli
    return run_cli(args)


COMMANDS["crosscheck"] = ("plug SPEC into a local real QEMU and into the emulation; name every "
                          "difference (--all: every device x machine)", cmd_crosscheck)


def cmd_probe(args: argparse.Namespace) -> int:
    from .guest.probe import probe
    _machine(args)
    result = probe(args.spec, args.machine, args.root_port, args.qemu)
    print(json.dumps(result.to_json()) if args.json else result.narrate())
    return 0


COMMANDS["probe"] = ("the guest's side: SeaBIOS places the BARs, Linux 6.1's virtio driver "
                     "probes the device (--json: what a real guest leaves)", cmd_probe)


def cmd_queue(args: argparse.Namespace) -> int:
    from .guest.hands import fault
    from .guest.queue import queue
    _machine(args)
    disk = None
    if args.disk:
        from .files import read_input
        disk = read_input(args.disk, 64 << 20, "a disk image")
    run = queue(args.spec, args.machine, args.root_port, args.requests, disk=disk,
                qemu=args.qemu or "7.2")  # the device at work is modelled for 7.2
    if args.fault:
        fault(run, args.fault)
    print(json.dumps(run.to_json()) if args.json else run.narrate(all_events=args.all))
    return 0


COMMANDS["queue"] = ("the device at work: requests through a virtqueue, the notify, QEMU's device "
                     "and the interrupt (--json: a replay any qtest client can play)", cmd_queue)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Step through how QEMU plugs a virtio-pci device "
                                            "(releases 5.2, 7.2 and 10.0).")
    from . import __version__
    parser.add_argument("--version", action="version",
                        version=f"{PROG} {__version__} (models QEMU 5.2, 7.2 and 10.0; default 7.2)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, (help_text, _) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == "devices":
            p.add_argument("model", nargs="?", help="one device model (or its type name): its options")
            p.add_argument("-v", "--verbose", action="store_true", help="list every option")
            p.add_argument("--json", action="store_true", help="machine-readable output (JSON)")
            _add_qemu(p)
        elif name == "machines":
            p.add_argument("type", nargs="?", help="one machine type (pc, q35, pc-q35-7.2...): its "
                                                   "compat properties")
            p.add_argument("-v", "--verbose", action="store_true", help="every type's compat properties")
            p.add_argument("--json", action="store_true", help="machine-readable output (JSON)")
            _add_qemu(p)
        elif name == "explain":
            p.add_argument("file", help="a file holding lspci -x/-xxx/-xxxx output, or - for stdin")
            p.add_argument("--json", action="store_true", help="one JSON object per device")
            _add_qemu(p)
        elif name == "session":
            p.add_argument("file", help="a session file saved by plug --save or Session.save")
            p.add_argument("--json", action="store_true", help="the session plus its config bytes")
        elif name == "crosscheck":
            from .live.crosscheck import add_arguments
            add_arguments(p)
        else:
            _add_target(p)
        if name == "plug":
            p.add_argument("--save", metavar="FILE", help="also save the session as JSON to FILE")
        if name == "dump":
            p.add_argument("--json", action="store_true", help="print the oracle JSON schema")
        if name == "queue":
            from .guest.hands import FAULTS
            p.add_argument("--requests", type=int, default=1, metavar="N",
                           help="how many requests (default 1; virtio-rng's first is the probe's own)")
            p.add_argument("--disk", metavar="FILE", help="virtio-blk's raw image (default: 1 MiB, byte i = i mod 251)")
            p.add_argument("--fault", choices=sorted(FAULTS), metavar="NAME",
                           help="then one bad request: " + ", ".join(sorted(FAULTS)))
            p.add_argument("--all", action="store_true", help="narrate the plug and the probe too")
            p.add_argument("--json", action="store_true",
                           help="the replay: bars, driver_ops and what each request left")
        if name == "probe":
            p.add_argument("--json", action="store_true",
                           help="config, BARs, ROM, Command, MSI-X, status, features, vectors as JSON")
        if name == "report":
            p.add_argument("-o", "--output", default="plug.html", help="where to write (default plug.html)")
        if name == "diff":
            p.add_argument("spec_b", nargs="?", default=None,
                           help="the second -device spec (default: SPEC again, on the other "
                                "release or machine type)")
            p.add_argument("--against-machine", "--machine-b", dest="machine_b", default=None,
                           metavar="MACHINE", help="machine (type) for SPEC_B (default: --machine)")
            p.add_argument("--against-qemu", "--qemu-b", dest="qemu_b", default=None, metavar="X.Y",
                           help="QEMU release for SPEC_B (default: --qemu)")
            p.add_argument("--root-port-b", action="store_true", help="plug SPEC_B behind a pcie-root-port")
        if name == "lspci":
            p.add_argument("-x", dest="level", action="store_const", const=1, help="64 bytes")
            p.add_argument("-xxx", dest="level", action="store_const", const=3, help="256 bytes (default)")
            p.add_argument("-xxxx", dest="level", action="store_const", const=4, help="4096 bytes")
            p.add_argument("-v", dest="verbose", action="count", default=0,
                           help="decode header, BARs and capabilities (-vv, -vvv: more)")
    return parser


class _Terminal:
    """sys.stdout as the command writes it: a value the user typed (a serial, a ROM file
    name) reaches the terminal with its control characters escaped (errors.printable), and a
    non-UTF-8 byte from the command line as \\xff instead of an encoding error."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(printable(text))

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    out = sys.stdout
    sys.stdout = _Terminal(out)
    try:
        return _main(argv)
    finally:
        sys.stdout = out


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except VirtioLabError as err:
        print(one_line(f"{PROG} {args.command}: {err}"), file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `| head`
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a bug, not bad input: still one line, and a distinct status
        print(one_line(f"{PROG} {args.command}: internal error: {type(err).__name__}: "
                       f"{shown(str(err), quote='', limit=160)} (please report this as a bug)"),
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
