"""What a batch returns: one result per input, in input order, and a summary that renders."""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from haystack.dataclasses import ChatMessage, ChatRole

from stackit_nb._common import markdown_literal


def _assistant_messages(value: Any, depth: int = 0) -> list[ChatMessage]:
    """The replies in a component's output (``replies``) or a pipeline's (``{name: {...}}``)."""
    if isinstance(value, ChatMessage):
        return [value] if value.is_from(ChatRole.ASSISTANT) else []
    if depth > 4:
        return []
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [m for v in value for m in _assistant_messages(v, depth + 1)]
    return []


@dataclass(frozen=True)
class RequestRecord:
    """One request a batch sent: when, relative to the batch's start, and how it ended."""

    started: float
    """Seconds from the batch's start to the request's start."""
    finished: float
    outcome: str
    """``"ok"``, ``"rate_limited"`` (a 429), ``"transient"`` (retried) or ``"final"``."""

    @property
    def latency(self) -> float:
        return self.finished - self.started


@dataclass
class ItemResult:
    """The outcome of one input: its ``output`` (what ``run`` returned) or its ``error``."""

    index: int
    """Position in the inputs."""
    input: Any
    output: dict[str, Any] | None = None
    error: BaseException | None = None
    attempts: int = 0
    """Requests sent for this item, 429s and retries included."""
    elapsed: float = 0.0
    """Seconds from the first attempt to the last answer, waits included."""
    requests: list[RequestRecord] = field(default_factory=list, repr=False)
    """Every request sent for this item, in order (what ``BatchResult.plot()`` draws)."""

    @property
    def ok(self) -> bool:
        return self.output is not None and self.error is None

    @property
    def done(self) -> bool:
        """Finished, well or not (``False`` only for items an interrupt kept from running)."""
        return self.output is not None or self.error is not None

    @property
    def replies(self) -> list[ChatMessage]:
        """Every assistant message in the output (for a pipeline: of all its components)."""
        return _assistant_messages(self.output) if self.output is not None else []

    @property
    def reply(self) -> ChatMessage | None:
        """The first reply, or ``None`` for a failed item."""
        replies = self.replies
        return replies[0] if replies else None

    @property
    def text(self) -> str | None:
        """The first reply's text, or ``None``."""
        reply = self.reply
        return reply.text if reply is not None else None

    @property
    def usage(self) -> dict[str, int]:
        """``prompt_tokens`` and ``completion_tokens`` summed over the replies' ``meta``."""
        totals = {"prompt_tokens": 0, "completion_tokens": 0}
        for reply in self.replies:
            usage = reply.meta.get("usage") or {}
            for key in totals:
                totals[key] += int(usage.get(key) or 0)
        return totals

    def __repr__(self) -> str:
        if self.error is not None:
            state = f"error={type(self.error).__name__}: {_shorten(str(self.error), 80)!r}"
        elif self.output is not None:
            state = f"text={_shorten(self.text or '', 60)!r}"
        else:
            state = "not run"
        return f"ItemResult(index={self.index}, {state}, attempts={self.attempts})"


