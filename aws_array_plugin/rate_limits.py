"""Per-call-class pacing: a token bucket whose rate adapts (AIMD) to what AWS says.

AWS throttles every Batch API per account and region. Each replica paces each call class on its own
bucket; on a throttle or a 5xx the rate halves, and it creeps back up on success, so a replica backs
off within one round trip and recovers within seconds to minutes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable


class AdaptiveLimiter:
    def __init__(
        self,
        name: str,
        rate: float,
        burst: int,
        *,
        min_rate: float | None = None,
        recovery_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, float], None] | None = None,
    ) -> None:
        self.name = name
        self.max_rate = float(rate)
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self.min_rate = min_rate if min_rate is not None else max(0.05, rate / 64)
        # Additive increase: from min_rate back to max_rate in about `recovery_seconds` of clean calls.
        self._step = self.max_rate / max(1.0, recovery_seconds * self.max_rate)
        self._tokens = float(self.burst)
        self._clock = clock
        self._last = clock()
        self._lock = asyncio.Lock()
        self._last_decrease = -1e9
        self._on_change = on_change
        self.waiting = 0
        if on_change:
            on_change(name, self.rate)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now

    async def acquire(self) -> None:
        """Wait for a slot; callers are served in arrival order."""
        self.waiting += 1
        try:
            async with self._lock:
                while True:
                    self._refill()
                    if self._tokens >= 1.0:
                        self._tokens -= 1.0
                        return
                    await asyncio.sleep((1.0 - self._tokens) / self.rate)
        finally:
            self.waiting -= 1

    def try_acquire(self) -> bool:
        """Take a slot only if one is free now (never waits)."""
        if self._lock.locked():
            return False
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def on_throttle(self) -> None:
        now = self._clock()
        # One halving per round trip: a burst of throttled answers to calls already in flight is one signal.
        if now - self._last_decrease < 1.0 / max(self.rate, 1e-9) and now - self._last_decrease < 1.0:
            return
        self._last_decrease = now
        self._refill()
        self.rate = max(self.min_rate, self.rate / 2.0)
        self._tokens = min(self._tokens, 0.0)
        self._notify()

    def on_success(self) -> None:
        if self.rate < self.max_rate:
            self.rate = min(self.max_rate, self.rate + self._step)
            self._notify()

    def _notify(self) -> None:
        if self._on_change:
            self._on_change(self.name, self.rate)


def full_jitter_backoff(attempt: int, base: float = 0.2, cap: float = 20.0) -> float:
    """Sleep before retry `attempt` (1-based): uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0.0, min(cap, base * (2.0 ** attempt)))
