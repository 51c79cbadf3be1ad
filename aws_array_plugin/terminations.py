"""The one place the service sends TerminateJob (a verdict that ends jobs, DeleteTask, a cancelled submission)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aws_array_plugin.aws_calls import AwsCalls, AwsRequestError

log = logging.getLogger(__name__)

MAX_REASON_LENGTH = 1000  # TerminateJob's limit


async def terminate_jobs(api: AwsCalls, job_ids: Iterable[str], reason: str) -> None:
    """Terminate each job with `reason`. A job AWS refuses to terminate (unknown, already gone) counts as
    stopped; AwsUnavailable propagates: the caller retries, and terminating twice is harmless."""
    for job_id in job_ids:
        try:
            await api.call("terminate", "batch", "terminate_job", jobId=job_id, reason=reason[:MAX_REASON_LENGTH])
        except AwsRequestError as exc:
            log.info("terminate %s: %s (treated as done)", job_id, exc)
