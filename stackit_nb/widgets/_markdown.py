"""A reply that is still arriving, as data and as HTML: complete blocks, small diffs, a footer.

A streamed reply (:class:`Reply`) is a list of :class:`Section` (text, reasoning, tool call, tool
result) plus facts for its footer (model, usage, timing, finish reason). Each
section's Markdown is cut into blocks as it grows (:class:`MarkdownBlocks`); a block that can no
longer change (a paragraph followed by a blank line, a closed code fence, a heading) is rendered
once and *frozen*; only the last, open block is re-rendered. :class:`HtmlDiff` turns that into
the few characters a front end needs: for each section, how much of what it already shows to
keep, what to append, and how much of the result is now frozen.

Model text is untrusted: it becomes HTML through :func:`render_markdown` (raw HTML shown as
text, harmful links dropped, remote images shown as links, code highlighted, formulas typeset:
see ``_safe_markdown``).
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from haystack.dataclasses import StreamingChunk

from stackit_nb._streaming import model_label
from stackit_nb.widgets._code_highlight import with_code_style
from stackit_nb.widgets._safe_markdown import render_markdown
from stackit_nb.widgets._saved_markdown import SavedSection, reply_markdown
from stackit_nb.widgets._typeset_math import IGNORE_CLASSES, for_page_typesetter

SectionKind = Literal["text", "reasoning", "tool_call", "tool_result"]

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_LIST_ITEM = re.compile(r"^ {0,3}(?:[-+*]|\d{1,9}[.)])(?:\s|$)")
_HEADING = re.compile(r"^#{1,6}(?:\s|$)")

# Inline styles, not classes: the saved (static) reply must look right where no stylesheet of
# ours is loaded (JupyterLab's HTML output, nbconvert, GitHub drops them harmlessly).
_MUTED = "color:var(--jp-ui-font-color2,#616161)"
_BOX = (
    "margin:.5em 0;padding:.25em .75em;border-left:3px solid {};"
    "background:var(--jp-layout-color2,#f5f5f5)"
)
_LABEL = '<div class="snb-label" style="font-size:.85em;font-weight:600">{}</div>'


def closing_fence(text: str) -> str | None:
    """The fence that closes a code block ``text`` leaves open at its end (``None``: none)."""
    blocks = MarkdownBlocks()
    blocks.feed(text + "\n")
    if blocks._fence is None:
        return None
    char, length = blocks._fence
    return char * length


class MarkdownBlocks:
    """Cuts growing Markdown into blocks that are complete and an open rest.

    Example::

        blocks = MarkdownBlocks()
        blocks.feed("# Title\\nSome ")  # -> ["# Title\\n"]
        blocks.feed("text.\\n\\nNext")   # -> ["Some text.\\n\\n"]
        blocks.open                     # -> "Next"
    """

    def __init__(self) -> None:
        self.open = ""
        self._scanned = 0  # self.open[:_scanned] is whole lines already looked at
        self._fence: tuple[str, int] | None = None  # (character, length) of an open fence
        self._fence_at_margin = False
        self._blank_after: int | None = None  # end of a blank line that may end the block

    def feed(self, text: str) -> list[str]:
        """Add text; return the Markdown of blocks completed by it."""
        self.open += text
        done: list[str] = []
        while (end := self.open.find("\n", self._scanned)) != -1:
            start, self._scanned = self._scanned, end + 1
            cut = self._line(self.open[start:end], start)
            if cut is not None:
                block, self.open = self.open[:cut], self.open[cut:]
                self._scanned -= cut
                if self._blank_after is not None:
                    self._blank_after -= cut
                if block.strip():
                    done.append(block)
        # a letter starting the next line is enough to end the block before it (not a list
        # marker, quote, fence or indent); other starts wait for the whole line
        rest = self.open[self._scanned :]
        if self._blank_after is not None and rest[:1].isalpha():
            block, self.open = self.open[: self._blank_after], rest
            self._scanned, self._blank_after = 0, None
            done.append(block)
        return done

    def close(self) -> list[str]:
        """The rest as a last block (when the section is over)."""
        rest, self.open, self._scanned = self.open, "", 0
        self._fence, self._blank_after = None, None
        return [rest] if rest.strip() else []

    def _line(self, line: str, start: int) -> int | None:
        """Look at one whole line starting at ``start``; return where to cut, if anywhere."""
        end = start + len(line) + 1
        if self._fence is not None:
            char, length = self._fence
            closing = _FENCE.match(line)
            is_end = closing and closing[2][0] == char and len(closing[2]) >= length
            if closing is not None and is_end and not closing[3].strip():
                self._fence = None
                # a closed fence at the margin cannot continue: freeze it (not inside a list)
                return end if self._fence_at_margin else None
            return None
        if not line.strip():
            if self.open[:start].strip():
                self._blank_after = end
            return None
        blank_after, self._blank_after = self._blank_after, None
        at_margin = not line[0].isspace()
        if fence := _FENCE.match(line):
            if fence[2][0] == "`" and "`" in fence[3]:
                return self._after_blank(line, blank_after, at_margin)  # inline code, not a fence
            self._fence = (fence[2][0], len(fence[2]))
            self._fence_at_margin = not fence[1]
            if not fence[1] and self.open[:start].strip():
                return start  # a fence at the margin ends whatever came before
            return None
        if at_margin and _HEADING.match(line):
            return start if self.open[:start].strip() else end
        return self._after_blank(line, blank_after, at_margin)

    def _after_blank(self, line: str, blank_after: int | None, at_margin: bool) -> int | None:
        if blank_after is None or not at_margin:
            return None  # no blank line before, or an indented continuation of the block
        first = self.open.lstrip("\n")
        # keep a list (or a quote) in one piece: split, it would render as several lists
        if _LIST_ITEM.match(line) and _LIST_ITEM.match(first):
            return None
        if line.startswith(">") and first.startswith(">"):
            return None
        return blank_after


@dataclass
class Section:
    """One part of a reply: text, reasoning, a tool call or a tool result."""

    kind: SectionKind
    label: str = ""
    key: Any = None
    parts: list[str] = field(default_factory=list)
    closed: bool = False
    failed: bool = False  # a tool result that is an error

    @property
    def text(self) -> str:
        return "".join(self.parts)


def section_shell(section: Section) -> tuple[str, str]:
    """The HTML around a section's body, as (before, after); the body goes in between."""
    label = html.escape(section.label)
    if section.kind == "text":
        return '<div class="snb-text snb-body">', "</div>"
    if section.kind == "reasoning":
        state = "" if section.closed else " open"
        return (
            f'<details class="snb-reasoning"{state} style="margin:0 0 .5em;{_MUTED}">'
            f'<summary style="cursor:pointer">{label or "Reasoning"}</summary>'
            '<div class="snb-body" style="padding-left:.75em;'
            'border-left:2px solid var(--jp-border-color2,#e0e0e0)">',
            "</div></details>",
        )
    if section.kind == "tool_call":
        color = "var(--jp-brand-color1,#1976d2)"
        title = f"Tool call · {label}"
    else:
        color = "var(--jp-error-color1,#d32f2f)" if section.failed else "#388e3c"
        title = f"Tool result · {label}" + (" (error)" if section.failed else "")
    return (
        f'<div class="snb-{section.kind.replace("_", "-")}" style="{_BOX.format(color)}">'
        + _LABEL.format(title)
        + '<div class="snb-body">',
        "</div></div>",
    )


