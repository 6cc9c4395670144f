"""The scripted engine, its tokenizer and its JSON-schema filler: pure Python, no server."""

from __future__ import annotations

import base64
import datetime
import enum
import io
import json
import math
import random
import subprocess
import sys
import time
import uuid
from typing import Annotated, Any, Literal

import jsonschema
import pytest
from PIL import Image
from pydantic import BaseModel, Field

from stackit_nb.local.catalog import get_model
from stackit_nb.local.engines import ChatRequest, Choice, ScriptedEngine
from stackit_nb.local.facts import JOKES
from stackit_nb.local.jsonschema_fill import FillContext, fill_schema
from stackit_nb.local.tokens import (
    count_prompt_tokens,
    count_tokens,
    image_tokens,
    split_tokens,
    truncate_tokens,
)
from stackit_nb.local.vision import inspect_data_url

LLAMA = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
GPT_OSS = "openai/gpt-oss-20b"
GEMMA = "google/gemma-3-27b-it"
ENGINE = ScriptedEngine()


def ask(prompt: str | list | None = None, model: str = LLAMA, **fields: Any) -> list[Choice]:
    messages = fields.pop("messages", None) or [{"role": "user", "content": prompt}]
    info = get_model(model)
    assert info is not None
    request = ChatRequest(model=info, messages=messages, images=fields.pop("images", []), **fields)
    return ENGINE.complete(request)


def one(prompt: str | list | None = None, model: str = LLAMA, **fields: Any) -> Choice:
    (choice,) = ask(prompt, model, **fields)
    return choice


def check_counts(choice: Choice) -> None:
    """completion_tokens is the sum of reasoning, content and tool-call tokens."""
    calls = sum(
        count_tokens(c["function"]["name"] + c["function"]["arguments"]) for c in choice.tool_calls
    )
    expected = count_tokens(choice.reasoning or "") + count_tokens(choice.content or "") + calls
    assert choice.completion_tokens == expected


# ---- tokenizer --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", " ", "\n", "  \n\n\t ", "Hello, world!", "naïve café ünïcödé", "日本語のテキストです",
     "🙂👍🏽 ok", "a_b-c.d", "line one\r\nline two\n", "x" * 50, "1234567 + 89",
     "\u2028 \x0b odd spaces"],
)  # fmt: skip
def test_split_tokens_round_trips(text: str) -> None:
    assert "".join(split_tokens(text)) == text
    assert count_tokens(text) == len(split_tokens(text))


def test_split_tokens_round_trips_random_text() -> None:
    rng = random.Random(1234)
    alphabet = "abcXYZ019 \t\n\r.,;!?'\"-_()éß漢字🙂\u00a0\u2003"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        assert "".join(split_tokens(text)) == text


def test_split_tokens_pieces() -> None:
    assert split_tokens("What's the weather in Berlin?") == [
        "What", "'", "s", " the", " weather", " in", " Berlin", "?",
    ]  # fmt: skip
    assert split_tokens("internationalization") == ["intern", "ationa", "lizati", "on"]
    assert all(len(p) <= 6 for p in split_tokens("Donaudampfschifffahrtsgesellschaft"))
    assert split_tokens("year 20261") == ["year", " 202", "61"]


def test_tokens_are_about_four_characters_of_english() -> None:
    text = "The quick brown fox jumps over the lazy dog near the riverbank. " * 20
    assert 3.0 < len(text) / count_tokens(text) < 6.0


def test_truncate_tokens_is_consistent_with_counting() -> None:
    text = "Rivers carve valleys; internationalization of 1234567 things, slowly.\n\nEnd."
    total = count_tokens(text)
    for limit in range(total + 2):
        cut = truncate_tokens(text, limit)
        assert text.startswith(cut)
        assert count_tokens(cut) == min(limit, total)


