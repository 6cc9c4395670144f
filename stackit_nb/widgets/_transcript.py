"""A chat's history in other shapes: JSON and Markdown transcripts (HTML: ``_history_html``).

The JSON transcript is Haystack's ``ChatMessage.to_dict()`` list plus the chat's settings::

    {"format": "stackit_nb.chat", "version": 1, "model": ..., "system_prompt": ...,
     "temperature": ..., "max_tokens": ..., "usage": {...}, "messages": [...]}

Comparisons (``ChatWidget.compare``) are kept as ``"comparisons"`` (see
``_transcript_comparisons``).

Images are kept as the data that was sent (already scaled down by ``to_image_content``), so an
import gives back equal messages. The Markdown transcript is for people: images appear as a
one-line placeholder, and a line ``<!-- message: assistant stopped; 1234 characters -->`` marks
where each message starts, what marks it carries and how long its text is. The length is what
lets an import give back the text exactly, whatever it holds: trailing blank lines or spaces (a
reply stopped right after a paragraph break), a code block left open (the export closes it after
the text, for readers, and the import leaves that fence out), or lines that look like the
transcript's own. A file edited by hand (lengths no longer fit) or written before the lengths
existed is read by its layout instead, with surrounding whitespace trimmed. Neither format holds
a key: messages never contain one, and the settings are plain values (model id, numbers), not
the generator's configuration. The Markdown transcript shows each comparison after its exchange,
under a line ``<!-- compared: 2 models; 1234 characters -->``; an import skips it (by its length),
as it leaves images out.

Files: ``save()`` without a path, and the widget's Export button, write to the working directory
(the kernel's, in a notebook) under a name of the form ``stackit-chat-YYYYMMDD-HHMMSS.json``
(and ``.md``), see :data:`EXPORT_PATTERN`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from haystack.dataclasses import ChatMessage, ChatRole, ImageContent

from stackit_nb._comparison_results import ModelResult
from stackit_nb.widgets import _transcript_comparisons as compared
from stackit_nb.widgets._markdown import (
    closing_fence,
)

FORMAT = "stackit_nb.chat"
VERSION = 1
#: The names exports get when no path is given (for a .gitignore): ``EXPORT_PATTERN.md`` too.
EXPORT_PATTERN = "stackit-chat-*.json"
_EXPORT_PREFIX = EXPORT_PATTERN.removesuffix("*.json")
_MARK = re.compile(
    r"^<!-- message: (system|user|assistant)(?: ([a-z, ]+))?(?:; (\d+) characters)? -->$",
    re.MULTILINE,
)
_HEADINGS = {"system": "**System**", "user": "**You**", "assistant": "**Assistant**"}
_PLACEHOLDER = re.compile(r"^> \[image \d+: [^\]\n]*\]$", re.MULTILINE)
_FENCE_LINE = re.compile(r"(`{3,}|~{3,})")
_ERROR = compared.ERROR
_MARKS = ("stopped", "interrupted")


@dataclass
class Transcript:
    """What a transcript holds: the messages (system prompt apart) and the settings."""

    messages: list[ChatMessage]
    model: str | None = None
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    usage: dict[str, int] = field(default_factory=dict)
    comparisons: list[tuple[int, list[ModelResult]]] = field(default_factory=list)
    """Per comparison: the index in ``messages`` of the user message it answered, the results."""


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
    if transcript.comparisons:
        data["comparisons"] = compared.to_json(transcript.comparisons)
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
    messages = []
    for number, item in enumerate(data["messages"], start=1):
        try:
            messages.append(ChatMessage.from_dict(item))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ValueError(
                f"Message {number} of the transcript is not a ChatMessage.to_dict() object "
                f"({type(exc).__name__}: {exc}). Fix or remove it, then import again."
            ) from exc
    system = data.get("system_prompt")
    # a leading system message (e.g. from a bare list) becomes the system prompt setting
    shift = 0
    if messages and messages[0].role == ChatRole.SYSTEM:
        system = system or messages[0].text
        messages, shift = messages[1:], 1
    comparisons = compared.from_json(data.get("comparisons"), messages, shift)
    return Transcript(
        messages=messages,
        model=_setting(data, "model", str),
        system_prompt=_setting({"system_prompt": system}, "system_prompt", str),
        temperature=_setting(data, "temperature", int | float),
        max_tokens=_setting(data, "max_tokens", int),
        usage=_usage(data.get("usage")),
        comparisons=comparisons,
    )


def _setting(data: Mapping[str, Any], name: str, kind: Any) -> Any:
    """A transcript's setting, checked before anything is replaced: a wrong type is an error."""
    value = data.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
        raise ValueError(
            f"The transcript's {name!r} is {value!r}, not a "
            f"{'text' if kind is str else 'number'}: fix it or set it to null, then import again."
        )
    return value


