"""Answers from the documents a conversation carries (RAG prompts, pasted texts, context blocks).

A prompt carries documents when it has labelled lines (``[help/password.md] To reset ...``),
numbered document headers (``Document 1:``, Haystack's own RAG templates), a ``Context:`` /
``Documents:`` block before a ``Question:``, or a text pasted after "Summarise this:". The answer
is the sentence (or two) that shares the most rare words with the question, with the label of
its document; when no sentence shares any, the answer says that the documents do not contain it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from stackit_nb.local import prose

_LABELLED = re.compile(r"^[ \t]*(?:[-*][ \t]*)?\[([^\]\n]{1,120})\][ \t]*(\S.*)$", re.MULTILINE)
_HEADER = re.compile(
    r"^[ \t]*(?:[-*#]+[ \t]*)?((?:document|doc|passage|chunk|article|source|file)[ \t]*#?[ \t]*"
    r"[\w./-]*)[ \t]*(?:\(([^)\n]{1,120})\))?[ \t]*[:.-][ \t]*(.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_BLOCK_HEAD = re.compile(
    r"^[ \t]*(?:here (?:is|are) (?:the |some )?)?(?:documents?|context|sources?|passages?|"
    r"information|notes?|text|articles?)(?: below)?[ \t]*:[ \t]*(.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_QUESTION = re.compile(r"(?:^|\n)[ \t]*(?:question|query|q)[ \t]*:[ \t]*(.*)", re.IGNORECASE)
_ANSWER_CUE = re.compile(r"\n[ \t]*(?:answer|a)[ \t]*:.*$", re.IGNORECASE | re.DOTALL)
_PASTE = re.compile(
    r"^\s*(?:please\s+)?(?:summari[sz]e|tl;?dr|shorten|condense|give me (?:a|the) "
    r"(?:summary|gist))\b[^:\n]{0,60}:\s*(\S[\s\S]*)$",
    re.IGNORECASE,
)
_HEADING = re.compile(r"^\s*#{1,6}\s")
# Questions about an amount or a time are answered by a sentence with a number in it.
_QUANTITY = re.compile(
    r"\b(?:how (?:long|many|much|big|large|old|often|far|soon)|when|what time|which day)\b",
    re.IGNORECASE,
)
# Words of a grounding instruction (how to answer) and of the question's form (how big, how
# many, what happens): neither says what the question is about.
_NOT_TOPICS = {
    "document", "documents", "source", "sources", "context", "passage", "text", "many", "much",
    "big", "large", "long", "old", "often", "far", "soon", "may", "might", "must", "happen",
    "happens", "get", "got", "tell", "know", "find", "way", "kind", "able", "exactly",
}  # fmt: skip


@dataclass
class Passage:
    """One document's text and the label the prompt gives it."""

    label: str
    text: str
    title: str = ""  # a Markdown heading of the document: its words count for every sentence


@dataclass
class Grounded:
    """What the documents say about the question."""

    sentences: list[str]  # best first
    labels: list[str]  # the documents those sentences come from, in the same order
    all_labels: list[str]  # every document the prompt carries
    question: str
    summary: bool = False  # a pasted text to summarise rather than a question to answer
    vocabulary: set[str] = field(default_factory=set)  # stems of every document's text and title
    positions: list[int] = field(default_factory=list)  # each sentence's place in the text


def _passages(text: str) -> list[Passage]:
    """The labelled or headed passages of ``text``; plain paragraphs when there are none."""
    passages: list[Passage] = []
    current: Passage | None = None
    for line in text.splitlines():
        if _HEADING.match(line):
            # A heading names what a document is about; it answers nothing by itself.
            if current is not None:
                current.title = f"{current.title} {line.lstrip('# ')}".strip()
            continue
        if (match := _LABELLED.match(line)) is not None:
            heading = _HEADING.match(match[2])
            current = Passage(match[1].strip(), "" if heading else match[2].strip())
            if heading:
                current.title = match[2].lstrip("# ").strip()
            passages.append(current)
        elif (match := _BLOCK_HEAD.match(line)) is not None:
            # What came before "Context:" without a label was the instruction, not a document.
            passages = [p for p in passages if p.label]
            current = Passage("", match[1].strip()) if match[1].strip() else None
            if current is not None:
                passages.append(current)
        elif (match := _HEADER.match(line)) is not None and len(match[1]) < 40:
            label = (match[2] or match[1]).strip()
            current = Passage(label[:1].upper() + label[1:], match[3].strip())
            passages.append(current)
        elif not line.strip():
            if current is not None and not current.label:
                current = None  # a blank line ends an unlabelled paragraph
        elif current is None:
            current = Passage("", line.strip())
            passages.append(current)
        else:
            current.text = f"{current.text} {line.strip()}".strip()
    passages = [p for p in passages if p.text]
    unlabelled = [p for p in passages if not p.label]
    for i, passage in enumerate(unlabelled, 1):
        passage.label = "the text" if len(unlabelled) == 1 else f"passage {i}"
    return passages


