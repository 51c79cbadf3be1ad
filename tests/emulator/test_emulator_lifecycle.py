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

from aws_batch_emulator import Emulator
from tests.emulator.support import BUCKET, QUEUE, EmulatorClients
from tests.support import wait_for

WAIT_GATE = 'while [ ! -f "$GATE" ]; do sleep 0.02; done'


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[Emulator]:
    """Steps of 0.2 s so a poller sees every status."""
    with Emulator(port=0, step=0.2, concurrency=4, queue=QUEUE, bucket=BUCKET) as emu:
        yield emu


def test_transitions_walk_every_status_with_step_timing(slow_emulator: Emulator) -> None:
    emulator_clients = EmulatorClients(slow_emulator)
    jd = emulator_clients.job_definition(["true"])
    t0 = time.time() * 1000
    job_id = emulator_clients.submit(jd)
    seen: list[str] = []

    def observe() -> bool:
        status = emulator_clients.status(job_id)
        if not seen or seen[-1] != status:
            seen.append(status)
        return status in ("SUCCEEDED", "FAILED")

    wait_for(observe, timeout=10, interval=0.01)
    assert seen == ["SUBMITTED", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]
    job = emulator_clients.describe(job_id)
    assert isinstance(job["createdAt"], int) and abs(job["createdAt"] - t0) < 1000  # epoch ms
    # SUBMITTED, RUNNABLE and STARTING last a step each; RUNNING lasts at least one step.
    assert job["startedAt"] - job["createdAt"] >= 3 * 200 - 20
    assert job["stoppedAt"] - job["startedAt"] >= 200 - 20
    assert job["statusReason"] == "Essential container in task exited"
    assert job["container"]["exitCode"] == 0


def test_nonzero_exit_fails_with_exit_code_and_reason(emulator_clients: EmulatorClients) -> None:
    job_id = emulator_clients.submit(emulator_clients.job_definition(["sh", "-c", "exit 7"]))
    job = emulator_clients.wait_status(job_id)
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Essential container in task exited"
    assert job["container"]["exitCode"] == 7
    [attempt] = job["attempts"]
    assert attempt["container"]["exitCode"] == 7
    assert attempt["statusReason"] == "Essential container in task exited"
    assert attempt["stoppedAt"] >= attempt["startedAt"]
    assert attempt["container"]["logStreamName"] == job["container"]["logStreamName"]


def test_command_override_wins_over_definition(emulator_clients: EmulatorClients) -> None:
    jd = emulator_clients.job_definition(["sh", "-c", "exit 3"])
    job_id = emulator_clients.submit(jd, containerOverrides={"command": ["sh", "-c", "exit 0"]})
    job = emulator_clients.wait_status(job_id)
    assert (job["status"], job["container"]["exitCode"]) == ("SUCCEEDED", 0)
    assert job["container"]["command"] == ["sh", "-c", "exit 0"]


def test_parameters_are_substituted_into_the_command(emulator_clients: EmulatorClients) -> None:
    jd = emulator_clients.job_definition(["sh", "-c", "exit Ref::code"], parameters={"code": "4"})
    job = emulator_clients.wait_status(emulator_clients.submit(jd, parameters={"code": "6"}))
    assert job["container"]["exitCode"] == 6


def test_missing_executable_fails_to_start(emulator_clients: EmulatorClients) -> None:
    job = emulator_clients.wait_status(emulator_clients.submit(emulator_clients.job_definition(["/nonexistent/binary-xyz"])))
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Task failed to start"
    [attempt] = job["attempts"]
    assert attempt["container"]["reason"].startswith("CannotStartContainerError")
    assert "exitCode" not in attempt["container"]


def test_retry_fails_first_attempt_then_succeeds(emulator_clients: EmulatorClients) -> None:
    script = 'echo "attempt $AWS_BATCH_JOB_ATTEMPT"; [ "$AWS_BATCH_JOB_ATTEMPT" -ge 2 ]'
    jd = emulator_clients.job_definition(["sh", "-c", script])
    job_id = emulator_clients.submit(jd, retryStrategy={"attempts": 3})
    job = emulator_clients.wait_status(job_id)
    assert job["status"] == "SUCCEEDED"
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [1, 0]
    streams = [a["container"]["logStreamName"] for a in job["attempts"]]
    assert len(set(streams)) == 2
    assert job["container"]["logStreamName"] == streams[1]
    assert emulator_clients.log_messages(streams[0]) == ["attempt 1"]
    assert emulator_clients.log_messages(streams[1]) == ["attempt 2"]
    assert job["retryStrategy"] == {"attempts": 3}


