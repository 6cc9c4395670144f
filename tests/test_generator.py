"""STACKITChatGenerator: parity with the reference integration, over real HTTP to LocalSTACKIT."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import pytest
from haystack.dataclasses import ChatMessage, ImageContent, StreamingChunk
from haystack.tools import Tool
from haystack.utils import Secret
from PIL import Image
from pydantic import BaseModel

from stackit_nb import STACKITChatGenerator
from stackit_nb.errors import MissingAPIKeyError
from stackit_nb.local import LocalSTACKIT

CHAT = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
STACKIT_URL = "https://api.openai-compat.model-serving.eu01.onstackit.cloud/v1"
REFERENCE_KEYS = {
    "model",
    "streaming_callback",
    "api_base_url",
    "generation_kwargs",
    "api_key",
    "timeout",
    "max_retries",
    "tools",
    "http_client_kwargs",
}


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        srv.faults.clear()
        srv.configure(reasoning_field="both", error_shape="openai")


def get_weather(city: str) -> str:
    return f"sunny in {city}"


def weather_tool() -> Tool:
    return Tool(
        name="get_weather",
        description="Weather forecast for a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
        function=get_weather,
    )


@pytest.fixture
def allow_this_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Callables defined here are deserialized by path: Haystack must trust this module."""
    monkeypatch.setenv("HAYSTACK_DESERIALIZATION_ALLOWLIST", __name__)


def print_chunk(chunk: StreamingChunk) -> None:
    """A module-level callback, so that it serializes to a dotted path."""


# -- parity without a server -------------------------------------------------------------------


def test_init_signature_matches_reference() -> None:
    params = inspect.signature(STACKITChatGenerator.__init__).parameters
    positional = ["model", "api_key", "streaming_callback", "api_base_url", "generation_kwargs"]
    assert [p for p in params if p != "self"][:5] == positional
    keyword_only = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keyword_only == {"timeout", "max_retries", "http_client_kwargs", "tools", "tools_strict"}
    assert params["api_key"].default == Secret.from_env_var("STACKIT_API_KEY")
    assert params["api_base_url"].default == STACKIT_URL
    assert params["streaming_callback"].default is None
    assert params["generation_kwargs"].default is None


def test_supported_models_match_reference() -> None:
    assert STACKITChatGenerator.SUPPORTED_MODELS == [
        "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8",
        "Qwen/Qwen3.6-27B",
        "cortecs/Llama-3.3-70B-Instruct-FP8-Dynamic",
        "openai/gpt-oss-120b",
        "google/gemma-3-27b-it",
        "openai/gpt-oss-20b",
    ]


def test_to_dict_has_the_reference_keys_and_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STACKIT_API_KEY", raising=False)
    data = STACKITChatGenerator(model=CHAT).to_dict()
    assert data["type"] == "stackit_nb.generator.STACKITChatGenerator"
    assert set(data["init_parameters"]) == REFERENCE_KEYS
    assert data["init_parameters"]["api_key"] == {
        "type": "env_var",
        "env_vars": ["STACKIT_API_KEY"],
        "strict": True,
    }
    assert data["init_parameters"]["api_base_url"] == STACKIT_URL


def test_to_dict_refuses_a_token_secret() -> None:
    generator = STACKITChatGenerator(model=CHAT, api_key=Secret.from_token("sk-very-secret"))
    with pytest.raises(ValueError, match="token"):
        generator.to_dict()
    assert "sk-very-secret" not in repr(generator.api_key)


@pytest.mark.usefixtures("allow_this_module")
def test_tools_strict_is_saved_only_when_set() -> None:
    data = STACKITChatGenerator(model=CHAT, tools=[weather_tool()], tools_strict=True).to_dict()
    assert data["init_parameters"]["tools_strict"] is True
    restored = STACKITChatGenerator.from_dict(data)
    assert restored.tools_strict is True
    assert restored.tools[0].name == "get_weather"


@pytest.mark.usefixtures("allow_this_module")
def test_from_dict_round_trip_with_callback_and_kwargs() -> None:
    generator = STACKITChatGenerator(
        model=CHAT,
        streaming_callback=print_chunk,
        generation_kwargs={"max_tokens": 20},
        timeout=12.0,
        max_retries=1,
        http_client_kwargs={"trust_env": False},
    )
    restored = STACKITChatGenerator.from_dict(generator.to_dict())
    assert restored.to_dict() == generator.to_dict()
    assert restored.streaming_callback is print_chunk
    assert restored.generation_kwargs == {"max_tokens": 20}


