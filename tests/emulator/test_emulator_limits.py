"""AWS's limits where moto is lax: DescribeJobs id count, array size, job names, ListJobs semantics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.emulator.support import EmulatorClients
from tests.support import wait_for

WAIT_GATE = 'while [ ! -f "$GATE" ]; do sleep 0.02; done'


def _client_exception(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    error = excinfo.value.response
    assert error["Error"]["Code"] == "ClientException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(error["Error"]["Message"])


def test_describe_jobs_rejects_more_than_100_ids(emulator_clients: EmulatorClients) -> None:
    with pytest.raises(ClientError) as excinfo:
        emulator_clients.batch.describe_jobs(jobs=[f"id-{i}" for i in range(101)])
    assert "100" in _client_exception(excinfo)
    assert emulator_clients.batch.describe_jobs(jobs=[f"id-{i}" for i in range(100)])["jobs"] == []  # unknown ids: omitted


def test_describe_jobs_rejects_an_empty_list(emulator_clients: EmulatorClients) -> None:
    with pytest.raises(ClientError) as excinfo:
        emulator_clients.batch.describe_jobs(jobs=[])
    _client_exception(excinfo)


def test_describe_jobs_accepts_arns_and_dedupes(emulator_clients: EmulatorClients) -> None:
    job_id = emulator_clients.submit(emulator_clients.job_definition(["true"]))
    arn = emulator_clients.describe(job_id)["jobArn"]
    jobs = emulator_clients.batch.describe_jobs(jobs=[job_id, arn, job_id])["jobs"]
    assert [j["jobId"] for j in jobs] == [job_id]


@pytest.mark.parametrize("size", [0, 1, 10_001])
def test_array_size_outside_2_to_10000_is_rejected(emulator_clients: EmulatorClients, size: int) -> None:
    jd = emulator_clients.job_definition(["true"])
    with pytest.raises(ClientError) as excinfo:
        emulator_clients.submit(jd, arrayProperties={"size": size})
    assert "between 2 and 10000" in _client_exception(excinfo)


def test_array_size_bounds_are_accepted(emulator_clients: EmulatorClients) -> None:
    jd = emulator_clients.job_definition(["true"])
    for size in (2, 10_000):
        parent_id = emulator_clients.submit(jd, arrayProperties={"size": size})
        assert emulator_clients.describe(parent_id)["arrayProperties"]["size"] == size
    emulator_clients.emulator.reset_jobs()  # don't run 10,000 children


@pytest.mark.parametrize("name", ["-starts-with-dash", "_underscore", "has space", "dot.name", "a" * 129])
def test_bad_job_names_are_rejected(emulator_clients: EmulatorClients, name: str) -> None:
    jd = emulator_clients.job_definition(["true"])
    with pytest.raises(ClientError) as excinfo:
        emulator_clients.submit(jd, name=name)
    _client_exception(excinfo)


@pytest.mark.parametrize("name", ["a", "Job_1-x", "9" * 128])
def test_good_job_names_are_accepted(emulator_clients: EmulatorClients, name: str) -> None:
    job_id = emulator_clients.submit(emulator_clients.job_definition(["true"]), name=name)
    assert emulator_clients.describe(job_id)["jobName"] == name


def test_submit_validation(emulator_clients: EmulatorClients) -> None:
    jd = emulator_clients.job_definition(["true"])
    bad: list[dict[str, Any]] = [
        {"jobQueue": "no-such-queue"},
        {"jobDefinition": "no-such-definition"},
        {"retryStrategy": {"attempts": 11}},
        {"containerOverrides": {"environment": [{"name": "AWS_BATCH_X", "value": "1"}]}},
    ]
    for override in bad:
        request = {"jobName": "j", "jobQueue": emulator_clients.info.queue, "jobDefinition": jd, **override}
        with pytest.raises(ClientError) as excinfo:
            emulator_clients.batch.submit_job(**request)
        _client_exception(excinfo)


def test_job_definition_by_name_revision_and_arn(emulator_clients: EmulatorClients) -> None:
    name = emulator_clients.job_definition(["sh", "-c", "exit 1"])
    emulator_clients.job_definition(["sh", "-c", "exit 2"], name=name)  # revision 2 is the latest
    arn1 = emulator_clients.batch.describe_job_definitions(jobDefinitionName=name)["jobDefinitions"]
    arn_by_rev = {d["revision"]: d["jobDefinitionArn"] for d in arn1}
    codes = {}
    for ref in (name, f"{name}:1", arn_by_rev[2]):
        codes[ref] = emulator_clients.wait_status(emulator_clients.submit(ref))["container"]["exitCode"]
    assert codes == {name: 2, f"{name}:1": 1, arn_by_rev[2]: 2}


def test_list_jobs_needs_exactly_one_scope(emulator_clients: EmulatorClients) -> None:
    with pytest.raises(ClientError) as excinfo:
        emulator_clients.batch.list_jobs()
    _client_exception(excinfo)


def _ids(page: dict[str, Any]) -> list[str]:
    return [s["jobId"] for s in page["jobSummaryList"]]


def test_list_jobs_default_running_pagination_and_name_filter(emulator_clients: EmulatorClients, gate: Path) -> None:
    done = emulator_clients.job_definition(["sh", "-c", "exit 3"])
    waiting = emulator_clients.job_definition(["sh", "-c", WAIT_GATE], environment={"GATE": str(gate)})
    finished = emulator_clients.submit(done, name="Report-failed")
    emulator_clients.wait_status(finished)
    running = [emulator_clients.submit(waiting, name=f"report-{i}") for i in range(5)]
    other = emulator_clients.submit(waiting, name="other")
    for job_id in [*running, other]:
        emulator_clients.wait_status(job_id, "RUNNING")

    # No jobStatus, no filters: RUNNING jobs only, newest first.
    page = emulator_clients.batch.list_jobs(jobQueue=emulator_clients.info.queue)
    assert _ids(page) == [other, *reversed(running)]
    assert "nextToken" not in page

    # Pages of 2 with a token; queue by ARN works too.
    pages, token = [], None
    while True:
        kwargs: dict[str, Any] = {"nextToken": token} if token else {}
        page = emulator_clients.batch.list_jobs(jobQueue=emulator_clients.info.queue_arn, jobStatus="RUNNING", maxResults=2, **kwargs)
        pages.append(_ids(page))
        token = page.get("nextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [2, 2, 2]
    assert [i for p in pages for i in p] == [other, *reversed(running)]
    paginated = emulator_clients.batch.get_paginator("list_jobs").paginate(jobQueue=emulator_clients.info.queue, PaginationConfig={"PageSize": 4})
    assert sum(len(p["jobSummaryList"]) for p in paginated) == 6

    # JOB_NAME filter: case-insensitive, `*` for a prefix, jobStatus ignored (all statuses).
    prefix = emulator_clients.batch.list_jobs(
        jobQueue=emulator_clients.info.queue, jobStatus="SUCCEEDED", filters=[{"name": "JOB_NAME", "values": ["REPORT*"]}]
    )
    assert _ids(prefix) == [*reversed(running), finished]
    failed = prefix["jobSummaryList"][-1]
    assert failed["status"] == "FAILED"
    assert failed["statusReason"] == "Essential container in task exited"
    assert failed["container"] == {"exitCode": 3}
    exact = emulator_clients.batch.list_jobs(jobQueue=emulator_clients.info.queue, filters=[{"name": "JOB_NAME", "values": ["OTHER"]}])
    assert _ids(exact) == [other]
    gate.touch()


def test_list_jobs_of_an_array(small_emulator_clients: EmulatorClients, gate: Path) -> None:
    emulator_clients = small_emulator_clients
    jd = emulator_clients.job_definition(["sh", "-c", WAIT_GATE], environment={"GATE": str(gate)})
    parent_id = emulator_clients.submit(jd, arrayProperties={"size": 5})
    wait_for(lambda: emulator_clients.describe(parent_id)["arrayProperties"]["statusSummary"]["RUNNING"] == 2)
    running = emulator_clients.batch.list_jobs(arrayJobId=parent_id)["jobSummaryList"]  # default: RUNNING only
    assert [s["jobId"] for s in running] == [f"{parent_id}:0", f"{parent_id}:1"]
    assert [s["arrayProperties"] for s in running] == [{"index": 0}, {"index": 1}]
    first = emulator_clients.batch.list_jobs(arrayJobId=parent_id, jobStatus="RUNNABLE", maxResults=2)
    second = emulator_clients.batch.list_jobs(arrayJobId=parent_id, jobStatus="RUNNABLE", nextToken=first["nextToken"])
    assert _ids(first) + _ids(second) == [f"{parent_id}:{i}" for i in (2, 3, 4)]
    [parent] = emulator_clients.batch.list_jobs(jobQueue=emulator_clients.info.queue, jobStatus="PENDING")["jobSummaryList"]
    assert parent["jobId"] == parent_id
    assert parent["arrayProperties"]["size"] == 5
    assert parent["arrayProperties"]["statusSummary"]["RUNNABLE"] == 3
    gate.touch()


def test_list_jobs_rejects_a_bad_token(emulator_clients: EmulatorClients) -> None:
    with pytest.raises(ClientError) as excinfo:
        emulator_clients.batch.list_jobs(jobQueue=emulator_clients.info.queue, nextToken="garbage")
    _client_exception(excinfo)
