"""JSON replies from the smollm2 engine that parse, validate and end inside their token budget.

A grammar alone does not make a small model's JSON usable: sampled inside a string, the model can
ramble until ``max_tokens`` cuts the reply mid-string (``Unterminated string``). Two things here
prevent that:

- :func:`json_grammar` bounds what may be generated: strings get a ``maxLength`` and arrays a
  ``maxItems`` (a schema's own stricter bounds and its ``minItems``/``minLength`` are kept), JSON
  mode (``json_object``) gets a grammar of small, shallow objects, and no string may hold a raw
  control character (JSON forbids them, llama.cpp's own string rule lets them through).
- a :class:`~stackit_nb.local.engines.json_closer.JsonCloser` follows the generated text and
  always knows the shortest text that completes it into a value the schema accepts. The engine
  stops generating while that closing text still fits the budget, and sends it.

Only :func:`json_grammar` needs llama.cpp (imported when called); the rest is plain Python.
"""

from __future__ import annotations

import json
import re
from typing import Any

from stackit_nb.local.engines.json_closer import JsonCloser, whole_number

STRING_MAX_LENGTH = 80  # characters: a name, a sentence, a step of a recipe
ARRAY_MAX_ITEMS = 6
OBJECT_MAX_MEMBERS = 8  # JSON mode (json_object): members of one object, items of one array

# JSON forbids raw control characters in strings; llama.cpp's converter allows any but " and \.
_CHAR_RULE = r'char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
_JSON_OBJECT_GBNF = rf"""
root ::= object
object ::= "{{" space ( member ( "," space member ){{0,{OBJECT_MAX_MEMBERS - 1}}} )? "}}" space
member ::= string ":" space value
value ::= leaf | inner | list
inner ::= "{{" space ( pair ( "," space pair ){{0,{OBJECT_MAX_MEMBERS - 1}}} )? "}}" space
pair ::= string ":" space leaf
list ::= "[" space ( leaf ( "," space leaf ){{0,{OBJECT_MAX_MEMBERS - 1}}} )? "]" space
leaf ::= string | number | ("true" | "false" | "null") space
string ::= "\"" char{{0,{STRING_MAX_LENGTH}}} "\"" space
number ::= "-"? ([0-9] | [1-9] [0-9]{{0,15}}) ("." [0-9]{{1,16}})? ([eE] [-+]? [0-9]{{1,3}})? space
space ::= " "?
{_CHAR_RULE}
"""


def grammar_kind(response_format: dict | None) -> str | None:
    """``json_object`` or ``json_schema`` when the reply must be JSON, else None."""
    kind = (response_format or {}).get("type")
    return kind if kind in ("json_object", "json_schema") else None


def requested_schema(response_format: dict | None) -> dict | None:
    """The JSON schema a ``json_schema`` response format asks for (None: any JSON object)."""
    if grammar_kind(response_format) != "json_schema":
        return None
    spec = (response_format or {}).get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else None


def bounded_schema(schema: Any) -> Any:
    """``schema`` with every string and array bounded, the schema's own stricter bounds kept."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in ("items", "additionalProperties", "not", "if", "then", "else"):
        if isinstance(schema.get(key), dict):
            out[key] = bounded_schema(schema[key])
    for key in ("items", "prefixItems", "anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list):
            out[key] = [bounded_schema(s) for s in schema[key]]
    for key in ("properties", "patternProperties", "$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            out[key] = {name: bounded_schema(s) for name, s in schema[key].items()}
    kind = schema.get("type")
    free_string = not any(k in schema for k in ("enum", "const", "pattern", "format"))
    if kind == "string" and free_string:
        floor = whole_number(schema.get("minLength"))
        ceiling = min(whole_number(schema.get("maxLength"), STRING_MAX_LENGTH), STRING_MAX_LENGTH)
        out["maxLength"] = max(floor, ceiling)
    if kind == "array" and not isinstance(schema.get("items"), list):
        floor = whole_number(schema.get("minItems"))
        ceiling = min(whole_number(schema.get("maxItems"), ARRAY_MAX_ITEMS), ARRAY_MAX_ITEMS)
        out["maxItems"] = max(floor, ceiling)
    return out


def grammar_text(response_format: dict | None) -> str | None:
    """The GBNF grammar of a JSON reply for ``response_format`` (None: free text)."""
    kind = grammar_kind(response_format)
    if kind is None:
        return None
    schema = requested_schema(response_format)
    if schema is not None:
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        try:
            text = json_schema_to_gbnf(json.dumps(bounded_schema(schema)))
        except Exception:  # a schema feature the converter lacks: any small JSON object parses
            return _JSON_OBJECT_GBNF
        return re.sub(r"(?m)^char ::= .*$", lambda _: _CHAR_RULE, text)
    return _JSON_OBJECT_GBNF


def json_grammar(response_format: dict | None) -> Any:
    """A llama.cpp grammar for JSON replies (None: free text)."""
    text = grammar_text(response_format)
    if text is None:
        return None
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_string(text, verbose=False)


def closer_for(response_format: dict | None) -> JsonCloser | None:
    """The closer that matches :func:`json_grammar` (None: free text)."""
    if grammar_kind(response_format) is None:
        return None
    schema = requested_schema(response_format)
    return JsonCloser(bounded_schema(schema) if schema is not None else {"type": "object"})
