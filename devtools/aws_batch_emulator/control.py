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

Event delivery (404 unless the emulator runs with events):
GET    /_emulator/events               {"enabled", "stats", "faults", "downSeconds"}
GET    /_emulator/events/stats         published, matched, delivered, duplicated, ..., pending
DELETE /_emulator/events/stats         reset them
GET    /_emulator/events/faults        {"duplicate": 0.1, "reorder": 0, "reorderWindow": 3, ...}
POST   /_emulator/events/faults        replace them: {"faults": {...}, "seed": 7} or just {...}
DELETE /_emulator/events/faults        clear them
POST   /_emulator/events/down          {"seconds": s}: an EventBridge outage of s seconds
POST   /_emulator/events/up            end it now
POST   /_emulator/events/wait          {"timeout": s}: {"idle": true} once everything published is delivered
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from .events import EventPublisher
from .faults import CallStats, EventFaults, FaultInjector
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
        events: EventPublisher | None = None,
    ) -> None:
        self._info = info
        self._engine = engine
        self._stats = stats
        self._faults = faults
        self._restart = restart
        self._events = events

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
        if route == "/events" or route.startswith("/events/"):
            return self._route_events(method, route[len("/events") :] or "/", environ)
        if route == "/jobs" and method == "GET":
            return 200, {**self._engine.summary(), "rssBytes": rss_bytes()}
        if route == "/reset" and method == "POST":
            self._engine.reset()
            self._stats.reset()
            self._faults.set({})
            if self._events is not None:
                self._events.set_faults(EventFaults())
                self._events.reset_stats()
                self._events.up()
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

    def _route_events(self, method: str, route: str, environ: dict[str, Any]) -> tuple[int, Any]:
        events = self._events
        if route == "/" and method == "GET" and events is None:
            return 200, {"enabled": False}
        if events is None:
            return 404, {"error": "events are not enabled: Emulator(events=True), CLI --events"}
        if route == "/" and method == "GET":
            return 200, {
                "enabled": True,
                "stats": events.stats(),
                "faults": events.faults().to_json(),
                "downSeconds": events.down_for,
            }
        if route == "/stats":
            if method == "GET":
                return 200, events.stats()
            if method == "DELETE":
                events.reset_stats()
                return 200, {}
        if route == "/faults":
            if method == "GET":
                return 200, events.faults().to_json()
            if method == "POST":
                body = _object(environ)
                raw = body["faults"] if "faults" in body else {k: v for k, v in body.items() if k != "seed"}
                seed = body.get("seed")
                events.set_faults(EventFaults.from_json(raw), seed=None if seed is None else int(seed))
                return 200, events.faults().to_json()
            if method == "DELETE":
                events.set_faults(EventFaults())
                return 200, {}
        if route == "/down" and method == "POST":
            seconds = _object(environ).get("seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ValueError('body must be {"seconds": <0..86400>}')
            events.down(float(seconds))
            return 200, {"downSeconds": events.down_for}
        if route == "/up" and method == "POST":
            events.up()
            return 200, {}
        if route == "/wait" and method == "POST":
            timeout = _object(environ).get("timeout", 10)
            if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 <= timeout <= 600:
                raise ValueError('body must be {"timeout": <seconds, 0..600>}')
            return 200, {"idle": events.wait_idle(float(timeout))}
        return 404, {"error": f"no route {method} /_emulator/events{route if route != '/' else ''}"}


def _object(environ: dict[str, Any]) -> dict[str, Any]:
    body = json.loads(read_body(environ) or b"{}")
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body
