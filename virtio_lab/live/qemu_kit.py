"""Build the QEMU kit: Debian's QEMU 5.2 and 10.0 beside the system's 7.2.

``python -m virtio_lab.live.qemu_kit build [DIR]`` (``make qemu-kit``; default
``.qemu-kit/``) downloads Debian's own builds of QEMU 5.2 (suite ``bullseye``)
and 10.0 (``bookworm-backports``) with a *private* apt configuration per
release (:class:`virtio_lab.live.debian.PrivateApt`: a sources file with the
system's Debian URI and keyring, private lists, cache and status inside DIR;
the system's apt sources and installed packages are neither read for this nor
changed), checks each ``.deb`` against the signed index, unpacks the packages
of each release into ``DIR/REL/root`` with ``dpkg-deb -x`` (nothing is
installed), and writes a wrapper ``DIR/REL/qemu-system-x86_64`` that runs the
unpacked binary on its own firmware, data and libraries.  ``DIR/kit.json``
lists the releases, versions, wrappers and the sha256 of every ``.deb``.

``python -m virtio_lab.live.qemu_kit sources [DIR]`` (default ``.qemu-src/``)
downloads the source package of QEMU 5.2, 7.2 and 10.0 (``apt-get source
--download-only`` with a private ``deb-src`` configuration) and unpacks each
upstream tarball into ``DIR/REL``, with Debian's patches applied where the
archive has them.

``show`` prints the manifest.  :mod:`virtio_lab.live.qemu` runs a release
through :func:`wrapper` (``probe(..., qemu="10.0")``);
``python -m virtio_lab.live.qemu_facts check`` (part of ``make qemu-kit``) starts each
built release and reads a virtio-net-pci back over qtest.

Standard library only (Python 3.10.12+/3.11.4+ for tarfile's extraction
filters), plus Debian's apt-get, dpkg-deb, ldd and, for the patches, patch.
Every step is idempotent: a second ``build`` does nothing while
``kit.json`` matches, a second ``sources`` nothing while the trees match.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..files import write_atomic
from .debian import (
    KitError,
    PrivateApt,
    download_verified,
    kit_main,
    last_error,
    need_tool,
    run,
    sha256,
    system_archive,
    unpack,
    write_if_changed,
)

__all__ = ["RELEASES", "SOURCES", "KitError", "build", "kit_dir", "load_kit", "sources",
           "wrapper"]

DEFAULT_DIR = ".qemu-kit"
DEFAULT_SRC_DIR = ".qemu-src"
QEMU_BIN = "qemu-system-x86_64"
MULTIARCH = "x86_64-linux-gnu"
KIT_FORMAT = 1

INSTALL_APT = ("the QEMU kit needs Debian's apt-get and dpkg-deb (it downloads Debian's "
               "QEMU builds); run it on Debian 12 or a Debian-based image")
INSTALL_KIT = ("the QEMU kit is missing: build it with `make qemu-kit` "
               "(python -m virtio_lab.live.qemu_kit build)")

IPXE = ("ipxe-qemu", "1.0.0+git-20190125.36a4c85-5.1")


@dataclass(frozen=True)
class Release:
    """One QEMU release of the kit: what to download and how to run it.

    ``suites``: the apt suites of its private configuration (the first is the release's
    own); ``packages``: (package, exact version) pairs, all unpacked into one root;
    ``bundle``: the binary has its system paths built in, so give it
    ``ROOT/usr/bin/qemu-bundle``; ``no_modules``: point ``QEMU_MODULE_DIR`` at an empty
    folder (the binary has no modules of its own)."""

    name: str
    suites: tuple
    packages: tuple
    bundle: bool = False
    no_modules: bool = False


Q52 = "1:5.2+dfsg-11+deb11u3"
Q100 = "1:10.0.2+ds-2+deb13u1~bpo12+1"

RELEASES = {
    "5.2": Release(
        "5.2", ("bullseye",),
        (("qemu-system-x86", Q52), ("qemu-system-common", Q52), ("qemu-system-data", Q52),
         ("seabios", "1.14.0-2"), IPXE,
         # the libraries of qemu-system-x86 5.2 that Debian 12 lacks (ldd on the binary):
         # the Xen 4.14 set (libxenctrl.so.4.14 is in libxenmisc4.14), io_uring 0.7, virgl
         ("libxenmisc4.14", "4.14.6-1"), ("libxenstore3.0", "4.14.6-1"),
         ("libxenforeignmemory1", "4.14.6-1"), ("libxengnttab1", "4.14.6-1"),
         ("libxenevtchn1", "4.14.6-1"), ("libxendevicemodel1", "4.14.6-1"),
         ("libxentoolcore1", "4.14.6-1"), ("libxencall1", "4.14.6-1"),
         ("libxentoollog1", "4.14.6-1"), ("liburing1", "0.7-3"),
         ("libvirglrenderer1", "0.8.2-5+deb11u1")),
        no_modules=True),
    "10.0": Release(
        "10.0", ("bookworm-backports", "bookworm"),
        (("qemu-system-x86", Q100), ("qemu-system-common", Q100), ("qemu-system-data", Q100),
         ("seabios", "1.16.3-2~bpo12+1"),
         IPXE),  # bookworm's: the same ROM files as 7.2, so ROM BAR sizes match
        bundle=True),
}


@dataclass(frozen=True)
class SourceRelease:
    name: str
    suite: str
    version: str


SOURCE_PACKAGE = "qemu"
#: written into each unpacked source tree: what it was made from
SOURCE_STAMP = ".qemu-kit-source.json"
SOURCES = {
    "5.2": SourceRelease("5.2", "bullseye", Q52),
    "7.2": SourceRelease("7.2", "bookworm", "1:7.2+dfsg-7+deb12u18"),
    # the backport's .dsc and debian.tar.xz are missing from the archive (404):
    # only the upstream tarball is there
    "10.0": SourceRelease("10.0", "bookworm-backports", Q100),
}


def _say(verbose: bool):
    return print if verbose else (lambda *a, **k: None)


def _tree_size(path: Path) -> int:
    """Bytes of the files and symlinks under *path* (symlinks not followed)."""
    total = 0
    for top, _dirs, files in os.walk(path):
        total += sum(os.lstat(os.path.join(top, f)).st_size for f in files)
    return total


# --------------------------------------------------------------------------
# binary packages: unpack, wrap

def _wrapper(d: Path, rel: Release) -> str:
    root = (d / rel.name / "root").resolve()
    lines = [
        "#!/bin/sh",
        f"# virtio_lab QEMU kit: Debian's QEMU {rel.name} ({rel.packages[0][1]}), "
        "unpacked, not installed.",
        "# Written by python -m virtio_lab.live.qemu_kit build; rebuilt with the kit.",
        f"ROOT={shlex.quote(str(root))}",
        f'LD_LIBRARY_PATH="$ROOT/usr/lib/{MULTIARCH}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"',
        "export LD_LIBRARY_PATH",
    ]
    if rel.no_modules:
        lines += [f"QEMU_MODULE_DIR={shlex.quote(str((d / rel.name / 'no-modules').resolve()))}",
                  "export QEMU_MODULE_DIR"]
    lines.append(f'exec "$ROOT/usr/bin/{QEMU_BIN}" -L "$ROOT/usr/share/qemu" '
                 '-L "$ROOT/usr/share/seabios" -L "$ROOT/usr/lib/ipxe/qemu" "$@"')
    return "\n".join(lines) + "\n"


def _unpack(debs: Path, entries: list, rel: Release, dest: Path) -> None:
    """All of *entries*' .debs into a fresh *dest* (built beside it, then moved in place)."""
    tmp = dest.with_name(dest.name + ".new")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for e in entries:
        unpack(debs / e["file"], tmp)
    if rel.bundle:
        # the binary looks for firmware, data and modules in <bindir>/qemu-bundle/usr/...
        # before its built-in /usr paths (those would load the system's 7.2 modules)
        bundle = tmp / "usr" / "bin" / "qemu-bundle"
        bundle.mkdir(exist_ok=True)
        (bundle / "usr").symlink_to("../../../usr")
    if dest.exists():
        shutil.rmtree(dest)
    tmp.replace(dest)


