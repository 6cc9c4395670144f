"""A chat's history in other shapes: JSON and Markdown transcripts, and HTML for the widget.

The JSON transcript is Haystack's ``ChatMessage.to_dict()`` list plus the chat's settings::

    {"format": "stackit_nb.chat", "version": 1, "model": ..., "system_prompt": ...,
     "temperature": ..., "max_tokens": ..., "usage": {...}, "messages": [...]}

Images are kept as the data that was sent (already scaled down by ``to_image_content``), so an
import gives back equal messages. The Markdown transcript is for people: images appear as a
one-line placeholder, and ``<!-- message: role -->`` lines mark where each message starts, so it
can be read back (text only). Neither holds a key: messages never contain one, and the settings
are plain values (model id, numbers), not the generator's configuration.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from haystack.dataclasses import ChatMessage, ChatRole, ImageContent
from PIL import Image

from stackit_nb.images import describe_resize
from stackit_nb.widgets._markdown import (
    HtmlDiff,
    Section,
    error_html,
    footer_html,
    render_markdown,
)

FORMAT = "stackit_nb.chat"
VERSION = 1
_MARK = re.compile(r"^<!-- message: (system|user|assistant)(?: ([a-z, ]+))? -->$", re.MULTILINE)
_HEADINGS = {"system": "**System**", "user": "**You**", "assistant": "**Assistant**"}
_PLACEHOLDER = re.compile(r"^> \[image \d+: [^\]]*\]$", re.MULTILINE)


@dataclass
class Transcript:
    """What a transcript holds: the messages (system prompt apart) and the settings."""

    messages: list[ChatMessage]
    model: str | None = None
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    usage: dict[str, int] = field(default_factory=dict)


def canonical(message: ChatMessage) -> ChatMessage:
    """The message as it reads back from JSON (tuples become lists, objects strings), so that an
    exported and re-imported history compares equal to the one in the widget."""
    return ChatMessage.from_dict(json.loads(json.dumps(message.to_dict(), default=str)))


def to_json(transcript: Transcript) -> str:
    """The JSON transcript (see the module docstring)."""
    data = {
        "format": FORMAT,
        "version": VERSION,
        "model": transcript.model,
        "system_prompt": transcript.system_prompt,
        "temperature": transcript.temperature,
        "max_tokens": transcript.max_tokens,
        "usage": transcript.usage,
        "messages": [m.to_dict() for m in transcript.messages],
    }
    return json.dumps(data, ensure_ascii=False, indent=1, default=str)


def from_json(text: str) -> Transcript:
    """Read a JSON transcript; a bare list of ``ChatMessage`` dicts works too."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"This is not a JSON chat transcript ({exc}).") from exc
    if isinstance(data, list):
        data = {"messages": data}
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise ValueError(
            "A chat transcript is a JSON object with a 'messages' list (as written by "
            "ChatWidget.export_json()) or a list of ChatMessage.to_dict() objects."
        )
    messages = [ChatMessage.from_dict(m) for m in data["messages"]]
    system = data.get("system_prompt")
    # a leading system message (e.g. from a bare list) becomes the system prompt setting
    if messages and messages[0].role == ChatRole.SYSTEM:
        system = system or messages[0].text
        messages = messages[1:]
    return Transcript(
        messages=messages,
        model=data.get("model"),
        system_prompt=system,
        temperature=data.get("temperature"),
        max_tokens=data.get("max_tokens"),
        usage={k: int(v) for k, v in (data.get("usage") or {}).items()},
    )


def to_markdown(transcript: Transcript) -> str:
    """The Markdown transcript: settings on top, then one section per message."""
    settings = [f"model `{transcript.model}`"] if transcript.model else []
    if transcript.temperature is not None:
        settings.append(f"temperature {transcript.temperature:g}")
    if transcript.max_tokens:
        settings.append(f"max tokens {transcript.max_tokens}")
    if usage := transcript.usage:
        tokens_in, tokens_out = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        settings.append(f"{tokens_in:,} tokens in · {tokens_out:,} out")
    parts = ["# Chat transcript", " · ".join(settings)]
    if transcript.system_prompt:
        parts += ["<!-- message: system -->", _HEADINGS["system"], transcript.system_prompt]
    for message in transcript.messages:
        role = message.role.value
        if role not in _HEADINGS:
            continue  # tool messages: not part of a plain chat
        marks = _marks(message)
        parts.append(f"<!-- message: {role}{' ' + ', '.join(marks) if marks else ''} -->")
        model = message.meta.get("model")
        detail = ", ".join([*([model] if model else []), *marks])
        parts.append(_HEADINGS[role] + (f" ({detail})" if detail and role == "assistant" else ""))
        if message.text:
            parts.append(message.text)
        for number, image in enumerate(message.images, start=1):
            parts.append(f"> [image {number}: {_image_label(image)}; in the JSON export]")
        if error := message.meta.get("error"):
            parts.append(f"> Error: {error}")
    return "\n\n".join(p for p in parts if p) + "\n"


