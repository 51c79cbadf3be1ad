"""GetTaskLogs: one page of a job's CloudWatch log stream (an array child's, by Flyte index)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_array_plugin import batch_ids, log_links
from aws_array_plugin.aws_calls import AwsCalls, AwsRequestError, AwsUnavailable
from aws_array_plugin.resource_meta import ARRAY, ResourceMeta
from aws_array_plugin.status_engine import StatusEngine
from aws_array_plugin.task_status import LogLine, LogPage, Reason, TaskError

CHILD_INDEX_METADATA = "child-index"  # how a Flyte 1 caller names the array child whose logs it wants (gRPC metadata)
MAX_LINES = 10_000  # GetLogEvents' own limit per call
DEFAULT_LINES = 1_000


class TaskLogs:
    def __init__(self, api: AwsCalls, engine: StatusEngine, default_log_group: str) -> None:
        self._api = api
        self._engine = engine
        self._default_log_group = default_log_group

    async def page(self, meta: ResourceMeta, job_ids: Sequence[str], child: int | None, lines: int,
                   token: str) -> LogPage:
        job_id = job_ids[0]
        if meta.kind == ARRAY and meta.size > 1:
            if child is None:
                raise TaskError(Reason.INVALID_ARGUMENT,
                                f"an array task: pass the child index in the `{CHILD_INDEX_METADATA}` metadata")
            if not 0 <= child < meta.size:
                raise TaskError(Reason.OUT_OF_RANGE, f"child index {child} outside 0..{meta.size - 1}")
            job_id = batch_ids.job_of_child(meta.size, job_ids, child) or job_id
        (job,) = await self._engine.jobs([job_id], background=False)
        detail = job.detail or {}
        streams = log_links.attempt_logs(detail)
        location = log_links.log_location(detail, self._default_log_group, meta.region)
        if not streams or location is None:
            raise TaskError(Reason.NOT_FOUND, f"job {job_id} has no CloudWatch log stream yet")
        group, _ = location
        stream = streams[-1].log_stream
        params: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True,
                                  "limit": min(max(lines or DEFAULT_LINES, 1), MAX_LINES)}
        if token:
            params["nextToken"] = token
        try:
            resp = await self._api.call("logs", "logs", "get_log_events", **params)
        except AwsRequestError as exc:
            raise _refused(exc, job_id, group, stream) from exc
        except AwsUnavailable as exc:
            raise TaskError(Reason.UNAVAILABLE, f"CloudWatch Logs is unavailable ({exc}); retry later") from exc
        events = resp.get("events", [])
        return LogPage(tuple(LogLine(int(e.get("timestamp", 0)), str(e.get("message", ""))) for e in events),
                       str(resp.get("nextForwardToken", "")))


def _refused(exc: AwsRequestError, job_id: str, group: str, stream: str) -> TaskError:
    where = f"log group {group}, stream {stream}"
    if exc.code == "ResourceNotFoundException":
        return TaskError(Reason.NOT_FOUND,
                         f"the logs of job {job_id} are not in CloudWatch yet ({where}: {exc.message}). A stream "
                         "appears once the job's container starts; if the job ran, check that its log "
                         "configuration (config jobDefinitions.logGroup) names this group")
    if exc.code in ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation") or exc.status == 403:
        return TaskError(Reason.PERMISSION_DENIED,
                         f"the service may not read {where}: {exc.code}: {exc.message} (it needs "
                         "logs:GetLogEvents on the group, see docs/iam.md)")
    if exc.code == "InvalidParameterException":
        return TaskError(Reason.INVALID_ARGUMENT,
                         f"CloudWatch Logs refused the request for {where}: {exc.message} (a token from another "
                         "stream?)")
    return TaskError(Reason.FAILED_PRECONDITION, f"CloudWatch Logs refused {where}: {exc.code}: {exc.message}")
