"""probe(): the guest's side of a plug — SeaBIOS 1.16, then Debian 12's Linux 6.1 drivers.

    >>> import virtio_lab
    >>> r = virtio_lab.probe("virtio-net-pci")
    >>> r.status, r.driver_features, r.vectors_used
    (15, '0x10130af8024', 3)

The plug's trace is continued, event by event: the firmware step
(:mod:`virtio_lab.guest.firmware`), then the kernel (:mod:`virtio_lab.guest.driver`), every
guest access going through :class:`~virtio_lab.hw.guest_access.GuestDevice`.
``to_json()`` gives what a real guest leaves behind, in the fields of the guest
captures (``tests/data/guest``, :data:`virtio_lab.live.guest.COMPARED_FIELDS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import VirtioLabError
from ..hw.guest_access import GuestDevice, status_text
from ..hw.machine import Machine
from ..hw.plug import Trace, plug
from ..pci import regs
from .driver import LinuxResult, linux_probe
from .firmware import (
    Placement,
    option_rom_setup,
    pci_setup,
    seabios_drives,
    seabios_virtio,
)

__all__ = ["probe", "probe_json", "boot", "ProbeResult", "with_default_backend"]

#: Backends a model cannot start without, with the ids the guest captures use.
DEFAULT_BACKENDS = {"drive": "drive=d0", "fsdev": "fsdev=fs0,mount_tag=share",
                    "cryptodev": "cryptodev=cr0", "memdev": "memdev=mem0"}


def with_default_backend(spec: str) -> str:
    """Add the backend option a model needs when the spec leaves it out (as the guest kit does)."""
    from ..hw.plug import _types
    type_name = spec.split(",", 1)[0]
    info = _types().get(type_name)
    backend = info.model.backend if info else ""
    given = {p.split("=", 1)[0] for p in spec.split(",")[1:]}
    extra = DEFAULT_BACKENDS.get(backend, "")
    if not extra or backend in given:
        return spec
    return ",".join([spec] + [o for o in extra.split(",") if o.split("=", 1)[0] not in given])


@dataclass
class ProbeResult:
    """The device after firmware and driver: bytes, addresses, virtio state, and the events."""

    trace: Trace  # the plug's events followed by the guest's
    first_guest_event: int
    config: bytes
    placement: Placement
    linux: LinuxResult
    status: int
    bars: list[dict[str, Any]] = field(default_factory=list)
    notify: dict[str, Any] | None = None
    device: GuestDevice | None = field(default=None, repr=False)  # keep poking the device from here

    @property
    def spec(self) -> str:
        return self.trace.spec.text

    @property
    def machine(self) -> Machine:
        return self.trace.machine

    @property
    def command(self) -> int:
        return int.from_bytes(self.config[regs.PCI_COMMAND:regs.PCI_COMMAND + 2], "little")

    @property
    def interrupt_line(self) -> int:
        return self.config[regs.PCI_INTERRUPT_LINE]

    @property
    def rom_address(self) -> int | None:
        reg = int.from_bytes(self.config[regs.PCI_ROM_ADDRESS:regs.PCI_ROM_ADDRESS + 4], "little")
        return reg & ~0x7FF or None

    @property
    def msix_enabled(self) -> bool:
        cap = next((c.offset for c in _caps(self.config) if c.id == regs.CapID.MSIX), 0)
        return bool(cap) and bool(self.config[cap + 3] & 0x80)

    @property
    def driver_features(self) -> str:
        return f"0x{self.linux.features:x}"

    @property
    def vectors_used(self) -> int:
        return self.linux.vectors_used if self.msix_enabled else 0

    @property
    def guest_events(self) -> tuple:
        return self.trace.events[self.first_guest_event:]

    def to_json(self) -> dict[str, Any]:
        """The guest captures' comparable fields (plus the queue-0 notify address)."""
        return {
            "config": self.config.hex(),
            "bars": self.bars,
            "rom_address": self.rom_address,
            "command": self.command,
            "interrupt_line": self.interrupt_line,
            "msix_enabled": self.msix_enabled,
            "status": self.status,
            "driver_features": self.driver_features,
            "vectors_used": self.vectors_used,
            "driver": self.linux.driver,
            "notify": self.notify,
        }

    as_dict = to_json

    def narrate(self) -> str:
        """One line per guest event (firmware and kernel), indented by call depth."""
        lines = event_lines(self.guest_events, "config")
        lines.append(f"=> {self.spec} on {self.machine.label}: status {status_text(self.status)}, "
                     f"driver {self.linux.driver or 'none'}, features {self.driver_features}, "
                     f"{'MSI-X with ' + str(self.vectors_used) + ' vectors' if self.msix_enabled else 'INTx'}, "
                     f"Command 0x{self.command:04x}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<ProbeResult {self.spec!r} on {self.machine.label}: status {status_text(self.status)}, "
                f"{len(self.guest_events)} guest events>")


def event_lines(events, space: str, width: int = 4) -> list[str]:
    """One line per event, indented by call depth, with how many ``space`` writes it made."""
    lines = []
    for e in events:
        w = sum(1 for x in e.writes if x.space == space)
        tag = f" [{w} {space} write{'s' if w != 1 else ''}]" if w else ""
        lines.append(f"{e.index:{width}d} {'  ' * e.depth}{e.function}: {e.explanation}{tag}")
    return lines


