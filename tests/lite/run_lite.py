"""Run every notebook of the built JupyterLite site in Chromium, offline: `make lite-test`.

    .venv/bin/python tests/lite/run_lite.py _site [--notebooks 04-bars.ipynb ...] [--json out.json]

* ``_site`` is served by a stdlib HTTP server on 127.0.0.1 (a free port); nothing else is
  reachable: Chromium resolves no host but 127.0.0.1, every request of the browser (pages, their
  workers, the service worker) to another host is aborted and recorded by a route, and Chromium's
  own net log is read afterwards for any request of the site to another host. A self-check first
  proves the route catches a fetch from a page and from a Web Worker.
* JupyterLite's lab opens once; each notebook then opens in it with a fresh kernel (its own
  Pyodide), its outputs are cleared and Run All executes it. Then, as a student would see it:
  no cell may show an error; every ``# NBVAL_CHECK_OUTPUT`` cell's outputs must equal the
  committed (CPython) ones after the sanitisation nbval uses (tests/nbval_sanitize.cfg, nbval's
  own stream merging and skipped keys); every explorer the notebook shows (the committed outputs
  say how many) must render, and its ▶ must advance the step. The notebook is closed and its
  kernel shut down before the next one.
* ``window.jupyterapp`` drives the lab (commands, kernel status): the test, not the site, turns
  it on, by adding ``exposeAppInBrowser`` to the served ``jupyter-lite.json``.

Prints one line per notebook and ``N passed, N failed``; exit status 1 on any failure or any
request to another host. Debian's Chromium through Python Playwright (tests/browser/chromium.py).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from browser.browser_kit import Explorer, wait_for_explorers  # noqa: E402
from browser.chromium import launch  # noqa: E402
from nbval.plugin import coalesce_streams, get_sanitize_patterns, transform_streams_for_comparison  # noqa: E402
import nbformat  # noqa: E402

ALLOWED_HOSTS = {"127.0.0.1"}
SANITIZE = TESTS / "nbval_sanitize.cfg"
#: what nbval leaves out of a comparison (IPyNbFile.skip_compare, without --nbdime)
SKIP_COMPARE = {"metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
                "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg"}
CHECK = "# NBVAL_CHECK_OUTPUT"
#: the placeholder notebooks/execute.py stores for a widget's output: which widgets hold an explorer
EXPLORER_NOTE = re.compile(r"^\[(PlugExplorer|PlugApp):")
#: a cell that shows an explorer and has no committed output (app.ipynb is not executed)
EXPLORER_CALL = re.compile(r"^(PlugExplorer|PlugApp)\(")
MIME = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
        ".json": "application/json", ".whl": "application/zip", ".zip": "application/zip",
        ".ipynb": "application/json", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}

#: the notebook under test, found by its path
_NB = ("[...window.jupyterapp.shell.widgets('main')].find(w => w.context && w.context.path === window.__LITE_NB)")
_KERNEL = f"(() => {{ const nb = {_NB}; return nb && nb.sessionContext.session && nb.sessionContext.session.kernel; }})()"
#: every code cell's source, execution count and outputs; whether the kernel is idle
_STATE = f"""() => {{
  const nb = {_NB};
  if (!nb || !nb.content) return null;
  const cells = nb.content.widgets.filter(c => c.model.type === 'code').map(c => ({{
    source: c.model.sharedModel.getSource(), count: c.model.executionCount, outputs: c.model.outputs.toJSON()}}));
  const kernel = {_KERNEL};
  return {{idle: !!kernel && kernel.status === 'idle', cells}};
}}"""


# -- the server -------------------------------------------------------------------------

class Handler(http.server.SimpleHTTPRequestHandler):
    """The site as files, plus ``exposeAppInBrowser`` in the root jupyter-lite.json (test only)."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME}
    served: list = []  # (monotonic time, path, status, bytes)

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/jupyter-lite.json":
            data = json.loads((Path(self.directory) / "jupyter-lite.json").read_text())
            data["jupyter-config-data"]["exposeAppInBrowser"] = "true"
            self.reply(json.dumps(data).encode(), "application/json")
            return
        super().do_GET()

    def reply(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code="-", size="-"):
        self.served.append((time.monotonic(), urllib.parse.urlsplit(self.path).path, code, size))

    def log_message(self, *args):
        pass


