"""PlugApp (the Voilà app's widget), driven headless and checked against real QEMU 7.2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ipywidgets")

from virtio_lab.widgets import PlugApp, PlugExplorer  # noqa: E402

CASES = Path(__file__).parent / "data" / "qemu-7.2-local"


def real(case: str) -> dict:
    return json.loads((CASES / f"{case}.json").read_text())


def final_config(app: PlugApp) -> bytes:
    ex = app.explorer
    ex.go(len(ex.trace.events) - 1)
    return bytes(ex.state.config)


@pytest.fixture()
def app():
    return PlugApp()


def test_starts_on_net_pc_with_one_explorer(app):
    assert isinstance(app.explorer, PlugExplorer) and app.explorer in app.children
    assert app.explorer.step == 0
    assert final_config(app)[:256] == bytes.fromhex(real("pc__virtio-net-pci")["config"])
    assert app.root_port.disabled  # pc has no PCI Express root port


@pytest.mark.parametrize("device, case", [("virtio-blk-pci", "pc__virtio-blk-pci"),
                                          ("virtio-9p-pci", "pc__virtio-9p-pci"),
                                          ("virtio-rng-pci", "pc__virtio-rng-pci")])
def test_picking_a_device_replugs_it_like_qemu(app, device, case):
    """Models that need a backend get one: the picked device is QEMU's, byte for byte."""
    old = app.explorer
    app.device.value = device
    assert app.explorer is not old and app.explorer in app.children and old not in app.children
    assert app.explorer.step == 0 and device in app.status.value
    assert final_config(app)[:256] == bytes.fromhex(real(case)["config"])


def test_machine_and_root_port(app):
    app.machine.value = "q35"
    assert not app.root_port.disabled
    app.root_port.value = True
    cfg, qemu = final_config(app), real("q35rp__virtio-net-pci")
    assert len(cfg) == 4096  # a PCIe endpoint behind the root port: extended config space
    assert cfg[:256] == bytes.fromhex(qemu["config"])
    assert cfg == bytes.fromhex(qemu["config_ext"])  # the corpus's whole 4 KiB read
    app.machine.value = "pc"  # the ticked root port is ignored, and says so by being disabled
    assert app.root_port.disabled and app.explorer.trace.machine.label == "pc"


def test_a_refusal_shows_qemus_message(app):
    app.machine.value = "q35"
    app.root_port.value = True
    app.device.value = "virtio-iommu-pci"
    refusal = real("q35rp__virtio-iommu-pci")["error"].rsplit(": ", 1)[-1]
    assert refusal in app.status.value  # "virtio-iommu-pci must be plugged on the root bus"
    assert app.explorer.trace.error is not None  # how far QEMU got stays steppable
