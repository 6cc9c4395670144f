"""A reply's Markdown image that points elsewhere loads nothing in JupyterLab: not while the reply
streams, not from its saved copy after a reload, not from reasoning or an imported transcript.

A logging server on 127.0.0.1 stands in for an attacker's host. This test lets the page reach it
(the session's guard blocks every other address), so a leak would arrive there. Each check ends
with a control image that does load: the page's requests are seen in order, so when the control
has arrived and nothing else has, nothing else was asked for.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Request, Route

from .lab_page import BrowserPage, NotebookPage, write_notebook

pytestmark = pytest.mark.browser

NAME = "browser_remote_images.ipynb"


class LoggingServer:
    """Records the path of every request it gets; answers 204."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        paths = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)


@pytest.fixture
def logging_server() -> Iterator[LoggingServer]:
    server = LoggingServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def cells(base: str) -> list[str]:
    return [
        "from haystack.dataclasses import ChatMessage, ReasoningContent, StreamingChunk\n"
        "from stackit_nb.widgets import ChatWidget, StreamingDisplay\n"
        "from stackit_nb.widgets._transcript import Transcript, to_json\n"
        f'BASE = "{base}"',
        # a streamed reply, with images in its reasoning and its text (inline and by reference)
        "d = StreamingDisplay()\n"
        'meta = {"model": "m"}\n'
        'think = ReasoningContent(reasoning_text=f"Thinking ![r]({BASE}/reasoning.png)")\n'
        'd(StreamingChunk(content="", meta=meta, index=0, reasoning=think))\n'
        'text = f"Hi ![t]({BASE}/reply.png?leak=KEY)\\n\\n"\n'
        "d(StreamingChunk(content=text, meta=meta, index=1))\n"
        'd(StreamingChunk(content=f"![f][1]\\n\\n[1]: {BASE}/reference.png", meta=meta, index=1))\n'
        'd(StreamingChunk(content="", meta=meta, finish_reason="stop"))\n'
        'usage = {"prompt_tokens": 1, "completion_tokens": 3}\n'
        'd(StreamingChunk(content="", meta={**meta, "usage": usage}))',
        # an imported transcript
        "messages = [\n"
        '    ChatMessage.from_user(f"see ![u]({BASE}/user.png)"),\n'
        "    ChatMessage.from_assistant(\n"
        '        f"answer ![a]({BASE}/assistant.png)",\n'
        '        reasoning=ReasoningContent(f"hmm ![c]({BASE}/chat-reasoning.png)"),\n'
        "    ),\n"
        "]\n"
        "ChatWidget.load(to_json(Transcript(messages=messages)))",
    ]


def check_nothing_loaded(
    page_requests: list[str], logging_server: LoggingServer, notebook: NotebookPage, control: str
) -> None:
    """Load a control image; then the controls must be all the page ever asked the logging
    server for, and all that reached it."""
    controls = [url.removeprefix(logging_server.url) for url in page_requests if "/control" in url]
    # playwright's sync API handles the page's events (routes too) only inside its own calls:
    # wait with them, never with a plain sleep or lock
    with notebook.page.expect_request(lambda request: request.url.endswith(control)):
        notebook.page.evaluate(
            "url => { window.__control = new Image(); window.__control.src = url; }",
            f"{logging_server.url}{control}",
        )
    deadline = time.monotonic() + 10
    while control not in logging_server.paths:
        assert time.monotonic() < deadline, f"{control} never arrived: {logging_server.paths}"
        notebook.pause(0.05)
    # the page's request events arrive in order: anything the outputs asked for came first
    asked = [url.removeprefix(logging_server.url) for url in page_requests]
    assert asked == [*controls, control]
    assert logging_server.paths == [*controls, control]


def test_no_remote_image_loads_live_or_after_reload(
    browser_page: BrowserPage, logging_server: LoggingServer
) -> None:
    page = browser_page.page
    page_requests: list[str] = []

    def record(request: Request) -> None:
        if request.url.startswith(logging_server.url):
            page_requests.append(request.url)

    def let_through(route: Route) -> None:
        route.continue_()

    pattern = re.compile(re.escape(logging_server.url) + "/")
    page.on("request", record)
    # registered after the session's guard, so it is asked first (for service workers too)
    page.context.route(pattern, let_through)
    try:
        path = write_notebook(browser_page.lab.root / NAME, cells(logging_server.url))
        notebook = browser_page.open(NAME)
        for index in range(3):
            notebook.run_cell(index)
        notebook.output(1).locator(".snb-reply:not(.snb-live) .snb-footer").wait_for()
        notebook.output(2).locator(".snb-chat-assistant").wait_for()
        check_nothing_loaded(page_requests, logging_server, notebook, "/control-live.png")
        live = notebook.notebook.text_content() or ""  # folded reasoning too
        for label in ("r", "t", "f", "u", "a", "c"):
            assert f"[image: {label}]" in live, live

        # saved and reopened: the reply's saved copy is shown from the file
        notebook = browser_page.save_and_reopen(notebook, path)
        saved = notebook.output(1).locator(".snb-reply:not(.snb-live)")
        saved.wait_for()
        check_nothing_loaded(page_requests, logging_server, notebook, "/control-reload.png")
        text = saved.text_content() or ""
        assert "[image: r]" in text and "[image: t]" in text and "[image: f]" in text, text
    finally:
        page.context.unroute(pattern, let_through)
        page.remove_listener("request", record)
