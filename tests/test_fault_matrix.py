"""Every fault kind against every user-facing surface, over real HTTP: the documented outcome.

Rows are the faults of the reliability checklist: a rejected key (401), no access (403), an
unknown model (404), a prompt beyond the context (400), a body too large (413), 429 with
``Retry-After`` (retried, and without retries), 500/502/503 (retried, and after the retries),
connection refused, a server silent past the timeout, a stream that stalls, is cut or carries a
malformed event, and a body that is not JSON. Columns are the chat generator (plain, streamed,
async streamed), the text and document embedders, ``StreamingDisplay`` in a real kernel,
``ChatWidget`` and the batch runner (plain and streamed). A fault about streams is not a row for
a surface that never streams (the embedders, the plain generator and batch).

Each cell asserts what the user gets, within a bound (never a hang):

- retried and succeeded: the whole reply;
- a clear error: the class from ``stackit_nb.errors`` (an ``openai`` subclass) whose message
  names the cause and the fix;
- a broken stream: the text before the break is kept (and marked, in the widgets);
- ``StreamingDisplay``: the saved output keeps the partial reply and shows the error; the cell
  raises the same error; the kernel answers the next cell;
- ``ChatWidget``: the user's message stays in the history, the error is on screen, and Retry
  gives the whole reply once the fault is gone (a wrong key, model or address stays wrong);
- the document embedder (like the reference) logs the error and returns the documents without
  embeddings;
- the batch runner retries 429s, 5xx, timeouts and broken streams itself, and reports each
  item that still failed while completing the others.
"""

from __future__ import annotations

import ast
import asyncio
import html
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import pytest
from haystack import Document
from haystack.dataclasses import StreamingChunk
from haystack.utils import Secret
from kernel import KernelSession

from stackit_nb import STACKITChatGenerator, STACKITDocumentEmbedder, STACKITTextEmbedder
from stackit_nb.batch import run_many
from stackit_nb.errors import (
    AccessDeniedError,
    ContextTooLongError,
    EndpointTimeoutError,
    EndpointUnreachableError,
    InvalidAPIKeyError,
    InvalidResponseError,
    ModelNotFoundError,
    RateLimitedError,
    RequestTooLargeError,
    ServerError,
    StreamInterruptedError,
)
from stackit_nb.local import LocalSTACKIT
from stackit_nb.widgets import ChatWidget

pytestmark = pytest.mark.timeout(60)

CHAT = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
EMBED = "intfloat/e5-mistral-7b-instruct"
MISSPELT = {"chat": "neuralmagic/Meta-Llama-3.1-8B-Instruct", "embedding": "intfloat/e5-mistral-7b"}
PROMPT = "Write 40 tokens about the sea."
PROMPTS = [f"Write {n} tokens about rain." for n in (20, 30, 40)]
BOUND = 8.0  # seconds any cell may take, faults and retries included (a loaded 2-core machine)
CONTEXT_MESSAGE = (
    "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens "
    "(4000 in the messages, 1000 in the completion). Please reduce the length of the messages "
    "or completion."
)


@dataclass(frozen=True)
class Fault:
    """One row: how to cause the fault, and what each surface must end in.

    :param queue: Queues the fault on the server (after the surface is built).
    :param kwargs: Component arguments, as Python source: run here and in a kernel.
    :param error: The error the user gets; ``None``: retried, and the reply is whole.
    :param says: What the error's message must say (cause and fix).
    :param streams: ``True``: only for streamed surfaces; ``False``: only for plain ones.
    :param partial: A broken stream: the text before the break is kept.
    :param lasting: The component is set up wrongly: retrying cannot help.
    :param batch: ``"ok"`` (retried by the batch), ``"item"`` (the hit item fails, the others
        complete) or ``"all"`` (every item fails).
    :param holds: Seconds the server holds a request; waited out so the next test starts clean.
    """

    name: str
    queue: Callable[[LocalSTACKIT], None] = lambda srv: None
    kwargs: str = "max_retries=0"
    error: type[Exception] | None = None
    says: tuple[str, ...] = ()
    streams: bool | None = None
    partial: bool = False
    lasting: bool = False
    batch: str = "item"
    holds: float = 0.0


