"""The guest kit and the real-guest capture (virtio_lab.live.guest_kit, virtio_lab.live.guest).

Offline tests check the cpio writer, the console parser and the stored
captures' internal consistency.  The boot test needs QEMU and a built kit
(`make guest-kit`); without them it skips and says why.

What may differ between two boots of the same case, and is therefore never
compared: interrupt counts in /proc/interrupts, the boot time, dmesg
(timestamps, ordering of asynchronous messages) and the settle loop's tick
count.  The guest-physical ring addresses are not captured at all.  Everything
in ``COMPARED_FIELDS`` plus the common configuration (queue sizes, MSI-X
vectors, enables, notify offsets, feature words), the MSI-X table (message
address/data/mask), the interrupt names and every other PCI function's config
was the same on two boots of every stored case (see ``deterministic``).
"""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from virtio_lab.live import guest, guest_kit

DATA = Path(__file__).parent / "data" / "guest"
#: the same cases booted under QEMU 10.0 and its SeaBIOS 1.16.3 (regen --qemu 10.0)
DATA_10_0 = Path(__file__).parent / "data" / "guest-10.0"
CAPTURES = sorted(DATA.glob("*.json")) + sorted(DATA_10_0.glob("*.json"))


def _load(name):
    return json.loads((DATA / f"{name}.json").read_text())


# --------------------------------------------------------------------------
# offline

