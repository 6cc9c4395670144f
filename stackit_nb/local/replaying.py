"""The replayer: the local server answering from a cassette (``LocalSTACKIT(engine="replay")``).

A request the cassette holds gets its recorded status, headers and body, or its recorded stream
event by event, at the recorded pace (``pace="recorded"``) or at once (``pace="fast"``); a
stream the endpoint broke off is broken off again. A request it does not hold goes to the
fallback engine's routes (``fallback="scripted"``), or, with ``fallback=None``, gets a 404 that
names the cassette and the closest recorded request. The model list is never refused: unless it
was recorded, the local catalog answers, so that a client explaining the 404 (``stackit_nb``'s
components look the model up) does not call a recorded model unavailable.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from stackit_nb.local import fronts
from stackit_nb.local.cassette import Response
from stackit_nb.local.engines.replay import ReplayEngine
from stackit_nb.local.fronts import ASGIApp, ErrorReply, Receive, Scope, Send
from stackit_nb.local.guard import InjectedDisconnect, ServerSettings, wait

PACES = ("recorded", "fast")


class Replayer:
    """The replay front (see the module docstring)."""

    name = "replay"

    def __init__(
        self,
        cassette: str | Path,
        *,
        fallback: str | None,
        pace: str,
        settings: ServerSettings,
    ) -> None:
        if pace not in PACES:
            raise ValueError(f"pace must be one of {', '.join(map(repr, PACES))}, got {pace!r}")
        self.engine = ReplayEngine(cassette)
        self.fallback, self.pace, self.settings = fallback, pace, settings

    @property
    def cassette(self) -> Path:
        return self.engine.path

    def describe(self) -> str:
        rest = (
            f"requests it does not hold go to the {self.fallback} engine"
            if self.fallback
            else "requests it does not hold get a 404"
        )
        return f"replaying {self.cassette} ({self.held()}, {self.pace} pace); {rest}"

    def held(self) -> str:
        """``"N recorded responses"``."""
        count = len(self.engine)
        return f"{count} recorded response{'' if count == 1 else 's'}"

    def wrap(self, app: ASGIApp, reply: ErrorReply) -> ASGIApp:
        async def front(scope: Scope, receive: Receive, send: Send) -> None:
            if not fronts.takes(scope):
                await app(scope, receive, send)
                return
            arrived = asyncio.get_running_loop().time()
            body = await fronts.read_body(receive)
            method, where = scope["method"], fronts.target(scope)
            exchange = self.engine.answer(method, where, body)
            if exchange is not None:
                await self._send(exchange.response, send, arrived)
            elif self.fallback is not None or _lists_models(method, where):
                await app(scope, fronts.replaying(body, receive), send)
            else:
                refusal = reply(404, self.engine.no_match(method, where, body))
                await refusal(scope, receive, send)

        return front

    async def _send(self, response: Response, send: Send, arrived: float) -> None:
        loop = asyncio.get_running_loop()
        headers = dict(response.headers)
        if response.events is None:
            await self._until(arrived + response.after, loop)
            content = response.body or b""
            headers["content-length"] = str(len(content))
            await fronts.start(send, response.status, headers)
            await send({"type": "http.response.body", "body": content})
            return
        headers.setdefault("cache-control", "no-cache")
        await fronts.start(send, response.status, headers)
        for t, event in response.events:
            await self._until(arrived + t, loop)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        if response.cut:
            raise InjectedDisconnect("the recorded stream was broken off here")
        await send({"type": "http.response.body", "body": b""})

    async def _until(self, due: float, loop: asyncio.AbstractEventLoop) -> None:
        """At the recorded pace, wait until ``due``; at the fast pace, only let others run."""
        left = due - loop.time() if self.pace == "recorded" else 0.0
        await wait(self.settings, max(left, 0.0))


def _lists_models(method: str, where: str) -> bool:
    return method == "GET" and where.split("?")[0].startswith("/v1/models")
