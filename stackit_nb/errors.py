"""Errors that say what went wrong and what to do next.

The one place that turns ``openai`` exceptions into helpful ones. Each helpful error subclasses
the original ``openai`` class, so ``except openai.RateLimitError`` keeps working, and is raised
``from`` the original, which stays available as ``__cause__``. No message ever contains the key,
nor does any exception it chains to (see ``stackit_nb._scrub``).
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import time
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx2
import openai
from haystack.utils import Secret

from stackit_nb._common import API_KEY_ENV, BASE_URL_ENV, is_local_url
from stackit_nb._scrub import scrub_exception
from stackit_nb._terminal import printable
from stackit_nb.models import ModelList, afetch_models, builtin_models, fetch_models

_CONNECT_HINT = (
    "or call stackit_nb.connect() first: without a key it starts a local STACKIT-compatible "
    "server and points this process at it"
)
_IMAGE_WORDS = re.compile(r"image|multimodal|multi-modal|vision", re.IGNORECASE)
_E = TypeVar("_E", bound=openai.APIError)
_CONTEXT_WORDS = re.compile(
    r"context length|context window|too many tokens|prompt is too long|maximum context",
    re.IGNORECASE,
)


class STACKITError(Exception):
    """Base class of the errors ``stackit_nb`` raises with advice attached."""


class MissingAPIKeyError(STACKITError, ValueError):
    """No API key: names ``STACKIT_API_KEY`` and ``stackit_nb.connect()``.

    A ``ValueError``, like the reference integration's missing-key error.
    """


class UntrustedSettingsError(STACKITError, ValueError):
    """A loaded pipeline's component names an endpoint, key variable or HTTP client settings
    that could send the key elsewhere; ``stackit_nb.trust_loaded_settings()`` opts in."""


class InvalidAPIKeyError(STACKITError, openai.AuthenticationError):
    """The endpoint rejected the key (HTTP 401)."""


class ModelNotFoundError(STACKITError, openai.NotFoundError):
    """The model id is unknown or retired; ``suggestions`` holds the closest available ids."""

    suggestions: list[str]


class ImageNotSupportedError(STACKITError, openai.BadRequestError):
    """An image went to a text-only model; ``vision_models`` lists models that accept images."""

    vision_models: list[str]


class RateLimitedError(STACKITError, openai.RateLimitError):
    """HTTP 429; ``retry_after`` is the number of seconds the endpoint asked to wait (or None)."""

    retry_after: float | None


class AccessDeniedError(STACKITError, openai.PermissionDeniedError):
    """The endpoint accepted the key but refused this model or operation (HTTP 403)."""


class ContextTooLongError(STACKITError, openai.BadRequestError):
    """The messages plus ``max_tokens`` do not fit the model's context window (HTTP 400)."""


class RequestTooLargeError(STACKITError, openai.APIStatusError):
    """The endpoint refused the request body as too large (HTTP 413), usually for images."""


class ServerError(STACKITError, openai.InternalServerError):
    """The endpoint failed on its side (HTTP 5xx), after the client's retries."""


class EndpointUnreachableError(STACKITError, openai.APIConnectionError):
    """No connection to the endpoint: a wrong address, no network, or a stopped local server."""


class EndpointTimeoutError(STACKITError, openai.APITimeoutError):
    """The endpoint did not answer within the timeout."""


class InvalidResponseError(STACKITError, openai.APIError):
    """The endpoint answered with a body that is not the JSON an OpenAI-style API sends."""


class StreamInterruptedError(STACKITError, openai.APIConnectionError):
    """A stream broke off before its end; ``partial`` holds the reply received so far."""

    partial: Any


def stream_interrupted(
    exc: Exception, request: Any, chunks: int, partial: Any, content_type: str | None = None
) -> StreamInterruptedError | InvalidResponseError:
    """The error for a stream cut short (closed connection or an unreadable event).

    An answer that was no event stream at all (``content_type`` is something else and nothing
    arrived) is an :class:`InvalidResponseError` instead.
    """
    if chunks == 0 and content_type and "event-stream" not in content_type:
        where = str(request.url) if request is not None else "the endpoint"
        message = (
            f"{where} answered a streamed request with {content_type.split(';')[0]} instead of "
            "an event stream, and no reply arrived. Check that the address is an "
            "OpenAI-compatible API (STACKIT's ends in /v1), or run again once."
        )
        return InvalidResponseError(message, request, body=None)
    if isinstance(exc, EOFError):
        what = "ended the stream without finishing the reply"
    elif isinstance(exc, ValueError):
        what = "sent an unreadable event"
    else:
        what = "closed the connection"
    host = request.url.host if request is not None else "the endpoint"
    message = (
        f"The stream from {host} broke off after {chunks} chunks: the server {what} before the "
        "reply was complete. The text received so far is in this error's `partial`; run again "
        "to get a whole reply."
    )
    new = StreamInterruptedError(message=message, request=request)
    new.partial = partial
    return new


