"""Take the key out of an exception and of everything it chains to.

An endpoint may echo the key in its error body (a misconfigured gateway, a proxy's error page).
The openai client puts that body into the exception's message, ``args``, ``body`` and
``response``; the helpful errors of :mod:`stackit_nb.errors` chain the original as
``__cause__``/``__context__``. A traceback in a saved notebook, a log record or an error card
shows all of them, so each one is scrubbed, not just the message of the error raised last.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

REDACTED = "<redacted>"
#: Keys shorter than this are not searched for: replacing "a" everywhere would garble messages.
MIN_SECRET_LENGTH = 4
_BODY_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})


@contextlib.contextmanager
def secret_kept_out(client: Any) -> Iterator[None]:
    """Scrub ``client.api_key`` from any exception leaving the block, chain included."""
    try:
        yield
    except Exception as exc:
        scrub_exception(exc, getattr(client, "api_key", None))
        raise


def scrub_exception(exc: BaseException, secret: str | None) -> BaseException:
    """Replace ``secret`` in ``exc`` and every exception it chains to, in place; returns ``exc``.

    Covers ``args``, ``message``, ``body``, ``doc`` (a JSON decode error's input), notes, and the
    HTTP ``response`` and ``request`` (their bodies, and headers such as ``Authorization``).
    """
    if not secret or len(secret) < MIN_SECRET_LENGTH:
        return exc
    pending: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        with contextlib.suppress(AttributeError, TypeError):
            current.args = tuple(scrub_value(arg, secret) for arg in current.args)
        for name in ("message", "body", "doc", "__notes__"):
            value = getattr(current, name, None)
            if value is not None:
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(current, name, scrub_value(value, secret))
        for name in ("response", "request"):
            if (value := getattr(current, name, None)) is not None:
                with contextlib.suppress(AttributeError, TypeError, ValueError):
                    setattr(current, name, _scrub_http(value, secret))
        pending += [current.__cause__, current.__context__]
    return exc


def scrub_value(value: Any, secret: str) -> Any:
    """``value`` (text, bytes, or lists and dicts of them) with ``secret`` replaced."""
    if isinstance(value, str):
        return value.replace(secret, REDACTED)
    if isinstance(value, bytes):
        return value.replace(secret.encode(), REDACTED.encode())
    if isinstance(value, dict):
        return {scrub_value(k, secret): scrub_value(v, secret) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub_value(item, secret) for item in value)
    return value


def _scrub_http(message: Any, secret: str) -> Any:
    """A copy of an ``httpx`` (or ``httpx2``) request or response without ``secret`` in its
    headers or body; anything else unchanged."""
    headers = getattr(message, "headers", None)
    if headers is None or not hasattr(message, "content"):
        return message
    try:
        content = message.content  # an unread streamed body has nothing to scrub yet
    except Exception:
        content = b""
    clean = [
        (name, REDACTED if name.lower() == "authorization" else scrub_value(value, secret))
        for name, value in headers.items()
        # the copy holds the decoded body: its encoding and length headers would not fit it
        if name.lower() not in _BODY_FRAMING
    ]
    if hasattr(message, "status_code"):  # a response
        try:
            request = message.request
        except RuntimeError:  # a response made without one
            request = None
        return type(message)(
            message.status_code,
            headers=clean,
            content=scrub_value(content, secret),
            request=_scrub_http(request, secret) if request is not None else None,
        )
    return type(message)(
        message.method, message.url, headers=clean, content=scrub_value(content, secret)
    )
