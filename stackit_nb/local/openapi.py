"""The local server's OpenAPI document (``GET /openapi.json``): every answer a route can give.

FastAPI derives the request bodies from the models in ``validate.py``. What it cannot see is added
here: the response bodies that ``wire.py`` and ``catalog.py`` build as plain dicts, the server-sent
events of a streamed completion, the error bodies (bad input is a 400 in OpenAI's shape, never
FastAPI's 422), and the bearer token that every ``/v1`` route requires. The models below only
describe; nothing validates responses at run time. ``tests/test_openapi_fuzz.py`` holds the server
to this document over real HTTP.

The admin path ``/_local/...`` and ``/health`` are left out: they are not part of the API that
real STACKIT serves.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, RootModel
from pydantic.json_schema import models_json_schema

FinishReason = Literal["stop", "length", "tool_calls"]
Responses = dict[int | str, dict[str, Any]]  # FastAPI's `responses=`: status -> description
_REF = "#/components/schemas/{model}"


class _Shape(BaseModel):
    # Exactly these fields: a field the server starts sending is documented first.
    model_config = ConfigDict(extra="forbid")


class ModelPermission(_Shape):
    """vLLM's permission object (the same for every model)."""

    id: str
    object: Literal["model_permission"]
    created: int
    allow_create_engine: bool
    allow_sampling: bool
    allow_logprobs: bool
    allow_search_indices: bool
    allow_view: bool
    allow_fine_tuning: bool
    organization: str
    group: str | None
    is_blocking: bool


class ModelCard(_Shape):
    """One served model: vLLM's fields plus what the model can do."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    root: str
    parent: str | None
    max_model_len: int
    permission: list[ModelPermission]
    capabilities: list[Literal["chat", "vision", "tools", "reasoning", "embedding"]]
    context_length: int
    kind: Literal["chat", "embedding"]
    legacy: bool
    embedding_dimensions: int | None = None  # embedding models only
    supports_dimensions: bool | None = None  # embedding models only


class ModelList(_Shape):
    object: Literal["list"]
    data: list[ModelCard]


class FunctionCall(_Shape):
    name: str
    arguments: str  # JSON text


class ToolCall(_Shape):
    id: str
    type: Literal["function"]
    function: FunctionCall


class AssistantMessage(_Shape):
    """vLLM's ChatMessage: the fields a reply does not use are explicit nulls."""

    role: Literal["assistant"]
    content: str | None  # None when the reply is tool calls only
    refusal: None
    annotations: None
    audio: None
    function_call: None
    tool_calls: list[ToolCall]  # empty when the reply calls no tool
    # A reasoning model's thinking (null for other models), under one or both names (the
    # server's reasoning_field).
    reasoning_content: str | None = None
    reasoning: str | None = None


class TopLogprob(_Shape):
    token: str
    logprob: float  # <= 0
    bytes: list[int]  # the token's UTF-8 bytes


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]  # `top_logprobs` alternatives, most likely first


class ChatLogprobs(_Shape):
    content: list[TokenLogprob]  # one entry per content token, in order


class CompletionChoice(_Shape):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None  # None unless the request set `logprobs: true`
    finish_reason: FinishReason
    stop_reason: str | None  # vLLM: the stop string that ended the reply


class Usage(_Shape):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(_Shape):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: str  # "stackit-nb-local-<engine>": which local engine answered
    choices: list[CompletionChoice]
    usage: Usage


class FunctionDelta(_Shape):
    name: str | None = None  # in a call's first delta only
    arguments: str | None = None


class ToolCallDelta(_Shape):
    index: int
    id: str | None = None  # in a call's first delta only
    type: Literal["function"] | None = None
    function: FunctionDelta


class Delta(_Shape):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(_Shape):
    index: int
    delta: Delta
    logprobs: ChatLogprobs | None  # a content chunk's own tokens, when asked for
    finish_reason: FinishReason | None
    stop_reason: str | None = None  # in the chunk that ends the choice only (vLLM)


class ChatCompletionChunk(_Shape):
    """One event of a streamed completion; with ``include_usage`` the last one has ``usage``."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    system_fingerprint: str  # "stackit-nb-local-<engine>": which local engine answered
    choices: list[ChunkChoice]
    usage: Usage | None = None


class CompletionLogprobs(_Shape):
    """The legacy completions' logprobs: parallel lists, one item per token."""

    text_offset: list[int]
    token_logprobs: list[float]
    tokens: list[str]
    top_logprobs: list[dict[str, float]]  # the chosen token and `logprobs` alternatives


