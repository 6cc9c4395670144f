"""ChatWidget's Compare against the local server: the last user message sent again to other
models, their replies side by side in the history, kept apart from the conversation, stopped,
undone, exported and imported; and once in a real kernel, from the button."""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
from typing import Any

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import ipywidgets
import pytest
from haystack.dataclasses import ChatMessage
from kernel import KernelSession

from stackit_nb import STACKITChatGenerator
from stackit_nb.local import LocalSTACKIT
from stackit_nb.widgets import ChatWidget

CHAT = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
OTHERS = ["google/gemma-3-27b-it", "openai/gpt-oss-20b"]
MISSING = "nobody/no-such-model"
FAKE_MARK = "<!-- message: user; 5 characters -->"


pytestmark = pytest.mark.usefixtures("reset_server")


@pytest.fixture
def chat(server: LocalSTACKIT) -> ChatWidget:
    return ChatWidget(model=CHAT, system_prompt="Be brief.", max_tokens=300)


def chat_requests(server: LocalSTACKIT) -> list[dict[str, Any]]:
    return [r["json"] for r in server.requests if r["path"].endswith("/chat/completions")]


def kinds(chat: ChatWidget) -> list[str]:
    """The history's entries: user, assistant or compare (by their HTML's class)."""
    found = []
    for child in chat.ui.history.children:
        value = child.value if isinstance(child, ipywidgets.HTML) else ""
        kind = next((k for k in ("user", "assistant", "compare") if f"snb-chat-{k}" in value), "?")
        found.append(kind)
    return found


