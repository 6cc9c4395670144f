"""The tutorials' exercises: every solution runs, after its notebook, in a real kernel.

A solution is the Python code in a collapsed ``<details><summary>Solution</summary>`` block of the
notebook's Exercises cell (one code cell per fenced block). The notebook runs top to bottom in a
copy of notebooks/, on the local server's scripted engine, then each solution; a solution that
raises fails the test, one that shows nothing too (a reader must see what it does).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from scripts.execute_tutorials import NOTEBOOKS, execute

pytestmark = pytest.mark.kernel

SOLUTION = re.compile(r"<details><summary>Solution</summary>(.*?)</details>", re.DOTALL)
FENCED = re.compile(r"```python\n(.*?)```", re.DOTALL)
TUTORIALS = sorted(NOTEBOOKS.glob("*.ipynb"))


def solutions(nb: nbformat.NotebookNode) -> list[str]:
    """The code of every solution, in order."""
    found = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for block in SOLUTION.findall(cell.source):
                found.extend(code.strip() for code in FENCED.findall(block))
    return found


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_every_solution_runs_after_its_notebook(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = solutions(nb)
    assert len(code) >= 2, f"{path.name}: the exercises have fewer than two solutions with code"
    first = len(nb.cells)
    nb.cells.extend(nbformat.v4.new_code_cell(source) for source in code)
    workdir = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, workdir)
    copy = workdir / path.name
    nbformat.write(nb, copy)
    executed = execute(copy, workdir)  # raises, naming the cell, when a solution fails
    for cell in executed.cells[first:]:
        assert cell.outputs, f"{path.name}: this solution shows nothing:\n{cell.source}"