def test_count_prompt_tokens() -> None:
    text = [{"role": "user", "content": "Hello there"}]
    assert count_prompt_tokens(text) == 4 + 2 + 3
    assert count_prompt_tokens(text, image_tokens=414) == 4 + 2 + 3 + 414
    parts = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Hello there"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]
    assert count_prompt_tokens(parts) == count_prompt_tokens(text)
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    conversation = [
        *text,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    tool_call_tokens = count_tokens("get_weather") + count_tokens("{}")
    assert count_prompt_tokens(conversation) == 9 + 4 + tool_call_tokens + 4 + 1


@pytest.mark.parametrize(
    ("size", "tokens"),
    [((28, 28), 1), ((640, 480), 23 * 18), ((1024, 768), 37 * 28), ((100, 50), 4 * 2),
     ((4032, 3024), 144 * 108), ((0, 0), 1)],
)  # fmt: skip
def test_image_tokens_count_28_pixel_patches(size: tuple[int, int], tokens: int) -> None:
    assert image_tokens(*size) == tokens


def test_image_tokens_are_capped_for_huge_images() -> None:
    assert 15_000 < image_tokens(8000, 6000) <= 16384


# ---- reply shapes -----------------------------------------------------------------------------


def test_identity() -> None:
    choice = one("Who are you?", model=GEMMA)
    assert choice.content is not None
    assert "local STACKIT-compatible server" in choice.content
    assert "scripted engine" in choice.content
    assert GEMMA in choice.content and "STACKIT_API_KEY" in choice.content
    assert choice.finish_reason == "stop" and choice.reasoning is None
    check_counts(choice)


def test_jokes_are_deterministic_and_vary_with_seed_and_index() -> None:
    first = one("Tell me a joke about computers.")
    assert first.content in JOKES
    assert one("Tell me a joke about computers.") == first
    several = ask("Tell me a joke about computers.", n=4)
    assert [c.index for c in several] == [0, 1, 2, 3]
    assert all(c.content in JOKES for c in several)
    assert len({c.content for c in several}) > 1
    by_seed = {one("Tell me a joke.", seed=s).content for s in range(12)}
    assert len(by_seed) > 2
    # Greedy decoding: every choice is the same.
    greedy = ask("Tell me a joke.", n=3, temperature=0)
    assert len({c.content for c in greedy}) == 1


def test_explanation_comes_from_the_fact_table() -> None:
    choice = one("Explain how glaciers shape mountains.")
    assert choice.content is not None
    assert choice.content.startswith("A glacier is a large mass of ice")
    assert "U-shaped valleys" in choice.content
    assert choice.content.count(".") == 3
    assert choice.finish_reason == "stop"
    check_counts(choice)


def test_facts_do_not_vary_by_choice_index_but_jokes_do() -> None:
    # A fact table has one answer; variety is for prompts that allow it.
    assert len({c.content for c in ask("Why is the sky blue?", n=6)}) == 1
    assert len({c.content for c in ask("Tell me a joke.", n=6)}) > 1


def test_word_limit() -> None:
    choice = one("Explain photosynthesis in 7 words.")
    assert choice.content is not None
    assert 1 <= len(choice.content.split()) <= 7


@pytest.mark.parametrize("n_tokens", [1, 7, 100, 5000])
def test_exact_token_count(n_tokens: int) -> None:
    choice = one(f"Write {n_tokens} tokens about rivers.")
    assert count_tokens(choice.content or "") == n_tokens
    assert choice.completion_tokens == n_tokens
    assert choice.finish_reason == "stop"


def test_long_reply_is_varied_prose_about_the_topic() -> None:
    text = one("Write 5000 tokens about rivers.").content or ""
    assert 15_000 < len(text) < 30_000
    assert text.count("rivers") > 50
    sentences = [s.strip() for s in text.replace("\n", " ").split(".") if s.strip()]
    assert len(set(sentences)) >= 12
    assert "\n\n" in text  # paragraphs


def test_token_requests_are_capped() -> None:
    choice = one("Generate 1,000,000 tokens of text about lakes.")
    assert choice.completion_tokens == 100_000


def test_exact_word_count_and_count_to() -> None:
    words = one("Write 60 words about the sea.").content or ""
    assert len(words.split()) == 60 and "sea" in words
    counted = one("Count to 25").content
    assert counted == " ".join(str(i) for i in range(1, 26))


def test_non_reasoning_models_have_no_reasoning() -> None:
    assert one("Explain tides.").reasoning is None


def test_reasoning_models_think_longer_with_more_effort() -> None:
    low = one("Explain tides.", model=GPT_OSS, reasoning_effort="low")
    default = one("Explain tides.", model=GPT_OSS)
    high = one("Explain tides.", model=GPT_OSS, reasoning_effort="high")
    assert low.reasoning and default.reasoning and high.reasoning
    assert "tides" in low.reasoning
    assert len(low.reasoning) < len(default.reasoning) < len(high.reasoning)
    assert high.content == low.content  # effort changes the thinking, not the answer
    check_counts(high)
    assert high.completion_tokens > count_tokens(high.content or "")


# ---- images -----------------------------------------------------------------------------------


def image_message(text: str, *colours: str) -> tuple[list[dict], list]:
    parts: list[dict] = [{"type": "text", "text": text}]
    facts = []
    for colour in colours:
        buffer = io.BytesIO()
        Image.new("RGB", (640, 480), colour).save(buffer, "JPEG")
        url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
        parts.append({"type": "image_url", "image_url": {"url": url}})
        facts.append(inspect_data_url(url))
    return [{"role": "user", "content": parts}], facts


def test_vision_describes_what_was_measured() -> None:
    messages, images = image_message("What is in this image?", "red")
    choice = one(model=GEMMA, messages=messages, images=images)
    assert choice.content == (
        "The image is mostly red and fairly bright, 640 by 480 pixels (JPEG). The local scripted "
        "engine only measures colours, brightness and size; it cannot tell what the picture shows."
    )
    check_counts(choice)
    messages, images = image_message("Which colours does it have?", "red")
    about_colours = one(model=GEMMA, messages=messages, images=images).content
    assert about_colours == "The image is mostly red and fairly bright, 640 by 480 pixels (JPEG)."


def test_vision_describes_each_image_in_order() -> None:
    messages, images = image_message("Compare these.", "red", "blue")
    content = one(model=GEMMA, messages=messages, images=images).content or ""
    assert content.index("Image 1 is mostly red") < content.index("Image 2 is mostly blue")


def test_vision_respects_a_word_limit() -> None:
    for limit, expected in ((1, "Red."), (2, "Red image."), (4, "A mostly red image.")):
        messages, images = image_message(f"Describe it in max {limit} words.", "red")
        assert one(model=GEMMA, messages=messages, images=images).content == expected
    messages, images = image_message("Describe it in max 20 words.", "red")
    content = one(model=GEMMA, messages=messages, images=images).content
    assert content == "A fairly bright, mostly red image."


def test_vision_follow_up_uses_earlier_images_only_when_asked() -> None:
    messages, images = image_message("Look at this.", "blue")
    messages += [
        {"role": "assistant", "content": "A blue image."},
        {"role": "user", "content": "What colour was the picture?"},
    ]
    assert "blue" in (one(model=GEMMA, messages=messages, images=images).content or "")
    messages[-1] = {"role": "user", "content": "Now tell me a joke."}
    assert one(model=GEMMA, messages=messages, images=images).content in JOKES


# ---- tools ------------------------------------------------------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
            "additionalProperties": False,
        },
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add_numbers",
        "description": "Add two numbers together",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search-docs",
        "description": "Search the product documentation",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "minLength": 1}},
            "required": ["query"],
        },
    },
}
TOOLS = [WEATHER, ADD, SEARCH]


