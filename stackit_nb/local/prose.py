"""Deterministic, plausible text for the scripted engine: key words, jokes, explanations, prose.

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

_STOPWORD_TEXT = """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it its
    itself just let me more most my myself no nor not now of off on once only or other our ours out
    over own please s same she should so some such t than that the their theirs them then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves don doesn isn aren wasn
    weren won wouldn shouldn couldn ll re ve d m o y okay ok hi hello hey thanks thank
    explain describe tell write give show list make create generate produce compose say answer
    briefly brief short shortly long simple simply quick quickly detail detailed details words word
    tokens token sentence sentences paragraph paragraphs essay text reply respond response using
    use maybe something anything thing things like know want need get got find help"""
# Common English words plus instruction words ("explain", "briefly"): neither names a topic.
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

JOKES = (
    "Why do programmers prefer dark mode? Because light attracts bugs.",
    "There are 10 kinds of people: those who understand binary and those who don't.",
    "A SQL query walks into a bar, goes up to two tables and asks: may I join you?",
    "Why did the developer go broke? He used up all his cache.",
    "I would tell you a UDP joke, but you might not get it.",
    "Why was the JavaScript developer sad? Because he didn't know how to null his feelings.",
    "How many programmers does it take to change a light bulb? None, that's a hardware problem.",
    "Why do Java developers wear glasses? Because they don't C#.",
)

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
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


def _topic(keys: list[str]) -> tuple[str, str, str]:
    """The topic phrase and two single topic words, with neutral stand-ins when there are none."""
    topic = " ".join(keys[:3]) or "this question"
    first = keys[0] if keys else "the idea"
    second = keys[1] if len(keys) > 1 else "its context"
    return topic, first, second


_EXPLANATIONS = (
    "Here is a short take on {topic}. The key idea is that {a} rests on a few basic principles, "
    "and {b} follows from them. Start with the fundamentals, then look at a concrete example.",
    "The topic of {topic} is easiest to understand step by step. First look at {a} on its own, "
    "then see how it connects to {b}. With that picture in mind, most details fall into place.",
    "In short, {topic} comes down to cause and effect: {a} sets the conditions, and {b} shows the "
    "result. A small worked example usually makes this clear.",
    "Good question about {topic}. The short answer is that {a} and {b} are closely linked, so "
    "understanding one helps with the other. Ask for more depth if you need it.",
    "Think of {topic} as a system with moving parts. People tend to notice {a} first, while {b} "
    "does the quieter work in the background. Both matter for the full picture.",
    "When it comes to {topic}, there is a simple core and many details. At the core, {a} describes "
    "what changes and {b} explains why. Most practical questions are about how the two interact.",
)


def explanation(prompt: str, variant: object) -> str:
    """Two to four sentences that mention the prompt's topic, varied by ``variant``."""
    topic, first, second = _topic(keywords(prompt))
    template = _EXPLANATIONS[stable_pick(len(_EXPLANATIONS), "explain", prompt, variant)]
    return template.format(
        topic=topic, Topic=topic[:1].upper() + topic[1:], a=first, A=first.capitalize(), b=second
    )


# Templates read correctly whether the topic word is singular or plural ("river", "rivers").
_SENTENCES = (
    "Much of what we see around us is shaped by {a}.",
    "Over time, the role of {a} changes in ways that are easy to miss at first.",
    "Researchers often study {a} by comparing it with {n}.",
    "One useful way to think about {a} is as a balance between {n} and {m}.",
    "The history of {a} is full of small steps that added up.",
    "In practice, {n} and {m} matter as much as {a} itself.",
    "A good example is what happens to {a} when {n} shift.",
    "Many people first meet {a} through everyday {n}.",
    "The details of {a} become clearer once {m} are taken into account.",
    "It helps to separate what {a} does from how it is measured.",
    "Experts still debate how much {n} depend on {a}.",
    "Seen from a distance, the story of {a} follows steady {m}.",
    "Close up, the subject of {a} shows a surprising variety of {n}.",
    "This is why discussions of {a} often turn to {m}.",
    "The same ideas about {a} apply, with care, to {n}.",
    "Each new observation of {a} adds a little to the picture.",
)
_NOUNS = (
    "patterns", "history", "structure", "balance", "examples", "processes", "conditions",
    "results", "changes", "people", "places", "tools", "methods", "ideas", "questions", "seasons",
    "landscapes", "measurements", "communities", "materials",
)  # fmt: skip


