"""Code and math in replies: highlighted code with a Copy button, typeset formulas, prices left
alone, and a saved copy with a Markdown form as harmless as its HTML.
(The browser side: tests/browser/test_browser_code_and_math.py.)"""

from __future__ import annotations

import html
import io
import json
import re

import mistune
import pytest
from haystack.dataclasses import ChatMessage, StreamingChunk

from stackit_nb.widgets import StreamingDisplay
from stackit_nb.widgets._code_highlight import guess_language
from stackit_nb.widgets._history_html import message_html
from stackit_nb.widgets._markdown import Reply
from stackit_nb.widgets._safe_markdown import markdown_copy, render_markdown
from stackit_nb.widgets._typeset_math import tex_to_mathml

TRICKY = "def f(a, b):\n\treturn a < b & True  # `x` \\n\n\n  s = '<script>'   \n"
LEAK = "http://127.0.0.1:9/p.png?leak=SECRET"


def code_text(page: str) -> list[str]:
    """What a browser's ``code.textContent`` gives for each code box (tags out, text unescaped)."""
    blocks = re.findall(r'<div class="snb-code">.*?<code[^>]*>(.*?)</code>', page, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", block)) for block in blocks]


def test_code_is_highlighted_and_its_text_is_exactly_the_code() -> None:
    page = render_markdown(f"```python\n{TRICKY}```\n")
    assert code_text(page) == [TRICKY.removesuffix("\n")]
    assert '<span class="snb-code-language">python</span>' in page
    assert '<span class="k">def </span>' in page and '<span class="x"># `x` \\n' in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'class="snb-copy"' in page and 'style="display:none"' in page  # shown by the widget


@pytest.mark.parametrize(
    ("fence", "label", "styled"),
    [
        ("sh", "sh", True),
        ("bash", "bash", True),
        ("text", "text", False),
        ("klingon", "klingon", False),
    ],
)
def test_fence_language_names_the_box(fence: str, label: str, styled: bool) -> None:
    page = render_markdown(f"```{fence}\npip install x  # note\n```")
    assert f'<span class="snb-code-language">{label}</span>' in page
    assert ('<span class="x"># note</span>' in page) is styled
    assert code_text(page) == ["pip install x  # note"]


def test_a_fence_without_language_is_guessed_only_when_sure() -> None:
    assert guess_language("import os\nprint(os.sep)") == "python"
    assert guess_language('{"a": [1, 2]}') == "json"
    assert guess_language("pip install stackit-nb\ncd notebooks") == "bash"
    assert guess_language("The river flows. It is wide.") is None
    assert guess_language("import os\n$ ls") is None  # cues disagree: plain
    assert '<span class="snb-code-language">python</span>' in render_markdown("```\nimport os\n```")
    plain = render_markdown("```\nThe river flows.\n```")
    assert (
        '<span class="snb-code-language">text</span>' in plain
        and "<span class=" not in (plain.split("<code")[1])
    )


def test_a_growing_block_is_highlighted_as_it_grows_in_small_diffs() -> None:
    reply = Reply(started=0.0)
    text = "Here:\n\n```python\n" + "".join(
        f"def f{i}(x):\n    return x + {i}\n" for i in range(30)
    )
    appended: list[str] = []
    for start in range(0, len(text), 40):
        reply.add(StreamingChunk(content=text[start : start + 40], meta={"model": "m"}), 1.0)
        appended += [op[3] for op in reply.ops(final=False) if op[0] == "b"]
    assert '<span class="k">def </span><span class="f">f29</span>' in "".join(appended)
    # each update sends about what arrived, not the block again
    assert max(len(a) for a in appended[3:]) < 400, [len(a) for a in appended]
    # a fence without a language is not guessed while it grows (the guess could flip)
    growing = Reply(started=0.0)
    growing.add(StreamingChunk(content="```\nimport os\nprint(1)\n", meta={}), 1.0)
    live = "".join(op[3] for op in growing.ops(final=False) if op[0] == "b")
    assert '<span class="snb-code-language">text</span>' in live


@pytest.mark.parametrize(
    ("markdown", "formulas"),
    [
        ("Energy: $E = mc^2$.", ["E = mc^2"]),
        ("A \\(a^2+b^2=c^2\\) and \\[\\int_0^1 x\\,dx\\]", ["a^2+b^2=c^2", "\\int_0^1 x\\,dx"]),
        ("$$\n\\frac{1}{2}\n$$", ["\\frac{1}{2}"]),
        ("In a line $$\\sum_i i$$ too", ["\\sum_i i"]),
        ("It costs $5 and $10.", []),
        ("From $5-$10 a month, $20,000 a year", []),
        ("`$x$` is code", []),
        ("$x$", ["x"]),
        ("Half done $E = mc", []),  # typeset once the closing $ arrives
    ],
)
def test_math_is_typeset_and_money_is_not(markdown: str, formulas: list[str]) -> None:
    page = render_markdown(markdown)
    titles = [html.unescape(t) for t in re.findall(r'class="snb-math[^"]*" title="([^"]*)"', page)]
    assert titles == formulas, page
    assert page.count("<math ") == len(formulas)


def test_tex_that_could_load_or_link_stays_text() -> None:
    for tex in ("\\href{javascript:alert(1)}{x}", "\\require{mhchem}", "\\style{color:red}{x}"):
        assert tex_to_mathml(tex) is None
        assert "<math" not in render_markdown(f"see ${tex}$")
    mathml = tex_to_mathml("\\text{<img src=x onerror=alert(1)>} < 1")
    assert mathml is not None and "<img" not in mathml and "&lt;img" in mathml


def finished_reply(text: str) -> Reply:
    reply = Reply(started=0.0)
    reply.add(StreamingChunk(content=text, meta={"model": "m"}), 1.0)
    reply.add(StreamingChunk(content="", meta={"model": "m"}, finish_reason="stop"), 2.0)
    reply.close()
    return reply


SAMPLE = (
    "# Result\n\nIt costs $5 and $10. Energy is $E = mc^2$ and\n\n$$\n\\int_0^1 x^2\\,dx = "
    "\\frac{1}{3}\n$$\n\n```python\nprint('hi')\n```\n\n```sh\npip install x\n```\n\n"
    "| a | b |\n|---|---|\n| 1 | $x$ |\n\n"
    f"![chart]({LEAK}) <script>alert(1)</script> [link](javascript:alert(1))"
)


def test_saved_copy_hands_math_to_the_page_and_keeps_a_markdown_form() -> None:
    bundle = finished_reply(SAMPLE).static_bundle()
    page, markdown = bundle["text/html"], bundle["text/markdown"]
    assert page.startswith("<style>div.snb-code{")  # the code box's colours travel with it
    assert '<div class="snb-reply tex2jax_ignore mathjax_ignore">' in page  # prices stay text
    assert "\\(E = mc^2\\)</span>" in page and "mathjax_process" in page
    assert "\\[\\int_0^1 x^2\\,dx = \\frac{1}{3}\\]</span>" in page and "<math" not in page
    assert "<script" not in page
    # the Markdown form: fences with their language, $ formulas, prices escaped, nothing loads
    assert "```python\nprint('hi')\n```" in markdown and "```sh\npip install x\n```" in markdown
    assert "$E = mc^2$" in markdown and "$$\n\\int_0^1 x^2\\,dx = \\frac{1}{3}\n$$" in markdown
    assert "costs &#36;5 and &#36;10" in markdown
    assert "| 1 | $x$ |" in markdown
    assert markdown.endswith("*m · 1 chunk of text · finish: stop*\n")  # facts, no timings
    rendered = mistune.create_markdown(escape=False, plugins=["table"])(markdown)
    assert "<img" not in rendered and "<script" not in rendered
    assert "javascript:" not in rendered and f'href="{LEAK}"' in rendered


@pytest.mark.parametrize(
    "hostile",
    [
        f"![x]({LEAK})",
        f"\\![x]({LEAK})",  # an escaped ! must not come back as an image
        f"\\[x\\]({LEAK})",
        "<img src=x onerror=alert(1)>",
        "\\<img src=x onerror=alert(1)>",
        "[a](javascript:alert(1)) [b][r]\n\n[r]: javascript:alert(2)",
        f"![x][r]\n\n[r]: {LEAK}",
        "`code` and &lt;b&gt; and &amp; and \\&lt;i>",
        "- item <b>x</b>\n\n> quote ![q](//host/q.png)",
    ],
)
def test_the_markdown_form_loads_nothing_and_shows_no_html(hostile: str) -> None:
    rendered = mistune.create_markdown(escape=False, plugins=["table"])(markdown_copy(hostile))
    assert re.findall(r"<img\b", rendered) == [], rendered
    assert not re.search(r"<(?:b|i|script)\b", rendered), rendered
    assert "javascript:" not in rendered


def test_chat_history_and_terminal() -> None:
    entry = message_html(ChatMessage.from_assistant("```python\nx = 1\n```\n\nso $a^2$"))
    assert '<span class="snb-code-language">python</span>' in entry and "<math " in entry
    out = io.StringIO()
    display = StreamingDisplay(out=out)
    for piece in ("```python\nx = 1\n```\n", "so $a^2$"):
        display(StreamingChunk(content=piece, meta={"model": "m"}))
    display(StreamingChunk(content="", meta={"model": "m"}, finish_reason="stop"))
    display.finish()
    printed = out.getvalue()
    assert printed.startswith("```python\nx = 1\n```\nso $a^2$") and "<" not in printed


def test_markdown_form_is_valid_json_in_the_saved_bundle() -> None:
    bundle = finished_reply("x " * 10).static_bundle()
    assert json.loads(json.dumps(bundle)) == bundle
    assert set(bundle) == {"text/html", "text/markdown", "text/plain"}
