"""The replay engine: answers a request with the response recorded for it in a cassette.

Unlike the scripted and smollm2 engines it answers whole HTTP exchanges (status, headers, the
exact body or the stream's events), so errors and 429s replay as they were recorded and a
replayed body is byte for byte the recorded one. Requests match when they are the same after
normalising: same method, path, model, messages, tools and generation parameters; images
compared by hash; tool-call ids, ``user`` and ``metadata`` ignored. A request recorded more than
once (a 429, then its retry) gets its responses in the recorded order, and from the first
again once they are used up, so running a notebook twice replays it twice.

Example::

    from stackit_nb.local.engines.replay import ReplayEngine

    engine = ReplayEngine("cassettes/lesson.jsonl")
    exchange = engine.answer("POST", "/v1/chat/completions", body)  # None: not recorded
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from stackit_nb.local import cassette
from stackit_nb.local.cassette import Exchange

#: Request fields that never change a reply: who asked, and labels for the caller's own use.
IGNORED_FIELDS = frozenset({"user", "metadata"})
_SHOWN = 60  # characters of a value quoted in the no-match message


def normalised(body: Any) -> Any:
    """The parts of a stored request body that decide its reply (see the module docstring)."""
    if not isinstance(body, dict):
        return body
    out = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    messages = out.get("messages")
    if isinstance(messages, list):
        ids: dict[str, str] = {}

        def renamed(value: Any) -> Any:
            return (
                ids.setdefault(value, f"call_{len(ids) + 1}") if isinstance(value, str) else value
            )

        fixed = []
        for message in messages:
            if isinstance(message, dict):
                message = dict(message)
                if "tool_call_id" in message:
                    message["tool_call_id"] = renamed(message["tool_call_id"])
                if isinstance(message.get("tool_calls"), list):
                    message["tool_calls"] = [
                        {**call, "id": renamed(call.get("id"))} if isinstance(call, dict) else call
                        for call in message["tool_calls"]
                    ]
            fixed.append(message)
        out["messages"] = fixed
    return out


def request_key(method: str, path: str, body: Any) -> str:
    """What two requests must share to get the same recorded reply."""
    canonical = json.dumps(normalised(body), sort_keys=True, separators=(",", ":"))
    return f"{method.upper()} {path} {canonical}"


class ReplayEngine:
    """The responses of one cassette, looked up by request."""

    name = "replay"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.exchanges = cassette.read(self.path)
        self._recorded: dict[str, list[Exchange]] = {}
        for exchange in self.exchanges:
            key = request_key(exchange.method, exchange.path, exchange.body)
            self._recorded.setdefault(key, []).append(exchange)
        self._used: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.exchanges)

    def answer(self, method: str, path: str, raw_body: bytes) -> Exchange | None:
        """The recorded exchange for this request, or None when there is none."""
        key = request_key(method, path, _incoming(raw_body))
        found = self._recorded.get(key)
        if not found:
            return None
        with self._lock:
            used = self._used.get(key, 0)
            self._used[key] = used + 1
        return found[used % len(found)]

    def no_match(self, method: str, path: str, raw_body: bytes) -> str:
        """Why a request got no recorded reply: the cassette, and the closest recorded request."""
        body = normalised(_incoming(raw_body))
        asked = f"{method.upper()} {path}{_about(body)}"
        same_route = [e for e in self.exchanges if (e.method, e.path) == (method.upper(), path)]
        text = f"No response recorded in the cassette {self.path} matches this request ({asked})."
        if not same_route:
            routes = sorted({f"{e.method} {e.path}" for e in self.exchanges})
            text += f" It holds no {method.upper()} {path} at all; it holds: "
            text += (", ".join(routes) or "nothing") + "."
        else:
            closest = min(same_route, key=lambda e: _distance(normalised(e.body), body))
            where, recorded, now = _first_difference(normalised(closest.body), body)
            text += (
                f" The closest recorded request (line {closest.line}) differs in {where}: "
                f"recorded {_quote(recorded)}, asked {_quote(now)}."
            )
        return text + (
            " Record it (run with STACKIT_API_KEY set, or LocalSTACKIT(upstream=..., "
            "record=...)), or replay with fallback='scripted' to let the scripted engine "
            "answer what the cassette does not hold."
        )


def _incoming(raw_body: bytes) -> Any:
    return cassette.stored_request(cassette.parse_request(raw_body))


def _about(body: Any) -> str:
    """`, model 'm', last message 'text'` for a chat body, as far as it has them."""
    if not isinstance(body, dict):
        return ""
    parts = []
    if isinstance(body.get("model"), str):
        parts.append(f"model {_quote(body['model'])}")
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        parts.append(f"last message {_quote(messages[-1].get('content'))}")
    return "".join(", " + p for p in parts)


def _quote(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
    return repr(text) if isinstance(value, str) else text


_MISSING = object()


def _leaves(value: Any, where: str = "") -> dict[str, Any]:
    """Every leaf of a JSON value by its path (``messages[1].content``)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_leaves(item, f"{where}.{key}" if where else str(key)))
        return out or {where: value}
    if isinstance(value, list):
        out = {}
        for i, item in enumerate(value):
            out.update(_leaves(item, f"{where}[{i}]"))
        return out or {where: value}
    return {where: value}


def _distance(recorded: Any, asked: Any) -> int:
    a, b = _leaves(recorded), _leaves(asked)
    return sum(1 for k in a.keys() | b.keys() if a.get(k, _MISSING) != b.get(k, _MISSING))


def _first_difference(recorded: Any, asked: Any) -> tuple[str, Any, Any]:
    """The first path where two bodies differ, and the value each has there."""
    a, b = _leaves(recorded), _leaves(asked)
    for key in [*a, *(k for k in b if k not in a)]:
        if a.get(key, _MISSING) != b.get(key, _MISSING):
            return key or "the body", a.get(key, "(nothing)"), b.get(key, "(nothing)")
    return "nothing that matters", recorded, asked
