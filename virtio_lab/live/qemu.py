"""Read a virtio-pci device back from a real QEMU, over the qtest protocol.

This is the "truth" side of virtio_lab: it starts ``qemu-system-x86_64`` with
no firmware and no guest (``-nodefaults -S -qtest stdio``), plugs one device
and reads it back the way firmware and a guest driver would:

1. the 256-byte config space through ports 0xcf8/0xcfc (on q35 also the 4 KiB
   space through ECAM at 0xb0000000, after enabling MMCONFIG in the host
   bridge at 0x60);
2. each BAR and the ROM BAR sized by writing all ones, reading back, restoring;
3. the writable mask, byte by byte: write 0xff, read, write 0x00, read,
   restore (BARs, the ROM BAR and the 4 data bytes of the
   VIRTIO_PCI_CAP_PCI_CFG window are not probed);
4. BARs given addresses (IO 0xc000, MMIO32 0xfe000000, MMIO64 0x800000000),
   COMMAND set to 0x0007, then the modern common config, up to 256 bytes of
   device config and the legacy header read.

The result is a dict in the schema of the oracle corpus
(``tests/data/qemu-7.2/*.json``) and of ``python -m virtio_lab dump --json``.

Any release runs the same probe: ``qemu="10.0"`` takes the QEMU kit's wrapper
(:mod:`virtio_lab.live.qemu_kit`, ``make qemu-kit``), ``"7.2"`` the system's
QEMU when it is that release, and a path that binary; ``machine`` may be a
versioned machine type (``pc-i440fx-5.2``, ``pc-q35-7.2``), recorded as the
oracle does (``machine`` pc/q35 plus ``machine_type``, and ``qemu``).

Standard library only.  Written from QEMU's observable behaviour; no QEMU
code is copied.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from functools import lru_cache

from ..errors import VirtioLabError, VirtioLabTypeError, shown, type_name
from ..hw.spec import DeviceOpts, device_opts, id_wellformed, parse_devfn

__all__ = [
    "QemuUnavailable",
    "QemuError",
    "QTest",
    "qemu_binary",
    "qemu_unavailable",
    "qemu_version",
    "qemu_release",
    "release_of",
    "machine_family",
    "backend_args",
    "probe",
    "probe_many",
    "fastest_config_read",
    "case_id",
    "decode_caps",
    "decode_ext_caps",
]

INSTALL_HINT = ("qemu-system-x86_64 not found: install it with "
                "`apt-get install qemu-system-x86` (Debian/Ubuntu) to compare with real QEMU")

# Fixed addresses the probe assigns (the same as the oracle capture).
IO_BASE = 0xC000
MMIO32_BASE = 0xFE000000
MMIO64_BASE = 0x800000000
ECAM_BASE = 0xB0000000

# Config bytes the write-probe leaves alone: BARs and the ROM BAR (plus the
# 4 data bytes of the PCI_CFG window, found per device).
SKIP_WMASK = frozenset(range(0x10, 0x28)) | frozenset(range(0x30, 0x34))

# Where each machine puts the probed device.
PC_SLOT = 3
RP_SLOT = 2            # pcie-root-port on q35 at 00:02.0, device behind it at 01:00.0


class QemuUnavailable(RuntimeError):
    """qemu-system-x86_64 is not installed (or cannot be started)."""


class QemuError(RuntimeError):
    """QEMU refused the configuration or died; ``str(exc)`` is its message."""


def _local_binary() -> str:
    """The local qemu-system-x86_64 (``$VIRTIO_LAB_QEMU`` overrides); raises QemuUnavailable."""
    path = os.environ.get("VIRTIO_LAB_QEMU") or shutil.which("qemu-system-x86_64")
    if not path or not os.access(path, os.X_OK):
        raise QemuUnavailable(INSTALL_HINT)
    return path


def qemu_binary(qemu: str | None = None) -> str:
    """Path of the qemu-system-x86_64 to run; raises QemuUnavailable (one line: how to get it).

    ``None``: the local one (``$VIRTIO_LAB_QEMU`` overrides). A release ``"X.Y"``: the
    local one when it is that release, else the QEMU kit's wrapper (``make qemu-kit``).
    A path (it holds a ``/``): that binary."""
    if qemu is None:
        return _local_binary()
    if os.sep in qemu:
        if not os.access(qemu, os.X_OK):
            raise QemuUnavailable(f"{qemu} is not an executable QEMU")
        return qemu
    if not re.fullmatch(r"[0-9]+\.[0-9]+", qemu):
        raise QemuUnavailable(f"not a QEMU release: {qemu!r} (give it as X.Y, e.g. 10.0)")
    try:
        local = os.path.abspath(_local_binary())
    except QemuUnavailable:
        local = None
    if local and qemu_release(local) == qemu:
        return local
    from .qemu_kit import KitError, wrapper
    try:
        return wrapper(qemu)
    except KitError as err:
        here = f" (the local QEMU is {qemu_release(local)})" if local else ""
        raise QemuUnavailable(f"QEMU {qemu} is not here{here}: {err}") from None


def qemu_unavailable(qemu: str | None = None) -> str:
    """Why that QEMU cannot be used here (one line: how to get it), or ``""`` when it can."""
    try:
        qemu_binary(qemu)
    except QemuUnavailable as err:
        return str(err)
    return ""


@lru_cache(maxsize=None)
def _version_of(path: str, mtime_ns: int) -> str:
    out = subprocess.run([path, "--version"], capture_output=True, text=True,
                         timeout=30).stdout
    return out.splitlines()[0].strip() if out else ""


def qemu_version(qemu: str | None = None) -> str:
    """First line of ``qemu-system-x86_64 --version`` (``QEMU emulator version 7.2.22 (...)``)
    of that QEMU (see :func:`qemu_binary`); asked once per binary."""
    path = qemu_binary(qemu)
    return _version_of(path, os.stat(path).st_mtime_ns)


def release_of(version: str) -> str:
    """``"7.2"`` from ``QEMU emulator version 7.2.22 (Debian ...)`` (``""`` if unreadable)."""
    m = re.search(r"version (\d+)\.(\d+)", version)
    return f"{m.group(1)}.{m.group(2)}" if m else ""


def qemu_release(qemu: str | None = None) -> str:
    """The release (``"10.0"``) of that QEMU, from its ``--version``."""
    return release_of(qemu_version(qemu))


_MACHINE = re.compile(r"(pc|q35|pc-i440fx-[0-9]+\.[0-9]+|pc-q35-[0-9]+\.[0-9]+)")


def machine_family(machine: str) -> str:
    """``pc`` or ``q35``: the board a machine name stands for (``pc-q35-7.2`` is a q35)."""
    return "q35" if machine == "q35" or machine.startswith("pc-q35-") else "pc"


# --------------------------------------------------------------------------
# qtest client
# --------------------------------------------------------------------------

class QTest:
    """A running ``qemu-system-x86_64 -qtest stdio`` and its command channel.

    Commands are pipelined: :meth:`batch` sends many commands and reads the
    answers afterwards, which makes a full probe take a few milliseconds of
    protocol time.
    """

    def __init__(self, args, timeout=30.0):
        self.args = list(args)
        self.timeout = timeout
        try:
            self.proc = subprocess.Popen(
                self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, bufsize=0)
        except OSError as e:  # binary vanished / not executable
            raise QemuUnavailable(f"{INSTALL_HINT} ({e})") from None
        self._stderr = []
        self._err_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._err_thread.start()
        self._rbuf = b""
        self._wfile = self.proc.stdin
        self._rfd = self.proc.stdout.fileno()
        self._timer = threading.Timer(timeout, self._on_timeout)
        self._timer.daemon = True
        self._timer.start()
        self._timed_out = False

    # -- process plumbing ------------------------------------------------
    def _drain_stderr(self):
        try:
            for chunk in iter(lambda: self.proc.stderr.read(4096), b""):
                self._stderr.append(chunk)
        except (OSError, ValueError):
            pass

    def _on_timeout(self):
        self._timed_out = True
        try:
            self.proc.kill()
        except OSError:
            pass

    def stderr_text(self) -> str:
        self._err_thread.join(timeout=5)
        return b"".join(self._stderr).decode("utf-8", "surrogateescape")  # a byte of the spec stays that byte

    def _died(self):
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        err = self.stderr_text().strip()
        rc = self.proc.returncode
        if not err and rc is not None and rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            err = f"qemu-system-x86_64 died of {name} without a message"
        if self._timed_out:
            raise QemuError(f"qemu timed out after {self.timeout:.0f}s: {err}")
        raise QemuError(f"qemu exited: {err}")

    def close(self):
        self._timer.cancel()
        if self.proc.poll() is None:
            # QEMU -S has nothing to flush: stop it at once
            self.proc.kill()
            self.proc.wait()
        try:
            self._wfile.close()
        except OSError:
            pass
        self._err_thread.join(timeout=5)
        for f in (self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- protocol ------------------------------------------------------------
    def _readline(self) -> str:
        while True:
            i = self._rbuf.find(b"\n")
            if i >= 0:
                line, self._rbuf = self._rbuf[:i], self._rbuf[i + 1:]
                return line.decode("ascii", "replace")
            chunk = os.read(self._rfd, 65536)
            if not chunk:
                self._died()
            self._rbuf += chunk

    def batch(self, cmds):
        """Send commands, return the answer of each (the value or None)."""
        out = []
        cmds = list(cmds)
        # keep what is in flight well below the pipe buffers (no deadlock)
        for start in range(0, len(cmds), 512):
            chunk = cmds[start:start + 512]
            try:
                self._wfile.write(("\n".join(chunk) + "\n").encode("ascii"))
            except (BrokenPipeError, OSError):
                self._died()
            for c in chunk:
                while True:
                    line = self._readline()
                    if line.startswith("IRQ"):
                        continue
                    break
                if not line.startswith("OK"):
                    raise QemuError(f"qtest command {c!r} failed: {line}")
                rest = line[2:].strip()
                out.append(int(rest, 0) if rest else None)
        return out

    def cmd(self, c):
        return self.batch([c])[0]

    # port / memory helpers
    def outb(self, port, v): self.cmd(f"outb {port:#x} {v:#x}")
    def outw(self, port, v): self.cmd(f"outw {port:#x} {v:#x}")
    def outl(self, port, v): self.cmd(f"outl {port:#x} {v:#x}")
    def inb(self, port): return self.cmd(f"inb {port:#x}")
    def inw(self, port): return self.cmd(f"inw {port:#x}")
    def inl(self, port): return self.cmd(f"inl {port:#x}")
    def readb(self, a): return self.cmd(f"readb {a:#x}")
    def readw(self, a): return self.cmd(f"readw {a:#x}")
    def readl(self, a): return self.cmd(f"readl {a:#x}")
    def writeb(self, a, v): self.cmd(f"writeb {a:#x} {v:#x}")
    def writew(self, a, v): self.cmd(f"writew {a:#x} {v:#x}")
    def writel(self, a, v): self.cmd(f"writel {a:#x} {v:#x}")


class PciConfig:
    """Config-space access to one function through 0xcf8/0xcfc (and ECAM)."""

    def __init__(self, qt: QTest, bus: int, dev: int, fn: int = 0):
        self.qt, self.bus, self.dev, self.fn = qt, bus, dev, fn

    def _sel(self, off):
        return (0x80000000 | (self.bus << 16) | (self.dev << 11) | (self.fn << 8)
                | (off & 0xFC))

    # command builders (for batching)
    def c_read(self, off, size):
        op = {1: "inb", 2: "inw", 4: "inl"}[size]
        return [f"outl 0xcf8 {self._sel(off):#x}", f"{op} {0xcfc + (off & 3):#x}"]

    def c_write(self, off, size, val):
        op = {1: "outb", 2: "outw", 4: "outl"}[size]
        return [f"outl 0xcf8 {self._sel(off):#x}", f"{op} {0xcfc + (off & 3):#x} {val:#x}"]

    def read(self, off, size=4):
        return self.qt.batch(self.c_read(off, size))[1]

    def write(self, off, size, val):
        self.qt.batch(self.c_write(off, size, val))

    def read256(self) -> bytes:
        cmds = []
        for off in range(0, 256, 4):
            cmds += self.c_read(off, 4)
        vals = self.qt.batch(cmds)[1::2]
        return b"".join(v.to_bytes(4, "little") for v in vals)

    def ecam_addr(self, off=0):
        return ECAM_BASE + (self.bus << 20) + (self.dev << 15) + (self.fn << 12) + off

    def read4k_ecam(self) -> bytes:
        base = self.ecam_addr()
        vals = self.qt.batch([f"readl {base + off:#x}" for off in range(0, 4096, 4)])
        return b"".join(v.to_bytes(4, "little") for v in vals)


# --------------------------------------------------------------------------
# backends derived from the -device spec
# --------------------------------------------------------------------------

def split_spec(spec: str):
    """'virtio-net-pci,mac=1,b=2' -> ('virtio-net-pci', [('mac','1'), ('b','2')]): the driver and
    the options as QEMU splits them (:func:`virtio_lab.hw.spec.qemu_opts`; a flag is name=on)."""
    opts = device_opts(spec, check_id=False)
    return opts.driver or "", [(k, v) for k, v in (
        ([("id", opts.id)] if opts.id is not None else []) + list(opts.options))]


def _share_dir():
    """An empty directory for 9p's fsdev (no guest runs, so nothing reads it);
    a fixed name so that the recorded arguments are the same on every run."""
    d = os.path.join(tempfile.gettempdir(), "virtio_lab_9p")
    os.makedirs(d, exist_ok=True)
    return d


#: The backend each reference names, made from a fixed template: the reference's value is
#: the only text of the user's that reaches these arguments, and only once it is a QEMU
#: identifier (``-m`` comes with memdev: memory devices need slots).
BACKEND_TEMPLATES = {
    "drive": ("-blockdev", "driver=null-co,node-name={id}"),
    "netdev": ("-netdev", "user,id={id}"),
    "fsdev": ("-fsdev", "local,id={id},path={share},security_model=none"),
    "cryptodev": ("-object", "cryptodev-backend-builtin,id={id}"),
    "memdev": ("-m", "512M,slots=2,maxmem=4G", "-object", "memory-backend-ram,id={id},size=1G"),
    "chardev": ("-chardev", "null,id={id}"),
    "iothread": ("-object", "iothread,id={id}"),
    "rng": ("-object", "rng-random,id={id},filename=/dev/urandom"),
}
#: block.c: a node name is an identifier of at most 31 characters; the others have no such
#: limit, but no backend id needs to be longer.
_BACKEND_ID_MAX = 31


def checked_opts(spec: str) -> DeviceOpts:
    """``spec`` as QEMU will split it, safe to hand to a real QEMU, or a one-line
    VirtioLabError before any QEMU starts.

    Every backend reference (``drive=``, ``netdev=``, ... : :data:`BACKEND_TEMPLATES`) must be
    a QEMU identifier: the backend is created under that id, so ``netdev=n0,,hostfwd=...``
    (which QEMU's ``,,`` escape would turn into a second option of the backend) is refused.
    The device itself goes to QEMU re-quoted from this split (:meth:`DeviceOpts.quoted`),
    never as the text given."""
    if not isinstance(spec, str):
        raise VirtioLabTypeError(f"a device spec is a string, not {type_name(spec)}")
    if "\0" in spec:
        raise VirtioLabError("a -device spec cannot hold a NUL byte (no command line can)")
    opts = device_opts(spec, check_id=False)
    if opts.driver in ("help", "?") or any(k in ("help", "?") for k, _ in opts.options):
        raise VirtioLabError("help asks QEMU for a list, not a device to compare: "
                             "python -m virtio_lab devices [MODEL] lists them")
    for key, value in opts.options:
        if key in BACKEND_TEMPLATES and value and not (
                id_wellformed(value) and len(value) <= _BACKEND_ID_MAX):
            raise VirtioLabError(
                f"{key}={shown(value)} is not a backend id QEMU can create: the real QEMU gets a "
                f"backend under that id, so it must be a letter followed by letters, digits, "
                f"'-', '.' or '_' (at most {_BACKEND_ID_MAX} characters)")
    return opts


def backend_args(spec: str):
    """Extra QEMU arguments that create the backends a spec refers to, each from its fixed
    template (:data:`BACKEND_TEMPLATES`): ``drive=ID`` -> a null-co blockdev; ``netdev=ID``
    -> user networking; ``fsdev=ID`` -> a local fsdev on an empty directory;
    ``cryptodev=ID`` -> the builtin crypto backend; ``memdev=ID`` -> a RAM backend (plus the
    ``-m`` slots/maxmem that memory devices need); ``chardev=ID`` -> a null chardev;
    ``iothread=ID`` -> an iothread; ``rng=ID`` -> rng-random. Raises VirtioLabError for a
    reference that is not an identifier (:func:`checked_opts`)."""
    extra = []
    for key, value in checked_opts(spec).options:
        if value and key in BACKEND_TEMPLATES:
            share = _share_dir() if key == "fsdev" else ""
            extra += [a.format(id=value, share=share) for a in BACKEND_TEMPLATES[key]]
    return extra


# backend references that the corpus names leave out (the oracle leaves out drive=d0)
_PLUMBING = {("drive", "d0"), ("fsdev", "fs0"), ("mount_tag", "share"), ("cryptodev", "cr0"),
             ("memdev", "mem0")}


def case_id(spec: str, machine: str = "pc", root_port: bool = False) -> str:
    """File stem in the corpus naming: MACHINE__DEVICE[__OPT-VAL+OPT-VAL] (MACHINE ``pc``,
    ``q35``, ``q35rp``, or a versioned machine type, ``pc-q35-5.2rp`` behind a root port)."""
    name, opts = split_spec(spec)
    m = machine + "rp" if root_port else machine
    parts = []
    for k, v in opts:
        if (k, v) in _PLUMBING:    # the standard backend ids are plumbing, not variants
            continue
        parts.append(k if v is None else f"{k}-{v}")
    s = f"{m}__{name}"
    if parts:
        s += "__" + "+".join(parts)
    return re.sub(r"[^A-Za-z0-9_.+=-]", "", s).replace("=", "-")


# --------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------

def _le(b, off, n):
    return int.from_bytes(b[off:off + n], "little")


def decode_caps(cfg: bytes):
    """Walk the capability list from 0x34 as the oracle decodes it."""
    caps, seen = [], set()
    status = _le(cfg, 6, 2)
    if not status & 0x10:
        return caps
    off = cfg[0x34] & 0xFC
    while off and off not in seen and off + 1 < len(cfg):
        seen.add(off)
        cid, nxt = cfg[off], cfg[off + 1]
        c = {"offset": off, "id": cid, "next": nxt}
        if cid == 0x09:            # vendor specific: virtio_pci_cap
            c["cap_len"] = cfg[off + 2]
            c["cfg_type"] = cfg[off + 3]
            c["bar"] = cfg[off + 4]
            c["id_field"] = cfg[off + 5]
            c["cap_offset"] = _le(cfg, off + 8, 4)
            c["length"] = _le(cfg, off + 12, 4)
            if c["cfg_type"] == 2:
                c["notify_off_multiplier"] = _le(cfg, off + 16, 4)
        elif cid == 0x11:          # MSI-X
            ctrl = _le(cfg, off + 2, 2)
            tbl = _le(cfg, off + 4, 4)
            pba = _le(cfg, off + 8, 4)
            c["table_size"] = (ctrl & 0x7FF) + 1
            c["table_bir"] = tbl & 7
            c["table_offset"] = tbl & ~7
            c["pba_bir"] = pba & 7
            c["pba_offset"] = pba & ~7
        caps.append(c)
        off = nxt & 0xFC
    return caps


def decode_ext_caps(cfg: bytes):
    """PCIe extended capabilities from 0x100: offset, id, version, next."""
    out, seen, off = [], set(), 0x100
    while off >= 0x100 and off + 4 <= len(cfg) and off not in seen:
        seen.add(off)
        h = _le(cfg, off, 4)
        if h in (0, 0xFFFFFFFF):
            break
        nxt = (h >> 20) & 0xFFC
        out.append({"offset": off, "id": h & 0xFFFF, "version": (h >> 16) & 0xF, "next": nxt})
        if not nxt:
            break
        off = nxt
    return out


def _bars_from_sizing(orig, ones):
    """BAR list from original values and all-ones read-backs (6 dwords each)."""
    bars, i = [], 0
    while i < 6:
        o, v = orig[i], ones[i]
        if v == 0:
            i += 1
            continue
        if o & 1 or v & 1:
            size = ((~(v & 0xFFFFFFFC)) + 1) & 0xFFFFFFFF
            if not v & 0xFFFF0000:      # 16-bit IO decoder
                size &= 0xFFFF
            bars.append({"index": i, "kind": "io", "size": size})
            i += 1
            continue
        typ = (v >> 1) & 3
        pref = bool(v & 8)
        if typ == 2 and i < 5:
            full = v | (ones[i + 1] << 32)
            size = ((~(full & ~0xF)) + 1) & 0xFFFFFFFFFFFFFFFF
            bars.append({"index": i, "kind": "mem64", "prefetchable": pref, "size": size})
            i += 2
            continue
        size = ((~(v & 0xFFFFFFF0)) + 1) & 0xFFFFFFFF
        bars.append({"index": i, "kind": "mem32", "prefetchable": pref, "size": size})
        i += 1
    return bars


def _lspci(cfg: bytes, bus: int, dev: int, fn: int = 0):
    """Debian lspci -vvv -nn on the 256-byte dump; None when lspci is missing."""
    exe = shutil.which("lspci")
    if not exe:
        return None
    lines = [f"{bus:02x}:{dev:02x}.{fn} Device"]
    for off in range(0, len(cfg), 16):
        lines.append(f"{off:02x}: " + " ".join(f"{b:02x}" for b in cfg[off:off + 16]))
    with tempfile.NamedTemporaryFile("w", suffix=".lspci", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        path = f.name
    try:
        # names come from pci.ids only: udev's hwdb (present once udev is installed) names
        # subsystems differently, and the oracle was captured without it
        r = subprocess.run([exe, "-O", "hwdb.disable=1", "-F", path, "-vvv", "-nn"],
                           capture_output=True, text=True, timeout=30)
        return r.stdout + r.stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    finally:
        os.unlink(path)


# --------------------------------------------------------------------------
# probing
# --------------------------------------------------------------------------

def _model_key(spec):
    name = split_spec(spec)[0]
    for suf in ("-non-transitional", "-transitional"):
        if name.endswith(suf):
            name = name[: -len(suf)]
    return name


def placement(spec: str | DeviceOpts, slot: int, root_port: bool, i: int = 0) -> tuple[str, int, int]:
    """The ``-device`` argument for ``spec`` and where the probe finds the device:
    ``(argument, bus number, devfn)``.

    The argument is the spec re-quoted from QEMU's own split (:func:`checked_opts`), so a
    trailing comma or a ``,,`` cannot merge with what is appended; a user's ``addr=`` and
    ``bus=`` stand (the emulation puts the device there too), else the probe's slot (behind
    root port ``rp{i}``, slot 0) is added."""
    opts = spec if isinstance(spec, DeviceOpts) else checked_opts(spec)
    given = dict(opts.options)
    arg = opts.quoted()
    if root_port and "bus" not in given:
        arg += f",bus=rp{i}"
    devfn = 0 if root_port else slot << 3
    if "addr" in given:
        try:
            devfn = parse_devfn(opts.driver or "", "addr", given["addr"])
        except VirtioLabError:
            pass  # QEMU refuses it too: nothing is read
    else:
        arg += f",addr={devfn >> 3:02x}.{devfn & 7}"
    return arg, (i + 1 if root_port else 0), devfn


def _qemu_args(machine, root_port, placed, extra, qemu=None):
    """placed: list of (spec, slot).  Device on slot s (or behind root port on slot s)."""
    args = [qemu_binary(qemu), "-M", machine, "-nodefaults", "-S", "-qtest", "stdio", "-qtest-log", "/dev/null",
            "-display", "none"]
    args += extra
    for i, (spec, slot) in enumerate(placed):
        if root_port:
            args += ["-device", f"pcie-root-port,id=rp{i},bus=pcie.0,addr={slot:02x}.0,"
                                f"chassis={i + 1}"]
        args += ["-device", placement(spec, slot, root_port, i)[0]]
    return args


def _setup_machine(qt, machine, root_port, placed):
    """MMCONFIG on q35; bus numbers and windows of each root port."""
    if machine_family(machine) == "q35":
        host = PciConfig(qt, 0, 0)
        qt.batch(host.c_write(0x64, 4, 0) + host.c_write(0x60, 4, ECAM_BASE | 1))
    if root_port:
        for i, (_spec, slot) in enumerate(placed):
            rp = PciConfig(qt, 0, slot)
            bus = i + 1
            cmds = []
            cmds += rp.c_write(0x18, 4, (bus << 16) | (bus << 8))      # pri 0, sec, sub
            cmds += rp.c_write(0x1C, 1, 0xC0)                           # IO base 0xc000
            cmds += rp.c_write(0x1D, 1, 0xF0)                           # IO limit 0xffff
            cmds += rp.c_write(0x30, 4, 0)                              # IO upper 16 bits
            cmds += rp.c_write(0x20, 2, 0xFE00)                         # mem 0xfe000000
            cmds += rp.c_write(0x22, 2, 0xFEB0)                         # .. 0xfebfffff
            cmds += rp.c_write(0x24, 2, 0x0000)                         # pref 0x8_0000_0000
            cmds += rp.c_write(0x26, 2, 0xFFF0)                         # .. 0x8_ffff_ffff
            cmds += rp.c_write(0x28, 4, MMIO64_BASE >> 32)
            cmds += rp.c_write(0x2C, 4, MMIO64_BASE >> 32)
            cmds += rp.c_write(0x04, 2, 0x0007)
            qt.batch(cmds)


def _assign(bars):
    """Addresses for each BAR: IO from 0xc000, mem32 from 0xfe000000, mem64 from 0x8_0000_0000."""
    nxt = {"io": IO_BASE, "mem32": MMIO32_BASE, "mem64": MMIO64_BASE}
    out = {}
    for b in bars:
        size = max(b["size"], 4 if b["kind"] == "io" else 16)
        a = (nxt[b["kind"]] + size - 1) & ~(size - 1)
        out[b["index"]] = a
        nxt[b["kind"]] = a + size
    return out


def _probe_one(qt, fn: PciConfig, machine, lspci_bdf):
    r = {}
    cfg = fn.read256()
    r["config"] = cfg.hex()
    ext = fn.read4k_ecam() if machine_family(machine) == "q35" else None

    # BAR and ROM sizing: all ones, read back, restore
    orig, ones = [], []
    for i in range(6):
        off = 0x10 + 4 * i
        o = fn.read(off)
        fn.write(off, 4, 0xFFFFFFFF)
        orig.append(o)
        ones.append(fn.read(off))
        fn.write(off, 4, o)
    bars = _bars_from_sizing(orig, ones)
    o = fn.read(0x30)
    fn.write(0x30, 4, 0xFFFFFFFF)
    v = fn.read(0x30)
    fn.write(0x30, 4, o)
    rom_size = ((~(v & 0xFFFFF800)) + 1) & 0xFFFFFFFF if v & 0xFFFFF800 else 0
    r["bars"] = bars
    r["rom_size"] = rom_size
    caps = decode_caps(cfg)
    r["caps"] = caps
    if ext is not None:
        r["config_ext"] = ext.hex()
        r["ext_caps"] = decode_ext_caps(ext)

    # write mask, byte by byte
    skip = set(SKIP_WMASK)
    for c in caps:
        if c["id"] == 0x09 and c.get("cfg_type") == 5:
            skip |= set(range(c["offset"] + 16, c["offset"] + 20))
    wmask = bytearray(256)
    for i in range(256):
        if i in skip:
            continue
        res = qt.batch(fn.c_read(i, 1))
        before = res[1]
        res = qt.batch(fn.c_write(i, 1, 0xFF) + fn.c_read(i, 1)
                       + fn.c_write(i, 1, 0x00) + fn.c_read(i, 1)
                       + fn.c_write(i, 1, before))
        wmask[i] = res[3] & ~res[7] & 0xFF
    r["wmask"] = wmask.hex()
    r["config_after_wmask_probe"] = fn.read256().hex()

    # give the BARs addresses, enable decoding
    addr = _assign(bars)
    cmds = []
    for b in bars:
        a = addr[b["index"]]
        off = 0x10 + 4 * b["index"]
        cmds += fn.c_write(off, 4, a & 0xFFFFFFFF)
        if b["kind"] == "mem64":
            cmds += fn.c_write(off + 4, 4, a >> 32)
    cmds += fn.c_write(0x04, 2, 0x0007)
    qt.batch(cmds)

    vcaps = {c["cfg_type"]: c for c in caps if c["id"] == 0x09 and "cfg_type" in c}
    common = vcaps.get(1)
    if common is not None and common["bar"] in addr:
        base = addr[common["bar"]] + common["cap_offset"]
        feats = []
        for w in range(4):
            qt.writel(base + 0x00, w)
            feats.append(f"{qt.readl(base + 0x04):#010x}")
        cc = {
            "device_feature": feats,
            "msix_config": qt.readw(base + 0x10),
            "num_queues": qt.readw(base + 0x12),
            "device_status": qt.readb(base + 0x14),
            "config_generation": qt.readb(base + 0x15),
            "queues": [],
        }
        for q in range(cc["num_queues"]):
            cmds = [f"writew {base + 0x16:#x} {q:#x}"] + [
                f"readw {base + o:#x}" for o in (0x18, 0x1A, 0x1C, 0x1E)]
            _, size, vec, en, noff = qt.batch(cmds)
            cc["queues"].append({"size": size, "msix_vector": vec, "enable": en,
                                 "notify_off": noff})
        r["common_cfg"] = cc
        dev = vcaps.get(4)
        if dev is not None and dev["bar"] in addr:
            dbase = addr[dev["bar"]] + dev["cap_offset"]
            n = min(256, dev["length"])
            vals = qt.batch([f"readb {dbase + k:#x}" for k in range(n)])
            r["device_cfg"] = bytes(vals).hex()
        else:
            r["device_cfg"] = ""
    legacy_bar = next((b for b in bars if b["index"] == 0 and b["kind"] == "io"), None)
    if legacy_bar is not None:
        io = addr[0]
        # the queue number is read with whatever queue is selected (the modern
        # reads above leave the last queue selected), as the oracle did
        r["legacy"] = {"host_features": f"{qt.inl(io):#010x}",
                       "queue_num_q0": qt.inw(io + 12), "isr": None}

    # put the function back to unassigned (other devices may share the process)
    cmds = fn.c_write(0x04, 2, 0)
    for b in bars:
        off = 0x10 + 4 * b["index"]
        cmds += fn.c_write(off, 4, orig[b["index"]])
        if b["kind"] == "mem64":
            cmds += fn.c_write(off + 4, 4, orig[b["index"] + 1])
    qt.batch(cmds)
    r["_cfg_bytes"] = cfg
    r["_lspci_bdf"] = lspci_bdf
    return r


def _finish(spec, machine, root_port, extra, body, with_lspci=True, qemu=None):
    """The oracle's record: ``machine`` is pc/q35; a versioned machine type is kept in
    ``machine_type``, the release asked for in ``qemu``."""
    versions = {}
    if qemu is not None:
        versions["qemu"] = qemu if os.sep not in qemu else qemu_release(qemu)
    if machine not in ("pc", "q35"):
        versions["machine_type"] = machine
    family = machine_family(machine)
    out = {**versions, "device": spec, "machine": family, "root_port": bool(root_port),
           "extra": list(extra)}
    if "error" in body:
        return {**versions, "device": spec, "machine": family, "error": body["error"],
                "id": case_id(spec, machine, root_port), "root_port": bool(root_port),
                "extra": list(extra)}
    cfg = body.pop("_cfg_bytes")
    bdf = body.pop("_lspci_bdf")
    out.update(body)
    out["id"] = case_id(spec, machine, root_port)
    if with_lspci:
        text = _lspci(cfg, *bdf)
        if text is not None:
            out["lspci"] = text
    return out


def _check_machine(machine, root_port):
    if not _MACHINE.fullmatch(machine or ""):
        raise ValueError(f"machine must be pc, q35, pc-i440fx-X.Y or pc-q35-X.Y, not {machine!r}")
    if root_port and machine_family(machine) != "q35":
        raise ValueError("a root port needs a q35 machine")


def probe(spec: str, machine: str = "pc", root_port: bool = False, *,
          lspci: bool = True, timeout: float = 60.0, qemu: str | None = None) -> dict:
    """Plug ``spec`` into a real QEMU (release ``qemu``, see :func:`qemu_binary`) and read
    it back (the oracle schema).

    A configuration QEMU refuses gives ``{"error": "qemu exited: <stderr>", ...}``.
    Raises QemuUnavailable when that QEMU is not here.
    """
    return probe_many([spec], machine, root_port, lspci=lspci, timeout=timeout, qemu=qemu)[0]


def _run_group(specs, machine, root_port, lspci, timeout, qemu=None):
    """Probe several specs in one QEMU process; raise QemuError if QEMU refuses."""
    extra_all, extras = [], []
    for spec in specs:
        e = backend_args(spec)
        extras.append(e)
        for j in range(0, len(e), 2):
            pair = e[j:j + 2]
            # -m may only be given once
            if pair[0] == "-m" and "-m" in extra_all[::2]:
                continue
            extra_all += pair
    if root_port:
        slots = [2] + [4 + i for i in range(len(specs) - 1)]
    else:
        slots = [PC_SLOT + i for i in range(len(specs))]
    placed = list(zip(specs, slots))
    with QTest(_qemu_args(machine, root_port, placed, extra_all, qemu), timeout=timeout) as qt:
        qt.cmd("inl 0xcfc")          # QEMU is up (or has refused the device)
        _setup_machine(qt, machine, root_port, placed)
        bodies = []
        for i, (spec, slot) in enumerate(placed):
            _, bus, devfn = placement(spec, slot, root_port, i)
            fn = PciConfig(qt, bus, devfn >> 3, devfn & 7)
            bodies.append(_probe_one(qt, fn, machine, (bus, devfn >> 3, devfn & 7)))
    return [_finish(s, machine, root_port, e, b, lspci, qemu)
            for s, e, b in zip(specs, extras, bodies)]


def probe_many(specs, machine: str = "pc", root_port: bool = False, *,
               lspci: bool = True, timeout: float = 60.0, group: int = 8,
               qemu: str | None = None) -> list:
    """Probe several devices, several per QEMU process where that is safe.

    Devices of the same model (which could influence each other: default MAC
    numbering, one balloon/iommu per machine, shared backend ids) go to
    different processes; when QEMU refuses a group, each device of it is
    probed alone so that every refusal carries its own message.
    """
    _check_machine(machine, root_port)
    specs = list(specs)
    for spec in specs:  # every spec safe to hand to QEMU, before any QEMU starts
        checked_opts(spec)
    qemu_binary(qemu)
    results = [None] * len(specs)

    def alone(i):
        spec = specs[i]
        try:
            results[i] = _run_group([spec], machine, root_port, lspci, timeout, qemu)[0]
        except QemuError as e:
            results[i] = _finish(spec, machine, root_port, backend_args(spec),
                                 {"error": str(e)}, qemu=qemu)

    pending = list(range(len(specs)))
    while pending:
        grp, used, rest = [], set(), []
        for i in pending:
            k = _model_key(specs[i])
            solo = _must_be_alone(specs[i])
            if len(grp) < max(1, group) and k not in used and not (grp and solo):
                grp.append(i)
                used.add(k)
                if solo:
                    rest += [j for j in pending if j not in grp and j not in rest]
                    break
            else:
                rest.append(i)
        pending = [i for i in rest if i not in grp]
        if len(grp) == 1:
            alone(grp[0])
            continue
        try:
            outs = _run_group([specs[i] for i in grp], machine, root_port, lspci, timeout, qemu)
        except QemuError:
            for i in grp:           # one of them was refused: each gets its own message
                alone(i)
            continue
        for i, o in zip(grp, outs):
            results[i] = o
    return results


def _must_be_alone(spec):
    """Devices whose plugging touches the whole machine, or that choose their own place or
    name (addr=, bus=, id= would collide with the group's)."""
    name, opts = split_spec(spec)
    return any(t in name for t in ("vga", "iommu", "mem", "vsock", "vhost")) or \
        any(k in ("multifunction", "romfile", "addr", "bus", "id") for k, _ in opts)


def fastest_config_read(spec: str, machine: str = "pc", root_port: bool = False, *,
                        qemu: str | None = None) -> bytes:
    """Start QEMU, read the 256 config bytes through 0xcf8/0xcfc, kill it.

    The cheapest possible real-QEMU look at a device (a benchmark baseline, the kit's check).
    """
    _check_machine(machine, root_port)
    extra = backend_args(spec)
    slot = 2 if root_port else PC_SLOT
    placed = [(spec, slot)]
    _, bus, devfn = placement(spec, slot, root_port)
    qt = QTest(_qemu_args(machine, root_port, placed, extra, qemu))
    try:
        _setup_machine(qt, machine, root_port, placed)
        return PciConfig(qt, bus, devfn >> 3, devfn & 7).read256()
    finally:
        qt.close()
