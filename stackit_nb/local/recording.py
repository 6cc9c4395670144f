"""The recording proxy: the local server forwarding to a real endpoint and keeping a cassette.

``LocalSTACKIT(upstream=URL, record=FILE)`` (or ``stackit-nb serve --upstream URL --record
FILE``) sends every ``/v1/`` request on to ``URL`` with the upstream's key in place of the local
token, passes the response back as it arrives (a stream chunk by chunk, at the upstream's pace),
and appends the exchange to the cassette (see :mod:`stackit_nb.local.cassette`), errors and
429s included. Neither the upstream's key nor the local token ever reaches the file.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from stackit_nb.local import fronts
from stackit_nb.local.cassette import CassetteWriter, Response, keep_headers
from stackit_nb.local.fronts import ASGIApp, ErrorReply, Receive, Scope, Send
from stackit_nb.local.guard import InjectedDisconnect

#: Where one server-sent event ends (vLLM and the local server end them with a blank line).
_EVENT_END = re.compile(rb"\r?\n\r?\n")
TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=10.0)


class RecordingProxy:
    """The recording front (see the module docstring)."""

    name = "record"

    def __init__(
        self, upstream: str, cassette: str | Path, *, api_key: str | None, local_token: str
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"upstream must be an http(s) URL such as "
                f"https://api.openai-compat.model-serving.eu01.onstackit.cloud/v1, got {upstream!r}"
            )
        if not api_key:
            raise ValueError(
                "recording needs the upstream's key: set STACKIT_API_KEY (it is sent to the "
                "upstream only and never written to the cassette), or pass upstream_api_key"
            )
        self.upstream = upstream.rstrip("/")
        self._key = api_key
        self.writer = CassetteWriter(cassette, [api_key, local_token])
        self.writer.start()

    @property
    def cassette(self) -> Path:
        return self.writer.path

    @property
    def host(self) -> str:
        return urlsplit(self.upstream).netloc

    def describe(self) -> str:
        return f"recording to {self.cassette}; requests go on to {self.upstream}"

    def wrap(self, app: ASGIApp, reply: ErrorReply) -> ASGIApp:
        async def front(scope: Scope, receive: Receive, send: Send) -> None:
            if not fronts.takes(scope):
                await app(scope, receive, send)
                return
            body = await fronts.read_body(receive)
            where = fronts.target(scope)
            # The upstream's URL ends in its API root (…/v1): the path goes on after it.
            url = self.upstream + where.removeprefix("/v1")
            headers = {
                "authorization": f"Bearer {self._key}",
                "accept-encoding": "identity",  # the bytes recorded are the bytes sent
            }
            for name, value in scope["headers"]:
                if name.lower() in (b"content-type", b"accept"):
                    headers[name.decode("latin-1").lower()] = value.decode("latin-1")
            local = urlsplit(self.upstream).hostname in ("127.0.0.1", "localhost", "::1")
            async with httpx.AsyncClient(timeout=TIMEOUT, trust_env=not local) as client:
                sent_at = asyncio.get_running_loop().time()
                request = client.build_request(scope["method"], url, content=body, headers=headers)
                try:
                    upstream = await client.send(request, stream=True)
                except httpx.HTTPError as exc:
                    problem = (
                        f"The upstream {self.host} could not be reached ({type(exc).__name__}); "
                        "nothing was recorded. Check the URL and the network, then try again."
                    )
                    await reply(502, problem)(scope, receive, send)
                    return
                try:
                    response = await self._relay(upstream, send, sent_at)
                finally:
                    await upstream.aclose()
            self.writer.append(scope["method"], where, body, response)
            if response.cut:
                raise InjectedDisconnect("the upstream broke the stream off")

        return front

    async def _relay(self, upstream: httpx.Response, send: Send, sent_at: float) -> Response:
        """Pass the upstream's response on as it arrives; return it as recorded."""
        loop = asyncio.get_running_loop()
        kept = keep_headers(dict(upstream.headers))
        recorded = Response(upstream.status_code, kept)
        stream = kept.get("content-type", "").startswith("text/event-stream")
        headers = dict(kept)
        if stream:
            headers["cache-control"] = "no-cache"
        await fronts.start(send, upstream.status_code, headers)
        if not stream:
            recorded.body = await upstream.aread()
            recorded.after = loop.time() - sent_at
            await send({"type": "http.response.body", "body": recorded.body})
            return recorded
        recorded.events, pending = [], b""
        try:
            async for chunk in upstream.aiter_raw():
                now = loop.time() - sent_at
                pending += chunk
                while (end := _EVENT_END.search(pending)) is not None:
                    recorded.events.append((now, pending[: end.end()]))
                    pending = pending[end.end() :]
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError:
            recorded.cut = True
        if pending:
            recorded.events.append((loop.time() - sent_at, pending))
        if not recorded.cut:
            await send({"type": "http.response.body", "body": b""})
        return recorded
