"""virtio_lab.live.qemu against stored real-QEMU cases (needs qemu-system-x86_64).

The probe must give back, field for field, what the oracle captured from
QEMU 7.2: every case below is re-plugged into the local QEMU and compared.
"""
import json
import shutil

import pytest

from virtio_lab.live import qemu

from conftest import DATA, needs_qemu


ORACLE_CASES = [
    "pc__virtio-net-pci",                                  # transitional, legacy + modern
    "q35rp__virtio-blk-pci",                               # PCIe root port, blockdev backend
    "pc__virtio-net-pci__disable-modern-on+vectors-0",     # legacy only, no MSI-X
    "pc__virtio-net-pci__disable-legacy-on+disable-modern-on",   # refused
]
LOCAL_CASES = [
    "q35__virtio-net-pci__modern-pio-notify-on",
    "q35rp__virtio-net-pci__ats-on+aer-on",                # extended capabilities
    "pc__virtio-9p-pci",                                   # fsdev backend
    "pc__virtio-blk-pci__num-queues-1025",                 # QEMU aborts without a message
]


def _strip_noise(text):
    return "\n".join(l for l in (text or "").splitlines() if not l.startswith("lspci: "))


def _compare(case, got):
    diffs = []
    for k in sorted(set(case) | set(got)):
        if k == "id":
            continue
        a, b = case.get(k), got.get(k)
        if k == "lspci":
            if not shutil.which("lspci"):
                continue
            a, b = _strip_noise(a), _strip_noise(b)
        if a != b:
            diffs.append(f"{k}: got {json.dumps(b)[:200]} want {json.dumps(a)[:200]}")
    return diffs


@needs_qemu
@pytest.mark.parametrize("name", [("qemu-7.2", c) for c in ORACLE_CASES]
                         + [("qemu-7.2-local", c) for c in LOCAL_CASES], ids=lambda x: x[1])
def test_probe_reproduces_case(name):
    folder, stem = name
    case = json.loads((DATA / folder / f"{stem}.json").read_text())
    got = qemu.probe(case["device"], case["machine"], case.get("root_port", False),
                     lspci="lspci" in case)
    assert _compare(case, got) == []


@needs_qemu
def test_probe_many_equals_probe():
    specs = ["virtio-net-pci", "virtio-rng-pci,vectors=0", "virtio-blk-pci,drive=d0",
             "virtio-net-pci,disable-legacy=on,disable-modern=on"]
    many = qemu.probe_many(specs, "q35", True, lspci=False)
    one = [qemu.probe(s, "q35", True, lspci=False) for s in specs]
    assert many == one
    assert "error" in many[3] and "neither modern nor legacy" in many[3]["error"]


@needs_qemu
def test_fastest_config_read_matches_probe():
    case = json.loads((DATA / "qemu-7.2" / "pc__virtio-net-pci.json").read_text())
    assert qemu.fastest_config_read("virtio-net-pci", "pc").hex() == case["config"]


def test_missing_qemu_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("VIRTIO_LAB_QEMU", "/nonexistent/qemu-system-x86_64")
    with pytest.raises(qemu.QemuUnavailable) as e:
        qemu.probe("virtio-net-pci")
    msg = str(e.value)
    assert "\n" not in msg and "apt-get install qemu-system-x86" in msg
    assert qemu.qemu_unavailable() == msg   # the reason the real-QEMU tests skip with


def test_case_id_follows_oracle_naming():
    assert qemu.case_id("virtio-blk-pci,drive=d0,num-queues=4") == "pc__virtio-blk-pci__num-queues-4"
    assert qemu.case_id("virtio-net-pci,mac=52:54:00:ab:cd:ef") == \
        "pc__virtio-net-pci__mac-525400abcdef"
    assert qemu.case_id("virtio-net-pci,romfile=") == "pc__virtio-net-pci__romfile-"
    assert qemu.case_id("virtio-net-pci,x-pcie-pm-init=off", "q35", True) == \
        "q35rp__virtio-net-pci__x-pcie-pm-init-off"
    assert qemu.case_id("virtio-net-pci,disable-legacy=on,disable-modern=on") == \
        "pc__virtio-net-pci__disable-legacy-on+disable-modern-on"


def test_backend_args_from_spec():
    assert qemu.backend_args("virtio-blk-pci,drive=d0") == \
        ["-blockdev", "driver=null-co,node-name=d0"]
    assert qemu.backend_args("virtio-net-pci") == []
    assert qemu.backend_args("virtio-net-pci,netdev=n0") == ["-netdev", "user,id=n0"]
    assert qemu.backend_args("virtio-crypto-pci,cryptodev=cr0") == \
        ["-object", "cryptodev-backend-builtin,id=cr0"]
