"""A streamed reply with a Python block, a shell block, a table and two formulas, in JupyterLab:
code highlighted while it grows, Copy buttons that put exactly the code on the clipboard, formulas
typeset (live as MathML, in the saved copy by JupyterLab's own MathJax), prices left as text;
live, saved, after a reload, in the light and the dark theme.

The kernel streams the reply in two parts and waits for a file between them and before the end,
so the test looks at a block that is still growing and at the finished live view at moments it
chooses (no timing to hope for).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page

from .lab_page import BrowserPage, NotebookPage, menu, write_notebook

pytestmark = pytest.mark.browser

NAME = "browser_code_and_math.ipynb"
PYTHON = 'def area(r):\n    """A circle\'s area."""\n    return 3.14159 * r ** 2'
SHELL = "pip install stackit-nb  # the package"
PART1 = "Here is the plan. It costs $5 and $10 a month.\n\n```python\ndef area(r):\n"
PART2 = (
    PYTHON.split("\n", 1)[1] + "\n```\n\nInstall it:\n\n```sh\n" + SHELL + "\n```\n\n"
    "| name | value |\n|------|-------|\n| a | 1 |\n\n"
    "Energy is $E = mc^2$ and\n\n$$\n\\int_0^1 x^2\\,dx = \\frac{1}{3}\n$$\n"
)
LIGHT_KEYWORD, DARK_KEYWORD = "rgb(0, 128, 0)", "rgb(76, 175, 80)"  # JupyterLab's own colours


def cells(root: Path) -> list[str]:
    return [
        "import pathlib, time\n"
        "from haystack.dataclasses import StreamingChunk\n"
        "from stackit_nb.widgets import StreamingDisplay\n"
        f"ROOT = pathlib.Path({str(root)!r})\n"
        "def wait_for(name):\n"
        "    path, deadline = ROOT / name, time.monotonic() + 90\n"
        "    while not path.exists():\n"
        "        assert time.monotonic() < deadline, f'{name} never came'\n"
        "        time.sleep(0.05)",
        "d = StreamingDisplay()\n"
        'meta = {"model": "m"}\n'
        "def send(text):\n"
        "    for i in range(0, len(text), 12):\n"
        "        d(StreamingChunk(content=text[i:i + 12], meta=meta, index=0))\n"
        "        time.sleep(0.01)\n"
        f"send({PART1!r})\n"
        'wait_for("go1")\n'
        f"send({PART2!r})\n"
        'wait_for("go2")\n'
        'd(StreamingChunk(content="", meta=meta, finish_reason="stop"))\n'
        'usage = {"prompt_tokens": 9, "completion_tokens": 99}\n'
        'd(StreamingChunk(content="", meta={**meta, "usage": usage}))',
    ]


def copied(page: Page, reply: str, index: int) -> str:
    """Click the Copy button of code box ``index`` in ``reply`` (a selector); the clipboard."""
    page.evaluate("() => navigator.clipboard.writeText('')")
    button = page.locator(f"{reply} .snb-code .snb-copy").nth(index)
    assert button.is_visible()
    button.click()
    page.wait_for_function(
        "b => b.textContent === 'Copied'", arg=button.element_handle(), timeout=5_000
    )
    return str(page.evaluate("() => navigator.clipboard.readText()"))


def keyword_colour(page: Page, reply: str) -> str:
    return str(
        page.locator(f"{reply} .snb-code pre code span.k").first.evaluate(
            "el => getComputedStyle(el).color"
        )
    )


def check_saved(notebook: NotebookPage, saved: str) -> None:
    """The saved copy: code highlighted, formulas typeset by the page's MathJax, prices text."""
    page = notebook.page
    page.wait_for_function(
        f"() => document.querySelectorAll('{saved} .snb-math mjx-container').length === 2",
        timeout=20_000,
    )
    assert page.locator(f"{saved} mjx-container").count() == 2  # "$5 and $10" is not math
    assert "It costs $5 and $10 a month." in (page.locator(saved).inner_text())
    languages = page.locator(f"{saved} .snb-code-language").all_inner_texts()
    assert languages == ["python", "sh"]
    assert copied(page, saved, 0) == PYTHON
    assert copied(page, saved, 1) == SHELL


