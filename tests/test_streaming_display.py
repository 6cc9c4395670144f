"""StreamingDisplay: what reaches the front end, in a real kernel; the terminal and saved-notebook
fallbacks; Markdown blocks and diffs without a kernel."""

from __future__ import annotations

import inspect
import io
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from haystack.dataclasses import StreamingChunk
from kernel import KernelSession, Messages, stream_sections

from stackit_nb.local import LocalSTACKIT
from stackit_nb.widgets import StreamingDisplay
from stackit_nb.widgets._markdown import HtmlDiff, MarkdownBlocks, Section, render_markdown

MODEL = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"

# Code run in the kernel: a 20,000-character Markdown reply and a paced stream of chunks.
DRIVER = r'''
import json, random, time
from haystack.dataclasses import (ComponentInfo, ReasoningContent, StreamingChunk, ToolCall,
                                  ToolCallDelta, ToolCallResult)
from stackit_nb.local import LocalSTACKIT
from stackit_nb.widgets import StreamingDisplay

def sample_reply(size=20_000):
    """Markdown with headings, paragraphs, lists, code blocks and tables."""
    rnd = random.Random(7)
    words = "river delta basin flow water stream bank current valley source mouth".split()
    parts, total, i = [], 0, 0
    while total < size:
        kind = i % 6
        if kind == 0:
            part = f"## Part {i}\n\n"
        elif kind == 3:
            part = "".join(f"- {rnd.choice(words)} item {j}\n" for j in range(4)) + "\n"
        elif kind == 4:
            body = "".join(f"x_{j} = {j}  # {rnd.choice(words)}\n" for j in range(4))
            part = f"```python\n{body}```\n\n"
        elif kind == 5:
            part = f"| a | b |\n|---|---|\n| {rnd.choice(words)} | {rnd.choice(words)} |\n\n"
        else:
            part = " ".join(rnd.choice(words) for _ in range(60)).capitalize() + ".\n\n"
        parts.append(part)
        total += len(part)
        i += 1
    return "".join(parts)[:size]

def stream(callback, text, chunks=5_000, seconds=1.5, model="test-model", usage=True):
    """Feed `text` to `callback` in `chunks` pieces spread over `seconds`; return the duration."""
    size = len(text) // chunks
    pieces = [text[i * size:(i + 1) * size] for i in range(chunks)]
    pieces[-1] += text[chunks * size:]
    meta = {"model": model}
    start = time.perf_counter()
    callback(StreamingChunk(content="", meta=meta))
    for i, piece in enumerate(pieces):
        callback(StreamingChunk(content=piece, meta=meta, index=0, start=i == 0))
        if i % 50 == 49 and seconds:
            time.sleep(max(0.0, start + seconds * (i + 1) / chunks - time.perf_counter()))
    callback(StreamingChunk(content="", meta=meta, finish_reason="stop"))
    if usage:
        counts = {"prompt_tokens": 12, "completion_tokens": chunks}
        callback(StreamingChunk(content="", meta={**meta, "usage": counts}))
    return time.perf_counter() - start
'''

REPLY_SIZE = 20_000
CHUNKS = 5_000


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelSession]:
    with KernelSession() as session:
        session.execute(DRIVER)
        yield session


def frontend(messages: Messages) -> dict[int, str]:
    """What stream.js builds from the custom messages: section id -> body HTML (UTF-16 aware)."""
    return stream_sections(messages)


def static_outputs(run: Any) -> list[dict[str, Any]]:
    return [o for o in run.outputs if "text/html" in o.get("data", {})]


def widget_outputs(run: Any) -> list[dict[str, Any]]:
    return [o for o in run.outputs if o.get("data", {}).get("text/plain") == ""]


# -- in a real kernel ---------------------------------------------------------------------------


