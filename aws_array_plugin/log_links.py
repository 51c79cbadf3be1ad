"""AWS console and CloudWatch links for Batch jobs (pure: job details in, `LogLink`s out).

Links must open where the job really logged: hosts follow the partition, the log group and region come from
the job's own `awslogs` options, and each attempt with a log stream gets its own, readably named link
(docs/migration-from-aws-array.md lists what differs from the Go plugin).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aws_array_plugin.batch_ids import local_index
from aws_array_plugin.regions import console_host
from aws_array_plugin.task_status import LogLink

__all__ = [
    "ARRAY_JOB_LINK_NAME",
    "DEFAULT_LOG_GROUP",
    "SINGLE_JOB_LINK_NAME",
    "AttemptLog",
    "array_job_links",
    "attempt_logs",
    "batch_job_console_url",
    "child_job_links",
    "cloudwatch_log_url",
    "log_location",
    "single_job_links",
]

DEFAULT_LOG_GROUP = "/aws/batch/job"  # where the awslogs driver writes when the definition names no group

SINGLE_JOB_LINK_NAME = "AWS Batch job"
ARRAY_JOB_LINK_NAME = "AWS Batch array job"


def batch_job_console_url(region: str, job_id: str) -> str:
    """The AWS Batch console page of a job (parent, array child "<parent>:<i>" or plain job)."""
    # ':' is legal in a URL fragment and the console's own child links keep it literal; everything else that
    # could break the fragment (e.g. '#' in a multi-node id "<id>#<node>") is percent-encoded.
    return f"https://{console_host(region)}/batch/home?region={region}#jobs/detail/{quote(job_id, safe=':')}"


def _console_escape(value: str) -> str:
    # The CloudWatch console's own fragment escaping: URL-encode twice, then '%' -> '$' ("/" -> "$252F").
    return quote(quote(value, safe=""), safe="").replace("%", "$")


def cloudwatch_log_url(region: str, log_group: str, log_stream: str) -> str:
    """The CloudWatch console (logsV2) page of one log stream."""
    return (
        f"https://{console_host(region)}/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{_console_escape(log_group)}/log-events/{_console_escape(log_stream)}"
    )


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def log_location(job_detail: Mapping[str, Any], default_group: str, default_region: str) -> tuple[str, str] | None:
    """(log group, region) the job's containers log to, or None when they do not log to CloudWatch.

    Read from `container.logConfiguration` (the job definition's, as DescribeJobs returns it): driver
    `awslogs` with options `awslogs-group` / `awslogs-region`, each falling back to the defaults. No
    logConfiguration means the Batch default, awslogs. Any other driver (splunk, fluentd, ...) gives None.
    `default_region` should be the job's own region: that is where awslogs writes when no region is set.
    """
    config = _mapping(_mapping(job_detail.get("container")).get("logConfiguration"))
    if _text(config.get("logDriver")) not in ("", "awslogs"):
        return None
    options = _mapping(config.get("options"))
    return (
        _text(options.get("awslogs-group")) or default_group,
        _text(options.get("awslogs-region")) or default_region,
    )


@dataclass(frozen=True)
class AttemptLog:
    """The log stream of one attempt of a job."""

    number: int  # 1-based, counting attempts that never got a stream too
    log_stream: str
    status: str  # SUCCEEDED / FAILED when finished; the job's status (e.g. RUNNING) for the current attempt


def attempt_logs(job_detail: Mapping[str, Any]) -> list[AttemptLog]:
    """Every attempt of a job that has a log stream, oldest first.

    Finished attempts come from `attempts[].container.logStreamName`; the current one from
    `container.logStreamName`, which repeats the last finished attempt once the job is done (deduplicated).
    Batch only retries after a failure, so every finished attempt but the last one of a SUCCEEDED job failed.
    """
    raw_attempts = job_detail.get("attempts")
    attempts = [a for a in raw_attempts if isinstance(a, Mapping)] if isinstance(raw_attempts, list) else []
    status = _text(job_detail.get("status"))
    logs: list[AttemptLog] = []
    seen: set[str] = set()
    for i, attempt in enumerate(attempts):
        stream = _text(_mapping(attempt.get("container")).get("logStreamName"))
        if not stream or stream in seen:
            continue
        seen.add(stream)
        succeeded = i == len(attempts) - 1 and status == "SUCCEEDED"
        logs.append(AttemptLog(i + 1, stream, "SUCCEEDED" if succeeded else "FAILED"))
    current = _text(_mapping(job_detail.get("container")).get("logStreamName"))
    if current and current not in seen:
        logs.append(AttemptLog(len(attempts) + 1, current, status or "UNKNOWN"))
    return logs


def _cloudwatch_links(
    job_detail: Mapping[str, Any], region: str, default_log_group: str, name: Callable[[AttemptLog], str]
) -> list[LogLink]:
    location = log_location(job_detail, default_log_group, region)
    if location is None:
        return []
    group, log_region = location
    return [
        LogLink(name=name(attempt), uri=cloudwatch_log_url(log_region, group, attempt.log_stream))
        for attempt in attempt_logs(job_detail)
    ]


def single_job_links(
    region: str,
    job_id: str,
    job_detail: Mapping[str, Any] | None = None,
    *,
    default_log_group: str = DEFAULT_LOG_GROUP,
) -> list[LogLink]:
    """Links of a single (non-array) job: the console page, then "CloudWatch logs (attempt N)" per attempt.

    Without a job detail yet (just submitted) only the console link, which Flyte shows while pending.
    """
    links = [LogLink(SINGLE_JOB_LINK_NAME, batch_job_console_url(region, job_id), show_while_pending=True)]
    if job_detail is not None:
        links += _cloudwatch_links(
            job_detail, region, default_log_group, lambda a: f"CloudWatch logs (attempt {a.number})"
        )
    return links


def child_job_links(
    region: str, child_detail: Mapping[str, Any], *, default_log_group: str = DEFAULT_LOG_GROUP
) -> list[LogLink]:
    """CloudWatch links of one array child, "Child 7 logs (attempt 1, FAILED)", one per attempt."""
    index = local_index(child_detail)
    label = f"Child {index}" if index is not None else f"Job {_text(child_detail.get('jobId')) or '?'}"
    return _cloudwatch_links(
        child_detail, region, default_log_group, lambda a: f"{label} logs (attempt {a.number}, {a.status})"
    )


def array_job_links(
    region: str,
    parent_job_id: str,
    children: Iterable[Mapping[str, Any]] = (),
    *,
    default_log_group: str = DEFAULT_LOG_GROUP,
) -> list[LogLink]:
    """The parent's console page, then the links of the given children, in index order.

    The caller picks the children (e.g. failed and running ones): an array can have 10,000 of them.
    """
    links = [LogLink(ARRAY_JOB_LINK_NAME, batch_job_console_url(region, parent_job_id), show_while_pending=True)]

    def order(child: Mapping[str, Any]) -> tuple[int, int, str]:
        index = local_index(child)
        return (0, index, "") if index is not None else (1, 0, _text(child.get("jobId")))

    for child in sorted(children, key=order):
        links += child_job_links(region, child, default_log_group=default_log_group)
    return links
