"""Helpers shared by the benchmarks: timing, medians, a local server in its own process, reports.

Every benchmark compares against a baseline measured in the same run (the machine may be busy
with other work, so absolute numbers from another run mean little), repeats each measurement,
keeps the raw samples and reports medians. A missed goal is reported as MISS, never hidden.

Typical use::

    from _common import Row, ServerProcess, interleave, median, report

    with ServerProcess(ttft=0.1) as server:
        samples = interleave({"ours": run_ours, "baseline": run_baseline}, repeat=7)
    rows = [Row.ratio("ours vs baseline", samples["ours"], samples["baseline"], at_most=1.25)]
    report("my_bench", rows, samples)
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
CHAT_MODEL = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"

# Haystack's telemetry costs about a second and writes to the home folder: never in benchmarks.
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")


# -- timing ----------------------------------------------------------------------------------------


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` takes (wall clock)."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def repeat(fn: Callable[[], Any], times: int, *, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``times`` calls of ``fn``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    return [timed(fn) for _ in range(times)]


def interleave(
    fns: dict[str, Callable[[], Any]], repeat: int, *, warmup: int = 1
) -> dict[str, list[float]]:
    """Time several functions in alternating order, so that drift in machine load hits all.

    Round ``i`` runs the functions forwards when ``i`` is even and backwards when odd.
    Returns ``{name: [seconds, ...]}``.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeat):
        for name in names if i % 2 == 0 else reversed(names):
            samples[name].append(timed(fns[name]))
    return samples


# -- the local server in its own process -----------------------------------------------------------

_SERVER_SCRIPT = r"""
import itertools, json, sys
from stackit_nb.local import LocalSTACKIT
from stackit_nb.local.faults import StatusFault

options = json.loads(sys.argv[1])
every_nth = options.pop("every_nth_429", None)
srv = LocalSTACKIT(**options)
if every_nth:
    # every n-th chat request is answered 429, through the server's own fault hook
    n, retry_after = every_nth
    counter, take_status = itertools.count(1), srv.faults.take_status
    def every_nth_take_status(path):
        if path.startswith("/v1/chat") and next(counter) % n == 0:
            return StatusFault(429, retry_after=retry_after)
        return take_status(path)
    srv.faults.take_status = every_nth_take_status
srv.start()
print(json.dumps({"url": srv.url, "api_key": srv.api_key}), flush=True)
sys.stdin.read()  # serve until the parent closes our stdin
srv.stop()
"""


