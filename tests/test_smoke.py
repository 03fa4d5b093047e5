"""The frame a new user meets: the CLI answers, and the core import stays light."""

import json
import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "virtio_lab", *args], capture_output=True, text=True,
                          timeout=60)


def test_help_lists_subcommands():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("devices", "plug", "dump"):
        assert cmd in r.stdout


def test_bad_subcommand_is_one_line_exit_2():
    r = run("frobnicate")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_devices_lists_every_family():
    r = run("devices")
    assert r.returncode == 0
    for name in ("virtio-net-pci", "virtio-blk-pci", "virtio-gpu-pci", "virtio-pmem-pci"):
        assert name in r.stdout


def test_devices_json_has_qemu_defaults():
    out = json.loads(run("devices", "--json").stdout)
    assert out["virtio-net-pci"]["options"]["disable-legacy"]["default"] == "auto"
    assert "disable-legacy" not in out["virtio-net-pci-transitional"]["options"]


@pytest.mark.parametrize("spec", ["virtio-foo-pci", "virtio-net-pci,foo=1", "virtio-net-pci,vectors=x",
                                  "virtio-net-pci,disable-legacy=on,disable-modern=on"])
def test_bad_spec_is_one_line_exit_2(spec):
    r = run("plug", spec)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_dump_json_error_for_refused_spec():
    r = run("dump", "virtio-net-pci,iommu_platform=on", "--json")
    assert r.returncode == 2
    assert "VIRTIO_F_IOMMU_PLATFORM was supported by neither legacy nor transitional device" in \
        json.loads(r.stdout)["error"]


def test_plug_narrates_qemu_path_in_order():
    out = run("plug", "virtio-net-pci").stdout
    order = ["virtio_pci_realize", "virtio_pci_bus_new", "qbus_init",
             "virtio_bus_device_plugged", "virtio_net_get_features", "virtio_pci_device_plugged",
             "pci_add_capability", "pci_register_bar", "msix_init_exclusive_bar"]
    positions = [out.index(f" {name}") for name in order]
    assert positions == sorted(positions)


def test_import_is_light():
    code = ("import sys, virtio_lab, virtio_lab.hw.plug, virtio_lab.text.dump; "
            "print([m for m in ('ipywidgets', 'matplotlib', 'pandas', 'traitlets') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]"


def test_core_imports_only_stdlib():
    """Every module outside views/ and widgets/ imports nothing outside the standard library."""
    import ast
    import pathlib
    import virtio_lab
    root = pathlib.Path(virtio_lab.__file__).parent
    stdlib = set(sys.stdlib_module_names)
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            for n in names:
                top = n.split(".")[0]
                assert top in stdlib or top == "virtio_lab", f"{path.name} imports {n}"


def test_devices_model_lists_its_qemu_options():
    """`devices MODEL` prints that model's options as QEMU's `-device MODEL,help` lists them."""
    from pathlib import Path
    r = run("devices", "virtio-rng-pci")
    assert r.returncode == 0 and "virtio-net-pci " not in r.stdout
    help_text = (Path(__file__).parent / "data" / "qemu-7.2-props" / "virtio-rng-pci.txt").read_text()
    for name in ("max-bytes", "period", "disable-legacy", "vectors"):
        assert f"{name}=" in help_text and f" {name}=<" in r.stdout


def test_unknown_model_suggests_the_nearest_name():
    r = run("plug", "virtio-net-pcii")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    # QEMU's own words first, then the hint
    assert "'virtio-net-pcii' is not a valid device model name (did you mean virtio-net-pci?)" in r.stderr