def _private_libraries(d: Path, rel: Release) -> list:
    """The libraries the release's binary loads from its root (KitError if one is missing)."""
    root = d / rel.name / "root"
    env = dict(os.environ, LD_LIBRARY_PATH=str(root / "usr" / "lib" / MULTIARCH))
    out = run(["ldd", str(root / "usr" / "bin" / QEMU_BIN)], env=env)
    missing = sorted({line.split()[0] for line in out.splitlines() if "not found" in line})
    if missing:
        raise KitError(f"QEMU {rel.name} needs libraries this system lacks: "
                       f"{', '.join(missing)} (add their Debian packages to RELEASES)")
    mine = str(root.resolve())
    return sorted({line.split()[0] for line in out.splitlines()
                   if "=>" in line and str(Path(line.split("=>")[1].split()[0]).resolve())
                   .startswith(mine)})


def _emulator_version(wrapper_path: Path) -> str:
    out = run([str(wrapper_path), "-version"])
    first = (out.splitlines() or [""])[0]
    if not first.startswith("QEMU emulator version"):
        raise KitError(f"{wrapper_path} -version printed {first!r}")
    return first


def _release_spec(rel: Release) -> dict:
    return {"suites": list(rel.suites),
            "packages": [[p, v] for p, v in rel.packages]}


