"""End to end: the plugin service, called over real gRPC like propeller calls it, submits to the emulated AWS
Batch, whose jobs run flytekit's real `pyflyte-execute` / `pyflyte-map-execute` as host processes reading
inputs.pb from and writing outputs.pb / error.pb to the emulated S3. Also runs `aws-array-plugin demo`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2

from aws_array_plugin_demo.propeller import TERMINAL
from tests.conftest import Plugin, StartPlugin
from tests.support import s3
from tests.templates import create_request, literal_map, task_template

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

Phase = execution_pb2.TaskExecution
ROOT = Path(__file__).resolve().parents[1]
DEMO = "aws_array_plugin_demo.workflows"
# Propeller passes execution env vars (task_execution_metadata.environment_variables) to the job: the host
# jobs import the task modules from this checkout; unbuffered so print() lines reach CloudWatch in order.
JOB_ENV = {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def read(emulator: Any, uri: str) -> bytes:
    bucket, key = split(uri)
    return bytes(s3(emulator).get_object(Bucket=bucket, Key=key)["Body"].read())


def keys_under(emulator: Any, prefix: str) -> set[str]:
    bucket, key = split(prefix)
    listed = s3(emulator).list_objects_v2(Bucket=bucket, Prefix=f"{key}/").get("Contents", [])
    return {str(o["Key"])[len(key) + 1:] for o in listed}


def propeller_request(entity: str, module: str, execution: str, inputs: literals_pb2.LiteralMap, emulator: Any,
                      ) -> agent_pb2.CreateTaskRequest:
    """The CreateTaskRequest propeller sends, after writing the node's inputs.pb where `--inputs` points."""
    req = create_request(task_template(entity, module=module), execution=execution, inputs=inputs, env=JOB_ENV)
    args = list(req.template.container.args)
    inputs_uri = args[args.index("--inputs") + 1]
    bucket, key = split(inputs_uri)
    s3(emulator).put_object(Bucket=bucket, Key=key, Body=inputs.SerializeToString())
    return req


async def run_to_end(plugin: Plugin, req: agent_pb2.CreateTaskRequest, timeout: float = 60
                     ) -> tuple[bytes, agent_pb2.Resource, list[int]]:
    """CreateTask, then GetTask as propeller polls it, until a terminal phase."""
    meta = bytes((await plugin.agents.CreateTask(req, timeout=10)).resource_meta)
    category = agent_pb2.TaskCategory(name=req.template.type, version=req.template.task_type_version)
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        resp = await plugin.agents.GetTask(agent_pb2.GetTaskRequest(
            resource_meta=meta, task_category=category, output_prefix=req.output_prefix), timeout=20)
        res = resp.resource
        if not seen or seen[-1] != res.phase:
            seen.append(res.phase)
        if res.phase in TERMINAL:
            return meta, res, seen
        assert time.monotonic() < deadline, f"phases seen {seen}, last message {res.message!r}"
        await asyncio.sleep(0.2)


async def task_logs(plugin: Plugin, meta: bytes, child: int | None = None) -> list[str]:
    metadata = (("child-index", str(child)),) if child is not None else None
    lines: list[str] = []
    async for part in plugin.agents.GetTaskLogs(agent_pb2.GetTaskLogsRequest(resource_meta=meta, lines=500),
                                                metadata=metadata, timeout=10):
        if part.HasField("body"):
            lines.extend(line.message for line in part.body.structured_lines)
    return lines


def integers(literal: literals_pb2.Literal) -> list[int | None]:
    return [None if lit.scalar.HasField("none_type") else lit.scalar.primitive.integer
            for lit in literal.collection.literals]


async def test_aws_batch_task_returns_what_flytekit_computed(start_plugin: StartPlugin, emulator: Any) -> None:
    inputs = literal_map({"name": "e2e", "values": [2, 3, 4]}, {"name": str, "values": list[int]})
    req = propeller_request("summarize", DEMO, "e2e-batch", inputs, emulator)
    async with start_plugin(endpoint=emulator.endpoint) as plugin:
        meta, res, seen = await run_to_end(plugin, req)
        logs = await task_logs(plugin, meta)
    assert res.phase == Phase.SUCCEEDED, res.message
    assert Phase.RUNNING in seen and seen[-1] == Phase.SUCCEEDED
    # The values the task's code computed (29 = 4 + 9 + 16), with its task env var.
    assert res.outputs.literals["o0"].scalar.primitive.integer == 29
    assert res.outputs.literals["o1"].scalar.primitive.string_value == "hello e2e, the sum of squares is 29"
    # flytekit wrote them under the aws-batch `/0` prefix, in the emulated S3, and that is what came back.
    written = literals_pb2.LiteralMap.FromString(read(emulator, f"{req.output_prefix}/0/outputs.pb"))
    assert written == res.outputs
    assert "0/outputs.pb" in keys_under(emulator, req.output_prefix)
    assert "summarize: sum of squares = 29" in logs


async def test_aws_batch_task_from_the_test_app_with_pythonpath_from_the_execution_env(
        start_plugin: StartPlugin, emulator: Any) -> None:
    # tests.flyte_app is not installed: the job imports it only through PYTHONPATH in environment_variables.
    req = propeller_request("awsbatch_minimal_task", "tests.flyte_app.workflows", "e2e-minimal",
                            literal_map({"x": 21}, {"x": int}), emulator)
    assert req.task_execution_metadata.environment_variables["PYTHONPATH"] == str(ROOT)
    async with start_plugin(endpoint=emulator.endpoint) as plugin:
        _, res, _ = await run_to_end(plugin, req)
    assert res.phase == Phase.SUCCEEDED, res.message
    assert res.outputs.literals["o0"].scalar.primitive.integer == 42
    assert literals_pb2.LiteralMap.FromString(read(emulator, f"{req.output_prefix}/0/outputs.pb")) == res.outputs


