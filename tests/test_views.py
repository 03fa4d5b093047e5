"""The HTML views: the grid marks exactly the step's writes, tooltips name fields, the chain
and BAR map agree with real QEMU 7.2 captures, user strings are escaped, checks fire."""

from __future__ import annotations

import html
import re
import sys
import subprocess
from dataclasses import replace

import pytest

from conftest import load_cases
import virtio_lab
from virtio_lab.views import (BarMap, CapChain, DeviceTree, HexGrid, StepView, bar_map_html, chain_html,
                              hex_grid_html, step_html)
from virtio_lab.pci.checks import check_bars, check_config, check_state
from virtio_lab.pci.bar import Bar, Region
from virtio_lab.views.events import writes_text

CASES = [c for c in load_cases("qemu-7.2") if "error" not in c]
TD = re.compile(r'<td([^>]*)data-off="(\d+)"([^>]*)>')


@pytest.fixture(scope="module")
def net():
    return virtio_lab.plug("virtio-net-pci")


@pytest.fixture(scope="module")
def net_rp():
    return virtio_lab.plug("virtio-net-pci", "q35", root_port=True)


def cells(page: str) -> dict[int, str]:
    """offset -> the cell's attribute text (class, style, title)."""
    return {int(m.group(2)): m.group(1) + m.group(3) for m in TD.finditer(page)}


def written_cells(page: str) -> set[int]:
    return {off for off, attrs in cells(page).items() if re.search(r'class="[^"]*\bvl-w\b', attrs)}


def title_of(page: str, off: int) -> str:
    return html.unescape(re.search(r'title="([^"]*)"', cells(page)[off]).group(1))


# --- hex grid ---------------------------------------------------------------
@pytest.mark.parametrize("machine,rp", [("pc", False), ("q35", True)])
def test_grid_highlights_exactly_the_step_writes(machine, rp):
    trace = virtio_lab.plug("virtio-net-pci", machine, root_port=rp)
    checked = 0
    for ev in trace.events:
        want = set()
        for w in ev.writes:
            if w.space == "config":
                want |= set(range(w.offset, w.offset + len(w.new)))
        page = hex_grid_html(trace, ev.index)
        shown = set(cells(page))
        assert written_cells(page) == want & shown, (ev.index, ev.function)
        checked += bool(want)
    assert checked >= 10  # the test really saw steps with writes


def test_grid_has_256_cells_and_extended_space_when_express(net, net_rp):
    assert sorted(cells(hex_grid_html(net))) == list(range(256))
    page = hex_grid_html(net_rp)
    offs = set(cells(page))
    assert set(range(256)) <= offs and max(offs) >= 0x100  # extended header row is shown
    assert "rows of zero bytes" in page  # and the empty rest folded, not 3840 cells


def test_tooltips_name_the_fields(net):
    page = hex_grid_html(net)
    assert "vendor_id" in title_of(page, 0x00) and "0x1af4" in title_of(page, 0x01)
    assert "command" in title_of(page, 0x05)
    assert "capabilities_ptr" in title_of(page, 0x34) and "0x98" in title_of(page, 0x34)
    assert "MSI-X" in title_of(page, 0x9a) and "message_control" in title_of(page, 0x9a)
    t = title_of(page, 0x80)  # notify cap at 0x70: its multiplier at +16
    assert "virtio notify" in t and "notify_off_multiplier" in t and "(4)" in t
    assert "width 4" in t
    assert "(unused)" in title_of(page, 0xF0)


def test_radix_changes_cell_text(net):
    def text(page, off):
        return re.search(rf'data-off="{off}"[^>]*>([^<]*)</td>', page).group(1)
    assert text(hex_grid_html(net, radix="hex"), 0) == "f4"
    assert text(hex_grid_html(net, radix="dec"), 0) == "244"
    assert text(hex_grid_html(net, radix="bin"), 0) == "11110100"
    with pytest.raises(ValueError):
        hex_grid_html(net, radix="oct")


def test_selection_marks_a_capability_or_field(net):
    def selected(page):
        return {o for o, a in cells(page).items() if re.search(r'class="[^"]*\bvl-sel\b', a)}
    assert selected(hex_grid_html(net, select=0x98)) == set(range(0x98, 0x98 + 12))
    assert selected(hex_grid_html(net, select="command")) == {4, 5}
    assert selected(hex_grid_html(net, select="virtio notify")) == set(range(0x70, 0x84))
    assert selected(hex_grid_html(net)) == set()


def test_grid_under_budget(net):
    import time
    hex_grid_html(net, 30)
    t0 = time.perf_counter()
    for _ in range(20):
        hex_grid_html(net, 30)
    assert (time.perf_counter() - t0) / 20 < 0.02  # generous here; benchmarks hold the 2 ms budget


