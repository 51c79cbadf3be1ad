"""Compute-environment capacity: a job whose vCPU/memory/GPU requirement can never be met stays RUNNABLE with
AWS's MISCONFIGURATION reason (arrays: on the RUNNABLE children, never on the parent); jobs that fit run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from emu_support import BUCKET, QUEUE, STEP, Aws, wait_for

from aws_batch_emulator import Emulator
from aws_batch_emulator.capacity import REASON_RESOURCES, Capacity, Requirements, requirements

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


def _stays_runnable(aws: Aws, job_id: str, steps: int = 6) -> dict[str, Any]:
    """RUNNABLE, and still RUNNABLE after several status steps."""
    aws.wait_status(job_id, "RUNNABLE")
    time.sleep(steps * STEP)  # a job that fits would have left RUNNABLE by now
    job = aws.describe(job_id)
    assert job["status"] == "RUNNABLE"
    return job


@pytest.fixture
def gpu_aws() -> Iterator[Aws]:
    """One GPU, 16 vCPUs, instances of at most 2 GiB."""
    with Emulator(
        port=0, step=0.05, concurrency=4, queue=QUEUE, bucket=BUCKET, max_vcpus=16, gpus=1, max_memory_mib=2048
    ) as emu:
        yield Aws(emu)


def test_reason_is_awss_text() -> None:
    assert REASON_RESOURCES == REASON


def test_too_many_vcpus_stays_runnable_with_the_reason_and_does_not_block_the_queue(aws: Aws) -> None:
    jd = aws.job_definition(["true"])
    stuck = aws.submit(jd, "too-big", **_overrides(vcpus="512"))
    fits = aws.submit(jd, "fits", **_overrides(vcpus="256"))
    assert aws.wait_status(fits)["status"] == "SUCCEEDED"  # submitted later, not held behind the stuck one
    job = _stays_runnable(aws, stuck)
    assert job["statusReason"] == REASON
    assert job["attempts"] == [] and "startedAt" not in job
    listed = aws.batch.list_jobs(jobQueue=QUEUE, jobStatus="RUNNABLE")["jobSummaryList"]
    assert [(s["jobId"], s["statusReason"]) for s in listed] == [(stuck, REASON)]
    assert aws.emulator.jobs_summary()["capacity"] == {"maxVcpus": 256.0, "gpus": 0, "maxMemoryMiB": None}


def test_a_gpu_job_needs_a_gpu_compute_environment(aws: Aws, gpu_aws: Aws) -> None:
    for env, expected in ((aws, "RUNNABLE"), (gpu_aws, "SUCCEEDED")):
        jd = env.job_definition(["true"])
        job_id = env.submit(jd, **_overrides(gpus="1"))
        if expected == "RUNNABLE":
            assert _stays_runnable(env, job_id)["statusReason"] == REASON
        else:
            assert env.wait_status(job_id)["status"] == "SUCCEEDED"
    too_many = gpu_aws.submit(gpu_aws.job_definition(["true"]), **_overrides(gpus="2"))
    assert _stays_runnable(gpu_aws, too_many)["statusReason"] == REASON


def test_memory_beyond_the_largest_instance_and_vcpus_beyond_max(gpu_aws: Aws) -> None:
    jd = gpu_aws.job_definition(["true"])
    ok = gpu_aws.submit(jd, "ok", **_overrides(vcpus="16", memory="2048"))
    big_memory = gpu_aws.submit(jd, "big-memory", **_overrides(memory="2049"))
    big_cpu = gpu_aws.submit(jd, "big-cpu", **_overrides(vcpus="16.5"))
    assert gpu_aws.wait_status(ok)["status"] == "SUCCEEDED"
    for job_id in (big_memory, big_cpu):
        assert _stays_runnable(gpu_aws, job_id, steps=2)["statusReason"] == REASON


def test_the_definitions_requirements_count_when_not_overridden(gpu_aws: Aws) -> None:
    greedy = gpu_aws.job_definition(["true"], containerProperties={"resourceRequirements": _resources(vcpus="64")})
    stuck = gpu_aws.submit(greedy, "from-definition")
    runs = gpu_aws.submit(greedy, "overridden", **_overrides(vcpus="2"))  # the override wins over the definition
    assert gpu_aws.wait_status(runs)["status"] == "SUCCEEDED"
    assert _stays_runnable(gpu_aws, stuck, steps=2)["statusReason"] == REASON


def test_array_children_carry_the_reason_the_parent_none(aws: Aws) -> None:
    jd = aws.job_definition(["true"])
    parent = aws.submit(jd, "big-array", arrayProperties={"size": 3}, **_overrides(vcpus="1000"))
    wait_for(lambda: aws.describe(parent)["arrayProperties"]["statusSummary"]["RUNNABLE"] == 3)
    detail = aws.describe(parent)
    assert detail["status"] == "PENDING" and "statusReason" not in detail
    child = aws.describe(f"{parent}:1")
    assert (child["status"], child["statusReason"]) == ("RUNNABLE", REASON)
    children = aws.batch.list_jobs(arrayJobId=parent, jobStatus="RUNNABLE")["jobSummaryList"]
    assert [c["statusReason"] for c in children] == [REASON] * 3

    aws.batch.terminate_job(jobId=parent, reason="Aborted by Flyte (stuck)")
    done = aws.wait_status(parent)
    assert (done["status"], done["statusReason"]) == ("FAILED", "Aborted by Flyte (stuck)")
    assert done["arrayProperties"]["statusSummary"]["FAILED"] == 3
    assert aws.describe(f"{parent}:0")["statusReason"] == "Aborted by Flyte (stuck)"


def test_cancelling_a_stuck_single_job_replaces_the_reason(aws: Aws) -> None:
    job_id = aws.submit(aws.job_definition(["true"]), **_overrides(gpus="4"))
    aws.wait_status(job_id, "RUNNABLE")
    aws.batch.cancel_job(jobId=job_id, reason="not today")
    job = aws.wait_status(job_id)
    assert (job["status"], job["statusReason"], job.get("isCancelled")) == ("FAILED", "not today", True)


def test_legacy_vcpus_and_memory_fields_count_too(gpu_aws: Aws) -> None:
    name = "legacy-fields"
    gpu_aws.batch.register_job_definition(
        jobDefinitionName=name, type="container",
        containerProperties={"image": "busybox", "command": ["true"], "vcpus": 32, "memory": 256},
    )  # fmt: skip
    job_id = gpu_aws.submit(name)
    assert _stays_runnable(gpu_aws, job_id, steps=2)["statusReason"] == REASON


@pytest.mark.parametrize(("kind", "value"), [("VCPU", "many"), ("MEMORY", "1.5"), ("GPU", "-1")])
def test_bad_requirement_values_are_client_errors(aws: Aws, kind: str, value: str) -> None:
    jd = aws.job_definition(["true"])
    with pytest.raises(ClientError) as excinfo:
        aws.submit(jd, containerOverrides={"resourceRequirements": [{"type": kind, "value": value}]})
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
