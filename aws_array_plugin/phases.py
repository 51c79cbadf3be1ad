"""AWS Batch job status -> Flyte task phase and a message a person can act on. Pure.

Phases are the core's own (task_status.Phase): FAILED is a permanent failure, RETRYABLE_FAILED one that
consumes one of the task's retries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_array_plugin.batch_ids import status_summary
from aws_array_plugin.task_status import Phase

QUEUED = Phase.QUEUED
INITIALIZING = Phase.INITIALIZING
RUNNING = Phase.RUNNING
SUCCEEDED = Phase.SUCCEEDED
FAILED = Phase.FAILED
RETRYABLE_FAILED = Phase.RETRYABLE_FAILED

AWS_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED"})

# Infrastructure causes: the same task may well succeed on another attempt.
_INFRA = re.compile(
    r"^(Host EC2|CannotStartContainerError|CannotInspectContainerError|CannotCreateContainerError|"
    r"CannotStopContainerError|ResourceInitializationError|DockerTimeoutError|Task failed to start|"
    r"Timeout waiting for network interface|Container instance|EC2 instance|InternalError|"
    r"CannotPullContainerError|OutOfMemoryError|Job attempt duration exceeded timeout)",
)
# Image pulls that will fail again: a wrong name or missing permissions.
_IMAGE_GONE = re.compile(r"CannotPullContainerError.*(not found|unauthorized|manifest unknown|denied|does not exist)",
                         re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    phase: Phase
    message: str


@dataclass(frozen=True)
class ErrorDocument:
    """What flytekit wrote to error.pb."""

    code: str
    message: str
    recoverable: bool


def _container(detail: Mapping[str, Any]) -> Mapping[str, Any]:
    c = detail.get("container")
    return c if isinstance(c, Mapping) else {}


def exit_text(detail: Mapping[str, Any]) -> str:
    """`exit code 1 (Essential container in task exited)`-style summary of how the job ended."""
    c = _container(detail)
    code = c.get("exitCode")
    reasons = [r for r in (c.get("reason"), detail.get("statusReason")) if r]
    text = f"exit code {code}" if code is not None else ""
    if reasons:
        joined = "; ".join(dict.fromkeys(str(r) for r in reasons))
        text = f"{text} ({joined})" if text else joined
    return text or "no exit code or reason reported"


def progress(detail: Mapping[str, Any]) -> Verdict:
    """A job that has not failed (SUCCEEDED still needs its outputs checked by the caller)."""
    status = str(detail.get("status", ""))
    reason = str(detail.get("statusReason") or "")
    if status in ("SUBMITTED", "PENDING", "RUNNABLE"):
        msg = f"{status}: {reason}" if reason else f"AWS Batch job is {status}"
        return Verdict(QUEUED, msg)
    if status == "STARTING":
        return Verdict(INITIALIZING, "AWS Batch job is STARTING")
    if status == "RUNNING":
        attempt = len(detail.get("attempts") or []) + 1
        return Verdict(RUNNING, f"running (attempt {attempt})")
    if status == "SUCCEEDED":
        return Verdict(SUCCEEDED, "AWS Batch job succeeded")
    return Verdict(QUEUED, f"AWS Batch job status {status or 'unknown'}")


def failure(detail: Mapping[str, Any], error: ErrorDocument | None) -> Verdict:
    """A FAILED job: permanent for user errors, retryable for infrastructure and recoverable errors."""
    how = exit_text(detail)
    if error is not None:
        phase = RETRYABLE_FAILED if error.recoverable else FAILED
        return Verdict(phase, f"{error.message.strip()}\n[{how}]" if how else error.message)
    reason = str(detail.get("statusReason") or "")
    c_reason = str(_container(detail).get("reason") or "")
    if reason.startswith("Aborted by Flyte") or reason.startswith("aws-array-plugin:"):
        return Verdict(FAILED, reason)
    if any(_IMAGE_GONE.search(text) for text in (reason, c_reason)):
        return Verdict(FAILED, f"the image cannot be pulled: {how}")
    if any(_INFRA.match(text) for text in (reason, c_reason)):
        return Verdict(RETRYABLE_FAILED, f"infrastructure failure, retryable: {how}")
    code = _container(detail).get("exitCode")
    if code is not None and code != 0:
        return Verdict(FAILED, f"the task's container failed: {how}")
    return Verdict(RETRYABLE_FAILED, f"AWS Batch job failed: {how}")


def blocking_reason(detail: Mapping[str, Any]) -> str | None:
    """AWS's reason a RUNNABLE job cannot start (CAPACITY:*, MISCONFIGURATION:*, ...), if any."""
    reason = str(detail.get("statusReason") or "")
    if detail.get("status") == "RUNNABLE" and re.match(r"^[A-Z_]+:", reason):
        return reason
    return None


