"""Fault injection and the request log of the local server.

Both are plain thread-safe state: tests change them from Python (``srv.faults``) or over the admin
path (``/_local/faults``), while the server's event loop reads them.
"""

from __future__ import annotations

import copy
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
        if status not in FAULT_STATUSES:
            raise ValueError(
                f"status {status} cannot be injected; use one of {sorted(FAULT_STATUSES)}"
            )
        if times < 1:
            raise ValueError("times must be at least 1")
        if status == 429 and retry_after is None:
            retry_after = 1.0
        with self._lock:
            self._state.status.append(StatusFault(status, times, retry_after, message, path))

    def invalid_json(self, *, times: int = 1, path: str | None = None) -> None:
        """Answer the next ``times`` matching requests with 200 and a body that is not JSON."""
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._state.status.append(
                StatusFault(200, times, path=path, body='{"id": "chatcmpl-broken", "choices": [')
            )

    def latency(self, seconds: float) -> None:
        """Delay every response by ``seconds`` (0 turns it off); a large value simulates a stall."""
        if seconds < 0:
            raise ValueError("latency must be >= 0 seconds")
        with self._lock:
            self._state.latency = float(seconds)

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
        if fault.after_chunks < 0 or fault.times < 1 or fault.seconds < 0:
            raise ValueError("after_chunks and seconds must be >= 0 and times >= 1")
        with self._lock:
            self._state.stream.append(fault)


REDACTED = "Bearer ***"


class RequestLog:
    """The requests the server received, newest last, with the bearer token redacted."""

    def __init__(self, limit: int = 1000) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._limit = limit

    def record(self, method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
        """Add an entry and return it, so the handler can attach the parsed body later."""
        safe = {k: (REDACTED if k.lower() == "authorization" else v) for k, v in headers.items()}
        entry: dict[str, Any] = {
            "time": time.time(),
            "method": method,
            "path": path,
            "headers": safe,
            "json": None,
            "status": None,
        }
        with self._lock:
            self._entries.append(entry)
            del self._entries[: -self._limit]
        return entry

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._entries]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