def resolve_api_key(secret: Secret) -> str:
    """Resolve ``secret``, or raise :class:`MissingAPIKeyError` naming what to set."""
    try:
        value = secret.resolve_value()
    except ValueError as exc:
        raise MissingAPIKeyError(_missing_key_message(secret)) from exc
    if not value:
        raise MissingAPIKeyError(_missing_key_message(secret))
    return str(value)


def _missing_key_message(secret: Secret) -> str:
    try:
        env_vars = list(secret.to_dict().get("env_vars") or [API_KEY_ENV])
    except ValueError:  # a token secret cannot be serialized; its token was empty
        env_vars = [API_KEY_ENV]
    return (
        f"None of the following authentication environment variables are set: {env_vars}. "
        f"Set {env_vars[0]} to your STACKIT AI Model Serving auth token, {_CONNECT_HINT}."
    )


def server_message(exc: openai.APIStatusError) -> str:
    """The endpoint's own error text (OpenAI's nested shape or vLLM's flat one), without
    control characters: it ends up in messages that terminals print."""
    body: Any = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return printable(str(inner["message"]))
        if isinstance(inner, str):
            return printable(inner)
        if body.get("detail"):
            return printable(str(body["detail"]))
    return printable(exc.message)


def is_image_rejection(exc: openai.APIStatusError) -> bool:
    """Whether a 400 says the model cannot take image input."""
    return exc.status_code == 400 and bool(_IMAGE_WORDS.search(server_message(exc)))


def wants_catalog(exc: BaseException) -> bool:
    """Whether :func:`explain` can do better for ``exc`` given the endpoint's model list."""
    return isinstance(exc, openai.APIStatusError) and (
        exc.status_code == 404 or is_image_rejection(exc)
    )


