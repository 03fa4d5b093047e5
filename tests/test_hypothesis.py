"""Properties under random input (hypothesis), each a few seconds in ``make test``:

* guest config-space writes through ConfigAccess never change a read-only bit, never
  set a write-1-to-clear bit, and never raise — on every model and machine;
* malformed config spaces (looped, misaligned, header-pointing, truncated chains, looped
  extended chains) walk to an end in the capability walk, the views and explain();
* random option combinations either plug or raise VirtioLabError (QEMU's refusal),
  never another exception;
* hostile strings in mac=, serial=, id= and exercise answers come out of every HTML
  view escaped.

Derandomized (the same examples every run, so CI is stable); the example counts are
the ``max_examples`` below.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pytest
from conftest import time_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtio_lab.pci.access import ConfigAccess
from virtio_lab.pci.capability import walk_capabilities, walk_ext_capabilities
from virtio_lab.hw.devices import supported_types
from virtio_lab.errors import VirtioLabError
from virtio_lab.text.explain import explain, render
from virtio_lab.hw.plug import plug
from virtio_lab.hw.spec import type_properties
from virtio_lab.views import (bar_map_html, chain_html, event_list_html, hex_grid_html, step_html,
                              tree_html)

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: the backend id each model needs (QEMU refuses the model without it)
BACKENDS = {"drive": "drive=d0", "fsdev": "fsdev=fs0,mount_tag=share", "cryptodev": "cryptodev=cr0",
            "memdev": "memdev=mem0"}
MACHINES = (("pc", False), ("q35", False), ("q35", True))
TYPES = sorted(supported_types())


def base_spec(type_name: str) -> str:
    backend = BACKENDS.get(supported_types()[type_name].model.backend)
    return f"{type_name},{backend}" if backend else type_name


@lru_cache(maxsize=None)
def final_state(type_name: str, machine: str, root_port: bool):
    try:
        t = plug(base_spec(type_name), machine, root_port)
    except VirtioLabError:  # e.g. virtio-iommu-pci behind a root port: QEMU refuses it
        return None
    return t.final, bool(t.spec.value("x-pcie-flr-init"))


# ----------------------------------------------------------------- guest writes
accesses = st.lists(st.tuples(st.integers(0, 4096 + 8), st.sampled_from([1, 2, 4]),
                              st.integers(-(2**32), 2**40)), min_size=1, max_size=40)


@settings(max_examples=300, **SETTINGS)
@given(st.sampled_from(TYPES), st.sampled_from(MACHINES), accesses)
def test_guest_writes_never_change_read_only_bits(type_name, machine, writes):
    found = final_state(type_name, *machine)
    if found is None:
        return
    state, flr = found
    acc = ConfigAccess(state, flr=flr)
    before = bytes(acc.config)
    for addr, size, value in writes:
        acc.config_write(addr, value, size)
        acc.config_read(addr, size)
        after = bytes(acc.config)
        for o in range(len(after)):
            ro = ~(state.wmask[o] | state.w1cmask[o]) & 0xFF
            assert after[o] & ro == before[o] & ro, f"read-only bit changed at 0x{o:03x}"
            w1c = state.w1cmask[o]
            assert after[o] & w1c & ~before[o] == 0, f"a w1c bit was set at 0x{o:03x}"
        before = after


# ----------------------------------------------------------------- malformed config spaces
@st.composite
def malformed_config(draw):
    """A real device's bytes, then its capability list broken the ways dumps break."""
    type_name = draw(st.sampled_from(TYPES))
    found = final_state(type_name, "q35", True) or final_state(type_name, "pc", False)
    cfg = bytearray(found[0].config)
    if len(cfg) < 4096:
        cfg += bytes(4096 - len(cfg))
    cfg[0x06] |= 0x10  # STATUS.CAP_LIST: make the walk follow the pointer
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.sampled_from(["head", "next", "byte"]))
        value = draw(st.one_of(st.integers(0, 255),  # anything: misaligned, into the header...
                               st.sampled_from([0x00, 0x34, 0x3c, 0x40, 0x41, 0xfc, 0xfe, 0xff])))
        if where == "head":
            cfg[0x34] = value
        elif where == "next":  # a next pointer somewhere in the list area (loops back often)
            cfg[draw(st.integers(0x40, 0xff)) | 1] = value
        else:
            cfg[draw(st.integers(0, 0xff))] = value
    if draw(st.booleans()):  # a looped or wild extended chain
        nxt = draw(st.sampled_from([0x100, 0x104, 0xffc, 0x0ff, 0x103])) | 0
        cfg[0x100:0x104] = (0x0001 | (1 << 16) | (nxt << 20)).to_bytes(4, "little")
    size = draw(st.sampled_from([64, 100, 128, 192, 256, 4096]))
    return bytes(cfg[:size])


def _lspci_text(cfg: bytes) -> str:
    rows = [f"{o:02x}: " + " ".join(f"{b:02x}" for b in cfg[o:o + 16]) for o in range(0, len(cfg), 16)]
    return "00:03.0 Ethernet controller: Red Hat, Inc. Virtio network device\n" + "\n".join(rows) + "\n"


@settings(max_examples=150, **SETTINGS)
@given(malformed_config())
def test_malformed_chains_walk_to_an_end(cfg):
    with time_limit(10):
        walk = walk_capabilities(cfg)
        assert len(walk.caps) <= 48
        assert len({c.offset for c in walk.caps}) == len(walk.caps)  # never visits a node twice
        walk_ext_capabilities(cfg)
        for html in (hex_grid_html(cfg), chain_html(cfg), hex_grid_html(cfg, radix="bin")):
            assert html.startswith("<style>") and html.endswith("</div>")
        if len(cfg) % 16 == 0:  # lspci prints whole 16-byte lines
            reports = explain(_lspci_text(cfg))
            assert len(reports) == 1
            render(reports)


