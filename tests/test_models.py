"""stackit_nb.list_models(): the live model list with capabilities, rendered for notebooks."""

from __future__ import annotations

import os

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import pytest
from haystack.utils import Secret

import stackit_nb
from stackit_nb.errors import InvalidAPIKeyError, MissingAPIKeyError
from stackit_nb.local import LocalSTACKIT
from stackit_nb.models import ModelInfo, ModelList, builtin_models


def test_list_models_from_the_endpoint(server: LocalSTACKIT) -> None:
    models = stackit_nb.list_models()
    assert isinstance(models, list)
    assert "openai/gpt-oss-120b" in models.ids
    assert "meta-llama/Llama-3.2-11B-Vision-Instruct" in models.ids  # legacy ids are served
    gpt = models.get("openai/gpt-oss-120b")
    assert gpt is not None
    assert gpt.kind == "chat" and "reasoning" in gpt.capabilities and gpt.source == "server"
    assert gpt.context_length == 131_072
    assert models.get("meta-llama/Llama-3.2-11B-Vision-Instruct").legacy  # type: ignore[union-attr]
    assert "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8" in models.vision.ids
    assert "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8" not in models.vision.ids
    assert set(models.embedding.ids) == {
        "intfloat/e5-mistral-7b-instruct",
        "Qwen/Qwen3-VL-Embedding-8B",
    }
    assert "dimensions" in models.get("Qwen/Qwen3-VL-Embedding-8B").capabilities  # type: ignore[union-attr]
    assert server.requests[-1]["path"] == "/v1/models"


def test_list_models_with_explicit_key_and_url(server: LocalSTACKIT) -> None:
    by_str = stackit_nb.list_models(api_key=server.api_key, api_base_url=server.url)
    by_secret = stackit_nb.list_models(Secret.from_token(server.api_key), server.url)
    assert by_str.ids == by_secret.ids
    assert by_str.base_url.startswith(server.url)


def test_renders_as_a_table(server: LocalSTACKIT) -> None:
    models = stackit_nb.list_models()
    html = models._repr_html_()
    assert html.startswith("<table>") and html.count("<tr>") == len(models) + 1
    assert "<td>openai/gpt-oss-20b</td>" in html
    markdown = models._repr_markdown_()
    assert "| model | kind | capabilities | context |" in markdown
    assert "| google/gemma-3-27b-it | chat | vision | 37,000 |" in markdown
    text = str(models)
    assert text.splitlines()[0].split() == ["model", "kind", "capabilities", "context"]
    assert len(text.splitlines()) == len(models) + 1


def test_missing_and_wrong_keys(server: LocalSTACKIT, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidAPIKeyError, match="STACKIT_API_KEY"):
        stackit_nb.list_models(api_key="not-the-token")
    monkeypatch.delenv("STACKIT_API_KEY")
    with pytest.raises(MissingAPIKeyError, match=r"stackit_nb\.connect\(\)"):
        stackit_nb.list_models()


def test_capabilities_without_server_fields() -> None:
    # Real STACKIT sends vLLM's entries, without capability fields: the built-in table fills in.
    known = ModelInfo.from_api({"id": "google/gemma-3-27b-it", "max_model_len": 37_000})
    assert known.source == "builtin" and known.accepts_images and known.context_length == 37_000
    new = ModelInfo.from_api({"id": "acme/Super-VL-Embedding-2B"})
    assert new.source == "guess" and new.kind == "embedding"
    new_vision = ModelInfo.from_api({"id": "meta-llama/Llama-5-Vision-90B"})
    assert new_vision.accepts_images and new_vision.kind == "chat"


def test_closest_ids() -> None:
    models = builtin_models()
    assert models.closest("gpt-oss-120b")[0] == "openai/gpt-oss-120b"
    assert models.closest("Qwen/Qwen3-VL-Embeding-8B", kind="embedding")[0] == (
        "Qwen/Qwen3-VL-Embedding-8B"
    )
    assert models.closest("completely-different-thing") == []
    assert isinstance(models.chat, ModelList)
