"""JSON replies of the smollm2 engine without the model: bounded schemas, grammars, the closer.

The closer is what keeps a JSON reply valid when the token budget runs low: cut anywhere, the
text it adds must make a value that parses and validates against the request's schema.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from typing import Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel

from stackit_nb.local.engines.json_closer import JsonCloser
from stackit_nb.local.engines.structured_output import (
    ARRAY_MAX_ITEMS,
    STRING_MAX_LENGTH,
    bounded_schema,
    closer_for,
    grammar_text,
)
from stackit_nb.local.jsonschema_fill import fill_schema
from stackit_nb.local.toolcall import fill_context


class City(BaseModel):  # notebook 06's model
    name: str
    country: str
    population: int
    kind: Literal["capital", "town"]
    sights: list[str]


class Address(BaseModel):
    street: str
    zip_code: str | None = None


class Person(BaseModel):
    name: str
    home: Address
    past: list[Address]
    nickname: str | None = None
    pair: tuple[int, bool]


CITY = City.model_json_schema()
RECIPE = {  # notebook 06's hand-written schema
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "difficulty": {"type": "string", "enum": ["easy", "medium", "hard"]},
        "steps": {"type": "array", "items": {"type": "string"}, "minItems": 2},
    },
    "required": ["title", "difficulty", "steps"],
    "additionalProperties": False,
}
# The grammar cannot enforce numeric minimums, so a cut number (the "1" of "12") may be below
# one; the closer only makes sure its own smallest values meet them.
MINIMUMS = {
    "type": "object",
    "properties": {
        "count": {"type": "integer", "minimum": 7},
        "ratio": {"type": "number", "exclusiveMinimum": 0.5},
    },
    "required": ["count", "ratio"],
}
BOUNDS = {
    "type": "object",
    "properties": {
        "code": {"type": "string", "minLength": 3, "maxLength": 5},
        "day": {"type": "string", "format": "date"},
        "level": {"const": "high"},
        "count": {"type": "integer"},
        "ratio": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 4},
        "extra": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
    "required": ["code", "day", "level", "count", "ratio", "tags", "extra"],
}
SCHEMAS = {
    "city": CITY,
    "recipe": RECIPE,
    "person": Person.model_json_schema(),
    "bounds": BOUNDS,
    "any object": {"type": "object"},
}
DOCUMENTS = {
    "city": '{"name": "Ber\\u00e9lin \\"Mitte\\"", "country": "Germany", "population": -3645000, '
    '"kind": "town", "sights": ["Gate", "Wall\\\\", "Isle"]}',
    "recipe": '{ "title": "Pancakes","difficulty": "medium","steps":[ "Mix.", "Fry.", "Eat." ]}',
    "person": '{"name": "Ada", "home": {"street": "Main", "zip_code": null}, "past": '
    '[{"street": "Old", "zip_code": "123"}], "nickname": "A", "pair": [12, true]}',
    "bounds": '{"code": "abcd", "day": "2024-02-29", "level": "high", "count": 12, "ratio": '
    '2.5e-1, "tags": ["a", "b", "c", "d"], "extra": {"x": 1, "y": -20}}',
    "any object": '{"a": {"b": [1, 2.5E+3, true, false, null]}, "c": "x", "d": {}, "x0": []}',
}


def close(schema: dict[str, Any], prefix: str) -> Any:
    """The value the closer makes of ``prefix``, checked against ``schema``."""
    closer = JsonCloser(bounded_schema(schema))
    closer.feed(prefix)
    value = json.loads(prefix + closer.closing())
    _validator(json.dumps(schema)).validate(value)
    return value


@functools.lru_cache
def _validator(schema: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(schema))


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_prefix_closes_into_a_valid_value(name: str) -> None:
    document = DOCUMENTS[name]
    schema = SCHEMAS[name]
    assert close(schema, document) == json.loads(document)  # complete: nothing is added
    for end in range(len(document)):
        close(schema, document[:end])


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_documents_the_scripted_filler_builds_close_at_every_prefix(name: str) -> None:
    schema = SCHEMAS[name]
    for salt in range(3):
        context = fill_context("Describe Berlin, 3 sights.", text="It is big.", salt=str(salt))
        value = fill_schema(schema, context)
        for separators in ((",", ":"), (", ", ": ")):
            document = json.dumps(value, separators=separators)
            for end in range(len(document)):
                close(schema, document[:end])


def test_the_closing_finishes_what_was_begun() -> None:
    assert close(CITY, '{"kind": "to')["kind"] == "town"  # a half-written enum value
    assert close(CITY, '{"na')["name"] == ""  # a half-written key
    assert close(CITY, '{"population": -') == {
        "population": -0,
        "name": "",
        "country": "",
        "kind": "capital",
        "sights": [],
    }
    assert close(RECIPE, '{"steps": ["a",') ["steps"] == ["a", ""]  # fmt: skip
    assert close(BOUNDS, '{"code": "a')["code"] == "aaa"  # minLength
    assert close(BOUNDS, '{"ratio": 1e')["ratio"] == 1.0
    assert close(MINIMUMS, "") == {"count": 7, "ratio": 1.5}
    assert close(BOUNDS, "")["day"] == "2000-01-01" and close(BOUNDS, "")["level"] == "high"
    assert close({"type": "object"}, '{"a": 1, ') == {"a": 1, "x0": None}
    assert close(CITY, '{"name": "a\\') == {**close(CITY, ""), "name": "a\\"}
    assert close(CITY, '{"name": "\\u00') ["name"] == "\x00"  # fmt: skip


def test_bounds_keep_the_schemas_own_stricter_ones() -> None:
    bounded = bounded_schema(BOUNDS)["properties"]
    assert bounded["code"]["maxLength"] == 5 and bounded["tags"]["maxItems"] == 4
    assert "maxLength" not in bounded["day"]  # a format fixes the length already
    city = bounded_schema(CITY)["properties"]
    assert city["name"]["maxLength"] == STRING_MAX_LENGTH
    assert city["sights"]["maxItems"] == ARRAY_MAX_ITEMS
    assert city["sights"]["items"]["maxLength"] == STRING_MAX_LENGTH
    assert "maxLength" not in city["kind"]  # an enum is bounded by its values
    many = bounded_schema({"type": "array", "minItems": 10, "items": {"minLength": 200}})
    assert many["maxItems"] == 10  # minItems wins over the default bound
    wide = bounded_schema({"type": "string", "minLength": 200})
    assert wide["maxLength"] == 200
    person = bounded_schema(Person.model_json_schema())
    assert person["$defs"]["Address"]["properties"]["street"]["maxLength"] == STRING_MAX_LENGTH


def test_json_mode_grammar_is_bounded_and_has_no_raw_control_characters() -> None:
    grammar = grammar_text({"type": "json_object"})
    assert grammar is not None and f"char{{0,{STRING_MAX_LENGTH}}}" in grammar
    assert r"\x00-\x1F" in grammar
    assert re.search(r"[\w\])\"][*+]", grammar) is None  # no unbounded repetition
    assert grammar_text({"type": "text"}) is None and grammar_text(None) is None
    assert closer_for({"type": "text"}) is None
    closer = closer_for({"type": "json_object"})
    assert closer is not None and closer.closing() == "{}"


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs llama-cpp")
def test_schema_grammar_has_the_bounds_and_json_strings() -> None:
    spec = {"name": "recipe", "schema": RECIPE}
    grammar = grammar_text({"type": "json_schema", "json_schema": spec})
    assert grammar is not None
    char_rule = next(line for line in grammar.splitlines() if line.startswith("char ::="))
    assert r"\x00-\x1F" in char_rule  # no raw newline inside a JSON string
    # at least two steps, at most six
    steps = next(line for line in grammar.splitlines() if line.startswith("steps ::="))
    assert steps.count("steps-item") == ARRAY_MAX_ITEMS
    assert "char*" not in grammar
