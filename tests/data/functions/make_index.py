"""Rebuild a function index (file -> the functions it defines) from a C source tree.

    python tests/data/qemu-functions/make_index.py SOURCE_TREE OUT.txt \
        --label "QEMU 7.2 (Debian 1:7.2+dfsg-7+deb12u18, patches applied)" --dirs hw/virtio qom ...

The index holds facts only: each indexed file's path and the names of the functions it
defines (one line per file, ``path: name name ...``), never code. tests/test_citations.py
checks every ``file:function`` the trace cites against it.

What counts as a function: a top-level ``name(...) {`` after comments, string literals and
preprocessor lines are removed. Of an ``#if``/``#elif``/``#else`` chain only the branch the
build would most plausibly take is read (the first, or the ``#else`` of an ``#if 0``), so
braces stay balanced. Macros (``#define``) are not functions and are not indexed: an event
that stands for a macro or a phase cites the function that runs it. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile

_COMMENT_OR_LITERAL = re.compile(
    r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", re.S)
_TOKEN = re.compile(r"[A-Za-z_]\w*|\S")
_IDENT = re.compile(r"[A-Za-z_]\w*")
# annotations that may follow a parameter list: with arguments, and bare
_ANNOTATION_CALL = re.compile(r"__attribute__|__acquires|__releases|__must_hold|__printf|__scanf"
                              r"|G_GNUC_\w+|QEMU_\w+")
_ANNOTATION_BARE = re.compile(r"__\w+|G_GNUC_\w+|QEMU_\w+")
_KEYWORDS = frozenset({"if", "for", "while", "switch", "return", "sizeof", "do", "else",
                       "case", "typeof", "__typeof__", "_Generic", "defined"})

def _strip(text: str) -> str:
    """Comments and literals out (newlines kept), then the preprocessor lines."""
    text = _COMMENT_OR_LITERAL.sub(lambda m: "\n" * m.group(0).count("\n") if m.group(0)[0] == "/"
                                   else '""', text)
    text = re.sub(r"\\\n", " ", text)
    out: list[str] = []
    # a stack of (this branch is read, a branch of this chain was already read)
    stack: list[tuple[bool, bool]] = []
    for line in text.split("\n"):
        s = line.strip()
        if s.startswith("#"):
            d = re.match(r"#\s*(\w+)\s*(.*)", s)
            word, arg = (d.group(1), d.group(2).strip()) if d else ("", "")
            if word in ("if", "ifdef", "ifndef"):
                take = not (word == "if" and arg in ("0", "(0)"))
                stack.append((take, take))
            elif word == "elif" and stack:
                stack[-1] = (False, stack[-1][1])
            elif word == "else" and stack:
                stack[-1] = (not stack[-1][1], True)
            elif word == "endif" and stack:
                stack.pop()
            continue
        out.append(line if all(r for r, _ in stack) else "")
    return "\n".join(out)


def functions(text: str) -> list[str]:
    """The names of the functions a C file defines, in order of appearance."""
    toks = _TOKEN.findall(_strip(text))
    names: list[str] = []
    depth = 0
    for i, t in enumerate(toks):
        if t == "{":
            if depth == 0:
                name = _definition_name(toks, i)
                if name:
                    names.append(name)
            depth += 1
        elif t == "}":
            depth = max(depth - 1, 0)
    return names


def _definition_name(toks: list[str], brace: int) -> str | None:
    """The name in ``name ( params ) [annotation[(...)]]... {``, or None for anything else."""
    j = brace - 1
    while j >= 0:
        if _ANNOTATION_BARE.fullmatch(toks[j]) and j > 0 and toks[j - 1] == ")":
            j -= 1  # a bare annotation after the parameter list
            continue
        if toks[j] != ")":
            return None
        open_ = _matching_open(toks, j)
        if open_ is None or open_ < 1:
            return None
        name = toks[open_ - 1]
        if not _IDENT.fullmatch(name) or name in _KEYWORDS:
            return None
        before = toks[open_ - 2] if open_ >= 2 else ""
        if before == ")" and _ANNOTATION_CALL.fullmatch(name):
            j = open_ - 2  # an annotation with arguments after the parameter list
            continue
        if before in ("=", ".", "->", ",", "(", "return", "?", ":"):
            return None
        return name
    return None


def _matching_open(toks: list[str], close: int) -> int | None:
    depth = 0
    for k in range(close, -1, -1):
        if toks[k] == ")":
            depth += 1
        elif toks[k] == "(":
            depth -= 1
            if depth == 0:
                return k
    return None


def build(root: str, dirs: list[str]) -> dict[str, list[str]]:
    """path (relative to root, '/'-separated) -> sorted unique function names."""
    index: dict[str, list[str]] = {}
    paths: list[str] = []
    for d in dirs:
        if os.path.isfile(os.path.join(root, d)):
            paths.append(os.path.join(root, d))
            continue
        for base, subdirs, names in os.walk(os.path.join(root, d)):
            subdirs.sort()
            paths += [os.path.join(base, n) for n in sorted(names) if n.endswith((".c", ".h"))]
    for p in paths:
        with open(p, encoding="utf-8", errors="replace") as fh:
            fns = functions(fh.read())
        if fns:
            index[os.path.relpath(p, root).replace(os.sep, "/")] = sorted(set(fns))
    return index


def write(index: dict[str, list[str]], out: str, label: str, dirs: list[str]) -> None:
    """One line per file; written to a temporary file, then renamed (never a torn index)."""
    lines = [f"# function index: {label}",
             f"# indexed: {' '.join(dirs)}",
             "# rebuild: python tests/data/qemu-functions/make_index.py (see README.md there)",
             f"# {len(index)} files, {sum(map(len, index.values()))} functions"]
    lines += [f"{path}: {' '.join(fns)}" for path, fns in sorted(index.items())]
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(out)), suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would keep the index from other users of the clone
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tree", help="the unpacked source tree (patches applied)")
    ap.add_argument("out", help="the index file to write")
    ap.add_argument("--label", required=True, help="what the tree is (release, Debian version)")
    ap.add_argument("--dirs", nargs="*", default=[], help="folders (read recursively) or files to index")
    a = ap.parse_args(argv)
    if not os.path.isdir(a.tree):
        print(f"make_index: {a.tree} is not a directory: pass an unpacked source tree", file=sys.stderr)
        return 2
    missing = [x for x in a.dirs if not os.path.exists(os.path.join(a.tree, x))]
    if missing:
        print(f"make_index: {a.tree} has no {missing[0]}: check the tree and --dirs",
              file=sys.stderr)
        return 2
    index = build(a.tree, a.dirs)
    write(index, a.out, a.label, a.dirs)
    print(f"{a.out}: {len(index)} files, {sum(map(len, index.values()))} functions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
