"""Text helpers for the scripted engine: words, key words, names, numbers, long prose, reasoning.

Everything here is a pure function of its arguments; variety comes from ``stable_pick``
(blake2b), never from ``random`` or ``hash()``, so the same request always gets the same reply,
across processes and machines.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator

from stackit_nb.local.tokens import split_tokens

_COMMON_TEXT = """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it its
    itself just let me more most my myself no nor not now of off on once only or other our ours out
    over own please s same she should so some such t than that the their theirs them then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves don doesn isn aren wasn
    weren won wouldn shouldn couldn ll re ve d m o y okay ok hi hello hey thanks thank"""
_INSTRUCTION_TEXT = """
    explain describe tell write give show list make create generate produce compose say answer
    briefly brief short shortly long simple simply quick quickly detail detailed details words word
    tokens token sentence sentences paragraph paragraphs essay text reply respond response using
    use maybe something anything thing things like know want need get got find help"""
#: Common English words: they never name a topic.
COMMON_WORDS = frozenset(_COMMON_TEXT.split())
#: Common words plus instruction words ("explain", "briefly"), for matching tools to prompts.
STOPWORDS = COMMON_WORDS | frozenset(_INSTRUCTION_TEXT.split())


_PLACE_AFTER = re.compile(
    r"\b(?:in|at|near|from|to|for|of|around|visit|visiting)\s+"
    r"((?:[A-Z][\w'.-]*)(?:\s+(?:[A-Z][\w'.-]*|de|del|la|le|am|an|upon))*)"
)
_CAPITALISED = re.compile(r"\b[A-Z][\w'.-]*(?:\s+[A-Z][\w'.-]*)*")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]*[A-Za-z])")


def stable_pick(count: int, *parts: object) -> int:
    """A deterministic index in ``range(count)`` from ``parts`` (blake2b, stable everywhere)."""
    key = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % max(count, 1)


def words(text: str) -> list[str]:
    """Lowercase words of ``text`` (apostrophes split: "what's" -> "what", "s")."""
    return [w.lower() for w in re.findall(r"[^\W_]+", text)]


def keywords(text: str) -> list[str]:
    """Words that carry the topic, lowercase, unique, in order ("rivers", "erosion")."""
    seen: dict[str, None] = {}
    for word in words(text):
        if word not in STOPWORDS and len(word) > 2 and not word.isdigit():
            seen.setdefault(word, None)
    return list(seen)


def key_phrase(text: str, limit: int = 4) -> str:
    """The prompt's topic in a few words ("rivers erosion valleys")."""
    return " ".join(keywords(text)[:limit])


def places(text: str) -> list[str]:
    """Capitalised names in ``text``, those after "in/at/from/to ..." first ("New York")."""
    found: dict[str, None] = {}
    for match in _PLACE_AFTER.finditer(text):
        found.setdefault(match.group(1).rstrip(".'"), None)
    for match in _CAPITALISED.finditer(text):
        name = match.group(0).rstrip(".'")
        first = name.split()[0].lower().split("'")[0]
        # Sentence-initial words ("What", "Tell") are capitalised without being names.
        if first in STOPWORDS or first in {"i", "is", "can", "could", "weather"}:
            name = " ".join(name.split()[1:])
        if name and name.lower() not in STOPWORDS:
            found.setdefault(name, None)
    return list(found)


def numbers(text: str) -> list[float]:
    """Numbers written in ``text``, in order (integers as ints)."""
    result: list[float] = []
    for match in _NUMBER.finditer(text.replace(",", "")):
        value = float(match.group(0))
        if not math.isfinite(value):  # hundreds of digits: no field can take it as a number
            continue
        result.append(int(value) if value.is_integer() else value)
    return result


