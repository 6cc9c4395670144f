"""Settings and helpers shared by the components: where STACKIT is, and how old dicts load."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import weakref
from collections.abc import AsyncGenerator
from typing import Any

from haystack import logging
from haystack.utils import Secret

logger = logging.getLogger(__name__)

#: STACKIT's public OpenAI-compatible endpoint (also the reference integration's default).
DEFAULT_API_BASE_URL = "https://api.openai-compat.model-serving.eu01.onstackit.cloud/v1"
#: The environment variable holding the STACKIT AI Model Serving auth token.
API_KEY_ENV = "STACKIT_API_KEY"
#: The environment variable that redirects components built with the default URL elsewhere.
BASE_URL_ENV = "STACKIT_API_BASE_URL"
#: The components' default key: read from ``STACKIT_API_KEY`` when they first run.
DEFAULT_API_KEY = Secret.from_env_var(API_KEY_ENV)


def resolve_base_url(api_base_url: str | None) -> str:
    """Return the URL to call for a component built with ``api_base_url``.

    The public default (or ``None``) defers to ``STACKIT_API_BASE_URL`` when it is set, so the
    documentation's examples, which never pass a URL, reach whatever backend ``connect()`` chose.
    Any other explicit URL wins over the environment.
    """
    if api_base_url and api_base_url.rstrip("/") != DEFAULT_API_BASE_URL:
        return api_base_url
    return os.environ.get(BASE_URL_ENV) or DEFAULT_API_BASE_URL


def is_local_url(url: str) -> bool:
    """Whether ``url`` points to this machine (a local STACKIT-compatible server)."""
    from urllib.parse import urlparse

    host = (urlparse(url).hostname or "").lower()
    return host in {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


def compatible_init_parameters(
    cls: type, data: dict[str, Any], reference_types: tuple[str, ...]
) -> dict[str, Any]:
    """Return a copy of ``data`` that ``default_from_dict(cls, ...)`` accepts.

    Dicts written by the reference ``stackit-haystack`` components name their own class: they are
    re-labelled as ``cls``. Init parameters that ``cls`` does not take (for example ``organization``
    from an ``OpenAIChatGenerator`` dict) are dropped with a warning instead of failing the load.
    """
    data = dict(data)
    own_type = f"{cls.__module__}.{cls.__name__}"
    if data.get("type") in reference_types:
        data["type"] = own_type
    params = dict(data.get("init_parameters") or {})
    init = cls.__init__  # type: ignore[misc]  # the class itself, not an instance
    accepted = set(inspect.signature(init).parameters) - {"self"}
    for key in sorted(set(params) - accepted):
        logger.warning(
            "Ignoring init parameter {key!r} that {cls} does not take.", key=key, cls=cls.__name__
        )
        params.pop(key)
    data["init_parameters"] = params
    return data


class AsyncClientPerLoop:
    """Mixin: one async OpenAI client per event loop, closed when that loop ends.

    The OpenAI async client keeps connections tied to the loop that opened them, so a component
    used from two ``asyncio.run()`` calls fails with "Event loop is closed". Tracking the loop
    makes that work; a component used from one long-lived loop keeps a single client.

    Each client is closed inside its own loop when the loop shuts down (``asyncio.run()``'s end,
    pytest-asyncio's teardown): left open, the SDK closes it when it is garbage-collected, on
    whatever loop runs at that moment, and the closed loop's sockets fail there with a
    "Task exception was never retrieved ... Event loop is closed" error in the log. A loop
    closed by hand without ``loop.shutdown_asyncgens()`` cannot close its client: the next
    loop that uses the component marks it closed; if none does, that one client stays with
    the garbage collector.
    """

    async_client: Any
    _client_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
    _closer: AsyncGenerator[None, None] | None = None

    async def warm_up_async(self) -> None:
        """Create the async client for the running event loop (once per loop)."""
        loop = asyncio.get_running_loop()
        previous = self._client_loop() if self._client_loop is not None else None
        if self.async_client is not None and previous is not loop:
            await self._forget_client(previous)
        created = self.async_client is None
        await super().warm_up_async()  # type: ignore[misc]
        if created and self.async_client is not None:
            self._closer = _close_when_loop_ends(self.async_client)
            await anext(self._closer)
        self._client_loop = weakref.ref(loop)

    async def _forget_client(self, previous: asyncio.AbstractEventLoop | None) -> None:
        """Let go of the client of an earlier loop (normally closed already, as that loop ended)."""
        closer, self._closer, self.async_client = self._closer, None, None
        if closer is not None and (previous is None or previous.is_closed()):
            # That loop was closed without shutting down its async generators: its sockets
            # cannot be closed any more, but the client is marked closed so that garbage
            # collection does not try again on this loop.
            with contextlib.suppress(RuntimeError):
                await closer.aclose()
        # A loop still running elsewhere closes the client itself: dropping ``closer`` hands
        # it to that loop's async-generator finalizer.


async def _close_when_loop_ends(client: Any) -> AsyncGenerator[None, None]:
    """Park in the client's loop until the loop finalizes its async generators, then close."""
    try:
        yield
    finally:
        await client.close()


def client_settings(timeout: float | None, max_retries: int | None) -> dict[str, Any]:
    """``timeout``/``max_retries`` for an OpenAI client, with the SDK's environment defaults."""
    return {
        "timeout": timeout if timeout is not None else float(os.environ.get("OPENAI_TIMEOUT", 30)),
        "max_retries": (
            max_retries if max_retries is not None else int(os.environ.get("OPENAI_MAX_RETRIES", 5))
        ),
    }


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()!<>|#])")


def markdown_literal(text: str) -> str:
    """``text`` shown literally in Markdown: its link, image, HTML, emphasis and table syntax
    escaped (endpoint text such as model ids and error messages is not ours to render)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