def _read_newc(blob: bytes) -> dict:
    out, pos = {}, 0
    while True:
        hdr = blob[pos:pos + 110]
        assert hdr[:6] == b"070701"
        f = [int(hdr[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        name = blob[pos + 110:pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        data = blob[pos:pos + size]
        pos += size
        pos += -pos % 4
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, data, (f[9], f[10]))


def test_cpio_newc_roundtrip(tmp_path):
    bb = tmp_path / "busybox"
    bb.write_bytes(b"\x7fELF fake busybox")
    mod = tmp_path / "virtio.ko"
    mod.write_bytes(b"module bytes")
    blob = gzip.decompress(guest_kit.build_initramfs(bb, [mod], "#!/bin/sh\necho hi\n"))
    assert len(blob) % 512 == 0
    files = _read_newc(blob)
    assert files["init"][1] == b"#!/bin/sh\necho hi\n"
    assert files["init"][0] == 0o100755
    assert files["bin/busybox"][1] == b"\x7fELF fake busybox"
    assert files["bin/sh"] == (0o120777, b"busybox", (0, 0))
    assert files["dev/console"][0] == 0o020600 and files["dev/console"][2] == (5, 1)
    assert files["lib/modules/virtio.ko"][1] == b"module bytes"
    assert files["modules.order"][1] == b"virtio\n"
    # reproducible: same input, same bytes
    assert guest_kit.build_initramfs(bb, [mod], "x") == guest_kit.build_initramfs(bb, [mod], "x")


def test_case_names_and_command_line():
    assert guest.case_name("virtio-net-pci", "q35", True) == "q35rp__virtio-net-pci"
    assert guest.case_name("virtio-net-pci,disable-modern=on,vectors=0") == \
        "pc__virtio-net-pci__disable-modern-on+vectors-0"
    kit = {"kernel": "/k/vmlinuz", "initrd": "/k/initramfs.gz"}
    cmd = guest.qemu_command("virtio-blk-pci", "q35", True, kit, "qemu")
    assert cmd[-1] == "virtio-blk-pci,drive=d0,bus=rp0,addr=00.0"
    assert "driver=null-co,node-name=d0" in cmd
    assert "pcie-root-port,id=rp0,bus=pcie.0,addr=02.0,chassis=1" in cmd
    cmd = guest.qemu_command("virtio-net-pci", "pc", False, kit, "qemu")
    assert cmd[-1] == "virtio-net-pci,netdev=n0,addr=03.0"
    assert guest.target_bdf("virtio-net-pci", "q35", True) == "0000:01:00.0"
    with pytest.raises(guest.GuestError):
        guest.qemu_command("virtio-net-pci", "pc", True, kit, "qemu")


def test_parse_console_needs_end_marker():
    with pytest.raises(guest.GuestError, match="did not finish"):
        guest.parse_console("@@VLAB BEGIN\n@@VLAB G kernel\n6.1\n")
    p = guest.parse_console("noise\r\n@@VLAB G kernel\r\n6.1.0\r\n@@VLAB DEV 0000:00:03.0\n"
                            "@@VLAB F irq\n11\n@@VLAB END\n")
    assert p["global"]["kernel"] == ["6.1.0"]
    assert p["devices"]["0000:00:03.0"]["irq"] == ["11"]


REQUIRED = ["pc__virtio-net-pci", "pc__virtio-blk-pci", "pc__virtio-scsi-pci",
            "pc__virtio-rng-pci", "pc__virtio-balloon-pci", "pc__virtio-serial-pci",
            "q35__virtio-net-pci", "q35rp__virtio-net-pci", "q35rp__virtio-blk-pci",
            "pc__virtio-net-pci__disable-modern-on"]


@pytest.mark.parametrize("name", REQUIRED)
def test_required_capture_present(name):
    assert (DATA / f"{name}.json").exists(), f"regenerate: python -m virtio_lab.live.guest regen"


@pytest.mark.parametrize("path", CAPTURES, ids=[f"{p.parent.name}/{p.stem}" for p in CAPTURES])
def test_capture_consistent(path):
    """A stored capture agrees with itself (config bytes vs decoded fields)."""
    d = json.loads(path.read_text())
    cfg = bytes.fromhex(d["config"])
    # sysfs gives 4 KiB only for PCI Express functions (behind the root port);
    # a device on q35's root bus is conventional PCI: 256 bytes
    assert len(cfg) == (4096 if d["root_port"] else 256)
    assert d["command"] == int.from_bytes(cfg[4:6], "little")
    assert d["interrupt_line"] == cfg[0x3c]
    for bar in d["bars"]:
        assert bar["address"] == bar["linux_start"]          # Linux kept the firmware's choice
        assert bar["address"] % bar["size"] == 0
    if d["virtio"]["driver"]:                                  # a driver bound
        modern = d["common_cfg"] is not None
        assert d["status"] == (0x0F if modern else 0x07)
        if modern:
            words = [int(w, 16) for w in d["common_cfg"]["driver_feature"]]
            assert int(d["driver_features"], 16) == words[0] | words[1] << 32
            assert d["common_cfg"]["device_status"] == d["status"]
            n = d["notify"]
            bar = next(b for b in d["bars"] if b["index"] == n["bar"])
            assert n["queue0_address"] == bar["address"] + n["offset"] + \
                n["queue0_notify_off"] * n["multiplier"]
    if d["msix_enabled"]:
        assert d["vectors_used"] == len(d["interrupts"]) > 0
        assert d["command"] & 0x0400                            # INTx disabled under MSI-X


def test_10_0_captures_are_every_case_booted_on_10_0s_own_firmware():
    names = {p.stem for p in DATA_10_0.glob("*.json")}
    assert names == {guest.case_name(*c) for c in guest.CASES}
    for p in sorted(DATA_10_0.glob("*.json")):
        d = json.loads(p.read_text())
        assert d["qemu"] == "10.0" and d["qemu_version"].startswith("QEMU emulator version 10.0.")
        # SeaBIOS as Linux read it from SMBIOS: the kit's 10.0 firmware, not the system's 1.16.2
        assert d["bios"] == "1.16.3-debian-1.16.3-2~bpo12+1", p.name


# --------------------------------------------------------------------------
# a real boot

def _guest_ready():
    if not shutil.which(guest_kit.QEMU_BIN):
        return guest_kit.INSTALL_QEMU
    try:
        guest_kit.load_kit()
    except guest_kit.KitError as exc:
        return str(exc)
    return None


def deterministic(d: dict) -> dict:
    """The fields two boots of the same case agree on."""
    out = {k: d[k] for k in guest.COMPARED_FIELDS}
    out.update({k: d[k] for k in ("rom_enabled", "interrupt_pin", "irq", "msix_function_masked",
                                  "config_before_drivers", "driver_writes",
                                  "status_register", "kernel", "notify")})
    if d["common_cfg"]:
        c = dict(d["common_cfg"])
        c["queues"] = [{k: q[k] for k in ("size", "msix_vector", "enable", "notify_off")}
                       for q in c["queues"]]
        out["common_cfg"] = c
    out["msix_table"] = d["msix_table"]
    out["irq_names"] = [line.split()[-1] for line in d["interrupts"]]
    out["others"] = {b: {k: f[k] for k in ("config", "bars", "command")}
                     for b, f in d["other_functions"].items()}
    return out


@pytest.mark.skipif(_guest_ready() is not None, reason=f"no real guest: {_guest_ready()}")
def test_boot_matches_stored_capture():
    stored = _load("pc__virtio-net-pci")
    live = guest.capture("virtio-net-pci", "pc", False, timeout=180)
    # the kit pins the captures' kernel; should the archive drop it, any 6.1 stable
    # kernel must still leave the same bytes (the driver tables don't change in 6.1.y)
    assert live["kernel"].split(".")[:2] == stored["kernel"].split(".")[:2]
    assert deterministic(live) == deterministic(stored)


def _guest_10_0_ready():
    from virtio_lab.live import qemu
    return _guest_ready() or qemu.qemu_unavailable("10.0") or None


@pytest.mark.skipif(_guest_10_0_ready() is not None, reason=f"no 10.0 guest: {_guest_10_0_ready()}")
def test_boot_under_10_0_matches_stored_capture():
    stored = json.loads((DATA_10_0 / "q35rp__virtio-net-pci.json").read_text())
    live = guest.capture("virtio-net-pci", "q35", True, timeout=180, qemu="10.0")
    assert live["bios"] == stored["bios"] and live["qemu"] == "10.0"
    assert deterministic(live) == deterministic(stored)
