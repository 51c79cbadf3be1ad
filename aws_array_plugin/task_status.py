"""The core's answers, in the project's own terms: what a face encodes into its protocol's messages.

Phases mean what Flyte's task phases mean: FAILED is permanent, RETRYABLE_FAILED consumes one of the task's
retries. Outputs are the serialized Flyte `LiteralMap` (the wire format both Flyte generations share).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

MAX_MESSAGE_LENGTH = 8000  # a status message longer than this is cut (Flyte's console shows it whole)


class Phase(enum.Enum):
    QUEUED = "QUEUED"
    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    RETRYABLE_FAILED = "RETRYABLE_FAILED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.RETRYABLE_FAILED})


@dataclass(frozen=True)
class LogLink:
    name: str
    uri: str
    show_while_pending: bool = False


@dataclass(frozen=True)
class TaskStatus:
    phase: Phase
    message: str = ""
    links: tuple[LogLink, ...] = ()
    # Serialized LiteralMap; None when there are none or when they were written to <output_prefix>/outputs.pb.
    outputs: bytes | None = None
    custom: Mapping[str, Any] | None = field(default=None)

    def __post_init__(self) -> None:
        if len(self.message) > MAX_MESSAGE_LENGTH:
            object.__setattr__(self, "message", self.message[:MAX_MESSAGE_LENGTH])

    def noted(self, note: str) -> TaskStatus:
        """The same answer with a note appended to its message (e.g. that it may be stale)."""
        return replace(self, message=f"{self.message} [{note}]")


@dataclass(frozen=True)
class LogLine:
    timestamp_ms: int
    message: str


@dataclass(frozen=True)
class LogPage:
    lines: tuple[LogLine, ...]
    next_token: str


class Reason(enum.Enum):
    """Why an operation gives no answer; each face maps it to its protocol's status code."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAVAILABLE = "UNAVAILABLE"


class TaskError(Exception):
    """An operation answered with an error on purpose (bad input, nothing there yet, AWS unavailable)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
