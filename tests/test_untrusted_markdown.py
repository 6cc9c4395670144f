"""Model Markdown never makes a browser fetch anything by itself: images that are not embedded
``data:`` URLs become links, in replies, reasoning, the saved HTML copy and imported transcripts.
(The browser side: tests/browser/test_browser_remote_images.py.)"""

from __future__ import annotations

import re

import pytest
from haystack.dataclasses import ChatMessage, ReasoningContent, StreamingChunk

from stackit_nb.widgets._history_html import message_html
from stackit_nb.widgets._markdown import Reply
from stackit_nb.widgets._safe_markdown import IMAGE_LINK_CLASS, render_markdown
from stackit_nb.widgets._transcript import Transcript, from_json, to_json

LEAK = "http://127.0.0.1:9/p.png?leak=SECRET"
PIXEL = "data:image/png;base64,iVBORw0KGgo="


def img_sources(html: str) -> list[str]:
    return re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", html)


@pytest.mark.parametrize(
    "markdown",
    [
        f"![x]({LEAK})",
        f'![x]({LEAK} "a title")',
        f"![x][ref]\n\n[ref]: {LEAK}",
        "![x](//127.0.0.1:9/p.png)",  # protocol-relative
        "![x](p.png)",  # relative: a request to the notebook server
        "![x](/files/p.png)",
        f"[![inner]({LEAK})](http://example.org)",  # an image inside a link
        f"- item ![x]({LEAK})\n\n| a |\n|---|\n| ![y]({LEAK}) |",
        "![x](data:image/svg+xml;base64,PHN2Zz4=)",  # not on mistune's data-URL allowlist
        "![x](javascript:alert(1))",
    ],
)
def test_no_image_but_embedded_ones(markdown: str) -> None:
    html = render_markdown(markdown)
    assert img_sources(html) == [], html
    assert IMAGE_LINK_CLASS in html and "[image: " in html


def test_remote_image_becomes_a_labelled_link() -> None:
    html = render_markdown(f'See ![a <b>chart</b>]({LEAK} "t")')
    (link,) = re.findall(r"<a [^>]*>[^<]*</a>", html)
    assert 'href="http://127.0.0.1:9/p.png?leak=SECRET"' in link
    assert 'rel="noopener noreferrer nofollow"' in link
    assert ">[image: a &lt;b&gt;chart&lt;/b&gt;]</a>" in link  # the alt text, HTML as text
    harmful = render_markdown("![js](javascript:alert(1))")
    assert "href" not in harmful and "[image: js]" in harmful


def test_embedded_images_still_show() -> None:
    assert img_sources(render_markdown(f"![dot]({PIXEL})")) == [PIXEL]


def chunk(content: str = "", **fields: object) -> StreamingChunk:
    return StreamingChunk(content=content, meta={"model": "m"}, index=0, **fields)  # type: ignore[arg-type]


def test_streamed_reply_live_and_saved() -> None:
    reply = Reply(started=0.0)
    reply.add(chunk(reasoning=ReasoningContent(reasoning_text=f"think ![r]({LEAK}&r)")), 1.0)
    reply.add(chunk(content=f"Here: ![t]({LEAK}&t)\n\nmore "), 1.1)
    live = "".join(op[3] for op in reply.ops(final=False) if op[0] == "b")
    assert "[image: r]" in live and "[image: t]" in live
    reply.add(chunk(content=f"![u]({LEAK}&u)", finish_reason="stop"), 1.2)
    live += "".join(op[3] for op in reply.ops(final=True) if op[0] == "b")
    saved = reply.static_bundle()["text/html"]
    for html in (live, saved):
        assert img_sources(html) == [], html
    assert all(f"[image: {name}]" in saved for name in "rtu")


def test_imported_transcript_shows_no_remote_image() -> None:
    messages = [
        ChatMessage.from_user(f"look ![u]({LEAK}&u)"),
        ChatMessage.from_assistant(
            f"answer ![a]({LEAK}&a)",
            reasoning=ReasoningContent(reasoning_text=f"hmm ![r]({LEAK}&r)"),
            meta={"error": f"![e]({LEAK}&e)"},
        ),
    ]
    imported = from_json(to_json(Transcript(messages=messages)))
    html = "".join(message_html(m) for m in imported.messages)
    assert img_sources(html) == [], html
    assert all(f"[image: {name}]" in html for name in "uar")


def test_model_ids_from_the_endpoint_stay_text_in_markdown() -> None:
    """A model list renders as Markdown where a front end prefers it: an id is the endpoint's
    text, so its image syntax must not become an image there."""
    import mistune

    from stackit_nb.models import ModelInfo, ModelList

    hostile = ModelInfo(id=f"![x]({LEAK})|x", source="server")
    plain = ModelInfo(id="openai/gpt-oss-20b", source="server")
    markdown = ModelList([hostile, plain], base_url="http://127.0.0.1:1/v1")._repr_markdown_()
    html = mistune.create_markdown(plugins=["table"])(markdown)
    assert img_sources(html) == [] and f"![x]({LEAK})|x" in html
    assert "| openai/gpt-oss-20b |" in markdown  # ordinary ids read as before
