#!/usr/bin/env python3
"""Transcribe a QEMU release's machine types and compat properties into virtio_lab's data.

usage: tools/compat_tables.py SOURCE_TREE RELEASE [-o FILE]   (FILE '-' prints; default:
       virtio_lab/data/qemu-RELEASE/compat.json)
       tools/compat_tables.py --check SOURCE_ROOT   (every modelled release under
       SOURCE_ROOT/<release>: exit 1 if a committed table differs from its source)
       tools/compat_tables.py --types QEMU_BINARY RELEASE   (the QOM parents of every modelled
       type and its virtio child, asked of the release's binary over QMP qom-list-types:
       virtio_lab/data/qemu-RELEASE/qom-types.json)

Reads, from an unpacked QEMU source tree (/work/qemu-src/7.2 is Debian's 7.2 with its patches):
- hw/core/machine.c: the ``GlobalProperty hw_compat_X_Y[]`` arrays;
- hw/i386/pc.c: the ``GlobalProperty pc_compat_X_Y[]`` arrays;
- hw/i386/pc_piix.c and pc_q35.c: which machine types exist (DEFINE_I440FX_MACHINE,
  DEFINE_Q35_MACHINE and their 10.0 forms) and, following each ``*_machine_options``
  function into the newer one it calls first, the arrays it adds with compat_props_add, in
  the order QEMU adds them (local ``static GlobalProperty compat[]`` arrays included).
TYPE_* and other macro names are resolved from the tree's ``#define NAME "text"`` lines.
Standard library only; the output is sorted and stable so a diff shows a real change.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

#: the oldest machine version virtio_lab models (older types are refused by name)
OLDEST = (5, 2)
RELEASES = ("5.2", "7.2", "10.0")
ROOT = Path(__file__).resolve().parent.parent

_ARRAY = re.compile(r"(?:static\s+)?GlobalProperty\s+(\w+)\[\]\s*=\s*\{(.*?)\}\s*;", re.S)
_ENTRY = re.compile(r"\{\s*([^{}]*?)\s*\}")
_DEFINE_STR = re.compile(r'^\s*#\s*define\s+(\w+)\s+((?:"[^"\n]*"\s*)+)\s*$', re.M)
_FUNC = re.compile(r"^static void (\w+_options)\(MachineClass \*m\)\s*\{(.*?)^\}", re.S | re.M)
_OLD_DEFINE = re.compile(r'DEFINE_(?:I440FX|Q35)_MACHINE\(\s*\w+,\s*"([^"]+)",\s*\w+,\s*(\w+)\s*\)')
_NEW_DEFINE = re.compile(r"DEFINE_(I440FX|Q35)_MACHINE(_AS_LATEST|_BUGFIX)?\(\s*(\d+),\s*(\d+)"
                         r"(?:,\s*(\d+))?\s*\)")


def _macros(tree: Path) -> dict[str, str]:
    """Every ``#define NAME "text"`` (adjacent literals joined) in include/ and hw/."""
    out: dict[str, str] = {}
    for sub in ("include", "hw", "target/i386"):
        for f in sorted((tree / sub).rglob("*.h")) + sorted((tree / sub).rglob("*.c")):
            for m in _DEFINE_STR.finditer(f.read_text(errors="replace")):
                out.setdefault(m.group(1), "".join(re.findall(r'"([^"]*)"', m.group(2))))
    return out


def _strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


def _c_string(expr: str, macros: dict[str, str]) -> str:
    """A C string expression: literals, macro names and stringify(X), concatenated."""
    parts = re.findall(r'"([^"]*)"|stringify\((\w+)\)|(\w+)', expr)
    out = []
    for lit, stringified, name in parts:
        if stringified:
            out.append(stringified)  # stringify(PCI_CLASS_MEMORY_RAM) is the macro's name
        elif name:
            if name not in macros:
                raise ValueError(f"unresolved macro {name} in {expr!r}")
            out.append(macros[name])
        else:
            out.append(lit)
    return "".join(out)


def _split_fields(body: str) -> list[str]:
    fields, depth, cur = [], 0, []
    for ch in body:
        if ch == "," and depth == 0:
            fields.append("".join(cur).strip())
            cur = []
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur.append(ch)
    if "".join(cur).strip():
        fields.append("".join(cur).strip())
    return fields


def _arrays(text: str, macros: dict[str, str], scope: str = "") -> dict[str, list]:
    """GlobalProperty arrays: name -> [[driver, property, value(, "optional")], ...]."""
    out = {}
    for m in _ARRAY.finditer(text):
        name = m.group(1) if not scope else f"{scope}.{m.group(1)}"
        entries = []
        for e in _ENTRY.finditer(m.group(2)):
            fields = _split_fields(e.group(1))
            if len(fields) < 3:
                continue  # a macro that expands to entries (PC_CPU_MODEL_IDS): CPU models only
            row = [_c_string(f, macros) for f in fields[:3]]
            if any(".optional" in f and "true" in f for f in fields[3:]):
                row.append("optional")
            entries.append(row)
        out[name] = entries
    return out


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in name.rsplit("-", 1)[1].split("."))


