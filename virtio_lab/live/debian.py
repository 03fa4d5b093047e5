"""Debian's archive, used without changing the system: what both kits share.

The guest kit (:mod:`virtio_lab.live.guest_kit`) and the QEMU kit
(:mod:`virtio_lab.live.qemu_kit`) fetch Debian packages and unpack them into a
folder of their own: ``apt-get download`` (never ``install``), ``dpkg-deb -x``
(no maintainer scripts run), and for packages of another suite a *private* apt
configuration (:class:`PrivateApt`: its own sources file, lists, cache and
status, passed on every call) so that the system's apt sources, lists and
installed packages are neither read for it nor changed.

Standard library only, plus Debian's apt-get, apt-cache and dpkg-deb.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import VirtioLabError
from ..files import write_atomic

__all__ = ["KitError", "PrivateApt", "deb_fields", "download_verified", "kit_main", "print_json",
           "need_tool", "run", "sha256", "system_archive", "unpack", "write_if_changed"]

#: Where the system's Debian archive is configured (a private configuration copies its
#: URI and keyring; it never writes here).
SYSTEM_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class KitError(RuntimeError):
    """A one-line, user-facing reason why a kit cannot be built or used."""


def need_tool(name: str, message: str) -> str:
    """The path of the tool *name*, or KitError(*message*) (which says how to get it)."""
    path = shutil.which(name)
    if not path:
        raise KitError(message)
    return path


def last_error(stderr: str) -> str:
    """The most telling line of a tool's stderr: its first ``E:`` line, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E:")]
    return (errors[:1] or lines[-1:] or ["(no output)"])[0]


def run(cmd, cwd=None, env=None) -> str:
    """Run a tool; its stdout, or KitError naming the command and its telling line."""
    try:
        res = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    except OSError as exc:  # pragma: no cover - tool vanished
        raise KitError(f"cannot run {cmd[0]}: {exc}") from None
    if res.returncode != 0:
        raise KitError(f"`{' '.join(map(str, cmd))}` failed: {last_error(res.stderr)}")
    return res.stdout


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_if_changed(path: Path, data, what: str = "the file", mode=None) -> bool:
    """Write text or bytes to *path* only when it differs, atomically
    (:func:`virtio_lab.files.write_atomic`: never a half-written file); True when it wrote."""
    old = None
    if path.is_file():
        old = path.read_bytes() if isinstance(data, bytes) else path.read_text()
    if old == data:
        return False
    write_atomic(path, data, what)
    if mode is not None:
        path.chmod(mode)
    return True


def deb_fields(deb: Path, *names: str) -> dict[str, str]:
    """Control fields of a .deb, one ``dpkg-deb -f`` call (it prints a lone field's bare
    value, several as ``Name: value`` lines)."""
    out = run(["dpkg-deb", "-f", str(deb), *names])
    if len(names) == 1:
        return {names[0]: out.strip()}
    return (stanzas(out) or [{}])[0]


def unpack(deb: Path, dest: Path) -> None:
    """``dpkg-deb -x``: the package's files under *dest*, nothing installed, no script run."""
    run(["dpkg-deb", "-x", str(deb), str(dest)])


