"""Pure pieces of the emulator: request classification, fault rules, log line buffering, job environment,
ListJobs query parsing; plus dependsOn, bulk Terminate/Cancel and job tags end to end."""

from __future__ import annotations

import io
from typing import Any

import pytest

from aws_batch_emulator import FaultRule
from aws_batch_emulator.calls import batch_operation, classify, s3_operation
from aws_batch_emulator.errors import BatchClientError
from aws_batch_emulator.faults import FaultInjector, fault_response
from aws_batch_emulator.listing import parse_query
from aws_batch_emulator.model import RUNNING, SUCCEEDED
from aws_batch_emulator.runtime import Endpoint, _LineBuffer, job_environment
from tests.emulator.support import EmulatorClients


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("POST", "/v1/describejobs", "DescribeJobs"),
        ("POST", "/v1/submitjob", "SubmitJob"),
        ("POST", "/v1/registerjobdefinition", "RegisterJobDefinition"),
        ("GET", "/v1/tags/arn:aws:batch:us-east-1:1:job/x", "ListTagsForResource"),
        ("DELETE", "/v1/tags/arn:aws:batch:us-east-1:1:job/x", "UntagResource"),
        ("POST", "/v1/nope", "Unknown"),
    ],
)
def test_batch_operation(method: str, path: str, operation: str) -> None:
    assert batch_operation(method, path) == operation


@pytest.mark.parametrize(
    ("method", "path", "query", "operation"),
    [
        ("GET", "/", {}, "ListBuckets"),
        ("GET", "/b/k/x.pb", {}, "GetObject"),
        ("PUT", "/b/k", {}, "PutObject"),
        ("HEAD", "/b/k", {}, "HeadObject"),
        ("GET", "/b", {"list-type": ["2"]}, "ListObjectsV2"),
        ("HEAD", "/b", {}, "HeadBucket"),
        ("POST", "/b/k", {"uploads": [""]}, "CreateMultipartUpload"),
        ("PUT", "/b/k", {"partNumber": ["1"], "uploadId": ["u"]}, "UploadPart"),
        ("POST", "/b", {"delete": [""]}, "DeleteObjects"),
    ],
)
def test_s3_operation(method: str, path: str, query: dict[str, list[str]], operation: str) -> None:
    assert s3_operation(method, path, query, {}) == operation


def _environ(**extra: Any) -> dict[str, Any]:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "QUERY_STRING": "", "wsgi.input": io.BytesIO(), **extra}


def test_classify_reads_service_region_and_operation() -> None:
    auth = "AWS4-HMAC-SHA256 Credential=testing/20260101/eu-west-1/{}/aws4_request, SignedHeaders=host, Signature=0"
    batch = classify(_environ(PATH_INFO="/v1/listjobs", HTTP_AUTHORIZATION=auth.format("batch")), "us-east-1")
    assert (batch.service, batch.operation, batch.region, batch.account) == (
        "batch",
        "ListJobs",
        "eu-west-1",
        "123456789012",
    )
    logs = classify(
        _environ(HTTP_AUTHORIZATION=auth.format("logs"), HTTP_X_AMZ_TARGET="Logs_20140328.GetLogEvents"), "us-east-1"
    )
    assert logs.operation == "GetLogEvents"
    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    sts_env = _environ(
        HTTP_AUTHORIZATION=auth.format("sts"),
        CONTENT_TYPE="application/x-www-form-urlencoded",
        CONTENT_LENGTH=str(len(body)),
        **{"wsgi.input": io.BytesIO(body)},
    )
    assert classify(sts_env, "us-east-1").operation == "GetCallerIdentity"
    assert sts_env["wsgi.input"].read() == body  # put back for moto
    other = classify(_environ(HTTP_AUTHORIZATION=auth.format("batch"), HTTP_X_MOTO_ACCOUNT_ID="111122223333"), "x")
    assert other.account == "111122223333"


def test_fault_rules_validate_and_round_trip() -> None:
    rule = FaultRule.from_json({"throttle": 0.25, "error": 0.5, "errorStatus": 503, "latencyMs": 7})
    assert rule == FaultRule(throttle=0.25, error=0.5, error_status=503, latency_ms=7)
    assert FaultRule.from_json(rule.to_json()) == rule
    for bad in ({"throttle": 1.5}, {"throttle": 0.6, "error": 0.6}, {"errorStatus": 404}, {"latencyMs": -1}):
        with pytest.raises(ValueError):
            FaultRule.from_json(bad)
    with pytest.raises(ValueError, match="unknown"):
        FaultRule.from_json({"rate": 0.1})


def test_fault_injector_is_deterministic_with_a_seed() -> None:
    def draws() -> list[str]:
        injector = FaultInjector(seed=42)
        injector.set({"*": FaultRule(throttle=0.3, error=0.2)})
        return [(f.kind if (f := injector.decide("X")[1]) else "ok") for _ in range(1000)]

    first = draws()
    assert first == draws()
    assert 250 <= first.count("throttle") <= 350 and 150 <= first.count("error") <= 250


def test_batch_throttle_response_shape() -> None:
    injector = FaultInjector()
    injector.set({"DescribeJobs": FaultRule(throttle=1.0)})
    _, fault = injector.decide("DescribeJobs")
    assert fault is not None
    status, headers, body = fault_response("batch", fault)
    assert status == 429
    assert body == b'{"__type": "TooManyRequestsException", "message": "Too Many Requests"}'
    assert ("x-amzn-ErrorType", "TooManyRequestsException") in headers


