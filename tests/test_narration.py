"""The explanations say what QEMU 7.2 / Linux 6.1 really do (issue 16's "wrong today" list).

Each test checks the narration against a fact the emulation can get wrong again: the
call nesting, which events exist for which options, which offsets a text names.
"""

from __future__ import annotations

import pytest

from virtio_lab.guest.probe import probe
from virtio_lab.hw.plug import plug
from virtio_lab.pci import regs
from virtio_lab.pci.layout import HEADER
from virtio_lab.views.barmap import bar_map_html


def _parent(trace, i):
    """The event that opened the call event ``i`` is nested in."""
    d = trace.events[i].depth
    return next(e for e in reversed(trace.events[:i]) if e.depth == d - 1)


def _chain(trace, function):
    i = trace.index_of(function)
    out = [function]
    while trace.events[i].depth:
        i = _parent(trace, i).index
        out.append(trace.events[i].function)
    return out[::-1]


# item 7: the real nesting ------------------------------------------------------
def test_capabilities_are_added_through_region_map_and_add_mem_cap():
    t = plug("virtio-net-pci")
    assert _chain(t, "pci_add_capability")[-5:] == [
        "virtio_pci_device_plugged", "virtio_pci_modern_mem_region_map",
        "virtio_pci_modern_region_map", "virtio_pci_add_mem_cap", "pci_add_capability"]
    regions_init = t.index_of("virtio_pci_modern_regions_init")
    assert regions_init < t.index_of("virtio_pci_modern_mem_region_map")
    assert _parent(t, regions_init).function == "virtio_pci_device_plugged"


def test_the_plug_is_reached_through_the_backend_realize():
    """virtio_net_pci_realize -> qdev_realize -> device_set_realized -> virtio_device_realize,
    which runs virtio_net_device_realize and then virtio_bus_device_plugged."""
    t = plug("virtio-net-pci")
    chain = _chain(t, "virtio_bus_device_plugged")
    assert chain[-5:] == ["virtio_net_pci_realize", "qdev_realize", "device_set_realized",
                          "virtio_device_realize", "virtio_bus_device_plugged"]
    realize = t.index_of("virtio_net_device_realize")
    assert _parent(t, realize).function == "virtio_device_realize"
    assert t.events[realize].depth == t.events[t.index_of("virtio_bus_device_plugged")].depth
    assert "virtio_pci_realize" in chain and "pci_qdev_realize" in chain
    assert _chain(t, "pci_qdev_realize")[-2:] == ["virtio_pci_dc_realize", "pci_qdev_realize"]


@pytest.mark.parametrize("spec,machine", [("virtio-net-pci", ("pc", False)),
                                          ("virtio-blk-pci,drive=d0", ("q35", True)),
                                          ("virtio-mem-pci,memdev=mem0", ("pc", False)),
                                          ("virtio-vga", ("q35", False))])
def test_depths_are_a_call_tree(spec, machine):
    """A call is at most one deeper than the event before it; a continuation event
    (a phase) belongs to an open call of the same function at the same depth."""
    t = plug(spec, *machine)
    for i, e in enumerate(t.events):
        assert i == 0 or e.depth <= t.events[i - 1].depth + 1, (e.index, e.function)
        if e.continued:
            opener = next(x for x in reversed(t.events[:i]) if x.depth <= e.depth)
            assert opener.depth == e.depth and opener.function == e.function, (e.index, e.function)


# item 2: the bus creation -------------------------------------------------------
def test_virtio_pci_bus_new_calls_qbus_init_in_7_2():
    t = plug("virtio-net-pci")
    i = t.index_of("qbus_init")
    assert _parent(t, i).function == "virtio_pci_bus_new"
    assert t.index_of("qbus_create_inplace") == i  # the older name finds the same step
    assert "qbus_create_inplace before" in t.events[i].explanation


# item 8: virtio_pci_realize writes behind a root port -------------------------
def test_virtio_pci_realize_writes_only_behind_a_root_port():
    def own(t):
        fn = "virtio_pci_realize"
        return {o for e in t.events if e.function == fn for o in e.changed()}

    assert own(plug("virtio-net-pci")) == set()
    behind = plug("virtio-net-pci", "q35", True)
    pm = next(c.offset for c in behind.final.caps if c.id == regs.CapID.PM)
    assert pm + regs.PCI_PM_PMC in own(behind)  # its own PMC write, between its callees
    span = [e for e in behind.events if e.index < behind.index_of("virtio_pci_bus_new")
            and e.index >= behind.index_of("virtio_pci_realize")]
    assert {"pcie_endpoint_cap_init", "pci_add_capability"} <= {e.function for e in span}


