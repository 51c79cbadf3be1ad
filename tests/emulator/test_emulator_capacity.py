"""Compute-environment capacity: a job whose vCPU/memory/GPU requirement can never be met stays RUNNABLE with
AWS's MISCONFIGURATION reason (arrays: on the RUNNABLE children, never on the parent); jobs that fit run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from aws_batch_emulator import Emulator
from aws_batch_emulator.capacity import REASON_RESOURCES, Capacity, Requirements, requirements
from tests.emulator.support import BUCKET, QUEUE, STEP, EmulatorClients
from tests.support import wait_for

REASON = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is higher than "
    "that can be met by the CE(s) attached to the job queue."
)


def _resources(vcpus: str = "1", memory: str = "512", gpus: str | None = None) -> list[dict[str, str]]:
    out = [{"type": "VCPU", "value": vcpus}, {"type": "MEMORY", "value": memory}]
    if gpus is not None:
        out.append({"type": "GPU", "value": gpus})
    return out


def _overrides(**kw: str) -> dict[str, Any]:
    return {"containerOverrides": {"resourceRequirements": _resources(**kw)}}


def _stays_runnable(emulator_clients: EmulatorClients, job_id: str, steps: int = 6) -> dict[str, Any]:
    """RUNNABLE, and still RUNNABLE after several status steps."""
    emulator_clients.wait_status(job_id, "RUNNABLE")
    time.sleep(steps * STEP)  # a job that fits would have left RUNNABLE by now
    job = emulator_clients.describe(job_id)
    assert job["status"] == "RUNNABLE"
    return job


@pytest.fixture
def gpu_emulator_clients() -> Iterator[EmulatorClients]:
    """One GPU, 16 vCPUs, instances of at most 2 GiB."""
    with Emulator(
        port=0, step=0.05, concurrency=4, queue=QUEUE, bucket=BUCKET, max_vcpus=16, gpus=1, max_memory_mib=2048
    ) as emu:
        yield EmulatorClients(emu)


def test_reason_is_awss_text() -> None:
    assert REASON_RESOURCES == REASON


def test_too_many_vcpus_stays_runnable_with_the_reason_and_does_not_block_the_queue(emulator_clients: EmulatorClients) -> None:
    jd = emulator_clients.job_definition(["true"])
    stuck = emulator_clients.submit(jd, "too-big", **_overrides(vcpus="512"))
    fits = emulator_clients.submit(jd, "fits", **_overrides(vcpus="256"))
    assert emulator_clients.wait_status(fits)["status"] == "SUCCEEDED"  # submitted later, not held behind the stuck one
    job = _stays_runnable(emulator_clients, stuck)
    assert job["statusReason"] == REASON
    assert job["attempts"] == [] and "startedAt" not in job
    listed = emulator_clients.batch.list_jobs(jobQueue=QUEUE, jobStatus="RUNNABLE")["jobSummaryList"]
    assert [(s["jobId"], s["statusReason"]) for s in listed] == [(stuck, REASON)]
    assert emulator_clients.emulator.jobs_summary()["capacity"] == {"maxVcpus": 256.0, "gpus": 0, "maxMemoryMiB": None}


def test_a_gpu_job_needs_a_gpu_compute_environment(emulator_clients: EmulatorClients, gpu_emulator_clients: EmulatorClients) -> None:
    for env, expected in ((emulator_clients, "RUNNABLE"), (gpu_emulator_clients, "SUCCEEDED")):
        jd = env.job_definition(["true"])
        job_id = env.submit(jd, **_overrides(gpus="1"))
        if expected == "RUNNABLE":
            assert _stays_runnable(env, job_id)["statusReason"] == REASON
        else:
            assert env.wait_status(job_id)["status"] == "SUCCEEDED"
    too_many = gpu_emulator_clients.submit(gpu_emulator_clients.job_definition(["true"]), **_overrides(gpus="2"))
    assert _stays_runnable(gpu_emulator_clients, too_many)["statusReason"] == REASON


def test_memory_beyond_the_largest_instance_and_vcpus_beyond_max(gpu_emulator_clients: EmulatorClients) -> None:
    jd = gpu_emulator_clients.job_definition(["true"])
    ok = gpu_emulator_clients.submit(jd, "ok", **_overrides(vcpus="16", memory="2048"))
    big_memory = gpu_emulator_clients.submit(jd, "big-memory", **_overrides(memory="2049"))
    big_cpu = gpu_emulator_clients.submit(jd, "big-cpu", **_overrides(vcpus="16.5"))
    assert gpu_emulator_clients.wait_status(ok)["status"] == "SUCCEEDED"
    for job_id in (big_memory, big_cpu):
        assert _stays_runnable(gpu_emulator_clients, job_id, steps=2)["statusReason"] == REASON


def test_the_definitions_requirements_count_when_not_overridden(gpu_emulator_clients: EmulatorClients) -> None:
    greedy = gpu_emulator_clients.job_definition(["true"], containerProperties={"resourceRequirements": _resources(vcpus="64")})
    stuck = gpu_emulator_clients.submit(greedy, "from-definition")
    runs = gpu_emulator_clients.submit(greedy, "overridden", **_overrides(vcpus="2"))  # the override wins over the definition
    assert gpu_emulator_clients.wait_status(runs)["status"] == "SUCCEEDED"
    assert _stays_runnable(gpu_emulator_clients, stuck, steps=2)["statusReason"] == REASON


def test_array_children_carry_the_reason_the_parent_none(emulator_clients: EmulatorClients) -> None:
    jd = emulator_clients.job_definition(["true"])
    parent = emulator_clients.submit(jd, "big-array", arrayProperties={"size": 3}, **_overrides(vcpus="1000"))
    wait_for(lambda: emulator_clients.describe(parent)["arrayProperties"]["statusSummary"]["RUNNABLE"] == 3)
    detail = emulator_clients.describe(parent)
    assert detail["status"] == "PENDING" and "statusReason" not in detail
    child = emulator_clients.describe(f"{parent}:1")
    assert (child["status"], child["statusReason"]) == ("RUNNABLE", REASON)
    children = emulator_clients.batch.list_jobs(arrayJobId=parent, jobStatus="RUNNABLE")["jobSummaryList"]
    assert [c["statusReason"] for c in children] == [REASON] * 3

    emulator_clients.batch.terminate_job(jobId=parent, reason="Aborted by Flyte (stuck)")
    done = emulator_clients.wait_status(parent)
    assert (done["status"], done["statusReason"]) == ("FAILED", "Aborted by Flyte (stuck)")
    assert done["arrayProperties"]["statusSummary"]["FAILED"] == 3
    assert emulator_clients.describe(f"{parent}:0")["statusReason"] == "Aborted by Flyte (stuck)"


def test_cancelling_a_stuck_single_job_replaces_the_reason(emulator_clients: EmulatorClients) -> None:
    job_id = emulator_clients.submit(emulator_clients.job_definition(["true"]), **_overrides(gpus="4"))
    emulator_clients.wait_status(job_id, "RUNNABLE")
    emulator_clients.batch.cancel_job(jobId=job_id, reason="not today")
    job = emulator_clients.wait_status(job_id)
    assert (job["status"], job["statusReason"], job.get("isCancelled")) == ("FAILED", "not today", True)


def test_legacy_vcpus_and_memory_fields_count_too(gpu_emulator_clients: EmulatorClients) -> None:
    name = "legacy-fields"
    gpu_emulator_clients.batch.register_job_definition(
        jobDefinitionName=name, type="container",
        containerProperties={"image": "busybox", "command": ["true"], "vcpus": 32, "memory": 256},
    )  # fmt: skip
    job_id = gpu_emulator_clients.submit(name)
    assert _stays_runnable(gpu_emulator_clients, job_id, steps=2)["statusReason"] == REASON


@pytest.mark.parametrize(("kind", "value"), [("VCPU", "many"), ("MEMORY", "1.5"), ("GPU", "-1")])
def test_bad_requirement_values_are_client_errors(emulator_clients: EmulatorClients, kind: str, value: str) -> None:
    jd = emulator_clients.job_definition(["true"])
    with pytest.raises(ClientError) as excinfo:
        emulator_clients.submit(jd, containerOverrides={"resourceRequirements": [{"type": kind, "value": value}]})
    assert excinfo.value.response["Error"]["Code"] == "ClientException"
    assert kind in excinfo.value.response["Error"]["Message"]


def test_capacity_rules() -> None:
    cap = Capacity(max_vcpus=4, gpus=1, max_memory_mib=1024)
    assert cap.unfit_reason(Requirements(4, 1024, 1)) is None
    assert cap.unfit_reason(Requirements(4.25, 1, 0)) == REASON
    assert cap.unfit_reason(Requirements(1, 1025, 0)) == REASON
    assert cap.unfit_reason(Requirements(1, 1, 2)) == REASON
    assert Capacity().unfit_reason(Requirements(256, 10**9, 0)) is None  # no memory limit by default
    assert requirements({"resourceRequirements": _resources("0.25", "512", "1")}) == Requirements(0.25, 512, 1)
    assert requirements({"vcpus": 2, "memory": 128}) == Requirements(2, 128, 0)
    with pytest.raises(ValueError):
        Capacity(max_vcpus=0)
