"""stackit_nb.connect(): STACKIT with a key, else a local server, said in one line."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import httpx
import pytest

import stackit_nb

STACKIT_URL = "https://api.openai-compat.model-serving.eu01.onstackit.cloud/v1"


@pytest.fixture(autouse=True)
def _no_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without a key or URL and leaves no server behind."""
    monkeypatch.delenv("STACKIT_API_KEY", raising=False)
    monkeypatch.delenv("STACKIT_API_BASE_URL", raising=False)
    yield
    conn = importlib.import_module("stackit_nb.connection").current()
    if conn is not None:
        conn.stop()


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


def test_with_key_and_local_url_says_local(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("STACKIT_API_KEY", "local-token")
    monkeypatch.setenv("STACKIT_API_BASE_URL", "http://127.0.0.1:8765/v1")
    conn = stackit_nb.connect()
    assert conn.backend == "local" and conn.server is None
    out = capsys.readouterr().out
    assert "local STACKIT-compatible server at http://127.0.0.1:8765/v1" in out
    assert "local-token" not in out


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
