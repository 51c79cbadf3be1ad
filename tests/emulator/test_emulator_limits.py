"""AWS's limits where moto is lax: DescribeJobs id count, array size, job names, ListJobs semantics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from emu_support import Aws, wait_for

WAIT_GATE = 'while [ ! -f "$GATE" ]; do sleep 0.02; done'


def _client_exception(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    error = excinfo.value.response
    assert error["Error"]["Code"] == "ClientException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(error["Error"]["Message"])


def test_describe_jobs_rejects_more_than_100_ids(aws: Aws) -> None:
    with pytest.raises(ClientError) as excinfo:
        aws.batch.describe_jobs(jobs=[f"id-{i}" for i in range(101)])
    assert "100" in _client_exception(excinfo)
    assert aws.batch.describe_jobs(jobs=[f"id-{i}" for i in range(100)])["jobs"] == []  # unknown ids: omitted


def test_describe_jobs_rejects_an_empty_list(aws: Aws) -> None:
    with pytest.raises(ClientError) as excinfo:
        aws.batch.describe_jobs(jobs=[])
    _client_exception(excinfo)


def test_describe_jobs_accepts_arns_and_dedupes(aws: Aws) -> None:
    job_id = aws.submit(aws.job_definition(["true"]))
    arn = aws.describe(job_id)["jobArn"]
    jobs = aws.batch.describe_jobs(jobs=[job_id, arn, job_id])["jobs"]
    assert [j["jobId"] for j in jobs] == [job_id]


@pytest.mark.parametrize("size", [0, 1, 10_001])
def test_array_size_outside_2_to_10000_is_rejected(aws: Aws, size: int) -> None:
    jd = aws.job_definition(["true"])
    with pytest.raises(ClientError) as excinfo:
        aws.submit(jd, arrayProperties={"size": size})
    assert "between 2 and 10000" in _client_exception(excinfo)


def test_array_size_bounds_are_accepted(aws: Aws) -> None:
    jd = aws.job_definition(["true"])
    for size in (2, 10_000):
        parent_id = aws.submit(jd, arrayProperties={"size": size})
        assert aws.describe(parent_id)["arrayProperties"]["size"] == size
    aws.emulator.reset_jobs()  # don't run 10,000 children


@pytest.mark.parametrize("name", ["-starts-with-dash", "_underscore", "has space", "dot.name", "a" * 129])
def test_bad_job_names_are_rejected(aws: Aws, name: str) -> None:
    jd = aws.job_definition(["true"])
    with pytest.raises(ClientError) as excinfo:
        aws.submit(jd, name=name)
    _client_exception(excinfo)


@pytest.mark.parametrize("name", ["a", "Job_1-x", "9" * 128])
def test_good_job_names_are_accepted(aws: Aws, name: str) -> None:
    job_id = aws.submit(aws.job_definition(["true"]), name=name)
    assert aws.describe(job_id)["jobName"] == name


def test_submit_validation(aws: Aws) -> None:
    jd = aws.job_definition(["true"])
    bad: list[dict[str, Any]] = [
        {"jobQueue": "no-such-queue"},
        {"jobDefinition": "no-such-definition"},
        {"retryStrategy": {"attempts": 11}},
        {"containerOverrides": {"environment": [{"name": "AWS_BATCH_X", "value": "1"}]}},
    ]
    for override in bad:
        request = {"jobName": "j", "jobQueue": aws.info.queue, "jobDefinition": jd, **override}
        with pytest.raises(ClientError) as excinfo:
            aws.batch.submit_job(**request)
        _client_exception(excinfo)


def test_job_definition_by_name_revision_and_arn(aws: Aws) -> None:
    name = aws.job_definition(["sh", "-c", "exit 1"])
    aws.job_definition(["sh", "-c", "exit 2"], name=name)  # revision 2 is the latest
    arn1 = aws.batch.describe_job_definitions(jobDefinitionName=name)["jobDefinitions"]
    arn_by_rev = {d["revision"]: d["jobDefinitionArn"] for d in arn1}
    codes = {}
    for ref in (name, f"{name}:1", arn_by_rev[2]):
        codes[ref] = aws.wait_status(aws.submit(ref))["container"]["exitCode"]
    assert codes == {name: 2, f"{name}:1": 1, arn_by_rev[2]: 2}


def test_list_jobs_needs_exactly_one_scope(aws: Aws) -> None:
    with pytest.raises(ClientError) as excinfo:
        aws.batch.list_jobs()
    _client_exception(excinfo)


def _ids(page: dict[str, Any]) -> list[str]:
    return [s["jobId"] for s in page["jobSummaryList"]]


def test_list_jobs_default_running_pagination_and_name_filter(aws: Aws, gate: Path) -> None:
    done = aws.job_definition(["sh", "-c", "exit 3"])
    waiting = aws.job_definition(["sh", "-c", WAIT_GATE], environment={"GATE": str(gate)})
    finished = aws.submit(done, name="Report-failed")
    aws.wait_status(finished)
    running = [aws.submit(waiting, name=f"report-{i}") for i in range(5)]
    other = aws.submit(waiting, name="other")
    for job_id in [*running, other]:
        aws.wait_status(job_id, "RUNNING")

    # No jobStatus, no filters: RUNNING jobs only, newest first.
    page = aws.batch.list_jobs(jobQueue=aws.info.queue)
    assert _ids(page) == [other, *reversed(running)]
    assert "nextToken" not in page

    # Pages of 2 with a token; queue by ARN works too.
    pages, token = [], None
    while True:
        kwargs: dict[str, Any] = {"nextToken": token} if token else {}
        page = aws.batch.list_jobs(jobQueue=aws.info.queue_arn, jobStatus="RUNNING", maxResults=2, **kwargs)
        pages.append(_ids(page))
        token = page.get("nextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [2, 2, 2]
    assert [i for p in pages for i in p] == [other, *reversed(running)]
    paginated = aws.batch.get_paginator("list_jobs").paginate(jobQueue=aws.info.queue, PaginationConfig={"PageSize": 4})
    assert sum(len(p["jobSummaryList"]) for p in paginated) == 6

    # JOB_NAME filter: case-insensitive, `*` for a prefix, jobStatus ignored (all statuses).
    prefix = aws.batch.list_jobs(
        jobQueue=aws.info.queue, jobStatus="SUCCEEDED", filters=[{"name": "JOB_NAME", "values": ["REPORT*"]}]
    )
    assert _ids(prefix) == [*reversed(running), finished]
    failed = prefix["jobSummaryList"][-1]
    assert failed["status"] == "FAILED"
    assert failed["statusReason"] == "Essential container in task exited"
    assert failed["container"] == {"exitCode": 3}
    exact = aws.batch.list_jobs(jobQueue=aws.info.queue, filters=[{"name": "JOB_NAME", "values": ["OTHER"]}])
    assert _ids(exact) == [other]
    gate.touch()


def test_list_jobs_of_an_array(small_aws: Aws, gate: Path) -> None:
    aws = small_aws
    jd = aws.job_definition(["sh", "-c", WAIT_GATE], environment={"GATE": str(gate)})
    parent_id = aws.submit(jd, arrayProperties={"size": 5})
    wait_for(lambda: aws.describe(parent_id)["arrayProperties"]["statusSummary"]["RUNNING"] == 2)
    running = aws.batch.list_jobs(arrayJobId=parent_id)["jobSummaryList"]  # default: RUNNING only
    assert [s["jobId"] for s in running] == [f"{parent_id}:0", f"{parent_id}:1"]
    assert [s["arrayProperties"] for s in running] == [{"index": 0}, {"index": 1}]
    first = aws.batch.list_jobs(arrayJobId=parent_id, jobStatus="RUNNABLE", maxResults=2)
    second = aws.batch.list_jobs(arrayJobId=parent_id, jobStatus="RUNNABLE", nextToken=first["nextToken"])
    assert _ids(first) + _ids(second) == [f"{parent_id}:{i}" for i in (2, 3, 4)]
    [parent] = aws.batch.list_jobs(jobQueue=aws.info.queue, jobStatus="PENDING")["jobSummaryList"]
    assert parent["jobId"] == parent_id
    assert parent["arrayProperties"]["size"] == 5
    assert parent["arrayProperties"]["statusSummary"]["RUNNABLE"] == 3
    gate.touch()


def test_list_jobs_rejects_a_bad_token(aws: Aws) -> None:
    with pytest.raises(ClientError) as excinfo:
        aws.batch.list_jobs(jobQueue=aws.info.queue, nextToken="garbage")
    _client_exception(excinfo)
