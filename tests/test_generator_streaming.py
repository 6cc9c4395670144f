"""Streaming and async: usage, timing, reasoning chunks, callbacks, event loops."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from typing import Any

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import pytest
from haystack.dataclasses import StreamingChunk
from pydantic import BaseModel

from stackit_nb import STACKITChatGenerator, STACKITTextEmbedder
from stackit_nb.local import LocalSTACKIT

CHAT = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
REASONER = "openai/gpt-oss-20b"
EMBED = "intfloat/e5-mistral-7b-instruct"


pytestmark = pytest.mark.usefixtures("reset_server")


def test_streamed_reply_has_usage_by_default(server: LocalSTACKIT) -> None:
    chunks: list[StreamingChunk] = []
    reply = STACKITChatGenerator(model=CHAT).run(
        "Write 500 tokens about Berlin", streaming_callback=chunks.append
    )["replies"][0]
    assert server.requests[-1]["json"]["stream_options"] == {"include_usage": True}
    assert reply.meta["usage"]["completion_tokens"] == 500
    assert reply.meta["usage"]["prompt_tokens"] > 0
    assert reply.meta["finish_reason"] == "stop"
    assert reply.meta["completion_start_time"]
    assert "".join(c.content for c in chunks) == reply.text
    assert chunks[-1].meta["usage"] is not None  # the usage chunk reaches the callback too


def test_callers_stream_options_win(server: LocalSTACKIT) -> None:
    reply = STACKITChatGenerator(
        model=CHAT, generation_kwargs={"stream_options": {"include_usage": False}}
    ).run("Tell me a joke.", streaming_callback=lambda c: None)["replies"][0]
    assert server.requests[-1]["json"]["stream_options"] == {"include_usage": False}
    assert reply.meta["usage"] is None
    assert reply.meta["tokens_per_second"] is None  # cannot be known without usage


def test_no_stream_options_without_streaming(server: LocalSTACKIT) -> None:
    STACKITChatGenerator(model=CHAT).run("Tell me a joke.")
    assert "stream_options" not in server.requests[-1]["json"]


def test_time_to_first_token_and_tokens_per_second(server: LocalSTACKIT) -> None:
    server.configure(ttft=0.3, tokens_per_second=200)
    reply = STACKITChatGenerator(model=CHAT).run(
        "Write 100 tokens about Hamburg", streaming_callback=lambda c: None
    )["replies"][0]
    meta = reply.meta
    assert 0.3 <= meta["time_to_first_token"] < 1.5
    assert 100 <= meta["tokens_per_second"] < 400  # paced at 200/s
    assert meta["total_time"] >= meta["time_to_first_token"] + 0.4


def test_reasoning_streams_as_reasoning_chunks(server: LocalSTACKIT) -> None:
    chunks: list[StreamingChunk] = []
    reply = STACKITChatGenerator(model=REASONER).run(
        "Tell me a joke.", streaming_callback=chunks.append
    )["replies"][0]
    thinking = [c for c in chunks if c.reasoning]
    talking = [c for c in chunks if c.content]
    assert thinking and talking
    assert chunks.index(thinking[-1]) < chunks.index(talking[0])  # reasoning comes first
    assert thinking[0].start and thinking[0].index == 0
    assert not any(c.start for c in thinking[1:])
    assert talking[0].start and talking[0].index == 1
    assert reply.reasoning is not None
    assert reply.reasoning.reasoning_text == "".join(c.reasoning.reasoning_text for c in thinking)
    assert reply.text == "".join(c.content for c in talking)
    assert reply.reasoning.reasoning_text not in reply.text


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_reasoning_from_either_wire_field(server: LocalSTACKIT, field: str) -> None:
    server.configure(reasoning_field=field)
    streamed = STACKITChatGenerator(model=REASONER).run(
        "Tell me a joke.", streaming_callback=lambda c: None
    )["replies"][0]
    server.configure(reasoning_field="both")
    both = STACKITChatGenerator(model=REASONER).run(
        "Tell me a joke.", streaming_callback=lambda c: None
    )["replies"][0]
    assert streamed.reasoning is not None
    # with both fields on the wire the text is taken once, not twice
    assert streamed.reasoning.reasoning_text == both.reasoning.reasoning_text


def test_streamed_tool_call(server: LocalSTACKIT) -> None:
    from haystack.tools import Tool

    tool = Tool(
        name="get_weather",
        description="Weather forecast for a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
        function=str,
    )
    chunks: list[StreamingChunk] = []
    reply = STACKITChatGenerator(model=REASONER, tools=[tool]).run(
        "What is the weather in Berlin?", streaming_callback=chunks.append
    )["replies"][0]
    assert reply.tool_calls[0].tool_name == "get_weather"
    assert reply.tool_calls[0].arguments == {"city": "Berlin"}
    assert reply.meta["finish_reason"] == "tool_calls"
    starts = [c for c in chunks if c.tool_calls and c.start]
    assert len(starts) == 1 and starts[0].tool_calls[0].tool_name == "get_weather"


class City(BaseModel):
    name: str
    population: int


def test_streamed_pydantic_structured_output(server: LocalSTACKIT) -> None:
    chunks: list[StreamingChunk] = []
    reply = STACKITChatGenerator(model=CHAT, generation_kwargs={"response_format": City}).run(
        "Berlin", streaming_callback=chunks.append
    )["replies"][0]
    assert len(chunks) > 3
    assert isinstance(reply.meta["parsed"], City)
    assert reply.meta["parsed"] == City.model_validate_json(reply.text)


# -- async ---------------------------------------------------------------------------------------


async def test_run_async_with_a_string(server: LocalSTACKIT) -> None:
    reply = (await STACKITChatGenerator(model=CHAT).run_async("Tell me a joke."))["replies"][0]
    assert reply.text
    assert reply.meta["usage"]["completion_tokens"] > 0


async def test_run_async_with_async_and_sync_callbacks(server: LocalSTACKIT) -> None:
    generator = STACKITChatGenerator(model=REASONER)
    seen_async: list[StreamingChunk] = []

    async def on_chunk(chunk: StreamingChunk) -> None:
        await asyncio.sleep(0)
        seen_async.append(chunk)

    first = (await generator.run_async("Tell me a joke.", streaming_callback=on_chunk))["replies"]
    seen_sync: list[StreamingChunk] = []
    second = (await generator.run_async("Tell me a joke.", streaming_callback=seen_sync.append))[
        "replies"
    ]
    assert first[0].text == second[0].text == "".join(c.content for c in seen_async)
    assert len(seen_sync) == len(seen_async)
    assert first[0].reasoning is not None
    assert first[0].meta["usage"] is not None


async def test_init_async_callback_in_run_async(server: LocalSTACKIT) -> None:
    seen: list[str] = []

    async def on_chunk(chunk: StreamingChunk) -> None:
        seen.append(chunk.content)

    generator = STACKITChatGenerator(model=CHAT, streaming_callback=on_chunk)
    reply = (await generator.run_async("Tell me a joke."))["replies"][0]
    assert "".join(seen) == reply.text


async def test_one_generator_many_concurrent_calls_one_loop(server: LocalSTACKIT) -> None:
    server.configure(ttft=0.2)
    generator = STACKITChatGenerator(model=CHAT)
    prompts = [f"Write 20 tokens about city number {i}" for i in range(8)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await asyncio.gather(
        *(generator.run_async(p, streaming_callback=lambda c: None) for p in prompts)
    )
    elapsed = loop.time() - started
    assert elapsed < 0.2 * len(prompts) / 2  # they overlapped
    assert all(r["replies"][0].meta["usage"]["completion_tokens"] == 20 for r in results)
    client = generator.async_client
    await generator.run_async("Tell me a joke.")
    assert generator.async_client is client  # one client for the loop's lifetime


def test_asyncio_run_twice_with_one_generator(server: LocalSTACKIT) -> None:
    generator = STACKITChatGenerator(model=CHAT)
    first = asyncio.run(generator.run_async("Tell me a joke."))
    second = asyncio.run(generator.run_async("Tell me a joke."))  # a new loop: a new client
    assert first["replies"][0].text == second["replies"][0].text


@pytest.mark.parametrize("first_loop_ends", ["asyncio.run", "loop.close() alone"])
@pytest.mark.parametrize("component", ["generator", "embedder"])
def test_a_loops_client_is_closed_with_the_loop(
    server: LocalSTACKIT, component: str, first_loop_ends: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Left open, the SDK closes a client when it is garbage-collected, on whatever loop runs
    then; the old loop's sockets fail there and asyncio logs "Task exception was never
    retrieved ... Event loop is closed" into the middle of somebody else's work."""
    gc.collect()  # earlier tests' garbage goes now, outside any loop: this test sees its own
    used: Any = (
        STACKITChatGenerator(model=CHAT)
        if component == "generator"
        else STACKITTextEmbedder(model=EMBED)
    )
    if first_loop_ends == "asyncio.run":
        asyncio.run(used.run_async("Tell me a joke."))
        assert used.async_client.is_closed()  # inside its own loop, as that loop ended
    else:  # closed without shutting down its async generators: nothing tells the client
        loop = asyncio.new_event_loop()
        loop.run_until_complete(used.run_async("Tell me a joke."))
        loop.close()
        assert not used.async_client.is_closed()
    first = used.async_client
    asyncio.run(used.run_async("Tell me a joke."))
    assert first.is_closed()  # at the latest when the next loop took over
    assert used.async_client is not first and used.async_client.is_closed()

    del used, first

    async def somebody_elses_work() -> None:
        gc.collect()
        await asyncio.sleep(0.1)

    with caplog.at_level(logging.ERROR):
        asyncio.run(somebody_elses_work())
        gc.collect()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_cancelling_a_stream_releases_it(server: LocalSTACKIT) -> None:
    server.configure(tokens_per_second=50)
    generator = STACKITChatGenerator(model=CHAT)
    got: list[StreamingChunk] = []

    async def on_chunk(chunk: StreamingChunk) -> None:
        got.append(chunk)

    task = asyncio.create_task(
        generator.run_async("Write 500 tokens about Berlin", streaming_callback=on_chunk)
    )
    while len(got) < 3:
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    server.configure(tokens_per_second=None)
    after = await generator.run_async("Tell me a joke.")  # the generator is still usable
    assert after["replies"][0].text


