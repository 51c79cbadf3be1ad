"""The RPCs propeller calls (flyteidl.service.AsyncAgentService), one thin method each.

CreateTask never raises for a bad template (a rejection is recorded in the resource meta and reported
as FAILED by GetTask: an error would burn a task retry). GetTask never raises because AWS misbehaves:
it answers the last known phase and says the status is stale.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2
from flyteidl.service import agent_pb2_grpc
from google.protobuf import struct_pb2, timestamp_pb2

from aws_array_plugin import error_summary, log_links, outputs, phases
from aws_array_plugin.aws_calls import AwsApi, AwsRequestError, AwsUnavailable
from aws_array_plugin.config import Config
from aws_array_plugin.job_requests import array_chunks, job_definition, submit_requests
from aws_array_plugin.metrics import Metrics
from aws_array_plugin.resource_meta import ARRAY, SINGLE, MetaError, ResourceMeta, decode, encode
from aws_array_plugin.status_engine import StatusEngine, TrackedJob
from aws_array_plugin.storage import S3Store
from aws_array_plugin.submission_journal import JournalRef
from aws_array_plugin.submissions import Refused, Submissions, Submitted
from aws_array_plugin.task_specs import Rejection, build_task_spec
from aws_array_plugin.task_types import CONTAINER_ARRAY, metric_label

log = logging.getLogger(__name__)

Phase = execution_pb2.TaskExecution
_T = TypeVar("_T")
CHILD_INDEX_METADATA = "child-index"
NO_DEADLINE_BUDGET = 30.0  # seconds, for a caller that sets no deadline (propeller always does)


@dataclass
class Deps:
    config: Config
    api: AwsApi
    store: S3Store
    submissions: Submissions
    engine: StatusEngine
    metrics: Metrics


def _resource(phase: int, message: str = "", *, links: list[execution_pb2.TaskLog] | None = None,
              custom: dict[str, Any] | None = None, out: literals_pb2.LiteralMap | None = None) -> agent_pb2.Resource:
    r = agent_pb2.Resource(phase=phase, message=message[:8000])
    if links:
        r.log_links.extend(links)
    if custom:
        s = struct_pb2.Struct()
        s.update(custom)
        r.custom_info.CopyFrom(s)
    if out is not None:
        r.outputs.CopyFrom(out)
    return r


class RpcFailure(Exception):
    """An answer given as a gRPC status on purpose (bad input, nothing there yet, AWS unavailable)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def _abort(context: grpc.aio.ServicerContext, method: str, exc: Exception) -> None:
    """End an RPC with a status chosen on purpose: an RpcFailure's, else UNAVAILABLE for what nobody
    anticipated (logged once with its traceback), never gRPC's UNKNOWN."""
    if isinstance(exc, RpcFailure):
        await context.abort(exc.code, exc.message)
    log.error("%s failed unexpectedly", method, exc_info=exc)
    await context.abort(grpc.StatusCode.UNAVAILABLE,
                        f"aws-array-plugin could not answer {method} ({type(exc).__name__}); retry later")


