"""`aws-array-plugin serve` with two diagnostics for `benchmarks/load.py --probe` (the service code is unchanged):

- an event-loop lag probe: a task that sleeps 1 ms in a loop and records how late it wakes up; every stall
  of the loop (one callback running long) shows up as a late wake-up. Written as JSON to $BENCH_LAG_FILE at exit.
- garbage-collector pauses: every collection that took over 2 ms (`gc.callbacks`), with its generation.
- the duration of every status refresh pass (`StatusEngine.refresh_once`, one piece of event-loop time).
- where each CreateTask's time goes: from the generator sending it (its `x-sent` metadata, wall clock) to the
  handler starting (gRPC accepting the call: one call per event-loop turn or two), and in the handler.
- asyncio debug mode with `slow_callback_duration` = $BENCH_SLOW_CALLBACK_MS ms: asyncio logs every callback or
  task step that ran longer, naming it ("Executing <Task ... coro=<StatusEngine._describe() ...>> took 0.015 s").

    python benchmarks/serve_probe.py serve --host 127.0.0.1 --port 0 --config FILE
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aws_array_plugin.server as server
from aws_array_plugin.cli import main
from aws_array_plugin.faces.flyte1 import AgentService
from aws_array_plugin.status_engine import StatusEngine

_original_serve = server.serve
_original_refresh = StatusEngine.refresh_once
_refresh_passes: list[tuple[float, float, int]] = []


def _timed_refresh(self: StatusEngine) -> int:
    """The refresh pass runs on the event loop in one piece: record how long each took."""
    started = time.perf_counter()
    queued = _original_refresh(self)
    _refresh_passes.append((time.time(), time.perf_counter() - started, queued))
    return queued


StatusEngine.refresh_once = _timed_refresh  # type: ignore[method-assign]

_original_create = AgentService.CreateTask
_creates: list[tuple[float, float, float]] = []


async def _timed_create(self: AgentService, request: Any, context: Any) -> Any:
    """(handler start, seconds from the client's send to the handler start, seconds in the handler)."""
    started = time.time()
    sent = dict(context.invocation_metadata() or ()).get("x-sent")
    try:
        return await _original_create(self, request, context)
    finally:
        if sent is not None:
            _creates.append((started, started - float(sent), time.time() - started))


AgentService.CreateTask = _timed_create  # type: ignore[method-assign]


async def _lag_probe(samples: list[tuple[float, float]], period: float = 0.001) -> None:
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time()
        await asyncio.sleep(period)
        lag = loop.time() - t - period
        if lag > 0.002:
            samples.append((time.time(), lag))


async def _serve(*args: Any, **kwargs: Any) -> None:
    loop = asyncio.get_running_loop()
    slow_ms = float(os.environ.get("BENCH_SLOW_CALLBACK_MS", "0") or 0)
    if slow_ms:
        loop.set_debug(True)
        loop.slow_callback_duration = slow_ms / 1000
    samples: list[tuple[float, float]] = []
    pauses: list[tuple[float, int, float]] = []
    started_gc: list[float] = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started_gc[0] = time.perf_counter()
        else:
            took = time.perf_counter() - started_gc[0]
            if took > 0.002:
                pauses.append((time.time(), int(info.get("generation", -1)), took))

    gc.callbacks.append(on_gc)
    probe = asyncio.create_task(_lag_probe(samples))
    started = time.time()
    try:
        await _original_serve(*args, **kwargs)
    finally:
        probe.cancel()
        gc.callbacks.remove(on_gc)
        _write(os.environ.get("BENCH_LAG_FILE"),
               {"started": started, "stopped": time.time(), "lags": samples, "gc_pauses": pauses,
                "tracked_objects_at_exit": len(gc.get_objects()), "frozen_objects": gc.get_freeze_count(),
                "refresh_passes": _refresh_passes, "creates": _creates})


def _write(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(data))


server.serve = _serve

if __name__ == "__main__":
    sys.exit(main())
