"""stackit_nb.connect(cassette=...): records with a key, replays without, and says which.

A local server (scripted engine) stands in for STACKIT: ``STACKIT_API_KEY`` and
``STACKIT_API_BASE_URL`` point at it while recording, as they would point at STACKIT. The
components are built with their defaults, as in the documentation, and never know.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import stackit_nb
from stackit_nb import STACKITChatGenerator, STACKITTextEmbedder
from stackit_nb.batch import run_many
from stackit_nb.local import LocalSTACKIT

CHAT = "google/gemma-3-27b-it"
EMBED = "intfloat/e5-mistral-7b-instruct"


pytestmark = pytest.mark.usefixtures("no_backend")


def lesson() -> dict[str, object]:
    """What a short lesson does: a reply, a streamed reply, an embedding, a small batch."""
    chunks: list[str] = []
    generator = STACKITChatGenerator(model=CHAT)
    plain = generator.run("What is photosynthesis?")["replies"][0]
    streamed = generator.run(
        "Tell me about rivers.", streaming_callback=lambda c: chunks.append(c.content)
    )
    vector = STACKITTextEmbedder(model=EMBED).run("a sentence")["embedding"]
    batch = run_many(generator, ["Tell me a joke.", "What is 2 + 3?"], progress=False)
    return {
        "plain": plain.text,
        "usage": plain.meta["usage"],
        "chunks": chunks,
        "streamed": streamed["replies"][0].text,
        "vector": vector,
        "batch": batch.texts,
    }


def test_records_with_a_key_and_replays_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    cassette = tmp_path / "cassettes" / "lesson.jsonl"
    with LocalSTACKIT() as stand_in:
        monkeypatch.setenv("STACKIT_API_KEY", stand_in.api_key)
        monkeypatch.setenv("STACKIT_API_BASE_URL", stand_in.url)
        conn = stackit_nb.connect(cassette=cassette)
        line = capsys.readouterr().out
        assert line.startswith("stackit_nb: STACKIT_API_KEY set - recording to ")
        assert f"requests go to the server at {stand_in.url} through a local recording" in line
        assert stand_in.api_key not in line and conn.engine == "record"
        assert os.environ["STACKIT_API_BASE_URL"] == conn.url != stand_in.url
        recorded = lesson()
        assert len(stand_in.requests) == 5  # every request went on to the stand-in
        conn.stop()
        assert os.environ["STACKIT_API_KEY"] == stand_in.api_key  # the key is restored
    text = cassette.read_text()
    assert len(text.splitlines()) == 6 and stand_in.api_key not in text

    monkeypatch.delenv("STACKIT_API_KEY")
    monkeypatch.delenv("STACKIT_API_BASE_URL")
    conn = stackit_nb.connect(cassette=cassette)  # no key, the stand-in is gone
    line = capsys.readouterr().out
    assert line.startswith(f"stackit_nb: no STACKIT_API_KEY set - replaying {cassette} on a")
    assert "(5 recorded responses; what it does not hold, the scripted engine answers)" in line
    assert conn.engine == "replay" and conn.backend == "local"
    assert lesson() == recorded
    assert stackit_nb.connect(cassette=cassette, quiet=True) is conn
    other = stackit_nb.connect(quiet=True)  # no cassette: a plain local server instead
    assert other is not conn and other.engine == "scripted" and conn.server is None


def test_replaying_a_missing_cassette_says_how_to_record_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="record one first"):
        stackit_nb.connect(cassette=tmp_path / "nothing.jsonl")
    assert "STACKIT_API_BASE_URL" not in os.environ


def test_serve_records_and_replays(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKIT_")}
    env["STACKIT_NB_ENGINE"] = "scripted"
    exe = [sys.executable, "-m", "stackit_nb.cli", "serve", "--port", "0", "--api-key"]
    cassette = tmp_path / "served.jsonl"
    ask = {"model": CHAT, "messages": [{"role": "user", "content": "Hello"}]}
    with LocalSTACKIT() as stand_in:
        env["STACKIT_API_KEY"] = stand_in.api_key
        recording = [*exe, "local-token-1", "--upstream", stand_in.url, "--record", str(cassette)]
        url, said = _serve(recording, env)
        assert f"recording to {cassette}; requests go on to {stand_in.url}" in said
        first = httpx.post(f"{url}/chat/completions", json=ask, headers=_token(1), timeout=10)
        _stop(url)
    del env["STACKIT_API_KEY"]
    replaying = [*exe, "local-token-2", "--cassette", str(cassette), "--fallback", "none"]
    url, said = _serve(replaying, env)
    assert "(1 recorded response, recorded pace); requests it does not hold get a 404" in said
    again = httpx.post(f"{url}/chat/completions", json=ask, headers=_token(2), timeout=10)
    assert again.content == first.content
    _stop(url)
    both = subprocess.run(
        [*exe, "t", "--cassette", str(cassette), "--record", str(cassette)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert both.returncode == 2 and "pick one" in both.stderr


_running: dict[str, subprocess.Popen] = {}


def _token(n: int) -> dict[str, str]:
    return {"Authorization": f"Bearer local-token-{n}"}


def _serve(command: list[str], env: dict[str, str]) -> tuple[str, str]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    first, second = proc.stdout.readline(), proc.stdout.readline()
    assert "Local STACKIT-compatible server on http://127.0.0.1:" in first, first
    url = first.split(" on ")[1].split()[0]
    _running[url] = proc
    return url, second


def _stop(url: str) -> None:
    proc = _running.pop(url)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
