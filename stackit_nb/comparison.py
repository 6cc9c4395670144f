"""One prompt to several models at once: their replies side by side, and how each did.

``compare`` sends one request per model, concurrently, through the batch runner
(:mod:`stackit_nb.batch`): a 429 for any model pauses the others too and the request is sent
again, as in ``run_many``. A model that fails keeps its error in its own column while the others
finish. In a notebook the replies stream into a grid (:mod:`stackit_nb.widgets.compare`), which
hands over to a static copy at the end (what a saved notebook keeps, and GitHub shows); in a
terminal the replies are printed one after another, then the table.

Example::

    import stackit_nb

    stackit_nb.connect()
    comparison = stackit_nb.compare(
        "Explain a rainbow to a child in two sentences.",
        models=["openai/gpt-oss-20b", "google/gemma-3-27b-it"],
    )
    comparison.summary  # a table: time to first token, tokens/s, tokens, finish reason, error
    comparison.plot()  # time to first token and tokens/s per model
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from haystack.dataclasses import ChatMessage, ImageContent, StreamingChunk

from stackit_nb._comparison_results import Comparison, ModelResult
from stackit_nb._terminal import printable
from stackit_nb.batch import BatchResult, arun_many, run_many
from stackit_nb.batch._pacing import classify

__all__ = ["Comparison", "ModelResult", "acompare", "compare"]

_MAX_CONCURRENCY = 8


class _Run:
    """What one model's request has shown so far (reset when a 429 makes it start again)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.sent: float | None = None
        self.first: float | None = None  # the first streamed text
        self.last: float | None = None
        self.done: float | None = None

    def started(self) -> None:
        self.sent, self.first = time.perf_counter(), None

    def chunk(self, chunk: StreamingChunk) -> None:
        if chunk.content or (chunk.reasoning and chunk.reasoning.reasoning_text):
            now = time.perf_counter()
            self.first = self.first or now
            self.last = now


