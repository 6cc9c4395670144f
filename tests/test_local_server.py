"""The local server over real HTTP: endpoints, options, wire format (openai and httpx clients)."""

from __future__ import annotations

import base64
import io
import json
import math
from typing import Any, Literal

import jsonschema
import openai
import pytest
from PIL import Image
from pydantic import BaseModel

from stackit_nb.fingerprint import local_engine_of
from stackit_nb.local import LocalSTACKIT

CHAT = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
VISION = "google/gemma-3-27b-it"
REASONING = "openai/gpt-oss-20b"


def client(srv: LocalSTACKIT, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url, api_key=srv.api_key, max_retries=0, **kwargs)


def sse_events(srv: LocalSTACKIT, body: dict[str, Any]) -> list[Any]:
    """The raw SSE stream: decoded JSON events, and the literal "[DONE]" last."""
    events: list[Any] = []
    with srv.client() as http, http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if not line:
                continue
            assert line.startswith("data: "), line
            data = line.removeprefix("data: ")
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def streamed_text(events: list[Any], field: str = "content", index: int = 0) -> str:
    return "".join(
        c["delta"].get(field) or ""
        for e in events
        if isinstance(e, dict)
        for c in e["choices"]
        if c["index"] == index
    )


def data_url(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    mime = "jpeg" if fmt == "JPEG" else fmt.lower()
    return f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode()


def image_message(url: str, text: str = "What does the image show?") -> dict[str, Any]:
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": url}},
        ],
    }


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# -- models ---------------------------------------------------------------------------------------


def test_models_lists_the_shared_catalog_with_capabilities(srv: LocalSTACKIT) -> None:
    models = {m.id: m.model_dump() for m in client(srv).models.list()}
    for model_id in [
        "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8",
        "google/gemma-3-27b-it",
        "cortecs/Llama-3.3-70B-Instruct-FP8-Dynamic",
        CHAT,
        "openai/gpt-oss-120b",
        REASONING,
        "intfloat/e5-mistral-7b-instruct",
        "Qwen/Qwen3-VL-Embedding-8B",
        # older ids that the public documentation still shows
        "neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8",
        "meta-llama/Llama-3.2-11B-Vision-Instruct",
    ]:
        assert model_id in models, model_id
    assert "vision" in models[VISION]["capabilities"]
    assert "reasoning" in models[REASONING]["capabilities"]
    assert "tools" in models[REASONING]["capabilities"]
    assert "vision" not in models[CHAT]["capabilities"]
    assert models["intfloat/e5-mistral-7b-instruct"]["capabilities"] == ["embedding"]
    assert all(m["context_length"] > 0 for m in models.values())


def test_single_model_and_unknown_model(srv: LocalSTACKIT) -> None:
    assert client(srv).models.retrieve(VISION).id == VISION
    with pytest.raises(openai.NotFoundError) as err:
        client(srv).models.retrieve("no/such-model")
    assert "no/such-model" in str(err.value)


# -- chat: plain, streamed, equal -----------------------------------------------------------------


def test_chat_completion_shape_and_usage(srv: LocalSTACKIT) -> None:
    reply = client(srv).chat.completions.create(model=CHAT, messages=user("Tell me a joke."))
    assert reply.object == "chat.completion" and reply.model == CHAT
    choice = reply.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert len(choice.message.content or "") > 20
    usage = reply.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_same_request_same_reply(srv: LocalSTACKIT) -> None:
    ask = {"model": CHAT, "messages": user("Explain what a vector database is."), "seed": 3}
    first = client(srv).chat.completions.create(**ask)
    second = client(srv).chat.completions.create(**ask, temperature=0.7)
    assert first.choices[0].message.content == second.choices[0].message.content


def test_stream_wire_format_and_equality_with_non_stream(srv: LocalSTACKIT) -> None:
    body = {"model": CHAT, "messages": user("Tell me a joke about databases.")}
    events = sse_events(srv, {**body, "stream": True, "stream_options": {"include_usage": True}})
    assert events[-1] == "[DONE]"
    first, finish, usage_chunk = events[0], events[-3], events[-2]
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert all(e["object"] == "chat.completion.chunk" for e in events[:-1])
    assert len({e["id"] for e in events[:-1]}) == 1
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage_chunk["choices"] == []
    assert all(e["usage"] is None for e in events[:-2])

    plain = client(srv).chat.completions.create(**body)
    assert streamed_text(events) == plain.choices[0].message.content
    assert usage_chunk["usage"] == plain.usage.model_dump(exclude_none=True)
    content_chunks = [e for e in events[1:-3] if e["choices"][0]["delta"].get("content")]
    # one chunk per generated token: usage counts what was streamed
    assert len(content_chunks) == plain.usage.completion_tokens > 3


