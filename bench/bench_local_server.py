"""Local server throughput: chunks per second to a raw httpx reader, and 64 concurrent streams.

The server runs in its own process; the reader counts ``data:`` events in the raw bytes (no JSON
parsing), so the client costs little. Goal: >= 20,000 chunks/s on one stream. For context the
same events are served by a bare ASGI app on the same uvicorn (the stack's ceiling on this
machine, measured in the same run). Then 64 streams at once must all arrive whole: every stream
ends with ``[DONE]`` and has as many content chunks as its usage says tokens.
Run with ``--profile`` to see where the server spends its time (also done on a MISS).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import httpx
from _common import CHAT_MODEL, Row, ServerProcess, interleave, median, report

CHUNKS = 20_000
STREAMS = 64
STREAM_TOKENS = 1_000
REPEAT = 5

_BARE_ASGI = r"""
import asyncio, socket, sys, uvicorn
event, flush_at = sys.argv[1].encode(), 64

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    n = int(scope["query_string"].decode().removeprefix("n="))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})
    block = event * flush_at
    for _ in range(n // flush_at):
        await send({"type": "http.response.body", "body": block, "more_body": True})
        await asyncio.sleep(0)
    tail = event * (n % flush_at) + b"data: [DONE]\n\n"
    await send({"type": "http.response.body", "body": tail, "more_body": False})

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print(sock.getsockname()[1], flush=True)
server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", ws="none"))
asyncio.run(server.serve(sockets=[sock]))
"""

_PROFILED_SERVER = r"""
import cProfile, io, json, pstats, sys
from stackit_nb.local import LocalSTACKIT

profile = cProfile.Profile()
serve = LocalSTACKIT._serve
def profiled_serve(self):  # cProfile sees only its own thread: enable it in the server's
    profile.enable()
    try:
        serve(self)
    finally:
        profile.disable()
LocalSTACKIT._serve = profiled_serve
srv = LocalSTACKIT(engine="scripted").start()
print(json.dumps({"url": srv.url, "api_key": srv.api_key}), flush=True)
sys.stdin.read()
srv.stop()
stats = pstats.Stats(profile)
by_file = {}
for (file, _, _), (_, _, tottime, _, _) in stats.stats.items():
    key = file.split("site-packages/")[-1].split("/stackit_nb/")[-1].split("/lib/python3")[-1]
    key = "built-ins (socket, epoll, ...)" if key == "~" else key
    by_file[key] = by_file.get(key, 0.0) + tottime
total = sum(by_file.values())
top = sorted(by_file.items(), key=lambda kv: -kv[1])[:12]
out = io.StringIO()
pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(12)
print(json.dumps({"total": total, "by_file": top, "top_functions": out.getvalue()}))
"""


def chat_body(tokens: int, topic: str = "the sea", usage: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": CHAT_MODEL,
        "messages": [{"role": "user", "content": f"Write {tokens} tokens about {topic}."}],
        "stream": True,
    }
    if usage:
        body["stream_options"] = {"include_usage": True}
    return body


def count_events(response: httpx.Response) -> int:
    count, carry = 0, b""
    for block in response.iter_bytes():
        data = carry + block
        count += data.count(b"data: ")
        carry = data[-5:]  # shorter than "data: ": never counted twice
    return count


def read_stream(client: httpx.Client, url: str, **kwargs: Any) -> int:
    with client.stream("POST", url, **kwargs) as response:
        response.raise_for_status()
        return count_events(response)


def one_event(server: ServerProcess) -> str:
    """A real token event of the local server, for the bare ASGI app to repeat."""
    with httpx.Client(headers=server.headers) as client:
        text = client.post(f"{server.url}/chat/completions", json=chat_body(5)).text
    return [e for e in text.split("\n\n") if e.startswith("data: {")][2] + "\n\n"


async def concurrent_streams(server: ServerProcess) -> dict[str, Any]:
    """STREAMS streams at once; each must end with [DONE] and hold every token it claims."""

    async def one(client: httpx.AsyncClient, i: int) -> tuple[bool, int]:
        content, usage, done = 0, None, False
        body = chat_body(STREAM_TOKENS, f"topic {i}", usage=True)
        async with client.stream("POST", f"{server.url}/chat/completions", json=body) as resp:
            async for line in resp.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    usage = chunk["usage"]["completion_tokens"]
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    content += 1
        return done and usage == STREAM_TOKENS and content == STREAM_TOKENS, content

    limits = httpx.Limits(max_connections=STREAMS)
    async with httpx.AsyncClient(headers=server.headers, limits=limits, timeout=120) as client:
        started = time.perf_counter()
        results = await asyncio.gather(*(one(client, i) for i in range(STREAMS)))
        elapsed = time.perf_counter() - started
    return {
        "whole": sum(ok for ok, _ in results),
        "chunks": sum(n for _, n in results),
        "seconds": elapsed,
    }


def profile_server() -> dict[str, Any]:
    process = subprocess.Popen(
        [sys.executable, "-c", _PROFILED_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    info = json.loads(process.stdout.readline())
    headers = {"Authorization": f"Bearer {info['api_key']}"}
    with httpx.Client(headers=headers, timeout=120) as client:
        for _ in range(3):
            read_stream(client, f"{info['url']}/chat/completions", json=chat_body(CHUNKS))
    process.stdin.close()
    result = json.loads(process.stdout.read())
    process.wait(30)
    return result


def main() -> None:
    samples: dict[str, list[float]] = {}
    with ServerProcess() as server:
        event = one_event(server)
        bare = subprocess.Popen(
            [sys.executable, "-c", _BARE_ASGI, event], stdout=subprocess.PIPE, text=True
        )
        try:
            assert bare.stdout is not None
            bare_url = f"http://127.0.0.1:{bare.stdout.readline().strip()}/?n={CHUNKS}"
            ours_url = f"{server.url}/chat/completions"
            counts: dict[str, int] = {}
            with httpx.Client(headers=server.headers, timeout=120) as client:

                def ours() -> None:
                    counts["ours"] = read_stream(client, ours_url, json=chat_body(CHUNKS))

                def ceiling() -> None:
                    counts["bare"] = read_stream(client, bare_url)

                times = interleave({"local server": ours, "bare ASGI app": ceiling}, REPEAT)
        finally:
            bare.terminate()
            bare.wait(10)
        streams = asyncio.run(concurrent_streams(server))

    # count token events only: role, finish and [DONE] events are not chunks of text
    samples["local server, chunks/s"] = [CHUNKS / t for t in times["local server"]]
    samples["bare ASGI app, chunks/s"] = [CHUNKS / t for t in times["bare ASGI app"]]
    samples["local server, seconds"] = times["local server"]
    samples["bare ASGI app, seconds"] = times["bare ASGI app"]
    ours_rate = median(samples["local server, chunks/s"])
    bare_rate = median(samples["bare ASGI app, chunks/s"])
    rows = [
        Row.absolute(
            f"one stream, {CHUNKS:,} chunks, raw httpx reader",
            ours_rate,
            unit="chunks/s",
            at_least=20_000,
            baseline=f"{bare_rate:,.0f} chunks/s (bare ASGI app, same uvicorn)",
            ratio=ours_rate / bare_rate,
        ),
        Row.check(
            "every event arrived",
            counts["ours"] >= CHUNKS + 2,
            f"{counts['ours']:,} events",
            f">= {CHUNKS + 2:,}",
        ),
        Row.check(
            f"{STREAMS} concurrent streams, none lost",
            streams["whole"] == STREAMS,
            f"{streams['whole']}/{STREAMS} whole, {streams['chunks']:,} chunks",
            f"{STREAMS}/{STREAMS}",
        ),
        Row.absolute(
            f"  {STREAMS} streams, aggregate",
            streams["chunks"] / streams["seconds"],
            unit="chunks/s",
        ),
    ]
    extra: dict[str, Any] = {"concurrent_streams": streams}
    notes = [
        f"median of {REPEAT} interleaved runs; server in a separate process",
        "the 64-stream client parses every event as JSON: its aggregate rate is client-bound",
    ]
    if "--profile" in sys.argv or ours_rate < 20_000:
        profile = profile_server()
        extra["profile"] = profile
        shares = ", ".join(
            f"{name} {100 * t / profile['total']:.0f}%" for name, t in profile["by_file"][:8]
        )
        notes.append(f"server time by file (cProfile, server thread): {shares}")
        print(profile["top_functions"])
    report("local_server", rows, samples, notes=notes, extra=extra)


if __name__ == "__main__":
    main()
