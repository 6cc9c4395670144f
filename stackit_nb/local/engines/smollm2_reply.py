"""One reply of the smollm2 engine, token by token: reasoning first (reasoning models), then the
answer, every piece handed over as soon as it is generated.

Reasoning, for the models whose catalog capabilities include ``reasoning`` (the gpt-oss ids), is
what STACKIT's gpt-oss streams before its answer, made the way a small model can: a first pass
asks the model to plan its answer instead of giving it (:data:`REASONING_TOKENS` tokens at most,
by ``reasoning_effort``), streamed as reasoning pieces; the answer is then generated with those
notes in its context. Both passes count as completion tokens and share ``max_tokens``, as on
vLLM: reasoning that uses the whole budget ends the reply with ``length`` and empty content.

A JSON reply (``response_format``) is sampled under a bounded grammar and followed by a
:class:`~stackit_nb.local.engines.json_closer.JsonCloser`: generation stops while the text that
completes the JSON still fits the budget, and that text ends the reply, so the reply parses and
validates (``finish_reason`` ``stop``). Only a budget too small for even the smallest valid
value cuts the JSON (``length``), as a real server would.
"""

from __future__ import annotations

import codecs
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

from stackit_nb.local.engines.interface import ChatRequest, Choice, Piece
from stackit_nb.local.engines.smollm2_text import (
    REASONING_OPENING,
    StopText,
    measurement_prefix,
)
from stackit_nb.local.engines.structured_output import closer_for, grammar_kind, json_grammar
from stackit_nb.local.logprobs import forced_entries

DEFAULT_TEMPERATURE = 0.2  # what the SmolLM2 model card recommends
REPEAT_PENALTY = 1.1  # llama.cpp's chat default; curbs the loops small models fall into
#: Tokens the planning pass of a reasoning model may use, by ``reasoning_effort`` (vLLM's
#: default effort for gpt-oss is medium).
REASONING_TOKENS = {"low": 64, "medium": 128, "high": 256}


class Stopped(Exception):
    """The request went away (client gone, server stopping): stop generating."""


