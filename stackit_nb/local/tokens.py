"""One consistent toy tokenizer for the local server.

Real STACKIT models each use their own tokenizer; the local server needs only one that is
deterministic, cheap, and close enough in size (about four characters of English a token) that
usage numbers, rate limits and ``max_tokens`` behave plausibly. The same splitter decides how a
reply is cut and how it is streamed, so counts and chunks always agree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

# Alternatives, tried in order at each position, together match every possible character, so
# joining the pieces gives back the input exactly:
#   horizontal whitespace + letters  | horizontal whitespace + up to 3 digits (numbers split
#   like GPT tokenizers do) | horizontal whitespace + one other visible character (punctuation,
#   underscore, emoji) | a run of newlines | leftover horizontal whitespace.
_PIECE = re.compile(r"[^\S\n]*[^\W\d_]+|[^\S\n]*\d{1,3}|[^\S\n]*\S|\n+|[^\S\n]+")
_LONG_WORD = 10  # words longer than this are split, like subword tokenizers do
_CHUNK = 6

MESSAGE_OVERHEAD = 4  # role and separators around every message, as in OpenAI's chat format
REPLY_PRIMER = 3  # "<|start|>assistant<|message|>" that precedes every reply


def split_tokens(text: str) -> list[str]:
    """Split ``text`` into token-sized pieces; ``"".join(split_tokens(t)) == t`` always."""
    pieces: list[str] = []
    for piece in _PIECE.findall(text):
        word = piece.lstrip()
        if len(word) > _LONG_WORD and word.isalpha():
            lead = piece[: len(piece) - len(word)]
            chunks = [word[i : i + _CHUNK] for i in range(0, len(word), _CHUNK)]
            chunks[0] = lead + chunks[0]
            pieces.extend(chunks)
        else:
            pieces.append(piece)
    return pieces


def count_tokens(text: str) -> int:
    """Number of tokens in ``text`` (``len(split_tokens(text))``)."""
    return len(split_tokens(text))


def truncate_tokens(text: str, limit: int) -> str:
    """The first ``limit`` tokens of ``text`` (all of it when it is shorter)."""
    pieces = split_tokens(text)
    return text if len(pieces) <= limit else "".join(pieces[: max(limit, 0)])


def _content_text(content: Any) -> Iterable[str]:
    """Text of a message ``content``: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                yield str(part.get("text") or "")


def count_prompt_tokens(messages: list[dict], image_tokens: int = 0) -> int:
    """Prompt tokens of OpenAI-shaped ``messages``: text, tool calls, overheads and images."""
    total = REPLY_PRIMER + image_tokens
    for message in messages:
        total += MESSAGE_OVERHEAD
        total += sum(count_tokens(text) for text in _content_text(message.get("content")))
        if message.get("name"):
            total += count_tokens(str(message["name"]))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            total += count_tokens(str(function.get("name") or ""))
            total += count_tokens(str(function.get("arguments") or ""))
    return total


IMAGE_PATCH = 28  # pixels per side of one image token (Qwen-VL's 14 px patches, merged 2x2)
MAX_IMAGE_TOKENS = 16384  # larger images are scaled down to this budget first


def image_tokens(width: int, height: int) -> int:
    """Tokens an image costs, counted like Qwen-VL: one token per 28x28 pixel patch.

    Unlike OpenAI's tiling (which scales every photo to about 768 px first), the cost grows with
    the pixels sent, as on STACKIT's Qwen-VL models: scaling a photo down before sending it pays.
    """
    w, h = max(int(width), 1), max(int(height), 1)
    tokens = math.ceil(w / IMAGE_PATCH) * math.ceil(h / IMAGE_PATCH)
    if tokens > MAX_IMAGE_TOKENS:
        scale = math.sqrt(MAX_IMAGE_TOKENS / tokens)
        tokens = math.floor(w * scale / IMAGE_PATCH) * math.floor(h * scale / IMAGE_PATCH)
    return max(tokens, 1)
