"""stackit_nb.batch over real HTTP against the local server: order, bounds, failures, 429s."""

from __future__ import annotations

import _thread
import asyncio
import threading
import time
from typing import Any

import openai
import pytest
from haystack import Pipeline
from haystack.components.builders import ChatPromptBuilder
from haystack.components.generators.chat import OpenAIChatGenerator
from haystack.dataclasses import ChatMessage
from haystack.utils import Secret

from stackit_nb import STACKITChatGenerator
from stackit_nb.batch import (
    BatchFailedError,
    BatchInterrupted,
    BatchResult,
    arun_many,
    run_many,
)
from stackit_nb.local import LocalSTACKIT

MODEL = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
TOO_LONG = "word " * 300_000  # over the model's context: the server answers 400


def prompts(n: int) -> list[str]:
    return [f"Write {i + 1} tokens about the sea." for i in range(n)]


@pytest.fixture
def generator(server: LocalSTACKIT, srv: LocalSTACKIT) -> STACKITChatGenerator:
    """A generator built as the documentation does; ``srv`` resets faults and settings."""
    return STACKITChatGenerator(model=MODEL)


class InFlight:
    """A real generator behind a counter of concurrent calls (async, or sync-only)."""

    def __init__(self, inner: Any, *, sync_only: bool = False) -> None:
        self.inner, self.now, self.most = inner, 0, 0
        self._lock = threading.Lock()
        if not sync_only:
            self.run_async = self._run_async

    def _enter(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def _leave(self) -> None:
        with self._lock:
            self.now -= 1

    async def _run_async(self, **kwargs: Any) -> dict[str, Any]:
        self._enter()
        try:
            return await self.inner.run_async(**kwargs)
        finally:
            self._leave()

    def run(self, **kwargs: Any) -> dict[str, Any]:
        self._enter()
        try:
            return self.inner.run(**kwargs)
        finally:
            self._leave()


def test_results_come_back_in_input_order(generator: STACKITChatGenerator) -> None:
    inputs = prompts(24)
    results = run_many(generator, inputs, concurrency=8, progress=False)
    assert isinstance(results, BatchResult)
    assert len(results) == 24
    assert [r.index for r in results] == list(range(24))
    assert [r.input for r in results] == inputs
    # "Write N tokens" gets exactly N tokens from the scripted engine: each reply is its own
    assert [r.usage["completion_tokens"] for r in results] == list(range(1, 25))
    assert results.texts[5] == generator.run(inputs[5])["replies"][0].text
    assert all(r.ok and r.attempts == 1 for r in results)
    assert results.errors == [None] * 24


def test_message_lists_and_run_arguments(generator: STACKITChatGenerator) -> None:
    inputs: list[Any] = [
        [ChatMessage.from_system("Be brief."), ChatMessage.from_user("Tell me a joke.")],
        {"messages": [ChatMessage.from_user("Write 50 tokens about rain.")]},
        {
            "messages": [ChatMessage.from_user("Write 50 tokens about rain.")],
            "generation_kwargs": {"max_tokens": 3},
        },
    ]
    results = run_many(generator, inputs, progress=False)
    assert all(r.ok for r in results)
    assert results[1].usage["completion_tokens"] == 50
    assert results[2].usage["completion_tokens"] == 3  # the item's own arguments win
    shared = run_many(
        generator, prompts(3), run_kwargs={"generation_kwargs": {"max_tokens": 1}}, progress=False
    )
    assert [r.usage["completion_tokens"] for r in shared] == [1, 1, 1]


def test_concurrency_is_bounded(generator: STACKITChatGenerator, srv: LocalSTACKIT) -> None:
    srv.configure(ttft=0.1)
    counted = InFlight(generator)
    started = time.perf_counter()
    results = run_many(counted, prompts(24), concurrency=4, progress=False)
    elapsed = time.perf_counter() - started
    assert all(r.ok for r in results)
    assert counted.most == 4
    assert elapsed >= 24 / 4 * 0.1  # six rounds of at least the time to first token
    assert elapsed < 24 * 0.1  # and far from one at a time


def test_sync_only_components_run_in_threads(
    generator: STACKITChatGenerator, srv: LocalSTACKIT
) -> None:
    srv.configure(ttft=0.1)
    counted = InFlight(generator, sync_only=True)
    # more than the event loop's default executor has threads on a small machine
    results = run_many(counted, prompts(30), concurrency=10, progress=False)
    assert all(r.ok for r in results)
    assert counted.most == 10
    assert not [t for t in threading.enumerate() if t.name.startswith("stackit_nb.batch")]


def test_failed_items_are_captured_without_stopping_others(
    generator: STACKITChatGenerator,
) -> None:
    inputs = ["Tell me a joke.", TOO_LONG, "Who are you?", TOO_LONG]
    results = run_many(generator, inputs, concurrency=2, progress=False)
    assert [r.ok for r in results] == [True, False, True, False]
    assert isinstance(results[1].error, openai.BadRequestError)
    assert "context length" in str(results[1].error)
    assert results[1].attempts == 1  # a 400 is not worth another attempt
    assert results.replies[1] is None and results.texts[1] is None
    assert [r.index for r in results.failed] == [1, 3]
    assert (results.summary.ok, results.summary.failed) == (2, 2)
    with pytest.raises(BatchFailedError, match="2 of 4 items") as info:
        results.raise_on_failure()
    assert isinstance(info.value.__cause__, openai.BadRequestError)
    assert run_many(generator, ["Hi"], progress=False).raise_on_failure()[0].ok


def test_a_bad_input_fails_only_its_item(generator: STACKITChatGenerator) -> None:
    results = run_many(generator, ["Hi", 42, "Hello"], progress=False)
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, TypeError)


