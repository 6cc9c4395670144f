"""Request bodies of the local server and the checks a real STACKIT (vLLM) server makes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stackit_nb.local import catalog
from stackit_nb.local.engines import ChatRequest
from stackit_nb.local.tokens import count_prompt_tokens, image_tokens
from stackit_nb.local.vision import ImageDecodeError, ImageFacts, inspect_data_url


class APIError(Exception):
    """An error answered in the OpenAI shape."""

    def __init__(self, status: int, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class Message(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class StreamOptions(_Body):
    include_usage: bool = False


class ChatCompletionBody(_Body):
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=16)
    seed: int | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    reasoning_effort: Literal["low", "medium", "high"] | None = None


class EmbeddingsBody(_Body):
    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)


def model_or_404(model_id: str) -> catalog.ModelInfo:
    model = catalog.get_model(model_id)
    if model is None:
        raise APIError(404, f"The model `{model_id}` does not exist.", param="model")
    return model


def prepare_chat(body: ChatCompletionBody) -> tuple[ChatRequest, int]:
    """Validate a chat request against its model and turn it into the engine's request."""
    model = model_or_404(body.model)
    if not model.supports("chat"):
        raise APIError(
            400,
            f"Model `{model.id}` is an embedding model; use POST /v1/embeddings, or a chat model "
            f"such as {catalog.ids_with('chat')[0]}.",
            param="model",
        )
    messages = [m.model_dump(exclude_none=True) for m in body.messages]
    images = _decode_images(model, messages)
    image_cost = sum(image_tokens(i.width, i.height) for i in images)
    prompt_tokens = count_prompt_tokens(messages, image_cost)
    max_tokens = body.max_completion_tokens or body.max_tokens
    requested = prompt_tokens + (max_tokens or 0)
    if requested > model.context_length:
        raise APIError(
            400,
            f"This model's maximum context length is {model.context_length} tokens. However, you "
            f"requested {requested} tokens ({prompt_tokens} in the messages, {max_tokens or 0} in "
            "the completion). Please reduce the length of the messages or completion.",
            param="messages",
        )
    _check_response_format(body.response_format)
    if body.tools is not None:
        for i, tool in enumerate(body.tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if (
                tool.get("type") != "function"
                or not isinstance(function, dict)
                or (not function.get("name"))
            ):
                raise APIError(
                    400,
                    f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ..., "
                    "'parameters': {...}}}}",
                    param="tools",
                )
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    request = ChatRequest(
        model=model,
        messages=messages,
        images=images,
        max_tokens=max_tokens,
        stop=[s for s in stop if s],
        n=body.n,
        seed=body.seed,
        temperature=body.temperature,
        response_format=body.response_format,
        tools=body.tools,
        tool_choice=body.tool_choice,
        reasoning_effort=body.reasoning_effort,
    )
    return request, prompt_tokens


def _decode_images(model: catalog.ModelInfo, messages: list[dict[str, Any]]) -> list[ImageFacts]:
    images = []
    for m_index, message in enumerate(messages):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for p_index, part in enumerate(content):
            kind = part.get("type")
            where = f"messages[{m_index}].content[{p_index}]"
            if kind == "text":
                if not isinstance(part.get("text"), str):
                    raise APIError(400, f"{where}.text must be a string", param="messages")
                continue
            if kind != "image_url":
                raise APIError(
                    400,
                    f"{where}: unsupported content part type {kind!r}; use 'text' or 'image_url'",
                    param="messages",
                )
            if not model.supports("vision"):
                raise APIError(
                    400,
                    f"Model `{model.id}` is not a multimodal model and does not accept image "
                    f"input. Models that accept images: {', '.join(catalog.ids_with('vision'))}.",
                    param="messages",
                )
            image_url = part.get("image_url")
            url = image_url.get("url") if isinstance(image_url, dict) else image_url
            if not isinstance(url, str):
                raise APIError(400, f"{where}.image_url.url must be a string", param="messages")
            try:
                images.append(inspect_data_url(url))
            except ImageDecodeError as exc:
                raise APIError(400, f"{where}: {exc}", param="messages") from None
    return images


def _check_response_format(response_format: dict[str, Any] | None) -> None:
    if response_format is None:
        return
    kind = response_format.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise APIError(
            400,
            f"response_format.type {kind!r} is not supported; use 'text', 'json_object' or "
            "'json_schema'",
            param="response_format",
        )
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise APIError(
                400,
                "response_format json_schema needs {'json_schema': {'name': ..., 'schema': {...}}}",
                param="response_format",
            )