def serve(root: Path, handler: type = Handler) -> tuple[http.server.ThreadingHTTPServer, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(handler, directory=str(root)))
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{port}"


# -- no other host ----------------------------------------------------------------------

class Guard:
    """Aborts and records every request of the browser to a host other than loopback."""

    def __init__(self):
        self.blocked: list[str] = []

    def route(self, route):
        url = route.request.url
        if urllib.parse.urlsplit(url).hostname in ALLOWED_HOSTS:
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")


def self_check(ctx, base: str, guard: Guard) -> bool:
    """A fetch to another host from the page and from a worker must both be caught by the route."""
    page = ctx.new_page()
    page.goto(f"{base}/icon-512x512.png")
    before = len(guard.blocked)
    page.evaluate("""async () => {
      try { await fetch('http://example.org/from-page'); } catch (e) {}
      const src = "fetch('http://example.org/from-worker').catch(() => 0).then(() => postMessage(1))";
      const w = new Worker(URL.createObjectURL(new Blob([src], {type: 'text/javascript'})));
      await new Promise(r => { w.onmessage = r; setTimeout(r, 5000); });
    }""")
    page.close()
    caught = guard.blocked[before:]
    del guard.blocked[before:]
    return any("from-page" in u for u in caught) and any("from-worker" in u for u in caught)


def netlog_requests(path: Path) -> dict[str, list[str]]:
    """Non-loopback URLs in Chromium's net log: ``site`` (a page or worker of ours started it) and
    ``browser`` (Chromium's own services: their jobs have the opaque initiator "not an origin",
    e.g. sign-in, autofill). The route aborts the site's requests before they reach the network
    stack, so a ``site`` entry is one that got past it."""
    if not path.exists():
        return {"site": ["(no net log written)"], "browser": []}
    text = path.read_text(errors="replace")
    try:
        events = json.loads(text)["events"]
    except ValueError:  # Chromium stopped before it closed the log: drop the cut-off tail
        events = json.loads(text[:text.rfind("},")] + "}]}")["events"]
    sources: dict[int, dict] = {}
    for e in events:
        p = e.get("params") or {}
        s = sources.setdefault(e["source"]["id"], {"inits": set()})
        if "url" in p and "url" not in s:
            s["url"] = p["url"]
        if "initiator" in p:
            s["inits"].add(p["initiator"])
    site, browser = set(), set()
    for s in sources.values():
        url = s.get("url", "")
        host = urllib.parse.urlsplit(url).hostname
        if not host or host in ALLOWED_HOSTS or url.startswith(("data:", "blob:", "chrome:")):
            continue
        (browser if s["inits"] == {"not an origin"} else site if s["inits"] else set()).add(url)
    return {"site": sorted(site), "browser": sorted(browser)}


# -- the checks -------------------------------------------------------------------------

def _text(value):
    return "".join(value) if isinstance(value, list) else value


def comparable(outputs: list, patterns: list[tuple[str, str]]) -> dict[str, list]:
    """Outputs as nbval compares them: streams merged per name, keyed by stream name or MIME type
    (nbval's skipped keys left out), every string sanitised, values in order."""
    nodes = [nbformat.from_dict({k: ({m: _text(v) for m, v in o[k].items()} if k == "data" else _text(o[k]))
                                 for k in o}) for o in outputs]
    out: dict[str, list] = {}
    for o in transform_streams_for_comparison(coalesce_streams(nodes)):
        for key, value in o.items():
            if key in SKIP_COMPARE:
                continue
            for k, v in (value.items() if key == "data" else [(key, value)]):
                if k in SKIP_COMPARE:
                    continue
                if isinstance(v, str):
                    for regex, replace in patterns:
                        v = re.sub(regex, replace, v)
                out.setdefault(k, []).append(v)
    return out