def limit_words(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` words, ending with a full stop."""
    parts = text.split()
    if len(parts) <= limit:
        return text
    cut = " ".join(parts[: max(limit, 0)]).rstrip(",;:")
    return cut if not cut or cut.endswith((".", "!", "?")) else cut + "."


def stem(word: str) -> str:
    """Crude folding of plurals and verb forms: "cities" meets "city", "parked" meets "park"."""
    if len(word) > 6 and word.endswith("ing"):
        return _undouble(word[:-3])
    if len(word) > 5 and word.endswith("ed") and not word.endswith("eed"):
        return _undouble(word[:-2])
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "oes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _undouble(word: str) -> str:
    """``"resett"`` -> ``"reset"``: the doubled consonant of "resetting", "planned"."""
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        return word[:-1]
    return word


def sentences_of(text: str) -> list[str]:
    """``text`` split into sentences (at ``.``, ``!`` or ``?`` followed by a capital or digit)."""
    parts = re.split(r"(?<=[.!?])\s+(?=[\"'(A-Z0-9])", text.strip())
    return [p.strip() for p in parts if p.strip()]


# Sentences that are true of any subject a learner asks about: the subject stands where a noun
# phrase or a "how ..."-clause reads correctly ("... cover rivers", "... cover how tides work").
_GENERAL = (
    "Textbooks and encyclopedias cover {s} in more depth.",
    "A clear diagram often makes {s} easier to picture.",
    "Worked examples are a good way to get a feel for {s}.",
    "Teachers explain {s} in many different ways, and it helps to hear more than one.",
    "Writing down the key terms of {s}, with what each one means, is a good first step.",
    "Questions about {s} often lead to new and more precise questions.",
    "Comparing {s} with something familiar can make it clearer.",
    "Short notes and sketches help when you study {s}.",
    "Good sources on {s} say where their information comes from.",
    "Reading two explanations of {s} side by side shows what they agree on.",
    "A glossary helps with the vocabulary of {s}.",
    "Explaining {s} to someone else is a good test of how well you understand it.",
    "Museums, documentaries and field trips bring {s} to life.",
    "Small experiments or observations make {s} concrete.",
    "Specialists spend whole careers on details of {s}.",
    "It is worth checking facts about {s} in more than one source.",
)


def general_sentences(subject: str, variant: object) -> Iterator[str]:
    """An endless stream of general sentences about ``subject``, in a stable varied order."""
    start = stable_pick(len(_GENERAL), "general", subject, variant)
    i = 0
    while True:
        yield _GENERAL[(start + i) % len(_GENERAL)].format(s=subject)
        i += 1


# Short closing sentences of several lengths: a text of an exact length ends on a whole sentence.
_CLOSERS = (
    "Enough.",
    "That's all.",
    "That is all.",
    "That is all for now.",
    "And that is all for now.",
    "That is all there is for now.",
    "And that is all there is for now.",
    "That is all there is to say for now.",
)


def exact_length(sentences: Iterator[str], n: int, unit: str) -> str:
    """Whole ``sentences`` (and a closing sentence) making exactly ``n`` tokens or words.

    Sentences join with a space, and every sixth starts a new paragraph. A sentence that would
    leave a remainder no closing sentence fills is skipped for a later one; only when nothing
    fits does the text end mid-sentence, at exactly ``n``.
    """

    def size(piece: str) -> int:
        return len(split_tokens(piece)) if unit == "tokens" else len(piece.split())

    def prefix(position: int) -> str:
        return "" if position == 0 else ("\n\n" if position % 6 == 0 else " ")

    def closer(position: int, wanted: int) -> str | None:
        for text in _CLOSERS:
            if size(prefix(position) + text) == wanted:
                return prefix(position) + text
        return None

    largest_closer = max(size("\n\n" + c) for c in _CLOSERS)
    pieces: list[str] = []
    left = max(n, 0)
    misses = 0
    for attempt, sentence in enumerate(sentences):
        if left == 0 or attempt > n + 64:
            break
        piece = prefix(len(pieces)) + sentence
        k = size(piece)
        rest = left - k
        if k <= left and (rest == 0 or rest > largest_closer or closer(len(pieces) + 1, rest)):
            pieces.append(piece)
            left, misses = rest, 0
            continue
        misses += 1
        # A closing sentence only once the sentences on the subject have had their chance.
        if misses > 24 and (end := closer(len(pieces), left)) is not None:
            pieces.append(end)
            left = 0
    text = "".join(pieces)
    if left > 0:  # nothing fitted: end on exactly n, mid-sentence
        filler = "".join(prefix(i) + s for i, s in enumerate(_CLOSERS * (1 + n // 4)))
        text = text + (" " if text else "") + filler
    if unit == "tokens":
        return "".join(split_tokens(text)[:n])
    spans = list(re.finditer(r"\S+", text))
    return text[: spans[n - 1].end()] if n > 0 and len(spans) >= n else ""


def count_to(n_tokens: int) -> str:
    """ "1 2 3 ..." of exactly ``n_tokens`` tokens (one token a number up to 999)."""
    pieces: list[str] = []
    number = 1
    while len(pieces) < n_tokens:
        pieces.extend(split_tokens(("" if number == 1 else " ") + str(number)))
        number += 1
    return "".join(pieces[:n_tokens])


_PLANS = {
    "joke": "They want a joke, so a short, clean joke fits.",
    "identity": "They ask what I am; I should say I am the local scripted engine.",
    "vision": "There is an image; I should describe what I measured in it.",
    "long": "They want a long text, so I will write steady prose on the topic.",
    "tool_call": "One of the available tools covers this, so I should call it.",
    "tool_result": "The tool returned a result; I should answer with it.",
    "grounded": "The prompt carries documents, so I should answer from them and name the source.",
    "decline": "My fact table does not cover this, so I should say so instead of guessing.",
    "arithmetic": "This is a simple sum I can work out exactly.",
    "recall": "They ask about the conversation so far; I should quote it.",
    "explain": "My fact table covers this, so a few plain sentences from it should do.",
}
_EXTRA_THOUGHTS = (
    "What do they probably know already?",
    "I should keep the wording plain and avoid jargon.",
    "Does the answer stay on the question?",
    "One concrete example would help.",
    "I should not pad the answer.",
    "Let me make sure the answer matches the question, not a nearby one.",
)


def quoted(text: str, limit: int = 100) -> str:
    """``text`` on one line in double quotes, cut at ``limit`` characters."""
    line = " ".join(text.split())
    if len(line) > limit:
        line = line[: limit - 3].rsplit(" ", 1)[0] + "..."
    return f'"{line}"'


def reasoning(prompt: str, shape: str, effort: str | None, variant: object) -> str:
    """A few sentences of "thinking" about the prompt: longer for high effort, shorter for low."""
    thoughts = [f"The user asks: {quoted(prompt)}", _PLANS.get(shape, _PLANS["explain"])]
    extra = {"low": 0, "high": len(_EXTRA_THOUGHTS)}.get(effort or "medium", 2)
    start = stable_pick(len(_EXTRA_THOUGHTS), "think", prompt, variant)
    thoughts.extend(_EXTRA_THOUGHTS[(start + k) % len(_EXTRA_THOUGHTS)] for k in range(extra))
    return " ".join(thoughts)
