"""The committed tutorials are fit to share: executed, no secrets, no local paths, no raw uploads.

(That re-running them gives the committed outputs is checked by strict nbval on notebooks/.)
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
# What a leak would look like: a local server token, a bearer header, a key-like assignment.
SECRET_PATTERNS = [
    re.compile(r"local-[A-Za-z0-9_-]{20,}"),
    re.compile(r"Bearer\s+[A-Za-z0-9._-]{8,}"),
    re.compile(r"STACKIT_API_KEY['\"]?\s*[:=]\s*['\"][^'\"]{8,}"),
]
LOCAL_PATHS = re.compile(r"(?<![\w.])/(?:work|tmp|root|home|Users|var/folders)/")
MAX_WIDGET_STATE_BYTES = 200_000  # thumbnails and text only: an uploaded photo would be larger


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.name)
def notebook(request: pytest.FixtureRequest) -> tuple[Path, dict]:
    path: Path = request.param
    return path, json.loads(path.read_text())


def test_there_are_tutorials() -> None:
    assert len(NOTEBOOKS) >= 5
    assert [p.name[:2] for p in NOTEBOOKS] == sorted(p.name[:2] for p in NOTEBOOKS)


def test_every_code_cell_was_executed_in_order(notebook: tuple[Path, dict]) -> None:
    _, nb = notebook
    counts = [c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code"]
    assert counts and None not in counts, "run the notebook and save it with its outputs"
    assert counts == sorted(counts) and counts[0] == 1, "run it top to bottom in a fresh kernel"


def test_no_secret_and_no_local_path(notebook: tuple[Path, dict]) -> None:
    path, _ = notebook
    text = path.read_text()
    for pattern in SECRET_PATTERNS:
        assert not pattern.search(text), f"{path.name} contains something like a secret"
    match = LOCAL_PATHS.search(text)
    where = text[match.start() : match.start() + 60] if match else ""
    assert match is None, f"{path.name} contains a local path: {where!r}"


def test_widget_state_holds_no_uploaded_bytes(notebook: tuple[Path, dict]) -> None:
    path, nb = notebook
    state = nb.get("metadata", {}).get("widgets", {})
    models = state.get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    # What a widget holds, without its front-end code (``_esm``/``_css``: the same few KB for
    # every live display, not data a reader or an upload put there).
    data = [
        {k: v for k, v in model.get("state", {}).items() if k not in ("_esm", "_css")}
        for model in models.values()
    ]
    size = len(json.dumps(data))
    assert size < MAX_WIDGET_STATE_BYTES, f"{path.name} saves {size} bytes of widget state"
    for model in models.values():
        if model.get("model_name") == "FileUploadModel":
            assert not model.get("state", {}).get("value"), f"{path.name} keeps uploaded files"


def test_streamed_output_is_one_block_per_cell(notebook: tuple[Path, dict]) -> None:
    """Consecutive stream outputs are merged: on GitHub or in nbconvert's HTML, one block per
    cell and stream, not one line per streamed token (`make notebooks` saves them so)."""
    path, nb = notebook
    for number, cell in enumerate(nb["cells"], 1):
        outputs = cell.get("outputs", [])
        for before, after in itertools.pairwise(outputs):
            split = before["output_type"] == after["output_type"] == "stream"
            assert not (split and before["name"] == after["name"]), (
                f"{path.name}, cell {number}: consecutive {before['name']} outputs; "
                "re-execute it with `make notebooks`"
            )


def test_saved_as_jupyterlab_saves_it(notebook: tuple[Path, dict]) -> None:
    """Opening a tutorial in JupyterLab changes nothing: the kernelspec is the one it writes,
    and no per-cell timing (which changes on every run) is kept."""
    path, nb = notebook
    assert nb["metadata"]["kernelspec"] == {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }, f"{path.name}: re-execute it with `make notebooks`"
    timed = [c for c in nb["cells"] if "execution" in c.get("metadata", {})]
    assert not timed, f"{path.name} keeps per-cell timing metadata"


def _text(cell: dict) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def test_opens_with_what_a_learner_needs_to_know(notebook: tuple[Path, dict]) -> None:
    """A header: what you will learn, what you need first, how long, which level, and what comes
    from the local stand-in without a key."""
    path, nb = notebook
    first = _text(nb["cells"][0])
    assert first.startswith("# "), f"{path.name}: the first cell is not the title"
    for part in ("**You will learn**", "**You need**", "**Time** about", "**Level**"):
        assert part in first, f"{path.name}: the header lacks {part}"
    assert "**Without a key / with a key.**" in first, f"{path.name}: say what the stand-in is"


def test_ends_with_a_recap_and_exercises_with_solutions(notebook: tuple[Path, dict]) -> None:
    """A recap, then two or three exercises, each with a solution that stays collapsed."""
    path, nb = notebook
    texts = [_text(c) for c in nb["cells"] if c["cell_type"] == "markdown"]
    recap = [t for t in texts if t.startswith("## Recap")]
    exercises = [t for t in texts if t.startswith("## Exercises")]
    assert len(recap) == 1 and recap[0].count("\n- ") >= 3, f"{path.name}: no recap of 3+ points"
    assert len(exercises) == 1, f"{path.name}: no Exercises section"
    solutions = exercises[0].count("<details><summary>Solution</summary>")
    assert 2 <= solutions <= 3, f"{path.name}: {solutions} exercises with solutions"
    assert solutions == exercises[0].count("</details>")
    numbered = re.findall(r"^\d\. ", exercises[0], flags=re.MULTILINE)
    assert len(numbered) == solutions, f"{path.name}: every exercise needs its solution"
