"""The bytes the local server sends: OpenAI/vLLM-shaped responses, SSE chunks and error bodies.

Kept apart from the HTTP routing so the shapes live in one place. Stream events are built with
string templates around ``json.dumps`` of the changing parts only: the server must push tens of
thousands of chunks per second.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

from stackit_nb.local.engines.interface import Choice, Piece, StreamItem
from stackit_nb.local.logprobs import text_entries
from stackit_nb.local.tokens import split_tokens

REASONING_FIELDS = {
    "both": ("reasoning_content", "reasoning"),
    "reasoning": ("reasoning",),
    "reasoning_content": ("reasoning_content",),
}
ERROR_SHAPES = ("openai", "vllm")

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# Characters JSON may leave raw but line splitters (Python's str.splitlines, some SSE readers)
# treat as line ends: escaped, so one event is always one line.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def dumps(value: Any) -> str:
    """Compact JSON for one SSE event line."""
    text = _encode(value)
    return text.translate(_LINE_BREAKS) if not text.isascii() else text


_dumps = dumps


def error_body(
    status: int, message: str, error_type: str, *, param: str | None = None, shape: str = "openai"
) -> dict[str, Any]:
    """An error body in OpenAI's shape, or in older vLLM's flat ``{"object": "error"}`` shape."""
    fields = {"message": message, "type": error_type, "param": param, "code": status}
    if shape == "vllm":
        return {"object": "error", **fields}
    return {"error": fields}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def content_entries(choice: Choice, top: int) -> list[dict[str, Any]]:
    """The ``logprobs.content`` entries of a choice: the engine's own, else computed."""
    if choice.logprobs is not None:
        return choice.logprobs
    return text_entries(choice.content or "", top, salt=str(choice.index))


