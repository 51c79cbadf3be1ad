"""`Batch Job State Change` events (`Emulator(events=True)`): what the job engine publishes, its delivery through
EventBridge rules to the pre-provisioned Kinesis stream (read back with GetShardIterator/GetRecords over HTTP),
client rules and custom PutEvents, and the faults of delivery (seeded)."""

from __future__ import annotations

import argparse
import json
import random
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.events.models import EventPattern

from aws_batch_emulator import Emulator, EventFaults, FaultRule
from aws_batch_emulator.moto_events import Matcher
from aws_batch_emulator.process import EmulatorProcess
from tests.emulator.support import BUCKET, NO_RETRY, STEP, EmulatorClients
from tests.support import wait_for

QUEUE = "emu-events"
SEED = 11
ISO_SECOND = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
LIFECYCLE = ["RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]


@dataclass(frozen=True)
class Record:
    shard: str
    key: str
    event: dict[str, Any]
    arrived: float  # ApproximateArrivalTimestamp


class Stream:
    """A Kinesis stream read from LATEST (when made) onwards, over HTTP."""

    def __init__(self, kinesis: Any, name: str) -> None:
        self._kinesis, self.name = kinesis, name
        self._iterators = {
            s["ShardId"]: kinesis.get_shard_iterator(StreamName=name, ShardId=s["ShardId"], ShardIteratorType="LATEST")[
                "ShardIterator"
            ]
            for s in kinesis.list_shards(StreamName=name)["Shards"]
        }
        self.records: list[Record] = []

    def poll(self) -> list[Record]:
        for shard, iterator in self._iterators.items():
            while True:
                page = self._kinesis.get_records(ShardIterator=iterator, Limit=10000)
                iterator = page["NextShardIterator"]
                self.records += [
                    Record(
                        shard, r["PartitionKey"], json.loads(r["Data"]), r["ApproximateArrivalTimestamp"].timestamp()
                    )
                    for r in page["Records"]
                ]
                if not page["Records"]:
                    break
            self._iterators[shard] = iterator
        return self.records

    def of(self, prefix: str) -> list[Record]:
        """Batch events of jobs whose id starts with `prefix` (a job, or a parent and its children), in order."""
        return [r for r in self.poll() if str(r.event["detail"].get("jobId", "")).startswith(prefix)]

    def statuses(self, job_id: str) -> list[str]:
        return [r.event["detail"]["status"] for r in self.of(job_id) if r.event["detail"]["jobId"] == job_id]

    def wait(self, predicate: Callable[[Stream], Any], timeout: float = 10.0) -> Any:
        return wait_for(lambda: predicate(self), timeout=timeout, what=f"records in {self.name}")


class EventClients(EmulatorClients):
    def __init__(self, emulator: Emulator) -> None:
        super().__init__(emulator)
        kwargs = self.info.client_kwargs()
        self.kinesis = boto3.client("kinesis", config=NO_RETRY, **kwargs)
        self.events = boto3.client("events", config=NO_RETRY, **kwargs)
        self.sqs = boto3.client("sqs", config=NO_RETRY, **kwargs)
        assert self.info.event_stream is not None
        self.stream = Stream(self.kinesis, self.info.event_stream)

    def stats(self) -> dict[str, int]:
        return self.emulator.event_stats()

    def unfit_array(self, size: int) -> str:
        """An array whose children can never be placed: they go RUNNABLE and, once cancelled, FAILED (2 events
        each, plus the parent's PENDING and FAILED), with no process run. Returns the parent id."""
        jd = self.job_definition(
            ["true"],
            containerProperties={
                "resourceRequirements": [{"type": "VCPU", "value": "1000"}, {"type": "MEMORY", "value": "512"}]
            },
        )
        published = self.stats()["published"]
        parent = self.submit(jd, "unfit", arrayProperties={"size": size})
        wait_for(lambda: self.stats()["published"] >= published + size + 1, what="children RUNNABLE")
        self.batch.cancel_job(jobId=parent, reason="test over")
        wait_for(lambda: self.stats()["published"] >= published + 2 * size + 2, what="children FAILED")
        return parent

    def dead_letters(self, prefix: str) -> list[dict[str, Any]]:
        url = self.info.dead_letter_queue_url
        found: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", []):
            for message in batch:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                if json.loads(message["Body"])["detail"].get("jobId", "").startswith(prefix):
                    found.append(message)
        return found


@pytest.fixture(scope="module")
def events_emulator() -> Iterator[Emulator]:
    with Emulator(port=0, step=STEP, concurrency=8, queue=QUEUE, bucket=BUCKET, events=True, seed=SEED) as emu:
        yield emu


@pytest.fixture
def ev(events_emulator: Emulator) -> Iterator[EventClients]:
    assert events_emulator.wait_events_idle(15)
    events_emulator.reset_event_stats()
    yield EventClients(events_emulator)
    events_emulator.clear_event_faults()
    events_emulator.clear_faults()
    events_emulator.events_up()
    events_emulator.reset_jobs()


def _draws(seed: int, n: int) -> list[tuple[float, float]]:
    """The publisher's fault draws: two per delivery, in order, from a generator seeded with `seed`."""
    rng = random.Random(seed)
    return [(rng.random(), rng.random()) for _ in range(n)]


def _http(endpoint: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(endpoint + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


# ---- what is published -----------------------------------------------------------------------------


def test_a_single_jobs_events_carry_its_job_detail(ev: EventClients) -> None:
    job_id = ev.submit(ev.job_definition(["true"]), "single")
    final = ev.wait_status(job_id)
    records = ev.stream.wait(lambda s: len(s.of(job_id)) >= 4 and s.of(job_id))
    assert [r.event["detail"]["status"] for r in records] == LIFECYCLE  # never SUBMITTED
    for record in records:
        event = record.event
        assert record.key == job_id  # PartitionKeyPath $.detail.jobId
        assert set(event) == {"version", "id", "detail-type", "source", "account", "time", "region", "resources",
                              "detail"}  # fmt: skip
        assert (event["version"], event["detail-type"], event["source"]) == ("0", "Batch Job State Change", "aws.batch")
        assert (event["account"], event["region"]) == (ev.info.account_id, ev.info.region)
        assert uuid.UUID(event["id"]).version == 4
        assert ISO_SECOND.fullmatch(event["time"]), event["time"]
        assert event["resources"] == [final["jobArn"]]
        assert event["detail"]["jobQueue"] == ev.info.queue_arn
    assert len({r.event["id"] for r in records}) == 4
    # Each detail is the job as DescribeJobs showed it then: the last is what it shows now.
    assert records[-1].event["detail"] == final
    running = records[2].event["detail"]
    assert running["attempts"] == [] and "exitCode" not in running["container"] and "stoppedAt" not in running
    assert running["container"]["logStreamName"] == final["container"]["logStreamName"]
    assert ev.stats()["published"] == ev.stats()["delivered"] == 4


def test_a_retried_job_goes_back_to_runnable_with_more_attempts(ev: EventClients) -> None:
    job_id = ev.submit(ev.job_definition(["sh", "-c", "exit 3"]), "retried", retryStrategy={"attempts": 2})
    assert ev.wait_status(job_id)["status"] == "FAILED"
    records = ev.stream.wait(lambda s: len(s.of(job_id)) >= 7 and s.of(job_id))
    details = [r.event["detail"] for r in records]
    assert [d["status"] for d in details] == ["RUNNABLE", "STARTING", "RUNNING"] * 2 + ["FAILED"]
    assert [len(d["attempts"]) for d in details] == [0, 0, 0, 1, 1, 1, 2]
    assert details[3]["attempts"][0]["container"]["exitCode"] == 3
    assert details[-1]["container"]["exitCode"] == 3


def test_an_array_publishes_parent_and_child_events(ev: EventClients) -> None:
    parent = ev.submit(ev.job_definition(["true"]), "array", arrayProperties={"size": 3})
    assert ev.wait_status(parent)["status"] == "SUCCEEDED"
    ev.stream.wait(lambda s: len(s.of(parent)) >= 2 + 3 * 4)
    parent_events = [r.event for r in ev.stream.of(parent) if r.event["detail"]["jobId"] == parent]
    assert [e["detail"]["status"] for e in parent_events] == ["PENDING", "SUCCEEDED"]
    for event in parent_events:
        assert event["detail"]["arrayProperties"]["size"] == 3
        assert "index" not in event["detail"]["arrayProperties"]
    assert parent_events[0]["detail"]["arrayProperties"]["statusSummary"]["RUNNABLE"] == 3
    assert parent_events[1]["detail"]["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 3
    for index in range(3):
        child = f"{parent}:{index}"
        records = [r for r in ev.stream.of(parent) if r.event["detail"]["jobId"] == child]
        assert [r.event["detail"]["status"] for r in records] == LIFECYCLE
        assert all(r.key == child and r.event["detail"]["arrayProperties"] == {"index": index} for r in records)
        assert records[0].event["resources"] == [f"{parent_events[0]['resources'][0]}:{index}"]
        assert records[-1].event["detail"] == ev.describe(child)


def test_many_children_all_arrive_in_order_per_job(ev: EventClients) -> None:
    parent = ev.unfit_array(3000)
    assert ev.emulator.wait_events_idle(30)
    assert ev.stats()["delivered"] == ev.stats()["matched"] == 6002
    records = ev.stream.of(parent)
    assert len(records) == 6002
    by_job: dict[str, list[str]] = {}
    for r in records:
        by_job.setdefault(r.event["detail"]["jobId"], []).append(r.event["detail"]["status"])
    assert by_job.pop(parent) == ["PENDING", "FAILED"]
    assert len(by_job) == 3000 and all(s == ["RUNNABLE", "FAILED"] for s in by_job.values())
    failed = [r.event["detail"] for r in records if r.event["detail"]["status"] == "FAILED"]
    assert all(d["statusReason"] == "test over" for d in failed)
    assert all(d.get("isCancelled") for d in failed if d["jobId"] != parent)


# ---- delivery: rules and targets -------------------------------------------------------------------


def test_the_pre_provisioned_stream_rules_and_dead_letter_queue(ev: EventClients) -> None:
    info = ev.info
    assert (info.event_stream, info.event_rule, info.heartbeat_rule) == (
        "aws-array-plugin-batch-events",
        "aws-array-plugin-batch-events",
        "aws-array-plugin-heartbeats",
    )
    assert info.event_stream_arn == f"arn:aws:kinesis:{info.region}:{info.account_id}:stream/{info.event_stream}"
    assert info.to_json()["eventStream"] == info.event_stream and "deadLetterQueueUrl" in info.to_json()
    summary = ev.kinesis.describe_stream_summary(StreamName=info.event_stream)["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 2
    assert ev.sqs.get_queue_url(QueueName="aws-array-plugin-batch-events-dlq")["QueueUrl"].endswith(
        "/aws-array-plugin-batch-events-dlq"
    )
    rule = ev.events.describe_rule(Name=info.event_rule)
    assert json.loads(rule["EventPattern"]) == {
        "source": ["aws.batch"],
        "detail-type": ["Batch Job State Change"],
        "detail": {"jobQueue": [info.queue_arn]},
    }
    [target] = ev.events.list_targets_by_rule(Rule=info.event_rule)["Targets"]
    assert target["Arn"] == info.event_stream_arn
    assert target["KinesisParameters"] == {"PartitionKeyPath": "$.detail.jobId"}
    assert target["DeadLetterConfig"] == {"Arn": info.dead_letter_queue_arn}
    heartbeat = ev.events.describe_rule(Name=info.heartbeat_rule)
    assert json.loads(heartbeat["EventPattern"]) == {
        "source": ["aws-array-plugin"],
        "detail-type": ["aws-array-plugin heartbeat"],
    }
    [hb_target] = ev.events.list_targets_by_rule(Rule=info.heartbeat_rule)["Targets"]
    assert hb_target["Arn"] == info.event_stream_arn and "KinesisParameters" not in hb_target


def test_a_client_rule_can_filter_out_children_and_target_sqs(ev: EventClients) -> None:
    stream, queue, rule = f"emu-parents-{uuid.uuid4().hex[:6]}", f"emu-parents-{uuid.uuid4().hex[:6]}", "no-children"
    ev.kinesis.create_stream(StreamName=stream, ShardCount=1)
    stream_arn = ev.kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    queue_url = ev.sqs.create_queue(QueueName=queue)["QueueUrl"]
    queue_arn = ev.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {
        "source": ["aws.batch"],
        "detail": {"jobQueue": [ev.info.queue_arn], "arrayProperties": {"index": [{"exists": False}]}},
    }
    ev.events.put_rule(Name=rule, EventPattern=json.dumps(pattern))
    ev.events.put_targets(Rule=rule, Targets=[{"Id": "stream", "Arn": stream_arn}, {"Id": "queue", "Arn": queue_arn}])
    try:
        reader = Stream(ev.kinesis, stream)
        jd = ev.job_definition(["true"])
        parent = ev.submit(jd, "filtered", arrayProperties={"size": 2})
        single = ev.submit(jd, "unfiltered")
        ev.wait_status(parent)
        ev.wait_status(single)
        assert ev.emulator.wait_events_idle(10)
        got = [(r.event["detail"]["jobId"], r.event["detail"]["status"]) for r in reader.poll()]
        assert sorted(got) == sorted([(parent, "PENDING"), (parent, "SUCCEEDED")] + [(single, s) for s in LIFECYCLE])
        assert all(r.key == r.event["id"] for r in reader.records)  # no PartitionKeyPath: the event id
        bodies = []
        while messages := ev.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            bodies += [json.loads(m["Body"]) for m in messages]
            ev.sqs.delete_message_batch(
                QueueUrl=queue_url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in
                                             enumerate(messages)]
            )  # fmt: skip
        assert sorted(b["id"] for b in bodies) == sorted(r.event["id"] for r in reader.records)
        # The pre-provisioned rule still gets everything, children included.
        assert len(ev.stream.of(parent)) == 2 + 2 * 4
    finally:
        ev.events.remove_targets(Rule=rule, Ids=["stream", "queue"])
        ev.events.delete_rule(Name=rule)


def test_heartbeat_put_events_reach_the_stream(ev: EventClients) -> None:
    detail = {"replica": "r1", "sentAt": 1_700_000_000_000}
    answer = ev.events.put_events(
        Entries=[
            {"Source": "aws-array-plugin", "DetailType": "aws-array-plugin heartbeat", "Detail": json.dumps(detail)},
            {"Source": "aws-array-plugin", "DetailType": "something else", "Detail": "{}"},
        ]
    )
    event_id = answer["Entries"][0]["EventId"]
    [record] = ev.stream.wait(lambda s: [r for r in s.poll() if r.event["id"] == event_id])
    assert record.key == event_id
    assert record.event == {
        "version": "0",
        "id": event_id,
        "detail-type": "aws-array-plugin heartbeat",
        "source": "aws-array-plugin",
        "account": ev.info.account_id,
        "time": record.event["time"],
        "region": ev.info.region,
        "resources": [],
        "detail": detail,
    }
    assert ISO_SECOND.fullmatch(record.event["time"])
    assert ev.emulator.wait_events_idle(5)
    assert {k: ev.stats()[k] for k in ("published", "matched", "delivered")} == {
        "published": 2,
        "matched": 1,
        "delivered": 1,
    }


def test_put_events_to_a_kinesis_target_work_without_events_too(emulator_clients: EmulatorClients) -> None:
    """An emulator without events (no publisher) still delivers its clients' PutEvents to Kinesis, directly."""
    kwargs = emulator_clients.info.client_kwargs()
    kinesis, events = boto3.client("kinesis", **kwargs), boto3.client("events", **kwargs)
    stream, rule = f"emu-direct-{uuid.uuid4().hex[:6]}", f"emu-direct-{uuid.uuid4().hex[:6]}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["emu-direct"]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "s", "Arn": arn}])
    try:
        reader = Stream(kinesis, stream)
        events.put_events(Entries=[{"Source": "emu-direct", "DetailType": "d", "Detail": '{"a": 1}'}])
        [record] = reader.poll()  # written while PutEvents was answered
        assert record.event["detail"] == {"a": 1} and ISO_SECOND.fullmatch(record.event["time"])
    finally:
        events.remove_targets(Rule=rule, Ids=["s"])
        events.delete_rule(Name=rule)


# ---- faults ----------------------------------------------------------------------------------------

N = 20  # children of the fault tests' arrays: 2 * N + 2 = 42 deliveries
DELIVERIES = 2 * N + 2


def test_duplicates(ev: EventClients) -> None:
    ev.emulator.set_event_faults({"duplicate": 0.4}, seed=5)
    parent = ev.unfit_array(N)
    assert ev.emulator.wait_events_idle(10)
    expected = sum(u < 0.4 for u, _ in _draws(5, DELIVERIES))
    stats = ev.stats()
    assert (stats["matched"], stats["duplicated"], stats["delivered"]) == (DELIVERIES, expected, DELIVERIES + expected)
    records = ev.stream.of(parent)
    assert len(records) == DELIVERIES + expected and len({r.event["id"] for r in records}) == DELIVERIES


def test_reordering(ev: EventClients) -> None:
    ev.emulator.set_event_faults(EventFaults(reorder=0.5, reorder_window=3.0), seed=7)
    parent = ev.unfit_array(N)
    assert ev.emulator.wait_events_idle(10)
    draws = _draws(7, DELIVERIES)
    assert ev.stats()["reordered"] == sum(u < 0.5 for u, _ in draws)
    assert ev.stats()["delivered"] == DELIVERIES
    # Deliveries in publishing order: parent PENDING, children RUNNABLE, children FAILED, parent FAILED.
    position = {
        (r.event["detail"]["jobId"], r.event["detail"]["status"]): i for i, r in enumerate(ev.stream.of(parent))
    }
    overtaken = [
        i
        for i in range(N)
        if draws[1 + i][0] < 0.5 and draws[1 + i][1] * 3.0 > 1.0 and draws[1 + N + i][0] >= 0.5  # held >= 1 s
    ]
    assert overtaken, "the seed gives no child whose RUNNABLE is held back well past its FAILED"
    for i in overtaken:  # its FAILED, published later, arrived first
        assert position[(f"{parent}:{i}", "FAILED")] < position[(f"{parent}:{i}", "RUNNABLE")]


def test_delays(ev: EventClients) -> None:
    ev.emulator.set_event_faults({"delay": 0.3, "delaySeconds": 1.5}, seed=3)
    began = time.monotonic()
    parent = ev.unfit_array(N)
    delayed = sum(u < 0.3 for u, _ in _draws(3, DELIVERIES))
    wait_for(lambda: ev.stats()["delivered"] == DELIVERIES - delayed)
    assert ev.stats()["pending"] == ev.stats()["delayed"] == delayed
    assert len(ev.stream.of(parent)) == DELIVERIES - delayed
    assert ev.emulator.wait_events_idle(10)
    assert time.monotonic() - began >= 1.5
    assert len(ev.stream.of(parent)) == DELIVERIES and ev.stats()["pending"] == 0


@pytest.mark.parametrize("dead_letter", [False, True])
def test_drops_and_dead_letters(ev: EventClients, dead_letter: bool) -> None:
    ev.dead_letters("")  # empty the shared queue
    ev.emulator.set_event_faults({"drop": 0.3, "deadLetter": dead_letter}, seed=9)
    parent = ev.unfit_array(N)
    assert ev.emulator.wait_events_idle(10)
    dropped = sum(u < 0.3 for u, _ in _draws(9, DELIVERIES))
    stats = ev.stats()
    assert (stats["dropped"], stats["delivered"]) == (dropped, DELIVERIES - dropped)
    assert stats["deadLettered"] == (dropped if dead_letter else 0)
    assert len(ev.stream.of(parent)) == DELIVERIES - dropped
    letters = ev.dead_letters(parent)
    assert len(letters) == (dropped if dead_letter else 0)
    if dead_letter:
        body = json.loads(letters[0]["Body"])
        assert body["detail-type"] == "Batch Job State Change" and body["detail"]["jobId"].startswith(parent)
        attributes = {k: v["StringValue"] for k, v in letters[0]["MessageAttributes"].items()}
        assert attributes["RULE_ARN"] == ev.info.event_rule_arn
        assert attributes["TARGET_ARN"] == ev.info.event_stream_arn
        assert attributes["ERROR_CODE"] == "EMULATOR_INJECTED_DROP"
        delivered = {r.event["id"] for r in ev.stream.of(parent)}
        assert not delivered & {json.loads(m["Body"])["id"] for m in letters}


def test_faults_can_be_limited_to_some_sources(ev: EventClients) -> None:
    ev.emulator.set_event_faults({"drop": 1.0, "sources": ["aws-array-plugin"]})
    job_id = ev.submit(ev.job_definition(["true"]), "unaffected")
    ev.wait_status(job_id)
    ev.events.put_events(
        Entries=[{"Source": "aws-array-plugin", "DetailType": "aws-array-plugin heartbeat", "Detail": "{}"}]
    )
    assert ev.emulator.wait_events_idle(10)
    assert ev.stream.statuses(job_id) == LIFECYCLE
    assert (ev.stats()["dropped"], ev.stats()["delivered"]) == (1, 4)


def test_an_outage_buffers_events_and_delivers_them_in_order(ev: EventClients) -> None:
    ev.emulator.events_down(60)
    job_id = ev.submit(ev.job_definition(["true"]), "outage")
    ev.wait_status(job_id)
    ev.events.put_events(
        Entries=[{"Source": "aws-array-plugin", "DetailType": "aws-array-plugin heartbeat", "Detail": "{}"}]
    )
    assert not ev.emulator.wait_events_idle(0.5)
    assert ev.stream.of(job_id) == [] and ev.stats()["delivered"] == 0 and ev.stats()["published"] == 5
    ev.emulator.events_up()
    assert ev.emulator.wait_events_idle(10)
    assert ev.stream.statuses(job_id) == LIFECYCLE
    [heartbeat] = [r for r in ev.stream.poll() if r.event["source"] == "aws-array-plugin"]
    assert heartbeat.arrived >= max(r.arrived for r in ev.stream.of(job_id))  # sent last, delivered last
    # An outage also ends by itself (here set over HTTP).
    assert _http(ev.info.endpoint, "POST", "/_emulator/events/down", {"seconds": 1.0})[0] == 200
    began = time.monotonic()
    second = ev.submit(ev.job_definition(["true"]), "outage-2")
    ev.wait_status(second)
    assert ev.stream.of(second) == []
    ev.stream.wait(lambda s: s.statuses(second) == LIFECYCLE)
    assert time.monotonic() - began >= 0.9


def test_kinesis_calls_can_be_throttled_like_kinesis(ev: EventClients) -> None:
    ev.emulator.reset_stats()
    ev.emulator.set_faults({"GetRecords": FaultRule(throttle=1.0)})
    with pytest.raises(ClientError) as caught:
        ev.stream.poll()
    assert caught.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert ev.emulator.injected() == {"GetRecords": {"throttle": 1}}


# ---- control -------------------------------------------------------------------------------------


def test_the_http_control_api(ev: EventClients, emulator_clients: EmulatorClients) -> None:
    endpoint = ev.info.endpoint
    status, body = _http(endpoint, "POST", "/_emulator/events/faults", {"faults": {"duplicate": 0.2}, "seed": 4})
    assert status == 200 and body["duplicate"] == 0.2 and body["reorderWindow"] == 3.0
    assert ev.emulator.event_faults() == EventFaults(duplicate=0.2)
    status, body = _http(endpoint, "GET", "/_emulator/events")
    assert body["enabled"] is True and body["faults"]["duplicate"] == 0.2 and body["downSeconds"] == 0
    assert set(body["stats"]) >= {"published", "matched", "delivered", "duplicated", "reordered", "delayed",
                                  "dropped", "deadLettered", "failed", "pending"}  # fmt: skip
    assert _http(endpoint, "POST", "/_emulator/events/faults", {"drop": 2})[0] == 400
    assert _http(endpoint, "POST", "/_emulator/events/faults", {"lose": 0.1})[0] == 400
    assert _http(endpoint, "DELETE", "/_emulator/events/faults") == (200, {})
    assert _http(endpoint, "GET", "/_emulator/events/faults")[1]["duplicate"] == 0
    assert _http(endpoint, "POST", "/_emulator/events/down", {"seconds": 30})[1]["downSeconds"] > 29
    assert _http(endpoint, "POST", "/_emulator/events/wait", {"timeout": 0.2}) == (200, {"idle": False})
    assert _http(endpoint, "POST", "/_emulator/events/up") == (200, {})
    assert _http(endpoint, "POST", "/_emulator/events/wait", {"timeout": 5}) == (200, {"idle": True})
    assert _http(endpoint, "DELETE", "/_emulator/events/stats") == (200, {})
    assert _http(endpoint, "GET", "/_emulator/events/stats")[1]["published"] == 0
    # An emulator without events says so.
    other = emulator_clients.info.endpoint
    assert _http(other, "GET", "/_emulator/events") == (200, {"enabled": False})
    assert _http(other, "POST", "/_emulator/events/faults", {"drop": 0.1})[0] == 404
    with pytest.raises(RuntimeError, match="events are not enabled"):
        emulator_clients.emulator.event_stats()
    assert "eventStream" not in emulator_clients.info.to_json()


def test_event_faults_validate() -> None:
    with pytest.raises(ValueError, match="need events=True"):
        Emulator(event_faults={"drop": 0.1})
    with pytest.raises(ValueError, match="sum to at most 1"):
        EventFaults(drop=0.6, duplicate=0.6)
    faults = EventFaults(reorder=0.1, delay=0.2, delay_seconds=5, dead_letter=True, sources=("aws.batch",))
    assert EventFaults.from_json(faults.to_json()) == faults


def test_cli_flags_and_the_first_json_line() -> None:
    from aws_batch_emulator.cli import add_arguments, event_faults

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--events", "--event-drop", "0.1", "--event-dead-letter", "--event-fault-source", "aws.batch",
         "--event-reorder", "0.2", "--event-reorder-window", "1"]
    )  # fmt: skip
    assert EventFaults.from_json(event_faults(args)) == EventFaults(
        drop=0.1, dead_letter=True, sources=("aws.batch",), reorder=0.2, reorder_window=1.0
    )
    process = EmulatorProcess("--events", "--event-duplicate", "0.5", "--seed", "1")
    try:
        assert process.info["eventStream"] == "aws-array-plugin-batch-events"
        assert {"eventStreamArn", "deadLetterQueueUrl", "deadLetterQueueArn", "eventRule", "heartbeatRule"} <= set(
            process.info
        )
        assert process.control("GET", "/events/faults")["duplicate"] == 0.5
        process.set_event_faults({"delay": 0.5}, seed=2)
        assert process.control("GET", "/events/faults")["delay"] == 0.5
        assert process.wait_events_idle(5) and process.event_stats()["published"] == 0
    finally:
        process.stop()


# ---- matching ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        {"source": ["aws.batch"], "detail": {"arrayProperties": {"index": [{"exists": False}]}}},
        {"detail": {"arrayProperties": {"index": [{"exists": True}]}}},
        {"detail": {"status": [{"anything-but": ["RUNNABLE"]}], "jobName": [{"prefix": "j"}]}},
        {"detail": {"arrayProperties": {"index": [{"numeric": [">", 1]}]}}},
        {"$or": [{"detail": {"status": ["FAILED"]}}, {"detail": {"tags": {"team": ["a"]}}}]},
        {"detail": {"tags": [{"exists": True}]}},  # an empty dict is a leaf of moto's flattening
        {"detail": {"container": {"command": ["true"]}}},  # a list value
        {"resources": [{"prefix": "arn:aws:batch"}]},
    ],
)
def test_matching_agrees_with_motos_event_pattern(pattern: dict[str, Any]) -> None:
    class Rule:
        event_pattern = EventPattern.load(json.dumps(pattern))

    events = [
        {"source": "aws.batch", "resources": ["arn:aws:batch:x"], "detail": {"status": s, "jobName": n, "tags": t,
         "container": {"command": ["true"]}, **({"arrayProperties": a} if a is not None else {})}}
        for s in ("RUNNABLE", "FAILED")
        for n in ("job", "other")
        for t in ({}, {"team": "a"})
        for a in (None, {"index": 0}, {"index": 2}, {"size": 3, "statusSummary": {}})
    ]  # fmt: skip
    matcher = Matcher([Rule()])
    for event in events * 2:  # the second time from the matcher's cache
        assert bool(matcher.matching(event)) == Rule.event_pattern.matches_event(event), event
