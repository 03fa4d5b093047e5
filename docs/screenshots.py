"""Regenerate the view screenshots in docs/ with headless Chromium (apt-get install chromium).

    python docs/screenshots.py

Writes grid.png, grid-dark.png, chain.png, barmap.png and report.png next to this file.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from virtio_lab import plug  # noqa: E402
from virtio_lab.views.report import report_html  # noqa: E402
from virtio_lab.views import bar_map_html, chain_html, hex_grid_html  # noqa: E402

LIGHT = "background:#fff;color:#111"
DARK = "background:#111;color:#d8d8d8"  # JupyterLab's dark theme, roughly


def page(body: str, style: str = LIGHT) -> str:
    return f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:12px;{style}">{body}</body></html>'


def shoot(html: str, name: str, size: str, tmp: Path, anchor: str = "") -> None:
    src = tmp / f"{name}.html"
    src.write_text(html, encoding="utf-8")
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={HERE / (name + '.png')}", f"--window-size={size}",
                    f"file://{src}{anchor}"], check=True, capture_output=True)
    print("wrote", HERE / f"{name}.png")


def main() -> None:
    net = plug("virtio-net-pci")
    msix = next(e.index for e in net.events if e.detail("cap_name") == "MSI-X")
    fill = msix + 1  # msix_init filling the capability: several bytes written
    rp = plug("virtio-net-pci", "q35", root_port=True)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        shoot(page(hex_grid_html(net, fill, select="virtio notify")), "grid", "560,520", tmp)
        shoot(page(hex_grid_html(net, fill, select="virtio notify"), DARK), "grid-dark", "560,520", tmp)
        shoot(page(chain_html(rp)), "chain", "620,1130", tmp)
        shoot(page(bar_map_html(net)), "barmap", "800,640", tmp)
        shoot(report_html(net), "report", "1400,1250", tmp, anchor=f"#step-{fill}")


if __name__ == "__main__":
    main()
