"""The models the local server serves, mirroring STACKIT's shared-model list.

STACKIT retires and adds models often, so this list is a snapshot (mid 2026) plus a few legacy ids
that the public docs still show; the local server serves them all so that older tutorials keep
working. Context lengths and tool support follow the model cards where STACKIT publishes nothing.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass

from stackit_nb.local.tokens import image_tokens

CAPABILITIES = ("chat", "vision", "tools", "reasoning", "embedding")
_CREATED = 1735689600  # 2025-01-01T00:00:00Z: a fixed timestamp keeps /v1/models output stable


@dataclass(frozen=True)
class ModelInfo:
    """One model the local server serves, with what it can do."""

    id: str
    kind: str  # "chat" | "embedding"
    capabilities: tuple[str, ...]
    context_length: int
    owned_by: str = "stackit"
    embedding_dimensions: int | None = None  # native vector size for embedding models
    supports_dimensions: bool = False  # honours the `dimensions` request field (others: 400)
    legacy: bool = False  # older id still shown in public docs; served for compatibility
    # Prompt tokens one image costs whatever its size (Gemma 3's SigLIP encoder always yields
    # 256 soft tokens); None counts 28x28-pixel patches as Qwen-VL does.
    tokens_per_image: int | None = None

    def supports(self, capability: str) -> bool:
        """True when the model has ``capability`` (e.g. ``"vision"``)."""
        return capability in self.capabilities

    def image_tokens(self, width: int, height: int) -> int:
        """Prompt tokens one ``width`` x ``height`` image costs on this model: the model's fixed
        number where it has one (Gemma 3), else one per 28x28-pixel patch (Qwen-VL's rule)."""
        if self.tokens_per_image is not None:
            return self.tokens_per_image
        return image_tokens(width, height)

    def to_openai(self) -> dict:
        """The model as one entry of ``GET /v1/models`` (vLLM's shape plus capability fields)."""
        entry: dict = {
            "id": self.id,
            "object": "model",
            "created": _CREATED,
            "owned_by": self.owned_by,
            "root": self.id,
            "parent": None,
            "max_model_len": self.context_length,
            "permission": [_permission(self.id)],
            "capabilities": list(self.capabilities),
            "context_length": self.context_length,
            "kind": self.kind,
            "legacy": self.legacy,
        }
        if self.kind == "embedding":
            entry["embedding_dimensions"] = self.embedding_dimensions
            entry["supports_dimensions"] = self.supports_dimensions
        return entry


def _permission(model_id: str) -> dict:
    """vLLM's ``ModelPermission`` object, as its ``/v1/models`` lists it for every model."""
    digest = hashlib.blake2b(model_id.encode(), digest_size=16).hexdigest()
    return {
        "id": f"modelperm-{digest}",
        "object": "model_permission",
        "created": _CREATED,
        "allow_create_engine": False,
        "allow_sampling": True,
        "allow_logprobs": True,
        "allow_search_indices": False,
        "allow_view": True,
        "allow_fine_tuning": False,
        "organization": "*",
        "group": None,
        "is_blocking": False,
    }


def _chat(
    model_id: str,
    context: int,
    *extra: str,
    legacy: bool = False,
    tokens_per_image: int | None = None,
) -> ModelInfo:
    return ModelInfo(
        model_id,
        "chat",
        ("chat", *extra),
        context,
        legacy=legacy,
        tokens_per_image=tokens_per_image,
    )


def _embedding(model_id: str, context: int, dims: int, *, supports_dimensions: bool) -> ModelInfo:
    return ModelInfo(
        model_id,
        "embedding",
        ("embedding",),
        context,
        embedding_dimensions=dims,
        supports_dimensions=supports_dimensions,
    )


MODELS: tuple[ModelInfo, ...] = (
    _chat("Qwen/Qwen3-VL-235B-A22B-Instruct-FP8", 218_000, "vision", "tools"),
    # No "tools" on gemma-3 and Mistral-Nemo: STACKIT's vLLM runs them without a tool-call
    # parser, so tools with tool_choice "auto" are a 400 there (public deployment notes, a
    # runbook verified 2026-03-08, quote the error for both; Llama-3.1-8B worked in the same run).
    _chat("google/gemma-3-27b-it", 37_000, "vision", tokens_per_image=256),
    # gemma-4 on STACKIT is unverified; served so code written against it runs locally.
    _chat("google/gemma-4-31b-it", 128_000, "vision", "tools"),
    _chat("cortecs/Llama-3.3-70B-Instruct-FP8-Dynamic", 128_000, "tools"),
    _chat("neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8", 128_000, "tools"),
    _chat("neuralmagic/Mistral-Nemo-Instruct-2407-FP8", 128_000),
    # Marked deprecated by third parties, still in the reference integration's list.
    _chat("Qwen/Qwen3.6-27B", 131_072, "tools"),
    _chat("openai/gpt-oss-120b", 131_072, "tools", "reasoning"),
    _chat("openai/gpt-oss-20b", 131_072, "tools", "reasoning"),
    _embedding("intfloat/e5-mistral-7b-instruct", 4_096, 4_096, supports_dimensions=False),
    _embedding("Qwen/Qwen3-VL-Embedding-8B", 32_768, 4_096, supports_dimensions=True),
    # Legacy ids that the public docs still show.
    _chat("neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8", 128_000, "tools", legacy=True),
    _chat("meta-llama/Llama-3.2-11B-Vision-Instruct", 128_000, "vision", legacy=True),
)

_BY_ID = {model.id: model for model in MODELS}


def get_model(model_id: str) -> ModelInfo | None:
    """The model with exactly this id, or None (ids are case-sensitive, as on STACKIT)."""
    return _BY_ID.get(model_id)


def ids_with(capability: str) -> list[str]:
    """Ids of the models that have ``capability``, current models before legacy ones."""
    return [model.id for model in MODELS if model.supports(capability)]


def _parts(model_id: str) -> set[str]:
    return {part for part in re.split(r"[/_\-\s]+", model_id.lower()) if part}


def _similarity(query: str, model_id: str) -> float:
    """How close ``query`` is to ``model_id``: 0..1, from spelling and from shared id parts."""
    query, model_id = query.lower(), model_id.lower()
    # Users often drop or misspell the owner prefix ("gpt-oss-120b", "meta/llama-3.3-70b").
    name, query_name = model_id.split("/", 1)[-1], query.split("/", 1)[-1]
    spelling = max(
        difflib.SequenceMatcher(None, q, c).ratio()
        for q in {query, query_name}
        for c in {model_id, name}
    )
    # Shared parts ("llama", "3.3", "70b") rank the right family above a lookalike spelling.
    query_parts = _parts(query_name)
    shared = len(query_parts & _parts(model_id)) / len(query_parts) if query_parts else 0.0
    # Spelling alone still counts for ids typed without separators ("gemma3").
    return max(0.8 * spelling, 0.5 * spelling + 0.5 * shared)


def closest_ids(model_id: str, n: int = 3, *, capability: str | None = None) -> list[str]:
    """Up to ``n`` served ids that look like ``model_id``, best first (for "did you mean")."""
    pool = [m.id for m in MODELS if capability is None or m.supports(capability)]
    scored = sorted(((_similarity(model_id, c), c) for c in pool), key=lambda s: -s[0])
    return [candidate for score, candidate in scored if score >= 0.4][: max(n, 0)]