class AgentService(agent_pb2_grpc.AsyncAgentServiceServicer):  # type: ignore[misc]
    def __init__(self, deps: Deps) -> None:
        self.d = deps
        self._finished: OrderedDict[str, bytes] = OrderedDict()
        # The last answer of each unfinished task: what GetTask repeats (marked stale) when AWS fails.
        self._last: OrderedDict[str, agent_pb2.Resource] = OrderedDict()  # never mutated once stored
        self._failing_since: dict[str, float] = {}

    async def _measured(self, method: str, task_type: str, body: Callable[[], Awaitable[_T]]) -> _T:
        started = time.monotonic()
        outcome = "error"
        try:
            result = await body()
            outcome = "ok"
            return result
        finally:
            label = metric_label(task_type)
            self.d.metrics.rpc_requests.labels(method, label, outcome).inc()
            self.d.metrics.rpc_latency.labels(method, label).observe(time.monotonic() - started)

    # -- CreateTask ----------------------------------------------------------------------------------
    async def CreateTask(self, request: agent_pb2.CreateTaskRequest, context: grpc.aio.ServicerContext
                         ) -> agent_pb2.CreateTaskResponse:
        task_type = request.template.type or "unknown"
        try:
            meta = await self._measured("CreateTask", task_type, lambda: self._create(request, context))
        except Exception as exc:
            await _abort(context, "CreateTask", exc)
            raise
        return agent_pb2.CreateTaskResponse(resource_meta=encode(meta))

    async def _create(self, request: agent_pb2.CreateTaskRequest, context: grpc.aio.ServicerContext) -> ResourceMeta:
        cfg = self.d.config
        tid = request.task_execution_metadata.task_execution_id
        ex = tid.node_execution_id.execution_id
        meta = ResourceMeta(
            kind=ARRAY if request.template.type == CONTAINER_ARRAY else SINGLE,
            region=self.d.api.region,
            output_prefix=request.output_prefix.rstrip("/"),
            execution_id=f"{ex.project}/{ex.domain}/{ex.name}",
        )
        try:
            spec = build_task_spec(request, cfg)
        except Rejection as rejection:
            log.info("rejected %s: %s", meta.execution_id, rejection.message)
            self.d.metrics.submissions.labels(metric_label(request.template.type), "rejected").inc()
            meta.rejection = rejection.message
            return meta
        except Exception as exc:
            # Translation is a pure function of the request: what it cannot handle fails the same way on every
            # retry, so it is a permanent failure of this task, not an error that burns retries.
            log.exception("could not translate the template of %s", meta.execution_id)
            self.d.metrics.submissions.labels(metric_label(request.template.type), "rejected").inc()
            meta.rejection = f"invalid task: the template could not be translated ({type(exc).__name__}: {exc})"
            return meta
        meta.queue = spec.queue
        meta.job_name = spec.job_name
        meta.output_names.extend(spec.output_names)
        if spec.is_array:
            meta.size = spec.size
            meta.min_successes = spec.min_successes
            if spec.size == 0:
                return meta
        remaining = context.time_remaining()
        # Leave a margin to answer: an AWS call that would outlive propeller's deadline is not started.
        deadline = time.monotonic() + max(0.5, remaining * 0.8) if remaining else None
        # The submission worker finds or registers the job definition: CreateTask makes one AWS call (the
        # claim), and a throttled DescribeJobDefinitions delays the submission instead of failing the call.
        definition = job_definition(spec, cfg, self.d.api.region)
        requests = submit_requests(spec, definition.name)
        try:
            outcome = await self.d.submissions.submit(spec.output_prefix, [r["jobName"] for r in requests], requests,
                                                      spec.task_type, deadline, definition=definition)
        except AwsRequestError as exc:
            meta.rejection = f"cannot record the submission under the output prefix: {exc.code}: {exc.message}"
            return meta
        except AwsUnavailable as exc:
            raise RpcFailure(grpc.StatusCode.UNAVAILABLE, f"AWS is unavailable: {exc}") from exc
        if isinstance(outcome, Submitted):
            meta.job_ids.extend(outcome.job_ids)
        elif isinstance(outcome, Refused):
            meta.rejection = outcome.message
        elif outcome.journal is not None:
            meta.journal = outcome.journal.uri
            meta.journal_entry = outcome.journal.entry
        return meta

    # -- GetTask -------------------------------------------------------------------------------------
    async def GetTask(self, request: agent_pb2.GetTaskRequest, context: grpc.aio.ServicerContext
                      ) -> agent_pb2.GetTaskResponse:
        task_type = request.task_category.name or request.task_type or "unknown"
        resource = await self._measured("GetTask", task_type,
                                        lambda: self._get_guarded(request.resource_meta, _budget(context)))
        return agent_pb2.GetTaskResponse(resource=resource)

    async def _get_guarded(self, raw_meta: bytes, budget: float) -> agent_pb2.Resource:
        try:
            meta = decode(raw_meta)
        except MetaError as exc:
            return _resource(Phase.FAILED, str(exc))
        try:
            return await asyncio.wait_for(self._get(meta), budget)
        except TimeoutError:
            return self._stale(meta, f"AWS did not answer within {budget:.1f}s")
        except Exception as exc:
            # A bug must not fail the task (propeller gives up after a few GetTask errors): answer what was last
            # known, marked stale, and log the cause once per call.
            log.exception("GetTask of %s failed unexpectedly", meta.output_prefix)
            return self._stale(meta, f"internal error: {type(exc).__name__}")

    def _stale(self, meta: ResourceMeta, why: str) -> agent_pb2.Resource:
        self.d.metrics.stale_answers.inc()
        last = self._last.get(meta.output_prefix)
        if last is None:
            return _resource(Phase.QUEUED, f"status not available yet, retrying ({why})")
        stale = agent_pb2.Resource()
        stale.CopyFrom(last)
        stale.message = f"{stale.message} [status may be stale: {why}]"
        return stale

    async def _get(self, meta: ResourceMeta) -> agent_pb2.Resource:
        if meta.rejection:
            return _resource(Phase.FAILED, meta.rejection)
        cached = self._finished.get(meta.output_prefix)
        if cached is not None:
            return agent_pb2.Resource.FromString(cached)
        if meta.kind == ARRAY and meta.size == 0:
            out = await outputs.assemble_array_outputs(self.d.store, meta.output_prefix, 0, list(meta.output_names), 1)
            return _resource(Phase.SUCCEEDED, "empty map task: nothing to run", out=out)
        try:
            resource = await self._get_status(meta)
        except (AwsUnavailable, AwsRequestError) as exc:
            return self._stale(meta, f"AWS: {exc}")
        key = meta.output_prefix
        if resource.phase in phases.TERMINAL_PHASES:
            self._finished[key] = resource.SerializeToString()
            self._last.pop(key, None)
            self._failing_since.pop(key, None)
            while len(self._finished) > 2000:
                self._finished.popitem(last=False)
        else:
            self._last[key] = resource
            self._last.move_to_end(key)
            while len(self._last) > 20_000:
                self._last.popitem(last=False)
        return resource

    async def _job_ids(self, meta: ResourceMeta) -> list[str] | agent_pb2.Resource:
        if meta.job_ids:
            return list(meta.job_ids)
        outcome = await self.d.submissions.resolve(meta.output_prefix, journal=_journal_ref(meta))
        if isinstance(outcome, Submitted):
            return outcome.job_ids
        if isinstance(outcome, Refused):
            return _resource(Phase.RETRYABLE_FAILED if outcome.retryable else Phase.FAILED, outcome.message)
        where = f", position {outcome.position}" if outcome.position else ""
        return _resource(Phase.QUEUED, f"waiting to submit{where}: {outcome.detail}")

    async def _get_status(self, meta: ResourceMeta) -> agent_pb2.Resource:
        ids = await self._job_ids(meta)
        if isinstance(ids, agent_pb2.Resource):
            return ids
        jobs = await self.d.engine.jobs(ids)
        stale = next((j.error for j in jobs if j.error), None)
        slow = [j for j in jobs if j.refreshing and j.detail is not None]
        if stale is None and slow:
            stale = f"no answer from AWS Batch yet, last status {int(self.d.engine.age(slow[0]))}s old"
        if any(j.detail is None for j in jobs):
            if stale:
                self.d.metrics.stale_answers.inc()
                return _resource(Phase.QUEUED, f"submitted; status not available yet (AWS: {stale})")
            gone = [j for j in jobs if j.missing_since is not None
                    and time.monotonic() - j.missing_since > self.d.config.status.missing_job_grace]
            if gone:
                return _resource(Phase.RETRYABLE_FAILED,
                                 f"AWS Batch does not know job {gone[0].job_id} in {meta.region} (expired or deleted)")
            if any(j.refreshing for j in jobs):
                return _resource(Phase.QUEUED, "submitted; waiting for AWS Batch to describe the job")
            return _resource(Phase.QUEUED, "submitted; AWS Batch does not list the job yet")
        if meta.kind == SINGLE:
            resource = await self._single(meta, jobs[0])
        else:
            resource = await self._array(meta, jobs)
        if stale and resource.phase not in phases.TERMINAL_PHASES:
            self.d.metrics.stale_answers.inc()
            resource.message = f"{resource.message} [status may be stale: AWS: {stale}]"
        return resource

    def _links_single(self, meta: ResourceMeta, job: TrackedJob) -> list[execution_pb2.TaskLog]:
        return log_links.single_job_links(meta.region, job.job_id, job.detail,
                                          default_log_group=self.d.config.job_definitions.log_group)

    async def _blocked_too_long(self, job: TrackedJob) -> str | None:
        if job.blocked_since is None:
            return None
        blocked_for = time.monotonic() - job.blocked_since
        dwell = self.d.config.status.misconfiguration_dwell
        if not phases.misconfigured_too_long(job.blocked_reason, blocked_for, dwell):
            return None
        reason = f"aws-array-plugin: RUNNABLE for {int(blocked_for)}s with {job.blocked_reason}"
        await self.d.engine.terminate([job.job_id], reason)
        return reason

    async def _single(self, meta: ResourceMeta, job: TrackedJob) -> agent_pb2.Resource:
        assert job.detail is not None
        links = self._links_single(meta, job)
        status = job.status
        prefix = outputs.child_prefix(meta.output_prefix, 0)
        if status == "FAILED":
            doc = await outputs.read_error_document(self.d.store, prefix)
            verdict = phases.failure(job.detail, doc)
            return _resource(verdict.phase, verdict.message, links=links)
        if status == "SUCCEEDED":
            out = await outputs.read_outputs(self.d.store, prefix)
            if out is None:
                doc = await outputs.read_error_document(self.d.store, prefix)
                if doc is not None:
                    verdict = phases.failure(job.detail, doc)
                    return _resource(verdict.phase, verdict.message, links=links)
                if meta.output_names:
                    return _resource(Phase.RETRYABLE_FAILED,
                                     f"the job succeeded but wrote no {prefix}/outputs.pb", links=links)
                return _resource(Phase.SUCCEEDED, "succeeded", links=links)
            return await self._succeed(meta, out, "succeeded", links)
        blocked = await self._blocked_too_long(job)
        if blocked:
            return _resource(Phase.FAILED, blocked, links=links)
        verdict = phases.progress(job.detail)
        return _resource(verdict.phase, verdict.message, links=links)

    async def _succeed(self, meta: ResourceMeta, out: literals_pb2.LiteralMap, message: str,
                       links: list[execution_pb2.TaskLog], custom: dict[str, Any] | None = None) -> agent_pb2.Resource:
        if out.ByteSize() <= self.d.config.outputs.inline_max_bytes:
            return _resource(Phase.SUCCEEDED, message, links=links, out=out, custom=custom)
        # Too big to answer inline under the 4 MiB gRPC limit: propeller reads <prefix>/outputs.pb itself.
        await self.d.store.write(f"{meta.output_prefix}/outputs.pb", out.SerializeToString(deterministic=True))
        return _resource(Phase.SUCCEEDED, message, links=links, custom=custom)

    async def _array(self, meta: ResourceMeta, jobs: list[TrackedJob]) -> agent_pb2.Resource:
        chunks = array_chunks(meta.size)
        parts = [(c.size, j.detail or {}) for c, j in zip(chunks, jobs, strict=False)]
        counts = phases.array_counts(parts)
        verdict = phases.array_verdict(counts, meta.min_successes)
        custom = {"children": counts.as_dict(), "minSuccesses": meta.min_successes}
        final = verdict.phase in (Phase.FAILED, Phase.SUCCEEDED)  # a final answer names the failed children
        failed_children = await self._failed_children(meta, jobs, counts.failed, final) if counts.failed else []
        if verdict.phase == Phase.FAILED:
            unfinished = [j.job_id for j in jobs if not j.terminal]
            if unfinished:
                await self.d.engine.terminate(unfinished, f"aws-array-plugin: {verdict.message}"[:1000])
            # The outcome (permanent or retryable) depends on why the children failed: wait (a bounded
            # time) until they are known rather than guess; the answer is final once given.
            since = self._failing_since.setdefault(meta.output_prefix, time.monotonic())
            known_enough = len(failed_children) >= min(counts.failed, self.d.config.status.failed_child_details)
            if meta.size > 1 and not known_enough and time.monotonic() - since < 120:
                return _resource(Phase.RUNNING, f"{verdict.message}; collecting the failed children's errors",
                                 links=self._links_array(meta, jobs, failed_children), custom=custom)
            return await self._array_failure(meta, jobs, verdict.message, failed_children, custom)
        running = await self._running_children(meta, jobs, counts.running)
        links = self._links_array(meta, jobs, failed_children + running)
        if verdict.phase == Phase.SUCCEEDED:
            out = await outputs.assemble_array_outputs(self.d.store, meta.output_prefix, meta.size,
                                                       list(meta.output_names), self.d.config.outputs.read_concurrency)
            return await self._succeed(meta, out, verdict.message, links, custom)
        message = verdict.message
        if counts.running == 0 and counts.starting == 0 and counts.terminal == 0 and meta.size > 1:
            for job in jobs:
                reason = self.d.engine.blocked_children_reason(job)
                if reason is None or job.child_blocked_since is None:
                    continue
                message = f"RUNNABLE: {reason}; {message}"
                blocked_for = time.monotonic() - job.child_blocked_since
                if phases.misconfigured_too_long(reason, blocked_for, self.d.config.status.misconfiguration_dwell):
                    why = f"aws-array-plugin: children RUNNABLE for {int(blocked_for)}s with {reason}"
                    await self.d.engine.terminate([j.job_id for j in jobs if not j.terminal], why)
                    return _resource(Phase.FAILED, why, links=links, custom=custom)
                break
        elif meta.size == 1:
            blocked = await self._blocked_too_long(jobs[0])
            if blocked:
                return _resource(Phase.FAILED, blocked, links=links, custom=custom)
        return _resource(verdict.phase, message, links=links, custom=custom)

    def _links_array(self, meta: ResourceMeta, jobs: list[TrackedJob], children: list[dict[str, Any]]
                     ) -> list[execution_pb2.TaskLog]:
        group = self.d.config.job_definitions.log_group
        if meta.size == 1:
            return self._links_single(meta, jobs[0])
        links: list[execution_pb2.TaskLog] = []
        for i, job in enumerate(jobs):
            mine = [c for c in children if str(c.get("jobId", "")).startswith(f"{job.job_id}:")]
            part = log_links.array_job_links(meta.region, job.job_id, mine, default_log_group=group)
            if len(jobs) > 1:
                for link in part:
                    link.name = f"{link.name} [part {i + 1}/{len(jobs)}]"
            links.extend(part)
        return links

    async def _failed_children(self, meta: ResourceMeta, jobs: list[TrackedJob],
                               failed: int, wait: bool) -> list[dict[str, Any]]:
        """Failed children with their global index in arrayProperties.index."""
        if meta.size == 1:
            detail = dict(jobs[0].detail or {})
            detail["arrayProperties"] = {"index": 0}
            return [detail] if jobs[0].status == "FAILED" else []
        limit = self.d.config.status.failed_child_details
        result: list[dict[str, Any]] = []
        for chunk, job in zip(array_chunks(meta.size), jobs, strict=False):
            if job.detail is None:
                continue
            summary = (job.detail.get("arrayProperties") or {}).get("statusSummary") or {}
            n = int(summary.get("FAILED", 0)) if job.status != "FAILED" else int(summary.get("FAILED", chunk.size))
            if n <= 0:
                continue
            for child in await self.d.engine.failed_children(job, n, limit, wait=wait):
                c = dict(child)
                local = (c.get("arrayProperties") or {}).get("index")
                if local is None:
                    local = int(str(c.get("jobId", ":0")).rsplit(":", 1)[1])
                c["arrayProperties"] = {"index": chunk.offset + int(local)}
                result.append(c)
        return result

    async def _running_children(self, meta: ResourceMeta, jobs: list[TrackedJob],
                                running: int) -> list[dict[str, Any]]:
        k = self.d.config.status.running_child_links
        if running <= 0 or k <= 0 or meta.size == 1:
            return []
        sample: list[dict[str, Any]] = []
        for chunk, job in zip(array_chunks(meta.size), jobs, strict=False):
            summary = ((job.detail or {}).get("arrayProperties") or {}).get("statusSummary") or {}
            if int(summary.get("RUNNING", 0)) > 0 and len(sample) < k:
                for child in await self.d.engine.running_children(job, k - len(sample)):
                    c = dict(child)
                    local = int(str(c.get("jobId", ":0")).rsplit(":", 1)[1])
                    c["arrayProperties"] = {"index": chunk.offset + local}
                    sample.append(c)
        return sample

    async def _array_failure(self, meta: ResourceMeta, jobs: list[TrackedJob], headline: str,
                             failed_children: list[dict[str, Any]], custom: dict[str, Any]) -> agent_pb2.Resource:
        max_docs = self.d.config.outputs.max_error_documents
        indexes = [int(c["arrayProperties"]["index"]) for c in failed_children]
        docs = await asyncio.gather(*(
            outputs.read_error_document(self.d.store, outputs.child_prefix(meta.output_prefix, i))
            for i in indexes[:max_docs]))
        verdicts = [phases.failure(c, docs[n] if n < len(docs) else None) for n, c in enumerate(failed_children)]
        lines = [(i, error_summary.first_line_of_error(v.message)) for i, v in zip(indexes, verdicts, strict=True)]
        summary = error_summary.summarize(lines, self.d.config.outputs.max_error_length)
        permanent = bool(verdicts) and all(v.phase == Phase.FAILED for v in verdicts)
        links = self._links_array(meta, jobs, failed_children)
        return _resource(Phase.FAILED if permanent else Phase.RETRYABLE_FAILED,
                         f"{headline}\n{summary}".strip(), links=links, custom=custom)

    # -- DeleteTask ----------------------------------------------------------------------------------
    async def DeleteTask(self, request: agent_pb2.DeleteTaskRequest, context: grpc.aio.ServicerContext
                         ) -> agent_pb2.DeleteTaskResponse:
        task_type = request.task_category.name or request.task_type or "unknown"
        try:
            await self._measured("DeleteTask", task_type,
                                 lambda: asyncio.wait_for(self._delete(request.resource_meta), _budget(context)))
        except TimeoutError:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "AWS did not answer in time; retry DeleteTask")
        except Exception as exc:
            await _abort(context, "DeleteTask", exc)
            raise
        return agent_pb2.DeleteTaskResponse()

    async def _delete(self, raw_meta: bytes) -> None:
        try:
            meta = decode(raw_meta)
        except MetaError as exc:
            log.info("DeleteTask of a resource meta this service cannot use, nothing to clean up: %s", exc)
            return
        if meta.rejection or (meta.kind == ARRAY and meta.size == 0):
            return
        reason = f"Aborted by Flyte ({meta.execution_id})"[:1000]  # AWS's limit for a termination reason
        try:
            ids = list(meta.job_ids) or await self.d.submissions.cancel(meta.output_prefix, reason,
                                                                              _journal_ref(meta))
            for job_id in ids:
                try:
                    await self.d.api.call("terminate", "batch", "terminate_job", jobId=job_id, reason=reason)
                except AwsRequestError as exc:
                    log.info("terminate %s: %s (treated as done)", job_id, exc)
        except (AwsUnavailable, AwsRequestError) as exc:
            # Propeller retries DeleteTask on the next round.
            raise RpcFailure(grpc.StatusCode.UNAVAILABLE, f"AWS is unavailable: {exc}") from exc

    # -- GetTaskLogs ---------------------------------------------------------------------------------
    async def GetTaskLogs(self, request: agent_pb2.GetTaskLogsRequest, context: grpc.aio.ServicerContext
                          ) -> AsyncIterator[agent_pb2.GetTaskLogsResponse]:
        try:
            parts = await asyncio.wait_for(self._logs(request, _child_index(context)), _budget(context))
        except TimeoutError:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "AWS did not answer in time; retry GetTaskLogs")
            return
        except Exception as exc:
            await _abort(context, "GetTaskLogs", exc)
            return
        for part in parts:
            yield part

    async def _logs(self, request: agent_pb2.GetTaskLogsRequest, child: int | None
                    ) -> list[agent_pb2.GetTaskLogsResponse]:
        try:
            meta = decode(request.resource_meta)
        except MetaError as exc:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        if meta.rejection:
            raise RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, f"no jobs, the task was rejected: {meta.rejection}")
        if meta.kind == ARRAY and meta.size == 0:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, "an empty map task runs no jobs, so it has no logs")
        try:
            ids = await self._job_ids(meta)
        except (AwsUnavailable, AwsRequestError) as exc:
            raise RpcFailure(grpc.StatusCode.UNAVAILABLE, f"AWS is unavailable: {exc}") from exc
        if isinstance(ids, agent_pb2.Resource):
            raise RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, ids.message)
        job_id = ids[0]
        if meta.kind == ARRAY and meta.size > 1:
            if child is None:
                raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT,
                                 f"an array task: pass the child index in the `{CHILD_INDEX_METADATA}` metadata")
            if not 0 <= child < meta.size:
                raise RpcFailure(grpc.StatusCode.OUT_OF_RANGE, f"child index {child} outside 0..{meta.size - 1}")
            for chunk, parent in zip(array_chunks(meta.size), ids, strict=False):
                if chunk.offset <= child < chunk.offset + chunk.size:
                    job_id = f"{parent}:{child - chunk.offset}"
        (job,) = await self.d.engine.jobs([job_id], background=False)
        detail = job.detail or {}
        streams = log_links.attempt_logs(detail)
        location = log_links.log_location(detail, self.d.config.job_definitions.log_group, meta.region)
        if not streams or location is None:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"job {job_id} has no CloudWatch log stream yet")
        group, _ = location
        stream = streams[-1].log_stream
        params: dict[str, Any] = {"logGroupName": group, "logStreamName": stream,
                                  "startFromHead": True, "limit": min(max(int(request.lines or 1000), 1), 10_000)}
        if request.token:
            params["nextToken"] = request.token
        try:
            resp = await self.d.api.call("logs", "logs", "get_log_events", **params)
        except AwsRequestError as exc:
            raise _logs_failure(exc, job_id, group, stream) from exc
        except AwsUnavailable as exc:
            raise RpcFailure(grpc.StatusCode.UNAVAILABLE,
                             f"CloudWatch Logs is unavailable ({exc}); retry later") from exc
        header = agent_pb2.GetTaskLogsResponse(
            header=agent_pb2.GetTaskLogsResponseHeader(token=str(resp.get("nextForwardToken", ""))))
        lines = []
        for event in resp.get("events", []):
            ts = timestamp_pb2.Timestamp()
            ts.FromMilliseconds(int(event.get("timestamp", 0)))
            lines.append(agent_pb2.LogLine(timestamp=ts, message=str(event.get("message", "")),
                                           originator=agent_pb2.LogLineOriginator.USER))
        body = agent_pb2.GetTaskLogsResponse(body=agent_pb2.GetTaskLogsResponseBody(
            structured_lines=lines, results=[line.message for line in lines]))
        return [header, body]