def test_rate_limit_storm_slows_down_and_every_item_completes(
    generator: STACKITChatGenerator, srv: LocalSTACKIT
) -> None:
    srv.faults.fail(status=429, times=12, retry_after=0.05)
    inputs = prompts(24)
    results = run_many(generator, inputs, concurrency=8, progress=False)
    assert all(r.ok for r in results), results.failed
    assert [r.input for r in results] == inputs
    assert [r.usage["completion_tokens"] for r in results] == list(range(1, 25))
    summary = results.summary
    assert summary.rate_limited == 12
    assert summary.attempts == 24 + 12
    assert summary.min_concurrency < 8  # it slowed down
    assert generator.max_retries is None  # the caller's generator is left as it was


def test_concurrency_recovers_after_rate_limits(server: LocalSTACKIT, srv: LocalSTACKIT) -> None:
    # max_retries=0: the wrapper hides the generator from the batch, so it cannot make the copy
    counted = InFlight(STACKITChatGenerator(model=MODEL, max_retries=0))
    seen: list[int] = []
    inner_enter = counted._enter

    def enter() -> None:
        inner_enter()
        seen.append(counted.now)

    counted._enter = enter  # type: ignore[method-assign]
    srv.configure(ttft=0.02)
    srv.faults.fail(status=429, times=3, retry_after=0.05)
    results = run_many(counted, prompts(100), concurrency=8, progress=False)
    assert all(r.ok for r in results)
    assert results.summary.min_concurrency < 8
    assert max(seen[-30:]) == 8  # back at the maximum by the end


def test_retry_after_is_honoured(generator: STACKITChatGenerator, srv: LocalSTACKIT) -> None:
    srv.faults.fail(status=429, times=1, retry_after=0.5)
    started = time.perf_counter()
    results = run_many(generator, ["Hi", "Hello", "Hey"], concurrency=3, progress=False)
    assert time.perf_counter() - started >= 0.5
    assert all(r.ok for r in results)
    (limited,) = [r for r in results if r.attempts == 2]
    assert limited.elapsed >= 0.5
    assert results.summary.rate_limited == 1


def test_an_endless_rate_limit_fails_items_after_the_timeout(
    generator: STACKITChatGenerator, srv: LocalSTACKIT
) -> None:
    srv.faults.fail(status=429, times=1000, retry_after=0.05)
    started = time.perf_counter()
    results = run_many(generator, ["Hi", "Hello"], rate_limit_timeout=0.4, progress=False)
    assert time.perf_counter() - started < 5
    assert all(isinstance(e, openai.RateLimitError) for e in results.errors)
    assert all(r.attempts > 2 for r in results)