def arguments(choice: Choice, tool: dict) -> dict:
    assert choice.finish_reason == "tool_calls" and choice.content is None
    (call,) = choice.tool_calls
    assert call["type"] == "function"
    assert call["id"].startswith("call_") and len(call["id"]) > 10
    assert call["function"]["name"] == tool["function"]["name"]
    args = json.loads(call["function"]["arguments"])
    jsonschema.validate(args, tool["function"]["parameters"])
    check_counts(choice)
    return args


def test_weather_tool_gets_the_city() -> None:
    assert arguments(one("What's the weather in Berlin?", tools=TOOLS), WEATHER) == {
        "location": "Berlin",
        "unit": "celsius",
    }
    args = arguments(one("Weather like in New York City, in fahrenheit?", tools=TOOLS), WEATHER)
    assert args == {"location": "New York City", "unit": "fahrenheit"}


def test_numbers_fill_numeric_parameters_in_order() -> None:
    assert arguments(one("Please add 3 and 4.5", tools=TOOLS), ADD) == {"a": 3, "b": 4.5}


def test_query_parameter_gets_the_key_phrase() -> None:
    args = arguments(one("Search the docs for rate limits", tools=TOOLS), SEARCH)
    assert args == {"query": "rate limits"}


def test_tool_calls_are_deterministic_and_their_ids_unique() -> None:
    first = one("What's the weather in Berlin?", tools=TOOLS).tool_calls[0]
    again = one("What's the weather in Berlin?", tools=TOOLS).tool_calls[0]
    assert again["function"] == first["function"]
    # Like OpenAI and vLLM, every call gets its own id, even for the same request.
    assert again["id"] != first["id"]


