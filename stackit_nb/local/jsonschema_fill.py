"""Build a JSON value that validates against a JSON schema, filled with words from a prompt.

The scripted engine uses this for structured outputs (``response_format`` ``json_schema``) and
for tool-call arguments. It understands what Pydantic v2's ``model_json_schema()`` emits (``$ref``
into ``$defs``, ``anyOf`` with ``null`` for Optional fields, ``enum``/``const`` for Literals,
``prefixItems`` for tuples) and the usual hand-written keywords; every result is checked with
``jsonschema`` and, when a first attempt does not validate, rebuilt in a minimal form.

Schemas come from requests, so the work is bounded whatever they ask for: strings, arrays and
objects stop growing at a size no reply needs (``minLength: 10**12`` gets a long string, not an
endless loop), and an attempt that takes more than ``_MAX_STEPS`` values or checks (a schema
whose branches refer to themselves) gives up and falls back as an unsatisfiable schema does.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import jsonschema

from stackit_nb.local import facts, regex_sample

_NONE = object()  # "no value found", distinct from a JSON null
_GIVE_UP = 40
_DEEP = 4  # below this depth only required fields and minimum array sizes: recursive models end
_MAX_STEPS = 4_000  # values built plus validations run, per attempt
_MAX_TEXT = 10_000  # characters of one string, whatever minLength asks
_MAX_ITEMS = 100  # items of one array / entries of one object, whatever minItems asks
_PLACE_NAMES = {"location", "city", "place", "country", "region", "town", "destination", "origin"}
_PLACE_NAMES |= {"address", "state", "area", "venue"}
_QUERY_NAMES = {"query", "q", "text", "question", "search", "prompt", "input", "keywords"}
_QUERY_NAMES |= {"term", "terms", "topic", "subject", "keyword", "phrase"}
_PROSE_NAMES = {"answer", "response", "summary", "explanation", "description", "content"}
_PROSE_NAMES |= {"reason", "reasoning", "body", "message", "comment", "note", "notes", "details"}
_PROSE_NAMES |= {"justification", "analysis", "result", "output", "reply", "overview"}
_TITLE_NAMES = {"title", "name", "heading", "label", "headline", "caption"}
_FORMATS = {
    "date": "2026-01-15",
    "date-time": "2026-01-15T09:30:00Z",
    "time": "09:30:00Z",
    "duration": "PT1H",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}


@dataclass
class FillContext:
    """What a prompt offers for filling values."""

    words: list[str] = field(default_factory=list)  # key words, lowercase, in prompt order
    phrase: str = ""  # the prompt's key phrase, for query-like strings
    places: list[str] = field(default_factory=list)  # capitalised names ("Berlin", "New York")
    numbers: list[float] = field(default_factory=list)  # numbers in the prompt, in order
    text: str = ""  # a sentence answering the prompt, for answer-like strings
    salt: str = ""  # varies ids and picks deterministically between requests
    # Values known for field names from a fact table ("population" -> 3880000), and words that
    # pick enum options ("capital"); a value is used only where it validates.
    known: dict[str, Any] = field(default_factory=dict)
    enum_words: set[str] = field(default_factory=set)
    # A reply, not tool arguments: where neither the prompt nor the facts have a value, lists
    # stay as short as the schema allows (filled with ``text``'s sentences) and quantities are
    # 0, instead of plausible-looking inventions.
    honest: bool = False


class _OverBudget(Exception):
    """An attempt took more than ``_MAX_STEPS`` steps."""


def _finite(bound: Any) -> float | None:
    """A numeric bound as a number, or None when it is absent, not a number or not finite."""
    if isinstance(bound, bool) or not isinstance(bound, int | float):
        return None
    return bound if math.isfinite(bound) else None


def _split_name(name: str) -> list[str]:
    """``"cityName"`` / ``"city_name"`` -> ``["city", "name"]``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [part.lower() for part in re.split(r"[\s_\-.]+", spaced) if part]


