"""The parts of ``ChatWidget``: its widgets, the message box, and choosing the generator.

Kept apart from ``chat.py`` so that the chat's behaviour (send, stop, retry, export) reads on
its own; everything here is layout, wiring and model lists.
"""

from __future__ import annotations

import asyncio
import functools
import html
import inspect
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anywidget
import ipywidgets as widgets
import traitlets

from stackit_nb.connection import list_models
from stackit_nb.models import ModelList, builtin_models
from stackit_nb.widgets._transcript import new_export_stem
from stackit_nb.widgets.upload import ImageUpload

if TYPE_CHECKING:
    from haystack.dataclasses import ChatMessage, ImageContent


class Chat(Protocol):
    """What the controls drive and show: ``ChatWidget`` (described here, not imported, so that the
    chat's module and its parts do not import each other)."""

    model: str
    usage: dict[str, int]
    _history: list[ChatMessage]
    _last_speed: tuple[float | None, float | None]
    _notice: str

    @property
    def running(self) -> bool: ...
    @property
    def attachments(self) -> list[ImageContent]: ...
    async def _submit(self, text: str, images: None, typed: bool) -> ChatMessage | None: ...
    def stop(self) -> None: ...
    async def retry(self) -> ChatMessage | None: ...
    def undo(self) -> list[ChatMessage]: ...
    def clear(self) -> None: ...
    def save(self, path: str | Path | None = None) -> Path: ...
    def import_json(self, text: str) -> None: ...
    def import_markdown(self, text: str) -> None: ...
    def _ensure_vision_model(self) -> None: ...
    def _show_error(self, error: BaseException, hint: str = ...) -> None: ...
    def _refresh(self) -> None: ...
    async def compare(self, models: None = None) -> Any: ...


_FALLBACK_MODEL = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
_CSS = ".snb-chat .snb-chat-buttons .widget-button { width: auto; }"


class Composer(anywidget.AnyWidget):  # type: ignore[misc]
    """The message box: Enter sends (a ``submit`` custom message), Shift+Enter is a new line."""

    _esm = Path(__file__).with_name("chat.js").read_text(encoding="utf-8")
    _css = _CSS  # the chat's few layout rules ride along with the widget that is always shown
    value = traitlets.Unicode("").tag(sync=True)
    placeholder = traitlets.Unicode("").tag(sync=True)
    disabled = traitlets.Bool(False).tag(sync=True)


@functools.cache
def _stackit_class() -> type:
    from stackit_nb.generator import STACKITChatGenerator

    return STACKITChatGenerator


def is_stackit(generator: Any) -> bool:
    """Whether the picker may change this generator's model."""
    return isinstance(generator, _stackit_class())


def with_model(generator: Any, model: str) -> Any:
    """A ``STACKITChatGenerator`` like ``generator`` (key, URL, kwargs, tools) for ``model``."""
    return _stackit_class()(
        model=model,
        api_key=generator.api_key,
        streaming_callback=generator.streaming_callback,
        api_base_url=generator.api_base_url,
        generation_kwargs=generator.generation_kwargs,
        timeout=generator.timeout,
        max_retries=generator.max_retries,
        http_client_kwargs=generator.http_client_kwargs,
        tools=generator.tools,
        tools_strict=generator.tools_strict,
    )


def builtin_catalog() -> ModelList:
    """Known STACKIT models, for the picker when the endpoint cannot be asked."""
    return builtin_models()


def pick_generator(generator: Any, model: str | None) -> tuple[Any, ModelList | BaseException]:
    """The generator to use and the endpoint's models (or why they could not be listed)."""
    catalog: ModelList | BaseException
    if generator is not None and not is_stackit(generator):
        return generator, ModelList([])  # not ours: its model is its own business
    try:
        if generator is None:
            catalog = list_models(timeout=10.0)
        else:
            catalog = list_models(generator.api_key, generator.api_base_url, timeout=10.0)
    except Exception as exc:  # no key, endpoint down: the widget shows it and still works
        catalog = exc
    if generator is None:
        listed = catalog if isinstance(catalog, ModelList) else builtin_models()
        current = [m.id for m in listed.chat if not m.legacy] or listed.chat.ids
        generator = _stackit_class()(model=model or (current or [_FALLBACK_MODEL])[0])
    elif model is not None and model != generator.model:
        generator = with_model(generator, model)
    return generator, catalog


