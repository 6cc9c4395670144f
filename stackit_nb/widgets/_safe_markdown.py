"""Markdown from a model to HTML that a browser shows without running or fetching anything, and
back to Markdown that is as harmless (for the saved copy).

Model text is untrusted: a reply can carry a prompt injection from a retrieved document.
mistune runs with ``escape=True`` (raw HTML in the text is shown as text) and its URL filter
(``javascript:`` and similar links are dropped). Images need more than that: a browser loads
``<img src="http://...">`` by itself, with no click, so ``![x](https://host/p.png?leak=...)``
would send whatever the model put in the URL to that host as soon as the reply is shown (live,
after a reload, in an nbconvert export). Only images embedded in the text itself (``data:image/``
PNG, JPEG, GIF or WebP URLs) become ``<img>``; any other image becomes a link the reader can
choose to follow, labelled as an image.

Code blocks are highlighted (``_code_highlight``) and formulas typeset (``_typeset_math``, which
also refuses TeX that could load or link anything).

:func:`markdown_copy` writes the same reply back as Markdown for front ends that render Markdown
themselves (JupyterLab, nbconvert, GitHub): rebuilt from the parsed text, never passed through,
so the same rules hold there (HTML as text, no remote image, no harmful link target), code
fences name their (guessed) language, and formulas are ``$...$`` and ``$$...$$``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, cast

import mistune
from mistune.core import BlockState
from mistune.renderers.html import HTMLRenderer
from mistune.renderers.markdown import MarkdownRenderer
from mistune.util import striptags

from stackit_nb.widgets._code_highlight import code_block_html, guess_language
from stackit_nb.widgets._typeset_math import (
    math_plugin,
    render_block_math,
    render_inline_math,
    render_math_paragraph,
)

#: The label of an image that is shown as a link instead (its alt text follows).
IMAGE_LINK_CLASS = "snb-image-link"
_PLUGINS: list[Any] = ["table", "strikethrough", math_plugin]
_HARMFUL = "#harmful-link"


class _NoRemoteImages(HTMLRenderer):
    """mistune's HTML renderer, with images from anywhere but the text itself as links, code
    highlighted and formulas typeset.

    :param guess: Guess the language of a fence that names none (not for a growing block).
    """

    def __init__(self, *, guess: bool = True) -> None:
        super().__init__(escape=True)
        self.guess = guess

    def image(self, text: str, url: str, title: str | None = None) -> str:
        safe = self.sanitize_url(url)
        if safe.lower().lstrip().startswith("data:image/"):
            return super().image(text, url, title)  # passed mistune's data-URL allowlist
        alt = striptags(text).strip()  # inline HTML mistune escaped already: no tags left
        label = f"[image: {alt}]" if alt else "[image]"
        if safe == _HARMFUL:  # a javascript: or file: URL: not even a link
            return f'<span class="{IMAGE_LINK_CLASS}">{label}</span>'
        attrs = {
            "class": IMAGE_LINK_CLASS,
            "href": safe,
            "title": title or url,
            "rel": "noopener noreferrer nofollow",
            "target": "_blank",
        }
        return f"<a{self.render_attrs(attrs)}>{label}</a>"

    def block_code(self, code: str, info: str | None = None) -> str:
        return code_block_html(code, info, guess=self.guess)


def _html_markdown(guess: bool) -> Callable[[str], str]:
    renderer = _NoRemoteImages(guess=guess)
    renderer.register("inline_math", render_inline_math)
    renderer.register("block_math", render_block_math)
    renderer.register("math_paragraph", render_math_paragraph)
    return cast(
        Callable[[str], str],
        mistune.create_markdown(escape=True, renderer=renderer, plugins=_PLUGINS),
    )


_markdown = _html_markdown(guess=True)
_growing_markdown = _html_markdown(guess=False)


def render_markdown(text: str, *, growing: bool = False) -> str:
    """Markdown to HTML; HTML in ``text`` is escaped, harmful link targets are dropped, and
    images that are not embedded ``data:`` URLs become links (nothing loads by itself).

    :param growing: The text is the still-open end of a streaming reply: a code fence without
        a language stays plain until it is complete (a guess could change with every line).
    """
    if not text.strip():
        return ""
    return (_growing_markdown if growing else _markdown)(text)


# -- the Markdown copy --------------------------------------------------------------------------

# Characters that could become markup (or a formula) when the text is read again, written as
# numeric references; complete references already in the text keep their meaning.
_MARKUP = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]+);|([\\`<>!\[\]$*_~|&])")
_URL_UNSAFE = re.compile(r"[\s<>]")


def _literal(text: str) -> str:
    return _MARKUP.sub(lambda m: f"&#{ord(m[1])};" if m[1] else m[0], text)


class _SafeMarkdown(MarkdownRenderer):
    """mistune's Markdown writer, keeping to the HTML renderer's rules (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._urls = HTMLRenderer(escape=True)  # the same link filter as the HTML view

    def render_referrences(self, state: BlockState) -> Iterable[str]:
        return ()  # links and images are written inline, with their checked URL

    def text(self, token: dict[str, Any], state: BlockState) -> str:
        return _literal(str(token["raw"]))

    def inline_html(self, token: dict[str, Any], state: BlockState) -> str:
        return _literal(str(token["raw"]))

    def block_html(self, token: dict[str, Any], state: BlockState) -> str:
        return _literal(str(token["raw"]).strip()) + "\n\n"

    def _target(self, url: str) -> str | None:
        safe = self._urls.sanitize_url(url)
        if safe == _HARMFUL:
            return None
        return "<" + _URL_UNSAFE.sub(lambda m: f"%{ord(m[0]):02X}", safe) + ">"

    def link(self, token: dict[str, Any], state: BlockState) -> str:
        text = self.render_children(token, state)
        target = self._target(token["attrs"]["url"])
        return f"[{text}]({target})" if target else text

    def image(self, token: dict[str, Any], state: BlockState) -> str:
        url = str(token["attrs"]["url"])
        alt = _literal(striptags(self.render_children(token, state)).strip())
        target = self._target(url)
        if target and url.lower().lstrip().startswith("data:image/"):
            return f"![{alt}]({target})"  # embedded: nothing to fetch
        label = f"&#91;image: {alt}&#93;" if alt else "&#91;image&#93;"
        return f"[{label}]({target})" if target else label

    def block_code(self, token: dict[str, Any], state: BlockState) -> str:
        info = str(token.get("attrs", {}).get("info") or "").strip()
        named = info.split(maxsplit=1)[0] if info else ""
        language = named if re.fullmatch(r"[\w+#.-]+", named) else ""
        language = language or guess_language(str(token["raw"])) or ""
        return super().block_code({**token, "attrs": {"info": language}}, state)

    def inline_math(self, token: dict[str, Any], state: BlockState) -> str:
        return "$" + str(token["raw"]).strip() + "$"

    def block_math(self, token: dict[str, Any], state: BlockState) -> str:
        return "$$" + str(token["raw"]).strip() + "$$"

    def math_paragraph(self, token: dict[str, Any], state: BlockState) -> str:
        return "$$\n" + str(token["raw"]).strip() + "\n$$\n\n"


_markdown_copy = cast(
    Callable[[str], str], mistune.create_markdown(renderer=_SafeMarkdown(), plugins=_PLUGINS)
)


def markdown_copy(text: str) -> str:
    """``text`` rewritten as Markdown that shows no HTML, loads nothing and links nowhere
    harmful (module docstring), for a saved copy's ``text/markdown``."""
    return _markdown_copy(text).strip() + "\n" if text.strip() else ""