def _status(status: int, **options: Any) -> Callable[[LocalSTACKIT], None]:
    return lambda srv: srv.faults.fail(status, **options)


FAULTS = [
    Fault(
        "401 rejected key",
        kwargs="max_retries=0, api_key=Secret.from_token('sk-not-the-key-0000')",
        error=InvalidAPIKeyError,
        says=("HTTP 401", "rejected the API key", "STACKIT_API_KEY"),
        lasting=True,
        batch="all",
    ),
    Fault(
        "403 no access",
        queue=_status(403, message="this project may not use the model"),
        error=AccessDeniedError,
        says=("HTTP 403", "refused access", "may not use the model", "list_models()"),
    ),
    Fault(
        "404 unknown model",
        kwargs="max_retries=0, model=MISSPELT",
        error=ModelNotFoundError,
        says=("is not available", "Closest available ids", "list_models()"),
        lasting=True,
        batch="all",
    ),
    Fault(
        "400 context too long",
        queue=_status(400, message=CONTEXT_MESSAGE),
        error=ContextTooLongError,
        says=("maximum context length is 4096", "older messages", "max_tokens"),
    ),
    Fault(
        "413 too large",
        queue=_status(413, message="Request body is 40000000 bytes; the limit is 32 MiB."),
        error=RequestTooLargeError,
        says=("HTTP 413", "32 MiB", "to_image_content"),
    ),
    Fault("429 retried", queue=_status(429, retry_after=0.3), kwargs="max_retries=2", batch="ok"),
    Fault(
        "429 without retries",
        queue=_status(429, retry_after=2),
        error=RateLimitedError,
        says=("HTTP 429", "Retry after 2 s", "fewer requests"),
        batch="ok",
    ),
    Fault("503 retried", queue=_status(503), kwargs="max_retries=1", batch="ok"),
    *(
        Fault(
            f"{status} after retries",
            queue=_status(status, times=2),
            kwargs="max_retries=1",
            error=ServerError,
            says=(f"HTTP {status}", "after 1 retry", "server's side", "max_retries"),
            batch="ok",
        )
        for status in (500, 502, 503)
    ),
    Fault(
        "connection refused",
        kwargs="max_retries=0, api_base_url=STOPPED",
        error=EndpointUnreachableError,
        says=("Connection refused", "stackit_nb.connect()", "stackit-nb serve"),
        lasting=True,
        batch="all",
    ),
    Fault(
        "silent past the timeout",
        queue=lambda srv: srv.faults.latency(1.5),
        kwargs="max_retries=0, timeout=0.5",
        error=EndpointTimeoutError,
        says=("did not answer within 0.5 s", "timeout=", "streaming_callback"),
        batch="all",  # the server stays silent: every attempt times out
        holds=1.5,
    ),
    Fault(
        "stream stalls past the timeout",
        queue=lambda srv: srv.faults.stall_stream(after_chunks=5, seconds=1.5),
        kwargs="max_retries=0, timeout=0.5",
        error=StreamInterruptedError,
        says=("broke off", "partial", "run again"),
        streams=True,
        partial=True,
        batch="ok",
        holds=1.5,
    ),
    Fault(
        "stream cut",
        queue=lambda srv: srv.faults.cut_stream(after_chunks=6),
        error=StreamInterruptedError,
        says=("broke off after", "closed the connection", "run again"),
        streams=True,
        partial=True,
        batch="ok",
    ),
    Fault(
        "malformed event",
        queue=lambda srv: srv.faults.malformed_chunk(after_chunks=6),
        error=StreamInterruptedError,
        says=("broke off after", "unreadable event", "run again"),
        streams=True,
        partial=True,
        batch="ok",
    ),
    Fault(
        "body not JSON",
        queue=lambda srv: srv.faults.invalid_json(),
        error=InvalidResponseError,
        says=("/v1/", "OpenAI-compatible API", "run again"),
    ),
]


