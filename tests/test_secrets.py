"""The key never leaks: run everything with ``STACKIT_API_KEY`` set to a canary, then look for it.

A local server is started that accepts exactly the canary as its token, so every successful
request below proves the canary really was the key in use; then every artefact a user could share
is searched for it: executed notebooks (widget state included), CLI output, saved pipelines,
chat transcripts, error texts and tracebacks, reprs and log records at DEBUG level.

That the server refuses requests without or with a wrong token, and that it refuses to bind
beyond loopback in-process, is covered in ``test_local_server_errors.py``
(``test_auth_required``, ``test_admin_path_needs_the_token_too``,
``test_refuses_non_loopback_unless_allowed``, ``test_serve_command``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
import traceback
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import nbformat
import openai
import pytest
from haystack import Pipeline
from haystack.components.builders import ChatPromptBuilder
from haystack.dataclasses import ChatMessage, Document
from haystack.utils import Secret
from nbclient import NotebookClient

import stackit_nb
from stackit_nb import STACKITChatGenerator, STACKITDocumentEmbedder, STACKITTextEmbedder
from stackit_nb.batch import run_many
from stackit_nb.errors import (
    AccessDeniedError,
    ContextTooLongError,
    EndpointTimeoutError,
    EndpointUnreachableError,
    InvalidAPIKeyError,
    InvalidResponseError,
    ModelNotFoundError,
    RateLimitedError,
    RequestTooLargeError,
    ServerError,
    StreamInterruptedError,
)
from stackit_nb.local import LocalSTACKIT
from stackit_nb.widgets import ChatWidget, StreamingDisplay

# Unlike the local server's own tokens ("local-..."), so a hit cannot come from anything else.
CANARY = f"canary-{uuid.uuid4().hex}"
CHAT = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
EMBED = "intfloat/e5-mistral-7b-instruct"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
# Loggers that see requests: ours, Haystack's, the SDK's and both HTTP stacks (openai 3.x has its
# own), and the server's.
LOGGERS = (
    "stackit_nb",
    "haystack",
    "openai",
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "uvicorn",
)


def assert_clean(text: str, what: str) -> None:
    """Fail naming ``what`` and the surroundings of the first hit."""
    at = text.find(CANARY)
    assert at < 0, f"the key leaked into {what}: ...{text[max(0, at - 120) : at + 60]!r}..."


@pytest.fixture(scope="module")
def canary_server() -> Iterator[LocalSTACKIT]:
    with LocalSTACKIT(api_key=CANARY) as srv:
        yield srv


@pytest.fixture
def canary(canary_server: LocalSTACKIT, monkeypatch: pytest.MonkeyPatch) -> LocalSTACKIT:
    """The environment a user with a key has: the canary as key, the base URL at its server."""
    canary_server.faults.clear()
    canary_server.clear_requests()
    monkeypatch.setenv("STACKIT_API_KEY", CANARY)
    monkeypatch.setenv("STACKIT_API_BASE_URL", canary_server.url)
    return canary_server


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def record_texts(records: list[logging.LogRecord]) -> list[str]:
    """Everything a handler could write: the message, its arguments and structured extras."""
    texts = []
    for record in records:
        texts.append(record.getMessage())
        texts.append(repr(record.__dict__))
        if record.exc_info:
            texts.append("".join(traceback.format_exception(*record.exc_info)))
    return texts


def error_texts(exc: BaseException) -> list[str]:
    """What a user sees or pastes of an error: str, repr, args, the traceback with its causes,
    and the reprs of its attributes (``partial``, ``body``, ``response``, ...)."""
    texts = [str(exc), repr(exc), repr(exc.args), "".join(traceback.format_exception(exc))]
    seen: BaseException | None = exc
    while seen is not None:
        texts += [f"{k}={v!r}" for k, v in vars(seen).items()]
        seen = seen.__cause__ or seen.__context__
    return texts


def raised(call: Callable[[], Any]) -> BaseException:
    try:
        call()
    except Exception as exc:  # what a user's notebook would show
        return exc
    raise AssertionError("expected an error")


# -- notebooks, CLI ------------------------------------------------------------------------------


def _execute(path: Path) -> tuple[Path, int]:
    """Run one notebook in a fresh kernel (inheriting this process's environment) and save it
    with its widget state; returns the path and the number of widget models saved."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    nbformat.write(nb, path)
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return path, len(state.get("state", {}))


@pytest.mark.kernel
def test_notebooks_run_with_the_key_and_keep_no_trace_of_it(
    canary: LocalSTACKIT, tmp_path: Path
) -> None:
    # Every tutorial, one after another in one test (30-40 s): the canary key must stay out of
    # all of them, and one server with one key serves them all.
    work = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, work)
    notebooks = sorted(work.glob("*.ipynb"))
    assert len(notebooks) >= 9
    # three kernels at a time: the notebooks are independent and mostly wait on kernel start-up
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(_execute, notebooks))
    widget_models = sum(n for _, n in results)
    assert widget_models > 0  # the saved widget state is really part of what is searched
    ok = [r for r in canary.requests if r["status"] == 200]
    assert len(ok) >= len(notebooks)  # the canary was the accepted key, not a fallback server
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    for path in files:  # the executed notebooks and everything they wrote next to them
        assert_clean(path.read_bytes().decode("utf-8", "replace"), str(path.relative_to(tmp_path)))
    print(f"scanned {len(notebooks)} notebooks, {len(files)} files, {widget_models} widget models")


