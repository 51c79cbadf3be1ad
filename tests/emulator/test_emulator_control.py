"""Fault injection, call counters, the /_emulator HTTP control API, loopback binding, and the CLI process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from aws_batch_emulator import Emulator, FaultRule
from tests.emulator.support import NO_RETRY, EmulatorClients


def _http(endpoint: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(endpoint + path, data=data, method=method)
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def _throttled_share(emulator_clients: EmulatorClients, calls: int) -> float:
    throttled = 0
    for _ in range(calls):
        try:
            emulator_clients.batch.describe_jobs(jobs=["x"])
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "TooManyRequestsException"
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 429
            throttled += 1
    return throttled / calls


def test_throttle_rate_is_within_tolerance_and_looks_like_aws(emulator_clients: EmulatorClients) -> None:
    emulator_clients.emulator.set_faults({"DescribeJobs": FaultRule(throttle=0.3)}, seed=1)
    share = _throttled_share(emulator_clients, 400)
    assert 0.22 <= share <= 0.38
    assert emulator_clients.emulator.stats()["DescribeJobs"] == 400
    # Only the named operation is affected.
    for _ in range(20):
        emulator_clients.batch.list_jobs(jobQueue=emulator_clients.info.queue)


def test_throttled_calls_are_retried_by_botocore(emulator_clients: EmulatorClients) -> None:
    emulator_clients.emulator.set_faults({"DescribeJobs": {"throttle": 0.5}}, seed=3)
    retrying = boto3.client(
        "batch", config=Config(retries={"mode": "legacy", "max_attempts": 10}), **emulator_clients.info.client_kwargs()
    )
    retries = 0
    for _ in range(4):
        response = retrying.describe_jobs(jobs=["x"])
        assert response["jobs"] == []
        retries += response["ResponseMetadata"]["RetryAttempts"]
    assert retries > 0
    assert emulator_clients.emulator.stats()["DescribeJobs"] == 4 + retries  # the throttled tries were counted too


def test_server_errors_are_modelled_server_exceptions(emulator_clients: EmulatorClients) -> None:
    emulator_clients.emulator.set_faults({"SubmitJob": FaultRule(error=1.0, error_status=503)})
    with pytest.raises(emulator_clients.batch.exceptions.ServerException) as excinfo:
        emulator_clients.submit(emulator_clients.job_definition(["true"]))
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503


def test_wildcard_rule_and_latency(emulator_clients: EmulatorClients) -> None:
    emulator_clients.emulator.set_faults({"*": FaultRule(latency_ms=150), "DescribeJobs": FaultRule()})
    started = time.monotonic()
    emulator_clients.batch.list_jobs(jobQueue=emulator_clients.info.queue)
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    emulator_clients.batch.describe_jobs(jobs=["x"])  # its own rule (no latency) wins over `*`
    assert time.monotonic() - started < 0.15


def test_other_services_get_their_own_throttling_shape(emulator_clients: EmulatorClients) -> None:
    emulator_clients.emulator.set_faults({"GetObject": FaultRule(throttle=1.0), "GetLogEvents": FaultRule(throttle=1.0)})
    with pytest.raises(ClientError) as s3_error:
        emulator_clients.s3.get_object(Bucket=emulator_clients.info.bucket, Key="missing")
    assert s3_error.value.response["Error"]["Code"] == "SlowDown"
    with pytest.raises(ClientError) as logs_error:
        emulator_clients.logs.get_log_events(logGroupName="/aws/batch/job", logStreamName="x")
    assert logs_error.value.response["Error"]["Code"] == "ThrottlingException"


def test_stats_count_calls_per_operation_and_reset(emulator_clients: EmulatorClients) -> None:
    emulator_clients.emulator.reset_stats()
    for _ in range(3):
        emulator_clients.batch.describe_jobs(jobs=["x"])
    emulator_clients.s3.put_object(Bucket=emulator_clients.info.bucket, Key="k", Body=b"v")
    emulator_clients.s3.get_object(Bucket=emulator_clients.info.bucket, Key="k")
    emulator_clients.logs.describe_log_groups()
    assert emulator_clients.emulator.stats() == {"DescribeJobs": 3, "PutObject": 1, "GetObject": 1, "DescribeLogGroups": 1}
    emulator_clients.emulator.reset_stats()
    assert emulator_clients.emulator.stats() == {}


def test_http_control_api(emulator_clients: EmulatorClients) -> None:
    endpoint = emulator_clients.info.endpoint
    assert _http(endpoint, "GET", "/_emulator/info") == emulator_clients.info.to_json()
    rules = _http(endpoint, "POST", "/_emulator/faults", {"rules": {"DescribeJobs": {"throttle": 1.0}}, "seed": 5})
    assert rules["rules"]["DescribeJobs"]["throttle"] == 1.0
    assert _http(endpoint, "GET", "/_emulator/faults")["rules"]["DescribeJobs"]["throttle"] == 1.0
    assert _throttled_share(emulator_clients, 5) == 1.0
    assert _http(endpoint, "GET", "/_emulator/stats") == {"DescribeJobs": 5}
    _http(endpoint, "DELETE", "/_emulator/faults")
    assert _throttled_share(emulator_clients, 5) == 0.0
    _http(endpoint, "DELETE", "/_emulator/stats")
    assert _http(endpoint, "GET", "/_emulator/stats") == {}
    _http(endpoint, "POST", "/_emulator/faults", {"ListJobs": {"error": 1.0}})  # bare mapping form
    assert emulator_clients.emulator.faults() == {"ListJobs": FaultRule(error=1.0)}
    summary = _http(endpoint, "GET", "/_emulator/jobs")
    assert summary["jobs"] == 0 and summary["rssBytes"] > 0
    with pytest.raises(urllib.error.HTTPError) as bad:
        _http(endpoint, "POST", "/_emulator/faults", {"DescribeJobs": {"throttle": 2}})
    assert bad.value.code == 400


def test_jobs_summary_and_reset(emulator_clients: EmulatorClients) -> None:
    jd = emulator_clients.job_definition(["sleep", "30"])
    emulator_clients.submit(jd)
    emulator_clients.submit(jd, arrayProperties={"size": 4})
    summary = emulator_clients.emulator.jobs_summary()
    assert (summary["jobs"], summary["arrayJobs"], summary["arrayChildren"]) == (2, 1, 4)
    assert sum(summary["units"].values()) == 5
    _http(emulator_clients.info.endpoint, "POST", "/_emulator/reset")
    assert emulator_clients.emulator.jobs_summary()["jobs"] == 0


def test_server_listens_on_loopback_only(emulator: Emulator) -> None:
    assert emulator.info.endpoint.startswith("http://127.0.0.1:")
    server = emulator._listener._server  # type: ignore[union-attr]  # the bound address itself
    assert server.server_address[0] == "127.0.0.1"


def test_start_is_fast_and_stop_kills_jobs() -> None:
    started = time.monotonic()
    emu = Emulator(port=0, step=0.05, concurrency=2, queue="fast-start", bucket="fast-start-data")
    info = emu.start()
    assert time.monotonic() - started < 2.0
    emulator_clients = EmulatorClients(emu)
    job_id = emulator_clients.submit(emulator_clients.job_definition(["sh", "-c", "echo $$; sleep 60"]))
    job = emulator_clients.wait_status(job_id, "RUNNING")
    pid = int(aws_wait_first_line(emulator_clients, job["container"]["logStreamName"]))
    emu.stop()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.02)
    assert not _alive(pid)
    assert info.queue == "fast-start"


def aws_wait_first_line(emulator_clients: EmulatorClients, stream: str) -> str:
    from tests.support import wait_for

    lines: list[str] = wait_for(lambda: emulator_clients.log_messages(stream))
    return lines[0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_cli_process_prints_json_line_and_applies_fault_flags() -> None:
    command = [
        sys.executable, "-m", "aws_batch_emulator",
        "--port", "0", "--step", "0.05", "--concurrency", "2", "--throttle", "DescribeJobs=1.0",
        "--latency", "ListJobs=10",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["endpoint"].startswith("http://127.0.0.1:")
        assert (info["region"], info["queue"], info["bucket"]) == ("us-east-1", "default", "flyte-data")
        batch = boto3.client(
            "batch",
            config=NO_RETRY,
            endpoint_url=info["endpoint"],
            region_name=info["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        with pytest.raises(ClientError) as excinfo:
            batch.describe_jobs(jobs=["x"])
        assert excinfo.value.response["Error"]["Code"] == "TooManyRequestsException"
        rules = _http(info["endpoint"], "GET", "/_emulator/faults")["rules"]
        assert rules["DescribeJobs"]["throttle"] == 1.0
        assert rules["ListJobs"]["latencyMs"] == 10
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_cli_flags_and_subcommand_wiring() -> None:
    import argparse

    from aws_batch_emulator.cli import add_arguments, fault_rules

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--server-errors", "SubmitJob=0.1", "--throttle", "*=0.2", "--latency", "*=5"])
    assert (args.port, args.region, args.step, args.queue, args.bucket) == (
        4566,
        "us-east-1",
        0.5,
        "default",
        "flyte-data",
    )
    assert fault_rules(args) == {"SubmitJob": {"error": 0.1}, "*": {"throttle": 0.2, "latencyMs": 5}}
    with pytest.raises(SystemExit):
        parser.parse_args(["--throttle", "no-equals-sign"])
    # `aws-array-plugin emulator` reaches this module; importing it does not import moto (that waits for run()).
    helped = subprocess.run(
        [sys.executable, "-m", "aws_array_plugin", "emulator", "--help"], capture_output=True, text=True, check=True
    )
    assert "--concurrency" in helped.stdout and "--throttle" in helped.stdout
    check = subprocess.run(
        [sys.executable, "-c", "import sys, aws_batch_emulator.cli; print('moto' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.strip() == "False"


def test_bad_settings_fail_fast() -> None:
    with pytest.raises(ValueError, match="shares"):
        Emulator(faults={"DescribeJobs": {"throttle": 3}})
    with pytest.raises(ValueError, match="region"):
        Emulator(region="mars-1", queue="q-mars", bucket="b-mars").start()


def test_concurrent_conditional_s3_writes_have_one_winner(emulator_clients: EmulatorClients) -> None:
    """S3 conditional writes are atomic: of concurrent writes with one precondition exactly one succeeds."""
    import threading

    clients = [boto3.client("s3", config=NO_RETRY, **emulator_clients.info.client_kwargs()) for _ in range(12)]

    def race(key: str, text: str, **condition: str) -> tuple[int, set[str]]:
        barrier = threading.Barrier(len(clients))
        wins: list[int] = []
        codes: set[str] = set()

        def put(i: int) -> None:
            barrier.wait()
            try:
                clients[i].put_object(Bucket=emulator_clients.info.bucket, Key=key, Body=f"{text} {i}".encode() * 1000, **condition)
                wins.append(i)
            except ClientError as exc:
                codes.add(exc.response["Error"]["Code"])

        threads = [threading.Thread(target=put, args=(i,)) for i in range(len(clients))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        return len(wins), codes

    for round_ in range(3):
        key = f"claims/record-{round_}.json"
        assert race(key, "created by", IfNoneMatch="*") == (1, {"PreconditionFailed"})
        etag = emulator_clients.s3.head_object(Bucket=emulator_clients.info.bucket, Key=key)["ETag"]
        # New content: the ETag is the content's MD5, so rewriting the same bytes would keep it matching (as in S3).
        assert race(key, "replaced by", IfMatch=etag) == (1, {"PreconditionFailed"})
