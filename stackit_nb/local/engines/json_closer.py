"""Completes a JSON reply at any point of its generation into a value its schema accepts.

The smollm2 engine feeds :class:`JsonCloser` the reply as the model writes it (a prefix of valid
JSON: the grammar sees to that) and asks, before each token, what text would complete it now:
missing required properties with their smallest valid value, arrays up to ``minItems``, a
half-written key, number, literal, enum value or escape finished, open containers closed. That
lets the engine stop while the completion still fits the token budget. Plain Python.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

_STRING_FORMATS = {
    "date": "2000-01-01",
    "time": "00:00:00Z",
    "date-time": "2000-01-01T00:00:00Z",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


def whole_number(value: Any, default: int = 0) -> int:
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default
    )


@dataclass
class _Frame:
    """An open object or array of the text read so far."""

    kind: str  # "object" | "array"
    schema: dict
    # object: "start" (after "{"), "key" (after ","), "colon", "value", "next" (after a value)
    # array: "start" (after "["), "value" (after ","), "next"
    state: str = "start"
    keys: list[str] = field(default_factory=list)
    key: str = ""  # the object key whose value comes next
    items: int = 0


class JsonCloser:
    """Reads a JSON reply as it is generated; :meth:`closing` completes it at any point.

    The text fed must be a prefix of valid JSON (the grammar sees to that). The closing text
    makes it a complete value that validates against ``schema`` where the grammar enforced the
    schema: required properties, ``minItems``, enums, consts and simple string formats.
    """

    def __init__(self, schema: dict) -> None:
        self._root = schema
        self._frames: list[_Frame] = []
        self._lexeme = ""  # "string" | "key" | "number" | "literal" | "" (between tokens)
        self._raw = ""  # the lexeme's text so far (a string's without its opening quote)
        self._escape = 0  # characters of an escape sequence still to come (0: none)
        self.done = False

    def copy(self) -> JsonCloser:
        """An independent copy (schemas are shared: nothing here changes them)."""
        twin = JsonCloser(self._root)
        twin._frames = [replace(f, keys=list(f.keys)) for f in self._frames]
        twin._lexeme, twin._raw, twin._escape, twin.done = (
            self._lexeme,
            self._raw,
            self._escape,
            self.done,
        )
        return twin

    # -- reading -------------------------------------------------------------------------------

    def feed(self, text: str) -> None:
        for char in text:
            self._char(char)

    def _char(self, char: str) -> None:
        if self._lexeme in ("string", "key"):
            self._string_char(char)
        elif self._lexeme == "number":
            if char in "0123456789+-.eE":
                self._raw += char
            else:
                self._lexeme = ""
                self._value_done()
                self._char(char)
        elif self._lexeme == "literal":
            self._raw += char
            if self._raw in ("true", "false", "null"):
                self._lexeme = ""
                self._value_done()
        elif char in " \t\r\n" or self.done:
            return
        elif char in "{[":
            kind = "object" if char == "{" else "array"
            self._frames.append(_Frame(kind, self._branch(self._next_schema(), kind)))
        elif char in "}]":
            self._frames.pop()
            self._value_done()
        elif char == ":":
            self._frames[-1].state = "value"
        elif char == ",":
            self._frames[-1].state = "key" if self._frames[-1].kind == "object" else "value"
        elif char == '"':
            top = self._frames[-1] if self._frames else None
            is_key = top is not None and top.kind == "object" and top.state in ("start", "key")
            self._lexeme, self._raw = ("key" if is_key else "string"), ""
        else:
            self._lexeme, self._raw = ("number" if char in "-0123456789" else "literal"), char

    def _string_char(self, char: str) -> None:
        if self._escape:
            self._escape = 4 if char == "u" and self._raw.endswith("\\") else self._escape - 1
        elif char == "\\":
            self._escape = 1
        elif char == '"':
            if self._lexeme == "key":
                self._frames[-1].key = json.loads(f'"{self._raw}"')
                self._frames[-1].state = "colon"
            else:
                self._value_done()
            self._lexeme = ""
            return
        self._raw += char

    def _value_done(self) -> None:
        if not self._frames:
            self.done = True
            return
        top = self._frames[-1]
        if top.kind == "object":
            top.keys.append(top.key)
        else:
            top.items += 1
        top.state = "next"

    # -- closing -------------------------------------------------------------------------------

    def closing(self) -> str:
        """The shortest text found that completes what was read into a valid value."""
        trial = self.copy()
        parts: list[str] = []

        def add(text: str) -> None:
            parts.append(text)
            trial.feed(text)

        for _ in range(10_000):  # each step closes a value or a container; bounded by the schema
            if trial.done:
                return "".join(parts)
            if not trial._lexeme:
                add(trial._next_step())
                continue
            add(trial._finish_lexeme())
            if trial._lexeme == "number":  # a number ends where the next text starts
                trial._lexeme = ""
                trial._value_done()
        raise RuntimeError("the JSON closer did not converge")

    def _finish_lexeme(self) -> str:
        raw, lexeme = self._raw, self._lexeme
        if lexeme == "number":
            return "0" if raw[-1] in "-+.eE" else ""  # "-", "1.", "1e", "1e-" need a digit
        if lexeme == "literal":
            word = next(w for w in ("true", "false", "null") if w.startswith(raw))
            return word[len(raw) :]
        escape = ""
        if self._escape:  # "\" -> "\\"; "\u00" -> "\u0000": a valid escape, then the rest
            escape = "\\" if raw.endswith("\\") else "0" * self._escape
        text = raw + escape
        if lexeme == "key":
            top = self._frames[-1]
            names = self._missing(top) + [k for k in _properties(top.schema) if k not in top.keys]
            for name in names:
                quoted = json.dumps(name)[1:-1]
                if quoted.startswith(text):
                    return escape + quoted[len(text) :] + '"'
            return escape + '"'
        schema = self._branch(self._next_schema(), "string")
        options = [schema["const"]] if "const" in schema else list(schema.get("enum") or [])
        options += [_STRING_FORMATS[f]] if (f := schema.get("format")) in _STRING_FORMATS else []
        for option in options:
            quoted = json.dumps(option) if isinstance(option, str) else ""
            if quoted[1:].startswith(text):
                return escape + quoted[1 + len(text) :]
        decoded = json.loads(f'"{text}"')
        return escape + "a" * max(whole_number(schema.get("minLength")) - len(decoded), 0) + '"'

    def _next_step(self) -> str:
        """Text that closes one more value or container (what comes next in the closing)."""
        if not self._frames:
            return self._minimal_text(self._next_schema())
        top = self._frames[-1]
        if top.kind == "array":
            if top.state == "value":
                return self._minimal_text(self._next_schema())
            if top.items < whole_number(top.schema.get("minItems")):
                comma = ", " if top.state == "next" else ""
                return comma + self._minimal_text(self._next_schema())
            return "]"
        if top.state == "colon":
            return ": "
        if top.state == "value":
            return self._minimal_text(self._next_schema())
        missing = self._missing(top)
        if not missing and top.state == "key":  # after a comma a member must follow
            spare = [k for k in _properties(top.schema) if k not in top.keys]
            missing = spare or [_new_key(top.keys)]
        if not missing:
            return "}"
        comma = ", " if top.state == "next" else ""
        return comma + json.dumps(missing[0]) + ": "

    def _missing(self, frame: _Frame) -> list[str]:
        return [name for name in _required(frame.schema) if name not in frame.keys]

    def _minimal_text(self, schema: Any) -> str:
        return json.dumps(self._minimal(schema, 0), ensure_ascii=False)

    def _minimal(self, schema: Any, depth: int) -> Any:
        """The smallest value found that ``schema`` accepts."""
        schema = self._resolve(schema)
        if depth > 32 or not isinstance(schema, dict):
            return None
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        for union in ("anyOf", "oneOf"):
            if isinstance(schema.get(union), list) and schema[union]:
                return self._minimal(schema[union][0], depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = "null" if "null" in kind else (kind[0] if kind else None)
        if kind is None and ("properties" in schema or "allOf" in schema):
            kind = "object"
        if kind == "string":
            floor = whole_number(schema.get("minLength"))
            return _STRING_FORMATS.get(schema.get("format") or "", "a" * floor)
        if kind in ("integer", "number"):
            return _smallest_number(schema, kind)
        if kind == "boolean":
            return False
        if kind == "array":
            items = schema.get("prefixItems") or schema.get("items")
            if isinstance(items, list):
                return [self._minimal(item, depth + 1) for item in items]
            return [self._minimal(items, depth + 1)] * whole_number(schema.get("minItems"))
        if kind == "object":
            merged = self._branch(schema, "object")
            properties = _properties(merged)
            return {k: self._minimal(properties.get(k, {}), depth + 1) for k in _required(merged)}
        return None

    def _next_schema(self) -> Any:
        """The schema of the value that starts next."""
        if not self._frames:
            return self._root
        top = self._frames[-1]
        if top.kind == "object":
            found = _properties(top.schema).get(top.key)
            if found is None:
                extra = top.schema.get("additionalProperties")
                found = extra if isinstance(extra, dict) else {}
            return found
        prefix = top.schema.get("prefixItems")
        items = top.schema.get("items")
        if isinstance(items, list):
            prefix = items
        if isinstance(prefix, list) and top.items < len(prefix):
            return prefix[top.items]
        return items if isinstance(items, dict) else {}

    def _resolve(self, schema: Any) -> Any:
        """Follow local ``$ref`` pointers (``#/$defs/Name``) into the root schema."""
        for _ in range(32):
            ref = schema.get("$ref") if isinstance(schema, dict) else None
            if not isinstance(ref, str) or not ref.startswith("#"):
                break
            target: Any = self._root
            for part in [p for p in ref[1:].split("/") if p]:
                target = target.get(part.replace("~1", "/").replace("~0", "~"), {})
            schema = target
        return schema if isinstance(schema, dict) else {}

    def _branch(self, schema: Any, kind: str) -> dict:
        """The part of ``schema`` a value of JSON type ``kind`` follows: the first ``anyOf`` or
        ``oneOf`` branch of that type, with ``allOf`` parts merged into it."""
        schema = self._resolve(schema)
        for union in ("anyOf", "oneOf"):
            branches = [self._resolve(b) for b in schema.get(union) or []]
            typed = [b for b in branches if _json_type(b) == kind]
            if typed:
                schema = typed[0]
                break
        parts = [self._resolve(p) for p in schema.get("allOf") or []]
        if not parts:
            return schema
        merged = dict(schema)
        for part in parts:
            merged["properties"] = {**_properties(part), **_properties(merged)}
            required = [*_required(merged), *_required(part)]
            merged["required"] = list(dict.fromkeys(required))
        return merged


def _json_type(schema: dict) -> str | None:
    """The JSON type a (resolved) schema branch stands for, as far as it says."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return "object" if kind == "object" else "array" if kind == "array" else kind
    if "properties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return None


def _properties(schema: dict) -> dict[str, Any]:
    found = schema.get("properties")
    return found if isinstance(found, dict) else {}


def _required(schema: dict) -> list[str]:
    found = schema.get("required")
    return [r for r in found if isinstance(r, str)] if isinstance(found, list) else []


def _new_key(taken: list[str]) -> str:
    return next(f"x{i}" for i in range(len(taken) + 1) if f"x{i}" not in taken)


def _smallest_number(schema: dict, kind: str) -> int | float:
    low = schema.get("minimum")
    exclusive = schema.get("exclusiveMinimum")
    if isinstance(exclusive, int | float) and not isinstance(exclusive, bool):
        low = math.floor(exclusive) + 1 if kind == "integer" else exclusive + 1
    if isinstance(low, int | float) and not isinstance(low, bool) and low > 0:
        return math.ceil(low) if kind == "integer" else low
    return 0
