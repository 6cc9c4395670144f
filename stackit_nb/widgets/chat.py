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
  Retry sends it again. A reply that breaks off is kept, marked ``interrupted`` in its ``meta``.
- **Stop keeps what was shown.** Stop pressed any time before the reply is filed keeps exactly
  the text that had arrived (empty before the first token), marked ``stopped``; chunks arriving
  after the press are dropped, so where a stop lands does not depend on how fast the task is
  cancelled. ``await chat.started()`` waits for the first words, on any engine.
- **The message box holds only what the user typed.** ``send()`` from code leaves it alone;
  Undo gives back a message typed there, and only into an empty box.
- **Compare** sends the last user message again to other models and shows their replies side by
  side in the history, kept apart from the conversation (``_chat_compare`` says how).
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
from stackit_nb.widgets._chat_compare import ChatCompareMixin
from stackit_nb.widgets._history_html import message_html
from stackit_nb.widgets._markdown import error_html
from stackit_nb.widgets._transcript import Transcript, TranscriptMixin, canonical
from stackit_nb.widgets.stream import StreamingDisplay

__all__ = ["ChatWidget"]

_RETRY_HINT = "Your message is kept: press Retry (or `await chat.retry()`) to send it again."


class _Run:
    """One reply being generated: its task and how it should end."""

    def __init__(self) -> None:
        self.task: asyncio.Task[dict[str, Any]] | None = None
        self.stopped = False  # stop() asked for it: keep what arrived before, nothing after
        self.discarded = False  # undo/clear/retry asked for it: drop the partial reply
        self.streaming = False  # its first text (or reasoning, or tool call) has arrived
        self.model: str | None = None
        self.fingerprint: str | None = None  # which server (and engine) writes it