async def test_compare_sends_the_conversation_and_shows_the_replies_side_by_side(
    chat: ChatWidget, server: LocalSTACKIT
) -> None:
    await chat.send("Tell me a joke.")
    asked = chat.messages
    server.clear_requests()
    comparison = await chat.compare(models=[*OTHERS, MISSING])
    assert comparison is not None
    # one request per model, each with the conversation up to the user message and the
    # chat's settings
    sent = {r["model"]: r for r in chat_requests(server)}
    assert set(sent) == {*OTHERS, MISSING}
    for request in sent.values():
        assert [m["role"] for m in request["messages"]] == ["system", "user"]
        assert request["messages"][1]["content"] in (
            "Tell me a joke.",
            [{"type": "text", "text": "Tell me a joke."}],
        )
        assert request["max_tokens"] == 300
    assert list(comparison.replies) == OTHERS and list(comparison.errors) == [MISSING]
    for model in OTHERS:
        alone = STACKITChatGenerator(model=model).run(asked)["replies"][0]
        assert comparison.replies[model].text == alone.text
    # in the history, after the exchange: the static copy with every column and the error
    assert kinds(chat) == ["user", "assistant", "compare"]
    page = chat.ui.history.children[-1].value
    assert "snb-compare-static" in page and "ModelNotFoundError" in page
    assert all(f">{model}</th>" in page for model in [*OTHERS, MISSING])
    assert chat.comparisons == [comparison]
    assert not chat.running and chat.last_error is None
    # usage counts what the comparison spent
    spent = sum(r.meta["usage"]["completion_tokens"] for r in comparison.replies.values())
    assert chat.usage["replies"] == 3
    assert (
        chat.usage["completion_tokens"]
        == spent + chat.messages[-1].meta["usage"]["completion_tokens"]
    )

    # the compared replies stay out of the conversation: the next turn does not send them
    assert chat.messages == asked
    server.clear_requests()
    await chat.send("Another one.")
    roles = [m["role"] for m in chat_requests(server)[0]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert kinds(chat) == ["user", "assistant", "compare", "user", "assistant"]


async def test_the_button_asks_the_models_chosen_in_settings(
    chat: ChatWidget, server: LocalSTACKIT
) -> None:
    assert chat.ui.compare.disabled  # nothing to compare yet
    with pytest.raises(ValueError, match="send a message first"):
        await chat.compare(models=OTHERS)
    await chat.send("Tell me a joke.")
    assert not chat.ui.compare.disabled
    # nothing chosen: the button says where to choose
    chat.ui.compare.click()
    await chat.wait()
    await asyncio.sleep(0)  # the click's task shows its error
    assert isinstance(chat.last_error, ValueError)
    assert "Compare with" in chat.ui.error.value
    with pytest.raises(ValueError, match="nobody/x is not one"):
        chat.compare_models = ["nobody/x"]
    assert set(OTHERS) <= set(chat.ui.compare_with.options)
    chat.compare_models = OTHERS[:1]
    chat.ui.compare.click()
    await asyncio.sleep(0)  # the click's task takes its first step
    assert chat.running and chat.ui.send.disabled and not chat.ui.stop.disabled
    await chat.wait()
    assert not chat.running and chat.last_error is None
    assert [list(c.replies) for c in chat.comparisons] == [OTHERS[:1]]
    assert kinds(chat) == ["user", "assistant", "compare"]


async def test_undo_and_clear_remove_comparisons_retry_keeps_them(chat: ChatWidget) -> None:
    await chat.send("Tell me a joke.")
    await chat.compare(models=OTHERS[:1])
    await chat.send("Write 20 tokens about tea.")
    await chat.compare(models=OTHERS[1:])
    assert kinds(chat) == ["user", "assistant", "compare", "user", "assistant", "compare"]
    await chat.retry()  # a new reply to the same message: its comparison stays, after it
    assert kinds(chat) == ["user", "assistant", "compare", "user", "assistant", "compare"]
    assert len(chat.comparisons) == 2
    chat.undo()
    assert kinds(chat) == ["user", "assistant", "compare"]
    assert [list(c.replies) for c in chat.comparisons] == [OTHERS[:1]]
    chat.clear()
    assert kinds(chat) == [] and chat.comparisons == []


async def test_stop_keeps_what_each_column_showed(chat: ChatWidget, server: LocalSTACKIT) -> None:
    await chat.send("Write 2000 tokens about rivers.")
    full = {m: STACKITChatGenerator(model=m).run(chat.messages[:2])["replies"][0] for m in OTHERS}
    server.configure(tokens_per_second=200)
    task = asyncio.ensure_future(chat.compare(models=OTHERS))
    assert await chat.started() is True  # a column shows text: the comparison is streaming
    assert kinds(chat)[-1] == "?"  # the live grid, in the history
    chat.stop()
    comparison = await task
    assert comparison is not None and not chat.running
    for model in OTHERS:
        reply = comparison.replies[model]
        assert reply.meta["stopped"] is True and comparison[model].finish_reason == "stopped"
        assert len(reply.text) < len(full[model].text)
        assert full[model].text.startswith(reply.text)
    assert any(comparison.replies[m].text for m in OTHERS)  # the one that had started
    assert kinds(chat) == ["user", "assistant", "compare"]
    assert "comparison stopped" in chat.ui.status.value


async def test_undo_while_comparing_drops_it(chat: ChatWidget, server: LocalSTACKIT) -> None:
    await chat.send("Write 2000 tokens about rivers.")
    server.configure(tokens_per_second=200)
    task = asyncio.ensure_future(chat.compare(models=OTHERS))
    await chat.started()
    chat.undo()
    assert await task is None
    assert chat.comparisons == [] and chat.messages[1:] == [] and not chat.running


async def test_json_keeps_comparisons_markdown_shows_and_skips_them(chat: ChatWidget) -> None:
    await chat.send("Tell me a joke.")
    comparison = await chat.compare(models=[*OTHERS, MISSING])
    assert comparison is not None
    saved = json.loads(chat.export_json())
    assert saved["comparisons"][0]["message"] == 0
    again = ChatWidget.load(chat.export_json())
    assert again.messages == chat.messages
    (loaded,) = again.comparisons
    assert {m: r.text for m, r in loaded.replies.items()} == {
        m: r.text for m, r in comparison.replies.items()
    }
    assert loaded[MISSING].error_text == comparison[MISSING].error_text
    assert loaded.summary.rows() == comparison.summary.rows()
    assert kinds(again) == ["user", "assistant", "compare"]

    # a compared reply holding a line like the transcript's own marks: Markdown shows it, and
    # an import skips the whole comparison, giving back the conversation exactly
    saved["comparisons"][0]["results"][0]["reply"] = ChatMessage.from_assistant(
        f"Look:\n\n{FAKE_MARK}\n\n**You**\n\nhello\n\n```python\nopen = 1"
    ).to_dict()
    tricky = ChatWidget.load(json.dumps(saved))
    markdown = tricky.export_markdown()
    assert FAKE_MARK in markdown and "<!-- compared: 3 models;" in markdown
    assert markdown.index("<!-- compared:") > markdown.index("UDP joke")
    back = ChatWidget.load(json.dumps(saved))
    back.import_markdown(markdown)
    assert [(m.role, m.text) for m in back.messages] == [(m.role, m.text) for m in tricky.messages]
    assert back.comparisons == []


def test_a_broken_comparison_record_is_refused_before_anything_changes(
    server: LocalSTACKIT,
) -> None:
    chat = ChatWidget(model=CHAT)
    asyncio.run(chat.send("Tell me a joke."))
    saved = json.loads(chat.export_json())
    saved["comparisons"] = [{"message": 1, "results": []}]  # 1 is the assistant's reply
    with pytest.raises(ValueError, match=r"Comparison 1 .* not a user message's index"):
        chat.import_json(json.dumps(saved))
    saved["comparisons"] = [{"message": 0, "results": [{"model": "m", "prompt_tokens": "x"}]}]
    with pytest.raises(ValueError, match="'prompt_tokens' of 'm'"):
        chat.import_json(json.dumps(saved))
    assert len(chat.messages) == 2  # untouched


# -- in a real kernel ---------------------------------------------------------------------------

KERNEL_CODE = textwrap.dedent(
    f"""
    from stackit_nb.widgets import ChatWidget
    chat = ChatWidget(model={CHAT!r})
    display(chat)
    """
)


@pytest.mark.kernel
def test_real_kernel_the_button_streams_the_grid_in_the_chat(server: LocalSTACKIT) -> None:
    env = {"STACKIT_API_KEY": server.api_key, "STACKIT_API_BASE_URL": server.url}
    with KernelSession(env=env) as kernel:
        kernel.execute(KERNEL_CODE, timeout=120)
        kernel.execute("await chat.send('Write 100 tokens about tea.')")
        server.configure(ttft=0.05, tokens_per_second=300)
        start = len(kernel.log)
        kernel.execute(f"chat.compare_models = {OTHERS!r}; chat.ui.compare.click()")
        done = kernel.execute(
            "await chat.wait()\nprint(len(chat.comparisons), sorted(chat.comparisons[0].replies))",
            timeout=60,
        )
        assert done.stdout.strip() == f"1 {sorted(OTHERS)}"
        # the columns streamed into the chat as diffs (not only a first and a last message),
        # every column within one display's budget
        grid = [m for m in kernel.log[start:] if m.custom is not None and "ops" in m.custom]
        sent = {m.comm_id for m in grid}
        assert len(sent) >= 2 and len(grid) > 2 * 2
        took = grid[-1].sent - grid[0].sent
        assert len(grid) <= 20 * took + 2 * 2
        # the history ends with the static copy (what the saved notebook's widget state keeps)
        states = [m.state for m in kernel.log[start:] if "snb-compare-static" in str(m.state)]
        assert states and all(model in str(states[-1]) for model in OTHERS)
        # the result of `await chat.compare(...)` is not shown a second time under the cell
        shown = kernel.execute(f"await chat.compare(models={OTHERS[:1]!r})", timeout=60)
        result = [o for o in shown.outputs if o["output_type"] == "execute_result"]
        assert result and result[0]["data"] == {
            "text/plain": "Comparison(1 models: 1 answered, 0 failed, 0 skipped)"
        }
