"""The plugged device in the oracle's JSON schema (what `python -m virtio_lab dump --json` prints).

The same fields a probe of real QEMU 7.2 over qtest yields (see tests/data/qemu-7.2),
computed from a trace's final state, with observable values computed the way the
probe observes them (e.g. the write mask by writing 0xff and 0x00 byte by byte).
"""

from __future__ import annotations

from typing import Any

from ..errors import VirtioLabError
from ..hw.devices import VIRTIO_LEGACY_FEATURES, model_for
from ..hw.plug import Trace, plug
from ..hw.state import PlugState
from ..pci import regs
from ..pci.access import ConfigAccess

__all__ = ["dump", "observed_wmask", "PROBE_SKIP"]

#: bytes a write-probe must not touch: the BARs and the ROM BAR (their sizing is separate)
PROBE_SKIP = frozenset(range(0x10, 0x28)) | frozenset(range(0x30, 0x34))


def observed_wmask(state: PlugState, flr: bool) -> tuple[bytes, bytes]:
    """Probe each byte as a guest would (write 0xff, read, write 0, read, restore).

    Returns (observed wmask, config after the probe). Bits that self-clear (FLR)
    read back 0, which is why an observed mask can differ from QEMU's internal one.
    """
    acc = ConfigAccess(state, flr=flr)
    skip = set(PROBE_SKIP)
    for cap in state.caps:
        if cap.id == regs.CapID.VNDR and cap.get("cfg_type") == regs.VirtioCfgType.PCI_CFG:
            skip |= set(range(cap.offset + 16, cap.offset + 20))
    out = bytearray(256)
    for i in range(256):
        if i in skip:
            continue
        saved = acc.config_read(i, 1)
        acc.config_write(i, 0xFF, 1)
        ones = acc.config_read(i, 1)
        acc.config_write(i, 0x00, 1)
        zeros = acc.config_read(i, 1)
        acc.config_write(i, saved, 1)
        out[i] = ones & ~zeros & 0xFF
    return bytes(out), bytes(acc.config[:256])


def _words(features: int) -> list[str]:
    return [f"0x{(features >> (32 * i)) & 0xFFFFFFFF:08x}" for i in range(4)]


def dump(source: Trace | str, machine: str = "pc", root_port: bool = False,
         qemu: str | None = None) -> dict[str, Any]:
    """The final state of a plug as a dict in the oracle's schema.

    A spec QEMU refuses gives ``{"error": message}``.
    """
    try:
        trace = source if isinstance(source, Trace) else plug(source, machine, root_port, qemu)
    except VirtioLabError as err:
        return {"error": str(err)}
    st = trace.final
    f = st.facts
    model = model_for(trace.spec.type).model
    flr = bool(trace.spec.value("x-pcie-flr-init"))
    wmask, after = observed_wmask(st, flr)
    out: dict[str, Any] = {
        "device": trace.spec.text,
        "machine": trace.machine.name,
        "root_port": trace.machine.root_port,
        "qemu": trace.qemu,
        "machine_type": trace.machine.type,
        "config": st.config[:256].hex(),
    }
    if trace.machine.name == "q35":
        if f.config_size > 256:
            out["config_ext"] = st.config[:4096].hex()
        else:
            out["config_ext"] = (st.config[:256] + b"\xff" * (4096 - 256)).hex()
        out["ext_caps"] = [c.as_dict() for c in st.ext_caps] if f.config_size > 256 else []
    out["wmask"] = wmask.hex()
    out["config_after_wmask_probe"] = after.hex()
    out["bars"] = [b.as_dict() for b in f.bars if b.index < regs.PCI_ROM_SLOT]
    rom = f.bar(regs.PCI_ROM_SLOT)
    out["rom_size"] = rom.size if rom else 0
    out["caps"] = [c.as_dict() for c in st.caps]
    proxy_queues = _queues(trace)
    if f.modern:
        hidden = VIRTIO_LEGACY_FEATURES | model.legacy_features
        out["common_cfg"] = {
            "device_feature": _words(f.host_features & ~hidden),
            "msix_config": regs.VIRTIO_NO_VECTOR,
            "num_queues": len(proxy_queues),
            "device_status": 0,
            "config_generation": 0,
            "queues": [{"size": q, "msix_vector": regs.VIRTIO_NO_VECTOR, "enable": 0, "notify_off": i}
                       for i, q in enumerate(proxy_queues)],
        }
        known, length = _device_config(trace)
        cfg = known if len(known) < length else known[:length] + b"\xff" * (256 - length)
        out["device_cfg"] = cfg.hex()
    else:
        out["common_cfg"] = None
        out["device_cfg"] = None
    # The probe reads the legacy QUEUE_NUM after walking the modern queues, so the
    # queue select register still points at the last queue when modern is on.
    selected = (proxy_queues[-1] if f.modern else proxy_queues[0]) if proxy_queues else 0
    out["legacy"] = ({"host_features": f"0x{f.host_features & 0xFFFFFFFF:08x}",
                      "queue_num_q0": selected, "isr": None} if f.legacy else None)
    return out


def _queues(trace: Trace) -> list[int]:
    for ev in trace.events:
        q = ev.detail("queues")
        if q is not None:
            return list(q)
    return []


def _device_config(trace: Trace) -> tuple[bytes, int]:
    info = model_for(trace.spec.type)
    length = next((ev.detail("config_len") for ev in trace.events if ev.detail("config_len") is not None), 0)
    return info.model.device_config(trace.spec), length