def test_from_dict_accepts_reference_dicts() -> None:
    reference = {
        "type": "haystack_integrations.components.generators.stackit.chat.chat_generator."
        "STACKITChatGenerator",
        "init_parameters": {
            "model": "openai/gpt-oss-120b",
            "streaming_callback": None,
            "api_base_url": STACKIT_URL,
            "generation_kwargs": {"temperature": 0.1},
            "api_key": {"type": "env_var", "env_vars": ["STACKIT_API_KEY"], "strict": True},
            "timeout": None,
            "max_retries": None,
            "tools": None,
            "http_client_kwargs": None,
            "tools_strict": False,  # older reference versions wrote it
            "organization": None,  # an OpenAIChatGenerator dict carries it
        },
    }
    restored = STACKITChatGenerator.from_dict(reference)
    assert isinstance(restored, STACKITChatGenerator)
    assert restored.model == "openai/gpt-oss-120b"
    assert restored.generation_kwargs == {"temperature": 0.1}
    assert reference["init_parameters"]["organization"] is None  # caller's dict untouched


def test_pydantic_response_format_serializes_as_json_schema() -> None:
    class Joke(BaseModel):
        setup: str
        punchline: str

    data = STACKITChatGenerator(model=CHAT, generation_kwargs={"response_format": Joke}).to_dict()
    response_format = data["init_parameters"]["generation_kwargs"]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Joke"


def test_missing_key_fails_at_first_run_with_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STACKIT_API_KEY", raising=False)
    generator = STACKITChatGenerator(model=CHAT)  # no error while building
    with pytest.raises(MissingAPIKeyError) as info:
        generator.run("hi")
    assert isinstance(info.value, ValueError)  # what the reference raises
    message = str(info.value)
    assert "STACKIT_API_KEY" in message
    assert "stackit_nb.connect()" in message
    with pytest.raises(MissingAPIKeyError):
        generator.warm_up()


async def test_missing_key_fails_in_run_async(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STACKIT_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="STACKIT_API_KEY"):
        await STACKITChatGenerator(model=CHAT).run_async("hi")


def test_base_url_follows_env_only_when_left_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKIT_API_BASE_URL", "http://127.0.0.1:9/v1")
    assert STACKITChatGenerator(model=CHAT).resolved_api_base_url == "http://127.0.0.1:9/v1"
    assert STACKITChatGenerator(model=CHAT, api_base_url=None).resolved_api_base_url == (
        "http://127.0.0.1:9/v1"
    )
    explicit = STACKITChatGenerator(model=CHAT, api_base_url="http://other:1/v1")
    assert explicit.resolved_api_base_url == "http://other:1/v1"
    monkeypatch.delenv("STACKIT_API_BASE_URL")
    assert STACKITChatGenerator(model=CHAT).resolved_api_base_url == STACKIT_URL


# -- behaviour over HTTP -----------------------------------------------------------------------


def test_run_with_messages_and_with_a_string(server: LocalSTACKIT) -> None:
    generator = STACKITChatGenerator(model=CHAT)
    from_messages = generator.run([ChatMessage.from_user("Tell me a joke.")])["replies"]
    from_string = generator.run("Tell me a joke.")["replies"]
    assert len(from_messages) == 1
    assert from_messages[0].text == from_string[0].text
    assert "joke" in from_messages[0].text.lower() or len(from_messages[0].text) > 10
    meta = from_messages[0].meta
    assert meta["model"] == CHAT
    assert meta["finish_reason"] == "stop"
    assert meta["usage"]["completion_tokens"] > 0
    assert meta["total_time"] > 0
    assert server.requests[-1]["json"]["messages"] == [
        {"role": "user", "content": "Tell me a joke."}
    ]
    assert generator.run([])["replies"] == []


def test_warm_up_and_close(server: LocalSTACKIT) -> None:
    generator = STACKITChatGenerator(model=CHAT)
    generator.warm_up()
    assert generator.client is not None
    generator.close()
    assert generator.client is None
    assert generator.run("who are you")["replies"][0].text.startswith("I am the local")


def test_generation_kwargs_are_merged_per_key(server: LocalSTACKIT) -> None:
    generator = STACKITChatGenerator(
        model=CHAT, generation_kwargs={"max_tokens": 7, "temperature": 0.5}
    )
    reply = generator.run("Write 500 tokens about Berlin", generation_kwargs={"temperature": 0.0})
    sent = server.requests[-1]["json"]
    assert sent["max_tokens"] == 7
    assert sent["temperature"] == 0.0
    assert reply["replies"][0].meta["usage"]["completion_tokens"] == 7
    assert reply["replies"][0].meta["finish_reason"] == "length"


