"""stackit_nb.compare in JupyterLab: every column streams at once, then the static copy stays."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .lab_page import BrowserPage, write_notebook

pytestmark = pytest.mark.browser

MODELS = [
    "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8",
    "google/gemma-3-27b-it",
    "nobody/no-such-model",
]
CELLS = [
    "import json, stackit_nb",
    f"c = stackit_nb.compare('Write 200 tokens about rivers.', models={MODELS!r})",
    "print(json.dumps({m: r.text for m, r in c.replies.items()}))",
]

# Records, on every change of the cell's output area, the text of each live column (while the
# grid is visible) and whether the static copy is there.
OBSERVE = """cell => {
  const states = (window.__compareStates = []);
  const snapshot = () => {
    const grid = cell.querySelector('.snb-compare');
    const shown = !!grid && grid.offsetParent !== null;
    const length = l => (l.querySelector('.snb-text')?.innerText ?? '').length;
    const columns = shown ? [...grid.querySelectorAll('.snb-live')].map(length) : null;
    const error = shown ? !!grid.querySelector('.snb-error') : false;
    return { columns, error, static: !!cell.querySelector('.snb-compare-static') };
  };
  new MutationObserver(() => {
    const state = snapshot();
    if (JSON.stringify(state) !== JSON.stringify(states.at(-1))) states.push(state);
  }).observe(cell, { subtree: true, childList: true, characterData: true, attributes: true });
}"""


def test_the_grid_streams_every_column_then_keeps_a_static_copy(
    browser_page: BrowserPage,
) -> None:
    browser_page.server.configure(ttft=0.2, tokens_per_second=120)
    write_notebook(browser_page.lab.root / "browser_compare.ipynb", CELLS)
    notebook = browser_page.open("browser_compare.ipynb")
    notebook.run_cell(0)
    notebook.cell(1).evaluate(OBSERVE)
    notebook.run_cell(1, wait=False)
    notebook.page.wait_for_function(
        "() => [...document.querySelectorAll('.snb-compare .snb-live .snb-text')]"
        ".filter(e => e.innerText.length > 100).length >= 2",
        timeout=30_000,
    )
    browser_page.screenshot("compare-mid-stream")
    notebook.wait_until_ran(1, "[*]:", timeout=60)
    notebook.output(1).locator(".snb-compare-static").wait_for()
    notebook.run_cell(2)
    texts = json.loads(notebook.output(2).inner_text())
    states: list[dict[str, Any]] = notebook.page.evaluate("window.__compareStates")

    assert list(texts) == MODELS[:2]
    # Once all three columns are drawn (the page may add them one by one, and the observer can
    # see the grid in between: only a slow machine shows that, so it is not an error).
    drawn = [s["columns"] for s in states if s["columns"]]
    assert all(len(c) <= 3 for c in drawn)
    live = [c for c in drawn if len(c) == 3]
    assert live
    # both answering columns grew at the same time: a state with both partly written
    partial = [c for c in live if 0 < c[0] < len(texts[MODELS[0]]) and c[1] > 0]
    assert len(partial) >= 3, live
    assert any(s["error"] for s in states)  # the failing model's error, live in its column
    # the end: the grid is hidden, the static copy holds both replies and the error
    assert states[-1]["columns"] is None and states[-1]["static"]
    copy = notebook.output(1).locator(".snb-compare-static").inner_text()
    for text in texts.values():
        assert " ".join(text.split()[:12]) in " ".join(copy.split())
    assert "ModelNotFoundError" in copy
    notebook.output(1).scroll_into_view_if_needed()