def _cli_all(
    runs: dict[str, tuple[list[str], dict[str, str]]],
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run ``stackit-nb`` commands side by side (each pays a cold import of a few seconds)."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "stackit_nb.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name, (args, env) in runs.items()
    }
    done = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()  # a no-op once it exited; a hung command must not outlive the test
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


def test_cli_output_never_shows_the_key(canary: LocalSTACKIT) -> None:
    env = dict(os.environ)
    with LocalSTACKIT(api_key="local-another-token") as other:  # rejects the canary: a 401
        runs = _cli_all(
            {
                "chat": (["chat", "Tell me a joke."], env),
                "models": (["models"], env),
                "chat 401": (["chat", "hi"], {**env, "STACKIT_API_BASE_URL": other.url}),
            }
        )
    assert runs["chat"].returncode == 0 and runs["chat"].stdout.strip()
    assert runs["models"].returncode == 0 and CHAT in runs["models"].stdout
    assert runs["chat 401"].returncode == 1 and "401" in runs["chat 401"].stderr
    for name, run in runs.items():
        assert_clean(run.stdout, f"`stackit-nb {name}` stdout")
        assert_clean(run.stderr, f"`stackit-nb {name}` stderr")


def test_the_server_binds_loopback_only_unless_told_otherwise() -> None:
    # `stackit-nb serve --host 0.0.0.0` refusing is checked as a subprocess in
    # test_local_server_errors.py::test_serve_command; here, every kind of non-loopback address
    for host in ("0.0.0.0", "::", "192.0.2.1", "10.0.0.1", "example.com"):
        with pytest.raises(ValueError, match="allow_remote"):
            LocalSTACKIT(host=host)
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        LocalSTACKIT(host=host)  # constructing does not bind
    with LocalSTACKIT() as srv:  # the default binds the loopback address only
        assert srv.host == "127.0.0.1" and srv.url.startswith("http://127.0.0.1:")


def test_the_server_log_and_its_admin_view_redact_the_key(canary: LocalSTACKIT) -> None:
    STACKITChatGenerator(model=CHAT).run("hi")
    assert canary.requests and canary.requests[-1]["status"] == 200
    assert_clean(repr(canary.requests), "srv.requests")
    with canary.client() as http:
        assert_clean(http.get("/_local/requests").text, "/_local/requests")
    # and without the token the log is not served at all
    assert httpx.get(canary.url.removesuffix("/v1") + "/_local/requests").status_code == 401


# -- serialization, transcripts, reprs ----------------------------------------------------------


def test_saved_pipelines_name_the_variable_not_the_key(
    canary: LocalSTACKIT, tmp_path: Path
) -> None:
    pipeline = Pipeline()
    pipeline.add_component("prompt", ChatPromptBuilder(template=[ChatMessage.from_user("{{q}}")]))
    pipeline.add_component("llm", STACKITChatGenerator(model=CHAT))
    pipeline.add_component("embedder", STACKITTextEmbedder(model=EMBED))
    pipeline.add_component("doc_embedder", STACKITDocumentEmbedder(model=EMBED))
    pipeline.connect("prompt.prompt", "llm.messages")
    # run first: warmed-up components hold clients built with the key, and must still not save it
    documents = [Document(content="x")]
    pipeline.run(
        {
            "prompt": {"q": "hi"},
            "embedder": {"text": "hi"},
            "doc_embedder": {"documents": documents},
        }
    )
    text = pipeline.dumps()
    assert "STACKIT_API_KEY" in text
    assert_clean(text, "Pipeline.dumps()")
    assert_clean(json.dumps(pipeline.to_dict()), "Pipeline.to_dict()")
    with (tmp_path / "pipeline.yaml").open("w") as f:
        pipeline.dump(f)
    assert_clean((tmp_path / "pipeline.yaml").read_text(), "pipeline.yaml")


