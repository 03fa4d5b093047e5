"""Every course exercise: the right answer passes, typical wrong answers get a helpful message.

"Helpful" means: the checker says *where* the first difference is (position, key,
test case), gives a hint, never just "wrong", and bad input is one line, never a
traceback.
"""

import pytest

from virtio_lab import exercises as ex
from virtio_lab.course.exercises import EXERCISES, NOTEBOOKS, check, given, hint, solution


def right(name):
    """The right answer for ``name`` as a learner would type it."""
    if name in ex._REFERENCES:
        return ex._REFERENCES[name]
    return EXERCISES[name].expected()


class _NoCommand:
    """An access whose COMMAND writes are dropped: the reference then never turns decoding off."""

    def __init__(self, access):
        self.a = access

    def config_read(self, addr, size):
        return self.a.config_read(addr, size)

    def config_write(self, addr, value, size):
        if addr != 0x04:
            self.a.config_write(addr, value, size)


class _NoUpperRestore(_NoCommand):
    """Writes back everything but a placed 64-bit BAR's upper half."""

    def config_write(self, addr, value, size):
        if not (addr == 0x24 and value not in (0, 0xFFFFFFFF)):
            self.a.config_write(addr, value, size)


def _size_without_restoring(access):
    sizes, i = {}, 0
    command = access.config_read(0x04, 2)
    access.config_write(0x04, command & ~3, 2)
    while i < 6:
        off = 0x10 + 4 * i
        access.config_write(off, 0xFFFFFFFF, 4)
        lo = access.config_read(off, 4)
        hi = None
        if not lo & 1 and lo & 6 == 4:
            access.config_write(off + 4, 0xFFFFFFFF, 4)
            hi = access.config_read(off + 4, 4)
        if lo not in (0, 1):
            sizes[i] = ex._size_reference(lo, hi)
        i += 2 if hi is not None else 1
    access.config_write(0x04, command, 2)
    return sizes