def _release_entry_matches(d: Path, entry, rel: Release) -> bool:
    """The manifest's entry for *rel* is this module's spec, and its files are there."""
    if not isinstance(entry, dict):
        return False
    have = {"suites": entry.get("suites"),
            "packages": [[e.get("package"), e.get("version")] for e in entry.get("debs", [])]}
    return (have == _release_spec(rel)
            and (d / rel.name / "root" / "usr" / "bin" / QEMU_BIN).exists()
            and (not rel.no_modules or (d / rel.name / "no-modules").is_dir()))


def _kit_is_current(d: Path, kit: dict) -> bool:
    if kit.get("format") != KIT_FORMAT or set(kit.get("releases", {})) != set(RELEASES):
        return False
    for name, rel in RELEASES.items():
        entry = kit["releases"][name]
        wrapper_path = d / entry.get("wrapper", "")
        if not (_release_entry_matches(d, entry, rel) and wrapper_path.is_file()
                and wrapper_path.read_text() == _wrapper(d, rel)):
            return False
    return True


def kit_dir(path=None) -> Path:
    """The kit folder: *path*, ``$VIRTIO_LAB_QEMU_KIT``, the repository's ``.qemu-kit/``
    (next to the package) when it exists, else the current folder's."""
    if path:
        return Path(path)
    env = os.environ.get("VIRTIO_LAB_QEMU_KIT")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2] / DEFAULT_DIR
    return repo if repo.is_dir() else Path(DEFAULT_DIR)


def _read_manifest(d: Path) -> dict:
    try:
        return json.loads((d / "kit.json").read_text())
    except (OSError, ValueError):
        return {}


def load_kit(path=None) -> dict:
    """The built kit's manifest, each release's ``wrapper`` made absolute, or KitError."""
    d = kit_dir(path)
    kit = _read_manifest(d)
    if not isinstance(kit.get("releases"), dict) or not kit["releases"]:
        raise KitError(f"{INSTALL_KIT} (looked in {d})")
    for entry in kit["releases"].values():
        wrapper_path = d / entry.get("wrapper", "")
        if not wrapper_path.is_file():
            raise KitError(f"{INSTALL_KIT} ({wrapper_path} is missing)")
        entry["wrapper"] = str(wrapper_path.resolve())
    return kit


def wrapper(release: str, path=None) -> str:
    """The kit's wrapper that runs QEMU *release* (``"10.0"``), or KitError."""
    kit = load_kit(path)
    entry = kit["releases"].get(release)
    if entry is None:
        raise KitError(f"the QEMU kit in {kit_dir(path)} has no release {release} "
                       f"(it has {', '.join(sorted(kit['releases']))})")
    return entry["wrapper"]


