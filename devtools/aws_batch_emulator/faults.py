"""Fault injection and per-API call counters, for tests and benchmarks of the service's retry and batching.

A rule per operation name (or `*` for all others) answers a share of calls with throttling (`throttle`), a share
with a server error (`error`), and delays every call by `latencyMs`. Errors are shaped per protocol so each SDK
parses them as the real service's: Batch gets HTTP 429 `TooManyRequestsException` / 5xx `ServerException`.
`EventFaults` are the faults of event delivery (see `events`).
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class FaultRule:
    throttle: float = 0.0  # share of calls answered as throttled (Batch: HTTP 429)
    error: float = 0.0  # share of calls answered with a server error
    error_status: int = 500
    latency_ms: int = 0  # added to every call the rule covers

    def __post_init__(self) -> None:
        if not (0 <= self.throttle <= 1 and 0 <= self.error <= 1 and self.throttle + self.error <= 1):
            raise ValueError("throttle and error are shares in [0, 1] and may sum to at most 1")
        if not 500 <= self.error_status <= 599 or self.latency_ms < 0:
            raise ValueError("error_status must be 5xx and latency_ms >= 0")

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FaultRule:
        unknown = set(raw) - {"throttle", "error", "errorStatus", "latencyMs"}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(
            throttle=float(raw.get("throttle", 0.0)),
            error=float(raw.get("error", 0.0)),
            error_status=int(raw.get("errorStatus", 500)),
            latency_ms=int(raw.get("latencyMs", 0)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "throttle": self.throttle,
            "error": self.error,
            "errorStatus": self.error_status,
            "latencyMs": self.latency_ms,
        }


FaultSpec = Mapping[str, "FaultRule | Mapping[str, Any]"]


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str  # "throttle" or "error"
    status: int


class FaultInjector:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: dict[str, FaultRule] = {}
        self._random = random.Random(seed)

    def set(self, rules: FaultSpec, seed: int | None = None) -> None:
        """Replace all rules (an empty mapping clears them)."""
        parsed = {op: r if isinstance(r, FaultRule) else FaultRule.from_json(r) for op, r in rules.items()}
        with self._lock:
            self._rules = parsed
            if seed is not None:
                self._random.seed(seed)

    def rules(self) -> dict[str, FaultRule]:
        with self._lock:
            return dict(self._rules)

    def decide(self, operation: str) -> tuple[float, Fault | None]:
        """(latency in s, fault or None) for one call."""
        with self._lock:
            rule = self._rules.get(operation) or self._rules.get(WILDCARD)
            if rule is None:
                return 0.0, None
            draw = self._random.random()
        fault = None
        if draw < rule.throttle:
            fault = Fault("throttle", 429)
        elif draw < rule.throttle + rule.error:
            fault = Fault("error", rule.error_status)
        return rule.latency_ms / 1000, fault


def fault_response(service: str, fault: Fault) -> tuple[int, list[tuple[str, str]], bytes]:
    """HTTP status, headers and body of an injected fault, in the service's own error format."""
    if service == "s3":
        code, status = ("SlowDown", 503) if fault.kind == "throttle" else ("InternalError", fault.status)
        body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{code}</Message></Error>"
        return status, [("Content-Type", "application/xml")], body.encode()
    if service in ("iam", "sts", "ec2"):
        code, status = ("Throttling", 400) if fault.kind == "throttle" else ("ServiceUnavailable", fault.status)
        body = (
            f"<ErrorResponse><Error><Type>{'Sender' if status < 500 else 'Receiver'}</Type><Code>{code}</Code>"
            f"<Message>{code}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
        )
        return status, [("Content-Type", "text/xml")], body.encode()
    if service == "kinesis" and fault.kind == "throttle":  # what a Kinesis client retries and backs off on
        code, message, status = "ProvisionedThroughputExceededException", "Rate exceeded for shard", 400
        body_json = json.dumps({"__type": code, "message": message}).encode()
        return status, [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)], body_json
    if service == "batch":
        code, message, status = (
            ("TooManyRequestsException", "Too Many Requests", 429)
            if fault.kind == "throttle"
            else ("ServerException", "Internal server error (injected by the emulator)", fault.status)
        )
    else:  # JSON protocols (CloudWatch Logs, ...)
        code, message, status = (
            ("ThrottlingException", "Rate exceeded", 400)
            if fault.kind == "throttle"
            else ("ServiceUnavailableException", "Service unavailable (injected by the emulator)", fault.status)
        )
    body_json = json.dumps({"__type": code, "message": message}).encode()
    return status, [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)], body_json


@dataclass(frozen=True, slots=True)
class EventFaults:
    """Shares of deliveries (event x target) that are dropped, duplicated, reordered or delayed: one draw per
    delivery picks at most one. `sources`: only events from these sources are affected (None: all)."""

    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_window: float = 3.0  # s: a reordered delivery comes up to this much later
    delay: float = 0.0
    delay_seconds: float = 60.0
    drop: float = 0.0
    dead_letter: bool = False  # a dropped delivery goes to the target's DeadLetterConfig queue instead
    sources: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        shares = (self.duplicate, self.reorder, self.delay, self.drop)
        if not all(0 <= s <= 1 for s in shares) or sum(shares) > 1 + 1e-9:
            raise ValueError("duplicate, reorder, delay and drop are shares in [0, 1] and may sum to at most 1")
        if self.reorder_window < 0 or self.delay_seconds < 0:
            raise ValueError("reorderWindow and delaySeconds must be >= 0")

    @property
    def active(self) -> bool:
        return self.duplicate + self.reorder + self.delay + self.drop > 0

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> EventFaults:
        known = {"duplicate", "reorder", "reorderWindow", "delay", "delaySeconds", "drop", "deadLetter", "sources"}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown event fault fields: {sorted(unknown)}")
        sources = raw.get("sources")
        if sources is not None and (isinstance(sources, str) or not all(isinstance(s, str) for s in sources)):
            raise ValueError("sources must be a list of event sources")
        dead_letter = raw.get("deadLetter", False)
        if not isinstance(dead_letter, bool):
            raise ValueError("deadLetter must be true or false")
        return cls(
            duplicate=float(raw.get("duplicate", 0.0)),
            reorder=float(raw.get("reorder", 0.0)),
            reorder_window=float(raw.get("reorderWindow", 3.0)),
            delay=float(raw.get("delay", 0.0)),
            delay_seconds=float(raw.get("delaySeconds", 60.0)),
            drop=float(raw.get("drop", 0.0)),
            dead_letter=dead_letter,
            sources=None if sources is None else tuple(sources),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "duplicate": self.duplicate,
            "reorder": self.reorder,
            "reorderWindow": self.reorder_window,
            "delay": self.delay,
            "delaySeconds": self.delay_seconds,
            "drop": self.drop,
            "deadLetter": self.dead_letter,
            "sources": None if self.sources is None else list(self.sources),
        }


class CallStats:
    """Calls received per operation name (injected faults included), e.g. {"DescribeJobs": 12}, and the injected
    faults among them per operation and kind, e.g. {"SubmitJob": {"throttle": 3, "error": 1}}."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._injected: Counter[tuple[str, str]] = Counter()

    def count(self, operation: str) -> None:
        with self._lock:
            self._counts[operation] += 1

    def count_injected(self, operation: str, kind: str) -> None:
        with self._lock:
            self._injected[(operation, kind)] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def injected(self) -> dict[str, dict[str, int]]:
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            for (operation, kind), n in self._injected.items():
                out.setdefault(operation, {})[kind] = n
            return out

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._injected.clear()
