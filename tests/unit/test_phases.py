"""AWS job status -> Flyte phase, table-driven."""

from __future__ import annotations

import pytest

from aws_array_plugin import phases
from aws_array_plugin.phases import (
    FAILED,
    INITIALIZING,
    QUEUED,
    RETRYABLE_FAILED,
    RUNNING,
    SUCCEEDED,
    ArrayCounts,
    ErrorDocument,
)


@pytest.mark.parametrize(("status", "reason", "phase", "message"), [
    ("SUBMITTED", None, QUEUED, "AWS Batch job is SUBMITTED"),
    ("PENDING", None, QUEUED, "AWS Batch job is PENDING"),
    ("RUNNABLE", "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - no capacity", QUEUED,
     "RUNNABLE: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - no capacity"),
    ("STARTING", None, INITIALIZING, "AWS Batch job is STARTING"),
    ("RUNNING", None, RUNNING, "running (attempt 1)"),
    ("SUCCEEDED", None, SUCCEEDED, "AWS Batch job succeeded"),
])
def test_progress(status: str, reason: str | None, phase: int, message: str) -> None:
    detail = {"status": status, **({"statusReason": reason} if reason else {})}
    assert phases.progress(detail) == phases.Verdict(phase, message)


def _failed(reason: str | None = None, exit_code: int | None = None, c_reason: str | None = None) -> dict:
    container = {k: v for k, v in (("exitCode", exit_code), ("reason", c_reason)) if v is not None}
    return {"status": "FAILED", "statusReason": reason, "container": container}


@pytest.mark.parametrize(("detail", "doc", "phase", "fragment"), [
    (_failed("Essential container in task exited", 1), None, FAILED, "exit code 1 (Essential container in task exited)"),
    (_failed("Host EC2 (instance i-0abc) terminated."), None, RETRYABLE_FAILED, "Host EC2 (instance i-0abc)"),
    (_failed("Essential container in task exited", 137, "OutOfMemoryError: Container killed due to memory usage"),
     None, RETRYABLE_FAILED, "OutOfMemoryError"),
    (_failed("Job attempt duration exceeded timeout"), None, RETRYABLE_FAILED, "exceeded timeout"),
    (_failed("Task failed to start", None, "CannotPullContainerError: pull image manifest has been retried 1 "
             "time(s): ghcr.io/x/y:1: not found"), None, FAILED, "cannot be pulled"),
    (_failed("Task failed to start", None, "CannotPullContainerError: timeout"), None, RETRYABLE_FAILED, "infrastructure"),
    (_failed("Aborted by Flyte (p/d/e)"), None, FAILED, "Aborted by Flyte (p/d/e)"),
    (_failed("Essential container in task exited", 1), ErrorDocument("USER", "ValueError: bad", False), FAILED,
     "ValueError: bad"),
    (_failed("Essential container in task exited", 1), ErrorDocument("SYSTEM", "download failed", True),
     RETRYABLE_FAILED, "download failed"),
    (_failed(None), None, RETRYABLE_FAILED, "no exit code or reason reported"),
])
def test_failure(detail: dict, doc: ErrorDocument | None, phase: int, fragment: str) -> None:
    verdict = phases.failure(detail, doc)
    assert verdict.phase == phase
    assert fragment in verdict.message


def test_blocking_reason_and_dwell() -> None:
    d = {"status": "RUNNABLE", "statusReason": "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - too big"}
    reason = phases.blocking_reason(d)
    assert reason == d["statusReason"]
    assert phases.misconfigured_too_long(reason, 601, 600)
    assert not phases.misconfigured_too_long(reason, 599, 600)
    cap = phases.blocking_reason({"status": "RUNNABLE", "statusReason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"})
    assert not phases.misconfigured_too_long(cap, 10_000, 600)
    assert phases.blocking_reason({"status": "RUNNING", "statusReason": "MISCONFIGURATION:X"}) is None


def _parent(status: str, **summary: int) -> dict:
    return {"status": status, "arrayProperties": {"statusSummary": summary}}


@pytest.mark.parametrize(("parts", "counts"), [
    ([(5, _parent("PENDING", RUNNING=2, SUCCEEDED=1, FAILED=1, RUNNABLE=1))], ArrayCounts(5, 1, 0, 2, 1, 1)),
    ([(5, _parent("SUCCEEDED", SUCCEEDED=3))], ArrayCounts(5, 0, 0, 0, 5, 0)),  # summary lagging a terminal parent
    ([(5, _parent("FAILED", SUCCEEDED=4))], ArrayCounts(5, 0, 0, 0, 4, 1)),
    ([(5, _parent("SUBMITTED"))], ArrayCounts(5, 5, 0, 0, 0, 0)),
    ([(1, {"status": "RUNNING"})], ArrayCounts(1, 0, 0, 1, 0, 0)),  # arrays of 1 are plain jobs
    ([(3, _parent("PENDING", SUCCEEDED=3)), (2, _parent("PENDING", STARTING=2))], ArrayCounts(5, 0, 2, 0, 3, 0)),
])
def test_array_counts(parts: list, counts: ArrayCounts) -> None:
    assert phases.array_counts(parts) == counts


@pytest.mark.parametrize(("counts", "min_successes", "phase"), [
    (ArrayCounts(10, 9, 0, 0, 0, 1), 10, FAILED),  # threshold out of reach: fail early
    (ArrayCounts(10, 0, 0, 1, 9, 0), 10, RUNNING),  # wait for all children
    (ArrayCounts(10, 0, 0, 0, 10, 0), 10, SUCCEEDED),
    (ArrayCounts(5, 0, 0, 0, 4, 1), 4, SUCCEEDED),
    (ArrayCounts(5, 0, 0, 1, 4, 0), 4, RUNNING),  # minimum met, but a child still runs
    (ArrayCounts(5, 0, 0, 0, 3, 2), 4, FAILED),
    (ArrayCounts(5, 5, 0, 0, 0, 0), 4, QUEUED),
    (ArrayCounts(5, 0, 0, 0, 0, 5), 0, SUCCEEDED),
])
def test_array_verdict(counts: ArrayCounts, min_successes: int, phase: int) -> None:
    assert phases.array_verdict(counts, min_successes).phase == phase
