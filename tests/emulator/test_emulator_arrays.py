"""Array jobs: parent status rules (never RUNNING; SUCCEEDED only if all children succeed; FAILED only once all
are terminal), live statusSummary, children ids/index/env/logs, Terminate/Cancel of a parent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.emulator.support import EmulatorClients
from tests.support import wait_for

WAIT_GATE = 'while [ ! -f "$GATE" ]; do sleep 0.02; done'
ALL_STATUSES = {"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"}


def _summary(job: dict[str, Any]) -> dict[str, int]:
    summary: dict[str, int] = job["arrayProperties"]["statusSummary"]
    return summary


def test_all_children_succeed_parent_succeeds_and_is_never_running(emulator_clients: EmulatorClients) -> None:
    jd = emulator_clients.job_definition(["sh", "-c", "echo index=$AWS_BATCH_JOB_ARRAY_INDEX id=$AWS_BATCH_JOB_ID"])
    parent_id = emulator_clients.submit(jd, name="arr", arrayProperties={"size": 3})
    seen: set[str] = set()

    def done() -> bool:
        parent = emulator_clients.describe(parent_id)
        seen.add(parent["status"])
        assert sum(_summary(parent).values()) == 3
        return parent["status"] in ("SUCCEEDED", "FAILED")

    wait_for(done)
    assert seen <= {"SUBMITTED", "PENDING", "SUCCEEDED"} and "SUCCEEDED" in seen
    parent = emulator_clients.describe(parent_id)
    assert parent["arrayProperties"]["size"] == 3
    assert set(_summary(parent)) == ALL_STATUSES
    assert _summary(parent)["SUCCEEDED"] == 3
    assert parent["attempts"] == []
    assert "logStreamName" not in parent["container"]
    children = emulator_clients.batch.describe_jobs(jobs=[f"{parent_id}:{i}" for i in range(3)])["jobs"]
    by_index = {c["arrayProperties"]["index"]: c for c in children}
    assert sorted(by_index) == [0, 1, 2]
    for i, child in by_index.items():
        assert child["jobId"] == f"{parent_id}:{i}"
        assert child["jobArn"].endswith(f":job/{parent_id}:{i}")
        assert child["status"] == "SUCCEEDED"
        assert child["container"]["exitCode"] == 0
        stream = child["container"]["logStreamName"]
        assert ":" not in stream
        assert emulator_clients.log_messages(stream) == [f"index={i} id={parent_id}:{i}"]


def test_one_failed_child_fails_the_parent_only_when_all_are_terminal(emulator_clients: EmulatorClients, gate: Path) -> None:
    script = f'[ "$AWS_BATCH_JOB_ARRAY_INDEX" = 1 ] && exit 5; [ "$AWS_BATCH_JOB_ARRAY_INDEX" = 2 ] && {{ {WAIT_GATE}; }}; exit 0'
    jd = emulator_clients.job_definition(["sh", "-c", script], environment={"GATE": str(gate)})
    parent_id = emulator_clients.submit(jd, arrayProperties={"size": 3})
    emulator_clients.wait_status(f"{parent_id}:1", "FAILED")
    emulator_clients.wait_status(f"{parent_id}:0", "SUCCEEDED")
    emulator_clients.wait_status(f"{parent_id}:2", "RUNNING")
    parent = emulator_clients.describe(parent_id)
    assert parent["status"] == "PENDING"
    assert {k: v for k, v in _summary(parent).items() if v} == {"SUCCEEDED": 1, "FAILED": 1, "RUNNING": 1}
    gate.touch()
    parent = emulator_clients.wait_status(parent_id)
    assert parent["status"] == "FAILED"
    assert {k: v for k, v in _summary(parent).items() if v} == {"SUCCEEDED": 2, "FAILED": 1}
    child = emulator_clients.describe(f"{parent_id}:1")
    assert (child["container"]["exitCode"], child["statusReason"]) == (5, "Essential container in task exited")


def test_status_summary_is_live_and_concurrency_keeps_children_runnable(small_emulator_clients: EmulatorClients, gate: Path) -> None:
    emulator_clients = small_emulator_clients
    jd = emulator_clients.job_definition(["sh", "-c", WAIT_GATE], environment={"GATE": str(gate)})
    parent_id = emulator_clients.submit(jd, arrayProperties={"size": 5})
    wait_for(lambda: _summary(emulator_clients.describe(parent_id))["RUNNING"] == 2)
    for _ in range(5):  # stays so for several steps: only 2 slots
        parent = emulator_clients.describe(parent_id)
        assert {k: v for k, v in _summary(parent).items() if v} == {"RUNNING": 2, "RUNNABLE": 3}
        assert parent["status"] == "PENDING"
        time.sleep(0.05)
    gate.touch()
    parent = emulator_clients.wait_status(parent_id)
    assert parent["status"] == "SUCCEEDED"
    assert _summary(parent)["SUCCEEDED"] == 5


def test_children_retry_on_their_own(emulator_clients: EmulatorClients) -> None:
    script = '[ "$AWS_BATCH_JOB_ARRAY_INDEX" = 0 ] && [ "$AWS_BATCH_JOB_ATTEMPT" = 1 ] && exit 1; exit 0'
    parent_id = emulator_clients.submit(
        emulator_clients.job_definition(["sh", "-c", script]), arrayProperties={"size": 2}, retryStrategy={"attempts": 2}
    )
    assert emulator_clients.wait_status(parent_id)["status"] == "SUCCEEDED"
    first, second = emulator_clients.batch.describe_jobs(jobs=[f"{parent_id}:0", f"{parent_id}:1"])["jobs"]
    assert [a["container"]["exitCode"] for a in first["attempts"]] == [1, 0]
    assert [a["container"]["exitCode"] for a in second["attempts"]] == [0]


def test_terminate_parent_kills_running_children_and_cancels_queued(small_emulator_clients: EmulatorClients) -> None:
    emulator_clients = small_emulator_clients
    parent_id = emulator_clients.submit(emulator_clients.job_definition(["sleep", "30"]), arrayProperties={"size": 4})
    wait_for(lambda: _summary(emulator_clients.describe(parent_id))["RUNNING"] == 2)
    started = time.monotonic()
    emulator_clients.batch.terminate_job(jobId=parent_id, reason="kill the array")
    parent = emulator_clients.wait_status(parent_id, timeout=5)
    assert time.monotonic() - started < 2
    assert (parent["status"], parent["statusReason"]) == ("FAILED", "kill the array")
    assert _summary(parent)["FAILED"] == 4
    children = emulator_clients.batch.describe_jobs(jobs=[f"{parent_id}:{i}" for i in range(4)])["jobs"]
    killed = [c for c in children if c["attempts"]]
    cancelled = [c for c in children if not c["attempts"]]
    assert len(killed) == 2 and len(cancelled) == 2
    for child in children:
        assert (child["status"], child["statusReason"]) == ("FAILED", "kill the array")
    assert all(c["attempts"][0]["container"]["exitCode"] == 137 and c["isTerminated"] for c in killed)
    assert all(c["isCancelled"] for c in cancelled)


def test_cancel_parent_cancels_queued_children_and_fails_after_running_ones_end(small_emulator_clients: EmulatorClients, gate: Path) -> None:
    emulator_clients = small_emulator_clients
    jd = emulator_clients.job_definition(["sh", "-c", WAIT_GATE], environment={"GATE": str(gate)})
    parent_id = emulator_clients.submit(jd, arrayProperties={"size": 4})
    wait_for(lambda: _summary(emulator_clients.describe(parent_id))["RUNNING"] == 2)
    emulator_clients.batch.cancel_job(jobId=parent_id, reason="cancel the array")
    parent = emulator_clients.describe(parent_id)
    assert parent["status"] == "PENDING"  # running children are not cancelled
    assert {k: v for k, v in _summary(parent).items() if v} == {"RUNNING": 2, "FAILED": 2}
    gate.touch()
    parent = emulator_clients.wait_status(parent_id)
    assert (parent["status"], parent["statusReason"]) == ("FAILED", "cancel the array")
    assert {k: v for k, v in _summary(parent).items() if v} == {"SUCCEEDED": 2, "FAILED": 2}


def test_cancel_a_queued_parent_fails_everything_at_once(small_emulator_clients: EmulatorClients, gate: Path) -> None:
    emulator_clients = small_emulator_clients
    blocker = emulator_clients.job_definition(["sh", "-c", WAIT_GATE], environment={"GATE": str(gate)})
    for i in range(2):  # take both slots, so no child can start
        emulator_clients.wait_status(emulator_clients.submit(blocker, name=f"blocker{i}"), "RUNNING")
    parent_id = emulator_clients.submit(emulator_clients.job_definition(["true"]), arrayProperties={"size": 3})
    emulator_clients.batch.cancel_job(jobId=parent_id, reason="never mind")
    parent = emulator_clients.describe(parent_id)
    assert (parent["status"], parent["statusReason"]) == ("FAILED", "never mind")
    assert _summary(parent)["FAILED"] == 3
    child = emulator_clients.describe(f"{parent_id}:2")
    assert (child["status"], child["statusReason"], child["attempts"]) == ("FAILED", "never mind", [])
    assert child["isCancelled"] is True
