"""The browser tests' own guard: a request from the page to elsewhere is blocked and recorded."""

from __future__ import annotations

import pytest

from .lab_page import BrowserPage

pytestmark = pytest.mark.browser


def test_a_request_to_elsewhere_is_blocked_and_recorded(browser_page: BrowserPage) -> None:
    before = len(browser_page.blocked)
    outcome = browser_page.page.evaluate(
        """async () => {
          try { await fetch('https://example.org/feed.xml'); return 'reached'; }
          catch (error) { return 'blocked'; }
        }"""
    )
    assert outcome == "blocked"
    assert browser_page.blocked[before:] == ["https://example.org/feed.xml"]
    del browser_page.blocked[before:]  # this one was on purpose: the fixture must not fail
