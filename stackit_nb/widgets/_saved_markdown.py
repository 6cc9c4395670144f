"""The Markdown form of a finished reply, kept in the saved copy next to its HTML.

Front ends that render Markdown themselves (JupyterLab, nbconvert, GitHub) highlight its code
fences and typeset its ``$...$`` formulas with their own tools. Every piece of model text goes
through :func:`~stackit_nb.widgets._safe_markdown.markdown_copy`, so the Markdown holds no HTML,
no remote image and no harmful link. The footer keeps its facts, not its timings (they differ
from run to run, and a saved notebook should not).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from stackit_nb.widgets._safe_markdown import markdown_copy


@dataclass(frozen=True)
class SavedSection:
    """What the Markdown form needs of one section of a reply."""

    kind: str  # "text", "reasoning", "tool_call" or "tool_result"
    label: str
    text: str
    failed: bool = False


def _fenced(code: str, language: str) -> str:
    """``code`` in a fence longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{code.rstrip()}\n{fence}\n"


def _escaped_label(label: str) -> str:
    return markdown_copy(label).strip().replace("\n", " ")


def reply_markdown(
    sections: Iterable[SavedSection], facts: list[str], finish: str | None, error: str | None
) -> str:
    """The reply as Markdown: reasoning quoted, text as written (made safe), tool calls and
    results fenced, the error and the footer's facts under it."""
    parts: list[str] = []
    for section in sections:
        if section.kind == "text":
            parts.append(markdown_copy(section.text))
        elif section.kind == "reasoning":
            body = markdown_copy(section.text).rstrip("\n")
            quoted = "\n".join(f"> {line}".rstrip() for line in body.split("\n"))
            parts.append(f"> **{_escaped_label(section.label) or 'Reasoning'}**\n>\n{quoted}\n")
        else:
            kind = "Tool call" if section.kind == "tool_call" else "Tool result"
            failed = " (error)" if section.failed else ""
            title = f"**{kind} · {_escaped_label(section.label)}{failed}**\n\n"
            language = "json" if section.kind == "tool_call" else ""
            parts.append(title + _fenced(section.text, language))
    if error:
        parts.append(f"**Error:** {_escaped_label(error)}\n")
    line = " · ".join(_escaped_label(item) for item in [*facts, *([finish] if finish else [])])
    if line:
        parts.append(f"*{line}*\n")
    return "\n".join(part.rstrip("\n") + "\n" for part in parts if part.strip())
