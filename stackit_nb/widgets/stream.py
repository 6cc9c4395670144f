"""StreamingDisplay: show a chat reply while it streams, in a notebook or a terminal.

How it reaches the browser, and why:

- **Only what changed.** The reply is Markdown rendered in Python (mistune, HTML escaped), cut
  into blocks; finished blocks are sent once and frozen, the open block as a diff against what
  the browser already has (keep N characters, append the rest). The messages are custom widget
  messages of a small anywidget (no build step, no CDN), never a traitlet holding the whole text,
  which would travel again on every update.
- **Few messages.** The first visible chunk goes out at once (the widget is made when the
  display is, so only its display and one message remain); after that every flush waits until
  the display has averaged at most 20 messages a second (widget opens and displays count too).
  A timer sends a held-back tail after a stall. The end of the reply always flushes the exact
  text, taking its turn like the rest (at most 0.1 s later).
- **Saved notebooks.** The live widget's output carries an empty ``text/plain`` and no HTML, so
  it is the same in every run. When the reply ends inside the cell that streamed it, the display
  adds one plain output (``text/html`` of the whole reply, ``text/plain`` of its first 1,000
  characters) and the widget hands over to it (hides itself). That output is an ordinary
  ``display_data``: nbconvert, GitHub and a reopened notebook show the reply without any
  widget state, and nbval compares it like any other output. ``update_display_data`` is not
  used because nbval ignores it (the saved notebook would then differ from a fresh run). The
  timings in the footer differ from run to run; they sit in ``<span class="snb-timing">…</span>``,
  so one sanitize rule masks them::

      [stackit_nb_timing]
      regex: <span class="snb-timing">[^<]*</span>
      replace: <span class="snb-timing">TIMING</span>

  A reply that ends after its cell finished (a background task) keeps the live widget only:
  Jupyter would not attach a late output to the cell anyway.
- **When is a reply over?** At a ``finish_reason`` of stop, length or content_filter, once the
  token usage is in (OpenAI-compatible servers send it in a chunk after the finish; Haystack's
  ``OpenAIChatGenerator`` only with ``stream_options.include_usage``), else when the cell ends or
  0.25 s later, whichever is first; or at :meth:`StreamingDisplay.finish` / leaving ``with``.
  ``tool_calls`` is not an end: an agent's tool calls, tool results and next answer stay in one
  view; a reply that ends in tool calls when its cell ends (nothing ran them) is over then.
  A chunk with new content after the end starts a new reply (and a new view).
- **Errors.** A cell that raises mid-stream (or :meth:`fail`, or an exception leaving ``with``)
  keeps the partial reply and shows the error under it.
- **Outside a notebook** (terminal IPython, plain scripts) text is printed as it arrives.
- **Async.** Haystack calls ``streaming_callback`` in ``run_async`` without a warning only when
  it is a coroutine function; pass ``display.async_callback`` there (the instance itself also
  works, with Haystack's warning that a sync callback runs on the event loop).

Every display keeps its own state (no globals), so several can stream at once, also from threads.

**Embedded** (``StreamingDisplay(show=False)``): the display shows nothing by itself (no output,
no saved-notebook copy, no hand-over, no printing); its owner places :attr:`widget`, the live
view of the current reply, inside its own layout (``ChatWidget`` does) and ends each reply with
:meth:`finish` or :meth:`fail`. Updates still go out as diffs, at the same rate.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from haystack.dataclasses import StreamingChunk

from stackit_nb._terminal import printable
from stackit_nb.widgets._code_highlight import CODE_CSS, COPY_BUTTON_CSS
from stackit_nb.widgets._markdown import Reply
from stackit_nb.widgets._safe_markdown import render_markdown

_INTERVAL = 0.05  # seconds per front-end message: at most 20 a second
_GRACE = 0.25  # after a finish, wait this long for the usage chunk
_OPENING = 3  # messages to show a view: two widget opens (layout, view) and a display
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class MessageBudget:
    """When the next front-end message may go out: one per ``interval`` seconds on average.

    Each display has its own; displays that share one (the columns of a comparison grid) share
    the rate, so together they send no more than one display would.
    """

    def __init__(self, interval: float = _INTERVAL) -> None:
        self.interval = interval
        self.at = 0.0  # time.perf_counter() from which the next message may go out

    def spend(self, messages: int) -> None:
        self.at = max(self.at, time.perf_counter()) + messages * self.interval


class _Live:
    """A reply being shown: the reply and what showing it needs."""

    def __init__(self, reply: Reply, cell: int | None) -> None:
        self.reply = reply
        self.cell = cell  # the cell it started in (None: outside any cell)
        self.context = contextvars.copy_context()  # ipykernel files outputs by it (timers)
        self.view: Any = None  # the widget, in a notebook
        self.shown = False
        self.finalized = False
        self.printed: dict[int, int] = {}  # terminal: parts printed, per section


def _kernel_shell() -> Any:
    """The IPython shell of a Jupyter kernel, or ``None`` (terminal, script)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell if getattr(shell, "kernel", None) is not None else None


