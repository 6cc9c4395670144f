"""The live comparison grid in a real kernel: what reaches the front end, and what a saved
notebook keeps."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kernel import KernelSession, Messages, stream_sections

from stackit_nb.widgets._safe_markdown import render_markdown

pytestmark = pytest.mark.kernel

MODELS = [
    "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8",
    "google/gemma-3-27b-it",
    "openai/gpt-oss-20b",
    "nobody/no-such-model",
]

SETUP = f"""
import json, stackit_nb
conn = stackit_nb.connect(quiet=True)
conn.server.configure(ttft=0.05, tokens_per_second=150)
MODELS = {MODELS!r}
"""


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelSession]:
    with KernelSession() as session:
        session.execute(SETUP, timeout=120)
        yield session


def bodies(messages: Messages) -> dict[str, str]:
    """What stream.js builds in each column: comm id -> the concatenated section bodies."""
    built: dict[str, str] = {}
    for comm_id in {m.comm_id for m in messages.select("comm_msg") if m.custom is not None}:
        sections = stream_sections(messages, comm_id)
        built[comm_id] = "".join(sections[k] for k in sorted(sections))
    return built


def test_grid_streams_every_column_within_the_budget_then_hands_over(
    kernel: KernelSession,
) -> None:
    run = kernel.execute(
        "c = stackit_nb.compare('Write 120 tokens about rivers.', models=MODELS)\n"
        "print(json.dumps({m: r.text for m, r in c.replies.items()}))",
        timeout=120,
        settle=0.3,
    )
    texts = json.loads(run.stdout.strip().splitlines()[-1])
    assert list(texts) == MODELS[:3]
    widget, static = [o for o in run.outputs if o["output_type"] == "display_data"]
    assert widget["data"]["text/plain"] == ""  # the same in every run
    assert "application/vnd.jupyter.widget-view+json" in widget["data"]
    page = static["data"]["text/html"]
    assert static["data"]["text/plain"] == "Comparison(4 models: 3 answered, 1 failed, 0 skipped)"
    for model in MODELS:
        assert f">{model}</th>" in page
    assert "ModelNotFoundError" in page

    # each column streamed its reply as diffs, and ends with what the saved copy shows
    built = bodies(run.messages)
    assert len(built) == 4
    assert sum(1 for b in built.values() if b) == 3  # the failed model streamed nothing
    errors = [op[1] for p in run.messages.customs() for op in p["ops"] if op[0] == "e"]
    assert len(errors) == 1 and "ModelNotFoundError" in errors[0]  # shown live in its column
    for text in texts.values():
        html = render_markdown(text)
        assert html in page
        assert any(html in body for body in built.values())

    # the whole grid within one display's budget: 20 messages a second on average, counting
    # its updates of every column (columns' first text and end go out at once)
    updates = [m for m in run.messages.select("comm_msg") if m.custom is not None]
    took = updates[-1].sent - updates[0].sent
    assert len(updates) <= 20 * took + 2 * len(MODELS)
    times = [m.sent for m in updates]
    assert max(sum(1 for u in times if t <= u < t + 1) for t in times) <= 20 + len(MODELS)
    # more than the first and the last message per column: it really streamed
    assert len(updates) > 3 * 2

    # the live grid hides itself once the static copy is there
    hidden = [m for m in run.messages if (m.state or {}).get("display") == "none"]
    assert len(hidden) == 1


def test_the_result_is_not_shown_twice(kernel: KernelSession) -> None:
    run = kernel.execute("stackit_nb.compare('Write 3 tokens.', models=MODELS[:2])", timeout=60)
    kinds = [o["output_type"] for o in run.outputs]
    assert kinds == ["display_data", "display_data", "execute_result"]
    assert run.outputs[2]["data"] == {
        "text/plain": "Comparison(2 models: 2 answered, 0 failed, 0 skipped)"
    }
    # shown in a later cell, it is the static copy again
    again = kernel.execute("_", timeout=60)
    assert "text/html" in again.outputs[0]["data"]
