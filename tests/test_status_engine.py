"""The status engine against the project's emulated AWS Batch: how many DescribeJobs calls it makes and with
which ids (counted from the requests the SDK sends), and what it keeps of each job. Time is a fake clock,
so "how old is this status" is exact; the AWS calls are real (HTTP to the emulator)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from aws_array_plugin.aws_calls import AwsApi, AwsUnavailable
from aws_array_plugin.config import load_config
from aws_array_plugin.job_details import decode_describe_jobs, slim
from aws_array_plugin.log_links import log_location
from aws_array_plugin.metrics import Metrics
from aws_array_plugin.status_engine import StatusEngine

INTERVAL = 10.0  # refreshInterval; maxStaleness is 12 s


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Engine:
    engine: StatusEngine
    api: AwsApi
    clock: Clock
    metrics: Metrics
    calls: list[list[str]] = field(default_factory=list)  # ids of each DescribeJobs request, in order

    def take_calls(self) -> list[list[str]]:
        calls, self.calls[:] = list(self.calls), []
        return calls


@pytest.fixture(scope="module")
def stuck_jobs(emulator: Any) -> Iterator[list[str]]:
    """400 jobs that stay RUNNABLE (they ask for more vCPUs than the compute environment has), so no process
    runs and their status never changes; terminated afterwards."""
    batch = boto3.client("batch", **emulator.info.client_kwargs())
    name = f"stuck-{uuid.uuid4().hex[:8]}"
    batch.register_job_definition(jobDefinitionName=name, type="container", containerProperties={
        "image": "busybox", "command": ["sleep", "1"],
        "environment": [{"name": "BULK", "value": "x" * 200}],
        "resourceRequirements": [{"type": "VCPU", "value": "4096"}, {"type": "MEMORY", "value": "512"}],
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/flyte/tasks"}},
    })
    ids = [batch.submit_job(jobName=f"{name}-{i}", jobQueue=emulator.info.queue, jobDefinition=name)["jobId"]
           for i in range(400)]
    yield ids
    for job_id in ids:
        batch.terminate_job(jobId=job_id, reason="test over")


@pytest.fixture
async def eng(emulator: Any) -> AsyncIterator[Engine]:
    config = load_config({"defaultQueue": emulator.info.queue, "status": {
        "refreshInterval": f"{INTERVAL}s", "maxStaleness": f"{INTERVAL * 1.2}s", "batchWindow": "0.01s"}})
    saved = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = emulator.info.endpoint
    metrics = Metrics()
    api = AwsApi(config, metrics)
    try:
        await api.start()
    finally:
        if saved is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = saved
    clock = Clock()
    engine = StatusEngine(api, config.status, metrics, clock=clock)
    e = Engine(engine, api, clock, metrics)

    def record(params: dict[str, Any], **_: Any) -> None:
        e.calls.append(list(params["jobs"]))

    api.client("batch").meta.events.register("provide-client-params.batch.DescribeJobs", record)
    engine.start()  # its refresher sleeps a real refreshInterval: the tests call refresh_once() themselves
    try:
        yield e
    finally:
        await engine.stop()
        await api.close()


async def settle(e: Engine) -> None:
    """Until no DescribeJobs is queued or in flight."""
    for _ in range(500):
        await asyncio.sleep(0.02)
        if not e.engine._pending:
            return
    raise AssertionError("describes still pending")


async def test_lookups_coalesce_into_calls_of_at_most_100_ids(eng: Engine, stuck_jobs: list[str]) -> None:
    ids = stuck_jobs[:250]
    jobs = await eng.engine.jobs(ids)
    assert sorted(len(c) for c in eng.take_calls()) == [50, 100, 100]
    assert {j.status for j in jobs} == {"RUNNABLE"}
    assert all((j.blocked_reason or "").startswith("MISCONFIGURATION:") for j in jobs)
    # Fresh enough now: asking again costs nothing.
    await eng.engine.jobs(ids)
    assert eng.take_calls() == []


async def test_job_details_are_slimmed_before_the_sdk_parses_them(eng: Engine, stuck_jobs: list[str]) -> None:
    job_id = stuck_jobs[0]
    raw = boto3.client("batch", region_name="us-east-1", endpoint_url=eng.api.client("batch").meta.endpoint_url,
                       aws_access_key_id="testing", aws_secret_access_key="testing").describe_jobs(jobs=[job_id])
    assert "command" in raw["jobs"][0]["container"] and "environment" in raw["jobs"][0]["container"]
    resp = await eng.api.call("describe", "batch", "describe_jobs", jobs=[job_id])
    (job,) = resp["jobs"]
    assert set(job["container"]) <= {"exitCode", "reason", "logStreamName", "logConfiguration"}
    assert "jobDefinition" not in job and "command" not in str(job) and "x" * 200 not in str(job)
    assert job["status"] == "RUNNABLE" and job["jobId"] == job_id
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    # What log links need survives.
    assert log_location(job, "/aws/batch/job", "us-east-1") == ("/flyte/tasks", "us-east-1")


def test_fast_decoding_keeps_what_the_sdk_would_for_every_kind_of_job(emulator: Any) -> None:
    """Finished jobs with attempts, an array parent, its children (one failed), a job still queued: the
    body decoded by `decode_describe_jobs` gives the same slim details as botocore's full parse."""
    batch = boto3.client("batch", **emulator.info.client_kwargs())
    name = f"kinds-{uuid.uuid4().hex[:8]}"
    batch.register_job_definition(jobDefinitionName=name, type="container", containerProperties={
        "image": "busybox", "command": ["sh", "-c", "echo hi; exit ${AWS_BATCH_JOB_ARRAY_INDEX:-0}"],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}],
    }, retryStrategy={"attempts": 2})
    single = batch.submit_job(jobName=f"{name}-one", jobQueue=emulator.info.queue, jobDefinition=name)["jobId"]
    parent = batch.submit_job(jobName=f"{name}-arr", jobQueue=emulator.info.queue, jobDefinition=name,
                              arrayProperties={"size": 2})["jobId"]
    ids = [single, parent, f"{parent}:0", f"{parent}:1"]
    for _ in range(300):
        if all(j["status"] in ("SUCCEEDED", "FAILED") for j in batch.describe_jobs(jobs=ids)["jobs"]):
            break
        time.sleep(0.1)
    bodies: list[bytes] = []
    batch.meta.events.register("before-parse.batch.DescribeJobs",
                               lambda response_dict, **_: bodies.append(response_dict["body"]))
    parsed = batch.describe_jobs(jobs=ids)["jobs"]
    assert {j["status"] for j in parsed} == {"SUCCEEDED", "FAILED"}
    assert any(len(j.get("attempts", [])) == 2 for j in parsed)  # the failed child was retried
    decoded = decode_describe_jobs(bodies[-1])
    assert decoded is not None
    assert [slim(j) for j in decoded["jobs"]] == [slim(j) for j in parsed]
    assert decode_describe_jobs(b'{"jobs": [{"jobId": 7}]}') is None  # off the model: the SDK parses it


