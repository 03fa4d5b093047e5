"""The emulation against real QEMU 5.2, 7.2 and 10.0: every captured case, byte for byte.

tests/data/qemu-7.2, qemu-5.2, qemu-10.0 and qemu-10.0-machine-7.2 hold the shared oracle's
cases (Debian's builds of each release; the last is 10.0 run with the 7.2 machine types
pc-i440fx-7.2/pc-q35-7.2); tests/data/qemu-7.2-local the wider corpus this project captured
from Debian's QEMU 7.2 with virtio_lab.live.qemu. A case's ``qemu`` names its release (7.2
when absent) and ``machine_type`` the versioned machine type it forced.
"""

import pytest

from conftest import DATA, load_cases
from virtio_lab.text.compare import compare_dumps
from virtio_lab.text.dump import dump

#: every folder of real-QEMU plug captures (one case a file), whatever the release or machine
#: type; -props, -addr and -edges hold other kinds of answers, read by their own tests
FOLDERS = sorted(p.name for p in DATA.glob("qemu-*") if p.is_dir()
                 and not p.name.endswith(("-props", "-addr", "-edges")))
CASES = [(folder, c) for folder in FOLDERS for c in load_cases(folder)]


@pytest.mark.parametrize("folder,case", CASES,
                         ids=[f"{f}/{c.get('id', c['device'])}" for f, c in CASES])
def test_dump_matches_real_qemu(folder, case):
    machine = case.get("machine_type") or case["machine"]
    got = dump(case["device"], machine, case.get("root_port", False), case.get("qemu"))
    assert compare_dumps(case, got) == []


@pytest.mark.parametrize("folder", ["qemu-7.2", "qemu-5.2", "qemu-10.0", "qemu-10.0-machine-7.2"])
def test_each_release_has_its_corpus(folder):
    cases = load_cases(folder)
    assert len(cases) >= 42
    want = {"qemu-7.2": None, "qemu-5.2": "5.2", "qemu-10.0": "10.0", "qemu-10.0-machine-7.2": "10.0"}
    assert {c.get("qemu") for c in cases} == {want[folder]}
