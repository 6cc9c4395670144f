"""What the scripted engine's fact table gives it to say about a prompt, as ``compose.Material``.

A city, a recipe or a topic of ``facts.py`` (in that order: "Describe Berlin" is about the city,
"Explain the tides in Hamburg" about the tides), or, when the table has nothing, a plain refusal
that says so.
"""

from __future__ import annotations

import re

from stackit_nb.local import compose, knowledge

#: What a refusal adds: where a real answer comes from.
REAL_MODEL = "With STACKIT_API_KEY set, the same code asks a real model."
_DESCRIBE_CITY = re.compile(r"\b(?:describe|tell me about|what is|about)\b", re.IGNORECASE)


def for_text(text: str) -> compose.Material | None:
    """What the fact table holds about ``text``, or None."""
    return _city(text) or _recipe(text) or _topic(text)


def unknown(subject: str) -> compose.Material:
    """A refusal: the table has nothing about ``subject``."""
    if subject == "this question":
        first = "The local scripted engine cannot answer this from its small fact table"
    else:
        first = f"The local scripted engine has no facts about {subject} in its small table"
    sentences = [f"{first}, so it will not guess.", REAL_MODEL]
    return compose.Material(sentences, subject)


def _topic(text: str) -> compose.Material | None:
    topic = knowledge.topic(text)
    if topic is None:
        return None
    return compose.Material(
        list(topic.sentences), topic.name, list(topic.simple), list(topic.points), topic.gist,
        topic.word,
    )  # fmt: skip


def _city(text: str) -> compose.Material | None:
    city = knowledge.city(text)
    # "Explain the tides in Hamburg" is about tides; "Describe Hamburg" is about the city.
    if city is None or (knowledge.topic(text) is not None and not _DESCRIBE_CITY.search(text)):
        return None
    role = f"the capital of {city.country}" if city.capital else f"a city in {city.country}"
    millions = city.population / 1_000_000
    size = f"{millions:.1f} million" if millions >= 1 else f"{city.population // 1000:,} thousand"
    sights = ", ".join(city.sights[:-1]) + " and " + city.sights[-1]
    sentences = [
        f"{city.name} is {role}, with about {size} inhabitants.",
        f"Its best-known sights include {sights}.",
        f"The main language is {city.language}, and the currency is the {city.currency}.",
    ]
    points = [f"Sight: {s[:1].upper() + s[1:]}" for s in city.sights]
    simple = [
        f"{city.name} is a big city in {city.country}.",
        f"Many people visit it to see the {city.sights[0]}.",
    ]
    gist = f"{city.name}, {role}."
    return compose.Material(sentences, city.name, simple, points, gist, city.name)


def _recipe(text: str) -> compose.Material | None:
    dish = knowledge.recipe(text)
    if dish is None:
        return None
    ingredients = ", ".join(dish.ingredients[:-1]) + " and " + dish.ingredients[-1]
    sentences = [
        f"You need {ingredients} for {dish.servings} serving{'' if dish.servings == 1 else 's'} "
        f"of {dish.title.lower()}.",
        *dish.steps,
        f"All in all, this takes about {dish.minutes} minutes.",
    ]
    return compose.Material(
        sentences, dish.title.lower(), points=list(dish.steps), gist=dish.steps[0],
        word=dish.title, steps=True,
    )  # fmt: skip