def test_a_key_given_as_a_token_is_neither_saved_nor_shown(canary: LocalSTACKIT) -> None:
    generator = STACKITChatGenerator(model=CHAT, api_key=Secret.from_token(CANARY))
    assert generator.run("hi")["replies"][0].text
    assert_clean(repr(generator), "repr of a generator with a token secret")
    assert_clean(repr(generator.api_key), "repr(Secret.from_token(...))")
    error = raised(generator.to_dict)  # Haystack refuses to serialize a token: say so, not it
    for text in error_texts(error):
        assert_clean(text, "the error of to_dict() with a token secret")


async def test_chat_widget_transcripts_and_reprs(canary: LocalSTACKIT, tmp_path: Path) -> None:
    display = StreamingDisplay(show=False)
    chat = ChatWidget(STACKITChatGenerator(model=CHAT, streaming_callback=None))
    reply = await chat.send("Tell me a joke.")
    assert reply is not None and reply.text
    generator = STACKITChatGenerator(model=CHAT)
    generator.run("hi", streaming_callback=display)
    conn = stackit_nb.connect(quiet=True)
    try:
        assert conn.backend == "local" and conn.server is None  # the key's endpoint, as is
        objects: dict[str, Any] = {
            "generator": generator,
            "text embedder": STACKITTextEmbedder(model=EMBED),
            "document embedder": STACKITDocumentEmbedder(model=EMBED),
            "connection": conn,
            "chat widget": chat,
            "streaming display": display,
            "server": canary,
            "reply": reply,
        }
        for name, obj in objects.items():
            assert_clean(repr(obj), f"repr({name})")
            assert_clean(str(obj), f"str({name})")
            for method in ("_repr_markdown_", "_repr_html_", "to_dict"):
                if callable(render := getattr(obj, method, None)):
                    assert_clean(json.dumps(render(), default=repr), f"{name}.{method}()")
    finally:
        conn.stop()
    files = [chat.save(tmp_path / "chat.json"), chat.save(tmp_path / "chat.md")]
    assert_clean(chat.export_json(), "ChatWidget.export_json()")
    assert_clean(chat.export_markdown(), "ChatWidget.export_markdown()")
    for path in files:
        assert_clean(path.read_text(), path.name)
    # the widget's own state, as a notebook would save it
    assert_clean(json.dumps(chat.get_manager_state(), default=repr), "ChatWidget widget state")


def test_the_servers_settings_repr_hides_the_token(canary: LocalSTACKIT) -> None:
    assert_clean(repr(canary.settings), "repr(LocalSTACKIT.settings)")


# -- errors and logs -----------------------------------------------------------------------------


def _error_cases(srv: LocalSTACKIT, wrong_server: LocalSTACKIT) -> dict[str, Callable[[], Any]]:
    def no_retry(**kwargs: Any) -> STACKITChatGenerator:
        return STACKITChatGenerator(model=kwargs.pop("model", CHAT), max_retries=0, **kwargs)

    def rate_limited() -> Any:
        srv.faults.fail(status=429, retry_after=7)
        return no_retry().run("hi")

    def server_error() -> Any:
        srv.faults.fail(status=503)
        return no_retry().run("hi")

    def cut_stream() -> Any:
        srv.faults.cut_stream(after_chunks=3)
        return no_retry().run("Write 40 tokens about rivers.", streaming_callback=lambda c: None)

    def malformed_chunk() -> Any:
        srv.faults.malformed_chunk(after_chunks=2)
        return no_retry().run("Write 40 tokens about rivers.", streaming_callback=lambda c: None)

    def timeout() -> Any:
        srv.faults.latency(2.0)
        try:
            return no_retry(timeout=0.3).run("hi")
        finally:
            srv.faults.latency(0)

    def injected(status: int, message: str | None = None) -> Callable[[], Any]:
        def call() -> Any:
            srv.faults.fail(status=status, message=message)
            return no_retry().run("hi")

        return call

    def not_json() -> Any:
        srv.faults.invalid_json()
        return no_retry().run("hi")

    def document_embedder_503() -> Any:
        srv.faults.fail(status=503)
        embedder = STACKITDocumentEmbedder(model=EMBED, max_retries=0, progress_bar=False)
        embedder.run([Document(content="x")])  # logs the failure (scanned with the logs)
        srv.faults.fail(status=503)
        return STACKITTextEmbedder(model=EMBED, max_retries=0).run("x")

    def embed_401() -> Any:
        return STACKITTextEmbedder(model=EMBED, api_base_url=wrong_server.url).run("x")

    def batch_401() -> Any:
        gen = STACKITChatGenerator(model=CHAT, api_base_url=wrong_server.url)
        result = run_many(gen, ["a", "b"], progress=False)
        raise result.errors[0]  # type: ignore[index]

    return {
        "401": lambda: no_retry(api_base_url=wrong_server.url).run("hi"),
        "401 streaming": lambda: no_retry(api_base_url=wrong_server.url).run(
            "hi", streaming_callback=lambda c: None
        ),
        "401 async": lambda: asyncio.run(no_retry(api_base_url=wrong_server.url).run_async("hi")),
        "404 model": lambda: no_retry(model="nope/nothing").run("hi"),
        "429": rate_limited,
        "503": server_error,
        "403": injected(403),
        "413": injected(413),
        "context too long": injected(400, "This model's maximum context length is 4096 tokens."),
        "not JSON": not_json,
        "embedder 503": document_embedder_503,
        "cut stream": cut_stream,
        "malformed chunk": malformed_chunk,
        "timeout": timeout,
        "embedder 401": embed_401,
        "batch 401": batch_401,
        "connection refused": lambda: no_retry(api_base_url="http://127.0.0.1:9/v1").run("hi"),
    }


