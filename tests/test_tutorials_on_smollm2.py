"""Every tutorial runs top to bottom on the smollm2 engine, the real small model a learner can pick.

Strict nbval (``notebooks/``) compares every output against the scripted engine; here each
notebook runs once more, in a real kernel, against ``connect()``'s local server with the smollm2
engine (``STACKIT_NB_ENGINE=smollm2``), in a copy of notebooks/. No cell may fail. A real model's
words differ from the committed ones, so only what the cells tagged ``same-on-every-engine``
print is compared: what the lesson states as a fact about the toolkit (a stream equals the reply,
a stopped reply is marked, an error names the models to use), not the model's text.

Without the engine these tests skip, except under CI (``CI`` set), where that is a failure.
A real model writes every reply, so a notebook takes 10-60 s here (07 asks it about twenty
questions; on a loaded machine up to about 90 s).
"""

from __future__ import annotations

import configparser
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from scripts.execute_tutorials import NOTEBOOKS, execute

TAG = "same-on-every-engine"
TUTORIALS = sorted(NOTEBOOKS.glob("*.ipynb"))
SANITIZE = Path(__file__).with_name("nbval_sanitize.cfg")

pytestmark = [pytest.mark.smollm2, pytest.mark.kernel]


def _sanitizers() -> list[tuple[re.Pattern[str], str]]:
    """The regex/replace pairs strict nbval applies (tests/nbval_sanitize.cfg)."""
    config = configparser.ConfigParser()
    config.read(SANITIZE)
    return [(re.compile(config[s]["regex"]), config[s]["replace"]) for s in config.sections()]


SANITIZERS = _sanitizers()


def _printed(cell: dict) -> str:
    """What a cell printed (stdout, stderr) and the error it raised, sanitized as nbval does."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif output["output_type"] == "error":
            parts.append(f"{output['ename']}: {output['evalue']}")
    text = "".join(parts)
    for pattern, replacement in SANITIZERS:
        text = pattern.sub(replacement, text)
    return text


def test_some_cells_are_checked_on_every_engine() -> None:
    """The tag is in use (a typo in it would silently turn every comparison off)."""
    tagged = [
        cell
        for path in TUTORIALS
        for cell in nbformat.read(path, as_version=4).cells
        if TAG in cell.get("metadata", {}).get("tags", [])
    ]
    assert len(tagged) >= 5


# A real model at ~40 tokens/s on 2 shared cores takes up to a minute for one tutorial, hence the
# timeout. Parallel workers share the tutorials out (conftest.work_unit).
@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs_on_smollm2(path: Path, tmp_path: Path, smollm2_engine: None) -> None:
    workdir = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, workdir)
    ran = execute(path, workdir, engine="smollm2", timeout=240)
    committed = nbformat.read(path, as_version=4)
    assert "smollm2 engine" in _printed(ran.cells[_first_code(ran)])
    for cell, saved in zip(ran.cells, committed.cells, strict=True):
        if TAG in saved.get("metadata", {}).get("tags", []):
            assert _printed(cell) == _printed(saved), cell.source


def _first_code(nb: dict) -> int:
    return next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
