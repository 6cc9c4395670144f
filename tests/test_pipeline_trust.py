"""A loaded pipeline may not choose where the key goes: proxies, TLS checks off, extra headers,
another key variable or a foreign URL are refused unless the caller trusts the file."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import pytest
import yaml
from haystack import Pipeline
from haystack.core.errors import DeserializationError
from haystack.dataclasses import ChatMessage

import stackit_nb
from stackit_nb import STACKITChatGenerator, STACKITDocumentEmbedder, STACKITTextEmbedder
from stackit_nb.errors import UntrustedSettingsError
from stackit_nb.local import LocalSTACKIT

CHAT = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
STACKIT = "https://api.openai-compat.model-serving.eu01.onstackit.cloud/v1"


def pipeline_yaml(**init: Any) -> str:
    """A saved pipeline of one generator whose init parameters are changed as a file could."""
    pipeline = Pipeline()
    pipeline.add_component("llm", STACKITChatGenerator(model=CHAT))
    data = pipeline.to_dict()
    data["components"]["llm"]["init_parameters"].update(init)
    return yaml.safe_dump(data)


def refused(text: str) -> str:
    with pytest.raises(DeserializationError) as caught:
        Pipeline.loads(text, allowed_modules=["stackit_nb"])
    cause = caught.value.__cause__
    assert isinstance(cause, UntrustedSettingsError), caught.value
    message = str(cause)
    assert "stackit_nb.trust_loaded_settings()" in message
    assert "STACKIT_NB_TRUST_LOADED_SETTINGS=1" in message
    return message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"proxy": "http://127.0.0.1:8080", "verify": False},
        {"headers": {"X-Forward-To": "elsewhere"}},
        {"base_url": "https://elsewhere.example"},
        {"auth": ["user", "pass"]},
        {"transport": "anything"},
        {"mounts": {"all://": None}},
    ],
)
def test_routing_client_kwargs_are_refused(kwargs: dict[str, Any]) -> None:
    message = refused(pipeline_yaml(http_client_kwargs=kwargs))
    assert all(repr(key) in message for key in kwargs), message


def test_another_key_variable_is_refused() -> None:
    key = {"type": "env_var", "env_vars": ["GITHUB_TOKEN"], "strict": True}
    message = refused(pipeline_yaml(api_key=key))
    assert "GITHUB_TOKEN" in message and "instead of STACKIT_API_KEY" in message
    also = {"type": "env_var", "env_vars": ["STACKIT_API_KEY", "AWS_SECRET_ACCESS_KEY"]}
    assert "AWS_SECRET_ACCESS_KEY" in refused(pipeline_yaml(api_key={**also, "strict": False}))


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/v1",
        "http://api.onstackit.cloud/v1",
        "https://onstackit.cloud.evil.example/v1",
    ],
)
def test_foreign_urls_are_refused(url: str) -> None:
    assert repr(url) in refused(pipeline_yaml(api_base_url=url))


@pytest.mark.parametrize(
    "url",
    [
        STACKIT,
        STACKIT.replace("eu01", "eu02"),
        "http://127.0.0.1:8765/v1",
        "http://localhost:1/v1",
        None,
    ],
)
def test_stackit_and_local_urls_load(url: str | None) -> None:
    loaded = Pipeline.loads(pipeline_yaml(api_base_url=url), allowed_modules=["stackit_nb"])
    assert loaded.get_component("llm").api_base_url == url  # type: ignore[attr-defined]


def test_harmless_client_kwargs_load() -> None:
    text = pipeline_yaml(http_client_kwargs={"trust_env": False, "http2": False})
    assert Pipeline.loads(text, allowed_modules=["stackit_nb"])


def test_every_component_checks_its_settings() -> None:
    for cls in (STACKITChatGenerator, STACKITTextEmbedder, STACKITDocumentEmbedder):
        model = CHAT if cls is STACKITChatGenerator else "intfloat/e5-mistral-7b-instruct"
        data = cls(model=model).to_dict()
        data["init_parameters"]["http_client_kwargs"] = {"verify": False}
        with pytest.raises(UntrustedSettingsError, match=cls.__name__):
            cls.from_dict(data)
        with stackit_nb.trust_loaded_settings():
            assert cls.from_dict(data).to_dict() == data
        with pytest.raises(UntrustedSettingsError):  # trust ends with the block
            cls.from_dict(data)


def test_the_environment_opts_in_for_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    text = pipeline_yaml(api_base_url="https://my-gateway.example/v1")
    refused(text)
    monkeypatch.setenv("STACKIT_NB_TRUST_LOADED_SETTINGS", "1")
    assert Pipeline.loads(text, allowed_modules=["stackit_nb"])


class RecordingProxy:
    """A forward proxy on 127.0.0.1 that records what it is asked to send and answers itself."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                seen.append({"target": self.path, "authorization": self.headers["Authorization"]})
                body = json.dumps(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": CHAT,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "intercepted"},
                                "finish_reason": "stop",
                            }
                        ],
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    recording = RecordingProxy()
    thread = threading.Thread(target=recording.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield recording
    finally:
        recording.httpd.shutdown()
        recording.httpd.server_close()


def test_what_the_refusal_prevents(server: LocalSTACKIT, proxy: RecordingProxy) -> None:
    """Trusted, a proxy in the file receives the key while the URL still names the endpoint."""
    text = pipeline_yaml(api_base_url=server.url, http_client_kwargs={"proxy": proxy.url})
    refused(text)
    assert proxy.seen == []
    with stackit_nb.trust_loaded_settings():
        loaded = Pipeline.loads(text, allowed_modules=["stackit_nb"])
    reply = loaded.run({"llm": {"messages": [ChatMessage.from_user("hi")]}})["llm"]["replies"][0]
    assert reply.text == "intercepted"
    assert proxy.seen == [
        {
            "target": f"{server.url}/chat/completions",
            "authorization": f"Bearer {server.api_key}",
        }
    ]
