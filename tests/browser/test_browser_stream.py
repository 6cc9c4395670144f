"""StreamingDisplay in JupyterLab: the reply appears piece by piece, then stays as plain output."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest

from .lab_page import BrowserPage, write_notebook

pytestmark = pytest.mark.browser

MODEL = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
CELLS = [
    "from stackit_nb import STACKITChatGenerator\nfrom stackit_nb.widgets import StreamingDisplay",
    f'generator = STACKITChatGenerator(model="{MODEL}", streaming_callback=StreamingDisplay())\n'
    'reply = generator.run("Write 300 tokens about rivers.")["replies"][0]',
    'import json\nprint(json.dumps({"text": reply.text, "usage": reply.meta["usage"]}))',
]

# Records every state of the cell's output area the page showed: the live widget's text while it
# is visible, and the plain output that replaces it at the end. The output area, not the widget:
# the handover to the plain output happens beside the widget.
OBSERVE = """cell => {
  const states = (window.__streamStates = []);
  const text = el => (el ? el.innerText.replace(/\\s+/g, ' ').trim() : null);
  const snapshot = () => {
    const live = cell.querySelector('.snb-live');
    const child = live && live.closest('.jp-OutputArea-child');
    const liveShown = !!live && !!child && child.style.display !== 'none';
    const final = cell.querySelector('.snb-reply:not(.snb-live)');
    return {
      live: liveShown ? text(live.querySelector('.snb-text')) : null,
      liveFooter: liveShown ? text(live.querySelector('.snb-footer')) : null,
      final: text(final && final.querySelector('.snb-text')),
      footer: text(final && final.querySelector('.snb-footer')),
    };
  };
  new MutationObserver(() => {
    const state = snapshot();
    if (JSON.stringify(state) !== JSON.stringify(states.at(-1))) states.push(state);
  }).observe(cell, { subtree: true, childList: true, characterData: true, attributes: true });
}"""


def normalize(text: str) -> str:
    return " ".join(text.split())


def test_streaming_display_shows_the_reply_as_it_streams(browser_page: BrowserPage) -> None:
    # about 2 s of streaming at 20 front-end messages a second: many states to observe
    browser_page.server.configure(ttft=0.2, tokens_per_second=150)
    write_notebook(browser_page.lab.root / "browser_stream.ipynb", CELLS)
    notebook = browser_page.open("browser_stream.ipynb")
    notebook.run_cell(0)
    notebook.cell(1).evaluate(OBSERVE)
    notebook.run_cell(1, wait=False)
    live = notebook.output(1).locator(".snb-live .snb-text")
    live.wait_for(timeout=20_000)
    notebook.page.wait_for_function(
        "() => (document.querySelector('.snb-live .snb-text')?.innerText.length ?? 0) > 200"
    )
    browser_page.screenshot("streaming_display-mid-stream")
    notebook.wait_until_ran(1, "[*]:", timeout=30)
    notebook.output(1).locator(".snb-reply:not(.snb-live) .snb-footer").wait_for()
    notebook.run_cell(2)
    result = json.loads(notebook.output(2).inner_text())
    states: list[dict[str, Any]] = notebook.page.evaluate("window.__streamStates")

    expected = normalize(result["text"])
    assert result["usage"]["completion_tokens"] == 300
    # several growing intermediate texts, each the beginning of the reply, before the end
    shown = [s["live"] for s in states if s["live"] and s["final"] is None]
    partial = [text for text, _ in itertools.groupby(shown)]  # footer-only changes dropped
    assert len(partial) >= 5, f"too few intermediate states: {partial}"
    assert all(len(a) < len(b) for a, b in itertools.pairwise(partial)), partial
    assert all(expected.startswith(text) for text in partial), (partial, expected)
    assert len(partial[0]) < len(expected) / 2
    assert any("streaming" in (s["liveFooter"] or "") for s in states)
    # the end: the live view hands over to the plain output, which holds exactly the reply
    end = states[-1]
    assert end["live"] is None and end["final"] == expected
    footer = end["footer"]
    assert re.search(r"\b13 tokens in · 300 out\b", footer), footer
    assert re.search(r"first token \d+\.\d\d s · [\d,.]+ tokens/s", footer), footer
    assert "finish: stop" in footer
    notebook.output(1).scroll_into_view_if_needed()