# --- capability chain ---------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_chain_lists_the_oracle_capabilities(case):
    trace = virtio_lab.plug(case["device"], case["machine"], case.get("root_port", False))
    page = chain_html(trace)
    nodes = [(int(o), int(i)) for o, i in re.findall(r'data-off="(\d+)" data-id="(\d+)"', page)]
    assert nodes == [(c["offset"], c["id"]) for c in case["caps"]]
    for e in case.get("ext_caps") or []:
        assert f'data-ext-off="{e["offset"]}"' in page


def test_chain_marks_newest_node_and_broken_lists(net):
    step = net.index_of("pci_add_capability", net.index_of("msix_init"))
    page = chain_html(net, step)
    new = re.findall(r'class="vl-node[^"]*\bvl-new\b[^"]*"[^>]*data-off="(\d+)"', page)
    assert new == [str(0x98)] and "NEW" in page
    # an earlier step: the notify cap is the newest
    step = next(e.index for e in net.events if e.detail("cap_name") == "virtio notify")
    assert re.findall(r'vl-new[^"]*"[^>]*data-off="(\d+)"', chain_html(net, step)) == [str(0x70)]
    # break the list: the MSI-X next pointer loops back to itself
    st = net.final
    cfg = bytearray(st.config)
    cfg[0x99] = 0x98
    page = chain_html(replace(st, config=bytes(cfg)))
    assert "vl-broken" in page and "loops" in page


# --- BAR map ------------------------------------------------------------------
_ROLE = {1: "common", 2: "notify", 3: "isr", 4: "device"}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bar_map_regions_are_the_capability_windows(case):
    trace = virtio_lab.plug(case["device"], case["machine"], case.get("root_port", False))
    page = bar_map_html(trace)
    regions = {(r, int(b), int(o), int(s)) for b, r, o, s in
               re.findall(r'data-bar="(\d+)" data-role="([^"]+)" data-offset="(\d+)" data-size="(\d+)"', page)}
    want = set()
    for c in case["caps"]:
        if c["id"] == 9 and c.get("cfg_type") in _ROLE:
            role = _ROLE[c["cfg_type"]]
            if role == "notify" and any(r[0] == "notify-pio" and r[1] == c["bar"] for r in regions):
                role = "notify-pio"
            want.add((role, c["bar"], c["cap_offset"], c["length"]))
        if c["id"] == 0x11:
            want.add(("msix-table", c["table_bir"], c["table_offset"], c["table_size"] * 16))
    legacy_bars = {r[1] for r in regions if r[0] == "legacy"}  # BAR0 also holds the legacy device config
    got = {r for r in regions if r[0] in ("common", "notify", "notify-pio", "isr", "device", "msix-table")
           and r[1] not in legacy_bars}
    assert got == want
    sizes = {b["index"]: b["size"] for b in case["bars"]}
    for b, size in re.findall(r'data-bar-index="(\d)".*?\((\d+) bytes\)', page):
        if int(b) in sizes:
            assert int(size) == sizes[int(b)]


def test_bar_map_draws_to_scale(net):
    page = bar_map_html(net)
    m = re.search(r'left:([\d.]+)%;width:([\d.]+)%;[^"]*" data-bar="4" data-role="notify"', page)
    assert (float(m.group(1)), float(m.group(2))) == (75.0, 25.0)  # 0x3000 and 0x1000 in 16 KiB


def test_draw_bar_map_on_an_axis(net):
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    artists = BarMap(net).draw(ax)
    assert len(artists) >= 4 + 2 + 2
    plt.close(fig)


# --- tree, composite, escaping -------------------------------------------------
def test_tree_shows_the_bus_chain(net):
    page = DeviceTree(net)._repr_html_()
    paths = re.findall(r'data-path="([^"]+)"', page)
    assert paths[0].endswith("pci.0") and paths[-1].endswith("virtio-bus/virtio-backend")
    assert any(p.endswith("virtio-bus") for p in paths)


def test_the_virtio_child_is_virtio_backend_of_the_device_type(net):
    """virtio_instance_init_common names the proxy's child 'virtio-backend'; its type is
    virtio-net-device. It and the proxy join the tree when qdev_realize puts them on a bus,
    not at event 0 (the object creation)."""
    node = net.final.facts.tree[-1]
    assert node.path.endswith("/virtio-backend") and node.type == "virtio-net-device"
    assert "virtio-backend" in str(DeviceTree(net))
    first = net.events[0]
    assert first.function == "virtio_net_pci_instance_init"
    assert "create the PCI proxy" not in first.explanation
    assert [n.kind for n in net.state_at(1).facts.tree] == ["bus"]  # only the root bus so far
    joined = next(e for e in net.events if any(n.path.endswith("virtio-backend") for n in e.facts.tree))
    assert joined.function == "qdev_realize" and joined.index > net.index_of("virtio_pci_bus_new")


