"""The README's numbers about the course and the plug are the emulation's, not typed and left stale.

The course table lists every notebook with its real exercise count, the total is the catalogue's,
and the explorer screenshot's caption names the step the browser suite photographs
(tests/browser/test_jupyterlab.py: the step after msix_init starts, where the MSI-X capability is
added) with that step's real offset.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import virtio_lab
from virtio_lab.course.exercises import EXERCISES, NOTEBOOKS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
ROW = re.compile(r"^\| \[(\d\d) · [^\]]+\]\(notebooks/([\w-]+)\.ipynb\) \|.*\| (\d+) min \| (\d+) \|$", re.M)


def test_course_table_lists_every_notebook_with_its_exercise_count():
    rows = {name: int(count) for _, name, _, count in ROW.findall(README)}
    assert list(rows) == list(NOTEBOOKS)
    assert rows == dict(Counter(e.notebook for e in EXERCISES.values()))
    total = re.search(r"\((\d+) checked exercises in all", README)
    assert total and int(total.group(1)) == len(EXERCISES)


def test_explorer_caption_names_the_photographed_step():
    caption = re.search(r"!\[The plug explorer at step (\d+), where msix_init's pci_add_capability adds the "
                        r"MSI-X capability at (0x[0-9a-f]+)", README)
    assert caption, "the explorer screenshot's caption changed shape: update this test with it"
    trace = virtio_lab.plug("virtio-net-pci")
    step = trace.index_of("msix_init") + 1
    event = trace.events[step]
    assert int(caption.group(1)) == step
    assert event.function == "pci_add_capability" and event.detail("cap_name") == "MSI-X"
    assert int(caption.group(2), 16) == event.detail("cap_offset")


def test_examples_name_no_step_numbers():
    """Examples find their steps by function (index_of): a typed step number goes stale."""
    code = "\n".join(re.findall(r"```python\n(.*?)```", README, re.S))
    assert not re.search(r"state_at\(\d+\)|(?:HexGrid|CapChain|StepView)\(trace, \d+|step=\d+", code)
