"""The local server against its own OpenAPI document, over real HTTP (schemathesis).

schemathesis reads ``GET /openapi.json`` from the running session server and, for each of its
four operations (list models, get a model, chat completions, embeddings), sends requests the
document allows (positive), requests it forbids (negative) and its coverage cases (boundary
values, missing fields, wrong types, other HTTP methods). Every response must:

- not be a 5xx (``not_a_server_error``), and arrive within the request timeout;
- have a status the operation declares (``status_code_conformance``), the declared content type,
  and a body that matches the declared schema (``response_schema_conformance``): completions,
  each event of a stream, models, embeddings and the OpenAI-shaped error bodies;
- be a 4xx for anything the document forbids (``negative_data_rejection``);
- be a 401 without the token (``ignored_auth``), a 405 for other methods (``unsupported_method``);
- for a stream, end with ``data: [DONE]`` and finish every choice once (a check of our own).

``positive_data_acceptance`` is off: a request the document allows may still be refused for
reasons no schema states (the prompt is longer than the model's context, images sent to a text
model, a schema in ``tools`` that is not a valid JSON Schema).

The document's ``model`` fields are free strings; most generated ids would only ever meet the 404
path, so most requests take a served id from the catalog instead.

Below the fuzz runs, as plain requests: what the runs found (a 500 for a tool call whose
``function`` is no object; ``tool_choice`` objects and JSON values of the wrong type accepted),
and what turned up around those findings (schemas in ``tools`` that crashed or hung the engine,
bodies nested too deeply, error bodies outside OpenAI's shape).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import Case, CheckContext, Response

from stackit_nb.local import LocalSTACKIT
from stackit_nb.local.catalog import MODELS

SEED = 20260601  # fixed: the same requests on every run, so a failure reproduces in CI
MAX_EXAMPLES = 80  # fuzzing, per operation: positive and negative cases together
STREAMED_EXAMPLES = 50  # fuzzing chat completions again, every request with "stream": true
CHAT = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
CHAT_MODELS = [m.id for m in MODELS if m.kind == "chat"]
EMBEDDING_MODELS = [m.id for m in MODELS if m.kind == "embedding"]
CHAT_PATH = "/v1/chat/completions"

# What the server answered during a fuzz run: (operation, status, streamed) -> count.
answered: Counter[tuple[str, int, bool]] = Counter()


def fuzz_config(token: str, *, streamed: bool = False) -> schemathesis.Config:
    """The run's settings, in the shape of a ``schemathesis.toml``.

    ``streamed``: chat completions only, each with ``"stream": true`` (a run over the whole
    document sends few of them: most generated bodies leave ``stream`` out or false).
    """
    bindings: dict[str, dict[str, Any]] = {
        "/v1/models/{model_id}": {"path.model_id": {"dictionary": "models", "probability": 0.8}},
        CHAT_PATH: {"body.model": {"dictionary": "chat-models", "probability": 0.8}},
        "/v1/embeddings": {"body.model": {"dictionary": "embedding-models", "probability": 0.8}},
    }
    if streamed:
        bindings[CHAT_PATH]["body.stream"] = True
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
            "request-timeout": 20,
            "max-stream-events": 100_000,  # read every stream to its end
            "auth": {"openapi": {"bearerAuth": {"bearer": token}}},
            "generation": {
                # The streamed run sends valid bodies only: the main run covers invalid ones.
                "mode": "positive" if streamed else "all",
                "max-examples": STREAMED_EXAMPLES if streamed else MAX_EXAMPLES,
                "no-shrink": True,  # over HTTP, shrinking a failure takes minutes; SEED replays it
                "with-security-parameters": False,  # ignored_auth tests the token instead
                "database": "none",  # no replay of earlier local runs: CI and laptops agree
            },
            "phases": {
                "stateful": {"enabled": False},
                "coverage": {"enabled": not streamed},
            },
            "checks": {"positive_data_acceptance": {"enabled": False}},
            "dictionaries": {
                "models": {"values": [m.id for m in MODELS]},
                "chat-models": {"values": CHAT_MODELS},
                "embedding-models": {"values": EMBEDDING_MODELS},
            },
            "operations": [
                {"include-path": path, "parameters": parameters}
                for path, parameters in bindings.items()
            ],
        }
    )


def load(srv: LocalSTACKIT, *, streamed: bool = False) -> schemathesis.BaseSchema:
    """The document of the running server, as schemathesis reads it."""
    url = srv.url.removesuffix("/v1") + "/openapi.json"
    return schemathesis.openapi.from_url(url, config=fuzz_config(srv.api_key, streamed=streamed))


def fuzz_run(request: pytest.FixtureRequest) -> None:
    """Set up a fuzz run: clear the tally, and let schemathesis name the test per operation."""
    # schemathesis' fixture-based runner renames the test item per operation through
    # `item._nodeid`, which pytest 9.2 replaced; give it the attribute to read and write.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    answered.clear()


@pytest.fixture
def api_schema(srv: LocalSTACKIT) -> schemathesis.BaseSchema:
    """The document of the session's server (``srv`` resets it to its defaults)."""
    return load(srv)


