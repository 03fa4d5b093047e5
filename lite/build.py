"""Build the offline JupyterLite site: `make lite`, i.e. `.venv-lite/bin/python lite/build.py --out _site`.

Run with the lite build venv's Python (the ``[lite]`` extra, every package frozen by
lite/constraints.txt: checked first). Every run is a clean build: the staging lite dir (with
JupyterLite's doit database and cache) and the output are deleted first, because an incremental
build was seen to drop the local ``pyodideUrl``. The contents are the course notebooks
(``notebooks/*.ipynb``), unchanged: they read their data from the package, so nothing else is needed.

What ends up in ``OUT/static/pyodide/``, and nothing else:
  * Pyodide's core files from the npm ``pyodide`` package (lite/package.json, ``npm ci``), at
    exactly the version the installed jupyterlite-pyodide-kernel names (asserted 4 ways);
  * every wheel the kernel loads, byte-compiled (``__pycache__/*.cpython-314.pyc`` beside each
    module, made by the same Pyodide under Node.js: lite/py_compile.mjs; ``--no-py-compile``
    ships them as they are): lite/requirements-kernel.txt (PyPI, hash-pinned), the four
    the kernel extension ships (piplite, pyodide-kernel, the ipykernel and widgetsnbextension
    shims, checked against the extension's all.json), and the virtio_lab wheel built from this
    checkout;
  * ``pyodide-lock.json``: Pyodide's own lock's ``info`` with ONLY those wheels, each entry's
    sha256 computed from the file shipped, ``depends`` from its Requires-Dist (markers for
    CPython 3.14 on emscripten), each dependency checked present and in range.
A package not in that lock (matplotlib, pandas, numpy, ...) fails to import in the browser
with ModuleNotFoundError instead of being fetched from a CDN.

Then ``jupyter lite build`` (PyodideAddon copies ``static/pyodide`` and points ``pyodideUrl`` at
it), and the output is verified: the config every app loads keeps the local pyodideUrl, PyPI
fallback off, local lockFileURL; every lock entry's file exists with its sha256; only the
expected federated extensions.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import re
import shutil
import subprocess
import sys
import time
import zipfile
from email.parser import HeaderParser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PLUGIN = "@jupyterlite/pyodide-kernel-extension:kernel"
EXPECTED_EXTENSIONS = {"@jupyterlite/pyodide-kernel-extension", "@jupyter-widgets/jupyterlab-manager"}
#: what loadPyodide fetches from indexURL (the rest of the npm package is docs, types, maps, node-only)
PYODIDE_CORE = ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "package.json"]
#: wheels shipped by the kernel extension (static/pypi) that the lock must also serve
EXTENSION_WHEELS = ["piplite", "pyodide-kernel", "ipykernel", "widgetsnbextension"]
PIP_PLATFORM = ["--python-version", "3.14", "--implementation", "py", "--abi", "none", "--platform", "any"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def log(msg: str) -> None:
    print(f"lite-build: {msg}", flush=True)


def pins(path: Path) -> dict[str, tuple[str, str | None]]:
    """name -> (version, sha256 or None) from a requirements file of ``name==version [--hash=sha256:H]``."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s]+)(?:\s+--hash=sha256:([0-9a-f]{64}))?", line)
        if not m:
            raise SystemExit(f"{path}: not a pin: {line!r}")
        out[canonicalize_name(m[1])] = (m[2], m[3])
    return out


# -- versions ---------------------------------------------------------------------------

