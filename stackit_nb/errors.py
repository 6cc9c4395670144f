"""Errors that say what went wrong and what to do next.

The one place that turns ``openai`` exceptions into helpful ones. Each helpful error subclasses
the original ``openai`` class, so ``except openai.RateLimitError`` keeps working, and is raised
``from`` the original, which stays available as ``__cause__``. No message ever contains the key.
"""

from __future__ import annotations

import email.utils
import re
import time
from typing import Any

import openai
from haystack.utils import Secret

from stackit_nb._common import API_KEY_ENV
from stackit_nb.models import ModelList, afetch_models, builtin_models, fetch_models

_CONNECT_HINT = (
    "or call stackit_nb.connect() first: without a key it starts a local STACKIT-compatible "
    "server and points this process at it"
)
_IMAGE_WORDS = re.compile(r"image|multimodal|multi-modal|vision", re.IGNORECASE)


class STACKITError(Exception):
    """Base class of the errors ``stackit_nb`` raises with advice attached."""


class MissingAPIKeyError(STACKITError, ValueError):
    """No API key: names ``STACKIT_API_KEY`` and ``stackit_nb.connect()``.

    A ``ValueError``, like the reference integration's missing-key error.
    """


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


class StreamInterruptedError(STACKITError, openai.APIConnectionError):
    """A stream broke off before its end; ``partial`` holds the reply received so far."""

    partial: Any


def stream_interrupted(
    exc: Exception, request: Any, chunks: int, partial: Any
) -> StreamInterruptedError:
    """The error for a stream cut short (closed connection or an unreadable event)."""
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
    """The endpoint's own error text (OpenAI's nested shape or vLLM's flat one)."""
    body: Any = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
        if body.get("detail"):
            return str(body["detail"])
    return exc.message


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
) -> openai.APIStatusError | None:
    """Return a helpful version of ``exc``, or ``None`` when there is nothing to add.

    :param exc: The error the OpenAI client raised.
    :param model: The model id the request used.
    :param kind: ``"chat"`` or ``"embedding"``: which models to suggest instead.
    :param catalog: The endpoint's models, when they could be fetched.
    :param secret_value: The key in use; scrubbed from the message should the endpoint echo it.
    """
    if isinstance(exc, STACKITError):
        return None
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
    if new is not None and secret_value and len(secret_value) >= 4:
        scrubbed = str(new.args[0]).replace(secret_value, "<redacted>")
        new.args = (scrubbed,)
        new.message = scrubbed
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


def explain_from(
    exc: openai.APIStatusError, client: Any, *, model: str, kind: str
) -> openai.APIStatusError | None:
    """:func:`explain`, asking ``client``'s endpoint for its models when that helps."""
    catalog = None
    if wants_catalog(exc) and client is not None:
        try:
            catalog = fetch_models(client)
        except openai.OpenAIError:
            catalog = None  # the original error matters more than the suggestions
    secret = client.api_key if client is not None else None
    return explain(exc, model=model, kind=kind, catalog=catalog, secret_value=secret)


async def aexplain_from(
    exc: openai.APIStatusError, client: Any, *, model: str, kind: str
) -> openai.APIStatusError | None:
    """:func:`explain_from` for an async client."""
    catalog = None
    if wants_catalog(exc) and client is not None:
        try:
            catalog = await afetch_models(client)
        except openai.OpenAIError:
            catalog = None
    secret = client.api_key if client is not None else None
    return explain(exc, model=model, kind=kind, catalog=catalog, secret_value=secret)
