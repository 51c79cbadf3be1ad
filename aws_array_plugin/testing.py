"""`FakeAws`: an in-memory AWS behind the `AwsCalls` protocol, for unit tests of the core (the way httpx ships
`MockTransport`). No network, no threads, no emulator: a test builds the real `S3Store`, journal and
`Submissions` on it and runs in milliseconds.

What it answers, as `AwsApi.call` would after its retries (the same `AwsRequestError` codes and statuses):

- S3 `get_object`, `put_object`, `head_object`, `list_objects_v2`. ETags are the MD5 of the body in quotes, as
  S3's; `put_object` honours `IfNoneMatch="*"` and `IfMatch`, raising `AwsRequestError(op, "PreconditionFailed",
  ..., 412)` when the condition fails (`IfMatch` on a missing key: `NoSuchKey`, 404). A missing key is
  `NoSuchKey`, 404 (`head_object`: code "404"). Every bucket exists.
- Batch `submit_job` (a new job id, status SUBMITTED; array jobs get `arrayProperties.size`), `list_jobs` (by
  `jobQueue` with `jobStatus` or the `JOB_NAME` filter, by `arrayJobId` with `jobStatus`; RUNNING when neither
  status nor filter is given, as AWS does), `describe_jobs` (up to 100 ids; unknown ids are left out),
  `terminate_job` (FAILED with the reason; an unknown id is accepted silently, as AWS does),
  `describe_job_definitions`, `register_job_definition` (revisions count up per name).
- CloudWatch Logs `get_log_events` (`startFromHead`, `limit`, forward tokens; a missing stream is
  `ResourceNotFoundException`).

A call whose `deadline` (a time.monotonic() instant) has passed is not sent, as `AwsApi` would not start it:
it raises `AwsUnavailable(op, "paced", ...)` and is recorded in `paced`, not in `calls`. Every call yields to the
event loop once before it is carried out, like a real one.

Scripting the account:

    aws = FakeAws()
    aws.put("s3://bucket/key", b"...")     # an object
    job = aws.add_job("name", "queue")     # a job this process did not submit
    aws.update_job(job, status="FAILED", statusReason="Essential container in task exited",
                   container={"exitCode": 1})
    aws.set_children(parent, [{"status": "SUCCEEDED"}, {"status": "FAILED"}])  # also sets statusSummary
    aws.remove_job(job)
    aws.put_log_events("/aws/batch/job", "stream", ["line 1", "line 2"])

Faults and interleavings, per operation (snake_case, as `AwsApi.call` receives it), optionally only for calls
whose parameters satisfy `when`:

    aws.fail("submit_job", AwsUnavailable("submit_job", "timeout", "read timeout"), landed=True)  # job exists
    aws.fail("put_object", AwsUnavailable("put_object", "server_error", "InternalError"), times=3,
             when=lambda p: p["Key"].endswith("submission.json"))
    held = aws.pause("submit_job")          # the next SubmitJob waits ...
    await held.reached.wait()               # ... until it arrives
    held.release()                          # ... and is then carried out
    aws.intercept("put_object", hook)       # any `async hook(call, proceed) -> response`

Every call that reached the fake is in `calls` (`Call`: class, service, operation, params), failed or not;
`sent("submit_job")` lists the parameters of each. `FakeClock` is a wall clock that moves only when told.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_array_plugin.aws_calls import CALL_CLASSES, AwsCalls, AwsRequestError, AwsUnavailable
from aws_array_plugin.s3_uris import split_uri

__all__ = ["ACCOUNT", "Call", "FakeAws", "FakeClock", "Hook", "Pause", "Proceed"]

ACCOUNT = "123456789012"
_TERMINAL = frozenset({"SUCCEEDED", "FAILED"})
_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
_MAX_DESCRIBE = 100


class FakeClock:
    """A wall clock (`time.time` stand-in) that moves only when told: pass it as `clock=` to FakeAws and to the
    code under test, and `advance` it past a claim's expiry instead of waiting."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Call:
    call_class: str
    service: str
    operation: str
    params: dict[str, Any]
    deadline: float | None = None
    retry_timeouts: bool = True


