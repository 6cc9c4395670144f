"""Many prompts at once: bounded concurrency, shared rate-limit pacing, retries, order kept.

``run_many`` sends prompts (strings, message lists or pipeline inputs) through any Haystack chat
generator or pipeline, from a script or a notebook, and returns the results in input order. A
failed item keeps its error and never stops the others. A 429 pauses the whole batch until
``Retry-After`` passes and halves the number of requests in flight, which then grows back by one
per round of successes (AIMD), so a rate limit slows the batch down instead of failing items.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from haystack.core.pipeline.base import PipelineBase
from haystack.dataclasses import ChatMessage
from tqdm.auto import tqdm

from stackit_nb.batch._pacing import Pacer, classify, retry_after
from stackit_nb.batch._results import (
    BatchFailedError,
    BatchResult,
    BatchSummary,
    ItemResult,
    RequestRecord,
)

__all__ = [
    "BatchFailedError",
    "BatchInterrupted",
    "BatchResult",
    "BatchSummary",
    "ItemResult",
    "RequestRecord",
    "arun_many",
    "run_many",
]


class BatchInterrupted(KeyboardInterrupt):
    """``run_many`` was interrupted; ``partial`` holds the items finished so far."""

    def __init__(self, result: BatchResult) -> None:
        super().__init__(f"batch interrupted: {result.summary.ok} of {len(result)} items worked")
        self.partial = result


def _without_client_retries(generator: Any) -> Any | None:
    """A copy of an OpenAI-style Haystack generator whose client never retries by itself.

    The openai client retries 429s quietly (``max_retries``, default 5); with retries off, every
    429 reaches the batch, which pauses and slows down all workers. The caller's generator is
    left untouched, and the copy's clients belong to this batch's event loop.
    """
    if not all(hasattr(generator, a) for a in ("max_retries", "client", "async_client")):
        return None
    clone = copy.copy(generator)
    clone.max_retries = 0
    clone.client = clone.async_client = None
    vars(clone).pop("_client_loop", None)
    return clone


async def _close(clone: Any) -> None:
    if clone is None:
        return
    if getattr(clone, "async_client", None) is not None and hasattr(clone, "close_async"):
        await clone.close_async()
    if getattr(clone, "client", None) is not None and hasattr(clone, "close"):
        clone.close()


def _caller(
    target: Any, run_kwargs: dict[str, Any], executor: ThreadPoolExecutor
) -> Callable[[Any], Awaitable[dict[str, Any]]]:
    """One item -> the target's output dict, using ``run_async`` when the target has one."""
    is_pipeline = isinstance(target, PipelineBase)
    run_async = getattr(target, "run_async", None)

    def arguments(item: Any) -> dict[str, Any]:
        if is_pipeline:
            if not isinstance(item, dict):
                raise TypeError(
                    f"a pipeline takes dicts of inputs, e.g. {{'prompt_builder': {{...}}}}, not "
                    f"{type(item).__name__}"
                )
            return {**run_kwargs, "data": item}
        if isinstance(item, dict):  # the component's run() arguments for this item
            return {**run_kwargs, **item}
        if isinstance(item, str):
            return {**run_kwargs, "messages": [ChatMessage.from_user(item)]}
        if isinstance(item, list | tuple) and all(isinstance(m, ChatMessage) for m in item):
            return {**run_kwargs, "messages": list(item)}
        raise TypeError(
            f"an input must be a str, a list of ChatMessage or a dict of run() arguments, not "
            f"{type(item).__name__}"
        )

    async def call(item: Any) -> dict[str, Any]:
        kwargs = arguments(item)
        if run_async is not None:
            return await run_async(**kwargs)
        # own executor: the loop's default one has only a few threads on a small machine
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, partial(target.run, **kwargs))

    return call


