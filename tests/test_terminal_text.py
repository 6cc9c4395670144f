"""Reply text reaches a terminal as text: escape sequences a model or an endpoint sends (window
title, clear screen, OSC 8 links, OSC 52 clipboard writes) are removed by ``stackit-nb chat``,
StreamingDisplay in a terminal and the error messages both print."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from haystack.dataclasses import ReasoningContent, StreamingChunk
from stub_endpoint import StubEndpoint

from stackit_nb._terminal import printable
from stackit_nb.widgets import StreamingDisplay

TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J\x1b[H"
LINK = "\x1b]8;;https://evil.example\x1b\\click here\x1b]8;;\x1b\\"
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x07"
C1_CSI = "\x9b31m"
HOSTILE = [f"Hello {TITLE}", f"{CLEAR}world, ", LINK, f"{CLIPBOARD} and\r\x00 bye{C1_CSI}\n\tend"]
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def test_printable_keeps_text_newlines_and_tabs() -> None:
    assert printable("".join(HOSTILE)) == "Hello world, click here and bye31m\n\tend"
    assert printable("plain text\n\twith tab, ünïcode ✓") == "plain text\n\twith tab, ünïcode ✓"
    # a sequence cut between two chunks leaves harmless text, never a control character
    assert [printable(part) for part in ("a \x1b", "]0;title\x07b")] == ["a ", "]0;titleb"]


@pytest.fixture
def stub() -> Iterator[StubEndpoint]:
    with StubEndpoint() as endpoint:
        yield endpoint


def run_chat(stub: StubEndpoint) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "STACKIT_API_KEY": "local-token",
        "STACKIT_API_BASE_URL": stub.url,
        "OPENAI_MAX_RETRIES": "0",
        "HAYSTACK_TELEMETRY_ENABLED": "False",
    }
    command = [sys.executable, "-m", "stackit_nb.cli", "chat", "Say hello."]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_printable_drops_bidirectional_overrides() -> None:
    """A right-to-left override makes a terminal show "rm -rf ~ #" reversed into something that
    reads harmless; printed, the text keeps the order it has."""
    hostile = "echo safe \u202e~ fr- mr\u202c \u2066x\u2069 done \u05e9\u05dc\u05d5\u05dd"
    assert printable(hostile) == "echo safe ~ fr- mr x done \u05e9\u05dc\u05d5\u05dd"


def test_cli_chat_prints_reply_and_reasoning_as_text(stub: StubEndpoint) -> None:
    stub.stream_reply(HOSTILE, reasoning=[f"thinking {TITLE}", CLIPBOARD])
    run = run_chat(stub)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "Hello world, click here and bye31m\n\tend\n"
    assert "thinking " in run.stderr
    assert not CONTROL.search(run.stderr.replace("\n", "")), repr(run.stderr)


def test_cli_chat_error_is_printed_as_text(stub: StubEndpoint) -> None:
    stub.fail_with(401, f"key refused {TITLE}{CLEAR}{LINK}")
    run = run_chat(stub)
    assert run.returncode == 1
    assert "rejected the API key (HTTP 401: key refused click here)" in run.stderr
    assert not CONTROL.search(run.stderr.replace("\n", "")), repr(run.stderr)


def test_streaming_display_in_a_terminal() -> None:
    out = io.StringIO()
    display = StreamingDisplay(out=out)
    meta = {"model": f"evil{TITLE}-model"}
    reasoning = ReasoningContent(reasoning_text=f"hmm{CLEAR}")
    display(StreamingChunk(content="", meta=meta, index=0, reasoning=reasoning))
    for part in HOSTILE:
        display(StreamingChunk(content=part, meta=meta, index=1))
    display.fail(f"broke off {CLIPBOARD}{LINK}")
    text = out.getvalue()
    assert "Hello world, click here and bye31m\n\tend" in text
    assert "evil-model" in text and "[error] broke off click here" in text
    assert not CONTROL.search(text.replace("\n", "").replace("\t", "")), repr(text)


def test_streaming_display_dims_reasoning_with_its_own_escapes_only() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    display = StreamingDisplay(out=out)
    reasoning = ReasoningContent(reasoning_text=f"hmm {TITLE}")
    display(StreamingChunk(content="", meta={}, index=0, reasoning=reasoning))
    display.finish()
    assert "\x1b[2mhmm \x1b[0m" in out.getvalue()
    assert "\x07" not in out.getvalue() and "pwned" not in out.getvalue()


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 429, 500])
def test_error_messages_carry_no_control_characters(
    stub: StubEndpoint, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    """A script's traceback prints the error's message to the terminal as it is."""
    from stackit_nb import STACKITChatGenerator

    monkeypatch.setenv("STACKIT_API_KEY", "local-token")
    monkeypatch.setenv("STACKIT_API_BASE_URL", stub.url)
    stub.fail_with(status, f"refused {TITLE}{CLEAR}{LINK} context length")
    with pytest.raises(Exception) as caught:
        STACKITChatGenerator(model="neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8", max_retries=0).run(
            "hi"
        )
    message = str(caught.value)
    assert "refused" in message and not CONTROL.search(message), repr(message)