# (exercise, a typical wrong answer, words the feedback must contain)
WRONG = [
    ("device-writes", [1], ["is missing", "2", "the device writes into it"]),
    ("device-writes", {0, 1, 2}, ["0 should not be in it", "only reads"]),
    ("used-idx-wrap", {"used_idx": 6, "slot": 2}, ["wrong value is for 'slot'", "too high"]),
    ("isr-after-msix", 0, ["too low"]),
    ("plug-order", ["virtio_pci_realize", "virtio_bus_device_plugged", "virtio_pci_bus_new",
                    "qbus_create_inplace", "virtio_pci_device_plugged"], ["position 1", "index_of"]),
    ("first-cap-step", 40, ["too high", "pci_add_capability"]),
    ("header-ids", dict(vendor_id=0xF41A, device_id=0x1041, revision_id=1, **{"class": 0x200},
                        subsystem_vendor_id=0x1AF4, subsystem_id=0x1100), ["'vendor_id'", "little-endian"]),
    ("header-ids", {"vendor_id": 0x1AF4}, ["'device_id' is missing", "0x02"]),
    ("command-readback", 0xFFFF, ["bit 3 SPECIAL", "reserved bits 15:11", "should read back 0", "wmask"]),
    ("command-readback", 0x0007, ["bit 8 SERR", "bit 10 INTX_DISABLE", "should read back 1"]),
    ("writable-header-fields", {"bar0", "bar1", "bar4", "bar5", "cache_line_size", "command",
                                "interrupt_line", "rom_address", "status"}, ["'status'", "w1cmask"]),
    ("writable-header-fields", {"bar0", "bar1", "bar4", "cache_line_size", "command",
                                "interrupt_line", "rom_address"}, ["'bar5'", "wmask[0x24:0x28]"]),
    ("config-address", {"cf8": 0x8000200C, "port": 0xCFE}, ["bits 15:11 (device)", "too high", "Hint:"]),
    ("config-address", {"cf8": 0x0000180C, "port": 0xCFE}, ["bit 31 (enable)"]),
    ("config-address", {"cf8": 0x8000180C, "port": 0xCFC}, ["data port 0xcfc", "offset & 3"]),
    ("ecam-address", {"q35 offset 0x34": 0xB0018034, "q35 root port offset 0x100": 0xB0000100},
     ["'q35 root port offset 0x100'", "bits 27:20 (bus)"]),
    ("cap-chain-offsets", [0x40, 0x50, 0x60, 0x70, 0x84, 0x98], ["position 0", "0x34"]),
    ("cap-chain-offsets", [0x98, 0x84, 0x70], ["stops after 3", "config[0x71]"]),
    ("cap-chain-offsets", [0x98, 0x84, 0x70, 0x60, 0x50, 0x40, 0], ["should end there"]),
    ("msix-cap", dict(offset=0x98, table_size=4, table_bar=1, table_offset=0, pba_bar=1, pba_offset=0x800),
     ["'table_size'", "table size − 1"]),
    ("walk-caps", lambda c: [(c[0x34], c[c[0x34]])], ["on virtio-net-pci on pc", "returned"]),
    ("walk-caps", lambda c: 1 / 0, ["raised ZeroDivisionError"]),
    ("walk-caps", lambda c: [o for o, _ in ex._walk_reference(c)], ["(offset, cap_id) pair"]),
    # follows 0x34 without looking at STATUS.CAP_LIST: right on every real device, wrong on the stale pointer
    ("walk-caps", lambda c: ex._walk_reference(bytes(c[:6]) + bytes([c[6] | 0x10]) + bytes(c[7:]))
     if c[0x34] else [], ["STATUS bit 4 (CAP_LIST) cleared", "0x34 still holding 0x98", "check the bit"]),
    ("bar-sizes", {0: 24, 1: 4096, 4: 16384}, ["wrong value is for 0:", "too low", "0x10"]),
    ("bar-sizes", {0: 32, 1: 4096, 4: 16384, 5: 0}, ["key 5 should not be there"]),
    ("sizing-readback", {0x10: 0xFFFFFFE0, 0x14: 0xFFFFF000, 0x20: 0xFFFFC00C, 0x24: 0xFFFFFFFF},
     ["at 0x10 (BAR0)", "bit 0, the I/O space indicator", "read-only"]),
    ("sizing-readback", {0x10: 0xFFFFFFE1, 0x14: 0xFFFFFF00, 0x20: 0xFFFFC00C, 0x24: 0xFFFFFFFF},
     ["at 0x14 (BAR1)", "address bits 31:4", "its bits 11:8", "below the BAR's size"]),
    ("sizing-readback", {0x10: 0xFFFFFFE1, 0x14: 0xFFFFF000, 0x20: 0xFFFFC000, 0x24: 0xFFFFFFFF},
     ["at 0x20 (BAR4)", "bits 2:1, the memory type", "bit 3, prefetchable"]),
    ("bar-high", {0x20: 0x0, 0x24: 0x1}, ["at 0x20 (BAR4)", "memory type", "prefetchable"]),
    ("bar-high", {0x20: 0xC, 0x24: 0x0}, ["at 0x24 (BAR5)", "address bits 63:32", "its bit 0"]),
    ("size-from-readback", lambda lo, hi=None: (~lo + 1) & 0xFFFFFFFF, ["BAR0 of virtio-net-pci", "returned 31"]),
    ("bar-kinds", {0: "io", 1: "mem32", 4: "mem64"}, ["key 2 is missing", "0x18"]),
    ("ring-sizes", {"desc": 4096, "avail": 518, "used": 2048}, ["'used'", "too low", "8-byte element"]),
    ("ring-sizes", {"desc": 256, "avail": 518, "used": 2054}, ["'desc'", "16 bytes a descriptor"]),
    ("status-sequence", [0, 1, 3, 7, 15], ["write 3", "FEATURES_OK should be set", "DRIVER_OK is not set yet"]),
    ("status-sequence", [1, 3, 0xB, 0xF], ["write 0", "0 (reset)"]),
    ("isr-reads", [1, 0], ["read 1 gives 0x1", "bit 1, a configuration change"]),
    ("isr-reads", [3, 3], ["read 2", "remember what a read does"]),
    ("queue-vectors", {"config": 0, 0: 1, 1: 2, 2: 3}, ["value is for 2", "queue_msix_vector of queue 2"]),
    ("ext-cap-walk", [(0x100, 1, 2), (0x148, 0xF, 2)], ["item 1 at 0x148", "version (bits 19:16)"]),
    ("ext-cap-walk", [(0x100, 1, 2), (0x140, 0xF, 1)], ["offset 0x140", "bits 31:20 of the header at 0x100"]),
    ("ext-cap-walk", [(0x100, 1, 2)], ["stops after 1"]),
    ("bridge-windows", {"secondary_bus": 1, "subordinate_bus": 1, "mem_base": 0xFE60, "mem_limit": 0xFE7FFFFF},
     ["'mem_base'", "1 MiB units"]),
    ("kick-address", 0x3004, ["not inside BAR4", "bar_address(4)"]),
    ("kick-address", 0xFEBFF000, ["queue 0's place", "queue_notify_off"]),
    ("notify-queue", {"default, bar4+0x3008": 8, "page-per-vq=on, bar4+0x5000": 2},
     ["'default, bar4+0x3008'", "too high", "multiplier"]),
    ("device-ids", {"virtio-net-pci": 0x1000, "virtio-net-pci,disable-legacy=on": 0x1001,
                    "virtio-blk-pci-non-transitional,drive=d0": 0x1042, "virtio-gpu-pci": 0x1050},
     ["disable-legacy=on", "0x1040"]),
    ("notify-address", {"virtio-net-pci": 0x3002, "virtio-net-pci,page-per-vq=on": 0x5000},
     ["'virtio-net-pci'", "multiplier"]),
    ("refused-specs", {"virtio-net-pci,disable-legacy=on,disable-modern=on", "virtio-net-pci,iommu_platform=on",
                       "virtio-blk-pci", "virtio-gpu-pci,disable-legacy=off"},
     ["'virtio-gpu-pci,disable-legacy=off' should not be in it", "accepts"]),
    ("refused-specs", {"virtio-net-pci,disable-legacy=on,disable-modern=on"}, ["2 are missing", "virtio-blk-pci"]),
    ("cap-ptr-writers", [34, 39, 44, 49, 53], ["stops after 5", "6th call of pci_add_capability"]),
    ("bar-order", [0, 1, 4, 6], ["position 0", "1st pci_register_bar"]),
    ("size-all-bars", lambda a: {i: 1 for i in range(6)}, ["on virtio-net-pci", "64-bit"]),
    # SeaBIOS's loop: right sizes, but all ones written while the placed device decodes
    ("size-all-bars", lambda a: ex._size_bars_reference(_NoCommand(a)),
     ["as firmware left it", "decoding on", "wrote all ones to bar0 (0x10)", "Clear IO and MEMORY"]),
    # sizes right, BARs not written back
    ("size-all-bars", _size_without_restoring, ["the sizes are right", "left bar0 (0x10) at 0xffffffe1",
                                                "it was 0x00000001", "write that value back"]),
    ("size-all-bars", lambda a: ex._size_bars_reference(_NoUpperRestore(a)),
     ["BAR4 at 0x100000000: the sizes", "left bar5 (0x24) at 0xffffffff", "it was 0x00000001"]),
    ("interrupt-line", {"virtio-net-pci": 11, "virtio-net-pci,addr=4": 10, "virtio-net-pci,addr=5": 10},
     ["'virtio-net-pci,addr=4'", "too low", "slot 4"]),
    ("linux-cap-pick", {"common": 0x40, "isr": 0x50, "notify": 0x70, "device": 0x60},
     ["'common'", "too low", "root port"]),
    ("driver-mode", {"virtio-net-pci": "legacy", "virtio-net-pci,disable-modern=on": "legacy",
                     "virtio-net-pci,disable-legacy=on": "modern"}, ["'virtio-net-pci'", "cfg_type 1"]),
    ("legacy-diff", {"device_id", "revision_id"}, ["2 are missing", "'bar0'"]),
    ("mystery-lspci", dict(virtio_id=0x42, transitional=False, msix_vectors=5, pcie=True),
     ["'virtio_id'", "0x1040 + n"]),
]

