"""``addr=``: parsed and checked as QEMU 7.2 does it, against real QEMU's answers.

tests/data/qemu-7.2-addr/cases.json holds what a real qemu-system-x86_64 7.2 said to
``-device virtio-rng-pci,addr=VALUE`` on pc, q35 and behind a q35 pcie-root-port
(``capture.py`` beside it re-captures them)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from virtio_lab import VirtioLabError, plug

DATA = json.loads((Path(__file__).parent / "data" / "qemu-7.2-addr" / "cases.json").read_text())
CASES = DATA["cases"]


def _id(c):
    return f"{c['machine']}{'rp' if c['root_port'] else ''}-addr={c['addr']!r}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_addr_accepted_or_refused_like_qemu(case):
    spec = f"virtio-rng-pci,addr={case['addr']}"
    if case["error"] is None:
        trace = plug(spec, case["machine"], case["root_port"])
        bus = 1 if case["root_port"] else 0
        assert trace.machine.bdf.startswith(f"{bus:02x}:")
        # the slot moves, the device's bytes do not
        default = plug("virtio-rng-pci", case["machine"], case["root_port"])
        assert bytes(trace.final.config) == bytes(default.final.config)
    else:
        with pytest.raises(VirtioLabError) as err:
            plug(spec, case["machine"], case["root_port"])
        assert str(err.value) == case["error"]


@pytest.mark.parametrize("text,bdf", [("03.0", "00:03.0"), ("5", "00:05.0"), ("1f.7", "00:1f.7"),
                                      ("0x1e", "00:1e.0"), ("1.2", "00:01.2")])
def test_bdf_follows_addr(text, bdf):
    assert plug(f"virtio-net-pci,addr={text}").machine.bdf == bdf


def test_refusal_is_an_event_of_do_pci_register_device():
    with pytest.raises(VirtioLabError) as err:
        plug("virtio-net-pci,addr=1")
    events = err.value.trace.events
    assert events[-1].function == "do_pci_register_device" and events[-1].detail("error")


BUS_CASES = DATA["bus_cases"]


@pytest.mark.parametrize("case", BUS_CASES, ids=[f"{c['machine']}{'rp' if c['root_port'] else ''}-bus={c['bus']!r}"
                                                 for c in BUS_CASES])
def test_bus_accepted_or_refused_like_qemu(case):
    spec = f"virtio-rng-pci,bus={case['bus']}"
    on_root_bus = case["root_port"] and case["bus"].rstrip("/") in ("pcie.0", "/q35-pcihost/pcie.0")
    if on_root_bus:
        # QEMU takes it and puts the device on the root bus, which --root-port contradicts:
        # virtio_lab says so instead of silently plugging somewhere else
        with pytest.raises(VirtioLabError, match="root bus"):
            plug(spec, case["machine"], case["root_port"])
    elif case["error"] is None:
        default = plug("virtio-rng-pci", case["machine"], case["root_port"])
        assert bytes(plug(spec, case["machine"], case["root_port"]).final.config) == bytes(default.final.config)
    else:
        with pytest.raises(VirtioLabError) as err:
            plug(spec, case["machine"], case["root_port"])
        assert str(err.value) == case["error"]
