"""Exactly-once, paced submission of AWS jobs, durable across replicas and restarts.

CreateTask claims the attempt in the submission journal (one S3 object for the CreateTasks of one moment on a
replica, journal.py) and queues it (queue.py). Right before SubmitJob, the owner writes the attempt's own
record, `<output_prefix>/_aws_array_plugin/submission.json` (record.py), with an S3 conditional create
(If-None-Match: *): however many claims point at an attempt (a repeated CreateTask, a takeover), only one creates
the record, and only the record's owner submits (worker.py). It then records the job ids with If-Match on the
record's ETag. If the owner dies first, its claim expires (`claimedUntil`) and the next GetTask on any replica
takes the attempt over (a conditional create of the record, or If-Match on its ETag, so one replica wins) and,
before submitting, looks the deterministic job names up with ListJobs in case the dead owner had already
submitted. An owner never submits within a margin (a third of `claimTimeout`, at most 10 s) of its claim's
expiry, so such a job is always old enough for ListJobs to see it.

The record also holds the job definition (RegisterJobDefinition's parameters): the worker finds or registers it
right before SubmitJob, so CreateTask makes no AWS call beyond its share of a journal write, and a definition AWS
rejects fails the task through the record like a rejected SubmitJob.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from msgspec.structs import replace

from aws_array_plugin.aws_calls import AwsCalls, AwsUnavailable
from aws_array_plugin.background import cancel_and_wait
from aws_array_plugin.config import Config
from aws_array_plugin.job_definitions import JobDefinitions
from aws_array_plugin.job_requests import JobDefinition
from aws_array_plugin.metrics import Metrics
from aws_array_plugin.storage import S3Store, WriteConflict
from aws_array_plugin.submissions.journal import JournalRef, SubmissionJournal, journal_uri
from aws_array_plugin.submissions.outcome import Refused, Resolution, Submitted, Waiting, outcome_of, waiting
from aws_array_plugin.submissions.queue import Backlog, Pending
from aws_array_plugin.submissions.record import (
    RECORD_NAME,
    RECORD_VERSION,
    Claim,
    Records,
    State,
    SubmissionRecord,
    record_uri,
)
from aws_array_plugin.submissions.worker import Workers

__all__ = ["RECORD_NAME", "JournalRef", "Refused", "Resolution", "Submissions", "Submitted", "Waiting",
           "journal_uri", "record_uri"]

# DeleteTask's conditional writes that may lose to other writers before it gives up (propeller calls again).
_CANCEL_ROUNDS = 5


class Submissions:
    def __init__(self, api: AwsCalls, store: S3Store, config: Config, metrics: Metrics, definitions: JobDefinitions,
                 on_submitted: Callable[[list[tuple[str, str, int | None]]], None] | None = None, *,
                 clock: Callable[[], float] = time.time, retry_pause: float = 1.0) -> None:
        """`on_submitted` is told about every job this replica submits (the status engine then knows it without a
        describe). `clock` is the wall clock claims expire by; `retry_pause` the workers' pause after a failure."""
        self._config = config.submission
        self._metrics = metrics
        self._clock = clock
        self.replica = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._records = Records(store)
        self._journal = SubmissionJournal(store)
        self._backlog = Backlog(metrics.submission_backlog.set)
        self._workers = Workers(self._backlog, self._records, api, definitions, metrics, config.submission,
                                config.rate_limits.submit.rate, self.replica, clock=clock, retry_pause=retry_pause,
                                on_submitted=on_submitted)
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = self._workers.start()

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        await self._journal.close()
        # Hand queued claims over at once instead of letting them expire.
        for pending in list(self._backlog.line):
            with contextlib.suppress(Exception):  # best effort: the claim expires anyway
                await self._records.write(pending, replace(pending.record, claimed_until=0.0))

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    # -- CreateTask ------------------------------------------------------------------------------------------
    async def submit(self, output_prefix: str, requests: list[dict[str, Any]], task_type: str,
                     deadline: float | None = None, *, definition: JobDefinition) -> Resolution:
        """Claim, queue and (within `createWait`) submit. AWS calls give up before `deadline`, so a CreateTask
        that times out never leaves a job behind that propeller does not know about. The requests name
        `definition`; the worker puts its ARN in before SubmitJob."""
        uri = record_uri(output_prefix)
        # A repeated CreateTask: this replica already knows the attempt (other replicas find out when the
        # worker's conditional create of the record fails, before any SubmitJob).
        known = self._backlog.known.get(uri)
        if known is not None:
            self._metrics.submissions.labels(task_type, "deduplicated").inc()
            return known
        mine = self._backlog.by_uri.get(uri)
        if mine is not None:
            self._metrics.submissions.labels(task_type, "deduplicated").inc()
            return waiting(self._backlog.position(mine), journal=mine.journal)
        record = SubmissionRecord(
            version=RECORD_VERSION, state=State.PENDING, task_type=task_type, requests=requests,
            job_definition=definition.body, job_ids=[None] * len(requests), claimed_by=self.replica,
            claimed_until=self._workers.claim_expiry(len(self._backlog.line) + 1), created_at=self._clock(),
        )
        journal = await self._journal.append(uri, record, deadline)
        pending = Pending(uri, record, None, task_type=task_type, journal=journal)
        ahead = len(self._backlog)
        self._backlog.enqueue(pending)
        wait = self._config.create_wait
        if self._workers.expected_wait(ahead) > wait:
            # Behind a backlog it will not be submitted in time anyway: answer now, as "waiting to submit".
            self._metrics.submissions.labels(task_type, "queued").inc()
            return waiting(self._backlog.position(pending), journal=journal)
        if deadline is not None:
            wait = max(0.0, min(wait, deadline - time.monotonic()))
        try:
            outcome = await asyncio.wait_for(asyncio.shield(pending.done), wait)
        except TimeoutError:
            self._metrics.submissions.labels(task_type, "queued").inc()
            return waiting(self._backlog.position(pending), journal=journal)
        if isinstance(outcome, Waiting) and outcome.journal is None:
            # Handled by another claim on the attempt: the meta still points at this one, which stays readable.
            return dataclasses.replace(outcome, journal=journal)
        return outcome

    # -- GetTask ---------------------------------------------------------------------------------------------
    async def resolve(self, output_prefix: str, deadline: float | None = None,
                      journal: JournalRef | None = None) -> Resolution:
        """Where the submission of this attempt stands; takes over an abandoned one."""
        uri = record_uri(output_prefix)
        known = self._backlog.known.get(uri)
        if known is not None:
            return known
        mine = self._backlog.by_uri.get(uri)
        if mine is not None:
            return waiting(self._backlog.position(mine))
        claim = await self._read_claim(uri, journal, deadline)
        if claim is None:
            return Refused(f"the submission record {uri} is missing, so this attempt cannot be tracked; "
                           "a retry of the task submits it again", retryable=True)
        outcome = outcome_of(claim.record)
        if outcome is not None:
            self._backlog.known.put(uri, outcome)
            return outcome
        if claim.record.claimed_until > self._clock():
            return waiting(None, f" on replica {claim.record.claimed_by}")
        return await self._workers.take_over(claim)

    # -- DeleteTask ------------------------------------------------------------------------------------------
    async def cancel(self, output_prefix: str, reason: str, journal: JournalRef | None = None) -> list[str]:
        """Make sure a not-yet-submitted attempt never is; returns job ids already submitted."""
        uri = record_uri(output_prefix)
        mine = self._backlog.by_uri.get(uri)
        for attempt in range(_CANCEL_ROUNDS):
            claim: Claim | None
            if attempt == 0 and mine is not None and mine.etag is None:
                # Our own claim, still only in a journal: no need to read what we hold (if another claim created
                # the record meanwhile, the conditional create fails and the next round reads it).
                claim = Claim(uri, mine.record, None)
            else:
                claim = await self._read_claim(uri, journal)
            if claim is None:
                return []
            ids = [i for i in claim.record.job_ids if i]
            if claim.record.state is not State.PENDING:
                return ids
            try:
                await self._records.put(uri, replace(claim.record, state=State.CANCELLED, message=reason), claim.etag)
            except WriteConflict:
                continue
            if mine is not None and mine in self._backlog.line:
                self._backlog.unqueue(mine)
                self._backlog.settle(mine, Refused(reason))
            self._backlog.known.put(uri, Refused(reason))
            if mine is None and claim.etag is not None:
                # The owner is another replica, maybe a dead one whose SubmitJob reached AWS unrecorded (while the
                # claim was only in a journal, nobody had submitted: SubmitJob comes after the record).
                found = await self._workers.find_existing(claim.record.requests)
                ids = list(dict.fromkeys([*ids, *found.values()]))
            return ids
        raise AwsUnavailable("put_object", "conflict", "submission record kept changing")

    async def _read_claim(self, uri: str, journal: JournalRef | None, deadline: float | None = None) -> Claim | None:
        """The attempt's record; else the claim in its journal entry; None when neither exists."""
        ref = journal
        if ref is None:
            return await self._records.read(uri, deadline)
        return await self._records.read(uri, deadline, journaled=lambda: self._journal.entry(ref, uri, deadline))
