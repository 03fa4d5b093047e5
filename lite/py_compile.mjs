// Byte-compile pure-Python wheels for the browser's CPython, inside that very CPython:
//   node lite/py_compile.mjs IN_DIR OUT_DIR
// runs the npm `pyodide` package (the same build the site ships, so the same magic number)
// under Node.js, and writes each IN_DIR/*.whl to OUT_DIR with, beside every module,
// __pycache__/NAME.cpython-314.pyc (unchecked-hash: no timestamps, never re-validated).
// Test packages (*/tests/*) are left as they are: nothing imports them. Sources stay, so tracebacks and inspect.getsource still work. RECORD is rewritten and the
// zip entries get a fixed date, so the output depends only on the input wheels.
// Why: importing IPython from sources costs the kernel ~2x its import time in compile.
import { loadPyodide } from "pyodide";
import path from "node:path";

const [inDir, outDir] = process.argv.slice(2).map((p) => path.resolve(p));
const py = await loadPyodide();
py.FS.mkdirTree("/in");
py.FS.mkdirTree("/out");
py.FS.mount(py.FS.filesystems.NODEFS, { root: inDir }, "/in");
py.FS.mount(py.FS.filesystems.NODEFS, { root: outDir }, "/out");
py.runPython(`
import base64, hashlib, importlib.util, pathlib, sys, warnings, zipfile
warnings.simplefilter("ignore")  # SyntaxWarnings of vendored test files

DATE = (1980, 1, 1, 0, 0, 0)
tag = sys.implementation.cache_tag

def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"

def compile_wheel(src, dst):
    with zipfile.ZipFile(src) as z:
        entries = [(i.filename, z.read(i)) for i in z.infolist() if not i.is_dir()]
    record = next(n for n, _ in entries if n.endswith(".dist-info/RECORD"))
    out, n = [], 0
    for name, data in entries:
        if name == record:
            continue
        out.append((name, data))
        top = name.split("/")[0]
        if name.endswith(".py") and not top.endswith((".dist-info", ".data")) and "/tests/" not in name:
            try:
                code = compile(data, name, "exec", dont_inherit=True)
            except SyntaxError:
                continue  # e.g. a py2-only test file: Python would not import it either
            parent, stem = name.rpartition("/")[0], name.rpartition("/")[2][:-3]
            pyc = f"{parent + '/' if parent else ''}__pycache__/{stem}.{tag}.pyc"
            out.append((pyc, importlib._bootstrap_external._code_to_hash_pyc(
                code, importlib.util.source_hash(data), checked=False)))
            n += 1
    lines = [record_line(name, data) for name, data in out] + [f"{record},,"]
    out.append((record, ("\\n".join(lines) + "\\n").encode()))
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in out:
            info = zipfile.ZipInfo(name, DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return n

for whl in sorted(pathlib.Path("/in").glob("*.whl")):
    n = compile_wheel(whl, pathlib.Path("/out") / whl.name)
    print(f"py-compile: {whl.name}: {n} modules", flush=True)
`);
