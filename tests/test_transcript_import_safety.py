"""An imported transcript is input from outside: its images go through stackit_nb.images' checks
(accepted formats, pixel and memory limits) before a thumbnail is drawn, and odd values in it
either show as nothing or fail the import before the chat changes, never half-way."""

from __future__ import annotations

import base64
import io
import json
import re
import time
from typing import Any

import pytest
from haystack.dataclasses import ChatMessage, ImageContent
from PIL import Image

from stackit_nb.widgets import ChatWidget
from stackit_nb.widgets._history_html import message_html


def encoded(image: Image.Image, kind: str, **options: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def user_with_image(data: str, mime: str = "image/png") -> ChatMessage:
    return ChatMessage.from_user(
        content_parts=["what is this?", ImageContent(base64_image=data, mime_type=mime)]
    )


def thumbnails(html: str) -> list[str]:
    return re.findall(r'<img src="([^;"]*)', html)


def test_a_real_png_gets_its_thumbnail() -> None:
    html = message_html(user_with_image(encoded(Image.new("RGB", (300, 200), "red"), "PNG")))
    assert thumbnails(html) == ["data:image/jpeg"]


@pytest.mark.parametrize(
    ("kind", "options"),
    [("TGA", {}), ("PPM", {}), ("PCX", {}), ("EPS", {})],  # Pillow reads them; we do not
)
def test_formats_outside_the_allowlist_are_never_decoded(kind: str, options: Any) -> None:
    data = encoded(Image.new("RGB", (64, 64), "blue"), kind, **options)
    html = message_html(user_with_image(data))  # labelled image/png, as in the report
    assert thumbnails(html) == [] and "[image " in html


def test_a_169_megapixel_image_in_a_small_transcript_is_refused_at_once() -> None:
    data = encoded(Image.new("L", (13_000, 13_000)), "PNG", optimize=True)
    assert len(data) < 600_000
    started = time.perf_counter()
    html = message_html(user_with_image(data))
    assert time.perf_counter() - started < 1.0
    assert thumbnails(html) == [] and "[image " in html


def transcript(*messages: ChatMessage, **settings: Any) -> str:
    return json.dumps(
        {
            "format": "stackit_nb.chat",
            "version": 1,
            **settings,
            "messages": [m.to_dict() for m in messages],
        }
    )


def test_odd_reply_facts_are_left_out_and_the_import_completes() -> None:
    reply = ChatMessage.from_assistant(
        "Paris.",
        meta={
            "model": 123,
            "time_to_first_token": "fast",
            "tokens_per_second": None,
            "usage": {"prompt_tokens": "many", "completion_tokens": 3},
            "error": {"not": "text"},
        },
    )
    chat = ChatWidget.load(
        transcript(
            ChatMessage.from_user("Capital of France?"), reply, ChatMessage.from_user("Thanks")
        )
    )
    assert [m.text for m in chat.messages] == ["Capital of France?", "Paris.", "Thanks"]
    html = message_html(chat.messages[1])
    assert "Paris." in html and "fast" not in html and "many" not in html


@pytest.mark.parametrize(
    ("settings", "named"),
    [({"temperature": "hot"}, "'temperature'"), ({"max_tokens": 1.5}, "'max_tokens'")],
)
def test_wrong_settings_fail_before_the_chat_changes(settings: dict[str, Any], named: str) -> None:
    chat = ChatWidget.load(transcript(ChatMessage.from_user("kept")))
    with pytest.raises(ValueError, match=named):
        chat.import_json(transcript(ChatMessage.from_user("new"), **settings))
    assert [m.text for m in chat.messages] == ["kept"]


def test_a_message_that_is_not_a_chat_message_is_named() -> None:
    chat = ChatWidget.load(transcript(ChatMessage.from_user("kept")))
    bad = json.dumps({"messages": [ChatMessage.from_user("ok").to_dict(), {"role": "wizard"}]})
    with pytest.raises(ValueError, match="Message 2 of the transcript"):
        chat.import_json(bad)
    assert [m.text for m in chat.messages] == ["kept"]
