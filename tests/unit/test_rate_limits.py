"""AIMD limiter: halves on throttling, recovers on success, paces with a token bucket."""

from __future__ import annotations

import asyncio

from aws_array_plugin.rate_limits import AdaptiveLimiter, full_jitter_backoff


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_halves_on_throttle_once_per_round_trip_and_recovers() -> None:
    clock = Clock()
    lim = AdaptiveLimiter("describe", rate=16, burst=16, clock=clock, recovery_seconds=10)
    lim.on_throttle()
    assert lim.rate == 8
    lim.on_throttle()  # same instant: one signal
    assert lim.rate == 8
    clock.t += 1.0
    lim.on_throttle()
    assert lim.rate == 4
    for _ in range(10_000):
        lim.on_success()
    assert lim.rate == 16


def test_never_below_min_rate() -> None:
    clock = Clock()
    lim = AdaptiveLimiter("submit", rate=1, burst=1, clock=clock, min_rate=0.25)
    for _ in range(20):
        clock.t += 10
        lim.on_throttle()
    assert lim.rate == 0.25


async def test_acquire_paces_to_rate() -> None:
    lim = AdaptiveLimiter("s3", rate=200, burst=1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(21):
        await lim.acquire()
    elapsed = loop.time() - start
    assert elapsed >= 20 / 200 * 0.9


def test_full_jitter_bounds() -> None:
    for attempt in range(1, 12):
        for _ in range(50):
            assert 0.0 <= full_jitter_backoff(attempt, base=0.2, cap=20.0) <= min(20.0, 0.2 * 2**attempt)
