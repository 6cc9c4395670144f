"""Every tutorial notebook runs top to bottom in JupyterLab (Run > Run All Cells) without errors.

What counts as an error: an error output (an exception a cell did not catch), or a stderr output
holding a traceback. Other stderr output (a progress bar, a warning) is allowed: it is what
the tutorials show users, and nbval already compares it with the committed notebooks.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Locator

from .lab_page import BrowserPage

pytestmark = pytest.mark.browser

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
TUTORIALS = sorted(NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("name", [path.name for path in TUTORIALS])
def test_tutorial_runs_in_jupyterlab_without_errors(browser_page: BrowserPage, name: str) -> None:
    notebook = browser_page.open(name)
    notebook.run_all()
    notebook.wait_for_all(timeout=90)
    errors = notebook.errors()
    assert not errors, f"{name}: error output in the browser:\n" + "\n---\n".join(errors)
    # the kernels were pointed at the local server, as connect() says in the first cell (a
    # tutorial that starts a server of its own, as 11 does for its stand-in, says where instead)
    first_code = next(
        c for c in nbformat.read(NOTEBOOKS / name, as_version=4).cells if c.cell_type == "code"
    )
    if "stackit_nb.connect()" in first_code.source:
        first = notebook.output(0).inner_text()
        assert f"local STACKIT-compatible server at {browser_page.server.url}" in first, first


def test_opening_a_tutorial_leaves_it_unchanged(browser_page: BrowserPage) -> None:
    """JupyterLab rewrites a kernelspec that differs from its kernel's, then marks the file
    modified (and autosaves it). The committed tutorials carry the one it writes, so opening one
    changes nothing. A copy with the older "Python 3" shows how soon a change is marked; the
    committed one is then watched three times as long."""
    page = browser_page.page

    def dirty_tab(name: str) -> Locator:
        return page.locator(f'.lm-TabBar-tab.jp-mod-dirty[data-id] >> text="{name}"')

    older = nbformat.read(TUTORIALS[0], as_version=4)
    older.metadata["kernelspec"]["display_name"] = "Python 3"
    nbformat.write(older, browser_page.lab.root / "older-kernelspec.ipynb")
    started = time.monotonic()
    browser_page.open("older-kernelspec.ipynb")
    dirty_tab("older-kernelspec.ipynb").wait_for(timeout=30_000)
    marked_after = time.monotonic() - started

    shutil.copy(TUTORIALS[0], browser_page.lab.root / "as-committed.ipynb")
    started = time.monotonic()
    browser_page.open("as-committed.ipynb")
    page.wait_for_timeout(max(0.0, 3 * marked_after - (time.monotonic() - started)) * 1000)
    assert dirty_tab("as-committed.ipynb").count() == 0
