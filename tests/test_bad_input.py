"""Bad input to the components: a clear error that names the problem, or a sensible no-op."""

from __future__ import annotations

import pytest
from haystack import Pipeline
from haystack.core.errors import DeserializationError, PipelineError
from openai import BadRequestError

from stackit_nb import STACKITChatGenerator
from stackit_nb.local import LocalSTACKIT

CHAT = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"


@pytest.fixture
def generator(server: LocalSTACKIT) -> STACKITChatGenerator:
    return STACKITChatGenerator(model=CHAT, max_retries=0)


def test_an_empty_message_list_sends_nothing(
    generator: STACKITChatGenerator, server: LocalSTACKIT
) -> None:
    server.clear_requests()
    assert generator.run([]) == {"replies": []}
    assert not [r for r in server.requests if r["path"] == "/v1/chat/completions"]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"temperature": 7}, "temperature"),
        ({"max_tokens": -3}, "max_tokens"),
        ({"n": "many"}, "n:"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"stop": 5}, "stop"),
    ],
)
def test_bad_generation_kwargs_name_the_field(
    generator: STACKITChatGenerator, kwargs: dict[str, object], needle: str
) -> None:
    with pytest.raises(BadRequestError, match=needle):
        generator.run("Hi", generation_kwargs=kwargs)


def test_an_unknown_generation_kwarg_says_where_such_settings_go(
    generator: STACKITChatGenerator, server: LocalSTACKIT
) -> None:
    server.clear_requests()
    with pytest.raises(TypeError, match=r"\['top_kay'\].*extra_body"):
        generator.run("Hi", generation_kwargs={"top_kay": 5})
    assert not server.requests  # refused before anything was sent
    reply = generator.run("Hi", generation_kwargs={"extra_body": {"top_k": 5}})["replies"][0]
    assert reply.text
    assert server.requests[-1]["json"]["top_k"] == 5


def test_a_prompt_beyond_the_context_names_the_limit(generator: STACKITChatGenerator) -> None:
    with pytest.raises(BadRequestError, match="maximum context length is 128000 tokens"):
        generator.run("word " * 200_000)


def test_a_bad_model_id_lists_the_closest(server: LocalSTACKIT) -> None:
    with pytest.raises(Exception, match="Closest available ids") as err:
        STACKITChatGenerator(model="neuralmagic/Meta-Llama-3.1-8B-Instruct", max_retries=0).run(
            "Hi"
        )
    assert CHAT in str(err.value)


@pytest.mark.parametrize(
    ("yaml_text", "error"),
    [
        ("components: [", DeserializationError),  # not YAML
        (  # our component without its required model
            "components:\n  llm:\n    type: stackit_nb.generator.STACKITChatGenerator\n"
            "    init_parameters: {}\n",
            DeserializationError,
        ),
        (  # a component class that does not exist
            "components:\n  llm:\n    type: stackit_nb.nothing.Here\n    init_parameters: {}\n",
            PipelineError,
        ),
    ],
)
def test_malformed_serialized_pipelines_fail_clearly(
    yaml_text: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        Pipeline.loads(yaml_text, allowed_modules=["stackit_nb"])
