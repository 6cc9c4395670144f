"""Looking things up in the scripted engine's fact table (``facts.py``).

A topic is found when all the words of one of its key phrases appear next to each other in the
prompt (plurals folded, common words skipped): "Explain how rivers shape a landscape" finds
rivers, "Why is the sky blue?" finds the colour of the sky. The longest key phrase wins, so "river
delta" is about deltas, not rivers.
"""

from __future__ import annotations

import re
from typing import Any

from stackit_nb.local import facts, prose


def _stems(text: str) -> list[str]:
    return [prose.stem(w) for w in prose.words(text) if w not in prose.COMMON_WORDS]


def _contains(haystack: list[str], needle: list[str]) -> bool:
    width = len(needle)
    return any(haystack[i : i + width] == needle for i in range(len(haystack) - width + 1))


def _best(text: str, entries: tuple[Any, ...]) -> Any:
    found = _stems(text)
    best, best_width = None, 0
    for entry in entries:
        for key in entry.keys:
            needle = _stems(key)
            if needle and len(needle) > best_width and _contains(found, needle):
                best, best_width = entry, len(needle)
    return best


def topic(text: str) -> facts.Topic | None:
    """The table's topic that ``text`` is about, if any."""
    result: facts.Topic | None = _best(text, facts.TOPICS)
    return result


def recipe(text: str) -> facts.Recipe | None:
    """The table's recipe ``text`` names, if any."""
    result: facts.Recipe | None = _best(text, facts.RECIPES)
    return result


def city(text: str) -> facts.City | None:
    """The first city of the table that ``text`` names, or whose country's capital it asks for."""
    asked = re.search(r"\bcapital (?:city )?of (?:the )?([A-Z][\w ]+?)\b(?:[?.!,]|$)", text)
    if asked is not None:
        for entry in facts.CITIES:
            if entry.capital and entry.country == asked[1].strip():
                return entry
    hits = []
    for entry in facts.CITIES:
        match = re.search(rf"\b{re.escape(entry.name)}\b", text)
        if match is not None:
            hits.append((match.start(), entry))
    return min(hits, key=lambda hit: hit[0])[1] if hits else None


def joke(text: str) -> tuple[str, ...]:
    """Jokes about a topic word of ``text`` (empty when the table has none for it)."""
    found = set(_stems(text))
    for word, jokes in facts.TOPICAL_JOKES.items():
        if word in found:
            return jokes
    return ()


def values(text: str) -> tuple[dict[str, Any], set[str]]:
    """Named values a structured reply about ``text`` may use, and words that pick enum options.

    Keys are field-name words ("population", "sights"); the schema filler matches them against a
    field's name and its parts ("city_population" -> "population").
    """
    named: dict[str, Any] = {}
    words: set[str] = set()
    if (place := city(text)) is not None:
        # Sights are written for sentences ("the Brandenburg Gate"); a field holds the name.
        sights = [s.removeprefix("the ") for s in place.sights]
        named.update(
            name=place.name, city=place.name, country=place.country,
            population=place.population, inhabitants=place.population,
            residents=place.population, sights=sights, landmarks=sights, attractions=sights,
            highlights=sights, language=place.language, languages=[place.language],
            continent=place.continent, currency=place.currency, capital=place.capital,
        )  # fmt: skip
        words |= {"capital", "city"} if place.capital else {"city", "town"}
    if (dish := recipe(text)) is not None:
        steps, ingredients = list(dish.steps), list(dish.ingredients)
        named.update(
            title=dish.title, name=dish.title, dish=dish.title, recipe=dish.title,
            difficulty=dish.difficulty, minutes=dish.minutes, time=dish.minutes,
            duration=dish.minutes, servings=dish.servings, portions=dish.servings,
            ingredients=ingredients, steps=steps, instructions=steps, directions=steps,
            method=steps,
        )  # fmt: skip
        words.add(dish.difficulty)
    if (subject := topic(text)) is not None:
        title = subject.name[:1].upper() + subject.name[1:]
        for key in ("title", "name", "topic", "subject"):
            named.setdefault(key, title)
        for key in ("summary", "description", "answer", "explanation", "definition"):
            named.setdefault(key, subject.sentences[0])
        points = list(subject.points)
        for key in ("points", "facts", "items", "examples", "tips", "highlights"):
            named.setdefault(key, points)
        if subject.word:
            named.setdefault("keyword", subject.word)
    return named, words
