"""connect(): use STACKIT when a key is set, otherwise a local STACKIT-compatible server.

After ``stackit_nb.connect()`` the documentation's examples run unchanged: the components read
``STACKIT_API_KEY`` and follow ``STACKIT_API_BASE_URL``, which ``connect()`` sets for this process
when it starts the local server. ``list_models()`` asks the endpoint in use which models it
serves (the catalog types live in ``stackit_nb.models``; this module also explains the
endpoint's errors, which ``stackit_nb.errors`` does with that catalog).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from stackit_nb._common import API_KEY_ENV, BASE_URL_ENV, is_local_url, resolve_base_url

if TYPE_CHECKING:
    from haystack.utils import Secret

    from stackit_nb.local import LocalSTACKIT
    from stackit_nb.models import ModelList

_lock = threading.Lock()
_current: Connection | None = None

#: How long to wait for a local server to say which engine it runs: it answers in milliseconds,
#: and a URL that points at something else must not hold up ``connect()``.
ENGINE_QUERY_TIMEOUT = 2.0


@dataclass
class Connection:
    """Which backend this process talks to; returned by :func:`connect`.

    :param backend: ``"stackit"`` (the real service) or ``"local"`` (a local compatible server).
    :param url: The OpenAI base URL in use.
    :param detail: How it was chosen, e.g. ``"scripted engine"`` or ``"key from STACKIT_API_KEY"``.
    :param server: The server ``connect()`` started, if it started one.
    :param engine: The local server's engine (``"scripted"``, ``"smollm2"``), also for a server
        found through ``STACKIT_API_BASE_URL``; ``None`` for STACKIT or a server that does not say;
        ``"record"`` or ``"replay"`` with a cassette.
    :param cassette: The cassette recorded or replayed (``connect(cassette=...)``), if any.
    """

    backend: str
    url: str
    detail: str
    server: LocalSTACKIT | None = None
    engine: str | None = None
    cassette: str | None = None
    _saved_env: dict[str, str | None] = field(default_factory=dict, repr=False)
    _set_env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def line(self) -> str:
        """The one line ``connect()`` prints (never contains the key)."""
        where = f"{self.url} ({self.detail})"
        if self.engine == "record":
            return (
                f"stackit_nb: {API_KEY_ENV} set - recording to {self.cassette}: requests go to "
                f"{self.detail} through a local recording proxy at {self.url}"
            )
        if self.engine == "replay":
            return (
                f"stackit_nb: no {API_KEY_ENV} set - replaying {self.cassette} on a local "
                f"STACKIT-compatible server at {self.url} ({self.detail})"
            )
        if self.backend == "stackit":
            return f"stackit_nb: using STACKIT at {where}"
        if self.server is not None and self._saved_env.get(API_KEY_ENV) is None:
            return (
                f"stackit_nb: no {API_KEY_ENV} set - using the local STACKIT-compatible server "
                f"at {where}"
            )
        if self.server is not None:
            return f"stackit_nb: started a local STACKIT-compatible server at {where}"
        return f"stackit_nb: using a local STACKIT-compatible server at {where}"

    def stop(self) -> None:
        """Stop the server ``connect()`` started and restore the environment it changed.

        Only what ``connect()`` set itself is restored: a variable changed since (the user set
        their own ``STACKIT_API_KEY``, say) is theirs now and stays as it is.
        """
        global _current
        with _lock:
            if self.server is not None:
                self.server.stop()
                self.server = None
            for name, ours in self._set_env.items():
                if os.environ.get(name) != ours:
                    continue
                if (value := self._saved_env.get(name)) is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            self._saved_env, self._set_env = {}, {}
            if _current is self:
                _current = None

    def configure(self, **settings: object) -> dict[str, object]:
        """Change a local server's settings, e.g. ``tokens_per_second=300`` to pace it like a model.

        Works for the server ``connect()`` started and for one it found through
        ``STACKIT_API_BASE_URL`` (``make lab``), over the server's admin path. Settable: ``ttft``,
        ``tokens_per_second``, ``reasoning_field``, ``error_shape``. Returns the new settings.
        """
        if self.backend != "local":
            raise ValueError("configure() changes a local server; STACKIT has no such settings")
        import httpx

        key = os.environ.get(API_KEY_ENV, "")
        response = httpx.post(
            _config_url(self.url),
            json=settings,
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        if response.status_code != 200:
            raise ValueError(f"the local server refused {sorted(settings)}: {response.text}")
        return dict(response.json())

    def __str__(self) -> str:
        return self.line

    def _repr_markdown_(self) -> str:
        where = "STACKIT" if self.backend == "stackit" else "a local STACKIT-compatible server"
        text = f"**stackit_nb** uses {where} at `{self.url}` ({self.detail})."
        if self.server is not None:
            text += " `.stop()` shuts it down and restores the environment."
        return text


def connect(
    *, engine: str = "auto", quiet: bool = False, cassette: str | Path | None = None
) -> Connection:
    """Pick the backend for this process and say which, in one printed line.

    - ``STACKIT_API_KEY`` set: use STACKIT (or, when ``STACKIT_API_BASE_URL`` points to this
      machine, the local server it names, as ``make lab`` sets up; the line names the engine that
      server runs, asked over its ``/_local/config``).
    - No key: start a local STACKIT-compatible server once per process and set
      ``STACKIT_API_BASE_URL`` and ``STACKIT_API_KEY`` (a local token) for this process, so the
      documentation's code runs unchanged. ``stop()`` on the result restores both.

    Calling it again returns the same connection. The key is never printed.

    :param engine: The local server's engine, ignored when the key is for STACKIT: ``"auto"``
        (the real small model ``smollm2`` when ``stackit-nb[local-llm]`` is installed, else
        ``"scripted"``; ``$STACKIT_NB_ENGINE`` overrides it, as the test suite does to stay
        deterministic; a server found through ``STACKIT_API_BASE_URL`` is used whatever it
        runs), ``"scripted"`` (deterministic replies) or ``"smollm2"``. A named engine that the
        found server does not run starts a local server of its own; asking for another engine
        than the one started restarts it. The line says which engine answers.
    :param quiet: Do not print the line.
    :param cassette: A cassette file (JSON Lines, see :mod:`stackit_nb.local.cassette`). With
        ``STACKIT_API_KEY`` set, a local recording proxy in front of STACKIT (or of the server
        ``STACKIT_API_BASE_URL`` names) records every request and its response to it, errors
        and 429s included; without a key, a local server replays it, and ``engine`` answers the
        requests it does not hold. Every component, widget and the batch runner go through it
        unchanged. The line says whether it records or replays.
    :returns: A :class:`Connection` (``.backend``, ``.url``, ``.engine``, ``.stop()``).

    Example::

        import stackit_nb

        conn = stackit_nb.connect()
        conn.backend  # "stackit" or "local"
        stackit_nb.connect(engine="smollm2")  # the real small model, once installed
        stackit_nb.connect(cassette="cassettes/lesson.jsonl")  # record with a key, else replay
    """
    global _current
    wanted = None if cassette is None else str(cassette)
    with _lock:
        current = _current
    fits = current is not None and current.cassette == wanted
    if current is not None and not (fits and _still_valid(current) and _runs(current, engine)):
        # e.g. the user set their own key since: this connection's server and the variables
        # it set go (theirs stay), so the key is never sent to a server chosen without it
        current.stop()
        current = None
    with _lock:
        if current is None:
            current = _current = _choose(engine) if wanted is None else _cassette(wanted, engine)
    if not quiet:
        print(current.line, flush=True)
    return current


def _still_valid(conn: Connection) -> bool:
    """Whether the environment still says what ``conn`` set up (nobody changed it since)."""
    if conn.server is not None:
        return (
            conn.server.running
            and os.environ.get(BASE_URL_ENV) == conn.url
            and os.environ.get(API_KEY_ENV) == conn.server.api_key
        )
    return bool(os.environ.get(API_KEY_ENV)) and resolve_base_url(None) == conn.url


def _runs(conn: Connection, engine: str) -> bool:
    """Whether ``conn`` serves what ``connect(engine=engine)`` asks for."""
    if conn.backend != "local" or (engine == "auto" and conn.server is None):
        return True  # STACKIT, or a server someone else started: used whatever it runs
    if conn.cassette is not None:
        return True  # recording or replaying it (connect() has checked it is the same one)
    return conn.engine == _resolve(engine)


def _choose(engine: str) -> Connection:
    found = "an unknown engine"
    if os.environ.get(API_KEY_ENV):
        url = resolve_base_url(None)
        source = f"key from {API_KEY_ENV}"
        if not is_local_url(url):
            return Connection("stackit", url, source)
        running = _ask_engine(url)
        if engine == "auto" or running == _resolve(engine):
            label = f"{running} engine" if running else "engine unknown"
            return Connection(
                "local", url, f"{label}; from {BASE_URL_ENV}; {source}", engine=running
            )
        found = f"the {running} engine" if running else found
    from stackit_nb.local import LocalSTACKIT

    server = LocalSTACKIT(engine=engine).start()
    engine = server.engine  # "auto" resolved
    ours = {BASE_URL_ENV: server.url, API_KEY_ENV: server.api_key}
    saved = {name: os.environ.get(name) for name in ours}
    os.environ.update(ours)
    detail = f"{engine} engine"
    if saved[API_KEY_ENV] is not None:  # asked for an engine the server in the environment lacks
        detail += f", as asked; the server at {saved[BASE_URL_ENV]} runs {found}"
    return Connection(
        "local", server.url, detail, server=server, engine=engine, _saved_env=saved, _set_env=ours
    )


def _cassette(cassette: str, engine: str) -> Connection:
    """Record ``cassette`` through a local proxy when a key is set, else replay it."""
    from stackit_nb.local import LocalSTACKIT
    from stackit_nb.local.replaying import Replayer

    key = os.environ.get(API_KEY_ENV)
    if key:
        upstream = resolve_base_url(None)
        server = LocalSTACKIT(upstream=upstream, record=cassette, upstream_api_key=key).start()
        backend = "local" if is_local_url(upstream) else "stackit"
        where = "STACKIT" if backend == "stackit" else "the server"
        detail = f"{where} at {upstream}"
    else:
        fallback = _resolve(engine)
        server = LocalSTACKIT(engine="replay", cassette=cassette, fallback=fallback).start()
        held = server.front.held() if isinstance(server.front, Replayer) else "?"
        backend = "local"
        detail = f"{held}; what it does not hold, the {fallback} engine answers"
    ours = {BASE_URL_ENV: server.url, API_KEY_ENV: server.api_key}
    saved = {name: os.environ.get(name) for name in ours}
    os.environ.update(ours)
    return Connection(
        backend,
        server.url,
        detail,
        server=server,
        engine=server.engine,
        cassette=cassette,
        _saved_env=saved,
        _set_env=ours,
    )


def _resolve(engine: str) -> str:
    from stackit_nb.local.engines import resolve_engine

    return resolve_engine(engine)


def _config_url(url: str) -> str:
    """A local server's settings route, next to its ``/v1``."""
    return url.rstrip("/").removesuffix("/v1") + "/_local/config"