def test_long_reply_costs_little_and_arrives_exactly(kernel: KernelSession) -> None:
    run = kernel.execute(
        "TEXT = sample_reply(); d = StreamingDisplay(); took = stream(d, TEXT)\n"
        "assert d.text == TEXT\n"
        "print(json.dumps([took, TEXT]))",
        settle=0.3,
    )
    took, text = json.loads(run.stdout)
    assert len(text) == REPLY_SIZE
    sent = Messages(m for m in run.messages.select() if m.msg_type != "stream")
    # at most 20 messages a second: over the whole stream and in every one-second window
    assert len(sent) <= 20 * took + 1
    times = [m.sent for m in sent]
    assert max(sum(1 for u in times if t <= u < t + 1) for t in times) <= 20
    # every message counted (widget opens, updates, displays): linear in the reply's size. The
    # live view and the saved copy's HTML each carry the reply about once (more for its 21
    # highlighted code blocks), the saved copy's Markdown once more: 5.4x measured
    assert sent.nbytes() <= 6 * REPLY_SIZE
    # the browser ends with exactly the final text, rendered, as in the saved view
    (static,) = static_outputs(run)
    (body,) = frontend(run.messages).values()
    assert body == render_markdown_blocks(text)
    assert body in static["data"]["text/html"]
    assert static["data"]["text/plain"].startswith(text[:1000])


def render_markdown_blocks(text: str) -> str:
    """The final HTML of a text section, as the display renders it (block by block)."""
    blocks = MarkdownBlocks()
    return "".join(render_markdown(b) for b in blocks.feed(text) + blocks.close())


def test_first_chunk_at_once_then_only_changes(kernel: KernelSession) -> None:
    run = kernel.execute("d = StreamingDisplay(); stream(d, TEXT)", settle=0.3)
    customs = run.messages.customs()
    first_text = next(op for op in customs[0]["ops"] if op[0] == "b")[3]
    assert first_text == "<h2>P</h2>\n"  # the first 4-character chunk alone, not coalesced
    appended = sum(len(op[3]) for c in customs for op in c["ops"] if op[0] == "b")
    final = len(static_outputs(run)[0]["data"]["text/html"])
    assert appended <= 1.05 * final  # completed blocks are never sent again
    # no paragraph travels whole twice (re-sending whole blocks would repeat every one of them)
    paragraphs = re.findall(r"<p>[^<]{200,}</p>", static_outputs(run)[0]["data"]["text/html"])
    assert len(paragraphs) > 20
    appends = [op[3] for c in customs for op in c["ops"] if op[0] == "b"]
    assert all(sum(a.count(p) for a in appends) <= 1 for p in paragraphs)


def test_markdown_reasoning_tools_and_footer(kernel: KernelSession) -> None:
    code = textwrap.dedent(
        """
        d = StreamingDisplay()
        meta = {"model": "openai/gpt-oss-20b"}
        for part in ["Let me ", "think **hard**."]:
            d(StreamingChunk(content="", meta=meta, index=0, reasoning=ReasoningContent(part)))
        d(StreamingChunk(content="", meta=meta, index=1, start=True, tool_calls=[
            ToolCallDelta(index=0, tool_name="get_weather", id="call_1", arguments='{"city":')]))
        d(StreamingChunk(content="", meta=meta, index=1,
                         tool_calls=[ToolCallDelta(index=0, arguments=' "Berlin"}')]))
        d(StreamingChunk(content="", meta=meta, finish_reason="tool_calls"))
        call = ToolCall(tool_name="get_weather", arguments={"city": "Berlin"}, id="call_1")
        d(StreamingChunk(content="", index=0, tool_call_result=ToolCallResult(
            result="sunny, <b>22</b> °C", origin=call, error=False)))
        d(StreamingChunk(content="", finish_reason="tool_call_results"))
        reply = ("# Weather\\n\\nIt is **sunny**:\\n\\n- warm\\n- dry\\n\\n"
                 "```python\\nprint('<hi>')\\n```\\n\\n| a | b |\\n|---|---|\\n| 1 | 2 |\\n"
                 "<script>alert(1)</script>")
        for piece in reply:
            d(StreamingChunk(content=piece, meta=meta, index=2))
        d(StreamingChunk(content="", meta=meta, finish_reason="stop"))
        d(StreamingChunk(content="", meta={**meta, "usage": {"prompt_tokens": 30,
                                                             "completion_tokens": 70}}))
        """
    )
    run = kernel.execute(code)
    assert len(widget_outputs(run)) == 1  # the agent's turns stay in one view
    (static,) = static_outputs(run)
    html = static["data"]["text/html"]
    ops = [op for c in run.messages.customs() for op in c["ops"]]
    shells = [op[2] for op in ops if op[0] == "s"]
    assert shells[0].startswith('<details class="snb-reasoning" open')  # open while streaming
    assert ["c", 0] in ops  # ... and folded once the answer starts
    assert '<details class="snb-reasoning" style' in html
    assert "think <strong>hard</strong>." in html
    assert "Tool call · get_weather" in html
    assert '<pre><code>{\n  "city": "Berlin"\n}</code></pre>' in html  # indented when complete
    assert "Tool result · get_weather" in html
    assert "sunny, &lt;b&gt;22&lt;/b&gt; °C" in html
    assert "<h1>Weather</h1>" in html
    assert "<li>warm</li>" in html
    code = '<pre><code class="language-python"><span class="b">print</span>('
    assert code in html and "&lt;hi&gt;" in html  # highlighted, still escaped
    assert "<table>" in html and "<td>2</td>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    footer = re.search(r'<div class="snb-footer".*?</div>', html)[0]
    for fact in ["openai/gpt-oss-20b", "30 tokens in · 70 out", "first token", "tokens/s"]:
        assert fact in footer
    assert "finish: stop" in footer