# -- the server, the kernel and what every cell needs ---------------------------------------------


@pytest.fixture(scope="module")
def matrix() -> Iterator[dict[str, Any]]:
    """A server of this module's own (a held request must not take another module's fault),
    with the environment pointing at it, the reply a prompt gets, and a stopped server's URL."""
    with LocalSTACKIT() as gone:
        stopped = gone.url
    with LocalSTACKIT() as srv, pytest.MonkeyPatch.context() as mp:
        mp.setenv("STACKIT_API_KEY", srv.api_key)
        mp.setenv("STACKIT_API_BASE_URL", srv.url)
        generator = STACKITChatGenerator(model=CHAT)
        whole = {p: generator.run(p)["replies"][0].text for p in [PROMPT, *PROMPTS]}
        yield {"srv": srv, "stopped": stopped, "whole": whole}


@pytest.fixture(scope="module")
def kernel(matrix: dict[str, Any]) -> Iterator[KernelSession]:
    with KernelSession() as session:  # inherits STACKIT_API_KEY / _BASE_URL of the matrix server
        session.execute(
            "from haystack.utils import Secret\n"
            "from stackit_nb import STACKITChatGenerator\n"
            "from stackit_nb.widgets import StreamingDisplay\n"
            f"STOPPED = {matrix['stopped']!r}\n"
            f"MISSPELT = {MISSPELT['chat']!r}\n"
        )
        yield session


@dataclass
class Cell:
    fault: Fault
    srv: LocalSTACKIT
    stopped: str
    whole: dict[str, str]
    started: float = field(default_factory=time.perf_counter)

    def kwargs(self, kind: str = "chat") -> dict[str, Any]:
        names = {"Secret": Secret, "STOPPED": self.stopped, "MISSPELT": MISSPELT[kind]}
        kwargs: dict[str, Any] = eval(f"dict({self.fault.kwargs})", names)
        return {"model": CHAT if kind == "chat" else EMBED, **kwargs}

    def check_error(self, error: BaseException | None) -> None:
        """The error is the helpful one, saying what the row says (the fix included)."""
        assert self.fault.error is not None
        assert isinstance(error, self.fault.error), repr(error)
        self.check_words(str(error))

    def check_words(self, text: str) -> None:
        for words in self.fault.says:
            assert words in text, f"{words!r} not in {text!r}"

    def check_partial(self, text: str, prompt: str = PROMPT) -> None:
        whole = self.whole[prompt]
        assert text and whole.startswith(text) and len(text) < len(whole), (text, whole)


@pytest.fixture
def cell(request: pytest.FixtureRequest, matrix: dict[str, Any]) -> Iterator[Cell]:
    fault: Fault = request.node.callspec.params["fault"]
    srv: LocalSTACKIT = matrix["srv"]
    srv.faults.clear()
    srv.clear_requests()
    here = Cell(fault, srv, matrix["stopped"], matrix["whole"])
    yield here
    took = time.perf_counter() - here.started
    srv.faults.clear()
    time.sleep(fault.holds)  # a held request wakes up now, before the next test queues faults
    assert took < BOUND, f"took {took:.1f} s"


def cases(streamed: bool) -> list[Any]:
    """The rows that apply to a surface that streams (or not)."""
    return [
        pytest.param(f, id=f.name) for f in FAULTS if f.streams is None or f.streams == streamed
    ]


async def _ignore(chunk: StreamingChunk) -> None:
    return None


# -- the chat generator ---------------------------------------------------------------------------


