"""ChatWidget in JupyterLab: type and press Enter, watch the reply stream, Stop, Retry, Export."""

from __future__ import annotations

import itertools
import json
import re

import pytest

from .lab_page import BrowserPage, write_notebook

pytestmark = pytest.mark.browser

MODEL = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
CELLS = [
    f'from stackit_nb.widgets import ChatWidget\n\nchat = ChatWidget(model="{MODEL}")\nchat',
    "import json\n\nprint(json.dumps([\n"
    "    {'role': m.role.value, 'text': m.text, 'meta': {k: m.meta.get(k) for k in"
    " ('stopped', 'finish_reason', 'usage')}}\n"
    "    for m in chat.messages\n]))",
]

# Every text the reply being written showed, while it was being written (see the stream test).
OBSERVE = """chat => {
  const seen = (window.__chatLive = []);
  new MutationObserver(() => {
    const live = chat.querySelector('.snb-live .snb-text');
    const text = live ? live.innerText.replace(/\\s+/g, ' ').trim() : '';
    if (text && text !== seen.at(-1)) seen.push(text);
  }).observe(chat, { subtree: true, childList: true, characterData: true });
}"""


# Labels whose text does not fit their box (the browser cuts them with an ellipsis).
CLIPPED_LABELS = """root => [...root.querySelectorAll('.widget-label, .widget-label-basic')]
  .filter(label => label.offsetParent !== null && label.textContent.trim())
  .map(label => ({text: label.textContent.trim(), scroll: label.scrollWidth,
                  client: label.clientWidth}))"""


# Whether a select shows its whole chosen option (text width, plus room for the arrow).
FITS = """select => {
  const context = document.createElement('canvas').getContext('2d');
  context.font = getComputedStyle(select).font;
  return context.measureText(select.selectedOptions[0].text).width + 32 <= select.clientWidth;
}"""


def test_chat_widget_streams_stops_retries_and_exports(browser_page: BrowserPage) -> None:
    server = browser_page.server
    server.configure(ttft=0.1, tokens_per_second=150)
    write_notebook(browser_page.lab.root / "browser_chat.ipynb", CELLS)
    notebook = browser_page.open("browser_chat.ipynb")
    notebook.run_cell(0)
    page = notebook.page
    chat = notebook.output(0).locator(".snb-chat")
    composer = chat.locator("textarea.snb-composer")
    replies = chat.locator(".snb-chat-history .snb-chat-assistant")
    button = {
        name: chat.locator(".snb-chat-buttons button", has_text=name)
        for name in ("Stop", "Retry", "Export")
    }
    chat.evaluate(OBSERVE)

    # 0. one "Clear" (the chat's); the attachments' button says what it removes. The settings
    # show their labels whole.
    assert chat.locator("button", has_text=re.compile(r"^\s*Clear\s*$")).count() == 1
    assert chat.locator("button", has_text="Remove images").count() == 1
    chat.get_by_text("Settings", exact=True).click()  # the settings pane opens
    chat.locator(".widget-label", has_text="Temperature").wait_for(timeout=10_000)
    labels = chat.evaluate(CLIPPED_LABELS)
    texts = {label["text"] for label in labels}
    assert {"System prompt", "Model", "Temperature", "model default"} <= texts, labels
    assert any(text.startswith("Max tokens") for text in texts), labels
    clipped = [label for label in labels if label["scroll"] > label["client"]]
    assert clipped == [], clipped
    # the model picker shows the whole id of the model in use
    picker = chat.locator("select:not([multiple])")  # not the "Compare with" list
    assert picker.evaluate(FITS), picker.input_value()

    # 1. type, Enter: the reply streams into the history
    composer.click()
    page.keyboard.type("Write 200 tokens about tea.")
    page.keyboard.press("Enter")
    replies.first.wait_for(timeout=30_000)
    assert "finish: stop" in replies.first.inner_text()
    first = " ".join(replies.first.locator(".snb-text").inner_text().split())
    live = [text for text, _ in itertools.groupby(page.evaluate("window.__chatLive"))]
    assert len(live) >= 3, live
    assert all(first.startswith(text) for text in live[:-1]), (live, first)
    assert chat.locator(".snb-chat-user", has_text="Write 200 tokens about tea.").count() == 1
    left_in_box = composer.input_value()  # checked at the end, after the other behaviours

    # 2. a long reply, stopped: what arrived stays, marked stopped
    server.configure(tokens_per_second=60)
    composer.click()
    page.keyboard.press("Control+A")  # replaces whatever the box holds
    page.keyboard.type("Write 400 tokens about rivers.")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => (document.querySelector('.snb-chat .snb-live .snb-text')?.innerText.length ?? 0)"
        " > 150"
    )
    button["Stop"].click()
    stopped = replies.nth(1)
    stopped.wait_for(timeout=10_000)
    assert "stopped" in stopped.locator(".snb-footer").inner_text()
    partial = " ".join(stopped.locator(".snb-text").inner_text().split())
    assert len(partial) > 100

    # 3. Retry: the same question again, answered in full
    server.configure(tokens_per_second=400)
    button["Retry"].click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.snb-chat-history .snb-chat-assistant .snb-footer')]"
        ".some(f => f.innerText.includes('400 out') && f.innerText.includes('finish: stop'))",
        timeout=30_000,
    )
    notebook.run_cell(1)
    messages = json.loads(notebook.output(1).inner_text())
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    answer = messages[-1]
    assert answer["meta"]["finish_reason"] == "stop" and not answer["meta"]["stopped"]
    assert answer["meta"]["usage"]["completion_tokens"] == 400
    assert " ".join(answer["text"].split()).startswith(partial.rstrip(". "))

    # 4. Export: a transcript next to the notebook, Markdown and JSON
    button["Export"].click()
    notice = chat.locator("i", has_text="saved stackit-chat-")
    notice.wait_for(timeout=10_000)
    saved, folder = notice.inner_text().removeprefix("saved ").split(" in ")
    names = saved.split(" and ")
    assert all(re.fullmatch(r"stackit-chat-\d{8}-\d{6}\.(md|json)", name) for name in names)
    assert folder == str(browser_page.lab.root)  # the kernel's working directory
    markdown = (browser_page.lab.root / names[0]).read_text(encoding="utf-8")
    assert "Write 400 tokens about rivers." in markdown and first[:60] in " ".join(markdown.split())
    saved = json.loads((browser_page.lab.root / names[1]).read_text(encoding="utf-8"))
    assert saved
    chat.scroll_into_view_if_needed()

    # typed quickly and sent with Enter: the message box is empty again
    assert left_in_box == "", f"the message box still holds {left_in_box!r} after Enter sent it"