def test_error_mid_stream_keeps_partial_text(kernel: KernelSession) -> None:
    code = textwrap.dedent(
        """
        d = StreamingDisplay()
        for word in ["The ", "partial ", "answer"]:
            d(StreamingChunk(content=word, meta={"model": "m"}))
        raise ConnectionError("stream broke off")
        """
    )
    run = kernel.execute(code, allow_error=True)
    assert run.error["ename"] == "ConnectionError"
    (static,) = static_outputs(run)
    assert "The partial answer" in static["data"]["text/html"]
    assert "ConnectionError: stream broke off" in static["data"]["text/html"]
    assert static["data"]["text/plain"].endswith("[error] ConnectionError: stream broke off")
    ops = [op for c in run.messages.customs() for op in c["ops"]]
    assert any(op[0] == "e" and "stream broke off" in op[1] for op in ops)
    # with a context manager too, and the cell's exception still propagates
    code = textwrap.dedent(
        """
        with StreamingDisplay() as d:
            d(StreamingChunk(content="Half a ", meta={}))
            raise TimeoutError("too slow")
        """
    )
    run = kernel.execute(code, allow_error=True)
    assert run.error["ename"] == "TimeoutError"
    (static,) = static_outputs(run)
    assert (
        "Half a" in static["data"]["text/html"]
        and "TimeoutError: too slow" in static["data"]["text/html"]
    )


def test_displays_streaming_at_once_do_not_interfere(kernel: KernelSession) -> None:
    code = textwrap.dedent(
        """
        import threading
        a, b = StreamingDisplay(), StreamingDisplay()
        threads = [threading.Thread(target=stream, args=(a, "alpha " * 100, 100, 0.3)),
                   threading.Thread(target=stream, args=(b, "beta " * 150, 150, 0.3))]
        for t in threads: t.start()
        for t in threads: t.join()
        assert a.text == "alpha " * 100 and b.text == "beta " * 150
        """
    )
    run = kernel.execute(code, settle=0.3)
    statics = [o["data"]["text/plain"] for o in static_outputs(run)]
    assert sorted(statics) == sorted(["alpha " * 100, "beta " * 150])
    opens = run.messages.comm_opens("anywidget")
    assert len(opens) == 2
    for opened in opens:
        (body,) = frontend(Messages(run.messages.select(comm_id=opened.comm_id))).values()
        assert ("alpha" in body) != ("beta" in body)


def test_stalled_stream_still_shows_its_tail(kernel: KernelSession) -> None:
    code = textwrap.dedent(
        """
        d = StreamingDisplay()
        for i in range(40):
            d(StreamingChunk(content=f"w{i} ", meta={}))
        stalled = time.time()
        time.sleep(0.4)
        d(StreamingChunk(content="", meta={}, finish_reason="stop"))
        print(stalled)
        """
    )
    run = kernel.execute(code)
    stalled = float(run.stdout.split()[-1])
    during = [m for m in run.messages.select("comm_msg") if stalled < m.sent < stalled + 0.4]
    assert during and "w39" in json.dumps([m.custom for m in during])