class _PerModel:
    """The target of the batch: one item is one model's request, sent by that model's generator
    with a streaming callback for its column."""

    def __init__(self, generators: dict[str, Any], runs: dict[str, _Run], view: Any) -> None:
        self.generators, self.runs, self.view = generators, runs, view

    async def run_async(
        self, *, model: str, messages: list[ChatMessage], generation_kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        run = self.runs[model]
        run.started()
        self.view.started(model)
        callback = self.view.callback(model)

        async def on_chunk(chunk: StreamingChunk) -> None:
            run.chunk(chunk)
            if callback is not None:
                await callback(chunk)

        try:
            output = await self.generators[model].run_async(
                messages=messages, streaming_callback=on_chunk, generation_kwargs=generation_kwargs
            )
        except Exception as exc:
            if classify(exc) != "rate_limited":  # a 429 is sent again: not the end of it
                run.done = time.perf_counter()
                self.view.failed(model, exc)
            raise
        run.done = time.perf_counter()
        replies = output.get("replies") or [None]
        self.view.finished(model, replies[0])
        return output


class _Printer:
    """The terminal view: each reply printed once it and the ones before it are done."""

    def __init__(self, models: list[str], skipped: dict[str, str], out: Any = None) -> None:
        self.models, self.out = models, out
        self.done: dict[str, str] = {}
        self.printed = 0
        for model, why in skipped.items():
            self._write(f"[skipped] {model}: {why}\n")

    def _write(self, text: str) -> None:
        out = self.out or sys.stdout
        out.write(printable(text))
        out.flush()

    def started(self, model: str) -> None:
        pass

    def callback(self, model: str) -> None:
        return None

    def finished(self, model: str, reply: ChatMessage | None) -> None:
        self.done[model] = (reply.text or "") if reply is not None else ""
        self._advance()

    def failed(self, model: str, error: BaseException) -> None:
        self.done[model] = f"[error] {type(error).__name__}: {error}"
        self._advance()

    def _advance(self) -> None:
        while self.printed < len(self.models) and self.models[self.printed] in self.done:
            model = self.models[self.printed]
            self._write(f"=== {model} ===\n{self.done[model]}\n\n")
            self.printed += 1

    def close(self, comparison: Comparison) -> None:
        self._write(f"{comparison.summary}\n")


class _Quiet(_Printer):
    def _write(self, text: str) -> None:
        pass


def _messages(prompt: Any, system: str | None, images: Sequence[Any] | None) -> list[ChatMessage]:
    if isinstance(prompt, str):
        parts: list[Any] = [prompt]
        if images:
            from stackit_nb.images import to_image_content

            parts += [i if isinstance(i, ImageContent) else to_image_content(i) for i in images]
        user = ChatMessage.from_user(content_parts=parts)
        return ([ChatMessage.from_system(system)] if system else []) + [user]
    if (
        isinstance(prompt, list | tuple)
        and prompt
        and all(isinstance(m, ChatMessage) for m in prompt)
    ):
        if images or system:
            raise ValueError(
                "images= and system= go with a str prompt; with a list of ChatMessage put the "
                "images and the system message into the messages themselves"
            )
        return list(prompt)
    raise TypeError(f"prompt must be a str or a list of ChatMessage, not {type(prompt).__name__}")


def _has_images(messages: list[ChatMessage]) -> bool:
    return any(m.images for m in messages)


def _choose_models(
    models: Sequence[str] | None, needs_vision: bool, template: Any
) -> tuple[list[str], dict[str, str]]:
    """The models to ask, and those left out with why."""
    if models is not None:
        if isinstance(models, str) or not all(isinstance(m, str) for m in models):
            raise TypeError(
                "models= takes a list of model ids, e.g. models=['openai/gpt-oss-20b', "
                "'google/gemma-3-27b-it'] (stackit_nb.list_models() shows them)"
            )
        wanted = list(models)
        if not wanted:
            raise ValueError("models= is empty: name at least one model, or pass models=None")
        if len(set(wanted)) != len(wanted):
            twice = sorted({m for m in wanted if wanted.count(m) > 1})
            raise ValueError(f"models= names {', '.join(twice)} more than once")
        if not needs_vision:
            return wanted, {}
    catalog = _catalog(template)
    if models is None:
        wanted = [m.id for m in catalog.chat if not m.legacy]
    chosen, skipped = [], {}
    for model in wanted:
        info = catalog.get(model)
        if needs_vision and info is not None and not info.accepts_images:
            skipped[model] = "does not take images (no vision capability)"
        else:
            chosen.append(model)
    if models is None and needs_vision:
        skipped = {}  # "every model that fits": the others were never asked for
    if not chosen:
        raise ValueError(
            "no model takes images among those named; vision models here: "
            + (", ".join(catalog.vision.ids) or "none")
        )
    return chosen, skipped


def _catalog(template: Any) -> Any:
    from stackit_nb.connection import list_models

    if template is None:
        return list_models()
    return list_models(getattr(template, "api_key", None), getattr(template, "api_base_url", None))


def _generators(models: list[str], template: Any) -> dict[str, Any]:
    """One generator per model, whose client does not retry by itself: the batch sees every 429
    and paces all models."""
    from stackit_nb.batch import _without_client_retries

    if template is None:
        from stackit_nb.generator import STACKITChatGenerator

        return {m: STACKITChatGenerator(model=m, max_retries=0) for m in models}
    generators = {}
    for model in models:
        clone = _without_client_retries(template)
        if clone is None or not hasattr(clone, "model"):
            raise TypeError(
                f"generator= must be a chat generator with a model and an OpenAI client "
                f"(STACKITChatGenerator, OpenAIChatGenerator), not {type(template).__name__}"
            )
        clone.model = model
        generators[model] = clone
    return generators


def _view(show: bool | None, models: list[str], skipped: dict[str, str]) -> Any:
    if show is False:
        return _Quiet(models, skipped)
    from stackit_nb.widgets.stream import _kernel_shell

    if _kernel_shell() is None:
        return _Printer(models, skipped)
    from stackit_nb.widgets.compare import CompareGrid

    grid = CompareGrid(models, skipped)
    grid.show()
    return grid


def _plan(
    prompt: Any,
    models: Sequence[str] | None,
    images: Sequence[Any] | None,
    system: str | None,
    generator: Any,
) -> tuple[list[ChatMessage], list[str], dict[str, str]]:
    """The messages, the models to ask and those skipped (may ask the endpoint for its models)."""
    messages = _messages(prompt, system, images)
    chosen, skipped = _choose_models(models, _has_images(messages), generator)
    return messages, chosen, skipped


def _start(
    plan: tuple[list[ChatMessage], list[str], dict[str, str]],
    generation_kwargs: dict[str, Any] | None,
    generator: Any,
    make_view: Callable[[list[str], dict[str, str]], Any],
) -> tuple[list[dict[str, Any]], _PerModel, dict[str, str]]:
    """The batch's inputs and target; shows the view (in the calling thread: its cell)."""
    messages, chosen, skipped = plan
    runs = {m: _Run(m) for m in chosen}
    generators = _generators(chosen, generator)
    target = _PerModel(generators, runs, make_view(chosen, skipped))
    kwargs = dict(generation_kwargs or {})
    inputs = [{"model": m, "messages": messages, "generation_kwargs": kwargs} for m in chosen]
    return inputs, target, skipped


def _finish(target: _PerModel, batch: BatchResult, skipped: dict[str, str]) -> Comparison:
    results = []
    for item in batch:
        model = item.input["model"]
        run = target.runs[model]
        if item.error is not None and run.done is None:  # never answered: rate limited too long
            run.done = time.perf_counter()
            target.view.failed(model, item.error)
        results.append(ModelResult.of(model, item.reply, item.error, run))
    results += [ModelResult(model=m, skipped=why) for m, why in skipped.items()]
    comparison = Comparison(results, prompt=batch[0].input["messages"] if len(batch) else [])
    target.view.close(comparison)
    return comparison


def compare(
    prompt: str | list[ChatMessage],
    models: Sequence[str] | None = None,
    *,
    images: Sequence[Any] | None = None,
    system: str | None = None,
    generation_kwargs: dict[str, Any] | None = None,
    generator: Any = None,
    show: bool | None = None,
    rate_limit_timeout: float = 300.0,
) -> Comparison:
    """Send one prompt to several models at once and compare their replies.

    :param prompt: The user's message (a str), or a list of ``ChatMessage``.
    :param models: Model ids. ``None``: every chat model the endpoint lists that fits the input
        (with images: every vision model), legacy ones left out.
    :param images: Images for a str prompt (paths, bytes, PIL images, ``ImageContent``), sent
        only to models that take images; the others are listed as skipped, with why.
    :param system: A system message for a str prompt.
    :param generation_kwargs: Sent with every request (``max_tokens``, ``temperature``, ...).
    :param generator: A configured chat generator (``STACKITChatGenerator``,
        ``OpenAIChatGenerator``) to copy per model: its endpoint, key and settings are used.
        Default: ``STACKITChatGenerator`` with the environment's endpoint and key.
    :param show: ``None``: a live grid in a notebook, the replies printed in a terminal.
        ``False``: show nothing.
    :param rate_limit_timeout: Seconds a model may keep receiving 429s before it is recorded
        as failed.
    :returns: A :class:`Comparison`: ``.replies`` (model -> ``ChatMessage``), ``.errors``,
        ``.skipped``, ``.summary`` (a table) and ``.plot()``.

    Example::

        comparison = stackit_nb.compare(
            "Name three rivers.", models=["openai/gpt-oss-20b", "google/gemma-3-27b-it"]
        )
        comparison.replies["openai/gpt-oss-20b"].text
    """
    plan = _plan(prompt, models, images, system, generator)
    make_view = functools.partial(_view, show)
    inputs, target, skipped = _start(plan, generation_kwargs, generator, make_view)
    batch = run_many(
        target,
        inputs,
        concurrency=min(len(inputs), _MAX_CONCURRENCY),
        progress=False,
        max_attempts=1,  # a reply that broke off mid-stream is not sent again; 429s are
        rate_limit_timeout=rate_limit_timeout,
        retry_in_batch=False,  # the per-model generators already leave retries to the batch
    )
    return _finish(target, batch, skipped)


async def acompare(
    prompt: str | list[ChatMessage],
    models: Sequence[str] | None = None,
    *,
    images: Sequence[Any] | None = None,
    system: str | None = None,
    generation_kwargs: dict[str, Any] | None = None,
    generator: Any = None,
    show: bool | None = None,
    rate_limit_timeout: float = 300.0,
) -> Comparison:
    """Like :func:`compare`, without blocking the event loop: ``await acompare(...)`` in Jupyter."""
    plan = await asyncio.to_thread(_plan, prompt, models, images, system, generator)
    make_view = functools.partial(_view, show)
    return await _arun(plan, generation_kwargs, generator, make_view, rate_limit_timeout)


async def acompare_in_view(
    make_view: Callable[[list[str], dict[str, str]], Any],
    prompt: list[ChatMessage],
    models: Sequence[str],
    *,
    generation_kwargs: dict[str, Any] | None = None,
    generator: Any = None,
) -> Comparison:
    """:func:`acompare` for a front end that shows the comparison in its own layout
    (``ChatWidget``'s Compare).

    :param make_view: Called with the models to ask and those skipped (model -> why), before
        any request; returns the view the replies stream into: an object with ``started(model)``,
        ``callback(model)`` (an async streaming callback, or ``None``), ``finished(model,
        reply)``, ``failed(model, error)`` and ``close(comparison)``, as
        :class:`stackit_nb.widgets.compare.CompareGrid` has.
    """
    plan = await asyncio.to_thread(_plan, prompt, models, None, None, generator)
    return await _arun(plan, generation_kwargs, generator, make_view, 300.0)


async def _arun(
    plan: tuple[list[ChatMessage], list[str], dict[str, str]],
    generation_kwargs: dict[str, Any] | None,
    generator: Any,
    make_view: Callable[[list[str], dict[str, str]], Any],
    rate_limit_timeout: float,
) -> Comparison:
    inputs, target, skipped = _start(plan, generation_kwargs, generator, make_view)
    batch = await arun_many(
        target,
        inputs,
        concurrency=min(len(inputs), _MAX_CONCURRENCY),
        progress=False,
        max_attempts=1,
        rate_limit_timeout=rate_limit_timeout,
        retry_in_batch=False,
    )
    return _finish(target, batch, skipped)