def retry_after_seconds(exc: openai.APIStatusError) -> float | None:
    """Seconds from ``Retry-After`` / ``retry-after-ms`` (number or HTTP date), if present."""
    headers = exc.response.headers
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def explain(
    exc: openai.APIStatusError,
    *,
    model: str | None = None,
    kind: str = "chat",
    catalog: ModelList | None = None,
    secret_value: str | None = None,
    retries: int | None = None,
) -> openai.APIStatusError | None:
    """Return a helpful version of ``exc``, or ``None`` when there is nothing to add.

    :param exc: The error the OpenAI client raised.
    :param model: The model id the request used.
    :param kind: ``"chat"`` or ``"embedding"``: which models to suggest instead.
    :param catalog: The endpoint's models, when they could be fetched.
    :param secret_value: The key in use; scrubbed from the message should the endpoint echo it.
    :param retries: How often the client retried before giving up (named for 5xx errors).
    """
    if isinstance(exc, STACKITError):
        return None
    # re-raised as it is when there is nothing to add: its message is the endpoint's text too
    exc.message = printable(exc.message)
    exc.args = tuple(printable(a) if isinstance(a, str) else a for a in exc.args)
    detail = server_message(exc)
    host = exc.request.url.host if exc.request is not None else "the endpoint"
    status = exc.status_code
    new: openai.APIStatusError | None = None
    if status == 401:
        message = (
            f"{host} rejected the API key (HTTP 401: {detail}). Check that {API_KEY_ENV} holds "
            "a valid STACKIT AI Model Serving auth token for this endpoint. To work without "
            f"STACKIT, unset {API_KEY_ENV} and call stackit_nb.connect() for a local server."
        )
        new = InvalidAPIKeyError(message, response=exc.response, body=exc.body)
    elif status == 404 and model:
        new = _model_not_found(exc, detail, model=model, kind=kind, catalog=catalog)
    elif is_image_rejection(exc):
        models = catalog if catalog else builtin_models()
        vision = models.vision.ids or builtin_models().vision.ids
        message = f"The model '{model}' does not accept images. "
        message += f"Models that accept images: {', '.join(vision)}."
        if not all(v in detail for v in vision):  # the endpoint's text, unless it says the same
            message += f" (The endpoint said: {detail})"
        new = ImageNotSupportedError(message, response=exc.response, body=exc.body)
        new.vision_models = vision
    elif status == 400 and _CONTEXT_WORDS.search(detail):
        message = (
            f"The request does not fit the context window of '{model}' (HTTP 400: {detail}). "
            "Shorten the prompt (in a chat, drop or summarise older messages), lower max_tokens "
            "in generation_kwargs, or choose a model with a larger window: "
            "stackit_nb.list_models() shows each model's context length."
        )
        new = ContextTooLongError(message, response=exc.response, body=exc.body)
    elif status == 403:
        message = (
            f"{host} refused access to '{model}' (HTTP 403: {detail}). The key was accepted but "
            "may not use this model or operation: check that its STACKIT project has AI Model "
            "Serving for this model, or choose another one (stackit_nb.list_models())."
        )
        new = AccessDeniedError(message, response=exc.response, body=exc.body)
    elif status == 413:
        message = (
            f"{host} refused the request as too large (HTTP 413: {detail}). Images are the "
            "usual cause: send fewer per request, or smaller ones: "
            "stackit_nb.to_image_content(path, max_side=768) scales a photo down before sending."
        )
        new = RequestTooLargeError(message, response=exc.response, body=exc.body)
    elif status >= 500:
        message = (
            f"{host} failed with HTTP {status} ({detail}){_after(retries)}: the fault is on the "
            "server's side, not in the request. Run again in a minute; a larger max_retries "
            "rides out short outages."
        )
        new = ServerError(message, response=exc.response, body=exc.body)
    elif status == 429:
        wait = retry_after_seconds(exc)
        when = f"Retry after {wait:g} s." if wait is not None else "Retry in a little while."
        message = (
            f"Rate limit reached for '{model}' on {host} (HTTP 429: {detail}). {when} "
            "STACKIT limits requests and tokens per minute per project and model "
            "(tokens = prompt + 5 x generated); send fewer requests at once or fewer tokens."
        )
        new = RateLimitedError(message, response=exc.response, body=exc.body)
        new.retry_after = wait
    return _scrubbed(new, secret_value)


def explain_transport(
    exc: Exception,
    *,
    base_url: str,
    kind: str = "chat",
    timeout: Any = None,
    retries: int | None = None,
    secret_value: str | None = None,
) -> openai.APIError | None:
    """A helpful version of an error without an HTTP status, or ``None``.

    Covers no connection at all, no answer within the timeout, and a 200 answer whose body is
    not JSON (which the OpenAI client raises as a bare ``json.JSONDecodeError``).

    :param exc: The error the OpenAI client raised.
    :param base_url: The endpoint the client was configured with.
    :param kind: ``"chat"`` or ``"embedding"``: which path the request went to.
    :param timeout: The client's timeout (seconds or an ``httpx`` timeout).
    :param retries: How often the client retried before giving up.
    :param secret_value: The key in use; scrubbed from the message.
    """
    if isinstance(exc, STACKITError):
        return None
    where = base_url.rstrip("/")
    new: openai.APIError
    if isinstance(exc, openai.APITimeoutError):
        message = (
            f"{urlsplit(where).netloc or where} did not answer within {_seconds(timeout)}"
            f"{_after(retries)}. A long reply or a busy model: pass a larger timeout= to the "
            "component, lower max_tokens, or stream the reply (streaming_callback) so the text "
            "arrives as it is made."
        )
        new = EndpointTimeoutError(exc.request)
        new.args, new.message = (message,), message
    elif isinstance(exc, openai.APIConnectionError):
        message = f"Could not connect to {where} ({_reason(exc)}){_after(retries)}. "
        if is_local_url(where):
            message += (
                "That is a local server: is it still running? stackit_nb.connect() starts one "
                "in this process, `stackit-nb serve` in a terminal."
            )
        else:
            message += (
                f"Check the address (api_base_url, or {BASE_URL_ENV}) and the network connection."
            )
        new = EndpointUnreachableError(message=message, request=exc.request)
    elif isinstance(exc, json.JSONDecodeError):
        url = f"{where}/{'embeddings' if kind == 'embedding' else 'chat/completions'}"
        message = (
            f"{url} answered with a body that is not JSON ({exc.msg} at character {exc.pos}; "
            f"it starts {exc.doc[:60]!r}). Check that the address is an OpenAI-compatible API "
            "(STACKIT's ends in /v1); a proxy or a restarting server can send such answers too, "
            "so run again once."
        )
        new = InvalidResponseError(message, httpx2.Request("POST", url), body=None)
    else:
        return None
    return _scrubbed(new, secret_value)


