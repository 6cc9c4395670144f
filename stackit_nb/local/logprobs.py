"""Log probabilities for replies whose engine reports none of its own (the scripted engine).

vLLM answers ``logprobs: true`` with one entry per generated token: the token, its log
probability, its UTF-8 bytes and the ``top_logprobs`` most likely tokens at that position. The
local server makes the same shape from a reply's finished text, deterministically and
self-consistently: the tokens are the toy tokenizer's pieces (so they join to the content, and a
streamed chunk carries exactly the entries of its own text), every log probability is at most 0,
the chosen token is the most likely one (greedy-looking, so it is always among the alternatives),
the alternatives are sorted and their probabilities sum to less than 1. The same text at the same
position always gets the same numbers.

A real model's engine (smollm2) reports the model's own numbers instead; see
``engines/smollm2_reply.py``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from stackit_nb.local.tokens import split_tokens

#: The most alternatives a request may ask for (vLLM's default ``--max-logprobs``).
MAX_TOP_LOGPROBS = 20

# What the alternatives at a position are drawn from: common English tokens, so that a reader of
# the numbers sees plausible competitors. There are more than MAX_TOP_LOGPROBS, so a position
# always has enough that differ from the chosen token.
_ALTERNATIVES = (
    " the", " a", " and", " of", " to", " in", " is", " it", ",", ".", " that", " for", " with",
    " on", " as", " this", " be", " at", " or", " by", "\n", " an", " not", " are", " was",
    " you", " I", " we", " can", " from", " which", " one",
)  # fmt: skip


def _unit(*parts: object) -> tuple[float, int]:
    """A stable number in [0, 1) and an integer, both from ``parts``."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8], "big") / 2**64, int.from_bytes(digest[8:], "big")


def _item(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def token_entry(token: str, position: int, top: int, salt: str = "") -> dict[str, Any]:
    """The ``logprobs.content`` entry of ``token`` at ``position``, with ``top`` alternatives."""
    unit, pick = _unit(salt, position, token)
    chosen = 0.5 + 0.4999 * unit  # above every alternative: those share what is left
    rest = 1.0 - chosen
    alternatives = [_item(token, math.log(chosen))]
    for offset in range(len(_ALTERNATIVES)):
        if len(alternatives) >= top:
            break
        candidate = _ALTERNATIVES[(pick + offset) % len(_ALTERNATIVES)]
        if candidate != token:
            share = rest * 0.5 ** len(alternatives)  # halving shares: sorted, and sum below rest
            alternatives.append(_item(candidate, math.log(share)))
    return {**_item(token, math.log(chosen)), "top_logprobs": alternatives[:top]}


def text_entries(text: str, top: int, *, start: int = 0, salt: str = "") -> list[dict[str, Any]]:
    """The entries of every token of ``text``, the first at position ``start``."""
    return [token_entry(token, start + i, top, salt) for i, token in enumerate(split_tokens(text))]


def forced_entries(text: str, top: int) -> list[dict[str, Any]]:
    """Entries for text a server wrote into a reply itself (not sampled): certain, logprob 0."""
    return [
        {**_item(token, 0.0), "top_logprobs": [_item(token, 0.0)][:top]}
        for token in split_tokens(text)
    ]


def completion_logprobs(entries: list[dict[str, Any]], offset: int = 0) -> dict[str, Any]:
    """Chat-style entries in the legacy ``/v1/completions`` shape (``text_offset`` from
    ``offset``); as vLLM does, each ``top_logprobs`` dict holds the chosen token and the
    alternatives asked for."""
    offsets, position = [], offset
    for entry in entries:
        offsets.append(position)
        position += len(entry["token"])
    return {
        "text_offset": offsets,
        "token_logprobs": [entry["logprob"] for entry in entries],
        "tokens": [entry["token"] for entry in entries],
        "top_logprobs": [
            {item["token"]: item["logprob"] for item in entry["top_logprobs"]} for entry in entries
        ],
    }