def from_markdown(text: str) -> Transcript:
    """Read a Markdown transcript back (text only: images were placeholders)."""
    found = list(_MARK.finditer(text))
    if not found:
        raise ValueError(
            "No '<!-- message: ... -->' lines found: this is not a Markdown transcript written "
            "by ChatWidget.export_markdown()."
        )
    system, messages = None, []
    for match, after in zip(found, [*found[1:], None], strict=True):
        role, marks = match[1], {m.strip() for m in (match[2] or "").split(",") if m.strip()}
        body = text[match.end() : after.start() if after else len(text)].strip()
        heading, _, body = body.partition("\n")
        if not heading.startswith(_HEADINGS[role]):
            body = f"{heading}\n{body}"  # no heading line: all of it is the message
        body = _PLACEHOLDER.sub("", body)
        meta: dict[str, Any] = {}
        if error := re.search(r"^> Error: (.*)$", body, re.MULTILINE):
            meta["error"] = error[1]
            body = body[: error.start()] + body[error.end() :]
        meta.update({mark: True for mark in marks})
        body = body.strip()
        if role == "system":
            system = body
        elif role == "user":
            messages.append(ChatMessage.from_user(body, meta=meta or None))
        else:
            messages.append(ChatMessage.from_assistant(body, meta=meta or None))
    return Transcript(messages=messages, system_prompt=system)


def _marks(message: ChatMessage) -> list[str]:
    return [mark for mark in ("stopped", "interrupted") if message.meta.get(mark)]


def _image_label(image: ImageContent) -> str:
    meta = image.meta or {}
    size = meta.get("sent_size")
    kind = (image.mime_type or "image").removeprefix("image/").upper()
    return f"{size[0]}x{size[1]} {kind}" if size else kind


class TranscriptMixin:
    """Export and import for ``ChatWidget``, which provides ``transcript()`` and ``_load()``."""

    def transcript(self) -> Transcript:
        raise NotImplementedError

    def _load(self, transcript: Transcript, settings: bool = True) -> None:
        raise NotImplementedError

    def export_json(self) -> str:
        """The history as JSON: ``ChatMessage.to_dict()`` list and settings (no key)."""
        return to_json(self.transcript())

    def export_markdown(self) -> str:
        """The history as Markdown for people (images as placeholders)."""
        return to_markdown(self.transcript())

    def save(self, path: str | Path) -> Path:
        """Write the transcript to ``path``: JSON for ``.json``, Markdown for ``.md``."""
        path = Path(path)
        writers = {".json": self.export_json, ".md": self.export_markdown}
        if path.suffix.lower() not in writers:
            raise ValueError(f"Save as .json or .md, not {path.suffix or 'no suffix'} ({path}).")
        path.write_text(writers[path.suffix.lower()](), encoding="utf-8")
        return path

    def import_json(self, text: str) -> None:
        """Replace the history and settings with those of a JSON transcript."""
        self._load(from_json(text))

    def import_markdown(self, text: str) -> None:
        """Replace the history and system prompt with those of a Markdown transcript (text
        only; the model, temperature and max tokens stay as they are)."""
        self._load(from_markdown(text), settings=False)

    @classmethod
    def load(cls, source: str | Path, generator: Any = None) -> Self:
        """A new chat from a saved transcript: a ``.json``/``.md`` path or JSON text.

        Example::

            chat = ChatWidget.load("chat-20261126-101500.json")
        """
        text, markdown = str(source), False
        if isinstance(source, Path) or not text.lstrip().startswith(("{", "[")):
            path = Path(source)
            text, markdown = path.read_text(encoding="utf-8"), path.suffix.lower() == ".md"
        transcript = from_markdown(text) if markdown else from_json(text)
        model = transcript.model if generator is None else None
        chat = cls(generator, model=model)  # type: ignore[call-arg]
        chat._load(transcript, settings=not markdown)
        return chat


