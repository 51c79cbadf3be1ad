"""A real `pyflyte-execute` run by the emulator: flytekit reads inputs.pb from and writes outputs.pb to the
emulated S3, through the endpoint variables every job gets."""

from __future__ import annotations

import uuid
from pathlib import Path

from flyteidl.core import literals_pb2

from tests.emulator.support import EmulatorClients

HERE = Path(__file__).resolve().parent


def _int_literals(**values: int) -> literals_pb2.LiteralMap:
    return literals_pb2.LiteralMap(
        literals={
            name: literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(integer=value)))
            for name, value in values.items()
        }
    )


def _pyflyte_execute(bucket: str, prefix: str, task: str) -> list[str]:
    return [
        "pyflyte-execute",
        "--inputs", f"s3://{bucket}/{prefix}/inputs.pb",
        "--output-prefix", f"s3://{bucket}/{prefix}/out",
        "--raw-output-data-prefix", f"s3://{bucket}/raw",
        "--resolver", "flytekit.core.python_auto_container.default_task_resolver",
        "--", "task-module", "emu_flyte_tasks", "task-name", task,
    ]  # fmt: skip


def test_pyflyte_execute_reads_and_writes_emulated_s3(emulator_clients: EmulatorClients) -> None:
    prefix = f"e2e/{uuid.uuid4().hex}"
    emulator_clients.s3.put_object(Bucket=emulator_clients.info.bucket, Key=f"{prefix}/inputs.pb", Body=_int_literals(x=21).SerializeToString())
    jd = emulator_clients.job_definition(
        _pyflyte_execute(emulator_clients.info.bucket, prefix, "double"),
        environment={"PYTHONPATH": str(HERE)},  # the task module lives next to this test
    )
    job = emulator_clients.wait_status(emulator_clients.submit(jd, name="flytekit-double"), timeout=90)
    assert job["status"] == "SUCCEEDED", (job.get("statusReason"), emulator_clients.log_messages(job["container"]["logStreamName"]))
    assert job["container"]["exitCode"] == 0
    raw = emulator_clients.s3.get_object(Bucket=emulator_clients.info.bucket, Key=f"{prefix}/out/outputs.pb")["Body"].read()
    outputs = literals_pb2.LiteralMap()
    outputs.ParseFromString(raw)
    assert outputs.literals["o0"].scalar.primitive.integer == 42
    # The job really went through the emulator's S3 API.
    stats = emulator_clients.emulator.stats()
    assert stats.get("PutObject", 0) >= 2 and stats.get("GetObject", 0) >= 1


def test_flytekit_task_error_fails_the_job_and_writes_error_pb(emulator_clients: EmulatorClients) -> None:
    prefix = f"e2e/{uuid.uuid4().hex}"
    emulator_clients.s3.put_object(Bucket=emulator_clients.info.bucket, Key=f"{prefix}/inputs.pb", Body=_int_literals(x=-1).SerializeToString())
    # As for AWS Batch, flytekit must exit non-zero on a user error for the job to fail.
    env = {"PYTHONPATH": str(HERE), "FLYTE_FAIL_ON_ERROR": "true"}
    jd = emulator_clients.job_definition(_pyflyte_execute(emulator_clients.info.bucket, prefix, "double"), environment=env)
    job = emulator_clients.wait_status(emulator_clients.submit(jd, name="flytekit-negative"), timeout=90)
    assert job["status"] == "FAILED"
    assert job["container"]["exitCode"] != 0
    keys = [o["Key"] for o in emulator_clients.s3.list_objects_v2(Bucket=emulator_clients.info.bucket, Prefix=prefix)["Contents"]]
    assert f"{prefix}/out/error.pb" in keys
    assert any("negative input" in line for line in emulator_clients.log_messages(job["container"]["logStreamName"]))