def build(path=None, verbose=True) -> dict:
    d = kit_dir(path)
    say = _say(verbose)
    old = _read_manifest(d)
    if old and _kit_is_current(d, old):
        say(f"qemu-kit: up to date in {d} ({', '.join(old['releases'])})")
        return old
    need_tool("apt-get", INSTALL_APT)
    need_tool("dpkg-deb", INSTALL_APT)
    need_tool("ldd", INSTALL_APT)
    uri, keyring = system_archive(INSTALL_APT)
    d.mkdir(parents=True, exist_ok=True)
    releases = {}
    for name, rel in RELEASES.items():
        rdir = d / name
        entry = old.get("releases", {}).get(name)
        if not _release_entry_matches(d, entry, rel):
            apt = PrivateApt(d / "apt" / rel.suites[0], rel.suites, uri, keyring,
                             install_hint=INSTALL_APT)
            debs = rdir / "debs"
            entries = download_verified(apt, rel.packages, debs)
            say(f"qemu-kit: {name}: {', '.join(e['file'] for e in entries)}")
            _unpack(debs, entries, rel, rdir / "root")
            if rel.no_modules:
                (rdir / "no-modules").mkdir(exist_ok=True)
            entry = {"suites": list(rel.suites), "archive": uri,
                     "debs": [dict(e, file=f"{name}/debs/{e['file']}") for e in entries]}
        wrapper_path = rdir / QEMU_BIN
        write_if_changed(wrapper_path, _wrapper(d, rel), "the wrapper", 0o755)
        entry = dict(entry, version=rel.packages[0][1], wrapper=f"{name}/{QEMU_BIN}",
                     root=f"{name}/root",
                     private_libraries=_private_libraries(d, rel),
                     emulator=_emulator_version(wrapper_path),
                     unpacked_bytes=_tree_size(rdir / "root"))
        releases[name] = entry
        say(f"qemu-kit: {name}: {entry['emulator']} -> {wrapper_path}")
    manifest = {"format": KIT_FORMAT, "releases": releases}
    write_if_changed(d / "kit.json", json.dumps(manifest, indent=1) + "\n")
    say(f"qemu-kit: ready in {d}")
    return manifest


# --------------------------------------------------------------------------
# source trees

def _strip_first(member: tarfile.TarInfo, dest: str):
    """tarfile extraction filter: drop the tarball's top folder (``qemu-X.Y.Z/``)."""
    parts = member.name.split("/", 1)
    if len(parts) < 2 or not parts[1]:
        return None
    changes = {"name": parts[1]}
    if member.islnk():
        changes["linkname"] = member.linkname.split("/", 1)[-1]
    return tarfile.data_filter(member.replace(**changes, deep=False), dest)


def _extract(tarball: Path, dest: Path) -> None:
    with tarfile.open(tarball) as tar:
        tar.extractall(dest, filter=_strip_first)


def _extract_debian(tarball: Path, dest: Path) -> None:
    """debian.tar.xz holds ``debian/...``: extract it as it is (as dpkg-source does)."""
    with tarfile.open(tarball) as tar:
        tar.extractall(dest, filter="data")


def _apply_series(tree: Path) -> int:
    """Apply debian/patches/series with patch(1); the number of patches applied."""
    series = tree / "debian" / "patches" / "series"
    if not series.exists():
        return 0
    need_tool("patch", "patch(1) is missing: apt-get install patch (to apply Debian's "
                       "patches), or use the unpatched tree")
    count = 0
    for line in series.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        level = next((w for w in words[1:] if w.startswith("-p")), "-p1")
        patch = tree / "debian" / "patches" / words[0]
        try:
            run(["patch", level, "--batch", "--forward", "--no-backup-if-mismatch",
                 "--silent", "-i", str(patch)], cwd=tree)
        except KitError:
            raise KitError(f"Debian's patch {words[0]} does not apply to {tree.name}") from None
        count += 1
    return count


def _read_stamp(tree: Path) -> dict:
    try:
        return json.loads((tree / SOURCE_STAMP).read_text())
    except (OSError, ValueError):
        return {}


def _source_is_current(d: Path, src: SourceRelease) -> bool:
    """The tree was unpacked from this version's files, which are still there unchanged."""
    done = _read_stamp(d / src.name)
    dl = d / "downloads" / src.name
    return (done.get("version") == src.version and done.get("suite") == src.suite
            and bool(done.get("files"))
            and all((dl / n).exists() and sha256(dl / n) == h
                    for n, h in done["files"].items()))