def output_differences(committed: nbformat.NotebookNode, cells: list[dict]) -> tuple[list[str], int]:
    """Each checked cell whose outputs here differ from the committed ones (or a mismatch of cells),
    and how many checked cells were compared."""
    patterns = get_sanitize_patterns(SANITIZE.read_text())
    code = [c for c in committed.cells if c.cell_type == "code"]
    if [c.source for c in code] != [c["source"] for c in cells]:
        return ["the site's cells are not the committed notebook's"], 0
    out, checked = [], 0
    for i, (ref, run) in enumerate(zip(code, cells)):
        if CHECK not in ref.source:
            continue
        checked += 1
        want, got = comparable(ref.outputs, patterns), comparable(run["outputs"], patterns)
        if want != got:
            first = next((k for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k)), "?")
            out.append(f"code cell {i} ({ref.get('id', '?')}): {first!r} differs: committed "
                       f"{str(want.get(first))[:160]!r}, here {str(got.get(first))[:160]!r}")
    return out, checked


def comparison_self_check(site: Path, notebooks: list[str]) -> bool:
    """The comparison is not vacuous: a notebook's own outputs compare equal, and one changed
    character of a checked stream makes it differ."""
    for path in notebooks:
        nb = nbformat.read(site / "files" / path, as_version=4)
        cells = [{"source": c.source, "outputs": [dict(o) for o in c.outputs]} for c in nb.cells if c.cell_type == "code"]
        target = next((c for c in cells if CHECK in c["source"] and any(o.get("output_type") == "stream" for o in c["outputs"])), None)
        if target is None:
            continue
        same, n = output_differences(nb, cells)
        stream = next(o for o in target["outputs"] if o.get("output_type") == "stream")
        stream["text"] = "X" + _text(stream["text"])
        changed, _ = output_differences(nb, cells)
        return not same and n > 0 and len(changed) == 1
    return False


def cell_errors(cells: list[dict]) -> list[str]:
    out = []
    for i, c in enumerate(cells):
        for o in c["outputs"]:
            if o.get("output_type") == "error":
                line = next((ln for ln in c["source"].splitlines() if ln.strip() and not ln.startswith("#")), "")
                out.append(f"code cell {i}: {o.get('ename')}: {str(o.get('evalue'))[:200]}  [{line[:70]}]")
    return out


def step_explorers(page, expected: int) -> list[str]:
    """Every explorer renders and its ▶ advances the step (from the step before the last one at the end)."""
    if not expected:
        return []
    try:
        roots = wait_for_explorers(page, expected, timeout_ms=120_000)
    except AssertionError as err:
        return [str(err)]
    problems = []
    for n, root in enumerate(roots):
        ex = Explorer(root, None)
        root.scroll_into_view_if_needed()
        try:
            step = ex.step
            if root.get_by_role("button", name="▶", exact=True).is_disabled():  # parked on the last step
                ex.prev()
                step -= 1
                ex.wait_step(step)
            ex.next()
            ex.wait_step(step + 1)
        except Exception as err:  # a timeout: the click did not reach the kernel or the view
            problems.append(f"explorer {n + 1} of {len(roots)}: ▶ from step {step} did not show step "
                            f"{step + 1} ({type(err).__name__}: {str(err).splitlines()[0][:160]})")
    return problems


# -- one notebook -----------------------------------------------------------------------

def open_lab(page, base: str, timeout_s: float) -> float:
    """JupyterLite's lab, until its app is up; seconds from navigation."""
    t0 = time.monotonic()
    page.goto(f"{base}/lab/index.html")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started !== undefined "
                           "&& document.querySelector('#jp-main-dock-panel')", timeout=timeout_s * 1000)
    page.evaluate("() => window.jupyterapp.restored")
    return time.monotonic() - t0


