"""stackit_nb.connect(): STACKIT with a key, else a local server, said in one line."""

from __future__ import annotations

import importlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import httpx
import pytest

import stackit_nb
from stackit_nb.connection import ENGINE_QUERY_TIMEOUT
from stackit_nb.local import LocalSTACKIT

STACKIT_URL = "https://api.openai-compat.model-serving.eu01.onstackit.cloud/v1"


pytestmark = pytest.mark.usefixtures("no_backend")


def test_without_key_starts_a_local_server(capsys: pytest.CaptureFixture) -> None:
    conn = stackit_nb.connect()
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.startswith("stackit_nb: no STACKIT_API_KEY set - using the local")
    assert conn.url in out and "(scripted engine)" in out
    assert conn.backend == "local"
    assert os.environ["STACKIT_API_BASE_URL"] == conn.url
    key = os.environ["STACKIT_API_KEY"]
    assert key not in out
    models = httpx.get(f"{conn.url}/models", headers={"Authorization": f"Bearer {key}"})
    assert models.status_code == 200


def test_is_idempotent_and_stop_restores_the_environment(capsys: pytest.CaptureFixture) -> None:
    first = stackit_nb.connect()
    second = stackit_nb.connect(quiet=True)
    assert first is second
    assert capsys.readouterr().out.count("\n") == 1  # quiet printed nothing
    server = first.server
    assert server is not None and server.running
    first.stop()
    assert not server.running
    assert "STACKIT_API_KEY" not in os.environ
    assert "STACKIT_API_BASE_URL" not in os.environ
    third = stackit_nb.connect(quiet=True)
    assert third is not first and third.url != ""


def test_stop_restores_previous_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKIT_API_BASE_URL", "https://example.invalid/v1")
    conn = stackit_nb.connect(quiet=True)
    assert os.environ["STACKIT_API_BASE_URL"] == conn.url
    conn.stop()
    assert os.environ["STACKIT_API_BASE_URL"] == "https://example.invalid/v1"


def test_a_key_set_after_connect_goes_to_stackit_not_the_local_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = stackit_nb.connect(quiet=True)  # no key yet: a local server and its token
    server = local.server
    assert server is not None and os.environ["STACKIT_API_KEY"] == server.api_key
    monkeypatch.setenv("STACKIT_API_KEY", "sk-users-own-key")  # then the user sets theirs
    conn = stackit_nb.connect(quiet=True)
    # what the first connect() set is gone (its server, its URL), what the user set stays
    assert not server.running and local.server is None
    assert "STACKIT_API_BASE_URL" not in os.environ
    assert (conn.backend, conn.url) == ("stackit", STACKIT_URL)
    local.stop()  # the first connection's handle, stopped again later: the key is the user's
    conn.stop()
    assert os.environ["STACKIT_API_KEY"] == "sk-users-own-key"


