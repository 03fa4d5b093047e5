"""HTML for :class:`virtio_lab.live.guest.probe.ProbeResult`: what the guest left, then the last step."""

from __future__ import annotations

from ..hw.guest_access import status_text
from ._common import esc
from .step import step_html

__all__ = ["probe_html"]


def probe_html(result) -> str:
    """What the guest left (a small table), then the views of the trace's last step."""
    j = result.to_json()
    rows = [("status", status_text(result.status)), ("driver", result.linux.driver or "none in this guest"),
            ("driver features", j["driver_features"]), ("Command", f"0x{result.command:04x}"),
            ("MSI-X", f"enabled, {result.vectors_used} vectors" if result.msix_enabled else "off (INTx)"),
            ("interrupt line", str(result.interrupt_line)),
            ("BARs", ", ".join(f"BAR{b['index']} 0x{b['address']:x}" for b in result.bars)),
            ("ROM", f"0x{result.rom_address:x}" if result.rom_address else "none")]
    table = "".join(f"<tr><th style='text-align:left'>{esc(k)}</th><td><code>{esc(v)}</code></td></tr>"
                    for k, v in rows)
    return (f"<div><p><b>{esc(result.spec)}</b> on {esc(result.machine.label)} after SeaBIOS and "
            f"Linux 6.1: {len(result.guest_events)} guest events</p><table>{table}</table>"
            + step_html(result.trace, len(result.trace) - 1) + "</div>")
