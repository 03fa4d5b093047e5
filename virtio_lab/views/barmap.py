"""BAR maps: each BAR as a strip drawn to scale, with the regions that live inside it.

BAR4 (modern memory) holds the common/isr/device/notify windows at the offsets the
vendor capabilities announce; BAR1 holds the MSI-X table and PBA; BAR0 (legacy I/O)
holds the legacy virtio header. The table under each strip names the capability
that describes each region and says whether the two agree. ``draw_bar_map(ax, ...)``
draws the same with matplotlib (imported only when called).
"""

from __future__ import annotations

from typing import Any

from ..errors import VirtioLabError
from ..pci import regs
from ..pci.capability import walk_capabilities
from ._common import ROLE_TINT, esc, human_size, resolve, style_tag

__all__ = ["bar_map_html", "BarMap", "draw_bar_map", "region_windows", "LEGACY_FIELDS", "MATPLOTLIB_MISSING"]

#: what a figure cell says where matplotlib is not installed (JupyterLite, a bare venv)
MATPLOTLIB_MISSING = ("matplotlib is not installed here (JupyterLite ships without it), so there is "
                      "no figure: BarMap(...) shows the same BARs, drawn to scale, as HTML")

_KIND = {"io": "I/O", "mem32": "32-bit memory", "mem64": "64-bit memory", "rom": "expansion ROM"}
_ROLE_CFG = {"common": 1, "notify": 2, "isr": 3, "device": 4}

#: the legacy virtio header in BAR0 (virtio 0.9.5 / spec 4.1.4.8): offset, width, name
LEGACY_FIELDS = ((0, 4, "host features"), (4, 4, "guest features"), (8, 4, "queue address (PFN)"),
                 (12, 2, "queue size"), (14, 2, "queue select"), (16, 2, "queue notify"),
                 (18, 1, "device status"), (19, 1, "ISR status"),
                 (20, 2, "config MSI-X vector"), (22, 2, "queue MSI-X vector"))


def _bar_name(i: int) -> str:
    return "ROM BAR" if i == regs.PCI_ROM_SLOT else f"BAR{i}"


def _bar_cfg_range(b) -> str:
    off = regs.PCI_ROM_ADDRESS if b.index == regs.PCI_ROM_SLOT else 0x10 + 4 * b.index
    end = off + (7 if b.kind == "mem64" else 3)
    return f"config 0x{off:02x}–0x{end:02x}"


