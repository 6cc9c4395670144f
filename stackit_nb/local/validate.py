"""Request bodies of the local server and the checks a real STACKIT (vLLM) server makes.

The body models accept loose JSON objects where OpenAI's API nests them (content parts, tool
calls, tools, ``tool_choice``, ``response_format``); ``prepare_chat`` checks their shape and says
what is wrong in the field's own terms. The OpenAPI document describes those shapes (the
``*_SCHEMA`` constants below, attached with ``WithJsonSchema``): each keyword in them is one that
``prepare_chat`` enforces, so a client built from the document is never surprised by a 400.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from stackit_nb.local import catalog
from stackit_nb.local.api_error import APIError
from stackit_nb.local.engines.interface import ChatRequest
from stackit_nb.local.logprobs import MAX_TOP_LOGPROBS
from stackit_nb.local.tokens import count_prompt_tokens, count_tokens
from stackit_nb.local.vision import ImageDecodeError, ImageFacts, inspect_data_url

# -- the nested shapes, as the OpenAPI document shows them ---------------------------------------

_STRING = {"type": "string"}
TEXT_PART_SCHEMA = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": _STRING},
}
IMAGE_PART_SCHEMA = {
    "type": "object",
    "required": ["type", "image_url"],
    "properties": {
        "type": {"const": "image_url"},
        "image_url": {
            "description": "A base64 data URL (data:image/png;base64,...), alone or as {url}.",
            "anyOf": [
                _STRING,
                {"type": "object", "required": ["url"], "properties": {"url": _STRING}},
            ],
        },
    },
}
CONTENT_SCHEMA = {
    "anyOf": [
        _STRING,
        {"type": "array", "items": {"anyOf": [TEXT_PART_SCHEMA, IMAGE_PART_SCHEMA]}},
        {"type": "null"},
    ]
}
TOOL_CALL_SCHEMA = {
    "type": "object",
    "required": ["function"],
    "properties": {
        "id": _STRING,
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name", "arguments"],
            "properties": {"name": _STRING, "arguments": {**_STRING, "description": "JSON text"}},
        },
    },
}
TOOL_SCHEMA = {
    "type": "object",
    "required": ["type", "function"],
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "description": {"type": ["string", "null"]},
                "parameters": {
                    "type": ["object", "null"],
                    "description": "A JSON Schema for the arguments.",
                },
            },
        },
    },
}
TOOL_CHOICE_SCHEMA = {
    "anyOf": [
        {"enum": ["none", "auto", "required"]},
        {
            "type": "object",
            "required": ["function"],
            "properties": {
                "type": {"const": "function"},
                "function": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": _STRING},
                },
            },
        },
        {"type": "null"},
    ]
}
RESPONSE_FORMAT_SCHEMA = {
    "anyOf": [
        {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"enum": ["text", "json_object"]}},
        },
        {
            "type": "object",
            "required": ["type", "json_schema"],
            "properties": {
                "type": {"const": "json_schema"},
                "json_schema": {
                    "type": "object",
                    "required": ["schema"],
                    "properties": {
                        "name": _STRING,
                        "schema": {"type": "object", "description": "A JSON Schema."},
                    },
                },
            },
        },
        {"type": "null"},
    ]
}


def _list_of(schema: dict[str, Any]) -> WithJsonSchema:
    return WithJsonSchema({"anyOf": [{"type": "array", "items": schema}, {"type": "null"}]})


# -- the bodies -----------------------------------------------------------------------------------


class RequestBody(BaseModel):
    # Strict: `"temperature": false` or `"n": "2"` is a 400 naming the field, as on OpenAI,
    # not quietly read as 0.0 or 2 (code that works here must work against any server).
    model_config = ConfigDict(extra="allow", strict=True)


class Message(RequestBody):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Annotated[str | list[dict[str, Any]] | None, WithJsonSchema(CONTENT_SCHEMA)] = None
    tool_calls: Annotated[list[dict[str, Any]] | None, _list_of(TOOL_CALL_SCHEMA)] = None
    tool_call_id: str | None = None
    name: str | None = None


class StreamOptions(RequestBody):
    include_usage: bool = False


class ChatCompletionBody(RequestBody):
    model: str = Field(examples=catalog.ids_with("chat")[:1])
    messages: list[Message] = Field(
        min_length=1, examples=[[{"role": "user", "content": "Tell me a joke."}]]
    )
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=16)
    seed: int | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    response_format: Annotated[dict[str, Any] | None, WithJsonSchema(RESPONSE_FORMAT_SCHEMA)] = None
    tools: Annotated[list[dict[str, Any]] | None, _list_of(TOOL_SCHEMA)] = None
    tool_choice: Annotated[str | dict[str, Any] | None, WithJsonSchema(TOOL_CHOICE_SCHEMA)] = None
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = None


#: What vLLM accepts as text input: a string, strings, token ids, or lists of token ids.
TextOrTokens = str | list[str] | list[int] | list[list[int]]


class EmbeddingsBody(RequestBody):
    model: str = Field(examples=catalog.ids_with("embedding")[:1])
    input: TextOrTokens = Field(examples=["The river flows past the old mill."])
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)


def text_inputs(value: TextOrTokens, param: str) -> list[tuple[str, int]]:
    """Each input as (text the engine reads, its token count); token-id inputs (vLLM accepts
    them for embeddings and completions) count one token an id and read as their ids."""
    if isinstance(value, str):
        return [(value, count_tokens(value))]
    if not value:
        raise APIError(400, f"{param} must not be empty", param=param)
    strings = [item for item in value if isinstance(item, str)]
    if len(strings) == len(value):
        return [(text, count_tokens(text)) for text in strings]
    ids = [item for item in value if isinstance(item, int)]
    sequences = [ids] if len(ids) == len(value) else [v for v in value if isinstance(v, list)]
    inputs = []
    for i, sequence in enumerate(sequences):
        if not sequence or any(t < 0 for t in sequence):
            raise APIError(
                400,
                f"{param}[{i}] must be a non-empty list of token ids (integers >= 0)",
                param=param,
            )
        inputs.append((" ".join(map(str, sequence)), len(sequence)))
    return inputs


def model_or_404(model_id: str) -> catalog.ModelInfo:
    model = catalog.get_model(model_id)
    if model is None:
        raise APIError(404, f"The model `{model_id}` does not exist.", param="model")
    return model


def chat_model_or_error(model_id: str) -> catalog.ModelInfo:
    """The chat model ``model_id``: a 404 when it does not exist, a 400 for an embedding model."""
    model = model_or_404(model_id)
    if not model.supports("chat"):
        raise APIError(
            400,
            f"Model `{model.id}` is an embedding model; use POST /v1/embeddings, or a chat model "
            f"such as {catalog.ids_with('chat')[0]}.",
            param="model",
        )
    return model


def check_stream_options(stream: bool, stream_options: object) -> None:
    """vLLM's ``validate_stream_options``: options without ``stream: true`` are a 400."""
    if stream_options and not stream:
        raise APIError(
            400, "Stream options can only be defined when `stream=True`.", param="stream_options"
        )