class SchemaFiller:
    """Makes instances of one (root) schema; holds which prompt numbers and places were used."""

    def __init__(self, schema: dict | bool, context: FillContext) -> None:
        self.root = schema if isinstance(schema, dict) else {}
        self.context = context
        self._numbers = list(context.numbers)
        self._places = 0
        self._minimal = False
        self._steps = 0
        # Honour the schema's own "$schema" draft; Pydantic and OpenAI use 2020-12 semantics.
        try:
            self._validator_class = jsonschema.validators.validator_for(
                self.root, jsonschema.Draft202012Validator
            )
        except (TypeError, AttributeError):  # a "$schema" that is not a URI string
            self._validator_class = jsonschema.Draft202012Validator

    # ---- public -------------------------------------------------------------------------------

    def fill(self) -> Any:
        """An instance of the root schema (best effort when the schema cannot be satisfied)."""
        value = self._attempt()
        if value is not _NONE and self.is_valid(value, self.root):
            return value
        # A second, minimal attempt: only required fields, fewest items, no prompt numbers.
        self._minimal, self._numbers, self._places = True, [], 0
        minimal = self._attempt()
        if minimal is not _NONE and (value is _NONE or self.is_valid(minimal, self.root)):
            return minimal
        return None if value is _NONE else value

    def _attempt(self) -> Any:
        """One try at the root schema, or ``_NONE`` when it ran out of steps or nested too deep."""
        self._steps = 0
        try:
            return self._value(self.root, "", 0, 0)
        except (_OverBudget, RecursionError):
            return _NONE

    def _step(self) -> None:
        self._steps += 1
        if self._steps > _MAX_STEPS:
            raise _OverBudget

    def _fits(self, value: Any, schema: dict | bool) -> bool:
        """``is_valid`` during an attempt: each check counts as a step."""
        self._step()
        return self.is_valid(value, schema)

    def is_valid(self, value: Any, schema: dict | bool) -> bool:
        """True when ``value`` validates against ``schema`` (a part of the root schema)."""
        if isinstance(schema, bool):
            return schema
        wrapped = dict(schema)
        for key in ("$defs", "definitions"):  # so refs inside a branch still resolve
            if key in self.root and key not in wrapped:
                wrapped[key] = self.root[key]
        try:
            return bool(self._validator_class(wrapped).is_valid(value))
        except Exception:  # a broken, remote-ref or exotic schema: unverifiable, never fatal
            return False

    # ---- schema plumbing ----------------------------------------------------------------------

    def _resolve(self, schema: Any, hops: int = 0) -> dict:
        """``schema`` with local ``$ref``s followed; sibling keywords win over the target's."""
        if not isinstance(schema, dict):
            return {} if schema is True or schema is None else {"not": {}}
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#") or hops > 32:
            return schema
        target: Any = self.root
        for part in ref[1:].split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part, {}) if isinstance(target, dict) else {}
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        return {**self._resolve(target, hops + 1), **siblings}

    def _merge_all_of(self, schema: dict) -> dict:
        """Fold ``allOf`` branches into one schema (properties and required lists combined)."""
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for branch in schema["allOf"]:
            branch = self._resolve(branch)
            if "allOf" in branch:
                branch = self._merge_all_of(branch)
            for key, value in branch.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required":
                    merged["required"] = sorted({*merged.get("required", []), *value})
                else:
                    merged.setdefault(key, value)
        return merged

    @staticmethod
    def _type_of(schema: dict) -> str:
        declared = schema.get("type")
        if isinstance(declared, list):
            concrete = [t for t in declared if t != "null"]
            return concrete[0] if concrete else "null"
        if isinstance(declared, str):
            return declared
        if {"properties", "required", "additionalProperties"} & schema.keys():
            return "object"
        if {"items", "prefixItems", "minItems", "maxItems"} & schema.keys():
            return "array"
        if {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & schema.keys():
            return "number"
        return "string"

    # ---- values -------------------------------------------------------------------------------

    def _value(self, schema: Any, name: str, depth: int, index: int) -> Any:
        if depth > _GIVE_UP:  # a schema that only refers to itself: nothing finite to build
            return None
        self._step()
        schema = self._resolve(schema)
        if "allOf" in schema:
            schema = self._merge_all_of(schema)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self._pick_enum(schema["enum"], index)
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                return self._from_branches(schema, key, name, depth, index)
        deep = self._minimal or depth >= _DEEP
        if isinstance(schema.get("type"), list) and "null" in schema["type"] and deep:
            return None
        kind = self._type_of(schema)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind in ("integer", "number"):
            return self._number(schema, name, index, integer=kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._string(schema, name, index)

    def _from_branches(self, schema: dict, key: str, name: str, depth: int, index: int) -> Any:
        base = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        branches = [self._resolve(b) for b in schema[key]]
        deep = self._minimal or depth >= _DEEP
        # Prefer a real value (Optional[X] -> X) unless deep in a recursive structure.
        branches.sort(key=lambda b: (b.get("type") == "null") != deep)
        candidate: Any = None
        for branch in branches:
            merged = (
                {**base, **branch} if base.keys() - {"title", "description", "default"} else branch
            )
            candidate = self._value(merged, name, depth + 1, index)
            if self._fits(candidate, schema):
                return candidate
        return candidate

    def _pick_enum(self, options: list, index: int) -> Any:
        """The option the facts or the prompt name, else the ``index``-th one."""
        for words in (self.context.enum_words, self.context.words):
            for option in options:
                if isinstance(option, str) and option.lower() in words:
                    return option
        return options[index % len(options)]

    def _unknown_text_items(self, items: Any) -> bool:
        """True for string items of an honest reply (nothing known to put in them)."""
        return self.context.honest and self._type_of(self._resolve(items)) == "string"

    def _known(self, name: str, schema: Any) -> Any:
        """The fact-table value for a field called ``name``, if one fits ``schema``."""
        known = self.context.known
        if not known or self._minimal:
            return _NONE
        for key in (name.lower(), *_split_name(name)):
            if key not in known:
                continue
            value = known[key]
            high = self._resolve(schema).get("maxItems")
            if isinstance(value, list) and isinstance(high, int):
                value = value[: max(high, 0)]
            if self._fits(value, schema):
                return value
        return _NONE

    def _object(self, schema: dict, depth: int) -> dict:
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        deep = self._minimal or depth >= _DEEP
        result: dict[str, Any] = {}
        for key, subschema in properties.items():
            if key in required or not deep:
                value = self._known(key, subschema)
                if value is _NONE:
                    value = self._value(subschema, key, depth + 1, 0)
                result[key] = value
        extra = schema.get("additionalProperties")
        wanted = min(int(schema.get("minProperties") or 0), _MAX_ITEMS)
        # dict[str, X] fields: one plausible entry reads better than an empty mapping.
        if isinstance(extra, dict) and not properties and not deep:
            wanted = max(wanted, 1)
        words = self.context.words or ["item"]
        n = 0
        while len(result) < wanted and extra is not False and n < wanted + 8:
            key = words[n % len(words)] + ("" if n < len(words) else f"_{n}")
            if key not in result:
                value_schema = extra if isinstance(extra, dict) else {}
                result[key] = self._value(value_schema, key, depth + 1, n)
            n += 1
        return result

    def _array(self, schema: dict, name: str, depth: int) -> list:
        low = min(int(schema.get("minItems") or 0), _MAX_ITEMS)
        high = schema.get("maxItems")
        deep = self._minimal or depth >= _DEEP
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", {})
        count = low if deep or self._unknown_text_items(items) else max(low, 2)
        if isinstance(high, int):
            count = min(count, high)
        count = max(count, len(prefix)) if not isinstance(high, int) else count
        singular = name[:-1] if name.endswith("s") else name
        unique = schema.get("uniqueItems") is True
        result: list = []
        said = [s.strip() for s in re.split(r"(?<=[.!?])\s+", self.context.text) if s.strip()]
        for i in range(count):
            item_schema = prefix[i] if i < len(prefix) else items
            if item_schema is False:
                break
            if self._unknown_text_items(item_schema) and said:
                value: Any = said[i % len(said)] + ("" if i < len(said) else f" ({i + 1})")
                if self._fits(value, item_schema):
                    result.append(value)
                    continue
            value = self._value(item_schema, singular, depth + 1, i)
            if unique and value in result:
                value = self._distinct(item_schema, value, result, singular, depth + 1, i)
                if value is _NONE:
                    break
            result.append(value)
        return result

    def _distinct(
        self, schema: Any, value: Any, taken: list, name: str, depth: int, index: int
    ) -> Any:
        """Another valid item not in ``taken`` (for ``uniqueItems``), or ``_NONE``."""
        for k in range(1, 24):
            candidate = self._value(schema, name, depth, index + k)
            if isinstance(candidate, str) and candidate in taken:
                candidate = f"{value} {k + 1}"
            if candidate not in taken and self._fits(candidate, schema):
                return candidate
        return _NONE

    def _number(self, schema: dict, name: str, index: int, *, integer: bool) -> int | float:
        low, high = _finite(schema.get("minimum")), _finite(schema.get("maximum"))
        ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if not isinstance(ex_low, bool):
            ex_low = _finite(ex_low)
        if not isinstance(ex_high, bool):
            ex_high = _finite(ex_high)
        step = 1 if integer else 0.5
        if isinstance(ex_low, bool) or isinstance(ex_high, bool):  # draft 4 boolean form
            low = low + step if ex_low is True and low is not None else low
            high = high - step if ex_high is True and high is not None else high
        else:
            if isinstance(ex_low, int | float):
                low = ex_low + step if low is None else max(low, ex_low + step)
            if isinstance(ex_high, int | float):
                high = ex_high - step if high is None else min(high, ex_high - step)

        def fits(value: float) -> bool:
            return (low is None or value >= low) and (high is None or value <= high)

        parts = set(_split_name(name))
        # Numbers the user typed fill numeric fields in order ("add 3 and 5" -> a=3, b=5); a
        # field named like a year takes a number that looks like one.
        for i, number in enumerate(self._numbers):
            if "year" in parts and not 1000 <= number <= 2999:
                continue
            if fits(number) and (not integer or float(number).is_integer()):
                del self._numbers[i]
                return int(number) if integer or float(number).is_integer() else number
        # Items of one array differ (uniqueItems may require it); a plain number looks like one.
        guess: float = 3 + index + (0 if integer or "multipleOf" in schema else 0.5)
        if self.context.honest:
            guess = 0  # no number in the prompt or the facts: none is invented
        elif parts & {"year"}:
            guess = 2026
        elif parts & {"age"}:
            guess = 30
        elif parts & {"temperature", "temp", "celsius"}:
            guess = 21
        elif parts & {"probability", "confidence", "ratio", "share", "fraction"}:
            guess = 0.8 if not integer else 1
        if low is not None and guess < low:
            guess = low
        if high is not None and guess > high:
            guess = high if low is None or high >= low else low
        multiple = _finite(schema.get("multipleOf"))
        if multiple is not None and multiple > 0:
            # Decimal arithmetic: 70 * 0.01 must be 0.7, not 0.7000000000000001.
            step_size = Decimal(str(multiple))
            steps = round(Decimal(str(guess)) / step_size)
            if not fits(float(steps * step_size)):
                steps += 1 if low is not None and float(steps * step_size) < low else -1
            guess = float(steps * step_size)
        if integer:
            whole = round(guess)
            return whole + 1 if low is not None and whole < low else whole
        return int(guess) if float(guess).is_integer() and "multipleOf" not in schema else guess

    def _string(self, schema: dict, name: str, index: int) -> str:
        fmt = schema.get("format")
        words = self.context.words or ["example"]
        word = words[index % len(words)]
        if fmt in _FORMATS:
            text = _FORMATS[str(fmt)]
        elif fmt in ("email", "idn-email"):
            text = f"{re.sub(r'[^a-z0-9]', '', word) or 'user'}@example.com"
        elif fmt in ("uri", "url", "iri", "uri-reference"):
            text = f"https://example.com/{re.sub(r'[^a-z0-9-]', '', word) or 'page'}"
        elif fmt == "uuid":
            digest = hashlib.blake2b(f"{self.context.salt}|{name}|{index}".encode()).digest()
            text = str(uuid.UUID(bytes=digest[:16], version=4))
        else:
            text = self._string_for_name(name, index)
        return self._fit_length(text, schema)

    def _string_for_name(self, name: str, index: int) -> str:
        parts = set(_split_name(name))
        context = self.context
        words = context.words or ["example"]
        if parts & {"country", "nation"}:
            # Only a name known to be a country fills a country field: "Xyzville" is not one.
            countries = [p for p in context.places if p in facts.COUNTRIES]
            return countries[index % len(countries)] if countries else "unknown"
        if parts & _PLACE_NAMES:
            place = context.places[self._places % len(context.places)] if context.places else ""
            self._places += 1
            return place or "Berlin"
        if parts & {"email", "mail"}:
            return f"{re.sub(r'[^a-z0-9]', '', words[0]) or 'user'}@example.com"
        if parts & {"url", "uri", "link", "website", "href"}:
            return f"https://example.com/{re.sub(r'[^a-z0-9-]', '', words[0]) or 'page'}"
        if parts & {"date", "day", "deadline"}:
            return f"2026-01-{15 + index % 10:02d}"
        if parts & {"language", "lang"}:
            return "English"
        if parts & {"unit", "units"}:
            return "celsius"
        if parts & {"id", "uuid", "key"}:
            digest = hashlib.blake2b(f"{context.salt}|{name}|{index}".encode(), digest_size=4)
            return f"{(name or 'id').lower()}-{digest.hexdigest()}"
        if parts & _QUERY_NAMES:
            return context.phrase or " ".join(words[:3])
        if parts & _PROSE_NAMES and context.text:
            return context.text
        if parts & {"author", "person", "owner", "user", "username"} and context.places:
            return context.places[index % len(context.places)]
        if parts & _TITLE_NAMES:
            if parts & {"name"} and context.places:
                return context.places[index % len(context.places)]
            start = index % len(words)
            return " ".join(w.capitalize() for w in (words[start:] + words[:start])[:3])
        start = (index * 2) % len(words)
        return " ".join((words[start:] + words[:start])[: min(2, len(words))])

    def _fit_length(self, text: str, schema: dict) -> str:
        low, high = schema.get("minLength"), schema.get("maxLength")
        if isinstance(low, int) and len(text) < low:
            filler = " ".join(self.context.words or ["example"])
            while len(text) < min(low, _MAX_TEXT):
                text = f"{text} {filler}".strip()
        if isinstance(high, int) and len(text) > high:
            text = text[:high].rstrip() or text[:high]
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and not self._fits(text, {"pattern": pattern}):
            for candidate in (regex_sample.sample(pattern), "example", "abc", "ABC", "123", "a1"):
                if candidate is not None and self._fits(candidate, schema):
                    return candidate
        return text


def fill_schema(schema: dict | bool, context: FillContext | None = None) -> Any:
    """A value that validates against ``schema``, filled from ``context`` where possible."""
    return SchemaFiller(schema, context or FillContext()).fill()
