"""Benchmark: what StreamingDisplay costs the front end, against the usual ways, in one run.

In a real kernel, a 20,000-character Markdown reply arrives in 5,000 chunks over ~1.5 s. Every
message the kernel sends to a front end is counted (widget opens, updates, custom messages,
displays) and weighed (JSON content + buffers):

- ``stackit_nb``: StreamingDisplay;
- ``whole_text_updates``: an IPython display handle re-sent with the whole Markdown every 50 ms
  (what common notebook helpers do);
- ``widget_update_per_chunk``: an ipywidgets ``HTML`` whose value is set on every chunk;
- ``new_text_only``: a minimal anywidget that sends only the new text every 50 ms (no Markdown,
  no saved output): a floor for any live view.

It also measures the delay before the first chunk is visible (kernel call to the client reading
the message that carries it) against a bare ``print(..., flush=True)`` callback.

Goals: <= 20 messages per second, <= 4x the reply's size in bytes, <= 5 ms added first-chunk
delay. Usage: ``python bench/bench_streaming_display.py [--reps N]``; writes
``bench/results/streaming_display.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _common import Row, report  # noqa: E402
from kernel import KernelSession, Messages  # noqa: E402
from test_streaming_display import DRIVER  # noqa: E402  (the reply and the paced stream)

REPLY_SIZE = 20_000
CHUNKS = 5_000
GOALS = {"messages_per_second": 20.0, "bytes_per_reply_size": 4.0, "first_chunk_added_ms": 5.0}

BASELINES = r'''
import ipywidgets, anywidget, traitlets
from IPython.display import Markdown, display

# Count in the kernel too: a flood of messages (the per-chunk baseline) overflows zmq's queue
# and the client then misses some; the kernel's own tally does not.
_kernel = get_ipython().kernel
_send = _kernel.session.send
TALLY = []

def _tallied(stream, msg_or_type, content=None, *args, **kwargs):
    msg = _send(stream, msg_or_type, content, *args, **kwargs)
    kind = msg["msg_type"] if msg else ""
    if kind not in ("", "status", "execute_input", "execute_reply", "comm_info_reply",
                    "kernel_info_reply"):
        size = len(json.dumps(msg["content"], ensure_ascii=False, default=str).encode())
        buffers = kwargs.get("buffers") or (args[3] if len(args) > 3 else None) or []
        TALLY.append((kind, size + sum(len(b) for b in buffers), time.time()))
    return msg

_kernel.session.send = _tallied

class WholeText:
    """Re-send the whole Markdown through a display handle, at most every 50 ms."""
    def __init__(self):
        self.text, self.last, self.handle = "", 0.0, display(Markdown(""), display_id=True)
    def __call__(self, chunk):
        self.text += chunk.content
        now = time.perf_counter()
        if chunk.finish_reason or chunk.meta.get("usage") or now - self.last >= 0.05:
            self.handle.update(Markdown(self.text))
            self.last = now

class PerChunk:
    """Set a widget's whole value on every chunk."""
    def __init__(self):
        self.text, self.widget = "", ipywidgets.HTML()
        display(self.widget)
    def __call__(self, chunk):
        if chunk.content:
            self.text += chunk.content
            self.widget.value = self.text

class _Appender(anywidget.AnyWidget):
    _esm = """export default { render({ model, el }) {
        model.on("msg:custom", (m) => { el.append(m.t); }); } };"""

class NewTextOnly:
    """Send only the text that is new since the last send, at most every 50 ms."""
    def __init__(self):
        self.pending, self.last, self.widget = "", 0.0, _Appender()
        display(self.widget)
    def __call__(self, chunk):
        self.pending += chunk.content
        now = time.perf_counter()
        if self.pending and (chunk.finish_reason or now - self.last >= 0.05):
            self.widget.send({"t": self.pending})
            self.pending, self.last = "", now