def check_versions(node_modules: Path) -> str:
    """The build env is the pinned one and npm's pyodide is exactly the kernel's; the Pyodide version."""
    for name, (version, _) in pins(HERE / "constraints.txt").items():
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            have = None
        if have != version:
            raise SystemExit(f"{name} {have or 'is not'} installed, lite/constraints.txt pins {version}: "
                             "rm -rf .venv-lite && make lite")
    from jupyterlite_pyodide_kernel import constants

    want = constants.PYODIDE_VERSION
    ext = Path(sys.prefix) / "share/jupyter/labextensions/@jupyterlite/pyodide-kernel-extension"
    schema = json.loads((ext / "static/schema/kernel.v0.schema.json").read_text())
    default_url = schema["properties"]["pyodideUrl"]["default"]
    bundled = {v for js in (ext / "static").glob("*.js") for v in re.findall(r"pyodide/v([0-9][^/\"']*)/full", js.read_text())}
    npm_pkg = json.loads((node_modules / "pyodide/package.json").read_text())["version"]
    npm_lock = json.loads((node_modules / "pyodide/pyodide-lock.json").read_text())["info"]
    found = {"constants.PYODIDE_VERSION": want,
             "kernel.v0.schema.json pyodideUrl default": re.search(r"/v([^/]+)/", default_url)[1],
             "bundled kernel JS CDN fallback": ",".join(sorted(bundled)),
             "npm pyodide package.json": npm_pkg}
    if len(set(found.values())) != 1:
        raise SystemExit("Pyodide versions disagree:\n" + "\n".join(f"  {k}: {v}" for k, v in found.items()))
    if not npm_lock["python"].startswith(constants.PYODIDE_PYTHON_VERSION + "."):
        raise SystemExit(f"npm pyodide is Python {npm_lock['python']}, the kernel expects {constants.PYODIDE_PYTHON_VERSION}")
    log(f"Pyodide {want} (Python {npm_lock['python']}) agreed by: {', '.join(found)}")
    return want


# -- wheels -----------------------------------------------------------------------------

def kernel_wheels(cache: Path) -> list[Path]:
    """lite/requirements-kernel.txt's wheels, downloaded once into ``cache``, hashes checked."""
    req = HERE / "requirements-kernel.txt"
    wanted = pins(req)
    cache.mkdir(parents=True, exist_ok=True)

    def have():
        found = {}
        for whl in cache.glob("*.whl"):
            name, version = whl.name.split("-")[:2]
            c = canonicalize_name(name)
            if c in wanted and wanted[c][0] == version and sha256(whl) == wanted[c][1]:
                found[c] = whl
        return found

    found = have()
    if set(found) != set(wanted):
        log(f"downloading {len(set(wanted) - set(found))} kernel wheels (pip, hash-checked)")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--require-hashes", *PIP_PLATFORM, "-d", str(cache), "-r", str(req)], check=True)
        found = have()
    missing = set(wanted) - set(found)
    if missing:
        raise SystemExit(f"kernel wheels missing or with the wrong hash: {sorted(missing)}")
    return [found[c] for c in sorted(found)]


def extension_wheels() -> list[Path]:
    """The kernel extension's own wheels (piplite, pyodide-kernel, shims), checked against its all.json."""
    pypi = Path(sys.prefix) / "share/jupyter/labextensions/@jupyterlite/pyodide-kernel-extension/static/pypi"
    index = json.loads((pypi / "all.json").read_text())
    out = []
    for name in EXTENSION_WHEELS:
        releases = index[name]["releases"]
        version = max(releases, key=Version)  # widgetsnbextension: 4.0.999 (ipywidgets 8), not 3.6.999
        (rel,) = releases[version]
        whl = pypi / rel["filename"]
        if sha256(whl) != rel["digests"]["sha256"]:
            raise SystemExit(f"{whl}: sha256 differs from the extension's all.json")
        out.append(whl)
    return out


