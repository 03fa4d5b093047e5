"""plug(): run a QEMU release's plug path (5.2, 7.2 or 10.0) for one device on one machine and
return its trace.

The trace's roots are the two things qdev_device_add (softmmu/qdev-monitor.c) does to a
-device: create the object (qdev_new runs the type's instance_init, then the machine type's
compat properties reach it) and realize it (qdev_realize)."""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property, lru_cache

from ..errors import VirtioLabError
from ..trace import SPACES, Event, Tracer
from .devices import model_for, supported_types
from .compat import device_globals
from .machine import Machine
from .qemu_names import names_of
from .release import DEFAULT_RELEASE, release
from .spec import DeviceSpec, parse_spec, parse_value, type_properties
from .state import Facts, PlugState, TreeNode
from .virtio_pci import PlugError, VirtIOPCIProxy

__all__ = ["Trace", "plug", "resolve", "StepError"]

class StepError(VirtioLabError, IndexError):
    """A step outside the trace (an IndexError too, so ``trace.state_at`` indexes like a list)."""


class Trace:
    """The ordered events of one plug, and the state after any of them.

    ``state_at(i)`` replays the writes of events 0..i onto zeroed arrays; a few
    checkpoints keep that cheap, so stepping back and forth is indexing.
    """

    def __init__(self, spec: DeviceSpec, machine: Machine, events: tuple[Event, ...],
                 size: int, error: VirtioLabError | None = None):
        self.spec = spec
        self.machine = machine
        self.events = events
        self.size = size
        self.error = error
        self._cache: dict[int, dict[str, bytes]] = {}

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, i: int) -> Event:
        return self.events[i]

    def __iter__(self):
        return iter(self.events)

    @property
    def qemu(self) -> str:
        """The QEMU release this plug models."""
        return self.machine.qemu

    def __repr__(self) -> str:
        release = "" if self.qemu == DEFAULT_RELEASE else f" (QEMU {self.qemu})"
        return (f"<Trace {self.spec.text!r} on {self.machine.label}{release}: {len(self.events)} events"
                f"{', refused' if self.error else ''}>")

    def _arrays_at(self, i: int) -> dict[str, bytes]:
        if i in self._cache:
            return self._cache[i]
        start = max((k for k in self._cache if k < i), default=-1)
        base = self._cache[start] if start >= 0 else {n: bytes(self.size) for n in SPACES}
        writes = [w for ev in self.events[start + 1:i + 1] for w in ev.writes]
        frozen = dict(base)  # arrays no write touched stay shared with the earlier step
        for name in {w.space for w in writes} & base.keys():  # device memory ("ram") is not PCI state
            arr = bytearray(base[name])
            for w in writes:
                if w.space == name:
                    arr[w.offset:w.offset + w.width] = w.new
            frozen[name] = bytes(arr)
        self._cache[i] = frozen
        return frozen

    def state_at(self, i: int) -> PlugState:
        """The device as it stands after event ``i`` (negative indexes count from the end)."""
        if not self.events:
            raise StepError("empty trace: nothing was plugged")
        if not isinstance(i, int) or isinstance(i, bool):
            raise StepError(f"a step is an event index (an integer), not {type(i).__name__}")
        n = len(self.events)
        if not -n <= i < n:
            raise StepError(f"step {i} is outside 0..{n - 1}")
        if i < 0:
            i += n
        a = self._arrays_at(i)
        return PlugState(a["config"], a["wmask"], a["w1cmask"], a["cmask"], a["used"],
                         self.events[i].facts, i)

    @cached_property
    def final(self) -> PlugState:
        return self.state_at(len(self.events) - 1)

    def index_of(self, function: str, start: int = 0) -> int:
        """The first event at or after ``start`` whose QEMU function is ``function``, by any
        modelled release's name for it (``qbus_create_inplace`` finds 7.2's ``qbus_init``)."""
        names = names_of(function)
        for ev in self.events[start:]:
            if ev.function in names:
                return ev.index
        raise VirtioLabError(f"no step calls {function}; the trace has: "
                             f"{', '.join(sorted({e.function for e in self.events}))}")

    @property
    def functions(self) -> tuple[str, ...]:
        return tuple(e.function for e in self.events)

    def narrate(self) -> str:
        """One line per event: step, indentation by call depth, QEMU function, explanation."""
        lines = []
        for e in self.events:
            w = sum(1 for x in e.writes if x.space == "config")
            tag = f" [{w} config write{'s' if w != 1 else ''}]" if w else ""
            lines.append(f"{e.index:3d} {'  ' * e.depth}{e.function}{' (cont.)' if e.continued else ''}: "
                         f"{e.explanation}{tag}")
        return "\n".join(lines)