def test_streams_from_the_local_server(kernel: KernelSession) -> None:
    """Haystack's own OpenAIChatGenerator (sync) and STACKITChatGenerator (async) drive it."""
    code = textwrap.dedent(
        """
        from haystack.components.generators.chat import OpenAIChatGenerator
        from haystack.utils import Secret
        from stackit_nb import STACKITChatGenerator
        from stackit_nb.local import LocalSTACKIT
        MODEL = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
        with LocalSTACKIT() as srv:
            srv.configure(tokens_per_second=2000)
            d1 = StreamingDisplay()
            gen = OpenAIChatGenerator(api_key=Secret.from_token(srv.api_key), model=MODEL,
                                      api_base_url=srv.url, streaming_callback=d1)
            first = gen.run("Write 2000 tokens about rivers.")["replies"][0]
            d2 = StreamingDisplay()
            gen2 = STACKITChatGenerator(model=MODEL, api_key=Secret.from_token(srv.api_key),
                                        api_base_url=srv.url)
            second = (await gen2.run_async("Write 300 tokens about lakes.",
                                           streaming_callback=d2.async_callback))["replies"][0]
        assert d1.text == first.text and d2.text == second.text
        print(json.dumps([first.text, second.text]))
        """
    )
    run = kernel.execute(code, timeout=120)
    first, second = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(first) > 5_000
    one, two = static_outputs(run)
    assert one["data"]["text/plain"].startswith(first[:1000])
    assert "2,000 chunks of text" in one["data"]["text/html"]  # no usage without stream_options
    assert "finish: stop" in one["data"]["text/html"]
    assert two["data"]["text/plain"].startswith(second[:1000])
    assert "tokens in · 300 out" in two["data"]["text/html"]
    # ours keeps the server's fingerprint, so the footer says which engine wrote the reply;
    # Haystack's own generator drops it from the chunks: its footer names the model only
    footers = [
        re.search(r'class="snb-footer"[^>]*>([^<]*)', o["data"]["text/html"]) for o in (one, two)
    ]
    assert footers[1] and footers[1][1].startswith(f"{MODEL} (local scripted engine) · ")
    assert footers[0] and footers[0][1].startswith(f"{MODEL} · ")
    assert inspect.iscoroutinefunction(StreamingDisplay().async_callback)


# -- saved notebooks and terminals --------------------------------------------------------------

NOTEBOOK_CELL = """\
from haystack.dataclasses import StreamingChunk
from stackit_nb.local import LocalSTACKIT
from stackit_nb.widgets import StreamingDisplay

d = StreamingDisplay()
for word in "A **saved** reply, in the notebook.".split(" "):
    d(StreamingChunk(content=word + " ", meta={"model": "m"}))
d(StreamingChunk(content="", meta={"model": "m"}, finish_reason="stop"))"""


@pytest.mark.kernel
def test_saved_notebook_shows_the_reply_and_passes_nbval(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK_CELL)])
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    outputs = notebook.cells[0].outputs
    widget, saved = outputs
    assert widget.data["text/plain"] == ""
    assert "application/vnd.jupyter.widget-view+json" in widget.data
    assert "A <strong>saved</strong> reply, in the notebook." in saved.data["text/html"]
    assert saved.data["text/plain"] == "A **saved** reply, in the notebook. "
    path = tmp_path / "saved.ipynb"
    nbformat.write(notebook, path)
    sanitize = tmp_path / "sanitize.cfg"
    sanitize.write_text(
        '[timing]\nregex: <span class="snb-timing">[^<]*</span>\n'
        'replace: <span class="snb-timing">TIMING</span>\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", str(path), "--nbval-sanitize-with",
         str(sanitize), "-p", "no:cacheprovider", "-q"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]