def _ask_engine(url: str) -> str | None:
    """The engine the local server at ``url`` runs, or ``None`` when it does not say in time
    (another kind of server, a stopped one, a token it refuses)."""
    import httpx

    key = os.environ.get(API_KEY_ENV, "")
    try:
        response = httpx.get(
            _config_url(url),
            headers={"Authorization": f"Bearer {key}"},
            timeout=ENGINE_QUERY_TIMEOUT,
            trust_env=False,  # a loopback address: never through a proxy
        )
        engine = response.json().get("engine") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return engine if isinstance(engine, str) and engine else None


def current() -> Connection | None:
    """The connection :func:`connect` made in this process, if any."""
    return _current


def list_models(
    api_key: Secret | str | None = None,
    api_base_url: str | None = None,
    *,
    timeout: float = 15.0,
) -> ModelList:
    """List the models the endpoint serves, with their capabilities.

    :param api_key: A ``Secret`` or the token itself; defaults to ``STACKIT_API_KEY``.
    :param api_base_url: Defaults to ``STACKIT_API_BASE_URL``, else STACKIT's public endpoint.
    :param timeout: Seconds to wait for the endpoint.
    :returns: A :class:`ModelList` (a list of :class:`ModelInfo`) that renders as a table.

    Example::

        import stackit_nb

        stackit_nb.connect()
        stackit_nb.list_models()
    """
    import openai
    from haystack.utils import Secret

    from stackit_nb._scrub import secret_kept_out
    from stackit_nb.errors import explain, resolve_api_key
    from stackit_nb.models import fetch_models

    if isinstance(api_key, str):
        api_key = Secret.from_token(api_key)
    secret = api_key or Secret.from_env_var(API_KEY_ENV)
    token = resolve_api_key(secret)
    with (
        openai.OpenAI(
            api_key=token, base_url=resolve_base_url(api_base_url), timeout=timeout, max_retries=2
        ) as client,
        secret_kept_out(client),
    ):
        try:
            return fetch_models(client)
        except openai.APIStatusError as exc:
            better = explain(exc, secret_value=token)
            if better is None:
                raise
            raise better from exc