def split(others: list[dict], user_text: str, text_of: Callable[[object], str]) -> Grounded | None:
    """The question and the documents of a conversation, or None when it carries none.

    ``user_text`` is the last user message; ``others`` (system prompts, earlier turns) may hold
    the documents too.
    """
    question, own = user_text, ""
    if (match := _PASTE.match(user_text)) is not None:
        passages = _passages(match[1])
        if passages:
            return _summary(passages, user_text[: match.start(1)])
    if (match := _QUESTION.search(user_text)) is not None:
        question = _ANSWER_CUE.sub("", match[1] + user_text[match.end() :]).strip()
        own = user_text[: match.start()]
    elif _LABELLED.search(user_text) or any(_HEADER.match(x) for x in user_text.splitlines()):
        lines = [x for x in user_text.splitlines() if x.strip()]
        question, own = lines[-1], "\n".join(lines[:-1])
    passages = _passages(own) if own.strip() else []
    if not passages:
        earlier = "\n\n".join(
            text_of(m.get("content")) for m in others if m.get("role") in ("system", "user")
        )
        if _LABELLED.search(earlier) or _BLOCK_HEAD.search(earlier) or _HEADER.search(earlier):
            passages = _passages(earlier)
    if not passages:
        return None
    return _answer(passages, question.strip())


def _stems(text: str) -> set[str]:
    return {prose.stem(w) for w in prose.words(text) if w not in prose.COMMON_WORDS}


def _answer(passages: list[Passage], question: str) -> Grounded:
    asked = _stems(question) - _NOT_TOPICS
    candidates = [(p.label, s) for p in passages for s in prose.sentences_of(p.text)]
    titles = {p.label: _stems(p.title) for p in passages}
    # Inverse document frequency: a word in every sentence says little about which one answers.
    frequency: dict[str, int] = {}
    for _, sentence in candidates:
        for word in _stems(sentence):
            frequency[word] = frequency.get(word, 0) + 1
    total = len(candidates)

    def weight(word: str) -> float:  # a word no document has weighs most: it is what is asked
        return math.log(1 + total / frequency.get(word, 0.5))

    asked_weight = sum(weight(w) for w in asked)
    wants_number = _QUANTITY.search(question) is not None
    scored = []
    for order, (label, sentence) in enumerate(candidates):
        own = asked & _stems(sentence)
        via_title = (asked & titles.get(label, set())) - own
        covered = sum(weight(w) for w in own) + sum(weight(w) for w in via_title)
        # A sentence that covers less than half of what is asked answers another question; one
        # that shares nothing with it itself only stands under a fitting heading.
        if not own or covered < 0.5 * asked_weight:
            continue
        score = covered - 0.5 * sum(weight(w) for w in via_title)
        if wants_number and re.search(r"\d", sentence):
            score *= 1.5
        scored.append((-score, order, label, sentence))
    scored.sort()
    best = scored[:1]
    # A second sentence only when it is nearly as relevant: more is padding.
    if len(scored) > 1 and scored[1][0] <= 0.6 * scored[0][0]:
        best.append(scored[1])
    all_labels = list(dict.fromkeys(p.label for p in passages))
    vocabulary = set(frequency) | {w for stems in titles.values() for w in stems}
    return Grounded(
        [b[3] for b in best], [b[2] for b in best], all_labels, question, vocabulary=vocabulary
    )


def _summary(passages: list[Passage], instruction: str) -> Grounded:
    """The sentences that carry the text's most frequent words, in their original order."""
    sentences = [(p.label, s) for p in passages for s in prose.sentences_of(p.text)]
    frequency: dict[str, int] = {}
    for _, sentence in sentences:
        for word in _stems(sentence):
            frequency[word] = frequency.get(word, 0) + 1
    ranked = sorted(
        range(len(sentences)),
        key=lambda i: (
            -sum(frequency[w] for w in _stems(sentences[i][1]))
            / (1 + len(sentences[i][1].split())) ** 0.5
        ),
    )
    labels = list(dict.fromkeys(p.label for p in passages))
    picked = [sentences[i] for i in ranked]  # most central first
    return Grounded(
        [s for _, s in picked],
        [lbl for lbl, _ in picked],
        labels,
        instruction,
        summary=True,
        positions=ranked,
    )


def cite(sentence: str, label: str) -> str:
    """``sentence`` attributed to ``label``: "According to help/a.md, to reset ..."."""
    first = sentence.split(" ", 1)[0]
    if first.lower() in prose.COMMON_WORDS and first != "I":
        return f"According to {label}, {sentence[:1].lower()}{sentence[1:]}"
    # Lowercasing any other first word could turn a name into a noun ("Paris", "Bikes").
    return f"According to {label}: {sentence}"


def not_found(grounded: Grounded) -> str:
    """One sentence saying that the documents do not answer the question (and, where it is so,
    which of its words no document mentions)."""
    asked = [w for w in prose.keywords(grounded.question) if w not in _NOT_TOPICS]
    missing = [w for w in asked if prose.stem(w) not in grounded.vocabulary]
    labels = grounded.all_labels
    which = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
    one = len(labels) == 1
    head = (
        f"The document ({which}) does not contain the answer"
        if one
        else f"The documents ({which}) do not contain the answer"
    )
    if not missing:
        return f"{head}."
    about = " or ".join(f'"{w}"' for w in missing[:3])
    return f"{head}: {'it does not mention' if one else 'none of them mentions'} {about}."
