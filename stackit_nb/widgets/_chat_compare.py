"""``ChatWidget``'s Compare: the last user message sent again to other models, side by side in
the chat.

What a comparison is, in a chat:

- **What is sent**: the conversation up to and including the last user message (the system
  prompt first, images included), as the chat's own model got it, with the chat's temperature
  and max tokens, to each model named (``await chat.compare(models=[...])``; the Compare button
  uses the models chosen under Settings, "Compare with"). It runs on
  :func:`stackit_nb.acompare`'s machinery: all models at once, paced together on 429s, a
  failing model's error in its own column, images only to vision models (the others listed as
  skipped, with why).
- **Where it shows**: in the history, after the exchange it answers: while it streams, the live
  grid of ``stackit_nb.compare`` (one column per model, within one display's message budget);
  then its static copy (the replies side by side and the table).
- **Kept apart from the conversation**: the compared replies are never sent to the model on
  later turns (``chat.messages`` does not hold them); ``chat.comparisons`` does. Undoing the
  exchange, or Clear, removes its comparisons; Retry keeps them (they answer the same message).
- **Exported**: the JSON transcript keeps them and its import gives them back; the Markdown
  transcript shows them for people, and a Markdown import leaves them out (as it does images).
- **Stop** ends a comparison too: replies that had ended stay as they are, the others keep what
  had arrived, marked ``stopped``. The tokens a comparison spent count in ``chat.usage``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
from haystack.dataclasses import ChatMessage, ChatRole, StreamingChunk

from stackit_nb._comparison_results import Comparison, ModelResult
from stackit_nb.comparison import acompare_in_view
from stackit_nb.widgets.compare import CompareGrid, current_cell

_LABEL = (
    '<div style="font-size:.8em;font-weight:600;color:var(--jp-ui-font-color2,#616161)">'
    "Compared with other models</div>"
)
_BOX = "margin:.4em 0;padding:.3em .1em"


class _ChatGridView(CompareGrid):
    """The grid inside the chat: the chat places it and swaps it for the static copy; it
    remembers how each model ended, so that a stopped comparison keeps what was shown."""

    def __init__(self, models: Sequence[str], skipped: dict[str, str], on_text: Any) -> None:
        super().__init__(models, skipped)
        self.skipped = dict(skipped)
        self.ended: dict[str, ModelResult] = {}
        self.streaming = False  # some column shows text
        self._on_text = on_text

    def callback(self, model: str) -> Any:
        show = super().callback(model)

        async def on_chunk(chunk: StreamingChunk) -> None:
            await show(chunk)
            if not self.streaming and (chunk.content or chunk.reasoning):
                self.streaming = True
                self._on_text()

        return on_chunk

    def finished(self, model: str, reply: Any) -> None:
        super().finished(model, reply)
        meta = reply.meta if reply is not None else {}
        usage = meta.get("usage") or {}
        self.ended[model] = ModelResult(
            model=model,
            reply=reply,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=meta.get("finish_reason"),
        )

    def failed(self, model: str, error: BaseException) -> None:
        super().failed(model, error)
        self.ended[model] = ModelResult(model=model, error=error, finish_reason="error")

    def close(self, comparison: Any) -> None:
        pass  # no output of its own: the chat shows the static copy in its history

    def stopped(self, prompt: list[ChatMessage]) -> Comparison:
        """The comparison as it stood when it was stopped."""
        results = []
        for model, display in self.displays.items():
            if model in self.ended:
                results.append(self.ended[model])
                continue
            display.finish()
            meta = {"model": model, "stopped": True}
            reply = ChatMessage.from_assistant(
                display.text, meta=meta, reasoning=display.reasoning or None
            )
            results.append(ModelResult(model=model, reply=reply, finish_reason="stopped"))
        results += [ModelResult(model=m, skipped=why) for m, why in self.skipped.items()]
        return Comparison(results, prompt=prompt)


class _Entry:
    """A comparison in the chat's history: the user message it answers, what shows it."""

    def __init__(self, message: int) -> None:
        self.message = message  # index of the user message in the history
        self.widget: widgets.Widget | None = None
        self.view: _ChatGridView | None = None
        self.comparison: Comparison | None = None  # None while it runs
        self.task: asyncio.Task[Comparison] | None = None
        self.stopped = False
        self.discarded = False

    def show(self, comparison: Comparison) -> None:
        """Swap the live grid (if any) for the static copy."""
        self.comparison = comparison
        if self.widget is not None:
            self.widget.close()
        self.widget = widgets.HTML(
            f'<div class="snb-chat-compare" style="{_BOX}">{_LABEL}{comparison.static_html()}</div>'
        )


