"""`/_emulator/*`: the emulator's own HTTP control API (not AWS), for tests, benchmarks and the demo.

GET    /_emulator/info          endpoint, region, queue, bucket, ...
GET    /_emulator/stats         {"DescribeJobs": n, ...} calls received per operation
GET    /_emulator/stats/injected {"SubmitJob": {"throttle": n, "error": m}}: faults injected among them
DELETE /_emulator/stats         reset the counters (also POST /_emulator/stats/reset)
GET    /_emulator/faults        {"rules": {"DescribeJobs": {"throttle": 0.3, ...}}}
POST   /_emulator/faults        replace the rules: {"rules": {...}, "seed": 7} or just {"<op>": {...}}
DELETE /_emulator/faults        clear the rules
GET    /_emulator/jobs          job and unit counts per status, process RSS
POST   /_emulator/reset         forget all jobs (killing running attempts), counters and faults
POST   /_emulator/restart       {"downtime": s}: answered 202, then an API outage of s seconds (see `restart`)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from .faults import CallStats, FaultInjector
from .gateway import StartResponse, read_body, respond_json
from .jobs import JobEngine


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Control:
    def __init__(
        self,
        *,
        info: Callable[[], dict[str, Any]],
        engine: JobEngine,
        stats: CallStats,
        faults: FaultInjector,
        restart: Callable[[float], None] | None = None,
    ) -> None:
        self._info = info
        self._engine = engine
        self._stats = stats
        self._faults = faults
        self._restart = restart

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        route = environ.get("PATH_INFO", "").rstrip("/")[len("/_emulator") :] or "/"
        try:
            status, payload = self._route(method, route, environ)
        except (ValueError, TypeError) as exc:
            status, payload = 400, {"error": str(exc)}
        return respond_json(start_response, status, payload)

    def _route(self, method: str, route: str, environ: dict[str, Any]) -> tuple[int, Any]:
        if route == "/info" and method == "GET":
            return 200, self._info()
        if route == "/stats":
            if method == "GET":
                return 200, self._stats.snapshot()
            if method == "DELETE":
                self._stats.reset()
                return 200, {}
        if route == "/stats/injected" and method == "GET":
            return 200, self._stats.injected()
        if route == "/stats/reset" and method == "POST":
            self._stats.reset()
            return 200, {}
        if route == "/faults":
            if method == "GET":
                return 200, {"rules": {op: r.to_json() for op, r in self._faults.rules().items()}}
            if method == "POST":
                body = json.loads(read_body(environ) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("body must be a JSON object")
                rules = body["rules"] if "rules" in body else {k: v for k, v in body.items() if k != "seed"}
                seed = body.get("seed")
                self._faults.set(rules, seed=None if seed is None else int(seed))
                return 200, {"rules": {op: r.to_json() for op, r in self._faults.rules().items()}}
            if method == "DELETE":
                self._faults.set({})
                return 200, {}
        if route == "/jobs" and method == "GET":
            return 200, {**self._engine.summary(), "rssBytes": rss_bytes()}
        if route == "/reset" and method == "POST":
            self._engine.reset()
            self._stats.reset()
            self._faults.set({})
            return 200, {}
        if route == "/restart" and method == "POST" and self._restart is not None:
            body = json.loads(read_body(environ) or b"{}")
            downtime = body.get("downtime") if isinstance(body, dict) else None
            if isinstance(downtime, bool) or not isinstance(downtime, int | float) or not 0 <= downtime <= 3600:
                raise ValueError('body must be {"downtime": <seconds, 0..3600>}')
            try:
                # Returns once the listener is down; this request is already read, so its answer still goes out.
                self._restart(float(downtime))
            except RuntimeError as exc:
                return 409, {"error": str(exc)}
            return 202, {"downtime": downtime}
        return 404, {"error": f"no route {method} /_emulator{route}"}
