"""Exactly-once, paced submission of AWS jobs, durable across replicas and restarts.

CreateTask claims the attempt in the submission journal (one S3 object for the CreateTasks of one moment on a
replica, see submission_journal.py) and queues it. Right before SubmitJob, the owner writes the attempt's own
record, `<output_prefix>/_aws_array_plugin/submission.json`, with an S3 conditional create (If-None-Match: *):
however many claims point at an attempt (a repeated CreateTask, a takeover), only one creates the record, and
only the record's owner submits. It then records the job ids with If-Match on the record's ETag. If the owner
dies first, its claim expires (`claimedUntil`) and the next GetTask on any replica takes the attempt over (a
conditional create of the record, or If-Match on its ETag, so one replica wins) and, before submitting, looks
the deterministic job names up with ListJobs in case the dead owner had already submitted. An owner never
submits within a margin (a third of `claimTimeout`, at most 10 s) of its claim's expiry, so such a job is
always old enough for ListJobs to see it.

The record also holds the job definition (RegisterJobDefinition's parameters): the worker finds or registers it
right before SubmitJob, so CreateTask makes no AWS call beyond its share of a journal write, and a definition AWS
rejects fails the task through the record like a rejected SubmitJob. Records without one carry the definition's
ARN in their requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_array_plugin.aws_calls import AwsApi, AwsRequestError, AwsUnavailable
from aws_array_plugin.background import cancel_and_wait
from aws_array_plugin.config import Config
from aws_array_plugin.job_definitions import JobDefinitions
from aws_array_plugin.job_requests import JobDefinition
from aws_array_plugin.metrics import Metrics
from aws_array_plugin.storage import S3Store, WriteConflict
from aws_array_plugin.submission_journal import JournalRef, SubmissionJournal

log = logging.getLogger(__name__)

RECORD_NAME = "_aws_array_plugin/submission.json"
_RECORD_VERSION = 1

PENDING, SUBMITTED, FAILED, CANCELLED = "pending", "submitted", "failed", "cancelled"


def record_uri(output_prefix: str) -> str:
    return f"{output_prefix.rstrip('/')}/{RECORD_NAME}"


@dataclass
class Waiting:
    """Not submitted yet."""

    position: int | None
    detail: str
    # Where the claim is while the attempt has no record yet: the resource meta keeps it.
    journal: JournalRef | None = None


@dataclass
class Submitted:
    job_ids: list[str]


@dataclass
class Refused:
    """AWS rejected the submission (or the task was cancelled before it was submitted)."""

    message: str
    # True when a new attempt may well succeed (the record vanished), False for a definite refusal.
    retryable: bool = False


Resolution = Waiting | Submitted | Refused


@dataclass(eq=False)  # identity: kept in sets and found in the queue by identity
class _Pending:
    uri: str
    record: dict[str, Any]
    etag: str | None  # None until the attempt's record exists (the claim is in a journal)
    recover: bool
    journal: JournalRef | None = None
    task_type: str = ""
    job_ids: list[str | None] | None = None  # as submitted so far
    announced: bool = False
    # Place in line: position = seq - the head's seq + 1, so a GetTask needs no scan of a long queue.
    seq: int = 0
    queued: bool = False
    done: asyncio.Future[Resolution] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def _now() -> float:
    return time.time()


class Submissions:
    def __init__(self, api: AwsApi, store: S3Store, config: Config, metrics: Metrics, definitions: JobDefinitions,
                 on_submitted: Callable[[list[tuple[str, str]]], None] | None = None) -> None:
        self._api = api
        self._definitions = definitions
        # Told about every job this replica submits (the status engine then knows it without a describe).
        self._on_submitted = on_submitted
        self._store = store
        self._journal = SubmissionJournal(store)
        self._config = config.submission
        self._metrics = metrics
        self.replica = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._queue: deque[_Pending] = deque()
        self._next_seq = 0
        self._active: set[_Pending] = set()  # being submitted by a worker
        self._margin = min(10.0, config.submission.claim_timeout / 3)
        self._by_uri: dict[str, _Pending] = {}
        self._known: OrderedDict[str, Resolution] = OrderedDict()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._rate = config.rate_limits.submit.rate

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        # Several workers, so AWS latency does not cap the rate; the submit limiter paces them all.
        self._tasks = [asyncio.create_task(self._worker(), name=f"submit-worker-{i}")
                       for i in range(self._config.workers)]
        self._tasks.append(asyncio.create_task(self._renewer(), name="claim-renewer"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        await self._journal.close()
        # Hand queued claims over at once instead of letting them expire.
        for p in list(self._queue):
            with contextlib.suppress(Exception):
                await self._write_record(p, {**p.record, "claimedUntil": 0})

    @property
    def backlog(self) -> int:
        return len(self._queue) + len(self._active)

    # -- CreateTask ----------------------------------------------------------------------------------
    async def submit(self, output_prefix: str, job_names: list[str], requests: list[dict[str, Any]],
                     task_type: str, deadline: float | None = None, *,
                     definition: JobDefinition | None = None) -> Resolution:
        """Claim, queue and (within `createWait`) submit. AWS calls give up before `deadline`, so a
        CreateTask that times out never leaves a job behind that propeller does not know about.
        With `definition`, the requests name it and the worker puts its ARN in before SubmitJob."""
        uri = record_uri(output_prefix)
        # A repeated CreateTask: this replica already knows the attempt (other replicas find out when the
        # worker's conditional create of the record fails, before any SubmitJob).
        known = self._known.get(uri)
        if known is not None:
            self._metrics.submissions.labels(task_type, "deduplicated").inc()
            return known
        mine = self._by_uri.get(uri)
        if mine is not None:
            self._metrics.submissions.labels(task_type, "deduplicated").inc()
            return Waiting(self._position(mine), "waiting for a SubmitJob slot", mine.journal)
        now = _now()
        record = {
            "version": _RECORD_VERSION, "state": PENDING, "taskType": task_type, "jobNames": job_names,
            "requests": requests,
            "jobIds": [None] * len(requests), "claimedBy": self.replica,
            "claimedUntil": now + self._expected_wait(len(self._queue) + 1) + self._config.claim_timeout,
            "createdAt": now,
        }
        if definition is not None:
            record["jobDefinition"] = definition.body
        journal = await self._journal.append(uri, record, deadline)
        pending = _Pending(uri, record, None, recover=False, task_type=task_type, journal=journal)
        ahead = self.backlog
        self._enqueue(pending)
        wait = self._config.create_wait
        if self._expected_wait(ahead) > wait:
            # Behind a backlog it will not be submitted in time anyway: answer now, as "waiting to submit".
            self._metrics.submissions.labels(task_type, "queued").inc()
            return Waiting(self._position(pending), "waiting for a SubmitJob slot", journal)
        if deadline is not None:
            wait = max(0.0, min(wait, deadline - time.monotonic()))
        try:
            outcome = await asyncio.wait_for(asyncio.shield(pending.done), wait)
        except TimeoutError:
            self._metrics.submissions.labels(task_type, "queued").inc()
            return Waiting(self._position(pending), "waiting for a SubmitJob slot", journal)
        if isinstance(outcome, Waiting) and outcome.journal is None:
            # Handled by another claim on the attempt: the meta still points at this one, which stays readable.
            return dataclasses.replace(outcome, journal=journal)
        return outcome

    # -- GetTask -------------------------------------------------------------------------------------
    async def resolve(self, output_prefix: str, deadline: float | None = None,
                      journal: JournalRef | None = None) -> Resolution:
        """Where the submission of this attempt stands; takes over an abandoned one."""
        uri = record_uri(output_prefix)
        known = self._known.get(uri)
        if known is not None:
            return known
        mine = self._by_uri.get(uri)
        if mine is not None:
            return Waiting(self._position(mine), "waiting for a SubmitJob slot")
        found = await self._read_claim(uri, journal, deadline)
        if found is None:
            return Refused(f"the submission record {uri} is missing, so this attempt cannot be tracked; "
                           "a retry of the task submits it again", retryable=True)
        record, etag = found
        outcome = _outcome(record)
        if outcome is not None:
            self._remember(uri, outcome)
            return outcome
        if float(record.get("claimedUntil", 0)) > _now():
            return Waiting(None, f"waiting for a SubmitJob slot on replica {record.get('claimedBy', '?')}")
        # The owner is gone: take the claim over (one replica wins the conditional write).
        record["claimedBy"] = self.replica
        record["claimedUntil"] = _now() + self._expected_wait(len(self._queue) + 1) + self._config.claim_timeout
        try:
            etag = await self._put_record(uri, record, etag)
        except WriteConflict:
            return Waiting(None, "waiting for a SubmitJob slot on another replica")
        log.info("took over abandoned submission %s", uri)
        pending = _Pending(uri, record, etag, recover=True, task_type=str(record.get("taskType", "")))
        self._enqueue(pending)
        return Waiting(self._position(pending), "waiting for a SubmitJob slot (taken over)")

    # -- DeleteTask ----------------------------------------------------------------------------------
    async def cancel(self, output_prefix: str, reason: str, journal: JournalRef | None = None) -> list[str]:
        """Make sure a not-yet-submitted attempt never is; returns job ids already submitted."""
        uri = record_uri(output_prefix)
        mine = self._by_uri.get(uri)
        for attempt in range(5):
            if attempt == 0 and mine is not None and mine.etag is None:
                # Our own claim, still only in a journal: no need to read what we hold (if another claim created
                # the record meanwhile, the conditional create fails and the next round reads it).
                claim: tuple[dict[str, Any], str | None] | None = (dict(mine.record), None)
            else:
                claim = await self._read_claim(uri, journal)
            if claim is None:
                return []
            record, etag = claim
            ids = [i for i in record.get("jobIds", []) if i]
            if record.get("state") != PENDING:
                return ids
            record["state"] = CANCELLED
            record["message"] = reason
            try:
                await self._put_record(uri, record, etag)
            except WriteConflict:
                continue
            if mine is not None and mine.queued:
                self._unqueue(mine)
                self._by_uri.pop(uri, None)
                self._finish(mine, Refused(reason))
            self._remember(uri, Refused(reason))
            if mine is None and etag is not None:
                # The owner is another replica, maybe a dead one whose SubmitJob reached AWS unrecorded (while the
                # claim was only in a journal, nobody had submitted: SubmitJob comes after the record).
                found = await self._find_existing(record.get("requests", []))
                ids = list(dict.fromkeys([*ids, *found.values()]))
            return ids
        raise AwsUnavailable("put_object", "conflict", "submission record kept changing")

    # -- internals -----------------------------------------------------------------------------------
    async def _read_claim(self, uri: str, journal: JournalRef | None, deadline: float | None = None
                          ) -> tuple[dict[str, Any], str | None] | None:
        """The attempt's record and its ETag; else the claim in its journal entry (ETag None: the record is
        created conditionally); None when neither exists."""
        obj = await self._store.read(uri, deadline)
        if obj is not None:
            record = _parse(obj.data)
            if record is None:
                log.warning("%s is not a submission record; the attempt cannot be tracked", uri)
                return None
            return record, obj.etag
        if journal is None:
            return None
        entry = await self._journal.entry(journal, uri, deadline)
        if entry is None:
            return None
        # The record may have been created since the read: the conditional create then fails, as it should.
        return entry, None

    async def _put_record(self, uri: str, record: dict[str, Any], etag: str | None) -> str:
        """Replace the record read with `etag` (If-Match), or create it (If-None-Match) when the claim was only in
        a journal; WriteConflict if another writer came first. Returns the new ETag."""
        return await self._store.write(uri, _dump(record), if_match=etag, create_only=etag is None,
                                       content_type="application/json")

    async def _write_record(self, pending: _Pending, record: dict[str, Any]) -> None:
        pending.etag = await self._put_record(pending.uri, record, pending.etag)
        pending.record = record

    def _expected_wait(self, position: int) -> float:
        return position / max(self._rate, 0.1)

    def _position(self, pending: _Pending) -> int | None:
        """1 for the head of the queue, 0 while being submitted. The queue's seqs are consecutive from head
        to tail (appended at the tail, re-queued at the head, renumbered when one leaves mid-line)."""
        if pending in self._active:
            return 0
        if not pending.queued:
            return None
        return pending.seq - self._queue[0].seq + 1

    def _enqueue(self, pending: _Pending, *, first: bool = False) -> None:
        if first and self._queue:
            pending.seq = self._queue[0].seq - 1
            self._queue.appendleft(pending)
        else:
            pending.seq = self._next_seq
            self._next_seq += 1
            self._queue.append(pending)
        pending.queued = True
        self._by_uri[pending.uri] = pending
        self._metrics.submission_backlog.set(self.backlog)
        self._wakeup.set()

    def _unqueue(self, pending: _Pending) -> None:
        """Take a task out of the line (cancelled, or claimed by another replica: both rare)."""
        self._queue.remove(pending)
        pending.queued = False
        for later in self._queue:  # seqs stay consecutive, so positions stay exact
            if later.seq > pending.seq:
                later.seq -= 1
        self._next_seq -= 1
        self._metrics.submission_backlog.set(self.backlog)

    def _remember(self, uri: str, outcome: Resolution) -> None:
        self._known[uri] = outcome
        self._known.move_to_end(uri)
        while len(self._known) > 100_000:
            self._known.popitem(last=False)

    def _finish(self, pending: _Pending, outcome: Resolution) -> None:
        if not isinstance(outcome, Waiting):
            self._remember(pending.uri, outcome)
        if not pending.done.done():
            pending.done.set_result(outcome)

    async def _worker(self) -> None:
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            pending = self._queue.popleft()
            pending.queued = False
            self._active.add(pending)
            try:
                outcome = await self._submit(pending)
            except Exception as exc:
                if isinstance(exc, AwsUnavailable):
                    log.warning("submission of %s postponed: %s", pending.uri, exc)
                else:
                    log.exception("submission of %s failed unexpectedly; will retry", pending.uri)
                pending.recover = True
                await asyncio.sleep(1.0)
                self._active.discard(pending)
                if pending.uri in self._by_uri:  # not cancelled or lost meanwhile: back to the head
                    self._enqueue(pending, first=True)
                continue
            self._active.discard(pending)
            self._by_uri.pop(pending.uri, None)
            self._metrics.submission_backlog.set(self.backlog)
            self._finish(pending, outcome)

    async def _renew(self, pending: _Pending) -> bool:
        """Extend our claim; False if another replica took it (or DeleteTask cancelled it)."""
        record = dict(pending.record)
        record["claimedUntil"] = _now() + self._expected_wait(self._position(pending) or 1) + self._config.claim_timeout
        try:
            await self._write_record(pending, record)
        except WriteConflict:
            return False
        return True

    async def _renewer(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self._config.claim_timeout / 6))
            for pending in [*self._queue, *self._active]:
                expiring = float(pending.record["claimedUntil"]) - _now() < self._config.claim_timeout / 2
                try:
                    if expiring and not await self._renew(pending):
                        self._drop_lost(pending)
                except (AwsUnavailable, AwsRequestError) as exc:
                    log.warning("could not renew the claim on %s: %s", pending.uri, exc)

    def _drop_lost(self, pending: _Pending) -> None:
        if pending in self._active:
            return  # its worker finds out when it writes the record
        if pending.queued:
            self._unqueue(pending)
        self._by_uri.pop(pending.uri, None)
        self._finish(pending, Waiting(None, "submission handled by another replica"))

    async def _submit(self, pending: _Pending) -> Resolution:
        if pending.job_ids is None:
            # Kept on the pending item: after a failed record write, a retry rewrites the record only.
            pending.job_ids = list(pending.record["jobIds"])
        if pending.recover and not all(pending.job_ids):
            # A previous owner, or our own attempt that failed midway (a SubmitJob may have reached AWS
            # without its answer reaching us), may have created jobs: find them by name first.
            found = await self._find_existing(pending.record["requests"])
            pending.job_ids = [pending.job_ids[i] or found.get(r["jobName"])
                               for i, r in enumerate(pending.record["requests"])]
            pending.recover = False
        job_ids = pending.job_ids
        if not all(job_ids):
            # Right before SubmitJob the record must still be ours and pending: a DeleteTask, or a takeover,
            # on any replica changes it, and the conditional write then fails.
            if not await self._renew(pending):
                return await self._settle_lost(pending)
            body = pending.record.get("jobDefinition")
            arn: str | None = None
            if body is not None:
                try:
                    arn = await self._definitions.arn(JobDefinition(str(body["jobDefinitionName"]), body),
                                                      self._claim_deadline(pending))
                except AwsRequestError as exc:
                    why = f"AWS Batch rejected the job definition: {exc.code}: {exc.message}"
                    return await self._refuse(pending, why)
            for i, request in enumerate(pending.record["requests"]):
                if job_ids[i]:
                    continue
                if arn is not None:
                    request = {**request, "jobDefinition": arn}
                try:
                    # No blind retry after a timeout: the job may exist; the worker looks it up by name instead.
                    resp = await self._api.call("submit", "batch", "submit_job", retry_timeouts=False,
                                                deadline=self._claim_deadline(pending), **request)
                except AwsRequestError as exc:
                    return await self._refuse(pending, f"AWS Batch rejected the job: {exc.code}: {exc.message}")
                job_ids[i] = str(resp["jobId"])
        ids = [str(i) for i in job_ids]
        if not pending.announced:
            pending.announced = True
            self._metrics.submissions.labels(pending.task_type, "submitted").inc()
            if self._on_submitted is not None:
                queues = [str(r["jobQueue"]) for r in pending.record["requests"]]
                self._on_submitted(list(zip(ids, queues, strict=True)))
        final = {**pending.record, "jobIds": ids, "state": SUBMITTED}
        return await self._record_final(pending, final) or Submitted(ids)

    def _claim_deadline(self, pending: _Pending) -> float:
        """No AWS call towards a submission starts within the margin of the claim's expiry (throttling can stretch
        the retries, and S3 trouble can stop the renewals): a replica taking over must find the job by name."""
        return time.monotonic() + float(pending.record["claimedUntil"]) - _now() - self._margin

    async def _refuse(self, pending: _Pending, message: str) -> Resolution:
        self._metrics.submissions.labels(pending.task_type, "failed").inc()
        final = {**pending.record, "jobIds": pending.job_ids, "state": FAILED, "message": message}
        return await self._record_final(pending, final) or Refused(message)

    async def _settle_lost(self, pending: _Pending) -> Resolution:
        """Our claim is gone: cancelled by DeleteTask (terminate what we submitted) or taken over."""
        obj = await self._store.read(pending.uri)
        current = json.loads(obj.data) if obj else {}
        if pending.etag is None and obj is not None and current.get("state") != CANCELLED:
            # Our claim never held the record: another claim on the same attempt (a repeated CreateTask) did.
            self._metrics.submissions.labels(pending.task_type, "deduplicated").inc()
        if current.get("state") == CANCELLED:
            await self._terminate_known(pending, current)
            if obj is not None and any(pending.job_ids or []):
                current["jobIds"] = pending.job_ids
                with contextlib.suppress(WriteConflict):
                    await self._put_record(pending.uri, current, obj.etag)
        return _outcome(current) or Waiting(None, "submission handled by another replica")

    async def _terminate_known(self, pending: _Pending, record: dict[str, Any]) -> None:
        # An AWS failure here propagates: the worker retries, and terminating twice is harmless.
        reason = str(record.get("message", "Aborted by Flyte"))
        for job_id in pending.job_ids or []:
            if job_id:
                await self._api.call("terminate", "batch", "terminate_job", jobId=job_id, reason=reason)

    async def _record_final(self, pending: _Pending, record: dict[str, Any]) -> Resolution | None:
        """Persist the outcome. If DeleteTask cancelled meanwhile, terminate what was just submitted."""
        for _ in range(5):
            try:
                await self._write_record(pending, record)
                return None
            except WriteConflict:
                obj = await self._store.read(pending.uri)
                if obj is None:
                    return None
                if json.loads(obj.data).get("state") == CANCELLED:
                    return await self._settle_lost(pending)
                pending.etag = obj.etag
        raise AwsUnavailable("put_object", "conflict", "submission record kept changing")

    async def _find_existing(self, requests: list[dict[str, Any]]) -> dict[str, str]:
        """Jobs a previous owner may have submitted, by their deterministic names."""
        found: dict[str, str] = {}
        for request in requests:
            name = request["jobName"]
            resp = await self._api.call(
                "list", "batch", "list_jobs", jobQueue=request["jobQueue"],
                filters=[{"name": "JOB_NAME", "values": [name]}],
            )
            for summary in resp.get("jobSummaryList", []):
                if summary.get("jobName") == name:
                    found.setdefault(name, str(summary["jobId"]))
        return found


def _outcome(record: dict[str, Any]) -> Resolution | None:
    state = record.get("state")
    if state == SUBMITTED:
        return Submitted([str(i) for i in record.get("jobIds", [])])
    if state in (FAILED, CANCELLED):
        return Refused(str(record.get("message", state)))
    return None


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(data)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("requests"), list) else None


def _dump(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True).encode()
