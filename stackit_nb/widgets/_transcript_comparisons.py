"""Comparisons in chat transcripts (``ChatWidget.compare``): their JSON records, their Markdown
blocks, and where a block ends, so that a Markdown import can skip it.

JSON: ``"comparisons": [{"message": <index of the user message in "messages">, "results":
[ModelResult.to_dict(), ...]}]``. Markdown: after the exchange a comparison answered, a line
``<!-- compared: 2 models; 1234 characters -->`` and then, that many characters long, each
model's reply (or error, or why it was skipped). The length lets an import step over the block
whatever the replies hold, including lines that look like the transcript's own marks.
"""

from __future__ import annotations

import re
from typing import Any

from haystack.dataclasses import ChatMessage, ChatRole

from stackit_nb._comparison_results import ModelResult
from stackit_nb.widgets._markdown import closing_fence

#: The line before a paragraph holding an error (of a reply, or of a compared model).
ERROR = "> Error: "
#: The mark line of a comparison block.
COMPARED = re.compile(r"^<!-- compared: \d+ models?; (\d+) characters -->$", re.MULTILINE)
_HEADING = "**Compared with other models**"

Comparisons = list[tuple[int, list[ModelResult]]]


def to_json(comparisons: Comparisons) -> list[dict[str, Any]]:
    """The JSON records of ``comparisons``."""
    return [
        {"message": index, "results": [r.to_dict() for r in results]}
        for index, results in comparisons
    ]


def from_json(saved: Any, messages: list[ChatMessage], shift: int) -> Comparisons:
    """A transcript's comparisons, checked (each must answer a user message) before anything is
    replaced. ``shift``: how many leading messages the reader took out of ``messages`` (a
    system message that became the system prompt)."""
    if saved is None:
        return []
    found = []
    for number, item in enumerate(saved if isinstance(saved, list) else [None], start=1):
        try:
            if not isinstance(item, dict) or not isinstance(item.get("results"), list):
                raise ValueError("it is not an object with a 'results' list")
            index = item.get("message")
            index = index - shift if isinstance(index, int) and not isinstance(index, bool) else -1
            if not 0 <= index < len(messages) or messages[index].role != ChatRole.USER:
                saved_index = item.get("message")
                raise ValueError(f"'message' is {saved_index!r}, not a user message's index")
            found.append((index, [ModelResult.from_dict(r) for r in item["results"]]))
        except ValueError as exc:
            raise ValueError(
                f"Comparison {number} of the transcript cannot be read: {exc}. Fix or remove "
                "it, then import again."
            ) from exc
    return found


def markdown_blocks(messages: list[ChatMessage], comparisons: Comparisons) -> dict[int, list[str]]:
    """The Markdown of each comparison (mark line, block), by the position of the message it
    goes before: the next user message after the one it answered, or the end (``len``), so
    that it follows that exchange's reply."""
    blocks: dict[int, list[str]] = {}
    for index, results in comparisons:
        after = (i for i in range(index + 1, len(messages)) if messages[i].role == ChatRole.USER)
        body = _block(results)
        models = f"{len(results)} model{'s' if len(results) != 1 else ''}"
        blocks.setdefault(next(after, len(messages)), []).extend(
            [f"<!-- compared: {models}; {len(body)} characters -->", body]
        )
    return blocks


def _block(results: list[ModelResult]) -> str:
    """One comparison for people: each model's reply (or error, or why it was skipped)."""
    parts = [_HEADING]
    for result in results:
        facts = [f"finish: {result.finish_reason}"] if result.finish_reason else []
        if result.prompt_tokens is not None and result.completion_tokens is not None:
            facts.append(f"{result.prompt_tokens:,} tokens in · {result.completion_tokens:,} out")
        detail = f" ({', '.join(facts)})" if facts else ""
        model = result.model.replace("`", "'")  # a code span: the id shows as it is
        parts.append(f"`{model}`{detail}")
        if result.skipped is not None:
            parts.append(f"> Skipped: {result.skipped}")
            continue
        text = (result.reply.text or "") if result.reply is not None else ""
        if text:
            parts.append(text)
            if fence := closing_fence(text):
                parts.append(fence)  # for readers: what follows is not code
        if result.error is not None:
            parts.append(ERROR + result.error_text.replace("\n", "\n> "))
    return "\n\n".join(parts)


def block_end(text: str, mark: re.Match[str]) -> int | None:
    """Where the block under the comparison mark ``mark`` ends, read by the length in the mark;
    ``None`` when it is not laid out as the export wrote it (edited by hand)."""
    length, start = int(mark[1]), mark.end() + 2
    end = start + length
    if not text.startswith("\n\n", mark.end()) or len(text) < end:
        return None
    if not text.startswith(_HEADING, start) or (end < len(text) and text[end] != "\n"):
        return None
    return end