def test_stop_keeps_what_the_user_changed_since(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = stackit_nb.connect(quiet=True)
    monkeypatch.setenv("STACKIT_API_BASE_URL", "http://127.0.0.1:9/v1")  # their own server
    conn.stop()
    assert os.environ["STACKIT_API_BASE_URL"] == "http://127.0.0.1:9/v1"
    assert "STACKIT_API_KEY" not in os.environ  # connect() set it, nobody changed it: dropped


def test_with_key_uses_stackit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("STACKIT_API_KEY", "sk-real-looking-secret")
    conn = stackit_nb.connect()
    out = capsys.readouterr().out
    assert conn.backend == "stackit" and conn.server is None
    assert out == f"stackit_nb: using STACKIT at {STACKIT_URL} (key from STACKIT_API_KEY)\n"
    assert "sk-real-looking-secret" not in out + conn._repr_markdown_() + repr(conn)
    assert os.environ["STACKIT_API_KEY"] == "sk-real-looking-secret"


def test_reusing_the_server_from_the_environment_names_its_engine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """What a kernel of `make lab` sees: the lab's server URL and its local token."""
    with LocalSTACKIT() as srv:
        monkeypatch.setenv("STACKIT_API_KEY", srv.api_key)
        monkeypatch.setenv("STACKIT_API_BASE_URL", srv.url)
        conn = stackit_nb.connect()
        out = capsys.readouterr().out
        assert out == (
            f"stackit_nb: using a local STACKIT-compatible server at {srv.url} (scripted engine; "
            "from STACKIT_API_BASE_URL; key from STACKIT_API_KEY)\n"
        )
        assert conn.backend == "local" and conn.server is None and conn.engine == "scripted"
        assert srv.api_key not in out + conn._repr_markdown_() + repr(conn)
        assert "scripted engine" in conn._repr_markdown_()
        # asking for the engine it runs keeps using it
        assert stackit_nb.connect(engine="scripted", quiet=True) is conn


class _OtherServer(BaseHTTPRequestHandler):
    """A local HTTP server that is not a STACKIT-compatible one: 404 for everything."""

    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def other_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OtherServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections (the kernel's backlog does) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


@pytest.fixture
def refusing_url() -> str:
    with socket.socket() as sock:  # a port nothing listens on once this socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize("where", ["other_server", "silent_server", "refusing_url", "wrong_key"])
def test_engine_unknown_when_the_server_does_not_say(
    where: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    with LocalSTACKIT() as srv:
        url = srv.url if where == "wrong_key" else request.getfixturevalue(where)
        monkeypatch.setenv("STACKIT_API_KEY", "local-token")
        monkeypatch.setenv("STACKIT_API_BASE_URL", url)
        started = time.monotonic()
        conn = stackit_nb.connect()
        took = time.monotonic() - started
    assert took < ENGINE_QUERY_TIMEOUT + 1.5
    assert conn.backend == "local" and conn.server is None and conn.engine is None
    assert capsys.readouterr().out == (
        f"stackit_nb: using a local STACKIT-compatible server at {url} (engine unknown; "
        "from STACKIT_API_BASE_URL; key from STACKIT_API_KEY)\n"
    )


def test_a_named_engine_the_found_server_lacks_gets_a_server_of_its_own(
    other_server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("STACKIT_API_KEY", "local-token")
    monkeypatch.setenv("STACKIT_API_BASE_URL", other_server)
    assert stackit_nb.connect(quiet=True).engine is None  # "auto" uses it, whatever it runs
    conn = stackit_nb.connect(engine="scripted")
    assert conn.server is not None and conn.engine == "scripted" and conn.url != other_server
    assert capsys.readouterr().out == (
        f"stackit_nb: started a local STACKIT-compatible server at {conn.url} (scripted engine, "
        f"as asked; the server at {other_server} runs an unknown engine)\n"
    )
    key = os.environ["STACKIT_API_KEY"]
    assert key != "local-token" and os.environ["STACKIT_API_BASE_URL"] == conn.url
    models = httpx.get(f"{conn.url}/models", headers={"Authorization": f"Bearer {key}"})
    assert models.status_code == 200
    conn.stop()
    assert os.environ["STACKIT_API_KEY"] == "local-token"
    assert os.environ["STACKIT_API_BASE_URL"] == other_server


def test_documentation_code_runs_after_connect() -> None:
    from haystack.dataclasses import ChatMessage

    from stackit_nb import STACKITChatGenerator

    stackit_nb.connect(quiet=True)
    generator = STACKITChatGenerator(model="neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8")
    result = generator.run([ChatMessage.from_user("Tell me a joke.")])
    assert result["replies"][0].text


def test_connect_is_the_function_after_importing_its_module() -> None:
    module = importlib.import_module("stackit_nb.connection")
    from stackit_nb.connection import Connection

    conn = module.connect(quiet=True)
    assert isinstance(conn, Connection)
    assert callable(stackit_nb.connect)
    assert stackit_nb.connect(quiet=True) is conn


def test_markdown_repr(capsys: pytest.CaptureFixture) -> None:
    conn = stackit_nb.connect(quiet=True)
    assert conn.url in conn._repr_markdown_()
    assert ".stop()" in conn._repr_markdown_()
    assert str(conn) == conn.line


def test_configure_paces_the_local_server_it_points_at() -> None:
    conn = stackit_nb.connect(quiet=True)
    assert conn.configure(tokens_per_second=250)["tokens_per_second"] == 250
    assert conn.server is not None and conn.server.settings.tokens_per_second == 250
    with pytest.raises(ValueError, match="refused"):
        conn.configure(api_key="nope")
    conn.configure(tokens_per_second=None)