def open_notebook(page, path: str, timeout_s: float) -> float:
    """Open ``path`` with a fresh kernel; seconds until that kernel is idle and answers."""
    t0 = time.monotonic()
    page.evaluate("(p) => { window.__LITE_NB = p; return window.jupyterapp.commands.execute("
                  "'docmanager:open', {path: p, factory: 'Notebook', kernel: {name: 'python'}}).then(() => 0); }", path)
    page.wait_for_function(f"() => {{ const k = {_KERNEL}; return !!k && k.status === 'idle'; }}",
                           timeout=timeout_s * 1000, polling=100)
    page.evaluate(f"async () => {{ await {_KERNEL}.requestKernelInfo(); }}")
    return time.monotonic() - t0


def run_all(page, timeout_s: float) -> tuple[dict, float]:
    """Clear every output, Run All, wait until every code cell ran (or one failed); the state, seconds."""
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.wait_for_function(f"() => {{ const nb = {_NB}; return nb.content.widgets.filter(c => c.model.type === 'code')"
                           ".every(c => c.model.executionCount === null && c.model.outputs.length === 0); }")
    t0 = time.monotonic()
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = t0 + timeout_s
    while True:
        state = page.evaluate(_STATE) or {"idle": False, "cells": []}
        cells = state["cells"]
        done = all(c["count"] is not None for c in cells) or bool(cell_errors(cells))
        if state["idle"] and done and cells:
            return state, time.monotonic() - t0
        if time.monotonic() > deadline:
            state["timeout"] = True
            return state, time.monotonic() - t0
        page.wait_for_timeout(200)


def close_notebook(page) -> None:
    """Shut the notebook's kernel down and drop the tab (no save prompt: it is disposed)."""
    page.evaluate(f"async () => {{ const nb = {_NB}; if (!nb) return; await nb.sessionContext.shutdown(); nb.dispose(); }}")


def expected_explorers(cell) -> int:
    """How many explorers a code cell shows: the committed outputs say, or its last line does."""
    if cell.get("outputs"):
        return sum(1 for o in cell.outputs if EXPLORER_NOTE.match(_text(o.get("data", {}).get("text/plain", ""))))
    lines = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return int(bool(lines) and bool(EXPLORER_CALL.match(lines[-1])))


def widget_errors(page) -> list[str]:
    """ipywidgets' error box (a widget that could not be built) anywhere in the notebook."""
    n = page.locator(".jupyter-widgets-error-widget, .widget-error").count()
    return [f"{n} widget(s) show ipywidgets' error box instead of the widget"] if n else []