class ServerProcess:
    """A ``LocalSTACKIT`` in a child process, so it does not share the benchmark's GIL.

    :param every_nth_429: ``(n, retry_after)``: answer every n-th chat request with a 429.
    :param settings: ``LocalSTACKIT`` arguments (``ttft``, ``tokens_per_second``, ...).
    """

    def __init__(self, *, every_nth_429: tuple[int, float] | None = None, **settings: Any) -> None:
        # the scripted engine: deterministic replies, "Write N tokens" gives exactly N
        self.options = {"engine": "scripted", **settings, "every_nth_429": every_nth_429}
        self.url = self.api_key = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> ServerProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SERVER_SCRIPT, json.dumps(self.options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self.__exit__()
            raise RuntimeError("the local server process did not start")
        info = json.loads(line)
        self.url, self.api_key = info["url"], info["api_key"]
        return self

    def __exit__(self, *exc: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the server's ``/_local/...`` admin path (config, faults, requests)."""
        response = httpx.request(
            method, f"{self.root}/_local/{path}", json=body, headers=self.headers, timeout=30
        )
        response.raise_for_status()
        return response.json()

    def configure(self, **settings: Any) -> None:
        self.admin("POST", "config", settings)


# -- reporting -------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of a benchmark's table: a measurement, its baseline, their ratio, the goal."""

    measurement: str
    value: str
    baseline: str = "-"
    ratio: float | None = None
    goal: str = "-"
    status: str = "-"  # PASS, MISS, or "-" (information only)

    @classmethod
    def ratio_of(
        cls,
        measurement: str,
        samples: list[float],
        baseline: str,
        baseline_samples: list[float],
        *,
        at_most: float | None = None,
        at_least: float | None = None,
        invert: bool = False,
        unit: str = "s",
    ) -> Row:
        """Median ``samples`` over median ``baseline_samples`` (``invert``: baseline over ours).

        ``invert=True`` turns times into a speed-up ("10x faster" is baseline time / ours).
        """
        ours, base = median(samples), median(baseline_samples)
        ratio = base / ours if invert else ours / base
        return cls(
            measurement,
            f"{_number(ours)} {unit}",
            f"{_number(base)} {unit} ({baseline})",
            ratio,
            *_goal(ratio, at_most, at_least, "x"),
        )

    @classmethod
    def absolute(
        cls,
        measurement: str,
        value: float,
        *,
        unit: str = "",
        at_most: float | None = None,
        at_least: float | None = None,
        baseline: str = "-",
        ratio: float | None = None,
    ) -> Row:
        """A value with a goal of its own (``at_least``/``at_most``), optionally with context."""
        return cls(
            measurement,
            f"{_number(value)} {unit}".strip(),
            baseline,
            ratio,
            *_goal(value, at_most, at_least, f" {unit}".rstrip()),
        )

    @classmethod
    def check(cls, measurement: str, ok: bool, value: str, goal: str) -> Row:
        """A yes/no requirement (e.g. "200/200 complete, order kept")."""
        return cls(measurement, value, goal=goal, status="PASS" if ok else "MISS")


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _goal(
    value: float, at_most: float | None, at_least: float | None, unit: str
) -> tuple[str, str]:
    if at_most is not None:
        return f"<= {at_most:g}{unit}", "PASS" if value <= at_most else "MISS"
    if at_least is not None:
        return f">= {at_least:,g}{unit}", "PASS" if value >= at_least else "MISS"
    return "-", "-"


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on (they are only comparable within one run)."""
    from importlib.metadata import PackageNotFoundError, version

    packages = {}
    for name in ("haystack-ai", "openai", "httpx", "uvicorn", "stackit-nb"):
        with contextlib.suppress(PackageNotFoundError):
            packages[name] = version(name)
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average": load,
        "packages": packages,
    }


def format_table(rows: list[Row]) -> str:
    """Rows as a plain-text table with aligned columns."""
    header = ("measurement", "value", "baseline", "ratio", "goal", "result")
    cells = [
        (
            r.measurement,
            r.value,
            r.baseline,
            f"{r.ratio:.2f}x" if r.ratio else "-",
            r.goal,
            r.status,
        )
        for r in rows
    ]
    widths = [max(len(str(c[i])) for c in [header, *cells]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True))
        for line in [header, *cells]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(
    name: str,
    rows: list[Row],
    samples: dict[str, list[float]],
    *,
    notes: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Print the table (and notes), write ``bench/results/<name>.json``; return its path.

    The JSON holds the rows, every raw sample with its median, the notes, ``extra`` and
    :func:`machine_info`.
    """
    print(f"\n== {name} ==")
    print(format_table(rows))
    for note in notes or []:
        print(f"note: {note}")
    missed = [r.measurement for r in rows if r.status == "MISS"]
    if missed:
        print(f"MISSED GOALS: {'; '.join(missed)}")
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    data = {
        "name": name,
        "script": Path(sys.argv[0]).name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "rows": [asdict(r) for r in rows],
        "samples": samples,
        "medians": {key: median(values) for key, values in samples.items() if values},
        "notes": notes or [],
        **(extra or {}),
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"results: {path.relative_to(BENCH_DIR.parent)}")
    return path


@contextlib.contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """``with stopwatch() as elapsed: ...; elapsed()`` - seconds since the block started."""
    started = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - started
    end.append(time.perf_counter())
