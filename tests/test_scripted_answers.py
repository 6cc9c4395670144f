"""What the scripted engine answers, read as a learner would: over HTTP, through the openai SDK.

Each case is a prompt and the property its reply must have (grounded in the documents and naming
the source, exact counts, the keys asked for, an honest refusal); every reply must also read as
English sentences (``assert_readable``).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from typing import Literal

import openai
import pytest
from pydantic import BaseModel

from stackit_nb.local import LocalSTACKIT, facts, prose
from stackit_nb.local.tokens import count_tokens

LLAMA = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
GPT_OSS = "openai/gpt-oss-120b"

RAG_SYSTEM = "Answer only from the documents. Say which document you used."
DOCUMENTS = (
    "Documents:\n"
    "[help/password.md] To reset your password, open Settings, choose Security and click "
    "'Reset password'.\n"
    "[visit/hours.md] The museum is open Tuesday to Sunday from 10 am to 6 pm.\n"
)
HAYSTACK_TEMPLATE = (
    "Given the following information, answer the question.\n\nContext:\n"
    "    Berlin is the capital of Germany.\n\n"
    "    Paris is the capital of France and has the Eiffel Tower.\n\n"
    "Question: Which city has the Eiffel Tower?\nAnswer:"
)
PASTED = (
    "Summarise this in one sentence: The library opens at nine on weekdays. Members may borrow "
    "up to ten books at a time. Borrowed books are due back after three weeks. The library is "
    "closed on public holidays."
)
SALAD = re.compile(r"comes down to cause and effect|a simple core and many details|moving parts")


@pytest.fixture(scope="module")
def client(server: LocalSTACKIT) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url, api_key=server.api_key, max_retries=0) as c:
        yield c


def chat(client: openai.OpenAI, *turns: str | tuple[str, str], model: str = LLAMA, **kwargs):
    messages = [
        {"role": t[0], "content": t[1]} if isinstance(t, tuple) else {"role": "user", "content": t}
        for t in turns
    ]
    return client.chat.completions.create(model=model, messages=messages, **kwargs)


def sentences(text: str) -> list[str]:
    return prose.sentences_of(text)


def assert_readable(text: str) -> None:
    """Sentences that start with a capital, end with punctuation, and repeat no word pairs."""
    assert not SALAD.search(text), text
    assert "{" not in text or text.lstrip().startswith(("{", "|")), text
    for sentence in sentences(text):
        if sentence.startswith(("-", "|", "1.", "2.", "3.", "4.", "5.", "6.")):
            continue
        assert sentence[0].isupper() or sentence[0].isdigit() or sentence[0] in "\"'(", sentence
        assert sentence.rstrip()[-1] in ".!?\"')", sentence
        found = prose.words(sentence)
        assert not any(a == b for a, b in itertools.pairwise(found)), sentence


# ---- grounded answers ---------------------------------------------------------------------------


def test_rag_answer_is_the_documents_sentence_with_its_source(client: openai.OpenAI) -> None:
    reply = chat(
        client, ("system", RAG_SYSTEM), DOCUMENTS + "\nQuestion: How can I reset my password?"
    )
    text = reply.choices[0].message.content or ""
    assert text == (
        "According to help/password.md, to reset your password, open Settings, choose Security "
        "and click 'Reset password'."
    )
    assert_readable(text)


def test_rag_says_when_the_documents_do_not_answer(client: openai.OpenAI) -> None:
    reply = chat(client, ("system", RAG_SYSTEM), DOCUMENTS + "\nQuestion: How do I get a refund?")
    text = reply.choices[0].message.content or ""
    assert "do not contain the answer" in text and '"refund"' in text
    assert "help/password.md" in text and "visit/hours.md" in text
    assert "Settings" not in text  # nothing from a document that does not answer
    assert_readable(text)


def test_haystack_context_template_unlabelled_passages(client: openai.OpenAI) -> None:
    text = chat(client, HAYSTACK_TEMPLATE).choices[0].message.content or ""
    assert (
        text == "According to passage 2: Paris is the capital of France and has the Eiffel Tower."
    )


def test_documents_in_an_earlier_turn_answer_a_later_question(client: openai.OpenAI) -> None:
    first = DOCUMENTS + "\nRead these, I will ask about them."
    text = chat(client, first, ("assistant", "Done."), "When is the museum open?")
    content = text.choices[0].message.content or ""
    assert content.startswith("According to visit/hours.md, the museum is open Tuesday")


def test_pasted_text_is_summarised_from_its_own_sentences(client: openai.OpenAI) -> None:
    text = chat(client, PASTED).choices[0].message.content or ""
    assert len(sentences(text)) == 1
    assert text in PASTED
    assert_readable(text)


def test_a_follow_up_continues_the_earlier_topic(client: openai.OpenAI) -> None:
    first = chat(client, "Explain glaciers.").choices[0].message.content or ""
    more = chat(client, "Explain glaciers.", ("assistant", first), "Tell me more.")
    text = more.choices[0].message.content or ""
    assert text and text not in first
    assert "glacier" in text.lower()
    assert_readable(text)


def test_recall_quotes_the_conversation(client: openai.OpenAI) -> None:
    reply = chat(client, "Explain tides.", ("assistant", "..."), "What did I ask first?")
    assert reply.choices[0].message.content == 'Your first question was "Explain tides."'


# ---- instructions followed --------------------------------------------------------------------

TOPICS_OF_08 = ["rivers", "glaciers", "deserts", "volcanoes", "forests", "coral reefs", "caves",
                "islands", "tundra", "wetlands", "canyons", "dunes"]  # fmt: skip


@pytest.mark.parametrize("topic", TOPICS_OF_08)
def test_one_sentence_about_each_topic(client: openai.OpenAI, topic: str) -> None:
    text = chat(client, f"Describe {topic} in one sentence.").choices[0].message.content or ""
    assert len(sentences(text)) == 1, text
    assert prose.stem(topic.split()[-1])[:5] in text.lower(), text
    assert_readable(text)


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_the_system_prompt_sets_an_exact_sentence_count(client: openai.OpenAI, count: int) -> None:
    system = ("system", f"Answer in exactly {count} sentences.")
    text = chat(client, system, "Why is the sky blue?").choices[0].message.content or ""
    assert len(sentences(text)) == count, text
    assert_readable(text)


def test_ten_year_olds_get_short_sentences(client: openai.OpenAI) -> None:
    system = (
        "system",
        "You are a patient teacher. Answer for ten-year-olds in at most 3 sentences.",
    )
    for topic in ("photosynthesis", "rate limits"):
        text = chat(client, system, f"Explain {topic}.").choices[0].message.content or ""
        found = sentences(text)
        assert 1 <= len(found) <= 3, text
        assert sum(len(s.split()) for s in found) / len(found) <= 14, text
        assert_readable(text)
    adult = chat(client, "Explain photosynthesis.").choices[0].message.content or ""
    assert adult != text


@pytest.mark.parametrize("limit", [3, 6, 12, 40])
def test_at_most_n_words(client: openai.OpenAI, limit: int) -> None:
    prompt = f"Explain photosynthesis in at most {limit} words."
    text = chat(client, prompt).choices[0].message.content or ""
    assert 1 <= len(text.split()) <= limit, text
    assert text.endswith(".")


@pytest.mark.parametrize(("prompt", "marker", "count"), [
    ("List 4 facts about volcanoes.", "- ", 4),
    ("Give me 3 steps for making pancakes as a numbered list.", None, 3),
    ("Name five points about tides as bullet points.", "- ", 5),
])  # fmt: skip
def test_lists_have_exactly_the_items_asked_for(
    client: openai.OpenAI, prompt: str, marker: str | None, count: int
) -> None:
    text = chat(client, prompt).choices[0].message.content or ""
    lines = text.splitlines()
    assert len(lines) == count, text
    for i, line in enumerate(lines, 1):
        assert line.startswith(marker or f"{i}. "), text
        assert len(line) > 8


def test_a_table_is_a_markdown_table(client: openai.OpenAI) -> None:
    text = chat(client, "Explain tides as a table.").choices[0].message.content or ""
    rows = text.splitlines()
    assert rows[0] == "| Aspect | Details |" and rows[1] == "| --- | --- |"
    assert len(rows) >= 4 and all(r.count("|") == 3 for r in rows)


def test_one_word(client: openai.OpenAI) -> None:
    text = chat(client, "Explain tides in one word.").choices[0].message.content or ""
    assert text == "Moon."


@pytest.mark.parametrize(("unit", "amount"), [("tokens", 250), ("words", 120), ("tokens", 7)])
def test_exact_lengths_end_on_whole_sentences(
    client: openai.OpenAI, unit: str, amount: int
) -> None:
    reply = chat(client, f"Write {amount} {unit} about deserts.")
    text = reply.choices[0].message.content or ""
    got = count_tokens(text) if unit == "tokens" else len(text.split())
    assert got == amount
    assert reply.usage is not None and (unit != "tokens" or reply.usage.completion_tokens == amount)
    assert text.endswith("."), text
    assert_readable(text)


# ---- structured output ------------------------------------------------------------------------


class City(BaseModel):
    name: str
    country: str
    population: int
    kind: Literal["capital", "town"]
    sights: list[str]


def test_schema_values_fit_their_names(client: openai.OpenAI) -> None:
    for name, country, capital in (("Berlin", "Germany", True), ("Hamburg", "Germany", False)):
        reply = client.chat.completions.parse(
            model=LLAMA,
            messages=[{"role": "user", "content": f"Describe {name}."}],
            response_format=City,
        )
        city = reply.choices[0].message.parsed
        assert city is not None
        table = next(c for c in facts.CITIES if c.name == name)
        assert (city.name, city.country, city.population) == (name, country, table.population)
        assert city.kind == ("capital" if capital else "town")
        assert len(set(city.sights)) == len(city.sights) >= 3


def test_schema_for_an_unknown_city_invents_nothing(client: openai.OpenAI) -> None:
    reply = client.chat.completions.parse(
        model=LLAMA,
        messages=[{"role": "user", "content": "Describe Xyzville."}],
        response_format=City,
    )
    city = reply.choices[0].message.parsed
    assert city is not None
    assert (city.name, city.country, city.population, city.sights) == ("Xyzville", "unknown", 0, [])


@pytest.mark.parametrize("prompt", [
    "Describe Berlin as JSON with the keys name, country and population.",
    'Return a JSON object with the fields "name", "country", "population" for Berlin.',
])  # fmt: skip
def test_json_object_uses_the_keys_the_prompt_names(client: openai.OpenAI, prompt: str) -> None:
    reply = chat(client, prompt, response_format={"type": "json_object"})
    value = json.loads(reply.choices[0].message.content or "")
    assert value == {"name": "Berlin", "country": "Germany", "population": 3_880_000}


def test_json_object_without_keys_has_topic_and_answer(client: openai.OpenAI) -> None:
    prompt = "Give me a short answer about rivers as a JSON object."
    reply = chat(client, prompt, response_format={"type": "json_object"})
    value = json.loads(reply.choices[0].message.content or "")
    assert value["topic"] == "rivers"
    assert len(sentences(value["answer"])) == 1 and "erosion" in value["answer"]


# ---- honest edges -----------------------------------------------------------------------------

Check = Callable[[str], bool]


@pytest.mark.parametrize(("prompt", "check"), [
    ("What is 17 + 25?", lambda t: t == "17 + 25 = 42."),
    ("What is 6 times 7?", lambda t: t == "6 times 7 = 42."),
    ("What is 3 * 4 + 2 / 7?", lambda t: "beyond a single sum" in t),
    ("Solve x^2 - 4 = 0.", lambda t: "beyond a single sum" in t),
    ("Translate 'good morning' into French.", lambda t: "cannot translate" in t),
    ("Write a Python function that reverses a list.", lambda t: "does not write code" in t),
    ("Explain the Byzantine Empire.", lambda t: "no facts about the Byzantine Empire" in t),
    ("What's the weather in Hamburg?", lambda t: "no live data" in t and "tool" in t),
    ("Is Pluto a planet? Answer yes or no.", lambda t: "cannot judge yes or no" in t),
])  # fmt: skip
def test_what_the_engine_cannot_do_it_declines(
    client: openai.OpenAI, prompt: str, check: Check
) -> None:
    text = chat(client, prompt).choices[0].message.content or ""
    assert check(text), text
    assert_readable(text)
    if not text[0].isdigit():
        assert "local scripted engine" in text
        assert "STACKIT_API_KEY" in text or "tool" in text  # no model has live data


def test_jokes_are_jokes(client: openai.OpenAI) -> None:
    assert chat(client, "Tell me a joke.").choices[0].message.content in facts.JOKES
    cat = chat(client, "Tell me a joke about cats.").choices[0].message.content or ""
    assert cat in facts.TOPICAL_JOKES["cat"]


def test_reasoning_quotes_the_question(client: openai.OpenAI) -> None:
    reply = chat(client, "Why is the sky blue?", model=GPT_OSS, reasoning_effort="low")
    message = reply.choices[0].message
    thinking = getattr(message, "reasoning_content", None) or getattr(message, "reasoning", "")
    assert thinking.startswith('The user asks: "Why is the sky blue?" My fact table covers this')
    assert_readable(message.content or "")


def test_same_request_same_reply(client: openai.OpenAI) -> None:
    prompts = ["Explain how rivers shape a landscape.", PASTED, DOCUMENTS + "\nQuestion: hours?"]
    for prompt in prompts:
        first = chat(client, prompt).choices[0].message.content
        assert chat(client, prompt).choices[0].message.content == first


@pytest.mark.parametrize(("prompt", "start"), [
    ("Hello", "Hello! I am the local scripted engine"),
    ("Why do LLMs hallucinate?", "A language model hallucinates when it states something false"),
    ("What is a context window in an LLM?", "A model's context window is the most tokens"),
    ("Thanks!", "You're welcome!"),
    ("What can you do?", "I am the local scripted engine standing in for a STACKIT model."),
    ("What is the capital of France?", "Paris is the capital of France"),
    ("How many people live in Hamburg?", "Hamburg is a city in Germany, with about 1.9 million"),
])  # fmt: skip
def test_small_talk_and_city_questions(client: openai.OpenAI, prompt: str, start: str) -> None:
    text = chat(client, prompt).choices[0].message.content or ""
    assert text.startswith(start), text
    assert_readable(text)


HANDBOOK = (
    "Documents:\n"
    "[wifi.md] # Wi-Fi and guest access\n"
    'Employees use the network "Nordlicht" and sign in with their usual account.\n'
    "[wifi.md] # Wi-Fi and guest access\n"
    'Guests use the network "Nordlicht-Guest". A guest code is created at the reception desk.\n'
    "[parking.md] # Parking and bikes\n"
    "Bikes are parked in the locked bike room next to the entrance. There are showers on the "
    "ground floor.\n"
    "[password.md] # Resetting your password\n"
    "To reset your password, open Settings. You receive a link that stays valid for 30 minutes.\n"
)


@pytest.mark.parametrize(("question", "answer"), [
    # The heading's words count ("Wi-Fi"), the sentence's own words rank ("guests").
    ("Can guests use the Wi-Fi?", "According to wifi.md: Guests use the network"),
    # Verb forms meet ("park" / "parked"); a sentence that shares nothing is not padding.
    ("Where do I park my bike?", "According to parking.md: Bikes are parked in the locked"),
    # "How long" wants the sentence with a number in it.
    ("How long is the reset link valid?", "According to password.md, you receive a link that"),
    # Half of what is asked is not in any document: no answer, however well "code" matches.
    ("What is the dress code?", "The documents (wifi.md, parking.md and password.md) do not"),
    # Only the words no document has are named: wifi.md does mention Nordlicht.
    ("Who founded Nordlicht?", 'The documents (wifi.md, parking.md and password.md) do not '
     'contain the answer: none of them mentions "founded".'),
])  # fmt: skip
def test_the_sentence_that_answers_is_chosen(
    client: openai.OpenAI, question: str, answer: str
) -> None:
    text = chat(client, HANDBOOK + f"\nQuestion: {question}").choices[0].message.content or ""
    assert text.startswith(answer), text
    assert "showers" not in text


@pytest.mark.parametrize("prompt", [
    "Explain a rainbow to a child in two sentences.",
    "Explain glaciers for kids.",
    "Explain tides like I'm five.",
])  # fmt: skip
def test_a_young_audience_in_the_prompt_gets_the_simple_sentences(
    client: openai.OpenAI, prompt: str
) -> None:
    young = chat(client, prompt).choices[0].message.content or ""
    adult = chat(client, re.sub(r" (to a child|for kids|like I'm five)", "", prompt))
    assert young != adult.choices[0].message.content
    found = sentences(young)
    assert sum(len(s.split()) for s in found) / len(found) <= 14, young


def test_a_recipe_is_what_you_need_then_numbered_steps(client: openai.OpenAI) -> None:
    text = chat(client, "A recipe for pancakes.").choices[0].message.content or ""
    intro, steps, end = text.split("\n\n")
    assert intro == (
        "You need 200 g flour, 2 eggs, 300 ml milk, 1 pinch of salt and butter for 4 servings "
        "of pancakes."
    )
    recipe = next(r for r in facts.RECIPES if r.title == "Pancakes")
    assert steps.splitlines() == [f"{i}. {s}" for i, s in enumerate(recipe.steps, 1)]
    assert end == "All in all, this takes about 25 minutes."
