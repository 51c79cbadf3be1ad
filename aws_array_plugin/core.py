"""The four operations every face serves (create, get, delete, logs), in the project's own terms.

A face decodes its protocol's request into these values and encodes what comes back; all policy is here and
below: a bad template becomes a recorded rejection (a permanent FAILED, nothing submitted), AWS trouble on
GetTask becomes the last known answer marked stale, and every answer is given within the caller's budget.
The resource meta (resource_meta.py) is the only state a task needs, so any replica answers any call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aws_array_plugin.aws_calls import AwsCalls, AwsRequestError, AwsUnavailable
from aws_array_plugin.bounded import BoundedCache
from aws_array_plugin.config import Config
from aws_array_plugin.job_requests import job_definition, submit_requests
from aws_array_plugin.metrics import Metrics
from aws_array_plugin.monitor import Monitor
from aws_array_plugin.outputs import assemble_array_outputs
from aws_array_plugin.resource_meta import (
    ARRAY,
    FLYTE1,
    SINGLE,
    Face,
    MetaError,
    ResourceMeta,
    check_face,
    decode,
    encode,
)
from aws_array_plugin.status_engine import StatusEngine
from aws_array_plugin.storage import S3Store
from aws_array_plugin.submissions import JournalRef, Refused, Submissions, Submitted
from aws_array_plugin.task_logs import TaskLogs
from aws_array_plugin.task_specs import Rejection, TaskSpec
from aws_array_plugin.task_status import LogPage, Phase, Reason, TaskError, TaskStatus
from aws_array_plugin.task_types import CONTAINER_ARRAY, metric_label

log = logging.getLogger(__name__)

# Final answers kept, so a finished task's GetTasks cost nothing; and the last answer of each unfinished task,
# which GetTask repeats (marked stale) when AWS fails.
FINISHED_ANSWERS_LIMIT = 2_000
LAST_ANSWERS_LIMIT = 20_000


@dataclass(frozen=True)
class NewTask:
    """A create request as a face decoded it: `translate` is the face's pure template translation, which raises
    `Rejection` naming the field of a template this service cannot run."""

    task_type: str
    output_prefix: str
    execution_id: str  # "<project>/<domain>/<name>", for messages and abort reasons
    translate: Callable[[Config], TaskSpec]
    face: Face.ValueType = FLYTE1


class TaskCore:
    def __init__(self, config: Config, api: AwsCalls, store: S3Store, submissions: Submissions,
                 engine: StatusEngine, metrics: Metrics, monitor: Monitor, logs: TaskLogs,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.api = api
        self.store = store
        self.submissions = submissions
        self.engine = engine
        self.metrics = metrics
        self._monitor = monitor
        self._logs = logs
        self._clock = clock
        self._finished: BoundedCache[str, TaskStatus] = BoundedCache(FINISHED_ANSWERS_LIMIT)
        self._last: BoundedCache[str, TaskStatus] = BoundedCache(LAST_ANSWERS_LIMIT)

    # -- create --------------------------------------------------------------------------------------
    async def create(self, task: NewTask, budget: float | None) -> bytes:
        """The resource meta of the attempt; raises TaskError(UNAVAILABLE) when its claim cannot be recorded
        now (the scheduler retries)."""
        meta = ResourceMeta(kind=ARRAY if task.task_type == CONTAINER_ARRAY else SINGLE, region=self.api.region,
                            output_prefix=task.output_prefix.rstrip("/"), execution_id=task.execution_id)
        if task.face != FLYTE1:
            meta.face = task.face  # Flyte 1 metas stay as they were before faces were recorded
        label = metric_label(task.task_type)
        try:
            spec = task.translate(self.config)
        except Rejection as rejection:
            log.info("rejected %s: %s", meta.execution_id, rejection.message)
            self.metrics.submissions.labels(label, "rejected").inc()
            meta.rejection = rejection.message
            return encode(meta)
        except Exception as exc:
            # Translation is a pure function of the request: what it cannot handle fails the same way on every
            # retry, so it is a permanent failure of this task, not an error that burns retries.
            log.exception("could not translate the template of %s", meta.execution_id)
            self.metrics.submissions.labels(label, "rejected").inc()
            meta.rejection = f"invalid task: the template could not be translated ({type(exc).__name__}: {exc})"
            return encode(meta)
        meta.queue = spec.queue
        meta.job_name = spec.job_name
        meta.output_names.extend(spec.output_names)
        if spec.is_array:
            meta.size = spec.size
            meta.min_successes = spec.min_successes
            if spec.size == 0:
                return encode(meta)
        # An AWS call that would outlive the caller's deadline is not started.
        deadline = self._clock() + budget if budget is not None else None
        # The submission worker finds or registers the job definition, so a throttled DescribeJobDefinitions
        # delays the submission instead of failing the create.
        definition = job_definition(spec, self.config, self.api.region)
        requests = submit_requests(spec, definition.name)
        try:
            outcome = await self.submissions.submit(spec.output_prefix, requests, spec.task_type, deadline,
                                                    definition=definition)
        except AwsRequestError as exc:
            meta.rejection = f"cannot record the submission under the output prefix: {exc.code}: {exc.message}"
            return encode(meta)
        except AwsUnavailable as exc:
            raise TaskError(Reason.UNAVAILABLE, f"AWS is unavailable: {exc}") from exc
        if isinstance(outcome, Submitted):
            meta.job_ids.extend(outcome.job_ids)
        elif isinstance(outcome, Refused):
            meta.rejection = outcome.message
        elif outcome.journal is not None:
            meta.journal = outcome.journal.uri
            meta.journal_entry = outcome.journal.entry
        return encode(meta)

    # -- get -----------------------------------------------------------------------------------------
    async def get(self, raw_meta: bytes, budget: float, face: Face.ValueType = FLYTE1) -> TaskStatus:
        """Always an answer: FAILED for a meta this service cannot use, the last known answer marked stale when
        AWS fails or is slow (or something unexpected happens), never an error."""
        try:
            meta = decode(raw_meta)
            check_face(meta, face)
        except MetaError as exc:
            return TaskStatus(Phase.FAILED, str(exc))
        if meta.rejection:
            return TaskStatus(Phase.FAILED, meta.rejection)
        key = meta.output_prefix
        finished = self._finished.get(key)
        if finished is not None:
            return finished
        try:
            status = await asyncio.wait_for(self._status(meta), budget)
        except TimeoutError:
            return self._stale(meta, f"AWS did not answer within {budget:.1f}s")
        except (AwsUnavailable, AwsRequestError) as exc:
            return self._stale(meta, f"AWS: {exc}")
        except Exception as exc:
            # A bug must not fail the task (the scheduler gives up after a few errors): answer what was last
            # known, marked stale, and log the cause.
            log.exception("GetTask of %s failed unexpectedly", key)
            return self._stale(meta, f"internal error: {type(exc).__name__}")
        if status.phase.terminal:
            self._finished.put(key, status)
            self._last.pop(key)
            self._monitor.forget(meta)
        else:
            self._last.put(key, status)
        return status

    def _stale(self, meta: ResourceMeta, why: str) -> TaskStatus:
        self.metrics.stale_answers.inc()
        last = self._last.get(meta.output_prefix)
        if last is None:
            return TaskStatus(Phase.QUEUED, f"status not available yet, retrying ({why})")
        return last.noted(f"status may be stale: {why}")

    async def _status(self, meta: ResourceMeta) -> TaskStatus:
        if meta.kind == ARRAY and meta.size == 0:
            out = await assemble_array_outputs(self.store, meta.output_prefix, 0, list(meta.output_names), 1)
            return TaskStatus(Phase.SUCCEEDED, "empty map task: nothing to run",
                              outputs=out.SerializeToString(deterministic=True))
        ids = await self._job_ids(meta)
        if isinstance(ids, TaskStatus):
            return ids
        return await self._monitor.status(meta, ids)

    async def _job_ids(self, meta: ResourceMeta) -> list[str] | TaskStatus:
        """The attempt's AWS job ids, or the answer to give while it has none."""
        if meta.job_ids:
            return list(meta.job_ids)
        outcome = await self.submissions.resolve(meta.output_prefix, journal=_journal_ref(meta))
        if isinstance(outcome, Submitted):
            return outcome.job_ids
        if isinstance(outcome, Refused):
            return TaskStatus(Phase.RETRYABLE_FAILED if outcome.retryable else Phase.FAILED, outcome.message)
        where = f", position {outcome.position}" if outcome.position else ""
        return TaskStatus(Phase.QUEUED, f"waiting to submit{where}: {outcome.detail}")

    # -- delete --------------------------------------------------------------------------------------
    async def delete(self, raw_meta: bytes, budget: float, face: Face.ValueType = FLYTE1) -> None:
        """Stop the attempt: never submitted if it was not yet, its jobs terminated otherwise. Idempotent; a meta
        this service cannot use has nothing to clean up. TaskError(UNAVAILABLE) when AWS fails (retry)."""
        try:
            meta = decode(raw_meta)
            check_face(meta, face)
        except MetaError as exc:
            log.info("DeleteTask of a resource meta this service cannot use, nothing to clean up: %s", exc)
            return
        if meta.rejection or (meta.kind == ARRAY and meta.size == 0):
            return
        try:
            await asyncio.wait_for(self._delete(meta), budget)
        except TimeoutError:
            raise TaskError(Reason.UNAVAILABLE, "AWS did not answer in time; retry the delete") from None
        except (AwsUnavailable, AwsRequestError) as exc:
            raise TaskError(Reason.UNAVAILABLE, f"AWS is unavailable: {exc}") from exc

    async def _delete(self, meta: ResourceMeta) -> None:
        reason = f"Aborted by Flyte ({meta.execution_id})"
        ids = list(meta.job_ids) or await self.submissions.cancel(meta.output_prefix, reason, _journal_ref(meta))
        await self.engine.terminate(ids, reason, again=True)

    # -- logs ----------------------------------------------------------------------------------------
    async def logs(self, raw_meta: bytes, child: int | None, lines: int, token: str, budget: float,
                   face: Face.ValueType = FLYTE1) -> LogPage:
        try:
            meta = decode(raw_meta)
            check_face(meta, face)
        except MetaError as exc:
            raise TaskError(Reason.INVALID_ARGUMENT, str(exc)) from None
        if meta.rejection:
            raise TaskError(Reason.FAILED_PRECONDITION, f"no jobs, the task was rejected: {meta.rejection}")
        if meta.kind == ARRAY and meta.size == 0:
            raise TaskError(Reason.NOT_FOUND, "an empty map task runs no jobs, so it has no logs")
        try:
            return await asyncio.wait_for(self._read_logs(meta, child, lines, token), budget)
        except TimeoutError:
            raise TaskError(Reason.UNAVAILABLE, "AWS did not answer in time; retry") from None

    async def _read_logs(self, meta: ResourceMeta, child: int | None, lines: int, token: str) -> LogPage:
        try:
            ids = await self._job_ids(meta)
        except (AwsUnavailable, AwsRequestError) as exc:
            raise TaskError(Reason.UNAVAILABLE, f"AWS is unavailable: {exc}") from exc
        if isinstance(ids, TaskStatus):
            raise TaskError(Reason.FAILED_PRECONDITION, ids.message)
        return await self._logs.page(meta, ids, child, lines, token)


def _journal_ref(meta: ResourceMeta) -> JournalRef | None:
    return JournalRef(meta.journal, meta.journal_entry) if meta.journal else None
