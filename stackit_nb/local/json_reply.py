"""JSON replies of the scripted engine: ``json_schema`` and ``json_object`` response formats.

A schema is filled by ``jsonschema_fill`` with values that fit the field names: from the prompt
where it has them ("Berlin"), from the fact table where it does not (Berlin's country and
population). ``json_object`` has no schema: the reply uses the keys the prompt names ("with the
keys name, country and population"), or ``topic`` and ``answer`` when it names none.
"""

from __future__ import annotations

import json
import re
from typing import Any

from stackit_nb.local import knowledge, toolcall
from stackit_nb.local.jsonschema_fill import fill_schema

_KEY_LIST = re.compile(
    r"\b(?:keys?|fields?|properties|attributes|members)\b(?:\s+(?:named|called|like))?\s*:?\s*"
    r"(.+?)(?:[.;\n]|\s+(?:for|about|of|describing|on|with)\s|$)",
    re.IGNORECASE,
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][\w-]{0,40}$")
_QUOTED_KEY = re.compile(r"[\"'`]([A-Za-z_][\w-]{0,40})[\"'`]\s*:")
_NUMERIC = {
    "population", "age", "year", "count", "number", "price", "temperature", "area", "height",
    "length", "weight", "size", "rank", "score", "rating", "total", "amount", "minutes",
    "servings", "inhabitants", "residents", "elevation", "founded", "capacity", "duration",
}  # fmt: skip
_LISTS = {
    "sights", "steps", "items", "tags", "ingredients", "examples", "points", "facts",
    "landmarks", "attractions", "highlights", "languages", "tips", "keywords", "pros", "cons",
    "reasons", "list",
}  # fmt: skip


def named_keys(prompt: str) -> list[str]:
    """The keys a prompt asks a JSON object to have, in the order it names them."""
    keys = _QUOTED_KEY.findall(prompt)
    if not keys and (match := _KEY_LIST.search(prompt)) is not None:
        parts = re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+|\s+or\s+", match[1].strip())
        keys = [p.strip("\"'` ") for p in parts]
    keys = [k for k in keys if _IDENTIFIER.match(k) and k.lower() not in {"and", "or", "the"}]
    return list(dict.fromkeys(keys))


def _schema_for(key: str) -> dict:
    word = key.lower().replace("-", "_").split("_")[-1]
    if word in _NUMERIC:
        return {"type": "integer"}
    if word in _LISTS:
        return {"type": "array", "items": {"type": "string"}}
    if key.lower().startswith(("is_", "has_")):
        return {"type": "boolean"}
    return {"type": "string"}


def reply(response_format: dict, text: str, prompt: str, salt: str, topic: str) -> str:
    """The JSON text for ``response_format`` (a ``json_object`` or ``json_schema`` format)."""
    context = toolcall.fill_context(prompt, text=text, salt=salt)
    context.known, context.enum_words = knowledge.values(prompt)
    context.honest = True
    if response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        value: Any = fill_schema(schema if isinstance(schema, dict) else {}, context)
        return json.dumps(value, ensure_ascii=False)
    keys = named_keys(prompt)
    if not keys:
        return json.dumps({"topic": topic, "answer": text}, ensure_ascii=False)
    schema = {
        "type": "object",
        "properties": {key: _schema_for(key) for key in keys},
        "required": keys,
    }
    return json.dumps(fill_schema(schema, context), ensure_ascii=False)
