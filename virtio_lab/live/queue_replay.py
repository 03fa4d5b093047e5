"""The queue replay in a real QEMU: play ``driver_ops`` over qtest and compare, step for step.

What QEMU's own libqos virtio tests do, for any replay from :meth:`QueueRun.to_json
<virtio_lab.guest.queue.QueueRun.to_json>`: start ``qemu-system-x86_64`` with the device
at 00:03.0 (01:00.0 behind a pcie-root-port at 00:02.0) and a firmware that only halts
(the vCPU must not run SeaBIOS, which would move the BARs, yet the VM must be *running*:
virtio-rng and virtio-net do nothing while it is stopped, and Debian's QEMU has no qtest
accelerator), put the BARs where the replay says with COMMAND = 7, then send every op:
config space through 0xcf8/0xcfc, ``writeb/w/l`` / ``readb/w/l`` for MMIO, ``outb/w/l`` /
``inb/w/l`` for IO, ``write ADDR SIZE 0xHEX`` for guest RAM. After an op the emulation
says moved a used ring, the replay polls that ``used->idx`` until QEMU gets there (its
bottom halves and block I/O finish in its main loop).

At the end of each request it reads what the device left: the RAM ranges the emulation
names (used ring, buffers, every byte the device stored), the MSI-X Pending Bit Array
(a read has no side effect), the Status register's interrupt bit, and over QMP
(``x-query-virtio-status``, ``x-query-virtio-queue-status``, QEMU 7.2) the ISR, device
status, the broken flag and each queue's indices, all without disturbing the device;
plus the frames a virtio-net peer received (a ``-netdev dgram`` unix socket this module
reads), the disk image's bytes, and QEMU's ``virtio_error`` lines on stderr. Every read op
is compared with the value the emulation answered. QEMU runs with ``-seed``, so even
virtio-rng's bytes are QEMU's deterministic ones and compare equal.

Standard library only; a missing QEMU raises :class:`~virtio_lab.live.qemu.QemuUnavailable`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import VirtioLabError
from .qemu import (
    BACKEND_TEMPLATES,
    PciConfig,
    QemuError,
    QTest,
    _setup_machine,
    checked_opts,
    qemu_binary,
    qemu_version,
)

__all__ = ["replay", "compare", "crosscheck_queue", "QueueCheck", "halt_bios", "format_check",
           "load_capture", "capture"]

#: The firmware the replay boots: at the reset vector, cli; hlt; jmp back to the hlt.
HALT = bytes([0xFA, 0xF4, 0xEB, 0xFD])
STATUS_BITS = {"ACKNOWLEDGE": 1, "DRIVER": 2, "DRIVER_OK": 4, "FEATURES_OK": 8, "NEEDS_RESET": 0x40,
               "FAILED": 0x80}
WAIT_S = 5.0
SETTLE_S = 0.02


def halt_bios() -> bytes:
    """A 64 KiB BIOS image that halts the vCPU at once (pc's flash is a multiple of 64 KiB)."""
    image = bytearray(0x10000)
    image[0xFFF0:0xFFF0 + len(HALT)] = HALT
    return bytes(image)


# --------------------------------------------------------------------------- QMP
class _Qmp:
    """A QMP client on a unix socket: capabilities, then one command at a time."""

    def __init__(self, path: str, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise QemuError("QEMU's QMP socket did not come up") from None
                time.sleep(0.01)
        self.file = self.sock.makefile("rw", encoding="utf-8")
        self.file.readline()  # the greeting
        self.execute("qmp_capabilities")

    def execute(self, cmd: str, **args: Any) -> Any:
        self.file.write(json.dumps({"execute": cmd, **({"arguments": args} if args else {})}) + "\n")
        self.file.flush()
        while True:
            line = self.file.readline()
            if not line:
                raise QemuError(f"QMP closed during {cmd}")
            msg = json.loads(line)
            if "error" in msg:
                raise QemuError(f"QMP {cmd}: {msg['error'].get('desc', msg['error'])}")
            if "return" in msg:
                return msg["return"]

    def close(self) -> None:
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------- command line
#: the replay's backends, from fixed templates like live.qemu.BACKEND_TEMPLATES (whose
#: drive= is a null-co disk and netdev= user networking: the replay needs an image whose
#: bytes it knows, and a peer it reads)
QUEUE_BACKENDS = {
    "drive": ("-blockdev", "driver=file,filename={dir}/disk.img,node-name={id}"),
    "netdev": ("-netdev", "dgram,id={id},local.type=unix,local.path={dir}/qemu.sock,"
                          "remote.type=unix,remote.path={dir}/peer.sock"),
}


def _device_args(doc: dict, tmp: str) -> tuple[list[str], list[str]]:
    """-device, re-quoted option by option from QEMU's own split (live.qemu.checked_opts: every
    backend reference an identifier), and its backends from QUEUE_BACKENDS."""
    opts = checked_opts(doc["device"])
    given = {k for k, _ in opts.options}
    if given & {"addr", "bus"}:
        raise VirtioLabError("the queue replay places the device itself (00:03.0, or 01:00.0 behind "
                             "the root port): drop addr= and bus= from the spec")
    backends = []
    for k, v in opts.options:
        if k in QUEUE_BACKENDS and v:
            backends += [a.format(id=v, dir=tmp) for a in QUEUE_BACKENDS[k]]
        elif k in BACKEND_TEMPLATES and v:
            raise VirtioLabError(f"the queue replay builds backends for drive= and netdev= only, not {k}=")
    quoted = opts.quoted()
    if doc.get("root_port"):
        dev = ["-device", "pcie-root-port,id=rp0,bus=pcie.0,addr=02.0,chassis=1",
               "-device", f"{quoted},bus=rp0,addr=00.0"]
    else:
        dev = ["-device", f"{quoted},addr=03.0"]
    return dev, backends


def _args(doc: dict, tmp: str, seed: int, binary: str | None = None) -> list[str]:
    machine = doc.get("machine")
    if machine not in ("pc", "q35"):
        raise VirtioLabError(f"machine is pc or q35, not {machine!r}")
    if doc.get("root_port") and machine != "q35":
        raise VirtioLabError("a root port needs machine q35")
    dev, backends = _device_args(doc, tmp)
    bios = os.path.join(tmp, "halt.bin")
    with open(bios, "wb") as f:
        f.write(halt_bios())
    return ([binary or qemu_binary(), "-M", machine, "-nodefaults", "-display", "none", "-bios", bios,
             "-seed", str(seed), "-qtest", "stdio", "-qtest-log", "/dev/null",
             "-qmp", f"unix:{os.path.join(tmp, 'qmp.sock')},server=on,wait=off"]
            + backends + dev)


# --------------------------------------------------------------------------- the replay
@dataclass
class Observed:
    """What the real QEMU showed: each read's value, and the state after each request."""

    reads: list[int | None] = field(default_factory=list)
    after: list[dict] = field(default_factory=list)
    disk_sha256: str | None = None
    disk_sectors: dict[int, str] = field(default_factory=dict)  # sectors that differ from the pattern
    stderr: str = ""
    timeouts: list[str] = field(default_factory=list)
    qemu: str = ""

    def as_dict(self) -> dict:
        return {"qemu": self.qemu, "reads": self.reads, "after": self.after,
                "disk_sha256": self.disk_sha256, "disk_sectors": {str(k): v for k, v in self.disk_sectors.items()},
                "stderr": self.stderr, "timeouts": self.timeouts}


def replay(doc: dict, disk: bytes | None = None, *, timeout: float = 60.0,
           binary: str | None = None) -> Observed:
    """Play a replay's ops in a real QEMU (``binary``: which one; default the local QEMU);
    return what it showed (see the module docstring)."""
    from ..hw.qtest import Op
    ops = [Op.from_json(o) for o in doc.get("driver_ops", [])]
    seed = _seed(doc)
    with tempfile.TemporaryDirectory(prefix="virtio_lab_queue_") as tmp:
        if disk is not None:
            with open(os.path.join(tmp, "disk.img"), "wb") as f:
                f.write(disk)
        peer = None
        if "netdev=" in doc["device"]:
            peer = _Peer(os.path.join(tmp, "peer.sock"))
        args = _args(doc, tmp, seed, binary)
        obs = Observed(qemu=qemu_version(args[0]))
        try:
            with QTest(args, timeout=timeout) as qt:
                qt.cmd("inl 0xcfc")  # QEMU is up (or has refused the device)
                qmp = _Qmp(os.path.join(tmp, "qmp.sock"))
                try:
                    _run(qt, qmp, doc, ops, obs, peer)
                finally:
                    qmp.close()
            obs.stderr = qt.stderr_text()  # QEMU is gone: its stderr is complete
        finally:
            if peer is not None:
                peer.close()
        if disk is not None:
            with open(os.path.join(tmp, "disk.img"), "rb") as f:
                image = f.read()
            obs.disk_sha256 = hashlib.sha256(image).hexdigest()
            obs.disk_sectors = {s: image[s * 512:(s + 1) * 512].hex() for s in range(len(image) // 512)
                                if image[s * 512:(s + 1) * 512] != disk[s * 512:(s + 1) * 512]}
    return obs


def _seed(doc: dict) -> int:
    extra = doc.get("extra", [])
    if "-seed" in extra:
        try:
            return int(extra[extra.index("-seed") + 1])
        except (IndexError, ValueError):
            pass
    return 1


def _stderr_now(qt: QTest) -> str:
    return b"".join(qt._stderr).decode("utf-8", "replace")


def _run(qt: QTest, qmp: _Qmp, doc: dict, ops: list, obs: Observed, peer) -> None:
    rp = bool(doc.get("root_port"))
    fn = PciConfig(qt, 1, 0) if rp else PciConfig(qt, 0, 3)
    _setup_machine(qt, doc["machine"], rp, [(doc["device"], 2 if rp else 3)])
    path = qmp.execute("x-query-virtio")[0]["path"]
    # the convention: BARs where the replay says, COMMAND = 7
    bars = {int(k): v for k, v in doc["bars"].items()}
    cmds = []
    for index, addr in sorted(bars.items()):
        cmds += fn.c_write(0x10 + 4 * index, 4, addr & 0xFFFFFFFF)
        if addr >> 32 or _is_mem64(fn, index):
            cmds += fn.c_write(0x14 + 4 * index, 4, addr >> 32)
    cmds += fn.c_write(0x04, 2, 0x0007)
    qt.batch(cmds)
    ends = {r["ops"][1]: r for r in doc.get("requests", [])}
    frames: list[bytes] = []
    for i, op in enumerate(ops):
        obs.reads.append(_play(qt, fn, op))
        if op.wait:
            _wait(qmp, path, op.wait, obs, i)
        elif op.notify:
            time.sleep(SETTLE_S)  # anything QEMU's main loop does unasked shows up before the next op
        if i in ends:
            frames += _drain(peer, len(ends[i]["after"].get("frames", [])))
            obs.after.append(_observe(qt, fn, qmp, path, ends[i], doc, frames))


def _is_mem64(fn: PciConfig, index: int) -> bool:
    return (fn.read(0x10 + 4 * index) & 7) == 4


def _play(qt: QTest, fn: PciConfig, op) -> int | None:
    k = op.kind
    sfx = {1: "b", 2: "w", 4: "l"}.get(op.size, "l")
    if k == "ram_write":
        qt.cmd(f"write {op.addr:#x} {len(op.data)} 0x{op.data.hex()}")
        return None
    if k == "cfg_read":
        return qt.batch(fn.c_read(op.addr, op.size))[1]
    if k == "cfg_write":
        qt.batch(fn.c_write(op.addr, op.size, op.value))
        return None
    if k == "mmio_read":
        return qt.cmd(f"read{sfx} {op.addr:#x}")
    if k == "mmio_write":
        qt.cmd(f"write{sfx} {op.addr:#x} {op.value:#x}")
        return None
    if k == "io_read":
        return qt.cmd(f"in{sfx} {op.addr:#x}")
    qt.cmd(f"out{sfx} {op.addr:#x} {op.value:#x}")
    return None


def _wait(qmp: _Qmp, path: str, waits, obs: Observed, i: int) -> None:
    """Poll the queues' indices until the device gets where the emulation got (its main loop
    finishes the work: bottom halves, block I/O)."""
    deadline = time.monotonic() + WAIT_S
    for q, last_avail, used in waits:
        while True:
            st = qmp.execute("x-query-virtio-queue-status", path=path, queue=q)
            got = (st.get("last-avail-idx"), st["used-idx"])
            if got == (last_avail, used):
                break
            if time.monotonic() > deadline:
                obs.timeouts.append(f"op {i}: queue {q} stayed at last_avail_idx {got[0]}, used_idx {got[1]}; "
                                    f"the emulation reached {last_avail}, {used}")
                return
            time.sleep(0.001)


class _Peer:
    """The netdev's far end: a unix datagram socket read by its own thread, so QEMU never
    finds it full (a unix socket queues only ~10 datagrams: net.unix.max_dgram_qlen)."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.05)
        self.frames: list[bytes] = []
        self.taken = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.frames.append(self.sock.recv(65536))
            except socket.timeout:
                continue
            except OSError:
                return

    def take(self, expect: int = 0) -> list[bytes]:
        """The frames since the last take, once there are ``expect`` in all (or a second passed)."""
        deadline = time.monotonic() + 1.0
        while len(self.frames) < expect and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(0.002)
        new, self.taken = self.frames[self.taken:], len(self.frames)
        return new

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=1)
        self.sock.close()


def _drain(peer, expect: int = 0) -> list[bytes]:
    return [] if peer is None else peer.take(expect)


def _observe(qt: QTest, fn: PciConfig, qmp: _Qmp, path: str, req: dict, doc: dict,
             frames: list[bytes]) -> dict:
    ram = []
    for r in req["after"]["ram"]:
        n = len(r["hex"]) // 2
        ram.append({"addr": r["addr"], "hex": _read_ram(qt, r["addr"], n)})
    st = qmp.execute("x-query-virtio-status", path=path)
    status = 0
    for s in st["status"]["statuses"]:
        status |= STATUS_BITS.get(s.split(":")[0].replace("VIRTIO_CONFIG_S_", ""), 0)
    status |= st["status"].get("unknown-statuses", 0)
    queues = []
    for q in req["after"]["queues"]:
        qs = qmp.execute("x-query-virtio-queue-status", path=path, queue=q["index"])
        queues.append({"index": q["index"], "last_avail_idx": qs.get("last-avail-idx"),
                       "shadow_avail_idx": qs.get("shadow-avail-idx"), "used_idx": qs["used-idx"],
                       "signalled_used": qs["signalled-used"],
                       "signalled_used_valid": qs["signalled-used-valid"], "inuse": qs["inuse"]})
    return {"ram": ram, "isr": st["isr"], "msix_pending": _pending(qt, fn, doc), "status": status,
            "broken": st["broken"], "intx": bool(qt.batch(fn.c_read(0x06, 2))[1] & 0x08),
            "queues": queues, "errors": _errors(_stderr_now(qt)), "frames": [f.hex() for f in frames]}


def _read_ram(qt: QTest, addr: int, n: int) -> str:
    qt._wfile.write(f"read {addr:#x} {n}\n".encode("ascii"))
    while True:
        line = qt._readline()
        if not line.startswith("IRQ"):
            break
    if not line.startswith("OK 0x"):
        raise QemuError(f"qtest read failed: {line}")
    return line[5:].strip().rjust(2 * n, "0")


def _pending(qt: QTest, fn: PciConfig, doc: dict) -> list[int]:
    """The MSI-X Pending Bit Array, read through its BAR (reads change nothing)."""
    cfg = bytes(v for off in range(0, 256, 4) for v in qt.batch(fn.c_read(off, 4))[1].to_bytes(4, "little"))
    pos = cfg[0x34] & 0xFC
    for _ in range(48):
        if pos < 0x40:
            return []
        if cfg[pos] == 0x11:
            ctrl = int.from_bytes(cfg[pos + 2:pos + 4], "little")
            n = (ctrl & 0x7FF) + 1
            pba = int.from_bytes(cfg[pos + 8:pos + 12], "little")
            base = int(doc["bars"].get(str(pba & 7), 0)) + (pba & ~7)
            bits = 0
            for w in range((n + 31) // 32):
                bits |= qt.cmd(f"readl {base + 4 * w:#x}") << (32 * w)
            return [v for v in range(n) if bits >> v & 1]
        pos = cfg[pos + 1] & 0xFC
    return []


def _errors(stderr: str) -> list[str]:
    """virtio_error lines: error_report prefixes the program name."""
    out = []
    for line in stderr.splitlines():
        m = re.match(r"\S*qemu-system-x86_64: (.*)$", line.strip())
        if m and not m.group(1).startswith("warning: "):  # startup warnings are not virtio_error
            out.append(m.group(1))
    return out


# --------------------------------------------------------------------------- comparing
def compare(doc: dict, obs: Observed, disk: bytes | None = None) -> list[str]:
    """Every difference between the emulation's replay (``doc``) and a real QEMU's run."""
    diffs = list(obs.timeouts)
    for i, (op, got) in enumerate(zip(doc.get("driver_ops", []), obs.reads)):
        if op["op"].endswith("_read") and got != op.get("value"):
            diffs.append(f"op {i} ({op['op']} {op['addr']:#x}, {op['size']} byte(s)): emulation "
                         f"{op.get('value')!r:}, QEMU {got!r}")
    reqs = doc.get("requests", [])
    if len(obs.after) != len(reqs):
        diffs.append(f"QEMU reached the end of {len(obs.after)} of {len(reqs)} request(s)")
    for req, real in zip(reqs, obs.after):
        want = req["after"]
        tag = f"request {req['number']} ({req['kind']})"
        for w, r in zip(want["ram"], real["ram"]):
            if w["hex"] != r["hex"]:
                wb, rb = bytes.fromhex(w["hex"]), bytes.fromhex(r["hex"])
                k = next(i for i in range(len(wb)) if wb[i] != rb[i])
                diffs.append(f"{tag}: guest RAM at 0x{w['addr'] + k:x} ({_label(doc, w['addr'] + k)}): "
                             f"emulation {wb[k:k + 8].hex()}, QEMU {rb[k:k + 8].hex()}")
        for key in ("isr", "msix_pending", "status", "broken", "intx", "frames"):
            if want.get(key) != real.get(key):
                diffs.append(f"{tag}: {key}: emulation {want.get(key)!r}, QEMU {real.get(key)!r}")
        for wq, rq_ in zip(want["queues"], real["queues"]):
            for key, v in wq.items():
                if rq_.get(key) != v:
                    diffs.append(f"{tag}: queue {wq['index']} {key}: emulation {v!r}, QEMU {rq_.get(key)!r}")
    want_err = reqs[-1]["after"].get("errors", []) if reqs else []
    got_err = _errors(obs.stderr)
    if want_err != got_err:
        diffs.append(f"virtio_error messages: emulation {want_err!r}, QEMU {got_err!r}")
    if disk is not None and doc.get("disk_after") is not None:
        want = bytes.fromhex(doc["disk_after"])
        if hashlib.sha256(want).hexdigest() != obs.disk_sha256:
            diffs.append("the disk image differs after the run")
    return diffs


def _label(doc: dict, addr: int) -> str:
    """Which ring field (or buffer) a guest-RAM address is, from the replay's ring layout."""
    for q in doc.get("rings", []):
        num = q["num"]
        for name, base, size, fields in (
                ("used", q["used"], 4 + 8 * num + 2, lambda o: "flags" if o < 2 else "idx" if o < 4 else
                 f"ring[{(o - 4) // 8}].{'id' if (o - 4) % 8 < 4 else 'len'}" if o < 4 + 8 * num else "avail_event"),
                ("avail", q["avail"], 4 + 2 * num + 2, lambda o: "flags" if o < 2 else "idx" if o < 4 else
                 f"ring[{(o - 4) // 2}]" if o < 4 + 2 * num else "used_event"),
                ("desc", q["desc"], 16 * num, lambda o: f"[{o // 16}]")):
            if base <= addr < base + size:
                return f"queue {q['index']} {name} {fields(addr - base)}"
    return "a buffer"


# --------------------------------------------------------------------------- the crosscheck
@dataclass
class QueueCheck:
    """The emulation against a real QEMU for one queue run."""

    spec: str
    machine: str
    root_port: bool
    requests: int
    differences: list[str]
    qemu: str = ""
    observed: Observed | None = None

    @property
    def identical(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict:
        return {"spec": self.spec, "machine": self.machine, "root_port": self.root_port,
                "requests": self.requests, "qemu": self.qemu, "identical": self.identical,
                "differences": self.differences}


def crosscheck_queue(spec: str, machine: str = "pc", root_port: bool = False, requests: int = 1,
                     *, disk: bytes | None = None, fault: str | None = None,
                     binary: str | None = None) -> QueueCheck:
    """queue() in the emulation (then ``fault``, one of guest.hands.FAULTS) and the same ops in
    a real QEMU; every difference named."""
    from ..guest.hands import fault as play_fault
    from ..guest.queue import queue
    run = queue(spec, machine, root_port, requests, disk=disk)
    if fault:
        play_fault(run, fault)
    doc = run.to_json()
    initial = run.initial
    obs = replay(doc, initial, binary=binary)
    diffs = compare(doc, obs)
    if initial is not None:
        want = bytes(run.disk)
        if hashlib.sha256(want).hexdigest() != obs.disk_sha256:
            diffs.append("the disk image differs after the run: sectors "
                         + ", ".join(str(s) for s in sorted(obs.disk_sectors)))
    return QueueCheck(run.spec, machine, root_port, requests, diffs, obs.qemu, obs)


def format_check(res: QueueCheck) -> str:
    label = res.machine + (" --root-port" if res.root_port else "")
    head = f"{res.spec} on {label}, {res.requests} request(s), {res.qemu or 'QEMU'}: "
    if res.identical:
        return head + "identical"
    return head + f"{len(res.differences)} difference(s)\n" + "\n".join("  " + d for d in res.differences)


def capture(spec: str, machine: str, root_port: bool, requests: int, fault: str | None = None) -> dict:
    """A real-QEMU run as test data (tests/data/queue): the inputs and what QEMU showed."""
    from ..guest.hands import fault as play_fault
    from ..guest.queue import queue
    run = queue(spec, machine, root_port, requests)
    if fault:
        play_fault(run, fault)
    doc = run.to_json()
    obs = replay(doc, run.initial)
    return {"spec": spec, "machine": machine, "root_port": root_port, "requests": requests,
            "fault": fault, "captured_with": obs.qemu, "driver_ops": len(doc["driver_ops"]),
            "ops_sha256": ops_digest(doc), **obs.as_dict()}


def ops_digest(doc: dict) -> str:
    """sha256 of what the driver did (every op but the reads' answers and the event numbers):
    a capture compares only when the emulation still makes the same accesses."""
    keep = [(o["op"], o["addr"], o.get("size"), None if o["op"].endswith("_read") else o.get("value"),
             o.get("hex")) for o in doc.get("driver_ops", [])]
    return hashlib.sha256(json.dumps(keep).encode()).hexdigest()


def load_capture(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)
