"""From the AWS jobs of a task to the answer GetTask gives (what Go's `monitor.go` is).

The status engine says what AWS Batch last said of each job; the monitor decides what that means for the
Flyte task, under named policies: how long a job AWS does not know may stay missing, how long a job may wait
RUNNABLE on a misconfiguration before the task fails, and how long a failing array waits for its failed
children's errors. It reads outputs and error documents, and stops what a verdict ends (one termination path,
the engine's). Time comes from an injected clock, the engine's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flyteidl.core import literals_pb2

from aws_array_plugin import batch_ids, error_summary, log_links, outputs, phases
from aws_array_plugin.bounded import BoundedCache
from aws_array_plugin.config import Config
from aws_array_plugin.metrics import Metrics
from aws_array_plugin.resource_meta import SINGLE, ResourceMeta, task_prefix
from aws_array_plugin.status_engine import StatusEngine, TrackedJob
from aws_array_plugin.storage import S3Store
from aws_array_plugin.task_status import LogLink, Phase, TaskStatus

# Arrays being failed at once whose first failing moment is remembered (for the failure-details wait).
FAILING_ARRAYS_LIMIT = 20_000


@dataclass(frozen=True)
class MonitorPolicy:
    """The named policies, from config `status` and `outputs`."""

    missing_job_grace: float
    misconfiguration_dwell: float
    failure_details_wait: float
    failed_child_details: int
    running_child_links: int
    inline_max_bytes: int
    read_concurrency: int
    max_error_documents: int
    max_error_length: int
    default_log_group: str

    @classmethod
    def from_config(cls, config: Config) -> MonitorPolicy:
        s, o = config.status, config.outputs
        return cls(missing_job_grace=s.missing_job_grace, misconfiguration_dwell=s.misconfiguration_dwell,
                   failure_details_wait=s.failure_details_wait, failed_child_details=s.failed_child_details,
                   running_child_links=s.running_child_links, inline_max_bytes=o.inline_max_bytes,
                   read_concurrency=o.read_concurrency, max_error_documents=o.max_error_documents,
                   max_error_length=o.max_error_length, default_log_group=config.job_definitions.log_group)


class Monitor:
    def __init__(self, engine: StatusEngine, store: S3Store, policy: MonitorPolicy, metrics: Metrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._store = store
        self._policy = policy
        self._metrics = metrics
        self._clock = clock
        self._failing_since: BoundedCache[str, float] = BoundedCache(FAILING_ARRAYS_LIMIT)

    def forget(self, meta: ResourceMeta) -> None:
        """The task's answer is final: nothing more to remember about it."""
        self._failing_since.pop(meta.output_prefix)

    async def status(self, meta: ResourceMeta, job_ids: Sequence[str]) -> TaskStatus:
        jobs = await self._engine.jobs(job_ids)
        stale = next((j.error for j in jobs if j.error), None)
        slow = [j for j in jobs if j.refreshing and j.detail is not None]
        if stale is None and slow:
            stale = f"no answer from AWS Batch yet, last status {int(self._engine.age(slow[0]))}s old"
        if any(j.detail is None for j in jobs):
            return self._undescribed(meta, jobs, stale)
        gone = self._gone(jobs)
        if gone is not None:
            # Known to this replica (it submitted or described the job), but AWS no longer returns it.
            return TaskStatus(Phase.RETRYABLE_FAILED,
                              f"AWS Batch does not know job {gone.job_id} in {meta.region} (expired or deleted)")
        status = await self._single(meta, jobs[0]) if meta.kind == SINGLE else await self._array(meta, jobs)
        if stale and not status.phase.terminal:
            self._metrics.stale_answers.inc()
            status = status.noted(f"status may be stale: AWS: {stale}")
        return status

    def _undescribed(self, meta: ResourceMeta, jobs: list[TrackedJob], stale: str | None) -> TaskStatus:
        """Some job has no detail yet: just submitted, AWS failing, or a job AWS does not know."""
        if stale:
            self._metrics.stale_answers.inc()
            return TaskStatus(Phase.QUEUED, f"submitted; status not available yet (AWS: {stale})")
        gone = self._gone(jobs)
        if gone is not None:
            return TaskStatus(Phase.RETRYABLE_FAILED,
                              f"AWS Batch does not know job {gone.job_id} in {meta.region} (expired or deleted)")
        if any(j.refreshing for j in jobs):
            return TaskStatus(Phase.QUEUED, "submitted; waiting for AWS Batch to describe the job")
        return TaskStatus(Phase.QUEUED, "submitted; AWS Batch does not list the job yet")

    def _gone(self, jobs: list[TrackedJob]) -> TrackedJob | None:
        """A job DescribeJobs has not returned for longer than the missing-job grace."""
        now = self._clock()
        return next((j for j in jobs if j.missing_since is not None
                     and now - j.missing_since > self._policy.missing_job_grace), None)

    # -- single jobs ---------------------------------------------------------------------------------
    def _single_links(self, meta: ResourceMeta, job: TrackedJob) -> tuple[LogLink, ...]:
        return tuple(log_links.single_job_links(meta.region, job.job_id, job.detail,
                                                default_log_group=self._policy.default_log_group))

    async def _single(self, meta: ResourceMeta, job: TrackedJob) -> TaskStatus:
        assert job.detail is not None
        links = self._single_links(meta, job)
        prefix = task_prefix(meta)
        if job.status == "FAILED":
            doc = await outputs.read_error_document(self._store, prefix)
            verdict = phases.failure(job.detail, doc)
            return TaskStatus(verdict.phase, verdict.message, links)
        if job.status == "SUCCEEDED":
            out = await outputs.read_outputs(self._store, prefix)
            if out is None:
                doc = await outputs.read_error_document(self._store, prefix)
                if doc is not None:
                    verdict = phases.failure(job.detail, doc)
                    return TaskStatus(verdict.phase, verdict.message, links)
                if meta.output_names:
                    return TaskStatus(Phase.RETRYABLE_FAILED, f"the job succeeded but wrote no {prefix}/outputs.pb",
                                      links)
                return TaskStatus(Phase.SUCCEEDED, "succeeded", links)
            return await self._succeed(meta, out, "succeeded", links)
        blocked = await self._blocked_too_long(job)
        if blocked:
            return TaskStatus(Phase.FAILED, blocked, links)
        verdict = phases.progress(job.detail)
        return TaskStatus(verdict.phase, verdict.message, links)

    async def _blocked_too_long(self, job: TrackedJob) -> str | None:
        """A job RUNNABLE on a misconfiguration past the dwell: terminated, and the reason returned."""
        if job.blocked_since is None:
            return None
        blocked_for = self._clock() - job.blocked_since
        if not phases.misconfigured_too_long(job.blocked_reason, blocked_for, self._policy.misconfiguration_dwell):
            return None
        reason = f"aws-array-plugin: RUNNABLE for {int(blocked_for)}s with {job.blocked_reason}"
        await self._engine.terminate([job.job_id], reason)
        return reason

    async def _succeed(self, meta: ResourceMeta, out: literals_pb2.LiteralMap, message: str,
                       links: tuple[LogLink, ...], custom: dict[str, Any] | None = None) -> TaskStatus:
        data = out.SerializeToString(deterministic=True)
        if len(data) <= self._policy.inline_max_bytes:
            return TaskStatus(Phase.SUCCEEDED, message, links, outputs=data, custom=custom)
        # Too big to answer inline under the 4 MiB gRPC limit: the scheduler reads <prefix>/outputs.pb itself.
        await self._store.write(f"{meta.output_prefix}/outputs.pb", data)
        return TaskStatus(Phase.SUCCEEDED, message, links, custom=custom)

    # -- arrays --------------------------------------------------------------------------------------
    async def _array(self, meta: ResourceMeta, jobs: list[TrackedJob]) -> TaskStatus:
        parts = [(c.size, j.detail or {}) for c, j in batch_ids.chunks_with(meta.size, jobs)]
        counts = phases.array_counts(parts)
        verdict = phases.array_verdict(counts, meta.min_successes)
        custom = {"children": counts.as_dict(), "minSuccesses": meta.min_successes}
        final = verdict.phase in (Phase.FAILED, Phase.SUCCEEDED)  # a final answer names the failed children
        failed_children = await self._failed_children(meta, jobs, final) if counts.failed else []
        if verdict.phase == Phase.FAILED:
            unfinished = [j.job_id for j in jobs if not j.terminal]
            if unfinished:
                await self._engine.terminate(unfinished, f"aws-array-plugin: {verdict.message}")
            # Permanent or retryable depends on why the children failed: wait (a bounded time) until that is
            # known rather than guess; the answer is final once given.
            since = self._failing_since.get(meta.output_prefix)
            if since is None:
                since = self._clock()
                self._failing_since.put(meta.output_prefix, since)
            known_enough = len(failed_children) >= min(counts.failed, self._policy.failed_child_details)
            if meta.size > 1 and not known_enough and self._clock() - since < self._policy.failure_details_wait:
                return TaskStatus(Phase.RUNNING, f"{verdict.message}; collecting the failed children's errors",
                                  self._array_links(meta, jobs, failed_children), custom=custom)
            return await self._array_failure(meta, jobs, verdict.message, failed_children, custom)
        running = await self._running_children(meta, jobs, counts.running)
        links = self._array_links(meta, jobs, failed_children + running)
        if verdict.phase == Phase.SUCCEEDED:
            out = await outputs.assemble_array_outputs(self._store, meta.output_prefix, meta.size,
                                                       list(meta.output_names), self._policy.read_concurrency)
            return await self._succeed(meta, out, verdict.message, links, custom)
        message = verdict.message
        if counts.running == 0 and counts.starting == 0 and counts.terminal == 0 and meta.size > 1:
            for job in jobs:
                reason = self._engine.blocked_children_reason(job)
                if reason is None or job.child_blocked_since is None:
                    continue
                message = f"RUNNABLE: {reason}; {message}"
                blocked_for = self._clock() - job.child_blocked_since
                if phases.misconfigured_too_long(reason, blocked_for, self._policy.misconfiguration_dwell):
                    why = f"aws-array-plugin: children RUNNABLE for {int(blocked_for)}s with {reason}"
                    await self._engine.terminate([j.job_id for j in jobs if not j.terminal], why)
                    return TaskStatus(Phase.FAILED, why, links, custom=custom)
                break
        elif meta.size == 1:
            blocked = await self._blocked_too_long(jobs[0])
            if blocked:
                return TaskStatus(Phase.FAILED, blocked, links, custom=custom)
        return TaskStatus(verdict.phase, message, links, custom=custom)

    def _array_links(self, meta: ResourceMeta, jobs: list[TrackedJob], children: list[dict[str, Any]]
                     ) -> tuple[LogLink, ...]:
        if meta.size == 1:
            return self._single_links(meta, jobs[0])
        links: list[LogLink] = []
        for i, job in enumerate(jobs):
            mine = [c for c in children if batch_ids.is_child_of(str(c.get("jobId", "")), job.job_id)]
            part = log_links.array_job_links(meta.region, job.job_id, mine,
                                             default_log_group=self._policy.default_log_group)
            if len(jobs) > 1:
                part = [LogLink(f"{link.name} [part {i + 1}/{len(jobs)}]", link.uri, link.show_while_pending)
                        for link in part]
            links.extend(part)
        return tuple(links)

    async def _failed_children(self, meta: ResourceMeta, jobs: list[TrackedJob], wait: bool) -> list[dict[str, Any]]:
        """Failed children, each with its Flyte (global) index in arrayProperties.index."""
        if meta.size == 1:
            detail = dict(jobs[0].detail or {})
            detail["arrayProperties"] = {"index": 0}
            return [detail] if jobs[0].status == "FAILED" else []
        limit = self._policy.failed_child_details
        result: list[dict[str, Any]] = []
        for chunk, job in batch_ids.chunks_with(meta.size, jobs):
            if job.detail is None:
                continue
            summary = batch_ids.status_summary(job.detail)
            n = summary.get("FAILED", 0) if job.status != "FAILED" else summary.get("FAILED", chunk.size)
            if n <= 0:
                continue
            for child in await self._engine.failed_children(job, n, limit, wait=wait):
                result.append(batch_ids.with_global_index(child, chunk))
        return result

    async def _running_children(self, meta: ResourceMeta, jobs: list[TrackedJob], running: int
                                ) -> list[dict[str, Any]]:
        k = self._policy.running_child_links
        if running <= 0 or k <= 0 or meta.size == 1:
            return []
        sample: list[dict[str, Any]] = []
        for chunk, job in batch_ids.chunks_with(meta.size, jobs):
            if batch_ids.status_summary(job.detail).get("RUNNING", 0) > 0 and len(sample) < k:
                for child in await self._engine.running_children(job, k - len(sample)):
                    sample.append(batch_ids.with_global_index(child, chunk))
        return sample

    async def _array_failure(self, meta: ResourceMeta, jobs: list[TrackedJob], headline: str,
                             failed_children: list[dict[str, Any]], custom: dict[str, Any]) -> TaskStatus:
        indexes = [int(c["arrayProperties"]["index"]) for c in failed_children]
        docs = await asyncio.gather(*(
            outputs.read_error_document(self._store, outputs.child_prefix(meta.output_prefix, i))
            for i in indexes[:self._policy.max_error_documents]))
        verdicts = [phases.failure(c, docs[n] if n < len(docs) else None) for n, c in enumerate(failed_children)]
        lines = [(i, error_summary.first_line_of_error(v.message)) for i, v in zip(indexes, verdicts, strict=True)]
        summary = error_summary.summarize(lines, self._policy.max_error_length)
        permanent = bool(verdicts) and all(v.phase == Phase.FAILED for v in verdicts)
        return TaskStatus(Phase.FAILED if permanent else Phase.RETRYABLE_FAILED, f"{headline}\n{summary}".strip(),
                          self._array_links(meta, jobs, failed_children), custom=custom)
