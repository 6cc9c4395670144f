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
from stackit_nb.local.tokens import split_tokens

REASONING_FIELDS = {
    "both": ("reasoning_content", "reasoning"),
    "reasoning": ("reasoning",),
    "reasoning_content": ("reasoning_content",),
}
ERROR_SHAPES = ("openai", "vllm")

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


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


def completion(
    completion_id: str,
    created: int,
    model: str,
    choices: list[Choice],
    prompt_tokens: int,
    reasoning_fields: tuple[str, ...],
    system_fingerprint: str,
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object."""
    out = []
    for choice in choices:
        message: dict[str, Any] = {"role": "assistant", "content": choice.content}
        if choice.reasoning is not None:
            for name in reasoning_fields:
                message[name] = choice.reasoning
        if choice.tool_calls:
            message["tool_calls"] = choice.tool_calls
        out.append(
            {
                "index": choice.index,
                "message": message,
                "logprobs": None,
                "finish_reason": choice.finish_reason,
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

    def _event(self, index: int, delta: str, finish_reason: str | None = None) -> str:
        finish = "null" if finish_reason is None else _dumps(finish_reason)
        return (
            f'{self._head}{{"index":{index},"delta":{delta},"logprobs":null,'
            f'"finish_reason":{finish}}}{self._tail}'
        )

    def _pieces(self, choice: Choice) -> Iterator[str]:
        """Every delta of one choice after its role delta, one generated piece each."""
        if choice.reasoning:
            for piece in split_tokens(choice.reasoning):
                value = _dumps(piece)
                yield "{" + ",".join(f'"{name}":{value}' for name in self._reasoning_fields) + "}"
        if choice.content:
            for piece in split_tokens(choice.content):
                yield '{"content":' + _dumps(piece) + "}"
        for position, call in enumerate(choice.tool_calls):
            function = call["function"]
            opening = {
                "index": position,
                "id": call["id"],
                "type": "function",
                "function": {"name": function["name"], "arguments": ""},
            }
            yield '{"tool_calls":[' + _dumps(opening) + "]}"
            for piece in split_tokens(function["arguments"]):
                part = {"index": position, "function": {"arguments": piece}}
                yield '{"tool_calls":[' + _dumps(part) + "]}"

    def events(self, choices: list[Choice], prompt_tokens: int) -> Iterator[tuple[str, bool]]:
        """All events of the stream, choices interleaved as a real batched server does."""
        for choice in choices:
            yield self._event(choice.index, '{"role":"assistant","content":""}'), False
        streams = [(choice.index, self._pieces(choice)) for choice in choices]
        while streams:
            for entry in list(streams):
                index, pieces = entry
                delta = next(pieces, None)
                if delta is None:
                    streams.remove(entry)
                else:
                    yield self._event(index, delta), True
        for choice in choices:
            yield self._event(choice.index, "{}", choice.finish_reason), False
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
                    yield self._event(item.index, '{"content":' + _dumps(item.content) + "}"), True
            elif isinstance(item, Choice):
                if item.index not in streamed:
                    for delta in self._pieces(item):
                        yield self._event(item.index, delta), True
                completion_tokens += item.completion_tokens
                yield self._event(item.index, "{}", item.finish_reason), False
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
