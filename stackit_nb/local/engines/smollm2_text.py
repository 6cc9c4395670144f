"""Text in and out of the smollm2 engine: chat-template messages, notes, JSON grammars, stops.

Kept apart from the engine so it can be read (and tested) without llama.cpp: only
:func:`json_grammar` imports it, when a request asks for JSON.
"""

from __future__ import annotations

import json
from typing import Any

from stackit_nb.local.engines.interface import ChatRequest

_IMAGE_NOTE = (
    "You cannot see images. Each attached image is replaced by [image: ...], the measurements "
    "of it (size, format, colours, brightness); answer from those measurements only."
)
_JSON_NOTE = "Reply with one JSON object and nothing else."


def template_messages(request: ChatRequest) -> list[dict[str, str]]:
    """The request's messages as plain role/text pairs the chat template understands.

    Images become ``[image: <measurements>]``, tool calls and results become text, and
    ``developer`` is ``system``; notes on images and JSON mode go into a system message.
    """
    images = iter(request.images)
    out: list[dict[str, str]] = []
    for message in request.messages:
        role, content = message.get("role", "user"), message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if part.get("type") == "image_url":
                    facts = next(images, None)
                    parts.append(f"[image: {facts.describe() if facts else 'unreadable'}]")
                else:
                    parts.append(str(part.get("text") or ""))
            text = "\n".join(parts)
        else:
            text = str(content or "")
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            text += f"\n(called {function.get('name')} with {function.get('arguments')})"
        if role == "tool":
            role, text = "user", f"Tool result: {text}"
        out.append({"role": "system" if role == "developer" else role, "content": text.strip()})
    notes = []
    if request.images:
        notes.append(_IMAGE_NOTE)
    if grammar_kind(request.response_format):
        notes.append(_JSON_NOTE)
    if notes and out and out[0]["role"] == "system":
        out[0]["content"] = (out[0]["content"] + "\n\n" + " ".join(notes)).strip()
    elif notes:
        out.insert(
            0, {"role": "system", "content": " ".join(["You are a helpful assistant.", *notes])}
        )
    return out


def measurement_prefix(request: ChatRequest) -> str:
    """``(From the image measurements: ...)`` for the images the last user message is about."""
    facts = request.images_asked_about()
    if not facts:
        return ""
    if len(facts) == 1:
        said = facts[0].describe()
    else:
        said = "; ".join(f"image {i}: {f.describe()}" for i, f in enumerate(facts, 1))
    return f"(From the image measurements: {said}.) "


def grammar_kind(response_format: dict | None) -> str | None:
    """``json_object`` or ``json_schema`` when the reply must be JSON, else None."""
    kind = (response_format or {}).get("type")
    return kind if kind in ("json_object", "json_schema") else None


def json_grammar(response_format: dict | None) -> Any:
    """A llama.cpp grammar for JSON mode (None: free text)."""
    kind = grammar_kind(response_format)
    if kind is None:
        return None
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    if kind == "json_schema":
        schema = (response_format or {}).get("json_schema", {}).get("schema")
        try:
            return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        except Exception:  # a schema feature the converter lacks: any JSON object still parses
            pass
    return LlamaGrammar.from_string(JSON_GBNF, verbose=False)


class StopText:
    """Generated text with ``stop`` strings applied: what is safe to send, and what is held.

    A tail that could be the start of a stop string is held back until the next token settles
    it, so a stop string never reaches the client (as on a real server).
    """

    def __init__(self, stops: list[str]) -> None:
        self._stops = [s for s in stops if s]
        self._text = ""
        self._sent = 0
        self.stopped = False

    def add(self, new: str) -> tuple[bool, str]:
        """Append ``new``; returns (a stop string was found, text now safe to send)."""
        self._text += new
        if self._stops:
            start = max(self._sent - max(map(len, self._stops)), 0)
            cuts = [i for s in self._stops if (i := self._text.find(s, start)) >= 0]
            if cuts:
                self._text = self._text[: min(cuts)]
                self.stopped = True
                return True, self.flush()
        held = max((_overlap(self._text, s) for s in self._stops), default=0)
        safe = len(self._text) - held
        ready = self._text[self._sent : safe] if safe > self._sent else ""
        self._sent = max(self._sent, safe)
        return False, ready

    def flush(self) -> str:
        """Everything not sent yet (the held tail too: no stop string followed it)."""
        rest = self._text[self._sent :]
        self._sent = len(self._text)
        return rest

    @property
    def value(self) -> str:
        return self._text


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of ``text`` that is a proper start of ``stop``."""
    for size in range(min(len(stop) - 1, len(text)), 0, -1):
        if stop.startswith(text[-size:]):
            return size
    return 0
