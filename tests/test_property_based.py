"""Properties that must hold for any input, checked on generated ones (hypothesis).

- ``to_image_content``: any small image of any mode, size and accepted format comes out
  decodable, no larger than ``max_side``, with its aspect ratio and honest ``meta``; any other
  bytes (random, truncated or damaged images) give an ``ImageError``, never another exception.
- The local server: any JSON body (random values, or requests that are almost right) gets a
  4xx or a 200 in OpenAI's shape, never a 500, never a hang.

Each property runs a bounded number of examples so the module stays under ~20 s.
"""

from __future__ import annotations

import base64
import io
import json
import random
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from stackit_nb.images import ImageError, to_image_content
from stackit_nb.local import LocalSTACKIT
from stackit_nb.local.catalog import MODELS

# Modes each format can store, as Pillow writes them (others are converted by the caller first).
FORMAT_MODES: dict[str, tuple[str, ...]] = {
    "PNG": ("RGB", "RGBA", "L", "LA", "P", "1", "I;16"),
    "JPEG": ("RGB", "L", "CMYK"),
    "WEBP": ("RGB", "RGBA"),
    "GIF": ("P", "L"),
    "BMP": ("RGB", "L", "P", "1"),
    "TIFF": ("RGB", "RGBA", "L", "CMYK", "I;16", "1"),
}
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure here is reproducible in CI
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def encoded_images(draw: st.DrawFn) -> tuple[bytes, str, tuple[int, int]]:
    """An image file: a format, a mode it can hold, a size, and noise or flat-colour pixels."""
    fmt = draw(st.sampled_from(sorted(FORMAT_MODES)))
    mode = draw(st.sampled_from(FORMAT_MODES[fmt]))
    size = (draw(st.integers(1, 300)), draw(st.integers(1, 300)))
    seed = draw(st.integers(0, 2**32 - 1))
    flat = draw(st.booleans())  # flat colour is a "graphic" (PNG out), noise is a "photo"
    blank = Image.new(mode, size)
    n = len(blank.tobytes())
    rng = random.Random(seed)
    data = bytes([rng.randrange(256)]) * n if flat else rng.randbytes(n)
    image = Image.frombytes(mode, size, data)
    if mode == "P":
        image.putpalette(rng.randbytes(768))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue(), fmt, size


def decoded(content: Any) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(content.base64_image)))
    image.load()  # decodes every pixel: a damaged payload raises here
    return image


@given(
    encoded_images(),
    st.one_of(st.none(), st.integers(1, 400)),
    st.sampled_from([None, "JPEG", "PNG", "WEBP"]),
)
@SETTINGS
def test_any_small_image_converts_to_something_a_model_can_read(
    image: tuple[bytes, str, tuple[int, int]], max_side: int | None, forced: str | None
) -> None:
    data, fmt, (width, height) = image
    content = to_image_content(data, max_side=max_side, format=forced)
    event(f"{fmt} -> {content.meta['sent_format']}")
    meta = content.meta
    sent = decoded(content)
    assert sent.size == tuple(meta["sent_size"])
    assert sent.format == meta["sent_format"] and content.mime_type == Image.MIME[sent.format]
    assert forced is None or meta["sent_format"] == forced
    assert meta["original_format"] == fmt and tuple(meta["original_size"]) == (width, height)
    assert meta["original_bytes"] == len(data)
    assert meta["sent_bytes"] == len(base64.b64decode(content.base64_image))
    sent_w, sent_h = sent.size
    assert sent_w <= width and sent_h <= height  # never enlarged
    if max_side is not None:
        assert max(sent.size) <= max_side
    # each side is rounded to whole pixels (at least 1): the cross product stays within that
    assert abs(sent_w * height - sent_h * width) <= width + height


@st.composite
def damaged_images(draw: st.DrawFn) -> bytes:
    """A valid image file cut short or with bytes overwritten: what a broken download looks like."""
    data, _, _ = draw(encoded_images())
    if draw(st.booleans()):
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    damaged = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        damaged[draw(st.integers(0, len(damaged) - 1))] = draw(st.integers(0, 255))
    return bytes(damaged)


