"""Rendering of job records as AWS Batch shows them: DescribeJobs `JobDetail` and ListJobs `JobSummary`.

Pure functions over `model` records; the engine calls them under its lock. An array child is expanded here,
from its parent's per-index status and its `Run` (if it was ever dispatched), only when it is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .model import (
    FAILED,
    RUNNABLE,
    STATUS_NAMES,
    ArrayJob,
    Attempt,
    Job,
    JobSpec,
    Run,
    SingleJob,
    child_id,
    log_stream,
)


class _Record(Protocol):
    """Per-unit outcome fields, held by a `Job` for single jobs and by a `Run` for array children."""

    status_reason: str | None
    started_at: int | None
    stopped_at: int | None
    cancelled: bool
    terminated: bool


def _task_arn(spec: JobSpec, task_id: str) -> str:
    return f"arn:aws:ecs:{spec.region}:{spec.account}:task/{spec.ce_name}/{task_id}"


def _instance_arn(spec: JobSpec, task_id: str) -> str:
    return f"arn:aws:ecs:{spec.region}:{spec.account}:container-instance/{spec.ce_name}/{task_id[::-1]}"


def _attempt_detail(spec: JobSpec, attempt: Attempt) -> dict[str, Any]:
    container: dict[str, Any] = {
        "containerInstanceArn": _instance_arn(spec, attempt.task_id),
        "taskArn": _task_arn(spec, attempt.task_id),
        "logStreamName": log_stream(spec, attempt),
        "networkInterfaces": [],
    }
    if attempt.exit_code is not None:
        container["exitCode"] = attempt.exit_code
    if attempt.reason is not None:
        container["reason"] = attempt.reason
    detail: dict[str, Any] = {"container": container, "startedAt": attempt.started_at}
    if attempt.stopped_at is not None:
        detail["stoppedAt"] = attempt.stopped_at
    if attempt.status_reason is not None:
        detail["statusReason"] = attempt.status_reason
    return detail


def _container(spec: JobSpec, run: Run | None) -> dict[str, Any]:
    container = dict(spec.container)
    if run is not None and run.attempts:
        # Job-level container fields describe the latest attempt (AWS semantics).
        last = run.attempts[-1]
        container["logStreamName"] = log_stream(spec, last)
        container["taskArn"] = _task_arn(spec, last.task_id)
        container["containerInstanceArn"] = _instance_arn(spec, last.task_id)
        if last.exit_code is not None:
            container["exitCode"] = last.exit_code
        if last.reason is not None:
            container["reason"] = last.reason
    return container


def status_summary(job: ArrayJob) -> dict[str, int]:
    return dict(zip(STATUS_NAMES, job.counts, strict=True))


def _common(job: Job, job_id: str, status: int, tags: Mapping[str, str] | None = None) -> dict[str, Any]:
    spec = job.spec
    detail: dict[str, Any] = {
        "jobArn": f"arn:aws:batch:{spec.region}:{spec.account}:job/{job_id}",
        "jobName": spec.job_name,
        "jobId": job_id,
        "jobQueue": spec.queue_arn,
        "status": STATUS_NAMES[status],
        "createdAt": job.created_at,
        "jobDefinition": spec.jd_arn,
        "parameters": dict(spec.parameters),
        "dependsOn": [dict(d) for d in spec.depends_on],
        "tags": dict(job.tags if tags is None else tags),
        "propagateTags": spec.propagate_tags,
        "platformCapabilities": list(spec.platform_capabilities),
    }
    if spec.retry_strategy is not None:
        detail["retryStrategy"] = dict(spec.retry_strategy)
    if spec.timeout_seconds is not None:
        detail["timeout"] = {"attemptDurationSeconds": spec.timeout_seconds}
    if spec.share_identifier is not None:
        detail["shareIdentifier"] = spec.share_identifier
    if spec.scheduling_priority is not None:
        detail["schedulingPriority"] = spec.scheduling_priority
    return detail


def _outcome(detail: dict[str, Any], record: _Record | None) -> None:
    if record is None:
        return
    if record.status_reason is not None:
        detail["statusReason"] = record.status_reason
    if record.started_at is not None:
        detail["startedAt"] = record.started_at
    if record.stopped_at is not None:
        detail["stoppedAt"] = record.stopped_at
    if record.cancelled:
        detail["isCancelled"] = True
    if record.terminated:
        detail["isTerminated"] = True


def _finished_attempts(spec: JobSpec, run: Run | None) -> list[dict[str, Any]]:
    # AWS lists an attempt once it has ended; the running one shows only in `container`.
    if run is None:
        return []
    return [_attempt_detail(spec, a) for a in run.attempts if a.stopped_at is not None]


def child_record(job: ArrayJob, index: int) -> tuple[Run | None, Run | None]:
    """A child's (run, outcome record): the record is its run, or one made up from the parent's fields."""
    run = job.runs.get(index)
    if run is not None:
        return run, run
    if job.child_status[index] == FAILED and job.child_cancel_reason is not None:
        # Cancelled before it was ever dispatched: the parent holds the shared reason and time.
        return None, Run(status_reason=job.child_cancel_reason, stopped_at=job.child_cancel_at, cancelled=True)
    if job.child_status[index] == RUNNABLE and job.unfit is not None:
        return None, Run(status_reason=job.unfit)  # can never be placed: AWS's reason on every RUNNABLE child
    return None, None


def child_detail(
    job: ArrayJob, index: int, status: int, run: Run | None, record: _Record | None, tags: Mapping[str, str]
) -> dict[str, Any]:
    """DescribeJobs entry of an array child from its parts (so the event publisher can render a snapshot)."""
    detail = _common(job, child_id(job.job_id, index), status, tags)
    detail["attempts"] = _finished_attempts(job.spec, run)
    detail["container"] = _container(job.spec, run)
    detail["arrayProperties"] = {"index": index}
    detail["dependsOn"] = []
    _outcome(detail, record)
    return detail


def job_detail(job: Job, index: int | None = None) -> dict[str, Any]:
    """DescribeJobs entry for a single job, an array parent (`index` None) or an array child."""
    if isinstance(job, ArrayJob) and index is not None:
        run, record = child_record(job, index)
        return child_detail(job, index, job.child_status[index], run, record, job.tags)
    detail = _common(job, job.job_id, job.status)
    _outcome(detail, job)
    if isinstance(job, ArrayJob):
        detail["attempts"] = []
        detail["container"] = _container(job.spec, None)  # parents have no log stream
        detail["arrayProperties"] = {
            "statusSummary": status_summary(job),
            "statusSummaryLastUpdatedAt": job.summary_updated_at,
            "size": job.size,
        }
    else:
        assert isinstance(job, SingleJob)
        detail["attempts"] = _finished_attempts(job.spec, job.run)
        detail["container"] = _container(job.spec, job.run)
    return detail


def job_summary(job: Job, index: int | None = None) -> dict[str, Any]:
    """ListJobs entry (`JobSummary`)."""
    spec = job.spec
    record: _Record | None
    if isinstance(job, ArrayJob) and index is not None:
        run, record = child_record(job, index)
        job_id, status = child_id(job.job_id, index), job.child_status[index]
        array: dict[str, Any] | None = {"index": index}
    else:
        run = job.run if isinstance(job, SingleJob) else None
        record, job_id, status = job, job.job_id, job.status
        array = None
        if isinstance(job, ArrayJob):
            array = {
                "size": job.size,
                "statusSummary": status_summary(job),
                "statusSummaryLastUpdatedAt": job.summary_updated_at,
            }
    summary: dict[str, Any] = {
        "jobArn": f"arn:aws:batch:{spec.region}:{spec.account}:job/{job_id}",
        "jobId": job_id,
        "jobName": spec.job_name,
        "createdAt": job.created_at,
        "status": STATUS_NAMES[status],
        "jobDefinition": spec.jd_arn,
    }
    _outcome(summary, record)
    if run is not None and run.attempts:
        last = run.attempts[-1]
        container = {k: v for k, v in (("exitCode", last.exit_code), ("reason", last.reason)) if v is not None}
        if container:
            summary["container"] = container
    if array is not None:
        summary["arrayProperties"] = array
    return summary
