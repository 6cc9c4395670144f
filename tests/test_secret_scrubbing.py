"""An endpoint that echoes the key in its error body: the key appears nowhere in what the error
carries (message, args, body, response, request, every chained exception, the traceback), on
every status, from every component; nor in a kernel's traceback, ``%%stackit``'s output, a
ChatWidget's error card or ``stackit-nb chat``'s stderr."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import openai
import pytest
from kernel import KernelSession
from stub_endpoint import MODEL, StubEndpoint

from stackit_nb import STACKITChatGenerator, STACKITTextEmbedder, list_models

KEY = "canary-key-7f3a9c1e5b"
ECHO = "the key {key} is not valid here"
STATUSES = [400, 401, 403, 404, 409, 413, 422, 429, 500]


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubEndpoint]:
    with StubEndpoint() as endpoint:
        monkeypatch.setenv("STACKIT_API_KEY", KEY)
        monkeypatch.setenv("STACKIT_API_BASE_URL", endpoint.url)
        yield endpoint


def everything_about(exc: BaseException) -> str:
    """All an error carries that a traceback, a log, a pickle or a curious user could show."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args)]
        for name in ("message", "body", "doc", "partial"):
            parts.append(repr(getattr(current, name, None)))
        for name in ("response", "request"):
            http = getattr(current, name, None)
            if http is not None:
                parts.append(
                    repr(http.headers.raw if hasattr(http.headers, "raw") else http.headers)
                )
                parts.append(repr(list(http.headers.items())))
                parts.append(http.content.decode(errors="replace"))
                if name == "response":
                    parts.append(repr(list(http.request.headers.items())))
        pending += [current.__cause__, current.__context__]
    return "\n".join(parts)


def assert_no_key(exc: BaseException) -> None:
    text = everything_about(exc)
    assert KEY not in text, text[text.index(KEY) - 300 : text.index(KEY) + 100]
    assert "<redacted>" in text  # the echo was there, and was taken out
    pickle.dumps(exc)  # still an ordinary exception


def generator() -> STACKITChatGenerator:
    return STACKITChatGenerator(model=MODEL, max_retries=0)


@pytest.mark.parametrize("status", STATUSES)
def test_chat_generator_plain_streamed_and_async(stub: StubEndpoint, status: int) -> None:
    stub.fail_with(status, ECHO)
    calls = {
        "plain": lambda: generator().run("hi"),
        "streamed": lambda: generator().run("hi", streaming_callback=lambda chunk: None),
        "async": lambda: asyncio.run(generator().run_async("hi")),
    }
    for call in calls.values():
        with pytest.raises(openai.OpenAIError) as caught:
            call()
        assert_no_key(caught.value)


@pytest.mark.parametrize("status", [400, 401, 404, 422, 500])
def test_text_embedder_and_list_models(stub: StubEndpoint, status: int) -> None:
    stub.fail_with(status, ECHO)
    embedder = STACKITTextEmbedder(model="intfloat/e5-mistral-7b-instruct", max_retries=0)
    with pytest.raises(openai.OpenAIError) as caught:
        embedder.run("hi")
    assert_no_key(caught.value)
    with pytest.raises(openai.OpenAIError) as caught:
        list_models()
    assert_no_key(caught.value)


def test_the_echo_is_real(stub: StubEndpoint) -> None:
    """Without the components, the openai client hands the echoed key on everywhere."""
    stub.fail_with(409, ECHO)
    messages: Any = [{"role": "user", "content": "x"}]
    with (
        openai.OpenAI(api_key=KEY, base_url=stub.url, max_retries=0) as client,
        pytest.raises(openai.APIStatusError) as caught,
    ):
        client.chat.completions.create(model=MODEL, messages=messages)
    assert KEY in str(caught.value) and KEY in json.dumps(caught.value.body)


def test_cli_chat_stderr(stub: StubEndpoint) -> None:
    for status in (409, 401):
        stub.fail_with(status, ECHO)
        run = subprocess.run(
            [sys.executable, "-m", "stackit_nb.cli", "chat", "hi"],
            env={**os.environ, "OPENAI_MAX_RETRIES": "0"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 1 and "<redacted>" in run.stderr
        assert KEY not in run.stdout + run.stderr


@pytest.mark.kernel
def test_kernel_traceback_magic_and_chat_widget(stub: StubEndpoint) -> None:
    stub.fail_with(422, ECHO)
    env: dict[str, Any] = {
        "STACKIT_API_KEY": KEY,
        "STACKIT_API_BASE_URL": stub.url,
        "OPENAI_MAX_RETRIES": "0",
    }
    with KernelSession(env=env) as kernel:
        plain = kernel.execute(
            f"from stackit_nb import STACKITChatGenerator\n"
            f"STACKITChatGenerator(model={MODEL!r}).run('hi')",
            allow_error=True,
        )
        assert plain.error is not None and plain.error["ename"] == "UnprocessableEntityError"
        kernel.execute("%load_ext stackit_nb")
        magic = kernel.execute(f"%%stackit --model {MODEL}\nhi", allow_error=True)
        widget = kernel.execute(
            textwrap.dedent(
                f"""
                from stackit_nb.widgets import ChatWidget
                chat = ChatWidget(STACKITChatGenerator(model={MODEL!r}, max_retries=0))
                await chat.send("hi")
                print(chat.ui.error.value)
                """
            )
        )
    shown = json.dumps([run.outputs for run in (plain, magic, widget)] + [plain.error])
    assert "&lt;redacted&gt;" in widget.stdout and "<redacted>" in shown
    assert KEY not in shown
