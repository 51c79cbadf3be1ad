"""Helpers shared by the emulator tests: boto3 clients of one emulator with job helpers (`EmulatorClients`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import boto3
from botocore.config import Config

from aws_batch_emulator import Emulator
from tests.support import wait_for

STEP = 0.05
# Not the defaults: other suites in the same pytest process create `default`/`flyte-data` in moto's shared state.
QUEUE = "emu-tests"
BUCKET = "emu-tests-data"
TERMINAL = ("SUCCEEDED", "FAILED")
NO_RETRY = Config(retries={"total_max_attempts": 1})


class EmulatorClients:
    """boto3 clients of one emulator, plus helpers."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.info = emulator.info
        kwargs = self.info.client_kwargs()
        self.batch = boto3.client("batch", config=NO_RETRY, **kwargs)
        self.logs = boto3.client("logs", config=NO_RETRY, **kwargs)
        self.s3 = boto3.client("s3", config=NO_RETRY, **kwargs)

    def job_definition(
        self,
        command: Sequence[str],
        *,
        environment: dict[str, str] | None = None,
        name: str | None = None,
        **extra: Any,
    ) -> str:
        name = name or f"jd-{uuid.uuid4().hex[:8]}"
        props: dict[str, Any] = {
            "image": "public.ecr.aws/docker/library/python:3.11",
            "command": list(command),
            "environment": [{"name": k, "value": v} for k, v in (environment or {}).items()],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
        }
        props.update(extra.pop("containerProperties", {}))
        self.batch.register_job_definition(jobDefinitionName=name, type="container", containerProperties=props, **extra)
        return name

    def submit(self, jd: str, name: str = "job", **kwargs: Any) -> str:
        job_id: str = self.batch.submit_job(jobName=name, jobQueue=self.info.queue, jobDefinition=jd, **kwargs)["jobId"]
        return job_id

    def describe(self, job_id: str) -> dict[str, Any]:
        jobs = self.batch.describe_jobs(jobs=[job_id])["jobs"]
        assert len(jobs) == 1, jobs
        job: dict[str, Any] = jobs[0]
        return job

    def status(self, job_id: str) -> str:
        return str(self.describe(job_id)["status"])

    def wait_status(self, job_id: str, *statuses: str, timeout: float = 15.0) -> dict[str, Any]:
        wanted = statuses or TERMINAL
        job: dict[str, Any] = wait_for(lambda: (d := self.describe(job_id))["status"] in wanted and d, timeout=timeout)
        return job

    def log_messages(self, stream: str, group: str = "/aws/batch/job") -> list[str]:
        events = self.logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
        return [e["message"] for e in events]