def check_top_logprobs(top_logprobs: int | None, logprobs: bool, param: str) -> int:
    """vLLM's logprobs checks (protocol ``check_logprobs``, the engine's ``max_logprobs``)."""
    if top_logprobs is None:
        return 0
    if top_logprobs < 0:
        raise APIError(400, f"`{param}` must be a positive value.", param=param)
    if top_logprobs > 0 and not logprobs:
        raise APIError(400, f"when using `{param}`, `logprobs` must be set to true.", param=param)
    if top_logprobs > MAX_TOP_LOGPROBS:
        raise APIError(
            400,
            f"Requested sample logprobs of {top_logprobs}, which is greater than max allowed: "
            f"{MAX_TOP_LOGPROBS}",
            param="logprobs",
        )
    return top_logprobs


def prepare_chat(body: ChatCompletionBody) -> tuple[ChatRequest, int]:
    """Validate a chat request against its model and turn it into the engine's request."""
    # vLLM's request validators run before it looks the model up.
    check_stream_options(body.stream, body.stream_options)
    top_logprobs = check_top_logprobs(body.top_logprobs, bool(body.logprobs), "top_logprobs")
    _check_response_format(body.response_format)
    _check_tools(body.tools or [])
    tool_choice = _check_tool_choice(body.tool_choice, body.tools, body.model_fields_set)
    model = chat_model_or_error(body.model)
    messages = [m.model_dump(exclude_none=True) for m in body.messages]
    _check_tool_calls(messages)
    images = _decode_images(model, messages)
    image_cost = sum(model.image_tokens(i.width, i.height) for i in images)
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
    if tool_choice == "auto" and not model.supports("tools"):
        # vLLM's serving_chat, for a model served without --tool-call-parser (STACKIT serves
        # gemma-3 and Mistral-Nemo so); "none", "required" and named tools still work there.
        raise APIError(
            400,
            '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be '
            f"set (model `{model.id}` has no tool parser on STACKIT; models with tools: "
            f"{', '.join(catalog.ids_with('tools'))})",
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
        tool_choice=tool_choice,
        reasoning_effort=body.reasoning_effort,
        logprobs=bool(body.logprobs),
        top_logprobs=top_logprobs,
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
        if spec is None:
            raise APIError(
                400,
                "When response_format type is 'json_schema', the 'json_schema' field must be "
                "provided.",
                param="response_format",
            )
        if isinstance(spec, dict) and not isinstance(spec.get("name"), str):
            # vLLM's JsonSchemaResponseFormat declares `name: str` (required), as OpenAI does.
            raise APIError(
                400,
                "response_format.json_schema.name: Field required; give the schema a name, e.g. "
                "{'json_schema': {'name': 'answer', 'schema': {...}}}",
                param="response_format",
            )
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise APIError(
                400,
                "response_format json_schema needs {'json_schema': {'name': ..., 'schema': {...}}}",
                param="response_format",
            )
        _check_json_schema(spec["schema"], "response_format.json_schema.schema", "response_format")


def _check_tool_calls(messages: list[dict[str, Any]]) -> None:
    """Tool calls an assistant message carries back: the shape OpenAI's SDK sends."""
    for m_index, message in enumerate(messages):
        for c_index, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function")
            if (
                not isinstance(call.get("id", ""), str)
                or call.get("type", "function") != "function"
                or not isinstance(function, dict)
                or not isinstance(function.get("name"), str)
                or not isinstance(function.get("arguments"), str)
            ):
                raise APIError(
                    400,
                    f"messages[{m_index}].tool_calls[{c_index}] must be {{'id': '...', 'type': "
                    "'function', 'function': {'name': '...', 'arguments': '<JSON text>'}}",
                    param="messages",
                )


def _check_tools(tools: list[dict[str, Any]]) -> None:
    for i, tool in enumerate(tools):
        function = tool.get("function")
        if (
            tool.get("type") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not function["name"]
            or not isinstance(function.get("description", ""), str | None)
            or not isinstance(function.get("parameters", {}), dict | None)
        ):
            raise APIError(
                400,
                f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ..., "
                "'description': ..., 'parameters': {...}}}}",
                param="tools",
            )
        if function.get("parameters"):
            _check_json_schema(function["parameters"], f"tools[{i}].function.parameters", "tools")


def _check_tool_choice(
    tool_choice: str | dict[str, Any] | None, given: list[dict] | None, fields: set[str]
) -> str | dict[str, Any] | None:
    """vLLM's ``check_tool_usage``: the choice in effect (``auto`` when tools come without one),
    which must be known, and any choice but ``none`` needs ``tools`` (a named one, that tool)."""
    tools = given or []
    if "tool_choice" not in fields and tools:
        return "auto"
    if tool_choice is None or tool_choice == "none":
        # An explicit null is no choice at all: vLLM then calls no tool, as for "none".
        return "none" if tools else None
    if given is None:
        raise APIError(400, "When using `tool_choice`, `tools` must be set.", param="tool_choice")
    if tool_choice == "auto":
        return tool_choice
    named = _named_tool(tool_choice)
    if tool_choice != "required" and named is None:
        raise APIError(
            400,
            f"tool_choice {tool_choice!r} is not supported; use 'none', 'auto', 'required' or "
            "{'type': 'function', 'function': {'name': ...}}",
            param="tool_choice",
        )
    if not tools:
        raise APIError(400, "When using `tool_choice`, `tools` must be set.", param="tool_choice")
    if named is not None and named not in [(t.get("function") or {}).get("name") for t in tools]:
        raise APIError(400, f"Tool {named!r} has not been passed in `tools`.", param="tool_choice")
    return tool_choice


def _named_tool(tool_choice: str | dict[str, Any]) -> str | None:
    """The function a ``{"type": "function", "function": {"name": ...}}`` choice names."""
    if not isinstance(tool_choice, dict) or tool_choice.get("type", "function") != "function":
        return None
    function = tool_choice.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else None


def _check_json_schema(schema: dict[str, Any], where: str, param: str) -> None:
    """A schema the engine will fill must be a valid JSON Schema (OpenAI answers 400 too)."""
    declared = schema.get("$schema")
    if declared is not None and not isinstance(declared, str):
        raise APIError(400, f"{where}: $schema must be a string (a JSON Schema URI)", param=param)
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        at = "/".join(str(p) for p in exc.absolute_path)
        raise APIError(
            400,
            f"{where} is not a valid JSON Schema: {exc.message}" + (f" (at {at})" if at else ""),
            param=param,
        ) from None
    except RecursionError:
        raise APIError(400, f"{where} is nested too deeply", param=param) from None