def kit_main(argv, label: str, prog: str, description: str, load_kit: Callable,
             commands: dict[str, tuple[str, Callable]]) -> int:
    """A kit's command line: ``prog COMMAND [DIR] [-q]`` for each ``name: (help, run)`` of
    *commands* (``run(DIR, verbose)``), and ``show [DIR]`` (``load_kit(DIR)`` as JSON).
    A KitError is one line ``LABEL: error: ...``, exit 1."""
    commands = {**commands, "show": ("print the kit manifest",
                                     lambda d, _verbose: print_json(load_kit(d)))}
    ap = argparse.ArgumentParser(prog=prog, description=description)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, (text, _run) in commands.items():
        p = sub.add_parser(name, help=text)
        p.add_argument("dir", nargs="?", default=None, help="the kit's folder")
        p.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        commands[args.cmd][1](args.dir, not args.quiet)
    except (KitError, VirtioLabError) as exc:
        print(f"{label}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def print_json(data) -> None:
    print(json.dumps(data, indent=1))


# --------------------------------------------------------------------------
# a private apt configuration on the system's own Debian archive

def system_archive(install_hint: str) -> tuple[str, str]:
    """(URI, Signed-By keyring) of the system's main Debian archive (not -security)."""
    deb822, oneline = SYSTEM_SOURCES
    if deb822.exists():
        for stanza in re.split(r"\n\s*\n", deb822.read_text()):
            fields = {}
            for line in stanza.splitlines():
                if line.strip().startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.strip()
            if fields.get("enabled", "yes").lower() == "no":
                continue
            if "deb" not in fields.get("types", "").split():
                continue
            for uri in fields.get("uris", "").split():
                if "security" not in uri:
                    return uri, fields.get("signed-by", DEFAULT_KEYRING)
    if oneline.exists():
        for line in oneline.read_text().splitlines():
            m = re.match(r"\s*deb\s+(?:\[([^\]]*)\]\s+)?(\S+)", line)
            if m and "security" not in m.group(2):
                opts = dict(o.split("=", 1) for o in (m.group(1) or "").split() if "=" in o)
                return m.group(2), opts.get("signed-by", DEFAULT_KEYRING)
    raise KitError(f"no Debian archive configured in {deb822} or {oneline} "
                   f"(the kit copies its URI); {install_hint}")


class PrivateApt:
    """apt-get/apt-cache on a private sources file, lists, cache and status in *root*."""

    def __init__(self, root: Path, suites, uri: str, keyring: str, kind: str = "deb",
                 install_hint: str = "apt-get is missing"):
        # absolute: apt reads a relative Dir::State::Lists as relative to its Dir (/)
        self.root = Path(root).resolve()
        self.suites = tuple(suites)
        self.uri = uri
        self.kind = kind
        self.install_hint = install_hint
        self.sources = self.root / "kit.sources"  # deb822: apt wants the .sources suffix
        self.text = (f"# private apt configuration of a virtio_lab kit\n"
                     f"Types: {kind}\nURIs: {uri}\nSuites: {' '.join(self.suites)}\n"
                     f"Components: main\nSigned-By: {keyring}\n")
        self._updated = False

    def options(self) -> list[str]:
        r = self.root
        return ["-o", f"Dir::Etc::sourcelist={self.sources}",
                "-o", "Dir::Etc::sourceparts=/nonexistent",
                "-o", "Dir::Etc::preferences=/nonexistent",
                "-o", "Dir::Etc::preferencesparts=/nonexistent",
                "-o", f"Dir::State::Lists={r / 'lists'}",
                "-o", f"Dir::State::status={r / 'status'}",
                "-o", f"Dir::Cache={r / 'cache'}",
                "-o", "Acquire::Languages=none"]

    def update(self) -> None:
        if self._updated:
            return
        need_tool("apt-get", self.install_hint)
        for d in ("lists/partial", "cache/archives/partial"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "status").touch()
        write_if_changed(self.sources, self.text)
        for attempt in (1, 2):
            res = self._apt_get("update")
            # apt-get update exits 0 when an index failed to download (it only warns):
            # a network hiccup would leave no index, so try once more, then say so
            failed = [line for line in res.stderr.splitlines()
                      if "Failed to fetch" in line or "failed to download" in line]
            if res.returncode == 0 and not failed:
                self._updated = True
                return
        raise KitError(f"cannot read the {'/'.join(self.suites)} index of {self.uri}: "
                       f"{(failed or [last_error(res.stderr)])[0].strip()}")

    def apt_get(self, *args, cwd=None) -> subprocess.CompletedProcess:
        self.update()
        return self._apt_get(*args, cwd=cwd)

    def _apt_get(self, *args, cwd=None) -> subprocess.CompletedProcess:
        return subprocess.run(["apt-get", *self.options(), *args], cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def records(self, wanted, source: bool = False) -> list[dict]:
        """The signed index's stanza for each (PACKAGE, VERSION) of *wanted*, asked in one
        apt-cache call (each call reads the whole index); KitError names the first the
        archive lacks."""
        self.update()
        wanted = list(wanted)
        # showsrc takes no =VERSION: it lists every version the index has
        cmd = ["apt-cache", *self.options(), "showsrc" if source else "show",
               *(p if source else f"{p}={v}" for p, v in wanted)]
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        found = {(st.get("Package"), st.get("Version")): st for st in stanzas(res.stdout)
                 if source or ("Filename" in st and "SHA256" in st)}
        for package, version in wanted:
            if (package, version) not in found:
                raise KitError(f"the archive has no {'source ' if source else ''}"
                               f"{package}={version} in {'/'.join(self.suites)} ({self.uri})")
        return [found[w] for w in wanted]

    def record(self, package: str, version: str, source: bool = False) -> dict:
        """The signed index's stanza for PACKAGE=VERSION (KitError if the archive lacks it)."""
        return self.records([(package, version)], source)[0]


def stanzas(text: str) -> list[dict]:
    """Parse deb822 control stanzas (continuation lines kept, joined by newlines)."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        fields, key = {}, None
        for line in block.splitlines():
            if line[:1].isspace() and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if fields:
            out.append(fields)
    return out


def download_verified(apt: PrivateApt, packages, debs: Path) -> list[dict]:
    """Each (PACKAGE, VERSION)'s .deb in *debs* (fetched once, in one apt-get call), checked
    against the signed index; their manifest entries (package, version, file, sha256, size)."""
    packages = list(packages)
    recs = apt.records(packages)
    debs.mkdir(parents=True, exist_ok=True)

    def have(rec):
        deb = debs / Path(rec["Filename"]).name
        return deb.exists() and sha256(deb) == rec["SHA256"]

    missing = [(p, v, r) for (p, v), r in zip(packages, recs) if not have(r)]
    if missing:
        res = apt.apt_get("download", *(f"{p}={v}" for p, v, _ in missing), cwd=debs)
        if res.returncode != 0:
            raise KitError(f"apt-get download failed: {last_error(res.stderr)}")
        for package, version, rec in missing:
            # apt names it PKG_VERSION_ARCH.deb with the epoch's colon as %3a
            got = debs / f"{package}_{version.replace(':', '%3a')}_{rec['Architecture']}.deb"
            if not got.exists():
                raise KitError(f"apt-get download {package}={version} produced no {got.name}")
            got.replace(debs / Path(rec["Filename"]).name)
    out = []
    for (package, version), rec in zip(packages, recs):
        deb = debs / Path(rec["Filename"]).name
        digest = sha256(deb)
        if digest != rec["SHA256"]:
            raise KitError(f"{deb.name}: sha256 {digest} differs from the signed index's "
                           f"{rec['SHA256']}")
        fields = deb_fields(deb, "Package", "Version")
        if fields.get("Package") != package or fields.get("Version") != version:
            raise KitError(f"{deb.name} is not {package} {version}")
        out.append({"package": package, "version": version, "file": deb.name,
                    "sha256": digest, "size": deb.stat().st_size})
    return out