def test_retry_strategy_of_the_definition_and_exhaustion(emulator_clients: EmulatorClients) -> None:
    jd = emulator_clients.job_definition(["sh", "-c", "exit 2"], retryStrategy={"attempts": 3})
    job = emulator_clients.wait_status(emulator_clients.submit(jd))
    assert job["status"] == "FAILED"
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [2, 2, 2]


def test_evaluate_on_exit_can_stop_retries(emulator_clients: EmulatorClients) -> None:
    jd = emulator_clients.job_definition(["sh", "-c", "exit 3"])
    strategy = {"attempts": 3, "evaluateOnExit": [{"onExitCode": "3", "action": "EXIT"}]}
    job = emulator_clients.wait_status(emulator_clients.submit(jd, retryStrategy=strategy))
    assert job["status"] == "FAILED"
    assert len(job["attempts"]) == 1


def test_a_failed_attempt_goes_back_to_runnable(emulator_clients: EmulatorClients, gate: object) -> None:
    # Attempt 1 fails at once; attempt 2 waits for the gate, so the job is observed between attempts.
    script = f'[ "$AWS_BATCH_JOB_ATTEMPT" = 1 ] && exit 9; {WAIT_GATE}'
    jd = emulator_clients.job_definition(["sh", "-c", script], environment={"GATE": str(gate)})
    job_id = emulator_clients.submit(jd, retryStrategy={"attempts": 2})
    seen: list[str] = []

    def running_again() -> bool:
        job = emulator_clients.describe(job_id)
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        return len(job["attempts"]) == 1 and job["status"] == "RUNNING"

    wait_for(running_again)
    assert seen[-4:] == ["RUNNING", "RUNNABLE", "STARTING", "RUNNING"]
    open(str(gate), "w").close()
    job = emulator_clients.wait_status(job_id)
    assert job["status"] == "SUCCEEDED"
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [9, 0]


def test_timeout_kills_the_attempt_and_is_not_retried(emulator_clients: EmulatorClients) -> None:
    jd = emulator_clients.job_definition(["sleep", "30"])
    job_id = emulator_clients.submit(jd, timeout={"attemptDurationSeconds": 1}, retryStrategy={"attempts": 2})
    started = time.monotonic()
    job = emulator_clients.wait_status(job_id, timeout=10)
    assert time.monotonic() - started < 5
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Job attempt duration exceeded timeout"
    [attempt] = job["attempts"]
    assert attempt["statusReason"] == "Job attempt duration exceeded timeout"
    assert attempt["container"]["exitCode"] == 137
    assert 1000 <= attempt["stoppedAt"] - attempt["startedAt"] < 3000
    assert job["timeout"] == {"attemptDurationSeconds": 1}


def test_job_environment(emulator_clients: EmulatorClients) -> None:
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    jd = emulator_clients.job_definition(["python", "-c", dump], environment={"FROM_DEF": "def", "BOTH": "def"})
    job_id = emulator_clients.submit(
        jd, containerOverrides={"environment": [{"name": "BOTH", "value": "override"}, {"name": "X", "value": "1"}]}
    )
    job = emulator_clients.wait_status(job_id)
    assert job["status"] == "SUCCEEDED", job
    [line] = emulator_clients.log_messages(job["container"]["logStreamName"])
    env = json.loads(line)
    info = emulator_clients.info
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


def test_log_stream_names_look_like_aws(emulator_clients: EmulatorClients) -> None:
    jd = emulator_clients.job_definition(["echo", "hi"], name="my-def")
    job = emulator_clients.wait_status(emulator_clients.submit(jd))
    stream = job["container"]["logStreamName"]
    assert re.fullmatch(r"my-def/default/[0-9a-f]{32}", stream), stream
    assert emulator_clients.log_messages(stream) == ["hi"]


def test_custom_log_group_from_the_definition(emulator_clients: EmulatorClients) -> None:
    log_config = {"logDriver": "awslogs", "options": {"awslogs-group": "/custom/jobs", "awslogs-stream-prefix": "p"}}
    jd = emulator_clients.job_definition(["echo", "custom"], containerProperties={"logConfiguration": log_config})
    job = emulator_clients.wait_status(emulator_clients.submit(jd))
    stream = job["container"]["logStreamName"]
    assert stream.startswith("p/default/")
    assert emulator_clients.log_messages(stream, group="/custom/jobs") == ["custom"]


def test_awslogs_region_puts_the_stream_in_that_region(emulator_clients: EmulatorClients) -> None:
    options = {"awslogs-group": "/x-region/jobs", "awslogs-region": "eu-west-1"}
    log_config = {"logDriver": "awslogs", "options": options}
    jd = emulator_clients.job_definition(["echo", "far away"], containerProperties={"logConfiguration": log_config})
    job = emulator_clients.wait_status(emulator_clients.submit(jd))
    kwargs = {**emulator_clients.info.client_kwargs(), "region_name": "eu-west-1"}
    logs = boto3.client("logs", **kwargs)
    stream = job["container"]["logStreamName"]
    events = logs.get_log_events(logGroupName="/x-region/jobs", logStreamName=stream, startFromHead=True)["events"]
    assert [e["message"] for e in events] == ["far away"]


