"""Record through the local recording proxy, replay from the cassette: the same bytes come back.

Real HTTP throughout: an upstream local server (scripted engine) stands in for STACKIT, a second
one records in front of it, a third replays the cassette. Every round trip compares the body the
client got while recording with the one it gets on replay, byte for byte, and for streams the
sequence of server-sent events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stackit_nb.local import LocalSTACKIT
from stackit_nb.local.cassette import read

CHAT = "google/gemma-3-27b-it"
EMBED = "intfloat/e5-mistral-7b-instruct"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CITY_SCHEMA = {
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


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": CHAT, "messages": [{"role": "user", "content": text}], **extra}


def events(raw: bytes) -> list[bytes]:
    """The server-sent events of a stream, in order."""
    return [e + b"\n\n" for e in raw.split(b"\n\n") if e]


class Session:
    """A recording in front of an upstream; ``replay()`` serves what was recorded."""

    def __init__(self, upstream: LocalSTACKIT, path: Path) -> None:
        self.upstream, self.path = upstream, path
        self.recorder = LocalSTACKIT(
            upstream=upstream.url, record=path, upstream_api_key=upstream.api_key
        ).start()
        self.http = self.recorder.client(timeout=30)

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(path, json=body)

    def stream(self, path: str, body: dict[str, Any]) -> bytes:
        with self.http.stream("POST", path, json=body) as response:
            assert response.status_code == 200
            return b"".join(response.iter_raw())

    def close(self) -> None:
        self.http.close()
        self.recorder.stop()


@pytest.fixture(scope="module")
def upstream() -> Iterator[LocalSTACKIT]:
    with LocalSTACKIT() as srv:
        yield srv


@pytest.fixture
def session(upstream: LocalSTACKIT, tmp_path: Path) -> Iterator[Session]:
    upstream.faults.clear()
    recording = Session(upstream, tmp_path / "cassettes" / "lesson.jsonl")
    yield recording
    recording.close()
    upstream.faults.clear()


def replayer(path: Path, **options: Any) -> LocalSTACKIT:
    options.setdefault("fallback", None)
    options.setdefault("pace", "fast")
    return LocalSTACKIT(engine="replay", cassette=path, **options).start()


def test_chat_plain_streamed_tools_and_structured_replay_byte_for_byte(session: Session) -> None:
    plain = session.post("/v1/chat/completions", ask("What is photosynthesis?"))
    streamed = session.stream(
        "/v1/chat/completions",
        ask("Tell me about rivers.", stream=True, stream_options={"include_usage": True}),
    )
    forced = {"type": "function", "function": {"name": "get_weather"}}
    tools = ask("Weather in Berlin?", tools=[WEATHER_TOOL], tool_choice=forced)
    called = session.post("/v1/chat/completions", tools)
    call = called.json()["choices"][0]["message"]["tool_calls"][0]
    answered = {
        **tools,
        "messages": [
            *tools["messages"],
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 21}'},
        ],
    }
    after_tool = session.post("/v1/chat/completions", answered)
    tools_streamed = session.stream("/v1/chat/completions", {**tools, "stream": True})
    structured = session.post(
        "/v1/chat/completions", ask("Describe Paris.", response_format=CITY_SCHEMA)
    )
    assert plain.status_code == called.status_code == structured.status_code == 200
    assert call["function"]["name"] == "get_weather"
    assert json.loads(structured.json()["choices"][0]["message"]["content"])["name"]
    session.close()

    with replayer(session.path) as srv, srv.client(timeout=30) as http:
        again = http.post("/v1/chat/completions", json=ask("What is photosynthesis?"))
        assert again.status_code == 200 and again.content == plain.content
        with http.stream(
            "POST",
            "/v1/chat/completions",
            json=ask("Tell me about rivers.", stream=True, stream_options={"include_usage": True}),
        ) as response:
            replayed = b"".join(response.iter_raw())
        assert replayed == streamed
        assert events(replayed) == events(streamed) and len(events(streamed)) > 10
        assert http.post("/v1/chat/completions", json=tools).content == called.content
        assert http.post("/v1/chat/completions", json=answered).content == after_tool.content
        with http.stream("POST", "/v1/chat/completions", json={**tools, "stream": True}) as r:
            assert b"".join(r.iter_raw()) == tools_streamed
        schema = ask("Describe Paris.", response_format=CITY_SCHEMA)
        assert http.post("/v1/chat/completions", json=schema).content == structured.content


def test_the_cassette_keeps_each_stream_event_with_its_time(session: Session) -> None:
    session.upstream.configure(ttft=0.2)
    try:
        streamed = session.stream("/v1/chat/completions", ask("Hello", stream=True))
    finally:
        session.upstream.configure(ttft=0.0)
    session.close()
    (exchange,) = read(session.path)
    assert exchange.response.events is not None
    assert [event for _, event in exchange.response.events] == events(streamed)
    times = [t for t, _ in exchange.response.events]
    # the role event comes at once, the first token after the upstream's time to first token
    assert times == sorted(times) and times[1] >= 0.2


def test_embeddings_replay_byte_for_byte(session: Session) -> None:
    both = {"model": EMBED, "input": ["first text", "second text"]}
    packed = {**both, "encoding_format": "base64"}
    plain, base64 = session.post("/v1/embeddings", both), session.post("/v1/embeddings", packed)
    assert plain.status_code == base64.status_code == 200
    session.close()
    with replayer(session.path) as srv, srv.client() as http:
        assert http.post("/v1/embeddings", json=both).content == plain.content
        assert http.post("/v1/embeddings", json=packed).content == base64.content


def test_errors_and_429s_replay_with_status_headers_and_body(session: Session) -> None:
    session.upstream.faults.fail(status=429, retry_after=2)
    limited = session.post("/v1/chat/completions", ask("Hi"))
    retried = session.post("/v1/chat/completions", ask("Hi"))
    unknown = session.post("/v1/chat/completions", {**ask("Hi"), "model": "no/such-model"})
    invalid = session.post("/v1/chat/completions", {"model": CHAT, "messages": "not a list"})
    assert (limited.status_code, retried.status_code) == (429, 200)
    assert unknown.status_code == 404 and invalid.status_code == 400
    session.close()
    with replayer(session.path) as srv, srv.client() as http:
        for _ in range(2):  # a second run of the notebook replays the 429 again
            first = http.post("/v1/chat/completions", json=ask("Hi"))
            assert first.status_code == 429 and first.content == limited.content
            assert first.headers["retry-after"] == limited.headers["retry-after"] == "2"
            assert first.headers["retry-after-ms"] == "2000"
            second = http.post("/v1/chat/completions", json=ask("Hi"))
            assert second.status_code == 200 and second.content == retried.content
        missing = http.post("/v1/chat/completions", json={**ask("Hi"), "model": "no/such-model"})
        assert missing.status_code == 404 and missing.content == unknown.content
        bad = http.post("/v1/chat/completions", json={"model": CHAT, "messages": "not a list"})
        assert bad.status_code == 400 and bad.content == invalid.content


def test_a_stream_the_upstream_cut_is_cut_again(session: Session) -> None:
    session.upstream.faults.cut_stream(after_chunks=4)
    with (
        pytest.raises(httpx.RemoteProtocolError),
        session.http.stream(
            "POST", "/v1/chat/completions", json=ask("Tell me about rivers.", stream=True)
        ) as response,
    ):
        b"".join(response.iter_raw())
    session.close()
    (exchange,) = read(session.path)
    assert exchange.response.cut and exchange.response.events is not None
    assert len(exchange.response.events) == 4
    with replayer(session.path) as srv, srv.client() as http:
        received = []
        with (
            pytest.raises(httpx.RemoteProtocolError),
            http.stream(
                "POST", "/v1/chat/completions", json=ask("Tell me about rivers.", stream=True)
            ) as response,
        ):
            for chunk in response.iter_raw():
                received.append(chunk)
        assert b"".join(received) == exchange.response.content


def test_requests_match_whatever_their_tool_call_ids_and_user(session: Session) -> None:
    call = {"id": "call_abc", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = {
        "model": CHAT,
        "messages": [
            {"role": "user", "content": "Use f."},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_abc", "content": "42"},
        ],
        "user": "teacher",
    }
    recorded = session.post("/v1/chat/completions", body)
    session.close()
    other = json.loads(json.dumps(body).replace("call_abc", "call_XYZ"))
    other["user"] = "student"
    with replayer(session.path) as srv, srv.client() as http:
        assert http.post("/v1/chat/completions", json=other).content == recorded.content
        changed = {**other, "temperature": 0.5}  # a generation parameter: another request
        assert http.post("/v1/chat/completions", json=changed).status_code == 404


def test_no_match_names_the_cassette_and_the_closest_request(session: Session) -> None:
    session.post("/v1/chat/completions", ask("What is photosynthesis?"))
    session.post("/v1/chat/completions", ask("Tell me a joke."))
    session.close()
    with replayer(session.path) as srv, srv.client() as http:
        refused = http.post("/v1/chat/completions", json=ask("What is photosynthesis, briefly?"))
        assert refused.status_code == 404
        message = refused.json()["error"]["message"]
        assert str(session.path) in message
        assert "closest recorded request (line 2)" in message
        assert "'What is photosynthesis?'" in message and "fallback='scripted'" in message
        other_route = http.post("/v1/embeddings", json={"model": EMBED, "input": "x"})
        assert "holds no POST /v1/embeddings" in other_route.json()["error"]["message"]
        # the model list still answers, so a client explaining the 404 finds the model
        assert http.get("/v1/models").status_code == 200


def test_the_fallback_engine_answers_what_the_cassette_does_not_hold(session: Session) -> None:
    recorded = session.post("/v1/chat/completions", ask("What is photosynthesis?"))
    session.close()
    with replayer(session.path, fallback="scripted") as srv, srv.client() as http:
        assert srv.engine == "replay" and http.get("/_local/config").json()["engine"] == "replay"
        assert http.post("/v1/chat/completions", json=ask("What is photosynthesis?")).content == (
            recorded.content
        )
        fresh = http.post("/v1/chat/completions", json=ask("Tell me a joke."))
        assert fresh.status_code == 200
        assert fresh.json()["system_fingerprint"] == "stackit-nb-local-scripted"
        assert fresh.json()["id"] != recorded.json()["id"]


def test_pace_recorded_waits_as_recorded_and_fast_does_not(session: Session) -> None:
    session.stream("/v1/chat/completions", ask("Hello", stream=True))
    session.post("/v1/chat/completions", ask("Hi"))
    session.close()
    lines = session.path.read_text().splitlines()
    slow = session.path.with_name("slow.jsonl")
    edited = [lines[0]]
    for line in lines[1:]:  # by hand: every event at 0.4 s, the whole reply after 0.4 s
        entry = json.loads(line)
        for event in entry["response"].get("events", []):
            event["t"] = 0.4
        if "after" in entry["response"]:
            entry["response"]["after"] = 0.4
        edited.append(json.dumps(entry))
    slow.write_text("\n".join(edited) + "\n")
    with replayer(slow, pace="recorded") as srv, srv.client() as http:
        started = time.monotonic()
        http.post("/v1/chat/completions", json=ask("Hi"))
        assert time.monotonic() - started >= 0.4
    for entry_line in edited[1:]:
        assert "0.4" in entry_line
    far = session.path.with_name("far.jsonl")  # a minute away: only "fast" can answer in time
    far.write_text(
        slow.read_text().replace('"t": 0.4', '"t": 60').replace('"after": 0.4', '"after": 60')
    )
    with replayer(far, pace="fast") as srv, srv.client(timeout=10) as http:
        assert http.post("/v1/chat/completions", json=ask("Hi")).status_code == 200
        with http.stream("POST", "/v1/chat/completions", json=ask("Hello", stream=True)) as r:
            assert b"data: [DONE]" in b"".join(r.iter_raw())
