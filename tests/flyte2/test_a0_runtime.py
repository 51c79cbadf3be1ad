"""The Flyte 2 runtime `a0` really runs an `aws-batch` task on the emulated AWS, without the service: the template
serialized as `flyte deploy` does, the args rendered and the CreateTaskRequest built as the Flyte 2 executor does
(devtools/aws_array_plugin_demo/flyte2_executor.py), inputs.pb written to the emulator's S3, then the rendered
command run with the environment the service must give the job, once as a local process and once as an AWS Batch
job of the emulator. These are the facts the service's Flyte 2 side is built on:

- command: the rendered `container.args`, as they are (`a0` first; `{{.runName}}`/`{{.actionName}}` may stay: a0
  then reads RUN_NAME / ACTION_NAME);
- environment: `task_execution_metadata.environment_variables` (RUN_NAME, ACTION_NAME, _U_RUN_BASE, _U_ORG_NAME)
  plus FLYTE_INTERNAL_EXECUTION_PROJECT / _DOMAIN (a0's --project/--domain) plus S3 access (on the emulator
  AWS_ENDPOINT_URL and keys suffice; FLYTE_AWS_* work too);
- success: exit 0 and `<output_prefix>/outputs.pb` (flyteidl2.task.Outputs, wire-compatible with a LiteralMap);
- a task that raises: exit 0 (!) and `<output_prefix>/error.pb` (core.ErrorDocument), no outputs.pb;
- a0 that cannot start the task: a missing --run-base-dir/_U_RUN_BASE exits 2 (click usage error), a missing
  project/domain/org exits 1, both without error.pb; a task module that cannot be imported exits 1 with error.pb.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flyteidl2.connector import connector_pb2
from flyteidl2.core import execution_pb2
from flyteidl2.task import common_pb2

from aws_array_plugin_demo import flyte2_executor as fx
from aws_batch_emulator import Emulator
from aws_batch_emulator.runtime import Endpoint, job_environment
from tests.emulator.support import EmulatorClients
from tests.flyte2 import flyte2_tasks

HERE = Path(__file__).resolve().parent
QUEUE = "flyte2-tests"
BUCKET = "flyte2-tests-data"
A0_TIMEOUT = 60  # a0 starts in ~1-3 s here; generous for a loaded CI machine


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorClients]:
    with Emulator(port=0, step=0.05, concurrency=4, queue=QUEUE, bucket=BUCKET) as emulator:
        yield EmulatorClients(emulator)


def _action(attempt: int = 1) -> fx.Action:
    run = f"r{uuid.uuid4().hex[:10]}"
    return fx.Action(
        project="flytesnacks", domain="development", run_name=run, action_name="a1", namespace="flyte",
        run_output_base=f"s3://{BUCKET}/metadata/flytesnacks/development/{run}",
        input_uri=f"s3://{BUCKET}/metadata/flytesnacks/development/{run}/a1/inputs",
        attempt=attempt, run_start_time=datetime(2026, 8, 22, 10, 0, 0, tzinfo=UTC),
    )


def _create_request(emu: EmulatorClients, task: Any, action: fx.Action, **values: Any) -> connector_pb2.CreateTaskRequest:
    template = fx.serialize_task(task, project=action.project, domain=action.domain, version="v1", root_dir=HERE)
    inputs = asyncio.run(fx.build_inputs(task, **values))
    fx.write_inputs(emu.s3, action, inputs)
    return fx.create_task_request(fx.embed_task_template(template, action.run_start_time), action, inputs)


def service_env(request: connector_pb2.CreateTaskRequest) -> dict[str, str]:
    """What the service must put on the job for a0 (besides S3 access): the executor's env vars, the project and
    domain of the run, the container's env. PYTHONPATH stands in for the image's code."""
    md = request.task_execution_metadata
    ex = md.task_execution_id.node_execution_id.execution_id
    env = {kv.key: kv.value for kv in request.template.container.env}
    env.update(md.environment_variables)
    env.update({"FLYTE_INTERNAL_EXECUTION_PROJECT": ex.project, "FLYTE_INTERNAL_EXECUTION_DOMAIN": ex.domain,
                "PYTHONPATH": str(HERE)})
    return env


def _run_a0(emu: EmulatorClients, request: connector_pb2.CreateTaskRequest, tmp_path: Path,
            drop: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess[str], float]:
    """The rendered command as the emulator runs a job: a local process (the venv's a0 first on PATH) with the
    emulator's job environment (host basics, AWS_* and FLYTE_AWS_* of the endpoint) and the service's env."""
    info = emu.info
    env = job_environment(endpoint=Endpoint(info.endpoint, info.region), job_env=list(service_env(request).items()),
                          batch_vars={})
    for key in drop:
        env.pop(key, None)
    started = time.monotonic()
    proc = subprocess.run(list(request.template.container.args), env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=A0_TIMEOUT, check=False)
    return proc, time.monotonic() - started


def _get(emu: EmulatorClients, uri: str) -> bytes | None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        body: bytes = emu.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except emu.s3.exceptions.NoSuchKey:
        return None
    return body


def _outputs(emu: EmulatorClients, task: Any, output_prefix: str) -> Any:
    from flyte._internal.runtime.convert import Outputs, convert_outputs_to_native

    raw = _get(emu, f"{output_prefix}/outputs.pb")
    assert raw is not None, "no outputs.pb"
    outputs = common_pb2.Outputs()
    outputs.ParseFromString(raw)
    return asyncio.run(convert_outputs_to_native(task.native_interface, Outputs(proto_outputs=outputs)))


def _error(emu: EmulatorClients, output_prefix: str) -> execution_pb2.ErrorDocument | None:
    raw = _get(emu, f"{output_prefix}/error.pb")
    if raw is None:
        return None
    doc = execution_pb2.ErrorDocument()
    doc.ParseFromString(raw)
    return doc


def test_executor_stand_in_renders_what_the_job_runs(emu: EmulatorClients) -> None:
    action = _action()
    request = _create_request(emu, flyte2_tasks.double, action, x=21)
    out = action.output_prefix
    shard = fx.shard_prefix(f"flyte/{action.run_name}-a1")
    assert out == f"s3://{BUCKET}/{shard}/metadata/flytesnacks/development/{action.run_name}/a1/1"
    assert request.output_prefix == out
    assert list(request.template.container.args) == [
        "a0",
        "--inputs", f"{action.input_prefix}/inputs.pb",
        "--outputs-path", out,
        "--version", "v1",
        "--raw-data-path", out,
        "--checkpoint-path", f"{out}/_flytecheckpoints",
        "--prev-checkpoint", '""',  # the first attempt has no previous checkpoint: template.Render writes ""
        "--run-name", "{{.runName}}",  # never rendered by the executor
        "--name", "{{.actionName}}",
        "--run-start-time", "2026-08-22T10:00:00Z",  # substituted when the TaskAction is created
        "--resolver", "flyte._internal.resolvers.default.DefaultTaskResolver",
        "mod", "flyte2_tasks", "instance", "double",
    ]  # fmt: skip
    md = request.task_execution_metadata
    tid = md.task_execution_id
    assert (tid.node_execution_id.execution_id.name, tid.node_execution_id.node_id) == (action.run_name, "a1")
    assert (tid.retry_attempt, tid.task_id.name) == (0, "batch.double")
    assert dict(md.environment_variables) == {"ACTION_NAME": "a1", "RUN_NAME": action.run_name,
                                              "_U_RUN_BASE": action.run_output_base, "_U_ORG_NAME": "local"}
    assert md.namespace == "flyte" and md.labels["attempt"] == "1" and md.labels["project"] == "flytesnacks"
    assert md.labels["inject-flyte-secrets"] == "true" and "flyte.secrets/s0" in md.annotations
    assert [(n.name, n.value.scalar.primitive.integer) for n in request.inputs.literals] == [("x", 21)]
    assert not request.inputs.context
    assert request.connection.ListFields() == []
    # A retry gets its own output prefix and the previous attempt's checkpoints.
    retry = fx.Action(**{**action.__dict__, "attempt": 2})
    args = fx.render_args(["{{.outputPrefix}}", "{{ .PrevCheckpointPrefix }}", "{{.perRetryUniqueKey}}"], retry)
    assert args == [out[:-1] + "2", f"{out}/_flytecheckpoints", f"{action.run_name}_a1_1"]


def test_a0_runs_the_task_and_writes_outputs_pb(emu: EmulatorClients, tmp_path: Path) -> None:
    action = _action()
    request = _create_request(emu, flyte2_tasks.double, action, x=21)
    proc, seconds = _run_a0(emu, request, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _outputs(emu, flyte2_tasks.double, request.output_prefix) == 42
    assert _error(emu, request.output_prefix) is None
    assert f"Flyte runtime completed for action a1 with run name {action.run_name}" in proc.stderr
    assert seconds < A0_TIMEOUT


def test_a0_with_only_the_aws_endpoint_variables_reaches_s3(emu: EmulatorClients, tmp_path: Path) -> None:
    request = _create_request(emu, flyte2_tasks.greet, _action(), name="batch", times=2)
    proc, _ = _run_a0(emu, request, tmp_path,
                      drop=("FLYTE_AWS_ENDPOINT", "FLYTE_AWS_ACCESS_KEY_ID", "FLYTE_AWS_SECRET_ACCESS_KEY"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _outputs(emu, flyte2_tasks.greet, request.output_prefix) == "hello batch hello batch"


def test_a_task_that_raises_writes_error_pb_and_exits_zero(emu: EmulatorClients, tmp_path: Path) -> None:
    request = _create_request(emu, flyte2_tasks.boom, _action(), x=13)
    proc, _ = _run_a0(emu, request, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]  # a0's contract: the backend reads error.pb
    doc = _error(emu, request.output_prefix)
    assert doc is not None
    assert (doc.error.code, doc.error.message) == ("ValueError", "13 is unlucky")
    assert doc.error.kind == execution_pb2.ContainerError.RECOVERABLE
    assert doc.error.origin == execution_pb2.ExecutionError.USER
    assert _get(emu, f"{request.output_prefix}/outputs.pb") is None


@pytest.mark.parametrize(("drop", "code", "message"), [
    (("_U_RUN_BASE",), 2, "Missing option '--run-base-dir'"),
    (("FLYTE_INTERNAL_EXECUTION_PROJECT",), 1, "Project is required"),
    (("_U_ORG_NAME",), 1, "Org is required"),
])
def test_a0_needs_run_base_project_and_org(emu: EmulatorClients, tmp_path: Path, drop: tuple[str, ...], code: int,
                                           message: str) -> None:
    request = _create_request(emu, flyte2_tasks.double, _action(), x=1)
    proc, _ = _run_a0(emu, request, tmp_path, drop=drop)
    assert proc.returncode == code and message in proc.stderr, proc.stderr[-2000:]
    assert _error(emu, request.output_prefix) is None


def test_a_task_module_that_cannot_load_writes_error_pb_and_exits_one(emu: EmulatorClients, tmp_path: Path) -> None:
    request = _create_request(emu, flyte2_tasks.double, _action(), x=1)
    proc, _ = _run_a0(emu, request, tmp_path, drop=("PYTHONPATH",))
    assert proc.returncode == 1
    doc = _error(emu, request.output_prefix)
    assert doc is not None and doc.error.code == "ModuleNotFoundError"


def _submit(emu: EmulatorClients, request: connector_pb2.CreateTaskRequest) -> dict[str, Any]:
    """As an AWS Batch job of the emulator: the command in the job definition, the service's env as overrides."""
    jd = emu.job_definition(list(request.template.container.args))
    env = [{"name": k, "value": v} for k, v in sorted(service_env(request).items())]
    job_id = emu.submit(jd, name="flyte2-a0", containerOverrides={"environment": env})
    return emu.wait_status(job_id, timeout=A0_TIMEOUT)


def test_a0_as_an_aws_batch_job_of_the_emulator(emu: EmulatorClients) -> None:
    ok = _create_request(emu, flyte2_tasks.double, _action(), x=5)
    failing = _create_request(emu, flyte2_tasks.boom, _action(), x=7)
    job = _submit(emu, ok)
    assert job["status"] == "SUCCEEDED" and job["container"]["exitCode"] == 0, job.get("statusReason")
    assert _outputs(emu, flyte2_tasks.double, ok.output_prefix) == 10
    # The user error does not fail the AWS job: SUCCEEDED, exit 0, and error.pb under the output prefix.
    job = _submit(emu, failing)
    assert job["status"] == "SUCCEEDED" and job["container"]["exitCode"] == 0
    doc = _error(emu, failing.output_prefix)
    assert doc is not None and doc.error.message == "7 is unlucky"
    logs = "\n".join(emu.log_messages(job["container"]["logStreamName"]))
    assert "ValueError: 7 is unlucky" in logs
