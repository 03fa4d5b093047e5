"""The QEMU kit (virtio_lab.live.qemu_kit, virtio_lab.live.debian) and the release data it
captures (virtio_lab.live.qemu_facts).

Offline: the build runs end to end against stand-ins for apt-get, apt-cache, dpkg-deb and
ldd that log every call, so we can see what the builder asks of the system (never an
install, never the system's apt configuration), that it refuses a .deb whose sha256 is not
the signed index's, that a second build does nothing, and that the wrapper it writes runs
the unpacked binary on its own libraries and firmware.  Live: with the kit built
(`make qemu-kit`) each release starts, reads a virtio-net-pci back over qtest, and prints
exactly the help texts committed under virtio_lab/data/qemu-X.Y/; without it they skip and
say how to build it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from virtio_lab.live import debian, qemu, qemu_facts, qemu_kit

DATA = Path(__file__).parent / "data"
PKG_DATA = Path(qemu_kit.__file__).resolve().parents[1] / "data"

# --------------------------------------------------------------------------
# stand-ins for Debian's tools: each logs its argv, then acts from a JSON "archive"

FAKE_TOOL = r'''#!{python} -IS
import json, os, shutil, sys
from pathlib import Path
tool = Path(sys.argv[0]).name
args = sys.argv[1:]
here = Path(os.environ["FAKE_DEBIAN"])
with open(here / "calls.log", "a") as log:
    log.write(json.dumps([tool] + args) + "\n")
archive = json.loads((here / "archive.json").read_text())
opts = {{}}
rest = []
it = iter(args)
for a in it:
    if a == "-o":
        k, _, v = next(it).partition("=")
        opts[k] = v
    else:
        rest.append(a)
if tool == "apt-get" and rest[0] == "update":
    Path(opts["Dir::State::Lists"], "fake_Packages").write_text("x")
elif tool == "apt-cache" and rest[0] == "show":
    for arg in rest[1:]:
        pkg, _, ver = arg.partition("=")
        for rec in archive:
            if rec["Package"] == pkg and rec["Version"] == ver:
                print("\n".join(f"{{k}}: {{v}}" for k, v in rec.items()) + "\n")
elif tool == "apt-get" and rest[0] == "download":
    for arg in rest[1:]:
        pkg, _, ver = arg.partition("=")
        rec = next(r for r in archive if r["Package"] == pkg and r["Version"] == ver)
        shutil.copy(here / "pool" / Path(rec["Filename"]).name,
                    Path.cwd() / f"{{pkg}}_{{ver.replace(':', '%3a')}}_{{rec['Architecture']}}.deb")
elif tool == "dpkg-deb" and rest[0] == "-f":
    deb = json.loads(Path(rest[1]).read_text())
    names = rest[2:]
    print(deb[names[0]] if len(names) == 1 else "\n".join(f"{{n}}: {{deb[n]}}" for n in names))
elif tool == "dpkg-deb" and rest[0] == "-x":
    deb = json.loads(Path(rest[1]).read_text())
    for name, text in deb["files"].items():
        p = Path(rest[2], name)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(0o755)
elif tool == "ldd":
    print("\tlibfake.so.1 => " + os.environ.get("LD_LIBRARY_PATH", "") + "/libfake.so.1 (0x0)")
else:
    sys.exit(f"unexpected call {{tool}} {{args}}")
'''

#: What the fake binary prints: its version, its environment and its arguments.
FAKE_QEMU = """#!/bin/sh
for a in "$@"; do
    if [ "$a" = -version ]; then echo "QEMU emulator version {version} (fake)"; exit 0; fi
done
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
echo "QEMU_MODULE_DIR=${{QEMU_MODULE_DIR:-}}"
for a in "$@"; do echo "arg=$a"; done
"""


def _fake_archive(tmp: Path, corrupt: str = "") -> dict:
    """A pool of fake .debs for every package of RELEASES, and the archive's records."""
    pool = tmp / "pool"
    pool.mkdir(parents=True, exist_ok=True)
    records = []
    for rel in qemu_kit.RELEASES.values():
        for pkg, ver in rel.packages:
            files = {}
            if pkg == "qemu-system-x86":
                files["usr/bin/qemu-system-x86_64"] = FAKE_QEMU.format(version=rel.name + ".0")
            deb = json.dumps({"Package": pkg, "Version": ver, "files": files})
            name = f"{pkg}_{ver.split(':')[-1]}_amd64.deb"
            (pool / name).write_text(deb)
            digest = hashlib.sha256(deb.encode()).hexdigest()
            if pkg == corrupt:
                digest = "0" * 64
            records.append({"Package": pkg, "Version": ver, "Architecture": "amd64",
                            "Filename": f"pool/main/{name}", "SHA256": digest})
    (tmp / "archive.json").write_text(json.dumps(records))
    return records