@lru_cache(maxsize=1)
def _types() -> dict:
    return supported_types()


@lru_cache(maxsize=1)
def _type_names() -> tuple[str, ...]:
    return tuple(sorted(_types()))


@lru_cache(maxsize=512)
def _parse(text: str, machine: Machine) -> DeviceSpec:
    """parse_spec is pure and DeviceSpec is frozen, so a spec parsed once is reused."""
    return parse_spec(text, _type_names(), machine, machine.qemu)


@lru_cache(maxsize=1024)
def _machine_globals(qemu: str, machine_type: str, type_name: str,
                     vdev_type: str) -> tuple[tuple[str, object, str], ...]:
    """The machine type's compat properties for one device type, typed like -device
    options: ``(property, value, "pc-i440fx-5.2 (hw_compat_5_2)")``."""
    props = type_properties(type_name, qemu)
    out = []
    for g in device_globals(qemu, machine_type, type_name, vdev_type):
        prop = props.get(g.property)
        if prop is None:  # the type has no such property (an optional global)
            continue
        out.append((g.property, parse_value(prop, g.value, qemu=qemu), f"{machine_type} ({g.array})"))
    return tuple(out)


def _pci_qdev_realize(proxy: VirtIOPCIProxy, tracer: Tracer, ds: DeviceSpec, m: Machine) -> None:
    """hw/pci/pci.c: pci_qdev_realize, virtio_pci_dc_realize's parent realize."""
    with tracer.call("pci_qdev_realize", "hw/pci/pci.c",
                     "The generic PCI realize: register the device on its bus, run the "
                     "class realize (virtio_pci_realize), then add the option ROM."):
        romsize = ds.value("romsize")
        # is_power_of_2: zero is not one
        if romsize not in (None, 0xFFFFFFFF) and (romsize == 0 or romsize & (romsize - 1)):
            proxy.fail(f"ROM size {romsize} is not a power of two")
        proxy.do_pci_register_device(m.slot_conflict(ds.type))
        proxy.virtio_pci_realize()
        if ds.value("failover_pair_id") is not None:
            proxy.failover_check(m.slot_devfn)
        proxy.pci_add_option_rom()


def resolve(spec: str | DeviceSpec, machine: str | Machine = "pc", root_port: bool = False,
            qemu: str | None = None) -> tuple[DeviceSpec, Machine]:
    """The parsed spec (with its machine type's compat properties) and the machine."""
    if isinstance(machine, Machine):
        if qemu is not None and release(qemu).version != machine.qemu:
            raise VirtioLabError(f"qemu={qemu} but the Machine is QEMU {machine.qemu}'s: "
                                 f"give one of them")
        m = machine
    else:
        m = Machine(machine, root_port, qemu=DEFAULT_RELEASE if qemu is None else qemu)
    if isinstance(spec, DeviceSpec):
        ds = spec if spec.qemu == m.qemu else _parse(spec.text, m)
    elif isinstance(spec, str):
        ds = _parse(spec, m)
    else:
        ds = parse_spec(spec, _type_names(), m, m.qemu)
    info = _types().get(ds.type) or model_for(ds.type)
    return ds.with_globals(_machine_globals(m.qemu, m.type, ds.type, info.model.vdev_type)), m