class ChatWidget(TranscriptMixin, ChatCompareMixin, _chatui.SettingsMixin, widgets.VBox):
    """A complete chat in a cell: history, message box, images, stop/retry/undo, settings, and
    Compare (the last message sent again to other models, their replies side by side).

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
        await chat.compare(models=["openai/gpt-oss-20b"])  # side by side; in chat.comparisons
        chat.save()  # stackit-chat-YYYYMMDD-HHMMSS.json in the working directory
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
        self._typed: list[bool] = []  # per history entry: a message typed in the message box
        self._start_waiters: list[asyncio.Future[None]] = []  # started() calls
        self._run: _Run | None = None
        self._compared = []  # comparisons in the history (ChatCompareMixin)
        self._comparing = None  # the one running
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
    def running(self) -> bool:
        """Whether a reply (or a comparison) is being generated."""
        return self._run is not None or self._comparing is not None

    # -- actions --------------------------------------------------------------------------------

    def attach(self, *sources: ImageSource) -> list[ImageContent]:
        """Attach images to the next message (paths, bytes, PIL images, upload entries)."""
        return self.ui.upload.add(*sources)

    async def send(
        self, text: str, images: Iterable[ImageSource | ImageContent] | None = None
    ) -> ChatMessage | None:
        """Send a user message and stream the reply; return it (``None`` if the request failed).

        The message box is left as it is: a message sent from code is not the user's typing.

        :param text: The message.
        :param images: Images sent with it, besides those attached in the widget. With images,
            a model that does not accept them is swapped for the first vision model.
        :returns: The reply as it went into the history (marked ``meta["stopped"]`` if it was
            stopped), or ``None`` when nothing came back (see :attr:`last_error`).
        """
        return await self._submit(text, images, typed=False)

    async def _submit(
        self, text: str, images: Iterable[ImageSource | ImageContent] | None, typed: bool
    ) -> ChatMessage | None:
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
        self._append(canonical(message), typed=typed)
        if self.attachments:
            self.ui.upload.clear()  # they went with this message
        return await self._respond()

    def stop(self) -> None:
        """Stop the reply being generated: what arrived so far is kept, marked as stopped.

        Any time before the reply is filed counts, also before its first token (the reply is
        then empty). Nothing that arrives after the call is added. Without a reply being
        generated it does nothing. A comparison running stops the same way.
        """
        self._stop_comparison()
        run = self._run
        if run is not None and not run.discarded:
            run.stopped = True
            if run.task is not None:
                run.task.cancel()

    async def started(self) -> bool:
        """Wait until the reply being generated shows its first text (or reasoning, or tool
        call; of a comparison: any column's first text), or has ended without any; with none
        being generated yet, wait for the next one (e.g. just scheduled with
        ``asyncio.ensure_future(chat.send(...))``).

        :returns: Whether the reply is still streaming, so that :meth:`stop` keeps a part.

        Example::

            task = asyncio.ensure_future(chat.send("Write 600 tokens about rivers."))
            await chat.started()  # the first words are in
            chat.stop()
            partial = await task  # partial.meta["stopped"] is True
        """
        run = self._run
        if (run is None or not run.streaming) and not self._comparison_streaming():
            waiter = asyncio.get_running_loop().create_future()
            self._start_waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._start_waiters.remove(waiter)
        return self.running

    async def wait(self) -> None:
        """Wait until the reply (or comparison) being generated, if any, has ended."""
        while (run := self._run) is not None and run.task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(run.task)
            await asyncio.sleep(0)  # let the reply's own coroutine file its result
        await self._wait_comparison()

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
        """Remove the last exchange (your message and its reply).

        A message typed in the message box goes back into it, to edit and send again (if the
        box is empty); a message sent with :meth:`send` from code does not.

        :returns: The removed messages.
        """
        self._discard_running()
        removed: list[ChatMessage] = []
        while self._history and self._history[-1].role != ChatRole.USER:
            removed.insert(0, self._pop())
        if self._history:
            typed = self._typed[-1]
            removed.insert(0, user := self._pop())
            # only text the user typed goes back, and never over what they are typing now
            if typed and not self.ui.composer.value.strip():
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
            comparisons=self._comparison_records(),
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
            if run.stopped:
                return  # arrived after Stop: the reply is what was there when it was pressed
            meta = chunk.meta or {}
            run.model = meta.get("model") or run.model
            run.fingerprint = meta.get("system_fingerprint") or run.fingerprint
            self._display(chunk)
            if not run.streaming and (chunk.content or chunk.reasoning or chunk.tool_calls):
                run.streaming = True
                self._wake_start_waiters()

        settings = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        kwargs = {k: v for k, v in settings.items() if v is not None}
        generate = _chatui.run_generator(self._generator, messages, on_chunk, kwargs)
        run.task = asyncio.ensure_future(generate)
        reply: ChatMessage | None = None
        try:
            result = await run.task
            if run.stopped:  # Stop came after the last chunk but before the reply was filed
                raise asyncio.CancelledError
            self._display.finish()
            reply = result["replies"][0] if result.get("replies") else None
            if reply is None:
                raise RuntimeError("The generator returned no reply.")
        except asyncio.CancelledError:
            self._display.finish()
            reply = self._partial(run, {"stopped": True}, empty=run.stopped)
            streamed = bool(reply and (reply.text or reply.reasoning))
            self._notice = "stopped" if streamed else "stopped before the first token"
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

    def _partial(self, run: _Run, marks: dict[str, Any], empty: bool = False) -> ChatMessage | None:
        """What arrived before a stop or a break, as a marked reply (``None``: nothing came,
        unless ``empty`` asks for a reply without text)."""
        text, reasoning = self._display.text, self._display.reasoning
        if run.discarded or not (text or reasoning or empty):
            return None
        fingerprint = {"system_fingerprint": run.fingerprint} if run.fingerprint else {}
        meta = {"model": run.model or self.model, **fingerprint, **marks}
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
        self._wake_start_waiters()  # ended without any text: started() must not wait on
        return None if run.discarded else reply

    def _wake_start_waiters(self) -> None:
        waiters, self._start_waiters = self._start_waiters, []
        for waiter in waiters:
            if not waiter.done():
                with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits
                    waiter.set_result(None)

    def _count(self, reply: ChatMessage) -> None:
        usage = reply.meta.get("usage") or {}
        self.usage["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
        self.usage["completion_tokens"] += int(usage.get("completion_tokens") or 0)
        self.usage["replies"] += 1
        meta = reply.meta
        self._last_speed = (meta.get("time_to_first_token"), meta.get("tokens_per_second"))

    def _discard_running(self) -> None:
        self._stop_comparison(discard=True)
        if self._run is not None and self._run.task is not None:
            self._run.discarded = True
            self._run.task.cancel()

    def _ensure_vision_model(self) -> None:
        vision = self.ui.vision_ids()
        if _chatui.is_stackit(self._generator) and vision and self.model not in vision:
            previous, self.model = self.model, vision[0]
            self._notice = f"{previous} does not accept images: switched to {self.model}"

    def _append(self, message: ChatMessage, typed: bool = False) -> None:
        self._history.append(message)
        self._typed.append(typed)
        self._entries.append(widgets.HTML(message_html(message)))
        self._refresh()

    def _pop(self) -> ChatMessage:
        self._entries.pop().close()
        self._typed.pop()
        message = self._history.pop()
        self._trim_comparisons()
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
        self._restore_comparisons(transcript.comparisons)

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
        children = self._history_children(live)
        if self.ui.history.children != children:
            self.ui.history.children = children
        self.ui.show_state(self)
