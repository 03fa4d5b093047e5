"""Every ``file:function`` the trace cites exists in that file of the release it names.

The function indexes in tests/data/functions/ were built from each release's own source
(Debian's source packages; tests/data/functions/README.md says how) by make_index.py
there: facts only, file paths and the names of the functions each defines. The plugs
checked are the whole local real-QEMU corpus (every model on pc, q35 and behind a q35
root port, the options it covers and its 72 refusals); the guest side is the probe of
every model and variant on the three machines.
"""

from __future__ import annotations

import json
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import pytest

from virtio_lab.errors import VirtioLabError
from virtio_lab.guest.probe import probe
from virtio_lab.hw import qemu_names
from virtio_lab.hw.devices import MODELS, supported_types
from virtio_lab.hw.plug import plug
from virtio_lab.hw.virtio_pci import PlugError

DATA = Path(__file__).parent / "data"
INDEXES = DATA / "functions"
CORPUS = DATA / "qemu-7.2-local"
MACHINES = (("pc", False), ("q35", False), ("q35", True))

#: source paths of the guest side, by the project they belong to
_LINUX = ("drivers/", "include/linux/", "kernel/", "init/", "arch/", "lib/")
_SEABIOS = ("src/",)


@lru_cache(maxsize=None)
def index(name: str) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for line in (INDEXES / f"{name}.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            path, _, fns = line.partition(": ")
            out[path] = frozenset(fns.split())
    return out


def index_for(source: str, release: str = qemu_names.DEFAULT_RELEASE) -> str:
    if source.startswith(_SEABIOS):
        return "seabios-1.16"
    if source.startswith(_LINUX):
        return "linux-6.1"
    return f"qemu-{release}"


def missing(cites: dict[tuple[str, str], str]) -> list[str]:
    """The cites (file, function) -> an example that the indexes do not hold."""
    bad = []
    for (source, function), where in sorted(cites.items()):
        if function not in index(index_for(source)).get(source, ()):
            bad.append(f"{source}:{function}  (e.g. {where})")
    return bad


def _corpus_specs() -> list[tuple[str, str, bool]]:
    out = []
    for f in sorted(CORPUS.glob("*.json")):
        case = json.loads(f.read_text())
        out.append((case["device"], case["machine"], bool(case["root_port"])))
    return out


@lru_cache(maxsize=1)
def plug_cites() -> dict[tuple[str, str], str]:
    cites: dict[tuple[str, str], str] = {}
    for spec, machine, rp in _corpus_specs():
        try:
            trace = plug(spec, machine, rp)
        except PlugError as err:
            trace = err.trace
        except VirtioLabError:
            continue  # refused before any plug (bad input): no event to check
        for e in trace.events:
            cites.setdefault((e.source, e.function), f"{spec} on {machine}{'+rp' if rp else ''}, "
                                                     f"event {e.index}")
    return cites


@lru_cache(maxsize=1)
def probe_cites() -> dict[tuple[str, str], str]:
    cites: dict[tuple[str, str], str] = {}
    for t in sorted(supported_types()):
        for extra in ("", ",disable-modern=on", ",disable-legacy=on", ",vectors=0"):
            for machine, rp in MACHINES:
                try:
                    result = probe(t + extra, machine, rp)
                except VirtioLabError:
                    continue  # QEMU refuses this one: the plug test covers its events
                for e in result.trace.events:
                    cites.setdefault((e.source, e.function), f"probe {t}{extra} on {machine}"
                                                             f"{'+rp' if rp else ''}, event {e.index}")
    return cites


def test_the_corpus_covers_every_model_machine_and_refusals():
    specs = _corpus_specs()
    types = supported_types()
    families = {types[s.split(",")[0]].model.name for s, _, _ in specs if s.split(",")[0] in types}
    assert families == set(MODELS)
    assert {(m, rp) for _, m, rp in specs} == set(MACHINES)
    refused = 0
    for spec, machine, rp in specs:
        try:
            plug(spec, machine, rp)
        except PlugError:
            refused += 1
        except VirtioLabError:
            pass
    assert refused >= 40  # of the corpus's 72 refusals; the others are refused while parsing


def test_every_plug_citation_is_a_function_of_that_file_in_qemu_7_2():
    cites = plug_cites()
    assert len(cites) > 60
    assert missing(cites) == []


def test_every_guest_citation_is_a_function_of_that_file():
    cites = probe_cites()
    assert any(s.startswith("drivers/virtio/") for s, _ in cites)
    assert any(s.startswith("src/fw/") for s, _ in cites)
    assert missing(cites) == []


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_model_cites_its_own_code_from_qemu_7_2(name):
    """The backend data on each DeviceModel (not names derived from the type)."""
    code = MODELS[name].code
    qemu = index("qemu-7.2")
    for source, function in (code.instance_init, code.wrapper, code.realize, code.get_features):
        assert function in qemu.get(source, ()), f"{name}: {source}:{function}"


@pytest.mark.parametrize("release", qemu_names.RELEASES)
def test_renamed_functions_exist_in_their_release(release):
    """Each row of the release table: 7.2's name in 7.2, the release's name in the release."""
    for (src72, fn72), (src, fn) in qemu_names.RENAMED[release].items():
        assert fn72 in index("qemu-7.2").get(src72, ()), f"{src72}:{fn72} is not 7.2's"
        assert fn in index(f"qemu-{release}").get(src, ()), f"{src}:{fn} is not {release}'s"


def test_qbus_is_named_as_each_release_names_it():
    """virtio_pci_bus_new calls qbus_init in 7.2 and 10.0, qbus_create_inplace in 5.2."""
    for release, name in (("5.2", "qbus_create_inplace"), ("7.2", "qbus_init"), ("10.0", "qbus_init")):
        source, fn = qemu_names.cite("hw/core/bus.c", "qbus_init", release)
        assert fn == name and fn in index(f"qemu-{release}")[source]
    assert "qbus_create_inplace" not in index("qemu-7.2")["hw/core/bus.c"]  # 5.2 has a static qbus_init


def test_index_files_hold_only_names():
    """Facts only: a header, then 'path: name name ...' lines of C identifiers."""
    import re
    for f in sorted(INDEXES.glob("*.txt")):
        for line in f.read_text().splitlines():
            if line.startswith("#"):
                continue
            path, sep, names = line.partition(": ")
            assert sep and re.fullmatch(r"[\w./+-]+\.[ch]", path), (f.name, line[:80])
            assert all(re.fullmatch(r"[A-Za-z_]\w*", n) for n in names.split()), (f.name, path)


def test_the_index_builder_finds_definitions_not_calls_or_macros(tmp_path):
    """make_index.py on a small C file written here (not QEMU's)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_index", INDEXES / "make_index.py")
    mi = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mi)
    src = """
    #define not_a_function(x) do { f(x); } while (0)
    static int declared_only(int a);
    /* static void in_a_comment(void) { } */
    static const char *s = "static void in_a_string(void) { }";
    struct s { int a; };
    #if 0
    static void compiled_out(void) { }
    #else
    static void the_else_branch(void) { }
    #endif
    static PCIDevice *returns_pointer(PCIBus *bus,
                                      int devfn)
    {
        if (devfn) { call_inside(); }
        return NULL;
    }
    void G_GNUC_PRINTF(2, 3) annotated_before(void *v, const char *fmt, ...)
    {
    }
    static void annotated_after(void) __attribute__((unused)) { }
    int __pci_read_base(struct pci_dev *dev) { return 0; }
    """
    assert mi.functions(src) == ["the_else_branch", "returns_pointer", "annotated_before",
                                 "annotated_after", "__pci_read_base"]