class _Batch:
    """The state of one batch run, readable from another thread when it is interrupted."""

    def __init__(self, inputs: list[Any], concurrency: int, bar: Any) -> None:
        self.items = [ItemResult(index=i, input=x) for i, x in enumerate(inputs)]
        self.concurrency = concurrency
        self.bar = bar
        self._failed = self._tokens_in = self._tokens_out = 0
        self.pacer: Pacer | None = None
        self.started = time.perf_counter()
        self.task: asyncio.Task[Any] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()

    def interrupt(self) -> None:
        """Cancel the batch from another thread (Ctrl+C in the thread that waits for it)."""
        self._stop.set()
        if self.loop is not None and self.task is not None:
            with contextlib.suppress(RuntimeError):  # the loop already finished
                self.loop.call_soon_threadsafe(self.task.cancel)

    def result(self) -> BatchResult:
        pacer = self.pacer
        summary = BatchSummary.of(
            self.items,
            wall_time=time.perf_counter() - self.started,
            concurrency=self.concurrency,
            min_concurrency=pacer.min_seen if pacer else self.concurrency,
            rate_limited=pacer.rate_limited if pacer else 0,
        )
        return BatchResult(self.items, summary)

    def record(self, sent: float, finished: float, outcome: str) -> RequestRecord:
        return RequestRecord(sent - self.started, finished - self.started, outcome)

    def close_bar(self) -> None:
        """Close the progress bar. A notebook's bar is a widget, which GitHub and nbconvert do not
        draw: it also leaves its final line as text, so a saved notebook shows how the batch ended.
        """
        if self.bar is None:
            return
        self.bar.close()
        notebook = sys.modules.get("tqdm.notebook")  # loaded only where tqdm draws widgets
        if notebook is not None and isinstance(self.bar, notebook.tqdm):
            done = sum(item.output is not None or item.error is not None for item in self.items)
            print(
                f"{self.bar.desc}: {done} of {len(self.items)} done, {self._failed} failed, "
                f"tokens in/out {self._tokens_in}/{self._tokens_out}"
            )

    def advance(self, item: ItemResult) -> None:
        """Count a finished item on the progress bar (running totals: large batches stay cheap)."""
        if self.bar is None:
            return
        usage = item.usage
        self._failed += item.error is not None
        self._tokens_in += usage["prompt_tokens"]
        self._tokens_out += usage["completion_tokens"]
        self.bar.set_postfix(
            failed=self._failed,
            tokens=f"{self._tokens_in}/{self._tokens_out}",
            concurrency=self.pacer.limit if self.pacer else self.concurrency,
            refresh=False,
        )
        self.bar.update(1)

    async def run(
        self,
        generator: Any,
        *,
        max_attempts: int,
        rate_limit_timeout: float,
        run_kwargs: dict[str, Any],
        retry_in_batch: bool,
    ) -> BatchResult:
        self.loop, self.task = asyncio.get_running_loop(), asyncio.current_task()
        if self._stop.is_set():  # interrupted before the loop was known
            raise asyncio.CancelledError
        self.started = time.perf_counter()
        pacer = self.pacer = Pacer(self.concurrency)
        clone = _without_client_retries(generator) if retry_in_batch else None
        executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="stackit_nb.batch")
        call = _caller(clone or generator, run_kwargs, executor)
        queue = iter(self.items)  # shared: each worker takes the next item in input order

        async def attempt_until_done(item: ItemResult) -> None:
            first_limited: float | None = None
            while True:
                started_round = await pacer.acquire()
                item.attempts += 1
                sent = time.perf_counter()
                try:
                    output = await call(item.input)
                except Exception as exc:
                    pacer.release()
                    kind = classify(exc)
                    now = time.perf_counter()
                    item.requests.append(self.record(sent, now, kind))
                    if kind == "rate_limited":
                        first_limited = first_limited or now
                        # no await before this line: nobody starts before the pause is set
                        pacer.rate_limited_for(started_round, retry_after(exc))
                        if now - first_limited < rate_limit_timeout:
                            continue
                    elif kind == "transient" and item.attempts < max_attempts:
                        await asyncio.sleep(min(8.0, 0.25 * 2**item.attempts) * random.random())
                        continue
                    item.error = exc
                    return
                pacer.release()
                pacer.succeeded()
                item.requests.append(self.record(sent, time.perf_counter(), "ok"))
                item.output = output
                return

        async def worker() -> None:
            for item in queue:
                began = time.perf_counter()
                await attempt_until_done(item)
                item.elapsed = time.perf_counter() - began
                self.advance(item)

        workers = [
            asyncio.create_task(worker()) for _ in range(min(self.concurrency, len(self.items)))
        ]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            # threads still inside a sync run() finish that one call and exit; nothing new starts
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        else:
            executor.shutdown(wait=True)  # every thread is idle by now: this is quick
        finally:
            await _close(clone)
        return self.result()


def _check(concurrency: int, max_attempts: int) -> None:
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")


def _progress_bar(total: int, progress: bool, desc: str | None) -> Any:
    if not progress:
        return None
    return tqdm(total=total, desc=desc or "run_many", unit="item")


