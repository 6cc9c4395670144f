"""The %%stackit magic in a real kernel, against the session's local server.

The kernel gets the server's URL and token in its environment (as after ``connect()`` in another
process), so this process can read what each request carried from ``srv.requests``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kernel import Execution, KernelSession

from stackit_nb.local import LocalSTACKIT

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
JOKE = "I would tell you a UDP joke, but you might not get it."  # the scripted engine's


@pytest.fixture(scope="module")
def kernel(local_server: LocalSTACKIT) -> Iterator[KernelSession]:
    env = {"STACKIT_API_KEY": local_server.api_key, "STACKIT_API_BASE_URL": local_server.url}
    with KernelSession(env=env) as session:
        session.execute("%load_ext stackit_nb")
        yield session


def chat_requests(srv: LocalSTACKIT) -> list[dict[str, Any]]:
    return [r["json"] for r in srv.requests if r["path"].endswith("/chat/completions")]


def saved_outputs(run: Execution) -> list[dict[str, Any]]:
    """The plain outputs a saved notebook keeps for a streamed reply (not the live widget)."""
    return [o for o in run.outputs if "text/html" in o.get("data", {})]


def value(kernel: KernelSession, expression: str) -> Any:
    """A JSON-able value from the kernel."""
    run = kernel.execute(f"import json as _j; print(_j.dumps({expression}))")
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_streams_the_reply_and_keeps_it(kernel: KernelSession, srv: LocalSTACKIT) -> None:
    srv.configure(tokens_per_second=200)  # paced, so the reply arrives in several updates
    run = kernel.execute("%%stackit\nWrite 100 tokens about rivers.", timeout=60)
    assert run.error is None
    assert run.stdout.startswith("stackit_nb: using a local STACKIT-compatible server")
    widget, saved = run.outputs[1:]
    assert widget["data"]["text/plain"] == "" and WIDGET_MIME in widget["data"]
    assert len(run.messages.customs()) >= 3  # streamed: several updates, not one at the end
    text = value(kernel, "_stackit.text")
    assert saved["data"]["text/plain"] == text
    assert "100 out" in saved["data"]["text/html"]
    # the footer says the local server's scripted engine wrote it
    model = "cortecs/Llama-3.3-70B-Instruct-FP8-Dynamic"
    assert f">{model} (local scripted engine) · " in saved["data"]["text/html"]
    assert value(kernel, "_stackit.meta['system_fingerprint']") == "stackit-nb-local-scripted"
    assert value(kernel, "type(_stackit).__name__") == "ChatMessage"
    body = chat_requests(srv)[-1]
    assert body["stream"] is True
    assert body["model"] == "cortecs/Llama-3.3-70B-Instruct-FP8-Dynamic"
    assert body["messages"] == [{"role": "user", "content": "Write 100 tokens about rivers."}]

    again = kernel.execute("%%stackit\nTell me a joke.")  # connect() already said where
    assert "stackit_nb:" not in again.stdout
    assert value(kernel, "_stackit.text") == JOKE


def test_options_reach_the_request(kernel: KernelSession, srv: LocalSTACKIT) -> None:
    kernel.execute('persona = "Answer like a pirate."')
    run = kernel.execute(
        '%%stackit --model neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8 --system "{persona}" --json\n'
        "Name a colour, as JSON.\n"
    )
    assert run.error is None and not run.messages.text("stderr")
    body = chat_requests(srv)[-1]
    assert body["model"] == "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
    assert body["messages"][0] == {"role": "system", "content": "Answer like a pirate."}
    assert body["messages"][1]["content"] == "Name a colour, as JSON."
    assert body["response_format"] == {"type": "json_object"}
    parsed = value(kernel, "_stackit_json")
    assert isinstance(parsed, dict) and parsed == json.loads(value(kernel, "_stackit.text"))


def test_image_goes_to_a_vision_model(
    kernel: KernelSession, srv: LocalSTACKIT, tmp_path: Path
) -> None:
    from PIL import Image

    path = tmp_path / "red.png"
    Image.new("RGB", (300, 200), (220, 30, 30)).save(path)
    run = kernel.execute(f"%%stackit --image {path}\nWhat colour is this?")
    assert run.error is None
    body = chat_requests(srv)[-1]
    assert body["model"] == "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8"
    text_part, image_part = body["messages"][0]["content"]
    assert text_part == {"type": "text", "text": "What colour is this?"}
    assert image_part["image_url"]["url"].startswith("data:image/png;base64,")
    assert "mostly red" in (text := value(kernel, "_stackit.text")) and "300 by 200 pixels" in text


def test_vars_fill_the_prompt_only_when_asked(kernel: KernelSession, srv: LocalSTACKIT) -> None:
    kernel.execute("topic = 'glaciers'")
    kernel.execute("%%stackit --vars\nTell me about {topic}. {{braces}} stay.")
    assert (
        chat_requests(srv)[-1]["messages"][0]["content"] == "Tell me about glaciers. {braces} stay."
    )
    kernel.execute("%%stackit\nKeep {topic} and $topic as written.")
    sent = chat_requests(srv)[-1]["messages"][0]["content"]
    assert sent == "Keep {topic} and $topic as written."


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("%%stackit --model no/such-model\nHi", "ModelNotFoundError: The model 'no/such-model'"),
        ("%%stackit --image missing.jpg\nHi", "ImageError: Cannot read 'missing.jpg'"),
        ("%%stackit --vars\nAbout {nowhere}.", "no variable 'nowhere'"),
        ("%%stackit\n\n", "the cell is empty"),
    ],
)
def test_errors_are_one_clear_line(kernel: KernelSession, cell: str, message: str) -> None:
    kernel.execute("%%stackit\nTell me a joke.")  # a reply that must not survive the failure
    run = kernel.execute(cell)
    assert run.error is None  # no traceback: the message is the output
    stderr = run.messages.text("stderr")
    assert stderr.startswith("%%stackit: ") and message in stderr
    assert stderr.count("\n") == 1
    assert value(kernel, "_stackit is None")


def test_rate_limit_names_the_wait(kernel: KernelSession, srv: LocalSTACKIT) -> None:
    srv.faults.fail(status=429, times=6, retry_after=0.01)  # more than the client's 5 retries
    run = kernel.execute("%%stackit\nHi")
    srv.faults.clear()
    assert run.error is None
    assert "RateLimitedError: Rate limit reached" in run.messages.text("stderr")


def test_broken_stream_keeps_the_partial_reply(kernel: KernelSession, srv: LocalSTACKIT) -> None:
    srv.faults.cut_stream(after_chunks=5)
    run = kernel.execute("%%stackit\nWrite 50 tokens about lakes.")
    assert run.error is None
    (saved,) = saved_outputs(run)
    assert "[error] StreamInterruptedError" in saved["data"]["text/plain"]
    assert saved["data"]["text/plain"].split("\n\n[error]")[0]  # the text received before it
    assert value(kernel, "_stackit is None")


def test_one_generator_per_model(kernel: KernelSession) -> None:
    kernel.execute("%%stackit -m openai/gpt-oss-20b\nHi")
    kernel.execute("%%stackit -m openai/gpt-oss-20b\nHi again")
    cache = "get_ipython().magics_manager.registry['StackitMagics']._generators"
    models = value(kernel, f"[model for model, _ in {cache}]")
    assert models.count("openai/gpt-oss-20b") == 1


def test_retired_default_falls_back_to_a_served_model(
    kernel: KernelSession, srv: LocalSTACKIT
) -> None:
    magics = "get_ipython().magics_manager.registry['StackitMagics']"
    kernel.execute("import stackit_nb.magic as m; real = m._default_model")
    kernel.execute("m._default_model = lambda kind: 'retired/x'")
    try:
        run = kernel.execute("%%stackit\nTell me a joke.")
    finally:
        kernel.execute(f"m._default_model = real; {magics}._fallbacks.clear()")
    assert "retired/x is not served here; using Qwen/Qwen3-VL" in run.messages.text("stderr")
    assert chat_requests(srv)[-1]["model"] == "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8"
    assert value(kernel, "_stackit.text") == JOKE


def test_line_magic_lists_models_and_explains_itself(kernel: KernelSession) -> None:
    run = kernel.execute("%stackit models")
    (table,) = run.outputs
    assert "openai/gpt-oss-120b" in table["data"]["text/html"]
    usage = kernel.execute("%stackit", allow_error=True)
    assert usage.error is not None and usage.error["ename"] == "UsageError"
    assert "%%stackit (two %)" in usage.error["evalue"]


def test_connects_by_itself_and_import_stays_light(tmp_path: Path) -> None:
    """Without a key, the first %%stackit cell starts the local server, saying so once."""
    code = textwrap.dedent(
        """
        import sys
        import stackit_nb
        assert "IPython" not in sys.modules and "haystack" not in sys.modules
        from IPython.testing.globalipapp import start_ipython
        shell = start_ipython()
        shell.run_line_magic("load_ext", "stackit_nb")
        shell.run_cell_magic("stackit", "", "Tell me a joke.")
        print("reply:", shell.user_ns["_stackit"].text)
        """
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("STACKIT_API")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("stackit_nb: no STACKIT_API_KEY set - using the local")
    assert "I would tell you a UDP joke" in out.stdout  # printed as it streamed (no kernel)
    assert lines[-1] == f"reply: {JOKE}"
