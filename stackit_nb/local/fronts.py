"""What may stand in front of the local server's routes: a recording proxy or a replayer.

A front sees every ``/v1/`` request after the server's guard (the local token, the body limit,
injected faults, the request log) and before request validation, so it can forward or answer a
request the local routes would not know (a model the local catalog lacks, say). Everything else
passes through to the routes unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: Builds an error response in the server's shape: ``reply(status, message, headers=...)``.
ErrorReply = Callable[..., ASGIApp]


class Front(Protocol):
    """A layer in front of the routes (see the module docstring)."""

    #: What ``/_local/config`` reports as the server's engine (``"record"``, ``"replay"``).
    name: str

    def wrap(self, app: ASGIApp, reply: ErrorReply) -> ASGIApp:
        """An ASGI app that handles the requests this front takes and passes the rest to ``app``."""
        ...

    def describe(self) -> str:
        """One line on what it does, for ``stackit-nb serve`` and ``connect()``."""
        ...


def takes(scope: Scope) -> bool:
    """Whether a request is an API request (a front's business) rather than an admin one."""
    return scope["type"] == "http" and str(scope.get("path", "")).startswith("/v1/")


def target(scope: Scope) -> str:
    """The request's path with its query string, as recorded."""
    query = scope.get("query_string", b"").decode("latin-1")
    return scope["path"] + (f"?{query}" if query else "")


async def read_body(receive: Receive) -> bytes:
    """The whole request body (the guard has already bounded its size)."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the routes a body a front has already read."""
    sent = False

    async def again() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


async def start(send: Send, status: int, headers: dict[str, str]) -> None:
    """Send a response's status line and headers."""
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
