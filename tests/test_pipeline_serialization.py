"""Pipeline.dumps()/loads() with stackit_nb components: the allowlist, no secret in the YAML."""

from __future__ import annotations

import os

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import pytest
from haystack import Document, Pipeline
from haystack.components.builders import ChatPromptBuilder
from haystack.core.errors import DeserializationError
from haystack.dataclasses import ChatMessage, StreamingChunk
from haystack.tools import Tool

from stackit_nb import STACKITChatGenerator, STACKITDocumentEmbedder, STACKITTextEmbedder
from stackit_nb.local import LocalSTACKIT

CHAT = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
STREAMED: list[str] = []


def collect(chunk: StreamingChunk) -> None:
    STREAMED.append(chunk.content)


def get_weather(city: str) -> str:
    return f"sunny in {city}"


def build_pipeline() -> Pipeline:
    tool = Tool(
        name="get_weather",
        description="Weather forecast for a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
        function=get_weather,
    )
    pipeline = Pipeline()
    pipeline.add_component("prompt_builder", ChatPromptBuilder())
    pipeline.add_component(
        "llm",
        STACKITChatGenerator(
            model=CHAT,
            streaming_callback=collect,
            generation_kwargs={"max_tokens": 64},
            tools=[tool],
        ),
    )
    pipeline.connect("prompt_builder.prompt", "llm.messages")
    return pipeline


def run_joke(pipeline: Pipeline) -> str:
    template = [ChatMessage.from_user("Question: {{question}}")]
    result = pipeline.run(
        {
            "prompt_builder": {
                "template_variables": {"question": "Tell me a joke."},
                "template": template,
            }
        }
    )
    return result["llm"]["replies"][0].text


def test_yaml_holds_no_secret_and_names_the_env_var(server: LocalSTACKIT) -> None:
    text = build_pipeline().dumps()
    assert server.api_key not in text
    assert "STACKIT_API_KEY" in text
    assert "stackit_nb.generator.STACKITChatGenerator" in text
    assert server.url not in text  # the URL comes from the environment when the pipeline runs


def test_loading_needs_the_allowlist() -> None:
    text = build_pipeline().dumps()
    with pytest.raises(DeserializationError, match="allowlist"):
        Pipeline.loads(text)


def test_round_trip_with_allowed_modules(server: LocalSTACKIT) -> None:
    original = build_pipeline()
    text = original.dumps()
    loaded = Pipeline.loads(text, allowed_modules=["stackit_nb", __name__])
    assert loaded.dumps() == text
    llm = loaded.get_component("llm")
    assert isinstance(llm, STACKITChatGenerator)
    assert llm.streaming_callback is collect
    assert llm.tools[0].name == "get_weather"  # type: ignore[index]
    STREAMED.clear()
    answer = run_joke(loaded)
    assert "".join(STREAMED) == answer  # the loaded callback streamed the reply
    assert answer == run_joke(original)


def test_round_trip_with_the_environment_allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAYSTACK_DESERIALIZATION_ALLOWLIST", f"stackit_nb,{__name__}")
    loaded = Pipeline.loads(build_pipeline().dumps())
    assert isinstance(loaded.get_component("llm"), STACKITChatGenerator)


def test_embedding_pipeline_round_trip(server: LocalSTACKIT) -> None:
    pipeline = Pipeline()
    pipeline.add_component(
        "docs", STACKITDocumentEmbedder(model="intfloat/e5-mistral-7b-instruct", progress_bar=False)
    )
    pipeline.add_component(
        "query", STACKITTextEmbedder(model="Qwen/Qwen3-VL-Embedding-8B", dimensions=128)
    )
    text = pipeline.dumps()
    assert server.api_key not in text
    loaded = Pipeline.loads(text, allowed_modules=["stackit_nb"])
    result = loaded.run(
        {"docs": {"documents": [Document(content="red apple")]}, "query": {"text": "apple"}}
    )
    assert len(result["query"]["embedding"]) == 128
    assert len(result["docs"]["documents"][0].embedding) == 4096


def test_component_round_trip_keeps_everything() -> None:
    generator = STACKITChatGenerator(
        model="openai/gpt-oss-120b",
        api_base_url="http://127.0.0.1:9999/v1",
        generation_kwargs={"reasoning_effort": "low"},
        timeout=5.0,
        max_retries=1,
        tools_strict=True,
    )
    data = generator.to_dict()
    restored = STACKITChatGenerator.from_dict(data)
    assert restored.to_dict() == data
    assert restored.api_base_url == "http://127.0.0.1:9999/v1"