class ChatCompareMixin:
    """Compare for ``ChatWidget``: provides :meth:`compare` and :attr:`comparisons`, and the
    hooks the chat calls when it shows, trims, stops, exports and loads its history."""

    ui: Any
    usage: dict[str, int]
    _history: list[ChatMessage]
    _entries: list[widgets.HTML]
    _generator: Any
    _notice: str
    _compared: list[_Entry]
    _comparing: _Entry | None

    # provided by ChatWidget
    system_prompt: str | None
    temperature: float | None
    max_tokens: int | None

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def _refresh(self) -> None:
        raise NotImplementedError

    def _clear_error(self) -> None:
        raise NotImplementedError

    def _wake_start_waiters(self) -> None:
        raise NotImplementedError

    @property
    def comparisons(self) -> list[Comparison]:
        """The comparisons made in this chat, oldest first (each one's ``prompt`` ends with the
        user message it answered)."""
        return [e.comparison for e in self._compared if e.comparison is not None]

    @property
    def compare_models(self) -> list[str]:
        """The models the Compare button asks (Settings, "Compare with")."""
        return list(self.ui.compare_with.value)

    @compare_models.setter
    def compare_models(self, models: Sequence[str]) -> None:
        offered = list(self.ui.compare_with.options)
        unknown = [m for m in models if m not in offered]
        if isinstance(models, str) or unknown:
            raise ValueError(
                f"Choose among the chat models listed: {', '.join(offered) or 'none'}"
                + (f" ({', '.join(unknown)} is not one)" if unknown else "")
            )
        self.ui.compare_with.value = tuple(models)

    async def compare(self, models: Sequence[str] | None = None) -> Comparison | None:
        """Send the last user message again to other models; show their replies side by side
        in the chat, after the exchange they answer.

        The conversation up to that message goes as the chat's model got it (system prompt,
        earlier turns, images), with the chat's temperature and max tokens. The replies are
        kept in :attr:`comparisons` and in the JSON export, never sent on later turns.

        :param models: Model ids; default: those chosen under Settings, "Compare with"
            (:attr:`compare_models`).
        :returns: The :class:`~stackit_nb.Comparison`, or ``None`` if it was undone or
            cleared while it ran. Stopped, it holds what had arrived (marked ``stopped``).

        Example::

            await chat.send("Explain a rainbow to a child.")
            comparison = await chat.compare(models=["openai/gpt-oss-20b", "google/gemma-3-27b-it"])
            comparison.summary
        """
        if self.running:
            raise RuntimeError("A reply is still streaming: await it, or call chat.stop() first.")
        users = [i for i, m in enumerate(self._history) if m.role == ChatRole.USER]
        if not users:
            raise ValueError("Nothing to compare: send a message first.")
        if isinstance(models, str):
            raise TypeError(f"models= takes a list of model ids, e.g. models=[{models!r}]")
        chosen = list(models) if models is not None else self.compare_models
        if not chosen:
            raise ValueError(
                "No models to compare with: choose them under Settings (Compare with), or "
                "call chat.compare(models=[...])."
            )
        entry = self._comparing = _Entry(users[-1])
        system = [ChatMessage.from_system(self.system_prompt)] if self.system_prompt else []
        prompt = system + self._history[: users[-1] + 1]
        settings = {"temperature": self.temperature, "max_tokens": self.max_tokens}

        def make_view(asked: list[str], skipped: dict[str, str]) -> _ChatGridView:
            view = entry.view = _ChatGridView(asked, skipped, self._wake_start_waiters)
            entry.widget = widgets.VBox([widgets.HTML(_LABEL), view.box])
            entry.widget.add_class("snb-chat-compare")
            self._compared.append(entry)
            self._refresh()
            return view

        self._clear_error()
        self._notice = ""
        self._refresh()
        entry.task = asyncio.ensure_future(
            acompare_in_view(
                make_view,
                prompt,
                chosen,
                generation_kwargs={k: v for k, v in settings.items() if v is not None},
                generator=self._generator,
            )
        )
        comparison: Comparison | None = None
        try:
            comparison = await entry.task
        except asyncio.CancelledError:
            if not entry.discarded and entry.view is not None:
                comparison = entry.view.stopped(prompt)
                self._notice = "comparison stopped"
            if not entry.stopped and not entry.discarded:
                self._file(entry, comparison)
                raise  # cancelled from outside (e.g. the cell was interrupted): pass it on
        except BaseException:
            self._file(entry, None)
            raise
        return self._file(entry, comparison)

    # -- hooks for the chat ---------------------------------------------------------------------

    def _file(self, entry: _Entry, comparison: Comparison | None) -> Comparison | None:
        """End the running comparison: its static copy in the history (or nothing)."""
        self._comparing = None
        if comparison is None or entry.discarded:
            self._drop(entry)
            comparison = None
        else:
            entry.show(comparison)
            comparison._shown_in_cell = current_cell()  # in this cell: in the chat above
            for result in comparison.results:
                usage = (result.reply.meta.get("usage") or {}) if result.reply else {}
                self.usage["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
                self.usage["completion_tokens"] += int(usage.get("completion_tokens") or 0)
                self.usage["replies"] += result.reply is not None
        self._refresh()
        self._wake_start_waiters()
        return comparison

    def _drop(self, entry: _Entry) -> None:
        if entry in self._compared:
            self._compared.remove(entry)
        if entry.widget is not None:
            entry.widget.close()

    def _comparison_streaming(self) -> bool:
        entry = self._comparing
        return entry is not None and entry.view is not None and entry.view.streaming

    def _stop_comparison(self, discard: bool = False) -> None:
        entry = self._comparing
        if entry is not None and entry.task is not None and not entry.discarded:
            entry.stopped, entry.discarded = True, discard
            entry.task.cancel()

    async def _wait_comparison(self) -> None:
        while (entry := self._comparing) is not None and entry.task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(entry.task)
            await asyncio.sleep(0)  # let compare() file its result

    def _trim_comparisons(self) -> None:
        """Drop the comparisons of user messages no longer in the history."""
        for entry in [e for e in self._compared if e.message >= len(self._history)]:
            if entry is self._comparing:
                self._stop_comparison(discard=True)
            self._drop(entry)

    def _history_children(self, live: tuple[widgets.Widget, ...]) -> tuple[widgets.Widget, ...]:
        """The history's widgets: each comparison after the exchange it answers (before the
        next user message); the reply being written stays right after its exchange."""
        before: dict[int, list[widgets.Widget]] = {}  # position of the next user message -> ...
        for entry in self._compared:
            if entry.widget is not None:
                before.setdefault(_next_user(self._history, entry.message), []).append(entry.widget)
        children: list[widgets.Widget] = []
        for position, message in enumerate(self._entries):
            children += [*before.get(position, []), message]
        return (*children, *live, *before.get(len(self._entries), []))

    def _comparison_records(self) -> list[tuple[int, list[ModelResult]]]:
        return [(e.message, e.comparison.results) for e in self._compared if e.comparison]

    def _restore_comparisons(self, records: list[tuple[int, list[ModelResult]]]) -> None:
        for message, results in records:
            entry = _Entry(message)
            system = [ChatMessage.from_system(self.system_prompt)] if self.system_prompt else []
            entry.show(Comparison(results, prompt=system + self._history[: message + 1]))
            self._compared.append(entry)
        self._refresh()


def _next_user(history: list[ChatMessage], message: int) -> int:
    """The index of the first user message after ``message`` (``len(history)`` if none)."""
    later = (i for i in range(message + 1, len(history)) if history[i].role == ChatRole.USER)
    return next(later, len(history))
