"""The live grid of ``stackit_nb.compare``: one column per model, each reply streaming into it.

Each column is an embedded :class:`~stackit_nb.widgets.stream.StreamingDisplay`, so a reply is
rendered and sent exactly as a single streamed reply is (Markdown rendered in Python, diffs
only). The columns share one :class:`~stackit_nb.widgets.stream.MessageBudget`: together they
send what one display would, at most 20 front-end messages a second on average (as in a single
display, each column's first text and its end go out at once, and count against the budget).

When the comparison ends in the cell that started it, the grid hides itself and hands over to a
static copy (the replies side by side and the table, plain HTML): what a saved notebook keeps
and GitHub shows, with the run-dependent timings in ``<span class="snb-timing">`` for nbval.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from stackit_nb.widgets._code_highlight import with_code_style
from stackit_nb.widgets._markdown import error_html, footer_html
from stackit_nb.widgets._safe_markdown import render_markdown
from stackit_nb.widgets.stream import MessageBudget, StreamingDisplay

_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_MUTED = "color:var(--jp-ui-font-color2,#616161)"


def current_cell() -> int | None:
    """The number of the notebook cell running now (``None`` outside IPython)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "execution_count", None)


def _skipped_html(skipped: dict[str, str]) -> str:
    if not skipped:
        return ""
    items = "".join(
        f"<li><code>{html.escape(model)}</code>: {html.escape(why)}</li>"
        for model, why in skipped.items()
    )
    return f'<div class="snb-compare-skipped" style="{_MUTED}">Skipped:<ul>{items}</ul></div>'


class CompareGrid:
    """The notebook view of a comparison (made and driven by ``stackit_nb.compare``)."""

    def __init__(self, models: Sequence[str], skipped: dict[str, str]) -> None:
        import ipywidgets as w

        self.budget = MessageBudget()  # the whole grid sends what one display would
        self.displays = {m: StreamingDisplay(show=False, budget=self.budget) for m in models}
        columns = [
            w.VBox(
                [w.HTML(f"<strong>{html.escape(model)}</strong>"), display.widget],
                layout=w.Layout(min_width="0"),
            )
            for model, display in self.displays.items()
        ]
        self.grid = w.GridBox(
            columns,
            layout=w.Layout(
                grid_template_columns=f"repeat({len(columns)}, minmax(0, 1fr))", grid_gap="16px"
            ),
        )
        self.box = w.VBox([self.grid, w.HTML(_skipped_html(skipped))])
        self.box.add_class("snb-compare")
        self._cell = current_cell()

    def show(self) -> None:
        from IPython.display import display

        data = self.box._repr_mimebundle_()  # ipywidgets: a dict (anywidget: a pair)
        # no text/plain of the widget tree: the saved output is the same in every run
        display({"text/plain": "", _WIDGET_MIME: data[_WIDGET_MIME]}, raw=True)

    def started(self, model: str) -> None:
        self.displays[model].start()

    def callback(self, model: str) -> Callable[[Any], Coroutine[Any, Any, None]]:
        return self.displays[model].async_callback

    def finished(self, model: str, reply: Any) -> None:
        self.displays[model].finish()

    def failed(self, model: str, error: BaseException) -> None:
        self.displays[model].fail(error)

    def close(self, comparison: Any) -> None:
        """Hand over to the static copy when still in the cell that started the comparison."""
        if self._cell is None or self._cell != current_cell():
            return  # a late output would not belong to this cell: keep the live grid only
        from IPython.display import display

        self.box.layout.display = "none"
        comparison._shown_in_cell = self._cell
        display({"text/html": comparison.static_html(), "text/plain": repr(comparison)}, raw=True)


def _column_html(result: Any) -> str:
    parts = []
    reply = result.reply
    if reply is not None:
        reasoning = reply.reasoning.reasoning_text if reply.reasoning is not None else ""
        if reasoning:
            parts.append(
                f'<details class="snb-reasoning" style="{_MUTED}"><summary>reasoning</summary>'
                f"{render_markdown(reasoning)}</details>"
            )
        parts.append(render_markdown(reply.text or ""))
    if result.error is not None:
        parts.append(error_html(result.error_text))
    facts = []
    if result.prompt_tokens is not None and result.completion_tokens is not None:
        facts.append(f"{result.prompt_tokens:,} tokens in · {result.completion_tokens:,} out")
    timing = []
    if result.time_to_first_token is not None:
        timing.append(f"first token {result.time_to_first_token:.2f} s")
    if result.tokens_per_second is not None:
        timing.append(f"{result.tokens_per_second:,.1f} tokens/s")
    finish = f"finish: {result.finish_reason}" if result.finish_reason else None
    parts.append(footer_html(facts, timing, finish))
    return "".join(parts)


def static_grid_html(results: Sequence[Any], table_html: str) -> str:
    """The replies side by side (one column per model asked), the skipped models, the table."""
    asked = [r for r in results if r.skipped is None]
    width = f"{100 / max(1, len(asked)):.0f}%"
    head = "".join(
        f"<th style='text-align:left;width:{width}'>{html.escape(r.model)}</th>" for r in asked
    )
    cells = "".join(
        f"<td style='vertical-align:top;text-align:left'>{_column_html(r)}</td>" for r in asked
    )
    skipped = _skipped_html({r.model: r.skipped for r in results if r.skipped is not None})
    # A saved copy has no widget front end to bring the code boxes' colours: they come along.
    return with_code_style(
        f'<div class="snb-compare-static"><table><tr>{head}</tr><tr>{cells}</tr></table>'
        f"{skipped}{table_html}</div>"
    )