def _usage(usage: Any) -> dict[str, int]:
    """Token counts; entries that are not whole numbers are left out (they only inform)."""
    if not isinstance(usage, Mapping):
        return {}
    return {
        str(k): int(v) for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)
    }


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
        parts += _section("system", transcript.system_prompt, [], _HEADINGS["system"])
    blocks = compared.markdown_blocks(transcript.messages, transcript.comparisons)
    for position, message in enumerate(transcript.messages):
        parts += blocks.get(position, [])
        role = message.role.value
        if role not in _HEADINGS:
            continue  # tool messages: not part of a plain chat
        marks = _marks(message)
        model = message.meta.get("model")
        detail = ", ".join([*([model] if model else []), *marks])
        heading = _HEADINGS[role] + (f" ({detail})" if detail and role == "assistant" else "")
        parts += _section(role, message.text or "", marks, heading)
        for number, image in enumerate(message.images, start=1):
            parts.append(f"> [image {number}: {_image_label(image)}; in the JSON export]")
        if error := message.meta.get("error"):
            parts.append(_ERROR + str(error).replace("\n", "\n> "))
    parts += blocks.get(len(transcript.messages), [])
    return "\n\n".join(p for p in parts if p) + "\n"


def _section(role: str, text: str, marks: list[str], heading: str) -> list[str]:
    """The start of one message's section: its mark line, heading and text (verbatim)."""
    listed = " " + ", ".join(marks) if marks else ""
    parts = [f"<!-- message: {role}{listed}; {len(text)} characters -->", heading, text]
    if fence := closing_fence(text):
        parts.append(fence)  # for readers: what follows is not code (the import skips it)
    return parts


def from_markdown(text: str) -> Transcript:
    """Read a Markdown transcript back (text only: images were placeholders)."""
    mark = _MARK.search(text)
    if mark is None:
        raise ValueError(
            "No '<!-- message: ... -->' lines found: this is not a Markdown transcript written "
            "by ChatWidget.export_markdown()."
        )
    system, messages = None, []
    while mark is not None:
        role, marks = mark[1], [m.strip() for m in (mark[2] or "").split(",") if m.strip()]
        exact = _exact_section(text, mark)
        if exact is None:  # edited by hand, or written without lengths
            end = _next_section(text, mark.end())
            heading, body, error = _section_by_layout(text[mark.end() : end], role)
        else:
            heading, body, error, end = exact
        mark = _MARK.search(text, _past_comparisons(text, end))
        meta: dict[str, Any] = {}
        if role == "assistant" and (model := _model_in(heading)):
            meta["model"] = model
        if error is not None:
            meta["error"] = error
        meta.update({m: True for m in marks})
        if role == "system":
            system = body
        elif role == "user":
            messages.append(ChatMessage.from_user(body, meta=meta or None))
        else:
            messages.append(ChatMessage.from_assistant(body, meta=meta or None))
    return Transcript(messages=messages, system_prompt=system)


def _exact_section(text: str, mark: re.Match[str]) -> tuple[str, str, str | None, int] | None:
    """(heading, text, error, end) of the section ``mark`` starts, read by the text length in
    the mark; ``None`` when the section is not laid out as the export wrote it."""
    if mark[3] is None:
        return None
    length, start = int(mark[3]), mark.end()
    heading_end = text.find("\n", start + 2)
    heading_end = len(text) if heading_end == -1 else heading_end
    heading = text[start + 2 : heading_end]
    if not text.startswith("\n\n", start) or not heading.startswith(_HEADINGS[mark[1]]):
        return None
    body_start = heading_end + 2 if length else heading_end
    if length and not text.startswith("\n\n", heading_end):
        return None
    body = text[body_start : body_start + length]
    after = body_start + len(body)
    end = _next_section(text, after)
    rest = text[after:end]
    if len(body) != length or (rest and not rest.startswith("\n")):
        return None
    # after the text come only image placeholders, the error and the fence that closes the
    # text's code block, each a paragraph of its own
    error = None
    for part in filter(None, rest.strip("\n").split("\n\n")):
        if part.startswith(_ERROR) and all(line.startswith(">") for line in part.split("\n")):
            lines = [line[2:] if line.startswith("> ") else line[1:] for line in part.split("\n")]
            error = "\n".join(lines).removeprefix(_ERROR[2:])
        elif not (_PLACEHOLDER.fullmatch(part) or _FENCE_LINE.fullmatch(part)):
            return None
    return heading, body, error, end


