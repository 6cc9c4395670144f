"""A code block from a reply as HTML: highlighted, in a box naming its language, with Copy.

Highlighting is Pygments', by the fence's language (``python``, ``sh``, ...); a fence without one
gets a guess from a few plain cues (:func:`guess_language`), and plain text when the cues do not
agree. Tokens get one-letter classes; :data:`CODE_CSS` colours them with JupyterLab's own syntax
colours (its ``--jp-mirror-editor-*`` CSS variables, so light or dark as the theme is), with the
light theme's values as fallbacks. Classes rather than inline styles: a reply with code would
otherwise grow several times over, live and saved. The widget front end brings the stylesheet;
a saved copy carries it once (:func:`with_code_style`).

The Copy button copies the ``<code>`` element's text, which is exactly the code (tokens are
only wrapped, never changed; no line numbers, no prompts). It starts hidden (``display:none``)
and is shown by the widget front end's stylesheet, which also handles its clicks
(``code_copy.js``): a saved copy viewed where none of our code runs shows no dead button.
"""

from __future__ import annotations

import functools
import html
import json
import re

from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.token import (
    Comment,
    Error,
    Generic,
    Keyword,
    Name,
    Number,
    Operator,
    String,
    Token,
    _TokenType,
)
from pygments.util import ClassNotFound

#: The class of the box around a code block, of its language label and of its Copy button.
CODE_CLASS, LANGUAGE_CLASS, COPY_CLASS = "snb-code", "snb-code-language", "snb-copy"

# Pygments token types -> a short class (a token takes its nearest listed ancestor's; text,
# punctuation and plain names get none) -> JupyterLab's editor colour (light theme fallback).
_CLASSES: dict[_TokenType, str] = {
    Keyword: "k",
    Keyword.Type: "b",
    Operator: "o",
    Operator.Word: "k",
    Name.Builtin: "b",
    Name.Exception: "b",
    Name.Function: "f",
    Name.Class: "f",
    Name.Decorator: "m",
    Name.Tag: "t",
    Name.Attribute: "a",
    Name.Variable: "v",
    Name.Constant: "c",
    Name.Property: "p",
    String: "s",
    String.Escape: "e",
    String.Interpol: "e",
    String.Regex: "e",
    Number: "n",
    Comment: "x",
    Comment.Preproc: "m",
    Generic.Heading: "h",
    Generic.Subheading: "h",
    Generic.Deleted: "d",
    Generic.Inserted: "i",
    Generic.Error: "d",
    Generic.Traceback: "d",
    Generic.Prompt: "m",
    Generic.Output: "x",
    Error: "d",
}
_COLOURS = {
    "k": ("keyword", "#008000", ";font-weight:bold"),
    "b": ("builtin", "#008000", ""),
    "o": ("operator", "#7800c2", ""),
    "f": ("def", "#0000ff", ""),
    "m": ("meta", "#aa22ff", ""),
    "t": ("tag", "#117700", ""),
    "a": ("attribute", "#0000cc", ""),
    "v": ("variable-2", "#00366d", ""),
    "c": ("atom", "#8888ff", ""),
    "p": ("property", "#0055aa", ""),
    "s": ("string", "#ba2121", ""),
    "e": ("string-2", "#770088", ""),
    "n": ("number", "#008800", ""),
    "x": ("comment", "#408080", ";font-style:italic"),
    "h": ("header", "#0000ff", ";font-weight:bold"),
    "d": ("error", "#ff0000", ""),
    "i": ("quote", "#009900", ""),
}

#: The code box's stylesheet: in the widget front end, and once in a saved copy that has code.
#: ``.snb-code.snb-code pre`` outranks JupyterLab's own
#: ``.jp-ThemedContainer .jp-RenderedHTMLCommon pre`` (padding, background).
CODE_CSS = (
    f"div.{CODE_CLASS}{{margin:.5em 0;border:1px solid var(--jp-border-color2,#e0e0e0);"
    "border-radius:4px;overflow:hidden}"
    f"div.{CODE_CLASS}>div{{display:flex;justify-content:space-between;align-items:center;"
    "padding:.15em .6em;font-family:var(--jp-ui-font-family,sans-serif);font-size:.8em;"
    "color:var(--jp-ui-font-color2,#616161);background:var(--jp-layout-color2,#eee)}"
    f"div.{CODE_CLASS}.{CODE_CLASS} pre{{margin:0;padding:.5em .75em;overflow-x:auto;"
    "line-height:1.4;"
    "background:var(--jp-cell-editor-background,#f7f7f7);"
    "color:var(--jp-content-font-color1,#212121)}"
    f"div.{CODE_CLASS}.{CODE_CLASS} pre code{{background:none;padding:0;border:0}}"
    f".{COPY_CLASS}{{font:inherit;cursor:pointer;padding:0 .5em;border-radius:3px;color:inherit;"
    "background:transparent;border:1px solid var(--jp-border-color1,#bdbdbd)}"
    + "".join(
        f"div.{CODE_CLASS} .{key}{{color:var(--jp-mirror-editor-{name}-color,{fallback}){extra}}}"
        for key, (name, fallback, extra) in _COLOURS.items()
    )
)
#: Only the widget front end shows the Copy button (its clicks: ``code_copy.js``); a saved copy
#: keeps it hidden, so that where none of our code runs no button does nothing.
COPY_BUTTON_CSS = (
    f".{COPY_CLASS}{{display:inline-block!important}}"
    f".{COPY_CLASS}:hover{{background:var(--jp-layout-color3,#e0e0e0)!important}}"
)

