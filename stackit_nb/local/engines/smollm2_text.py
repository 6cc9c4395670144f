"""Text in and out of the smollm2 engine: chat-template messages, notes, prefixes, stops.

Kept apart from the engine so it can be read (and tested) without llama.cpp.
"""

from __future__ import annotations

from stackit_nb.local.engines.interface import ChatRequest
from stackit_nb.local.engines.structured_output import grammar_kind

_IMAGE_NOTE = (
    "You cannot see images. Each attached image is replaced by [image: ...], the measurements "
    "of it (size, format, colours, brightness); answer from those measurements only."
)
_JSON_NOTE = "Reply with one JSON object and nothing else."
_PLAN_NOTE = (
    "You plan answers. Given the user's last message, write brief notes on how to answer it: "
    "what is asked and which points the answer should make. Do not write the answer itself."
)
#: How the planning pass of a reasoning model's reply starts (the model continues it).
REASONING_OPENING = "The user asks"


def template_messages(
    request: ChatRequest, *, images_as_text: bool = True, plan: bool = False, notes: str = ""
) -> list[dict[str, str]]:
    """The request's messages as plain role/text pairs the chat template understands.

    Images become ``[image: <measurements>]`` (nothing with ``images_as_text=False``, to count
    what the measurements cost), tool calls and results become text, and ``developer`` is
    ``system``. Instructions go into a system message: on images, on JSON mode, or to plan the
    answer instead of giving it (``plan``); the ``notes`` made while planning follow the last
    user message.
    """
    images = iter(request.images)
    out: list[dict[str, str]] = []
    for message in request.messages:
        role, content = message.get("role", "user"), message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if part.get("type") != "image_url":
                    parts.append(str(part.get("text") or ""))
                elif images_as_text:
                    facts = next(images, None)
                    parts.append(f"[image: {facts.describe() if facts else 'unreadable'}]")
            text = "\n".join(parts)
        else:
            text = str(content or "")
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            text += f"\n(called {function.get('name')} with {function.get('arguments')})"
        if role == "tool":
            role, text = "user", f"Tool result: {text}"
        out.append({"role": "system" if role == "developer" else role, "content": text.strip()})
    said = []
    if request.images:
        said.append(_IMAGE_NOTE)
    if plan:
        said.append(_PLAN_NOTE)
    elif grammar_kind(request.response_format):
        said.append(_JSON_NOTE)
    if notes and not plan:
        # After the question, not in the system message: a model this small copies a system
        # message's notes into its answer, but reads notes beside the question as hints.
        last = max((i for i, m in enumerate(out) if m["role"] == "user"), default=None)
        note = f"(Notes for your answer: {notes.strip()})"
        if last is None:
            said.append(note)
        else:
            out[last]["content"] = f"{out[last]['content']}\n\n{note}".strip()
    if said and out and out[0]["role"] == "system":
        out[0]["content"] = (out[0]["content"] + "\n\n" + " ".join(said)).strip()
    elif said:
        out.insert(
            0, {"role": "system", "content": " ".join(["You are a helpful assistant.", *said])}
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
        self.stopped_by: str | None = None  # the stop string found (vLLM's stop_reason)

    def add(self, new: str) -> tuple[bool, str]:
        """Append ``new``; returns (a stop string was found, text now safe to send)."""
        self._text += new
        if self._stops:
            start = max(self._sent - max(map(len, self._stops)), 0)
            cuts = [(i, s) for s in self._stops if (i := self._text.find(s, start)) >= 0]
            if cuts:
                cut, self.stopped_by = min(cuts)
                self._text = self._text[:cut]
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
