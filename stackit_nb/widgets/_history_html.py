"""A chat's history as HTML for the widget: one entry per message, as StreamingDisplay shows a
reply (Markdown rendered safely, reasoning folded, tool calls labelled, a footer), user images as
thumbnails.

Messages may come from an imported transcript, so nothing in them is trusted: text goes through
``render_markdown``, images through ``stackit_nb.images``, and footer facts that are not numbers
are left out instead of breaking the import half-way.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from typing import Any

from haystack.dataclasses import ChatMessage, ChatRole, ImageContent

from stackit_nb._streaming import model_label
from stackit_nb.images import convert, describe_resize
from stackit_nb.widgets._markdown import HtmlDiff, Section, error_html, footer_html
from stackit_nb.widgets._safe_markdown import render_markdown

THUMBNAIL_SIDE = 96  # shown this large; the JPEG is the upload widget's (a few KB)
_MUTED = "color:var(--jp-ui-font-color2,#616161)"
_WHO = f'<div style="font-size:.8em;font-weight:600;{_MUTED}">{{}}</div>'
_USER_BOX = (
    "margin:.4em 0 .4em 12%;padding:.3em .8em;border-radius:8px;"
    "background:var(--jp-layout-color2,#eef1f5)"
)
_ASSISTANT_BOX = "margin:.4em 12% .4em 0;padding:.3em .1em"


def message_html(message: ChatMessage) -> str:
    """One history entry: Markdown rendered as ``StreamingDisplay`` renders it (escaped)."""
    if message.role == ChatRole.USER:
        images = "".join(_thumbnail_html(image) for image in message.images)
        gallery = f'<div style="display:flex;flex-wrap:wrap;gap:6px">{images}</div>'
        body = render_markdown(message.text or "") + (gallery if images else "")
        return f'<div class="snb-chat-user" style="{_USER_BOX}">{_WHO.format("You")}{body}</div>'
    sections = []
    if message.reasoning is not None and message.reasoning.reasoning_text:
        sections.append(Section("reasoning", parts=[message.reasoning.reasoning_text]))
    for call in message.tool_calls:
        arguments = json.dumps(call.arguments, ensure_ascii=False)
        sections.append(Section("tool_call", call.tool_name, parts=[arguments]))
    if message.text:
        sections.append(Section("text", parts=[message.text]))
    for section in sections:
        section.closed = True
    error = message.meta.get("error")
    body = HtmlDiff().static_html(
        sections, footer_html(*_footer(message.meta)), error_html(str(error)) if error else ""
    )
    who = _WHO.format("Assistant")
    return f'<div class="snb-chat-assistant" style="{_ASSISTANT_BOX}">{who}{body}</div>'


def _footer(meta: Mapping[str, Any]) -> tuple[list[str], list[str], str | None]:
    """(facts, timings, finish) for ``footer_html``, from a reply's ``meta``."""
    model = meta.get("model")
    label = model_label(str(model) if model else None, meta)
    facts = [label] if label else []
    usage = raw if isinstance(raw := meta.get("usage"), Mapping) else {}
    tokens_in, tokens_out = usage.get("prompt_tokens") or 0, usage.get("completion_tokens")
    if _is_number(tokens_out) and _is_number(tokens_in):
        facts.append(f"{tokens_in:,} tokens in · {tokens_out:,} out")
    timing = []
    # an imported transcript may hold anything here: show numbers, leave the rest out
    if _is_number(first := meta.get("time_to_first_token")):
        timing.append(f"first token {first:.2f} s")
    if _is_number(speed := meta.get("tokens_per_second")):
        timing.append(f"{speed:,.1f} tokens/s")
    finish: str | None = None
    if meta.get("stopped"):
        finish = "stopped"
    elif meta.get("interrupted") or meta.get("error"):
        finish = "broke off"
    elif meta.get("finish_reason"):
        finish = f"finish: {meta['finish_reason']}"
    return facts, timing, finish


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _thumbnail_html(image: ImageContent) -> str:
    label = html.escape(describe_resize(image.meta or {}) if image.meta else "image")
    try:
        source = _thumbnail(image)
    except Exception:  # an image the browser cannot show still has its label
        return f'<span style="font-size:.8em;{_MUTED}">[image {label}]</span>'
    side = THUMBNAIL_SIDE
    return (
        f'<img src="{source}" alt="{label}" title="{label}" '
        f'style="max-width:{side}px;max-height:{side}px;border-radius:4px">'
    )


def _thumbnail(image: ImageContent) -> str:
    """A data URL of a small JPEG of ``image`` (a few KB, whatever the image's size).

    The image may come from an imported transcript, so it is read like any image from outside:
    through ``stackit_nb.images`` (accepted formats only, pixel and memory limits)."""
    from stackit_nb.widgets.upload import _thumbnail as thumbnail  # one owner of thumbnails

    data = base64.b64decode(image.base64_image, validate=True)
    return thumbnail(convert(data, max_side=2 * THUMBNAIL_SIDE).image)
