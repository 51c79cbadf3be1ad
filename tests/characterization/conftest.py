"""Characterization tests (issue 14): today's observable answers of the service, pinned in golden files so that
a refactor of the internals can be checked against them unchanged.

What lives here, so that the test bodies and goldens never depend on the service's internals:

- `moto`: overrides the suite's fixture of that name for this directory with a moto server of our own, in a
  separate process, reset for each test module (`fresh_account`: for each test). moto's backends are
  process-global, so a second in-process server would share (and a reset would wipe) the state of the rest of the
  suite; a private process gives the cases an empty account, so what they register and submit does not depend on
  which tests ran before.
- `plugin_server`: the real server, started as the suite's `start_plugin` does, but usable by a module-scoped
  fixture (one server shared by the cases whose configuration is the same keeps the run short).
- `ScriptedBatch`: what AWS Batch answers to DescribeJobs and ListJobs, and does on TerminateJob, scripted by the
  test. It is the ONE place that knows how those answers reach the service (botocore `before-call` handlers on the
  plugin's own batch client): if the internals move, only this class changes.
- Builders of AWS-shaped job details, S3 helpers for outputs.pb / error.pb, the answer recorder, normalization of
  what is random (job ids), and the golden comparison (`UPDATE_GOLDEN=1` rewrites the files).
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import errors_pb2, execution_pb2, literals_pb2
from google.protobuf import json_format

from tests.conftest import BUCKET, QUEUE, REGION, MotoServer, Plugin, aws_environment
from tests.conftest import plugin_server as suite_plugin_server
from tests.templates import literal_map

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
ACCOUNT = "123456789012"
SECOND_QUEUE = "gpu"  # a second job queue, for child_queue cases
T0 = 1_700_000_000_000  # AWS timestamps (epoch milliseconds) of the scripted jobs: fixed, not random
Phase = execution_pb2.TaskExecution
TASK_VERSIONS = {"aws-batch": 0, "container_array": 1}

# Every GetTask describes the jobs it needs (maxStaleness 0) and nothing refreshes in the background (refresh
# interval of an hour), so each answer reflects exactly the state scripted before it.
CHAR_CONFIG: dict[str, Any] = {
    "defaultQueue": QUEUE,
    "status": {"refreshInterval": "1h", "maxStaleness": "0s", "batchWindow": "0.01s", "answerTimeout": "2s",
               "misconfigurationDwell": "0.5s", "missingJobGrace": "0.3s"},
    "submission": {"createWait": "10s"},
}

# -- a private moto server ----------------------------------------------------------------------------------------

_MOTO_SERVER = """
import logging, sys
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # runs until the test session closes our end of the pipe
server.stop()
"""


@pytest.fixture(scope="session")
def _moto_endpoint() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-c", _MOTO_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdin is not None
    port = proc.stdout.readline().strip()
    assert port.isdigit(), f"the moto server did not start (got {port!r})"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _empty_account(endpoint: str) -> MotoServer:
    """Reset the private moto server and provision it like the suite's account (`tests/conftest.py`), plus a
    second job queue."""
    import requests

    requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
    requests.post(f"{endpoint}/moto-api/config", json={"batch": {"use_docker": False}}, timeout=10)
    a = MotoServer(endpoint)
    iam, batch = a.client("iam"), a.client("batch")
    role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    batch.create_compute_environment(computeEnvironmentName="flyte-ce", type="UNMANAGED", serviceRole=role)
    for priority, queue in enumerate((QUEUE, SECOND_QUEUE), start=1):
        batch.create_job_queue(jobQueueName=queue, state="ENABLED", priority=priority,
                               computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "flyte-ce"}])
    a.client("s3").create_bucket(Bucket=BUCKET)
    return a


@pytest.fixture(scope="module")
def moto(_moto_endpoint: str) -> Iterator[MotoServer]:
    """An empty emulated account for each test module; the AWS environment points at it meanwhile."""
    env = {"AWS_ENDPOINT_URL": _moto_endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": REGION}
    with aws_environment(env):
        yield _empty_account(_moto_endpoint)


@pytest.fixture
def fresh_account(moto: MotoServer) -> MotoServer:
    """An empty account for this test alone (start plugins only after asking for it)."""
    return _empty_account(moto.endpoint)


# -- scripted AWS Batch -------------------------------------------------------------------------------------------

@dataclass
class _HttpResponse:
    """What botocore's `before-call` short-circuit needs for an HTTP response (`_make_api_call` reads
    `status_code`; after-call handlers may look at the rest)."""

    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""
    raw: Any = None


class ScriptedBatch:
    """AWS Batch as the test scripts it: `set(job_id, detail)` for what DescribeJobs answers about a job,
    `children(parent, {index: detail})` for array children (DescribeJobs and ListJobs with its `arrayJobId` and
    `jobStatus` filters), `forget(job_id)` for a job AWS does not know, `fail(operation, ...)` for AWS refusing.
    Unscripted jobs are unknown to AWS. TerminateJob is recorded in `terminations` and does what AWS does: an
    unfinished job becomes FAILED with the given reason.

    The answers reach the plugin through `before-call` handlers on its own batch client, as JSON bodies that go
    through the client's `before-parse` handlers and botocore's response parser, exactly as a body from AWS would:
    the status engine receives details of the same shape as from real AWS. SubmitJob itself goes to moto."""

    def __init__(self) -> None:
        self._details: dict[str, dict[str, Any]] = {}
        self._failures: dict[str, tuple[int, str, str]] = {}
        self._submissions: dict[str, dict[str, Any]] = {}  # job name -> SubmitJob params
        self.submitted: dict[str, dict[str, Any]] = {}  # job id -> SubmitJob params
        self.terminations: list[dict[str, Any]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []  # every scripted call, for debugging

    # -- scripting ------------------------------------------------------------------------------------------------
    def set(self, job_id: str, detail: dict[str, Any]) -> None:
        """DescribeJobs answers `detail` (an AWS JobDetail, see `job_detail`) for `job_id`, completed with the ids,
        names, queue and definition AWS always reports."""
        parent = job_id.split(":", 1)[0]
        sub = self.submitted.get(parent, {})
        full = {
            "jobArn": f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{job_id}",
            "jobName": sub.get("jobName", "scripted-job"),
            "jobId": job_id,
            "jobQueue": f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/{sub.get('jobQueue', QUEUE)}",
            "jobDefinition": sub.get("jobDefinition", f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/scripted:1"),
            "createdAt": T0,
            **copy.deepcopy(detail),
        }
        full["jobId"] = job_id
        self._details[job_id] = full

    def children(self, parent_id: str, details: dict[int, dict[str, Any]]) -> None:
        """Array children `<parent>:<index>`: described by DescribeJobs, listed by ListJobs."""
        for index, detail in details.items():
            d = copy.deepcopy(detail)
            d["arrayProperties"] = {**d.get("arrayProperties", {}), "index": index}
            self.set(f"{parent_id}:{index}", d)

    def forget(self, job_id: str) -> None:
        self._details.pop(job_id, None)

    def fail(self, operation: str, code: str, message: str, status: int = 400) -> None:
        """Every later `operation` call (CamelCase) fails with this AWS error."""
        self._failures[operation] = (status, code, message)

    def clear_failures(self) -> None:
        self._failures.clear()

    # -- wiring ---------------------------------------------------------------------------------------------------
    def install(self, events: Any) -> None:
        """Answer the calls of a batch client (its `meta.events`)."""
        events.register("provide-client-params.batch.SubmitJob", self._submitting)
        events.register("after-call.batch.SubmitJob", self._submitted)
        events.register("before-call.batch.DescribeJobs", self._answer(self._describe_jobs, events))
        events.register("before-call.batch.ListJobs", self._answer(self._list_jobs, events))
        events.register("before-call.batch.TerminateJob", self._answer(self._terminate_job, events))

    def _submitting(self, params: dict[str, Any], **_: Any) -> None:
        self._submissions[params["jobName"]] = dict(params)

    def _submitted(self, parsed: dict[str, Any], **_: Any) -> None:
        if "jobId" in parsed:
            self.submitted[parsed["jobId"]] = self._submissions.get(parsed.get("jobName", ""), {})

    def _answer(self, make: Callable[[dict[str, Any]], dict[str, Any]], events: Any) -> Callable[..., Any]:
        async def handler(model: Any, params: dict[str, Any], **_: Any) -> tuple[_HttpResponse, dict[str, Any]]:
            request = json.loads(params.get("body") or b"{}")
            self.calls.append((model.name, request))
            failure = self._failures.get(model.name)
            if failure is not None:
                status, code, message = failure
                http = _HttpResponse(status, {"x-amzn-errortype": code, "content-type": "application/json"},
                                     json.dumps({"__type": code, "message": message}).encode())
            else:
                http = _HttpResponse(200, {"content-type": "application/json"},
                                     json.dumps(make(request)).encode())
            return http, await _parse(model, http, events)

        return handler

    def _describe_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"jobs": [copy.deepcopy(self._details[i]) for i in request.get("jobs", []) if i in self._details]}

    def _list_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        parent, status = request.get("arrayJobId"), request.get("jobStatus")
        found = sorted((d for i, d in self._details.items() if parent and i.startswith(f"{parent}:")
                        and (status is None or d.get("status") == status)),
                       key=lambda d: int(d["arrayProperties"]["index"]))
        start = int(request.get("nextToken") or 0)
        size = int(request.get("maxResults") or 100)
        page = found[start:start + size]
        answer: dict[str, Any] = {"jobSummaryList": [_summary(d) for d in page]}
        if start + size < len(found):
            answer["nextToken"] = str(start + size)
        return answer

    def _terminate_job(self, request: dict[str, Any]) -> dict[str, Any]:
        self.terminations.append(dict(request))
        job_id, reason = request["jobId"], request.get("reason", "")
        for i, d in self._details.items():
            if (i == job_id or i.startswith(f"{job_id}:")) and d.get("status") not in ("SUCCEEDED", "FAILED"):
                d.update(status="FAILED", statusReason=reason, stoppedAt=T0 + 60_000)
                summary = (d.get("arrayProperties") or {}).get("statusSummary")
                if summary:
                    unfinished = sum(n for s, n in summary.items() if s not in ("SUCCEEDED", "FAILED"))
                    summary.update({s: 0 for s in summary if s not in ("SUCCEEDED", "FAILED")})
                    summary["FAILED"] = summary.get("FAILED", 0) + unfinished
        return {}


async def _parse(model: Any, http: _HttpResponse, emitter: Any) -> dict[str, Any]:
    """The body as the client's endpoint would turn it into a response: `before-parse` handlers (the service
    decodes DescribeJobs itself there), then botocore's parser for the protocol."""
    from aiobotocore.parsers import AioResponseParserFactory

    service_id = model.service_model.service_id.hyphenize()
    response_dict = {"headers": http.headers, "status_code": http.status_code, "body": http.content,
                     "context": {"operation_name": model.name}}
    customized: dict[str, Any] = {}
    await emitter.emit(f"before-parse.{service_id}.{model.name}", operation_model=model,
                       response_dict=response_dict, customized_response_dict=customized)
    parser = AioResponseParserFactory().create_parser(model.service_model.resolved_protocol)
    parsed: dict[str, Any] = await parser.parse(response_dict, model.output_shape)
    parsed.update(customized)
    return parsed


