"""Browser benchmarks (Chromium, not timed tests): `make bench-browser`, i.e.

    .venv/bin/python benchmarks/in_chromium.py _site [--runs 5] [--clicks 20] [--only lite-kernel,lite-step,lab-step,pyodide]

* ``lite-kernel``: JupyterLite, a fresh browser profile each run (a first visit: nothing cached),
  seconds from navigating to ``lab/index.html?path=00-start.ipynb`` until the notebook's kernel is
  idle and answers; then the same page again in that profile (a second visit: the browser's cache
  is warm).
* ``pyodide``: what a kernel's start is made of, step by step, in a bare page of the same site
  (Pyodide's runtime, each group of packages the kernel preloads, the imports).
* ``lite-step`` / ``lab-step``: the explorer of notebook 00 in JupyterLite (Pyodide) and in
  JupyterLab (CPython kernel, this venv): milliseconds from a ▶ click to the frame after every
  view shows the next step (the step header, the grid and, last of the explorer's updates, the
  plug-path list), timed inside the page.

Prints the medians and spreads with the machine's load average, and ``--json`` writes them all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "lite"))

from browser import browser_kit, conftest as lab_kit  # noqa: E402
from browser.chromium import launch  # noqa: E402
import run_lite  # noqa: E402

NOTEBOOK = "00-start.ipynb"

#: one ▶ click on the first explorer, timed in the page: click, then until the plug-path list (the
#: last view the explorer updates) marks the next step and the header says it, then one frame
_STEP_JS = """async (root) => {
  const button = [...root.querySelectorAll('button')].find(b => b.textContent.trim() === '\\u25b6');
  const want = +root.querySelector('.widget-slider .widget-readout').textContent.trim() + 1;
  const done = () => { const h = root.querySelector('.vl-step-h'), cur = root.querySelector('.vl-events tr.vl-cur');
    return !!h && h.textContent.includes(`Step ${want} /`) && !!cur && cur.dataset.step === String(want); };
  const t0 = performance.now();
  button.click();
  await new Promise((resolve, reject) => {
    const obs = new MutationObserver(() => { if (done()) { obs.disconnect(); resolve(); } });
    obs.observe(root, {subtree: true, childList: true, characterData: true, attributes: true});
    setTimeout(() => { obs.disconnect(); reject(new Error('no step ' + want + ' after 30 s')); }, 30000);
  });
  await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  return performance.now() - t0;
}"""

BARE_PAGE = """<!doctype html><meta charset=utf-8><script type=module>
const t0 = performance.now(), out = {};
const lap = (k, t) => out[k] = Math.round(performance.now() - t);
try {
  const base = new URL('/static/pyodide/', location.href).href;
  const cfg = (await (await fetch('/jupyter-lite.json')).json())['jupyter-config-data']
              .litePluginSettings['@jupyterlite/pyodide-kernel-extension:kernel'];
  let t = performance.now();
  const { loadPyodide } = await import(base + 'pyodide.mjs');
  const py = await loadPyodide({indexURL: base, lockFileURL: base + 'pyodide-lock.json'});
  lap('Pyodide runtime (wasm + stdlib)', t);
  t = performance.now(); await py.loadPackage(['micropip', 'piplite']); lap('loadPackage micropip, piplite', t);
  const preload = cfg.loadPyodideOptions.packages.filter(p => !['micropip', 'piplite'].includes(p));
  t = performance.now(); await py.loadPackage(preload); lap('loadPackage ' + preload.join(', '), t);
  for (const m of ['IPython', 'pyodide_kernel', 'ipywidgets', 'virtio_lab', 'virtio_lab.widgets']) {
    t = performance.now();
    if (m.startsWith('virtio_lab') && !py.loadedPackages['virtio-lab']) await py.loadPackage(['virtio-lab']);
    py.runPython('import ' + m); lap('import ' + m, t); }
  t = performance.now(); py.runPython("from virtio_lab import plug; plug('virtio-net-pci')"); lap("plug('virtio-net-pci')", t);
} catch (e) { out.error = String(e).slice(-800); }
out.total = Math.round(performance.now() - t0);
window.BENCH = out;
</script>"""


def spread(xs: list[float]) -> dict:
    return {"median": round(statistics.median(xs), 3), "min": round(min(xs), 3), "max": round(max(xs), 3),
            "n": len(xs), "all": [round(x, 3) for x in xs]}


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


class BenchHandler(run_lite.Handler):
    def do_GET(self):
        if urllib.parse.urlsplit(self.path).path == "/__bench.html":  # never part of the site
            self.reply(BARE_PAGE.encode(), "text/html")
            return
        super().do_GET()


def lite_kernel(pw, base: str, site: Path, runs: int) -> dict:
    first, second, fetched, marks = [], [], [], []
    for _ in range(runs):
        mark = len(run_lite.Handler.served)
        with tempfile.TemporaryDirectory(prefix="bench-lite-") as tmp:
            ctx = launch(pw, Path(tmp), offline=True)
            for times in (first, second):
                page = ctx.new_page()
                page.add_init_script(f"window.__LITE_NB = {json.dumps(NOTEBOOK)}")
                t0 = time.monotonic()
                page.goto(f"{base}/lab/index.html?path={NOTEBOOK}")
                page.wait_for_function(f"() => {{ const k = window.jupyterapp && {run_lite._KERNEL}; "
                                       "return !!k && k.status === 'idle'; }", timeout=300_000, polling=100)
                page.evaluate(f"async () => {{ await {run_lite._KERNEL}.requestKernelInfo(); }}")
                times.append(time.monotonic() - t0)
                if times is first:  # what a first visit fetched, until its kernel was ready; when
                    served = run_lite.Handler.served[mark:]
                    paths = {path for _, path, code, _ in served if str(code) == "200"}
                    when = lambda pred: next((round(t - t0, 1) for t, path, *_ in served if pred(path)), None)  # noqa: E731
                    marks.append({"notebook fetched": when(lambda p: p.endswith(".ipynb")),
                                  "pyodide.mjs": when(lambda p: p.endswith("pyodide.mjs")),
                                  "first wheel": when(lambda p: p.endswith(".whl")),
                                  "virtio_lab wheel": when(lambda p: "virtio_lab-" in p),
                                  "kernel ready": round(times[-1], 1)})
                    fetched.append(sum((site / p.lstrip("/")).stat().st_size for p in paths
                                       if (site / p.lstrip("/")).is_file()) / 1e6)
                page.evaluate(f"async () => {{ await {run_lite._NB}.sessionContext.shutdown(); }}")
                page.close()
            ctx.close()
        print(f"  lite kernel ready: first visit {first[-1]:.1f} s, second {second[-1]:.1f} s; first visit "
              f"fetched {fetched[-1]:.1f} MB, seconds from navigation: {marks[-1]} (load {load()})", flush=True)
    return {"first_visit_s": spread(first), "second_visit_s": spread(second), "first_visit_MB": spread(fetched), "first_visit_marks": marks}


def pyodide_steps(pw, base: str, runs: int) -> dict:
    laps: dict[str, list] = {}
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="bench-pyo-") as tmp:
            ctx = launch(pw, Path(tmp), offline=True)
            page = ctx.new_page()
            page.goto(f"{base}/__bench.html")
            page.wait_for_function("() => window.BENCH", timeout=300_000)
            out = page.evaluate("() => window.BENCH")
            ctx.close()
        if "error" in out:
            raise SystemExit(f"bench page: {out['error']}")
        for k, v in out.items():
            laps.setdefault(k, []).append(v / 1000)
        print(f"  pyodide: {out} (load {load()})", flush=True)
    return {k: spread(v) for k, v in laps.items()}


def clicks(page, n: int) -> list[float]:
    root = browser_kit.wait_for_explorers(page, 1, timeout_ms=120_000)[0]
    root.scroll_into_view_if_needed()
    browser_kit.Explorer(root, None).show_tab("plug path")
    handle = root.element_handle()
    out = []
    for _ in range(n):
        out.append(page.evaluate(_STEP_JS, handle))
        page.wait_for_timeout(150)  # a student does not click faster than the kernel answers
    return out


def lite_step(pw, base: str, runs: int, n: int) -> dict:
    times = []
    with tempfile.TemporaryDirectory(prefix="bench-lite-") as tmp:
        ctx = launch(pw, Path(tmp), offline=True)
        ctx.set_default_timeout(120_000)
        page = ctx.new_page()
        run_lite.open_lab(page, base, 300)
        for _ in range(runs):
            run_lite.open_notebook(page, NOTEBOOK, 300)
            run_lite.run_all(page, 300)
            times += clicks(page, n)
            print(f"  lite ▶: median {statistics.median(times[-n:]):.0f} ms (load {load()})", flush=True)
            run_lite.close_notebook(page)
        ctx.close()
    return {"ms": spread(times)}


def lab_step(pw, runs: int, n: int) -> dict:
    times = []
    with tempfile.TemporaryDirectory(prefix="bench-lab-") as tmp:
        tmp = Path(tmp)
        (tmp / "served").mkdir()
        shutil.copyfile(ROOT / "notebooks" / NOTEBOOK, tmp / "served" / NOTEBOOK)
        env = lab_kit.make_home(tmp / "home")
        proc, server = lab_kit.start_lab(tmp / "served", env, tmp / "lab.log")
        try:
            ctx = launch(pw, tmp / "profile")
            ctx.set_default_timeout(120_000)
            page = ctx.new_page()
            for _ in range(runs):
                browser_kit.open_notebook(page, server, NOTEBOOK)
                browser_kit.run_all(page)
                times += clicks(page, n)
                print(f"  lab ▶: median {statistics.median(times[-n:]):.0f} ms (load {load()})", flush=True)
                page.evaluate("async () => { await window.jupyterapp.shell.currentWidget.sessionContext.shutdown(); "
                              "window.jupyterapp.shell.currentWidget.dispose(); }")
            ctx.close()
        finally:
            lab_kit.stop(proc)
    return {"ms": spread(times)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("site", type=Path)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--clicks", type=int, default=20)
    ap.add_argument("--only", default="lite-kernel,pyodide,lite-step,lab-step")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    which = a.only.split(",")
    from playwright.sync_api import sync_playwright
    srv, base = run_lite.serve(a.site.resolve(), BenchHandler)
    out: dict = {"load_before": load()}
    try:
        with sync_playwright() as pw:
            if "lite-kernel" in which:
                out["lite_kernel"] = lite_kernel(pw, base, a.site.resolve(), a.runs)
            if "pyodide" in which:
                out["pyodide_s"] = pyodide_steps(pw, base, a.runs)
            if "lite-step" in which:
                out["lite_step"] = lite_step(pw, base, max(1, a.runs // 2), a.clicks)
            if "lab-step" in which:
                out["lab_step"] = lab_step(pw, max(1, a.runs // 2), a.clicks)
    finally:
        srv.shutdown()
    out["load_after"] = load()
    print(json.dumps({k: ({kk: (vv["median"], vv["min"], vv["max"]) if isinstance(vv, dict) and "median" in vv else vv
                           for kk, vv in v.items()} if isinstance(v, dict) else v) for k, v in out.items()}, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
