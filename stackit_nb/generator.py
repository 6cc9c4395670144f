"""STACKITChatGenerator: chat completions from STACKIT's model serving, as a Haystack component."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from dataclasses import replace
from typing import Any, ClassVar

import openai
from haystack import component, default_from_dict, logging
from haystack.components.generators.chat.openai import (
    OpenAIChatGenerator,
    _check_finish_reason,
    _convert_chat_completion_to_chat_message,
)
from haystack.components.generators.utils import _normalize_messages
from haystack.dataclasses import (
    ChatMessage,
    StreamingCallbackT,
    select_streaming_callback,
)
from haystack.dataclasses.streaming_chunk import _invoke_streaming_callback
from haystack.tools import ToolsType, deserialize_tools_or_toolset_inplace
from haystack.utils import Secret, deserialize_callable
from openai.lib._parsing._completions import type_to_response_format_param
from openai.resources.chat.completions import Completions
from pydantic import BaseModel, ValidationError

from stackit_nb import errors
from stackit_nb._common import (
    DEFAULT_API_BASE_URL,
    DEFAULT_API_KEY,
    AsyncClientPerLoop,
    client_settings,
    compatible_init_parameters,
    resolve_base_url,
)
from stackit_nb._scrub import secret_kept_out
from stackit_nb._streaming import StreamCollector, reasoning_of
from stackit_nb._trust import check_loaded_settings

logger = logging.getLogger(__name__)

_REFERENCE_TYPES = (
    "haystack_integrations.components.generators.stackit.chat.chat_generator.STACKITChatGenerator",
    "haystack_integrations.components.generators.stackit.STACKITChatGenerator",
)


@component
class STACKITChatGenerator(AsyncClientPerLoop, OpenAIChatGenerator):
    """Chat completions with models served by STACKIT, as a Haystack chat generator.

    A drop-in for ``stackit-haystack``'s ``STACKITChatGenerator`` (same init parameters, defaults,
    ``run``/``run_async`` and ``to_dict`` keys) that also:

    - puts token ``usage``, ``time_to_first_token`` (s), ``tokens_per_second`` and ``total_time``
      (s) in every reply's ``meta``, streamed replies included (it asks for
      ``stream_options.include_usage`` unless ``generation_kwargs`` sets ``stream_options``).
      Streamed, the speed counts from the first token; not streamed, over the whole request,
      and ``time_to_first_token`` is ``None``;
    - keeps the server's ``system_fingerprint`` in ``meta`` (and in every streamed chunk's), by
      which a reply from the local server names its engine (``stackit-nb-local-smollm2``);
    - keeps the reasoning of reasoning models (``reasoning`` or ``reasoning_content`` on the
      wire) as reasoning chunks while streaming and as ``reply.reasoning`` at the end;
    - takes ``generation_kwargs={"response_format": MyPydanticModel}`` (streaming too) or a dict
      JSON schema, and puts the parsed object in ``reply.meta["parsed"]``;
    - supports ``tools_strict``;
    - uses ``STACKIT_API_BASE_URL`` when ``api_base_url`` is left at its default, so the same code
      reaches the local server after ``stackit_nb.connect()``;
    - raises errors that say what to do (missing key, unknown model with the closest ids, image to
      a text-only model, rate limit with the retry time): see :mod:`stackit_nb.errors`.

    Loading a saved pipeline that holds this component needs ``stackit_nb`` on Haystack's
    deserialization allowlist (Haystack trusts only its own packages by default)::

        Pipeline.loads(yaml_text, allowed_modules=["stackit_nb"])
        # or process-wide: HAYSTACK_DESERIALIZATION_ALLOWLIST="stackit_nb" (comma-separated list)
        # or haystack.core.serialization.allow_deserialization_module("stackit_nb")

    A loaded component whose endpoint, key variable or ``http_client_kwargs`` could send the key
    elsewhere than STACKIT or this machine is refused unless the caller trusts the file (see
    :func:`stackit_nb.trust_loaded_settings`).
    A ``streaming_callback`` is saved as a dotted path; its module needs allowing as well.

    Example::

        import stackit_nb
        from haystack.dataclasses import ChatMessage
        from stackit_nb import STACKITChatGenerator

        stackit_nb.connect()  # STACKIT with STACKIT_API_KEY, else a local server
        generator = STACKITChatGenerator(model="neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8")
        reply = generator.run([ChatMessage.from_user("Tell me a joke.")])["replies"][0]
        print(reply.text, reply.meta["usage"])
    """

    SUPPORTED_MODELS: ClassVar[list[str]] = [
        "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8",
        "Qwen/Qwen3.6-27B",
        "cortecs/Llama-3.3-70B-Instruct-FP8-Dynamic",
        "openai/gpt-oss-120b",
        "google/gemma-3-27b-it",
        "openai/gpt-oss-20b",
    ]
    """A non-exhaustive list of chat models; ``stackit_nb.list_models()`` asks the endpoint."""

    def __init__(
        self,
        model: str,
        api_key: Secret = DEFAULT_API_KEY,
        streaming_callback: StreamingCallbackT | None = None,
        api_base_url: str | None = DEFAULT_API_BASE_URL,
        generation_kwargs: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        http_client_kwargs: dict[str, Any] | None = None,
        tools: ToolsType | None = None,
        tools_strict: bool = False,
    ) -> None:
        """Create a STACKITChatGenerator.

        :param model: The model id, for example ``"openai/gpt-oss-120b"``.
        :param api_key: The STACKIT AI Model Serving auth token; read from ``STACKIT_API_KEY``
            when the component first runs (not here, so it can be built and saved without one).
        :param streaming_callback: Called with each ``StreamingChunk``; sync, or async for
            ``run_async``.
        :param api_base_url: The endpoint. Left at STACKIT's public URL (or ``None``), the
            ``STACKIT_API_BASE_URL`` environment variable overrides it.
        :param generation_kwargs: Sent with every request (``max_tokens``, ``temperature``,
            ``top_p``, ``stop``, ``seed``, ``reasoning_effort``, ``response_format`` as a dict
            schema or a Pydantic class, ...). Merged per key with ``run``'s.
        :param timeout: Seconds per request; default ``OPENAI_TIMEOUT`` or 30.
        :param max_retries: Retries on 429, 5xx and connection errors; default
            ``OPENAI_MAX_RETRIES`` or 5.
        :param http_client_kwargs: Keyword arguments for a custom ``httpx.Client``/``AsyncClient``.
        :param tools: Tools and/or Toolsets the model may call.
        :param tools_strict: Ask for strict schema adherence in tool calls. Saved by ``to_dict``
            only when ``True``, so default dicts match the reference's keys.
        """
        # explicit form: @component rebuilds the class, so the zero-argument super() would
        # point at the pre-decoration class
        super(STACKITChatGenerator, self).__init__(  # noqa: UP008
            api_key=api_key,
            model=model,
            streaming_callback=streaming_callback,
            api_base_url=api_base_url,
            organization=None,
            generation_kwargs=generation_kwargs,
            timeout=timeout,
            max_retries=max_retries,
            tools=tools,
            tools_strict=tools_strict,
            http_client_kwargs=http_client_kwargs,
        )

    @property
    def resolved_api_base_url(self) -> str:
        """The URL requests go to (``api_base_url`` after the ``STACKIT_API_BASE_URL`` rule)."""
        return resolve_base_url(self.api_base_url)

    def _client_kwargs(self) -> dict[str, Any]:
        # Haystack's version resolves the secret with a bare ValueError and sends an
        # organization header; ours names STACKIT_API_KEY and connect() and applies the URL rule.
        kwargs = client_settings(self.timeout, self.max_retries)
        return {
            "api_key": errors.resolve_api_key(self.api_key),
            "base_url": self.resolved_api_base_url,
            **kwargs,
        }

    def to_dict(self) -> dict[str, Any]:
        """Serialize to a dict with the reference's ``init_parameters`` keys (no secret in it)."""
        data = super(STACKITChatGenerator, self).to_dict()  # noqa: UP008
        params = data["init_parameters"]
        params.pop("organization", None)
        if not self.tools_strict:
            params.pop("tools_strict", None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> STACKITChatGenerator:
        """Deserialize from :meth:`to_dict`'s output or a reference ``stackit-haystack`` dict."""
        data = compatible_init_parameters(cls, data, _REFERENCE_TYPES)
        params = data["init_parameters"]
        check_loaded_settings(cls, params)
        deserialize_tools_or_toolset_inplace(params, key="tools")
        if callback := params.get("streaming_callback"):
            params["streaming_callback"] = deserialize_callable(callback)
        return default_from_dict(cls, data)

    def _request(
        self,
        messages: list[ChatMessage],
        callback: StreamingCallbackT | None,
        generation_kwargs: dict[str, Any] | None,
        tools: ToolsType | None,
        tools_strict: bool | None,
    ) -> tuple[dict[str, Any], Any]:
        """The arguments for ``chat.completions.create`` and the requested response format."""
        merged = {**self.generation_kwargs, **(generation_kwargs or {})}
        response_format = merged.get("response_format")
        if response_format is not None:
            # A Pydantic class becomes its strict JSON schema so that one endpoint (create) serves
            # streaming and non-streaming alike; the reply is parsed back into the class below.
            merged["response_format"] = type_to_response_format_param(response_format)
        if callback is not None and "stream_options" not in merged:
            merged["stream_options"] = {"include_usage": True}
        args = self._prepare_api_call(
            messages=messages,
            streaming_callback=callback,
            generation_kwargs=merged,
            tools=tools,
            tools_strict=tools_strict,
        )
        args.pop("openai_endpoint", None)
        if callback is None:
            # vLLM (so STACKIT) answers 400 to stream_options without stream=True; Haystack's own
            # generator sends them as they are when no callback is set.
            args.pop("stream_options", None)
        unknown = sorted(set(args) - _CREATE_PARAMETERS)
        if unknown:
            # The SDK would only say "unexpected keyword argument"; say where such settings go.
            raise TypeError(
                f"generation_kwargs {unknown} are not parameters of the chat completions API. "
                "Check the spelling, or pass server-specific parameters through "
                "generation_kwargs={'extra_body': {...}}."
            )
        args["stream"] = callback is not None
        return args, response_format

    @component.output_types(replies=list[ChatMessage])
    def run(
        self,
        messages: list[ChatMessage] | str,
        streaming_callback: StreamingCallbackT | None = None,
        generation_kwargs: dict[str, Any] | None = None,
        *,
        tools: ToolsType | None = None,
        tools_strict: bool | None = None,
    ) -> dict[str, list[ChatMessage]]:
        """Generate a reply.

        :param messages: ``ChatMessage`` objects, or a plain string (one user message).
        :param streaming_callback: Overrides the init callback for this call; must be sync.
        :param generation_kwargs: Merged per key over the init ``generation_kwargs``.
        :param tools: Overrides the init tools for this call.
        :param tools_strict: Overrides the init ``tools_strict`` for this call.
        :returns: ``{"replies": [ChatMessage]}``.
        """
        callback = select_streaming_callback(
            init_callback=self.streaming_callback,
            runtime_callback=streaming_callback,
            requires_async=False,
        )
        self.warm_up()
        assert self.client is not None  # built by warm_up
        messages = _normalize_messages(messages)
        if not messages:
            return {"replies": []}
        args, response_format = self._request(
            messages, callback, generation_kwargs, tools, tools_strict
        )
        started = time.perf_counter()
        with secret_kept_out(self.client):  # the key leaves in no error, chain included
            try:
                completion = self.client.chat.completions.create(**args)
                if callback is not None:
                    collector = StreamCollector(self, started)
                    try:
                        for raw in completion:
                            for chunk in collector.add(raw):
                                callback(chunk)
                        _check_finished(collector)
                    except _STREAM_BREAKS as exc:
                        raise _interrupted(exc, completion, collector) from exc
                    replies = [collector.message()]
                else:
                    replies = _from_completion(completion, started)
            except errors.EXPLAINABLE as exc:
                better = errors.explain_from(exc, self.client, model=self.model, kind="chat")
                if better is None:
                    raise
                raise better from exc
        return {"replies": _finish(replies, response_format)}

    @component.output_types(replies=list[ChatMessage])
    async def run_async(
        self,
        messages: list[ChatMessage] | str,
        streaming_callback: StreamingCallbackT | None = None,
        generation_kwargs: dict[str, Any] | None = None,
        *,
        tools: ToolsType | None = None,
        tools_strict: bool | None = None,
    ) -> dict[str, list[ChatMessage]]:
        """Generate a reply without blocking the event loop.

        Takes the same parameters as :meth:`run`; ``streaming_callback`` may be sync or async.
        One component can serve many concurrent calls from one loop.
        """
        callback = select_streaming_callback(
            init_callback=self.streaming_callback,
            runtime_callback=streaming_callback,
            requires_async=True,
        )
        await self.warm_up_async()
        client = self.async_client
        assert client is not None  # built by warm_up_async
        messages = _normalize_messages(messages)
        if not messages:
            return {"replies": []}
        args, response_format = self._request(
            messages, callback, generation_kwargs, tools, tools_strict
        )
        started = time.perf_counter()
        with secret_kept_out(client):  # the key leaves in no error, chain included
            try:
                completion = await client.chat.completions.create(**args)
                if callback is not None:
                    collector = StreamCollector(self, started)
                    try:
                        async for raw in completion:
                            for chunk in collector.add(raw):
                                await _invoke_streaming_callback(callback, chunk)
                        _check_finished(collector)
                    except asyncio.CancelledError:
                        # release the connection even though the task is being cancelled
                        await asyncio.shield(completion.close())
                        raise
                    except _STREAM_BREAKS as exc:
                        raise _interrupted(exc, completion, collector) from exc
                    replies = [collector.message()]
                else:
                    replies = _from_completion(completion, started)
            except errors.EXPLAINABLE as exc:
                better = await errors.aexplain_from(exc, client, model=self.model, kind="chat")
                if better is None:
                    raise
                raise better from exc
        return {"replies": _finish(replies, response_format)}


_CREATE_PARAMETERS = frozenset(inspect.signature(Completions.create).parameters) - {"self"}

# what a stream cut mid-way raises: a closed connection, an event that is not JSON, or an end
# that never said the reply was finished
_STREAM_BREAKS = (openai.APIConnectionError, json.JSONDecodeError, EOFError)


def _check_finished(collector: StreamCollector) -> None:
    """A stream that ends without a finish_reason lost its end (or was no stream at all)."""
    if not collector.finished:
        raise EOFError("the stream ended without a finish_reason")


def _interrupted(exc: Exception, completion: Any, collector: StreamCollector) -> Exception:
    response = getattr(completion, "response", None)
    partial = collector.message() if collector.chunks else None
    request = response.request if response is not None else None
    content_type = response.headers.get("content-type") if response is not None else None
    return errors.stream_interrupted(exc, request, len(collector.chunks), partial, content_type)


def _from_completion(completion: Any, started: float) -> list[ChatMessage]:
    """Non-streamed replies, with reasoning and timing added to Haystack's conversion."""
    elapsed = time.perf_counter() - started
    replies = []
    for choice in completion.choices:
        message = _convert_chat_completion_to_chat_message(completion, choice)
        usage = message.meta.get("usage") or {}
        generated = usage.get("completion_tokens")
        fingerprint = getattr(completion, "system_fingerprint", None)
        meta = {
            **message.meta,
            **({"system_fingerprint": fingerprint} if fingerprint else {}),
            "time_to_first_token": None,  # not observable without streaming
            "tokens_per_second": generated / elapsed if generated and elapsed > 0 else None,
            "total_time": elapsed,
        }
        message = ChatMessage.from_assistant(
            text=message.text,
            tool_calls=message.tool_calls,
            meta=meta,
            reasoning=reasoning_of(choice.message),
        )
        replies.append(message)
    return replies


def _finish(replies: list[ChatMessage], response_format: Any) -> list[ChatMessage]:
    """Warn on truncation like Haystack does, and attach parsed structured output."""
    finished = []
    for reply in replies:
        _check_finish_reason(reply.meta)
        if response_format is not None and reply.text is not None and not reply.tool_calls:
            reply = replace(reply, _meta={**reply.meta, **_parse(reply.text, response_format)})
        finished.append(reply)
    return finished


def _parse(text: str, response_format: Any) -> dict[str, Any]:
    """``{"parsed": ...}`` for a reply to a structured-output request (``None`` if it fails)."""
    try:
        if isinstance(response_format, type) and issubclass(response_format, BaseModel):
            return {"parsed": response_format.model_validate_json(text)}
        if isinstance(response_format, dict) and response_format.get("type") == "text":
            return {}
        return {"parsed": json.loads(text)}
    except (ValidationError, ValueError) as exc:
        logger.warning("The reply does not match the requested response_format: {error}", error=exc)
        return {"parsed": None, "parse_error": str(exc)}