def wheel_meta(whl: Path) -> tuple[str, str, list[Requirement], list[str]]:
    """name, version, Requires-Dist, import names of a wheel."""
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        (meta_path,) = [n for n in names if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        meta = HeaderParser().parsestr(z.read(meta_path).decode())
        dist_info = meta_path.split("/")[0]
        if f"{dist_info}/top_level.txt" in names:
            imports = z.read(f"{dist_info}/top_level.txt").decode().split()
        else:
            imports = sorted({n.split("/")[0] for n in names if n.count("/") == 1 and n.endswith("/__init__.py")}
                             | {n[:-3] for n in names if "/" not in n and n.endswith(".py")})
    reqs = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
    return meta["Name"], meta["Version"], reqs, imports


def write_lock(npm_lock: Path, wheels: list[Path], out: Path) -> dict:
    """Pyodide's lock ``info`` with exactly ``wheels``; sha256 from the shipped files; deps checked."""
    info = json.loads(npm_lock.read_text())["info"]
    py = info["python"]
    env = default_environment()
    env.update(python_version=".".join(py.split(".")[:2]), python_full_version=py, sys_platform="emscripten",
               platform_system="Emscripten", os_name="posix", platform_machine="wasm32", implementation_name="cpython",
               platform_python_implementation="CPython", platform_release="", platform_version="", extra="")
    metas = {}
    for whl in wheels:
        name, version, reqs, imports = wheel_meta(whl)
        metas[canonicalize_name(name)] = (whl, name, version, [r for r in reqs if r.marker is None or r.marker.evaluate(env)], imports)
    packages, problems = {}, []
    for key, (whl, name, version, reqs, imports) in sorted(metas.items()):
        depends = []
        for r in reqs:
            dep = canonicalize_name(r.name)
            if dep not in metas:
                problems.append(f"{name} needs {r}, which is not shipped")
            elif not r.specifier.contains(metas[dep][2], prereleases=True):
                problems.append(f"{name} needs {r}, shipped {metas[dep][2]}")
            depends.append(dep)
        packages[key] = {"name": name, "version": version, "file_name": whl.name, "install_dir": "site",
                         "sha256": sha256(whl), "package_type": "package", "imports": imports,
                         "depends": sorted(set(depends)), "unvendored_tests": False}
    if problems:
        raise SystemExit("the shipped wheels do not close over their dependencies:\n  " + "\n  ".join(problems))
    lock = {"info": info, "packages": packages}
    out.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    return lock


def py_compile(wheels: list[Path], out: Path) -> list[Path]:
    """The same wheels with __pycache__/*.cpython-314.pyc added, compiled by the npm pyodide under Node.js."""
    src = out.with_name(out.name + "-in")
    for d in (src, out):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    for whl in wheels:
        shutil.copyfile(whl, src / whl.name)
    subprocess.run(["node", str(HERE / "py_compile.mjs"), str(src), str(out)], check=True, stdout=subprocess.DEVNULL)
    compiled = [out / w.name for w in wheels]
    log(f"byte-compiled {len(compiled)} wheels: {sum(w.stat().st_size for w in wheels) / 2**20:.1f} -> "
        f"{sum(w.stat().st_size for w in compiled) / 2**20:.1f} MiB")
    return compiled


# -- build + verify ---------------------------------------------------------------------

def stage(lite_dir: Path, node_modules: Path, wheels: list[Path]) -> None:
    shutil.rmtree(lite_dir, ignore_errors=True)
    pyo = lite_dir / "static/pyodide"
    pyo.mkdir(parents=True)
    for name in ("jupyter-lite.json", "overrides.json"):
        shutil.copyfile(HERE / name, lite_dir / name)
    # only the extensions named here, from this env, whatever else is installed in it
    config = json.loads((HERE / "jupyter_lite_config.json").read_text())
    labext = Path(sys.prefix) / "share/jupyter/labextensions"
    config["LiteBuildConfig"].update(ignore_sys_prefix=["federated_extensions"],
                                     federated_extensions=[str(labext / n) for n in sorted(EXPECTED_EXTENSIONS)])
    (lite_dir / "jupyter_lite_config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in PYODIDE_CORE:
        shutil.copyfile(node_modules / "pyodide" / name, pyo / name)
    for whl in wheels:
        shutil.copyfile(whl, pyo / whl.name)
    write_lock(node_modules / "pyodide/pyodide-lock.json", [pyo / w.name for w in wheels], pyo / "pyodide-lock.json")


def verify(out: Path) -> None:
    problems = []
    configs = sorted(out.glob("**/jupyter-lite.json"))
    for cfg in configs:  # each app (lab/, notebooks/, tree/) merges its own over the root one
        data = json.loads(cfg.read_text()).get("jupyter-config-data", {})
        s = data.get("litePluginSettings", {}).get(PLUGIN)
        if cfg.parent == out:
            if not s:
                problems.append(f"{cfg}: no {PLUGIN} settings")
                continue
            if s.get("pyodideUrl") != "./static/pyodide/pyodide.mjs":
                problems.append(f"{cfg}: pyodideUrl is {s.get('pyodideUrl')!r}")
            if s.get("disablePyPIFallback") is not True:
                problems.append(f"{cfg}: disablePyPIFallback is not true")
            if s.get("loadPyodideOptions", {}).get("lockFileURL") != "./static/pyodide/pyodide-lock.json":
                problems.append(f"{cfg}: lockFileURL is not the local lock")
        elif s:
            problems.append(f"{cfg}: overrides the kernel settings: {s}")
        text = cfg.read_text()
        for url in re.findall(r"https?://[^\"'\s]+", text):
            problems.append(f"{cfg}: absolute URL {url}")
    root = json.loads((out / "jupyter-lite.json").read_text())["jupyter-config-data"]
    lpo = root["litePluginSettings"][PLUGIN]["loadPyodideOptions"]
    pyo = out / "static/pyodide"
    lock = json.loads((pyo / "pyodide-lock.json").read_text())["packages"]
    shipped = {"pyodide-lock.json", *PYODIDE_CORE}
    for key, p in lock.items():
        f = pyo / p["file_name"]
        shipped.add(p["file_name"])
        if "/" in p["file_name"] or ":" in p["file_name"]:
            problems.append(f"lock {key}: file_name not local: {p['file_name']}")
        elif not f.is_file():
            problems.append(f"lock {key}: {f} missing")
        elif sha256(f) != p["sha256"]:
            problems.append(f"lock {key}: sha256 differs from {f}")
        problems += [f"lock {key}: depends on {d}, not in the lock" for d in p["depends"] if d not in lock]
    problems += [f"loadPyodideOptions.packages: {n} not in the lock" for n in lpo["packages"]
                 if canonicalize_name(n) not in lock]
    extra = sorted(p.name for p in pyo.iterdir())
    problems += [f"static/pyodide/{n}: not core, not in the lock" for n in extra if n not in shipped]
    exts = {str(p.parent.relative_to(out / "extensions")) for p in (out / "extensions").glob("**/package.json")
            if p.parent.parent.name.startswith("@") or p.parent.parent == out / "extensions"}
    if exts != EXPECTED_EXTENSIONS:
        problems.append(f"federated extensions {sorted(exts)}, expected {sorted(EXPECTED_EXTENSIONS)}")
    if problems:
        raise SystemExit("the built site is not self-contained:\n  " + "\n  ".join(problems))
    log(f"verified {len(configs)} jupyter-lite.json, {len(lock)} locked wheels with their sha256, extensions {sorted(exts)}")


def own_wheel(work: Path) -> Path:
    """The virtio_lab wheel of this checkout (pure Python, no dependencies)."""
    dist = work / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(REPO), "-w", str(dist)],
                   check=True)
    (whl,) = dist.glob("virtio_lab-*-py3-none-any.whl")
    return whl