def check_notebook(page, site: Path, path: str, timeout_s: float) -> dict:
    committed = nbformat.read(site / "files" / path, as_version=4)
    explorers = sum(expected_explorers(c) for c in committed.cells if c.cell_type == "code")
    r: dict = {"problems": []}
    try:
        r["kernel_s"] = round(open_notebook(page, path, timeout_s), 2)
        state, r["run_s"] = run_all(page, timeout_s)
        r["run_s"] = round(r["run_s"], 2)
        cells = state["cells"]
        r["problems"] += cell_errors(cells)
        if state.get("timeout"):
            ran = sum(c["count"] is not None for c in cells)
            r["problems"].append(f"not finished after {timeout_s:.0f} s: {ran} of {len(cells)} code cells ran")
        if not r["problems"]:
            differences, r["checked_outputs"] = output_differences(committed, cells)
            r["problems"] += differences
            stepped = step_explorers(page, explorers)
            r["problems"] += stepped + widget_errors(page)
            r["explorers"] = 0 if stepped else explorers
    except Exception as err:  # a timeout waiting for the kernel: report it, go on with the next one
        r["problems"].append(f"{type(err).__name__}: {str(err).splitlines()[0][:300]}")
    finally:
        try:
            close_notebook(page)
        except Exception:
            pass
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("site", type=Path)
    ap.add_argument("--notebooks", nargs="*", help="paths inside the site's contents (default: every .ipynb)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds for a kernel to start, and for a Run All")
    ap.add_argument("--json", type=Path, help="write the results here")
    a = ap.parse_args()
    site = a.site.resolve()
    if not (site / "jupyter-lite.json").is_file():
        print(f"lite-test: {site} is not a built site: run make lite")
        return 2
    listed = json.loads((site / "api/contents/all.json").read_text())["content"]
    notebooks = a.notebooks or sorted(c["path"] for c in listed if c["path"].endswith(".ipynb"))

    tmp = Path(tempfile.mkdtemp(prefix="lite-test-"))
    netlog = tmp / "netlog.json"
    srv, base = serve(site)
    guard = Guard()
    results: dict = {"notebooks": {}}
    t_start = time.monotonic()
    failed = 0
    try:
        from playwright.sync_api import sync_playwright
        with sync_playwright() as pw:
            ctx = launch(pw, tmp / "profile", offline=True,
                         args=(f"--log-net-log={netlog}", "--net-log-capture-mode=Default"))
            ctx.set_default_timeout(60_000)
            ctx.route("**/*", guard.route)
            if not self_check(ctx, base, guard):
                print("lite-test: FAIL the request guard did not catch a fetch from a page and a worker")
                failed += 1
            if not comparison_self_check(site, notebooks):
                print("lite-test: FAIL the output comparison does not tell a changed checked output")
                failed += 1
            page = ctx.new_page()
            console: list = []
            page.on("pageerror", lambda e: console.append(f"pageerror: {str(e)[:300]}"))
            results["lab_s"] = round(open_lab(page, base, a.timeout), 2)
            for nb in notebooks:
                mark, errors0 = len(guard.blocked), len(console)
                r = check_notebook(page, site, nb, a.timeout)
                r["blocked"] = guard.blocked[mark:]
                r["page_errors"] = console[errors0:]
                if r["blocked"]:
                    r["problems"].append(f"requests to other hosts: {r['blocked'][:5]}")
                r["problems"] += r["page_errors"]
                ok = not r["problems"]
                failed += not ok
                results["notebooks"][nb] = r
                print(f"lite-test: {'PASS' if ok else 'FAIL'} {nb}: kernel {r.get('kernel_s')} s, "
                      f"run {r.get('run_s')} s, {r.get('checked_outputs', 0)} checked outputs compared, "
                      f"{r.get('explorers', 0)} explorer(s) stepped with ▶"
                      + "".join(f"\n    {p}" for p in r["problems"]), flush=True)
            ctx.close()
    finally:
        srv.shutdown()
    results["total_s"] = round(time.monotonic() - t_start, 1)
    results["netlog"] = netlog_requests(netlog)
    if results["netlog"]["site"]:
        print("lite-test: FAIL Chromium's net log shows requests of the site to other hosts:",
              results["netlog"]["site"][:10])
        failed += 1
    if results["netlog"]["browser"]:
        hosts = sorted({urllib.parse.urlsplit(u).hostname for u in results["netlog"]["browser"]})
        print(f"lite-test: (Chromium's own services tried {hosts}: not the site, and no name resolves)")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    passed = sum(not r["problems"] for r in results["notebooks"].values())
    runs = [r["run_s"] for r in results["notebooks"].values() if "run_s" in r]
    kernels = sorted(r["kernel_s"] for r in results["notebooks"].values() if "kernel_s" in r)
    print(f"lite-test: {len(notebooks)} notebooks in {results['total_s']} s (lab up in {results.get('lab_s')} s; "
          f"kernels ready in {kernels[0] if kernels else '-'}–{kernels[-1] if kernels else '-'} s; "
          f"cells {sum(runs):.1f} s in all; load {' '.join(f'{x:.1f}' for x in os.getloadavg())})")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