def test_every_reply_and_chunk_names_the_local_engine(srv: LocalSTACKIT) -> None:
    body = {"model": REASONING, "messages": user("Why is the sky blue?"), "n": 2}
    plain = client(srv).chat.completions.create(**body)
    assert plain.system_fingerprint == "stackit-nb-local-scripted"
    assert local_engine_of(plain.system_fingerprint) == "scripted"
    events = sse_events(srv, {**body, "stream": True, "stream_options": {"include_usage": True}})
    chunks = events[:-1]
    assert len(chunks) > 10 and chunks[-1]["choices"] == []  # role, pieces, finish, usage chunks
    assert {c["system_fingerprint"] for c in chunks} == {"stackit-nb-local-scripted"}
    # what a real server sends is never taken for the local one
    assert local_engine_of("fp_44709d6fcb") is None and local_engine_of(None) is None


def test_stream_without_usage_option_has_no_usage_chunk(srv: LocalSTACKIT) -> None:
    events = sse_events(srv, {"model": CHAT, "messages": user("Hi"), "stream": True})
    assert all("usage" not in e for e in events[:-1])
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


def test_max_tokens_cuts_with_length(srv: LocalSTACKIT) -> None:
    long_ask = user("Write 300 tokens about rivers.")
    full = client(srv).chat.completions.create(model=CHAT, messages=long_ask)
    assert full.usage.completion_tokens == 300
    cut = client(srv).chat.completions.create(model=CHAT, messages=long_ask, max_tokens=7)
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens == 7
    assert full.choices[0].message.content.startswith(cut.choices[0].message.content)


def test_stop_sequence(srv: LocalSTACKIT) -> None:
    ask = user("Write 200 tokens about rivers.")
    full = client(srv).chat.completions.create(model=CHAT, messages=ask).choices[0].message.content
    stop_word = full.split()[10]
    cut = client(srv).chat.completions.create(model=CHAT, messages=ask, stop=[stop_word])
    text = cut.choices[0].message.content
    assert cut.choices[0].finish_reason == "stop"
    assert stop_word not in text and full.startswith(text) and len(text) < len(full)
    events = sse_events(srv, {"model": CHAT, "messages": ask, "stop": stop_word, "stream": True})
    assert streamed_text(events) == text


def test_n_choices_plain_and_streamed(srv: LocalSTACKIT) -> None:
    ask = {"model": CHAT, "messages": user("Tell me a joke."), "n": 3}
    reply = client(srv).chat.completions.create(**ask)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    events = sse_events(srv, {**ask, "stream": True})
    for choice in reply.choices:
        assert streamed_text(events, index=choice.index) == choice.message.content
    finishes = [c for e in events[:-1] for c in e["choices"] if c["finish_reason"]]
    assert sorted(c["index"] for c in finishes) == [0, 1, 2]


# -- structured output, tools, reasoning ---------------------------------------------------------


class City(BaseModel):
    name: str
    country: str
    population: int
    tags: list[str]
    kind: Literal["capital", "town"]
    mayor: str | None = None


def test_json_object_and_json_schema(srv: LocalSTACKIT) -> None:
    c = client(srv)
    obj = c.chat.completions.create(
        model=CHAT,
        messages=user("Describe Berlin as JSON."),
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(obj.choices[0].message.content), dict)
    schema = City.model_json_schema()
    fmt = {"type": "json_schema", "json_schema": {"name": "City", "schema": schema}}
    reply = c.chat.completions.create(
        model=CHAT, messages=user("Describe Berlin."), response_format=fmt
    )
    data = json.loads(reply.choices[0].message.content)
    jsonschema.validate(data, schema)
    City.model_validate(data)
    events = sse_events(
        srv,
        {
            "model": CHAT,
            "messages": user("Describe Berlin."),
            "response_format": fmt,
            "stream": True,
        },
    )
    assert json.loads(streamed_text(events)) == data


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "city name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}


def test_tool_call_then_final_answer(srv: LocalSTACKIT) -> None:
    c = client(srv)
    messages: list[dict[str, Any]] = user("What's the weather in Berlin right now?")
    reply = c.chat.completions.create(model=REASONING, messages=messages, tools=[WEATHER_TOOL])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER_TOOL["function"]["parameters"])
    assert arguments["location"] == "Berlin"

    streamed = sse_events(
        srv, {"model": REASONING, "messages": messages, "tools": [WEATHER_TOOL], "stream": True}
    )
    deltas = [c["delta"] for e in streamed[:-1] for c in e["choices"] if "tool_calls" in c["delta"]]
    # the same call streamed, under a fresh id: ids are unique per call, as on OpenAI and vLLM
    streamed_id = deltas[0]["tool_calls"][0]["id"]
    assert streamed_id.startswith("call_") and streamed_id != call.id
    assert deltas[0]["tool_calls"][0]["function"]["name"] == "get_weather"
    joined = "".join(d["tool_calls"][0]["function"].get("arguments", "") for d in deltas)
    assert json.loads(joined) == arguments

    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "12 degrees and light rain"},
    ]
    final = c.chat.completions.create(model=REASONING, messages=messages, tools=[WEATHER_TOOL])
    assert final.choices[0].finish_reason == "stop"
    assert "12 degrees and light rain" in final.choices[0].message.content