def test_terminal_prints_as_it_arrives(tmp_path: Path) -> None:
    script = tmp_path / "plain.py"
    script.write_text(
        textwrap.dedent(
            """
            from haystack.dataclasses import ReasoningContent, StreamingChunk, ToolCallDelta
            from stackit_nb.widgets import StreamingDisplay
            d = StreamingDisplay()
            d(StreamingChunk(content="", meta={"model": "m"}, index=0,
                             reasoning=ReasoningContent("pondering")))
            d(StreamingChunk(content="", index=1, tool_calls=[
                ToolCallDelta(index=0, tool_name="search", arguments='{"q": 1}')]))
            for word in ["Hello ", "there"]:
                d(StreamingChunk(content=word, meta={"model": "m"}))
                print("|", end="", flush=True)  # shows the text came before the stream ended
            d(StreamingChunk(content="", meta={"model": "m"}, finish_reason="stop"))
            d(StreamingChunk(content="", meta={"usage": {"prompt_tokens": 3,
                                                         "completion_tokens": 2}}))
            import sys; print("\\nipywidgets loaded:", "ipywidgets" in sys.modules)
            """
        )
    )
    env = {"HAYSTACK_TELEMETRY_ENABLED": "False", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert out.startswith('[reasoning] pondering\n[tool call: search] {"q": 1}\nHello |there|')
    assert "m · 3 tokens in · 2 out · first token" in out and "finish: stop" in out
    assert "ipywidgets loaded: False" in out


def test_terminal_footer_names_the_local_engine(srv: LocalSTACKIT) -> None:
    from haystack.utils import Secret

    from stackit_nb import STACKITChatGenerator

    out = io.StringIO()
    generator = STACKITChatGenerator(
        model=MODEL, api_key=Secret.from_token(srv.api_key), api_base_url=srv.url
    )
    reply = generator.run("Tell me a joke.", streaming_callback=StreamingDisplay(out=out))
    text = reply["replies"][0].text
    printed, footer = out.getvalue().rsplit("\n— ", 1)
    assert printed.strip() == text
    assert footer.startswith(f"{MODEL} (local scripted engine) · ")


def test_repr_outside_a_notebook() -> None:
    out = io.StringIO()
    display = StreamingDisplay(out=out)
    display(StreamingChunk(content="Hi", meta={}))
    assert out.getvalue() == "Hi"
    assert display._repr_mimebundle_() == {"text/plain": "Hi"}
    display.finish()
    assert "Hi" in display._repr_mimebundle_()["text/html"]


# -- Markdown blocks and diffs ------------------------------------------------------------------


def test_blocks_freeze_when_complete() -> None:
    blocks = MarkdownBlocks()
    assert blocks.feed("# Title\nSome ") == ["# Title\n"]
    assert blocks.feed("text.\n\nNext") == ["Some text.\n\n"]
    assert blocks.feed(" para\n```py\nx = 1\n\ny = 2\n") == ["Next para\n"]  # blank inside fence
    assert blocks.feed("```\n") == ["```py\nx = 1\n\ny = 2\n```\n"]
    assert blocks.feed("- a\n\n- b\n\n") == []  # a list stays one block...
    assert blocks.feed("After.\n") == ["- a\n\n- b\n\n"]  # ... until something else starts
    assert blocks.feed("  indented\n\n    code\n\n") == []  # indented lines continue a block
    assert blocks.feed("1") == []  # a digit may start a list item: wait for the line
    assert blocks.open == "After.\n  indented\n\n    code\n\n1"
    assert blocks.feed(" more\n") == ["After.\n  indented\n\n    code\n\n"]
    assert blocks.close() == ["1 more\n"]


def test_diff_rebuilds_the_static_view_with_unicode() -> None:
    text = "Intro 🌊 with **bold**.\n\n| a | b |\n|---|---|\n| 🐟 | 2 |\n\nEnd `x` 🎉"
    section = Section("text")
    diff = HtmlDiff()
    messages = Messages()
    for char in text:
        section.parts.append(char)
        ops = diff.ops([section], "", "")
        messages.append(_custom(ops))
    section.closed = True
    messages.append(_custom(diff.ops([section], "<footer>", "")))
    (body,) = frontend(messages).values()
    assert body == render_markdown_blocks(text)
    assert body in diff.static_html([section], "", "")


def _custom(ops: list[Any]) -> Any:
    from kernel import Message

    content = {"data": {"method": "custom", "content": {"ops": ops}}}
    return Message("comm_msg", content, [], None, 0.0, 0.0)
