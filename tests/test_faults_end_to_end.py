"""Faults end to end: what each user-facing surface does when the server misbehaves.

Every fault the local server can inject (429 with ``Retry-After``, 5xx, a stopped server, a stall
past the timeout, a stream cut short, a malformed SSE event, a body that is not JSON) is sent to
the chat generator (plain, streamed, streamed from ``run_async``), the embedders and the batch
runner, over real HTTP. Each test asserts the outcome a user gets and that it comes in bounded
time: a retry that succeeds, or an error that names the problem. No test may hang: the module
runs under a per-test timeout.

The raw server side of each fault is covered in ``test_local_server_errors.py``; the error
messages in detail in ``test_generator_errors.py``; 429 pacing in ``test_batch.py``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import openai
import pytest
from haystack import Document
from haystack.dataclasses import StreamingChunk

from stackit_nb import STACKITChatGenerator, STACKITDocumentEmbedder, STACKITTextEmbedder
from stackit_nb.batch import run_many
from stackit_nb.errors import InvalidResponseError, RateLimitedError, StreamInterruptedError
from stackit_nb.local import LocalSTACKIT

pytestmark = pytest.mark.timeout(60)

CHAT = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
EMBED = "intfloat/e5-mistral-7b-instruct"
PROMPT = "Write 30 tokens about the sea."
MARGIN = 1.5  # seconds on top of any expected wait: generous for a loaded 2-core machine


@pytest.fixture
def fresh(server: LocalSTACKIT, srv: LocalSTACKIT) -> LocalSTACKIT:
    """The session server with the environment pointing at it, no faults, an empty log."""
    return srv


@contextmanager
def within(seconds: float) -> Iterator[dict[str, float]]:
    """Assert that the block ends (returning or raising) within ``seconds``."""
    took: dict[str, float] = {}
    started = time.perf_counter()
    try:
        yield took
    finally:
        took["s"] = time.perf_counter() - started
        assert took["s"] < seconds, f"took {took['s']:.2f} s, more than {seconds} s"


def _ignore(chunk: StreamingChunk) -> None:
    return None


async def _aignore(chunk: StreamingChunk) -> None:
    return None


# Each surface takes the generator/embedder keyword arguments and returns the text or vector.
def chat(**kwargs: Any) -> Any:
    return STACKITChatGenerator(model=CHAT, **kwargs).run(PROMPT)["replies"][0].text


def chat_streamed(**kwargs: Any) -> Any:
    generator = STACKITChatGenerator(model=CHAT, **kwargs)
    return generator.run(PROMPT, streaming_callback=_ignore)["replies"][0].text


def chat_async_streamed(**kwargs: Any) -> Any:
    generator = STACKITChatGenerator(model=CHAT, **kwargs)
    reply = asyncio.run(generator.run_async(PROMPT, streaming_callback=_aignore))
    return reply["replies"][0].text


def text_embedder(**kwargs: Any) -> Any:
    return STACKITTextEmbedder(model=EMBED, **kwargs).run("the sea")["embedding"]


SURFACES: dict[str, Callable[..., Any]] = {
    "chat": chat,
    "chat streamed": chat_streamed,
    "chat async streamed": chat_async_streamed,
    "text embedder": text_embedder,
}
STREAMED = {k: SURFACES[k] for k in ("chat streamed", "chat async streamed")}
NOT_STREAMED = {k: SURFACES[k] for k in ("chat", "text embedder")}


def statuses(srv: LocalSTACKIT) -> list[int]:
    return [r["status"] for r in srv.requests if r["path"].startswith("/v1/")]


# -- 429 and 5xx ---------------------------------------------------------------------------------


@pytest.mark.parametrize("surface", SURFACES.values(), ids=SURFACES.keys())
def test_429_is_retried_after_the_wait_it_names(
    fresh: LocalSTACKIT, surface: Callable[..., Any]
) -> None:
    fresh.faults.fail(status=429, retry_after=0.5)
    with within(0.5 + MARGIN) as took:
        assert surface(max_retries=1)
    assert took["s"] >= 0.45  # Retry-After was honoured, not retried at once
    assert statuses(fresh) == [429, 200]


@pytest.mark.parametrize("surface", SURFACES.values(), ids=SURFACES.keys())
def test_429_without_retries_says_when_to_retry(
    fresh: LocalSTACKIT, surface: Callable[..., Any]
) -> None:
    fresh.faults.fail(status=429, retry_after=7)
    with within(MARGIN), pytest.raises(RateLimitedError) as info:
        surface(max_retries=0)
    assert info.value.retry_after == 7
    assert "Retry after 7 s" in str(info.value)


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize("surface", SURFACES.values(), ids=SURFACES.keys())
def test_server_errors_are_retried_or_reported(
    fresh: LocalSTACKIT, surface: Callable[..., Any], status: int
) -> None:
    fresh.faults.fail(status=status)
    with within(MARGIN), pytest.raises(openai.InternalServerError) as info:
        surface(max_retries=0)
    assert info.value.status_code == status and str(status) in str(info.value)
    fresh.faults.fail(status=status)
    with within(1.0 + MARGIN):  # the SDK's first backoff is under a second
        assert surface(max_retries=1)
    assert statuses(fresh) == [status, status, 200]


# -- no server, a silent server ------------------------------------------------------------------


@pytest.fixture(scope="module")
def stopped_url() -> str:
    """The URL of a server that was running and is not any more: connections are refused."""
    with LocalSTACKIT() as gone:
        url = gone.url
    return url


@pytest.mark.parametrize("surface", SURFACES.values(), ids=SURFACES.keys())
def test_a_stopped_server_is_a_connection_error_at_once(
    fresh: LocalSTACKIT, stopped_url: str, surface: Callable[..., Any]
) -> None:
    with within(MARGIN), pytest.raises(openai.APIConnectionError) as info:
        surface(max_retries=0, api_base_url=stopped_url)
    assert not isinstance(info.value, openai.APITimeoutError)  # refused, not waited for


def test_retries_against_a_stopped_server_stay_bounded(
    fresh: LocalSTACKIT, stopped_url: str
) -> None:
    with within(4.0 + MARGIN), pytest.raises(openai.APIConnectionError):
        chat(max_retries=2, api_base_url=stopped_url)  # backoff about 0.5 s, then 1 s


@pytest.fixture(scope="module")
def stalling_server(server: LocalSTACKIT) -> Iterator[LocalSTACKIT]:
    """A second server (same token) for stalls: a stalled request is still being held there
    after its test ends, and the server takes a queued status fault only once the stall is over,
    so on the shared server it would consume a fault meant for a later test."""
    with LocalSTACKIT(api_key=server.api_key) as srv:
        yield srv


@pytest.fixture
def stalling(fresh: LocalSTACKIT, stalling_server: LocalSTACKIT) -> Iterator[LocalSTACKIT]:
    stalling_server.faults.clear()
    yield stalling_server
    stalling_server.faults.clear()


@pytest.mark.parametrize("surface", NOT_STREAMED.values(), ids=NOT_STREAMED.keys())
def test_a_server_silent_past_the_timeout_is_a_timeout_error(
    stalling: LocalSTACKIT, surface: Callable[..., Any]
) -> None:
    stalling.faults.latency(5.0)
    with within(0.5 + MARGIN), pytest.raises(openai.APITimeoutError):
        surface(max_retries=0, timeout=0.5, api_base_url=stalling.url)


@pytest.mark.parametrize("surface", STREAMED.values(), ids=STREAMED.keys())
def test_a_stream_that_stalls_past_the_timeout_keeps_its_partial_text(
    stalling: LocalSTACKIT, surface: Callable[..., Any]
) -> None:
    whole = chat()
    stalling.faults.stall_stream(after_chunks=4, seconds=5.0)
    with within(0.5 + MARGIN), pytest.raises(StreamInterruptedError) as info:
        surface(max_retries=0, timeout=0.5, api_base_url=stalling.url)
    partial = info.value.partial.text
    assert partial and whole.startswith(partial) and len(partial) < len(whole)


# -- broken streams and bodies -------------------------------------------------------------------


@pytest.mark.parametrize("after", [2, 6, 15])
@pytest.mark.parametrize("surface", STREAMED.values(), ids=STREAMED.keys())
def test_a_cut_stream_keeps_the_text_so_far(
    fresh: LocalSTACKIT, surface: Callable[..., Any], after: int
) -> None:
    whole = chat()
    fresh.faults.cut_stream(after_chunks=after)
    with within(MARGIN), pytest.raises(StreamInterruptedError) as info:
        surface(max_retries=0)
    partial = info.value.partial.text
    # the first event carries only the role: after it, one token per event
    assert whole.startswith(partial) and 0 < len(partial) < len(whole)
    assert "closed the connection" in str(info.value) and "partial" in str(info.value)
    assert surface(max_retries=0) == whole  # the next request is whole again


@pytest.mark.parametrize("surface", STREAMED.values(), ids=STREAMED.keys())
def test_a_malformed_sse_event_keeps_the_text_so_far(
    fresh: LocalSTACKIT, surface: Callable[..., Any]
) -> None:
    whole = chat()
    fresh.faults.malformed_chunk(after_chunks=5)
    with within(MARGIN), pytest.raises(StreamInterruptedError) as info:
        surface(max_retries=0)
    assert "unreadable event" in str(info.value)
    assert whole.startswith(info.value.partial.text) and info.value.partial.text


@pytest.mark.parametrize("surface", NOT_STREAMED.values(), ids=NOT_STREAMED.keys())
def test_a_body_that_is_not_json_fails_at_once(
    fresh: LocalSTACKIT, surface: Callable[..., Any]
) -> None:
    # The OpenAI client raises a bare json.JSONDecodeError; the user gets an openai.APIError
    # that names the address and what the body started with.
    fresh.faults.invalid_json()
    with within(MARGIN), pytest.raises(InvalidResponseError) as info:
        surface(max_retries=0)
    assert "answered with a body that is not JSON" in str(info.value)
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


@pytest.mark.parametrize("surface", STREAMED.values(), ids=STREAMED.keys())
def test_a_streamed_request_answered_with_broken_json_is_an_error(
    fresh: LocalSTACKIT, surface: Callable[..., Any]
) -> None:
    fresh.faults.invalid_json()
    with within(MARGIN), pytest.raises((StreamInterruptedError, openai.APIError)):
        surface(max_retries=0)


# -- the document embedder and the batch runner --------------------------------------------------


def test_document_embedder_retries_or_leaves_documents_unembedded(
    fresh: LocalSTACKIT, caplog: pytest.LogCaptureFixture
) -> None:
    documents = [Document(content=f"text {i}") for i in range(5)]
    fresh.faults.fail(status=503)
    embedder = STACKITDocumentEmbedder(model=EMBED, max_retries=1, progress_bar=False)
    with within(1.0 + MARGIN):
        embedded = embedder.run(documents)["documents"]
    assert all(d.embedding for d in embedded)
    # Without retries, Haystack's OpenAIDocumentEmbedder (raise_on_failure=False, as in the
    # reference component) logs the failure and returns the batch without embeddings.
    fresh.faults.fail(status=429, retry_after=7)
    embedder = STACKITDocumentEmbedder(model=EMBED, max_retries=0, progress_bar=False)
    with within(MARGIN):
        embedded = embedder.run([Document(content="again")])["documents"]
    assert embedded[0].embedding is None
    assert any("429" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_batch_runner_rides_out_429s_and_5xx(fresh: LocalSTACKIT) -> None:
    prompts = [f"Write {i} tokens about rain." for i in range(1, 9)]
    generator = STACKITChatGenerator(model=CHAT)
    expected = [generator.run(p)["replies"][0].text for p in prompts]
    fresh.clear_requests()
    fresh.faults.fail(status=429, retry_after=0.3, times=3)
    fresh.faults.fail(status=502, times=2)
    with within(5.0 + MARGIN):
        result = run_many(generator, prompts, concurrency=4, progress=False)
    assert [item.ok for item in result] == [True] * 8
    assert result.texts == expected
    assert sorted(statuses(fresh)) == [200] * 8 + [429] * 3 + [502] * 2, statuses(fresh)


def test_batch_runner_reports_unreachable_and_silent_servers(
    stalling: LocalSTACKIT, stopped_url: str
) -> None:
    gone = STACKITChatGenerator(model=CHAT, api_base_url=stopped_url)
    with within(8.0 + MARGIN):
        result = run_many(gone, ["a", "b"], max_attempts=2, progress=False)
    assert all(isinstance(e, openai.APIConnectionError) for e in result.errors)
    assert len(result.errors) == 2
    stalling.faults.latency(5.0)
    slow = STACKITChatGenerator(model=CHAT, timeout=0.5, api_base_url=stalling.url)
    with within(2 * 0.5 + 3.0 + MARGIN):
        result = run_many(slow, ["a", "b"], max_attempts=2, progress=False)
    assert len(result.errors) == 2
    assert all(isinstance(e, openai.APITimeoutError) for e in result.errors)


# -- load ----------------------------------------------------------------------------------------


def rss_mb() -> float:
    """This process's resident memory in MB (psutil when installed, else /proc)."""
    try:
        import psutil
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return psutil.Process().memory_info().rss / 2**20


async def test_64_concurrent_streams_through_one_generator(fresh: LocalSTACKIT) -> None:
    prompts = [f"Write {20 + i} tokens about the sea." for i in range(64)]
    generator = STACKITChatGenerator(model=CHAT)
    expected = [(await generator.run_async(p))["replies"][0].text for p in prompts]
    streamed: dict[int, list[str]] = {}

    async def one(i: int, prompt: str) -> str:
        async def collect(chunk: StreamingChunk) -> None:
            streamed.setdefault(i, []).append(chunk.content)

        reply = await generator.run_async(prompt, streaming_callback=collect)
        return reply["replies"][0].text

    memory = []
    for _ in range(3):
        streamed.clear()
        with within(20.0):
            texts = await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
        assert texts == expected  # every reply whole, none mixed up with another
        assert ["".join(streamed[i]) for i in range(64)] == expected
        gc.collect()
        memory.append(rss_mb())
    assert memory[2] - memory[1] < 30, f"RSS after each round: {memory} MB"
    print(f"RSS after 3 rounds of 64 streams: {[round(m, 1) for m in memory]} MB")
