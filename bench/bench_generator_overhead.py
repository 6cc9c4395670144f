"""Generator overhead: STACKITChatGenerator streaming vs the raw openai SDK reading the same stream.

Both read a 5,000-chunk reply from a local server (in its own process) with usage requested; the
generator calls a no-op streaming callback per chunk and builds its reply, the SDK loop only
iterates. Goal: the generator takes at most 1.25x the SDK's time (median of the repetitions).
"""

from __future__ import annotations

import openai
from _common import CHAT_MODEL, Row, ServerProcess, interleave, median, report
from haystack.utils import Secret

from stackit_nb import STACKITChatGenerator

CHUNKS = 5_000
REPEAT = 7
PROMPT = f"Write {CHUNKS} tokens about the sea."


def main() -> None:
    with ServerProcess() as server:
        generator = STACKITChatGenerator(
            model=CHAT_MODEL,
            api_key=Secret.from_token(server.api_key),
            api_base_url=server.url,
            streaming_callback=lambda chunk: None,
        )
        client = openai.OpenAI(base_url=server.url, api_key=server.api_key)
        counts: dict[str, int] = {}

        def with_generator() -> None:
            reply = generator.run(PROMPT)["replies"][0]
            counts["generator tokens"] = reply.meta["usage"]["completion_tokens"]

        def with_sdk() -> None:
            stream = client.chat.completions.create(
                model=CHAT_MODEL,
                messages=[{"role": "user", "content": PROMPT}],
                stream=True,
                stream_options={"include_usage": True},
            )
            counts["sdk chunks"] = sum(1 for _ in stream)

        samples = interleave({"generator": with_generator, "openai SDK": with_sdk}, REPEAT)
        generator.close()
        client.close()

    gen, sdk = samples["generator"], samples["openai SDK"]
    rows = [
        Row.ratio_of(
            f"STACKITChatGenerator, {CHUNKS:,} chunks, no-op callback",
            gen,
            "openai SDK loop",
            sdk,
            at_most=1.25,
        ),
        Row.absolute("generator chunks/s", CHUNKS / median(gen), unit="chunks/s"),
        Row.absolute("openai SDK chunks/s", CHUNKS / median(sdk), unit="chunks/s"),
        Row.check(
            "same stream read by both",
            counts["generator tokens"] == CHUNKS and counts["sdk chunks"] >= CHUNKS,
            f"{counts['generator tokens']} tokens / {counts['sdk chunks']} SDK chunks",
            f"{CHUNKS} tokens",
        ),
    ]
    report(
        "generator_overhead",
        rows,
        samples,
        notes=[f"median of {REPEAT} interleaved runs each; server in a separate process"],
    )


if __name__ == "__main__":
    main()