def test_errors_and_debug_logs_never_show_the_key(
    canary: LocalSTACKIT, debug_logs: pytest.LogCaptureFixture
) -> None:
    expected: dict[str, type[BaseException]] = {
        "401": InvalidAPIKeyError,
        "401 streaming": InvalidAPIKeyError,
        "401 async": InvalidAPIKeyError,
        "404 model": ModelNotFoundError,
        "429": RateLimitedError,
        "503": ServerError,
        "403": AccessDeniedError,
        "413": RequestTooLargeError,
        "context too long": ContextTooLongError,
        "not JSON": InvalidResponseError,
        "embedder 503": ServerError,
        "cut stream": StreamInterruptedError,
        "malformed chunk": StreamInterruptedError,
        "timeout": EndpointTimeoutError,
        "embedder 401": InvalidAPIKeyError,
        "batch 401": InvalidAPIKeyError,
        "connection refused": EndpointUnreachableError,
    }
    # a server that accepts another token: the canary, sent to it, is a wrong key (HTTP 401)
    with LocalSTACKIT(api_key="local-another-token") as wrong_server:
        cases = _error_cases(canary, wrong_server)
        assert cases.keys() == expected.keys()
        for name, call in cases.items():
            error = raised(call)
            assert isinstance(error, expected[name]), (name, error)
            for text in error_texts(error):
                assert_clean(text, f"the {name} error")
        # successes, streamed and not, sync and async, log too
        generator = STACKITChatGenerator(model=CHAT)
        generator.run("hi")
        generator.run("hi", streaming_callback=lambda c: None)
        asyncio.run(STACKITChatGenerator(model=CHAT).run_async("hi"))
        STACKITDocumentEmbedder(model=EMBED, progress_bar=False).run([Document(content="x")])
    assert canary.requests, "nothing reached the canary's server"
    records = debug_logs.records
    loggers = {r.name.split(".")[0] for r in records}
    # the scan is only worth something if the SDK's and HTTP stack's debug logs were captured
    assert "openai" in loggers and loggers & {"httpx", "httpx2", "httpcore"}, loggers
    for text in record_texts(records):
        assert_clean(text, "a log record")
    assert_clean(debug_logs.text, "the captured log")
    print(f"{len(cases)} error paths, {len(records)} log records from {sorted(loggers)}")


def test_an_echoing_endpoint_cannot_put_the_key_in_an_error(canary: LocalSTACKIT) -> None:
    """Should an endpoint quote the key back in an error body, our message scrubs it."""
    from stackit_nb.errors import explain

    request = httpx.Request("POST", canary.url + "/chat/completions")
    body = {"error": {"message": f"token {CANARY} is not valid", "code": 401}}
    response = httpx.Response(401, json=body, request=request)
    original = openai.AuthenticationError(f"Error code: 401 - {body}", response=response, body=body)
    better = explain(original, model=CHAT, secret_value=CANARY)
    assert isinstance(better, InvalidAPIKeyError)
    assert_clean(str(better), "str of an explained 401")
    assert_clean(repr(better.args), "args of an explained 401")