@settings(max_examples=40, **SETTINGS)
@given(st.binary(min_size=0, max_size=5000))
def test_views_take_any_bytes_or_say_why(data):
    with time_limit(10):
        try:
            chain_html(data)
            hex_grid_html(data)
        except VirtioLabError as err:
            assert "64 to 4096 bytes" in str(err)
            assert not 64 <= len(data) <= 4096


# ----------------------------------------------------------------- random option combinations
_EDGE = {
    "bool": ["on", "off", "yes", "maybe", ""], "OnOffAuto": ["on", "off", "auto", "sometimes"],
    "uint8": ["0", "255", "256", "-1", "0x10"], "uint16": ["0", "1", "65535", "65536", "3"],
    "uint32": ["0", "1", "2", "3", "4096", "4294967295", "4294967296", "0x100", "x"],
    "uint64": ["0", "18446744073709551615", "18446744073709551616"], "int32": ["-1", "0", "2147483648"],
    "size": ["0", "1", "512", "4k", "1M", "3G", "1.5k", "lots", "-1"],
}


@st.composite
def option_spec(draw):
    type_name = draw(st.sampled_from(TYPES))
    props = [p for p in type_properties(type_name).values() if not p.type.startswith("child<")]
    chosen = draw(st.lists(st.sampled_from(props), max_size=4, unique_by=lambda p: p.name)) if props else []
    opts = []
    for p in chosen:
        pool = _EDGE.get(p.type)
        value = draw(st.sampled_from(pool) if pool and draw(st.booleans())
                     else st.text(alphabet="0123456789abxyzo=-:<>&\"' .", max_size=8))
        opts.append(f"{p.name}={value.replace(',', ',,')}")
    if draw(st.booleans()):
        opts.append(BACKENDS.get(supported_types()[type_name].model.backend, "") or "")
    machine, rp = draw(st.sampled_from(MACHINES))
    return ",".join([type_name, *[o for o in opts if o]]), machine, rp


@settings(max_examples=400, **SETTINGS)
@given(option_spec())
def test_options_plug_or_say_why(case):
    spec, machine, rp = case
    try:
        trace = plug(spec, machine, rp)
    except VirtioLabError as err:
        msg = str(err)
        assert msg and "\n" not in msg
        return
    assert trace.events and trace.final.config[:2] == b"\xf4\x1a"  # Red Hat / virtio vendor id


# ----------------------------------------------------------------- HTML escaping
hostile = st.text(alphabet="<>&\"'/ =ab;()x", min_size=1, max_size=20).map(
    lambda s: f"<img src=x onerror=alert({len(s)})>{s}")


def _raw_tags(html: str, payload: str) -> bool:
    return "<img src=x onerror" in html


@settings(max_examples=25, **SETTINGS)
@given(hostile)
def test_hostile_serials_are_escaped_in_every_view(payload):
    text = payload.replace(",", ",,")
    trace = plug(f"virtio-blk-pci,drive=d0,serial={text}", "q35", True)
    step = len(trace.events) - 1
    pages = [step_html(trace, step), tree_html(trace, step), chain_html(trace, step),
             hex_grid_html(trace, step), bar_map_html(trace, step), event_list_html(trace, step)]
    for html in pages:
        assert not _raw_tags(html, payload)
    assert any("&lt;img src=x onerror" in h for h in pages)  # the serial does reach a view
    with pytest.raises(VirtioLabError, match="Parameter 'id' expects an identifier"):
        plug(f"virtio-blk-pci,drive=d0,id={text}")  # QEMU takes no markup as an id


@settings(max_examples=25, **SETTINGS)
@given(hostile)
def test_hostile_refusals_and_answers_are_escaped(payload):
    from virtio_lab.text.diff import diff
    from virtio_lab.views import diff_html
    from virtio_lab.course.exercises import check
    d = diff("virtio-net-pci", f"virtio-net-pci,romfile={payload.replace(',', ',,')},vectors=3")
    assert "failed to find romfile" in d.errors[1]  # QEMU's refusal quotes the file name back
    assert not _raw_tags(diff_html(d), payload)
    fb = check("cap-chain-offsets", payload)
    assert not _raw_tags(fb._repr_html_(), payload)
    fb = check(payload, [1])
    assert not _raw_tags(fb._repr_html_(), payload)
    with pytest.raises(VirtioLabError) as err:  # QEMU's refusal quotes the value back
        plug(f"virtio-net-pci,mac={payload.replace(',', ',,')}")
    assert "<img" in str(err.value)  # plain text keeps it; the widgets escape it (below)


def test_whatif_status_escapes_a_hostile_refusal():
    pytest.importorskip("ipywidgets")
    from virtio_lab.widgets import WhatIf
    w = WhatIf()
    w.options.value = "mac=<img src=x onerror=alert(1)>"
    assert "QEMU refuses" in w.status.value
    assert not _raw_tags(w.status.value, "") and "&lt;img src=x onerror" in w.status.value


def test_report_escapes_hostile_serials():
    from virtio_lab.views.report import report_html
    html = report_html("virtio-blk-pci,drive=d0,serial=<img src=x onerror=alert(1)>")
    assert not re.search(r"<img src=x onerror", html)
    assert "&lt;img src=x onerror" in html
