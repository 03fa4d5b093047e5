"""The glossary: docs/glossary.md is the generated table, and every term is introduced before use.

"Introduced" means: the notebook the glossary names is the first notebook (in course order) whose
prose uses the term, and there its first use is in bold — the place it is defined. Only the
markdown cells are read (code comments and outputs name QEMU's functions, not terms to learn),
and each notebook's title and learning goals (its first cell, up to the line with its duration)
are a preview of what it defines, not a use.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from virtio_lab.course.exercises import NOTEBOOKS
from virtio_lab.course.glossary import TERMS, glossary, markdown, term, tip

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"
BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)
HEADING = re.compile(r"^#+ .*$", re.M)   # a heading names what the cell goes on to define
LINK_TARGET = re.compile(r"\]\([^)]*\)")  # a link's target is not text either


GOALS_END = re.compile(r"^\*About .*$", re.M)


def prose(name: str) -> list[str]:
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "markdown"]
    end = GOALS_END.search(cells[0])
    cells[0] = cells[0][end.end():] if end else cells[0]
    return [LINK_TARGET.sub("]", HEADING.sub(lambda m: " " * len(m.group()), c)) for c in cells]


@pytest.fixture(scope="module")
def course() -> dict[str, list[str]]:
    return {nb: prose(nb) for nb in NOTEBOOKS if (NB_DIR / f"{nb}.ipynb").exists()}


def first_use(cells: list[str], uses: tuple[str, ...]) -> tuple[int, int] | None:
    """(cell, position) of the first match of any pattern."""
    for i, text in enumerate(cells):
        hits = [m.start() for u in uses for m in re.finditer(u, text)]
        if hits:
            return i, min(hits)
    return None


def in_bold(text: str, pos: int) -> bool:
    return any(m.start() <= pos < m.end() for m in BOLD.finditer(text))


def test_docs_glossary_is_the_generated_table():
    assert (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8") == markdown(), \
        "docs/glossary.md is stale: python -m virtio_lab.course.glossary > docs/glossary.md"


def test_terms_name_real_notebooks_and_unique_anchors():
    assert len({t.anchor for t in TERMS}) == len(TERMS)
    for t in TERMS:
        assert t.notebook in NOTEBOOKS, t
        assert t.text.endswith("."), t.name


CHECKED = [t for t in TERMS if t.uses]


@pytest.mark.parametrize("t", CHECKED, ids=[t.anchor for t in CHECKED])
def test_term_is_defined_before_its_first_use(course, t):
    order = [nb for nb in NOTEBOOKS if nb in course]
    home = order.index(t.notebook)
    for nb in order[:home]:
        hit = first_use(course[nb], t.uses)
        assert hit is None, (f"{t.name!r} is used in {nb} (markdown cell {hit[0]}: "
                             f"{course[nb][hit[0]][max(0, hit[1] - 40):hit[1] + 40]!r}) "
                             f"before {t.notebook} introduces it")
    hit = first_use(course[t.notebook], t.uses)
    assert hit is not None, f"{t.notebook} never mentions {t.name!r}"
    cell, pos = hit
    text = course[t.notebook][cell]
    assert in_bold(text, pos), (f"{t.notebook} first uses {t.name!r} without defining it (in bold): "
                                f"{text[max(0, pos - 40):pos + 40]!r}")


def test_lookups():
    assert term("bar").name == "BAR" and term("B:D.F").anchor == "bdf" and term("nothing") is None
    assert "Base Address Register" in glossary("BAR") and "did you mean" in glossary("BARR")
    assert "MSI-X" in tip("MSI-X cap @0x98", "message_control")
    assert tip("header", "bar4").startswith("BAR: ") and "docs/glossary.md#bar" in tip("header", "bar4")
    assert tip("free", "(unused)") == ""