@dataclass(frozen=True)
class BatchSummary:
    """Counts and speed of one batch; renders as a table in a notebook."""

    items: int
    ok: int
    failed: int
    not_run: int
    prompt_tokens: int
    completion_tokens: int
    wall_time: float
    """Seconds for the whole batch."""
    requests_per_second: float
    """Items answered successfully per second of wall time."""
    attempts: int
    """Requests sent, retries included."""
    rate_limited: int
    """429 answers seen."""
    concurrency: int
    min_concurrency: int
    """The lowest concurrency the batch slowed down to after 429s."""

    @classmethod
    def of(
        cls,
        items: Sequence[ItemResult],
        *,
        wall_time: float,
        concurrency: int,
        min_concurrency: int,
        rate_limited: int,
    ) -> BatchSummary:
        ok = sum(1 for i in items if i.ok)
        done = sum(1 for i in items if i.done)
        usages = [i.usage for i in items if i.ok]
        return cls(
            items=len(items),
            ok=ok,
            failed=done - ok,
            not_run=len(items) - done,
            prompt_tokens=sum(u["prompt_tokens"] for u in usages),
            completion_tokens=sum(u["completion_tokens"] for u in usages),
            wall_time=wall_time,
            requests_per_second=ok / wall_time if wall_time > 0 else 0.0,
            attempts=sum(i.attempts for i in items),
            rate_limited=rate_limited,
            concurrency=concurrency,
            min_concurrency=min_concurrency,
        )

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs, as the tables show them."""
        rows = [
            ("items", f"{self.items}"),
            ("ok", f"{self.ok}"),
            ("failed", f"{self.failed}"),
        ]
        if self.not_run:
            rows.append(("not run (interrupted)", f"{self.not_run}"))
        rows += [
            ("tokens in / out", f"{self.prompt_tokens:,} / {self.completion_tokens:,}"),
            ("wall time", f"{self.wall_time:.2f} s"),
            ("requests/s", f"{self.requests_per_second:.1f}"),
            ("requests sent", f"{self.attempts}"),
            ("429s seen", f"{self.rate_limited}"),
            ("concurrency (lowest)", f"{self.concurrency} ({self.min_concurrency})"),
        ]
        return rows

    def _repr_markdown_(self) -> str:
        lines = ["| batch | |", "|---|---:|"]
        lines += [f"| {label} | {value} |" for label, value in self.rows()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(label)}</th>"
            f"<td style='text-align:right'>{html.escape(value)}</td></tr>"
            for label, value in self.rows()
        )
        return f"<table><caption>batch</caption>{body}</table>"

    def __str__(self) -> str:
        return ", ".join(f"{label}: {value}" for label, value in self.rows())


class BatchResult(Sequence[ItemResult]):
    """The results of a batch, one :class:`ItemResult` per input, in input order.

    Example::

        results = run_many(generator, prompts)
        results.texts  # reply texts, None where an item failed
        results.summary  # a table in a notebook
        results.raise_on_failure()  # if every item must have worked
    """

    def __init__(self, items: list[ItemResult], summary: BatchSummary) -> None:
        self._items = items
        self.summary = summary

    @overload
    def __getitem__(self, index: int) -> ItemResult: ...
    @overload
    def __getitem__(self, index: slice) -> list[ItemResult]: ...
    def __getitem__(self, index: int | slice) -> ItemResult | list[ItemResult]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[ItemResult]:
        return iter(self._items)

    @property
    def replies(self) -> list[ChatMessage | None]:
        """The first reply of each item (``None`` where it failed), in input order."""
        return [i.reply for i in self._items]

    @property
    def texts(self) -> list[str | None]:
        """The first reply's text of each item (``None`` where it failed), in input order."""
        return [i.text for i in self._items]

    @property
    def outputs(self) -> list[dict[str, Any] | None]:
        """What each call returned (``None`` where it failed), in input order."""
        return [i.output for i in self._items]

    @property
    def errors(self) -> list[BaseException | None]:
        """Each item's error (``None`` where it worked), in input order."""
        return [i.error for i in self._items]

    @property
    def failed(self) -> list[ItemResult]:
        """The items that did not work (failed or never run)."""
        return [i for i in self._items if not i.ok]

    def raise_on_failure(self) -> BatchResult:
        """Raise :class:`BatchFailedError` if any item failed; else return ``self``."""
        failed = self.failed
        if not failed:
            return self
        first = next((i.error for i in failed if i.error is not None), None)
        examples = "; ".join(
            f"#{i.index}: {type(i.error).__name__}: {_shorten(str(i.error), 120)}"
            for i in failed[:3]
            if i.error is not None
        )
        message = f"{len(failed)} of {len(self)} items did not work"
        raise BatchFailedError(message + (f" ({examples})" if examples else ""), failed) from first

    def _failure_rows(self, limit: int = 5) -> list[tuple[str, str, str]]:
        return [
            (f"{i.index}", type(i.error).__name__, _shorten(str(i.error), 200))
            for i in self.failed[:limit]
            if i.error is not None
        ]

    def _repr_markdown_(self) -> str:
        text = self.summary._repr_markdown_()
        if rows := self._failure_rows():
            text += "\n\n| failed item | error | message |\n|---:|---|---|\n"
            text += "\n".join(
                f"| {a} | {markdown_literal(b)} | {markdown_literal(c)} |" for a, b, c in rows
            )
        return text

    def _repr_html_(self) -> str:
        text = self.summary._repr_html_()
        if rows := self._failure_rows():
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in rows
            )
            head = "<tr><th>failed item</th><th>error</th><th>message</th></tr>"
            text += f"<table>{head}{body}</table>"
        return text

    def plot(self) -> Any:
        """A matplotlib Figure: the latency of successful requests, and every request over time
        with 429s marked (needs matplotlib: ``pip install 'stackit-nb[plots]'``)."""
        from stackit_nb.plots import batch_figure

        return batch_figure(self)

    def __repr__(self) -> str:
        s = self.summary
        return f"BatchResult({s.items} items, {s.ok} ok, {s.failed} failed, {s.wall_time:.2f} s)"


class BatchFailedError(RuntimeError):
    """Some items of a batch failed; ``failed`` holds their :class:`ItemResult`."""

    def __init__(self, message: str, failed: list[ItemResult]) -> None:
        super().__init__(message)
        self.failed = failed


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
