"""The subject of a prompt as a phrase that reads well inside a sentence.

"Explain how rivers shape a landscape." -> "how rivers shape a landscape";
"Why is the sky blue?" -> "why the sky is blue"; "Tell me about glaciers" -> "glaciers".
The phrase fits where a noun phrase or a "how ..."-clause fits: "Textbooks cover {subject}."
"""

from __future__ import annotations

import re

_LEAD_IN = re.compile(
    r"^\s*(?:(?:please|ok|okay|hi|hello|hey)[,!]?\s+)*(?:(?:can|could|would|will) you\s+)?"
    r"(?:please\s+)?(?:"
    r"explain(?:\s+to\s+me)?|describe|define|summari[sz]e|discuss|outline|"
    r"tell me(?:\s+(?:a\s+bit|a\s+little|more|something|everything))?(?:\s+(?:about|on))?|"
    r"talk about|teach me(?:\s+about)?|"
    r"(?:write|give(?:\s+me)?|compose|generate|create|produce|suggest|name)"
    r"(?:\s+(?:a|an|some|the))?"
    r"(?:\s+(?:short|brief|quick|long|simple|little))?"
    r"(?:\s+(?:text|essay|paragraph|story|poem|article|overview|summary|answer|explanation|"
    r"description|introduction|list|tips|facts|examples|ideas|points|reasons|steps))?"
    r"(?:\s+(?:about|on|of|for))?|"
    r"what(?:'s| is| are)(?:\s+(?:a|an|the))?|who (?:is|was|are|were)"
    r")\s+",
    re.IGNORECASE,
)
_INVERTED = re.compile(
    r"^(why|how|when|where|what)\s+(is|are|was|were|does|do|did|can|could)\s+"
    r"((?:the|a|an|my|your|our|their|this|that)\s+)?([\w-]+)\s*(.*)$",
    re.IGNORECASE,
)


def subject(text: str) -> str:
    """The subject of ``text`` (a prompt with its instruction spans already cut out)."""
    line = " ".join(text.split())
    for _ in range(2):  # "Please explain ...", "Can you tell me about ..."
        line = _LEAD_IN.sub("", line, count=1)
    line = re.sub(r"\s+(?:to me|please|for me)(?=[.?!]*$)", "", line)
    line = line.strip(" .?!:;,")
    if (match := _INVERTED.match(line)) is not None:
        wh, verb, det, noun, tail = match.groups()
        det = det or ""
        if verb.lower() in ("does",):
            tail = _third_person(tail)
            line = f"{wh} {det}{noun} {tail}"
        elif verb.lower() in ("do", "did"):
            line = f"{wh} {det}{noun} {tail}" if verb.lower() == "do" else line
        else:
            line = f"{wh} {det}{noun} {verb} {tail}"
    line = line.strip()
    if not line or len(line.split()) > 12:
        return "this question"
    return line[:1].lower() + line[1:] if line[:1].isupper() and _common_start(line) else line


def _third_person(tail: str) -> str:
    """``"work in winter"`` -> ``"works in winter"``: the verb after "does <noun>"."""
    verb, _, rest = tail.partition(" ")
    if not verb:
        return tail
    if verb.endswith(("s", "sh", "ch", "x", "o")):
        verb += "es"
    elif verb.endswith("y") and verb[-2:-1] not in "aeiou":
        verb = verb[:-1] + "ies"
    else:
        verb += "s"
    return f"{verb} {rest}".strip()


def _common_start(line: str) -> bool:
    first = line.split(" ", 1)[0].lower()
    return first in {"how", "why", "what", "when", "where", "the", "a", "an", "which", "who"}
