"""Build the guest kit: a Debian Linux 6.1 kernel and a tiny busybox initramfs.

``python -m virtio_lab.live.guest_kit build [DIR]`` (default ``.guest-kit/``) fetches
Debian's ``linux-image-cloud-amd64`` (the metapackage, then the versioned image
package it depends on) and ``busybox-static`` with ``apt-get download``, unpacks
them with ``dpkg-deb -x`` (the kernel is never installed: that would run kernel
hooks on this host), and writes an initramfs (cpio "newc", gzip) holding
busybox, the virtio modules and their dependencies in load order, and an
``/init`` that prints what firmware and drivers left in each virtio PCI
function between ``@@VLAB`` markers on the serial console, then powers off.

``virtio_lab.live.guest`` boots it in QEMU and parses the console.

Standard library only.  The kit is rebuilt only when something is missing or
the init script changed (the build is idempotent and the archive is
byte-for-byte reproducible: fixed mtimes, uids and inode numbers).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import sys
from pathlib import Path

from .debian import (
    KitError,
    deb_fields,
    kit_main,
    need_tool,
    run,
    unpack,
    write_if_changed,
)

DEFAULT_DIR = ".guest-kit"
KERNEL_META = "linux-image-cloud-amd64"
#: The image the stored captures (tests/data/guest) were made with. Debian's security
#: archive moves the metapackage to each new ABI; pinning keeps CI on the same kernel
#: for as long as the archive carries it, then falls back to the metapackage's image.
KERNEL_IMAGE = "linux-image-6.1.0-56-cloud-amd64"
BUSYBOX_PKG = "busybox-static"
QEMU_BIN = "qemu-system-x86_64"

#: Drivers the initramfs loads (their dependencies are added from .modinfo).
ROOT_MODULES = (
    "virtio_pci", "virtio_net", "virtio_blk", "virtio_scsi", "virtio_rng",
    "virtio_balloon", "virtio_console", "virtio_input",
)

INSTALL_QEMU = ("qemu-system-x86_64 not found: install it with "
                "`apt-get install qemu-system-x86` (Debian/Ubuntu)")
INSTALL_APT = ("the guest kit needs Debian's apt-get and dpkg-deb (to download "
               "linux-image-cloud-amd64 and busybox-static); run it on Debian 12 "
               "or a Debian-based image, after `apt-get update`")
INSTALL_KIT = "the guest kit is missing: build it with `make guest-kit` " \
              "(python -m virtio_lab.live.guest_kit build)"


#: The initramfs /init (busybox sh).  Markers: ``@@VLAB G name`` (global field),
#: ``@@VLAB PRE bdf`` (config space before any driver is loaded),
#: ``@@VLAB DEV bdf`` then ``@@VLAB F name`` (per PCI function), ``@@VLAB END``.
INIT_SCRIPT = r'''#!/bin/sh
# virtio_lab guest kit: /init of the capture initramfs (runs under busybox).
# Loads the virtio modules, waits for the drivers to bind, then prints what
# the firmware (SeaBIOS) and the Linux drivers left behind, between
# "@@VLAB" marker lines, on the serial console; then powers off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "@@VLAB BEGIN"
echo "@@VLAB G kernel"
uname -r
# what firmware (SeaBIOS) and the Linux PCI core left, before any driver ran
for d in /sys/bus/pci/devices/*; do
    echo "@@VLAB PRE ${d##*/}"
    hexdump -ve '1/1 "%02x"' "$d/config"; echo
done
for m in $(cat /modules.order); do
    insmod "/lib/modules/$m.ko" 2>/dev/null || echo "@@VLAB INSMOD-FAILED $m"
done

# Wait until every virtio PCI function has a bound virtio driver whose
# device reached DRIVER_OK (or FAILED), at most ~8 s.
i=0
while [ $i -lt 80 ]; do
    pending=0
    for d in /sys/bus/pci/devices/*; do
        [ "$(cat "$d/vendor")" = 0x1af4 ] || continue
        v=""
        for x in "$d"/virtio*; do [ -d "$x" ] && v="$x"; done
        # no driver after 2 s: none will come (insmod probes synchronously)
        if [ -z "$v" ]; then
            [ -e "$d/driver" ] || [ $i -ge 20 ] || pending=1
            continue
        fi
        if [ ! -e "$v/driver" ]; then [ $i -ge 20 ] || pending=1; continue; fi
        s=$(cat "$v/status")
        [ $((s & 0x84)) -ne 0 ] || pending=1
    done
    [ $pending = 0 ] && break
    usleep 100000
    i=$((i + 1))
done
# let deferred work (config-change work, link-up, partition scan) finish
usleep 300000
echo "@@VLAB G settle_ticks"
echo "$i"

hex() { hexdump -ve '1/1 "%02x"' "$1"; echo; }

# Vendor capabilities of a config-space dump: "cfg_type bar offset length multiplier"
caps() {
    hexdump -ve '1/1 "%02x "' "$1" | awk '
    function h(s) { return (index("0123456789abcdef", substr(s,1,1)) - 1) * 16 + index("0123456789abcdef", substr(s,2,1)) - 1 }
    function d32(p) { return b[p] + b[p+1]*256 + b[p+2]*65536 + b[p+3]*16777216 }
    { for (i = 1; i <= NF; i++) b[n++] = h($i) }
    END {
        if ((int(b[6] / 16) % 2) == 0) exit
        p = b[52]; t = 0
        while (p >= 64 && t < 48) {
            p = p - p % 4
            if (b[p] == 9) printf "%d %d %d %d %d\n", b[p+3], b[p+4], d32(p+8), d32(p+12), (b[p+3] == 2) ? d32(p+16) : 0
            if (b[p] == 17) printf "msix %d %d %d\n", b[p+2] + (b[p+3] % 8) * 256 + 1, b[p+4] % 8, d32(p+4) - d32(p+4) % 8
            p = b[p+1]; t++
        }
    }'
}

barbase() { sed -n "$(($2 + 1))p" "$1/resource" | cut -d' ' -f1; }

rd() { devmem $(printf '0x%x' $(($1 + $2))) "$3" 2>/dev/null || echo "?"; }
wr() { devmem $(printf '0x%x' $(($1 + $2))) "$3" "$4" 2>/dev/null; }

# Common configuration read back from BAR memory (needs iomem=relaxed).
# Writes only the select registers (feature/queue select), as any reader must.
commoncfg() {
    d="$1"; info="$2"
    set -- $(echo "$info" | awk '$1 == 1 && $2 < 6 { print $2, $3; exit }')
    [ -n "$1" ] || return
    base=$(barbase "$d" "$1"); off=$2
    [ "$base" != "0x0000000000000000" ] || return
    base=$((base + off))
    echo "msix_config $(rd $base 0x10 16)"
    echo "num_queues $(rd $base 0x12 16)"
    echo "device_status $(rd $base 0x14 8)"
    echo "config_generation $(rd $base 0x15 8)"
    echo "queue_select $(rd $base 0x16 16)"
    for w in 0 1; do
        wr $base 0x00 32 $w; echo "device_feature$w $(rd $base 0x04 32)"
        wr $base 0x08 32 $w; echo "driver_feature$w $(rd $base 0x0c 32)"
    done
    nq=$(rd $base 0x12 16)
    q=0
    while [ $q -lt $((nq)) ] && [ $q -lt 64 ]; do
        wr $base 0x16 16 $q
        echo "queue $q size=$(rd $base 0x18 16) msix_vector=$(rd $base 0x1a 16) enable=$(rd $base 0x1c 16) notify_off=$(rd $base 0x1e 16)"
        q=$((q + 1))
    done
}

# MSI-X table entries and PBA (MSI-X table is BAR memory, not config space).
msixtable() {
    d="$1"; info="$2"
    set -- $(echo "$info" | awk '$1 == "msix" { print $2, $3, $4; exit }')
    [ -n "$1" ] || return
    base=$(barbase "$d" "$2")
    [ "$base" != "0x0000000000000000" ] || return
    base=$((base + $3)); e=0
    while [ $e -lt $1 ] && [ $e -lt 64 ]; do
        o=$((e * 16))
        echo "entry $e addr_lo=$(rd $base $o 32) addr_hi=$(rd $base $((o + 4)) 32) data=$(rd $base $((o + 8)) 32) ctrl=$(rd $base $((o + 12)) 32)"
        e=$((e + 1))
    done
}

for d in /sys/bus/pci/devices/*; do
    b=${d##*/}
    echo "@@VLAB DEV $b"
    echo "@@VLAB F config"; hex "$d/config"
    echo "@@VLAB F resource"; cat "$d/resource"
    echo "@@VLAB F enable"; cat "$d/enable"
    echo "@@VLAB F irq"; cat "$d/irq"
    echo "@@VLAB F msi_irqs"; ls "$d/msi_irqs" 2>/dev/null | sort -n | tr '\n' ' '; echo
    echo "@@VLAB F driver"; [ -e "$d/driver" ] && basename "$(readlink "$d/driver")" || echo "-"
    [ "$(cat "$d/vendor")" = 0x1af4 ] || continue
    info=$(caps "$d/config")
    echo "@@VLAB F caps"; echo "$info"
    for v in "$d"/virtio*; do
        [ -d "$v" ] || continue
        echo "@@VLAB F virtio_name"; basename "$v"
        echo "@@VLAB F virtio_device"; cat "$v/device"
        echo "@@VLAB F virtio_features"; cat "$v/features"
        echo "@@VLAB F virtio_status"; cat "$v/status"
        echo "@@VLAB F virtio_driver"; [ -e "$v/driver" ] && basename "$(readlink "$v/driver")" || echo "-"
    done
    echo "@@VLAB F common_cfg"; commoncfg "$d" "$info"
    echo "@@VLAB F msix_table"; msixtable "$d" "$info"
done
echo "@@VLAB G interrupts"; cat /proc/interrupts
echo "@@VLAB G iomem"; cat /proc/iomem
echo "@@VLAB G ioports"; cat /proc/ioports
echo "@@VLAB G dmesg"; dmesg
echo "@@VLAB END"
sync
poweroff -f
'''


# --------------------------------------------------------------------------
# download + unpack

def _download(pkg: str, debs: Path) -> Path:
    """``apt-get download PKG`` into *debs* (once); return the .deb path."""
    found = sorted(debs.glob(f"{pkg}_*.deb"))
    if found:
        return found[-1]
    need_tool("apt-get", INSTALL_APT)
    try:
        run(["apt-get", "download", pkg], cwd=debs)
    except KitError as exc:
        raise KitError(f"{exc} (is the package index there? run `apt-get update`; "
                       f"{INSTALL_APT})") from None
    found = sorted(debs.glob(f"{pkg}_*.deb"))
    if not found:
        raise KitError(f"apt-get download {pkg} produced no .deb")
    return found[-1]


def _kernel_package(meta_deb: Path) -> str:
    """The versioned image package the metapackage depends on."""
    for alt in deb_fields(meta_deb, "Depends")["Depends"].split(","):
        name = alt.split("|")[0].strip().split(" ")[0]
        if name.startswith("linux-image-") and name != KERNEL_META:
            return name
    raise KitError(f"{meta_deb.name} depends on no linux-image-* package")


def _unpack(deb: Path, dest: Path) -> None:
    stamp = dest / ".unpacked"
    if stamp.exists() and stamp.read_text() == deb.name:
        return
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    unpack(deb, dest)
    write_if_changed(stamp, deb.name)


# --------------------------------------------------------------------------
# kernel modules: names and dependencies from the .modinfo ELF section
# (the .deb ships no modules.dep: depmod runs in its postinst)

def modinfo(path: Path) -> dict:
    """Parse the ``.modinfo`` section of an ELF64 little-endian ``.ko``."""
    data = path.read_bytes()
    if path.suffix == ".xz":
        import lzma
        data = lzma.decompress(data)
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise KitError(f"{path.name}: not an ELF64 little-endian module")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(i):
        name, _typ, _flags, _addr, off, size = struct.unpack_from(
            "<IIQQQQ", data, shoff + i * shentsize)
        return name, off, size

    _n, stroff, _s = section(shstrndx)
    info = {}
    for i in range(shnum):
        name, off, size = section(i)
        end = data.index(b"\0", stroff + name)
        if data[stroff + name:end] == b".modinfo":
            for item in data[off:off + size].split(b"\0"):
                if b"=" in item:
                    k, v = item.decode("utf-8", "replace").split("=", 1)
                    info.setdefault(k, v)
    return info


def _norm(name: str) -> str:
    return name.replace("-", "_")


def module_order(moddir: Path, roots=ROOT_MODULES) -> list:
    """Module files (Paths) for *roots* and their dependencies, dependencies first."""
    files = {}
    for p in sorted(moddir.rglob("*.ko*")):
        if p.suffix in (".ko", ".xz") and p.name.split(".ko")[0]:
            files[_norm(p.name.split(".ko")[0])] = p
    builtin = set()
    bfile = moddir / "modules.builtin"
    if bfile.exists():
        builtin = {_norm(Path(l.strip()).name.split(".ko")[0])
                   for l in bfile.read_text().splitlines() if l.strip()}
    order, state = [], {}

    def visit(name, chain):
        if state.get(name) == "done" or name in builtin:
            return
        if state.get(name) == "busy":
            raise KitError("module dependency loop: " + " -> ".join(chain + [name]))
        if name not in files:
            raise KitError(f"kernel module {name} not found in {moddir}")
        state[name] = "busy"
        deps = [d for d in modinfo(files[name]).get("depends", "").split(",") if d]
        for dep in deps:
            visit(_norm(dep), chain + [name])
        state[name] = "done"
        order.append(files[name])

    for root in roots:
        visit(_norm(root), [])
    return order


# --------------------------------------------------------------------------
# cpio "newc" writer

class Cpio:
    """A reproducible cpio newc archive (what the kernel unpacks as initramfs)."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1000

    def _entry(self, name: str, mode: int, data: bytes = b"", nlink: int = 1,
               rdev: tuple = (0, 0)) -> None:
        self.ino += 1
        nameb = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0,
            rdev[0], rdev[1], len(nameb), 0))
        self.buf.write(hdr.encode() + nameb)
        self.buf.write(b"\0" * (-(110 + len(nameb)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name):
        self._entry(name, 0o040755, nlink=2)

    def file(self, name, data: bytes, mode=0o755):
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name, target):
        self._entry(name, 0o120777, target.encode())

    def chardev(self, name, major, minor, mode=0o600):
        self._entry(name, 0o020000 | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        self.buf.write(b"\0" * (-self.buf.tell() % 512))
        return self.buf.getvalue()


def build_initramfs(busybox: Path, modules: list, init_script: str) -> bytes:
    c = Cpio()
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3, 0o666)
    c.file("bin/busybox", busybox.read_bytes())
    c.symlink("bin/sh", "busybox")
    names = []
    for m in modules:
        data = m.read_bytes()
        if m.suffix == ".xz":  # busybox insmod may lack xz: store plain ELF
            import lzma
            data = lzma.decompress(data)
        name = _norm(m.name.split(".ko")[0])
        names.append(name)
        c.file(f"lib/modules/{name}.ko", data, 0o644)
    c.file("modules.order", ("\n".join(names) + "\n").encode(), 0o644)
    c.file("init", init_script.encode(), 0o755)
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(c.finish())
    return out.getvalue()


# --------------------------------------------------------------------------
# the kit

def kit_dir(path=None) -> Path:
    if path:
        return Path(path)
    env = os.environ.get("VIRTIO_LAB_GUEST_KIT")
    if env:
        return Path(env)
    # the repository's .guest-kit/ (next to the package), else the cwd's
    repo = Path(__file__).resolve().parent.parent / DEFAULT_DIR
    if repo.is_dir():
        return repo
    return Path(DEFAULT_DIR)


def load_kit(path=None) -> dict:
    """The built kit's manifest (with absolute ``kernel``/``initrd`` paths) or KitError."""
    d = kit_dir(path)
    man = d / "kit.json"
    if not man.exists():
        raise KitError(f"{INSTALL_KIT} (looked in {d})")
    kit = json.loads(man.read_text())
    for key in ("kernel", "initrd"):
        p = d / kit[key]
        if not p.exists():
            raise KitError(f"{INSTALL_KIT} ({p} is missing)")
        kit[key] = str(p.resolve())
    return kit


def _kernel_image(debs: Path, say) -> Path:
    """The pinned kernel image .deb, else the one the metapackage depends on now."""
    try:
        return _download(KERNEL_IMAGE, debs)
    except KitError as exc:
        say(f"guest-kit: {KERNEL_IMAGE} unavailable ({exc}); using {KERNEL_META}'s image")
    return _download(_kernel_package(_download(KERNEL_META, debs)), debs)


def build(path=None, verbose=True) -> dict:
    d = kit_dir(path)
    need_tool("dpkg-deb", INSTALL_APT)
    debs = d / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    say = print if verbose else (lambda *a, **k: None)

    image = _kernel_image(debs, say)
    bb = _download(BUSYBOX_PKG, debs)
    say(f"guest-kit: {image.name}, {bb.name}")
    _unpack(image, d / "linux")
    _unpack(bb, d / "busybox")

    mods_root = d / "linux" / "lib" / "modules"
    versions = sorted(p.name for p in mods_root.iterdir() if p.is_dir())
    if not versions:
        raise KitError(f"no lib/modules in {image.name}")
    version = versions[-1]
    vmlinuz = d / "linux" / "boot" / f"vmlinuz-{version}"
    if not vmlinuz.exists():
        raise KitError(f"{vmlinuz} missing from {image.name}")
    busybox = d / "busybox" / "bin" / "busybox"

    modules = module_order(mods_root / version)
    initrd = build_initramfs(busybox, modules, INIT_SCRIPT)
    digest = hashlib.sha256(initrd).hexdigest()
    target = d / "initramfs.gz"
    if write_if_changed(target, initrd, "the initramfs"):
        say(f"guest-kit: wrote {target} ({len(initrd)} bytes)")
    write_if_changed(d / "vmlinuz", vmlinuz.read_bytes(), "the kernel")
    manifest = {
        "kernel": "vmlinuz",
        "initrd": "initramfs.gz",
        "kernel_version": version,
        "kernel_package": image.name,
        "busybox_package": bb.name,
        "modules": [_norm(m.name.split(".ko")[0]) for m in modules],
        "initrd_sha256": digest,
    }
    write_if_changed(d / "kit.json", json.dumps(manifest, indent=1) + "\n", "the kit manifest")
    say(f"guest-kit: ready in {d} (kernel {version}, {len(modules)} modules)")
    if not shutil.which(QEMU_BIN):
        say(f"guest-kit: note: {INSTALL_QEMU}")
    return manifest


def main(argv=None) -> int:
    return kit_main(argv, "guest-kit", "python -m virtio_lab.live.guest_kit",
                    "Build the Linux guest kit used by virtio_lab.live.guest (crosscheck "
                    f"--guest; DIR: {DEFAULT_DIR}/).", load_kit,
                    {"build": ("download + unpack the kernel, build the initramfs",
                               lambda d, verbose: build(d or DEFAULT_DIR, verbose)),
                     "init": ("print the initramfs /init script",
                              lambda _d, _verbose: sys.stdout.write(INIT_SCRIPT))})


if __name__ == "__main__":
    sys.exit(main())