def _install_fakes(tmp_path, monkeypatch):
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("apt-get", "apt-cache", "dpkg-deb", "ldd"):
        p = tools / name
        p.write_text(FAKE_TOOL.format(python=sys.executable))
        p.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DEBIAN", str(tmp_path))
    sources = tmp_path / "debian.sources"
    sources.write_text("Types: deb\nURIs: http://deb.example/debian\nSuites: bookworm\n"
                       "Components: main\nSigned-By: /usr/share/keyrings/k.gpg\n\n"
                       "Types: deb\nURIs: http://security.example/debian-security\n"
                       "Suites: bookworm-security\nComponents: main\n")
    monkeypatch.setattr(debian, "SYSTEM_SOURCES", (sources, tmp_path / "none.list"))
    _fake_archive(tmp_path)
    return tmp_path


@pytest.fixture
def fake_debian(tmp_path, monkeypatch):
    """apt-get, apt-cache, dpkg-deb and ldd replaced by loggers; a deb822 system source."""
    return _install_fakes(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One kit built with the stand-ins: (folder of the fakes, kit folder, manifest)."""
    with pytest.MonkeyPatch.context() as mp:
        tmp = _install_fakes(tmp_path_factory.mktemp("fake-debian"), mp)
        kit = tmp / "kit"
        manifest = qemu_kit.build(kit, verbose=False)
        yield tmp, kit, manifest


def _calls(tmp: Path) -> list[list[str]]:
    log = tmp / "calls.log"
    return [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []


def test_build_leaves_the_system_alone(built):
    fake, kit, manifest = built
    calls = _calls(fake)
    apt = [c for c in calls if c[0] in ("apt-get", "apt-cache")]
    assert apt and not any("install" in c or "remove" in c for c in calls)
    for c in apt:
        opts = dict(c[i + 1].split("=", 1) for i, a in enumerate(c) if a == "-o")
        # every apt call names its own sources, lists, cache and status, all inside the kit
        for key in ("Dir::Etc::sourcelist", "Dir::State::Lists", "Dir::State::status",
                    "Dir::Cache"):
            assert opts[key].startswith(str(kit.resolve())), (key, c)
        assert opts["Dir::Etc::sourceparts"] == "/nonexistent"
    sources = (kit / "apt" / "bullseye" / "kit.sources").read_text()
    assert "URIs: http://deb.example/debian\n" in sources and "Suites: bullseye\n" in sources
    # the exact version of every package, each checked against the index's sha256
    downloads = {arg for c in calls if c[0] == "apt-get" and "download" in c
                 for arg in c[c.index("download") + 1:]}
    assert downloads == {f"{p}={v}" for r in qemu_kit.RELEASES.values() for p, v in r.packages}
    for name, entry in manifest["releases"].items():
        assert entry["emulator"] == f"QEMU emulator version {name}.0 (fake)"
        for deb in entry["debs"]:
            assert debian.sha256(kit / deb["file"]) == deb["sha256"]


def test_second_build_does_nothing(built, monkeypatch):
    fake, kit, manifest = built
    monkeypatch.setenv("PATH", f"{fake / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DEBIAN", str(fake))
    before = len(_calls(fake))
    assert qemu_kit.build(kit, verbose=False) == manifest
    assert len(_calls(fake)) == before


def test_a_deb_that_is_not_the_signed_one_is_refused(fake_debian):
    _fake_archive(fake_debian, corrupt="seabios")
    with pytest.raises(debian.KitError, match="sha256 .* differs from the signed index"):
        qemu_kit.build(fake_debian / "kit", verbose=False)


def test_a_missing_version_is_one_line(fake_debian):
    (fake_debian / "archive.json").write_text("[]")
    with pytest.raises(debian.KitError) as err:
        qemu_kit.build(fake_debian / "kit", verbose=False)
    assert str(err.value).startswith("the archive has no qemu-system-x86=1:5.2")
    assert "\n" not in str(err.value)


def test_wrapper_runs_the_unpacked_binary_on_its_own_files(built):
    _fake, kit, _manifest = built
    for name, rel in qemu_kit.RELEASES.items():
        out = subprocess.run([qemu_kit.wrapper(name, kit), "-M", "pc", "a b"],
                             capture_output=True, text=True, check=True).stdout.splitlines()
        root = (kit / name / "root").resolve()
        assert out[0].startswith(f"LD_LIBRARY_PATH={root}/usr/lib/x86_64-linux-gnu")
        assert out[1] == "QEMU_MODULE_DIR=" + (
            str((kit / name / "no-modules").resolve()) if rel.no_modules else "")
        assert out[2:] == [f"arg=-L", f"arg={root}/usr/share/qemu", "arg=-L",
                           f"arg={root}/usr/share/seabios", "arg=-L",
                           f"arg={root}/usr/lib/ipxe/qemu", "arg=-M", "arg=pc", "arg=a b"]
        # 10.0 looks for its data and modules in <bindir>/qemu-bundle first: its own root
        bundle = root / "usr" / "bin" / "qemu-bundle" / "usr"
        assert bundle.resolve() == (root / "usr").resolve() if rel.bundle else not bundle.exists()


def test_missing_kit_says_make_qemu_kit(tmp_path, monkeypatch):
    with pytest.raises(debian.KitError, match=r"make qemu-kit"):
        qemu_kit.load_kit(tmp_path)
    monkeypatch.setenv("VIRTIO_LAB_QEMU_KIT", str(tmp_path))
    monkeypatch.setenv("VIRTIO_LAB_QEMU", str(tmp_path / "no-qemu"))
    with pytest.raises(qemu.QemuUnavailable) as err:
        qemu.qemu_binary("10.0")
    assert "make qemu-kit" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(qemu.QemuUnavailable, match="not a QEMU release: 'ten'"):
        qemu.qemu_binary("ten")


def test_system_archive_skips_security_and_reads_one_line_lists(tmp_path, monkeypatch):
    lst = tmp_path / "sources.list"
    lst.write_text("# comment\ndeb http://security.debian.org/ bookworm-security main\n"
                   "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n")
    monkeypatch.setattr(debian, "SYSTEM_SOURCES", (tmp_path / "none.sources", lst))
    assert debian.system_archive("x") == ("http://mirror.example/debian", "/k.gpg")
    monkeypatch.setattr(debian, "SYSTEM_SOURCES", (tmp_path / "a", tmp_path / "b"))
    with pytest.raises(debian.KitError, match="no Debian archive configured"):
        debian.system_archive("run it on Debian")


def test_source_tarball_loses_its_top_folder_and_cannot_escape(tmp_path):
    tar_path = tmp_path / "q.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for name, data in (("qemu-5.2.0/hw/virtio/virtio-pci.c", b"code"),
                           ("qemu-5.2.0/../../evil", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(tarfile.FilterError):
        qemu_kit._extract(tar_path, tmp_path / "tree")
    assert (tmp_path / "tree" / "hw" / "virtio" / "virtio-pci.c").read_bytes() == b"code"
    assert not (tmp_path / "evil").exists()


def test_release_of_reads_each_release_version_line():
    # the first line of --version of Debian's three builds
    assert qemu.release_of("QEMU emulator version 5.2.0 (Debian 1:5.2+dfsg-11+deb11u3)") == "5.2"
    assert qemu.release_of("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)") == "7.2"
    assert qemu.release_of(
        "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)") == "10.0"
    assert qemu.release_of("something else") == ""


# --------------------------------------------------------------------------
# live: the built kit (make qemu-kit)

def _no_kit() -> str:
    try:
        qemu_kit.load_kit()
    except debian.KitError as err:
        return str(err)
    return ""


NO_KIT = _no_kit()
needs_kit = pytest.mark.skipif(bool(NO_KIT), reason=NO_KIT or "-")
KIT_RELEASES = sorted(qemu_kit.RELEASES)


@needs_kit
@pytest.mark.parametrize("release", KIT_RELEASES)
def test_kit_release_plugs_a_device(release):
    assert qemu.qemu_release(release) == release
    cfg = qemu.fastest_config_read("virtio-net-pci", qemu=release)
    assert cfg[:4] == bytes.fromhex("f41a0010")      # vendor 0x1af4, device 0x1000


@needs_kit
@pytest.mark.parametrize("release", KIT_RELEASES)
def test_committed_help_texts_are_the_releases_own(release):
    """What virtio_lab reads as the release's properties and machine types is what the
    release prints now (a re-capture would change no byte)."""
    binary = qemu.qemu_binary(release)
    props = sorted((PKG_DATA / f"qemu-{release}" / "props").glob("*.txt"))
    assert props
    for p in props[:: max(1, len(props) // 6)]:      # a spread of types: each costs a start
        assert qemu_facts.device_help(binary, p.stem) == p.read_text(), p.name
    assert qemu_facts._stdout(binary, "-machine", "help") == \
        (PKG_DATA / f"qemu-{release}" / "machines.txt").read_text()
    listed = (DATA / f"qemu-{release}-props" / "devices.txt").read_text().split()
    assert listed == qemu_facts.pci_virtio_types(binary)


@needs_kit
def test_kit_10_0_loads_nothing_of_the_system_qemu():
    """Without its qemu-bundle link 10.0 would load 7.2's modules and abort on -device help."""
    res = subprocess.run([qemu.qemu_binary("10.0"), "-device", "help"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0 and res.stderr == ""