def _next_section(text: str, start: int) -> int:
    """Where the next message or comparison begins (its mark line), or the end of ``text``."""
    marks = (_MARK.search(text, start), compared.COMPARED.search(text, start))
    return min((m.start() for m in marks if m), default=len(text))


def _past_comparisons(text: str, position: int) -> int:
    """``position``, moved past the comparisons that begin there: each by its length (so a
    reply in it that looks like a message mark is not read as one), or, edited by hand, up to
    the next mark."""
    while mark := compared.COMPARED.match(text, position):
        end = compared.block_end(text, mark)
        position = _next_section(text, mark.end() if end is None else end)
    return position


def _section_by_layout(section: str, role: str) -> tuple[str, str, str | None]:
    """(heading, text, error) of a section without a usable length: by its lines, trimmed."""
    heading, _, body = section.strip().partition("\n")
    if not heading.startswith(_HEADINGS[role]):
        heading, body = "", f"{heading}\n{body}"  # no heading line: all of it is the message
    body = _PLACEHOLDER.sub("", body)
    error = None
    if found := re.search(r"^> Error: (.*)$", body, re.MULTILINE):
        error = found[1]
        body = body[: found.start()] + body[found.end() :]
    return heading, body.strip(), error


def _model_in(heading: str) -> str | None:
    """The model named in an assistant heading, ``**Assistant** (<model>, stopped)``."""
    found = re.fullmatch(r"\*\*Assistant\*\* \((.+)\)", heading.strip())
    first = found[1].split(", ")[0] if found else None
    return first if first and first not in _MARKS else None


def _marks(message: ChatMessage) -> list[str]:
    return [mark for mark in _MARKS if message.meta.get(mark)]


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

    def save(self, path: str | Path | None = None) -> Path:
        """Write the transcript to ``path``: JSON for ``.json``, Markdown for ``.md``.

        :param path: Where to write; relative paths are relative to the working directory
            (the kernel's, in a notebook). Default: a new ``stackit-chat-YYYYMMDD-HHMMSS.json``
            in the working directory.
        :returns: The path written.
        """
        path = new_export_stem().with_suffix(".json") if path is None else Path(path)
        writers = {".json": self.export_json, ".md": self.export_markdown}
        if path.suffix.lower() not in writers:
            raise ValueError(f"Save as .json or .md, not {path.suffix or 'no suffix'} ({path}).")
        # newline="": the text exactly as exported (a reply's "\r" must not become "\n")
        with path.open("w", encoding="utf-8", newline="") as file:
            file.write(writers[path.suffix.lower()]())
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

            chat = ChatWidget.load("stackit-chat-20261126-101500.json")
        """
        text, markdown = str(source), False
        if isinstance(source, Path) or not text.lstrip().startswith(("{", "[")):
            path = Path(source)
            with path.open(encoding="utf-8", newline="") as file:
                text, markdown = file.read(), path.suffix.lower() == ".md"
        transcript = from_markdown(text) if markdown else from_json(text)
        model = transcript.model if generator is None else None
        chat = cls(generator, model=model)  # type: ignore[call-arg]
        chat._load(transcript, settings=not markdown)
        return chat


def new_export_stem(folder: str | Path | None = None) -> Path:
    """``<folder>/stackit-chat-YYYYMMDD-HHMMSS`` (folder: the working directory) for new
    exports, with ``-2``, ``-3``, ... added while a ``.md`` or ``.json`` of that name exists."""
    base = Path.cwd() if folder is None else Path(folder)
    stem = base / (_EXPORT_PREFIX + time.strftime("%Y%m%d-%H%M%S"))
    candidate, number = stem, 1
    while any(candidate.with_name(candidate.name + s).exists() for s in (".md", ".json")):
        number += 1
        candidate = stem.with_name(f"{stem.name}-{number}")
    return candidate