# (exercise, malformed answer, words of the one-line message)
BAD = [
    ("cap-chain-offsets", "0x98", "not a str"),
    ("plug-order", ["virtio_pci_realise"], "did you mean 'virtio_pci_realize'"),
    ("cap-chain-offsets", [0x98, "zz"], "'zz' is not a number"),
    ("first-cap-step", [27], "not a list"),
    ("header-ids", [1, 2], "expected a dict"),
    ("writable-header-fields", "command", "expected a set"),
    ("walk-caps", 42, "pass your function itself"),
    ("mystery-lspci", dict(virtio_id=2, transitional="no", msix_vectors=5, pcie=True), "True or False"),
    ("bar-sizes", {0: True, 1: 4096, 4: 16384}, "should be a number"),
]


def test_enough_exercises_per_notebook():
    assert len(EXERCISES) >= 16
    for nb in NOTEBOOKS:
        assert sum(e.notebook == nb for e in EXERCISES.values()) >= 2, nb


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_right_answer_passes(name):
    fb = check(name, right(name))
    assert fb.ok, str(fb)
    assert str(fb).startswith(f"✓ {name}: correct.")


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_answers_typed_as_text_or_other_containers_pass(name):
    """Learners write 0x98 or "0x98", tuples or lists, sets or lists: all fine."""
    want = right(name)
    if callable(want):
        return
    if isinstance(want, list):
        alt = tuple(f"{v:#x}" if isinstance(v, int) else v for v in want)
    elif isinstance(want, set):
        alt = sorted(want)
    elif isinstance(want, dict):
        alt = {str(k): (f"{v:#x}" if isinstance(v, int) and not isinstance(v, bool) else v)
               for k, v in want.items()}
    else:
        alt = f"{want:#x}"
    assert check(name, alt).ok, str(check(name, alt))


