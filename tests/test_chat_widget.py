"""ChatWidget driven from Python against the local server (no browser), and once in a real kernel.

The widget is built and clicked the way a notebook would: ``await chat.send(...)`` for the Python
API, ``button.click()`` and the message box's ``submit`` message for the UI (they start the reply
as a task on the running loop, as in a kernel).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import ipywidgets
import pytest
from haystack.dataclasses import ChatMessage, ChatRole, StreamingChunk
from kernel import KernelSession
from PIL import Image

from stackit_nb import STACKITChatGenerator
from stackit_nb.local import LocalSTACKIT
from stackit_nb.widgets import ChatWidget
from stackit_nb.widgets._markdown import render_markdown
from stackit_nb.widgets._transcript import EXPORT_PATTERN

CHAT = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
VISION = "google/gemma-3-27b-it"
LONG = "Write 2000 tokens about rivers."


pytestmark = pytest.mark.usefixtures("reset_server")


@pytest.fixture
def chat(server: LocalSTACKIT) -> ChatWidget:
    return ChatWidget(model=CHAT)


def last_request(server: LocalSTACKIT) -> dict[str, Any]:
    return [r for r in server.requests if r["path"].endswith("/chat/completions")][-1]["json"]


class StopsWhen:
    """A real ``STACKITChatGenerator`` (HTTP to the local server) that presses its chat's Stop
    right after the chunk that makes ``when(text so far)`` true, or, with ``at_end``, after the
    last chunk (before the chat has filed the reply). So a stop lands at a known place in the
    text, however fast the server streams. Unarmed, it streams like the generator it wraps."""

    def __init__(self, model: str) -> None:
        self.inner = STACKITChatGenerator(model=model)
        self.model = model
        self.chat: ChatWidget | None = None
        self.when: Callable[[str], bool] | None = None
        self.at_end = False
        self.text_at_stop: str | None = None

    def _stop(self, text: str) -> None:
        assert self.chat is not None and self.text_at_stop is None
        self.text_at_stop = text
        self.chat.stop()

    async def run_async(
        self,
        messages: list[ChatMessage],
        streaming_callback: Any = None,
        generation_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        text = ""

        async def forward(chunk: StreamingChunk) -> None:
            nonlocal text
            await streaming_callback(chunk)
            text += chunk.content
            if self.when is not None and self.text_at_stop is None and self.when(text):
                self._stop(text)

        result = await self.inner.run_async(
            messages, streaming_callback=forward, generation_kwargs=generation_kwargs
        )
        if self.at_end:
            self._stop(text)
        return dict(result)


def all_widgets(root: ipywidgets.Widget) -> list[ipywidgets.Widget]:
    """``root`` and every widget it holds (children, accordion panes, the upload's parts)."""
    seen: dict[str, ipywidgets.Widget] = {}
    todo = [root]
    while todo:
        widget = todo.pop()
        if widget.model_id in seen:
            continue
        seen[widget.model_id] = widget
        todo.extend(getattr(widget, "children", ()))
        todo.extend(v for v in vars(widget).values() if isinstance(v, ipywidgets.Widget))
    return list(seen.values())


async def test_send_adds_user_and_streamed_reply(chat: ChatWidget, server: LocalSTACKIT) -> None:
    reply = await chat.send("Tell me a joke.")
    assert last_request(server)["stream"] is True
    expected = STACKITChatGenerator(model=CHAT).run("Tell me a joke.")["replies"][0]
    assert reply is not None and reply.text == expected.text
    assert [m.role for m in chat.messages] == [ChatRole.USER, ChatRole.ASSISTANT]
    assert chat.messages[0].text == "Tell me a joke."
    assert chat.messages[1] == reply
    # the history shows both as rendered Markdown, the live view is gone
    entries = chat.ui.history.children
    assert len(entries) == 2 and all(isinstance(e, ipywidgets.HTML) for e in entries)
    assert "Tell me a joke." in entries[0].value and "UDP" in entries[1].value
    assert "snb-chat-assistant" in entries[1].value and "finish: stop" in entries[1].value
    assert not chat.running and chat.last_error is None
    assert not chat.ui.send.disabled and chat.ui.stop.disabled


async def test_markdown_is_rendered_and_html_escaped(chat: ChatWidget) -> None:
    await chat.send("Is **bold** <script>alert(1)</script> fine?")
    user_html = chat.ui.history.children[0].value
    assert "<strong>bold</strong>" in user_html
    assert "<script>" not in user_html and "&lt;script&gt;" in user_html


async def test_stop_keeps_partial_reply_marked(chat: ChatWidget, server: LocalSTACKIT) -> None:
    server.configure(tokens_per_second=200)
    task = asyncio.create_task(chat.send(LONG))
    assert await chat.started() is True  # the first words are in
    assert chat.running and chat.ui.send.disabled and not chat.ui.stop.disabled
    shown = chat._display.text
    chat.stop()
    reply = await task
    assert reply is not None and reply.meta["stopped"] is True
    assert reply.text == shown and 0 < len(shown) < 2000  # nothing after the press is added
    assert chat.messages[-1] == reply and chat.messages[-2].text == LONG
    assert "stopped" in chat.ui.history.children[-1].value
    assert "stopped" in chat.ui.status.value
    assert not chat.running and chat.last_error is None

    server.configure(tokens_per_second=None)
    full = await chat.retry()
    assert full is not None and "stopped" not in full.meta
    assert full.meta["usage"]["completion_tokens"] == 2000
    assert len(full.text or "") > 5 * len(reply.text or "")
    assert [m.role for m in chat.messages] == [ChatRole.USER, ChatRole.ASSISTANT]
    assert last_request(server)["messages"] == [{"role": "user", "content": LONG}]


async def test_stop_and_send_from_the_buttons(chat: ChatWidget, server: LocalSTACKIT) -> None:
    server.configure(tokens_per_second=200)
    chat.ui.composer.value = LONG
    chat.ui.send.click()  # returns at once: the reply runs as a task
    assert chat.ui.composer.value == ""
    assert await chat.started() is True
    assert chat.running
    chat.ui.stop.click()
    await chat.wait()
    assert chat.messages[-1].meta["stopped"] is True
    # Enter in the message box sends a "submit" message with the text
    server.configure(tokens_per_second=None)
    chat.ui.composer._handle_custom_msg({"event": "submit", "text": "Tell me a joke."}, [])
    await chat.started()  # the reply the message started (it runs as a task)
    await chat.wait()
    assert chat.messages[-2].text == "Tell me a joke." and "UDP" in (chat.messages[-1].text or "")


async def test_undo_and_clear(chat: ChatWidget) -> None:
    await chat.send("Tell me a joke.")
    await chat.send("Who are you?")
    removed = chat.undo()
    assert [m.text for m in removed] == ["Who are you?", removed[1].text]
    assert len(chat.messages) == 2 and len(chat.ui.history.children) == 2
    assert chat.ui.composer.value == ""  # sent from code: not the user's typing
    chat.clear()
    assert chat.messages == [] and chat.ui.history.children == ()
    assert chat.usage["replies"] == 2  # tokens spent stay counted


async def test_the_message_box_holds_only_what_the_user_typed(chat: ChatWidget) -> None:
    await chat.send("Tell me a joke.")
    assert chat.ui.composer.value == ""
    chat.undo()
    assert chat.ui.composer.value == ""  # a message sent from code never lands in the box
    # what the user is typing survives messages sent and undone from code
    chat.ui.composer.value = "Half a thought"
    await chat.send("Who are you?")
    assert chat.ui.composer.value == "Half a thought"
    chat.ui.undo.click()
    assert chat.ui.composer.value == "Half a thought" and chat.messages == []
    # typed and sent with Enter: Undo gives it back, to edit and send again
    chat.ui.composer.value = ""
    chat.ui.composer._handle_custom_msg({"event": "submit", "text": "Typed by hand."}, [])
    assert chat.ui.composer.value == ""
    await chat.started()
    await chat.wait()
    await chat.send("Sent from code.")
    chat.ui.undo.click()  # the code's exchange: the box stays empty
    assert chat.ui.composer.value == ""
    chat.ui.undo.click()  # the typed one comes back
    assert chat.ui.composer.value == "Typed by hand." and chat.messages == []
    # ... but never over new typing
    chat.ui.composer._handle_custom_msg({"event": "submit", "text": "Typed again."}, [])
    await chat.started()
    await chat.wait()
    chat.ui.composer.value = "Something new"
    chat.undo()
    assert chat.ui.composer.value == "Something new"


async def test_stop_before_the_first_token_files_an_empty_stopped_reply(
    chat: ChatWidget, server: LocalSTACKIT
) -> None:
    server.configure(ttft=5.0)  # no token before 5 s: the stop below comes first
    task = asyncio.create_task(chat.send(LONG))

    async def request_arrived() -> None:
        while not [r for r in server.requests if r["path"].endswith("/chat/completions")]:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(request_arrived(), timeout=5.0)  # the request is in flight
    assert chat.running and chat._display.text == ""
    chat.stop()
    reply = await task
    assert reply is not None and reply.text == "" and reply.meta["stopped"] is True
    assert chat.messages == [ChatMessage.from_user(LONG), reply]
    assert "stopped" in chat.ui.history.children[-1].value
    assert "stopped before the first token" in chat.ui.status.value
    # the conversation goes on: the empty reply is sent along (roles keep alternating)
    server.configure(ttft=0.0)
    after = await chat.send("Tell me a joke.")
    assert after is not None and "UDP" in (after.text or "")
    sent = last_request(server)["messages"]
    assert sent[1] == {"role": "assistant", "content": ""}


async def test_stop_after_the_last_chunk_but_before_filing_still_counts(
    server: LocalSTACKIT,
) -> None:
    stopper = StopsWhen(CHAT)
    chat = stopper.chat = ChatWidget(stopper)
    stopper.at_end = True  # Stop pressed while the finished reply is not filed yet
    reply = await chat.send("Tell me a joke.")
    assert reply is not None and reply.meta["stopped"] is True
    assert reply.text == stopper.text_at_stop and "UDP" in reply.text
    assert "stopped" in chat.ui.history.children[-1].value


async def test_started_returns_when_a_reply_ends_without_text(server: LocalSTACKIT) -> None:
    chat = ChatWidget(STACKITChatGenerator(model=CHAT, max_retries=0))
    server.faults.fail(status=500, times=1)
    task = asyncio.create_task(chat.send("Tell me a joke."))
    assert await chat.started() is False  # it ended (with an error) before any text
    assert await task is None and chat.last_error is not None
    chat.stop()  # nothing runs: nothing to mark
    assert not chat.running and [m.text for m in chat.messages] == ["Tell me a joke."]
    # once a reply streams, started() returns at once
    server.configure(tokens_per_second=200)
    task = asyncio.create_task(chat.retry())
    assert await chat.started() is True
    assert await chat.started() is True
    chat.stop()
    stopped = await task
    assert stopped is not None and stopped.meta["stopped"] is True


async def test_reply_footer_names_the_local_engine(chat: ChatWidget) -> None:
    reply = await chat.send("Tell me a joke.")
    assert reply is not None and reply.meta["system_fingerprint"] == "stackit-nb-local-scripted"
    footer = chat.ui.history.children[-1].value.split('class="snb-footer"')[1]
    assert f"{CHAT} (local scripted engine)" in footer
    # a reply from STACKIT carries no such fingerprint: its footer names the model only
    stackit = ChatMessage.from_assistant("Hi.", meta={"model": CHAT, "system_fingerprint": "fp_1"})
    chat.import_json(json.dumps([ChatMessage.from_user("Hi").to_dict(), stackit.to_dict()]))
    footer = chat.ui.history.children[-1].value.split('class="snb-footer"')[1]
    assert CHAT in footer and "engine" not in footer


async def test_undo_while_streaming_discards_the_exchange(
    chat: ChatWidget, server: LocalSTACKIT
) -> None:
    server.configure(tokens_per_second=200)
    task = asyncio.create_task(chat.send(LONG))
    await chat.started()
    chat.undo()
    assert await task is None
    assert chat.messages == [] and chat.ui.history.children == () and not chat.running


async def test_system_prompt_and_settings_reach_the_request(server: LocalSTACKIT) -> None:
    chat = ChatWidget(model=CHAT, system_prompt="Answer briefly.", temperature=0.2, max_tokens=40)
    await chat.send("Tell me a joke.")
    sent = last_request(server)
    assert sent["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 40
    assert chat.messages[0].role == ChatRole.SYSTEM
    # changed in the settings pane, as a user would
    chat.ui.temperature_default.value = True
    chat.ui.max_tokens.value = 0
    chat.ui.system.value = ""
    await chat.send("Who are you?")
    sent = last_request(server)
    assert "temperature" not in sent and "max_tokens" not in sent
    assert sent["messages"][0]["role"] == "user"


async def test_model_picker_lists_chat_models_and_vision_with_images(
    server: LocalSTACKIT, tmp_path: Path
) -> None:
    from stackit_nb import list_models

    models = list_models()
    chat = ChatWidget(model=CHAT)
    assert chat.models == models.chat.ids and chat.ui.model.value == CHAT
    chat.ui.model.value = "openai/gpt-oss-20b"  # picked in the dropdown: a new generator
    assert chat.model == chat.generator.model == "openai/gpt-oss-20b"
    image = tmp_path / "red.png"
    Image.new("RGB", (320, 200), (220, 20, 30)).save(image)
    chat.attach(image)
    vision = [m.id for m in models.chat.vision if not m.legacy]
    assert chat.models == vision and chat.model in vision  # switched to a vision model
    reply = await chat.send("What is in this picture?")
    assert reply is not None and "red" in (reply.text or "")
    content = last_request(server)["messages"][-1]["content"]
    assert [part["type"] for part in content] == ["text", "image_url"]
    assert content[1]["image_url"]["url"].startswith("data:image/")
    # the history keeps the image (sent size) and shows a small thumbnail
    assert chat.messages[0].images and chat.attachments == []
    assert "<img" in chat.ui.history.children[0].value
    assert len(chat.ui.history.children[0].value) < 20_000
    assert chat.models == models.chat.ids  # attachments went with the message


async def test_default_model_and_foreign_generator(server: LocalSTACKIT) -> None:
    chat = ChatWidget()
    assert chat.model in [m.id for m in chat.ui._catalog.chat if not m.legacy]

    class Echo:
        """A chat generator that is not ours: only ``run`` (no run_async), no model."""

        def run(self, messages: list[ChatMessage], streaming_callback: Any = None) -> Any:
            return {"replies": [ChatMessage.from_assistant("echo: " + (messages[-1].text or ""))]}

    echo = ChatWidget(Echo())
    assert echo.ui.model.disabled and echo.model is None
    reply = await echo.send("hello")
    assert reply is not None and reply.text == "echo: hello"


async def test_error_keeps_message_shows_advice_and_retry_works(server: LocalSTACKIT) -> None:
    chat = ChatWidget(STACKITChatGenerator(model=CHAT, max_retries=0))
    server.faults.fail(status=500, times=1)
    assert await chat.send("Tell me a joke.") is None
    assert [m.text for m in chat.messages] == ["Tell me a joke."]
    assert chat.last_error is not None and "500" in str(chat.last_error)
    assert "Retry" in chat.ui.error.value and "500" in chat.ui.error.value
    reply = await chat.retry()
    assert reply is not None and "UDP" in (reply.text or "")
    assert chat.ui.error.value == "" and chat.last_error is None


async def test_stream_that_breaks_off_keeps_partial_reply(
    chat: ChatWidget, server: LocalSTACKIT
) -> None:
    server.faults.cut_stream(after_chunks=8)
    reply = await chat.send(LONG)
    assert reply is not None and reply.meta["interrupted"] is True and reply.text
    assert "broke off" in reply.meta["error"] and "broke off" in chat.ui.error.value
    assert chat.messages[-1] == reply
    full = await chat.retry()
    assert full is not None and full.meta["usage"]["completion_tokens"] == 2000


async def test_missing_key_is_shown_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STACKIT_API_KEY")
    chat = ChatWidget(model=CHAT)
    assert "STACKIT_API_KEY" in chat.ui.error.value and chat.models  # built-in list offered
    assert await chat.send("Tell me a joke.") is None
    assert "STACKIT_API_KEY" in str(chat.last_error) and len(chat.messages) == 1


async def test_usage_totals(chat: ChatWidget) -> None:
    first = await chat.send("Tell me a joke.")
    second = await chat.send("Write 50 tokens about lakes.")
    assert first is not None and second is not None
    usages = [first.meta["usage"], second.meta["usage"]]
    assert chat.usage == {
        "prompt_tokens": sum(u["prompt_tokens"] for u in usages),
        "completion_tokens": sum(u["completion_tokens"] for u in usages),
        "replies": 2,
    }
    assert f"{chat.usage['completion_tokens']:,} out" in chat.ui.status.value
    assert "tokens/s" in chat.ui.status.value


async def test_export_and_import_round_trip(
    server: LocalSTACKIT, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopper = StopsWhen(VISION)
    chat = stopper.chat = ChatWidget(
        stopper, system_prompt="Be brief.", temperature=0.3, max_tokens=300
    )
    image = tmp_path / "blue.png"
    Image.new("RGB", (200, 120), (20, 40, 230)).save(image)
    await chat.send("What colour is this?", images=[image])
    # stopped right after a paragraph break: the reply ends in "\n\n"
    stopper.when = lambda text: text.endswith("\n\n")
    stopped = await chat.send(LONG)
    assert stopped is not None and stopped.meta["stopped"] is True
    assert stopped.text == stopper.text_at_stop and stopped.text.endswith(".\n\n")

    data = json.loads(chat.export_json())
    assert data["model"] == VISION and data["system_prompt"] == "Be brief."
    assert data["temperature"] == 0.3 and data["max_tokens"] == 300
    assert data["usage"] == chat.usage
    loaded = ChatWidget.load(chat.export_json())
    assert loaded.messages == chat.messages  # images and the stopped mark included
    assert (loaded.model, loaded.temperature, loaded.max_tokens) == (VISION, 0.3, 300)
    assert loaded.usage == chat.usage

    markdown = chat.export_markdown()
    assert "**System**\n\nBe brief." in markdown and "What colour is this?" in markdown
    assert "[image 1: 200x120 PNG" in markdown and "(google/gemma-3-27b-it, stopped)" in markdown
    assert "base64" not in markdown
    back = ChatWidget(model=CHAT)
    back.import_markdown(markdown)
    assert [(m.role, m.text) for m in back.messages] == [(m.role, m.text) for m in chat.messages]
    assert back.messages[-1].text == stopped.text  # the trailing "\n\n" included
    assert back.messages[-1].meta == {"model": VISION, "stopped": True}

    assert chat.save(tmp_path / "c.json").read_text() == chat.export_json()
    assert ChatWidget.load(tmp_path / "c.json").messages == chat.messages
    from_file = ChatWidget.load(chat.save(tmp_path / "c.md")).messages
    assert [m.text for m in from_file] == [m.text for m in chat.messages]
    with pytest.raises(ValueError, match=r"\.json or \.md"):
        chat.save(tmp_path / "c.txt")


async def test_export_goes_to_the_working_directory_under_one_pattern(
    chat: ChatWidget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await chat.send("Tell me a joke.")
    monkeypatch.chdir(tmp_path)  # the kernel's working directory
    chat.ui.export.click()
    exported = sorted(tmp_path.iterdir())
    assert [p.suffix for p in exported] == [".json", ".md"]
    assert exported[0].stem == exported[1].stem
    assert all(p.match(EXPORT_PATTERN) or p.match(EXPORT_PATTERN[:-5] + ".md") for p in exported)
    assert f"saved {exported[1].name} and {exported[0].name} in {tmp_path}" in chat.ui.status.value
    # save() without a path: JSON in the working directory, never over an earlier export
    saved = chat.save()
    assert saved.parent == tmp_path and saved.match(EXPORT_PATTERN) and saved not in exported
    assert ChatWidget.load(saved).messages == chat.messages
    assert exported[0].read_text(encoding="utf-8") == chat.export_json()  # still there


# Texts that must come back exactly from a Markdown transcript, as a user's message and as a
# stopped reply: whitespace where a stop can land, code left open, lines that look like the
# transcript's own, other line ends.
SHAPES = {
    "paragraph break": "Rivers carve valleys.\n\n",
    "line break": "Rivers carve valleys.\n",
    "hard break spaces": "Rivers carve valleys.  ",
    "tab": "Rivers\t",
    "blank lines only": "\n\n\n",
    "leading indent": "\n    indented code\nand text",
    "open fence": "Here:\n\n```python\nprint('rivers')\n",
    "open fence, no newline": "```python\nprint('rivers')",
    "open long tilde fence": "~~~~\ncode\n~~~\nstill code",
    "closed fence": "```\ncode\n```\n",
    "nothing": "",
    "transcript lines": "<!-- message: user; 2 characters -->\n\n**You**\n\nhi\n\n> Error: no",
    "placeholder line": "> [image 1: 2x2 PNG; in the JSON export]\n",
    "carriage returns": "one\r\ntwo\rthree\r\n",
    "unicode": "Flüsse 🌊\u00a0\n\n",
}


@pytest.mark.parametrize("text", SHAPES.values(), ids=SHAPES.keys())
async def test_markdown_transcript_gives_back_any_text(
    server: LocalSTACKIT, tmp_path: Path, text: str
) -> None:
    history = [
        ChatMessage.from_user(text),
        ChatMessage.from_assistant(text, meta={"model": CHAT, "stopped": True}),
        ChatMessage.from_user("And then?"),
        ChatMessage.from_assistant(
            text, meta={"model": CHAT, "interrupted": True, "error": "cut\n\n  off "}
        ),
    ]
    chat = ChatWidget(model=CHAT, system_prompt="Be brief.")
    chat.import_json(json.dumps([m.to_dict() for m in history]))
    markdown = chat.export_markdown()
    back = ChatWidget(model=CHAT)
    back.import_markdown(markdown)
    assert back.messages == chat.messages  # texts, marks, model and error, exactly
    assert ChatWidget.load(chat.save(tmp_path / "chat.md")).messages == chat.messages
    # a code block left open is closed for readers: the next heading is not shown as code
    rendered = render_markdown(markdown)
    assert rendered.count("<strong>Assistant</strong> (") == 2, rendered


def test_markdown_transcripts_edited_by_hand_or_without_lengths_still_load(
    server: LocalSTACKIT,
) -> None:
    older = (
        "# Chat transcript\n\n<!-- message: user -->\n\n**You**\n\nHello\n\n"
        "<!-- message: assistant stopped -->\n\n**Assistant** (m1, stopped)\n\nHi there\n"
    )
    chat = ChatWidget(model=CHAT)
    chat.import_markdown(older)
    assert [(m.text, m.meta) for m in chat.messages] == [
        ("Hello", {}),
        ("Hi there", {"model": "m1", "stopped": True}),
    ]
    chat.import_json(json.dumps([ChatMessage.from_user("Hello").to_dict()]))
    edited = chat.export_markdown().replace("Hello", "Hello, rivers")  # now 13, not 5
    chat.import_markdown(edited)
    assert [m.text for m in chat.messages] == ["Hello, rivers"]


async def test_import_from_the_upload_button(chat: ChatWidget) -> None:
    await chat.send("Tell me a joke.")
    text = chat.export_json()
    other = ChatWidget(model=CHAT)
    upload = {
        "name": "chat.json",
        "type": "application/json",
        "size": len(text),
        "content": memoryview(text.encode()),
        "last_modified": datetime.datetime.now(datetime.UTC),
    }
    other.ui.importer.value = (upload,)
    assert other.messages == chat.messages and other.ui.importer.value == ()


async def test_no_key_in_exports_repr_or_widget_state(
    chat: ChatWidget, server: LocalSTACKIT
) -> None:
    await chat.send("Tell me a joke.")
    key = server.api_key
    assert key and key == os.environ["STACKIT_API_KEY"]
    assert key not in chat.export_json() and key not in chat.export_markdown()
    assert key not in repr(chat) and key not in str(chat)
    states = all_widgets(chat)
    assert len(states) > 15  # the history entries, buttons, settings, upload parts
    for widget in states:
        assert key not in json.dumps(widget.get_state(), default=str), widget
    assert repr(chat) == f"ChatWidget(model={CHAT!r}, 2 messages)"


def test_state_stays_small_with_an_image(server: LocalSTACKIT, tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    Image.effect_noise((2400, 1600), 80).convert("RGB").save(big, quality=95)
    chat = ChatWidget(model=VISION)
    asyncio.run(chat.send("Describe this.", images=[big]))
    assert len(chat.messages[0].images[0].base64_image) > 100_000  # what the model got
    total = sum(len(json.dumps(w.get_state(), default=str)) for w in all_widgets(chat))
    assert total < 60_000  # the widget holds only a thumbnail


# -- in a real kernel ---------------------------------------------------------------------------

KERNEL_CODE = textwrap.dedent(
    """
    from stackit_nb.widgets import ChatWidget
    chat = ChatWidget(model="neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8")
    display(chat)
    """
)


@pytest.mark.kernel
def test_real_kernel_streams_without_resending_history(server: LocalSTACKIT) -> None:
    env = {"STACKIT_API_KEY": server.api_key, "STACKIT_API_BASE_URL": server.url}
    with KernelSession(env=env) as kernel:
        kernel.execute(KERNEL_CODE)
        server.configure(tokens_per_second=1000)
        first = kernel.execute("reply = await chat.send('Write 600 tokens about rivers.')")
        text = kernel.execute("print(len(reply.text))").stdout
        second = kernel.execute("reply = await chat.send('Write 600 tokens about lakes.')")
        for run in (first, second):
            updates = run.messages.select("comm_msg")
            # ~0.6 s of stream at <= 20 messages a second, plus opening and filing the reply
            assert len(updates) < 40, len(updates)
            # each reply costs about its own size, not the history's size per token
            assert run.nbytes() < 6 * int(text) + 20_000, run.nbytes()
        # the first reply is never sent again while the second streams
        assert "about rivers" not in json.dumps([m.content for m in second.messages])
        # the buttons work while a reply streams as a task (the cell has ended)
        server.configure(tokens_per_second=200)
        kernel.execute(
            "chat.ui.composer.value = 'Write 2000 tokens about rivers.'; chat.ui.send.click()"
        )
        kernel.execute("assert await chat.started() and chat.running; chat.ui.stop.click()")
        done = kernel.execute(
            "await chat.wait(); print(chat.running, chat.messages[-1].meta.get('stopped'))"
        )
        assert done.stdout.split() == ["False", "True"]