'''

STREAM_CELL = """
TEXT = sample_reply({size})
callback = {factory}()
took = stream(callback, TEXT, {chunks}, 1.5)
if hasattr(callback, "finish"):
    callback.finish()
"""

FIRST_CHUNK_CELL = """
callback = {factory}
first = StreamingChunk(content="Hello", meta={{"model": "m"}}, index=0, start=True)
called = time.time()
callback(first)
print("\\n" + json.dumps(called))
"""


def measure_stream(kernel: KernelSession, factory: str) -> dict[str, float]:
    kernel.execute("TALLY.clear()")
    cell = STREAM_CELL.format(size=REPLY_SIZE, factory=factory, chunks=CHUNKS)
    run = kernel.execute(cell, timeout=600, settle=0.5)
    # read back in later cells: a flood can make the client miss the cell's own output
    took = json.loads(kernel.execute("print(json.dumps(took))").stdout)
    tally = json.loads(kernel.execute("print(json.dumps(TALLY))").stdout)
    sent = [t for t in tally if t[0] != "stream"]  # not the read-back prints
    times = sorted(t[2] for t in sent)
    received = Messages(m for m in run.messages.select() if m.msg_type != "stream")
    return {
        "messages": len(sent),
        "bytes": sum(t[1] for t in sent),
        "stream_seconds": took,
        "messages_per_second": len(sent) / max(took, times[-1] - times[0]),
        "peak_messages_in_one_second": max(
            sum(1 for u in times if t <= u < t + 1.0) for t in times
        ),
        "bytes_per_reply_size": sum(t[1] for t in sent) / REPLY_SIZE,
        "client_received_messages": len(received),
        "client_received_bytes": received.nbytes(),
    }


def measure_first_chunk(kernel: KernelSession, factory: str) -> float:
    """Milliseconds from calling the callback with the first chunk to reading 'Hello'."""
    run = kernel.execute(FIRST_CHUNK_CELL.format(factory=factory), settle=0.2)
    called = json.loads(run.stdout.strip().splitlines()[-1])
    carrying = [m for m in run.messages.select() if "Hello" in json.dumps(m.content)]
    return (min(m.received for m in carrying) - called) * 1000


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions (median reported)")
    args = parser.parse_args()

    approaches = {
        "stackit_nb": "StreamingDisplay",
        "whole_text_updates": "WholeText",
        "widget_update_per_chunk": "PerChunk",
        "new_text_only": "NewTextOnly",
    }
    streams: dict[str, list[dict[str, float]]] = {name: [] for name in approaches}
    first_ms: dict[str, list[float]] = {"stackit_nb": [], "bare_print": []}
    with KernelSession() as kernel:
        kernel.execute(DRIVER + BASELINES)
        kernel.execute("warm = StreamingDisplay(); stream(warm, 'warm up ' * 50, 50, 0)")
        for rep in range(args.reps):
            for name, factory in approaches.items():
                streams[name].append(measure_stream(kernel, factory))
            first_ms["stackit_nb"].append(measure_first_chunk(kernel, "StreamingDisplay()"))
            bare = "lambda c: print(c.content, end='', flush=True)"
            first_ms["bare_print"].append(measure_first_chunk(kernel, bare))
            print(f"repetition {rep + 1}/{args.reps} done", file=sys.stderr)

    medians = {name: median_of(runs) for name, runs in streams.items()}
    ours = medians["stackit_nb"]
    print(f"\n{REPLY_SIZE:,} characters in {CHUNKS:,} chunks over ~1.5 s, every message counted")
    widths = {"messages": 10, "msg/s": 10, "peak/s": 10, "bytes": 14, "x reply": 10}
    print(f"{'approach (median)':<26}" + "".join(f"{c:>{w}}" for c, w in widths.items()))
    for name, m in medians.items():
        print(
            f"{name:<26}{m['messages']:>10.0f}{m['messages_per_second']:>10.1f}"
            f"{m['peak_messages_in_one_second']:>10.0f}{m['bytes']:>14,.0f}"
            f"{m['bytes_per_reply_size']:>10.2f}"
        )

    def series(name: str, key: str) -> list[float]:
        return [run[key] for run in streams[name]]

    added = [a - b for a, b in zip(first_ms["stackit_nb"], first_ms["bare_print"], strict=True)]
    rows = [
        Row.absolute(
            "messages per second to the front end",
            ours["messages_per_second"],
            unit="msg/s",
            at_most=GOALS["messages_per_second"],
            baseline=f"peak {ours['peak_messages_in_one_second']:.0f} in any 1 s",
        ),
        Row.absolute(
            "bytes to the front end / reply size",
            ours["bytes_per_reply_size"],
            unit="x",
            at_most=GOALS["bytes_per_reply_size"],
        ),
        Row.absolute(
            "first chunk visible: added delay",
            statistics.median(added),
            unit="ms",
            at_most=GOALS["first_chunk_added_ms"],
            baseline=f"bare print {statistics.median(first_ms['bare_print']):.2f} ms",
        ),
    ]
    labels = {
        "whole_text_updates": "whole text every 50 ms",
        "widget_update_per_chunk": "widget value per chunk",
        "new_text_only": "new text only, no Markdown",
    }
    for name, label in labels.items():
        rows.append(
            Row.ratio_of(
                f"bytes: {label} vs stackit_nb",
                series(name, "bytes"),
                "stackit_nb",
                series("stackit_nb", "bytes"),
                unit="B",
            )
        )
    samples = {
        f"{name}.{key}": series(name, key) for name in approaches for key in streams[name][0]
    }
    samples |= {f"first_chunk_ms.{k}": v for k, v in first_ms.items()}
    notes = [
        "counted in the kernel (its session's send); the client's own count is kept as "
        "client_received_* (it misses messages when a flood overflows zmq's queue)",
        f"median of {args.reps} repetitions; reply {REPLY_SIZE:,} characters, {CHUNKS:,} chunks",
    ]
    report("streaming_display", rows, samples, notes=notes, extra={"medians_by_approach": medians})


if __name__ == "__main__":
    main()