async def arun_many(
    generator: Any,
    inputs: Iterable[Any],
    *,
    concurrency: int = 8,
    progress: bool = True,
    max_attempts: int = 6,
    rate_limit_timeout: float = 300.0,
    run_kwargs: dict[str, Any] | None = None,
    retry_in_batch: bool = True,
    desc: str | None = None,
) -> BatchResult:
    """Like :func:`run_many`, without blocking the event loop (top-level ``await`` in Jupyter).

    Cancelling the task stops launching items, cancels those in flight and re-raises.

    Example::

        from stackit_nb.batch import arun_many

        results = await arun_many(generator, ["Tell me a joke.", "Who are you?"])
        results.summary  # renders as a table
    """
    _check(concurrency, max_attempts)
    items = list(inputs)
    bar = _progress_bar(len(items), progress, desc)
    batch = _Batch(items, concurrency, bar)
    try:
        return await batch.run(
            generator,
            max_attempts=max_attempts,
            rate_limit_timeout=rate_limit_timeout,
            run_kwargs=dict(run_kwargs or {}),
            retry_in_batch=retry_in_batch,
        )
    finally:
        batch.close_bar()


def run_many(
    generator: Any,
    inputs: Iterable[Any],
    *,
    concurrency: int = 8,
    progress: bool = True,
    max_attempts: int = 6,
    rate_limit_timeout: float = 300.0,
    run_kwargs: dict[str, Any] | None = None,
    retry_in_batch: bool = True,
    desc: str | None = None,
) -> BatchResult:
    """Run many prompts through a chat generator or pipeline; results come back in input order.

    Works the same in a script and in a notebook: the requests run on a private event loop in a
    worker thread while this call blocks, so a loop already running here (Jupyter's) is not in
    the way. In a notebook, ``await arun_many(...)`` is the non-blocking alternative.

    :param generator: A Haystack chat generator (``STACKITChatGenerator``,
        ``OpenAIChatGenerator``, any component with ``run``/``run_async``) or a ``Pipeline``.
        ``run_async`` is used when present, else ``run`` in a thread per request.
    :param inputs: One per request. For a generator: a str (one user message), a list of
        ``ChatMessage``, or a dict of ``run()`` arguments (``{"messages": ...,
        "generation_kwargs": ...}``). For a pipeline: its input dict, as for ``Pipeline.run``.
    :param concurrency: The most requests in flight at once.
    :param progress: Show a ``tqdm`` bar (a widget in notebooks) with failures, tokens in/out
        and the current concurrency.
    :param max_attempts: Attempts per item on 5xx, 408, 409, timeouts and connection errors
        before it is recorded as failed. Other errors (400, 401, 404, ...) fail at once.
    :param rate_limit_timeout: Seconds an item may keep receiving 429s before it is recorded as
        failed (a 429 does not count as an attempt: it means "slow down", not "this item fails").
    :param run_kwargs: Extra arguments for every call, e.g. ``{"generation_kwargs": {...}}`` (for
        a pipeline: ``Pipeline.run`` arguments such as ``include_outputs_from``).
    :param retry_in_batch: For OpenAI-style generators (with ``max_retries``), run a copy whose
        client does not retry, so that the batch sees every 429 and paces all workers; the batch
        then retries items itself (``max_attempts``). ``False`` keeps the generator's own retries.
        In a pipeline the components keep their own settings: build its generator with
        ``max_retries=0`` for the same effect.
    :param desc: Label of the progress bar.
    :returns: A :class:`BatchResult`: a sequence of :class:`ItemResult` in input order, with
        ``.replies``, ``.texts``, ``.errors`` and a ``.summary`` that renders as a table.
    :raises BatchInterrupted: On Ctrl+C / a notebook interrupt (a ``KeyboardInterrupt``) once
        the requests in flight are cancelled; ``.partial`` holds what finished.

    Example::

        from stackit_nb import STACKITChatGenerator
        from stackit_nb.batch import run_many

        generator = STACKITChatGenerator(model="neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8")
        results = run_many(generator, [f"Write a haiku about {x}." for x in ("sea", "rain")])
        print(results.texts)
        results.summary  # items, failures, tokens, wall time, requests/s
    """
    _check(concurrency, max_attempts)
    items = list(inputs)
    bar = _progress_bar(len(items), progress, desc)  # here, so a notebook shows it in this cell
    batch = _Batch(items, concurrency, bar)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = asyncio.run(
                batch.run(
                    generator,
                    max_attempts=max_attempts,
                    rate_limit_timeout=rate_limit_timeout,
                    run_kwargs=dict(run_kwargs or {}),
                    retry_in_batch=retry_in_batch,
                )
            )
        except BaseException as exc:  # handed to the calling thread, re-raised there
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="stackit_nb.run_many", daemon=True)
    thread.start()
    try:
        try:
            while thread.is_alive():
                thread.join(0.1)  # short joins: Ctrl+C is delivered between them
        except KeyboardInterrupt:
            batch.interrupt()
            thread.join()
            raise BatchInterrupted(batch.result()) from None
    finally:
        batch.close_bar()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