def _expect_reply(cell: Cell, run: Callable[[], str]) -> None:
    if cell.fault.error is None:
        assert run() == cell.whole[PROMPT]
        return
    with pytest.raises(cell.fault.error) as info:
        run()
    cell.check_error(info.value)
    partial = getattr(info.value, "partial", None)
    if cell.fault.partial:
        cell.check_partial(partial.text)
    else:
        assert partial is None


@pytest.mark.parametrize("fault", cases(streamed=False))
def test_chat(cell: Cell, fault: Fault) -> None:
    generator = STACKITChatGenerator(**cell.kwargs())
    fault.queue(cell.srv)
    _expect_reply(cell, lambda: generator.run(PROMPT)["replies"][0].text)


@pytest.mark.parametrize("fault", cases(streamed=True))
def test_chat_streamed(cell: Cell, fault: Fault) -> None:
    generator = STACKITChatGenerator(**cell.kwargs())
    received: list[str] = []
    fault.queue(cell.srv)

    def run() -> str:
        received.clear()
        reply = generator.run(PROMPT, streaming_callback=lambda c: received.append(c.content))
        return reply["replies"][0].text

    _expect_reply(cell, run)
    if fault.partial:  # what the callback showed is what the error keeps
        assert "".join(received) and cell.whole[PROMPT].startswith("".join(received))


@pytest.mark.parametrize("fault", cases(streamed=True))
def test_chat_async_streamed(cell: Cell, fault: Fault) -> None:
    generator = STACKITChatGenerator(**cell.kwargs())
    fault.queue(cell.srv)

    def run() -> str:
        reply = asyncio.run(generator.run_async(PROMPT, streaming_callback=_ignore))
        return reply["replies"][0].text

    _expect_reply(cell, run)


# -- the embedders --------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", cases(streamed=False))
def test_text_embedder(cell: Cell, fault: Fault) -> None:
    embedder = STACKITTextEmbedder(**cell.kwargs("embedding"))
    fault.queue(cell.srv)
    if fault.error is None:
        assert len(embedder.run("the sea")["embedding"]) > 100
        return
    with pytest.raises(fault.error) as info:
        embedder.run("the sea")
    cell.check_error(info.value)


@pytest.mark.parametrize("fault", cases(streamed=False))
def test_document_embedder(cell: Cell, fault: Fault, caplog: pytest.LogCaptureFixture) -> None:
    embedder = STACKITDocumentEmbedder(**cell.kwargs("embedding"), progress_bar=False)
    documents = [Document(content=f"text {i}") for i in range(3)]
    fault.queue(cell.srv)
    with caplog.at_level(logging.ERROR):
        embedded = embedder.run(documents)["documents"]
    if fault.error is None:
        assert all(d.embedding and len(d.embedding) > 100 for d in embedded)
        return
    assert [d.embedding for d in embedded] == [None] * 3
    assert [d.content for d in embedded] == [d.content for d in documents]  # nothing lost
    logged = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.startswith("haystack.components.embedders")
    ]
    assert len(logged) == 1, logged  # one per failed batch
    cell.check_words(logged[0])


# -- StreamingDisplay, in a real kernel -----------------------------------------------------------