@pytest.fixture
def fuzzed_schema(
    srv: LocalSTACKIT, request: pytest.FixtureRequest
) -> Iterator[schemathesis.BaseSchema]:
    """The whole document, for one run that must reach each route's real work."""
    fuzz_run(request)
    yield load(srv)
    # Not only the error paths: every operation answered 200.
    for operation in ("GET /v1/models", "GET /v1/models/{model_id}", "POST /v1/embeddings"):
        assert answered[(operation, 200, False)], (operation, answered)
    chat = f"POST {CHAT_PATH}"
    assert answered[(chat, 200, False)] and answered[(chat, 400, False)], answered


@pytest.fixture
def streamed_schema(
    srv: LocalSTACKIT, request: pytest.FixtureRequest
) -> Iterator[schemathesis.BaseSchema]:
    """Chat completions only, every request streamed."""
    fuzz_run(request)
    yield load(srv, streamed=True)
    # Which bodies the seed generates also depends on what the process imported before (newer
    # hypothesis versions draw constants from loaded modules): alone, 24 of the 50 requests
    # stream a reply; after the rest of the suite, 13 (the others are valid by the document but
    # refused by the server, e.g. tool_choice without tools). At least 10 must stream.
    assert answered[(f"POST {CHAT_PATH}", 200, True)] >= 10, answered


def is_stream(response: Response) -> bool:
    types = [v for k, vs in response.headers.items() if k.lower() == "content-type" for v in vs]
    return any(t.startswith("text/event-stream") for t in types)