@functools.cache
def _view_class() -> type:
    """The widget class, built on first use so that terminals never import ipywidgets."""
    import uuid

    import anywidget
    import traitlets

    render_markdown("*warm*")  # mistune compiles its rules on first use: not at the first token

    class StreamView(anywidget.AnyWidget):  # type: ignore[misc]
        # code_copy.js: the Copy buttons of code blocks anywhere on the page (saved copies too)
        _esm = "".join(
            Path(__file__).with_name(name).read_text(encoding="utf-8")
            for name in ("code_copy.js", "stream.js")
        )
        _css = (
            ".snb-live.snb-waiting::before{content:'…';color:var(--jp-ui-font-color2,#757575)}"
            + CODE_CSS
            + COPY_BUTTON_CSS
        )
        # anywidget hands initialize() and each render() a different wrapper of the model, so
        # the front end finds a model's state by this key rather than by the model object
        _key = traitlets.Unicode().tag(sync=True)

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(_key=uuid.uuid4().hex, **kwargs)

    return StreamView


class StreamingDisplay:
    """Shows a streamed reply as it arrives; use it as a Haystack ``streaming_callback``.

    In a notebook: live Markdown, reasoning in a fold that stays open while it streams, tool
    calls and results as labelled blocks, and a footer (model, tokens in/out, time to first
    token, tokens per second, finish reason). In a terminal or script: the text, printed as it
    arrives, then a footer line.

    :param interval: Seconds per front-end message (0.05: at most 20 a second).
    :param out: Where terminal output goes (default: ``sys.stdout`` at the time of writing).
    :param show: ``False`` embeds the display in another widget: it never shows or prints
        anything itself; place :attr:`widget` where the reply should appear.
    :param budget: A :class:`MessageBudget` shared with other displays (default: its own, of
        one message per ``interval``).

    Example::

        from stackit_nb import STACKITChatGenerator
        from stackit_nb.widgets import StreamingDisplay

        gen = STACKITChatGenerator(
            model="openai/gpt-oss-20b", streaming_callback=StreamingDisplay()
        )
        gen.run("Explain rivers in three paragraphs.")

        display = StreamingDisplay()
        await gen.run_async("And lakes?", streaming_callback=display.async_callback)

        with StreamingDisplay() as display:  # an error shows under the partial reply
            gen.run("Once more.", streaming_callback=display)
    """

    def __init__(
        self,
        *,
        interval: float = _INTERVAL,
        out: TextIO | None = None,
        show: bool = True,
        budget: MessageBudget | None = None,
    ) -> None:
        self._interval = interval
        self._embedded = not show
        self._out = out
        self._lock = threading.RLock()
        self._live: _Live | None = None
        self._mark = time.perf_counter()  # creation, start() or the start of the current cell
        self._budget = budget or MessageBudget(interval)
        self._flush_timer: threading.Timer | None = None
        self._end_timer: threading.Timer | None = None
        self._cells = 0  # cells started since this display was made
        self._cell: int | None = None  # the running cell, None between cells
        self._spare_view: Any = None
        self._shell = _kernel_shell()
        if self._embedded:
            # its owner decides what is shown and when a reply ends: no cells to follow; a view
            # is wanted with or without a kernel (widgets work headless too)
            self._shell = None
            self._spare_view = _view_class()()
        elif self._shell is not None:
            # made in a cell (the usual case): that cell counts as cell 0
            self._cell = 0 if threading.current_thread() is threading.main_thread() else None
            self._watch_cells(self._shell)
            # the first reply's widget, made now rather than while the first token waits
            with contextlib.suppress(ImportError):
                self._spare_view = _view_class()()

    # -- the callback ---------------------------------------------------------------------------

    def __call__(self, chunk: StreamingChunk) -> None:
        """Show one chunk (the sync ``streaming_callback``)."""
        now = time.perf_counter()
        fresh = bool(chunk.content or chunk.reasoning or chunk.tool_calls or chunk.tool_call_result)
        with self._lock:
            live = self._live
            if live is not None and live.finalized and not fresh:
                live.reply.add(chunk, now)  # e.g. a usage chunk after the end: nothing to show
                return
            if live is not None and live.reply.ended and fresh and not live.finalized:
                self._finalize(live)  # a new answer after a finished one
            if live is None or live.finalized:
                live = self._start_reply()
            reply = live.reply
            first = reply.first is None
            visible = reply.add(chunk, now)
            if reply.ended and (reply.has_usage or not chunk.finish_reason):
                self._finalize(live)  # the usage is in: nothing else will come
            elif reply.ended:
                self._end_timer = self._timer(_GRACE, live, self._finalize)
            elif not first or visible:  # nothing to send before the first token
                self._schedule(live, now, force=first and visible)

    async def async_callback(self, chunk: StreamingChunk) -> None:
        """The same, as a coroutine function: for ``run_async(streaming_callback=...)``."""
        self(chunk)

    # -- control --------------------------------------------------------------------------------

    def start(self) -> StreamingDisplay:
        """Mark the start of a request (time to first token counts from here)."""
        with self._lock:
            if self._live is not None and self._live.reply.ended and not self._live.finalized:
                self._finalize(self._live)
            self._mark = time.perf_counter()
        return self

    def finish(self) -> None:
        """End the current reply now: final text, footer and the saved-notebook output."""
        with self._lock:
            if self._live is not None and not self._live.finalized:
                self._finalize(self._live)

    close = finish

    def fail(self, error: BaseException | str) -> None:
        """End the current reply with ``error`` shown under what arrived so far."""
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        with self._lock:
            live = self._live
            if live is None or live.finalized:
                live = self._start_reply(show=False)
            self._finalize(live, error=message)

    def __enter__(self) -> StreamingDisplay:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if error is not None:
            self.fail(error)
        else:
            self.finish()

    @property
    def widget(self) -> Any:
        """The live view of the current reply, for embedding (``show=False``).

        Asked for before the first chunk (or after the last reply ended), it starts the next
        reply, so the owner can place the view before anything arrives. ``None`` when the
        display is not embedded and has no view (terminal, or before the first chunk).
        """
        with self._lock:
            live = self._live
            if self._embedded and (live is None or live.finalized):
                live = self._start_reply(show=False)
            return live.view if live is not None else None

    @property
    def text(self) -> str:
        """The text of the current (or last) reply so far."""
        return self._live.reply.text_of("text") if self._live is not None else ""

    @property
    def reasoning(self) -> str:
        """The reasoning of the current (or last) reply so far."""
        return self._live.reply.text_of("reasoning") if self._live is not None else ""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        with self._lock:
            live = self._live
            if live is not None and live.finalized:
                return live.reply.static_bundle()
            if self._shell is None:
                return {"text/plain": self.text or "StreamingDisplay()"}
            if live is None:  # shown before the stream: the stream will use this view
                live = self._start_reply(show=False)
            if live.view is None:
                return {"text/plain": self.text}
            live.shown = True
            self._spend(_OPENING)
            return self._widget_bundle(live)

    # -- notebook -------------------------------------------------------------------------------

    def _start_reply(self, show: bool = True) -> _Live:
        live = _Live(Reply(started=self._mark), self._cell)
        self._live = live
        if self._embedded:
            live.view, self._spare_view = self._spare_view or _view_class()(), None
            live.shown = True  # its owner shows it; the reply streams into it as diffs
        elif self._shell is not None:
            try:
                live.view, self._spare_view = self._spare_view or _view_class()(), None
            except ImportError as exc:  # no widget support installed: print instead
                print(f"[StreamingDisplay] {exc}; printing the reply instead", file=sys.stderr)
                self._shell = None
            else:
                if show:
                    self._show(self._widget_bundle(live))
                    live.shown = True
                    self._spend(_OPENING)
        return live

    def _widget_bundle(self, live: _Live) -> dict[str, Any]:
        data, _ = live.view._repr_mimebundle_()
        return {"text/plain": "", _WIDGET_MIME: data[_WIDGET_MIME]}

    def _show(self, bundle: dict[str, Any]) -> None:
        from IPython.display import display

        display(bundle, raw=True)

    def _spend(self, messages: int) -> None:
        """Count messages against the budget of one per interval."""
        self._budget.spend(messages)

    def _schedule(self, live: _Live, now: float, force: bool) -> None:
        if self._shell is None and not self._embedded:
            self._print(live)
        elif force or now >= self._budget.at:
            self._flush(live)
        elif self._flush_timer is None:  # a stalled stream still shows its tail
            self._flush_timer = self._timer(self._budget.at - now, live, self._timed_flush)

    def _timed_flush(self, live: _Live) -> None:
        self._flush_timer = None
        wait = self._budget.at - time.perf_counter()
        if wait > 0.001:  # a display sharing the budget spent it meanwhile: wait for the rest
            self._flush_timer = self._timer(wait, live, self._timed_flush)
            return
        self._flush(live)

    def _flush(self, live: _Live, ops: list[list[Any]] | None = None) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        ops = live.reply.ops(final=live.finalized) if ops is None else ops
        if ops:
            live.view.send({"ops": ops})
            self._spend(1)

    def _finalize(self, live: _Live, error: str | None = None) -> None:
        for timer in (self._flush_timer, self._end_timer):
            if timer is not None:
                timer.cancel()
        self._flush_timer = self._end_timer = None
        live.finalized = True
        live.reply.close(error)
        if self._embedded:  # the final text and footer; what happens next is the owner's call
            self._flush(live, live.reply.ops(final=True))
            return
        if self._shell is None:
            self._print(live)
            self._write(self._plain_footer(live.reply))
            return
        in_cell = live.cell is not None and live.cell == self._cell
        if not live.shown:  # nothing streamed (e.g. an error before the first chunk)
            self._show(live.reply.static_bundle())
            return
        ops = live.reply.ops(final=True) + ([["h"]] if in_cell else [])
        # the end takes its turn too: room for its two messages (update, saved output)
        wait = self._budget.at + self._interval - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        self._flush(live, ops)
        if in_cell:  # hand over to a plain output that saved notebooks keep (module docstring)
            self._show(live.reply.static_bundle())
            self._spend(1)

    def _timer(self, delay: float, live: _Live, action: Callable[[_Live], None]) -> threading.Timer:
        def run() -> None:
            with self._lock:
                if not live.finalized:
                    action(live)

        timer = threading.Timer(max(0.0, delay), lambda: live.context.copy().run(run))
        timer.start()
        return timer

    # -- terminal -------------------------------------------------------------------------------

    def _write(self, text: str, *, ours: str = "") -> None:
        """Write ``text`` (the reply's, so shown as text only: no control characters), wrapped
        in ``ours`` (our own escape sequence, e.g. dim) when given."""
        out = self._out or sys.stdout
        text = printable(text)
        out.write(f"{ours}{text}\x1b[0m" if ours else text)
        out.flush()

    def _print(self, live: _Live) -> None:
        dim = getattr(self._out or sys.stdout, "isatty", lambda: False)()
        for number, section in enumerate(live.reply.sections):
            done = live.printed.get(number)
            if done == len(section.parts):
                continue
            if done is None:
                done = 0
                label = f"[{section.kind.replace('_', ' ')}: {section.label}] "
                heading = {"text": "", "reasoning": "[reasoning] "}.get(section.kind, label)
                self._write(("\n" if number else "") + heading)
            new = "".join(section.parts[done:])
            self._write(new, ours="\x1b[2m" if dim and section.kind == "reasoning" else "")
            live.printed[number] = len(section.parts)

    @staticmethod
    def _plain_footer(reply: Reply) -> str:
        facts, timing, finish = reply.facts(final=True)
        line = " · ".join([*facts, *timing, *([finish] if finish else [])])
        error = f"\n[error] {reply.error}" if reply.error else ""
        return f"{error}\n— {line}\n"

    # -- cells ----------------------------------------------------------------------------------

    def _watch_cells(self, shell: Any) -> None:
        """Follow cell starts and ends (weakly: the shell must not keep displays alive)."""
        ref = weakref.ref(self)

        def pre_run_cell(info: Any) -> None:
            if (display := ref()) is not None:
                display._cell_started()

        def post_run_cell(result: Any) -> None:
            if (display := ref()) is not None:
                display._cell_ended(result)

        shell.events.register("pre_run_cell", pre_run_cell)
        shell.events.register("post_run_cell", post_run_cell)
        weakref.finalize(self, _unwatch, shell.events, pre_run_cell, post_run_cell)

    def _cell_started(self) -> None:
        with self._lock:
            self._cells += 1
            self._cell = self._cells
            self._mark = time.perf_counter()

    def _cell_ended(self, result: Any) -> None:
        with self._lock:
            live = self._live
            if live is not None and not live.finalized and live.cell == self._cell:
                error = getattr(result, "error_in_exec", None)
                if live.reply.ended:
                    self._finalize(live)
                elif error is not None:  # the stream broke off: keep it, show why
                    self._finalize(live, error=f"{type(error).__name__}: {error}")
                elif live.reply.finish_reason is not None:
                    # tool_calls: the model's turn is over, and no tool ran in this cell
                    self._finalize(live)
            self._cell = None


def _unwatch(events: Any, pre_run_cell: Any, post_run_cell: Any) -> None:
    for name, callback in (("pre_run_cell", pre_run_cell), ("post_run_cell", post_run_cell)):
        with contextlib.suppress(ValueError):
            events.unregister(name, callback)
