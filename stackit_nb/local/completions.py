"""``POST /v1/completions``: the legacy text-completion endpoint, as vLLM serves it.

STACKIT's endpoint list includes it, and completion-style clients (``openai.completions``,
LangChain's ``OpenAI``, code-completion plugins) use it. A prompt (a string, strings, token ids or
lists of token ids) is answered by the same engines as a chat request whose only message is the
prompt; the response is vLLM's ``text_completion`` object, plain or streamed, with ``choices``
numbered prompt by prompt (``prompt_index * n + i``), as vLLM numbers them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from stackit_nb.local import catalog
from stackit_nb.local.api_error import APIError
from stackit_nb.local.engines.interface import ChatRequest, Choice
from stackit_nb.local.logprobs import completion_logprobs, text_entries
from stackit_nb.local.tokens import split_tokens
from stackit_nb.local.validate import (
    RequestBody,
    StreamOptions,
    TextOrTokens,
    chat_model_or_error,
    check_stream_options,
    check_top_logprobs,
    text_inputs,
)
from stackit_nb.local.wire import dumps, usage


class CompletionBody(RequestBody):
    model: str = Field(examples=catalog.ids_with("chat")[:1])
    prompt: TextOrTokens = Field(examples=["Once upon a time"])
    max_tokens: int | None = Field(default=16, ge=1)  # OpenAI's and vLLM's default
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=16)
    seed: int | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: int | None = None
    echo: bool = False
    suffix: str | None = None


@dataclass
class PreparedCompletion:
    """One engine request per prompt, and what the response needs besides the choices."""

    requests: list[ChatRequest]
    prompts: list[str]
    prompt_tokens: int


def prepare_completion(body: CompletionBody) -> PreparedCompletion:
    """Validate a completion request the way vLLM does, in vLLM's order."""
    check_stream_options(body.stream, body.stream_options)
    logprobs = check_top_logprobs(body.logprobs, True, "logprobs")
    model = chat_model_or_error(body.model)
    if body.suffix is not None:
        raise APIError(400, "suffix is not currently supported", param="suffix")
    inputs = text_inputs(body.prompt, "prompt")
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    requests, total = [], 0
    for text, tokens in inputs:
        requested = tokens + (body.max_tokens or 0)
        if requested > model.context_length:
            raise APIError(
                400,
                f"This model's maximum context length is {model.context_length} tokens. However, "
                f"you requested {requested} tokens ({tokens} in the messages, "
                f"{body.max_tokens or 0} in the completion). Please reduce the length of the "
                "messages or completion.",
                param="prompt",
            )
        total += tokens
        requests.append(
            ChatRequest(
                model=model,
                messages=[{"role": "user", "content": text}],
                images=[],
                max_tokens=body.max_tokens,
                stop=[s for s in stop if s],
                n=body.n,
                seed=body.seed,
                temperature=body.temperature,
                logprobs=body.logprobs is not None,
                top_logprobs=logprobs,
            )
        )
    return PreparedCompletion(requests, [text for text, _ in inputs], total)


class CompletionWriter:
    """The ``text_completion`` objects of one response, plain or as SSE events."""

    def __init__(
        self, body: CompletionBody, prepared: PreparedCompletion, fingerprint: str, created: int
    ) -> None:
        self.body, self.prepared, self.created = body, prepared, created
        self.id = "cmpl-" + uuid.uuid4().hex
        self.fingerprint = fingerprint

    def _text(self, prompt_index: int, choice: Choice) -> str:
        text = choice.content or ""
        return self.prepared.prompts[prompt_index] + text if self.body.echo else text

    def _logprobs(self, prompt_index: int, choice: Choice, text: str) -> dict[str, Any] | None:
        if self.body.logprobs is None:
            return None
        # vLLM's legacy logprobs: the chosen token plus `logprobs` alternatives at each position.
        entries = text_entries(text, self.body.logprobs + 1, salt=str(choice.index))
        offset = len(self.prepared.prompts[prompt_index]) if self.body.echo else 0
        return completion_logprobs(entries, offset)

    def _base(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.body.model,
            "system_fingerprint": self.fingerprint,
        }

    def whole(self, answers: list[list[Choice]], prompt_tokens: int) -> dict[str, Any]:
        """The non-streamed response; ``answers`` holds each prompt's choices."""
        choices = []
        for p_index, answer in enumerate(answers):
            for choice in answer:
                text = self._text(p_index, choice)
                choices.append(
                    {
                        "index": p_index * self.body.n + choice.index,
                        "text": text,
                        "logprobs": self._logprobs(p_index, choice, choice.content or ""),
                        "finish_reason": choice.finish_reason,
                        "stop_reason": choice.stop_reason,
                        "prompt_logprobs": None,
                    }
                )
        completion_tokens = sum(c.completion_tokens for a in answers for c in a)
        used = usage(prompt_tokens, completion_tokens)
        return {**self._base(), "choices": choices, "usage": used}

    def _event(self, choice: dict[str, Any]) -> str:
        return f"data: {dumps({**self._base(), 'choices': [choice], 'usage': None})}\n\n"

    def events(self, answers: list[list[Choice]], prompt_tokens: int) -> Iterator[tuple[str, bool]]:
        """The streamed response as ``(event, is_token)``, like the chat stream's events."""
        for p_index, answer in enumerate(answers):
            for choice in answer:
                index = p_index * self.body.n + choice.index
                if self.body.echo:
                    echoed = self.prepared.prompts[p_index]
                    yield self._event(self._delta(index, echoed, None)), False
                entries = None
                if self.body.logprobs is not None:
                    top = self.body.logprobs + 1
                    entries = text_entries(choice.content or "", top, salt=str(choice.index))
                pieces = split_tokens(choice.content or "")
                offset = len(self.prepared.prompts[p_index]) if self.body.echo else 0
                for i, piece in enumerate(pieces):
                    logprobs = None
                    if entries is not None:
                        logprobs = completion_logprobs([entries[i]], offset)
                    offset += len(piece)
                    yield self._event(self._delta(index, piece, logprobs)), True
                finish = {
                    **self._delta(index, "", None),
                    "finish_reason": choice.finish_reason,
                    "stop_reason": choice.stop_reason,
                }
                yield self._event(finish), False
        if self.body.stream_options and self.body.stream_options.include_usage:
            completion_tokens = sum(c.completion_tokens for a in answers for c in a)
            used = usage(prompt_tokens, completion_tokens)
            final = {**self._base(), "choices": [], "usage": used}
            yield f"data: {dumps(final)}\n\n", False
        yield "data: [DONE]\n\n", False

    @staticmethod
    def _delta(index: int, text: str, logprobs: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "index": index,
            "text": text,
            "logprobs": logprobs,
            "finish_reason": None,
            "stop_reason": None,
        }
