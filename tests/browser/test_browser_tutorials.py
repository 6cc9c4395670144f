"""Every tutorial notebook runs top to bottom in JupyterLab (Run > Run All Cells) without errors.

What counts as an error: an error output (an exception a cell did not catch), or a stderr output
holding a traceback. Other stderr output (a progress bar, a warning) is allowed: it is what
the tutorials show users, and nbval already compares it with the committed notebooks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .lab_page import BrowserPage

pytestmark = pytest.mark.browser

TUTORIALS = sorted(Path(__file__).resolve().parents[2].joinpath("notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("name", [path.name for path in TUTORIALS])
def test_tutorial_runs_in_jupyterlab_without_errors(browser_page: BrowserPage, name: str) -> None:
    notebook = browser_page.open(name)
    notebook.run_all()
    notebook.wait_for_all(timeout=90)
    errors = notebook.errors()
    assert not errors, f"{name}: error output in the browser:\n" + "\n---\n".join(errors)
    # the kernels were pointed at the local server, as connect() says in the first cell
    first = notebook.output(0).inner_text()
    assert f"local STACKIT-compatible server at {browser_page.server.url}" in first, first
