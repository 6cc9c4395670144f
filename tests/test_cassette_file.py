"""The cassette file itself: no secret in it, images by hash, and clear errors for bad lines."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from stackit_nb.local import LocalSTACKIT
from stackit_nb.local.cassette import CassetteError, read

CHAT = "google/gemma-3-27b-it"
VISION = "google/gemma-3-27b-it"
CANARY = "canary-STACKIT-key-5f1c9e2d7a4b8c3e"


@pytest.fixture(scope="module")
def upstream() -> Iterator[LocalSTACKIT]:
    with LocalSTACKIT(api_key=CANARY) as srv:  # the upstream's key is the canary
        yield srv


def record(upstream: LocalSTACKIT, path: Path, bodies: list[dict]) -> LocalSTACKIT:
    """Record ``bodies`` as chat requests; return the (stopped) recorder."""
    recorder = LocalSTACKIT(upstream=upstream.url, record=path, upstream_api_key=CANARY)
    with recorder, recorder.client() as http:
        for body in bodies:
            http.post("/v1/chat/completions", json=body)
    return recorder


def ask(text: str) -> dict:
    return {"model": CHAT, "messages": [{"role": "user", "content": text}]}


def test_no_key_reaches_the_cassette(upstream: LocalSTACKIT, tmp_path: Path) -> None:
    path = tmp_path / "lesson.jsonl"
    upstream.faults.fail(status=401, message=f"Incorrect API key provided: {CANARY}.")
    echo = ask(f"My key is {CANARY}, and the header was 'Authorization: Bearer {CANARY}'.")
    with_field = {**ask("Hi"), "api_key": "another-secret-value", "metadata": {"token": "t0k3n-9"}}
    recorder = record(upstream, path, [ask("Hello"), echo, with_field])
    text = path.read_text()
    assert CANARY not in text and recorder.api_key not in text
    assert "another-secret-value" not in text and "t0k3n-9" not in text
    for line in text.splitlines()[1:]:  # no request header is kept at all
        assert set(json.loads(line)["request"]) <= {"method", "path", "json", "text"}
    statuses = [e.response.status for e in read(path)]
    assert statuses == [401, 200, 200]  # the echoed key was recorded, redacted
    assert "Incorrect API key provided: <redacted>." in text


def test_images_are_stored_by_hash_beside_the_cassette(
    upstream: LocalSTACKIT, tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "PNG")
    png = buffer.getvalue()
    encoded = base64.b64encode(png).decode()
    parts = [
        {"type": "text", "text": "What colour is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}},
    ]
    body = {"model": VISION, "messages": [{"role": "user", "content": parts}]}
    path = tmp_path / "vision.jsonl"
    record(upstream, path, [body])
    text = path.read_text()
    digest = hashlib.sha256(png).hexdigest()
    assert encoded[:40] not in text and f'"url": "sha256:{digest}"' in text
    assert (tmp_path / "vision.images" / f"{digest}.png").read_bytes() == png
    with (
        LocalSTACKIT(engine="replay", cassette=path, fallback=None) as srv,
        srv.client() as http,
    ):
        assert http.post("/v1/chat/completions", json=body).status_code == 200
        buffer = io.BytesIO()
        Image.new("RGB", (64, 48), (30, 30, 200)).save(buffer, "PNG")  # another image
        other = base64.b64encode(buffer.getvalue()).decode()
        parts[1] = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{other}"}}
        assert http.post("/v1/chat/completions", json=body).status_code == 404


@pytest.fixture
def recorded(upstream: LocalSTACKIT, tmp_path: Path) -> Path:
    path = tmp_path / "lesson.jsonl"
    record(upstream, path, [ask("one"), ask("two"), ask("three")])
    return path


def rewrite(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("number", "change", "problem"),
    [
        (3, lambda line: line[: len(line) // 2], "not valid JSON"),
        (2, lambda line: line.replace('"status": 200', '"status": "ok"'), "'ok' is not an HTTP"),
        (4, lambda line: line.replace('"request"', '"req"'), "missing 'request'"),
        (3, lambda line: line.replace('"path": "/v1/', '"path": "v1/'), 'a "path" starting'),
        (2, lambda line: line.replace('"headers": {', '"headers": {"x": 1, '), "headers must"),
        (2, lambda _: "[1, 2]", "must be a JSON object"),
        (1, lambda _: '{"cassette": "vcr"}', "not a stackit_nb cassette"),
        (1, lambda _: '{"cassette": "stackit_nb", "version": 7}', "version 7"),
    ],
)
def test_a_bad_line_is_named_with_its_number(
    recorded: Path, number: int, change: object, problem: str
) -> None:
    line = recorded.read_text().splitlines()[number - 1]
    rewrite(recorded, number, change(line))  # type: ignore[operator]
    with pytest.raises(CassetteError) as caught:
        read(recorded)
    message = str(caught.value)
    assert message.startswith(f"{recorded}, line {number}: ") and problem in message
    assert "record the cassette again" in message
    with pytest.raises(CassetteError, match=f"line {number}: "):  # the server refuses it too
        LocalSTACKIT(engine="replay", cassette=recorded)


def test_a_stream_event_edited_by_hand_is_named(upstream: LocalSTACKIT, tmp_path: Path) -> None:
    path = tmp_path / "stream.jsonl"
    record(upstream, path, [{**ask("Hi"), "stream": True}])
    line = json.loads(path.read_text().splitlines()[1])
    line["response"]["events"][2] = {"t": -1, "data": {}}
    rewrite(path, 2, json.dumps(line))
    with pytest.raises(CassetteError, match=r"line 2: .*\"t\" must be a number of seconds >= 0"):
        read(path)


def test_a_hand_edited_reply_is_replayed_as_edited(recorded: Path) -> None:
    lines = recorded.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["response"]["json"]["choices"][0]["message"]["content"] = "Edited by the teacher."
    rewrite(recorded, 2, json.dumps(entry, ensure_ascii=False))
    with LocalSTACKIT(engine="replay", cassette=recorded) as srv, srv.client() as http:
        reply = http.post("/v1/chat/completions", json=ask("one")).json()
        assert reply["choices"][0]["message"]["content"] == "Edited by the teacher."


def test_missing_and_empty_cassettes(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="record one first"):
        LocalSTACKIT(engine="replay", cassette=tmp_path / "none.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(CassetteError, match="line 1: not a stackit_nb cassette"):
        read(tmp_path / "empty.jsonl")
    with pytest.raises(ValueError, match='engine="replay" and cassette=FILE'):
        LocalSTACKIT(engine="replay")
    with pytest.raises(ValueError, match="both upstream=URL and record=FILE"):
        LocalSTACKIT(record=tmp_path / "x.jsonl")
    with pytest.raises(ValueError, match="STACKIT_API_KEY"), pytest.MonkeyPatch.context() as mp:
        mp.delenv("STACKIT_API_KEY", raising=False)
        LocalSTACKIT(upstream="https://example.invalid/v1", record=tmp_path / "x.jsonl")
    with pytest.raises(ValueError, match="pace must be one of"):
        LocalSTACKIT(engine="replay", cassette=tmp_path / "empty.jsonl", pace="slow")
