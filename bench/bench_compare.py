"""Compare: one prompt to 4 models at once, against the slowest of the 4 asked one at a time.

The local server is paced like a real model (0.3 s to the first token, then 60 tokens a second),
in its own process. The baseline is each model asked alone (a fresh ``STACKITChatGenerator``,
streaming, as ``compare`` makes one per model), the slowest of the four in each round; goal:
``stackit_nb.compare`` over all four costs at most 1.3x that. Rounds alternate the order.
"""

from __future__ import annotations

import os
import time

from _common import Row, ServerProcess, median, report

import stackit_nb
from stackit_nb import STACKITChatGenerator

MODELS = [
    "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8",
    "google/gemma-3-27b-it",
    "openai/gpt-oss-20b",  # a reasoning model: it writes about twice as many tokens
    "neuralmagic/Mistral-Nemo-Instruct-2407-FP8",
]
PROMPT = "Explain a rainbow to a child in two sentences."
TTFT, TOKENS_PER_SECOND = 0.3, 60
REPEAT = 5


def single(model: str) -> float:
    started = time.perf_counter()
    generator = STACKITChatGenerator(model=model)
    reply = generator.run(PROMPT, streaming_callback=lambda chunk: None)["replies"][0]
    took = time.perf_counter() - started
    assert reply.text, model
    generator.close()
    return took


def together() -> float:
    started = time.perf_counter()
    comparison = stackit_nb.compare(PROMPT, models=MODELS, show=False)
    took = time.perf_counter() - started
    assert not comparison.errors and len(comparison.replies) == len(MODELS), comparison
    return took


def main() -> None:
    samples: dict[str, list[float]] = {"compare 4 models": [], "slowest single model": []}
    per_model: dict[str, list[float]] = {m: [] for m in MODELS}
    with ServerProcess(ttft=TTFT, tokens_per_second=TOKENS_PER_SECOND) as server:
        os.environ["STACKIT_API_KEY"], os.environ["STACKIT_API_BASE_URL"] = (
            server.api_key,
            server.url,
        )
        together()  # warm up: imports, the model list, first connections
        for model in MODELS:
            single(model)
        for round_ in range(REPEAT):
            order = [False, True] if round_ % 2 == 0 else [True, False]
            for use_compare in order:
                if use_compare:
                    samples["compare 4 models"].append(together())
                else:
                    times = {m: single(m) for m in MODELS}
                    for model, took in times.items():
                        per_model[model].append(took)
                    samples["slowest single model"].append(max(times.values()))
    samples.update({f"alone: {m}": t for m, t in per_model.items()})
    slowest = max(MODELS, key=lambda m: median(per_model[m]))
    rows = [
        Row.ratio_of(
            f"compare, {len(MODELS)} models at once",
            samples["compare 4 models"],
            "slowest single model, alone",
            samples["slowest single model"],
            at_most=1.3,
        ),
        Row.absolute(f"  slowest alone: {slowest}", median(per_model[slowest]), unit="s"),
        Row.ratio_of(
            "  compare vs the 4 asked one after another",
            samples["compare 4 models"],
            "sum of the 4 alone",
            [sum(per_model[m][i] for m in MODELS) for i in range(REPEAT)],
            at_most=0.5,
        ),
    ]
    report(
        "compare",
        rows,
        samples,
        notes=[f"local server paced at {TTFT} s to the first token, {TOKENS_PER_SECOND} tokens/s"],
    )


if __name__ == "__main__":
    main()
