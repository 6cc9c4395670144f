"""stackit_nb.compare over real HTTP against the local server: replies, errors, images, 429s,
the terminal output, the table and the figure."""

from __future__ import annotations

import io
import re

import matplotlib
import numpy as np
import openai
import pytest
from haystack.components.generators.chat import OpenAIChatGenerator
from haystack.dataclasses import ChatMessage
from haystack.utils import Secret

import stackit_nb
from stackit_nb.comparison import Comparison, _Printer
from stackit_nb.local import LocalSTACKIT

matplotlib.use("Agg")

LLAMA = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
GEMMA = "google/gemma-3-27b-it"  # takes images
MISTRAL = "neuralmagic/Mistral-Nemo-Instruct-2407-FP8"
PROMPT = "Write 30 tokens about the sea."


def test_each_model_answers_with_its_numbers(server: LocalSTACKIT, srv: LocalSTACKIT) -> None:
    srv.configure(ttft=0.1, tokens_per_second=300)
    comparison = stackit_nb.compare(PROMPT, models=[LLAMA, GEMMA, MISTRAL], show=False)
    assert isinstance(comparison, Comparison)
    assert list(comparison.replies) == [LLAMA, GEMMA, MISTRAL]
    assert comparison.errors == {} and comparison.skipped == {}
    for model, reply in comparison.replies.items():
        result = comparison[model]
        assert reply.meta["model"] == model
        assert result.completion_tokens == reply.meta["usage"]["completion_tokens"] == 30
        assert result.prompt_tokens == reply.meta["usage"]["prompt_tokens"] > 0
        assert result.finish_reason == "stop"
        assert result.time_to_first_token is not None and result.time_to_first_token >= 0.1
        assert result.total_time is not None and result.total_time > result.time_to_first_token
        assert result.tokens_per_second is not None and result.tokens_per_second < 300 * 1.5
    # one request per model, all at once
    chats = [r for r in srv.requests if r["path"] == "/v1/chat/completions"]
    assert sorted(r["json"]["model"] for r in chats) == sorted([LLAMA, GEMMA, MISTRAL])


def test_a_failing_model_keeps_its_error_while_the_others_finish(server: LocalSTACKIT) -> None:
    comparison = stackit_nb.compare(PROMPT, models=[LLAMA, "nobody/no-such-model"], show=False)
    assert list(comparison.replies) == [LLAMA]
    error = comparison.errors["nobody/no-such-model"]
    assert isinstance(error, openai.NotFoundError)
    assert "list_models" in str(error)  # the helpful error, with where to look
    row = dict(zip(comparison.summary.rows()[0], comparison.summary.rows()[2], strict=True))
    assert row["finish"] == "error" and row["error"].startswith("ModelNotFoundError: ")
    assert repr(comparison) == "Comparison(2 models: 1 answered, 1 failed, 0 skipped)"


def test_images_go_only_to_vision_models(server: LocalSTACKIT, srv: LocalSTACKIT) -> None:
    comparison = stackit_nb.compare(
        "What colour is this?", models=[GEMMA, LLAMA], images=["notebooks/apple.jpg"], show=False
    )
    assert comparison.skipped == {LLAMA: "does not take images (no vision capability)"}
    assert list(comparison.replies) == [GEMMA]
    assert "red" in comparison.replies[GEMMA].text
    (chat,) = [r for r in srv.requests if r["path"] == "/v1/chat/completions"]
    parts = chat["json"]["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"]


def test_no_models_means_every_chat_model_that_fits(server: LocalSTACKIT) -> None:
    catalog = stackit_nb.list_models()
    everyone = stackit_nb.compare("Hi", show=False)
    assert list(everyone.replies) == [m.id for m in catalog.chat if not m.legacy]
    seeing = stackit_nb.compare("Describe it.", images=["notebooks/apple.jpg"], show=False)
    assert list(seeing.replies) == [m.id for m in catalog.vision if not m.legacy]
    assert seeing.skipped == {}


def test_429s_pause_every_model_and_are_sent_again(server: LocalSTACKIT, srv: LocalSTACKIT) -> None:
    srv.faults.fail(status=429, times=2, retry_after=0.2)
    comparison = stackit_nb.compare(PROMPT, models=[LLAMA, GEMMA, MISTRAL], show=False)
    assert comparison.errors == {}
    assert len(comparison.replies) == 3
    chats = [r for r in srv.requests if r["path"] == "/v1/chat/completions"]
    assert len(chats) == 5  # three answers and two 429s, no client retries of its own
    # timings are of the request that answered, not of the wait
    assert all(comparison[m].total_time < 2 for m in comparison.replies)


async def test_acompare_with_a_haystack_generator_as_template(
    server: LocalSTACKIT, srv: LocalSTACKIT
) -> None:
    template = OpenAIChatGenerator(
        api_key=Secret.from_token(srv.api_key), api_base_url=srv.url, model="unused"
    )
    comparison = await stackit_nb.acompare(
        [ChatMessage.from_user(PROMPT)], models=[LLAMA, GEMMA], generator=template, show=False
    )
    assert [r.meta["model"] for r in comparison.replies.values()] == [LLAMA, GEMMA]
    assert template.model == "unused" and template.max_retries is None  # left as it was


