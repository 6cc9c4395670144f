"""What a prompt asks of the form of a reply: counts, format, audience.

The scripted engine reads the system messages and the last user message alike (a system prompt
binds like a user instruction). Each rule below is one regular expression and the field it sets;
the spans they match are cut from the user text, so "Describe rivers in one sentence." leaves
"Describe rivers" for the topic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15,
    "twenty": 20, "couple": 2, "few": 3,
}  # fmt: skip
_N = r"(\d{1,3}|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")"
# Counts of list items: no articles ("an example" is not a list of one).
_COUNT = r"(\d{1,3}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty)"
_AT_MOST = (
    r"(at most|no more than|not more than|max(?:imum)?(?: of)?|up to|under|fewer than|less than|"
    r"within)?\s*"
)
_EXACTLY = r"(?:exactly\s+|just\s+|only\s+)?"

_SENTENCES = re.compile(
    rf"\b(?:in|with|using|as|write|give me|answer in)?\s*{_AT_MOST}{_EXACTLY}(?:a\s+)?{_N}"
    r"[\s-]+(?:short\s+|simple\s+|full\s+|complete\s+|brief\s+)?sentences?\b",
    re.IGNORECASE,
)
_WORDS = re.compile(
    rf"\b(?:in|with|using|answer in)?\s*{_AT_MOST}{_EXACTLY}{_N}[\s-]+words?\b"
    r"(?!\s+(?:about|on|of)\b)(?:\s+or\s+(?:less|fewer))?",
    re.IGNORECASE,
)
# "Write 600 tokens about rivers": a long text of an exact length.
_LENGTH = re.compile(
    r"\b(?:write|give|generate|produce|output|print|type|compose|create|return|say)\b"
    r"(?:\s+me)?(?:\s+(?:exactly|about|roughly|around))?\s+(\d[\d,_]*)\s*[- ]?(tokens?|words?)\b"
    r"(?:\s+(?:of\s+(?:text|prose)\s+)?(?:about|on|of)\b)?|\b(\d[\d,_]*)-(token|word)\b",
    re.IGNORECASE,
)
_ONE_WORD = re.compile(
    r"\b(?:in\s+)?(?:(?:a\s+)?single|one)[\s-]word(?:\s+answer)?(?:\s+only)?\b", re.IGNORECASE
)
_ITEMS = re.compile(
    rf"\b{_COUNT}\s+(?:short\s+|key\s+|main\s+|important\s+|fun\s+|quick\s+|good\s+|simple\s+)?"
    r"(items?|points?|bullet points?|bullets?|tips?|ideas?|examples?|reasons?|facts?|steps?|"
    r"ways?|things?|benefits?|advantages?|features?|questions?|names?|options?|uses?)\b",
    re.IGNORECASE,
)
_NUMBERED = re.compile(r"\bnumbered\b|\bstep[\s-]by[\s-]step\b|\bsteps\b", re.IGNORECASE)
_BULLETS = re.compile(
    r"\b(?:as\s+(?:a\s+)?)?(?:bullet(?:ed)?(?:\s+points?|\s+list)?|a\s+list|list\s+form)\b",
    re.IGNORECASE,
)
_LIST_VERB = re.compile(r"^\s*(?:please\s+)?(?:list|enumerate)\b", re.IGNORECASE)
_TABLE = re.compile(r"\b(?:as|in|into)\s+(?:a\s+)?(?:markdown\s+)?table\b|\btabulate\b", re.I)
_YES_NO = re.compile(r"\b(?:answer\s+)?(?:with\s+)?yes\s+or\s+no\b|\byes/no\b", re.IGNORECASE)
_JSON = re.compile(r"\b(?:as|in|into)\s+(?:a\s+|an\s+)?(?:valid\s+)?json(?:\s+object)?\b", re.I)
_CHILD = re.compile(
    r"\bfor\s+(?:an?\s+)?(?:\w+[\s-])?year[\s-]olds?\b|\b(?:\w+[\s-])?year[\s-]olds?\b|"
    r"\b(?:for|to)\s+(?:an?\s+)?(?:kids?|child|children|beginners?|small\s+children)\b|"
    r"\blike\s+i'?m\s+(?:five|5|a\s+child)\b|\beli5\b|\bsimple\s+words\b|\bfor\s+kids\b",
    re.IGNORECASE,
)
_BRIEF = re.compile(
    r"\b(?:briefly|brief|short(?:ly)?|concise(?:ly)?|in short|quick(?:ly)?)\b", re.IGNORECASE
)


def number(text: str) -> int:
    """``"3"`` or ``"three"`` as an int."""
    lowered = text.lower()
    return int(lowered) if lowered.isdigit() else _NUMBER_WORDS[lowered]


@dataclass
class Instructions:
    """The form a reply should take; None or False where the prompt does not say."""

    sentences: int | None = None
    at_most: bool = False  # "at most N sentences": fewer is fine
    max_words: int | None = None
    items: int | None = None
    list_style: str | None = None  # "bullets" | "numbered"
    table: bool = False
    one_word: bool = False
    yes_no: bool = False
    json: bool = False
    simple: bool = False  # a young or new audience: short words and sentences
    brief: bool = False
    length: int | None = None  # "write 600 tokens about ...": an exact length ...
    length_unit: str | None = None  # ... in "tokens" or "words"
    rest: str = ""  # the user text with the instruction spans cut out
    found: list[str] = field(default_factory=list)  # names of the rules that matched


def read(system: str, user: str) -> Instructions:
    """The instructions in ``system`` and ``user`` (user wins where both say something)."""
    result = Instructions()
    _apply(result, system)
    rest = _apply(result, user)
    result.rest = re.sub(r"\s{2,}", " ", rest).strip(" ,;:")
    return result


def _apply(result: Instructions, text: str) -> str:
    """Set the fields ``text`` asks for; return ``text`` without the matched spans."""

    def cut(pattern: re.Pattern[str], name: str) -> re.Match[str] | None:
        nonlocal text
        match = pattern.search(text)
        if match is not None:
            text = text[: match.start()] + " " + text[match.end() :]
            result.found.append(name)
        return match

    if (m := cut(_LENGTH, "length")) is not None:
        amount, unit = (m[1], m[2]) if m[1] else (m[3], m[4])
        result.length = int(re.sub(r"[,_]", "", amount))
        result.length_unit = "tokens" if unit.lower().startswith("token") else "words"
    if (m := cut(_SENTENCES, "sentences")) is not None:
        result.sentences, result.at_most = number(m[2]), bool(m[1])
    if (m := cut(_WORDS, "words")) is not None:
        count = number(m[2])
        if count == 1:
            result.one_word = True
        else:
            result.max_words = count  # a word count is always a ceiling
    elif cut(_ONE_WORD, "one word") is not None:
        result.one_word = True
    if (m := _ITEMS.search(text)) is not None and "sentence" not in m[2].lower():
        result.items = number(m[1])
        result.found.append("items")
        if m[2].lower().startswith("step"):
            result.list_style = "numbered"
        # The count goes, the noun stays: "3 tips for sleep" -> "tips for sleep".
        text = text[: m.start()] + text[m.start() + len(m[1]) :]
    if _NUMBERED.search(text) and (result.items or "list" in text.lower() or "steps" in text):
        result.list_style = "numbered"
    if cut(_BULLETS, "bullets") is not None or _LIST_VERB.search(text):
        result.list_style = result.list_style or "bullets"
    if cut(_TABLE, "table") is not None:
        result.table = True
    if cut(_YES_NO, "yes/no") is not None:
        result.yes_no = True
    if cut(_JSON, "json") is not None:
        result.json = True
    if (m := cut(_CHILD, "young audience")) is not None:
        result.simple = True
    if _BRIEF.search(text):
        result.brief = True
        text = _BRIEF.sub(" ", text)
    if result.items and result.list_style is None:
        result.list_style = "bullets"
    return text
