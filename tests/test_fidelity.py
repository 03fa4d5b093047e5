"""The emulation against real QEMU 7.2: every captured case, byte for byte.

tests/data/qemu-7.2 holds the shared oracle's cases; tests/data/qemu-7.2-local the
wider corpus this project captured from Debian's QEMU 7.2 with virtio_lab.live.qemu.
"""

import pytest

from conftest import load_cases
from virtio_lab.text.compare import compare_dumps
from virtio_lab.text.dump import dump

CASES = load_cases("qemu-7.2") + load_cases("qemu-7.2-local")


@pytest.mark.parametrize("case", CASES, ids=[c["id"] if "id" in c else c["device"] for c in CASES])
def test_dump_matches_real_qemu(case):
    got = dump(case["device"], case["machine"], case.get("root_port", False))
    assert compare_dumps(case, got) == []


def test_corpus_is_not_empty():
    assert len(load_cases("qemu-7.2")) >= 42