def test_logs_are_readable_while_running_and_after(emulator_clients: EmulatorClients, gate: object) -> None:
    script = f"echo first; {WAIT_GATE}; echo second"
    jd = emulator_clients.job_definition(["sh", "-c", script], environment={"GATE": str(gate)})
    job_id = emulator_clients.submit(jd)
    job = emulator_clients.wait_status(job_id, "RUNNING")
    stream = job["container"]["logStreamName"]
    assert job["attempts"] == []  # an attempt is listed once it has ended
    wait_for(lambda: emulator_clients.log_messages(stream) == ["first"], timeout=5)
    assert emulator_clients.status(job_id) == "RUNNING"
    open(str(gate), "w").close()
    assert emulator_clients.wait_status(job_id)["status"] == "SUCCEEDED"
    assert emulator_clients.log_messages(stream) == ["first", "second"]


def test_terminate_running_job_kills_it(emulator_clients: EmulatorClients) -> None:
    jd = emulator_clients.job_definition(["sh", "-c", "echo up; sleep 30"])
    job_id = emulator_clients.submit(jd, retryStrategy={"attempts": 3})
    emulator_clients.wait_status(job_id, "RUNNING")
    started = time.monotonic()
    emulator_clients.batch.terminate_job(jobId=job_id, reason="stopped by test")
    job = emulator_clients.wait_status(job_id, timeout=5)
    assert time.monotonic() - started < 2
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "stopped by test"
    assert job["isTerminated"] is True
    [attempt] = job["attempts"]  # terminated jobs are not retried
    assert attempt["container"]["exitCode"] == 137
    assert job["container"]["exitCode"] == 137


def test_terminate_and_cancel_leave_finished_jobs_alone(emulator_clients: EmulatorClients) -> None:
    job_id = emulator_clients.submit(emulator_clients.job_definition(["true"]))
    before = emulator_clients.wait_status(job_id)
    emulator_clients.batch.terminate_job(jobId=job_id, reason="too late")
    emulator_clients.batch.cancel_job(jobId=job_id, reason="too late")
    after = emulator_clients.describe(job_id)
    assert after["status"] == before["status"] == "SUCCEEDED"
    assert after["statusReason"] == "Essential container in task exited"


def test_terminate_and_cancel_unknown_ids_answer_200(emulator_clients: EmulatorClients) -> None:
    for call in (emulator_clients.batch.terminate_job, emulator_clients.batch.cancel_job):
        response = call(jobId="00000000-0000-0000-0000-000000000000", reason="x")
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_cancel_does_not_stop_a_running_job(emulator_clients: EmulatorClients, gate: object) -> None:
    jd = emulator_clients.job_definition(["sh", "-c", WAIT_GATE], environment={"GATE": str(gate)})
    job_id = emulator_clients.submit(jd)
    emulator_clients.wait_status(job_id, "RUNNING")
    emulator_clients.batch.cancel_job(jobId=job_id, reason="cancel")
    time.sleep(0.2)  # give a wrong implementation time to act
    assert emulator_clients.status(job_id) == "RUNNING"
    open(str(gate), "w").close()
    assert emulator_clients.wait_status(job_id)["status"] == "SUCCEEDED"


def test_cancel_and_terminate_a_queued_job(small_emulator_clients: EmulatorClients, gate: object) -> None:
    emulator_clients = small_emulator_clients  # concurrency 2: the third job stays RUNNABLE
    jd = emulator_clients.job_definition(["sh", "-c", WAIT_GATE], environment={"GATE": str(gate)})
    running = [emulator_clients.submit(jd, name=f"r{i}") for i in range(2)]
    queued = [emulator_clients.submit(jd, name=f"q{i}") for i in range(2)]
    for job_id in running:
        emulator_clients.wait_status(job_id, "RUNNING")
    for job_id in queued:
        emulator_clients.wait_status(job_id, "RUNNABLE")
    emulator_clients.batch.cancel_job(jobId=queued[0], reason="cancelled by test")
    emulator_clients.batch.terminate_job(jobId=queued[1], reason="terminated by test")
    for job_id, reason in zip(queued, ("cancelled by test", "terminated by test"), strict=True):
        job = emulator_clients.describe(job_id)
        assert (job["status"], job["statusReason"], job["attempts"]) == ("FAILED", reason, [])
        assert job["isCancelled"] is True
        assert "logStreamName" not in job["container"]
    open(str(gate), "w").close()
    for job_id in running:
        assert emulator_clients.wait_status(job_id)["status"] == "SUCCEEDED"
