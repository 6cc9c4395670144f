"""Errors that help: each names what went wrong and what to do, and keeps openai's classes."""

from __future__ import annotations

import os

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import httpx2
import openai
import pytest
from haystack.dataclasses import ChatMessage, ImageContent, StreamingChunk
from haystack.utils import Secret
from PIL import Image

from stackit_nb import STACKITChatGenerator, STACKITTextEmbedder
from stackit_nb.errors import (
    AccessDeniedError,
    ContextTooLongError,
    EndpointTimeoutError,
    EndpointUnreachableError,
    ImageNotSupportedError,
    InvalidAPIKeyError,
    InvalidResponseError,
    ModelNotFoundError,
    RateLimitedError,
    RequestTooLargeError,
    ServerError,
    StreamInterruptedError,
    explain_transport,
)
from stackit_nb.local import LocalSTACKIT

CHAT = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"


pytestmark = pytest.mark.usefixtures("reset_server")


def no_retries(model: str = CHAT, **kwargs: object) -> STACKITChatGenerator:
    return STACKITChatGenerator(model=model, max_retries=0, **kwargs)  # type: ignore[arg-type]


def red_image(tmp_path: object) -> ImageContent:
    path = f"{tmp_path}/red.jpg"
    Image.new("RGB", (64, 64), (220, 20, 20)).save(path)
    return ImageContent.from_file_path(path)


@pytest.mark.parametrize("shape", ["openai", "vllm"])
def test_unknown_model_lists_the_closest_ids(server: LocalSTACKIT, shape: str) -> None:
    server.configure(error_shape=shape)
    with pytest.raises(ModelNotFoundError) as info:
        no_retries("gpt-oss-120").run("hi")
    error = info.value
    assert isinstance(error, openai.NotFoundError)  # `except openai.NotFoundError` still works
    assert isinstance(error.__cause__, openai.NotFoundError)
    assert error.suggestions[0] == "openai/gpt-oss-120b"
    assert "openai/gpt-oss-120b" in str(error)
    assert "does not exist" in str(error)  # the endpoint's own words are kept
    assert "intfloat/e5-mistral-7b-instruct" not in str(error)  # chat models only


def test_retired_model_suggests_a_current_one(server: LocalSTACKIT) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        no_retries("neuralmagic/Meta-Llama-3.1-405B-Instruct-FP8").run("hi")
    assert any("Llama-3.1" in s for s in info.value.suggestions)


async def test_unknown_model_in_run_async(server: LocalSTACKIT) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        await no_retries("google/gemma-3-72b-it").run_async("hi")
    assert "google/gemma-3-27b-it" in info.value.suggestions


def test_image_to_a_text_model_names_vision_models(server: LocalSTACKIT, tmp_path: object) -> None:
    message = ChatMessage.from_user(content_parts=["What is this?", red_image(tmp_path)])
    with pytest.raises(ImageNotSupportedError) as info:
        no_retries().run([message])
    error = info.value
    assert isinstance(error, openai.BadRequestError)
    assert "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8" in error.vision_models
    assert CHAT not in error.vision_models
    assert f"'{CHAT}' does not accept images" in str(error)


def test_rate_limit_says_when_to_retry(server: LocalSTACKIT) -> None:
    server.faults.fail(status=429, retry_after=7, times=1)
    with pytest.raises(openai.RateLimitError) as info:
        no_retries().run("hi")
    error = info.value
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 7
    assert "Retry after 7 s" in str(error)
    assert error.status_code == 429


def test_rate_limit_is_retried_by_default(server: LocalSTACKIT) -> None:
    server.clear_requests()
    server.faults.fail(status=429, retry_after=0.2, times=1)
    reply = STACKITChatGenerator(model=CHAT, max_retries=2).run("Tell me a joke.")
    assert reply["replies"][0].text
    paths = [r["path"] for r in server.requests]
    assert paths == ["/v1/chat/completions", "/v1/chat/completions"]  # one 429, one success


def test_rejected_key_is_explained_and_never_shown(server: LocalSTACKIT) -> None:
    secret = "sk-this-must-never-appear-0123456789"
    generator = no_retries(api_key=Secret.from_token(secret))
    with pytest.raises(InvalidAPIKeyError) as info:
        generator.run("hi")
    error = info.value
    assert isinstance(error, openai.AuthenticationError)
    assert "STACKIT_API_KEY" in str(error)
    for text in (str(error), repr(error), str(error.__cause__), repr(generator)):
        assert secret not in text


def test_errors_without_advice_pass_through_unchanged(server: LocalSTACKIT) -> None:
    server.faults.fail(status=409, times=1)
    with pytest.raises(openai.ConflictError) as info:
        no_retries().run("hi")
    assert type(info.value) is openai.ConflictError


def test_forbidden_names_the_model_and_what_to_check(server: LocalSTACKIT) -> None:
    server.faults.fail(status=403, message="model access not granted for this project")
    with pytest.raises(AccessDeniedError) as info:
        no_retries().run("hi")
    assert isinstance(info.value, openai.PermissionDeniedError)
    text = str(info.value)
    assert f"refused access to '{CHAT}'" in text and "HTTP 403" in text
    assert "model access not granted" in text  # the endpoint's own words
    assert "list_models()" in text