def use_theme(page: Page, theme: str) -> None:
    menu(page, "Settings", "Theme")
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(theme)}$")).click()
    light = "true" if "Light" in theme else "false"
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'")
    page.locator("#jupyterlab-splash").wait_for(state="detached")  # the theme's fade-over


def test_code_and_math_live_saved_and_after_reload(browser_page: BrowserPage) -> None:
    page = browser_page.page
    root = browser_page.lab.root
    for name in ("go1", "go2"):
        (root / name).unlink(missing_ok=True)
    page.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=browser_page.lab.url
    )
    path = write_notebook(root / NAME, cells(root))
    notebook = browser_page.open(NAME)
    try:
        notebook.run_cell(0)
        notebook.run_cell(1, wait=False)
        live = ".snb-live"
        # a code block that is still growing is highlighted already
        page.wait_for_function(
            f"() => document.querySelector('{live} .snb-code pre code span.k')?.textContent"
            " === 'def '",
            timeout=30_000,
        )
        assert page.locator(f"{live} table").count() == 0  # the rest has not come yet
        browser_page.screenshot("code_and_math-growing")
        (root / "go1").touch()
        page.wait_for_function(
            f"() => document.querySelectorAll('{live} .snb-math math').length === 2"
            f" && !!document.querySelector('{live} table')",
            timeout=30_000,
        )
        assert page.locator(f"{live} .snb-code-language").all_inner_texts() == ["python", "sh"]
        assert copied(page, live, 0) == PYTHON and copied(page, live, 1) == SHELL
        assert "It costs $5 and $10 a month." in page.locator(live).inner_text()
        assert keyword_colour(page, live) == LIGHT_KEYWORD
        # typeset: the fraction's numerator is drawn above its denominator, not beside it
        stacked = page.locator(f"{live} .snb-math-display mfrac").evaluate(
            "f => f.children[0].getBoundingClientRect().bottom"
            " <= f.children[1].getBoundingClientRect().top + 1"
        )
        assert stacked
        page.locator(f"{live} .snb-math-display").scroll_into_view_if_needed()
        browser_page.screenshot("code_and_math-live")
        (root / "go2").touch()
        notebook.wait_until_ran(1, "[*]:", timeout=30)
        saved = ".jp-OutputArea .snb-reply:not(.snb-live)"
        notebook.output(1).locator(".snb-reply:not(.snb-live) .snb-footer").wait_for()
        check_saved(notebook, saved)
        assert keyword_colour(page, saved) == LIGHT_KEYWORD
        page.locator(f"{saved} .snb-math-display").scroll_into_view_if_needed()
        browser_page.screenshot("code_and_math-saved")

        # saved and reopened: the copy from the file, with its code, formulas and Copy buttons
        notebook = browser_page.save_and_reopen(notebook, path)
        check_saved(notebook, saved)
        assert keyword_colour(page, saved) == LIGHT_KEYWORD
        page.locator(f"{saved} .snb-math-display").scroll_into_view_if_needed()
        browser_page.screenshot("code_and_math-after-reload")
        use_theme(page, "JupyterLab Dark")
        assert keyword_colour(page, saved) == DARK_KEYWORD
        page.locator(f"{saved} .snb-math-display").scroll_into_view_if_needed()
        browser_page.screenshot("code_and_math-after-reload-dark")
    finally:
        for name in ("go1", "go2"):
            (root / name).unlink(missing_ok=True)
        if page.evaluate("() => document.body.dataset.jpThemeLight") == "false":
            use_theme(page, "JupyterLab Light")