def region_windows(state) -> list[tuple[str, int, int, int]]:
    """What the capabilities announce: (role, bar, offset, length) per virtio window and MSI-X part."""
    out = []
    for cap in walk_capabilities(bytes(state.config[:256])).caps:
        f = dict(cap.fields)
        if cap.id == regs.CapID.VNDR and f.get("cfg_type") in (1, 2, 3, 4):
            role = {v: k for k, v in _ROLE_CFG.items()}[f["cfg_type"]]
            out.append((role, f["bar"], f["cap_offset"], f["length"]))
        elif cap.id == regs.CapID.MSIX:
            out.append(("msix-table", f["table_bir"], f["table_offset"], f["table_size"] * 16))
            out.append(("msix-pba", f["pba_bir"], f["pba_offset"], (f["table_size"] + 63) // 64 * 8))
    return out


def _describer(windows, bar: int, r) -> str:
    for role, b, off, length in windows:
        if (role == r.role or (role, r.role) == ("notify", "notify-pio")) and b == bar and off == r.offset:
            if True:
                ok = "✓ matches" if length == r.size else f"✗ length 0x{length:x} ≠ region 0x{r.size:x}"
                return f"capability: BAR{b} at 0x{off:x}, length 0x{length:x} {ok}"
    if r.role in ("common", "isr", "device", "notify", "notify-pio", "msix-table", "msix-pba"):
        return "no capability announces it yet"
    return ""


def bar_map_html(source: Any, step: int | None = None, *, select: Any = None, css: bool = True) -> str:
    """Render every registered BAR of a trace at ``step`` (default: last) or of a state.

    Each region carries ``data-bar``, ``data-role``, ``data-offset`` and ``data-size``.
    """
    state, ev, _ = resolve(source, step)
    windows = region_windows(state)
    new_bar = ev.detail("bar") if ev is not None and ev.function == "pci_register_bar" else None
    notify_mult = next((c.get("notify_off_multiplier") for c in walk_capabilities(bytes(state.config[:256])).caps
                        if c.get("notify_off_multiplier") is not None), None)
    out = [style_tag() if css else "", '<div class="vl vl-bars">']
    if not state.facts.bars:
        out.append('<div class="vl-arrow">(no BARs registered yet)</div>')
    for b in state.facts.bars:
        flags = []
        if b.kind == "mem64":
            flags.append("64-bit")
        if b.prefetchable:
            flags.append("prefetchable")
        badge = '<span class="vl-badge">NEW</span>' if new_bar == b.index else ""
        out.append(f'<div class="vl-bar" data-bar-index="{b.index}"><div><b>{_bar_name(b.index)}</b> · '
                   f'{_KIND.get(b.kind, esc(b.kind))}{" · " + ", ".join(flags) if flags else ""} · '
                   f'<b>{human_size(b.size)}</b> ({b.size} bytes) · <code>{esc(b.name)}</code> · '
                   f'<span class="vl-kind">{_bar_cfg_range(b)}</span>{badge}</div>')
        out.append('<div class="vl-strip">')
        for r in b.regions:
            left = 100.0 * r.offset / b.size if b.size else 0
            width = 100.0 * r.size / b.size if b.size else 0
            label = r.role if width >= 7 else ""
            sel = " vl-sel" if select is not None and select in (r.role, r.name) else ""
            tip = esc(f"{r.name}\n{r.role}: 0x{r.offset:x}..0x{r.offset + r.size - 1:x} ({r.size} bytes)", quote=True)
            out.append(f'<div class="vl-reg{sel}" style="left:{left:.3f}%;width:{width:.3f}%;'
                       f'background-color:{ROLE_TINT.get(r.role, "rgba(128,128,128,.25)")}" data-bar="{b.index}" '
                       f'data-role="{esc(r.role, quote=True)}" data-offset="{r.offset}" data-size="{r.size}" '
                       f'title="{tip}">{esc(label)}</div>')
        out.append('</div><table class="vl-table"><tr><th>region</th><th>role</th><th>offset</th>'
                   '<th>size</th><th>described by</th></tr>')
        legacy_bar = any(r.role == "legacy" for r in b.regions)
        for r in b.regions:
            extra = _describer(windows, b.index, r)
            if legacy_bar and r.role == "device":
                extra = ("the device-specific config, right after the legacy header (no capability: "
                         "legacy drivers know it). It starts at VIRTIO_PCI_CONFIG_OFF(MSI-X enabled): "
                         "0x14 while MSI-X is off, 0x18 once the driver enables MSI-X, when 0x14 and "
                         "0x16 become the config and queue MSI-X vectors")
            if r.role == "notify" and notify_mult is not None:
                extra += f"; queue n notifies at 0x{r.offset:x} + n×{notify_mult}"
            if r.role == "legacy":
                extra = "; ".join(f"0x{o:02x} {n}" for o, _, n in LEGACY_FIELDS if o < r.size)
            out.append(f"<tr><td><code>{esc(r.name)}</code></td><td>{esc(r.role)}</td>"
                       f"<td class='mono'>0x{r.offset:x}</td><td class='mono'>{human_size(r.size)}</td>"
                       f"<td>{esc(extra)}</td></tr>")
        out.append("</table></div>")
    out.append("</div>")
    return "".join(out)


class BarMap:
    """``BarMap(trace, step)``: the BAR maps as a notebook object; ``.draw(ax)`` for matplotlib."""

    def __init__(self, source: Any, step: int | None = None, *, select: Any = None):
        self.source, self.step, self.select = source, step, select

    def _repr_html_(self) -> str:
        return bar_map_html(self.source, self.step, select=self.select)

    def draw(self, ax):
        return draw_bar_map(ax, self.source, self.step)

    def __str__(self) -> str:
        state, _, _ = resolve(self.source, self.step)
        lines = []
        for b in state.facts.bars:
            lines.append(f"{_bar_name(b.index)} {b.kind} {b.size} bytes {b.name}")
            lines += [f"  0x{r.offset:06x} +{r.size:<7} {r.role:10} {r.name}" for r in b.regions]
        return "\n".join(lines) or "(no BARs)"


def draw_bar_map(ax, source: Any, step: int | None = None) -> list:
    """Draw each BAR as a row scaled to its own size, regions as boxes; returns the artists.

    Needs matplotlib (the ``[lab]`` extra; JupyterLite ships without it): without it, one line
    saying so, and that ``BarMap`` shows the same map as HTML.
    """
    try:
        from matplotlib.patches import Rectangle  # lazily: only for matplotlib users
    except ImportError:
        raise VirtioLabError(MATPLOTLIB_MISSING) from None

    state, _, _ = resolve(source, step)
    artists = []
    bars = list(state.facts.bars)
    colors = {"common": "#2ea043", "notify": "#e68c1e", "notify-pio": "#e68c1e", "isr": "#dc4646",
              "device": "#1ea0c8", "msix-table": "#c850aa", "msix-pba": "#8a2f76", "legacy": "#888888",
              "rom": "#96693c"}
    for row, b in enumerate(reversed(bars)):
        y = row
        artists.append(ax.add_patch(Rectangle((0, y), 1, 0.7, fill=False, edgecolor="0.5")))
        for r in b.regions:
            x, w = r.offset / b.size, max(r.size / b.size, 0.004)
            artists.append(ax.add_patch(Rectangle((x, y), w, 0.7, facecolor=colors.get(r.role, "0.6"),
                                                  alpha=0.6, edgecolor="0.3", hatch="//" if "msix" in r.role else None)))
            if w > 0.08:
                artists.append(ax.text(x + w / 2, y + 0.35, r.role, ha="center", va="center", fontsize=8))
        artists.append(ax.text(-0.02, y + 0.35, f"{_bar_name(b.index)}\n{human_size(b.size)}",
                               ha="right", va="center", fontsize=8))
    ax.set_xlim(-0.2, 1.02)
    ax.set_ylim(-0.2, max(len(bars), 1))
    ax.set_yticks([])
    ax.set_xlabel("offset inside the BAR (fraction of its size)")
    return artists