def test_unrelated_prompt_answers_in_text() -> None:
    for prompt in ("Tell me a joke.", "How do I get better at chess?"):
        choice = one(prompt, tools=TOOLS)
        assert choice.tool_calls == [] and choice.finish_reason == "stop"
        assert choice.content


def test_tool_choice() -> None:
    assert arguments(one("Tell me a joke.", tools=TOOLS, tool_choice="required"), WEATHER)
    named = {"type": "function", "function": {"name": "add_numbers"}}
    args = arguments(one("Weather in Rome: 7 and 8", tools=TOOLS, tool_choice=named), ADD)
    assert args == {"a": 7, "b": 8}
    none = one("What's the weather in Berlin?", tools=TOOLS, tool_choice="none")
    assert none.tool_calls == [] and none.content


def test_reasoning_model_calls_tools_and_thinks() -> None:
    choice = one("What's the weather in Oslo?", model=GPT_OSS, tools=TOOLS)
    assert arguments(choice, WEATHER)["location"] == "Oslo"
    assert choice.reasoning and "tool" in choice.reasoning


def test_tool_results_become_the_final_answer() -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"location": "Berlin"}'},
    }
    messages = [
        {"role": "user", "content": "What's the weather in Berlin?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18°C and sunny"},
    ]
    choice = one(messages=messages, tools=TOOLS)
    assert choice.tool_calls == [] and choice.finish_reason == "stop"
    assert choice.content == "The get_weather tool says: 18°C and sunny."


def test_multi_turn_answers_the_last_user_message() -> None:
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": JOKES[0]},
        {"role": "user", "content": "Explain volcanoes."},
    ]
    assert "volcanoes" in (one(messages=messages).content or "")


# ---- stop and max_tokens ----------------------------------------------------------------------


def test_stop_cuts_content_before_the_stop_string() -> None:
    full = one("Explain how glaciers shape mountains.").content or ""
    cut = one("Explain how glaciers shape mountains.", stop=["snow", "."])
    assert cut.content == full[: min(full.index("snow"), full.index("."))]
    assert cut.content == "A glacier is a large mass of ice that forms where more "
    assert cut.finish_reason == "stop"
    check_counts(cut)


def test_max_tokens_cuts_content() -> None:
    choice = one("Write 500 tokens about rivers.", max_tokens=12)
    assert choice.finish_reason == "length"
    assert count_tokens(choice.content or "") == 12 == choice.completion_tokens
    assert (one("Write 500 tokens about rivers.").content or "").startswith(choice.content or "")


def test_stop_applies_before_max_tokens() -> None:
    choice = one("Explain rivers.", stop=["."], max_tokens=200)
    assert choice.finish_reason == "stop" and "." not in (choice.content or "")


