"""A string that matches a (simple) regular expression, for JSON-schema ``pattern`` fields.

Covers what schemas use in practice: literals, character classes, repeats, groups, alternation
and anchors. Anything else (look-arounds, back-references) gives None and the caller falls back.
"""

from __future__ import annotations

import re
from typing import Any

try:  # the parser behind ``re``; public enough to be stable across 3.11+ releases
    import re._constants as _c
    import re._parser as _parser
except ImportError:  # pragma: no cover - other interpreters
    _parser = None  # type: ignore[assignment]

_PREFERRED = "a1A-_ .@"  # try these first for character classes, then scan
_MAX_LENGTH = 10_000  # a pattern that needs more ("a{1000000000}") gets None, not gigabytes


def _from_in(items: list[Any]) -> str | None:
    negate = any(op is _c.NEGATE for op, _ in items)
    allowed: list[str] = []
    ranges: list[tuple[int, int]] = []
    for op, arg in items:
        if op is _c.LITERAL:
            ranges.append((arg, arg))
        elif op is _c.RANGE:
            ranges.append(arg)
        elif op is _c.CATEGORY:
            allowed.extend(
                {
                    _c.CATEGORY_DIGIT: "1",
                    _c.CATEGORY_WORD: "a",
                    _c.CATEGORY_SPACE: " ",
                    _c.CATEGORY_NOT_DIGIT: "a",
                    _c.CATEGORY_NOT_WORD: "-",
                    _c.CATEGORY_NOT_SPACE: "a",
                }.get(arg, "")
            )

    def inside(ch: str) -> bool:
        code = ord(ch)
        hit = any(lo <= code <= hi for lo, hi in ranges) or ch in allowed
        return hit != negate

    for ch in _PREFERRED + "".join(chr(lo) for lo, _ in ranges):
        if inside(ch):
            return ch
    for code in range(32, 127):
        if inside(chr(code)):
            return chr(code)
    return None


def _sample(tree: Any) -> str | None:
    out: list[str] = []
    for op, arg in tree:
        if op is _c.LITERAL:
            out.append(chr(arg))
        elif op is _c.NOT_LITERAL:
            out.append("a" if chr(arg) != "a" else "b")
        elif op is _c.ANY:
            out.append("a")
        elif op is _c.IN:
            ch = _from_in(arg)
            if ch is None:
                return None
            out.append(ch)
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
            low, _high, sub = arg
            piece = _sample(sub)
            if piece is None or len(piece) * low > _MAX_LENGTH:
                return None
            out.append(piece * low)
        elif op is _c.SUBPATTERN:
            piece = _sample(arg[-1])
            if piece is None:
                return None
            out.append(piece)
        elif op is _c.BRANCH:
            piece = _sample(arg[1][0])
            if piece is None:
                return None
            out.append(piece)
        elif op is _c.AT:
            continue  # anchors match at the edges we produce anyway
        else:
            return None
    return "".join(out)


def sample(pattern: str) -> str | None:
    """A short string that ``re.search(pattern, ...)`` matches, or None when unsure."""
    if _parser is None:
        return None
    try:
        candidate = _sample(_parser.parse(pattern))
        return candidate if candidate is not None and re.search(pattern, candidate) else None
    except (re.error, TypeError, ValueError, RecursionError):
        return None