def misconfigured_too_long(reason: str | None, blocked_seconds: float, dwell: float) -> bool:
    return reason is not None and reason.startswith("MISCONFIGURATION:") and blocked_seconds >= dwell


@dataclass(frozen=True)
class ArrayCounts:
    size: int
    queued: int
    starting: int
    running: int
    succeeded: int
    failed: int

    @property
    def terminal(self) -> int:
        return self.succeeded + self.failed

    def as_dict(self) -> dict[str, int]:
        return {"size": self.size, "queued": self.queued, "starting": self.starting, "running": self.running,
                "succeeded": self.succeeded, "failed": self.failed}


def array_counts(parts: Iterable[tuple[int, Mapping[str, Any]]]) -> ArrayCounts:
    """Counts over the AWS jobs of one array task: (children, detail) per AWS job. An array job's
    detail carries `arrayProperties.statusSummary`; a plain job (arrays of 1) counts as one child.
    A terminal parent's status wins over a summary AWS has not caught up with yet."""
    totals = dict.fromkeys(AWS_STATUSES, 0)
    size = 0
    for children, detail in parts:
        size += children
        status = str(detail.get("status", ""))
        summary = status_summary(detail)
        if children == 1 and not summary:
            summary = {status: 1} if status else {}
        summary = {k: v for k, v in summary.items() if k in totals}
        if status == "SUCCEEDED":
            summary = {"SUCCEEDED": children}
        elif status == "FAILED":
            ok = min(summary.get("SUCCEEDED", 0), children)
            summary = {"SUCCEEDED": ok, "FAILED": children - ok}
        else:
            unseen = children - sum(summary.values())
            if unseen > 0:
                summary["SUBMITTED"] = summary.get("SUBMITTED", 0) + unseen
        for k, v in summary.items():
            totals[k] += v
    return ArrayCounts(
        size=size,
        queued=totals["SUBMITTED"] + totals["PENDING"] + totals["RUNNABLE"],
        starting=totals["STARTING"],
        running=totals["RUNNING"],
        succeeded=totals["SUCCEEDED"],
        failed=totals["FAILED"],
    )


def array_verdict(counts: ArrayCounts, min_successes: int) -> Verdict:
    """SUCCEEDED once enough children succeeded and all are terminal; FAILED (decided by the caller:
    permanent or retryable) as soon as the threshold is out of reach; otherwise in progress."""
    need = f"{min_successes} of {counts.size} needed"
    line = (f"{counts.succeeded} succeeded, {counts.failed} failed, {counts.running} running, "
            f"{counts.starting} starting, {counts.queued} queued ({need})")
    if counts.failed > counts.size - min_successes:
        return Verdict(FAILED, f"{counts.failed} of {counts.size} children failed; {need}: {line}")
    if counts.terminal >= counts.size and counts.succeeded >= min_successes:
        return Verdict(SUCCEEDED, line)
    if counts.running or counts.starting or counts.terminal:
        return Verdict(RUNNING, line)
    return Verdict(QUEUED, line)
