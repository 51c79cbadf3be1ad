"""The part of an AWS Batch `JobDetail` the service keeps: what phases, errors and log links read.

DescribeJobs answers kilobytes per job (command, environment, volumes, ...). botocore would turn all of it into
Python objects, walking its model field by field on the event loop; `decode_describe_jobs` decodes only the
fields below, straight from the body (msgspec skips the rest without building it). The cost of each is measured
by `benchmarks/describe_parse.py` (benchmarks/README.md).
"""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec


class LogConfiguration(TypedDict, total=False):
    logDriver: str
    options: dict[str, str]


class Container(TypedDict, total=False):
    exitCode: int
    reason: str
    logStreamName: str
    logConfiguration: LogConfiguration


class Attempt(TypedDict, total=False):
    container: Container
    statusReason: str
    startedAt: int
    stoppedAt: int


class ArrayProperties(TypedDict, total=False):
    statusSummary: dict[str, int]
    size: int
    index: int


class JobDetail(TypedDict, total=False):
    jobId: str
    jobName: str
    status: str
    statusReason: str
    createdAt: int
    startedAt: int
    stoppedAt: int
    jobQueue: str
    container: Container
    attempts: list[Attempt]
    arrayProperties: ArrayProperties


class DescribeJobsResponse(TypedDict, total=False):
    jobs: list[JobDetail]


_KEYS = ("jobId", "jobName", "status", "statusReason", "createdAt", "startedAt", "stoppedAt", "jobQueue")
_CONTAINER_KEYS = ("exitCode", "reason", "logStreamName")
_ATTEMPT_KEYS = ("statusReason", "startedAt", "stoppedAt")
_DECODER = msgspec.json.Decoder(DescribeJobsResponse)


def decode_describe_jobs(body: bytes) -> dict[str, Any] | None:
    """DescribeJobs' answer with each job reduced to the fields of `JobDetail` (`slim` gives the canonical
    shape), or None when the body does not fit the model (then the SDK parses it as usual)."""
    try:
        response = _DECODER.decode(body)
    except msgspec.DecodeError:
        return None
    return {"jobs": response.get("jobs", [])}


def slim(detail: dict[str, Any]) -> dict[str, Any]:
    """`detail` (as AWS or the SDK gives it) reduced to `JobDetail`, in one canonical shape: `attempts` only
    when there are some, `container` always. Equal states give equal dicts."""
    out: dict[str, Any] = {k: detail[k] for k in _KEYS if k in detail}
    container = detail.get("container") or {}
    kept: dict[str, Any] = {k: container[k] for k in _CONTAINER_KEYS if k in container}
    log_config = container.get("logConfiguration")
    if isinstance(log_config, dict):
        options = log_config.get("options")
        kept["logConfiguration"] = {
            "logDriver": log_config.get("logDriver"),
            "options": {k: v for k, v in options.items() if isinstance(v, str)} if isinstance(options, dict) else {},
        }
    out["container"] = kept
    attempts = detail.get("attempts")
    if attempts:
        out["attempts"] = [
            {"container": {k: v for k in _CONTAINER_KEYS if (v := (a.get("container") or {}).get(k)) is not None},
             **{k: a.get(k) for k in _ATTEMPT_KEYS}}
            for a in attempts
        ]
    ap = detail.get("arrayProperties")
    if ap:
        out["arrayProperties"] = {k: ap[k] for k in ("statusSummary", "size", "index") if k in ap}
    return out