async def test_requests_name_this_service_in_their_user_agent(eng: Engine, stuck_jobs: list[str]) -> None:
    agents: list[str | bytes] = []
    eng.api.client("batch").meta.events.register(
        "before-send.batch.DescribeJobs", lambda request, **_: agents.append(request.headers["User-Agent"]))
    await eng.api.call("describe", "batch", "describe_jobs", jobs=stuck_jobs[:1])
    assert len(agents) == 1
    agent = agents[0] if isinstance(agents[0], str) else agents[0].decode()
    assert agent.split()[-1] == "aws-array-plugin/0.1.0" and "botocore/" in agent


async def test_errors_are_still_parsed_by_the_sdk(eng: Engine, emulator: Any, stuck_jobs: list[str]) -> None:
    emulator.set_faults({"DescribeJobs": {"throttle": 1.0}})
    try:
        with pytest.raises(AwsUnavailable) as err:
            await eng.api.call("describe", "batch", "describe_jobs", max_attempts=2, jobs=stuck_jobs[:1])
    finally:
        emulator.set_faults({})
    assert err.value.outcome == "throttled"


async def test_a_refresh_pass_describes_every_tracked_job_in_full_calls(eng: Engine, stuck_jobs: list[str]) -> None:
    ids = stuck_jobs[:250]
    before = {j.job_id: j.detail for j in await eng.engine.jobs(ids)}
    eng.take_calls()
    eng.clock.now += INTERVAL
    assert eng.engine.refresh_once() == 250
    await settle(eng)
    assert sorted(len(c) for c in eng.take_calls()) == [50, 100, 100]
    # Nothing changed: each job keeps its detail object (no churn for the garbage collector).
    after = {j.job_id: j.detail for j in await eng.engine.jobs(ids)}
    assert all(after[i] is before[i] for i in ids)
    assert eng.take_calls() == []


async def test_the_pass_takes_jobs_that_would_be_stale_before_the_next_one(eng: Engine, stuck_jobs: list[str]) -> None:
    late, just_now = stuck_jobs[100:150], stuck_jobs[150:160]
    await eng.engine.jobs(late)
    eng.clock.now += 1.9
    await eng.engine.jobs(just_now)  # too fresh for `late` to be added to this call
    assert [len(c) for c in eng.take_calls()] == [50, 10]
    eng.clock.now += 0.1  # the pass: `late` is 2 s old, `just_now` 0.1 s
    assert eng.engine.refresh_once() == 50
    await settle(eng)
    assert [sorted(c) for c in eng.take_calls()] == [sorted(late)]
    # At the next pass (a little late) nothing is older than maxStaleness: no GetTask had to describe alone.
    eng.clock.now += INTERVAL * 1.1
    await eng.engine.jobs(late + just_now)
    assert eng.take_calls() == []


async def test_jobs_just_submitted_count_under_their_queue(eng: Engine) -> None:
    """Before any DescribeJobs, a job this replica submitted is in the tracked-jobs gauge under the queue it went
    to (name or ARN), never under an empty label, which Prometheus shows as a series without `queue`."""
    queue = f"q-{uuid.uuid4().hex[:6]}"
    eng.engine.seed_all([(f"seeded-{uuid.uuid4()}", f"arn:aws:batch:us-east-1:123456789012:job-queue/{queue}", None),
                         (f"seeded-{uuid.uuid4()}", queue, None)])
    eng.engine._publish_gauges()  # what the refresher does after each pass
    samples = {s.labels["queue"]: s.value for m in eng.metrics.registry.collect() if m.name.endswith("tracked_jobs")
               for s in m.samples}
    assert samples == {queue: 2}


async def test_jobs_just_submitted_fill_a_partial_call(eng: Engine, stuck_jobs: list[str]) -> None:
    seeded, asked = stuck_jobs[200:350], stuck_jobs[350:360]
    eng.engine.seed_all((job_id, "default", None) for job_id in seeded)
    eng.clock.now += INTERVAL * 0.6
    await eng.engine.jobs(asked)
    calls = eng.take_calls()
    assert len(calls) == 1 and len(calls[0]) == 100
    assert set(asked) <= set(calls[0]) and set(calls[0]) - set(asked) <= set(seeded)
    topped_up = [j for j in await eng.engine.jobs(seeded) if j.job_id in calls[0]]
    assert len(topped_up) == 90 and {j.status for j in topped_up} == {"RUNNABLE"}
