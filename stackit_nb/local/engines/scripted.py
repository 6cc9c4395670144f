"""The ``scripted`` engine: deterministic chat completions and embeddings for the local server.

It answers like a careful model with a tiny memory: from the documents a prompt carries, from its
small fact table (``facts.py``), or with a plain sentence saying that it is the local scripted
engine and cannot answer; in the form the prompt asks for (``instructions.py``, ``compose.py``).
The rules are tried in order (``replies.RULES``); the first that applies answers. The same request
always gets the same reply; ``seed`` and the choice index vary the pick where the prompt allows
variety.
The server turns the returned ``Choice`` objects into JSON or SSE chunks; nothing here streams.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from functools import lru_cache

from stackit_nb.local import instructions, json_reply, prose, replies
from stackit_nb.local.engines.interface import ChatRequest, Choice, text_of
from stackit_nb.local.tokens import count_tokens, truncate_tokens


class ScriptedEngine:
    """Deterministic replies from rules, a fact table and the prompt; no model, no randomness."""

    name = "scripted"

    def complete(self, request: ChatRequest) -> list[Choice]:
        """``request.n`` choices for ``request``."""
        return [self._choice(request, index) for index in range(max(request.n, 1))]

    # ---- one choice ---------------------------------------------------------------------------

    def _choice(self, request: ChatRequest, index: int) -> Choice:
        _, user = request.last_user()
        prompt = text_of(user.get("content"))
        system = "\n".join(
            text_of(m.get("content")) for m in request.messages if m.get("role") == "system"
        )
        # Greedy decoding (temperature 0) gives the same reply whatever the seed or index.
        variant = "greedy" if request.temperature == 0 else f"{request.seed}|{index}"
        reading = replies.Reading(request, prompt, instructions.read(system, prompt), variant)
        draft = replies.draft(reading)
        wants_json = request.response_format or (reading.asked.json and not draft.tool_calls)
        if draft.content is not None and wants_json:
            response_format = request.response_format or {"type": "json_object"}
            topic = draft.material.subject if draft.material else reading.subject()
            draft.content = json_reply.reply(response_format, draft.content, prompt, variant, topic)
        thinking = None
        if request.model.supports("reasoning"):
            thinking = prose.reasoning(prompt, draft.shape, request.reasoning_effort, variant)
        return self._finish(request, index, thinking, draft)

    @staticmethod
    def _finish(
        request: ChatRequest, index: int, thinking: str | None, draft: replies.Draft
    ) -> Choice:
        """Apply stop strings, then max_tokens (reasoning spends the budget first, like vLLM)."""
        content, calls = draft.content, draft.tool_calls
        finish = "tool_calls" if calls else "stop"
        stop_reason = None  # vLLM's: the stop string that ended the reply
        if content is not None and request.stop:
            cuts = [
                (content.find(s), i, s) for i, s in enumerate(request.stop) if s and s in content
            ]
            if cuts:
                at, _, stop_reason = min(cuts)
                content = content[:at]
        call_text = "".join(c["function"]["name"] + c["function"]["arguments"] for c in calls)
        limit = request.max_tokens
        if limit is not None:
            spent = count_tokens(thinking) if thinking else 0
            if thinking is not None and spent >= limit:
                thinking, content, calls, finish = (
                    truncate_tokens(thinking, limit),
                    "",
                    [],
                    "length",
                )
            elif calls and count_tokens(call_text) > limit - spent:
                # A tool call cut short cannot be parsed: real servers hand back the raw text.
                raw = json.dumps([c["function"] for c in calls], ensure_ascii=False)
                content, calls, finish = truncate_tokens(raw, limit - spent), [], "length"
            elif content is not None and count_tokens(content) > limit - spent:
                content, finish = truncate_tokens(content, limit - spent), "length"
        if finish != "stop":
            stop_reason = None  # the length limit, not the stop string, ended it
        call_tokens = count_tokens(call_text) if calls else 0
        used = count_tokens(thinking or "") + count_tokens(content or "") + call_tokens
        return Choice(index, content, thinking, calls, finish, used, stop_reason=stop_reason)

    # ---- embeddings ---------------------------------------------------------------------------

    def embed(self, texts: list[str], dimensions: int) -> list[list[float]]:
        """Deterministic unit vectors; texts that share words get clearly similar vectors."""
        dims = max(dimensions, 1)
        vectors = []
        for text in texts:
            # Sparse accumulation: a short text touches a few dozen of thousands of dimensions,
            # so filling a ready-made zero list is far cheaper than any dense array conversion.
            sparse: dict[int, float] = {}
            # Empty input gets one fixed feature, so it still maps to a unit vector.
            for feature, weight in (_features(text) or {"\x00empty": 1.0}).items():
                digest = _feature_hash(feature)
                column = (digest >> 1) % dims
                # Signed hashing: colliding features cancel on average instead of piling up.
                sparse[column] = sparse.get(column, 0.0) + (weight if digest & 1 else -weight)
            norm = math.sqrt(sum(v * v for v in sparse.values()))
            if norm == 0.0:  # every feature cancelled out: fall back to a fixed direction
                sparse, norm = {0: 1.0}, 1.0
            vector = [0.0] * dims
            for column, value in sparse.items():
                vector[column] = value / norm
            vectors.append(vector)
        return vectors


@lru_cache(maxsize=200_000)
def _feature_hash(feature: str) -> int:
    """A stable 64-bit hash of one feature (the same in every process, unlike ``hash()``)."""
    return int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")


def _features(text: str) -> dict[str, float]:
    """Weighted hashed features: word unigrams, word bigrams and character trigrams."""
    found = prose.words(text)
    features: dict[str, float] = {}
    for word in found:
        features["w:" + word] = features.get("w:" + word, 0.0) + 1.0
        padded = f"<{word}>"
        # Trigrams make "river" and "rivers" close; a low weight keeps whole words dominant.
        for i in range(len(padded) - 2):
            key = "c:" + padded[i : i + 3]
            features[key] = features.get(key, 0.0) + 0.25
    for first, second in itertools.pairwise(found):
        key = f"b:{first} {second}"
        features[key] = features.get(key, 0.0) + 0.5
    return features
