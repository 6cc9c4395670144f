"""The reference documentation page's examples, verbatim but for the import line.

They run after ``stackit_nb.connect()`` with no key, against the local server. The last test runs
the same kind of code against real STACKIT and is skipped unless a real key is configured.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import pytest
from PIL import Image, ImageDraw

import stackit_nb
from stackit_nb._common import DEFAULT_API_BASE_URL
from stackit_nb.connection import Connection

# conftest sets a real key aside under this name; the suite itself runs offline.
REAL_KEY_ENV = "STACKIT_NB_TEST_REAL_KEY"
IMPORT_LINE = "from stackit_nb import STACKITChatGenerator"

ON_ITS_OWN = f"""
{IMPORT_LINE}
from haystack.dataclasses import ChatMessage

generator = STACKITChatGenerator(model="neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8")

result = generator.run([ChatMessage.from_user("Tell me a joke.")])
print(result)
"""

MULTIMODAL = f"""
from haystack.dataclasses import ChatMessage, ImageContent
{IMPORT_LINE}

llm = STACKITChatGenerator(model="meta-llama/Llama-3.2-11B-Vision-Instruct")

image = ImageContent.from_file_path("apple.jpg")

user_message = ChatMessage.from_user(content_parts=[
    "What does the image show? Max 5 words.",
    image
    ])

response = llm.run([user_message])["replies"][0].text

print(response)
"""

IN_A_PIPELINE = f"""
from haystack import Pipeline
from haystack.components.builders import ChatPromptBuilder
from haystack.dataclasses import ChatMessage
{IMPORT_LINE}

prompt_builder = ChatPromptBuilder()
llm = STACKITChatGenerator(model="neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8")

messages = [ChatMessage.from_user("Question: {{{{question}}}} \\\\n")]

pipeline = Pipeline()
pipeline.add_component("prompt_builder", prompt_builder)
pipeline.add_component("llm", llm)

pipeline.connect("prompt_builder.prompt", "llm.messages")

result = pipeline.run({{"prompt_builder": {{"template_variables": {{"question": "Tell me a joke."}}, "template": messages}}}})

print(result)
"""  # noqa: E501


@pytest.fixture(scope="module")
def local_backend() -> Iterator[Connection]:
    """What a reader without a key does: stackit_nb.connect(), then the page's code."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("STACKIT_API_KEY", raising=False)
        mp.delenv("STACKIT_API_BASE_URL", raising=False)
        conn = stackit_nb.connect(quiet=True)
        yield conn
        conn.stop()


def run_example(code: str) -> dict[str, object]:
    namespace: dict[str, object] = {"__name__": "__example__"}
    exec(compile(textwrap.dedent(code), "<documentation example>", "exec"), namespace)
    return namespace


def test_on_its_own(local_backend: object, capsys: pytest.CaptureFixture) -> None:
    namespace = run_example(ON_ITS_OWN)
    reply = namespace["result"]["replies"][0]  # type: ignore[index]
    assert reply.text and reply.text in capsys.readouterr().out
    assert reply.meta["model"] == "neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8"
    assert reply.meta["usage"]["completion_tokens"] > 0


def test_with_multimodal_inputs(
    local_backend: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    apple = Image.new("RGB", (240, 180), (200, 180, 110))  # an apple on straw
    ImageDraw.Draw(apple).ellipse((10, 0, 230, 180), fill=(200, 20, 30))
    apple.save("apple.jpg")
    namespace = run_example(MULTIMODAL)
    response = str(namespace["response"])
    assert 0 < len(response.split()) <= 5  # the prompt asked for at most 5 words
    assert response in capsys.readouterr().out
    assert "red" in response.lower()


def test_in_a_pipeline(local_backend: object, capsys: pytest.CaptureFixture) -> None:
    namespace = run_example(IN_A_PIPELINE)
    reply = namespace["result"]["llm"]["replies"][0]  # type: ignore[index]
    assert reply.text
    assert "'llm': {'replies': [ChatMessage(" in capsys.readouterr().out


@pytest.mark.skipif(
    not os.environ.get(REAL_KEY_ENV), reason="needs a real STACKIT_API_KEY in the environment"
)
def test_against_real_stackit() -> None:
    from haystack.dataclasses import ChatMessage
    from haystack.utils import Secret

    from stackit_nb import STACKITChatGenerator

    key = Secret.from_env_var(REAL_KEY_ENV)
    models = stackit_nb.list_models(api_key=key, api_base_url=DEFAULT_API_BASE_URL)
    chat = next(m for m in STACKITChatGenerator.SUPPORTED_MODELS if m in models.ids)
    chunks: list[object] = []
    generator = STACKITChatGenerator(model=chat, api_key=key, api_base_url=DEFAULT_API_BASE_URL)
    reply = generator.run(
        [ChatMessage.from_user("Tell me a joke.")], streaming_callback=chunks.append
    )["replies"][0]
    assert reply.text and chunks
    assert reply.meta["usage"]["completion_tokens"] > 0