def stream_ends_properly(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A stream ends with ``[DONE]``, after exactly one finish_reason per choice."""
    if not is_stream(response):
        return None
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events and events[-1] == "[DONE]", f"the stream does not end with [DONE]: {events[-3:]}"
    finishes = Counter(
        choice["index"]
        for data in events[:-1]
        for choice in json.loads(data)["choices"]
        if choice["finish_reason"] is not None
    )
    requested = case.body.get("n", 1) if isinstance(case.body, dict) else 1
    assert sorted(finishes.items()) == [(i, 1) for i in range(requested)], (
        f"finish_reason count per choice index: {dict(finishes)}, n={requested}"
    )
    return True


def call_and_check(case: Case) -> None:
    response = case.call_and_validate(additional_checks=[stream_ends_properly])
    key = f"{case.method.upper()} {case.operation.path}"
    answered[(key, response.status_code, is_stream(response))] += 1


@pytest.mark.timeout(240)  # a hang fails here instead of stalling the run
@schemathesis.pytest.from_fixture("fuzzed_schema").parametrize()
def test_the_server_keeps_to_its_openapi_document(case: Case) -> None:
    call_and_check(case)


@pytest.mark.timeout(120)
@schemathesis.pytest.from_fixture("streamed_schema").include(path=CHAT_PATH).parametrize()
def test_streamed_completions_keep_to_the_document(case: Case) -> None:
    call_and_check(case)


# -- what the fuzz run found, pinned --------------------------------------------------------------


def post_chat(srv: LocalSTACKIT, timeout: float = 10, **fields: Any) -> httpx.Response:
    body = {"model": CHAT, "messages": [{"role": "user", "content": "Weather in Berlin?"}]}
    with srv.client(timeout=timeout) as http:
        return http.post("/v1/chat/completions", json={**body, **fields})


def assert_400(response: httpx.Response, param: str, *needles: str) -> None:
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == 400 and error["type"] == "BadRequestError"
    assert error["param"] == param, error
    for needle in needles:
        assert needle in error["message"], error["message"]


WEATHER = {"type": "function", "function": {"name": "get_weather"}}


def weather_tool(parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "get_weather", "parameters": parameters}}


@pytest.mark.parametrize(
    "call",
    [
        {"id": "call_1", "type": "function", "function": "get_weather"},
        {"id": "call_1", "type": "function", "function": ["get_weather"]},
        {"id": "call_1", "type": "function", "function": {"name": "get_weather"}},
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}},
        {"id": 1, "type": "function", "function": {"name": "f", "arguments": "{}"}},
    ],
)
def test_a_malformed_tool_call_in_the_history_is_400_not_500(
    srv: LocalSTACKIT, call: dict[str, Any]
) -> None:
    # The first two were 500s (the prompt-token count read call["function"] as an object); the
    # others were answered as if they were valid.
    messages = [
        {"role": "user", "content": "Weather in Berlin?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    assert_400(post_chat(srv, messages=messages), "messages", "messages[1].tool_calls[0]")


@pytest.mark.parametrize(
    "tool_choice",
    [
        {"type": "function", "function": "get_weather"},
        {"type": "function", "function": [1]},
        {"type": "function", "function": {}},
        {"type": "tool", "function": {"name": "get_weather"}},
        "sometimes",
    ],
)
def test_a_malformed_tool_choice_is_400(srv: LocalSTACKIT, tool_choice: Any) -> None:
    # The first two were 500s (the engine read tool_choice["function"]["name"]); the others were
    # answered as if they were valid ("sometimes" as "auto").
    assert_400(post_chat(srv, tools=[WEATHER], tool_choice=tool_choice), "tool_choice", "none")


@pytest.mark.parametrize(
    ("parameters", "needle"),
    [
        ({"type": "object", "properties": "city"}, "is not of type 'object'"),
        ({"type": "object", "properties": {"n": {"type": "integer", "minimum": "3"}}}, "number"),
        ({"type": 5}, "is not valid"),
        ({"type": "object", "properties": {"city": {"pattern": "(["}}}, "regex"),
        ({"$schema": 5}, "$schema must be a string"),
    ],
)
def test_tool_parameters_that_are_no_json_schema_are_400(
    srv: LocalSTACKIT, parameters: dict[str, Any], needle: str
) -> None:
    # 500s inside the engine's schema filler, or a reply to a request that OpenAI refuses.
    r = post_chat(srv, tools=[weather_tool(parameters)], tool_choice="required")
    assert_400(r, "tools", "tools[0].function.parameters", needle)


def test_a_response_format_schema_that_is_no_json_schema_is_400(srv: LocalSTACKIT) -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"$schema": 5}},
    }
    r = post_chat(srv, response_format=response_format)
    assert_400(r, "response_format", "response_format.json_schema.schema")
    response_format["json_schema"] = {"name": "x", "schema": {"required": "city"}}
    assert_400(post_chat(srv, response_format=response_format), "response_format", "required")


@pytest.mark.parametrize(
    "parameters",
    [
        # Each of these held the server's event loop for good (every other request waited too):
        # strings, arrays and objects grew without bound, a regex sample took gigabytes...
        {"type": "object", "properties": {"city": {"type": "string", "minLength": 10**12}}},
        {"type": "object", "properties": {"days": {"type": "array", "minItems": 10**9}}},
        {"type": "object", "minProperties": 10**9, "additionalProperties": {"type": "string"}},
        {"type": "object", "properties": {"code": {"type": "string", "pattern": "^a{900000000}$"}}},
        # ...branches that refer to themselves took exponential time...
        {
            "$defs": {
                "node": {
                    "anyOf": [
                        {"type": "array", "items": {"$ref": "#/$defs/node"}, "minItems": 2},
                        {"type": "object", "properties": {"a": {"$ref": "#/$defs/node"}}},
                    ],
                    "required": ["a"],
                }
            },
            "$ref": "#/$defs/node",
        },
        {"allOf": [{"$ref": "#"}]},  # ...and this one was a 500 (RecursionError).
    ],
)
def test_huge_or_endless_tool_schemas_are_answered_quickly(
    srv: LocalSTACKIT, parameters: dict[str, Any]
) -> None:
    started = time.monotonic()
    r = post_chat(srv, timeout=20, tools=[weather_tool(parameters)], tool_choice="required")
    assert r.status_code == 200, r.text[:300]
    assert time.monotonic() - started < 10
    call = r.json()["choices"][0]["message"]["tool_calls"][0]
    arguments = call["function"]["arguments"]
    assert len(arguments) < 100_000
    json.loads(arguments)  # still JSON, even when the schema cannot be met


@pytest.mark.parametrize(
    "fields",
    [
        {"temperature": False},
        {"n": "2"},
        {"stream": 1},
        {"max_tokens": 2.0},
        {"seed": "42"},
        {"stream_options": {"include_usage": "yes"}},
    ],
)
def test_json_values_of_the_wrong_type_are_400(srv: LocalSTACKIT, fields: dict[str, Any]) -> None:
    # Were read as 0.0, 2, True, 2, 42 and True: the document promises a number, an integer, a
    # boolean; OpenAI answers 400, so code that relied on it here would fail there.
    (name,) = fields
    assert_400(post_chat(srv, **fields), name, name)


def test_a_huge_number_in_the_prompt_is_not_sent_as_infinity(srv: LocalSTACKIT) -> None:
    # "9" * 400 parsed as float is inf; it went into the arguments as `Infinity` (not JSON).
    parameters = {"type": "object", "properties": {"amount": {"type": "number"}}}
    messages = [{"role": "user", "content": f"Weather for {'9' * 400} and 12 days"}]
    r = post_chat(srv, messages=messages, tools=[weather_tool(parameters)], tool_choice="required")
    arguments = r.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments, parse_constant=pytest.fail) == {"amount": 12}


def test_a_body_nested_too_deeply_to_parse_is_an_openai_shaped_400(srv: LocalSTACKIT) -> None:
    # Was a 500: the request log's json.loads raised RecursionError before any route ran.
    deep = "[" * 5000 + "]" * 5000
    raw = f'{{"model": "{CHAT}", "messages": [{{"role": "user", "content": "hi"}}], "x": {deep}}}'
    with srv.client() as http:
        r = http.post(
            "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
        )
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "BadRequestError"


@pytest.mark.parametrize(
    ("method", "path", "status", "kind", "needle"),
    [
        ("GET", "/v1/chat/completion", 404, "NotFoundError", "/v1/chat/completion"),
        ("DELETE", "/v1/models", 405, "MethodNotAllowedError", "DELETE"),
        ("GET", "/v1/embeddings", 405, "MethodNotAllowedError", "GET"),
    ],
)
def test_unknown_routes_and_methods_answer_in_the_openai_shape(
    srv: LocalSTACKIT, method: str, path: str, status: int, kind: str, needle: str
) -> None:
    # Were FastAPI's {"detail": "..."}, which the openai SDK shows as a bare status.
    with srv.client() as http:
        r = http.request(method, path)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["code"] == status and error["type"] == kind and needle in error["message"]
    if status == 405:
        assert r.headers["allow"]


def test_the_vllm_error_shape_is_documented_too(
    srv: LocalSTACKIT, api_schema: schemathesis.BaseSchema
) -> None:
    srv.configure(error_shape="vllm")
    operation = api_schema["/v1/chat/completions"]["POST"]
    case = operation.Case(body={"model": "meta/llama-99", "messages": [{"role": "user"}]})
    response = case.call_and_validate(headers={"Authorization": f"Bearer {srv.api_key}"})
    assert response.status_code == 404 and response.json()["object"] == "error"