class ReplyWriter:
    """Writes the choices of one request with a loaded model; one instance per request.

    ``render(request, **notes)`` is the prompt text in the model's chat template (see
    :func:`~stackit_nb.local.engines.smollm2_text.template_messages` for the keywords).
    """

    def __init__(
        self,
        llm: Any,
        render: Callable[..., str],
        request: ChatRequest,
        n_ctx: int,
        stop: threading.Event,
        put: Callable[[object], None],
    ) -> None:
        self._llm, self._render, self._request = llm, render, request
        self._n_ctx, self._stop, self._put = n_ctx, stop, put
        self.last_entry: dict[str, Any] | None = None

    def choice(self, index: int, budget: int) -> Choice:
        """Choice ``index`` within ``budget`` completion tokens; raises :class:`Stopped`."""
        request = self._request
        seed = request.seed + index if request.seed is not None else random.getrandbits(31)
        self._llm.set_seed(seed)
        thinking, used = None, 0
        if request.model.supports("reasoning"):
            effort = request.reasoning_effort or "medium"
            thinking, used = self._reason(index, min(REASONING_TOKENS[effort], budget))
            if used >= budget:
                return Choice(index, "", thinking, [], "length", used)
        content, spent, finish, entries, stop_reason = self._answer(
            index, budget - used, thinking or ""
        )
        return Choice(
            index,
            content,
            thinking,
            [],
            finish,
            used + spent,
            stop_reason=stop_reason,
            logprobs=entries if request.logprobs else None,
        )

    # ---- the two passes ----------------------------------------------------------------------

    def _reason(self, index: int, limit: int) -> tuple[str, int]:
        """The planning pass: its text, streamed as reasoning, and the tokens it used."""
        prompt = self._prompt(plan=True)
        opening = self._tokenize(REASONING_OPENING)[: max(min(limit, self._room(prompt)), 0)]
        said = [self._llm.detokenize(opening).decode("utf-8", "ignore")]
        self._put(Piece(index, reasoning=said[0]))
        used = len(opening)
        limit = min(limit, used + self._room(prompt + opening))
        if used < limit:
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            for raw in self._tokens(prompt + opening):
                used += 1
                if text := decoder.decode(raw):
                    said.append(text)
                    self._put(Piece(index, reasoning=text))
                if used >= limit:
                    break
            if rest := decoder.decode(b"", final=True):
                said.append(rest)
                self._put(Piece(index, reasoning=rest))
        return "".join(said), used

    def _answer(
        self, index: int, budget: int, notes: str
    ) -> tuple[str, int, str, list[dict[str, Any]], str | None]:
        """The answer: its text, the tokens it used, its finish reason, the logprobs entries of
        its tokens (text the server forced, such as the measurement prefix, as certain) and the
        stop string that ended it."""
        request = self._request
        prompt = self._prompt(notes=notes)
        budget = min(budget, self._room(prompt))
        if budget <= 0:
            return "", 0, "length", [], None
        entries: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = []  # entries of generated text not handed over yet

        def put(text: str, forced: bool = False) -> None:
            found = forced_entries(text, request.top_logprobs) if forced else pending[:]
            pending.clear()
            entries.extend(found)
            self._put(Piece(index, content=text, logprobs=found if request.logprobs else None))

        prefix = "" if grammar_kind(request.response_format) else measurement_prefix(request)
        used = 0
        if prefix:
            # The reply opens with the prefix, and the model continues from it (so it is in the
            # model's context, and counts as completion tokens like any text of the reply).
            prefix_tokens = self._tokenize(prefix)[:budget]
            prefix = self._llm.detokenize(prefix_tokens).decode("utf-8", "ignore")
            prompt, used = prompt + prefix_tokens, len(prefix_tokens)
            put(prefix, forced=True)
        closer = closer_for(request.response_format)
        if closer is not None and self._count(closer.closing()) > budget:
            closer = None  # not even the smallest valid value fits: cut at the budget instead
        text = StopText(request.stop)
        finish, stop_reason = "length", None
        if used < budget:
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            for raw in self._tokens(prompt, json_grammar(request.response_format)):
                piece = decoder.decode(raw)
                if closer is not None:
                    trial = closer.copy()
                    trial.feed(piece)
                    if used + 1 + self._count(trial.closing()) > budget:
                        break  # keep room for the text that completes the JSON
                    closer = trial
                used += 1
                if request.logprobs and self.last_entry is not None:
                    pending.append(self.last_entry)
                found, ready = text.add(piece)
                if ready or (found and pending):
                    put(ready)
                if found:
                    finish, stop_reason = "stop", text.stopped_by
                    break
                if used >= budget:
                    break
            else:
                finish = "stop"  # the model ended its turn
            rest = "" if text.stopped else text.add(decoder.decode(b"", final=True))[1]
            if rest := rest + text.flush():
                put(rest)
        tail = ""
        if closer is not None and not closer.done and not text.stopped:
            tail = closer.closing()
            put(tail, forced=True)
            used, finish = used + self._count(tail), "stop"
        return prefix + text.value + tail, used, finish, entries, stop_reason

    # ---- the model ---------------------------------------------------------------------------

    def _tokens(self, prompt: list[int], grammar: Any = None) -> Iterator[bytes]:
        """Each generated token's bytes, until the model ends its turn (with logprobs asked
        for, each token's entry is left in ``self.last_entry``)."""
        import llama_cpp

        request = self._request
        temperature = DEFAULT_TEMPERATURE if request.temperature is None else request.temperature
        vocab = self._llm._model.vocab  # llama-cpp-python's own completion code reads it so
        tokens = self._llm.generate(
            prompt, temp=temperature, repeat_penalty=REPEAT_PENALTY, grammar=grammar
        )
        for token in tokens:
            if self._stop.is_set():
                raise Stopped
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                return
            if request.logprobs:
                self.last_entry = self._entry(token)
            yield self._llm.detokenize([token])

    def _entry(self, token: int) -> dict[str, Any]:
        """The model's own ``logprobs.content`` entry for the token just sampled: log-softmax of
        the raw logits it was sampled from (as vLLM reports them), with the most likely
        alternatives; the sampled token is always among them."""
        import numpy as np

        llm, top = self._llm, self._request.top_logprobs
        # llama-cpp-python keeps no logits row unless built with logits_all (which costs a row
        # per prompt token); the context still holds the last decoded position's logits, and
        # they are what this token was sampled from.
        raw = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
        logprobs = llm.logits_to_logprobs(raw.copy())
        best = [int(i) for i in np.argsort(-logprobs)[: max(top, 1)]]
        if token not in best:
            best[-1] = token
        ranked = sorted(best, key=lambda i: -float(logprobs[i]))[:top]

        def item(i: int) -> dict[str, Any]:
            text = llm.detokenize([i]).decode("utf-8", "replace")
            value = float(logprobs[i])
            return {"token": text, "logprob": value, "bytes": list(text.encode())}

        return {**item(token), "top_logprobs": [item(i) for i in ranked]}

    def _prompt(self, **notes: Any) -> list[int]:
        text = self._render(self._request, **notes)
        return list(self._llm.tokenize(text.encode(), add_bos=False, special=True))

    def _tokenize(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode(), add_bos=False, special=False))

    def _count(self, text: str) -> int:
        return len(self._tokenize(text)) if text else 0

    def _room(self, prompt: list[int]) -> int:
        """Tokens the context has left after ``prompt``."""
        return self._n_ctx - len(prompt)
