"""Faults end to end: timing and request counts behind the fault matrix, and load.

``test_fault_matrix.py`` holds every fault kind against every user-facing surface and the
outcome the user gets. This module adds what a matrix cell does not check: that a retry waits
what ``Retry-After`` names, which requests reached the server, that retries against a stopped
server stay bounded, a stream cut at several points and whole again on the next request, a batch
riding out a mix of 429s and 5xx, and 64 concurrent streams through one generator, over real
HTTP. No test may hang: the module runs under a per-test timeout.

The raw server side of each fault is covered in ``test_local_server_errors.py``; the error
messages in detail in ``test_generator_errors.py``; 429 pacing in ``test_batch.py``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import openai
import pytest
from haystack.dataclasses import StreamingChunk

from stackit_nb import STACKITChatGenerator, STACKITTextEmbedder
from stackit_nb.batch import run_many
from stackit_nb.errors import StreamInterruptedError
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


# -- no server ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stopped_url() -> str:
    """The URL of a server that was running and is not any more: connections are refused."""
    with LocalSTACKIT() as gone:
        url = gone.url
    return url


def test_retries_against_a_stopped_server_stay_bounded(
    fresh: LocalSTACKIT, stopped_url: str
) -> None:
    with within(4.0 + MARGIN), pytest.raises(openai.APIConnectionError):
        chat(max_retries=2, api_base_url=stopped_url)  # backoff about 0.5 s, then 1 s


# -- broken streams ------------------------------------------------------------------------------


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


# -- the batch runner ----------------------------------------------------------------------------


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
