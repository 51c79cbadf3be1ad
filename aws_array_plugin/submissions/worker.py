"""The submission workers: they take the head of the line, make sure the claim is still theirs (the record's
conditional create or replace), find or register the job definition, SubmitJob, and record the job ids. Also the
renewer that keeps claims from expiring, and the takeover of a claim whose owner went silent.

Exactly once: only the writer of the record's pending state right before SubmitJob submits, and a retry (or a
replica taking over) first looks the deterministic job names up with ListJobs. No SubmitJob starts within a
margin (a third of `claimTimeout`, at most 10 s) of the claim's expiry, so a job submitted before a takeover is
always old enough for the new owner's ListJobs to see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from msgspec.structs import replace

from aws_array_plugin.aws_calls import AwsCalls, AwsRequestError, AwsUnavailable
from aws_array_plugin.config import SubmissionConfig
from aws_array_plugin.job_definitions import JobDefinitions
from aws_array_plugin.job_requests import JobDefinition
from aws_array_plugin.metrics import Metrics
from aws_array_plugin.storage import WriteConflict
from aws_array_plugin.submissions.outcome import (
    HANDLED_ELSEWHERE,
    Refused,
    Resolution,
    Submitted,
    Waiting,
    outcome_of,
    waiting,
)
from aws_array_plugin.submissions.queue import Backlog, Pending
from aws_array_plugin.submissions.record import Claim, Records, State, SubmissionRecord
from aws_array_plugin.terminations import terminate_jobs

log = logging.getLogger(__name__)

# Conditional writes of one record that may lose to other writers before the worker gives up (and retries later).
_WRITE_ROUNDS = 5


class Workers:
    def __init__(self, backlog: Backlog, records: Records, api: AwsCalls, definitions: JobDefinitions,
                 metrics: Metrics, config: SubmissionConfig, submit_rate: float, replica: str, *,
                 clock: Callable[[], float], retry_pause: float,
                 on_submitted: Callable[[list[tuple[str, str, int | None]]], None] | None) -> None:
        self._backlog = backlog
        self._records = records
        self._api = api
        self._definitions = definitions
        self._metrics = metrics
        self._config = config
        self._rate = max(submit_rate, 0.1)
        self._replica = replica
        self._clock = clock
        self._retry_pause = retry_pause
        self._on_submitted = on_submitted
        self._margin = min(10.0, config.claim_timeout / 3)

    def start(self) -> list[asyncio.Task[None]]:
        # Several workers, so AWS latency does not cap the rate; the submit limiter paces them all.
        tasks = [asyncio.create_task(self._work(), name=f"submit-worker-{i}") for i in range(self._config.workers)]
        return [*tasks, asyncio.create_task(self._renew_all(), name="claim-renewer")]

    def expected_wait(self, position: int) -> float:
        return position / self._rate

    def claim_expiry(self, position: int) -> float:
        """Until when a claim at `position` in line holds: its expected wait plus `claimTimeout`."""
        return self._clock() + self.expected_wait(position) + self._config.claim_timeout

    # -- takeover ----------------------------------------------------------------------------------------
    async def take_over(self, claim: Claim) -> Waiting:
        """The owner of this expired claim is gone: make it ours (one replica wins the conditional write)."""
        record = replace(claim.record, claimed_by=self._replica,
                         claimed_until=self.claim_expiry(len(self._backlog.line) + 1))
        try:
            etag = await self._records.put(claim.uri, record, claim.etag)
        except WriteConflict:
            return waiting(None, " on another replica")
        log.info("took over abandoned submission %s", claim.uri)
        pending = Pending(claim.uri, record, etag, recover=True, task_type=record.task_type)
        self._backlog.enqueue(pending)
        return waiting(self._backlog.position(pending), " (taken over)")

    async def find_existing(self, requests: list[dict[str, Any]]) -> dict[str, str]:
        """Jobs a previous owner may have submitted, by their deterministic names."""
        found: dict[str, str] = {}
        for request in requests:
            name = request["jobName"]
            resp = await self._api.call("list", "batch", "list_jobs", jobQueue=request["jobQueue"],
                                        filters=[{"name": "JOB_NAME", "values": [name]}])
            for summary in resp.get("jobSummaryList", []):
                if summary.get("jobName") == name:
                    found.setdefault(name, str(summary["jobId"]))
        return found

    # -- the workers -------------------------------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            pending = await self._backlog.next()
            try:
                outcome = await self._submit(pending)
            except Exception as exc:
                if isinstance(exc, AwsUnavailable):
                    log.warning("submission of %s postponed: %s", pending.uri, exc)
                else:
                    log.exception("submission of %s failed unexpectedly; will retry", pending.uri)
                pending.recover = True
                await asyncio.sleep(self._retry_pause)
                self._backlog.requeue(pending)
                continue
            self._backlog.settle(pending, outcome)

    async def _submit(self, pending: Pending) -> Resolution:
        requests = pending.record.requests
        if pending.job_ids is None:
            # Kept on the pending item: after a failed record write, a retry rewrites the record only.
            pending.job_ids = list(pending.record.job_ids)
        if pending.recover and not all(pending.job_ids):
            # A previous owner, or our own attempt that failed midway (a SubmitJob may have reached AWS
            # without its answer reaching us), may have created jobs: find them by name first.
            found = await self.find_existing(requests)
            pending.job_ids = [pending.job_ids[i] or found.get(r["jobName"]) for i, r in enumerate(requests)]
            pending.recover = False
        job_ids = pending.job_ids
        if not all(job_ids):
            # Right before SubmitJob the record must still be ours and pending: a DeleteTask, or a takeover,
            # on any replica changes it, and the conditional write then fails.
            if not await self._renew(pending):
                return await self._settle_lost(pending)
            body = pending.record.job_definition
            try:
                arn = await self._definitions.arn(JobDefinition(str(body["jobDefinitionName"]), body),
                                                  self._claim_deadline(pending))
            except AwsRequestError as exc:
                return await self._refuse(pending, f"AWS Batch rejected the job definition: {exc.code}: {exc.message}")
            for i, request in enumerate(requests):
                if job_ids[i]:
                    continue
                try:
                    # No blind retry after a timeout: the job may exist; the worker looks it up by name instead.
                    resp = await self._api.call("submit", "batch", "submit_job", retry_timeouts=False,
                                                deadline=self._claim_deadline(pending),
                                                **{**request, "jobDefinition": arn})
                except AwsRequestError as exc:
                    return await self._refuse(pending, f"AWS Batch rejected the job: {exc.code}: {exc.message}")
                job_ids[i] = str(resp["jobId"])
        ids = [str(i) for i in job_ids]
        if not pending.announced:
            pending.announced = True
            self._metrics.submissions.labels(pending.task_type, "submitted").inc()
            if self._on_submitted is not None:
                self._on_submitted([(job_id, str(r["jobQueue"]), (r.get("arrayProperties") or {}).get("size"))
                                    for job_id, r in zip(ids, requests, strict=True)])
        final = replace(pending.record, job_ids=list(ids), state=State.SUBMITTED)
        return await self._record_final(pending, final) or Submitted(ids)

    def _claim_deadline(self, pending: Pending) -> float:
        """No AWS call towards a submission starts within the margin of the claim's expiry (throttling can stretch
        the retries, and S3 trouble can stop the renewals): a replica taking over must find the job by name."""
        return time.monotonic() + pending.record.claimed_until - self._clock() - self._margin

    async def _refuse(self, pending: Pending, message: str) -> Resolution:
        self._metrics.submissions.labels(pending.task_type, "failed").inc()
        final = replace(pending.record, job_ids=list(pending.job_ids or []), state=State.FAILED, message=message)
        return await self._record_final(pending, final) or Refused(message)

    async def _record_final(self, pending: Pending, record: SubmissionRecord) -> Resolution | None:
        """Persist the outcome. If DeleteTask cancelled meanwhile, terminate what was just submitted."""
        for _ in range(_WRITE_ROUNDS):
            try:
                await self._records.write(pending, record)
                return None
            except WriteConflict:
                current = await self._records.read(pending.uri)
                if current is None:
                    return None
                if current.record.state is State.CANCELLED:
                    return await self._settle_lost(pending)
                pending.etag = current.etag
        raise AwsUnavailable("put_object", "conflict", "submission record kept changing")

    async def _settle_lost(self, pending: Pending) -> Resolution:
        """Our claim is gone: cancelled by DeleteTask (terminate what we submitted) or taken over."""
        current = await self._records.read(pending.uri)
        if current is None:
            return Waiting(None, HANDLED_ELSEWHERE)
        if current.record.state is not State.CANCELLED:
            if pending.etag is None:
                # Our claim never held the record: another claim on the same attempt (a repeated CreateTask) did.
                self._metrics.submissions.labels(pending.task_type, "deduplicated").inc()
            return outcome_of(current.record) or Waiting(None, HANDLED_ELSEWHERE)
        # An AWS failure here propagates: the worker retries, and terminating twice is harmless.
        submitted = [i for i in pending.job_ids or [] if i]
        await terminate_jobs(self._api, submitted, current.record.message or "Aborted by Flyte")
        if submitted:
            with contextlib.suppress(WriteConflict):
                await self._records.put(pending.uri, replace(current.record, job_ids=list(pending.job_ids or [])),
                                        current.etag)
        return outcome_of(current.record) or Waiting(None, HANDLED_ELSEWHERE)

    # -- the claims' renewal -----------------------------------------------------------------------------
    async def _renew(self, pending: Pending) -> bool:
        """Extend our claim; False if another replica took it (or DeleteTask cancelled it)."""
        until = self.claim_expiry(self._backlog.position(pending) or 1)
        try:
            await self._records.write(pending, replace(pending.record, claimed_until=until))
        except WriteConflict:
            return False
        return True

    async def _renew_all(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self._config.claim_timeout / 6))
            for pending in [*self._backlog.line, *self._backlog.active]:
                expiring = pending.record.claimed_until - self._clock() < self._config.claim_timeout / 2
                try:
                    if expiring and not await self._renew(pending):
                        self._drop_lost(pending)
                except (AwsUnavailable, AwsRequestError) as exc:
                    log.warning("could not renew the claim on %s: %s", pending.uri, exc)

    def _drop_lost(self, pending: Pending) -> None:
        if pending in self._backlog.active:
            return  # its worker finds out when it writes the record
        if pending in self._backlog.line:
            self._backlog.unqueue(pending)
        self._backlog.settle(pending, Waiting(None, HANDLED_ELSEWHERE))
