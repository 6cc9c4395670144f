"""The local server's settings, and what runs before every route: auth, body limit, request log
and injected faults.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import Response

from stackit_nb.local import wire
from stackit_nb.local.faults import Faults, RequestLog, error_type, finite_seconds

MAX_BODY_BYTES = 32 * 1024 * 1024
READ_TIMEOUT = 30.0


@dataclass
class ServerSettings:
    """What a running server can be told to change (``srv.configure(...)``)."""

    api_key: str = field(default_factory=lambda: "local-" + secrets.token_urlsafe(24), repr=False)
    ttft: float = 0.0  # seconds before the first generated piece
    tokens_per_second: float | None = None  # None: as fast as possible
    reasoning_field: str = "both"  # "both" | "reasoning" | "reasoning_content"
    error_shape: str = "openai"  # "openai" | "vllm"
    max_body_bytes: int = MAX_BODY_BYTES
    # Seconds a client may take to send a request's headers, or its body: a connection that
    # trickles them (or opens and sends nothing) is dropped instead of held forever.
    read_timeout: float = READ_TIMEOUT
    # set by LocalSTACKIT.stop(): open streams and waits end at once instead of holding shutdown
    closing: threading.Event = field(default_factory=threading.Event, repr=False)

    def update(self, **changes: Any) -> None:
        allowed = {"ttft", "tokens_per_second", "reasoning_field", "error_shape", "read_timeout"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)}; settable: {sorted(allowed)}")
        for name in ("reasoning_field", "error_shape"):
            if name in changes and not isinstance(changes[name], str):
                raise ValueError(f"{name} must be a string")
        if changes.get("reasoning_field", self.reasoning_field) not in wire.REASONING_FIELDS:
            raise ValueError(f"reasoning_field must be one of {list(wire.REASONING_FIELDS)}")
        if changes.get("error_shape", self.error_shape) not in wire.ERROR_SHAPES:
            raise ValueError(f"error_shape must be one of {list(wire.ERROR_SHAPES)}")
        if "ttft" in changes:
            finite_seconds(changes["ttft"], "ttft")
        for name in ("read_timeout", "tokens_per_second"):
            value = changes.get(name)
            if name not in changes or (value is None and name == "tokens_per_second"):
                continue
            if finite_seconds(value, name) <= 0:
                raise ValueError(f"{name} must be > 0 (tokens_per_second: or None, no limit)")
        for name, value in changes.items():
            setattr(self, name, value)

    def public(self) -> dict[str, Any]:
        """The settings without the token."""
        hidden = {"api_key", "closing"}
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in hidden}


class Guard:
    """Auth, body size, the request log and injected faults, before any route runs.

    Pure ASGI (not ``BaseHTTPMiddleware``) so streamed responses pass through untouched. The body
    is read here, bounded, and replayed to the app: every body is parsed whole anyway.
    """

    def __init__(
        self, app: Any, *, settings: ServerSettings, faults: Faults, log: RequestLog, reply: Any
    ) -> None:
        self.app, self.settings, self.faults, self.log, self.reply = (
            app,
            settings,
            faults,
            log,
            reply,
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(("/v1/", "/_local/")):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = _request_id(headers.get("x-request-id", ""))
        entry: dict[str, Any] | None = None

        async def send_logged(message: Any) -> None:
            if message["type"] == "http.response.start":
                if entry is not None:
                    entry["status"] = message["status"]
                # vLLM's --enable-request-id-headers: the caller's X-Request-Id, or a new one.
                tagged = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": tagged}
            await send(message)

        if not self._authorized(headers):
            # Not logged: a client without the token must not fill the log or evict entries.
            await self._unauthorized()(scope, receive, send_logged)
            return
        entry = self.log.record(scope["method"], path, headers)
        early = self._too_large_declared(headers)
        body = b""
        if early is None:
            try:
                body_or_none = await self._read_body(receive)
            except TimeoutError:
                early = self.reply(
                    408,
                    f"The request body did not arrive within {self.settings.read_timeout:g} s; "
                    "send it whole, without pauses.",
                )
            else:
                if body_or_none is None:
                    early = self._too_large(None)
                else:
                    body = body_or_none
                    self.log.attach(entry, body)
        if early is None and path.startswith("/v1/"):
            early = await self._fault(path)
        if early is not None:
            await early(scope, receive, send_logged)
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_logged)

    def _authorized(self, headers: dict[str, str]) -> bool:
        sent = headers.get("authorization", "").encode("latin-1")
        expected = f"Bearer {self.settings.api_key}".encode()
        return hmac.compare_digest(sent, expected)  # no timing hint of how much matched

    def _unauthorized(self) -> Response:
        return self.reply(
            401,
            "Missing or invalid API key: send 'Authorization: Bearer <token>' with the "
            "server's token (LocalSTACKIT.api_key, or the token `stackit-nb serve` printed).",
        )

    def _too_large_declared(self, headers: dict[str, str]) -> Response | None:
        size = headers.get("content-length", "")
        if size.isdigit() and int(size) > self.settings.max_body_bytes:
            return self._too_large(int(size))
        return None

    def _too_large(self, size: int | None) -> Response:
        limit = self.settings.max_body_bytes // (1024 * 1024)
        what = f"{size} bytes" if size is not None else "too large"
        return self.reply(
            413,
            f"Request body is {what}; the limit is {limit} MiB. Send fewer or downscaled images "
            "(stackit_nb.images.to_image_content).",
        )

    async def _read_body(self, receive: Any) -> bytes | None:
        """The whole body, or None once it passes the limit; TimeoutError when it takes longer
        than the read timeout."""
        chunks, total, more = [], 0, True
        deadline = asyncio.get_running_loop().time() + self.settings.read_timeout
        while more:
            async with asyncio.timeout_at(deadline):
                message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.settings.max_body_bytes:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _fault(self, path: str) -> Response | None:
        # Take the queued fault first: a request stalled by the latency must not consume a
        # fault that was queued, while it waited, for the requests after it.
        fault = self.faults.take_status(path)
        await wait(self.settings, self.faults.current_latency())
        if fault is None:
            return None
        if fault.body is not None:
            return Response(fault.body, status_code=fault.status, media_type="application/json")
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(fault.retry_after))
            headers["retry-after-ms"] = str(int(fault.retry_after * 1000))
        message = fault.message or _fault_message(fault.status, fault.retry_after)
        return self.reply(fault.status, message, headers=headers)


class InjectedDisconnect(Exception):
    """Raised in a stream to drop the connection on purpose (a fault, or the server stopping)."""


async def wait(settings: ServerSettings, seconds: float) -> None:
    """Sleep, but give up as soon as the server is stopping (so stop() never waits on a stream)."""
    deadline = time.monotonic() + seconds
    while True:
        if settings.closing.is_set():
            raise InjectedDisconnect("the server is stopping")
        left = deadline - time.monotonic()
        await asyncio.sleep(min(max(left, 0.0), 0.05))
        if left <= 0.05:
            return


def _request_id(given: str) -> str:
    """The caller's request id when it is a sane token, else a new one."""
    if 0 < len(given) <= 128 and all(c.isalnum() or c in "-_.:" for c in given):
        return given
    return uuid.uuid4().hex


def _fault_message(status: int, retry_after: float | None) -> str:
    if status == 429:
        return (
            f"Rate limit exceeded for this model (requests or tokens per minute). "
            f"Retry after {math.ceil(retry_after or 1)} seconds."
        )
    return f"Injected fault: the server answered {status} {error_type(status)}."