def completion(
    completion_id: str,
    created: int,
    model: str,
    choices: list[Choice],
    prompt_tokens: int,
    reasoning_fields: tuple[str, ...],
    system_fingerprint: str,
    top_logprobs: int | None = None,
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object, with vLLM's fields (``top_logprobs``: None
    when the request did not ask for logprobs)."""
    out = []
    for choice in choices:
        # vLLM's ChatMessage, dumped whole: unused fields are explicit nulls, no tool call an
        # empty list.
        message: dict[str, Any] = {
            "role": "assistant",
            "content": choice.content,
            "refusal": None,
            "annotations": None,
            "audio": None,
            "function_call": None,
            "tool_calls": choice.tool_calls,
        }
        for name in reasoning_fields:
            message[name] = choice.reasoning
        logprobs = None
        if top_logprobs is not None:
            logprobs = {"content": content_entries(choice, top_logprobs)}
        out.append(
            {
                "index": choice.index,
                "message": message,
                "logprobs": logprobs,
                "finish_reason": choice.finish_reason,
                "stop_reason": choice.stop_reason,
            }
        )
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": system_fingerprint,
        "choices": out,
        "usage": usage(prompt_tokens, sum(c.completion_tokens for c in choices)),
    }


class ChunkWriter:
    """Builds the SSE events of one streamed completion.

    ``events()`` yields ``(event_text, is_token)``: ``is_token`` marks the events the server
    paces (one generated piece each); role, finish and usage events are sent without delay.
    With ``top_logprobs`` set (the request asked for logprobs), every content chunk carries the
    ``logprobs.content`` entries of its own text.
    """

    def __init__(
        self,
        completion_id: str,
        created: int,
        model: str,
        *,
        include_usage: bool,
        reasoning_fields: tuple[str, ...],
        system_fingerprint: str,
        top_logprobs: int | None = None,
    ) -> None:
        tail = ',"usage":null' if include_usage else ""
        self._head = (
            f'data: {{"id":{_dumps(completion_id)},"object":"chat.completion.chunk",'
            f'"created":{created},"model":{_dumps(model)},'
            f'"system_fingerprint":{_dumps(system_fingerprint)},"choices":['
        )
        self._tail = f"]{tail}}}\n\n"
        self._usage_head = self._head.replace('"choices":[', '"choices":[],"usage":')
        self._reasoning_fields = reasoning_fields
        self._include_usage = include_usage
        self._top = top_logprobs

    def _event(self, index: int, delta: str, logprobs: str = "null") -> str:
        return (
            f'{self._head}{{"index":{index},"delta":{delta},"logprobs":{logprobs},'
            f'"finish_reason":null}}{self._tail}'
        )

    def _finish(self, choice: Choice) -> str:
        """The event that ends a choice: empty delta, finish and (vLLM) stop reason."""
        return (
            f'{self._head}{{"index":{choice.index},"delta":{{}},"logprobs":null,'
            f'"finish_reason":{_dumps(choice.finish_reason)},'
            f'"stop_reason":{_dumps(choice.stop_reason)}}}{self._tail}'
        )

    def _logprobs(self, entries: list[dict[str, Any]] | None) -> str:
        return "null" if entries is None else '{"content":' + _dumps(entries) + "}"

    def _content(self, choice: Choice) -> Iterator[tuple[str, str]]:
        """The content's pieces as (text, logprobs JSON), one token each."""
        content = choice.content or ""
        if self._top is None:
            for piece in split_tokens(content):
                yield piece, "null"
            return
        entries = content_entries(choice, self._top)
        if "".join(e["token"] for e in entries) != content:  # the engine counts otherwise
            yield content, self._logprobs(entries)
            return
        for entry in entries:
            yield entry["token"], self._logprobs([entry])

    def _pieces(self, choice: Choice) -> Iterator[tuple[str, str]]:
        """Every (delta, logprobs) of one choice after its role delta, one piece each."""
        if choice.reasoning:
            for piece in split_tokens(choice.reasoning):
                value = _dumps(piece)
                names = self._reasoning_fields
                yield "{" + ",".join(f'"{name}":{value}' for name in names) + "}", "null"
        if choice.content:
            for piece, logprobs in self._content(choice):
                yield '{"content":' + _dumps(piece) + "}", logprobs
        for position, call in enumerate(choice.tool_calls):
            function = call["function"]
            opening = {
                "index": position,
                "id": call["id"],
                "type": "function",
                "function": {"name": function["name"], "arguments": ""},
            }
            yield '{"tool_calls":[' + _dumps(opening) + "]}", "null"
            for piece in split_tokens(function["arguments"]):
                part = {"index": position, "function": {"arguments": piece}}
                yield '{"tool_calls":[' + _dumps(part) + "]}", "null"

    def events(self, choices: list[Choice], prompt_tokens: int) -> Iterator[tuple[str, bool]]:
        """All events of the stream, choices interleaved as a real batched server does."""
        for choice in choices:
            yield self._event(choice.index, '{"role":"assistant","content":""}'), False
        streams = [(choice.index, self._pieces(choice)) for choice in choices]
        while streams:
            for entry in list(streams):
                index, pieces = entry
                piece = next(pieces, None)
                if piece is None:
                    streams.remove(entry)
                else:
                    yield self._event(index, *piece), True
        for choice in choices:
            yield self._finish(choice), False
        if self._include_usage:
            completion_tokens = sum(c.completion_tokens for c in choices)
            body = _dumps(usage(prompt_tokens, completion_tokens))
            yield f"{self._usage_head}{body}}}\n\n", False
        yield "data: [DONE]\n\n", False

    async def live_events(
        self, items: AsyncIterator[StreamItem], n: int, prompt_tokens: int
    ) -> AsyncIterator[tuple[str, bool]]:
        """The events of a live engine's stream, in the same shapes as :meth:`events`.

        Pieces become token events as they arrive; a ``Choice`` ends its index (streamed whole
        first when no piece of it came before); usage counts the engine's own numbers.
        """
        for index in range(n):
            yield self._event(index, '{"role":"assistant","content":""}'), False
        streamed: set[int] = set()
        positions: dict[int, int] = {}  # content tokens sent so far, per index
        completion_tokens = 0
        async for item in items:
            if isinstance(item, Piece):
                streamed.add(item.index)
                if item.reasoning:
                    value = _dumps(item.reasoning)
                    names = self._reasoning_fields
                    delta = "{" + ",".join(f'"{name}":{value}' for name in names) + "}"
                    yield self._event(item.index, delta), True
                if item.content:
                    logprobs = "null"
                    if self._top is not None:
                        entries = item.logprobs
                        if entries is None:
                            start = positions.get(item.index, 0)
                            entries = text_entries(
                                item.content, self._top, start=start, salt=str(item.index)
                            )
                        positions[item.index] = positions.get(item.index, 0) + len(entries)
                        logprobs = self._logprobs(entries)
                    delta = '{"content":' + _dumps(item.content) + "}"
                    yield self._event(item.index, delta, logprobs), True
            elif isinstance(item, Choice):
                if item.index not in streamed:
                    for piece in self._pieces(item):
                        yield self._event(item.index, *piece), True
                completion_tokens += item.completion_tokens
                yield self._finish(item), False
        if self._include_usage:
            body = _dumps(usage(prompt_tokens, completion_tokens))
            yield f"{self._usage_head}{body}}}\n\n", False
        yield "data: [DONE]\n\n", False


MALFORMED_EVENT = 'data: {"id": "chatcmpl-broken", "choices": [{"delta": \n\n'


def embedding_item(index: int, vector: list[float], encoding_format: str) -> dict[str, Any]:
    """One ``data`` entry of an embeddings response (base64 = little-endian float32, as OpenAI)."""
    value: Any = vector
    if encoding_format == "base64":
        value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return {"object": "embedding", "index": index, "embedding": value}
