"""The local server against hostile or careless clients: the log, credentials, slow and odd input.

Each test here failed before the server was hardened (requests without the token filled the log,
only Authorization was redacted, the log grew to hundreds of MB, a trickling client held a
connection forever, deep JSON or a NaN latency broke the admin endpoints or every later request).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from stackit_nb.local import LocalSTACKIT
from stackit_nb.local import guard as guard_module
from stackit_nb.local.faults import RequestLog

CHAT = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
ASK = {"model": CHAT, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}


@pytest.fixture
def fresh() -> Iterator[LocalSTACKIT]:
    """A server of its own, for settings the shared one must not keep."""
    with LocalSTACKIT() as srv:
        yield srv


def raw(srv: LocalSTACKIT) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port or 0))
    sock.settimeout(10)  # far above the deadlines below: only a server that never closes trips it
    return sock


def closed_within(sock: socket.socket) -> tuple[float, bytes]:
    """Seconds until the server closes ``sock`` (reading whatever it sent), and the bytes."""
    start, data = time.monotonic(), b""
    while chunk := sock.recv(4096):
        data += chunk
    return time.monotonic() - start, data


# -- the request log ----------------------------------------------------------------------------


def test_requests_without_the_token_are_not_logged_and_evict_nothing(srv: LocalSTACKIT) -> None:
    with srv.client() as http:
        assert http.post("/v1/chat/completions", json=ASK).status_code == 200
    before = srv.requests
    with httpx.Client(base_url=srv.url) as stranger:
        for token in ("", "Bearer wrong", f"Bearer {srv.api_key}x", srv.api_key):
            refused = stranger.post("/chat/completions", json=ASK, headers={"Authorization": token})
            assert refused.status_code == 401
    assert srv.requests == before


def test_every_credential_header_is_redacted(srv: LocalSTACKIT) -> None:
    secrets = {
        "X-Api-Key": "xkey-secret-1",
        "Cookie": "session=cookie-secret-2",
        "Proxy-Authorization": "Basic proxy-secret-3",
        "Api-Key": "azure-secret-4",
    }
    with srv.client() as http:
        http.get("/v1/models", headers=secrets)
    logged = json.dumps(srv.requests)
    for value in (*secrets.values(), srv.api_key):
        assert value not in logged
    headers = srv.requests[-1]["headers"]
    assert headers["x-api-key"] == headers["cookie"] == headers["proxy-authorization"] == "***"
    assert headers["authorization"] == "Bearer ***"


def test_the_log_is_bounded_by_bytes_not_only_entries(srv: LocalSTACKIT) -> None:
    big = {"model": "no/such-model", "input": "x" * 900_000}  # a 404 with a 0.9 MB body
    with srv.client() as http:
        for _ in range(24):  # 21.6 MB of bodies
            assert http.post("/v1/embeddings", json=big).status_code == 404
    entries = srv.requests
    kept = sum(len(json.dumps(e["json"])) for e in entries)
    assert kept <= 16 * 1024 * 1024
    assert 10 <= len(entries) < 24  # the oldest went, the newest stayed
    assert entries[-1]["status"] == 404 and entries[-1]["json"]["input"] == big["input"]


def test_request_log_keeps_the_newest_entry_even_when_it_alone_is_over_the_bound() -> None:
    log = RequestLog(limit=10, max_bytes=100)
    first = log.record("POST", "/v1/a", {})
    log.attach(first, b'{"a": "' + b"y" * 500 + b'"}')
    second = log.record("POST", "/v1/b", {})
    log.attach(second, b'{"b": "' + b"z" * 500 + b'"}')
    assert [e["path"] for e in log.entries()] == ["/v1/b"]


def test_the_token_is_compared_in_constant_time(
    srv: LocalSTACKIT, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = guard_module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(guard_module.hmac, "compare_digest", spy)
    with httpx.Client(base_url=srv.url) as stranger:
        assert stranger.get("/models", headers={"Authorization": "Bearer nope"}).status_code == 401
        # a header that is not ASCII is refused, not a 500
        odd = {"Authorization": "Bearer caf\xe9".encode("latin-1")}
        assert stranger.get("/models", headers=odd).status_code == 401  # type: ignore[arg-type]
    assert compared and all(isinstance(a, bytes) for a, _ in compared)


# -- slow clients ---------------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed(fresh: LocalSTACKIT) -> None:
    fresh.configure(read_timeout=0.5)
    took, data = closed_within(raw(fresh))
    assert data == b"" and took < 5


def test_headers_trickled_byte_by_byte_are_cut_off(fresh: LocalSTACKIT) -> None:
    fresh.configure(read_timeout=0.5)
    sock = raw(fresh)
    start = time.monotonic()
    for byte in b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: ":
        try:
            sock.sendall(bytes([byte]))
        except OSError:  # closed while we were still trickling
            break
        if time.monotonic() - start > 0.6:
            break
        time.sleep(0.05)
    _, data = closed_within(sock)
    assert data == b"" and time.monotonic() - start < 5


def test_a_body_that_stalls_gets_408(fresh: LocalSTACKIT) -> None:
    fresh.configure(read_timeout=0.5)
    sock = raw(fresh)
    sock.sendall(
        b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {fresh.api_key}\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    start = time.monotonic()
    data = sock.recv(4096)  # the answer comes at the deadline (the connection may stay open)
    assert data.startswith(b"HTTP/1.1 408") and time.monotonic() - start < 5
    while b"did not arrive" not in data and (chunk := sock.recv(4096)):
        data += chunk
    assert b"did not arrive within 0.5 s" in data


def test_an_idle_kept_alive_connection_is_closed(fresh: LocalSTACKIT) -> None:
    sock = raw(fresh)
    sock.sendall(
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {fresh.api_key}\r\n\r\n".encode()
    )
    took, data = closed_within(sock)  # the response, then nothing: uvicorn's 5 s keep-alive
    assert data.startswith(b"HTTP/1.1 200") and took < 9


def test_requests_at_a_normal_pace_are_untouched(fresh: LocalSTACKIT) -> None:
    fresh.configure(read_timeout=0.5)
    with fresh.client() as http:
        assert http.get("/v1/models").status_code == 200
        time.sleep(0.8)  # idle longer than the header deadline, shorter than keep-alive
        assert http.post("/v1/chat/completions", json=ASK).status_code == 200


# -- admin input ------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/_local/faults", "/_local/config"])
@pytest.mark.parametrize(
    "body", ["[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000]
)
def test_deep_json_to_the_admin_endpoints_is_a_clear_400(
    srv: LocalSTACKIT, route: str, body: str
) -> None:
    with srv.client() as http:
        response = http.post(route, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("route", "body", "says"),
    [
        ("/_local/faults", '{"kind": "latency", "seconds": NaN}', "latency must be a finite"),
        ("/_local/faults", '{"kind": "stall_stream", "seconds": Infinity}', "seconds must be"),
        ("/_local/faults", '{"status": 429, "retry_after": "1\\r\\nX-Evil: 1"}', "retry_after"),
        ("/_local/faults", '{"status": 500, "path": 123}', "path must be a string"),
        ("/_local/faults", '{"status": 500, "times": 1.5}', "times must be a whole number"),
        ("/_local/faults", '{"status": true}', "cannot be injected"),
        ("/_local/faults", '{"kind": ["status"]}', "kind must be a string"),
        ("/_local/config", '{"ttft": Infinity}', "ttft must be a finite"),
        ("/_local/config", '{"ttft": NaN}', "ttft must be a finite"),
        ("/_local/config", '{"tokens_per_second": "fast"}', "tokens_per_second must be"),
        ("/_local/config", '{"read_timeout": 0}', "read_timeout must be > 0"),
        ("/_local/config", '{"reasoning_field": {"a": 1}}', "reasoning_field must be"),
    ],
)
def test_bad_fault_and_config_values_are_400_and_break_nothing(
    srv: LocalSTACKIT, route: str, body: str, says: str
) -> None:
    with srv.client() as http:
        response = http.post(route, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and says in response.json()["error"]["message"]
        assert http.get("/_local/faults").json() == {"status": [], "stream": [], "latency": 0.0}
        assert http.post("/v1/chat/completions", json=ASK, timeout=10).status_code == 200


def test_retry_after_is_only_ever_digits(srv: LocalSTACKIT) -> None:
    srv.faults.fail(status=429, retry_after=1.2)
    with srv.client() as http:
        response = http.post("/v1/chat/completions", json=ASK)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2" and response.headers["retry-after-ms"] == "1200"
