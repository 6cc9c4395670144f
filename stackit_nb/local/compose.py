"""Sentences and list points put into the form a prompt asks for.

The scripted engine decides *what* to say (facts about a topic, sentences from documents, a polite
refusal); this module decides *how*: exactly N sentences, at most N words, a list of N items
(bullets or numbered), a Markdown table, one word. Counts are exact: when the material runs out,
general sentences about the subject (true of any subject) fill the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain, islice

from stackit_nb.local import prose
from stackit_nb.local.instructions import Instructions

DEFAULT_SENTENCES = 3  # an "Explain X" without a count: a short paragraph


@dataclass
class Material:
    """What there is to say, best first."""

    sentences: list[str]
    subject: str  # for general filler sentences ("rivers", "how tides work")
    simple: list[str] = field(default_factory=list)  # for a young audience
    points: list[str] = field(default_factory=list)  # "Label: detail"
    gist: str = ""  # at most six words
    word: str = ""  # a one-word answer
    steps: bool = False  # the points are steps to follow in order (a recipe)


def render(material: Material, asked: Instructions, variant: object) -> str:
    """``material`` in the form ``asked`` wants."""
    if asked.one_word:
        word = material.word or (prose.keywords(material.subject) or ["Unknown"])[0]
        return word[:1].upper() + word[1:] + "."
    if asked.table:
        return _table(material, asked.items)
    if asked.items or asked.list_style:
        return _items(material, asked, variant)
    pool = material.simple if asked.simple and material.simple else material.sentences
    others = material.sentences if pool is material.simple else material.simple
    supply = chain(pool, (s for s in others if s not in pool), _general(material, variant))
    if asked.max_words is not None:
        return _within_words(material, pool, asked.max_words)
    count = asked.sentences
    if count is None:
        count = 1 if asked.brief else min(DEFAULT_SENTENCES, max(len(pool), 1))
    elif asked.at_most:
        count = min(count, max(len(pool), 1))
    return " ".join(islice(supply, count))


def _general(material: Material, variant: object) -> Iterator[str]:
    return prose.general_sentences(material.subject, variant)


def _within_words(material: Material, pool: list[str], limit: int) -> str:
    """As many whole sentences as fit in ``limit`` words; the gist, or a cut gist, otherwise."""
    chosen: list[str] = []
    used = 0
    for sentence in pool:
        size = len(sentence.split())
        if used + size > limit:
            break
        chosen.append(sentence)
        used += size
    if chosen:
        return " ".join(chosen)
    gist = material.gist or (pool[0] if pool else "")
    return prose.limit_words(gist, limit)


def _points(material: Material, variant: object) -> Iterator[str]:
    """List items: the points, then the sentences, then general sentences."""
    sentences = (s.rstrip(".") for s in material.sentences)
    general = (s.rstrip(".") for s in _general(material, variant))
    return chain(material.points, sentences, general)


def _items(material: Material, asked: Instructions, variant: object) -> str:
    count = asked.items or max(len(material.points), 1)
    items = list(islice(_points(material, variant), count))
    if asked.list_style == "numbered":
        return "\n".join(f"{i}. {item}" for i, item in enumerate(items, 1))
    return "\n".join(f"- {item}" for item in items)


def _table(material: Material, count: int | None) -> str:
    """A two-column Markdown table of the points ("Label: detail" -> | Label | detail |)."""
    points = material.points or [s.rstrip(".") for s in material.sentences]
    rows = points[:count] if count else points
    lines = ["| Aspect | Details |", "| --- | --- |"]
    for i, point in enumerate(rows, 1):
        label, sep, detail = point.partition(": ")
        if not sep:
            label, detail = str(i), point
        cell = detail.replace("|", "\\|")
        lines.append(f"| {label.replace('|', chr(92) + '|')} | {cell} |")
    return "\n".join(lines)