def _reason(exc: BaseException) -> str:
    """Why a connection failed, from the innermost cause that says it (the OS error, with its
    name: "Connection refused" rather than the async client's "All connection attempts failed")."""
    reason, seen = "", set()
    cause: BaseException | None = exc.__cause__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno is not None:
            name, detail = os.strerror(cause.errno), cause.strerror or str(cause)
            return name if detail == name else f"{name}: {detail}"
        reason = reason or str(cause)
        cause = cause.__cause__ or cause.__context__
    return reason or (exc.__cause__.__class__.__name__ if exc.__cause__ else str(exc))


def _after(retries: int | None) -> str:
    return f" after {retries} {'retry' if retries == 1 else 'retries'}" if retries else ""


def _seconds(timeout: Any) -> str:
    """``timeout`` as people say it: the read timeout of an ``httpx`` timeout object."""
    value = getattr(timeout, "read", timeout)
    return f"{value:g} s" if isinstance(value, int | float) else "the timeout"


def _scrubbed(new: _E | None, secret_value: str | None) -> _E | None:
    """``new`` without ``secret_value``, should the endpoint echo it (its chain is scrubbed
    where it is raised: see :func:`stackit_nb._scrub.secret_kept_out`)."""
    if new is not None:
        scrub_exception(new, secret_value)
    return new


def _model_not_found(
    exc: openai.APIStatusError, detail: str, *, model: str, kind: str, catalog: ModelList | None
) -> openai.APIStatusError | None:
    if catalog and model in catalog.ids:
        return None  # the model exists: this 404 is about something else (a wrong URL path?)
    source = catalog if catalog else builtin_models()
    suggestions = source.closest(model, kind=kind)
    available = source.embedding.ids if kind == "embedding" else source.chat.ids
    parts = [f"The model '{model}' is not available ({detail})."]
    if suggestions:
        parts.append(f"Closest available ids: {', '.join(suggestions)}.")
    where = "served now" if catalog else "known to stackit_nb (the endpoint could not be asked)"
    parts.append(f"All {kind} models {where}: {', '.join(available)}.")
    parts.append("See stackit_nb.list_models() for capabilities.")
    new = ModelNotFoundError(" ".join(parts), response=exc.response, body=exc.body)
    new.suggestions = suggestions
    return new


#: What :func:`explain_from` can improve: errors with a status, and those without one.
EXPLAINABLE = (openai.APIStatusError, openai.APIConnectionError, json.JSONDecodeError)


def explain_from(exc: Exception, client: Any, *, model: str, kind: str) -> Exception | None:
    """:func:`explain` or :func:`explain_transport` for an error ``client`` raised.

    Asks ``client``'s endpoint for its models when that helps.
    """
    catalog = None
    if wants_catalog(exc) and client is not None:
        try:
            catalog = fetch_models(client)
        except openai.OpenAIError:
            catalog = None  # the original error matters more than the suggestions
    return _explain_with(exc, client, model=model, kind=kind, catalog=catalog)


async def aexplain_from(exc: Exception, client: Any, *, model: str, kind: str) -> Exception | None:
    """:func:`explain_from` for an async client."""
    catalog = None
    if wants_catalog(exc) and client is not None:
        try:
            catalog = await afetch_models(client)
        except openai.OpenAIError:
            catalog = None
    return _explain_with(exc, client, model=model, kind=kind, catalog=catalog)


def _explain_with(
    exc: Exception, client: Any, *, model: str, kind: str, catalog: ModelList | None
) -> Exception | None:
    secret = getattr(client, "api_key", None)
    retries = getattr(client, "max_retries", None)
    if isinstance(exc, openai.APIStatusError):
        return explain(
            exc, model=model, kind=kind, catalog=catalog, secret_value=secret, retries=retries
        )
    if client is None:
        return None
    return explain_transport(
        exc,
        base_url=str(client.base_url),
        kind=kind,
        timeout=client.timeout,
        retries=retries,
        secret_value=secret,
    )