def _caps(config: bytes):
    from ..pci.capability import walk_capabilities
    return walk_capabilities(config[:256])


def probe(trace_or_spec: Trace | str, machine: str = "pc", root_port: bool = False,
          qemu: str | None = None) -> ProbeResult:
    """Run the guest's side of a plug: SeaBIOS 1.16's PCI setup, then Linux 6.1's virtio probe.

    ``trace_or_spec`` is a plug trace or a ``-device`` spec (a model's missing backend is
    added the way the guest kit does, e.g. ``drive=d0``). Raises
    :class:`~virtio_lab.errors.VirtioLabError` for bad input or a plug QEMU refuses.
    """
    if isinstance(trace_or_spec, Trace):
        trace = trace_or_spec
        if trace.error is not None:
            raise VirtioLabError(f"the plug was refused ({trace.error}): there is no device to probe")
    elif isinstance(trace_or_spec, str):
        trace = plug(with_default_backend(trace_or_spec.strip()), machine, root_port, qemu)
    else:
        raise VirtioLabError(f"probe takes a plug trace or a -device spec, not {type(trace_or_spec).__name__}")
    m = trace.machine
    _check_firmware(trace.qemu)
    dev = GuestDevice(trace)
    first = len(dev.tracer.events)
    placement, lx = boot(dev)
    events = dev.tracer.close()
    full = Trace(trace.spec, m, events, trace.size)
    config = bytes(dev.config[:lx.cfg_size])
    bars = _bars(dev, config)
    return ProbeResult(full, first, config, placement, lx, dev.vdev.status, bars, _notify(dev, bars), dev)


def _check_firmware(qemu: str) -> None:
    """The guest side models SeaBIOS 1.16 (7.2 runs Debian's 1.16.2, 10.0 1.16.3); 5.2 runs
    SeaBIOS 1.14.0, whose PCI setup virtio_lab does not model: say so, do not guess."""
    from ..hw.release import release
    rel = release(qemu)
    if not rel.seabios.startswith("1.16"):
        raise VirtioLabError(f"the guest side models SeaBIOS 1.16 and Linux 6.1; QEMU {rel.version} "
                             f"runs SeaBIOS {rel.seabios}, which virtio_lab does not model",
                             "probe --qemu 7.2 or 10.0; the plug itself (plug, dump, lspci) "
                             f"models {rel.version}")


def boot(dev: GuestDevice) -> tuple[Placement, LinuxResult]:
    """Firmware then kernel on one device: SeaBIOS's pci_setup, its own virtio driver or the
    device's option ROM, then Linux 6.1 (every access recorded on ``dev.tracer`` if recording)."""
    m = dev.trace.machine
    placement = pci_setup(dev, m.name, m.root_port)
    kind = seabios_drives(dev)
    if kind:
        seabios_virtio(dev, kind)
    else:
        option_rom_setup(dev, m.root_port)
    return placement, linux_probe(dev, m.name)


def _notify(dev: GuestDevice, bars: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Queue 0's notify address: BAR base + cap offset + queue_notify_off x multiplier.

    Read the way the guest kit reads it (the first NOTIFY cap with a real BAR; queue_select
    0, then queue_notify_off), on the side: not recorded, queue_select restored.
    """
    cap = next((c for c in dev.caps if c.id == regs.CapID.VNDR
                and c.get("cfg_type") == regs.VirtioCfgType.NOTIFY_CFG and c.get("bar", 6) < 6), None)
    if cap is None:
        return None
    base = next((b["address"] for b in bars if b["index"] == cap.get("bar")), None)
    if base is None:
        return None
    record, dev.record = dev.record, False
    try:
        sel = dev.vdev.queue_sel
        dev.common_write("queue_select", 0)
        off = dev.common_read("queue_notify_off")
        dev.vdev.queue_sel = sel
    finally:
        dev.record = record
    mult = cap.get("notify_off_multiplier") or 0
    return {"bar": cap.get("bar"), "offset": cap.get("cap_offset"), "length": cap.get("length"),
            "multiplier": mult, "queue0_notify_off": off,
            "queue0_address": base + cap.get("cap_offset") + off * mult}


def _bars(dev: GuestDevice, config: bytes) -> list[dict[str, Any]]:
    out = []
    for b in dev.facts.bars:
        if b.index == regs.PCI_ROM_SLOT:
            continue
        off = regs.PCI_BASE_ADDRESS_0 + 4 * b.index
        reg = int.from_bytes(config[off:off + 4], "little")
        if b.kind == "io":
            addr = reg & ~3
        else:
            addr = reg & ~0xF
            if b.kind == "mem64":
                addr |= int.from_bytes(config[off + 4:off + 8], "little") << 32
        out.append({"index": b.index, "kind": b.kind, "address": addr, "size": b.size,
                    "prefetchable": b.prefetchable})
    return out


def probe_json(spec: str, machine: str = "pc", root_port: bool = False) -> dict[str, Any]:
    """``probe(spec, machine, root_port).to_json()``."""
    return probe(spec, machine, root_port).to_json()