def test_init_callback_streams_and_run_callback_overrides(server: LocalSTACKIT) -> None:
    at_init: list[StreamingChunk] = []
    at_run: list[StreamingChunk] = []
    generator = STACKITChatGenerator(model=CHAT, streaming_callback=at_init.append)
    text = generator.run("Tell me a joke.")["replies"][0].text
    assert "".join(c.content for c in at_init) == text
    assert server.requests[-1]["json"]["stream"] is True
    generator.run("Tell me a joke.", streaming_callback=at_run.append)
    assert "".join(c.content for c in at_run) == text
    assert len(at_init) == len(at_run)  # the init callback was not called the second time


def test_async_callback_is_refused_in_run(server: LocalSTACKIT) -> None:
    async def callback(chunk: StreamingChunk) -> None:
        pass

    with pytest.raises(ValueError, match="coroutine"):
        STACKITChatGenerator(model=CHAT).run("hi", streaming_callback=callback)


def test_tools_produce_tool_calls(server: LocalSTACKIT) -> None:
    generator = STACKITChatGenerator(model="openai/gpt-oss-120b", tools=[weather_tool()])
    reply = generator.run("What is the weather in Berlin?")["replies"][0]
    assert reply.tool_calls[0].tool_name == "get_weather"
    assert reply.tool_calls[0].arguments == {"city": "Berlin"}
    sent = server.requests[-1]["json"]["tools"][0]
    assert sent["function"]["name"] == "get_weather"
    assert "strict" not in sent["function"]


def test_tools_strict_marks_the_schema(server: LocalSTACKIT) -> None:
    generator = STACKITChatGenerator(model="openai/gpt-oss-120b", tools=[weather_tool()])
    generator.run("What is the weather in Berlin?", tools_strict=True)
    function = server.requests[-1]["json"]["tools"][0]["function"]
    assert function["strict"] is True
    assert function["parameters"]["additionalProperties"] is False


def test_run_tools_override_init_tools(server: LocalSTACKIT) -> None:
    other = Tool(
        name="convert_currency",
        description="Convert an amount of money between currencies",
        parameters={"type": "object", "properties": {"amount": {"type": "number"}}},
        function=lambda amount: amount,
    )
    generator = STACKITChatGenerator(model="openai/gpt-oss-120b", tools=[weather_tool()])
    generator.run("Convert 10 euro of money", tools=[other])
    names = [t["function"]["name"] for t in server.requests[-1]["json"]["tools"]]
    assert names == ["convert_currency"]


def test_image_content_reaches_a_vision_model(server: LocalSTACKIT, tmp_path: object) -> None:
    path = f"{tmp_path}/red.png"
    Image.new("RGB", (96, 64), (210, 25, 30)).save(path)
    llm = STACKITChatGenerator(model="Qwen/Qwen3-VL-235B-A22B-Instruct-FP8")
    message = ChatMessage.from_user(
        content_parts=["What does the image show?", ImageContent.from_file_path(path)]
    )
    text = llm.run([message])["replies"][0].text
    assert "red" in text.lower()
    part = server.requests[-1]["json"]["messages"][0]["content"][1]
    assert part["type"] == "image_url"
    assert part["image_url"]["url"].startswith("data:image/png;base64,")


class Joke(BaseModel):
    setup: str
    punchline: str


def test_pydantic_structured_output_is_parsed(server: LocalSTACKIT) -> None:
    generator = STACKITChatGenerator(model=CHAT, generation_kwargs={"response_format": Joke})
    reply = generator.run("Tell me a joke.")["replies"][0]
    assert isinstance(reply.meta["parsed"], Joke)
    assert Joke.model_validate_json(reply.text) == reply.meta["parsed"]
    sent = server.requests[-1]["json"]["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"]["required"] == ["setup", "punchline"]


def test_dict_schema_and_json_object_are_parsed(server: LocalSTACKIT) -> None:
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "city",
            "schema": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
                "required": ["name", "population"],
            },
        },
    }
    generator = STACKITChatGenerator(model=CHAT)
    parsed = generator.run("Berlin", generation_kwargs={"response_format": schema})["replies"][0]
    assert set(parsed.meta["parsed"]) == {"name", "population"}
    assert isinstance(parsed.meta["parsed"]["population"], int)
    as_object = generator.run(
        "Describe Berlin as JSON", generation_kwargs={"response_format": {"type": "json_object"}}
    )["replies"][0]
    assert isinstance(as_object.meta["parsed"], dict)


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content", "both"])
def test_reasoning_is_kept_in_non_streamed_replies(server: LocalSTACKIT, field: str) -> None:
    server.configure(reasoning_field=field)
    reply = STACKITChatGenerator(model="openai/gpt-oss-20b").run("Tell me a joke.")["replies"][0]
    assert reply.reasoning is not None
    assert len(reply.reasoning.reasoning_text) > 20
    assert reply.reasoning.reasoning_text not in reply.text  # kept apart from the answer