def _code_html(text: str, closed: bool) -> str:
    """Tool arguments and results: preformatted; JSON is indented once it is complete."""
    if closed:
        with contextlib.suppress(ValueError):
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return f"<pre><code>{html.escape(text, quote=False)}</code></pre>" if text else ""


def utf16_len(text: str) -> int:
    """Length as JavaScript counts it (UTF-16 code units)."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def common_prefix(a: str, b: str) -> int:
    """Length of the common prefix of two strings (binary search over C-speed compares)."""
    low, high = 0, min(len(a), len(b))
    if a[:high] == b[:high]:
        return high
    while low < high:
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


class _SectionRenderer:
    """What one section's body looks like now, and what the front end already has of it."""

    def __init__(self, section: Section) -> None:
        self.section = section
        self.blocks = MarkdownBlocks()
        self.code = ""  # tool sections: the text so far (shown preformatted, not as Markdown)
        self.frozen: list[str] = []  # HTML of frozen blocks, in order
        self.open_html = ""
        self.fed = 0  # parts of the section taken in so far
        self.closed = False
        self.sent_frozen = 0  # frozen blocks the front end has
        self.sent_tail = ""  # the front end's unfrozen HTML of this section
        self.announced = False
        self.sent_closed = False

    def sync(self) -> None:
        """Take in the section's new text: freeze completed blocks, render the open rest."""
        section = self.section
        if self.fed == len(section.parts) and self.closed == section.closed:
            return
        new_text = "".join(section.parts[self.fed :])
        self.fed, self.closed = len(section.parts), section.closed
        if section.kind in ("tool_call", "tool_result"):
            self.code += new_text
            if section.closed:
                self.frozen.append(_code_html(self.code, closed=True))
                self.open_html = ""
            else:
                self.open_html = _code_html(self.code, closed=False)
            return
        done = self.blocks.feed(new_text) if new_text else []
        if section.closed:
            done += self.blocks.close()
        self.frozen += [render_markdown(block) for block in done]
        self.open_html = render_markdown(self.blocks.open, growing=True)

    def body(self) -> str:
        """The whole body HTML as it is now (for the static view)."""
        self.sync()
        return "".join(self.frozen) + self.open_html