async def run_generator(
    generator: Any, messages: list[Any], on_chunk: Any, generation_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Call any Haystack chat generator: ``run_async`` if it has one, else ``run`` in a thread
    (Stop then abandons its result); only the parameters its signature accepts are passed."""
    kwargs: dict[str, Any] = {"streaming_callback": on_chunk}
    if generation_kwargs:
        kwargs["generation_kwargs"] = generation_kwargs
    run_async = getattr(generator, "run_async", None)
    if run_async is None:
        loop = asyncio.get_running_loop()  # chunks from the thread are shown on the loop, in order
        kwargs["streaming_callback"] = lambda chunk: asyncio.run_coroutine_threadsafe(
            on_chunk(chunk), loop
        )
    method = run_async or generator.run
    accepted = inspect.signature(method).parameters
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    if run_async is not None:
        return dict(await run_async(messages, **kwargs))
    return dict(await asyncio.to_thread(method, messages, **kwargs))


class SettingsMixin:
    """``ChatWidget``'s settings, read from and written to its settings pane."""

    ui: ChatUI

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
    def attachments(self) -> list[ImageContent]:
        """Images attached to the next message."""
        return self.ui.upload.images


class ChatUI:
    """The widgets of a chat, laid out; ``ChatWidget`` holds one and shows its children."""

    def __init__(self) -> None:
        self.history = widgets.VBox(layout=widgets.Layout(width="100%"))
        self.history.add_class("snb-chat-history")
        self.error = widgets.HTML("")
        self.composer = Composer(
            placeholder="Message (Enter sends, Shift+Enter for a new line)",
            layout=widgets.Layout(width="100%"),
        )
        button = functools.partial(widgets.Button, layout=widgets.Layout(width="auto"))
        self.send = button(description="Send", icon="paper-plane", button_style="primary")
        self.stop = button(description="Stop", icon="stop", disabled=True)
        self.retry = button(description="Retry", icon="redo")
        self.compare = button(
            description="Compare",
            icon="columns",
            tooltip="Send your last message again to the models chosen under Settings "
            "(Compare with): their replies side by side",
        )
        self.undo = button(description="Undo", icon="undo")
        self.clear = button(description="Clear", icon="trash", tooltip="Remove all messages")
        self.export = button(
            description="Export",
            icon="download",
            tooltip="Save the chat as .md and .json (stackit-chat-<date>-<time>) in the "
            "working directory",
        )
        self.importer = widgets.FileUpload(accept=".json,.md", description="Import")
        actions = [self.send, self.stop, self.retry, self.compare, self.undo, self.clear]
        self.buttons = widgets.HBox([*actions, self.export, self.importer])
        self.buttons.add_class("snb-chat-buttons")
        self.upload = ImageUpload(description="Attach images")
        # one "Clear" in the chat: the attachments' own button says what it removes
        self.upload.clear_button.description = "Remove images"
        self.upload.clear_button.icon = "times"
        # labels as wide as their text: ipywidgets' default cuts "Temperature" to "Temperat…"
        label = {"style": {"description_width": "initial"}}
        self.system = widgets.Textarea(
            description="System prompt",
            placeholder="Optional; sent first with every request",
            rows=2,
            layout=widgets.Layout(width="100%"),
            **label,
        )
        # wide enough for the longest ids (Qwen/Qwen3-VL-235B-A22B-Instruct-FP8)
        self.model = widgets.Dropdown(
            description="Model",
            options=[],
            layout=widgets.Layout(width="100%", max_width="40em"),
            **label,
        )
        self.temperature = widgets.FloatSlider(
            value=0.7,
            min=0.0,
            max=2.0,
            step=0.05,
            description="Temperature",
            disabled=True,
            **label,
        )
        self.temperature_default = widgets.Checkbox(
            value=True, description="model default", indent=False, **label
        )
        self.max_tokens = widgets.BoundedIntText(
            value=0,
            min=0,
            max=1_000_000,
            description="Max tokens (0: model default)",
            **label,
        )
        self.compare_with = widgets.SelectMultiple(
            description="Compare with", rows=5, layout=self.model.layout, **label
        )
        settings = widgets.VBox(
            [
                self.system,
                self.model,
                widgets.HBox([self.temperature, self.temperature_default]),
                self.max_tokens,
                self.compare_with,
            ]
        )
        self.settings = widgets.Accordion(children=[settings], titles=("Settings",))
        self.settings.selected_index = None
        self.status = widgets.HTML("")
        self.children = (
            self.history,
            self.error,
            self.composer,
            self.buttons,
            self.upload,
            self.settings,
            self.status,
        )
        self._catalog = ModelList([])
        self._picking = False  # options being replaced: not a choice by the user
        self._tasks: set[asyncio.Task[Any]] = set()  # strong references: tasks must not vanish

    # -- models ---------------------------------------------------------------------------------

    def set_catalog(self, catalog: ModelList, current: str | None, pickable: bool) -> None:
        self._catalog = catalog
        self.model.disabled = not pickable
        self.compare_with.options = catalog.chat.ids
        self._offer(current)

    def vision_ids(self) -> list[str]:
        return [m.id for m in self._catalog.chat.vision if not m.legacy] or (
            self._catalog.chat.vision.ids
        )

    def select_model(self, model: str) -> None:
        self._offer(model)

    def _offer(self, current: str | None) -> None:
        """Options: all chat models, or only vision models while images are attached."""
        ids = self.vision_ids() if self.upload.images else self._catalog.chat.ids
        if current and current not in ids and not self.upload.images:
            ids = [current, *ids]  # a model the list does not know is still the one in use
        self._picking = True
        try:
            self.model.options = ids
            self.model.value = current if current in ids else None
        finally:
            self._picking = False

    # -- wiring ---------------------------------------------------------------------------------

    def wire(self, chat: Chat) -> None:
        """Connect buttons and fields to ``chat`` (callbacks never raise into the kernel)."""

        def spawn(action: Coroutine[Any, Any, Any]) -> None:
            """Run ``action`` as a task on the kernel's loop: the click returns at once."""
            try:
                task = asyncio.get_running_loop().create_task(guarded(action))
            except RuntimeError:  # no running loop (not in a kernel): say how to drive it
                action.close()
                message = "No running event loop: use `await chat.send(...)` instead."
                chat._show_error(RuntimeError(message), hint="")
                return
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        async def guarded(action: Coroutine[Any, Any, Any]) -> None:
            try:
                await action
            except Exception as exc:
                chat._show_error(exc, hint="")

        def submit(text: str) -> None:
            if chat.running or not (text.strip() or chat.attachments):
                return
            self.composer.value = ""
            spawn(chat._submit(text, None, typed=True))

        def export() -> None:
            stem = new_export_stem()  # in the working directory: where the user is
            saved = [chat.save(stem.with_name(stem.name + suffix)) for suffix in (".md", ".json")]
            names = " and ".join(path.name for path in saved)
            chat._notice = f"saved {names} in {stem.parent}"
            chat._refresh()

        def guard(action: Any) -> Any:
            def run(*args: Any) -> None:
                try:
                    action(*args)
                except Exception as exc:
                    chat._show_error(exc, hint="")

            return run

        def on_message(_widget: Any, content: Any, _buffers: Any) -> None:
            if isinstance(content, Mapping) and content.get("event") == "submit":
                submit(str(content.get("text", "")))

        def on_model(change: Mapping[str, Any]) -> None:
            if not self._picking and change["new"] and change["new"] != chat.model:
                chat.model = change["new"]

        def on_images(images: list[Any]) -> None:
            if images and chat.model not in self.vision_ids():
                chat._ensure_vision_model()
            self._offer(chat.model)
            chat._refresh()

        def on_import(change: Mapping[str, Any]) -> None:
            if entries := change["new"]:
                self.importer.value = ()  # the file must not stay in the widget state
                name, text = str(entries[0]["name"]), bytes(entries[0]["content"]).decode("utf-8")
                if name.lower().endswith(".md"):
                    chat.import_markdown(text)
                else:
                    chat.import_json(text)
                chat._notice = f"imported {name}"
                chat._refresh()

        self.composer.on_msg(guard(on_message))
        self.send.on_click(guard(lambda _b: submit(self.composer.value)))
        self.stop.on_click(guard(lambda _b: chat.stop()))
        self.retry.on_click(guard(lambda _b: spawn(chat.retry())))
        self.compare.on_click(guard(lambda _b: spawn(chat.compare())))
        self.undo.on_click(guard(lambda _b: chat.undo()))
        self.clear.on_click(guard(lambda _b: chat.clear()))
        self.export.on_click(guard(lambda _b: export()))
        self.importer.observe(guard(on_import), names="value")
        self.model.observe(guard(on_model), names="value")
        self.upload.on_change(guard(on_images))
        self.temperature_default.observe(
            lambda change: setattr(self.temperature, "disabled", change["new"]), names="value"
        )

    def show_state(self, chat: Chat) -> None:
        """Buttons enabled as the state allows; the status line (model, usage, speed)."""
        running, has_messages = chat.running, bool(chat._history)
        _set(self.send, "disabled", running)
        _set(self.stop, "disabled", not running)
        _set(self.composer, "disabled", False)
        for button in (self.retry, self.compare, self.undo, self.clear, self.export):
            _set(button, "disabled", running or not has_messages)
        usage = chat.usage
        parts = [f"<code>{html.escape(chat.model)}</code>"] if chat.model else []
        if usage["replies"]:
            parts.append(
                f"{usage['prompt_tokens']:,} tokens in · {usage['completion_tokens']:,} out "
                f"in {usage['replies']} repl{'y' if usage['replies'] == 1 else 'ies'}"
            )
        first, speed = chat._last_speed
        timing = [f"first token {first:.2f} s"] if first is not None else []
        timing += [f"{speed:,.1f} tokens/s"] if speed is not None else []
        if timing:
            parts.append('<span class="snb-timing">last: ' + " · ".join(timing) + "</span>")
        if running:
            parts.append("<i>streaming…</i>")
        elif chat._notice:
            parts.append(f"<i>{html.escape(chat._notice)}</i>")
        line = " · ".join(parts)
        _set(self.status, "value", f'<div style="font-size:.85em;opacity:.8">{line}</div>')


def _set(widget: Any, name: str, value: Any) -> None:
    """Set a trait only when it changes: every assignment would be a message to the browser."""
    if getattr(widget, name) != value:
        setattr(widget, name, value)
