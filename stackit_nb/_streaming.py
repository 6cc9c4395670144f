"""Turn OpenAI-compatible stream chunks into Haystack ``StreamingChunk`` objects.

Haystack's own converter drops reasoning deltas (vLLM's ``reasoning``/``reasoning_content``) and
rejects a delta carrying text and a tool call at once; this one splits such a delta into one
``StreamingChunk`` per part, numbers content blocks in arrival order and times the stream.
It keeps the server's ``system_fingerprint``, which Haystack's assembly of a reply drops, and
reads from it which local engine wrote a reply (:func:`local_engine`, :func:`model_label`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, overload

from haystack.components.generators.utils import (
    _convert_streaming_chunks_to_chat_message,
    _serialize_object,
)
from haystack.dataclasses import (
    ChatMessage,
    ComponentInfo,
    FinishReason,
    ReasoningContent,
    StreamingChunk,
    ToolCallDelta,
)

from stackit_nb.fingerprint import local_engine_of

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}


def local_engine(meta: Mapping[str, Any] | None) -> str | None:
    """The local server's engine that wrote a reply (``"smollm2"``), from the
    ``system_fingerprint`` in its ``meta``; ``None`` for a reply from STACKIT (another
    fingerprint, or none)."""
    return local_engine_of((meta or {}).get("system_fingerprint"))


@overload
def model_label(model: str, meta: Mapping[str, Any] | None) -> str: ...
@overload
def model_label(model: str | None, meta: Mapping[str, Any] | None) -> str | None: ...
def model_label(model: str | None, meta: Mapping[str, Any] | None) -> str | None:
    """The model as a reply's footer names it: ``"<model> (local smollm2 engine)"`` for the
    local server, the bare id otherwise (``None`` when neither is known)."""
    engine = local_engine(meta)
    if engine is None:
        return model
    return f"{model} (local {engine} engine)" if model else f"local {engine} engine"


def reasoning_of(message_or_delta: Any) -> str | None:
    """The reasoning text of a message or delta: newer vLLM sends ``reasoning``, older
    ``reasoning_content``; some versions send both with the same text, so take one."""
    if message_or_delta is None:
        return None
    # The openai SDK keeps unknown fields in `model_extra`; asking the object for a missing one
    # goes through pydantic's exception path (~20 us), too slow to do twice per streamed chunk.
    extra = getattr(message_or_delta, "model_extra", None)
    for field in ("reasoning", "reasoning_content"):
        value = extra.get(field) if extra is not None else getattr(message_or_delta, field, None)
        if isinstance(value, str) and value:
            return value
    return None


class StreamCollector:
    """Collects one streamed reply: converts each chunk and builds the final ``ChatMessage``.

    :param component: The component streaming (named in each chunk's ``component_info``).
    :param started: ``time.perf_counter()`` just before the request was sent.
    """

    def __init__(self, component: Any, started: float) -> None:
        self.component_info = ComponentInfo.from_component(component)
        self.started = started
        self.chunks: list[StreamingChunk] = []
        self.finished = False  # a finish_reason arrived: the reply is complete
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self._blocks: dict[tuple[str, int], int] = {}

    def _block(self, kind: str, number: int = 0) -> tuple[int, bool]:
        """Index of a content block (reasoning, text, each tool call) and whether it is new."""
        key = (kind, number)
        if key in self._blocks:
            return self._blocks[key], False
        self._blocks[key] = len(self._blocks)
        return self._blocks[key], True

    def add(self, raw: Any) -> list[StreamingChunk]:
        """Convert one ``ChatCompletionChunk``; returns the chunks to hand to the callback."""
        meta: dict[str, Any] = {
            "model": raw.model,
            "received_at": datetime.now().isoformat(),
            "usage": _serialize_object(raw.usage) if raw.usage is not None else None,
        }
        if fingerprint := getattr(raw, "system_fingerprint", None):
            meta["system_fingerprint"] = fingerprint
        if not raw.choices:  # the usage chunk that `stream_options.include_usage` adds
            return self._keep([{"content": "", "meta": meta}], None)
        choice = raw.choices[0]
        delta = choice.delta
        tool_calls = delta.tool_calls if delta is not None else None
        meta.update(
            index=choice.index,
            tool_calls=_serialize_object(tool_calls) if tool_calls else None,
            finish_reason=choice.finish_reason,
        )
        if choice.logprobs:
            meta["logprobs"] = _serialize_object(choice.logprobs)
        parts: list[dict[str, Any]] = []
        if reasoning := reasoning_of(delta):
            index, new = self._block("reasoning")
            parts.append({"reasoning": ReasoningContent(reasoning_text=reasoning), "index": index})
            parts[-1]["start"] = new
        for call in tool_calls or []:
            index, new = self._block("tool", call.index)
            function = call.function
            tool_delta = ToolCallDelta(
                index=call.index,
                id=call.id,
                tool_name=function.name if function else None,
                arguments=function.arguments if function and function.arguments else None,
            )
            parts.append({"tool_calls": [tool_delta], "index": index, "start": new})
        if delta is not None and delta.content:
            index, new = self._block("text")
            parts.append({"content": delta.content, "index": index, "start": new})
        if parts:
            now = time.perf_counter()
            self.first_token_at = self.first_token_at or now
            self.last_token_at = now
        else:  # the role-only first chunk or a finish-only last one
            parts.append({"content": ""})
        finish = _FINISH_REASONS.get(choice.finish_reason) if choice.finish_reason else None
        self.finished = self.finished or finish is not None
        if len(parts) > 1:  # each chunk gets its own meta, so a callback may change one safely
            return self._keep([{"meta": dict(meta), **p} for p in parts], finish)
        return self._keep([{"meta": meta, **parts[0]}], finish)

    def _keep(
        self, parts: list[dict[str, Any]], finish: FinishReason | None
    ) -> list[StreamingChunk]:
        out = []
        for position, part in enumerate(parts):
            last = position == len(parts) - 1
            chunk = StreamingChunk(
                content=part.get("content", ""),
                meta=part.get("meta", {}),
                component_info=self.component_info,
                index=part.get("index"),
                tool_calls=part.get("tool_calls"),
                start=part.get("start", False),
                finish_reason=finish if last else None,
                reasoning=part.get("reasoning"),
            )
            out.append(chunk)
        self.chunks.extend(out)
        return out

    def message(self) -> ChatMessage:
        """The whole reply, with usage and timing in ``meta``."""
        message = _convert_streaming_chunks_to_chat_message(chunks=self.chunks)
        end = self.last_token_at or time.perf_counter()
        usage = message.meta.get("usage") or {}
        generated = usage.get("completion_tokens")
        first = self.first_token_at
        span = end - first if first is not None else 0.0
        meta = {
            **message.meta,
            **_fingerprint(self.chunks),
            "time_to_first_token": first - self.started if first is not None else None,
            # generation speed after the first token; needs the usage that include_usage brings
            "tokens_per_second": generated / span if generated and span > 0 else None,
            "total_time": time.perf_counter() - self.started,
        }
        return ChatMessage.from_assistant(
            text=message.text,
            tool_calls=message.tool_calls,
            reasoning=message.reasoning,
            meta=meta,
        )


def _fingerprint(chunks: list[StreamingChunk]) -> dict[str, str]:
    """``{"system_fingerprint": ...}`` of the last chunk that carried one (Haystack's own
    assembly of a streamed reply drops it), or nothing."""
    for chunk in reversed(chunks):
        if fingerprint := chunk.meta.get("system_fingerprint"):
            return {"system_fingerprint": fingerprint}
    return {}