# A multi-page TIFF whose second page lacks its width: `image.n_frames` raises TypeError
# ("Missing dimensions") outside the guarded decode in stackit_nb/images.py. Found by the
# property below (its derandomized examples include such a file); kept as its own reproducer.
# Remove both markers once images.py turns it into an ImageError.
def tiff_with_a_broken_second_page() -> bytes:
    out = io.BytesIO()
    page = Image.new("L", (4, 4))
    page.save(out, format="TIFF", save_all=True, append_images=[page])
    data = bytearray(out.getvalue())
    first = struct.unpack_from("<I", data, 4)[0]
    second = struct.unpack_from(
        "<I", data, first + 2 + 12 * struct.unpack_from("<H", data, first)[0]
    )[0]
    for i in range(struct.unpack_from("<H", data, second)[0]):
        if struct.unpack_from("<H", data, second + 2 + 12 * i)[0] == 256:  # ImageWidth
            struct.pack_into("<H", data, second + 2 + 12 * i, 0x7FFF)  # an unknown tag instead
    return bytes(data)


def test_a_damaged_tiff_is_an_image_error() -> None:
    with pytest.raises(ImageError):
        to_image_content(tiff_with_a_broken_second_page())


@pytest.mark.timeout(60)  # a decoder that loops forever on some input fails here, not hangs
@given(st.one_of(st.binary(max_size=2048), damaged_images()))
@example(b"")
@example(b"\x89PNG\r\n\x1a\n")
@example(b"GIF89a")
@SETTINGS
def test_other_bytes_are_an_image_error_or_a_valid_image(data: bytes) -> None:
    try:
        content = to_image_content(data)
    except ImageError as exc:
        assert str(exc)  # says what went wrong
        event("ImageError")
        return
    event("still an image")
    # some damage is harmless (a changed pixel value): then the result must still be readable
    assert decoded(content).size == tuple(content.meta["sent_size"])


# -- the local server ---------------------------------------------------------------------------

ALLOWED = {200, 400, 404, 413, 422}
CHAT_MODELS = [m.id for m in MODELS if "embedding" not in m.capabilities]
EMBED_MODELS = [m.id for m in MODELS if "embedding" in m.capabilities]


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """A private server: hypothesis runs many examples per test, so the function-scoped shared
    fixtures (reset per test, not per example) would not fit."""
    with LocalSTACKIT() as srv, srv.client(timeout=20) as client:
        yield client


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
any_model = st.sampled_from(CHAT_MODELS + EMBED_MODELS) | st.text(max_size=30) | json_values
text_or_parts = st.text(max_size=80) | st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "image_url", "audio", "x"])},
        optional={
            "text": st.text(max_size=40) | json_values,
            "image_url": st.fixed_dictionaries(
                {"url": st.sampled_from(["data:image/png;base64,AAAA", "data:,", "http://x/y.png"])}
            )
            | json_values,
        },
    ),
    max_size=3,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant", "tool", "developer", "wizard"])},
        optional={
            "content": text_or_parts | json_values,
            "tool_call_id": st.text(max_size=10),
            "name": st.text(max_size=10),
        },
    ),
    max_size=4,
)
# requests that are almost right: a real model and plausible messages, any values for the rest
chat_bodies = st.fixed_dictionaries(
    {"model": any_model, "messages": messages | json_values},
    optional={
        "stream": st.booleans() | json_values,
        "max_tokens": st.integers(-5, 5000) | json_values,
        "temperature": st.floats(-1, 3) | json_values,
        "n": st.integers(-1, 20) | json_values,
        "seed": st.integers(-(2**63), 2**63) | json_values,
        "stop": st.text(max_size=5) | st.lists(st.text(max_size=5), max_size=5) | json_values,
        "response_format": st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "json_object", "json_schema", "yaml"])},
            optional={"json_schema": json_values},
        )
        | json_values,
        "tools": st.lists(json_values, max_size=2) | json_values,
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans() | json_values}),
        "reasoning_effort": st.sampled_from(["low", "medium", "high", "max"]) | json_values,
    },
)
embedding_bodies = st.fixed_dictionaries(
    {
        "model": any_model,
        "input": st.text(max_size=40) | st.lists(st.text(max_size=20), max_size=4) | json_values,
    },
    optional={"dimensions": st.integers(-2, 5000) | json_values, "encoding_format": json_values},
)


