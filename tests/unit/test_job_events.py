"""Decoding AWS Batch state-change events (and the service's heartbeats) from stream records, and the versions
that order them. Every event here is a real-shaped EventBridge envelope, encoded to bytes as Kinesis holds it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from aws_array_plugin import job_events
from aws_array_plugin.job_events import (
    CHILD_STATUSES,
    Heartbeat,
    JobEvent,
    Order,
    Version,
    child_code,
    child_order,
    child_status,
    compare,
    decode,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"
QUEUE_ARN = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/default"
JOB = "0f2d8a3e-6b1c-4f0e-9a57-1d2c3b4a5e6f"
T0 = datetime(2026, 12, 4, 3, 10, 5, tzinfo=UTC).timestamp()
T0_ISO = "2026-12-04T03:10:05Z"


def job_detail(job_id: str = JOB, status: str = "RUNNING", **fields: Any) -> dict[str, Any]:
    """A JobDetail as AWS puts it in `detail`: many fields the service does not keep."""
    detail: dict[str, Any] = {
        "jobArn": f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{job_id}",
        "jobName": "flyte-task-n0",
        "jobId": job_id,
        "jobQueue": QUEUE_ARN,
        "status": status,
        "shareIdentifier": "team-a",
        "schedulingPriority": 10,
        "attempts": [],
        "createdAt": 1796353700000,
        "retryStrategy": {"attempts": 3, "evaluateOnExit": []},
        "dependsOn": [],
        "jobDefinition": f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/flyte:7",
        "parameters": {},
        "container": {
            "image": "ghcr.io/org/image:1.0",
            "command": ["pyflyte-execute", "--inputs", "s3://bucket/inputs.pb"],
            "volumes": [], "environment": [{"name": "X", "value": "1"}], "mountPoints": [], "ulimits": [],
            "networkInterfaces": [], "resourceRequirements": [{"type": "VCPU", "value": "1"}],
            "secrets": [], "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/aws/batch/job"},
                                                "secretOptions": []},
        },
        "tags": {"resourceArn": f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{job_id}"},
        "propagateTags": False,
        "platformCapabilities": ["EC2"],
        "eksAttempts": [],
        "isCancelled": False,
        "isTerminated": False,
    }
    detail.update(fields)
    return detail


def envelope(detail: Any, *, time: Any = T0_ISO, source: Any = "aws.batch",
             detail_type: Any = "Batch Job State Change") -> dict[str, Any]:
    job_id = detail.get("jobId", "x") if isinstance(detail, dict) else "x"
    return {"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": detail_type,
            "source": source, "account": ACCOUNT, "time": time, "region": REGION,
            "resources": [f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{job_id}"], "detail": detail}


def record(detail: Any, **kw: Any) -> bytes:
    return json.dumps(envelope(detail, **kw)).encode()


def job_event(data: bytes) -> JobEvent:
    event = decode(data)
    assert isinstance(event, JobEvent), event
    return event


# -- decoding -------------------------------------------------------------------------------------------------

def test_a_single_job_event_keeps_what_the_service_reads() -> None:
    failed_attempt = {"container": {"exitCode": 137, "reason": "OutOfMemoryError", "logStreamName": "flyte/default/a1",
                                    "taskArn": "arn:...", "networkInterfaces": []},
                      "startedAt": 1796353710000, "stoppedAt": 1796353790000, "statusReason": "Essential container"}
    detail = job_detail(status="RUNNABLE", statusReason="CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
                        attempts=[failed_attempt], startedAt=1796353710000)
    event = job_event(record(detail))
    assert (event.job_id, event.kind, event.status, event.parent_id, event.index) == (JOB, "job", "RUNNABLE", None,
                                                                                      None)
    assert event.time == T0
    assert event.version == (1, job_events.STATUS_RANK["RUNNABLE"], int(T0 * 1000))
    assert event.detail == {
        "jobId": JOB, "jobName": "flyte-task-n0", "status": "RUNNABLE",
        "statusReason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", "createdAt": 1796353700000,
        "startedAt": 1796353710000, "jobQueue": QUEUE_ARN,
        "container": {"logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/aws/batch/job"}}},
        "attempts": [{"container": {"exitCode": 137, "reason": "OutOfMemoryError", "logStreamName": "flyte/default/a1"},
                      "statusReason": "Essential container", "startedAt": 1796353710000, "stoppedAt": 1796353790000}],
    }


def test_an_array_parent_event_is_a_job_event_with_its_summary() -> None:
    summary = {"STARTING": 0, "FAILED": 1, "RUNNING": 2, "SUCCEEDED": 3, "RUNNABLE": 4, "SUBMITTED": 0,
               "PENDING": 0}
    event = job_event(record(job_detail(status="PENDING", arrayProperties={"size": 10, "statusSummary": summary})))
    assert (event.kind, event.parent_id, event.index) == ("job", None, None)
    assert event.detail["arrayProperties"] == {"size": 10, "statusSummary": summary}


CHILD_CASES = [
    # (job id, arrayProperties, expected index)
    ("index and id", f"{JOB}:12", {"index": 12, "statusSummary": {}}, 12),
    ("index only in the id", f"{JOB}:7", None, 7),
    ("index null, id has it", f"{JOB}:3", {"index": None}, 3),
    ("index a bool, id has it", f"{JOB}:4", {"index": True}, 4),
    ("index 0", f"{JOB}:0", {"index": 0}, 0),
    ("index beats the id suffix", f"{JOB}:5", {"index": 9}, 9),
]


@pytest.mark.parametrize(("case", "job_id", "props", "index"), CHILD_CASES, ids=[c[0] for c in CHILD_CASES])
def test_an_array_child_event_names_its_parent_and_index(case: str, job_id: str, props: dict[str, Any] | None,
                                                         index: int) -> None:
    fields: dict[str, Any] = {} if props is None else {"arrayProperties": props}
    event = job_event(record(job_detail(job_id, "FAILED", **fields)))
    assert (event.kind, event.job_id, event.parent_id, event.index) == ("array_child", job_id, JOB, index)


@pytest.mark.parametrize(("job_id", "props"), [
    ("plainid", {"index": 3}),  # an index without the "<parent>:<i>" id: nothing to attach it to
    (f"{JOB}:x1", None),  # a suffix that is not a number
    (f"{JOB}#2", None),  # a multi-node job's node
])
def test_ids_that_are_not_children_are_job_events(job_id: str, props: dict[str, Any] | None) -> None:
    fields: dict[str, Any] = {} if props is None else {"arrayProperties": props}
    event = job_event(record(job_detail(job_id, "RUNNING", **fields)))
    assert (event.kind, event.parent_id, event.index) == ("job", None, None)


def test_a_heartbeat_decodes_as_one() -> None:
    entry = job_events.heartbeat_entry("default", "replica-1", 42, 1796353805.25)
    data = json.dumps({"version": "0", "id": "h", "detail-type": entry["DetailType"], "source": entry["Source"],
                       "account": ACCOUNT, "time": T0_ISO, "region": REGION, "resources": [],
                       "detail": json.loads(entry["Detail"])}).encode()
    assert decode(data) == Heartbeat("replica-1", 42, 1796353805.25)


HEARTBEAT = {"source": job_events.HEARTBEAT_SOURCE, "detail_type": job_events.HEARTBEAT_TYPE}

IGNORED = [
    ("another source", record(job_detail(), source="aws.ecs")),
    ("another batch event type", record(job_detail(), detail_type="Batch Job Queue Blocked")),
    ("a service job", record(job_detail(), detail_type="Batch Service Job State Change")),
    ("heartbeat type from aws.batch", record({"replica": "r", "sentAt": 1.0},
                                             detail_type=job_events.HEARTBEAT_TYPE)),
    ("job type from the heartbeat source", record(job_detail(), source=job_events.HEARTBEAT_SOURCE)),
    ("no source", record(job_detail(), source=None)),
    ("not JSON", b"\x00\x01 garbage"),
    ("not UTF-8", b"\xff\xfe\xfd"),
    ("empty", b""),
    ("truncated", record(job_detail())[:-5]),
    ("a JSON array", json.dumps([envelope(job_detail())]).encode()),
    ("a JSON string", b'"Batch Job State Change"'),
    ("detail is an array", record([job_detail()])),
    ("detail is null", record(None)),
    ("no detail", json.dumps({k: v for k, v in envelope(job_detail()).items() if k != "detail"}).encode()),
    ("time is not a string", record(job_detail(), time=1796353805)),
    ("no jobId", record({k: v for k, v in job_detail().items() if k != "jobId"})),
    ("empty jobId", record(job_detail(job_id=""))),
    ("jobId a number", record(job_detail(job_id=17))),  # type: ignore[arg-type]
    ("unknown status", record(job_detail(status="CANCELLED"))),
    ("no status", record({k: v for k, v in job_detail().items() if k != "status"})),
    ("status null", record(job_detail(status=None))),  # type: ignore[arg-type]
    ("heartbeat without replica", record({"sequence": 1, "sentAt": 1.0}, **HEARTBEAT)),
    ("heartbeat with empty replica", record({"replica": "", "sequence": 1, "sentAt": 1.0}, **HEARTBEAT)),
    ("heartbeat without sentAt", record({"replica": "r", "sequence": 1}, **HEARTBEAT)),
    ("heartbeat sentAt a string", record({"replica": "r", "sentAt": "now"}, **HEARTBEAT)),
    ("heartbeat detail an array", record([{"replica": "r", "sentAt": 1.0}], **HEARTBEAT)),
]


@pytest.mark.parametrize("data", [c[1] for c in IGNORED], ids=[c[0] for c in IGNORED])
def test_anything_else_is_none(data: bytes) -> None:
    assert decode(data) is None


NULLS = [
    ("statusReason null", {"statusReason": None}, {"statusReason": None}),
    ("container null", {"container": None}, {}),
    ("attempts null", {"attempts": None}, {}),
    ("arrayProperties null", {"arrayProperties": None}, {}),
    ("startedAt null", {"startedAt": None}, {"startedAt": None}),
    ("exitCode null", {"container": {"exitCode": None, "logStreamName": "s"}}, {}),
    ("log options null", {"container": {"logConfiguration": {"logDriver": "awslogs", "options": None}}}, {}),
    ("an attempt's container null", {"attempts": [{"container": None, "statusReason": "x"}]}, {}),
    ("statusSummary null", {"arrayProperties": {"size": 3, "statusSummary": None}}, {}),
]


@pytest.mark.parametrize(("fields", "kept"), [c[1:] for c in NULLS], ids=[c[0] for c in NULLS])
def test_fields_with_nulls_are_still_decoded(fields: dict[str, Any], kept: dict[str, Any]) -> None:
    event = job_event(record(job_detail(status="RUNNING", **fields)))
    assert (event.job_id, event.status, event.version[1]) == (JOB, "RUNNING", job_events.STATUS_RANK["RUNNING"])
    for key, value in kept.items():
        assert event.detail[key] == value


# Fields of an unexpected type (AWS "might add other ... details"; a broken producer): a record that cannot be
# reduced is skipped, never an exception: the stream reader calls decode() outside any try, so a raise ends it.
MISTYPED = [
    ("an attempt is null", {"attempts": [None]}),
    ("attempts a string", {"attempts": "none"}),
    ("container a string", {"container": "busybox"}),
    ("arrayProperties a string", {"arrayProperties": "size"}),
    ("an attempt's container a string", {"attempts": [{"container": "x"}]}),
]


@pytest.mark.parametrize("fields", [c[1] for c in MISTYPED], ids=[c[0] for c in MISTYPED])
def test_mistyped_fields_never_raise(fields: dict[str, Any]) -> None:
    event = decode(record(job_detail(status="RUNNING", **fields)))
    assert event is None or (isinstance(event, JobEvent) and event.status == "RUNNING")


def test_unknown_fields_are_ignored_at_every_level() -> None:
    plain = job_event(record(job_detail()))
    extra = job_detail(newTopLevel={"a": [1, 2]}, ecsProperties={"taskProperties": [{"containers": []}]},
                       consumableResourceProperties={"consumableResourceList": []})
    extra["container"] = {**extra["container"], "newContainerField": 5}
    extra["attempts"] = []
    extra["arrayProperties"] = {"newArrayField": True}
    event = job_event(record(extra))
    assert event.detail == plain.detail
    assert event.version == plain.version
    env = envelope(job_detail())
    env["newEnvelopeField"] = {"x": 1}
    assert decode(json.dumps(env).encode()) == plain


@pytest.mark.parametrize(("time", "seconds"), [
    (T0_ISO, T0),
    ("2026-12-04T03:10:05+00:00", T0),
    ("2026-12-04T05:10:05+02:00", T0),
    ("not a time", 0.0),
    ("", 0.0),
])
def test_event_time(time: str, seconds: float) -> None:
    event = job_event(record(job_detail(), time=time))
    assert (event.time, event.version[2]) == (seconds, int(seconds * 1000))


# -- versions ------------------------------------------------------------------------------------------------

def _v(status: str, attempts: int = 0, seconds: int = 0) -> Version:
    return job_events.version({"status": status, "attempts": [{}] * attempts}, seconds * 1000)


COMPARE = [
    ("nothing known", _v("RUNNING"), None, "newer"),
    ("later status", _v("RUNNING", 0, 1), _v("RUNNABLE", 0, 2), "newer"),
    ("earlier status", _v("RUNNABLE", 0, 5), _v("RUNNING", 0, 1), "older"),
    ("retried: RUNNING attempt 0 -> RUNNABLE attempt 1", _v("RUNNABLE", 1, 1), _v("RUNNING", 0, 5), "newer"),
    ("RUNNING -> RUNNABLE, same attempts", _v("RUNNABLE", 1, 9), _v("RUNNING", 1, 1), "older"),
    ("old attempt's RUNNING after the retry", _v("RUNNING", 0, 9), _v("RUNNABLE", 1, 1), "older"),
    ("new attempt's SUBMITTED beats old RUNNING", _v("SUBMITTED", 2, 0), _v("RUNNING", 1, 9), "newer"),
    ("equal, later time", _v("RUNNABLE", 0, 6), _v("RUNNABLE", 0, 5), "newer"),
    ("equal, same time", _v("RUNNABLE", 0, 5), _v("RUNNABLE", 0, 5), "duplicate"),
    ("SUCCEEDED after RUNNING", _v("SUCCEEDED", 1, 1), _v("RUNNING", 0, 9), "newer"),
    ("FAILED after a retry's RUNNABLE", _v("FAILED", 2, 1), _v("RUNNABLE", 1, 9), "newer"),
    ("final absorbs: a later RUNNING", _v("RUNNING", 0, 9), _v("SUCCEEDED", 0, 1), "older"),
    ("final absorbs: more attempts", _v("RUNNABLE", 3, 9), _v("FAILED", 1, 1), "older"),
    ("final absorbs: the same final later", _v("SUCCEEDED", 1, 9), _v("SUCCEEDED", 1, 1), "duplicate"),
    ("final absorbs: the same final again", _v("FAILED", 1, 1), _v("FAILED", 1, 1), "duplicate"),
    ("final absorbs: a final with more attempts", _v("FAILED", 2, 9), _v("FAILED", 1, 1), "older"),
    ("unknown status below all", _v("NEW"), _v("SUBMITTED"), "older"),
]


@pytest.mark.parametrize(("new", "known", "order"), [c[1:] for c in COMPARE], ids=[c[0] for c in COMPARE])
def test_compare(new: Version, known: Version | None, order: Order) -> None:
    assert compare(new, known) == order


@pytest.mark.parametrize(("new", "known"), [
    (_v("RUNNABLE", 0, 4), _v("RUNNABLE", 0, 5)),  # same state, earlier time
    (_v("FAILED", 1, 9), _v("SUCCEEDED", 1, 1)),  # the other final
    (_v("SUCCEEDED", 0, 9), _v("FAILED", 0, 1)),
])
def test_never_newer(new: Version, known: Version) -> None:
    assert compare(new, known) != "newer"


def test_versions_count_attempts_then_rank_then_time() -> None:
    assert job_events.version({"status": "RUNNING", "attempts": [{}, {}]}, 123) == (2, 4, 123)
    assert job_events.version({"status": "RUNNING", "attempts": None}, 0) == (0, 4, 0)
    assert job_events.version({}, 0) == (0, -1, 0)


# -- child codes ---------------------------------------------------------------------------------------------

def _code(status: str, attempts: int = 0) -> int:
    return child_code({"status": status, "attempts": [{}] * attempts})


def test_child_codes_order_states_within_and_across_attempts() -> None:
    codes = [_code(s, a) for a in range(4) for s in CHILD_STATUSES]
    assert codes == sorted(codes) and len(set(codes)) == len(codes)
    assert min(codes) > 0  # 0 means none seen yet
    assert all(child_status(_code(s, a)) == s for a in range(40) for s in CHILD_STATUSES)
    assert max(_code(s, a) for a in range(200) for s in CHILD_STATUSES) < 256  # one byte
    assert _code("RUNNING", 35) == _code("RUNNING", 100)  # past AWS's 10 attempts they share a code


CHILD_ORDER = [
    ("first seen", _code("RUNNABLE"), 0, "newer"),
    ("first seen, final", _code("FAILED"), 0, "newer"),
    ("later", _code("RUNNING"), _code("STARTING"), "newer"),
    ("earlier", _code("STARTING"), _code("RUNNING"), "older"),
    ("again", _code("RUNNING"), _code("RUNNING"), "duplicate"),
    ("retry's RUNNABLE after RUNNING", _code("RUNNABLE", 1), _code("RUNNING", 0), "newer"),
    ("old attempt after the retry", _code("RUNNING", 0), _code("RUNNABLE", 1), "older"),
    ("SUCCEEDED after RUNNING", _code("SUCCEEDED", 1), _code("RUNNING", 0), "newer"),
    ("FAILED after RUNNING", _code("FAILED", 1), _code("RUNNING", 0), "newer"),
    ("final absorbs a later RUNNING", _code("RUNNING"), _code("SUCCEEDED"), "older"),
    ("final absorbs a higher code", _code("RUNNABLE", 3), _code("FAILED", 1), "older"),
    ("final absorbs the other final", _code("FAILED", 1), _code("SUCCEEDED", 1), "older"),
    ("final again", _code("SUCCEEDED", 1), _code("SUCCEEDED", 1), "duplicate"),
]


@pytest.mark.parametrize(("new", "known", "order"), [c[1:] for c in CHILD_ORDER], ids=[c[0] for c in CHILD_ORDER])
def test_child_order(new: int, known: int, order: Order) -> None:
    assert child_order(new, known) == order


@pytest.mark.parametrize("status", CHILD_STATUSES)
def test_child_codes_from_decoded_events(status: str) -> None:
    event = job_event(record(job_detail(f"{JOB}:2", status, attempts=[{"container": {"exitCode": 1}}],
                                        arrayProperties={"index": 2, "statusSummary": {}})))
    assert child_status(child_code(event.detail)) == status
    assert child_code(event.detail) == _code(status, 1)