def _summary(detail: dict[str, Any]) -> dict[str, Any]:
    """ListJobs' JobSummary of a job detail."""
    out = {k: detail[k] for k in ("jobArn", "jobId", "jobName", "createdAt", "status", "statusReason", "startedAt",
                                  "stoppedAt", "jobDefinition") if k in detail}
    container = {k: v for k, v in (detail.get("container") or {}).items() if k in ("exitCode", "reason")}
    if container:
        out["container"] = container
    ap = detail.get("arrayProperties") or {}
    if ap:
        out["arrayProperties"] = {k: ap[k] for k in ("size", "index") if k in ap}
    return out


def merged(base: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    """`base` with `extra` merged in, nested mappings key by key."""
    out = copy.deepcopy(base)
    for k, v in (extra or {}).items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@contextlib.asynccontextmanager
async def plugin_server(moto: MotoServer, batch: ScriptedBatch, config: dict[str, Any] | None = None
                        ) -> AsyncIterator[Plugin]:
    """The suite's plugin server (tests/conftest.py `plugin_server`; the function-scoped `start_plugin` fixture
    cannot be shared by a module) with CHAR_CONFIG deep-merged with `config`, its batch client answered by
    `batch`."""
    async with suite_plugin_server(merged(CHAR_CONFIG, config), moto.endpoint, batch.install) as plugin:
        yield plugin


# -- AWS-shaped job details ---------------------------------------------------------------------------------------

def stream(n: int) -> str:
    """A CloudWatch log stream name as AWS Batch makes them (<definition>/default/<ECS task id>)."""
    return f"flyte-app/default/{n:032x}"


def attempt(*, exit_code: int | None = None, stream_name: str | None = None, reason: str | None = None,
            container_reason: str | None = None, started: int = 0) -> dict[str, Any]:
    """One finished attempt of `attempts[]`."""
    container: dict[str, Any] = {"taskArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/flyte-ce/{started:032x}"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    if container_reason:
        container["reason"] = container_reason
    if stream_name:
        container["logStreamName"] = stream_name
    out: dict[str, Any] = {"container": container, "startedAt": T0 + 10_000 + started,
                           "stoppedAt": T0 + 50_000 + started}
    if reason:
        out["statusReason"] = reason
    return out


def job_detail(status: str, *, reason: str | None = None, exit_code: int | None = None,
               container_reason: str | None = None, stream_name: str | None = None,
               attempts: list[dict[str, Any]] | None = None, log_configuration: dict[str, Any] | None = None,
               summary: dict[str, int] | None = None, size: int | None = None) -> dict[str, Any]:
    """An AWS JobDetail (DescribeJobs), with the fields AWS reports in that status."""
    container: dict[str, Any] = {"image": "ghcr.io/example/app:v1", "command": ["pyflyte-execute"],
                                 "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                          {"type": "MEMORY", "value": "1024"}]}
    if exit_code is not None:
        container["exitCode"] = exit_code
    if container_reason:
        container["reason"] = container_reason
    if stream_name:
        container["logStreamName"] = stream_name
    if log_configuration is not None:
        container["logConfiguration"] = log_configuration
    d: dict[str, Any] = {"status": status, "container": container, "attempts": attempts or [],
                         "dependsOn": [], "tags": {}}
    if reason:
        d["statusReason"] = reason
    if status in ("STARTING", "RUNNING", "SUCCEEDED", "FAILED") and (stream_name or status != "FAILED"):
        d["startedAt"] = T0 + 10_000
    if status in ("SUCCEEDED", "FAILED"):
        d["stoppedAt"] = T0 + 50_000
    if summary is not None or size is not None:
        d["arrayProperties"] = {}
        if summary is not None:
            d["arrayProperties"]["statusSummary"] = summary
        if size is not None:
            d["arrayProperties"]["size"] = size
    return d


def status_summary(**counts: int) -> dict[str, int]:
    """An array parent's `statusSummary`: AWS reports every status, zeros included."""
    statuses = ("STARTING", "FAILED", "RUNNING", "SUCCEEDED", "RUNNABLE", "SUBMITTED", "PENDING")
    unknown = set(counts) - set(statuses)
    assert not unknown, unknown
    return {s: counts.get(s, 0) for s in statuses}


# -- what a task writes to S3 -------------------------------------------------------------------------------------

def put_object(moto: MotoServer, uri: str, data: bytes) -> None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    moto.client("s3").put_object(Bucket=bucket, Key=key, Body=data)


def get_object(moto: MotoServer, uri: str) -> bytes | None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        return bytes(moto.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    except moto.client("s3").exceptions.NoSuchKey:
        return None


def error_pb(message: str, recoverable: bool, code: str = "USER") -> bytes:
    """flytekit's error.pb."""
    kind = errors_pb2.ContainerError.RECOVERABLE if recoverable else errors_pb2.ContainerError.NON_RECOVERABLE
    return errors_pb2.ErrorDocument(error=errors_pb2.ContainerError(code=code, message=message, kind=kind)
                                    ).SerializeToString()


def int_outputs(**values: int) -> bytes:
    """flytekit's outputs.pb of integer outputs."""
    return literal_map(values, dict.fromkeys(values, int)).SerializeToString()


# -- answers --------------------------------------------------------------------------------------------------------

async def get_task(plugin: Plugin, meta: bytes, task_type: str) -> agent_pb2.Resource:
    resp = await plugin.agents.GetTask(agent_pb2.GetTaskRequest(
        resource_meta=meta, task_category=agent_pb2.TaskCategory(name=task_type, version=TASK_VERSIONS.get(task_type, 0))),
        timeout=20)
    return resp.resource


def resource_record(res: agent_pb2.Resource) -> dict[str, Any]:
    return {
        "phase": Phase.Phase.Name(res.phase),
        "message": res.message,
        "log_links": [json_format.MessageToDict(link) for link in res.log_links],
        "outputs": json_format.MessageToDict(res.outputs) if res.HasField("outputs") else None,
        "custom_info": json_format.MessageToDict(res.custom_info) if res.HasField("custom_info") else None,
    }


def resource_meta_record(meta: bytes) -> dict[str, Any]:
    """The resource meta CreateTask returned, as JSON (propeller stores it: its content is part of the contract)."""
    from aws_array_plugin.resource_meta import decode

    record: dict[str, Any] = json_format.MessageToDict(decode(meta))
    return record


def job_ids(meta: bytes) -> list[str]:
    """The AWS job ids in a resource meta CreateTask returned (none while waiting to submit, or if rejected)."""
    return [str(i) for i in resource_meta_record(meta).get("jobIds", [])]


def literal_map_record(data: bytes | None) -> Any:
    return None if data is None else json_format.MessageToDict(literals_pb2.LiteralMap.FromString(data))


class Recorder:
    """One case's record: every GetTask answer in order, each with the state-changing Batch calls (TerminateJob)
    the service made since the previous step."""

    def __init__(self, batch: ScriptedBatch, job_ids: list[str]) -> None:
        self.batch = batch
        self.job_ids = job_ids  # the case's own jobs (filled as it creates them): `batch` may serve other cases
        self.steps: list[dict[str, Any]] = []
        self._terminations_seen = len(batch.terminations)

    def _new_terminations(self) -> list[dict[str, Any]]:
        new = self.batch.terminations[self._terminations_seen:]
        self._terminations_seen = len(self.batch.terminations)
        return [dict(t) for t in new if str(t.get("jobId", "")).split(":")[0] in self.job_ids]

    async def get(self, step: str, plugin: Plugin, meta: bytes, task_type: str) -> agent_pb2.Resource:
        res = await get_task(plugin, meta, task_type)
        self.steps.append({"step": step, "answer": resource_record(res), "TerminateJob": self._new_terminations()})
        return res

    def note(self, step: str, **data: Any) -> None:
        """A step that is not a GetTask (DeleteTask, an object the service wrote)."""
        self.steps.append({"step": step, **data, "TerminateJob": self._new_terminations()})


# -- normalization and goldens -------------------------------------------------------------------------------------

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Whole seconds a job has waited, measured by the service's clock: timing, not behaviour.
_ELAPSED = re.compile(r"(RUNNABLE for )\d+(s)")


def normalize(value: Any, known_ids: list[str] | None = None) -> Any:
    """Job ids (moto's UUIDs) -> `<job-0>`, `<job-1>`, ... in the order of `known_ids`, then of appearance, and
    the elapsed seconds of a RUNNABLE wait -> `<n>`. Nothing else is touched."""
    names: dict[str, str] = {}
    for job_id in known_ids or []:
        names.setdefault(job_id, f"<job-{len(names)}>")

    def text(s: str) -> str:
        s = _UUID.sub(lambda m: names.setdefault(m.group(0), f"<job-{len(names)}>"), s)
        return _ELAPSED.sub(r"\1<n>\2", s)

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return text(v)
        if isinstance(v, dict):
            return {text(str(k)): walk(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [walk(x) for x in v]
        return v

    return walk(value)


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def check_golden(group: str, case: str, actual: Any) -> None:
    """Compare `actual` (JSON-able) with golden/<group>/<case>.json exactly; UPDATE_GOLDEN=1 rewrites the file."""
    path = GOLDEN_DIR / group / f"{case}.json"
    text = _dump(json.loads(json.dumps(actual)))
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        return
    if not path.exists():
        pytest.fail(f"[{group}/{case}] no golden file {path.relative_to(GOLDEN_DIR.parent)}: run "
                    f"`UPDATE_GOLDEN=1 .venv/bin/pytest tests/characterization` and review it\n"
                    f"today's answer:\n{text}", pytrace=False)
    expected = path.read_text()
    if json.loads(expected) != json.loads(text):
        diff = "\n".join(difflib.unified_diff(_dump(json.loads(expected)).splitlines(), text.splitlines(),
                                              f"golden/{group}/{case}.json", f"{case} (today)", lineterm=""))
        pytest.fail(f"[{group}/{case}] the service's answers differ from the golden file "
                    f"(- golden, + today):\n{diff}", pytrace=False)


def check_no_orphan_goldens(group: str, cases: list[str]) -> None:
    """Every golden/<group>/*.json belongs to a case (UPDATE_GOLDEN=1 deletes the others)."""
    orphans = sorted(p for p in (GOLDEN_DIR / group).glob("*.json") if p.stem not in cases)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        for path in orphans:
            path.unlink()
        return
    if orphans:
        pytest.fail(f"[{group}] golden files of no case: {', '.join(p.name for p in orphans)} (a case was renamed or "
                    "removed: `UPDATE_GOLDEN=1 .venv/bin/pytest tests/characterization` deletes them)", pytrace=False)