# requests a client would really send: every value valid, the text anything
valid_chat_bodies = st.fixed_dictionaries(
    {
        "model": st.sampled_from(CHAT_MODELS),
        "messages": st.tuples(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "role": st.sampled_from(["system", "user", "assistant"]),
                        "content": st.text(min_size=1, max_size=60),
                    }
                ),
                max_size=2,
            ),
            st.text(min_size=1, max_size=80),
        ).map(lambda t: [*t[0], {"role": "user", "content": t[1]}]),
    },
    optional={
        "max_tokens": st.integers(1, 200),
        "temperature": st.floats(0, 2),
        "n": st.integers(1, 3),
        "seed": st.integers(0, 2**31),
        "stop": st.lists(st.text(min_size=1, max_size=4), max_size=4),
        "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
    },
)


def check_openai_shaped(response: httpx.Response, stream: bool) -> None:
    """200: a completion, a stream of completion chunks or embeddings; else an error object."""
    assert response.status_code in ALLOWED, (response.status_code, response.text[:500])
    event(f"HTTP {response.status_code}")  # the spread shows in --hypothesis-show-statistics
    if response.status_code != 200:
        body = response.json()
        error = body.get("error", body)  # OpenAI's nested shape or vLLM's flat one
        assert isinstance(error["message"], str) and error["message"]
        return
    if response.headers["content-type"].startswith("text/event-stream"):
        assert stream
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        for data in events[:-1]:
            assert json.loads(data)["object"] == "chat.completion.chunk"
        return
    body = response.json()
    assert body["object"] in {"chat.completion", "list"}
    if body["object"] == "chat.completion":
        assert body["choices"] and all("message" in c for c in body["choices"])
    else:
        assert all(isinstance(d["embedding"], list) for d in body["data"])


def post(http: httpx.Client, path: str, body: Any) -> httpx.Response:
    try:
        content = json.dumps(body, allow_nan=True).encode()
    except (ValueError, OverflowError):
        assume(False)  # not sendable as JSON at all
        raise
    return http.post(path, content=content, headers={"content-type": "application/json"})


@given(st.one_of(chat_bodies, json_values))
@settings(SETTINGS, max_examples=100)
def test_any_chat_request_gets_an_openai_shaped_answer(http: httpx.Client, body: Any) -> None:
    response = post(http, "/v1/chat/completions", body)
    check_openai_shaped(response, stream=isinstance(body, dict) and body.get("stream") is True)


@given(st.one_of(embedding_bodies, json_values))
@settings(SETTINGS, max_examples=60)
def test_any_embedding_request_gets_an_openai_shaped_answer(http: httpx.Client, body: Any) -> None:
    check_openai_shaped(post(http, "/v1/embeddings", body), stream=False)


@given(st.binary(max_size=300))
@SETTINGS
def test_any_bytes_as_a_body_get_a_4xx_or_a_reply(http: httpx.Client, data: bytes) -> None:
    response = http.post("/v1/chat/completions", content=data)
    check_openai_shaped(response, stream=False)


def streamed_texts(response: httpx.Response) -> dict[int, str]:
    texts: dict[int, str] = {}
    for line in response.text.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:])["choices"]:
                texts[choice["index"]] = texts.get(choice["index"], "") + (
                    choice["delta"].get("content") or ""
                )
    return texts


@given(valid_chat_bodies)
@settings(SETTINGS, max_examples=60)
def test_any_valid_chat_request_is_answered_the_same_streamed_or_not(
    http: httpx.Client, body: dict[str, Any]
) -> None:
    plain = post(http, "/v1/chat/completions", body)
    assert plain.status_code == 200, plain.text[:500]
    check_openai_shaped(plain, stream=False)
    streamed = post(http, "/v1/chat/completions", {**body, "stream": True})
    check_openai_shaped(streamed, stream=True)
    expected = {c["index"]: c["message"]["content"] or "" for c in plain.json()["choices"]}
    assert streamed_texts(streamed) == expected
