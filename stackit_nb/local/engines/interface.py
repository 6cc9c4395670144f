"""What the local server and its answer engines exchange: requests, choices and stream items.

The server validates a request (``validate.py``) into a :class:`ChatRequest`; an engine answers
with :class:`Choice` objects (the scripted engine, all at once) or streams :class:`Prompt`,
:class:`Piece` and :class:`Choice` items while it generates (a :class:`LiveEngine`, a real
model); ``wire.py`` turns either into JSON or SSE chunks. Nothing here knows HTTP.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from stackit_nb.local.catalog import ModelInfo
from stackit_nb.local.vision import ImageFacts

_ABOUT_IMAGES = re.compile(r"\b(?:images?|pictures?|photos?|colou?rs?)\b", re.IGNORECASE)


def text_of(content: object) -> str:
    """The text of a message ``content``: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(str(p.get("text") or "") for p in parts)
    return ""


def _image_count(content: object) -> int:
    if not isinstance(content, list):
        return 0
    return sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")


@dataclass
class ChatRequest:
    """A validated chat request, as the server hands it to an engine."""

    model: ModelInfo
    messages: list[dict]  # OpenAI-shaped messages as received
    images: list[ImageFacts]  # every image in the messages, in order, already decoded
    max_tokens: int | None = None  # the server maps max_completion_tokens to this too
    stop: list[str] = field(default_factory=list)
    n: int = 1
    seed: int | None = None
    temperature: float | None = None
    response_format: dict | None = None
    tools: list[dict] | None = None
    tool_choice: str | dict | None = None
    reasoning_effort: str | None = None
    # Log probabilities of the content tokens were asked for, with this many alternatives each.
    # An engine may answer them itself (``Choice.logprobs``, ``Piece.logprobs``); the server
    # computes them for the choices and pieces that carry none.
    logprobs: bool = False
    top_logprobs: int = 0

    def last_user(self) -> tuple[int, dict]:
        """Index and body of the last user message (``-1, {}`` when there is none)."""
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].get("role") == "user":
                return i, self.messages[i]
        return -1, {}

    def images_asked_about(self) -> list[ImageFacts]:
        """The images the last user message shows, or all of them when it asks about a picture."""
        user_index, user = self.last_user()
        if not self.images or user_index < 0:
            return []
        content = user.get("content")
        own = _image_count(content)
        if own:
            later = sum(_image_count(m.get("content")) for m in self.messages[user_index + 1 :])
            end = len(self.images) - later
            return self.images[max(end - own, 0) : end]
        return list(self.images) if _ABOUT_IMAGES.search(text_of(content)) else []


@dataclass
class Choice:
    """One generated alternative."""

    index: int
    content: str | None  # None when the reply is tool calls only
    reasoning: str | None  # None for non-reasoning models
    tool_calls: list[dict]
    finish_reason: str  # "stop" | "length" | "tool_calls"
    completion_tokens: int  # reasoning + content + tool-call tokens
    # vLLM's ``stop_reason``: the stop string that ended the reply (None: end of turn, length).
    stop_reason: str | None = None
    # The content's tokens as OpenAI ``logprobs.content`` entries (None: not computed).
    logprobs: list[dict] | None = None


@dataclass
class Prompt:
    """First item of a live stream: the engine has read the prompt and is about to generate.

    ``tokens`` is the prompt length as the engine counts it; it replaces the server's estimate in
    the usage block (None keeps the estimate).
    """

    tokens: int | None


@dataclass
class Piece:
    """A piece of one choice's reply, handed over as soon as the engine generated it."""

    index: int
    content: str = ""
    reasoning: str = ""
    # ``logprobs.content`` entries for the tokens of ``content`` (None: not computed).
    logprobs: list[dict] | None = None


#: What a live engine's stream yields: one ``Prompt``, then ``Piece``s, and a ``Choice`` ending
#: each index. A ``Choice`` for an index that streamed no pieces is streamed whole by the server
#: (that is how a live engine hands over a reply it did not generate token by token).
StreamItem = Prompt | Piece | Choice


@runtime_checkable
class LiveEngine(Protocol):
    """An engine that generates while the server streams (a real model)."""

    name: str

    def stream(
        self, request: ChatRequest, *, cancelled: Callable[[], bool]
    ) -> AsyncGenerator[StreamItem, None]:
        """Generate ``request.n`` choices; stop early once ``cancelled()`` is true or the
        iterator is closed (the client went away). May raise
        :class:`~stackit_nb.local.api_error.APIError` before the ``Prompt``."""
        ...

    def embed(self, texts: list[str], dimensions: int) -> list[list[float]]: ...
