"""The local server's auth, error bodies, limits, fault injection, concurrency and lifecycle."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import openai
import pytest

from stackit_nb.local import LocalSTACKIT
from stackit_nb.local.server import create_app

CHAT = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
ASK = {"model": CHAT, "messages": [{"role": "user", "content": "Tell me a joke."}]}


def client(srv: LocalSTACKIT, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url, api_key=srv.api_key, max_retries=0, **kwargs)


def post(srv: LocalSTACKIT, body: Any = None, **kwargs: Any) -> httpx.Response:
    with srv.client() as http:
        return http.post("/v1/chat/completions", json=body, **kwargs)


# -- auth and error bodies ------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic abc"])
def test_auth_required(srv: LocalSTACKIT, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    r = httpx.post(srv.url + "/chat/completions", json=ASK, headers=headers)
    assert r.status_code == 401
    error = r.json()["error"]
    assert error["code"] == 401 and error["type"] == "AuthenticationError"
    assert "Bearer" in error["message"] and srv.api_key not in r.text
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=srv.url, api_key="wrong", max_retries=0).models.list()


#: Open without the token, as on vLLM: a liveness probe and the API's documentation.
OPEN_PATHS = {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def test_every_api_and_admin_route_needs_the_token(srv: LocalSTACKIT) -> None:
    routes = [
        (method, route.path)
        for route in create_app().routes
        for method in sorted(getattr(route, "methods", None) or [])
        if method != "HEAD"
    ]
    guarded = [(m, p) for m, p in routes if p not in OPEN_PATHS]
    assert {p for _, p in routes} - {p for _, p in guarded} == OPEN_PATHS  # nothing else is open
    assert len(guarded) >= 11 and all(p.startswith(("/v1/", "/_local/")) for _, p in guarded)
    root = srv.url.removesuffix("/v1")
    for method, path in guarded:
        url = root + path.replace("{model_id:path}", CHAT)
        body = ASK if method == "POST" else None
        for headers in [{}, {"Authorization": "Bearer wrong-token"}]:
            r = httpx.request(method, url, json=body, headers=headers)
            assert r.status_code == 401, (method, path, r.status_code)
    for path in OPEN_PATHS:  # what the open ones show holds no secret
        r = httpx.get(root + path)
        assert r.status_code == 200 and srv.api_key not in r.text, path


def test_unknown_model_404_names_it(srv: LocalSTACKIT) -> None:
    r = post(srv, {**ASK, "model": "meta/llama-99"})
    assert r.status_code == 404
    assert r.json()["error"] == {
        "message": "The model `meta/llama-99` does not exist.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }


def test_vllm_error_shape(srv: LocalSTACKIT) -> None:
    srv.configure(error_shape="vllm")
    body = post(srv, {**ASK, "model": "meta/llama-99"}).json()
    assert body["object"] == "error" and body["code"] == 404 and "meta/llama-99" in body["message"]
    with pytest.raises(openai.NotFoundError, match="meta/llama-99"):
        client(srv).chat.completions.create(**{**ASK, "model": "meta/llama-99"})


def test_malformed_json_is_400(srv: LocalSTACKIT) -> None:
    r = post(
        srv, content=b'{"model": "x", "messages": [', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "Malformed JSON" in r.json()["error"]["message"]


TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"messages": ASK["messages"]}, "model"),
        ({"model": CHAT}, "messages"),
        ({"model": CHAT, "messages": []}, "messages"),
        ({"model": CHAT, "messages": [{"role": "wizard", "content": "hi"}]}, "role"),
        ({**ASK, "max_tokens": 0}, "max_tokens"),
        ({**ASK, "temperature": 5}, "temperature"),
        ({**ASK, "n": "many"}, "n"),
        ({**ASK, "response_format": {"type": "yaml"}}, "response_format"),
        ({**ASK, "tools": [{"type": "function"}]}, "tools"),
        ({**ASK, "tool_choice": "required"}, "`tools` must be set"),
        ({**ASK, "tool_choice": {"type": "function", "function": {"name": "f"}}}, "must be set"),
        ({**ASK, "tools": [TOOL], "tool_choice": "sometimes"}, "tool_choice 'sometimes'"),
        (
            {**ASK, "tools": [TOOL], "tool_choice": {"function": {"name": "get_time"}}},
            "Tool 'get_time' has not been passed in `tools`",
        ),
        ({**ASK, "messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "audio"),
    ],
)
def test_invalid_fields_are_400_naming_the_field(
    srv: LocalSTACKIT, body: dict[str, Any], needle: str
) -> None:
    r = post(srv, body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]["message"]


def test_body_over_32_mib_is_413(srv: LocalSTACKIT) -> None:
    huge = json.dumps({**ASK, "padding": "x" * (33 * 1024 * 1024)}).encode()
    r = post(srv, content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "32 MiB" in r.json()["error"]["message"]

    def chunked():  # no Content-Length: the limit must hold while reading
        for _ in range(34):
            yield b" " * (1024 * 1024)

    r = post(srv, content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_prompt_over_context_is_400(srv: LocalSTACKIT) -> None:
    long_prompt = "word " * 40_000  # gemma-3 has a ~37k context
    body = {
        "model": "google/gemma-3-27b-it",
        "messages": [{"role": "user", "content": long_prompt}],
    }
    r = post(srv, body)
    assert r.status_code == 400
    assert "maximum context length" in r.json()["error"]["message"]
    ok = post(srv, {**body, "model": "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8"})
    assert ok.status_code == 200


# -- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (502, openai.InternalServerError),
        (503, openai.InternalServerError),
        (403, openai.PermissionDeniedError),
    ],
)
def test_status_faults(srv: LocalSTACKIT, status: int, error: type[Exception]) -> None:
    srv.faults.fail(status=status, times=2, retry_after=3 if status == 429 else None)
    for _ in range(2):
        r = post(srv, ASK)
        assert r.status_code == status and r.json()["error"]["code"] == status
    if status == 429:
        assert r.headers["Retry-After"] == "3" and "Retry after 3 seconds" in r.text
    assert post(srv, ASK).status_code == 200  # the queue is used up
    srv.faults.fail(status=status)
    with pytest.raises(error):
        client(srv).chat.completions.create(**ASK)


def test_sdk_retries_through_queued_429s(srv: LocalSTACKIT) -> None:
    srv.faults.fail(status=429, times=2, retry_after=0.1)
    reply = openai.OpenAI(base_url=srv.url, api_key=srv.api_key, max_retries=3)
    assert reply.chat.completions.create(**ASK).choices[0].message.content
    statuses = [r["status"] for r in srv.requests if r["path"] == "/v1/chat/completions"]
    assert statuses == [429, 429, 200]


def test_fault_path_filter(srv: LocalSTACKIT) -> None:
    srv.faults.fail(status=500, path="/v1/embeddings")
    assert post(srv, ASK).status_code == 200
    with srv.client() as http:
        body = {"model": "intfloat/e5-mistral-7b-instruct", "input": "x"}
        assert http.post("/v1/embeddings", json=body).status_code == 500


def test_latency_fault_and_client_timeout(srv: LocalSTACKIT) -> None:
    srv.faults.latency(1.0)
    with pytest.raises(openai.APITimeoutError):
        client(srv, timeout=0.3).chat.completions.create(**ASK)
    srv.faults.latency(0)
    assert client(srv, timeout=5).chat.completions.create(**ASK).choices


def test_cut_stream(srv: LocalSTACKIT) -> None:
    srv.faults.cut_stream(after_chunks=3)
    received = []
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for chunk in client(srv).chat.completions.create(**ASK, stream=True):
            received.append(chunk)
    assert len(received) == 3
    assert client(srv).chat.completions.create(**ASK).choices  # next request is healthy


def test_malformed_chunk(srv: LocalSTACKIT) -> None:
    srv.faults.malformed_chunk(after_chunks=2)
    with (
        srv.client() as http,
        http.stream("POST", "/v1/chat/completions", json={**ASK, "stream": True}) as r,
    ):
        lines = [line for line in r.iter_lines() if line]
    bad = [line for line in lines if line != "data: [DONE]" and not _is_json(line[6:])]
    assert len(bad) == 1 and lines.index(bad[0]) == 2 and lines[-1] == "data: [DONE]"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_stall_stream_trips_the_read_timeout(srv: LocalSTACKIT) -> None:
    srv.faults.stall_stream(after_chunks=2, seconds=3)
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for _ in client(srv, timeout=0.5).chat.completions.create(**ASK, stream=True):
            pass


def test_invalid_json_body_fault(srv: LocalSTACKIT) -> None:
    srv.faults.invalid_json()
    r = post(srv, ASK)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()


def test_admin_endpoints_over_http(srv: LocalSTACKIT) -> None:
    with srv.client() as http:
        assert (
            http.post("/_local/faults", json={"kind": "status", "status": 503}).status_code == 200
        )
        assert post(srv, ASK).status_code == 503
        http.post("/_local/faults", json={"kind": "cut_stream", "after_chunks": 1})
        assert http.get("/_local/faults").json()["stream"][0]["kind"] == "cut_stream"
        assert http.delete("/_local/faults").json()["stream"] == []
        bad = http.post("/_local/faults", json={"kind": "explode"})
        assert bad.status_code == 400 and "unknown fault kind" in bad.text
        assert http.post("/_local/faults", json={"status": 418}).status_code == 400
        config = http.post("/_local/config", json={"ttft": 0.05}).json()
        assert config["ttft"] == 0.05 and "api_key" not in config
        assert http.post("/_local/config", json={"api_key": "x"}).status_code == 400
        log = http.get("/_local/requests").json()["data"]
    assert srv.api_key not in json.dumps(log)
    chat = [e for e in log if e["path"] == "/v1/chat/completions"]
    assert chat[0]["headers"]["authorization"] == "Bearer ***"
    assert chat[0]["json"]["messages"] == ASK["messages"] and chat[0]["status"] == 503


def test_request_log_redacts_the_token(srv: LocalSTACKIT) -> None:
    client(srv).chat.completions.create(**ASK)
    entry = srv.requests[-1]
    assert entry["method"] == "POST" and entry["json"]["model"] == CHAT and entry["status"] == 200
    assert srv.api_key not in repr(srv.requests) and srv.api_key not in repr(srv)


# -- pacing, concurrency, lifecycle ---------------------------------------------------------------


def test_time_to_first_token_and_pace(srv: LocalSTACKIT) -> None:
    srv.configure(ttft=0.3, tokens_per_second=100)
    start = time.perf_counter()
    arrivals = []
    for chunk in client(srv).chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Write 30 tokens about tea."}],
        stream=True,
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter() - start)
    assert len(arrivals) == 30
    assert arrivals[0] >= 0.3  # lower bounds only: a loaded machine is slower, never faster
    assert arrivals[-1] - arrivals[0] >= 29 / 100 * 0.9


async def test_32_concurrent_streams_all_complete(srv: LocalSTACKIT) -> None:
    srv.configure(tokens_per_second=400)
    aclient = openai.AsyncOpenAI(base_url=srv.url, api_key=srv.api_key, max_retries=0)
    expected = client(srv).chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "Write 60 tokens about trains."}]
    )

    async def one() -> str:
        stream = await aclient.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "Write 60 tokens about trains."}],
            stream=True,
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    replies = await asyncio.gather(*(one() for _ in range(32)))
    await aclient.close()
    assert replies == [expected.choices[0].message.content] * 32


def test_stop_frees_the_port_and_ends_open_streams() -> None:
    srv = LocalSTACKIT(tokens_per_second=20).start()
    port = srv.port
    assert port is not None
    stream = client(srv).chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Write 500 tokens about tea."}],
        stream=True,
    )
    next(iter(stream))
    started = time.perf_counter()
    srv.stop()
    assert time.perf_counter() - started < 8
    assert not srv.running
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass
    with LocalSTACKIT(port=port) as again:  # the port is free for the next server
        assert again.port == port
    srv.stop()  # twice is fine


def test_refuses_non_loopback_unless_allowed() -> None:
    with pytest.raises(ValueError, match="allow_remote"):
        LocalSTACKIT(host="0.0.0.0")
    LocalSTACKIT(host="0.0.0.0", allow_remote=True)  # constructing does not bind
    assert LocalSTACKIT(host="localhost").host == "localhost"


def test_serve_command(tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKIT_")}
    exe = [sys.executable, "-m", "stackit_nb.cli"]
    refused = subprocess.run(
        [*exe, "serve", "--host", "0.0.0.0"], capture_output=True, text=True, env=env
    )
    assert refused.returncode == 2 and "--allow-remote" in refused.stderr
    proc = subprocess.Popen(
        [*exe, "serve", "--port", "0", "--api-key", "local-test-token", "--engine", "scripted"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "Local STACKIT-compatible server on http://127.0.0.1:" in line
        url = line.split(" on ")[1].split()[0]
        headers = {"Authorization": "Bearer local-test-token"}
        r = httpx.post(url + "/chat/completions", json=ASK, headers=headers, timeout=10)
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
