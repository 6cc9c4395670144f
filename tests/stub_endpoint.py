"""A hostile OpenAI-compatible endpoint for tests: it answers exactly what a test tells it to.

Not a test module: the security tests use it where the local server (which behaves) cannot play
the part: a reply full of terminal escape sequences, an error body that echoes the caller's key.
It listens on 127.0.0.1 on a free port and stops at the end of its ``with`` block.

Example::

    with StubEndpoint() as stub:
        stub.stream_reply(["Hello", " \\x1b]0;pwned\\x07world"], reasoning=["hmm"])
        stub.fail_with(401, "bad key {key}")  # {key}: the token the request carried
        os.environ["STACKIT_API_BASE_URL"] = stub.url
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"


class StubEndpoint:
    """Chat completions (plain and streamed), embeddings and a model list, as set by the test."""

    def __init__(self, model: str = MODEL) -> None:
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._text: list[str] = ["ok"]
        self._reasoning: list[str] = []
        self._error: tuple[int, str] | None = None
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._httpd.server_port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> StubEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def stream_reply(self, text: list[str], reasoning: list[str] | None = None) -> None:
        """Answer chat requests with these pieces of text (and reasoning before them)."""
        self._text, self._reasoning, self._error = text, reasoning or [], None

    def fail_with(self, status: int, message: str) -> None:
        """Answer every request with ``status`` and an OpenAI-shaped error body; ``{key}`` in
        ``message`` becomes the bearer token the request carried (an endpoint that echoes it)."""
        self._error = (status, message)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._answer(None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(json.loads(self.rfile.read(length) or b"{}"))

            def _answer(self, body: dict[str, Any] | None) -> None:
                key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                stub.requests.append({"path": self.path, "json": body})
                if not self.path.startswith("/v1/"):
                    return self._json(404, {"error": {"message": "not found"}})
                if stub._error is not None:
                    status, message = stub._error
                    error = {"message": message.format(key=key), "type": "invalid_request"}
                    return self._json(status, {"error": error, "echo": {"authorization": key}})
                if self.path.startswith("/v1/models"):
                    return self._json(200, {"object": "list", "data": [{"id": stub.model}]})
                if self.path.startswith("/v1/embeddings"):
                    data = [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]
                    return self._json(200, {"object": "list", "data": data, "model": stub.model})
                if body and body.get("stream"):
                    return self._stream()
                message = {"role": "assistant", "content": "".join(stub._text)}
                choice = {"index": 0, "message": message, "finish_reason": "stop"}
                return self._json(200, stub._completion("chat.completion", choice))

            def _stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                deltas = [{"reasoning": r} for r in stub._reasoning]
                deltas += [{"content": t} for t in stub._text]
                for number, delta in enumerate(deltas):
                    first = {"role": "assistant"} if number == 0 else {}
                    choice = {"index": 0, "delta": {**first, **delta}, "finish_reason": None}
                    self._event(stub._completion("chat.completion.chunk", choice))
                end = {"index": 0, "delta": {}, "finish_reason": "stop"}
                self._event(stub._completion("chat.completion.chunk", end))
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

            def _event(self, data: dict[str, Any]) -> None:
                self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")

            def _json(self, status: int, data: dict[str, Any]) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def _completion(self, kind: str, choice: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "stub",
            "object": kind,
            "created": 0,
            "model": self.model,
            "choices": [choice],
        }
