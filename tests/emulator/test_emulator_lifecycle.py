"""Single jobs: status transitions and their timing, exit codes, statusReason, attempts, retries, timeouts,
the environment a job gets, Terminate/Cancel."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator

import boto3
import pytest
from emu_support import BUCKET, QUEUE, Aws, wait_for

from aws_batch_emulator import Emulator

WAIT_GATE = 'while [ ! -f "$GATE" ]; do sleep 0.02; done'


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[Emulator]:
    """Steps of 0.2 s so a poller sees every status."""
    with Emulator(port=0, step=0.2, concurrency=4, queue=QUEUE, bucket=BUCKET) as emu:
        yield emu


def test_transitions_walk_every_status_with_step_timing(slow_emulator: Emulator) -> None:
    aws = Aws(slow_emulator)
    jd = aws.job_definition(["true"])
    t0 = time.time() * 1000
    job_id = aws.submit(jd)
    seen: list[str] = []

    def observe() -> bool:
        status = aws.status(job_id)
        if not seen or seen[-1] != status:
            seen.append(status)
        return status in ("SUCCEEDED", "FAILED")

    wait_for(observe, timeout=10, interval=0.01)
    assert seen == ["SUBMITTED", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]
    job = aws.describe(job_id)
    assert isinstance(job["createdAt"], int) and abs(job["createdAt"] - t0) < 1000  # epoch ms
    # SUBMITTED, RUNNABLE and STARTING last a step each; RUNNING lasts at least one step.
    assert job["startedAt"] - job["createdAt"] >= 3 * 200 - 20
    assert job["stoppedAt"] - job["startedAt"] >= 200 - 20
    assert job["statusReason"] == "Essential container in task exited"
    assert job["container"]["exitCode"] == 0


def test_nonzero_exit_fails_with_exit_code_and_reason(aws: Aws) -> None:
    job_id = aws.submit(aws.job_definition(["sh", "-c", "exit 7"]))
    job = aws.wait_status(job_id)
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Essential container in task exited"
    assert job["container"]["exitCode"] == 7
    [attempt] = job["attempts"]
    assert attempt["container"]["exitCode"] == 7
    assert attempt["statusReason"] == "Essential container in task exited"
    assert attempt["stoppedAt"] >= attempt["startedAt"]
    assert attempt["container"]["logStreamName"] == job["container"]["logStreamName"]


def test_command_override_wins_over_definition(aws: Aws) -> None:
    jd = aws.job_definition(["sh", "-c", "exit 3"])
    job_id = aws.submit(jd, containerOverrides={"command": ["sh", "-c", "exit 0"]})
    job = aws.wait_status(job_id)
    assert (job["status"], job["container"]["exitCode"]) == ("SUCCEEDED", 0)
    assert job["container"]["command"] == ["sh", "-c", "exit 0"]


def test_parameters_are_substituted_into_the_command(aws: Aws) -> None:
    jd = aws.job_definition(["sh", "-c", "exit Ref::code"], parameters={"code": "4"})
    job = aws.wait_status(aws.submit(jd, parameters={"code": "6"}))
    assert job["container"]["exitCode"] == 6


def test_missing_executable_fails_to_start(aws: Aws) -> None:
    job = aws.wait_status(aws.submit(aws.job_definition(["/nonexistent/binary-xyz"])))
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Task failed to start"
    [attempt] = job["attempts"]
    assert attempt["container"]["reason"].startswith("CannotStartContainerError")
    assert "exitCode" not in attempt["container"]


def test_retry_fails_first_attempt_then_succeeds(aws: Aws) -> None:
    script = 'echo "attempt $AWS_BATCH_JOB_ATTEMPT"; [ "$AWS_BATCH_JOB_ATTEMPT" -ge 2 ]'
    jd = aws.job_definition(["sh", "-c", script])
    job_id = aws.submit(jd, retryStrategy={"attempts": 3})
    job = aws.wait_status(job_id)
    assert job["status"] == "SUCCEEDED"
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [1, 0]
    streams = [a["container"]["logStreamName"] for a in job["attempts"]]
    assert len(set(streams)) == 2
    assert job["container"]["logStreamName"] == streams[1]
    assert aws.log_messages(streams[0]) == ["attempt 1"]
    assert aws.log_messages(streams[1]) == ["attempt 2"]
    assert job["retryStrategy"] == {"attempts": 3}


def test_retry_strategy_of_the_definition_and_exhaustion(aws: Aws) -> None:
    jd = aws.job_definition(["sh", "-c", "exit 2"], retryStrategy={"attempts": 3})
    job = aws.wait_status(aws.submit(jd))
    assert job["status"] == "FAILED"
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [2, 2, 2]


def test_evaluate_on_exit_can_stop_retries(aws: Aws) -> None:
    jd = aws.job_definition(["sh", "-c", "exit 3"])
    strategy = {"attempts": 3, "evaluateOnExit": [{"onExitCode": "3", "action": "EXIT"}]}
    job = aws.wait_status(aws.submit(jd, retryStrategy=strategy))
    assert job["status"] == "FAILED"
    assert len(job["attempts"]) == 1


def test_a_failed_attempt_goes_back_to_runnable(aws: Aws, gate: object) -> None:
    # Attempt 1 fails at once; attempt 2 waits for the gate, so the job is observed between attempts.
    script = f'[ "$AWS_BATCH_JOB_ATTEMPT" = 1 ] && exit 9; {WAIT_GATE}'
    jd = aws.job_definition(["sh", "-c", script], environment={"GATE": str(gate)})
    job_id = aws.submit(jd, retryStrategy={"attempts": 2})
    seen: list[str] = []

    def running_again() -> bool:
        job = aws.describe(job_id)
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        return len(job["attempts"]) == 1 and job["status"] == "RUNNING"

    wait_for(running_again)
    assert seen[-4:] == ["RUNNING", "RUNNABLE", "STARTING", "RUNNING"]
    open(str(gate), "w").close()
    job = aws.wait_status(job_id)
    assert job["status"] == "SUCCEEDED"
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [9, 0]


def test_timeout_kills_the_attempt_and_is_not_retried(aws: Aws) -> None:
    jd = aws.job_definition(["sleep", "30"])
    job_id = aws.submit(jd, timeout={"attemptDurationSeconds": 1}, retryStrategy={"attempts": 2})
    started = time.monotonic()
    job = aws.wait_status(job_id, timeout=10)
    assert time.monotonic() - started < 5
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Job attempt duration exceeded timeout"
    [attempt] = job["attempts"]
    assert attempt["statusReason"] == "Job attempt duration exceeded timeout"
    assert attempt["container"]["exitCode"] == 137
    assert 1000 <= attempt["stoppedAt"] - attempt["startedAt"] < 3000
    assert job["timeout"] == {"attemptDurationSeconds": 1}


def test_job_environment(aws: Aws) -> None:
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    jd = aws.job_definition(["python", "-c", dump], environment={"FROM_DEF": "def", "BOTH": "def"})
    job_id = aws.submit(
        jd, containerOverrides={"environment": [{"name": "BOTH", "value": "override"}, {"name": "X", "value": "1"}]}
    )
    job = aws.wait_status(job_id)
    assert job["status"] == "SUCCEEDED", job
    [line] = aws.log_messages(job["container"]["logStreamName"])
    env = json.loads(line)
    info = aws.info
    assert env["AWS_BATCH_JOB_ID"] == job_id
    assert env["AWS_BATCH_JOB_ATTEMPT"] == "1"
    assert "AWS_BATCH_JOB_ARRAY_INDEX" not in env
    assert env["AWS_BATCH_CE_NAME"] == info.compute_environment
    assert env["AWS_BATCH_JQ_NAME"] == info.queue == "emu-tests"
    assert (env["FROM_DEF"], env["BOTH"], env["X"]) == ("def", "override", "1")
    assert env["AWS_ENDPOINT_URL"] == info.endpoint == env["FLYTE_AWS_ENDPOINT"]
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["FLYTE_AWS_ACCESS_KEY_ID"] == env["FLYTE_AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)
    assert {e["name"]: e["value"] for e in job["container"]["environment"]} == {
        "FROM_DEF": "def",
        "BOTH": "override",
        "X": "1",
    }


def test_log_stream_names_look_like_aws(aws: Aws) -> None:
    jd = aws.job_definition(["echo", "hi"], name="my-def")
    job = aws.wait_status(aws.submit(jd))
    stream = job["container"]["logStreamName"]
    assert re.fullmatch(r"my-def/default/[0-9a-f]{32}", stream), stream
    assert aws.log_messages(stream) == ["hi"]


def test_custom_log_group_from_the_definition(aws: Aws) -> None:
    log_config = {"logDriver": "awslogs", "options": {"awslogs-group": "/custom/jobs", "awslogs-stream-prefix": "p"}}
    jd = aws.job_definition(["echo", "custom"], containerProperties={"logConfiguration": log_config})
    job = aws.wait_status(aws.submit(jd))
    stream = job["container"]["logStreamName"]
    assert stream.startswith("p/default/")
    assert aws.log_messages(stream, group="/custom/jobs") == ["custom"]


def test_awslogs_region_puts_the_stream_in_that_region(aws: Aws) -> None:
    options = {"awslogs-group": "/x-region/jobs", "awslogs-region": "eu-west-1"}
    log_config = {"logDriver": "awslogs", "options": options}
    jd = aws.job_definition(["echo", "far away"], containerProperties={"logConfiguration": log_config})
    job = aws.wait_status(aws.submit(jd))
    kwargs = {**aws.info.client_kwargs(), "region_name": "eu-west-1"}
    logs = boto3.client("logs", **kwargs)
    stream = job["container"]["logStreamName"]
    events = logs.get_log_events(logGroupName="/x-region/jobs", logStreamName=stream, startFromHead=True)["events"]
    assert [e["message"] for e in events] == ["far away"]


def test_logs_are_readable_while_running_and_after(aws: Aws, gate: object) -> None:
    script = f"echo first; {WAIT_GATE}; echo second"
    jd = aws.job_definition(["sh", "-c", script], environment={"GATE": str(gate)})
    job_id = aws.submit(jd)
    job = aws.wait_status(job_id, "RUNNING")
    stream = job["container"]["logStreamName"]
    assert job["attempts"] == []  # an attempt is listed once it has ended
    wait_for(lambda: aws.log_messages(stream) == ["first"], timeout=5)
    assert aws.status(job_id) == "RUNNING"
    open(str(gate), "w").close()
    assert aws.wait_status(job_id)["status"] == "SUCCEEDED"
    assert aws.log_messages(stream) == ["first", "second"]


def test_terminate_running_job_kills_it(aws: Aws) -> None:
    jd = aws.job_definition(["sh", "-c", "echo up; sleep 30"])
    job_id = aws.submit(jd, retryStrategy={"attempts": 3})
    aws.wait_status(job_id, "RUNNING")
    started = time.monotonic()
    aws.batch.terminate_job(jobId=job_id, reason="stopped by test")
    job = aws.wait_status(job_id, timeout=5)
    assert time.monotonic() - started < 2
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "stopped by test"
    assert job["isTerminated"] is True
    [attempt] = job["attempts"]  # terminated jobs are not retried
    assert attempt["container"]["exitCode"] == 137
    assert job["container"]["exitCode"] == 137


def test_terminate_and_cancel_leave_finished_jobs_alone(aws: Aws) -> None:
    job_id = aws.submit(aws.job_definition(["true"]))
    before = aws.wait_status(job_id)
    aws.batch.terminate_job(jobId=job_id, reason="too late")
    aws.batch.cancel_job(jobId=job_id, reason="too late")
    after = aws.describe(job_id)
    assert after["status"] == before["status"] == "SUCCEEDED"
    assert after["statusReason"] == "Essential container in task exited"


def test_terminate_and_cancel_unknown_ids_answer_200(aws: Aws) -> None:
    for call in (aws.batch.terminate_job, aws.batch.cancel_job):
        response = call(jobId="00000000-0000-0000-0000-000000000000", reason="x")
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_cancel_does_not_stop_a_running_job(aws: Aws, gate: object) -> None:
    jd = aws.job_definition(["sh", "-c", WAIT_GATE], environment={"GATE": str(gate)})
    job_id = aws.submit(jd)
    aws.wait_status(job_id, "RUNNING")
    aws.batch.cancel_job(jobId=job_id, reason="cancel")
    time.sleep(0.2)  # give a wrong implementation time to act
    assert aws.status(job_id) == "RUNNING"
    open(str(gate), "w").close()
    assert aws.wait_status(job_id)["status"] == "SUCCEEDED"


def test_cancel_and_terminate_a_queued_job(small_aws: Aws, gate: object) -> None:
    aws = small_aws  # concurrency 2: the third job stays RUNNABLE
    jd = aws.job_definition(["sh", "-c", WAIT_GATE], environment={"GATE": str(gate)})
    running = [aws.submit(jd, name=f"r{i}") for i in range(2)]
    queued = [aws.submit(jd, name=f"q{i}") for i in range(2)]
    for job_id in running:
        aws.wait_status(job_id, "RUNNING")
    for job_id in queued:
        aws.wait_status(job_id, "RUNNABLE")
    aws.batch.cancel_job(jobId=queued[0], reason="cancelled by test")
    aws.batch.terminate_job(jobId=queued[1], reason="terminated by test")
    for job_id, reason in zip(queued, ("cancelled by test", "terminated by test"), strict=True):
        job = aws.describe(job_id)
        assert (job["status"], job["statusReason"], job["attempts"]) == ("FAILED", reason, [])
        assert job["isCancelled"] is True
        assert "logStreamName" not in job["container"]
    open(str(gate), "w").close()
    for job_id in running:
        assert aws.wait_status(job_id)["status"] == "SUCCEEDED"
