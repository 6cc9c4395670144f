"""The ``scripted`` engine: deterministic chat completions and embeddings for the local server.

It reads the shape of the last user message (a joke, an image, a length, a tool, a question) and
answers with plausible text built from the prompt's own words. The same request always gets the
same reply; ``seed`` and the choice index vary the pick where the prompt allows variety. The
server turns the returned ``Choice`` objects into JSON or SSE chunks; nothing here streams.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache

from stackit_nb.local import prose, toolcall
from stackit_nb.local.catalog import ModelInfo
from stackit_nb.local.engines.interface import ChatRequest, Choice, text_of
from stackit_nb.local.jsonschema_fill import fill_schema
from stackit_nb.local.tokens import count_tokens, truncate_tokens
from stackit_nb.local.vision import ImageFacts

MAX_GENERATED_TOKENS = 100_000  # "write 10 million tokens" is capped, as a real server would be

_IDENTITY = re.compile(
    r"\b(?:who|what) are you\b|\bwhich model\b|\bwhat model\b|\bwho (?:made|built) you\b|"
    r"\bintroduce yourself\b|\byour name\b|\bare you (?:an? )?(?:ai|bot|model|llm|real)\b",
    re.IGNORECASE,
)
_JOKE = re.compile(r"\bjokes?\b|\bmake me laugh\b|\bsomething funny\b|\bpun\b", re.IGNORECASE)
_NUM = r"(\d[\d,_]*)"
_WORD_LIMIT = re.compile(
    r"\b(?:in|max(?:imum)?|at most|under|within|no more than|fewer than|less than|up to)\s+"
    rf"(?:of\s+)?{_NUM}\s+words?\b|\b{_NUM}\s+words?\s+or\s+(?:less|fewer)\b",
    re.IGNORECASE,
)
_LENGTH = re.compile(
    r"\b(?:write|give|generate|produce|output|print|type|compose|create|return|say)\b"
    rf"[^.?!\n]*?\b{_NUM}\s*[- ]?(tokens?|words?)\b|\b{_NUM}-(token|word)\b",
    re.IGNORECASE,
)
_COUNT = re.compile(rf"\bcount\s+(?:from\s+(?:1|one)\s+)?(?:up\s+)?to\s+{_NUM}", re.IGNORECASE)


def _number(text: str) -> int:
    return min(int(re.sub(r"[,_]", "", text)), MAX_GENERATED_TOKENS)


@dataclass
class _Draft:
    """A reply before stop strings and max_tokens are applied."""

    shape: str
    content: str | None = None
    tool_calls: list[dict] = field(default_factory=list)


class ScriptedEngine:
    """Deterministic replies shaped like the prompt; no model, no randomness."""

    name = "scripted"

    def complete(self, request: ChatRequest) -> list[Choice]:
        """``request.n`` choices for ``request``."""
        return [self._choice(request, index) for index in range(max(request.n, 1))]

    # ---- one choice ---------------------------------------------------------------------------

    def _choice(self, request: ChatRequest, index: int) -> Choice:
        _, user = request.last_user()
        prompt = text_of(user.get("content"))
        # Greedy decoding (temperature 0) gives the same reply whatever the seed or index.
        variant = "greedy" if request.temperature == 0 else f"{request.seed}|{index}"
        draft = self._draft(request, prompt, variant)
        if draft.content is not None and request.response_format:
            draft.content = self._formatted(request.response_format, draft.content, prompt, variant)
        thinking = None
        if request.model.supports("reasoning"):
            thinking = prose.reasoning(prompt, draft.shape, request.reasoning_effort, variant)
        return self._finish(request, index, thinking, draft)

    def _draft(self, request: ChatRequest, prompt: str, variant: str) -> _Draft:
        """The reply for the prompt's shape; the first matching rule wins."""
        messages = request.messages
        forced = request.tool_choice == "required" or isinstance(request.tool_choice, dict)
        ends_with_tool = bool(messages) and messages[-1].get("role") == "tool"
        if request.tools and (forced or not ends_with_tool):
            tool = toolcall.choose_tool(request.tools, request.tool_choice, prompt)
            if tool is not None:
                salt = hashlib.blake2b(f"{prompt}|{variant}".encode(), digest_size=8).hexdigest()
                return _Draft("tool_call", tool_calls=[toolcall.tool_call(tool, prompt, salt)])
        if ends_with_tool:
            return _Draft("tool_result", self._tool_answer(messages))
        if _IDENTITY.search(prompt):
            return _Draft("identity", self._identity(request.model))
        if request.model.supports("vision") and (images := request.images_asked_about()):
            return _Draft("vision", self._vision(images, prompt))
        if _JOKE.search(prompt):
            return _Draft("joke", prose.JOKES[prose.stable_pick(len(prose.JOKES), prompt, variant)])
        if (limit := _WORD_LIMIT.search(prompt)) is not None:
            text = prose.explanation(prompt, variant)
            return _Draft("explain", prose.limit_words(text, _number(limit[1] or limit[2])))
        if (count := _COUNT.search(prompt)) is not None:
            return _Draft("long", prose.count_to(_number(count[1])))
        if (length := _LENGTH.search(prompt)) is not None:
            amount, unit = (length[1], length[2]) if length[1] else (length[3], length[4])
            if unit.lower().startswith("token"):
                return _Draft("long", prose.prose_tokens(prompt, _number(amount), variant))
            return _Draft("long", prose.prose_words(prompt, _number(amount), variant))
        return _Draft("explain", prose.explanation(prompt, variant))

    @staticmethod
    def _identity(model: ModelInfo) -> str:
        return (
            "I am the local STACKIT-compatible server running the scripted engine, answering as "
            f"model {model.id}. My replies are deterministic stand-ins built from your prompt, not "
            "real model output. With STACKIT_API_KEY set, the same code talks to the real STACKIT "
            "AI Model Serving instead."
        )

    @staticmethod
    def _vision(images: list[ImageFacts], prompt: str) -> str:
        def sentence(facts: ImageFacts) -> str:
            colour = facts.dominant_colour
            if (second := facts.secondary_colour()) is not None:
                colour += f" and {second}"
            return (
                f"A {colour}, {facts.brightness_word()} image "
                f"({facts.width}x{facts.height} {facts.format})."
            )

        if len(images) == 1:
            full = sentence(images[0])
        else:
            full = " ".join(f"Image {i}: {sentence(f)}" for i, f in enumerate(images, 1))
        limit = _WORD_LIMIT.search(prompt)
        if limit is None:
            return full
        words = _number(limit[1] or limit[2])
        if len(full.split()) <= words:
            return full
        short = " ".join(f"Mostly {f.dominant_colour} {f.brightness_word()} image." for f in images)
        return prose.limit_words(short, words)

    @staticmethod
    def _tool_answer(messages: list[dict]) -> str:
        results = toolcall.tool_results(messages)
        parts = [f"according to {name}, the result is: {text}" for name, text in results]
        answer = "; ".join(parts) or "the tool returned nothing"
        return answer[:1].upper() + answer[1:] + ("" if answer.endswith(".") else ".")

    @staticmethod
    def _formatted(response_format: dict, text: str, prompt: str, variant: str) -> str:
        kind = response_format.get("type")
        if kind == "json_object":
            return json.dumps({"answer": text}, ensure_ascii=False)
        if kind == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = spec.get("schema") if isinstance(spec, dict) else None
            context = toolcall.fill_context(prompt, text=text, salt=variant)
            value = fill_schema(schema if isinstance(schema, dict) else {}, context)
            return json.dumps(value, ensure_ascii=False)
        return text

    @staticmethod
    def _finish(request: ChatRequest, index: int, thinking: str | None, draft: _Draft) -> Choice:
        """Apply stop strings, then max_tokens (reasoning spends the budget first, like vLLM)."""
        content, calls = draft.content, draft.tool_calls
        finish = "tool_calls" if calls else "stop"
        if content is not None and request.stop:
            cuts = [content.find(s) for s in request.stop if s and s in content]
            if cuts:
                content = content[: min(cuts)]
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
        call_tokens = count_tokens(call_text) if calls else 0
        used = count_tokens(thinking or "") + count_tokens(content or "") + call_tokens
        return Choice(index, content, thinking, calls, finish, used)

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