def _sentences(prompt: str, variant: object) -> Iterator[str]:
    """An endless stream of topic sentences, each starting a paragraph or following a space."""
    keys = keywords(prompt) or ["the topic"]
    i, previous = 0, -1
    while True:
        pick = stable_pick(1 << 30, "prose", prompt, variant, i)
        topic = keys[pick % len(keys)] if pick % 3 else " ".join(keys[:2])
        template = (pick >> 4) % len(_SENTENCES)
        if template == previous:  # never the same sentence twice in a row
            template = (template + 1) % len(_SENTENCES)
        previous = template
        sentence = _SENTENCES[template].format(
            a=topic,
            A=topic[:1].upper() + topic[1:],
            n=_NOUNS[(pick >> 9) % len(_NOUNS)],
            m=_NOUNS[(pick >> 14) % len(_NOUNS)],
        )
        yield sentence if i == 0 else ("\n\n" if i % 6 == 0 else " ") + sentence
        i += 1


def prose_tokens(prompt: str, n_tokens: int, variant: object) -> str:
    """Varied prose about the prompt's topic of exactly ``n_tokens`` tokens."""
    pieces: list[str] = []
    # Each sentence ends in "." and the next starts with whitespace, so tokenizing sentence by
    # sentence gives the same pieces as tokenizing the whole text: the count is exact.
    for sentence in _sentences(prompt, variant):
        if len(pieces) >= n_tokens:
            break
        pieces.extend(split_tokens(sentence))
    return "".join(pieces[: max(n_tokens, 0)])


def prose_words(prompt: str, n_words: int, variant: object) -> str:
    """Varied prose about the prompt's topic of exactly ``n_words`` whitespace-separated words."""
    collected: list[str] = []
    for sentence in _sentences(prompt, variant):
        if len(collected) >= n_words:
            break
        collected.extend(sentence.split())
    text = " ".join(collected[: max(n_words, 0)])
    return text if not text or text.endswith(".") else text + "."


def count_to(n_tokens: int) -> str:
    """ "1 2 3 ..." of exactly ``n_tokens`` tokens (one token a number up to 999)."""
    pieces: list[str] = []
    number = 1
    while len(pieces) < n_tokens:
        pieces.extend(split_tokens(("" if number == 1 else " ") + str(number)))
        number += 1
    return "".join(pieces[:n_tokens])


_PLANS = {
    "joke": "They want a joke, so a short, clean tech joke fits.",
    "identity": "They ask what I am; I should say I am the local scripted engine.",
    "vision": "There is an image; I should describe what I measured in it.",
    "long": "They want a long text, so I will write steady prose on the topic.",
    "tool_call": "One of the available tools covers this, so I should call it.",
    "tool_result": "The tool returned a result; I should answer with it.",
    "explain": "A short explanation in a few sentences should do.",
}
_EXTRA_THOUGHTS = (
    "What do they probably know already?",
    "I should keep the wording plain and avoid jargon.",
    "Check: does the answer cover {a} and {b}?",
    "One concrete example would help.",
    "I should not pad the answer.",
    "Let me make sure the answer matches the question, not a nearby one.",
)


def reasoning(prompt: str, shape: str, effort: str | None, variant: object) -> str:
    """A few sentences of "thinking" about the prompt: longer for high effort, shorter for low."""
    topic, first, second = _topic(keywords(prompt))
    thoughts = [f"The user asks about {topic}.", _PLANS.get(shape, _PLANS["explain"])]
    extra = {"low": 0, "high": len(_EXTRA_THOUGHTS)}.get(effort or "medium", 2)
    start = stable_pick(len(_EXTRA_THOUGHTS), "think", prompt, variant)
    for k in range(extra):
        thought = _EXTRA_THOUGHTS[(start + k) % len(_EXTRA_THOUGHTS)]
        thoughts.append(thought.format(a=first, b=second))
    return " ".join(thoughts)
