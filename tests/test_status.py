"""GetTask against the emulated AWS Batch, where jobs really run as local processes: phases, outputs,
errors, log links, early array failure, a fresh process, and throttling."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import errors_pb2, execution_pb2, literals_pb2

from aws_array_plugin.resource_meta import decode
from aws_array_plugin_demo.propeller import shell
from tests.conftest import Plugin, StartPlugin
from tests.support import get, int_outputs, s3
from tests.templates import create_request, literal_map, task_template

Phase = execution_pb2.TaskExecution
TERMINAL = {Phase.SUCCEEDED, Phase.FAILED, Phase.RETRYABLE_FAILED}
# Every test runs jobs on the emulator and polls them to the end: about a minute for the module.
pytestmark = pytest.mark.slow
# The collection propeller's array plugin assembles (flyteplugins array/outputs.go) for a map task of 5
# whose child 2 failed: each element the child's plain literal, a scalar none_type for the failed one.
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def put(emulator: Any, uri: str, data: bytes) -> None:
    bucket, _, key = uri[5:].partition("/")
    s3(emulator).put_object(Bucket=bucket, Key=key, Body=data)


def error_pb(message: str, recoverable: bool) -> bytes:
    kind = errors_pb2.ContainerError.RECOVERABLE if recoverable else errors_pb2.ContainerError.NON_RECOVERABLE
    return errors_pb2.ErrorDocument(error=errors_pb2.ContainerError(code="USER", message=message, kind=kind)
                                    ).SerializeToString()


def shell_request(entity: str, script: str, execution: str, **kw: Any) -> agent_pb2.CreateTaskRequest:
    """A real flytekit template whose container runs `sh -c script` instead of pyflyte (the status engine
    is under test here; tests/test_e2e.py runs real flytekit code)."""
    return shell(create_request(task_template(entity), execution=execution, **kw), script)


async def poll(plugin: Plugin, meta: bytes, task_type: str = "aws-batch", until: set[int] | None = None,
               timeout: float = 40) -> tuple[agent_pb2.Resource, list[int]]:
    until = until or TERMINAL
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        res = await get(plugin, meta, task_type)
        if not seen or seen[-1] != res.phase:
            seen.append(res.phase)
        if res.phase in until:
            return res, seen
        assert time.monotonic() < deadline, f"phases seen {seen}, last message {res.message!r}"
        await asyncio.sleep(0.1)


async def create(plugin: Plugin, req: agent_pb2.CreateTaskRequest) -> bytes:
    return bytes((await plugin.agents.CreateTask(req, timeout=10)).resource_meta)


async def test_single_job_walks_every_phase_and_returns_its_outputs(start_plugin: StartPlugin, emulator: Any) -> None:
    req = shell_request("awsbatch_minimal_task", "echo working; sleep 1.5", "single-ok")
    put(emulator, f"{req.output_prefix}/0/outputs.pb", int_outputs(o0=84))  # flytekit writes under /0
    async with start_plugin(endpoint=emulator.endpoint) as plugin:
        meta = await create(plugin, req)
        res, seen = await poll(plugin, meta)
    assert res.phase == Phase.SUCCEEDED, res.message
    assert seen[0] == Phase.QUEUED and Phase.RUNNING in seen
    assert seen.index(Phase.QUEUED) < seen.index(Phase.RUNNING) < seen.index(Phase.SUCCEEDED)
    assert res.outputs.literals["o0"].scalar.primitive.integer == 84
    names = [link.name for link in res.log_links]
    assert names == ["AWS Batch job", "CloudWatch logs (attempt 1)"]
    assert "#logsV2:log-groups/log-group/$252Faws$252Fbatch$252Fjob/log-events/" in res.log_links[1].uri


async def test_starting_maps_to_initializing(start_plugin: StartPlugin, emulator: Any) -> None:
    from aws_batch_emulator import Emulator

    with Emulator(port=0, step=1.0, concurrency=2) as slow:
        req = shell_request("awsbatch_minimal_task", "true", "single-init")
        async with start_plugin(endpoint=slow.endpoint) as plugin:
            meta = await create(plugin, req)
            _, seen = await poll(plugin, meta, until={Phase.RUNNING, *TERMINAL})
    assert Phase.INITIALIZING in seen, seen


@pytest.mark.parametrize(("script", "error", "phase", "fragment"), [
    ("exit 3", None, Phase.FAILED, "exit code 3"),
    ("exit 1", error_pb("ValueError: x must be positive", recoverable=False), Phase.FAILED,
     "ValueError: x must be positive"),
    ("exit 1", error_pb("ConnectionError: S3 unreachable", recoverable=True), Phase.RETRYABLE_FAILED,
     "ConnectionError: S3 unreachable"),
    ("exit 0", error_pb("flytekit wrote an error but exited 0", recoverable=False), Phase.FAILED,
     "flytekit wrote an error"),
])
async def test_single_job_failures(start_plugin: StartPlugin, emulator: Any, script: str, error: bytes | None,
                                   phase: int, fragment: str) -> None:
    req = shell_request("awsbatch_minimal_task", script, f"fail-{abs(hash((script, error)))}")
    if error:
        put(emulator, f"{req.output_prefix}/0/error.pb", error)
    async with start_plugin(endpoint=emulator.endpoint) as plugin:
        res, _ = await poll(plugin, await create(plugin, req))
    assert res.phase == phase, res.message
    assert fragment in res.message


async def test_spot_reclaim_is_retryable(start_plugin: StartPlugin, emulator: Any) -> None:
    req = shell_request("awsbatch_minimal_task", "sleep 30", "spot")
    async with start_plugin(endpoint=emulator.endpoint) as plugin:
        meta = await create(plugin, req)
        await poll(plugin, meta, until={Phase.RUNNING})
        boto3.client("batch", **emulator.info.client_kwargs()).terminate_job(
            jobId=decode(meta).job_ids[0], reason="Host EC2 (instance i-0123456789abcdef0) terminated.")
        res, _ = await poll(plugin, meta)
    assert res.phase == Phase.RETRYABLE_FAILED
    assert "Host EC2 (instance i-0123456789abcdef0) terminated." in res.message


async def test_succeeded_without_outputs_is_retryable(start_plugin: StartPlugin, emulator: Any) -> None:
    req = shell_request("awsbatch_minimal_task", "true", "no-outputs")
    async with start_plugin(endpoint=emulator.endpoint) as plugin:
        res, _ = await poll(plugin, await create(plugin, req))
    assert res.phase == Phase.RETRYABLE_FAILED and "outputs.pb" in res.message


def map_request(script: str, execution: str, n: int = 5) -> agent_pb2.CreateTaskRequest:
    req = shell_request("square_legacy_map", script, execution,
                        inputs=literal_map({"x": list(range(1, n + 1))}, {"x": list[int]}))
    return req


async def test_array_above_threshold_assembles_outputs_with_none_for_the_failed_child(
        start_plugin: StartPlugin, emulator: Any) -> None:
    req = map_request('[ "$AWS_BATCH_JOB_ARRAY_INDEX" = 2 ] && exit 1; sleep 0.5', "map-ok")
    for i in (0, 1, 3, 4):
        put(emulator, f"{req.output_prefix}/{i}/outputs.pb", int_outputs(o0=(i + 1) ** 2))
    put(emulator, f"{req.output_prefix}/2/error.pb", error_pb("ValueError: three is unlucky", recoverable=False))
    async with start_plugin(endpoint=emulator.endpoint) as plugin:
        meta = await create(plugin, req)
        running, _ = await poll(plugin, meta, "container_array", until={Phase.RUNNING, *TERMINAL})
        res, _ = await poll(plugin, meta, "container_array")
    assert running.phase in (Phase.RUNNING, Phase.SUCCEEDED)
    assert res.phase == Phase.SUCCEEDED, res.message
    expected = literals_pb2.LiteralMap.FromString((FIXTURES / "map_outputs_assembled.pb").read_bytes())
    assert res.outputs == expected
    assert res.custom_info["children"]["succeeded"] == 4 and res.custom_info["children"]["failed"] == 1


async def test_array_fails_early_and_terminates_the_rest(start_plugin: StartPlugin, emulator: Any) -> None:
    req = map_request('[ "$AWS_BATCH_JOB_ARRAY_INDEX" -lt 2 ] && exit 1; sleep 60', "map-early")
    for i in (0, 1):
        put(emulator, f"{req.output_prefix}/{i}/error.pb", error_pb(f"ValueError: bad input {i}", recoverable=False))
    async with start_plugin(endpoint=emulator.endpoint) as plugin:
        meta = await create(plugin, req)
        started = time.monotonic()
        res, _ = await poll(plugin, meta, "container_array")
        elapsed = time.monotonic() - started
        parent = decode(meta).job_ids[0]
        batch = boto3.client("batch", **emulator.info.client_kwargs())
        deadline = time.monotonic() + 15
        while True:
            detail = batch.describe_jobs(jobs=[parent])["jobs"][0]
            if detail["status"] == "FAILED" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    assert res.phase == Phase.FAILED, res.message  # both failures are user errors: permanent
    assert elapsed < 30  # did not wait for the 60 s children
    assert "[0]: ValueError: bad input 0" in res.message and "[1]: ValueError: bad input 1" in res.message
    assert "2 of 5 children failed" in res.message
    assert detail["status"] == "FAILED"
    summary = detail["arrayProperties"]["statusSummary"]
    assert summary["RUNNING"] == 0 and summary["RUNNABLE"] == 0 and summary["FAILED"] == 5
    assert any(link.name.startswith("Child 0 logs") for link in res.log_links)


async def test_log_links_for_a_running_array(start_plugin: StartPlugin, emulator: Any) -> None:
    req = map_request("sleep 20", "map-links", n=3)
    async with start_plugin(endpoint=emulator.endpoint) as plugin:
        meta = await create(plugin, req)
        res, _ = await poll(plugin, meta, "container_array", until={Phase.RUNNING})
        # Children reach RUNNING one by one; a second look picks up their log streams.
        await asyncio.sleep(1.0)
        res = await get(plugin, meta, "container_array")
        await plugin.agents.DeleteTask(agent_pb2.DeleteTaskRequest(resource_meta=meta), timeout=10)
    names = [link.name for link in res.log_links]
    assert names[0] == "AWS Batch array job"
    assert any(n.startswith("Child ") and "RUNNING" in n for n in names[1:]), names
    assert "running" in res.message


async def test_a_fresh_process_answers_from_the_resource_meta_alone(start_plugin: StartPlugin, emulator: Any) -> None:
    req = shell_request("awsbatch_minimal_task", "sleep 1", "fresh")
    put(emulator, f"{req.output_prefix}/0/outputs.pb", int_outputs(o0=1))
    async with start_plugin(endpoint=emulator.endpoint) as first:
        meta = await create(first, req)
    async with start_plugin(endpoint=emulator.endpoint) as second:
        res, _ = await poll(second, meta)
        assert res.phase == Phase.SUCCEEDED
        assert second.sent("SubmitJob") == []


async def test_throttled_aws_never_becomes_a_grpc_error(start_plugin: StartPlugin, emulator: Any) -> None:
    req = shell_request("awsbatch_minimal_task", "sleep 2", "throttled")
    put(emulator, f"{req.output_prefix}/0/outputs.pb", int_outputs(o0=2))
    async with start_plugin(endpoint=emulator.endpoint) as plugin:
        meta = await create(plugin, req)
        await poll(plugin, meta, until={Phase.RUNNING})
        emulator.set_faults({"DescribeJobs": {"throttle": 1.0}})
        try:
            for _ in range(4):
                await asyncio.sleep(0.7)  # older than maxStaleness: every GetTask wants AWS
                res = await get(plugin, meta)  # raises if the RPC fails
                assert res.phase == Phase.RUNNING
            assert "stale" in res.message
        finally:
            emulator.clear_faults()
        res, _ = await poll(plugin, meta)
    assert res.phase == Phase.SUCCEEDED


async def test_large_assembled_outputs_are_written_not_inlined(start_plugin: StartPlugin, emulator: Any) -> None:
    req = map_request("true", "map-big-outputs", n=3)
    for i in range(3):
        put(emulator, f"{req.output_prefix}/{i}/outputs.pb", int_outputs(o0=i))
    async with start_plugin({"outputs": {"inlineMaxBytes": 0}}, endpoint=emulator.endpoint) as plugin:
        res, _ = await poll(plugin, await create(plugin, req), "container_array")
    assert res.phase == Phase.SUCCEEDED
    assert not res.HasField("outputs")  # propeller reads <output_prefix>/outputs.pb itself
    bucket, _, key = req.output_prefix[5:].partition("/")
    written = literals_pb2.LiteralMap.FromString(s3(emulator).get_object(Bucket=bucket, Key=f"{key}/outputs.pb")["Body"].read())
    assert [lit.scalar.primitive.integer for lit in written.literals["o0"].collection.literals] == [0, 1, 2]


async def test_get_task_logs_of_a_rejected_task_names_the_rejection(start_plugin: StartPlugin, emulator: Any) -> None:
    import grpc

    req = create_request(task_template("awsbatch_task"), execution="logs-rejected")  # its secret is not mapped
    async with start_plugin(endpoint=emulator.endpoint) as plugin:
        meta = await create(plugin, req)
        call = plugin.agents.GetTaskLogs(agent_pb2.GetTaskLogsRequest(resource_meta=meta), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in call:
                pass
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "secret 'aws-batch/api-token'" in (err.value.details() or "")


async def test_long_runnable_with_a_misconfiguration_fails_after_the_dwell(start_plugin: StartPlugin, emulator: Any) -> None:
    from flyteidl.core import tasks_pb2

    req = shell_request("awsbatch_minimal_task", "true", "needs-gpu")
    req.template.container.resources.limits.add(name=tasks_pb2.Resources.GPU, value="1")  # the CE has no GPUs
    config = {"status": {"refreshInterval": "1s", "maxStaleness": "0.5s", "misconfigurationDwell": "3s"}}
    async with start_plugin(config, endpoint=emulator.endpoint) as plugin:
        meta = await create(plugin, req)
        deadline = time.monotonic() + 20
        while True:
            first = await get(plugin, meta)
            if "MISCONFIGURATION" in first.message or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert first.phase == Phase.QUEUED
        assert "RUNNABLE: MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT" in first.message
        res, _ = await poll(plugin, meta, timeout=30)
        job = boto3.client("batch", **emulator.info.client_kwargs()).describe_jobs(jobs=list(decode(meta).job_ids))["jobs"][0]
    assert res.phase == Phase.FAILED
    assert "RUNNABLE for" in res.message and "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT" in res.message
    assert job["status"] == "FAILED"  # terminated, so it does not wait in the queue forever


async def test_array_blocked_by_a_misconfiguration_says_why_and_fails_after_the_dwell(
        start_plugin: StartPlugin, emulator: Any) -> None:
    from flyteidl.core import tasks_pb2

    req = map_request("true", "map-needs-gpu", n=3)
    req.template.container.resources.limits.add(name=tasks_pb2.Resources.GPU, value="1")
    config = {"status": {"refreshInterval": "1s", "maxStaleness": "0.5s", "misconfigurationDwell": "3s"}}
    async with start_plugin(config, endpoint=emulator.endpoint) as plugin:
        meta = await create(plugin, req)
        deadline = time.monotonic() + 20
        while True:
            first = await get(plugin, meta, "container_array")
            if "MISCONFIGURATION" in first.message or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        assert first.phase == Phase.QUEUED and "RUNNABLE: MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT" in first.message
        res, _ = await poll(plugin, meta, "container_array", timeout=30)
    assert res.phase == Phase.FAILED and "children RUNNABLE for" in res.message
