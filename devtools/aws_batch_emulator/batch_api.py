"""The Batch job APIs the emulator answers itself (moto's versions lack AWS's behaviour and limits):
SubmitJob, DescribeJobs, ListJobs, TerminateJob(s), CancelJob(s), and tag calls on job ARNs.
Everything else (compute environments, queues, job definitions) stays with moto.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from . import listing, moto_store
from .calls import Call
from .errors import BatchClientError
from .jobs import JobEngine
from .submit import build_spec

MAX_DESCRIBE = 100
MAX_BULK = 50
JOB_OPERATIONS = frozenset(
    {"SubmitJob", "DescribeJobs", "ListJobs", "TerminateJob", "CancelJob", "TerminateJobs", "CancelJobs"}
)
TAG_OPERATIONS = frozenset({"ListTagsForResource", "TagResource", "UntagResource"})

Response = tuple[int, dict[str, Any]]


def _tag_arn(path: str) -> str:
    return path[len("/v1/tags/") :]


def owns(call: Call, path: str) -> bool:
    """Whether this request is answered by the job engine rather than moto."""
    if call.service != "batch":
        return False
    if call.operation in JOB_OPERATIONS:
        return True
    return call.operation in TAG_OPERATIONS and ":job/" in _tag_arn(path)


class BatchJobsApi:
    def __init__(self, engine: JobEngine) -> None:
        self._engine = engine
        self._handlers: dict[str, Callable[[Call, Mapping[str, Any], int], Response]] = {
            "SubmitJob": self._submit,
            "DescribeJobs": self._describe,
            "ListJobs": self._list,
            "TerminateJob": lambda c, b, _: self._stop_one(c, b, terminate=True),
            "CancelJob": lambda c, b, _: self._stop_one(c, b, terminate=False),
            "TerminateJobs": lambda c, b, _: self._stop_many(c, b, terminate=True),
            "CancelJobs": lambda c, b, _: self._stop_many(c, b, terminate=False),
        }

    def handle(self, call: Call, method: str, path: str, query_string: str, raw: bytes) -> Response:
        try:
            if call.operation in TAG_OPERATIONS:
                return self._tags(call, _tag_arn(path), query_string, raw)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise BatchClientError("Request body is not valid JSON") from None
            if not isinstance(body, dict):
                raise BatchClientError("Request body must be a JSON object")
            return self._handlers[call.operation](call, body, len(raw))
        except BatchClientError as exc:
            return exc.status, {"__type": exc.code, "message": exc.message}

    def _submit(self, call: Call, body: Mapping[str, Any], size: int) -> Response:
        spec, array_size = build_spec(call.account, call.region, body, size)
        job = self._engine.submit(spec, array_size=array_size, tags=body.get("tags") or {})
        return 200, {"jobArn": job.arn, "jobName": spec.job_name, "jobId": job.job_id}

    def _describe(self, call: Call, body: Mapping[str, Any], _: int) -> Response:
        ids = body.get("jobs")
        if not isinstance(ids, list) or not ids:
            raise BatchClientError("jobs must list between 1 and 100 job IDs")
        if len(ids) > MAX_DESCRIBE:
            raise BatchClientError(f"Maximum number of jobs supported is {MAX_DESCRIBE}")
        return 200, {"jobs": self._engine.describe(call.account, call.region, [str(i) for i in ids])}

    def _list(self, call: Call, body: Mapping[str, Any], _: int) -> Response:
        scopes = [k for k in ("jobQueue", "arrayJobId", "multiNodeJobId") if body.get(k)]
        if len(scopes) != 1:
            raise BatchClientError("You must specify only one of: jobQueue, arrayJobId, multiNodeJobId")
        scope = scopes[0]
        query = listing.parse_query(body, children=scope != "jobQueue")
        if scope == "arrayJobId":
            return 200, self._engine.list_children(call.account, call.region, str(body["arrayJobId"]), query)
        if scope == "multiNodeJobId":
            return 200, {"jobSummaryList": []}  # multi-node jobs are not emulated
        queue = moto_store.find_queue(call.account, call.region, str(body["jobQueue"]))
        if queue is None:
            return 200, {"jobSummaryList": []}
        return 200, self._engine.list_queue(call.account, call.region, queue.arn, query)

    def _stop_one(self, call: Call, body: Mapping[str, Any], *, terminate: bool) -> Response:
        job_id, reason = str(body.get("jobId") or ""), str(body.get("reason") or "")
        if not job_id or not reason:
            raise BatchClientError("jobId and reason are required")
        stop = self._engine.terminate if terminate else self._engine.cancel
        stop(call.account, call.region, job_id, reason)
        return 200, {}

    def _stop_many(self, call: Call, body: Mapping[str, Any], *, terminate: bool) -> Response:
        ids, reason = body.get("jobs"), str(body.get("reason") or "")
        if not isinstance(ids, list) or not ids or len(ids) > MAX_BULK or not reason:
            raise BatchClientError(f"jobs must list between 1 and {MAX_BULK} job IDs, and reason is required")
        stop = self._engine.terminate if terminate else self._engine.cancel
        for job_id in ids:
            stop(call.account, call.region, str(job_id), reason)
        # Unknown ids count as successfully processed, as in AWS.
        return 200, {"successful": [str(i) for i in ids], "errors": []}

    def _tags(self, call: Call, arn: str, query_string: str, raw: bytes) -> Response:
        engine = self._engine
        if call.operation == "ListTagsForResource":
            tags = engine.tags(call.account, call.region, arn)
            if tags is None:
                raise BatchClientError(f"Resource {arn} not found")
            return 200, {"tags": tags}
        add: dict[str, str] = {}
        remove: list[str] = []
        if call.operation == "TagResource":
            add = dict((json.loads(raw or b"{}") or {}).get("tags") or {})
        else:
            remove = parse_qs(query_string).get("tagKeys", [])
        if not engine.update_tags(call.account, call.region, arn, add, remove):
            raise BatchClientError(f"Resource {arn} not found")
        return 200, {}