class TextChoice(_Shape):
    index: int  # prompt_index * n + i
    text: str
    logprobs: CompletionLogprobs | None
    finish_reason: FinishReason | None  # None in a streamed chunk that does not end the choice
    stop_reason: str | None
    prompt_logprobs: None = None  # non-streamed responses only


class TextCompletion(_Shape):
    """A legacy completion; streamed, each event is one of these with one choice (or, with
    ``include_usage``, none and the usage)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    system_fingerprint: str  # "stackit-nb-local-<engine>": which local engine answered
    choices: list[TextChoice]
    usage: Usage | None


class Embedding(_Shape):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str  # str: base64 of little-endian float32 (encoding_format)


class EmbeddingUsage(_Shape):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(_Shape):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class ErrorDetail(_Shape):
    message: str  # what went wrong and what to do
    type: str  # e.g. BadRequestError, NotFoundError
    param: str | None  # the request field at fault, when there is one
    code: int  # the HTTP status


class OpenAIErrorBody(_Shape):
    """The error shape of OpenAI and current vLLM (the server's default ``error_shape``)."""

    error: ErrorDetail


class FlatErrorBody(ErrorDetail):
    """The flat error shape of older vLLM releases (``error_shape="vllm"``)."""

    object: Literal["error"]


class ErrorBody(RootModel[OpenAIErrorBody | FlatErrorBody]):
    """Every error the server answers: one of the two shapes, as the server is configured."""


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


_UNAUTHORIZED: Responses = {401: _error("No bearer token, or not this server's token.")}
_NOT_FOUND: Responses = {404: _error("No model with this id (the message names it).")}
_BAD_BODY: Responses = {
    400: _error(
        "The body is not JSON, a field is missing or invalid, or the request does not fit the "
        "model (context length, images for a text model, a chat request to an embedding model)."
    ),
    413: _error("The body is larger than the server accepts (32 MiB by default)."),
}
# What each route answers; pass as ``responses=`` (the routes set ``response_model=None``).
LIST_MODELS: Responses = {
    200: {"model": ModelList, "description": "The served models."},
    **_UNAUTHORIZED,
}
GET_MODEL: Responses = {
    200: {"model": ModelCard, "description": "The model."},
    **_UNAUTHORIZED,
    **_NOT_FOUND,
}


def _event_stream(model: str) -> dict[str, Any]:
    """Open API 3.1 for server-sent events: the schema describes each event, ``model`` or
    ``[DONE]``."""
    event = {
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": _REF.format(model=model)},
    }
    data = {"oneOf": [{"const": "[DONE]"}, event]}
    schema = {"type": "object", "required": ["data"], "properties": {"data": data}}
    return {"text/event-stream": {"schema": schema}}


CHAT_COMPLETIONS: Responses = {
    200: {
        "model": ChatCompletion,
        "description": "A completion; with `stream: true`, server-sent events instead: one "
        "`chat.completion.chunk` per event, then `data: [DONE]`.",
        "content": _event_stream("ChatCompletionChunk"),
    },
    **_BAD_BODY,
    **_UNAUTHORIZED,
    **_NOT_FOUND,
}
COMPLETIONS: Responses = {
    200: {
        "model": TextCompletion,
        "description": "A text completion; with `stream: true`, server-sent events instead: one "
        "`text_completion` per event, then `data: [DONE]`.",
        "content": _event_stream("TextCompletion"),
    },
    **_BAD_BODY,
    **_UNAUTHORIZED,
    **_NOT_FOUND,
}
EMBEDDINGS: Responses = {
    200: {"model": EmbeddingList, "description": "One vector per input, in input order."},
    **_BAD_BODY,
    **_UNAUTHORIZED,
    **_NOT_FOUND,
}


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, built once (use as ``app.openapi``)."""
    if app.openapi_schema is None:
        doc = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        # The server turns request validation errors into 400s (see server.py): FastAPI's
        # automatic 422 never happens.
        for operations in doc.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        # Referenced from the event-stream schema only, so FastAPI does not collect it.
        _, extra = models_json_schema([(ChatCompletionChunk, "serialization")], ref_template=_REF)
        schemas.update(extra.get("$defs", {}))
        doc["components"]["securitySchemes"] = {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "The server's token: LocalSTACKIT.api_key, or the token "
                "`stackit-nb serve` printed.",
            }
        }
        doc["security"] = [{"bearerAuth": []}]
        app.openapi_schema = doc
    return app.openapi_schema