def test_context_too_long_says_what_to_shorten(server: LocalSTACKIT) -> None:
    with pytest.raises(ContextTooLongError) as info:
        no_retries().run("hi", generation_kwargs={"max_tokens": 200_000})
    assert isinstance(info.value, openai.BadRequestError)
    text = str(info.value)
    assert "maximum context length is 128000 tokens" in text  # the endpoint's figures
    assert "older messages" in text and "max_tokens" in text


def test_request_too_large_points_at_images(server: LocalSTACKIT) -> None:
    # a real 413 from the server's 32 MiB body limit, not an injected one
    with pytest.raises(RequestTooLargeError) as info:
        no_retries().run("x" * (33 * 1024 * 1024))
    assert info.value.status_code == 413
    assert "32 MiB" in str(info.value) and "to_image_content" in str(info.value)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_say_it_is_the_servers_side_and_count_retries(
    server: LocalSTACKIT, status: int
) -> None:
    server.faults.fail(status=status, times=3)
    generator = STACKITChatGenerator(model=CHAT, max_retries=2)
    with pytest.raises(ServerError) as info:
        generator.run("hi")
    assert isinstance(info.value, openai.InternalServerError)
    assert info.value.status_code == status
    text = str(info.value)
    assert f"HTTP {status}" in text and "after 2 retries" in text
    assert "server's side" in text and "max_retries" in text


def test_a_stopped_local_server_is_named_with_how_to_start_one() -> None:
    with LocalSTACKIT() as gone:
        url, key = gone.url, gone.api_key
    generator = STACKITChatGenerator(
        model=CHAT, api_base_url=url, api_key=Secret.from_token(key), max_retries=0
    )
    with pytest.raises(EndpointUnreachableError) as info:
        generator.run("hi")
    assert isinstance(info.value, openai.APIConnectionError)
    text = str(info.value)
    assert url in text and "Connection refused" in text
    assert "stackit_nb.connect()" in text and "stackit-nb serve" in text
    assert key not in text


def test_an_unreachable_remote_address_says_what_to_check() -> None:
    # The wording for a remote address (no network is reachable from the tests): the same
    # exception the OpenAI client raises, with the cause it carries.
    request = httpx2.Request("POST", "https://models.example.org/v1/chat/completions")
    raised = openai.APIConnectionError(request=request)
    raised.__cause__ = httpx2.ConnectError("[Errno -2] Name or service not known")
    better = explain_transport(raised, base_url="https://models.example.org/v1", retries=2)
    assert isinstance(better, EndpointUnreachableError)
    text = str(better)
    assert "https://models.example.org/v1 (" in text and "Name or service not known" in text
    assert "after 2 retries" in text and "STACKIT_API_BASE_URL" in text


def test_no_answer_within_the_timeout_says_what_to_change(server: LocalSTACKIT) -> None:
    server.faults.latency(3.0)
    with pytest.raises(EndpointTimeoutError) as info:
        no_retries(timeout=0.5).run("hi")
    assert isinstance(info.value, openai.APITimeoutError)
    text = str(info.value)
    assert "did not answer within 0.5 s" in text
    assert "timeout=" in text and "streaming_callback" in text


def test_a_body_that_is_not_json_names_the_address(server: LocalSTACKIT) -> None:
    server.faults.invalid_json()
    with pytest.raises(InvalidResponseError) as info:
        no_retries().run("hi")
    assert isinstance(info.value, openai.APIError)
    text = str(info.value)
    assert f"{server.url}/chat/completions answered with a body that is not JSON" in text
    assert "chatcmpl-broken" in text  # what it started with
    assert isinstance(info.value.__cause__, ValueError)


async def test_embedders_explain_transport_errors_too(server: LocalSTACKIT) -> None:
    server.faults.invalid_json()
    embedder = STACKITTextEmbedder(model="intfloat/e5-mistral-7b-instruct", max_retries=0)
    with pytest.raises(InvalidResponseError, match="/embeddings answered"):
        embedder.run("the sea")
    server.faults.fail(status=503)
    with pytest.raises(ServerError, match="HTTP 503"):
        await embedder.run_async("the sea")


@pytest.mark.parametrize("fault", ["cut_stream", "malformed_chunk"])
def test_broken_stream_keeps_the_partial_reply(server: LocalSTACKIT, fault: str) -> None:
    getattr(server.faults, fault)(after_chunks=4)
    received: list[StreamingChunk] = []
    with pytest.raises(StreamInterruptedError) as info:
        no_retries().run("Write 500 tokens about rivers", streaming_callback=received.append)
    error = info.value
    assert isinstance(error, openai.APIConnectionError)
    assert error.partial is not None
    assert error.partial.text  # what arrived before the break
    assert error.partial.text == "".join(c.content for c in received)
    assert "broke off" in str(error)


async def test_broken_stream_in_run_async(server: LocalSTACKIT) -> None:
    server.faults.cut_stream(after_chunks=3)

    async def callback(chunk: object) -> None:
        pass

    with pytest.raises(StreamInterruptedError):
        await no_retries().run_async("Tell me a joke.", streaming_callback=callback)
