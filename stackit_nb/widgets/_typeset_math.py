"""Math in a reply: found in the Markdown, typeset as MathML, handed to the page's MathJax.

Where: ``$...$`` and ``\\(...\\)`` inline; ``$$...$$`` and ``\\[...\\]`` displayed. A ``$`` used
for money is not math, by pandoc's rule: an opening ``$`` has a non-space right after it, a
closing ``$`` a non-space right before it and no digit right after it, so "costs $5 and $10"
stays text. A formula is typeset once its closing delimiter has arrived; until then it shows
as the text it is.

How: ``latex2mathml`` (pure Python, shipped as a dependency) turns the TeX into MathML, which
browsers draw themselves: no script, no font download, no CDN, the same live and saved. Its
output is not trusted (it passes ``\\text{<b>}`` through and turns ``\\href`` into an
attribute), so it is rebuilt from its element tree with MathML elements and layout attributes
only, and the text escaped. A formula that uses commands able to load or link anything
(``\\href``, ``\\require``, ...) or that cannot be converted stays text.

The saved copy hands its formulas to the page's own typesetter instead
(:func:`for_page_typesetter`): JupyterLab typesets an HTML output with its MathJax, also when
it shows the notebook untrusted and strips MathML. There the whole reply is marked
``mathjax_ignore`` (so a price is never taken for math) and each formula ``mathjax_process``.
"""

from __future__ import annotations

import functools
import html
import re
from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import Element

if TYPE_CHECKING:
    from re import Match

    from mistune import Markdown
    from mistune.block_parser import BlockParser
    from mistune.core import BlockState, InlineState
    from mistune.inline_parser import InlineParser

#: Class of every formula's wrapper; the reply's root also gets :data:`IGNORE_CLASSES`.
MATH_CLASS = "snb-math"
#: MathJax 2 (nbconvert's page) and MathJax 3/4 (JupyterLab) names for "not here" and "here".
IGNORE_CLASSES, PROCESS_CLASSES = "tex2jax_ignore mathjax_ignore", "tex2jax_process mathjax_process"

_LONGEST = 4000  # characters of TeX; longer is shown as text (conversion time grows with it)
# Commands that reach outside the formula in MathJax or other typesetters: never typeset.
_REFUSED = re.compile(
    r"\\(?:href|url|require|class|cssId|style|html|data|unicode|includegraphics|input|include|"
    r"def|newcommand|renewcommand|let|mmlToken|texttip|toggle|raw)(?![a-zA-Z])"
)

_MATHML_ELEMENTS = frozenset(
    [
        "math",
        "semantics",
        "mrow",
        "mi",
        "mn",
        "mo",
        "ms",
        "mtext",
        "mspace",
        "msub",
        "msup",
        "msubsup",
        "munder",
        "mover",
        "munderover",
        "mfrac",
        "msqrt",
        "mroot",
        "mstyle",
        "mpadded",
        "mphantom",
        "menclose",
        "merror",
        "mtable",
        "mtr",
        "mtd",
        "mlabeledtr",
        "mmultiscripts",
        "mprescripts",
        "none",
        "mfenced",
    ]
)
_MATHML_ATTRIBUTES = frozenset(
    [
        "display",
        "mathvariant",
        "stretchy",
        "fence",
        "separator",
        "accent",
        "accentunder",
        "movablelimits",
        "largeop",
        "symmetric",
        "minsize",
        "maxsize",
        "lspace",
        "rspace",
        "width",
        "height",
        "depth",
        "linethickness",
        "scriptlevel",
        "displaystyle",
        "columnalign",
        "rowalign",
        "columnspacing",
        "rowspacing",
        "columnlines",
        "rowlines",
        "frame",
        "framespacing",
        "equalrows",
        "equalcolumns",
        "notation",
        "open",
        "close",
        "separators",
        "form",
        "columnspan",
        "rowspan",
        "voffset",
        "mathsize",
    ]
)

# Inline: $$...$$ and \[...\] (displayed), \(...\) and $...$ (in the line). No blank line inside.
_NO_BLANK = r"(?:[^\n]|\n(?![ \t]*\n))"
INLINE_MATH = (
    r"\$\$(?P<math_dollars>(?:\\.|[^$\\])+?)\$\$"
    rf"|\\\[(?P<math_brackets>{_NO_BLANK}+?)\\\]"
    rf"|\\\((?P<math_parens>{_NO_BLANK}+?)\\\)"
    r"|\$(?![\s$])(?P<math_dollar>(?:\\.|[^$\\\n])+?)(?<![\s\\])\$(?!\d)"
)
# Displayed formulas that stand as blocks of their own (lines starting with $$ or \[).
BLOCK_MATH = (
    r"^ {0,3}\$\$[ \t]*\n(?P<block_dollars>[\s\S]*?)\n {0,3}\$\$[ \t]*(?:\n|$)"
    r"|^ {0,3}\\\[[ \t]*\n?(?P<block_brackets>[\s\S]*?)\n? {0,3}\\\][ \t]*(?:\n|$)"
)