# -- which server answered -----------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_replies_keep_the_servers_fingerprint(server: LocalSTACKIT, stream: bool) -> None:
    from stackit_nb._streaming import local_engine, model_label

    generator = STACKITChatGenerator(model=CHAT)
    chunks: list[StreamingChunk] = []
    callback = chunks.append if stream else None
    sync = generator.run("Tell me a joke.", streaming_callback=callback)["replies"][0]
    result = await generator.run_async("Tell me a joke.", streaming_callback=callback)
    for reply in (sync, result["replies"][0]):
        assert reply.meta["system_fingerprint"] == "stackit-nb-local-scripted"
        assert local_engine(reply.meta) == "scripted"
        assert model_label(CHAT, reply.meta) == f"{CHAT} (local scripted engine)"
    # every streamed chunk carries it too (the usage chunk included)
    assert bool(chunks) == stream
    assert all(c.meta["system_fingerprint"] == "stackit-nb-local-scripted" for c in chunks)


def test_a_reply_from_elsewhere_names_no_engine() -> None:
    from stackit_nb._streaming import local_engine, model_label

    for meta in ({}, {"system_fingerprint": None}, {"system_fingerprint": "fp_44709d6fcb"}):
        assert local_engine(meta) is None and model_label(CHAT, meta) == CHAT
    assert local_engine({"system_fingerprint": "stackit-nb-local-smollm2"}) == "smollm2"
