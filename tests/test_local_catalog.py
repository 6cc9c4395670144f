"""The local server's model catalog: ids, capabilities, OpenAI shape and suggestions."""

from __future__ import annotations

import json

import pytest

from stackit_nb.local.catalog import (
    CAPABILITIES,
    MODELS,
    ModelInfo,
    closest_ids,
    get_model,
    ids_with,
)

# STACKIT's shared-model list and the reference integration's SUPPORTED_MODELS.
CURRENT_CHAT = {
    "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8": {"vision"},
    "google/gemma-3-27b-it": {"vision"},
    "google/gemma-4-31b-it": {"vision"},
    "cortecs/Llama-3.3-70B-Instruct-FP8-Dynamic": set(),
    "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8": set(),
    "neuralmagic/Mistral-Nemo-Instruct-2407-FP8": set(),
    "Qwen/Qwen3.6-27B": set(),
    "openai/gpt-oss-120b": {"reasoning", "tools"},
    "openai/gpt-oss-20b": {"reasoning", "tools"},
}
REFERENCE_SUPPORTED = [
    "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8",
    "Qwen/Qwen3.6-27B",
    "cortecs/Llama-3.3-70B-Instruct-FP8-Dynamic",
    "openai/gpt-oss-120b",
    "google/gemma-3-27b-it",
    "openai/gpt-oss-20b",
    "intfloat/e5-mistral-7b-instruct",
    "Qwen/Qwen3-VL-Embedding-8B",
]


@pytest.mark.parametrize(("model_id", "needed"), sorted(CURRENT_CHAT.items()))
def test_current_chat_models_have_their_capabilities(model_id: str, needed: set[str]) -> None:
    model = get_model(model_id)
    assert model is not None
    assert model.kind == "chat" and not model.legacy
    assert {"chat", *needed} <= set(model.capabilities)
    assert model.embedding_dimensions is None


def test_only_vision_models_have_vision_and_only_gpt_oss_reasons() -> None:
    assert set(ids_with("reasoning")) == {"openai/gpt-oss-120b", "openai/gpt-oss-20b"}
    vision = set(ids_with("vision"))
    assert "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8" not in vision
    assert "meta-llama/Llama-3.2-11B-Vision-Instruct" in vision


def test_reference_supported_models_are_all_served() -> None:
    assert [m for m in REFERENCE_SUPPORTED if get_model(m) is None] == []


@pytest.mark.parametrize(
    ("model_id", "capability"),
    [
        ("neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8", "tools"),
        ("meta-llama/Llama-3.2-11B-Vision-Instruct", "vision"),
    ],
)
def test_legacy_ids_are_served_and_marked(model_id: str, capability: str) -> None:
    model = get_model(model_id)
    assert model is not None and model.legacy
    assert model.supports("chat") and model.supports(capability)
    # Legacy ids come after the current ones, so suggestions and examples prefer current ids.
    assert ids_with("chat").index(model_id) > ids_with("chat").index("openai/gpt-oss-20b")


def test_embedding_models() -> None:
    e5 = get_model("intfloat/e5-mistral-7b-instruct")
    qwen = get_model("Qwen/Qwen3-VL-Embedding-8B")
    assert e5 == ModelInfo(
        "intfloat/e5-mistral-7b-instruct",
        "embedding",
        ("embedding",),
        4096,
        "stackit",
        embedding_dimensions=4096,
        supports_dimensions=False,
    )
    assert qwen is not None
    assert (qwen.embedding_dimensions, qwen.supports_dimensions, qwen.context_length) == (
        4096,
        True,
        32768,
    )
    assert ids_with("embedding") == [e5.id, qwen.id]
    assert not qwen.supports("chat")


def test_context_lengths() -> None:
    expected = {
        "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8": 218_000,
        "google/gemma-3-27b-it": 37_000,
        "cortecs/Llama-3.3-70B-Instruct-FP8-Dynamic": 128_000,
        "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8": 128_000,
        "neuralmagic/Mistral-Nemo-Instruct-2407-FP8": 128_000,
        "openai/gpt-oss-120b": 131_072,
    }
    assert {k: get_model(k).context_length for k in expected} == expected  # type: ignore[union-attr]


def test_catalog_is_consistent() -> None:
    ids = [m.id for m in MODELS]
    assert len(ids) == len(set(ids))
    for model in MODELS:
        assert set(model.capabilities) <= set(CAPABILITIES), model.id
        assert model.kind in ("chat", "embedding")
        assert model.supports(model.kind)
        assert (model.embedding_dimensions is not None) == (model.kind == "embedding")
        assert model.context_length >= 4096


def test_to_openai_shape() -> None:
    entry = get_model("openai/gpt-oss-20b").to_openai()  # type: ignore[union-attr]
    assert entry["id"] == "openai/gpt-oss-20b"
    assert entry["object"] == "model"
    assert entry["owned_by"] == "stackit"
    assert entry["max_model_len"] == entry["context_length"] == 131_072
    assert entry["capabilities"] == ["chat", "tools", "reasoning"]
    assert entry["kind"] == "chat" and entry["legacy"] is False
    assert "embedding_dimensions" not in entry
    embedding = get_model("Qwen/Qwen3-VL-Embedding-8B").to_openai()  # type: ignore[union-attr]
    assert embedding["embedding_dimensions"] == 4096 and embedding["supports_dimensions"] is True
    # Stable output: the same timestamp every time, and plain JSON.
    listing = [m.to_openai() for m in MODELS]
    assert len({e["created"] for e in listing}) == 1
    assert json.loads(json.dumps(listing)) == listing


def test_get_model_is_exact() -> None:
    assert get_model("openai/gpt-oss-120b") is not None
    assert get_model("OpenAI/GPT-OSS-120B") is None
    assert get_model("gpt-oss-120b") is None
    assert get_model("") is None


@pytest.mark.parametrize(
    ("typed", "expected_first"),
    [
        ("gpt-oss-120b", "openai/gpt-oss-120b"),
        ("openai/gpt-oss-120B", "openai/gpt-oss-120b"),
        ("llama-3.3-70b", "cortecs/Llama-3.3-70B-Instruct-FP8-Dynamic"),
        ("meta-llama/Llama-3.3-70B-Instruct", "cortecs/Llama-3.3-70B-Instruct-FP8-Dynamic"),
        ("gemma3", "google/gemma-3-27b-it"),
        ("mistral-nemo", "neuralmagic/Mistral-Nemo-Instruct-2407-FP8"),
        ("e5-mistral", "intfloat/e5-mistral-7b-instruct"),
        ("Qwen3-VL-Embedding", "Qwen/Qwen3-VL-Embedding-8B"),
    ],
)
def test_closest_ids_suggests_the_intended_model(typed: str, expected_first: str) -> None:
    assert closest_ids(typed)[0] == expected_first


def test_closest_ids_limits_and_filters() -> None:
    assert closest_ids("completely-unrelated-xyz") == []
    assert len(closest_ids("llama", n=2)) <= 2
    assert closest_ids("llama", n=0) == []
    vision = closest_ids("Qwen3-VL", capability="vision")
    assert vision and vision[0] == "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8"
    assert all(get_model(i).supports("vision") for i in vision)  # type: ignore[union-attr]
    assert closest_ids("Qwen3-VL-Embedding", capability="embedding") == [
        "Qwen/Qwen3-VL-Embedding-8B"
    ]