Proceed = Callable[[], Awaitable[dict[str, Any]]]
# Runs instead of the operation: `proceed()` carries it out (and may be skipped, awaited late, or followed by a raise).
Hook = Callable[[Call, Proceed], Awaitable[dict[str, Any]]]
When = Callable[[dict[str, Any]], bool]


@dataclass
class _Intercept:
    operation: str
    hook: Hook
    times: int | None
    when: When | None


class Pause:
    """Holds calls of one operation before AWS carries them out: `reached` is set when one arrives, `release()`
    lets the held ones (and any later ones) go. `held` counts the calls it caught."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self._go = asyncio.Event()
        self.held = 0

    def release(self) -> None:
        self._go.set()

    async def __call__(self, call: Call, proceed: Proceed) -> dict[str, Any]:
        self.held += 1
        self.reached.set()
        await self._go.wait()
        return await proceed()


@dataclass
class _Object:
    data: bytes
    etag: str
    content_type: str
    last_modified: float


class _Body:
    """What `get_object` answers as `Body`: read inside `async with`, like aiobotocore's streaming body."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aenter__(self) -> _Body:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def read(self) -> bytes:
        return self._data


@dataclass
class _LogStream:
    events: list[dict[str, Any]] = field(default_factory=list)


class FakeAws:
    """In-memory S3, scripted AWS Batch and CloudWatch Logs; see the module docstring."""

    def __init__(self, region: str = "us-east-1", clock: Callable[[], float] = time.time) -> None:
        self._region = region
        self._clock = clock  # the account's wall clock: job timestamps, object times
        self.calls: list[Call] = []
        self.paced: list[Call] = []  # not sent: their deadline had passed
        self.objects: dict[tuple[str, str], _Object] = {}
        self.jobs: dict[str, dict[str, Any]] = {}  # job id -> AWS-shaped JobDetail (array children included)
        self.definitions: list[dict[str, Any]] = []
        self.logs: dict[tuple[str, str], _LogStream] = {}
        self._intercepts: list[_Intercept] = []
        self._decoders: dict[tuple[str, str], Callable[[bytes], dict[str, Any] | None]] = {}
        self._handlers: dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, Any]]] = {
            ("s3", "get_object"): self._get_object,
            ("s3", "put_object"): self._put_object,
            ("s3", "head_object"): self._head_object,
            ("s3", "list_objects_v2"): self._list_objects_v2,
            ("batch", "submit_job"): self._submit_job,
            ("batch", "list_jobs"): self._list_jobs,
            ("batch", "describe_jobs"): self._describe_jobs,
            ("batch", "terminate_job"): self._terminate_job,
            ("batch", "describe_job_definitions"): self._describe_job_definitions,
            ("batch", "register_job_definition"): self._register_job_definition,
            ("logs", "get_log_events"): self._get_log_events,
        }

    # -- AwsCalls ------------------------------------------------------------------------------------------
    @property
    def region(self) -> str:
        return self._region

    async def call(self, call_class: str, service: str, operation: str, /, *, max_attempts: int = 6,
                   deadline: float | None = None, retry_timeouts: bool = True, **params: Any) -> dict[str, Any]:
        if call_class not in CALL_CLASSES:
            raise ValueError(f"unknown call class {call_class!r}")
        handler = self._handlers.get((service, operation))
        if handler is None:
            raise NotImplementedError(f"FakeAws does not implement {service}.{operation}")
        call = Call(call_class, service, operation, params, deadline, retry_timeouts)
        if deadline is not None and time.monotonic() >= deadline:
            self.paced.append(call)
            raise AwsUnavailable(operation, "paced", "no rate-limit slot before the deadline")
        await asyncio.sleep(0)
        self.calls.append(call)

        async def proceed() -> dict[str, Any]:
            return self._decoded(service, operation, handler(params))

        hook = self._take_intercept(operation, params)
        return await (proceed() if hook is None else hook(call, proceed))

    def decode_with(self, service: str, operation: str, decode: Callable[[bytes], dict[str, Any] | None]) -> None:
        self._decoders[(service, operation)] = decode

    # -- what was called -----------------------------------------------------------------------------------
    def sent(self, operation: str) -> list[dict[str, Any]]:
        """The parameters of every `operation` call that reached the fake, in order (failed ones included)."""
        return [c.params for c in self.calls if c.operation == operation]

    # -- faults and interleavings --------------------------------------------------------------------------
    def intercept(self, operation: str, hook: Hook, *, times: int | None = None, when: When | None = None) -> None:
        """Run `hook(call, proceed)` instead of the next `times` calls of `operation` (all when None) that satisfy
        `when`. Hooks are tried in the order they were added; each call takes at most one."""
        self._intercepts.append(_Intercept(operation, hook, times, when))

    def fail(self, operation: str, error: AwsRequestError | AwsUnavailable, *, times: int | None = 1,
             landed: bool = False, when: When | None = None) -> None:
        """The next `times` calls of `operation` raise `error`; with `landed`, after AWS carried them out (a
        timeout whose request reached AWS, a write that landed but whose answer was lost)."""
        async def hook(call: Call, proceed: Proceed) -> dict[str, Any]:
            if landed:
                await proceed()
            raise error.with_traceback(None)

        self.intercept(operation, hook, times=times, when=when)

    def pause(self, operation: str, *, times: int | None = 1, when: When | None = None) -> Pause:
        """Hold the next `times` calls of `operation` until `release()`; see `Pause`."""
        held = Pause()
        self.intercept(operation, held, times=times, when=when)
        return held

    def clear_faults(self) -> None:
        self._intercepts.clear()

    # -- scripting: S3 -------------------------------------------------------------------------------------
    def put(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Store an object directly (not a call); returns its ETag."""
        bucket, key = split_uri(uri)
        return self._store(bucket, key, data, content_type)

    def get(self, uri: str) -> bytes | None:
        bucket, key = split_uri(uri)
        obj = self.objects.get((bucket, key))
        return obj.data if obj else None

    def delete(self, uri: str) -> None:
        self.objects.pop(split_uri(uri), None)

    # -- scripting: Batch ----------------------------------------------------------------------------------
    def add_job(self, name: str, queue: str, *, status: str = "SUBMITTED", size: int | None = None,
                **detail: Any) -> str:
        """A job this process did not submit (another replica's, a dead owner's); returns its id. `detail`
        sets further fields as `update_job` does."""
        request: dict[str, Any] = {"jobName": name, "jobQueue": queue, "jobDefinition": "unknown"}
        if size is not None:
            request["arrayProperties"] = {"size": size}
        job_id = self._create_job(request)
        self.update_job(job_id, status=status, **detail)
        return job_id

    def job(self, job_id: str) -> dict[str, Any]:
        """The live detail of a job (mutating it changes what AWS answers)."""
        return self.jobs[job_id]

    def jobs_named(self, name: str) -> list[dict[str, Any]]:
        return [j for j in self.jobs.values() if j["jobName"] == name and ":" not in j["jobId"]]

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Set top-level fields of a job's detail: status, statusReason, container, attempts, startedAt, ...
        `arrayProperties` is merged (so `arrayProperties={"statusSummary": {...}}` keeps the size)."""
        detail = self.jobs[job_id]
        for key, value in fields.items():
            if key == "arrayProperties":
                detail.setdefault("arrayProperties", {}).update(value)
            else:
                detail[key] = value

    def set_children(self, parent_id: str, children: Sequence[Mapping[str, Any]]) -> list[str]:
        """Replace an array job's children: one detail each (at least `status`), ids `<parent>:<index>`. The
        parent's `arrayProperties.size` and `statusSummary` follow them. Returns the child ids."""
        parent = self.jobs[parent_id]
        for job_id in [j for j in self.jobs if j.startswith(f"{parent_id}:")]:
            del self.jobs[job_id]
        ids = []
        for index, child in enumerate(children):
            job_id = f"{parent_id}:{index}"
            self.jobs[job_id] = {
                "jobId": job_id, "jobName": parent["jobName"], "jobArn": f"{parent['jobArn']}:{index}",
                "jobQueue": parent["jobQueue"], "jobDefinition": parent["jobDefinition"],
                "createdAt": parent["createdAt"], "status": "SUBMITTED", "container": {}, "attempts": [],
                **copy.deepcopy(dict(child)), "arrayProperties": {"index": index},
            }
            ids.append(job_id)
        summary = dict.fromkeys(_STATUSES, 0)
        for child in children:
            summary[str(child.get("status", "SUBMITTED"))] += 1
        parent.setdefault("arrayProperties", {}).update({"size": len(children), "statusSummary": summary})
        return ids

    def remove_job(self, job_id: str) -> None:
        """The job (and its children) vanish, as AWS forgets finished jobs after a day or so."""
        for known in [j for j in self.jobs if j == job_id or j.startswith(f"{job_id}:")]:
            del self.jobs[known]

    # -- scripting: CloudWatch Logs ------------------------------------------------------------------------
    def put_log_events(self, group: str, stream: str, messages: Sequence[str], timestamp_ms: int | None = None) -> None:
        log = self.logs.setdefault((group, stream), _LogStream())
        start = int(self._clock() * 1000) if timestamp_ms is None else timestamp_ms
        for i, message in enumerate(messages):
            log.events.append({"timestamp": start + i, "message": message, "ingestionTime": start + i})

    # -- internals -----------------------------------------------------------------------------------------
    def _take_intercept(self, operation: str, params: dict[str, Any]) -> Hook | None:
        for item in self._intercepts:
            if item.operation != operation or (item.when is not None and not item.when(params)):
                continue
            if item.times is not None:
                item.times -= 1
                if item.times <= 0:
                    self._intercepts.remove(item)
            return item.hook
        return None

    def _decoded(self, service: str, operation: str, response: dict[str, Any]) -> dict[str, Any]:
        decode = self._decoders.get((service, "".join(p.capitalize() for p in operation.split("_"))))
        if decode is None:
            return response
        decoded = decode(json.dumps(response).encode())
        return response if decoded is None else decoded

    # S3
    def _store(self, bucket: str, key: str, data: bytes, content_type: str) -> str:
        etag = f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
        self.objects[(bucket, key)] = _Object(data, etag, content_type, self._clock())
        return etag

    def _object(self, operation: str, params: dict[str, Any]) -> _Object:
        obj = self.objects.get((params["Bucket"], params["Key"]))
        if obj is None:
            if operation == "head_object":  # no body to carry a code: botocore names the status
                raise AwsRequestError(operation, "404", "Not Found", 404)
            raise AwsRequestError(operation, "NoSuchKey", "The specified key does not exist.", 404)
        return obj

    def _get_object(self, params: dict[str, Any]) -> dict[str, Any]:
        obj = self._object("get_object", params)
        return {"Body": _Body(obj.data), "ETag": obj.etag, "ContentLength": len(obj.data),
                "ContentType": obj.content_type}

    def _head_object(self, params: dict[str, Any]) -> dict[str, Any]:
        obj = self._object("head_object", params)
        return {"ETag": obj.etag, "ContentLength": len(obj.data), "ContentType": obj.content_type}

    def _put_object(self, params: dict[str, Any]) -> dict[str, Any]:
        bucket, key = params["Bucket"], params["Key"]
        body = params.get("Body", b"")
        data = body.encode() if isinstance(body, str) else bytes(body)
        current = self.objects.get((bucket, key))
        failed = "At least one of the pre-conditions you specified did not hold"
        if params.get("IfNoneMatch") == "*" and current is not None:
            raise AwsRequestError("put_object", "PreconditionFailed", failed, 412)
        if_match = params.get("IfMatch")
        if if_match is not None:
            if current is None:
                raise AwsRequestError("put_object", "NoSuchKey", "The specified key does not exist.", 404)
            if current.etag != if_match:
                raise AwsRequestError("put_object", "PreconditionFailed", failed, 412)
        etag = self._store(bucket, key, data, str(params.get("ContentType", "binary/octet-stream")))
        return {"ETag": etag}

    def _list_objects_v2(self, params: dict[str, Any]) -> dict[str, Any]:
        bucket, prefix = params["Bucket"], str(params.get("Prefix", ""))
        keys = sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix))
        after = str(params.get("ContinuationToken") or params.get("StartAfter") or "")
        keys = [k for k in keys if k > after] if after else keys
        page = keys[:int(params.get("MaxKeys", 1000))]
        response: dict[str, Any] = {
            "Name": bucket, "Prefix": prefix, "KeyCount": len(page), "IsTruncated": len(page) < len(keys),
            "Contents": [{"Key": k, "ETag": self.objects[(bucket, k)].etag, "Size": len(self.objects[(bucket, k)].data)}
                         for k in page],
        }
        if response["IsTruncated"]:
            response["NextContinuationToken"] = page[-1]
        return response

    # Batch
    def _create_job(self, request: dict[str, Any]) -> str:
        job_id = str(uuid.uuid4())
        detail: dict[str, Any] = {
            "jobId": job_id, "jobName": request["jobName"], "jobQueue": request["jobQueue"],
            "jobArn": f"arn:aws:batch:{self._region}:{ACCOUNT}:job/{job_id}",
            "jobDefinition": request["jobDefinition"], "status": "SUBMITTED",
            "createdAt": int(self._clock() * 1000), "container": {}, "attempts": [],
        }
        size = (request.get("arrayProperties") or {}).get("size")
        if size is not None:
            detail["arrayProperties"] = {"size": int(size), "statusSummary": {}}
        self.jobs[job_id] = detail
        return job_id

    def _submit_job(self, params: dict[str, Any]) -> dict[str, Any]:
        missing = [p for p in ("jobName", "jobQueue", "jobDefinition") if not params.get(p)]
        if missing:
            raise AwsRequestError("submit_job", "ClientException", f"{missing[0]} is required", 400)
        job_id = self._create_job(params)
        detail = self.jobs[job_id]
        return {"jobId": job_id, "jobName": detail["jobName"], "jobArn": detail["jobArn"]}

    def _list_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        parent = params.get("arrayJobId")
        if parent is not None:
            found = sorted((j for j in self.jobs.values() if j["jobId"].startswith(f"{parent}:")),
                           key=lambda j: int(j["arrayProperties"]["index"]))
        elif "jobQueue" in params:
            found = sorted((j for j in self.jobs.values() if j["jobQueue"] == params["jobQueue"]
                            and ":" not in j["jobId"]), key=lambda j: -int(j["createdAt"]))
        else:
            raise AwsRequestError("list_jobs", "ClientException", "jobQueue or arrayJobId is required", 400)
        filters = params.get("filters") or []
        if filters:  # jobStatus is ignored with filters, which match every status
            for f in filters:
                if f.get("name") != "JOB_NAME":
                    raise NotImplementedError(f"FakeAws list_jobs filter {f.get('name')}")
                wanted = str(f["values"][0])
                found = [j for j in found if (j["jobName"].startswith(wanted[:-1]) if wanted.endswith("*")
                                              else j["jobName"] == wanted)]
        else:
            status = params.get("jobStatus", "RUNNING")
            found = [j for j in found if j["status"] == status]
        return _page("jobSummaryList", [_summary(j) for j in found], params)

    def _describe_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        ids = list(params.get("jobs", []))
        if len(ids) > _MAX_DESCRIBE:
            raise AwsRequestError("describe_jobs", "ClientException", "jobs may hold at most 100 ids", 400)
        return {"jobs": [copy.deepcopy(self.jobs[i]) for i in ids if i in self.jobs]}

    def _terminate_job(self, params: dict[str, Any]) -> dict[str, Any]:
        reason = str(params.get("reason", ""))
        if not params.get("jobId") or not reason:
            raise AwsRequestError("terminate_job", "ClientException", "jobId and reason are required", 400)
        job_id = str(params["jobId"])
        for known in [j for j in self.jobs if j == job_id or j.startswith(f"{job_id}:")]:
            detail = self.jobs[known]
            if detail["status"] not in _TERMINAL:
                detail.update(status="FAILED", statusReason=reason, stoppedAt=int(self._clock() * 1000))
        return {}

    def _describe_job_definitions(self, params: dict[str, Any]) -> dict[str, Any]:
        found = list(self.definitions)
        if "jobDefinitionName" in params:
            found = [d for d in found if d["jobDefinitionName"] == params["jobDefinitionName"]]
        if params.get("jobDefinitions"):
            wanted = set(params["jobDefinitions"])
            found = [d for d in found if d["jobDefinitionArn"] in wanted
                     or f"{d['jobDefinitionName']}:{d['revision']}" in wanted]
        if "status" in params:
            found = [d for d in found if d["status"] == params["status"]]
        return _page("jobDefinitions", found, params)

    def _register_job_definition(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("jobDefinitionName")
        if not name or not params.get("type"):
            raise AwsRequestError("register_job_definition", "ClientException",
                                  "jobDefinitionName and type are required", 400)
        revision = 1 + max((d["revision"] for d in self.definitions if d["jobDefinitionName"] == name), default=0)
        arn = f"arn:aws:batch:{self._region}:{ACCOUNT}:job-definition/{name}:{revision}"
        self.definitions.append({**copy.deepcopy(params), "jobDefinitionArn": arn, "revision": revision,
                                 "status": "ACTIVE"})
        return {"jobDefinitionName": name, "jobDefinitionArn": arn, "revision": revision}

    # CloudWatch Logs
    def _get_log_events(self, params: dict[str, Any]) -> dict[str, Any]:
        log = self.logs.get((params["logGroupName"], params["logStreamName"]))
        if log is None:
            raise AwsRequestError("get_log_events", "ResourceNotFoundException",
                                  "The specified log stream does not exist.", 400)
        limit = int(params.get("limit") or 10_000)
        token = params.get("nextToken")
        if token:
            start = int(str(token).split("/", 1)[1])
        else:
            start = 0 if params.get("startFromHead") else max(0, len(log.events) - limit)
        page = log.events[start:start + limit]
        return {"events": copy.deepcopy(page), "nextForwardToken": f"f/{start + len(page)}",
                "nextBackwardToken": f"b/{start}"}


def _page(key: str, items: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """One page of a Batch listing (`maxResults`, default 100), with a `nextToken` when more follow."""
    start = int(params.get("nextToken") or 0)
    limit = int(params.get("maxResults") or 100)
    response: dict[str, Any] = {key: copy.deepcopy(items[start:start + limit])}
    if start + limit < len(items):
        response["nextToken"] = str(start + limit)
    return response


def _summary(job: dict[str, Any]) -> dict[str, Any]:
    """A JobSummary of ListJobs."""
    keys = ("jobId", "jobName", "jobArn", "status", "statusReason", "createdAt", "startedAt", "stoppedAt")
    summary: dict[str, Any] = {k: job[k] for k in keys if k in job}
    props = job.get("arrayProperties")
    if props:
        summary["arrayProperties"] = {k: props[k] for k in ("size", "index") if k in props}
    return summary


if TYPE_CHECKING:  # both implementations satisfy the one protocol (checked by mypy, never run)
    from aws_array_plugin.aws_calls import AwsApi

    _real: type[AwsCalls] = AwsApi
    _fake: type[AwsCalls] = FakeAws