def typesettable(tex: str) -> bool:
    """Whether ``tex`` may be typeset (short enough, nothing that loads or links)."""
    return bool(tex.strip()) and len(tex) <= _LONGEST and not _REFUSED.search(tex)


@functools.lru_cache(maxsize=512)
def tex_to_mathml(tex: str, display: bool = False) -> str | None:
    """MathML for ``tex`` (elements and attributes allow-listed, text escaped), or ``None``."""
    if not typesettable(tex):
        return None
    from latex2mathml.converter import convert_to_element

    try:
        root = convert_to_element(tex.strip(), display="block" if display else "inline")
    except Exception:  # any TeX it cannot read: shown as text instead
        return None
    return _serialize(root)


def _serialize(element: Element) -> str:
    tag = element.tag.rsplit("}", 1)[-1]
    if tag not in _MATHML_ELEMENTS:
        tag = "mrow"  # its content still shows, the unknown element does not
    attributes = "".join(
        f' {name}="{html.escape(str(value))}"'
        for name, value in sorted(element.attrib.items())
        if name in _MATHML_ATTRIBUTES
    )
    if tag == "math":
        attributes = ' xmlns="http://www.w3.org/1998/Math/MathML"' + attributes
    inner = _text(element.text)
    for child in element:
        inner += _serialize(child) + _text(child.tail)
    return f"<{tag}{attributes}>{inner}</{tag}>"


def _text(text: str | None) -> str:
    # latex2mathml keeps symbols as character references (``&#x0003D;``) in its element text
    return html.escape(html.unescape(text or ""), quote=False)


def math_html(tex: str, display: bool) -> str | None:
    """A formula's HTML: its MathML in a wrapper whose title is the TeX (``None``: not math)."""
    mathml = tex_to_mathml(tex, display)
    if mathml is None:
        return None
    title = html.escape(tex.strip())
    if display:  # a block-level span: valid inside the paragraph an inline $$ sits in
        style = "display:block;overflow-x:auto;margin:.5em 0;text-align:center"
        attributes = f'class="{MATH_CLASS} snb-math-display" title="{title}" style="{style}"'
        return f"<span {attributes}>{mathml}</span>"
    return f'<span class="{MATH_CLASS}" title="{title}">{mathml}</span>'


_RENDERED = re.compile(
    rf'<span class="{MATH_CLASS}( snb-math-display)?" title="([^"]*)"( style="[^"]*")?>'
    r"<math\b.*?</math></span>",
    re.S,
)


def for_page_typesetter(page: str) -> str:
    """``page`` (HTML from :func:`math_html`) with each formula as delimited TeX for the
    page's MathJax (``\\(...\\)`` or ``\\[...\\]``, marked ``mathjax_process``)."""

    def tex(match: Match[str]) -> str:
        display, title, style = match[1] or "", match[2], match[3] or ""
        opening, closing = ("\\[", "\\]") if display else ("\\(", "\\)")
        # the title is escaped attribute text: valid as element text too
        return (
            f'<span class="{MATH_CLASS}{display} {PROCESS_CLASSES}" title="{title}"{style}>'
            f"{opening}{title}{closing}</span>"
        )

    return _RENDERED.sub(tex, page)


# -- the mistune plugin -------------------------------------------------------------------------


def _parse_inline(inline: InlineParser, match: Match[str], state: InlineState) -> int | None:
    display = match["math_dollars"] is not None or match["math_brackets"] is not None
    tex = next(t for t in match.group(*_INLINE_GROUPS) if t is not None)
    if not typesettable(tex):
        return None  # the delimiter is shown as text
    state.append_token({"type": "block_math" if display else "inline_math", "raw": tex})
    return match.end()


_INLINE_GROUPS = ("math_dollars", "math_brackets", "math_parens", "math_dollar")


def _parse_block(block: BlockParser, match: Match[str], state: BlockState) -> int | None:
    tex = match["block_dollars"] if match["block_dollars"] is not None else match["block_brackets"]
    if not typesettable(tex):
        return None
    state.append_token({"type": "math_paragraph", "raw": tex})
    return match.end()


def math_plugin(md: Markdown) -> None:
    """Find formulas (see the module docstring); the renderer decides what they become.

    Tokens: ``inline_math`` and ``block_math`` (a displayed formula inside a paragraph) and
    ``math_paragraph`` (a displayed formula on lines of its own), each with the TeX as ``raw``.
    """
    md.block.register("math_paragraph", BLOCK_MATH, _parse_block, before="list")
    # before "escape": \( and \[ would otherwise be read as escaped brackets
    md.inline.register("inline_math", INLINE_MATH, _parse_inline, before="escape")


def render_inline_math(renderer: Any, tex: str) -> str:
    return math_html(tex, display=False) or renderer.text(f"${tex}$")


def render_block_math(renderer: Any, tex: str) -> str:
    return math_html(tex, display=True) or renderer.text(f"$${tex}$$")


def render_math_paragraph(renderer: Any, tex: str) -> str:
    return f"<p>{render_block_math(renderer, tex)}</p>\n"