def _apply_globals(tracer: Tracer, ds: DeviceSpec, m: Machine) -> None:
    """hw/core/qdev.c: device_post_init -> qdev_prop_set_globals: the machine type's compat
    properties reach the new device (and its virtio child) before the -device options do."""
    if not ds.globals:
        return
    shown = ", ".join(f"{name}={_show(value)} ({where.split(' ', 1)[1].strip('()')})"
                      for name, value, where in ds.globals)
    mine = [name for name, _, _ in ds.globals if ds.has(name)]
    with tracer.call("object_apply_global_props", "qom/object.c",
                     f"Machine type {m.type} keeps QEMU {m.type_version}'s defaults for this "
                     f"device: it sets {shown}"
                     + (f"; the spec's own {', '.join(mine)} {'wins' if len(mine) == 1 else 'win'}"
                        if mine else "")
                     + ". (Its compat properties apply to a type and every type derived from it.)",
                     globals=tuple((name, where) for name, _, where in ds.globals)):
        pass


def _show(value: object) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def plug(spec: str | DeviceSpec, machine: str | Machine = "pc", root_port: bool = False,
         qemu: str | None = None) -> Trace:
    """Plug one virtio-pci device the way QEMU ``qemu`` (5.2, 7.2 or 10.0; default 7.2)
    does and record every step.

    ``spec`` is a ``-device`` string (``"virtio-net-pci,disable-legacy=on"``); ``machine``
    is ``pc``, ``q35`` (the release's newest machine types) or a versioned type such as
    ``pc-q35-7.2``, whose compat properties then set the defaults.
    Raises :class:`~virtio_lab.errors.VirtioLabError` for bad input; a combination
    QEMU refuses raises :class:`PlugError` with QEMU's message and ``.trace`` set to
    the events up to the refusal.
    """
    ds, m = resolve(spec, machine, root_port, qemu)
    info = _types().get(ds.type) or model_for(ds.type)
    if ds.value("bus") is not None:
        m.check_bus(ds.value("bus"))
    if ds.value("addr") not in (None, -1):
        m = replace(m, devfn=ds.value("addr"))
    tracer = Tracer(Facts())
    proxy = VirtIOPCIProxy(info, ds, tracer, bus_path=m.bus_path, pcie_port=m.pcie_port,
                           bus_is_express=m.bus_is_express, bdf=m.bdf, release=m.qemu,
                           machine_type=m.type)
    try:
        proxy.instance_init()
        _apply_globals(tracer, ds, m)
        with tracer.call("qdev_realize", "hw/core/qdev.c",
                         f"qdev_device_add puts {ds.type} on {m.bus_path} (slot {m.bdf}) and sets "
                         f"its realized property to true."):
            tracer.set_facts(tracer.facts.evolve(tree=tracer.facts.tree + (
                TreeNode(f"{m.bus_path}/{ds.type}", "device", ds.type, f"virtio-pci proxy at {m.bdf}"),)))
            with tracer.call("device_set_realized", "hw/core/qdev.c",
                             f"The realized setter: "
                             + ("the machine's hotplug handler checks the device first, then "
                                if info.model.pre_plug is not None else "")
                             + f"the class realize runs, virtio_pci_dc_realize → pci_qdev_realize "
                               f"→ virtio_pci_realize."):
                if info.model.pre_plug is not None:
                    proxy.memory_device_pre_plug()
                proxy.virtio_pci_dc_realize(lambda: _pci_qdev_realize(proxy, tracer, ds, m))
    except PlugError as err:
        err.trace = Trace(ds, m, tracer.close(), proxy.cs.size if proxy.cs else 256, err)
        raise
    return Trace(ds, m, tracer.close(), proxy.cs.size)
