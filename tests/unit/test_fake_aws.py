"""FakeAws answers like AWS through AwsApi: S3 ETags and conditional writes as S3Store sees them, a scripted
Batch, CloudWatch Logs, faults and pauses per operation."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from aws_array_plugin.aws_calls import AwsRequestError, AwsUnavailable
from aws_array_plugin.job_details import decode_describe_jobs
from aws_array_plugin.storage import S3Store, WriteConflict
from aws_array_plugin.testing import Call, FakeAws, Proceed

URI = "s3://bucket/prefix/key.json"


async def test_an_object_reads_back_with_the_etag_its_write_returned() -> None:
    aws = FakeAws()
    store = S3Store(aws)
    etag = await store.write(URI, b"one", content_type="application/json")
    obj = await store.read(URI)
    assert obj is not None and obj.data == b"one" and obj.etag == etag and etag.startswith('"')
    assert await store.read("s3://bucket/other") is None


async def test_a_missing_key_is_no_such_key_404_as_s3_answers() -> None:
    aws = FakeAws()
    with pytest.raises(AwsRequestError) as caught:
        await aws.call("s3", "s3", "get_object", Bucket="bucket", Key="nope")
    assert (caught.value.code, caught.value.status) == ("NoSuchKey", 404)
    with pytest.raises(AwsRequestError) as head:
        await aws.call("s3", "s3", "head_object", Bucket="bucket", Key="nope")
    assert head.value.status == 404


async def test_conditional_writes_fail_with_precondition_failed_which_the_store_calls_a_conflict() -> None:
    aws = FakeAws()
    store = S3Store(aws)
    first = await store.write(URI, b"one", create_only=True)
    with pytest.raises(WriteConflict):
        await store.write(URI, b"two", create_only=True)
    second = await store.write(URI, b"two", if_match=first)
    with pytest.raises(WriteConflict):
        await store.write(URI, b"three", if_match=first)  # stale ETag
    with pytest.raises(AwsRequestError) as raw:
        await aws.call("s3", "s3", "put_object", Bucket="bucket", Key="prefix/key.json", Body=b"x", IfMatch=first)
    assert (raw.value.code, raw.value.status) == ("PreconditionFailed", 412)
    assert aws.get(URI) == b"two" and second != first


async def test_list_objects_pages_through_a_prefix_in_key_order() -> None:
    aws = FakeAws()
    for name in ("b", "a", "c"):
        aws.put(f"s3://bucket/p/{name}", name.encode())
    aws.put("s3://bucket/q/x", b"x")
    page = await aws.call("s3", "s3", "list_objects_v2", Bucket="bucket", Prefix="p/", MaxKeys=2)
    assert [o["Key"] for o in page["Contents"]] == ["p/a", "p/b"] and page["IsTruncated"]
    rest = await aws.call("s3", "s3", "list_objects_v2", Bucket="bucket", Prefix="p/",
                          ContinuationToken=page["NextContinuationToken"])
    assert [o["Key"] for o in rest["Contents"]] == ["p/c"] and not rest["IsTruncated"]


async def test_submitted_jobs_are_listed_by_name_described_and_terminated() -> None:
    aws = FakeAws()
    sub = await aws.call("submit", "batch", "submit_job", jobName="j", jobQueue="q", jobDefinition="d",
                         arrayProperties={"size": 2})
    by_name = await aws.call("list", "batch", "list_jobs", jobQueue="q",
                             filters=[{"name": "JOB_NAME", "values": ["j"]}])
    assert [s["jobId"] for s in by_name["jobSummaryList"]] == [sub["jobId"]]
    running = await aws.call("list", "batch", "list_jobs", jobQueue="q")  # RUNNING by default: none
    assert running["jobSummaryList"] == []
    (detail,) = (await aws.call("describe", "batch", "describe_jobs", jobs=[sub["jobId"], "unknown"]))["jobs"]
    assert detail["status"] == "SUBMITTED" and detail["arrayProperties"]["size"] == 2
    await aws.call("terminate", "batch", "terminate_job", jobId=sub["jobId"], reason="Aborted by Flyte")
    await aws.call("terminate", "batch", "terminate_job", jobId="unknown", reason="x")  # accepted, as by AWS
    assert aws.job(sub["jobId"])["status"] == "FAILED" and aws.job(sub["jobId"])["statusReason"] == "Aborted by Flyte"
    assert [p["jobName"] for p in aws.sent("submit_job")] == ["j"]


async def test_scripted_array_children_are_listed_by_status_and_summarised_on_the_parent() -> None:
    aws = FakeAws()
    parent = aws.add_job("arr", "q", status="RUNNING", size=3)
    ids = aws.set_children(parent, [{"status": "SUCCEEDED"}, {"status": "FAILED", "statusReason": "boom"},
                                    {"status": "RUNNING"}])
    failed = await aws.call("list", "batch", "list_jobs", arrayJobId=parent, jobStatus="FAILED")
    assert [s["jobId"] for s in failed["jobSummaryList"]] == [ids[1]]
    assert failed["jobSummaryList"][0]["arrayProperties"] == {"index": 1}
    summary = aws.job(parent)["arrayProperties"]["statusSummary"]
    assert (summary["SUCCEEDED"], summary["FAILED"], summary["RUNNING"]) == (1, 1, 1)
    aws.update_job(ids[2], status="SUCCEEDED", container={"exitCode": 0})
    (child,) = (await aws.call("describe", "batch", "describe_jobs", jobs=[ids[2]]))["jobs"]
    assert child["container"] == {"exitCode": 0}
    aws.remove_job(parent)
    assert (await aws.call("describe", "batch", "describe_jobs", jobs=[parent, *ids]))["jobs"] == []


async def test_a_registered_decoder_answers_describe_jobs_as_with_the_sdk() -> None:
    aws = FakeAws()
    aws.decode_with("batch", "DescribeJobs", decode_describe_jobs)
    job = aws.add_job("j", "q", status="FAILED", container={"exitCode": 3, "command": ["not", "kept"]})
    (detail,) = (await aws.call("describe", "batch", "describe_jobs", jobs=[job]))["jobs"]
    assert detail["container"] == {"exitCode": 3} and "jobArn" not in detail


async def test_job_definitions_register_in_revisions_and_are_found_by_name() -> None:
    aws = FakeAws(region="eu-west-1")
    body: dict[str, Any] = {"jobDefinitionName": "d", "type": "container", "containerProperties": {"image": "img"}}
    first = await aws.call("job_definitions", "batch", "register_job_definition", **body)
    second = await aws.call("job_definitions", "batch", "register_job_definition", **body)
    assert (first["revision"], second["revision"]) == (1, 2)
    assert first["jobDefinitionArn"] == "arn:aws:batch:eu-west-1:123456789012:job-definition/d:1"
    found = await aws.call("job_definitions", "batch", "describe_job_definitions", jobDefinitionName="d",
                           status="ACTIVE")
    assert [d["revision"] for d in found["jobDefinitions"]] == [1, 2]


async def test_log_events_page_forward_from_the_head() -> None:
    aws = FakeAws()
    aws.put_log_events("g", "s", ["a", "b", "c"], timestamp_ms=1000)
    first = await aws.call("logs", "logs", "get_log_events", logGroupName="g", logStreamName="s",
                           startFromHead=True, limit=2)
    assert [e["message"] for e in first["events"]] == ["a", "b"]
    rest = await aws.call("logs", "logs", "get_log_events", logGroupName="g", logStreamName="s",
                          nextToken=first["nextForwardToken"], limit=2)
    assert [e["message"] for e in rest["events"]] == ["c"]
    with pytest.raises(AwsRequestError) as caught:
        await aws.call("logs", "logs", "get_log_events", logGroupName="g", logStreamName="missing")
    assert caught.value.code == "ResourceNotFoundException"


async def test_a_fault_fails_the_given_number_of_calls_and_only_those_it_matches() -> None:
    aws = FakeAws()
    aws.fail("put_object", AwsUnavailable("put_object", "server_error", "InternalError"), times=2,
             when=lambda p: p["Key"].endswith(".json"))
    for _ in range(2):
        with pytest.raises(AwsUnavailable):
            await aws.call("s3", "s3", "put_object", Bucket="b", Key="k.json", Body=b"x")
        await aws.call("s3", "s3", "put_object", Bucket="b", Key="k.txt", Body=b"x")  # not matched
    await aws.call("s3", "s3", "put_object", Bucket="b", Key="k.json", Body=b"x")
    assert len(aws.sent("put_object")) == 5
    assert aws.get("s3://b/k.json") == b"x"


async def test_a_landed_fault_carries_the_call_out_before_raising() -> None:
    aws = FakeAws()
    aws.fail("submit_job", AwsUnavailable("submit_job", "timeout", "ReadTimeoutError"), landed=True)
    with pytest.raises(AwsUnavailable):
        await aws.call("submit", "batch", "submit_job", jobName="j", jobQueue="q", jobDefinition="d")
    assert len(aws.jobs_named("j")) == 1


async def test_a_paused_call_waits_until_released_while_others_go_on() -> None:
    aws = FakeAws()
    held = aws.pause("put_object")
    slow = asyncio.create_task(aws.call("s3", "s3", "put_object", Bucket="b", Key="k", Body=b"1"))
    await asyncio.wait_for(held.reached.wait(), 1)
    assert aws.get("s3://b/k") is None
    await aws.call("s3", "s3", "put_object", Bucket="b", Key="other", Body=b"2")  # only the first is held
    held.release()
    await slow
    assert aws.get("s3://b/k") == b"1" and held.held == 1


async def test_an_intercept_sees_the_call_and_decides_what_answers() -> None:
    aws = FakeAws()
    seen: list[Call] = []

    async def hook(call: Call, proceed: Proceed) -> dict[str, object]:
        seen.append(call)
        return {"ETag": '"not-really"', **(await proceed())}

    aws.intercept("put_object", hook, times=1)
    answer = await aws.call("s3", "s3", "put_object", Bucket="b", Key="k", Body=b"1")
    assert answer["ETag"] != '"not-really"'  # proceed's answer wins the merge
    assert [c.params["Key"] for c in seen] == ["k"] and seen[0].call_class == "s3"


async def test_a_call_past_its_deadline_is_not_sent() -> None:
    aws = FakeAws()
    with pytest.raises(AwsUnavailable) as caught:
        await aws.call("submit", "batch", "submit_job", deadline=time.monotonic() - 0.001, jobName="j",
                       jobQueue="q", jobDefinition="d")
    assert caught.value.outcome == "paced"
    assert aws.sent("submit_job") == [] and [c.operation for c in aws.paced] == ["submit_job"]
    assert aws.jobs == {}


async def test_unknown_operations_and_call_classes_are_programming_errors() -> None:
    aws = FakeAws()
    with pytest.raises(NotImplementedError):
        await aws.call("s3", "s3", "delete_object", Bucket="b", Key="k")
    with pytest.raises(ValueError):
        await aws.call("nope", "s3", "get_object", Bucket="b", Key="k")