@pytest.mark.parametrize("name,answer,words", WRONG, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG)])
def test_wrong_answer_points_at_first_difference(name, answer, words):
    fb = check(name, answer)
    text = str(fb)
    assert not fb.ok
    assert "\n" not in text and "Traceback" not in text
    assert "Hint:" in text
    for w in words:
        assert w in text, (w, text)
    # the message names the difference but does not give the answer away
    want = right(name)
    if isinstance(want, list) and len(want) > 2:
        assert ex._show(want) not in text


@pytest.mark.parametrize("name,answer,words", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_malformed_answer_is_one_clear_line(name, answer, words):
    fb = check(name, answer)
    assert not fb.ok
    assert words in str(fb)
    assert "\n" not in str(fb)
    assert "Answer with" in str(fb)


def test_every_wrong_answer_kind_is_covered():
    assert {w[0] for w in WRONG} == set(EXERCISES)


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_no_answer_yet_repeats_the_question(name):
    for blank in (..., None):
        fb = check(name, blank)
        assert not fb.ok and "no answer yet" in str(fb) and EXERCISES[name].question in str(fb)


def test_unknown_names_suggest_the_closest():
    assert "did you mean 'cap-chain-offsets'" in str(check("cap-chain", [1]))
    assert "exercises() lists them all" in str(check("zzz", 1))
    assert "should be a string" in str(check(3, 1))
    assert "cap-chain-offsets" in str(check("cap_chain_offsets", [0x98])) and \
        check("cap_chain_offsets", right("cap-chain-offsets")).ok


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_solution_and_hint(name):
    sol = str(solution(name))
    assert sol.startswith(f"Solution to {name}:") and "Why:" in sol
    assert str(hint(name)).startswith(f"Hint for {name}:")


def test_reference_solutions_are_shown_with_public_names():
    sol = str(solution("size-all-bars"))
    assert "def size_bars(access)" in sol and "def bar_size(" in sol and "_reference" not in sol
    ns: dict = {}
    exec(sol.split("one way to write it:\n\n", 1)[1].split("\n\ncheck(", 1)[0], ns)
    assert check("size-all-bars", ns["size_bars"]).ok


def test_given_mystery_dump_hides_the_device_name():
    text = str(given("mystery-lspci"))
    lines = text.splitlines()
    assert lines[0].startswith("01:00.0 ") and "block" not in lines[0].lower()
    assert lines[1].startswith("00: f4 1a 42 10")
    assert len([l for l in lines[1:] if l[2:4] == ": "]) == 16


def test_feedback_renders_as_text_and_html():
    fb = check("bar-order", [4, 1, 0, 6])
    assert repr(fb) == str(fb) and bool(fb)
    assert "vl-feedback" in fb._repr_html_() and "✓ bar-order" in fb._repr_html_()
    assert "00-start:" in str(ex.exercises()) and "14-what-if" in str(ex.exercises("14"))


@pytest.mark.parametrize("name", ["device-ids", "notify-address", "linux-cap-pick", "ext-cap-walk", "msix-cap",
                                  "legacy-diff", "interrupt-line", "bar-high", "cap-ptr-writers"])
def test_why_states_the_emulations_numbers(name):
    """The explanations' numbers are computed: each number of the answer is in the text."""
    why = EXERCISES[name].why()
    want = EXERCISES[name].expected()
    values = want.values() if isinstance(want, dict) else want
    flat = [x for v in values for x in (v if isinstance(v, tuple) else (v,))]
    if name == "cap-ptr-writers":
        flat = [len(flat)]
    if name == "legacy-diff":
        flat = []
        a, b = ex._final(ex._DIFF_A).config, ex._final(ex._DIFF_B).config
        flat = [ex._le(b, 2, 2), ex._le(b, 0x2E, 2)]
    for v in flat:
        if isinstance(v, str):
            assert v in why, (v, why)
        elif not isinstance(v, bool):
            assert ex._hex(v) in why or str(int(v)) in why, (v, why)


def test_answers_follow_the_emulation():
    """Not typed in: the expected values come from plug()."""
    import virtio_lab
    t = virtio_lab.plug("virtio-net-pci")
    assert EXERCISES["cap-chain-offsets"].expected() == [c.offset for c in t.final.caps]
    assert EXERCISES["first-cap-step"].expected() == t.index_of("pci_add_capability")


def test_plug_order_takes_the_release_name_of_the_bus_creation():
    """QEMU 7.2's virtio_pci_bus_new calls qbus_init (qbus_create_inplace before 6.2): the
    checker accepts either for that step, and the expected order uses 7.2's name."""
    order = ["virtio_pci_realize", "virtio_pci_bus_new", "qbus_init", "virtio_bus_device_plugged",
             "virtio_pci_device_plugged"]
    assert solution("plug-order") is not None
    assert EXERCISES["plug-order"].expected() == order
    assert check("plug-order", order).ok
    old = order[:2] + ["qbus_create_inplace"] + order[3:]
    assert check("plug-order", old).ok
    assert "qbus_init" in EXERCISES["plug-order"].question
    assert not check("plug-order", ["qbus_new"] + order[1:]).ok