def test_server_errors_are_retried_up_to_max_attempts(
    generator: STACKITChatGenerator, srv: LocalSTACKIT
) -> None:
    srv.faults.fail(status=503, times=2)
    (item,) = run_many(generator, ["Hi"], progress=False)
    assert item.ok and item.attempts == 3
    srv.faults.fail(status=500, times=5)
    (item,) = run_many(generator, ["Hi"], max_attempts=2, progress=False)
    assert isinstance(item.error, openai.InternalServerError)
    assert item.attempts == 2


def test_the_generators_own_retries_can_be_kept(
    generator: STACKITChatGenerator, srv: LocalSTACKIT
) -> None:
    srv.faults.fail(status=429, times=1, retry_after=0.1)
    results = run_many(generator, ["Hi"], retry_in_batch=False, progress=False)
    assert results[0].ok and results[0].attempts == 1  # the openai client retried by itself
    assert results.summary.rate_limited == 0


def test_haystack_openai_generator_twice(server: LocalSTACKIT, srv: LocalSTACKIT) -> None:
    # a plain OpenAIChatGenerator caches its async client on the first loop; each batch uses
    # its own copy, so a second batch on a new loop works
    generator = OpenAIChatGenerator(
        api_key=Secret.from_token(srv.api_key), model=MODEL, api_base_url=srv.url
    )
    for _ in range(2):
        results = run_many(generator, prompts(4), progress=False)
        assert [r.usage["completion_tokens"] for r in results] == [1, 2, 3, 4]


def test_run_many_inside_a_running_loop(generator: STACKITChatGenerator) -> None:
    async def notebook_cell() -> BatchResult:  # Jupyter runs cells inside a running loop
        return run_many(generator, prompts(5), progress=False)

    results = asyncio.run(notebook_cell())
    assert [r.usage["completion_tokens"] for r in results] == [1, 2, 3, 4, 5]


async def test_arun_many(generator: STACKITChatGenerator) -> None:
    results = await arun_many(generator, prompts(6), concurrency=3, progress=False)
    assert [r.usage["completion_tokens"] for r in results] == [1, 2, 3, 4, 5, 6]


async def test_cancelling_arun_many_stops_quickly(
    generator: STACKITChatGenerator, srv: LocalSTACKIT
) -> None:
    srv.configure(ttft=3.0)
    task = asyncio.create_task(arun_many(generator, prompts(20), concurrency=4, progress=False))
    await asyncio.sleep(0.3)
    started = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - started < 1.0


def test_ctrl_c_interrupts_run_many_with_partial_results(
    generator: STACKITChatGenerator, srv: LocalSTACKIT
) -> None:
    srv.configure(ttft=0.2)
    timer = threading.Timer(0.7, _thread.interrupt_main)
    timer.start()
    started = time.perf_counter()
    with pytest.raises(BatchInterrupted) as info:
        run_many(generator, prompts(40), concurrency=2, progress=False)
    assert time.perf_counter() - started < 2.0  # not the 4 s the whole batch takes
    partial = info.value.partial
    assert 0 < partial.summary.ok < 40
    assert partial.summary.not_run == 40 - partial.summary.ok - partial.summary.failed
    assert all(r.ok for r in partial if r.done)
    assert isinstance(info.value, KeyboardInterrupt)
    time.sleep(0.1)
    assert not [t for t in threading.enumerate() if t.name.startswith("stackit_nb.")]


def _pipeline(generator: Any) -> Pipeline:
    pipeline = Pipeline()
    template = [ChatMessage.from_user("Write {{ n }} tokens about {{ topic }}.")]
    pipeline.add_component("prompt_builder", ChatPromptBuilder(template=template))
    pipeline.add_component("llm", generator)
    pipeline.connect("prompt_builder.prompt", "llm.messages")
    return pipeline


def test_pipeline_inputs(server: LocalSTACKIT, srv: LocalSTACKIT) -> None:
    pipeline = _pipeline(STACKITChatGenerator(model=MODEL))
    inputs: list[Any] = [{"prompt_builder": {"n": n, "topic": "rain"}} for n in (3, 1, 2)]
    results = run_many(pipeline, [*inputs, "not a dict"], progress=False)
    assert [r.usage["completion_tokens"] for r in results[:3]] == [3, 1, 2]
    assert results[0].output is not None and "llm" in results[0].output
    assert results[0].reply is not None and results[0].text
    assert isinstance(results[3].error, TypeError)


