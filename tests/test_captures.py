"""The real captures the notebooks read are package data (virtio_lab.course.captures).

A notebook finds them wherever virtio_lab is installed (Binder, a JupyterHub, JupyterLite's
Pyodide, which has no repository around it); the suite's own corpus in tests/data links to the
same files, so the bytes a notebook shows are the ones the fidelity tests check. That the
wheel carries them is shown by `make lite-test` (notebooks 09, 10 and 14 read them in Pyodide).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from virtio_lab import dump
from virtio_lab.course.captures import capture_names, guest_capture, qemu_capture
from virtio_lab.errors import VirtioLabError
from virtio_lab.text.compare import compare_dumps

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DATA = REPO / "virtio_lab" / "data"


def test_the_suite_reads_the_same_files():
    """Each shipped capture is linked from tests/data, not copied: one file, no drift."""
    shipped = [("guest", n, PACKAGE_DATA / "guest" / f"{n}.json") for n in capture_names("guest")] + \
              [("qemu-7.2", n, PACKAGE_DATA / "qemu-7.2" / "cases" / f"{n}.json") for n in capture_names("qemu")]
    assert {n for _, n, _ in shipped} >= {"pc__virtio-net-pci", "q35rp__virtio-net-pci"}
    for folder, name, path in shipped:
        link = REPO / "tests" / "data" / folder / f"{name}.json"
        assert link.is_symlink() and link.resolve() == path.resolve(), f"{link} should link to {path}"


def test_a_stored_case_matches_the_emulation():
    assert compare_dumps(qemu_capture("pc__virtio-net-pci"), dump("virtio-net-pci")) == []
    real = guest_capture("pc__virtio-net-pci")
    assert real["device"] == "virtio-net-pci" and real["machine"] == "pc"
    assert [b["index"] for b in real["bars"]] == [0, 1, 4]


@pytest.mark.parametrize("name", ["nope", "../guest/pc__virtio-net-pci", "pc__virtio-net-pci.json", ""])
def test_an_unknown_name_is_one_line(name):
    with pytest.raises(VirtioLabError) as err:
        guest_capture(name)
    assert "\n" not in str(err.value) and "pc__virtio-net-pci" in str(err.value)  # names the ones there are