def test_the_terminal_prints_replies_in_order_then_the_table(server: LocalSTACKIT) -> None:
    out = io.StringIO()
    printer = _Printer([LLAMA, GEMMA], {MISTRAL: "takes no images"}, out)
    printer.finished(GEMMA, ChatMessage.from_assistant("second"))
    assert "second" not in out.getvalue()  # waits for the one before it
    printer.failed(LLAMA, ValueError("boom"))
    assert out.getvalue() == (
        f"[skipped] {MISTRAL}: takes no images\n"
        f"=== {LLAMA} ===\n[error] ValueError: boom\n\n=== {GEMMA} ===\nsecond\n\n"
    )


def test_compare_in_a_script_prints(
    server: LocalSTACKIT, capsys: pytest.CaptureFixture[str]
) -> None:
    comparison = stackit_nb.compare("Write 5 tokens.", models=[LLAMA, GEMMA])
    printed = capsys.readouterr().out
    assert printed.index(f"=== {LLAMA} ===") < printed.index(f"=== {GEMMA} ===")
    assert comparison.replies[LLAMA].text in printed
    assert printed.rstrip().endswith(str(comparison.summary).splitlines()[-1].rstrip())
    assert str(comparison.summary).splitlines()[0].split() == [
        "model", "first", "token", "tokens/s", "tokens", "in", "tokens", "out", "total",
        "finish", "error",
    ]  # fmt: skip


def test_static_copy_and_table(server: LocalSTACKIT) -> None:
    comparison = stackit_nb.compare("Write 5 tokens.", models=[LLAMA, "x/none"], show=False)
    bundle = comparison._repr_mimebundle_()
    page = bundle["text/html"]
    assert bundle["text/plain"] == repr(comparison)
    assert page.count("<th style='text-align:left;width:50%'>") == 2
    assert comparison.replies[LLAMA].text.split()[0] in page
    assert 'class="snb-error"' in page and "ModelNotFoundError" in page
    # what differs between runs sits in snb-timing spans (masked by the nbval sanitize rule)
    masked = re.sub(r'<span class="snb-timing">[^<]*</span>', "", page)
    assert not re.search(r"\d\.\d\d s", masked)
    assert "<table class='snb-compare-summary'>" in page


def test_plot_shows_time_to_first_token_and_speed(server: LocalSTACKIT) -> None:
    comparison = stackit_nb.compare(PROMPT, models=[LLAMA, GEMMA, "x/none"], show=False)
    fig = comparison.plot()
    ttft, speed = fig.axes
    assert ttft.get_title("left") == "Time to first token"
    assert speed.get_title("left") == "Tokens/s"
    bars = [p.get_width() for p in ttft.patches]
    assert bars[:2] == pytest.approx([comparison[LLAMA].time_to_first_token,
                                      comparison[GEMMA].time_to_first_token])  # fmt: skip
    assert np.isnan(bars[2])  # the failed model has no bar
    assert [t.get_text() for t in ttft.get_yticklabels()] == [LLAMA, GEMMA, "x/none"]
    assert ttft.get_xlabel() == "seconds (lower is faster)"
    fig.savefig(io.BytesIO(), format="png")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: stackit_nb.compare("hi", models=LLAMA), TypeError, "takes a list of model ids"),
        (lambda: stackit_nb.compare("hi", models=[]), ValueError, "models= is empty"),
        (lambda: stackit_nb.compare("hi", models=[LLAMA, LLAMA]), ValueError, "more than once"),
        (lambda: stackit_nb.compare(42, models=[LLAMA]), TypeError, "str or a list of ChatMessage"),
        (
            lambda: stackit_nb.compare([ChatMessage.from_user("x")], models=[LLAMA], system="s"),
            ValueError,
            "go with a str prompt",
        ),
        (
            lambda: stackit_nb.compare("x", models=[LLAMA], images=["notebooks/apple.jpg"]),
            ValueError,
            "no model takes images",
        ),
    ],
)
def test_bad_input_says_what_to_do(
    server: LocalSTACKIT, call: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        call()  # type: ignore[operator]


def test_the_static_copy_brings_its_code_colours() -> None:
    """A saved comparison shows code boxes without a widget front end: their stylesheet is in
    the copy itself, once."""
    from haystack.dataclasses import ChatMessage

    from stackit_nb._comparison_results import ModelResult
    from stackit_nb.widgets._code_highlight import CODE_CSS
    from stackit_nb.widgets.compare import static_grid_html

    reply = ChatMessage.from_assistant("```python\nprint(1)\n```")
    result = ModelResult(model="m", reply=reply, finish_reason="stop")
    page = static_grid_html([result], "")
    assert page.count(CODE_CSS) == 1 and "print" in page
