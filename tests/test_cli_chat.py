"""`stackit-nb chat` and `stackit-nb models`, run as the installed command with no key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

COMMAND = str(Path(sys.executable).with_name("stackit-nb"))


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    # no key or URL; the conftest's engine pin (STACKIT_NB_ENGINE) stays: replies are scripted
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STACKIT_") or k == "STACKIT_NB_ENGINE"
    }
    env["HAYSTACK_TELEMETRY_ENABLED"] = "False"
    return subprocess.run(
        [COMMAND, *args], env=env, input=stdin, capture_output=True, text=True, timeout=90
    )


def test_chat_streams_from_the_local_server_and_says_so() -> None:
    done = run("chat", "Tell me a joke.")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    assert "joke" in done.stdout.lower() or len(done.stdout) > 20
    first_line = done.stderr.splitlines()[0]
    assert first_line.startswith("stackit_nb: no STACKIT_API_KEY set - using the local")
    stats = done.stderr.splitlines()[-1]
    assert stats.startswith("[") and "tokens" in stats  # the stats line
    # it names the local server's engine next to the model (scripted: the tests' pin)
    assert " (local scripted engine), " in stats


def test_chat_with_model_system_and_stdin() -> None:
    done = run(
        "chat", "-", "--model", "openai/gpt-oss-20b", "--system", "Be brief.", stdin="who are you"
    )
    assert done.returncode == 0, done.stderr
    assert "local STACKIT-compatible server" in done.stdout
    assert "openai/gpt-oss-20b" in done.stderr  # reasoning and stats go to stderr


def test_chat_with_an_image(tmp_path: Path) -> None:
    path = tmp_path / "red.png"
    Image.new("RGB", (80, 60), (210, 20, 25)).save(path)
    done = run("chat", "What does the image show?", "--image", str(path))
    assert done.returncode == 0, done.stderr
    assert "red" in done.stdout.lower()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "gpt-oss-120"], "openai/gpt-oss-120b"),  # closest id suggested
        (["--image", "IMAGE", "--model", "openai/gpt-oss-20b"], "Models that accept images"),
    ],
)
def test_chat_errors_are_readable(tmp_path: Path, args: list[str], expected: str) -> None:
    path = tmp_path / "red.png"
    Image.new("RGB", (8, 8), (210, 20, 25)).save(path)
    done = run("chat", "hi", *[str(path) if a == "IMAGE" else a for a in args])
    assert done.returncode == 1
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_models_lists_the_catalog() -> None:
    done = run("models")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["model", "kind", "capabilities", "context"]
    assert any(line.startswith("openai/gpt-oss-120b") for line in lines)
    assert "using the local" in done.stderr