def test_line_buffer_splits_lines_and_long_lines() -> None:
    written: list[list[dict[str, object]]] = []
    buffer = _LineBuffer(written.append)
    buffer.feed(b"one\ntw")
    buffer.feed(b"o\r\n\nthree")
    buffer.flush()
    buffer.feed(b"x" * (256 * 1024 + 5))
    buffer.finish()
    messages = [e["message"] for batch in written for e in batch]
    assert messages == ["one", "two", "three" + "x" * (256 * 1024 - 5), "x" * 10]
    assert [len(batch) for batch in written] == [2, 2]
    timestamps = [e["timestamp"] for batch in written for e in batch]
    assert timestamps == sorted(timestamps)


def test_job_environment_keeps_host_credentials_out() -> None:
    host = {"PATH": "/usr/bin", "HOME": "/home/u", "AWS_PROFILE": "prod", "AWS_SECRET_ACCESS_KEY": "real", "X": "1"}
    env = job_environment(
        endpoint=Endpoint("http://127.0.0.1:1", "eu-west-1"),
        job_env=[("A", "b"), ("AWS_ENDPOINT_URL", "http://custom")],
        batch_vars={"AWS_BATCH_JOB_ID": "j"},
        host_env=host,
    )
    assert "AWS_PROFILE" not in env and "X" not in env
    assert env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["HOME"] == "/home/u"
    assert env["PATH"].endswith(":/usr/bin")
    assert (env["A"], env["AWS_ENDPOINT_URL"], env["AWS_BATCH_JOB_ID"]) == ("b", "http://custom", "j")
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"


def test_list_query_parsing() -> None:
    assert parse_query({}, children=False).status == RUNNING
    assert parse_query({"jobStatus": "SUCCEEDED"}, children=False).status == SUCCEEDED
    filtered = parse_query(
        {"jobStatus": "SUCCEEDED", "filters": [{"name": "JOB_NAME", "values": ["a*"]}]}, children=False
    )
    assert filtered.status is None and filtered.max_results == 100
    for bad in (
        {"maxResults": 0},
        {"maxResults": 1001},
        {"jobStatus": "DONE"},
        {"filters": [{"name": "COLOR", "values": ["x"]}]},
        {"filters": [{"name": "JOB_NAME", "values": ["a"]}, {"name": "JOB_NAME", "values": ["b"]}]},
        {"nextToken": "!!"},
    ):
        with pytest.raises(BatchClientError):
            parse_query(bad, children=False)


def test_depends_on_waits_pending_then_runs(emulator_clients: EmulatorClients, gate: Any) -> None:
    first = emulator_clients.submit(
        emulator_clients.job_definition(["sh", "-c", 'while [ ! -f "$GATE" ]; do sleep 0.02; done'], environment={"GATE": str(gate)})
    )
    second = emulator_clients.submit(emulator_clients.job_definition(["true"]), dependsOn=[{"jobId": first}])
    emulator_clients.wait_status(first, "RUNNING")
    assert emulator_clients.wait_status(second, "PENDING")["dependsOn"] == [{"jobId": first}]
    gate.touch()
    assert emulator_clients.wait_status(second)["status"] == "SUCCEEDED"


def test_depends_on_a_failed_job_fails(emulator_clients: EmulatorClients) -> None:
    first = emulator_clients.submit(emulator_clients.job_definition(["false"]))
    second = emulator_clients.submit(emulator_clients.job_definition(["true"]), dependsOn=[{"jobId": first}], arrayProperties={"size": 2})
    job = emulator_clients.wait_status(second)
    assert (job["status"], job["statusReason"]) == ("FAILED", "Dependent Job failed")
    assert job["arrayProperties"]["statusSummary"]["FAILED"] == 2


def test_bulk_terminate_and_cancel(emulator_clients: EmulatorClients) -> None:
    jd = emulator_clients.job_definition(["sleep", "30"])
    ids = [emulator_clients.submit(jd, name=f"bulk{i}") for i in range(3)]
    for job_id in ids:
        emulator_clients.wait_status(job_id, "RUNNING")
    response = emulator_clients.batch.terminate_jobs(jobs=[*ids, "unknown"], reason="bulk stop")
    assert (response["successful"], response["errors"]) == ([*ids, "unknown"], [])
    for job_id in ids:
        assert emulator_clients.wait_status(job_id)["statusReason"] == "bulk stop"
    assert emulator_clients.batch.cancel_jobs(jobs=ids, reason="again")["errors"] == []


def test_job_tags(emulator_clients: EmulatorClients) -> None:
    job_id = emulator_clients.submit(emulator_clients.job_definition(["true"]), tags={"team": "flyte"})
    arn = emulator_clients.describe(job_id)["jobArn"]
    assert emulator_clients.describe(job_id)["tags"] == {"team": "flyte"}
    emulator_clients.batch.tag_resource(resourceArn=arn, tags={"env": "test"})
    emulator_clients.batch.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert emulator_clients.batch.list_tags_for_resource(resourceArn=arn)["tags"] == {"env": "test"}


def test_moto_backends_are_looked_up_once_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from aws_batch_emulator.moto_dispatch import MotoDispatcher

    hosts = ["s3.us-east-1.amazonaws.com", "batch.eu-west-1.amazonaws.com", "logs.us-east-1.amazonaws.com", "s3"]
    plain = DomainDispatcherApplication(create_backend_app)
    expected = [plain.get_backend_for_host(h) for h in hosts]
    assert expected[:3] == ["s3", "batch", "logs"]
    dispatcher = MotoDispatcher(create_backend_app)
    assert [dispatcher.get_backend_for_host(h) for h in hosts] == expected

    def no_scan() -> Any:
        raise AssertionError("moto's package directory listed again")

    monkeypatch.setattr(backends, "list_of_moto_modules", no_scan)
    assert [dispatcher.get_backend_for_host(h) for h in hosts] == expected