@pytest.mark.parametrize("fault", cases(streamed=True))
def test_streaming_display(cell: Cell, fault: Fault, kernel: KernelSession) -> None:
    fault.queue(cell.srv)
    run = kernel.execute(
        "display = StreamingDisplay()\n"
        f"generator = STACKITChatGenerator(**{{'model': {CHAT!r}, **dict({fault.kwargs})}})\n"
        f"reply = generator.run({PROMPT!r}, streaming_callback=display)",
        allow_error=True,
        timeout=BOUND,
    )
    saved = [o["data"] for o in run.outputs if "text/html" in o.get("data", {})]
    if fault.error is None:
        assert run.error is None
        assert saved and saved[-1]["text/plain"].startswith(cell.whole[PROMPT][:200])
    else:
        assert run.error is not None and run.error["ename"] == fault.error.__name__
        cell.check_words(run.error["evalue"])  # the cell's own traceback says it
        if fault.partial:  # the saved output keeps the text so far, with the error under it
            (static,) = saved
            text, error = static["text/plain"].split("\n[error] ", 1)
            cell.check_partial(text.strip())
            assert error.startswith(fault.error.__name__)
            cell.check_words(error)
            cell.check_words(html.unescape(static["text/html"]))
    # the kernel answers the next cell, and the display still holds what it showed
    shown = ast.literal_eval(kernel.execute("print(repr(display.text))").stdout.strip())
    if fault.error is None:
        assert shown == cell.whole[PROMPT]
    elif fault.partial:
        cell.check_partial(shown)
    else:
        assert shown == ""


# -- ChatWidget -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", cases(streamed=True))
async def test_chat_widget(cell: Cell, fault: Fault) -> None:
    chat = ChatWidget(STACKITChatGenerator(**cell.kwargs()))
    fault.queue(cell.srv)
    reply = await chat.send(PROMPT)
    user = [m for m in chat.messages if m.is_from("user")]
    assert [m.text for m in user] == [PROMPT]  # the user's message is never lost
    if fault.error is None:
        assert reply is not None and reply.text == cell.whole[PROMPT]
        assert chat.last_error is None and chat.ui.error.value == ""
        return
    cell.check_error(chat.last_error)
    shown = html.unescape(chat.ui.error.value)
    cell.check_words(shown)
    assert "Retry" in shown
    if fault.partial:  # kept, marked, and in the history
        assert reply is not None and reply.meta["interrupted"] is True
        cell.check_partial(reply.text)
        assert chat.messages[-1] == reply
    else:
        assert reply is None and chat.messages[-1].text == PROMPT
    cell.srv.faults.clear()
    time.sleep(fault.holds)
    again = await chat.retry()
    if fault.lasting:  # still wrong: the same advice, and the message is still there
        assert again is None
        cell.check_error(chat.last_error)
        assert chat.messages[-1].text == PROMPT
    else:
        assert again is not None and again.text == cell.whole[PROMPT]
        assert chat.last_error is None and chat.ui.error.value == ""
        assert [m.text for m in chat.messages if not m.is_from("system")] == [
            PROMPT,
            cell.whole[PROMPT],
        ]


# -- the batch runner -----------------------------------------------------------------------------


def _check_batch(cell: Cell, result: Any) -> None:
    fault = cell.fault
    expected = [cell.whole[p] for p in PROMPTS]
    failed = [item for item in result if not item.ok]
    if fault.batch == "ok":
        assert result.texts == expected, [item.error for item in result]
        return
    assert len(failed) == (1 if fault.batch == "item" else len(PROMPTS)), result
    for item in failed:
        cell.check_error(item.error)
    for item in result:
        if item.ok:  # the others completed, whole
            assert item.text == expected[item.index]
    assert result.summary.failed == len(failed)
    assert fault.error is not None and fault.error.__name__ in result._repr_markdown_()


@pytest.mark.parametrize("fault", cases(streamed=False))
def test_batch(cell: Cell, fault: Fault) -> None:
    generator = STACKITChatGenerator(**cell.kwargs())
    fault.queue(cell.srv)
    result = run_many(generator, PROMPTS, concurrency=3, max_attempts=3, progress=False)
    _check_batch(cell, result)


@pytest.mark.parametrize("fault", cases(streamed=True))
def test_batch_streamed(cell: Cell, fault: Fault) -> None:
    generator = STACKITChatGenerator(**cell.kwargs())
    fault.queue(cell.srv)
    result = run_many(
        generator,
        PROMPTS,
        concurrency=3,
        max_attempts=3,
        progress=False,
        run_kwargs={"streaming_callback": _ignore},
    )
    _check_batch(cell, result)
