"""What ``stackit_nb.compare`` returns: each model's reply and numbers, a table, a figure."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from haystack.dataclasses import ChatMessage

_HEADER = (
    "model",
    "first token",
    "tokens/s",
    "tokens in",
    "tokens out",
    "total",
    "finish",
    "error",
)
_TIMED = {1, 2, 5}  # columns that differ from run to run: notebook tests mask them


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


class RecordedError(Exception):
    """An error read back from a saved comparison: the text it was shown with (its type's
    name and message), as the exception itself is not saved."""


_SAVED_FIELDS = (
    "model",
    "skipped",
    "time_to_first_token",
    "tokens_per_second",
    "prompt_tokens",
    "completion_tokens",
    "total_time",
    "finish_reason",
)
_SAVED_TYPES: dict[str, Any] = {
    "model": str,
    "skipped": str,
    "time_to_first_token": int | float,
    "tokens_per_second": int | float,
    "prompt_tokens": int,
    "completion_tokens": int,
    "total_time": int | float,
    "finish_reason": str,
}


@dataclass
class ModelResult:
    """One model's part of a comparison: its reply or error (or why it was skipped), and timings
    of the request that answered (a 429 before it is not counted)."""

    model: str
    reply: ChatMessage | None = None
    error: BaseException | None = None
    skipped: str | None = None
    """Why the model was not asked (e.g. it takes no images)."""
    time_to_first_token: float | None = None
    """Seconds from sending the request to the first streamed text."""
    tokens_per_second: float | None = None
    """Completion tokens over the seconds from the first streamed text to the last."""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_time: float | None = None
    """Seconds from sending the request to its end."""
    finish_reason: str | None = None

    @classmethod
    def of(
        cls, model: str, reply: ChatMessage | None, error: BaseException | None, run: Any
    ) -> ModelResult:
        """From the batch's item and the times ``run`` saw (``sent``, ``first``, ``last``,
        ``done``: ``time.perf_counter()`` values or ``None``)."""
        meta = reply.meta if reply is not None else {}
        usage = meta.get("usage") or {}
        completion = usage.get("completion_tokens")
        first, last = run.first, run.last
        speed = None
        if completion and first is not None and last is not None and last > first:
            speed = completion / (last - first)
        return cls(
            model=model,
            reply=reply if error is None else None,
            error=error,
            time_to_first_token=first - run.sent if first is not None and run.sent else None,
            tokens_per_second=speed,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=completion,
            total_time=run.done - run.sent if run.done is not None and run.sent else None,
            finish_reason=meta.get("finish_reason") if error is None else "error",
        )

    @property
    def error_text(self) -> str:
        if self.skipped is not None:
            return f"skipped: {self.skipped}"
        if isinstance(self.error, RecordedError):
            return str(self.error)
        if self.error is not None:
            return f"{type(self.error).__name__}: {self.error}"
        return ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: the reply as ``ChatMessage.to_dict()``, the error as its text."""
        data: dict[str, Any] = {name: getattr(self, name) for name in _SAVED_FIELDS}
        data["reply"] = self.reply.to_dict() if self.reply is not None else None
        data["error"] = self.error_text if self.error is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Any) -> ModelResult:
        """Read :meth:`to_dict`'s data back (the error as a :class:`RecordedError`); data of
        the wrong shape is an error that names the field."""
        if not isinstance(data, dict) or not isinstance(data.get("model"), str):
            raise ValueError("a compared model's result is an object with a 'model' text")
        values: dict[str, Any] = {}
        for name, kind in _SAVED_TYPES.items():
            value = data.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
                raise ValueError(f"the {name!r} of {data['model']!r}'s result is {value!r}")
            values[name] = value
        error = data.get("error")
        if error is not None and not isinstance(error, str):
            raise ValueError(f"the 'error' of {data['model']!r}'s result is not a text")
        try:
            reply = ChatMessage.from_dict(data["reply"]) if data.get("reply") is not None else None
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ValueError(
                f"the reply of {data['model']!r}'s result is not a ChatMessage.to_dict() object "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        error_ = RecordedError(error) if error is not None else None
        return cls(**values, reply=reply, error=error_)

    def cells(self) -> tuple[str, ...]:
        def number(value: int | None) -> str:
            return "-" if value is None else f"{value:,}"

        def seconds(value: float | None) -> str:
            return "-" if value is None else f"{value:.2f} s"

        speed = "-" if self.tokens_per_second is None else f"{self.tokens_per_second:,.1f}"
        return (
            self.model,
            seconds(self.time_to_first_token),
            speed,
            number(self.prompt_tokens),
            number(self.completion_tokens),
            seconds(self.total_time),
            self.finish_reason or ("skipped" if self.skipped else "-"),
            _shorten(self.error_text, 160),
        )


class ComparisonSummary:
    """The comparison as a table: one row per model. Renders as a table in a notebook."""

    def __init__(self, results: list[ModelResult]) -> None:
        self.results = results

    def rows(self) -> list[tuple[str, ...]]:
        """The header, then one row of text cells per model."""
        return [_HEADER, *(r.cells() for r in self.results)]

    def _repr_html_(self) -> str:
        def cell(tag: str, index: int, text: str) -> str:
            value = html.escape(text)
            if tag == "td" and index in _TIMED:
                value = f'<span class="snb-timing">{value}</span>'
            align = "left" if index in (0, 6, 7) else "right"
            return f"<{tag} style='text-align:{align}'>{value}</{tag}>"

        head, *body = self.rows()
        lines = ["<tr>" + "".join(cell("th", i, c) for i, c in enumerate(head)) + "</tr>"]
        lines += [
            "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>" for r in body
        ]
        return "<table class='snb-compare-summary'>" + "".join(lines) + "</table>"

    def __str__(self) -> str:
        rows = self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ComparisonSummary({len(self.results)} models)"


class Comparison:
    """The replies of several models to one prompt, and how each did.

    Renders as the replies side by side with the table under them (HTML that GitHub and
    nbconvert show too); ``print(comparison)`` gives the replies one after another.
    """

    def __init__(self, results: list[ModelResult], prompt: list[ChatMessage]) -> None:
        self.results = results
        self.prompt = prompt
        self._shown_in_cell: int | None = None  # set when the live grid handed over to a copy

    @property
    def replies(self) -> dict[str, ChatMessage]:
        """model -> reply, for the models that answered."""
        return {r.model: r.reply for r in self.results if r.reply is not None}

    @property
    def errors(self) -> dict[str, BaseException]:
        """model -> the error it ended with."""
        return {r.model: r.error for r in self.results if r.error is not None}

    @property
    def skipped(self) -> dict[str, str]:
        """model -> why it was not asked."""
        return {r.model: r.skipped for r in self.results if r.skipped is not None}

    @property
    def summary(self) -> ComparisonSummary:
        """A table: time to first token, tokens/s, tokens in/out, total time, finish, error."""
        return ComparisonSummary(self.results)

    def __getitem__(self, model: str) -> ModelResult:
        for result in self.results:
            if result.model == model:
                return result
        raise KeyError(f"{model!r} was not compared; compared: {[r.model for r in self.results]}")

    def plot(self) -> Any:
        """A matplotlib Figure: time to first token and tokens/s per model (needs matplotlib:
        ``pip install 'stackit-nb[plots]'``)."""
        from stackit_nb.plots import comparison_figure

        asked = [r for r in self.results if r.skipped is None]
        return comparison_figure(
            [r.model for r in asked],
            [r.time_to_first_token for r in asked],
            [r.tokens_per_second for r in asked],
        )

    def static_html(self) -> str:
        """The replies side by side and the table, as plain HTML."""
        from stackit_nb.widgets.compare import static_grid_html

        return static_grid_html(self.results, self.summary._repr_html_())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from stackit_nb.widgets.compare import current_cell

        if self._shown_in_cell is not None and self._shown_in_cell == current_cell():
            return {"text/plain": repr(self)}  # the copy is right above: do not show it twice
        return {"text/html": self.static_html(), "text/plain": repr(self)}

    def __str__(self) -> str:
        parts = []
        for result in self.results:
            if result.skipped is not None:
                continue
            parts.append(f"=== {result.model} ===")
            if result.reply is not None:
                parts.append(result.reply.text or "")
            if result.error is not None:
                parts.append(f"[error] {result.error_text}")
            parts.append("")
        return "\n".join(parts) + str(self.summary)

    def __repr__(self) -> str:
        answered = sum(r.reply is not None for r in self.results)
        failed = sum(r.error is not None for r in self.results)
        skipped = sum(r.skipped is not None for r in self.results)
        return (
            f"Comparison({len(self.results)} models: {answered} answered, {failed} failed, "
            f"{skipped} skipped)"
        )
