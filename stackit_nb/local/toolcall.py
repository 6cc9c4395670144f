"""Which tool the scripted engine calls, and with which arguments.

The rule is simple and predictable, so tutorials can rely on it: a tool is called when the user's
last message shares at least one key word with the tool's name or description; arguments come
from the tool's JSON schema, filled with names, phrases and numbers found in the message.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from stackit_nb.local import prose
from stackit_nb.local.jsonschema_fill import FillContext, fill_schema

# Verbs that appear in almost every tool description ("Get the current ...") match every prompt.
_TOOL_STOPWORDS = prose.STOPWORDS | {
    "get", "set", "fetch", "return", "returns", "given", "current", "tool", "function", "call",
    "value", "values", "specified", "specific", "based", "provided", "information", "data", "run",
    "input", "output", "result", "results", "user", "request", "name",
}  # fmt: skip


def _keywords(text: str) -> set[str]:
    return {prose.stem(w) for w in prose.words(text) if w not in _TOOL_STOPWORDS and len(w) > 1}


def tool_keywords(tool: dict) -> set[str]:
    """Key words of an OpenAI tool spec: its name split on ``_``/``-``/case, plus description."""
    function = tool.get("function") or {}
    name = str(function.get("name") or "")
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).replace("_", " ").replace("-", " ")
    return _keywords(f"{spaced} {function.get('description') or ''}")


def choose_tool(tools: list[dict], tool_choice: str | dict | None, user_text: str) -> dict | None:
    """The tool to call for ``user_text``, or None to answer in text."""
    if not tools or tool_choice == "none":
        return None
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name")
        for tool in tools:
            if (tool.get("function") or {}).get("name") == wanted:
                return tool
    asked = _keywords(user_text)
    # Most shared key words wins; ties go to the tool listed first, as a model reading top-down.
    best_score, best = max(
        ((len(asked & tool_keywords(tool)), -i) for i, tool in enumerate(tools)),
        key=lambda item: item,
    )
    if best_score >= 1 or tool_choice == "required" or isinstance(tool_choice, dict):
        return tools[-best]
    return None


def fill_context(user_text: str, *, text: str = "", salt: str = "") -> FillContext:
    """What ``user_text`` offers for schema filling (key words, phrase, places, numbers)."""
    return FillContext(
        words=prose.keywords(user_text),
        phrase=prose.key_phrase(user_text),
        places=prose.places(user_text),
        numbers=prose.numbers(user_text),
        text=text,
        salt=salt,
    )


def tool_call(tool: dict, user_text: str, salt: str) -> dict:
    """An OpenAI-shaped tool call of ``tool`` with arguments taken from ``user_text``."""
    function = tool.get("function") or {}
    name = str(function.get("name") or "tool")
    parameters = function.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        parameters = {"type": "object", "properties": {}}
    context = fill_context(user_text, salt=salt)
    # "Search the docs for rate limits" -> query "rate limits": the words that chose the tool
    # say what to do, the rest says what to do it with.
    own = tool_keywords(tool)
    topical = [w for w in context.words if prose.stem(w) not in own]
    if topical:
        context.phrase = " ".join(topical[:4])
    arguments: Any = fill_schema(parameters, context)
    return {
        # Unique per call, as OpenAI's and vLLM's are (vLLM: a random uuid): a client that keys
        # results by id must not see two calls share one, even for the same prompt.
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)},
    }


def tool_results(messages: list[dict]) -> list[tuple[str, str]]:
    """``(tool name, result text)`` for the tool messages that end the conversation."""
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            names[str(call.get("id"))] = str((call.get("function") or {}).get("name") or "")
    trailing: list[dict] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        trailing.insert(0, message)
    results = []
    for message in trailing:
        name = message.get("name") or names.get(str(message.get("tool_call_id"))) or "the tool"
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
        results.append((str(name), str(content or "").strip()))
    return results