@pytest.mark.parametrize("spec", ["virtio-blk-pci,drive=d0,serial=<b>x</b>",
                                  "virtio-net-pci,romfile=<img src=x onerror=alert(1)>"])
def test_user_strings_are_escaped(spec):
    try:
        trace = virtio_lab.plug(spec)
    except virtio_lab.VirtioLabError as err:
        trace = err.trace
    assert trace is not None
    page = step_html(trace, len(trace.events) - 1) + StepView(trace)._repr_html_()
    for obj in (HexGrid(trace), CapChain(trace), BarMap(trace), DeviceTree(trace)):
        page += obj._repr_html_()
    assert "<b>x</b>" not in page and "<img" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page or "&lt;img" in page


def test_import_views_stays_light():
    code = ("import sys, virtio_lab.views, virtio_lab.text.diff, virtio_lab.views.report, virtio_lab.pci.checks; "
            "print([m for m in ('ipywidgets', 'matplotlib', 'pandas') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_event_log_table(net):
    from virtio_lab.views import EventLog
    page = EventLog(net, 5)._repr_html_()
    rows = re.findall(r'<tr class="([^"]*)" data-step="(\d+)"', page)
    assert [int(s) for _, s in rows] == [e.index for e in net.events]  # the whole trace, in order
    assert [c for c, s in rows if c == "vl-cur"] == ["vl-cur"] and ("vl-cur", "5") in rows
    assert all(c == "vl-fut" for c, s in rows if int(s) > 5) and all(c == "" for c, s in rows if int(s) < 5)
    ev = net.events[net.index_of("pci_add_capability")]
    assert html.escape(ev.explanation) in page and html.escape(ev.source) in page
    assert html.escape(writes_text(ev, limit=100)) in page
    assert 'class="vl-cur"' not in EventLog(net)._repr_html_()  # no step: nothing marked


def test_event_log_dataframe(net):
    pd = pytest.importorskip("pandas")
    from virtio_lab.views import EventLog
    df = EventLog(net).dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == len(net.events)
    assert df.loc[0, "function"] == net.events[0].function


#: an interpreter where matplotlib and pandas cannot be imported (JupyterLite has neither)
_WITHOUT_PLOTTING = """
import sys
sys.modules["matplotlib"] = sys.modules["matplotlib.patches"] = sys.modules["pandas"] = None
from virtio_lab import plug
from virtio_lab.errors import VirtioLabError
from virtio_lab.views import BarMap, EventLog
t = plug("virtio-net-pci")
print("eventlog", EventLog(t, 3)._repr_html_().count("data-step="))
try:
    BarMap(t).draw(None)
except VirtioLabError as err:
    print("draw", err)
"""


def test_views_without_matplotlib_and_pandas():
    out = subprocess.run([sys.executable, "-c", _WITHOUT_PLOTTING], capture_output=True, text=True, check=True)
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert int(lines["eventlog"]) == len(virtio_lab.plug("virtio-net-pci").events)
    assert "matplotlib is not installed" in lines["draw"] and "BarMap" in lines["draw"]


# --- checks --------------------------------------------------------------------
def test_qemu_states_have_no_warnings(net, net_rp):
    assert check_state(net.final) == [] and check_state(net_rp.final) == []


def test_checks_find_suspicious_state(net):
    cfg = bytearray(net.final.config)
    cfg[0x34] = 0x10
    assert [f.code for f in check_config(bytes(cfg))] == ["cap-into-header"]
    cfg[0x34] = 0x99
    assert "cap-misaligned" in [f.code for f in check_config(bytes(cfg))]
    bars = [Bar(4, "mem64", 12288, True, "x", (Region("a", 0, 8192, "common"), Region("b", 4096, 4096, "isr")))]
    codes = [f.code for f in check_bars(bars)]
    assert "bar-pow2" in codes and "region-overlap" in codes
    # two BARs assigned overlapping addresses
    cfg = bytearray(net.final.config)
    cfg[0x14:0x18] = (0xFEB00000).to_bytes(4, "little")
    cfg[0x20:0x28] = (0xFEB00000 | 0xC).to_bytes(8, "little")
    assert "bar-overlap" in [f.code for f in check_bars(net.final.facts.bars, bytes(cfg))]
    page = step_html(net, len(net.events) - 1)
    assert 'class="vl-warn"' not in page


def test_select_forgives_short_structure_names():
    """A student's "notify" or "msix" hatches the same bytes as the legend's exact names."""
    from virtio_lab import plug
    from virtio_lab.views.hexgrid import selection_offsets
    config = bytes(plug("virtio-net-pci").final.config)
    assert selection_offsets(config, "notify") == selection_offsets(config, "virtio notify") != frozenset()
    assert selection_offsets(config, "msix") == selection_offsets(config, "MSI-X") != frozenset()
    assert selection_offsets(config, "nonsense") == frozenset()