def test_reasoning_spends_the_budget_first() -> None:
    full = one("Explain tides.", model=GPT_OSS)
    thinking = count_tokens(full.reasoning or "")
    starved = one("Explain tides.", model=GPT_OSS, max_tokens=thinking - 2)
    assert starved.finish_reason == "length" and not starved.content
    assert count_tokens(starved.reasoning or "") == thinking - 2
    partial = one("Explain tides.", model=GPT_OSS, max_tokens=thinking + 5)
    assert partial.reasoning == full.reasoning
    assert count_tokens(partial.content or "") == 5 and partial.completion_tokens == thinking + 5


def test_stop_does_not_apply_inside_reasoning() -> None:
    full = one("Explain tides.", model=GPT_OSS)
    choice = one("Explain tides.", model=GPT_OSS, stop=["tides"])
    assert choice.reasoning == full.reasoning and "tides" in (choice.reasoning or "")
    assert "tides" not in (choice.content or "")


def test_tool_call_that_does_not_fit_is_cut_to_text() -> None:
    choice = one("What's the weather in Berlin?", tools=TOOLS, max_tokens=3)
    assert choice.finish_reason == "length" and choice.tool_calls == []
    assert count_tokens(choice.content or "") == 3


# ---- structured output ------------------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    city: str
    postcode: Annotated[str, Field(pattern=r"^\d{5}$")]


class Person(BaseModel):
    name: str
    age: Annotated[int, Field(ge=0, le=130)]
    email: str | None = None
    address: Address
    tags: list[str] = []
    favourite: Colour
    born: datetime.date
    id: uuid.UUID
    scores: dict[str, int]
    pair: tuple[int, str]
    labels: set[str]
    level: Literal["low", "high"]
    kind: Literal["person"] = "person"
    ratio: Annotated[float, Field(gt=0, lt=1)]


class Node(BaseModel):
    value: int
    children: list[Node] = []
    parent: Node | None = None


class Cat(BaseModel):
    pet_type: Literal["cat"]
    meows: int


class Dog(BaseModel):
    pet_type: Literal["dog"]
    barks: float


class Owner(BaseModel):
    pet: Annotated[Cat | Dog, Field(discriminator="pet_type")]
    step: Annotated[int, Field(multiple_of=5, gt=7)]
    note: Annotated[str, Field(min_length=30, max_length=40)]
    triple: Annotated[list[int], Field(min_length=3, max_length=3)]


class Movie(BaseModel):
    title: str
    year: int
    genres: list[str]
    rating: Annotated[float, Field(ge=0, le=10)]
    summary: str


class Weather(BaseModel):
    location: str
    unit: Literal["celsius", "fahrenheit"]
    days: Annotated[int, Field(ge=1, le=7)]


@pytest.mark.parametrize("model", [Person, Node, Owner, Movie, Weather])
def test_json_schema_replies_validate_for_pydantic_models(model: type[BaseModel]) -> None:
    schema = model.model_json_schema()
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": model.__name__, "schema": schema, "strict": True},
    }
    choice = one("Describe the 1999 movie about rivers in Berlin.", response_format=response_format)
    value = json.loads(choice.content or "")
    jsonschema.validate(value, schema)
    model.model_validate(value)
    check_counts(choice)