def test_pipeline_rate_limits_reach_the_batch(server: LocalSTACKIT, srv: LocalSTACKIT) -> None:
    # in a pipeline the generator keeps its settings: with max_retries=0 the 429s reach the
    # batch (wrapped in Haystack's PipelineRuntimeError), which waits and retries
    pipeline = _pipeline(STACKITChatGenerator(model=MODEL, max_retries=0))
    srv.faults.fail(status=429, times=2, retry_after=0.05)
    inputs = [{"prompt_builder": {"n": n, "topic": "snow"}} for n in range(1, 7)]
    results = run_many(pipeline, inputs, concurrency=3, progress=False)
    assert all(r.ok for r in results)
    assert results.summary.rate_limited == 2


def test_summary_renders_as_tables(generator: STACKITChatGenerator, srv: LocalSTACKIT) -> None:
    srv.faults.fail(status=429, times=1, retry_after=0.05)
    results = run_many(generator, ["Tell me a joke.", TOO_LONG, "Hi"], progress=False)
    summary = results.summary
    assert (summary.items, summary.ok, summary.failed, summary.rate_limited) == (3, 2, 1, 1)
    assert summary.prompt_tokens > 0 and summary.completion_tokens > 0
    assert summary.requests_per_second > 0
    markdown = summary._repr_markdown_()
    assert "| items | 3 |" in markdown
    assert "| failed | 1 |" in markdown
    assert f"| tokens in / out | {summary.prompt_tokens:,} / {summary.completion_tokens:,} |" in (
        markdown
    )
    assert "| 429s seen | 1 |" in markdown
    assert "wall time" in markdown and "requests/s" in markdown
    html = summary._repr_html_()
    assert "<table>" in html and "<th style='text-align:left'>items</th>" in html
    # the result adds the failed items, escaped
    assert "ContextTooLongError" in results._repr_markdown_()
    assert "ContextTooLongError" in results._repr_html_() and "<td>1</td>" in results._repr_html_()
    assert repr(results).startswith("BatchResult(3 items, 2 ok, 1 failed")


def test_progress_bar(generator: STACKITChatGenerator, capsys: pytest.CaptureFixture[str]) -> None:
    run_many(generator, ["Hi", TOO_LONG, "Hello"], progress=True, desc="jokes")
    err = capsys.readouterr().err
    assert "jokes" in err and "3/3" in err
    assert "failed=1" in err and "tokens=" in err
    run_many(generator, ["Hi"], progress=False)
    assert capsys.readouterr().err == ""


def test_edge_cases(generator: STACKITChatGenerator) -> None:
    empty = run_many(generator, [], progress=False)
    assert len(empty) == 0 and empty.summary.items == 0
    with pytest.raises(ValueError, match="concurrency"):
        run_many(generator, ["Hi"], concurrency=0, progress=False)
    with pytest.raises(ValueError, match="max_attempts"):
        run_many(generator, ["Hi"], max_attempts=0)


def test_failure_table_shows_endpoint_text_literally(
    generator: STACKITChatGenerator, srv: LocalSTACKIT
) -> None:
    """An error message is the endpoint's text: rendered as Markdown it must stay text (no image
    that loads by itself, no link, no extra table column)."""
    import mistune

    hostile = (
        "bad | cell ![x](http://127.0.0.1:9/leak.png) [click](http://127.0.0.1:9/) <img src=x>"
    )
    srv.faults.fail(status=400, times=1, message=hostile)
    results = run_many(generator, ["Tell me a joke."], progress=False, max_attempts=1)
    assert results.summary.failed == 1
    rendered = mistune.create_markdown(plugins=["table"])(results._repr_markdown_())
    assert "<img" not in rendered and "<a " not in rendered
    cell = next(line for line in rendered.splitlines() if "leak.png" in line)
    assert "bad | cell ![x](http://127.0.0.1:9/leak.png) [click](http://127.0.0.1:9/)" in cell
    failures = rendered[rendered.index("failed item") :]
    assert failures.count("<td") == 3  # one row: item, error type, message
