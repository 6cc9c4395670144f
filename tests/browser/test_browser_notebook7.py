"""Jupyter Notebook 7 (``jupyter notebook``) in Chromium: the ChatWidget sends and streams a
reply, its Compare streams other models side by side in the chat, and ``stackit_nb.compare``
streams its grid and ends in its static copy.

Notebook 7 is built from JupyterLab's parts, so cells, prompts and outputs have the same
classes; what differs is the URL layout (``/tree``, ``/notebooks/<path>``: one notebook a page)
and that it has its own server application. It gets its own isolated server here, started and
stopped by this module.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route

from stackit_nb.local import LocalSTACKIT

from .conftest import SERVER_DEFAULTS, kernel_env
from .lab_page import ARTIFACTS, JupyterLab, NotebookPage, outside, write_notebook

pytestmark = pytest.mark.browser

CHAT_MODEL = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
OTHERS = ["google/gemma-3-27b-it", "openai/gpt-oss-20b"]
MODELS = [CHAT_MODEL, "google/gemma-3-27b-it"]
CELLS = [
    f'from stackit_nb.widgets import ChatWidget\n\nchat = ChatWidget(model="{CHAT_MODEL}")\nchat',
    f"import json, stackit_nb\n\nc = stackit_nb.compare('Write 200 tokens about rivers.', "
    f"models={MODELS!r})",
    "print(json.dumps({\n"
    "    'compare': {m: r.text for m, r in c.replies.items()},\n"
    "    'chat': [m.text for m in chat.messages],\n"
    "    'chat_compare': [{m: r.text for m, r in x.replies.items()} for x in chat.comparisons],\n"
    "}))",
]

# Every text the chat's reply being written showed, and every state of its comparison's live
# grid (each column's text length while the grid is there), while they were being written.
OBSERVE_CHAT = """chat => {
  const seen = (window.__chatLive = []);
  const grids = (window.__chatGrid = []);
  new MutationObserver(() => {
    const live = chat.querySelector('.snb-chat-history > * > .snb-live .snb-text, '
      + '.snb-chat-history .snb-live:not(.snb-compare .snb-live) .snb-text');
    const text = live ? live.innerText.replace(/\\s+/g, ' ').trim() : '';
    if (text && text !== seen.at(-1)) seen.push(text);
    const grid = chat.querySelector('.snb-chat-compare .snb-compare');
    if (grid) {
      const columns = [...grid.querySelectorAll('.snb-live')]
        .map(l => (l.querySelector('.snb-text')?.innerText ?? '').length);
      if (JSON.stringify(columns) !== JSON.stringify(grids.at(-1))) grids.push(columns);
    }
  }).observe(chat, { subtree: true, childList: true, characterData: true });
}"""

# Each state of the comparison cell's output: the live columns' text lengths (while the grid
# is visible) and whether the static copy is there.
OBSERVE_COMPARE = """cell => {
  const states = (window.__compareStates = []);
  new MutationObserver(() => {
    const grid = cell.querySelector('.snb-compare');
    const shown = !!grid && grid.offsetParent !== null;
    const length = l => (l.querySelector('.snb-text')?.innerText ?? '').length;
    const state = {
      columns: shown ? [...grid.querySelectorAll('.snb-live')].map(length) : null,
      static: !!cell.querySelector('.snb-compare-static'),
    };
    if (JSON.stringify(state) !== JSON.stringify(states.at(-1))) states.push(state);
  }).observe(cell, { subtree: true, childList: true, characterData: true, attributes: true });
}"""


@pytest.fixture(scope="module")
def notebook7(
    tmp_path_factory: pytest.TempPathFactory, stackit_server: LocalSTACKIT
) -> Iterator[JupyterLab]:
    """Jupyter Notebook 7 on 127.0.0.1, isolated like the lab (own config, data, runtime and
    settings folders), its kernels on the local server; stopped with its kernels at the end."""
    home = tmp_path_factory.mktemp("notebook7")
    root = home / "notebooks"
    root.mkdir()
    app = JupyterLab(root=root, home=home, env=kernel_env(stackit_server), app="notebook")
    try:
        yield app.start()
    finally:
        app.stop()


@pytest.fixture
def notebook7_page(
    request: pytest.FixtureRequest,
    chromium: Browser,
    notebook7: JupyterLab,
    stackit_server: LocalSTACKIT,
) -> Iterator[Page]:
    """A page that may reach only Notebook 7 and the local server (the test fails if it
    tried anything else); a screenshot at the end, passed or failed."""
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    blocked: list[str] = []
    elsewhere = outside([notebook7.url, stackit_server.url])

    def block(route: Route) -> None:
        blocked.append(route.request.url)
        route.abort("blockedbyclient")

    context.route(elsewhere, block)
    page = context.new_page()
    page.on("websocket", lambda ws: blocked.append(ws.url) if elsewhere.match(ws.url) else None)
    stackit_server.configure(**SERVER_DEFAULTS)
    try:
        yield page
    finally:
        try:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=ARTIFACTS / f"{request.node.name.removeprefix('test_')}.png")
        finally:
            context.close()
            notebook7.shutdown_sessions()
            stackit_server.configure(**SERVER_DEFAULTS)
    if blocked:
        pytest.fail(f"the page tried to reach outside the machine: {blocked}")


def open_in_notebook7(page: Page, app: JupyterLab, path: str) -> NotebookPage:
    """Open ``/notebooks/<path>`` (Notebook 7's page for one notebook) with an idle kernel."""
    notebook = NotebookPage(page, app, path)
    page.goto(f"{app.url}/tree")  # the file browser comes first, as for a user
    page.locator(".jp-DirListing-item", has_text=path).wait_for(timeout=60_000)
    page.goto(f"{app.url}/notebooks/{path}")
    notebook.cells.first.wait_for(timeout=60_000)
    app.wait_for_idle_kernel(path, sleep=notebook.pause)
    return notebook


def test_chat_and_compare_in_notebook7(
    notebook7_page: Page, notebook7: JupyterLab, stackit_server: LocalSTACKIT
) -> None:
    stackit_server.configure(ttft=0.1, tokens_per_second=150)
    write_notebook(notebook7.root / "notebook7.ipynb", CELLS)
    page = notebook7_page
    notebook = open_in_notebook7(page, notebook7, "notebook7.ipynb")
    assert page.url.endswith("/notebooks/notebook7.ipynb")

    # 1. the chat: type, Enter, the reply streams into the history
    notebook.run_cell(0)
    chat = notebook.output(0).locator(".snb-chat")
    chat.evaluate(OBSERVE_CHAT)
    composer = chat.locator("textarea.snb-composer")
    composer.click()
    page.keyboard.type("Write 200 tokens about tea.")
    page.keyboard.press("Enter")
    reply = chat.locator(".snb-chat-history .snb-chat-assistant").first
    reply.wait_for(timeout=30_000)
    assert "finish: stop" in reply.inner_text()
    first = " ".join(reply.locator(".snb-text").inner_text().split())
    live = [text for text, _ in itertools.groupby(page.evaluate("window.__chatLive"))]
    assert len(live) >= 3, live  # it streamed: several partial texts were shown
    assert all(first.startswith(text) for text in live[:-1]), (live, first)

    # 2. the chat's Compare: models chosen under Settings, the button; the columns stream in
    # the chat, then its static copy stays in the history
    chat.get_by_text("Settings", exact=True).click()
    chat.locator("select[multiple]").select_option(OTHERS)
    chat.locator(".snb-chat-buttons button", has_text="Compare").click()
    copy = chat.locator(".snb-chat-compare .snb-compare-static")
    copy.wait_for(timeout=30_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    copy.scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "notebook7-chat-compare.png")
    grids = page.evaluate("window.__chatGrid")
    assert any(len(g) == 2 and all(n > 0 for n in g) for g in grids), grids
    assert len(grids) >= 3, grids  # more than the empty columns and the end: it streamed

    # 3. stackit_nb.compare: the grid streams both columns, then hands over to its copy
    notebook.cell(1).evaluate(OBSERVE_COMPARE)
    notebook.run_cell(1, wait=False)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-CodeCell .snb-compare .snb-live .snb-text')]"
        ".filter(e => e.innerText.length > 100).length >= 2",
        timeout=30_000,
    )
    notebook.wait_until_ran(1, "[*]:", timeout=60)
    notebook.output(1).locator(".snb-compare-static").wait_for()
    states: list[dict[str, Any]] = page.evaluate("window.__compareStates")
    notebook.run_cell(2)
    texts = json.loads(notebook.output(2).inner_text())

    assert list(texts["compare"]) == MODELS
    columns = [s["columns"] for s in states if s["columns"]]
    partial = [c for c in columns if 0 < c[0] < len(texts["compare"][MODELS[0]]) and c[1] > 0]
    assert len(partial) >= 2, columns  # both columns partly written at once
    assert states[-1]["columns"] is None and states[-1]["static"]  # the grid made way
    static = " ".join(notebook.output(1).locator(".snb-compare-static").inner_text().split())
    for text in texts["compare"].values():
        assert " ".join(text.split()[:12]) in static

    # what the kernel holds matches what the page showed
    assert texts["chat"][0] == "Write 200 tokens about tea." and len(texts["chat"]) == 2
    assert " ".join(texts["chat"][1].split()) == first
    (compared,) = texts["chat_compare"]
    assert list(compared) == OTHERS
    shown = " ".join(copy.inner_text().split())
    for text in compared.values():
        assert " ".join(text.split()[:12]) in shown