def test_json_schema_strings_come_from_the_prompt() -> None:
    schema = Movie.model_json_schema()
    response_format = {"type": "json_schema", "json_schema": {"name": "m", "schema": schema}}
    choice = one("Suggest a 1994 movie about rivers and bridges.", response_format=response_format)
    movie = Movie.model_validate_json(choice.content or "")
    assert movie.year == 1994
    assert "Rivers" in movie.title
    assert "river" in movie.summary.lower() and movie.summary.endswith(".")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": ["string", "null"]},
        {"type": "array", "items": {"type": "integer", "minimum": 5}, "minItems": 4,
         "maxItems": 6, "uniqueItems": True},
        {"oneOf": [{"type": "number"}, {"type": "integer"}]},
        {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                   {"properties": {"b": {"const": 3}}, "required": ["b"]}]},
        {"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": "null"}},
         "required": ["a", "b"], "additionalProperties": False},
        {"type": "number", "multipleOf": 0.01, "minimum": 0.5, "maximum": 0.7},
        {"type": "integer", "exclusiveMinimum": 10, "exclusiveMaximum": 12},
        {"anyOf": [{"$ref": "#/definitions/x"}],
         "definitions": {"x": {"type": "string", "enum": ["q", "rivers"]}}},
        {"type": "string", "minLength": 50, "maxLength": 60},
        {"type": "string", "format": "date-time"},
        {"type": "string", "pattern": "^[A-Z]{2}-\\d{3}$"},
        {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}],
         "items": False, "minItems": 2},
        {"type": "object", "minProperties": 2, "additionalProperties": {"type": "integer"}},
        {},
    ],
)  # fmt: skip
def test_fill_schema_validates(schema: dict) -> None:
    context = FillContext(words=["rivers", "valleys"], phrase="rivers valleys", numbers=[42])
    jsonschema.validate(fill_schema(schema, context), schema)


def test_json_object() -> None:
    choice = one("Explain rivers.", response_format={"type": "json_object"})
    value = json.loads(choice.content or "")
    assert value["topic"] == "rivers"
    assert value["answer"].startswith("Rivers shape a landscape mainly by erosion")


def test_json_cut_by_max_tokens_is_allowed_to_break() -> None:
    choice = one("Explain rivers.", response_format={"type": "json_object"}, max_tokens=5)
    assert choice.finish_reason == "length" and count_tokens(choice.content or "") == 5
    with pytest.raises(json.JSONDecodeError):
        json.loads(choice.content or "")


# ---- embeddings -------------------------------------------------------------------------------


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_are_unit_vectors_of_the_requested_size() -> None:
    vectors = ENGINE.embed(["rivers flow to the sea", "", "   ", "!!!", "x"], 256)
    assert len(vectors) == 5
    for vector in vectors:
        assert len(vector) == 256
        assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0)
    assert vectors[1] == vectors[2]  # empty and blank text: one fixed vector


def test_embeddings_are_deterministic_and_close_for_shared_words() -> None:
    a, b, c = ENGINE.embed(
        ["rivers flow into the sea", "the river flows into the sea", "quarterly tax report"], 4096
    )
    assert ENGINE.embed(["rivers flow into the sea"], 4096)[0] == a
    assert cosine(a, b) > 0.3
    assert cosine(a, b) > cosine(a, c) + 0.25
    assert cosine(a, a) == pytest.approx(1.0)


def test_embedding_speed() -> None:
    texts = [f"short text number {i} about rivers and lakes" for i in range(1000)]
    started = time.perf_counter()
    vectors = ENGINE.embed(texts, 4096)
    assert time.perf_counter() - started < 1.0
    assert len(vectors) == 1000 and len(vectors[0]) == 4096


def test_replies_and_vectors_do_not_depend_on_the_process() -> None:
    """No ``hash()`` or global random state: another interpreter gives identical output."""
    code = (
        "import json;from stackit_nb.local.catalog import get_model;"
        "from stackit_nb.local.engines import ChatRequest, ScriptedEngine;e=ScriptedEngine();"
        "r=ChatRequest(get_model('openai/gpt-oss-20b'),[{'role':'user','content':'Tell me a "
        "joke about rivers'}],[],n=3,seed=7);"
        "print(json.dumps([[c.content,c.reasoning] for c in e.complete(r)]+e.embed(['rivers'],64)))"
    )
    # This process hashes strings with a random seed; the child with a fixed one.
    child = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    here = [
        [c.content, c.reasoning] for c in ask("Tell me a joke about rivers", GPT_OSS, n=3, seed=7)
    ]
    assert json.loads(child.stdout) == [*here, *ENGINE.embed(["rivers"], 64)]