class HtmlDiff:
    """Turns a reply's sections into minimal front-end operations and into static HTML.

    Operations (JSON arrays, applied in order by ``stream.js``):

    - ``["s", id, html]``: a new section; ``html`` is its empty shell (body: ``.snb-body``);
    - ``["b", id, keep, append, freeze]``: the section's unfrozen HTML becomes its first ``keep``
      characters (UTF-16) plus ``append``; then its first ``freeze`` characters are frozen
      (appended for good, never sent again);
    - ``["c", id]``: the section is over (reasoning folds away);
    - ``["f", html]``: the footer; ``["e", html]``: an error under the reply.
    """

    def __init__(self) -> None:
        self._renderers: list[_SectionRenderer] = []
        self._footer = ""
        self._error = ""

    def ops(self, sections: list[Section], footer: str, error: str) -> list[list[Any]]:
        """Operations that bring the front end from the last call's state to this one."""
        ops: list[list[Any]] = []
        for number, section in enumerate(sections):
            if number == len(self._renderers):
                self._renderers.append(_SectionRenderer(section))
            renderer = self._renderers[number]
            if not renderer.announced:
                before, after = section_shell(section)
                ops.append(["s", number, before + after])
                renderer.announced = True
            if renderer.sent_closed:
                continue
            renderer.sync()
            frozen_html = "".join(renderer.frozen[renderer.sent_frozen :])
            renderer.sent_frozen = len(renderer.frozen)
            tail = frozen_html + renderer.open_html
            if tail != renderer.sent_tail or frozen_html:
                keep = common_prefix(renderer.sent_tail, tail)
                ops.append(
                    [
                        "b",
                        number,
                        utf16_len(tail[:keep]),
                        tail[keep:],
                        utf16_len(frozen_html),
                    ]
                )
                renderer.sent_tail = renderer.open_html
            if section.closed:
                ops.append(["c", number])
                renderer.sent_closed = True
        if error != self._error:
            ops.append(["e", error])
            self._error = error
        if footer != self._footer:
            ops.append(["f", footer])
            self._footer = footer
        return ops

    def static_html(self, sections: list[Section], footer: str, error: str) -> str:
        """The whole reply as one self-contained HTML fragment (for saved notebooks)."""
        # a page typesetter (MathJax) leaves the reply alone: "$5 and $10" is not a formula
        parts = [f'<div class="snb-reply {IGNORE_CLASSES}">']
        for number, section in enumerate(sections):
            if number == len(self._renderers):
                self._renderers.append(_SectionRenderer(section))
            before, after = section_shell(section)
            parts += [before, self._renderers[number].body(), after]
        parts += [error, footer, "</div>"]
        return "".join(parts)


