"""Batch: 200 prompts through ``run_many`` at concurrency 16 against a server with 100 ms TTFT.

Measured against the ideal (ceil(200 / 16) rounds of the time to first token; goal <= 1.5x) and
against a sequential ``generator.run`` loop (goal >= 10x faster). The sequential loop takes
~200 x 0.1 s, so it is timed on the first 20 prompts and scaled to 200 (a sequential loop is
linear in the number of prompts). Then a run where every 10th request is answered 429 must
complete 200/200 with the order kept.
"""

from __future__ import annotations

import asyncio
import math

from _common import (
    CHAT_MODEL,
    Row,
    ServerProcess,
    interleave,
    median,
    repeat,
    report,
    stopwatch,
)
from haystack.utils import Secret

from stackit_nb import STACKITChatGenerator
from stackit_nb.batch import BatchResult, run_many

ITEMS = 200
CONCURRENCY = 16
TTFT = 0.1
SEQUENTIAL_ITEMS = 20
REPEAT = 5
PROMPTS = [f"Write {10 + i % 20} tokens about item {i}." for i in range(ITEMS)]


def expected_tokens(i: int) -> int:
    return 10 + i % 20


def in_order(result: BatchResult) -> bool:
    return [r.input for r in result] == PROMPTS and all(
        r.usage["completion_tokens"] == expected_tokens(r.index) for r in result
    )


async def semaphore_gather(generator: STACKITChatGenerator) -> None:
    """What one would write by hand: the same generator, a semaphore and ``asyncio.gather``."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(prompt: str) -> None:
        async with limit:
            await generator.run_async(prompt)

    await asyncio.gather(*(one(p) for p in PROMPTS))
    await generator.close_async()  # its client belongs to this loop, which ends here


def main() -> None:
    samples: dict[str, list[float]] = {}
    with ServerProcess(ttft=TTFT) as server:
        generator = STACKITChatGenerator(
            model=CHAT_MODEL, api_key=Secret.from_token(server.api_key), api_base_url=server.url
        )
        results: list[BatchResult] = []

        def batch() -> None:
            results.append(run_many(generator, PROMPTS, concurrency=CONCURRENCY, progress=False))

        def hand_written() -> None:
            asyncio.run(semaphore_gather(generator))

        def sequential() -> None:
            for prompt in PROMPTS[:SEQUENTIAL_ITEMS]:
                generator.run(prompt)

        # where the time goes besides the TTFT: one request's round trip with no TTFT at all
        server.configure(ttft=0.0)
        samples["one request, ttft 0"] = repeat(lambda: generator.run(PROMPTS[0]), 9)
        server.configure(ttft=TTFT)
        run_many(generator, PROMPTS[:32], concurrency=CONCURRENCY, progress=False)  # warm up
        samples.update(
            interleave({"run_many": batch, "asyncio.gather": hand_written}, REPEAT, warmup=0)
        )
        per_item = [t / SEQUENTIAL_ITEMS for t in repeat(sequential, 3, warmup=0)]
        samples["sequential per item"] = per_item
        samples["sequential, scaled to 200"] = [t * ITEMS for t in per_item]
        generator.close()

    ideal = math.ceil(ITEMS / CONCURRENCY) * TTFT
    batch_ok = all(r.summary.ok == ITEMS and in_order(r) for r in results)

    # every 10th request (retries included) is answered 429 with Retry-After 0.2 s
    with ServerProcess(ttft=TTFT, every_nth_429=(10, 0.2)) as server:
        generator = STACKITChatGenerator(
            model=CHAT_MODEL, api_key=Secret.from_token(server.api_key), api_base_url=server.url
        )
        with stopwatch() as elapsed:
            limited = run_many(generator, PROMPTS, concurrency=CONCURRENCY, progress=False)
        samples["run_many with 10% 429s"] = [elapsed()]
        generator.close()
    s = limited.summary

    rows = [
        Row.ratio_of(
            f"run_many, {ITEMS} prompts, concurrency {CONCURRENCY}",
            samples["run_many"],
            f"ideal {math.ceil(ITEMS / CONCURRENCY)} x {TTFT} s",
            [ideal],
            at_most=1.5,
        ),
        Row.ratio_of(
            "  run_many vs hand-written asyncio",
            samples["run_many"],
            "semaphore + gather, same generator",
            samples["asyncio.gather"],
        ),
        Row.absolute(
            "  one request's own time (TTFT 0, sequential)",
            median(samples["one request, ttft 0"]) * 1000,
            unit="ms",
        ),
        Row.ratio_of(
            "speed-up over a sequential loop",
            samples["run_many"],
            "sequential loop",
            samples["sequential, scaled to 200"],
            at_least=10,
            invert=True,
        ),
        Row.check("every reply, in input order", batch_ok, f"{len(results)} runs", "200/200"),
        Row.check(
            "with 10% of requests answered 429",
            s.ok == ITEMS and in_order(limited),
            f"{s.ok}/{ITEMS} ok in {s.wall_time:.2f} s, {s.rate_limited} 429s, "
            f"lowest concurrency {s.min_concurrency}",
            "200/200, order kept",
        ),
    ]
    report(
        "batch",
        rows,
        samples,
        notes=[
            f"run_many and the hand-written loop: median of {REPEAT} interleaved runs; "
            f"sequential: {SEQUENTIAL_ITEMS} prompts x 3 runs, "
            f"median per prompt x {ITEMS} ({median(per_item) * 1000:.1f} ms per prompt)",
            "server in a separate process; requests not streamed",
        ],
        extra={"rate_limited_summary": {k: v for k, v in vars(s).items()}},
    )


if __name__ == "__main__":
    main()
