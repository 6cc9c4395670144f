"""``ChatWidget``: a whole chat in a notebook cell, around any Haystack chat generator.

How it stays live and cheap:

- **Streaming is an asyncio task.** A running cell keeps the kernel from handling clicks, so the
  Send button and Enter start the reply as a task on the kernel's event loop and return at once;
  Stop cancels that task. ``await chat.send(...)`` runs the same coroutine from Python.
- **The history is never re-sent.** Each message is its own ``HTML`` widget, sent once; the
  reply being written streams into an embedded ``StreamingDisplay(show=False)`` view as small
  diffs and is swapped for its finished ``HTML`` entry at the end.
- **Small saved state.** Images appear as thumbnails of a few KB; the full images stay in
  Python (``chat.messages``) and in the JSON export, never in widget state.
- **Errors stay in the widget.** A failed request leaves the user's message in the history,
  shows the error (with what to do) under the chat, and sets :attr:`ChatWidget.last_error`;
  Retry sends it again. A reply that is stopped or breaks off is kept, marked ``stopped`` or
  ``interrupted`` in its ``meta``.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
from collections.abc import Iterable
from typing import Any

import ipywidgets as widgets
from haystack.dataclasses import ChatMessage, ChatRole, ImageContent, StreamingChunk

from stackit_nb.images import ImageSource, to_image_content
from stackit_nb.widgets import _chatui
from stackit_nb.widgets._markdown import error_html
from stackit_nb.widgets._transcript import Transcript, TranscriptMixin, canonical, message_html
from stackit_nb.widgets.stream import StreamingDisplay

__all__ = ["ChatWidget"]

_RETRY_HINT = "Your message is kept: press Retry (or `await chat.retry()`) to send it again."


class _Run:
    """One reply being generated: its task and how it should end."""

    def __init__(self) -> None:
        self.task: asyncio.Task[dict[str, Any]] | None = None
        self.stopped = False  # stop() asked for it: keep the partial reply
        self.discarded = False  # undo/clear/retry asked for it: drop the partial reply
        self.model: str | None = None


class ChatWidget(TranscriptMixin, widgets.VBox):
    """A complete chat in a cell: history, message box, images, stop/retry/undo, settings.

    :param generator: Any Haystack chat generator with ``run_async`` (or ``run``); default: a
        ``STACKITChatGenerator`` for ``model``. The model picker changes the model of a
        ``STACKITChatGenerator`` (a new one with the same settings) and is disabled for others.
    :param model: The model to start with; default: the first chat model the endpoint lists.
    :param system_prompt: Sent first with every request (editable under Settings).
    :param temperature: Sent as ``temperature``; ``None`` leaves it to the model.
    :param max_tokens: Sent as ``max_tokens``; ``None`` leaves it to the model.

    Example::

        import stackit_nb
        from stackit_nb.widgets import ChatWidget

        stackit_nb.connect()
        chat = ChatWidget(system_prompt="Answer in one paragraph.")
        chat  # type, press Enter; or drive it from Python:
        reply = await chat.send("Tell me a joke.")
        chat.messages  # [system, user, assistant] as ChatMessage
        chat.save("joke.md")
    """

    def __init__(
        self,
        generator: Any = None,
        *,
        model: str | None = None,
        system_prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.ui = _chatui.ChatUI()
        super().__init__(children=self.ui.children, **kwargs)
        self.add_class("snb-chat")
        self._history: list[ChatMessage] = []
        self._entries: list[widgets.HTML] = []
        self._run: _Run | None = None
        self._live: Any = None  # the streaming reply's view, while there is one
        self._display = StreamingDisplay(show=False)
        self._last_speed: tuple[float | None, float | None] = (None, None)
        self._notice = ""
        self.last_error: BaseException | None = None
        """The last error of a request (or of a UI action), ``None`` after a success."""
        self.usage: dict[str, int] = {"prompt_tokens": 0, "completion_tokens": 0, "replies": 0}
        """Tokens spent by this widget (undone and cleared replies included: they were spent)."""
        self._generator, catalog = _chatui.pick_generator(generator, model)
        if isinstance(catalog, BaseException):  # e.g. no key: show what to do, keep working
            self._show_error(catalog, hint="")
            catalog = _chatui.builtin_catalog()
        self.ui.set_catalog(catalog, self.model, pickable=_chatui.is_stackit(self._generator))
        self.system_prompt, self.temperature, self.max_tokens = (
            system_prompt,
            temperature,
            max_tokens,
        )
        self.ui.wire(self)
        self._refresh()

    # -- what it holds --------------------------------------------------------------------------

    @property
    def messages(self) -> list[ChatMessage]:
        """The conversation as sent to the model: the system prompt (if set) first."""
        system = self.system_prompt
        return ([ChatMessage.from_system(system)] if system else []) + list(self._history)

    @property
    def generator(self) -> Any:
        """The chat generator in use."""
        return self._generator

    @property
    def model(self) -> str | None:
        """The generator's model id; setting it builds a new ``STACKITChatGenerator``."""
        return getattr(self._generator, "model", None)

    @model.setter
    def model(self, model: str) -> None:
        if model == self.model:
            return
        if not _chatui.is_stackit(self._generator):
            raise ValueError(
                f"The model of a {type(self._generator).__name__} cannot be changed here: "
                "pass a generator built for the model you want."
            )
        self._generator = _chatui.with_model(self._generator, model)
        self.ui.select_model(model)
        self._refresh()

    @property
    def models(self) -> list[str]:
        """The model ids the picker offers now (only vision models while images are attached)."""
        return list(self.ui.model.options)

    @property
    def system_prompt(self) -> str | None:
        """The system prompt (``None`` when empty)."""
        return self.ui.system.value.strip() or None

    @system_prompt.setter
    def system_prompt(self, value: str | None) -> None:
        self.ui.system.value = value or ""

    @property
    def temperature(self) -> float | None:
        """Sent as ``temperature``; ``None``: the model's default."""
        return None if self.ui.temperature_default.value else float(self.ui.temperature.value)

    @temperature.setter
    def temperature(self, value: float | None) -> None:
        self.ui.temperature_default.value = value is None
        if value is not None:
            self.ui.temperature.value = float(value)

    @property
    def max_tokens(self) -> int | None:
        """Sent as ``max_tokens``; ``None``: the model's default."""
        return int(self.ui.max_tokens.value) or None

    @max_tokens.setter
    def max_tokens(self, value: int | None) -> None:
        self.ui.max_tokens.value = int(value or 0)

    @property
    def running(self) -> bool:
        """Whether a reply is being generated."""
        return self._run is not None

    @property
    def attachments(self) -> list[ImageContent]:
        """Images attached to the next message."""
        return self.ui.upload.images

    # -- actions --------------------------------------------------------------------------------

    def attach(self, *sources: ImageSource) -> list[ImageContent]:
        """Attach images to the next message (paths, bytes, PIL images, upload entries)."""
        return self.ui.upload.add(*sources)

    async def send(
        self, text: str, images: Iterable[ImageSource | ImageContent] | None = None
    ) -> ChatMessage | None:
        """Send a user message and stream the reply; return it (``None`` if the request failed).

        :param text: The message.
        :param images: Images sent with it, besides those attached in the widget. With images,
            a model that does not accept them is swapped for the first vision model.
        :returns: The reply as it went into the history (marked ``meta["stopped"]`` if it was
            stopped), or ``None`` when nothing came back (see :attr:`last_error`).
        """
        if self.running:
            raise RuntimeError("A reply is still streaming: await it, or call chat.stop() first.")
        extra = [i if isinstance(i, ImageContent) else to_image_content(i) for i in images or []]
        attached = [*self.attachments, *extra]
        if not text.strip() and not attached:
            raise ValueError("Nothing to send: write a message or attach an image.")
        if attached:
            self._ensure_vision_model()
            message = ChatMessage.from_user(content_parts=[text, *attached])
        else:
            message = ChatMessage.from_user(text)
        self._append(canonical(message))
        if self.attachments:
            self.ui.upload.clear()  # they went with this message
        return await self._respond()

    def stop(self) -> None:
        """Stop the reply being generated; what arrived so far is kept, marked as stopped."""
        if self._run is not None and self._run.task is not None:
            self._run.stopped = True
            self._run.task.cancel()

    async def wait(self) -> None:
        """Wait until the reply being generated (if any) has ended."""
        while (run := self._run) is not None and run.task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(run.task)
            await asyncio.sleep(0)  # let the reply's own coroutine file its result

    async def retry(self) -> ChatMessage | None:
        """Drop the last reply (stopping it if it runs) and ask again for the last message."""
        self._discard_running()
        await self.wait()
        while self._history and self._history[-1].role == ChatRole.ASSISTANT:
            self._pop()
        if not self._history or self._history[-1].role != ChatRole.USER:
            self._show_error(ValueError("Nothing to retry: send a message first."), hint="")
            return None
        return await self._respond()

    def undo(self) -> list[ChatMessage]:
        """Remove the last exchange (your message and its reply); your text returns to the box.

        :returns: The removed messages.
        """
        self._discard_running()
        removed: list[ChatMessage] = []
        while self._history and self._history[-1].role != ChatRole.USER:
            removed.insert(0, self._pop())
        if self._history:
            removed.insert(0, user := self._pop())
            if not self.ui.composer.value.strip():
                self.ui.composer.value = user.text or ""
        self._clear_error()
        return removed

    def clear(self) -> None:
        """Start over: remove all messages (settings and usage totals stay)."""
        self._discard_running()
        while self._history:
            self._pop()
        self._clear_error()

    # -- export and import (export_json, export_markdown, save, import_*, load: TranscriptMixin)

    def transcript(self) -> Transcript:
        """The history and settings, as the exports write them."""
        return Transcript(
            messages=list(self._history),
            model=self.model,
            system_prompt=self.system_prompt,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            usage=dict(self.usage),
        )

    def __repr__(self) -> str:
        state = ", streaming" if self.running else ""
        return f"ChatWidget(model={self.model!r}, {len(self._history)} messages{state})"

    # -- inside ---------------------------------------------------------------------------------

    async def _respond(self) -> ChatMessage | None:
        """Stream a reply to the history as it is; file the reply, partial reply or error."""
        run = self._run = _Run()
        self._clear_error()
        self._display.start()
        self._live = self._display.widget
        self._refresh()
        messages = self.messages

        async def on_chunk(chunk: StreamingChunk) -> None:
            run.model = (chunk.meta or {}).get("model") or run.model
            self._display(chunk)

        settings = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        kwargs = {k: v for k, v in settings.items() if v is not None}
        generate = _chatui.run_generator(self._generator, messages, on_chunk, kwargs)
        run.task = asyncio.ensure_future(generate)
        reply: ChatMessage | None = None
        try:
            result = await run.task
            self._display.finish()
            reply = result["replies"][0] if result.get("replies") else None
            if reply is None:
                raise RuntimeError("The generator returned no reply.")
        except asyncio.CancelledError:
            self._display.finish()
            reply = self._partial(run, {"stopped": True})
            self._notice = "stopped" if reply else "stopped before the first token"
            if not run.stopped and not run.discarded:
                self._end(run, reply)
                raise  # cancelled from outside (e.g. the cell was interrupted): pass it on
        except Exception as exc:
            self._display.fail(exc)
            reply = self._partial(run, {"interrupted": True, "error": f"{exc}"})
            self._show_error(exc)
        else:
            self._notice = ""
            self._count(reply)
        return self._end(run, reply)

    def _partial(self, run: _Run, marks: dict[str, Any]) -> ChatMessage | None:
        """What arrived before a stop or a break, as a marked reply (``None``: nothing came)."""
        text, reasoning = self._display.text, self._display.reasoning
        if run.discarded or not (text or reasoning):
            return None
        meta = {"model": run.model or self.model, **marks}
        return ChatMessage.from_assistant(text, meta=meta, reasoning=reasoning or None)

    def _end(self, run: _Run, reply: ChatMessage | None) -> ChatMessage | None:
        if self._live is not None:
            self._live.close()  # its finished text is in the history entry now
            self._live = None
        self._run = None
        if reply is not None and not run.discarded:
            reply = canonical(reply)
            self._append(reply)
        self._refresh()
        return None if run.discarded else reply

    def _count(self, reply: ChatMessage) -> None:
        usage = reply.meta.get("usage") or {}
        self.usage["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
        self.usage["completion_tokens"] += int(usage.get("completion_tokens") or 0)
        self.usage["replies"] += 1
        meta = reply.meta
        self._last_speed = (meta.get("time_to_first_token"), meta.get("tokens_per_second"))

    def _discard_running(self) -> None:
        if self._run is not None and self._run.task is not None:
            self._run.discarded = True
            self._run.task.cancel()

    def _ensure_vision_model(self) -> None:
        vision = self.ui.vision_ids()
        if _chatui.is_stackit(self._generator) and vision and self.model not in vision:
            previous, self.model = self.model, vision[0]
            self._notice = f"{previous} does not accept images: switched to {self.model}"

    def _append(self, message: ChatMessage) -> None:
        self._history.append(message)
        self._entries.append(widgets.HTML(message_html(message)))
        self._refresh()

    def _pop(self) -> ChatMessage:
        self._entries.pop().close()
        message = self._history.pop()
        self._refresh()
        return message

    def _load(self, transcript: Transcript, settings: bool = True) -> None:
        self.clear()
        self.system_prompt = transcript.system_prompt
        if settings:
            if transcript.model and _chatui.is_stackit(self._generator):
                self.model = transcript.model
            self.temperature, self.max_tokens = transcript.temperature, transcript.max_tokens
            self.usage.update(transcript.usage)
        for message in transcript.messages:
            self._append(canonical(message))

    def _show_error(self, error: BaseException, hint: str = _RETRY_HINT) -> None:
        self.last_error = error
        text = f"{type(error).__name__}: {error}"
        self.ui.error.value = error_html(text) + (
            f'<div style="font-size:.85em">{html.escape(hint)}</div>' if hint else ""
        )

    def _clear_error(self) -> None:
        self.last_error = None
        self.ui.error.value = ""

    def _refresh(self) -> None:
        """Bring history, buttons and status line up to date (only changed values are sent)."""
        live = (self._live,) if self._live is not None else ()
        children = (*self._entries, *live)
        if self.ui.history.children != children:
            self.ui.history.children = children
        self.ui.show_state(self)
