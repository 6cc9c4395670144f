"""STACKITTextEmbedder and STACKITDocumentEmbedder over real HTTP to LocalSTACKIT."""

from __future__ import annotations

import inspect
import math
import os

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import openai
import pytest
from haystack import Document

from stackit_nb import STACKITDocumentEmbedder, STACKITTextEmbedder
from stackit_nb.errors import MissingAPIKeyError, ModelNotFoundError
from stackit_nb.local import LocalSTACKIT

E5 = "intfloat/e5-mistral-7b-instruct"
QWEN = "Qwen/Qwen3-VL-Embedding-8B"
STACKIT_URL = "https://api.openai-compat.model-serving.eu01.onstackit.cloud/v1"


def test_text_embedder_signature_and_to_dict_match_reference() -> None:
    params = inspect.signature(STACKITTextEmbedder.__init__).parameters
    assert list(params)[1:6] == ["model", "api_key", "api_base_url", "prefix", "suffix"]
    assert params["api_base_url"].default == STACKIT_URL
    data = STACKITTextEmbedder(model=E5).to_dict()
    assert data["type"] == "stackit_nb.embedders.STACKITTextEmbedder"
    assert set(data["init_parameters"]) == {
        "api_key", "model", "dimensions", "api_base_url", "prefix", "suffix",
        "timeout", "max_retries", "http_client_kwargs",
    }  # fmt: skip
    assert STACKITTextEmbedder.SUPPORTED_MODELS == [E5, QWEN]


def test_document_embedder_to_dict_matches_reference() -> None:
    data = STACKITDocumentEmbedder(model=E5, batch_size=4, progress_bar=False).to_dict()
    assert set(data["init_parameters"]) == {
        "model", "dimensions", "api_key", "api_base_url", "prefix", "suffix", "batch_size",
        "progress_bar", "meta_fields_to_embed", "embedding_separator", "timeout", "max_retries",
        "http_client_kwargs",
    }  # fmt: skip
    restored = STACKITDocumentEmbedder.from_dict(data)
    assert restored.batch_size == 4 and restored.progress_bar is False


def test_from_dict_accepts_reference_dicts() -> None:
    reference = STACKITTextEmbedder(model=QWEN, dimensions=256).to_dict()
    reference["type"] = (
        "haystack_integrations.components.embedders.stackit.text_embedder.STACKITTextEmbedder"
    )
    restored = STACKITTextEmbedder.from_dict(reference)
    assert isinstance(restored, STACKITTextEmbedder) and restored.dimensions == 256
    docs = STACKITDocumentEmbedder(model=E5).to_dict()
    docs["type"] = (
        "haystack_integrations.components.embedders.stackit.document_embedder."
        "STACKITDocumentEmbedder"
    )
    assert isinstance(STACKITDocumentEmbedder.from_dict(docs), STACKITDocumentEmbedder)


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STACKIT_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match=r"STACKIT_API_KEY.*stackit_nb\.connect\(\)"):
        STACKITTextEmbedder(model=E5).run("hi")


def test_text_embedder_run(server: LocalSTACKIT) -> None:
    embedder = STACKITTextEmbedder(model=E5, prefix="query: ")
    result = embedder.run("I love pizza!")
    assert len(result["embedding"]) == 4096
    assert all(isinstance(x, float) for x in result["embedding"][:5])
    assert result["meta"]["model"] == E5
    assert result["meta"]["usage"]["prompt_tokens"] > 0
    assert server.requests[-1]["json"]["input"] == "query: I love pizza!"
    again = embedder.run("I love pizza!")["embedding"]
    assert again == result["embedding"]  # deterministic


async def test_text_embedder_run_async_with_dimensions(server: LocalSTACKIT) -> None:
    result = await STACKITTextEmbedder(model=QWEN, dimensions=256).run_async("I love pizza!")
    assert len(result["embedding"]) == 256
    assert server.requests[-1]["json"]["dimensions"] == 256


def test_dimensions_on_a_model_without_them_is_refused(server: LocalSTACKIT) -> None:
    with pytest.raises(openai.BadRequestError, match=r"dimensions|matryoshka"):
        STACKITTextEmbedder(model=E5, dimensions=256, max_retries=0).run("hi")


def test_unknown_embedding_model_suggests_embedding_models(server: LocalSTACKIT) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        STACKITTextEmbedder(model="intfloat/e5-mistral-7b", max_retries=0).run("hi")
    assert info.value.suggestions[0] == E5
    assert "gpt-oss" not in str(info.value)


def test_document_embedder_batches_and_keeps_order(server: LocalSTACKIT) -> None:
    server.clear_requests()
    docs = [Document(content=f"Document number {i}", meta={"topic": f"t{i}"}) for i in range(5)]
    embedder = STACKITDocumentEmbedder(
        model=E5, batch_size=2, progress_bar=False, meta_fields_to_embed=["topic"]
    )
    result = embedder.run(docs)
    embedded = result["documents"]
    assert [d.id for d in embedded] == [d.id for d in docs]
    assert all(d.embedding and len(d.embedding) == 4096 for d in embedded)
    assert docs[0].embedding is None  # inputs are not modified
    sent = [r["json"]["input"] for r in server.requests if r["path"] == "/v1/embeddings"]
    assert [len(batch) for batch in sent] == [2, 2, 1]
    assert sent[0][0] == "t0\nDocument number 0"
    assert result["meta"]["usage"]["prompt_tokens"] > 0
    single = STACKITTextEmbedder(model=E5).run("t3\nDocument number 3")["embedding"]
    assert math.isclose(sum(a * b for a, b in zip(single, embedded[3].embedding, strict=True)), 1)


def test_document_embedder_progress_bar(
    server: LocalSTACKIT, capsys: pytest.CaptureFixture
) -> None:
    STACKITDocumentEmbedder(model=E5, batch_size=1).run([Document(content="a"), Document("b")])
    assert "Calculating embeddings" in capsys.readouterr().err


async def test_document_embedder_run_async(server: LocalSTACKIT) -> None:
    docs = [Document(content="red apple"), Document(content="green pear")]
    embedder = STACKITDocumentEmbedder(model=QWEN, dimensions=64, progress_bar=False)
    result = await embedder.run_async(docs)
    assert [len(d.embedding) for d in result["documents"]] == [64, 64]
    assert result["meta"]["model"] == QWEN
