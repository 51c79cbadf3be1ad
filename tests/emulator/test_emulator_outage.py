"""API outages (`Emulator.restart`, `POST /_emulator/restart`, SIGHUP): the endpoint refuses connections for
the downtime, then answers again on the same port with the same state; jobs keep running meanwhile."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

from aws_batch_emulator import Emulator, FaultRule
from tests.emulator.support import BUCKET, NO_RETRY, QUEUE, EmulatorClients
from tests.support import wait_for


@pytest.fixture
def own() -> Iterator[EmulatorClients]:
    """An emulator of its own: outages must not disturb the shared one."""
    with Emulator(port=0, step=0.05, concurrency=4, queue=QUEUE, bucket=BUCKET) as emu:
        yield EmulatorClients(emu)


def _refused(port: int) -> bool | None:
    """True if connections are refused, False if accepted, None if one was reset: caught in the backlog of
    a listener closing that very moment (neither state yet)."""
    with socket.socket() as sock:
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:
            return None
    return False


def _post(endpoint: str, path: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(endpoint + path, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def test_restart_refuses_connections_then_answers_on_the_same_port_with_the_same_state(own: EmulatorClients) -> None:
    emu = own.emulator
    port = emu.info.port
    job_id = own.submit(own.job_definition(["sh", "-c", "sleep 1; echo through the outage"]))
    own.wait_status(job_id, "RUNNING")
    calls_before = emu.stats()

    started = time.monotonic()
    emu.restart(1.5, wait=False)
    assert not emu.is_up
    assert _refused(port)
    # Refused, or (on the client's pooled keep-alive connection) closed before an answer.
    with pytest.raises((EndpointConnectionError, ConnectionClosedError)):
        own.batch.describe_jobs(jobs=[job_id])
    assert emu.stats() == calls_before  # refused calls never reach it

    assert emu.wait_up(10)
    assert time.monotonic() - started >= 1.5
    assert emu.is_up and emu.info.port == port and _refused(port) is False
    job = own.wait_status(job_id)  # the job kept running during the outage and finished
    assert job["status"] == "SUCCEEDED"
    assert own.log_messages(job["container"]["logStreamName"]) == ["through the outage"]
    assert emu.stats()["DescribeJobs"] > calls_before["DescribeJobs"]  # counters were kept
    listed = own.batch.list_jobs(jobQueue=QUEUE, filters=[{"name": "JOB_NAME", "values": ["job"]}])
    assert [s["jobId"] for s in listed["jobSummaryList"]] == [job_id]


def test_restart_blocks_until_back_by_default(own: EmulatorClients) -> None:
    started = time.monotonic()
    own.emulator.restart(0.3)
    assert own.emulator.is_up and time.monotonic() - started >= 0.3
    assert own.batch.list_jobs(jobQueue=QUEUE)["jobSummaryList"] == []


def test_idle_keep_alive_connections_are_dropped_and_in_flight_requests_answered(own: EmulatorClients) -> None:
    emu = own.emulator
    idle = http.client.HTTPConnection("127.0.0.1", emu.info.port, timeout=5)
    idle.request("GET", "/_emulator/info")
    assert idle.getresponse().read()  # a kept-alive connection, now idle

    emu.set_faults({"ListJobs": FaultRule(latency_ms=700)})
    answers: list[Any] = []
    slow = threading.Thread(target=lambda: answers.append(own.batch.list_jobs(jobQueue=QUEUE)))
    slow.start()
    wait_for(lambda: emu.stats().get("ListJobs"))  # the slow call is being processed
    emu.restart(1.0, wait=False)

    with pytest.raises((ConnectionError, http.client.HTTPException)):
        idle.request("GET", "/_emulator/info")
        idle.getresponse()
    idle.close()
    slow.join(timeout=10)
    assert answers and answers[0]["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert emu.wait_up(10)


def test_http_control_restart(own: EmulatorClients) -> None:
    emu, endpoint = own.emulator, own.info.endpoint
    assert _post(endpoint, "/_emulator/restart", {"downtime": "soon"})[0] == 400
    assert _post(endpoint, "/_emulator/restart", {"downtime": -1})[0] == 400
    status, body = _post(endpoint, "/_emulator/restart", {"downtime": 0.5})
    assert (status, body) == (202, {"downtime": 0.5})
    assert not emu.is_up and _refused(emu.info.port)
    with pytest.raises(RuntimeError, match="already down"):
        emu.restart(1)
    assert emu.wait_up(10)
    assert _post(endpoint, "/_emulator/faults", {})[0] == 200  # answering again


def test_stop_during_an_outage_frees_the_port() -> None:
    emu = Emulator(port=0, step=0.05, concurrency=1, queue=QUEUE, bucket=BUCKET)
    port = emu.start().port
    emu.restart(60, wait=False)
    started = time.monotonic()
    emu.stop()
    assert time.monotonic() - started < 2
    assert not emu.is_up
    with socket.socket() as sock:  # nothing holds the port any more
        sock.bind(("127.0.0.1", port))
    with pytest.raises(RuntimeError):
        emu.restart(1)


def test_cli_sighup_makes_an_outage() -> None:
    command = [sys.executable, "-m", "aws_batch_emulator", "--port", "0", "--hup-downtime", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        batch = boto3.client(
            "batch", config=NO_RETRY, endpoint_url=info["endpoint"], region_name=info["region"],
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip
        batch.list_jobs(jobQueue=info["queue"])
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: _refused(info["port"]), timeout=5)
        wait_for(lambda: _refused(info["port"]) is False, timeout=10)
        batch.list_jobs(jobQueue=info["queue"])
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    assert proc.stderr is not None
    assert "SIGHUP: API outage of 1 s" in proc.stderr.read()