def _machines(tree: Path, macros: dict[str, str]) -> tuple[dict, dict]:
    """(machine type -> ordered array names, local arrays) for pc_piix.c and pc_q35.c."""
    machines: dict[str, list[str]] = {}
    local: dict[str, list] = {}
    for fname in ("pc_piix.c", "pc_q35.c"):
        text = _strip_comments((tree / "hw/i386" / fname).read_text(errors="replace"))
        funcs = {m.group(1): m.group(2) for m in _FUNC.finditer(text)}
        # arrays defined at file scope in the machine file (10.0: pc_q35_compat_defaults)
        file_arrays = _arrays(re.sub(r"^static void \w+\(.*?^\}", "", text, flags=re.S | re.M), macros)
        local.update(file_arrays)

        def chain(fn: str, seen=()) -> list[str]:
            body = funcs.get(fn, "")
            out: list[str] = []
            for m in re.finditer(r"(\w+_options)\(m\)|compat_props_add\(\s*m->compat_props,\s*(\w+)", body):
                called, array = m.groups()
                if called and called in funcs and called not in seen:
                    out += chain(called, seen + (fn,))
                elif array:
                    shared = array.startswith(("hw_compat", "pc_compat")) or array in file_arrays
                    name = array if shared else f"{fn}.{array}"
                    out.append(name)
            return out

        for m in _OLD_DEFINE.finditer(text):
            machines[m.group(1)] = chain(m.group(2))
        family = "pc-i440fx" if fname == "pc_piix.c" else "pc-q35"
        prefix = "pc_i440fx_machine" if fname == "pc_piix.c" else "pc_q35_machine"
        for m in _NEW_DEFINE.finditer(text):
            ver = [v for v in m.group(3, 4, 5) if v is not None]
            machines[f"{family}-{'.'.join(ver)}"] = chain(f"{prefix}_{'_'.join(ver)}_options")
        for fn, body in funcs.items():
            local.update(_arrays(body, macros, fn))
    return machines, local


def tables(tree: Path, release: str) -> dict:
    macros = _macros(tree)
    arrays = {}
    for rel in ("hw/core/machine.c", "hw/i386/pc.c"):
        arrays.update(_arrays(_strip_comments((tree / rel).read_text(errors="replace")), macros))
    machines, local = _machines(tree, macros)
    arrays.update(local)
    modelled = {name: seq for name, seq in machines.items()
                if name.startswith(("pc-i440fx-", "pc-q35-")) and _version(name) >= OLDEST}
    used = sorted({a for seq in modelled.values() for a in seq})
    missing = [a for a in used if a not in arrays]
    if missing:
        raise ValueError(f"arrays named by a machine but not found: {missing}")
    newest = max(modelled, key=_version)
    return {
        "release": release,
        "source": f"QEMU {release} source: hw/core/machine.c, hw/i386/pc.c, pc_piix.c, pc_q35.c",
        "generated_by": "tools/compat_tables.py",
        "newest": ".".join(map(str, _version(newest))),
        "machines": {name: modelled[name] for name in sorted(modelled, key=lambda n: (n.split("-")[1], _version(n)))},
        "arrays": {name: arrays[name] for name in used},
    }


def _dump(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=False) + "\n"


def qom_types(binary: str, release: str) -> dict:
    """{type: parent} for every modelled type, its virtio child and their ancestors."""
    import subprocess
    qmp = ('{"execute":"qmp_capabilities"}\n'
           '{"execute":"qom-list-types","arguments":{"abstract":true}}\n{"execute":"quit"}\n')
    r = subprocess.run([binary, "-machine", "none", "-nodefaults", "-display", "none", "-qmp", "stdio"],
                       input=qmp, capture_output=True, text=True, timeout=60)
    parent = {}
    for line in r.stdout.splitlines():
        reply = json.loads(line).get("return")
        if isinstance(reply, list) and reply:
            parent = {t["name"]: t.get("parent") for t in reply}
    if not parent:
        raise SystemExit(f"{binary} answered no qom-list-types: {r.stderr.strip()[:200]}")
    props = ROOT / "virtio_lab/data" / f"qemu-{release}" / "props"
    wanted = set()
    for f in sorted(props.glob("*.txt")):
        wanted.add(f.stem)
        wanted |= set(re.findall(r"=<child<([\w-]+)>>", f.read_text()))
    out = {}
    for name in sorted(wanted):
        while name and name not in out:
            out[name] = parent.get(name)
            name = parent.get(name)
    return {"release": release, "generated_by": "tools/compat_tables.py --types (QMP qom-list-types)",
            "parents": dict(sorted(out.items()))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tree", help="an unpacked QEMU source tree (or, with --check, their parent)")
    ap.add_argument("release", nargs="?", help="the release it is (5.2, 7.2, 10.0)")
    ap.add_argument("-o", "--output", help="where to write (default: the package's data)")
    ap.add_argument("--check", action="store_true", help="compare every committed table")
    ap.add_argument("--types", action="store_true", help="TREE is a QEMU binary: record QOM parents")
    a = ap.parse_args(argv)
    if a.types:
        text, name = _dump(qom_types(a.tree, a.release)), "qom-types.json"
    else:
        text, name = None, "compat.json"
    if a.check:
        bad = 0
        for rel in RELEASES:
            want = _dump(tables(Path(a.tree) / rel, rel))
            path = ROOT / "virtio_lab/data" / f"qemu-{rel}" / "compat.json"
            if not path.exists() or path.read_text() != want:
                print(f"{path.relative_to(ROOT)} differs from {Path(a.tree) / rel}")
                bad = 1
        return bad
    if not a.release:
        ap.error("give the RELEASE the tree holds")
    text = text or _dump(tables(Path(a.tree), a.release))
    if a.output == "-":
        sys.stdout.write(text)
        return 0
    out = Path(a.output) if a.output else ROOT / "virtio_lab/data" / f"qemu-{a.release}" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
