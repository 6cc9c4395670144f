"""The wire contract where only a real model can answer: the smollm2 engine's own logprobs and
the stop string it names in ``stop_reason`` (vLLM's fields; see ``test_conformance.py``)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import openai
import pytest

from stackit_nb.local import LocalSTACKIT

CHAT = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"


@pytest.fixture(scope="module")
def llm(smollm2_engine: None) -> Iterator[LocalSTACKIT]:
    with LocalSTACKIT(engine="smollm2") as srv:
        yield srv


def client(srv: LocalSTACKIT) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url, api_key=srv.api_key, max_retries=0, timeout=120)


def test_logprobs_are_the_models_own(llm: LocalSTACKIT) -> None:
    reply = client(llm).chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Say hello."}],
        logprobs=True,
        top_logprobs=3,
        max_tokens=6,
        temperature=0,
    )
    choice = reply.choices[0]
    entries = choice.logprobs.content  # type: ignore[union-attr]
    assert entries is not None and len(entries) == 6
    assert "".join(e.token for e in entries) == choice.message.content
    for entry in entries:
        values = [t.logprob for t in entry.top_logprobs]
        assert len(values) == 3 and values == sorted(values, reverse=True)
        assert entry.token in [t.token for t in entry.top_logprobs]  # greedy: the likeliest
        assert entry.logprob == max(values) <= 0
        assert sum(math.exp(v) for v in values) <= 1.0 + 1e-6
    # a real distribution, not the scripted engine's: the numbers differ from token to token
    assert len({round(e.logprob, 3) for e in entries}) > 1


def test_streamed_chunks_carry_their_own_tokens_logprobs(llm: LocalSTACKIT) -> None:
    stream = client(llm).chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Say hello."}],
        logprobs=True,
        top_logprobs=1,
        max_tokens=6,
        temperature=0,
        stream=True,
    )
    pieces = [c.choices[0] for c in stream if c.choices and c.choices[0].delta.content]
    assert pieces
    for piece in pieces:
        own = piece.logprobs.content  # type: ignore[union-attr]
        assert own and "".join(e.token for e in own) == piece.delta.content


def test_stop_reason_names_the_stop_string(llm: LocalSTACKIT) -> None:
    reply = client(llm).chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Count from 1 to 10, separated by commas."}],
        stop=["5"],
        max_tokens=40,
        temperature=0,
    )
    choice = reply.model_dump()["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["stop_reason"] == "5"
    assert "5" not in (choice["message"]["content"] or "")