# Fence names that are not Pygments aliases, as models write them.
_ALIASES = {"shell": "bash", "sh": "bash", "zsh": "bash", "console": "console", "py": "python"}
_PLAIN = {"", "text", "plain", "plaintext", "txt", "output"}

# Cues for a fence without a language: (language, pattern that must match at least one line).
# A guess stands when exactly one language has cues; anything else is shown as plain text.
_CUES: list[tuple[str, re.Pattern[str]]] = [
    (
        "python",
        re.compile(
            r"^\s*(?:def \w+\(.*\)\s*(?:->.*)?:|class \w+.*:|import \w+|from [\w.]+ import |"
            r"print\(|if __name__ == )",
            re.M,
        ),
    ),
    (
        "bash",
        re.compile(
            r"^\s*(?:\$ |pip3? install |apt(?:-get)? |sudo |cd |export \w+=|echo |curl |"
            r"git \w|npm \w|conda \w|make\b|ls\b|mkdir )",
            re.M,
        ),
    ),
    (
        "sql",
        re.compile(
            r"^\s*(?:SELECT|INSERT INTO|UPDATE \w+ SET|CREATE TABLE|DELETE FROM)\b", re.M | re.I
        ),
    ),
    (
        "javascript",
        re.compile(r"^\s*(?:const |let |function \w+\(|console\.log\(|export default )", re.M),
    ),
    ("html", re.compile(r"^\s*<(?:!DOCTYPE|html|div|p|span|body|head|script)\b", re.M | re.I)),
]


def guess_language(code: str) -> str | None:
    """A language for a code block without one, or ``None`` when unsure (shown as plain text).

    Example::

        guess_language("import os\\nprint(os.sep)")  # -> "python"
        guess_language("It was a dark night.")       # -> None
    """
    stripped = code.strip()
    if stripped[:1] in "{[" and stripped[-1:] in "}]":
        try:
            json.loads(stripped)
        except ValueError:
            pass
        else:
            return "json"
    found = {language for language, cue in _CUES if cue.search(code)}
    return found.pop() if len(found) == 1 else None


@functools.lru_cache(maxsize=64)
def _lexer(language: str) -> Lexer | None:
    name = _ALIASES.get(language, language)
    try:
        # no stripping or added newline: the tokens must join up to exactly the code
        return get_lexer_by_name(name, stripnl=False, stripall=False, ensurenl=False, tabsize=0)
    except ClassNotFound:
        return None


@functools.lru_cache(maxsize=256)
def _class(token: _TokenType) -> str:
    while token is not Token:
        if token in _CLASSES:
            return _CLASSES[token]
        token = token.parent
    return ""


def highlighted(code: str, language: str | None) -> str:
    """``code`` as HTML, its tokens in classed spans for ``language`` (escaped; plain when
    the language is unknown)."""
    lexer = _lexer(language.lower()) if language else None
    if lexer is None:
        return html.escape(code, quote=False)
    parts: list[str] = []
    run_class, run = "", ""
    # lexers read a comment or a string on the last line to its newline: give them one
    for token, value in lexer.get_tokens(code + "\n"):
        name = _class(token) if value.strip() else run_class  # spaces join the run around them
        if name != run_class and run:
            parts.append(_span(run_class, run))
            run = ""
        run_class, run = name, run + value
    run = run.removesuffix("\n")
    if run:
        parts.append(_span(run_class, run))
    return "".join(parts)


def _span(name: str, text: str) -> str:
    escaped = html.escape(text, quote=False)
    return f'<span class="{name}">{escaped}</span>' if name else escaped


def code_block_html(code: str, info: str | None, *, guess: bool = True) -> str:
    """The box for one fenced code block: language label, Copy button, highlighted code.

    :param code: The code, as the fence holds it (one final newline is not shown).
    :param info: The fence's info string (its first word names the language), or ``None``.
    :param guess: Guess a language when the fence names none. ``False`` for a block that is
        still growing, whose guess could change with every line (it is guessed once complete).
    """
    code = code.removesuffix("\n")
    named = (info or "").split(maxsplit=1)[0].lower() if (info or "").strip() else ""
    if named:
        language = None if named in _PLAIN else named
    else:
        language = guess_language(code) if guess else None
    label = language or named or "text"
    body = highlighted(code, language)
    css_class = f' class="language-{html.escape(language)}"' if language else ""
    return (
        f'<div class="{CODE_CLASS}"><div><span class="{LANGUAGE_CLASS}">{html.escape(label)}</span>'
        f'<button type="button" class="{COPY_CLASS}" title="Copy the code" style="display:none">'
        f"Copy</button></div><pre><code{css_class}>{body}</code></pre></div>\n"
    )


def with_code_style(page: str) -> str:
    """``page`` with the code box's stylesheet in front when it shows a code box (a saved copy
    has no widget front end to bring the stylesheet)."""
    return f"<style>{CODE_CSS}</style>{page}" if f'class="{CODE_CLASS}"' in page else page
