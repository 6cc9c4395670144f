"""The local STACKIT-compatible HTTP server: a FastAPI app speaking the OpenAI/vLLM wire format.

It knows nothing of Haystack. Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions``
and ``POST /v1/completions`` (JSON and SSE), ``POST /v1/embeddings``, ``GET /health``, and the
admin path ``/_local/...`` (faults, request log, settings), which real STACKIT does not have and
the API can never collide with. Run it with :class:`stackit_nb.local.LocalSTACKIT` or
``stackit-nb serve``.

Two kinds of engine sit behind the same routes. The scripted engine returns finished choices,
which are streamed at the configured pace. A live engine (``smollm2``, a real model) streams
pieces as it generates them: the routes, auth, error bodies, faults and request log are the same;
``ttft`` and ``tokens_per_second`` only ever slow it down (a real model cannot go faster than it
does), and usage comes from the model's own tokenizer.

Every chat completion, plain or streamed (each chunk), carries ``system_fingerprint``
``stackit-nb-local-<engine>`` (see :mod:`stackit_nb.fingerprint`), so a client can say
which local engine answered; real STACKIT sends none or vLLM's own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from stackit_nb.fingerprint import engine_fingerprint
from stackit_nb.local import catalog, openapi, wire
from stackit_nb.local.api_error import APIError
from stackit_nb.local.completions import CompletionBody, CompletionWriter, prepare_completion
from stackit_nb.local.engines import (
    ChatRequest,
    Choice,
    LiveEngine,
    Prompt,
    create_engine,
    resolve_engine,
)
from stackit_nb.local.faults import Faults, RequestLog, StreamFault, error_type
from stackit_nb.local.fronts import ASGIApp, Front
from stackit_nb.local.guard import Guard, InjectedDisconnect, ServerSettings, wait
from stackit_nb.local.validate import (
    ChatCompletionBody,
    EmbeddingsBody,
    model_or_404,
    prepare_chat,
    text_inputs,
)

# -- the app --------------------------------------------------------------------------------------


def create_app(
    settings: ServerSettings | None = None,
    faults: Faults | None = None,
    log: RequestLog | None = None,
    engine: str = "scripted",
    front: Front | None = None,
) -> FastAPI:
    """Build the ASGI app; the three state objects may be shared with the caller.

    ``engine`` is ``"scripted"``, ``"smollm2"`` or ``"auto"`` (see ``engines.resolve_engine``).
    ``front`` (a recording proxy or a replayer, see :mod:`stackit_nb.local.fronts`) takes the
    API requests after the guard; then ``engine`` answers only what the front passes on.
    """
    engine = resolve_engine(engine)
    settings = settings or ServerSettings()
    faults = faults or Faults()
    log = log or RequestLog()
    chat_engine = create_engine(engine)
    app = FastAPI(
        title="stackit_nb local STACKIT-compatible server",
        description="OpenAI-compatible chat completions, embeddings and models, offline.",
        version="1",
    )
    app.openapi = lambda: openapi.document(app)  # type: ignore[method-assign]
    app.state.settings, app.state.faults, app.state.log = settings, faults, log
    app.state.engine = chat_engine

    def error_response(
        status: int, message: str, param: str | None = None, headers: dict[str, str] | None = None
    ) -> JSONResponse:
        kind = error_type(status)
        body = wire.error_body(status, message, kind, param=param, shape=settings.error_shape)
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.param)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error_response(400, "Malformed JSON body: send a JSON object.")
        parts = []
        for p in problems[:5]:
            where = ".".join(str(x) for x in p.get("loc", ()) if x != "body") or "body"
            parts.append(f"{where}: {p.get('msg')}")
        param = ".".join(str(x) for x in problems[0].get("loc", ())[1:2]) if problems else None
        return error_response(400, "Invalid request: " + "; ".join(parts), param)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Routing and body-parsing errors (unknown path, wrong method, a body the parser gives up
        # on) in the same shape as every other error, so clients read them the same way.
        message = {
            404: f"No route {request.url.path}; the API is under /v1 (models, chat/completions, "
            "completions, embeddings).",
            405: f"{request.method} is not allowed on {request.url.path}.",
        }.get(exc.status_code, str(exc.detail))
        return error_response(exc.status_code, message, headers=dict(exc.headers or {}))

    if front is not None:

        def in_front(inner: ASGIApp) -> ASGIApp:
            return front.wrap(inner, error_response)

        app.add_middleware(in_front)  # added first: it runs after the guard
    app.add_middleware(Guard, settings=settings, faults=faults, log=log, reply=error_response)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models", response_model=None, responses=openapi.LIST_MODELS)
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [m.to_openai() for m in catalog.MODELS]}

    @app.get("/v1/models/{model_id:path}", response_model=None, responses=openapi.GET_MODEL)
    async def get_model(
        model_id: Annotated[str, Path(examples=[catalog.MODELS[0].id])],
    ) -> dict[str, Any]:
        return model_or_404(model_id).to_openai()

    @app.post("/v1/chat/completions", response_model=None, responses=openapi.CHAT_COMPLETIONS)
    async def chat_completions(body: ChatCompletionBody) -> Response:
        chat_request, prompt_tokens = await asyncio.to_thread(prepare_chat, body)
        top = chat_request.top_logprobs if chat_request.logprobs else None
        reply = _Reply(body, settings.reasoning_field, engine_fingerprint(engine), top)
        if isinstance(chat_engine, LiveEngine):
            return await _live(chat_engine, reply, chat_request, prompt_tokens)
        # Off the event loop: a long reply (n=16, "write 100000 words") takes seconds to build,
        # and the server keeps answering other requests meanwhile.
        choices = await asyncio.to_thread(chat_engine.complete, chat_request)
        if not body.stream:
            await _pace_whole(choices)
            return reply.whole(choices, prompt_tokens)
        events = reply.writer().events(choices, prompt_tokens)
        return _event_stream(_paced(events, faults.take_stream()))

    @app.post("/v1/completions", response_model=None, responses=openapi.COMPLETIONS)
    async def completions(body: CompletionBody) -> Response:
        prepared = await asyncio.to_thread(prepare_completion, body)
        writer = CompletionWriter(body, prepared, engine_fingerprint(engine), int(time.time()))
        answers, prompt_tokens = [], prepared.prompt_tokens
        for request in prepared.requests:
            if isinstance(chat_engine, LiveEngine):
                choices, counted = await _collect(chat_engine, request)
                if counted is not None:  # the model's own count replaces the estimate
                    prompt_tokens = counted
            else:
                choices = await asyncio.to_thread(chat_engine.complete, request)
            answers.append(sorted(choices, key=lambda c: c.index))
        if not body.stream:
            await _pace_whole([c for a in answers for c in a])
            return JSONResponse(writer.whole(answers, prompt_tokens))
        events = writer.events(answers, prompt_tokens)
        return _event_stream(_paced(events, faults.take_stream()))

    @app.post("/v1/embeddings", response_model=None, responses=openapi.EMBEDDINGS)
    async def embeddings(body: EmbeddingsBody) -> dict[str, Any]:
        model = model_or_404(body.model)
        if not model.supports("embedding"):
            raise APIError(
                400,
                f"Model `{model.id}` is not an embedding model; embedding models: "
                f"{', '.join(catalog.ids_with('embedding'))}.",
                param="model",
            )
        inputs = text_inputs(body.input, "input")
        native = model.embedding_dimensions or 1024
        dims = native
        if body.dimensions is not None:
            if not model.supports_dimensions:
                raise APIError(
                    400,
                    f'Model "{model.id}" does not support matryoshka representation, changing '
                    "output dimensions will lead to poor results.",
                    param="dimensions",
                )
            if body.dimensions > native:
                raise APIError(400, f"dimensions must be <= {native}", param="dimensions")
            dims = body.dimensions
        counts = [n_tokens for _, n_tokens in inputs]
        for i, n_tokens in enumerate(counts):
            if n_tokens > model.context_length:
                raise APIError(
                    400,
                    f"input[{i}] has {n_tokens} tokens; this model's maximum context length is "
                    f"{model.context_length} tokens. Split the text into smaller chunks.",
                    param="input",
                )
        texts = [text for text, _ in inputs]
        vectors = await asyncio.to_thread(chat_engine.embed, texts, dims)
        total = sum(counts)
        return {
            "object": "list",
            "data": [
                wire.embedding_item(i, v, body.encoding_format) for i, v in enumerate(vectors)
            ],
            "model": body.model,
            "usage": {"prompt_tokens": total, "total_tokens": total},
        }

    # -- admin -----------------------------------------------------------------------------------

    @app.get("/_local/config", include_in_schema=False)
    async def get_config() -> dict[str, Any]:
        return {"engine": front.name if front else engine, **settings.public()}

    @app.post("/_local/config", include_in_schema=False)
    async def set_config(request: Request) -> dict[str, Any]:
        changes = await _json_object(request)
        try:
            settings.update(**changes)
        except (TypeError, ValueError) as exc:
            raise APIError(400, str(exc)) from None
        return {"engine": front.name if front else engine, **settings.public()}

    @app.get("/_local/faults", include_in_schema=False)
    async def get_faults() -> dict[str, Any]:
        return faults.snapshot()

    @app.post("/_local/faults", include_in_schema=False)
    async def add_fault(request: Request) -> dict[str, Any]:
        try:
            faults.add(await _json_object(request))
        except (TypeError, ValueError) as exc:
            raise APIError(400, f"bad fault: {exc}") from None
        return faults.snapshot()

    @app.delete("/_local/faults", include_in_schema=False)
    async def clear_faults() -> dict[str, Any]:
        faults.clear()
        return faults.snapshot()

    @app.get("/_local/requests", include_in_schema=False)
    async def get_requests() -> dict[str, Any]:
        return {"data": log.entries()}

    @app.delete("/_local/requests", include_in_schema=False)
    async def clear_requests() -> dict[str, Any]:
        log.clear()
        return {"data": []}

    # -- helpers that need the settings ------------------------------------------------------------

    async def _live(
        live: LiveEngine, reply: _Reply, chat_request: ChatRequest, prompt_tokens: int
    ) -> Response:
        """A chat completion from an engine that generates while the server streams."""
        started = asyncio.get_running_loop().time()
        items = live.stream(chat_request, cancelled=settings.closing.is_set)
        # Wait for the engine to read the prompt before answering: errors it finds (the model's
        # own context is too small, say) still become a proper status and error body.
        try:
            first = await anext(items)
        except StopAsyncIteration:  # the engine gave up before starting: the server is stopping
            raise APIError(503, "The local server is stopping; try again.") from None
        if isinstance(first, Prompt) and first.tokens is not None:
            prompt_tokens = first.tokens
        if not reply.body.stream:
            try:
                choices = [item async for item in items if isinstance(item, Choice)]
            finally:
                await items.aclose()
            choices.sort(key=lambda c: c.index)
            elapsed = asyncio.get_running_loop().time() - started
            await _pace_whole(choices, already=elapsed)
            return reply.whole(choices, prompt_tokens)
        events = reply.writer().live_events(items, chat_request.n, prompt_tokens)
        return _event_stream(_paced_live(events, faults.take_stream(), items.aclose))

    async def _collect(live: LiveEngine, request: ChatRequest) -> tuple[list[Choice], int | None]:
        """A live engine's finished choices for ``request``, and its prompt token count."""
        items = live.stream(request, cancelled=settings.closing.is_set)
        choices, counted = [], None
        try:
            async for item in items:
                if isinstance(item, Prompt):
                    counted = item.tokens
                elif isinstance(item, Choice):
                    choices.append(item)
        finally:
            await items.aclose()
        if not choices:  # the engine gave up before starting: the server is stopping
            raise APIError(503, "The local server is stopping; try again.")
        return choices, counted

    async def _pace_whole(choices: list[Choice], already: float = 0.0) -> None:
        """A non-streamed reply takes as long as streaming it would (``already`` spent)."""
        delay = settings.ttft
        if settings.tokens_per_second:
            delay += max(c.completion_tokens for c in choices) / settings.tokens_per_second
        await wait(settings, max(delay - already, 0.0))

    async def _paced(
        events: Any, fault: StreamFault | None, flush_at: int = 64
    ) -> AsyncIterator[str]:
        """Send events at the configured pace, batching writes when nothing needs to wait."""
        loop = asyncio.get_running_loop()
        ttft, tps = settings.ttft, settings.tokens_per_second
        start = loop.time()
        buffer: list[str] = []
        tokens = 0
        for sent, (event, is_token) in enumerate(events):
            if fault is not None and sent == fault.after_chunks:
                if buffer:
                    yield "".join(buffer)
                    buffer.clear()
                async for text in _misbehave(fault):
                    yield text
                fault = None
            if is_token:
                due = start + ttft + (tokens / tps if tps else 0.0)
                tokens += 1
                if due - loop.time() > 0.0005:
                    if buffer:
                        yield "".join(buffer)
                        buffer.clear()
                    await wait(settings, due - loop.time())
            buffer.append(event)
            if len(buffer) >= flush_at:
                yield "".join(buffer)
                buffer.clear()
                await wait(settings, 0)  # let other streams run
        if buffer:
            yield "".join(buffer)

    async def _paced_live(
        events: AsyncIterator[tuple[str, bool]],
        fault: StreamFault | None,
        close: Callable[[], Awaitable[None]],
    ) -> AsyncIterator[str]:
        """A live engine's events as they come: the same faults, pacing as a lower bound.

        Nothing is batched (pieces arrive at the model's pace anyway). ``close`` stops the engine
        however this ends: a finished stream, a fault, the server stopping, or the client leaving
        (Starlette cancels the task that runs this generator).
        """
        loop = asyncio.get_running_loop()
        ttft, tps = settings.ttft, settings.tokens_per_second
        start = loop.time()
        tokens = 0
        try:
            sent = 0
            async for event, is_token in events:
                if fault is not None and sent == fault.after_chunks:
                    async for text in _misbehave(fault):
                        yield text
                    fault = None
                if is_token:
                    due = start + ttft + (tokens / tps if tps else 0.0)
                    tokens += 1
                    if due - loop.time() > 0.0005:
                        await wait(settings, due - loop.time())
                yield event
                sent += 1
                if settings.closing.is_set():  # stop() ends open streams at once, as wait() does
                    raise InjectedDisconnect("the server is stopping")
            await wait(settings, 0)  # an engine that ended early because the server is stopping
        finally:
            await close()

    async def _misbehave(fault: StreamFault) -> AsyncIterator[str]:
        """What an injected stream fault sends (or does) in place of the next event."""
        if fault.kind == "cut_stream":
            raise InjectedDisconnect("cut_stream fault")
        if fault.kind == "malformed_chunk":
            yield wire.MALFORMED_EVENT
        elif fault.kind == "stall_stream":
            await wait(settings, fault.seconds)

    return app


