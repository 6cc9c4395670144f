"""What the scripted engine says: one rule per kind of prompt, tried in order (``RULES``).

Each rule reads the request (a :class:`Reading`) and returns a :class:`Draft`, or None when it
does not apply. The order is the order of precedence: tools first (a model with tools calls
them), then the conversation's own material (tool results, images, documents), then what the
engine knows (jokes, sums, its fact table), and last an honest refusal.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain

from stackit_nb.local import compose, fact_answers, facts, grounding, knowledge, prose, toolcall
from stackit_nb.local.catalog import ModelInfo
from stackit_nb.local.engines.interface import ChatRequest, text_of
from stackit_nb.local.instructions import Instructions
from stackit_nb.local.subject import subject
from stackit_nb.local.vision import ImageFacts

MAX_GENERATED_TOKENS = 100_000  # "write 10 million tokens" is capped, as a real server would be

_IDENTITY = re.compile(
    r"\b(?:who|what) are you\b|\bwhich model\b|\bwhat model\b|\bwho (?:made|built) you\b|"
    r"\bintroduce yourself\b|\byour name\b|\bare you (?:an? )?(?:ai|bot|model|llm|real)\b",
    re.IGNORECASE,
)
_JOKE = re.compile(r"\bjokes?\b|\bmake me laugh\b|\bsomething funny\b|\bpun\b", re.IGNORECASE)
_NUM = r"(\d[\d,_]*)"
_COUNT_TO = re.compile(rf"\bcount\s+(?:from\s+(?:1|one)\s+)?(?:up\s+)?to\s+{_NUM}", re.IGNORECASE)
_SUM = re.compile(
    r"^\s*(?:what(?:'s| is)\s+|calculate\s+|compute\s+|how much is\s+)?"
    r"(-?\d+(?:\.\d+)?)\s*(\+|-|\*|x|×|/|÷|plus|minus|times|divided by)\s*(-?\d+(?:\.\d+)?)"
    r"\s*(?:=\s*)?\??\s*$",
    re.IGNORECASE,
)
# What the engine cannot do: the refusal, what to do instead, and the prompts it applies to.
_BEYOND = (
    (
        "does not do arithmetic beyond a single sum, so it will not guess a result",
        fact_answers.REAL_MODEL,
        re.compile(
            r"\d\s*[-+*/^×÷]\s*\(?\s*\d[^a-z]*[-+*/^×÷]\s*\d|\b(?:solve|equation|integral|"
            r"derivative|factori[sz]e|square root|logarithm|prove)\b|\bhow many\b.*\d.*\d",
            re.IGNORECASE | re.DOTALL,
        ),
    ),
    (
        "has no live data (weather, news, prices), so it cannot say",
        # no model knows today's weather by itself: that takes a tool
        "A real model has none either: give it a tool that fetches them (tutorial 6 shows how).",
        re.compile(
            r"\b(?:weather|forecast|temperature (?:in|at|outside)|news|stock price|share price|"
            r"exchange rate)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "cannot translate",
        fact_answers.REAL_MODEL,
        re.compile(r"\btranslat(?:e|ion)\b", re.IGNORECASE),
    ),
    (
        "does not write code",
        fact_answers.REAL_MODEL,
        re.compile(
            r"\b(?:write|create|generate|give me|implement)\b.{0,40}\b(?:code|function|script|"
            r"program|class|regex|sql query|snippet)\b",
            re.IGNORECASE | re.DOTALL,
        ),
    ),
)
_FOLLOW_UP = re.compile(
    r"^\s*(?:and\b|what about\b|how about\b|why\??$|how so\b|tell me more\b|more\b|go on\b|"
    r"continue\b|explain (?:that|it|this|more)\b|can you elaborate\b|elaborate\b|"
    r"what else\b|anything else\b|really\??$)",
    re.IGNORECASE,
)
_RECALL = re.compile(
    r"\bwhat (?:did|was) (?:i|my)\b.*\b(?:ask|question|say|said|first|last|previous)\b|"
    r"\bwhat have we (?:talked|discussed)\b",
    re.IGNORECASE,
)
_GREETING = re.compile(
    r"^\s*(?:hi|hello|hey|hallo|good (?:morning|afternoon|evening)|greetings)\b[\s!?.,]*"
    r"(?:there)?[\s!?.,]*$",
    re.IGNORECASE,
)
_THANKS = re.compile(r"^\s*(?:thanks|thank you|thx|cheers)\b.{0,30}$", re.IGNORECASE)
_HOW_ARE_YOU = re.compile(r"^\s*how are you\b|^\s*how's it going\b", re.IGNORECASE)
_CAPABILITIES = re.compile(
    r"^\s*(?:what can you do|help|what do you know|what can i ask(?: you)?)\s*[?!.]*\s*$",
    re.IGNORECASE,
)
_WHAT_I_DO = (
    "I am the local scripted engine standing in for a STACKIT model. I answer from documents you "
    "put in the prompt, explain the topics of my small fact table (rivers, photosynthesis, "
    "embeddings, rate limits and more), describe some cities, tell jokes and do single sums; "
    "for anything else, set STACKIT_API_KEY and the same code asks a real model."
)


@dataclass
class Draft:
    """A reply before stop strings and max_tokens are applied."""

    shape: str
    content: str | None = None
    tool_calls: list[dict] = field(default_factory=list)
    material: compose.Material | None = None  # what a JSON reply may draw on


@dataclass
class Reading:
    """The request as the rules see it."""

    request: ChatRequest
    prompt: str  # the last user message's text
    asked: Instructions  # what the system prompt and the last user message ask of the form
    variant: str  # "greedy", or seed and choice index: varies picks where the prompt allows

    @property
    def messages(self) -> list[dict]:
        return self.request.messages

    def others(self) -> list[dict]:
        """Every message but the last user one."""
        index, _ = self.request.last_user()
        return [m for i, m in enumerate(self.messages) if i != index]

    def subject(self) -> str:
        return subject(self.asked.rest or self.prompt)


def _tool_call(reading: Reading) -> Draft | None:
    request, messages = reading.request, reading.messages
    forced = request.tool_choice == "required" or isinstance(request.tool_choice, dict)
    ends_with_tool = bool(messages) and messages[-1].get("role") == "tool"
    if not request.tools or (ends_with_tool and not forced):
        return None
    tool = toolcall.choose_tool(request.tools, request.tool_choice, reading.prompt)
    if tool is None:
        return None
    salt = hashlib.blake2b(f"{reading.prompt}|{reading.variant}".encode(), digest_size=8)
    call = toolcall.tool_call(tool, reading.prompt, salt.hexdigest())
    return Draft("tool_call", tool_calls=[call])


def _tool_result(reading: Reading) -> Draft | None:
    if not reading.messages or reading.messages[-1].get("role") != "tool":
        return None
    results = toolcall.tool_results(reading.messages)
    parts = [f"The {name} tool says: {text.rstrip('.')}." for name, text in results if text]
    return Draft("tool_result", " ".join(parts) or "The tool returned nothing.")


def _identity(reading: Reading) -> Draft | None:
    if not _IDENTITY.search(reading.prompt):
        return None
    model: ModelInfo = reading.request.model
    return Draft(
        "identity",
        "I am the local STACKIT-compatible server running the scripted engine, answering as "
        f"model {model.id}. My replies are built by fixed rules from your prompt and a small "
        "fact table, not by a real model. With STACKIT_API_KEY set, the same code talks to the "
        "real STACKIT AI Model Serving instead.",
    )


def _vision(reading: Reading) -> Draft | None:
    if not reading.request.model.supports("vision"):
        return None
    images = reading.request.images_asked_about()
    if not images:
        return None
    limit = 1 if reading.asked.one_word else reading.asked.max_words
    if limit is not None:
        return Draft("vision", " ".join(_short_image(i, limit // len(images)) for i in images))
    if len(images) == 1:
        text = _image_sentence("The image", images[0])
    else:
        text = " ".join(_image_sentence(f"Image {n}", i) for n, i in enumerate(images, 1))
    if not re.search(r"\bcolou?rs?\b|\bbright|\bdark|\bsize\b", reading.prompt, re.IGNORECASE):
        text += (
            " The local scripted engine only measures colours, brightness and size; it cannot "
            "tell what the picture shows."
        )
    return Draft("vision", text)


def _short_image(image: ImageFacts, limit: int) -> str:
    """The longest of a few short descriptions that fits in ``limit`` words."""
    colour = image.dominant_colour
    forms = (
        f"A {image.brightness_word()}, mostly {colour} image.",
        f"A mostly {colour} image.",
        f"{colour.capitalize()} image.",
        f"{colour.capitalize()}.",
    )
    return next((f for f in forms if len(f.split()) <= limit), forms[-1])


def _image_sentence(name: str, image: ImageFacts) -> str:
    colours = f"mostly {image.dominant_colour}"
    if (second := image.secondary_colour()) is not None:
        colours += f" with some {second}"
    return (
        f"{name} is {colours} and {image.brightness_word()}, "
        f"{image.width} by {image.height} pixels ({image.format})."
    )


def _small_talk(reading: Reading) -> Draft | None:
    prompt = reading.prompt
    if _GREETING.match(prompt):
        return Draft("small talk", f"Hello! {_WHAT_I_DO}")
    if _THANKS.match(prompt):
        return Draft("small talk", "You're welcome!")
    if _HOW_ARE_YOU.match(prompt):
        return Draft("small talk", f"I am fine, thank you. {_WHAT_I_DO}")
    if _CAPABILITIES.match(prompt):
        return Draft("small talk", _WHAT_I_DO)
    return None


def _recall(reading: Reading) -> Draft | None:
    if not _RECALL.search(reading.prompt):
        return None
    index, _ = reading.request.last_user()
    asked = [text_of(m.get("content")) for m in reading.messages[:index] if m.get("role") == "user"]
    if not asked:
        return Draft("recall", "This is the first question of our conversation.")
    first = "first" in reading.prompt.lower()
    question = asked[0] if first else asked[-1]
    which = "first" if first else "last"
    quote = prose.quoted(question)
    end = "" if quote[-2:-1] in (".", "?", "!") else "."
    return Draft("recall", f"Your {which} question was {quote}{end}")


def _grounded(reading: Reading) -> Draft | None:
    found = grounding.split(reading.others(), reading.prompt, text_of)
    if found is None:
        return None
    if not found.sentences:
        return Draft("grounded", grounding.not_found(found))
    asked = reading.asked
    if found.summary:
        if asked.sentences is None and asked.max_words is None:
            asked.sentences = 1 if asked.brief else min(2, len(found.sentences))
        # The most central sentences, told in the order of the text.
        count = asked.sentences or len(found.sentences)
        top = sorted(list(zip(found.positions, found.sentences, strict=True))[:count])
        sentences = [sentence for _, sentence in top] + found.sentences[count:]
    else:
        sentences = []
        cited: set[str] = set()
        for sentence, label in zip(found.sentences, found.labels, strict=True):
            sentences.append(sentence if label in cited else grounding.cite(sentence, label))
            cited.add(label)
    material = compose.Material(sentences, reading.subject(), gist=sentences[0])
    return Draft("grounded", compose.render(material, asked, reading.variant), material=material)


def _joke(reading: Reading) -> Draft | None:
    if not _JOKE.search(reading.prompt):
        return None
    jokes = knowledge.joke(reading.asked.rest) or facts.JOKES
    return Draft("joke", jokes[prose.stable_pick(len(jokes), reading.prompt, reading.variant)])


def _count_to(reading: Reading) -> Draft | None:
    if (count := _COUNT_TO.search(reading.prompt)) is None:
        return None
    return Draft("long", prose.count_to(_number(count[1])))


def _long(reading: Reading) -> Draft | None:
    asked = reading.asked
    if asked.length is None:
        return None
    amount = min(asked.length, MAX_GENERATED_TOKENS)
    material = _material(reading) or _unknown_material(reading)
    gist = [material.gist] if material.gist else []
    general = prose.general_sentences(material.subject, reading.variant)
    sentences = chain(material.sentences, gist, general)
    text = prose.exact_length(sentences, amount, asked.length_unit or "words")
    return Draft("long", text, material=material)


def _sum(reading: Reading) -> Draft | None:
    if (match := _SUM.match(reading.prompt)) is None:
        return None
    a, op, b = float(match[1]), match[2].lower(), float(match[3])
    if op in ("/", "÷", "divided by") and b == 0:
        return Draft("arithmetic", f"{match[1]} divided by 0 is not defined.")
    value = {
        "+": a + b, "plus": a + b, "-": a - b, "minus": a - b, "*": a * b, "x": a * b,
        "×": a * b, "times": a * b,
    }.get(op, a / b if b else 0.0)  # fmt: skip
    shown = f"{value:g}" if not float(value).is_integer() else f"{int(value)}"
    return Draft("arithmetic", f"{match[1]} {match[2]} {match[3]} = {shown}.")


def _beyond(reading: Reading) -> Draft | None:
    for what, instead, pattern in _BEYOND:
        if pattern.search(reading.prompt):
            return Draft("decline", f"The local scripted engine {what}. {instead}")
    if reading.asked.yes_no:
        return Draft(
            "decline",
            f"The local scripted engine cannot judge yes or no. {fact_answers.REAL_MODEL}",
        )
    return None


def _known(reading: Reading) -> Draft | None:
    material = _material(reading)
    if material is None:
        return None
    asked = reading.asked
    if material.steps and not (asked.found or asked.brief):
        # A recipe with no form asked for: what you need, then the steps as a numbered list.
        steps = "\n".join(f"{i}. {step}" for i, step in enumerate(material.points, 1))
        text = f"{material.sentences[0]}\n\n{steps}\n\n{material.sentences[-1]}"
    else:
        text = compose.render(material, asked, reading.variant)
    return Draft("explain", text, material=material)


def _unknown(reading: Reading) -> Draft:
    material = _unknown_material(reading)
    sentences = material.sentences
    asked = reading.asked
    short = asked.sentences == 1 or asked.brief or asked.one_word or asked.max_words
    text = sentences[0] if short else " ".join(sentences)
    if asked.max_words is not None:
        text = prose.limit_words(text, asked.max_words)
    return Draft("decline", text, material=material)


def _unknown_material(reading: Reading) -> compose.Material:
    return fact_answers.unknown(reading.subject())


def _material(reading: Reading) -> compose.Material | None:
    """What the fact table holds for the prompt (a follow-up continues the earlier topic)."""
    text = reading.asked.rest or reading.prompt
    follow_up = _FOLLOW_UP.search(reading.prompt) is not None
    earlier = _earlier_user_texts(reading)
    if knowledge.topic(text) is None and knowledge.city(text) is None and follow_up and earlier:
        text = f"{earlier[-1]} {text}"
    material = fact_answers.for_text(text)
    if material is not None and follow_up and earlier:
        said = " ".join(
            text_of(m.get("content")) for m in reading.messages if m.get("role") == "assistant"
        )
        fresh = [s for s in material.sentences if s not in said]
        material.sentences = fresh or [
            f"That is all the local scripted engine's fact table holds about {material.subject}."
        ]
        material.simple = [s for s in material.simple if s not in said]
    return material


def _earlier_user_texts(reading: Reading) -> list[str]:
    index, _ = reading.request.last_user()
    return [text_of(m.get("content")) for m in reading.messages[:index] if m.get("role") == "user"]


def _number(text: str) -> int:
    return min(int(re.sub(r"[,_]", "", text)), MAX_GENERATED_TOKENS)


#: The rules, in order of precedence. The last one always answers.
RULES: tuple[tuple[str, Callable[[Reading], Draft | None]], ...] = (
    ("tool call", _tool_call),
    ("tool result", _tool_result),
    ("identity", _identity),
    ("small talk", _small_talk),
    ("image", _vision),
    ("recall", _recall),
    ("documents", _grounded),
    ("joke", _joke),
    ("count to", _count_to),
    ("long text", _long),
    ("sum", _sum),
    ("beyond the engine", _beyond),
    ("fact table", _known),
)


def draft(reading: Reading) -> Draft:
    """The first rule's answer; an honest refusal when no rule applies."""
    for _, rule in RULES:
        if (result := rule(reading)) is not None:
            return result
    return _unknown(reading)
