"""How a batch paces itself: a shared concurrency limit, pauses on 429, and error kinds."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterable

import openai

from stackit_nb.errors import retry_after_seconds

_MAX_PAUSE = 120.0  # the openai SDK caps Retry-After similarly; a longer wait looks like a quota
_TRANSIENT_STATUSES = frozenset({408, 409})  # plus every 5xx: what the openai SDK retries too


class Pacer:
    """How many requests may be in flight now, and until when everybody waits.

    One pacer per batch: a 429 for any item pauses all workers (the limit is per project, not
    per request) and halves the limit once per round; successes add one back per round.
    """

    def __init__(self, limit: int) -> None:
        self.max = self.limit = self.min_seen = limit
        self.in_flight = 0
        self.rate_limited = 0
        self._paused_until = 0.0
        self._round = 0  # bumped on every decrease: 429s of requests sent before it don't count
        self._successes = 0
        self._streak = 0  # 429s since the last success, for backoff without Retry-After
        self._wake = asyncio.Event()

    async def acquire(self) -> int:
        """Wait for a free slot outside any pause; returns the round the request starts in."""
        loop = asyncio.get_running_loop()
        while True:
            pause = self._paused_until - loop.time()
            if pause <= 0 and self.in_flight < self.limit:
                self.in_flight += 1
                return self._round
            wake = self._wake
            with contextlib.suppress(TimeoutError):  # the pause is over: look again
                await asyncio.wait_for(wake.wait(), pause if pause > 0 else None)

    def release(self) -> None:
        self.in_flight -= 1
        self._notify()

    def succeeded(self) -> None:
        self._streak = 0
        self._successes += 1
        if self.limit < self.max and self._successes >= self.limit:
            self.limit += 1
            self._successes = 0
            self._notify()

    def rate_limited_for(self, started_round: int, wait: float | None) -> None:
        self.rate_limited += 1
        self._streak += 1
        if wait is None:  # no advice from the server: exponential backoff with jitter
            wait = min(30.0, 0.5 * 2 ** (self._streak - 1)) * random.uniform(0.8, 1.2)
        now = asyncio.get_running_loop().time()
        self._paused_until = max(self._paused_until, now + min(wait, _MAX_PAUSE))
        if started_round == self._round:
            self.limit = max(1, self.limit // 2)
            self.min_seen = min(self.min_seen, self.limit)
            self._round += 1
            self._successes = 0

    def _notify(self) -> None:
        # waiters hold the old event, which stays set; new waiters get a fresh one
        self._wake.set()
        self._wake = asyncio.Event()


def causes(exc: BaseException) -> Iterable[BaseException]:
    """``exc`` and what caused it: pipelines wrap a component's error in their own."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def status_of(exc: BaseException) -> int | None:
    for err in causes(exc):
        status = getattr(err, "status_code", None)
        if status is None:
            status = getattr(getattr(err, "response", None), "status_code", None)
        if isinstance(status, int):
            return status
    return None


def retry_after(exc: BaseException) -> float | None:
    for err in causes(exc):
        if isinstance(getattr(err, "retry_after", None), int | float):
            return float(err.retry_after)  # type: ignore[attr-defined]
        if getattr(getattr(err, "response", None), "headers", None) is not None:
            try:
                return retry_after_seconds(err)  # type: ignore[arg-type]
            except (AttributeError, TypeError, ValueError):
                return None
    return None


def classify(exc: BaseException) -> str:
    """``"rate_limited"``, ``"transient"`` (worth another attempt) or ``"final"``."""
    status = status_of(exc)
    if status == 429 or any(isinstance(e, openai.RateLimitError) for e in causes(exc)):
        return "rate_limited"
    if status is not None:
        return "transient" if status >= 500 or status in _TRANSIENT_STATUSES else "final"
    connection = (openai.APIConnectionError, ConnectionError, TimeoutError)
    return "transient" if any(isinstance(e, connection) for e in causes(exc)) else "final"
