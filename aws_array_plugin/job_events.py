"""AWS Batch state-change events as the status engine applies them: decoding and versions (pure).

An EventBridge `Batch Job State Change` event carries in `detail` the JobDetail DescribeJobs would answer. Events
come at least once and in any order, and a job's status is not monotonic (a retried attempt goes back to
RUNNABLE), so each state gets a version: (attempts finished, status rank, time). A state replaces the known one
only when its version is higher; a final status absorbs everything after it. The envelope's `time` has one-second
resolution, so it only breaks ties between states of equal attempt and rank (a RUNNABLE job's new reason).
DescribeJobs answers get versions the same way (at the time they arrive), so an answer that left AWS before
an event was applied cannot move the job back either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypedDict

import msgspec

from aws_array_plugin.job_details import JobDetail, slim

BATCH_SOURCE = "aws.batch"
JOB_STATE_CHANGE = "Batch Job State Change"
HEARTBEAT_SOURCE = "aws-array-plugin"
HEARTBEAT_TYPE = "aws-array-plugin heartbeat"

STATUS_RANK = {"SUBMITTED": 0, "PENDING": 1, "RUNNABLE": 2, "STARTING": 3, "RUNNING": 4, "SUCCEEDED": 5, "FAILED": 5}
FINAL_RANK = 5
_CODE_ATTEMPTS = 35  # attempts beyond this share a code (AWS allows 10); codes stay below 256

Version = tuple[int, int, int]  # (attempts finished, status rank, milliseconds)
Kind = Literal["job", "array_child", "heartbeat", "other"]
Order = Literal["newer", "duplicate", "older"]


def version(detail: JobDetail | dict[str, Any], time_ms: int) -> Version:
    attempts = detail.get("attempts") or []
    return len(attempts), STATUS_RANK.get(str(detail.get("status", "")), -1), time_ms


def compare(new: Version, known: Version | None) -> Order:
    """Where a state stands against the known one. A final state is never left, whatever comes after it."""
    if known is None:
        return "newer"
    if known[1] == FINAL_RANK:
        return "duplicate" if new[:2] == known[:2] else "older"
    if new[:2] == known[:2]:
        return "newer" if new[2] > known[2] else "duplicate"
    return "newer" if new[:2] > known[:2] else "older"


CHILD_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
_CHILD_INDEX = {s: i for i, s in enumerate(CHILD_STATUSES)}
_PER_ATTEMPT = len(CHILD_STATUSES)


def child_code(detail: dict[str, Any]) -> int:
    """An array child's state in one byte, for per-array tallies: 0 means none seen yet, and a larger code is a
    later state (times are not kept: children are counted, not explained)."""
    attempts = min(len(detail.get("attempts") or []), _CODE_ATTEMPTS)
    return attempts * _PER_ATTEMPT + _CHILD_INDEX.get(str(detail.get("status", "")), 0) + 1


def child_status(code: int) -> str:
    return CHILD_STATUSES[(code - 1) % _PER_ATTEMPT]


def child_order(new: int, known: int) -> Order:
    if known == 0:
        return "newer"
    if child_status(known) in ("SUCCEEDED", "FAILED"):
        return "duplicate" if new == known else "older"
    return "newer" if new > known else "duplicate" if new == known else "older"


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One job's new state. Array children have `parent_id` and `index`; their `job_id` is `<parent>:<index>`."""

    job_id: str
    detail: dict[str, Any]  # slimmed (job_details.slim)
    time: float  # the event's time, epoch seconds
    version: Version
    parent_id: str | None = None
    index: int | None = None

    @property
    def kind(self) -> Kind:
        return "job" if self.parent_id is None else "array_child"

    @property
    def status(self) -> str:
        return str(self.detail.get("status", ""))


@dataclass(frozen=True, slots=True)
class Heartbeat:
    replica: str
    sequence: int
    sent_at: float  # epoch seconds, the sender's clock


Event = JobEvent | Heartbeat


class _HeartbeatDetail(TypedDict, total=False):
    replica: str
    sequence: int
    sentAt: float


_Envelope = TypedDict("_Envelope", {
    "id": str, "source": str, "detail-type": str, "time": str, "detail": msgspec.Raw,
}, total=False)
_ENVELOPE = msgspec.json.Decoder(_Envelope)
# Only the fields the service keeps are decoded; AWS adds fields, which are skipped.
_JOB_DETAIL = msgspec.json.Decoder(JobDetail)
_HEARTBEAT = msgspec.json.Decoder(_HeartbeatDetail)


def decode(data: bytes) -> Event | None:
    """The event in one stream record, or None for anything else (other sources, malformed or partial
    records: AWS may add event types and fields, so unknown ones are skipped, never fatal)."""
    try:
        envelope = _ENVELOPE.decode(data)
    except msgspec.DecodeError:
        return None
    detail = envelope.get("detail")
    if detail is None:
        return None
    source, kind = envelope.get("source"), envelope.get("detail-type")
    if source == HEARTBEAT_SOURCE and kind == HEARTBEAT_TYPE:
        return _heartbeat(detail)
    if source != BATCH_SOURCE or kind != JOB_STATE_CHANGE:
        return None
    job: dict[str, Any]
    try:
        job = dict(_JOB_DETAIL.decode(detail))
    except msgspec.DecodeError:
        # A field of an unexpected type (a null, say): the generic decode, then the same reduction.
        generic = msgspec.json.decode(detail)
        if not isinstance(generic, dict):
            return None
        job = generic
    job_id = job.get("jobId")
    if not isinstance(job_id, str) or not job_id or str(job.get("status", "")) not in STATUS_RANK:
        return None
    when = _epoch(envelope.get("time"))
    try:
        slimmed = slim(job)
    except (AttributeError, TypeError):
        return None  # a member of another shape than DescribeJobs gives (a string for `container`, say)
    v = version(slimmed, int(when * 1000))
    props = job.get("arrayProperties")
    index = props.get("index") if isinstance(props, dict) else None
    if not isinstance(index, int) or isinstance(index, bool):
        index = None
    parent, sep, suffix = job_id.rpartition(":")
    if index is None and sep and suffix.isdigit():
        index = int(suffix)  # AWS always names a child `<parent>:<index>`
    if index is not None and sep and parent:
        return JobEvent(job_id, slimmed, when, v, parent, int(index))
    return JobEvent(job_id, slimmed, when, v)


def _heartbeat(detail: msgspec.Raw) -> Heartbeat | None:
    try:
        hb = _HEARTBEAT.decode(detail)
    except msgspec.DecodeError:
        return None
    replica, sent_at = hb.get("replica"), hb.get("sentAt")
    if not replica or sent_at is None:
        return None
    return Heartbeat(replica, int(hb.get("sequence", 0)), float(sent_at))


def _epoch(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def heartbeat_entry(bus: str, replica: str, sequence: int, sent_at: float) -> dict[str, Any]:
    """The PutEvents entry of one heartbeat."""
    return {"Source": HEARTBEAT_SOURCE, "DetailType": HEARTBEAT_TYPE, "EventBusName": bus,
            "Detail": msgspec.json.encode({"replica": replica, "sequence": sequence, "sentAt": sent_at}).decode()}