def _logs_failure(exc: AwsRequestError, job_id: str, group: str, stream: str) -> RpcFailure:
    where = f"log group {group}, stream {stream}"
    if exc.code == "ResourceNotFoundException":
        return RpcFailure(grpc.StatusCode.NOT_FOUND,
                          f"the logs of job {job_id} are not in CloudWatch yet ({where}: {exc.message}). A stream "
                          "appears once the job's container starts; if the job ran, check that its log "
                          "configuration (config jobDefinitions.logGroup) names this group")
    if exc.code in ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation") or exc.status == 403:
        return RpcFailure(grpc.StatusCode.PERMISSION_DENIED,
                          f"the service may not read {where}: {exc.code}: {exc.message} (it needs "
                          "logs:GetLogEvents on the group, see docs/iam.md)")
    if exc.code == "InvalidParameterException":
        return RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, f"CloudWatch Logs refused the request for {where}: "
                          f"{exc.message} (a token from another stream?)")
    return RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, f"CloudWatch Logs refused {where}: {exc.code}: "
                      f"{exc.message}")


def _budget(context: grpc.aio.ServicerContext) -> float:
    """Time to answer within the caller's deadline, with a margin to send the answer."""
    remaining = context.time_remaining()
    return max(0.5, remaining * 0.8) if remaining is not None else NO_DEADLINE_BUDGET


def _child_index(context: grpc.aio.ServicerContext) -> int | None:
    for key, value in context.invocation_metadata() or ():
        if key == CHILD_INDEX_METADATA:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _journal_ref(meta: ResourceMeta) -> JournalRef | None:
    return JournalRef(meta.journal, meta.journal_entry) if meta.journal else None
