"""Fault injection and the request log of the local server.

Both are plain thread-safe state: tests change them from Python (``srv.faults``) or over the admin
path (``/_local/faults``), while the server's event loop reads them.
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Any

#: Statuses a queued fault may answer with, and the error type vLLM/OpenAI name for each.
FAULT_STATUSES: dict[int, str] = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    408: "RequestTimeoutError",
    409: "ConflictError",
    413: "RequestEntityTooLargeError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    500: "InternalServerError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeoutError",
}


def finite_seconds(value: Any, name: str) -> float:
    """``value`` as a finite number of seconds >= 0, else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r:.40}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 seconds")
    return float(value)


def _count(value: Any, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be a whole number >= {least}, got {value!r:.40}")
    return value


def _text(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null, got {type(value).__name__}")
    return value


def error_type(status: int) -> str:
    """The ``type`` of an error body: the SDK's name where the table has one, else the HTTP
    phrase (405 -> ``MethodNotAllowedError``)."""
    if status in FAULT_STATUSES:
        return FAULT_STATUSES[status]
    return HTTPStatus(status).phrase.title().replace(" ", "").replace("-", "") + "Error"


STREAM_FAULT_KINDS = ("cut_stream", "malformed_chunk", "stall_stream")


@dataclass
class StatusFault:
    """The next ``times`` requests to ``path`` (prefix; None = any API path) get ``status``."""

    status: int
    times: int = 1
    retry_after: float | None = None
    message: str | None = None
    path: str | None = None
    body: str | None = None  # a raw body to send instead of an OpenAI-shaped error


@dataclass
class StreamFault:
    """The next ``times`` streams misbehave after ``after_chunks`` SSE events."""

    kind: str  # one of STREAM_FAULT_KINDS
    after_chunks: int = 0
    times: int = 1
    seconds: float = 0.0  # how long a stall lasts


@dataclass
class _FaultState:
    status: list[StatusFault] = field(default_factory=list)
    stream: list[StreamFault] = field(default_factory=list)
    latency: float = 0.0


class Faults:
    """Queue misbehaviour for the requests that come next.

    Example::

        srv.faults.fail(status=429, times=2, retry_after=1)
        srv.faults.cut_stream(after_chunks=5)
        srv.faults.clear()
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _FaultState()

    def fail(
        self,
        status: int = 500,
        *,
        times: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with an error ``status``."""
        if isinstance(status, bool) or not isinstance(status, int) or status not in FAULT_STATUSES:
            raise ValueError(
                f"status {status!r:.40} cannot be injected; use one of {sorted(FAULT_STATUSES)}"
            )
        _count(times, "times", 1)
        _text(message, "message")
        _text(path, "path")
        if retry_after is not None:
            # A number, so the Retry-After header it becomes can only ever be digits.
            retry_after = finite_seconds(retry_after, "retry_after")
        if status == 429 and retry_after is None:
            retry_after = 1.0
        with self._lock:
            self._state.status.append(StatusFault(status, times, retry_after, message, path))

    def invalid_json(self, *, times: int = 1, path: str | None = None) -> None:
        """Answer the next ``times`` matching requests with 200 and a body that is not JSON."""
        _count(times, "times", 1)
        _text(path, "path")
        with self._lock:
            self._state.status.append(
                StatusFault(200, times, path=path, body='{"id": "chatcmpl-broken", "choices": [')
            )

    def latency(self, seconds: float) -> None:
        """Delay every response by ``seconds`` (0 turns it off); a large value simulates a stall."""
        value = finite_seconds(seconds, "latency")
        with self._lock:
            self._state.latency = value

    def cut_stream(self, after_chunks: int = 1, *, times: int = 1) -> None:
        """Close the next stream's connection after ``after_chunks`` events, without ``[DONE]``."""
        self._add_stream_fault(StreamFault("cut_stream", after_chunks, times))

    def malformed_chunk(self, after_chunks: int = 1, *, times: int = 1) -> None:
        """Send one ``data:`` line that is not JSON after ``after_chunks`` events."""
        self._add_stream_fault(StreamFault("malformed_chunk", after_chunks, times))

    def stall_stream(self, after_chunks: int = 1, *, seconds: float = 60.0, times: int = 1) -> None:
        """Stop sending for ``seconds`` after ``after_chunks`` events (a hung upstream)."""
        self._add_stream_fault(StreamFault("stall_stream", after_chunks, times, seconds))

    def clear(self) -> None:
        """Forget every queued fault and the added latency."""
        with self._lock:
            self._state = _FaultState()

    def add(self, spec: dict[str, Any]) -> None:
        """Queue a fault from its JSON form (the admin endpoint's body)."""
        spec = dict(spec)
        kind = spec.pop("kind", "status")
        if not isinstance(kind, str):
            raise ValueError("kind must be a string")
        if kind == "status":
            self.fail(**spec)
        elif kind == "latency":
            self.latency(**spec)
        elif kind == "invalid_json":
            self.invalid_json(**spec)
        elif kind in STREAM_FAULT_KINDS:
            getattr(self, kind)(**spec)
        else:
            kinds = ["status", "latency", "invalid_json", *STREAM_FAULT_KINDS]
            raise ValueError(f"unknown fault kind {kind!r}; use one of {kinds}")

    def snapshot(self) -> dict[str, Any]:
        """The queued faults as JSON-ready data."""
        with self._lock:
            return asdict(self._state)

    # -- read by the server ---------------------------------------------------------------------

    def take_status(self, path: str) -> StatusFault | None:
        """Pop one use of the first status fault that matches ``path``."""
        with self._lock:
            for fault in self._state.status:
                if fault.path is None or path.startswith(fault.path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._state.status.remove(fault)
                    return copy.copy(fault)
        return None

    def take_stream(self) -> StreamFault | None:
        """Pop one use of the first queued stream fault."""
        with self._lock:
            if not self._state.stream:
                return None
            fault = self._state.stream[0]
            fault.times -= 1
            if fault.times <= 0:
                self._state.stream.pop(0)
            return copy.copy(fault)

    def current_latency(self) -> float:
        with self._lock:
            return self._state.latency

    def _add_stream_fault(self, fault: StreamFault) -> None:
        _count(fault.after_chunks, "after_chunks", 0)
        _count(fault.times, "times", 1)
        fault.seconds = finite_seconds(fault.seconds, "seconds")
        with self._lock:
            self._state.stream.append(fault)


REDACTED = "Bearer ***"
#: Headers that carry credentials: their values never reach the log.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie"}
)
LOGGED_BODY_LIMIT = 4 * 1024 * 1024  # a larger body is logged as its size only
LOG_BYTES = 16 * 1024 * 1024  # bodies and headers the whole log keeps, oldest dropped first


def _loggable(body: bytes) -> Any:
    """The parsed body for the request log; huge bodies are summarised to keep memory flat."""
    if not body:
        return None
    if len(body) > LOGGED_BODY_LIMIT:
        return {"omitted": f"{len(body)} bytes"}
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        return {"unparsed": body[:200].decode("utf-8", "replace")}


class RequestLog:
    """The authenticated requests the server received, newest last, credentials redacted.

    Bounded twice: at most ``limit`` entries and about ``max_bytes`` of headers and bodies.
    """

    def __init__(self, limit: int = 1000, max_bytes: int = LOG_BYTES) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._sizes: dict[int, int] = {}  # id(entry) -> bytes it holds
        self._limit, self._max_bytes, self._bytes = limit, max_bytes, 0

    def record(self, method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
        """Add an entry and return it, so the handler can attach the body later."""
        safe = {k: _redacted(k, v) for k, v in headers.items()}
        entry: dict[str, Any] = {
            "time": time.time(),
            "method": method,
            "path": path,
            "headers": safe,
            "json": None,
            "status": None,
        }
        size = sum(len(k) + len(v) for k, v in safe.items()) + len(path)
        with self._lock:
            self._entries.append(entry)
            self._grow(entry, size)
        return entry

    def attach(self, entry: dict[str, Any], body: bytes) -> None:
        """Attach a request's body to its entry (counted against the byte bound)."""
        entry["json"] = _loggable(body)
        with self._lock:
            if id(entry) in self._sizes:  # still in the log
                self._grow(entry, min(len(body), LOGGED_BODY_LIMIT))

    def _grow(self, entry: dict[str, Any], size: int) -> None:
        self._sizes[id(entry)] = self._sizes.get(id(entry), 0) + size
        self._bytes += size
        while self._entries and (
            len(self._entries) > self._limit
            or (self._bytes > self._max_bytes and self._entries[0] is not entry)
        ):
            oldest = self._entries.pop(0)
            self._bytes -= self._sizes.pop(id(oldest), 0)

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._entries]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._sizes.clear()
            self._bytes = 0


def _redacted(name: str, value: str) -> str:
    if name.lower() not in SECRET_HEADERS:
        return value
    return REDACTED if name.lower() == "authorization" else "***"