# -- HTML of the widget's history -----------------------------------------------------------------

THUMBNAIL_SIDE = 96  # shown this large; the JPEG is the upload widget's (a few KB)
_MUTED = "color:var(--jp-ui-font-color2,#616161)"
_WHO = f'<div style="font-size:.8em;font-weight:600;{_MUTED}">{{}}</div>'
_USER_BOX = (
    "margin:.4em 0 .4em 12%;padding:.3em .8em;border-radius:8px;"
    "background:var(--jp-layout-color2,#eef1f5)"
)
_ASSISTANT_BOX = "margin:.4em 12% .4em 0;padding:.3em .1em"


def message_html(message: ChatMessage) -> str:
    """One history entry: Markdown rendered as ``StreamingDisplay`` renders it (escaped)."""
    if message.role == ChatRole.USER:
        images = "".join(_thumbnail_html(image) for image in message.images)
        gallery = f'<div style="display:flex;flex-wrap:wrap;gap:6px">{images}</div>'
        body = render_markdown(message.text or "") + (gallery if images else "")
        return f'<div class="snb-chat-user" style="{_USER_BOX}">{_WHO.format("You")}{body}</div>'
    sections = []
    if message.reasoning is not None and message.reasoning.reasoning_text:
        sections.append(Section("reasoning", parts=[message.reasoning.reasoning_text]))
    for call in message.tool_calls:
        arguments = json.dumps(call.arguments, ensure_ascii=False)
        sections.append(Section("tool_call", call.tool_name, parts=[arguments]))
    if message.text:
        sections.append(Section("text", parts=[message.text]))
    for section in sections:
        section.closed = True
    error = message.meta.get("error")
    body = HtmlDiff().static_html(
        sections, footer_html(*_footer(message.meta)), error_html(error) if error else ""
    )
    who = _WHO.format("Assistant")
    return f'<div class="snb-chat-assistant" style="{_ASSISTANT_BOX}">{who}{body}</div>'


def _footer(meta: Mapping[str, Any]) -> tuple[list[str], list[str], str | None]:
    """(facts, timings, finish) for ``footer_html``, from a reply's ``meta``."""
    facts = [str(meta["model"])] if meta.get("model") else []
    usage = meta.get("usage") or {}
    if usage.get("completion_tokens") is not None:
        facts.append(
            f"{usage.get('prompt_tokens') or 0:,} tokens in · {usage['completion_tokens']:,} out"
        )
    timing = []
    if (first := meta.get("time_to_first_token")) is not None:
        timing.append(f"first token {first:.2f} s")
    if (speed := meta.get("tokens_per_second")) is not None:
        timing.append(f"{speed:,.1f} tokens/s")
    finish: str | None = None
    if meta.get("stopped"):
        finish = "stopped"
    elif meta.get("interrupted") or meta.get("error"):
        finish = "broke off"
    elif meta.get("finish_reason"):
        finish = f"finish: {meta['finish_reason']}"
    return facts, timing, finish


def _thumbnail_html(image: ImageContent) -> str:
    label = html.escape(describe_resize(image.meta or {}) if image.meta else "image")
    try:
        source = _thumbnail(image)
    except Exception:  # an image the browser cannot show still has its label
        return f'<span style="font-size:.8em;{_MUTED}">[image {label}]</span>'
    side = THUMBNAIL_SIDE
    return (
        f'<img src="{source}" alt="{label}" title="{label}" '
        f'style="max-width:{side}px;max-height:{side}px;border-radius:4px">'
    )


def _thumbnail(image: ImageContent) -> str:
    """A data URL of a small JPEG of ``image`` (a few KB, whatever the image's size)."""
    from stackit_nb.widgets.upload import _thumbnail as thumbnail  # one owner of thumbnails

    with Image.open(io.BytesIO(base64.b64decode(image.base64_image))) as pixels:
        pixels.load()
        return thumbnail(pixels)