# item 9: the config hooks and the cfg window -----------------------------------
def test_cfg_window_is_named_only_when_there_is_one():
    for spec, window in (("virtio-net-pci", True), ("virtio-net-pci,disable-modern=on", False)):
        t = plug(spec)
        hooks = [e for e in t.events if "virtio_write_config" in e.explanation and
                 e.function == "virtio_pci_device_plugged"]
        assert len(hooks) == 1
        assert "Bus Master" in hooks[0].explanation and "DRIVER_OK" in hooks[0].explanation
        assert any("cfg window" in e.explanation for e in t.events) is window
        assert ("cfg window" in hooks[0].explanation) is window


def test_clearing_bus_master_drops_driver_ok_as_the_hook_says():
    r = probe("virtio-net-pci")
    dev = r.device
    assert dev.vdev.status & 4  # DRIVER_OK after the probe
    cmd = dev.config_read(regs.PCI_COMMAND, 2)
    dev.config_write(regs.PCI_COMMAND, cmd & ~regs.PCI_COMMAND_MASTER, 2)
    assert not dev.vdev.status & 4


# item 13: disable-modern=on ----------------------------------------------------
def test_disable_modern_names_the_option_and_the_legacy_only_device():
    t = plug("virtio-net-pci,disable-modern=on")
    text = " ".join(e.explanation for e in t.events)
    assert "does not offer VERSION_1" not in text
    assert "disable-modern=on: virtio_pci_pre_plugged did not add VERSION_1" in text
    assert "Legacy-only device" in text and "Legacy (transitional)" not in text
    assert "Transitional device (legacy and modern)" in " ".join(e.explanation for e in plug("virtio-net-pci").events)


# item 5: subsystem ids ---------------------------------------------------------
def test_subsystem_id_is_said_to_serve_modern_drivers_of_transitional_ids():
    t = plug("virtio-net-pci")
    phase = next(e for e in t.events if "subsystem id carries" in e.explanation)
    assert "modern driver" in phase.explanation and "0x1040" in phase.explanation
    hover = next(f for f in HEADER if f.name == "subsystem_id").meaning
    assert "0x1040" in hover and "modern probe" in hover
    r = probe("virtio-net-pci")  # transitional id 0x1000: Linux takes the id from the subsystem
    ev = next(e for e in r.trace.events if e.function == "vp_modern_probe" and e.detail("virtio_id"))
    assert ev.detail("virtio_id") == 1 and "subsystem" in ev.explanation


# item 3: which devices virtio_pci keeps -----------------------------------------
def test_virtio_pci_probe_names_the_id_ranges_it_keeps():
    r = probe("virtio-net-pci")
    ev = next(e for e in r.trace.events if e.function == "virtio_pci_probe")
    assert "0x1000-0x107f" in ev.explanation and "0x1000-0x103f" in ev.explanation
    assert "binds every" not in ev.explanation


# item 10: legacy device config has no generation counter ------------------------
def test_legacy_config_reads_are_not_bracketed_by_config_generation():
    legacy = probe("virtio-net-pci,disable-modern=on")
    modern = probe("virtio-net-pci,disable-legacy=on")
    (lev,) = [e for e in legacy.trace.events if e.function == "__virtio_cread_many"][:1]
    (mev,) = [e for e in modern.trace.events if e.function == "__virtio_cread_many"][:1]
    assert "config_generation" in mev.explanation and "bracketed" in mev.explanation
    assert "bracketed" not in lev.explanation and "no generation counter" in lev.explanation


# item 4: the legacy device config offset in BarMap -------------------------------
def test_legacy_device_config_starts_at_config_off_of_msix_enabled():
    t = plug("virtio-net-pci")  # MSI-X present, not enabled at plug time
    bar0 = t.final.facts.bar(0)
    device = next(r for r in bar0.regions if r.role == "device")
    assert device.offset == regs.VIRTIO_PCI_CONFIG_OFF(False) == 0x14
    assert bar0.size == 32  # sized for the 24-byte header with the MSI-X registers + 8
    page = bar_map_html(t)
    assert "0x14 while MSI-X is off, 0x18 once the driver enables MSI-X" in page
    # the lab's own legacy driver reads the MAC at 0x14 when MSI-X stays off
    r = probe("virtio-net-pci,disable-modern=on,vectors=0")
    assert not r.device.msix_enabled
    mac = [e for e in r.trace.events if e.function == "__virtio_cread_many"][0]
    reads = [e for e in r.trace.events[mac.index:] if e.detail("bar") == 0 and e.detail("offset") is not None]
    assert reads and reads[0].detail("offset") == 0x14


# item 11: header hover texts ---------------------------------------------------
def test_class_code_bytes_are_named_in_order():
    by = {f.name: f for f in HEADER}
    assert "low byte" not in by["subclass"].meaning
    assert "prog-if 0x09" in by["subclass"].meaning
    assert "type 1" in by["header_type"].meaning