async def test_aws_batch_task_user_error_fails_with_flytekits_error_document(
        start_plugin: StartPlugin, emulator: Any) -> None:
    inputs = literal_map({"name": "empty", "values": []}, {"name": str, "values": list[int]})
    req = propeller_request("summarize", DEMO, "e2e-batch-error", inputs, emulator)
    async with start_plugin(endpoint=emulator.endpoint) as plugin:
        _, res, _ = await run_to_end(plugin, req)
    # A user error is permanent: no retries burnt on it.
    assert res.phase == Phase.FAILED, res.message
    assert "ValueError: nothing to summarize: values is empty" in res.message
    assert "0/error.pb" in keys_under(emulator, req.output_prefix)
    assert not res.HasField("outputs")


async def test_legacy_map_task_with_a_failing_child_under_min_success_ratio(
        start_plugin: StartPlugin, emulator: Any) -> None:
    xs = [3, 1, 4, 13, 5]  # 13 raises ValueError in the task: child 3 fails, 4 of 5 >= 0.8 succeed
    req = propeller_request("square_all", DEMO, "e2e-map", literal_map({"x": xs}, {"x": list[int]}), emulator)
    assert req.template.type == "container_array"
    async with start_plugin(endpoint=emulator.endpoint) as plugin:
        meta, res, seen = await run_to_end(plugin, req, timeout=90)
        failed_child = await task_logs(plugin, meta, child=3)
        ok_child = await task_logs(plugin, meta, child=0)
        with pytest.raises(grpc.aio.AioRpcError) as no_index:
            await task_logs(plugin, meta)
    assert res.phase == Phase.SUCCEEDED, res.message
    assert Phase.RUNNING in seen
    # The assembled collection: each child's value, None for the failed one.
    assert list(res.outputs.literals) == ["o0"]
    assert integers(res.outputs.literals["o0"]) == [9, 1, 16, None, 25]
    children = {k: int(v) for k, v in dict(res.custom_info["children"]).items()}
    assert children["succeeded"] == 4 and children["failed"] == 1 and children["size"] == 5
    # pyflyte-map-execute wrote <prefix>/<index>/..., found by AWS_BATCH_JOB_ARRAY_INDEX.
    assert {"0/outputs.pb", "1/outputs.pb", "2/outputs.pb", "3/error.pb", "4/outputs.pb"} <= keys_under(
        emulator, req.output_prefix)
    assert any(link.name.startswith("Child 3 logs") for link in res.log_links)
    # The failing child's traceback through GetTaskLogs with the child-index metadata, and only its own lines.
    text = "\n".join(failed_child)
    assert "square: got x=13" in failed_child
    assert "Traceback (most recent call last)" in text and "ValueError: 13 is unlucky, refusing to square it" in text
    assert "square: got x=3" in ok_child and "square: 3 * 3 = 9" in ok_child
    assert not any("got x=13" in line for line in ok_child)
    assert no_index.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _demo(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("aws-array-plugin")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "aws_array_plugin"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # the demo needs no setup
    return subprocess.run([*cmd, "demo", *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd="/", check=False)


def test_the_demo_command_runs_everything_and_exits_0() -> None:
    started = time.monotonic()
    proc = _demo()  # stdout is a pipe: the plain-text view
    elapsed = time.monotonic() - started
    out = proc.stdout
    assert proc.returncode == 0, f"{out}\n{proc.stderr}"
    assert elapsed < 120
    assert "WARNING: the emulator runs job commands ON THIS HOST" in out
    assert "CreateTask summarize (aws-batch) -> AWS Batch job" in out
    assert "CreateTask square_all (container_array) -> AWS array job of 5 children" in out
    assert "outputs    o0 = 55, o1 = 'hello Flyte, the sum of squares is 55'" in out
    assert "outputs    o0 = [9, 1, 16, None, 25]" in out
    assert "logs of square_all child 3 (GetTaskLogs, metadata child-index=3)" in out
    assert "ValueError: 13 is unlucky, refusing to square it" in out
    # The Flyte 2 task, through the flyteidl2 connector face, at the same time as the two Flyte 1 tasks.
    assert "CreateTask countdown (Flyte 2, aws-batch) -> AWS Batch job" in out
    assert "] countdown   aws-batch (Flyte 2)  SUCCEEDED  succeeded" in out
    assert "output     '5, 4, 3, 2, 1, liftoff! (sum 15)'" in out
    assert "countdown: counting down from 5" in out
    assert "ok    countdown (Flyte 2): SUCCEEDED" in out
    assert "ok    countdown (Flyte 2): output '5, 4, 3, 2, 1, liftoff! (sum 15)'" in out
    assert "DEMO OK: all three tasks (two Flyte 1, one Flyte 2) behaved as expected" in out
    assert "FAIL " not in out
    assert "\x1b[" not in out  # no terminal escapes when stdout is not a TTY


def test_the_demo_fails_with_a_clear_reason_when_the_tasks_do_not_finish() -> None:
    proc = _demo("--timeout", "0", "--step", "5")
    assert proc.returncode == 1, f"{proc.stdout}\n{proc.stderr}"
    assert "DeleteTask summarize: terminated after the 0s timeout" in proc.stdout
    assert "DeleteTask countdown (Flyte 2): terminated after the 0s timeout" in proc.stdout
    assert "FAIL  the tasks did not finish within 0s" in proc.stdout
    assert "DEMO FAILED" in proc.stdout
