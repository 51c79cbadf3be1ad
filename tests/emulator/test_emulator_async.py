"""The emulator next to a running asyncio loop (as in the gRPC service's process), used through aiobotocore."""

from __future__ import annotations

import asyncio

from aiobotocore.session import get_session

from tests.emulator.support import EmulatorClients


async def test_aiobotocore_client_in_a_running_loop(emulator_clients: EmulatorClients) -> None:
    jd = emulator_clients.job_definition(["sh", "-c", "echo async"])
    session = get_session()
    async with (
        session.create_client("batch", **emulator_clients.info.client_kwargs()) as batch,
        session.create_client("logs", **emulator_clients.info.client_kwargs()) as logs,
        session.create_client("s3", **emulator_clients.info.client_kwargs()) as s3,
    ):
        submitted = await batch.submit_job(jobName="async", jobQueue=emulator_clients.info.queue, jobDefinition=jd)
        job_id = submitted["jobId"]
        for _ in range(500):
            job = (await batch.describe_jobs(jobs=[job_id]))["jobs"][0]
            if job["status"] in ("SUCCEEDED", "FAILED"):
                break
            await asyncio.sleep(0.02)
        assert job["status"] == "SUCCEEDED"
        events = await logs.get_log_events(
            logGroupName="/aws/batch/job", logStreamName=job["container"]["logStreamName"], startFromHead=True
        )
        assert [e["message"] for e in events["events"]] == ["async"]
        await s3.put_object(Bucket=emulator_clients.info.bucket, Key="async/k", Body=b"data")
        body = await (await s3.get_object(Bucket=emulator_clients.info.bucket, Key="async/k"))["Body"].read()
        assert body == b"data"