class _Reply:
    """What a chat completion's response is built from, whichever engine made the choices."""

    def __init__(
        self,
        body: ChatCompletionBody,
        reasoning_field: str,
        fingerprint: str,
        top_logprobs: int | None,
    ) -> None:
        self.body = body
        self.top_logprobs = top_logprobs  # None: the request did not ask for logprobs
        self.fingerprint = fingerprint
        self.id = "chatcmpl-" + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.fields = wire.REASONING_FIELDS[reasoning_field]

    def whole(self, choices: list[Choice], prompt_tokens: int) -> JSONResponse:
        """The non-streamed response."""
        return JSONResponse(
            wire.completion(
                self.id,
                self.created,
                self.body.model,
                choices,
                prompt_tokens,
                self.fields,
                self.fingerprint,
                self.top_logprobs,
            )
        )

    def writer(self) -> wire.ChunkWriter:
        """The writer of the streamed response's events."""
        options = self.body.stream_options
        return wire.ChunkWriter(
            self.id,
            self.created,
            self.body.model,
            include_usage=bool(options and options.include_usage),
            reasoning_fields=self.fields,
            system_fingerprint=self.fingerprint,
            top_logprobs=self.top_logprobs,
        )


def _event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise APIError(400, "Malformed JSON body: send a JSON object.") from None
    except RecursionError:  # deeper than the parser goes: no setting or fault is ever that deep
        raise APIError(
            400, "The JSON body is nested too deeply; send a flat JSON object."
        ) from None
    if not isinstance(data, dict):
        raise APIError(400, "Send a JSON object.")
    return data