def fetch_source(d: Path, src: SourceRelease, uri: str, keyring: str, say) -> dict:
    """Download (once) and unpack SOURCE_PACKAGE=VERSION into ``d/REL``; its manifest entry."""
    tree = d / src.name
    if not _source_is_current(d, src):
        _unpack_source(d, src, uri, keyring, say)
    done = _read_stamp(tree)
    missing = done["missing"]
    say(f"qemu-kit: sources {src.name}: {src.version} in {tree} "
        f"({done['patches_applied']} Debian patches applied"
        f"{'; missing from the archive: ' + ', '.join(missing) if missing else ''})")
    return dict(done, tree=src.name)


def _unpack_source(d: Path, src: SourceRelease, uri: str, keyring: str, say) -> None:
    apt = PrivateApt(d / "apt" / f"src-{src.suite}", (src.suite,), uri, keyring, "deb-src",
                     install_hint=INSTALL_APT)
    rec = apt.record(SOURCE_PACKAGE, src.version, source=True)
    want = {}
    for line in rec.get("Checksums-Sha256", "").splitlines():
        parts = line.split()
        if len(parts) == 3:
            want[parts[2]] = parts[0]
    if not want:
        raise KitError(f"source {SOURCE_PACKAGE}={src.version} lists no Checksums-Sha256")
    dl = d / "downloads" / src.name
    dl.mkdir(parents=True, exist_ok=True)

    def ok(name):
        return (dl / name).exists() and sha256(dl / name) == want[name]

    note = None
    if not all(ok(n) for n in want):
        # apt-get verifies each file against the signed Sources index; a file the
        # archive lacks (the 10.0 backport's .dsc) fails the command after the others
        res = apt.apt_get("source", "--download-only", f"{SOURCE_PACKAGE}={src.version}",
                          cwd=dl)
        if res.returncode != 0:
            note = f"apt-get source failed: {last_error(res.stderr)}"
    have = {n: want[n] for n in sorted(want) if ok(n)}
    orig = [n for n in have if ".orig.tar." in n]
    if not orig:
        raise KitError(f"no verified upstream tarball of {SOURCE_PACKAGE}={src.version} "
                       f"({note or 'download failed'})")
    debian = [n for n in have if ".debian.tar." in n]
    tmp = d / f".{src.name}.new"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    say(f"qemu-kit: sources {src.name}: unpacking {orig[0]}")
    _extract(dl / orig[0], tmp)
    patches = 0
    if debian:
        _extract_debian(dl / debian[0], tmp)
        patches = _apply_series(tmp)
    stamp = {"package": SOURCE_PACKAGE, "version": src.version, "suite": src.suite,
             "files": have, "missing": sorted(set(want) - set(have)),
             "patches_applied": patches}
    write_atomic(tmp / SOURCE_STAMP, json.dumps(stamp, indent=1) + "\n", "the source stamp")
    tree = d / src.name
    if tree.exists():
        shutil.rmtree(tree)
    tmp.replace(tree)


def sources(path=None, verbose=True) -> dict:
    d = Path(path or DEFAULT_SRC_DIR)
    say = _say(verbose)
    uri, keyring = system_archive(INSTALL_APT)
    d.mkdir(parents=True, exist_ok=True)
    manifest = {"format": KIT_FORMAT, "archive": uri,
                "releases": {n: fetch_source(d, s, uri, keyring, say)
                             for n, s in SOURCES.items()}}
    write_if_changed(d / "sources.json", json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv=None) -> int:
    return kit_main(argv, "qemu-kit", "python -m virtio_lab.live.qemu_kit",
                    "Debian's QEMU 5.2 and 10.0 beside the system's 7.2 (DIR: "
                    f"{DEFAULT_DIR}/), and the source of 5.2, 7.2 and 10.0 ({DEFAULT_SRC_DIR}/).",
                    load_kit,
                    {"build": ("download + unpack QEMU 5.2 and 10.0, write wrappers", build),
                     "sources": ("download + unpack the source of QEMU 5.2, 7.2, 10.0", sources)})


if __name__ == "__main__":
    sys.exit(main())