def contents(notebooks: Path, work: Path) -> Path:
    """The notebooks alone (not execute.py, checkpoints or caches), as the site's files."""
    out = work / "contents"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for nb in sorted(notebooks.glob("*.ipynb")):
        shutil.copyfile(nb, out / nb.name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "_site", help="output dir (deleted first)")
    ap.add_argument("--notebooks", type=Path, default=REPO / "notebooks", help="the contents: the course notebooks")
    ap.add_argument("--work", type=Path, default=REPO / "build/lite", help="staging dir and wheel cache")
    ap.add_argument("--node-modules", type=Path, default=HERE / "node_modules")
    ap.add_argument("--py-compile", action=argparse.BooleanOptionalAction, default=True,
                    help="ship the wheels with CPython bytecode beside the sources, compiled by the npm "
                         "pyodide under Node.js (default: on; the kernel imports IPython about twice as fast)")
    a = ap.parse_args()
    work, out = a.work.resolve(), a.out.resolve()
    t0 = time.monotonic()

    check_versions(a.node_modules)
    wheels = [*kernel_wheels(work / "wheels-pypi"), *extension_wheels(), own_wheel(work)]
    if a.py_compile:
        wheels = py_compile(wheels, work / "wheels-pyc")
    lite_dir = work / "lite-dir"
    stage(lite_dir, a.node_modules, wheels)
    log(f"staged {lite_dir} with {len(wheels)} wheels and pyodide-lock.json")
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "jupyterlite_core", "build", "--lite-dir", str(lite_dir),
                    "--contents", str(contents(a.notebooks.resolve(), work)), "--output-dir", str(out)],
                   cwd=lite_dir, check=True)
    verify(out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log(f"built {out}: {size / 2**20:.1f} MiB in {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