_ENDS = frozenset({"stop", "length", "content_filter"})
_PLAIN_LIMIT = 1000  # characters of the reply in the saved output's text/plain


class Reply:
    """One streamed reply, built from Haystack ``StreamingChunk`` objects.

    :param started: ``time.perf_counter()`` of the request (time to first token counts from it).
    """

    def __init__(self, started: float) -> None:
        self.started = started
        self.sections: list[Section] = []
        self.model: str | None = None
        self.fingerprint: str | None = None  # says which engine wrote it, on the local server
        self.tokens_in = self.tokens_out = 0
        self.has_usage = False
        self.finish_reason: str | None = None
        self.error: str | None = None
        self.first: float | None = None  # arrival of the first visible chunk
        self.last: float | None = None
        self.visible_chunks = 0
        self.ended = False  # a final finish_reason arrived (tool_calls is not final)
        self.diff = HtmlDiff()

    def add(self, chunk: StreamingChunk, now: float) -> bool:
        """Take in one chunk; return whether it carried something to show."""
        meta = chunk.meta or {}
        self.model = meta.get("model") or self.model
        self.fingerprint = meta.get("system_fingerprint") or self.fingerprint
        if usage := meta.get("usage"):  # once per model call (an agent makes several)
            get = usage.get if isinstance(usage, dict) else functools.partial(getattr, usage)
            self.tokens_in += get("prompt_tokens", 0) or 0
            self.tokens_out += get("completion_tokens", 0) or 0
            self.has_usage = True
        visible = False
        if chunk.reasoning is not None and chunk.reasoning.reasoning_text:
            visible = self._append("reasoning", chunk.reasoning.reasoning_text)
        for delta in chunk.tool_calls or []:
            visible = self._tool_call(delta.index, delta.tool_name, delta.arguments or "")
        if (result := chunk.tool_call_result) is not None:
            self._close(keep_tools=False)
            name = result.origin.tool_name if result.origin else "tool"
            section = Section("tool_result", name, parts=[str(result.result)], failed=result.error)
            section.closed = visible = True
            self.sections.append(section)
        if chunk.content:
            visible = self._append("text", chunk.content)
        if visible:
            self.first = self.first or now
            self.last = now
            self.visible_chunks += 1
        if chunk.finish_reason:
            self._close(keep_tools=False)
            if chunk.finish_reason != "tool_call_results" or not self.finish_reason:
                self.finish_reason = chunk.finish_reason
            self.ended = chunk.finish_reason in _ENDS
        return visible

    def _append(self, kind: SectionKind, text: str) -> bool:
        last = self.sections[-1] if self.sections else None
        if last is None or last.kind != kind or last.closed:
            self._close(keep_tools=False)
            last = Section(kind)
            self.sections.append(last)
        last.parts.append(text)
        return True

    def _tool_call(self, index: int, name: str | None, arguments: str) -> bool:
        calls = [s for s in self.sections if s.kind == "tool_call" and not s.closed]
        section = next((s for s in reversed(calls) if s.key == index), None)
        if section is None or name:  # a name starts a call; parallel calls stay open together
            self._close(keep_tools=True)
            section = Section("tool_call", name or "", key=index)
            self.sections.append(section)
        section.parts.append(arguments)
        return True

    def _close(self, keep_tools: bool) -> None:
        for section in self.sections:
            if not (keep_tools and section.kind == "tool_call"):
                section.closed = True

    def close(self, error: str | None = None) -> None:
        """The reply is over (``error``: it broke off)."""
        self.error = error or self.error
        self._close(keep_tools=False)

    def text_of(self, kind: SectionKind) -> str:
        return "".join(s.text for s in self.sections if s.kind == kind)

    def facts(self, final: bool) -> tuple[list[str], list[str], str | None]:
        """Footer contents: (facts, timings, finish)."""
        label = model_label(self.model, {"system_fingerprint": self.fingerprint})
        facts = [label] if label else []
        timing = []
        if self.first is not None:
            timing.append(f"first token {self.first - self.started:.2f} s")
        if not final:
            return facts, timing, "streaming…"
        if self.has_usage:
            facts.append(f"{self.tokens_in:,} tokens in · {self.tokens_out:,} out")
        elif self.visible_chunks:
            # Chunks that brought text: a stream also has chunks without (its first, its last).
            n = self.visible_chunks
            facts.append(f"{n:,} chunk{'' if n == 1 else 's'} of text")
        span = (self.last or 0.0) - (self.first or 0.0)
        if span > 0:
            count = self.tokens_out if self.has_usage else self.visible_chunks
            timing.append(f"{count / span:,.1f} {'tokens' if self.has_usage else 'chunks'}/s")
        finish = "error" if self.error else self.finish_reason
        return facts, timing, f"finish: {finish}" if finish else None

    def ops(self, final: bool) -> list[list[Any]]:
        """Front-end operations for what changed since the last call (see :class:`HtmlDiff`)."""
        error = error_html(self.error) if self.error else ""
        return self.diff.ops(self.sections, footer_html(*self.facts(final)), error)

    def static_bundle(self) -> dict[str, str]:
        """The finished reply as plain outputs: ``text/html`` (all of it; formulas for the
        page's own typesetter), ``text/markdown`` (see ``_saved_markdown``) and ``text/plain``."""
        error = error_html(self.error) if self.error else ""
        facts, timing, finish = self.facts(True)
        page = self.diff.static_html(self.sections, footer_html(facts, timing, finish), error)
        saved = [SavedSection(s.kind, s.label, s.text, s.failed) for s in self.sections]
        plain = self.text_of("text")
        if len(plain) > _PLAIN_LIMIT:  # the HTML has it all; do not send the reply twice
            rest = len(plain) - _PLAIN_LIMIT
            plain = f"{plain[:_PLAIN_LIMIT]}… [{rest:,} more characters in the HTML view]"
        plain += f"\n\n[error] {self.error}" if self.error else ""
        return {
            "text/html": with_code_style(for_page_typesetter(page)),
            "text/markdown": reply_markdown(saved, facts, finish, self.error),
            "text/plain": plain,
        }


def error_html(message: str) -> str:
    """The error shown under a reply that failed mid-stream."""
    return (
        f'<div class="snb-error" style="{_BOX.format("var(--jp-error-color1,#d32f2f)")};'
        f'color:var(--jp-error-color1,#d32f2f)"><strong>Error:</strong> '
        f"{html.escape(message)}</div>"
    )


def footer_html(facts: list[str], timing: list[str], finish: str | None) -> str:
    """The footer line. ``timing`` (it varies from run to run) sits in
    ``<span class="snb-timing">`` so that notebook tests can mask it with one regex."""
    items = [html.escape(fact) for fact in facts]
    if timing:
        items.append('<span class="snb-timing">' + html.escape(" · ".join(timing)) + "</span>")
    if finish:
        items.append(html.escape(finish))
    if not items:
        return ""
    return (
        f'<div class="snb-footer" style="margin-top:.5em;font-size:.8em;{_MUTED}">'
        + " · ".join(items)
        + "</div>"
    )
