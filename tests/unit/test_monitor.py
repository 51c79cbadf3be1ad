"""The monitor's verdicts and policies, on the in-memory FakeAws with a fake clock: no server, no emulator, no
waiting. (The characterization tests pin the same answers through the real gRPC server.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from flyteidl.core import errors_pb2, literals_pb2

from aws_array_plugin.aws_calls import AwsUnavailable
from aws_array_plugin.config import load_config
from aws_array_plugin.metrics import Metrics
from aws_array_plugin.monitor import Monitor, MonitorPolicy
from aws_array_plugin.resource_meta import ARRAY, SINGLE, ResourceMeta
from aws_array_plugin.status_engine import StatusEngine
from aws_array_plugin.storage import S3Store
from aws_array_plugin.task_status import Phase, TaskStatus
from aws_array_plugin.testing import FakeAws, FakeClock

PREFIX = "s3://flyte-data/metadata/run/n0/data/0"
QUEUE = "default"


@dataclass
class World:
    aws: FakeAws
    clock: FakeClock
    engine: StatusEngine
    monitor: Monitor

    async def status(self, meta: ResourceMeta) -> TaskStatus:
        self.clock.advance(1.0)  # past maxStaleness: every call describes again
        return await self.monitor.status(meta, list(meta.job_ids))


def _world(status: dict[str, Any] | None = None, outputs: dict[str, Any] | None = None) -> World:
    config = load_config({"defaultQueue": QUEUE, "outputs": outputs or {},
                          "status": {"maxStaleness": "0.5s", "batchWindow": "0s", **(status or {})}})
    aws, clock, metrics = FakeAws(), FakeClock(), Metrics()
    engine = StatusEngine(aws, config.status, metrics, clock=clock)
    monitor = Monitor(engine, S3Store(aws), MonitorPolicy.from_config(config), metrics, clock=clock)
    return World(aws, clock, engine, monitor)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = _world({"missingJobGrace": "60s", "misconfigurationDwell": "30s", "failureDetailsWait": "20s"})
    w.engine.start()
    yield w
    await w.engine.stop()


def _single(aws: FakeAws, **detail: Any) -> ResourceMeta:
    job = aws.add_job("task", QUEUE, **detail)
    return ResourceMeta(kind=SINGLE, region="us-east-1", output_prefix=PREFIX, job_ids=[job], output_names=["o0"])


def _error_pb(message: str, recoverable: bool) -> bytes:
    kind = errors_pb2.ContainerError.RECOVERABLE if recoverable else errors_pb2.ContainerError.NON_RECOVERABLE
    return errors_pb2.ErrorDocument(error=errors_pb2.ContainerError(code="USER", message=message, kind=kind)
                                    ).SerializeToString()


def _int_outputs(**values: int) -> bytes:
    lm = literals_pb2.LiteralMap()
    for name, value in values.items():
        lm.literals[name].scalar.primitive.integer = value
    return lm.SerializeToString()


SINGLE_CASES = [
    ("submitted", {"status": "SUBMITTED"}, {}, Phase.QUEUED, "AWS Batch job is SUBMITTED"),
    ("runnable with a capacity reason", {"status": "RUNNABLE", "statusReason": "CAPACITY:INSUFFICIENT_INSTANCE"}, {},
     Phase.QUEUED, "RUNNABLE: CAPACITY:INSUFFICIENT_INSTANCE"),
    ("starting", {"status": "STARTING"}, {}, Phase.INITIALIZING, "AWS Batch job is STARTING"),
    ("running, second attempt", {"status": "RUNNING", "attempts": [{"container": {"exitCode": 1}}]}, {},
     Phase.RUNNING, "running (attempt 2)"),
    ("succeeded with outputs", {"status": "SUCCEEDED"}, {"0/outputs.pb": _int_outputs(o0=7)}, Phase.SUCCEEDED,
     "succeeded"),
    ("succeeded without outputs", {"status": "SUCCEEDED"}, {}, Phase.RETRYABLE_FAILED,
     f"the job succeeded but wrote no {PREFIX}/0/outputs.pb"),
    ("succeeded with an error document", {"status": "SUCCEEDED"}, {"0/error.pb": _error_pb("boom", False)},
     Phase.FAILED, "boom"),
    ("user error", {"status": "FAILED", "container": {"exitCode": 1}}, {"0/error.pb": _error_pb("bad x", False)},
     Phase.FAILED, "bad x"),
    ("recoverable user error", {"status": "FAILED", "container": {"exitCode": 1}},
     {"0/error.pb": _error_pb("try again", True)}, Phase.RETRYABLE_FAILED, "try again"),
    ("spot reclaimed", {"status": "FAILED", "statusReason": "Host EC2 (instance i-1) terminated."}, {},
     Phase.RETRYABLE_FAILED, "infrastructure failure, retryable"),
    ("image gone", {"status": "FAILED", "statusReason": "CannotPullContainerError: manifest unknown"}, {},
     Phase.FAILED, "the image cannot be pulled"),
]


@pytest.mark.parametrize(("case", "detail", "files", "phase", "message"), SINGLE_CASES,
                         ids=[c[0] for c in SINGLE_CASES])
async def test_single_job_verdicts(world: World, case: str, detail: dict[str, Any], files: dict[str, bytes],
                                   phase: Phase, message: str) -> None:
    for name, data in files.items():
        world.aws.put(f"{PREFIX}/{name}", data)
    meta = _single(world.aws, **detail)
    status = await world.status(meta)
    assert (status.phase, status.message.startswith(message)) == (phase, True), status
    assert status.links[0].name == "AWS Batch job" and status.links[0].show_while_pending
    if phase == Phase.SUCCEEDED:
        assert status.outputs == _int_outputs(o0=7)


async def test_a_job_aws_does_not_know_fails_retryably_only_after_the_grace(world: World) -> None:
    meta = _single(world.aws, status="RUNNING")
    world.aws.remove_job(meta.job_ids[0])
    assert (await world.status(meta)).message == "submitted; AWS Batch does not list the job yet"
    world.clock.advance(59)
    assert (await world.status(meta)).phase == Phase.QUEUED
    world.clock.advance(2)
    status = await world.status(meta)
    assert status.phase == Phase.RETRYABLE_FAILED
    assert status.message == f"AWS Batch does not know job {meta.job_ids[0]} in us-east-1 (expired or deleted)"


async def test_a_job_this_replica_submitted_that_aws_stops_returning_fails_after_the_grace(world: World) -> None:
    meta = _single(world.aws, status="RUNNING")
    world.engine.seed(meta.job_ids[0], QUEUE)  # as the submission worker does: the job is known without a describe
    world.aws.remove_job(meta.job_ids[0])
    assert (await world.status(meta)).phase == Phase.QUEUED
    world.clock.advance(61)
    status = await world.status(meta)
    assert status.phase == Phase.RETRYABLE_FAILED and "does not know job" in status.message


async def test_a_misconfigured_runnable_job_fails_after_the_dwell_and_is_terminated_once(world: World) -> None:
    reason = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - no compute environment has enough memory"
    meta = _single(world.aws, status="RUNNABLE", statusReason=reason)
    assert (await world.status(meta)).phase == Phase.QUEUED
    world.clock.advance(28)
    assert (await world.status(meta)).phase == Phase.QUEUED
    assert world.aws.sent("terminate_job") == []
    world.clock.advance(2)
    status = await world.status(meta)
    assert status.phase == Phase.FAILED
    assert status.message.startswith("aws-array-plugin: RUNNABLE for 3") and reason in status.message
    world.aws.update_job(meta.job_ids[0], status="RUNNABLE")  # AWS has not caught up yet
    await world.status(meta)
    (terminated,) = world.aws.sent("terminate_job")
    assert terminated["jobId"] == meta.job_ids[0] and terminated["reason"] == status.message


def _array(aws: FakeAws, children: list[dict[str, Any]], min_successes: int) -> ResourceMeta:
    parent = aws.add_job("map", QUEUE, size=len(children), status="PENDING")
    aws.set_children(parent, children)
    return ResourceMeta(kind=ARRAY, region="us-east-1", output_prefix=PREFIX, job_ids=[parent], size=len(children),
                        min_successes=min_successes, output_names=["o0"])


async def test_an_array_that_can_no_longer_succeed_waits_for_its_errors_then_fails_naming_them(world: World) -> None:
    failed = {"status": "FAILED", "container": {"exitCode": 1}}
    meta = _array(world.aws, [{"status": "SUCCEEDED"}, failed, failed, {"status": "RUNNING"}], min_successes=3)
    for i in (1, 2):
        world.aws.put(f"{PREFIX}/{i}/error.pb", _error_pb(f"ValueError: child {i} is unlucky", False))
    status = await world.status(meta)
    # The threshold is out of reach: the rest is terminated at once, the answer waits for the failed children.
    assert [t["jobId"] for t in world.aws.sent("terminate_job")] == [meta.job_ids[0]]
    for _ in range(20):
        if status.phase != Phase.RUNNING:
            break
        status = await world.status(meta)
    assert status.phase == Phase.FAILED, status
    assert "2 of 4 children failed" in status.message
    assert "[1]: ValueError: child 1 is unlucky" in status.message
    assert "[2]: ValueError: child 2 is unlucky" in status.message
    assert status.custom == {"children": {"size": 4, "queued": 0, "starting": 0, "running": 1, "succeeded": 1,
                                          "failed": 2}, "minSuccesses": 3}
    assert {link.name for link in status.links} >= {"AWS Batch array job"}


async def test_a_failing_array_answers_after_the_details_wait_even_when_its_errors_are_unknown(world: World) -> None:
    failed = {"status": "FAILED", "container": {"exitCode": 1}}
    meta = _array(world.aws, [failed, failed, {"status": "RUNNING"}], min_successes=3)
    world.aws.fail("list_jobs", AwsUnavailable(
        "list_jobs", "throttled", "TooManyRequestsException"), times=None)
    status = await world.status(meta)
    assert status.phase == Phase.RUNNING and status.message.endswith("collecting the failed children's errors")
    world.clock.advance(17)  # each status() also advances the clock by 1 s
    assert (await world.status(meta)).phase == Phase.RUNNING
    world.clock.advance(2)
    status = await world.status(meta)
    assert status.phase == Phase.RETRYABLE_FAILED  # why they failed is unknown: a retry may well succeed
    assert "children failed" in status.message


async def test_an_array_that_succeeds_assembles_its_children_outputs(world: World) -> None:
    meta = _array(world.aws, [{"status": "SUCCEEDED"}, {"status": "SUCCEEDED"}, {"status": "FAILED"}],
                  min_successes=2)
    world.aws.update_job(meta.job_ids[0], status="SUCCEEDED")
    for i in (0, 1):
        world.aws.put(f"{PREFIX}/{i}/outputs.pb", _int_outputs(o0=10 + i))
    status = await world.status(meta)
    assert status.phase == Phase.SUCCEEDED
    assert status.outputs is not None
    collection = literals_pb2.LiteralMap.FromString(status.outputs).literals["o0"].collection.literals
    assert [lit.scalar.primitive.integer for lit in collection[:2]] == [10, 11]
    assert collection[2].scalar.HasField("none_type")


async def test_outputs_too_big_to_answer_inline_are_written_for_the_scheduler() -> None:
    w = _world(outputs={"inlineMaxBytes": 0})
    w.engine.start()
    try:
        w.aws.put(f"{PREFIX}/0/outputs.pb", _int_outputs(o0=7))
        meta = _single(w.aws, status="SUCCEEDED")
        status = await w.status(meta)
        assert status.phase == Phase.SUCCEEDED and status.outputs is None
        assert w.aws.get(f"{PREFIX}/outputs.pb") == _int_outputs(o0=7)
    finally:
        await w.engine.stop()