def test_no_tool_call_when_nothing_matches(srv: LocalSTACKIT) -> None:
    reply = client(srv).chat.completions.create(
        model=REASONING, messages=user("Tell me a joke."), tools=[WEATHER_TOOL]
    )
    assert reply.choices[0].finish_reason == "stop" and not reply.choices[0].message.tool_calls


@pytest.mark.parametrize("field", ["both", "reasoning", "reasoning_content"])
def test_reasoning_fields(srv: LocalSTACKIT, field: str) -> None:
    srv.configure(reasoning_field=field)
    expected = {"reasoning", "reasoning_content"} if field == "both" else {field}
    body = {"model": REASONING, "messages": user("Why is the sky blue?")}
    with srv.client() as http:
        message = http.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]
    present = {k for k in ("reasoning", "reasoning_content") if message.get(k)}
    assert present == expected
    events = sse_events(srv, {**body, "stream": True})
    for name in expected:
        assert streamed_text(events, field=name) == message[name]
    assert streamed_text(events) == message["content"]
    # reasoning streams first, then the answer
    kinds = [
        "r" if c["delta"].get(next(iter(expected))) else "c"
        for e in events[1:-2]
        for c in e["choices"]
        if c["delta"]
    ]
    assert kinds == sorted(kinds, reverse=True) and "r" in kinds and "c" in kinds


def test_non_reasoning_model_has_no_reasoning(srv: LocalSTACKIT) -> None:
    with srv.client() as http:
        body = {"model": CHAT, "messages": user("Why is the sky blue?")}
        message = http.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]
    assert not message.get("reasoning") and not message.get("reasoning_content")


# -- vision ---------------------------------------------------------------------------------------


def test_vision_model_describes_measured_image(srv: LocalSTACKIT) -> None:
    url = data_url(Image.new("RGB", (640, 480), (220, 20, 30)), "JPEG")
    reply = client(srv).chat.completions.create(model=VISION, messages=[image_message(url)])
    text = reply.choices[0].message.content.lower()
    assert "red" in text and "640" in text
    blue = data_url(Image.new("RGB", (64, 64), (20, 40, 230)))
    reply = client(srv).chat.completions.create(model=VISION, messages=[image_message(blue)])
    assert "blue" in reply.choices[0].message.content.lower()


def test_image_to_text_only_model_is_400_naming_vision_models(srv: LocalSTACKIT) -> None:
    url = data_url(Image.new("RGB", (32, 32), "red"))
    with pytest.raises(openai.BadRequestError) as err:
        client(srv).chat.completions.create(model=CHAT, messages=[image_message(url)])
    message = str(err.value)
    assert "image" in message and VISION in message


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("data:image/png;base64," + base64.b64encode(b"not an image at all").decode(), "decode"),
        ("data:image/png;base64,@@@not-base64@@@", "base64"),
        ("https://example.com/apple.jpg", "remote"),
    ],
)
def test_bad_images_are_400_naming_the_problem(srv: LocalSTACKIT, url: str, needle: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client(srv).chat.completions.create(model=VISION, messages=[image_message(url)])
    assert needle in str(err.value).lower()


# -- embeddings -----------------------------------------------------------------------------------


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_unit_vectors_that_cluster_by_words(srv: LocalSTACKIT) -> None:
    texts = [
        "The cat sat on the warm mat.",
        "A cat sat on a mat.",
        "Quarterly revenue grew by eight percent.",
    ]
    # the SDK asks for base64 by default; the float form must decode to the same vectors
    result = client(srv).embeddings.create(model="intfloat/e5-mistral-7b-instruct", input=texts)
    vectors = [d.embedding for d in result.data]
    assert [d.index for d in result.data] == [0, 1, 2]
    assert all(len(v) == 4096 and math.isclose(cosine(v, v), 1.0, rel_tol=1e-4) for v in vectors)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2
    assert result.usage.prompt_tokens > 0
    with srv.client() as http:
        body = {"model": "intfloat/e5-mistral-7b-instruct", "input": texts[0]}
        floats = http.post("/v1/embeddings", json={**body, "encoding_format": "float"}).json()
    assert floats["data"][0]["embedding"] == pytest.approx(vectors[0], abs=1e-6)


def test_embedding_dimensions_only_where_supported(srv: LocalSTACKIT) -> None:
    c = client(srv)
    short = c.embeddings.create(model="Qwen/Qwen3-VL-Embedding-8B", input="hello", dimensions=256)
    assert len(short.data[0].embedding) == 256
    with pytest.raises(openai.BadRequestError) as err:
        c.embeddings.create(model="intfloat/e5-mistral-7b-instruct", input="hi", dimensions=256)
    assert "dimensions" in str(err.value) or "matryoshka" in str(err.value)


def test_embeddings_reject_chat_models_and_too_long_input(srv: LocalSTACKIT) -> None:
    c = client(srv)
    with pytest.raises(openai.BadRequestError, match="embedding"):
        c.embeddings.create(model=CHAT, input="hi")
    with pytest.raises(openai.BadRequestError, match="context length"):
        c.embeddings.create(model="intfloat/e5-mistral-7b-instruct", input="word " * 5000)
