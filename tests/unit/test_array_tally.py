"""An array's children counted from their own events (array_tally), and the summary that combines the count
with the parent's last described statusSummary. Child states come from decoded, real-shaped events."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from datetime import UTC, datetime

import pytest

from aws_array_plugin.array_tally import MAX_CHILDREN, ArrayTally
from aws_array_plugin.job_events import CHILD_STATUSES, JobEvent, child_code, decode

PARENT = "7c1e2f70-5d4b-4b6a-8f3e-2a9d0c1b3e4f"
QUEUE_ARN = "arn:aws:batch:us-east-1:123456789012:job-queue/default"
T0 = datetime(2026, 12, 4, 3, 10, 5, tzinfo=UTC).timestamp()
STARTED = ("STARTING", "RUNNING", "SUCCEEDED", "FAILED")
IN_PROGRESS = ("STARTING", "RUNNING")


def child_event(index: int, status: str, attempts: int = 0, at: float = T0) -> JobEvent:
    job_id = f"{PARENT}:{index}"
    detail = {
        "jobArn": f"arn:aws:batch:us-east-1:123456789012:job/{job_id}", "jobName": "map-task", "jobId": job_id,
        "jobQueue": QUEUE_ARN, "status": status, "createdAt": 1796353700000, "dependsOn": [],
        "attempts": [{"container": {"exitCode": 1, "logStreamName": f"s/{i}"}, "statusReason": "Essential container"}
                     for i in range(attempts)],
        "arrayProperties": {"index": index, "statusSummary": {}}, "container": {"image": "x", "command": ["y"]},
        "tags": {}, "platformCapabilities": ["EC2"],
    }
    data = json.dumps({"version": "0", "id": f"e-{index}-{status}", "detail-type": "Batch Job State Change",
                       "source": "aws.batch", "account": "123456789012",
                       "time": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "region": "us-east-1", "resources": [detail["jobArn"]], "detail": detail}).encode()
    event = decode(data)
    assert isinstance(event, JobEvent) and event.index == index and event.parent_id == PARENT
    return event


def apply_event(tally: ArrayTally, event: JobEvent) -> str:
    assert event.index is not None
    return tally.apply(event.index, child_code(event.detail))


def tally_of(statuses: list[str], described: dict[str, int] | None = None) -> ArrayTally:
    """Child i's event says statuses[i] ("" for none heard)."""
    tally = ArrayTally()
    if described is not None:
        tally.describe_seen(described)
    for index, status in enumerate(statuses):
        if status:
            apply_event(tally, child_event(index, status))
    return tally


# Each child's true history: (status, attempts finished) in the order AWS went through them.
HISTORIES: list[list[tuple[str, int]]] = [
    [("PENDING", 0), ("RUNNABLE", 0), ("STARTING", 0), ("RUNNING", 0), ("SUCCEEDED", 1)],
    [("RUNNABLE", 0), ("STARTING", 0), ("RUNNING", 0), ("FAILED", 1)],
    [("RUNNABLE", 0), ("RUNNING", 0), ("RUNNABLE", 1), ("STARTING", 1), ("RUNNING", 1), ("SUCCEEDED", 2)],
    [("RUNNABLE", 0), ("RUNNING", 0), ("RUNNABLE", 1), ("RUNNING", 1), ("RUNNABLE", 2), ("FAILED", 3)],
    [("RUNNABLE", 0), ("STARTING", 0), ("RUNNING", 0)],
    [("RUNNABLE", 0), ("RUNNING", 0), ("RUNNABLE", 1)],  # being retried
    [("PENDING", 0), ("RUNNABLE", 0)],
    [("RUNNABLE", 0), ("FAILED", 0)],  # terminated before it ran
]


@pytest.mark.parametrize("seed", range(12))
def test_duplicates_and_reordering_never_double_count(seed: int) -> None:
    rng = random.Random(seed)
    children = [HISTORIES[i % len(HISTORIES)] for i in range(3 * len(HISTORIES))]
    events = [child_event(i, s, a, at=T0 + n) for i, history in enumerate(children) for n, (s, a) in enumerate(history)]
    delivered = events + rng.sample(events, len(events) // 2)  # at least once: about half come twice
    rng.shuffle(delivered)
    tally = ArrayTally()
    orders = Counter(apply_event(tally, e) for e in delivered)
    truth = Counter(history[-1][0] for history in children)
    assert tally.counts() == dict(truth)
    assert sum(tally.counts().values()) == len(children)
    assert orders["newer"] <= len(events) and orders["newer"] >= len(children)
    assert sum(orders.values()) == len(delivered)
    assert tally.summary(len(children)) == dict(truth)  # no PENDING/SUBMITTED among the last states


@pytest.mark.parametrize("order", list(itertools.permutations(["RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"])),
                         ids="-".join)
def test_every_order_of_one_childs_events_ends_where_it_ended(order: tuple[str, ...]) -> None:
    tally = ArrayTally()
    seen: list[str] = []
    for status in order:
        apply_event(tally, child_event(0, status))
        seen.append(status)
        best = max(seen, key=CHILD_STATUSES.index)
        assert tally.counts() == {best: 1}
    for status in order:  # redelivered: nothing moves, nothing counts twice
        assert apply_event(tally, child_event(0, status)) in ("duplicate", "older")
    assert tally.counts() == {"SUCCEEDED": 1}


def test_a_redelivery_is_a_duplicate_and_does_not_dirty() -> None:
    tally = ArrayTally()
    assert apply_event(tally, child_event(4, "RUNNING")) == "newer"
    assert tally.dirty
    tally.dirty = False
    assert apply_event(tally, child_event(4, "RUNNING")) == "duplicate"
    assert apply_event(tally, child_event(4, "STARTING")) == "older"
    assert not tally.dirty
    assert tally.counts() == {"RUNNING": 1}
    tally.describe_seen({"RUNNING": 1})
    assert tally.dirty


@pytest.mark.parametrize("index", [-1, MAX_CHILDREN, MAX_CHILDREN + 5, 10**9])
def test_an_index_out_of_range_is_ignored(index: int) -> None:
    tally = tally_of(["RUNNING"])
    tally.dirty = False
    assert tally.apply(index, child_code({"status": "FAILED"})) == "older"
    assert tally.counts() == {"RUNNING": 1} and not tally.dirty
    assert tally.summary(2) == {"RUNNING": 1, "RUNNABLE": 1}


def test_the_last_index_in_range_counts() -> None:
    tally = ArrayTally()
    assert tally.apply(MAX_CHILDREN - 1, child_code({"status": "FAILED"})) == "newer"
    assert tally.counts() == {"FAILED": 1}


SUMMARY = [
    # (case, size, child statuses from events ("" none), described summary, expected summary)
    ("events only", 4, ["SUCCEEDED", "FAILED", "RUNNING", "STARTING"], {},
     {"SUCCEEDED": 1, "FAILED": 1, "RUNNING": 1, "STARTING": 1}),
    ("unheard children are queued", 5, ["RUNNING", "SUCCEEDED"], {}, {"RUNNING": 1, "SUCCEEDED": 1, "RUNNABLE": 3}),
    ("final counts: the larger lower bound of each", 10, ["SUCCEEDED", "SUCCEEDED", "FAILED"],
     {"SUCCEEDED": 1, "FAILED": 3, "RUNNING": 2, "RUNNABLE": 4},
     {"SUCCEEDED": 2, "FAILED": 3, "RUNNING": 2, "RUNNABLE": 3}),
    ("a failure only DescribeJobs saw (its event lost)", 3, ["SUCCEEDED", "RUNNING", ""],
     {"FAILED": 1, "RUNNING": 1, "RUNNABLE": 1}, {"SUCCEEDED": 1, "FAILED": 1, "RUNNING": 1}),
    ("finals capped by size", 4, ["SUCCEEDED", "SUCCEEDED", "SUCCEEDED", ""], {"FAILED": 3, "RUNNING": 1},
     {"SUCCEEDED": 3, "FAILED": 1}),
    ("succeeded capped by size", 2, ["SUCCEEDED", "SUCCEEDED"], {"SUCCEEDED": 5}, {"SUCCEEDED": 2}),
    ("a late RUNNABLE after the description saw it run", 2, ["RUNNABLE", ""], {"RUNNING": 2},
     {"RUNNING": 2}),
    ("late RUNNABLEs for every child", 3, ["RUNNABLE", "RUNNABLE", "RUNNABLE"], {"RUNNING": 1, "RUNNABLE": 2},
     {"RUNNING": 1, "RUNNABLE": 2}),
    ("late PENDING after the description saw them start", 2, ["PENDING", "PENDING"], {"STARTING": 2},
     {"STARTING": 2}),
    ("the tally wins once it heard of as many started", 3, ["SUCCEEDED", "SUCCEEDED", ""],
     {"RUNNING": 2, "RUNNABLE": 1}, {"SUCCEEDED": 2, "RUNNABLE": 1}),
    ("...not before", 3, ["SUCCEEDED", "", ""], {"RUNNING": 2, "RUNNABLE": 1}, {"SUCCEEDED": 1, "RUNNING": 2}),
    ("the tally's in-progress split wins", 4, ["RUNNING", "RUNNING", "", ""], {"STARTING": 2, "RUNNABLE": 2},
     {"RUNNING": 2, "RUNNABLE": 2}),
    ("the tally heard of more started", 4, ["RUNNING", "RUNNING", "STARTING", ""], {"RUNNING": 1},
     {"RUNNING": 2, "STARTING": 1, "RUNNABLE": 1}),
    ("without events, the description", 4, ["", "", "", ""], {"SUCCEEDED": 1, "RUNNING": 2, "RUNNABLE": 1},
     {"SUCCEEDED": 1, "RUNNING": 2, "RUNNABLE": 1}),
]


@pytest.mark.parametrize(("size", "statuses", "described", "expected"), [c[1:] for c in SUMMARY],
                         ids=[c[0] for c in SUMMARY])
def test_summary_combines_the_tally_and_the_description(size: int, statuses: list[str], described: dict[str, int],
                                                        expected: dict[str, int]) -> None:
    assert tally_of(statuses, described).summary(size) == expected


@pytest.mark.parametrize(("statuses", "described", "queued"), [
    (["", "", ""], {"SUBMITTED": 3}, 3),
    (["PENDING", "RUNNABLE", ""], {"PENDING": 3}, 3),
    (["RUNNABLE", "", "RUNNING"], {"SUBMITTED": 1, "PENDING": 1, "RUNNABLE": 1}, 2),
])
def test_queued_children_stay_queued(statuses: list[str], described: dict[str, int], queued: int) -> None:
    summary = tally_of(statuses, described).summary(len(statuses))
    assert sum(summary.get(s, 0) for s in ("SUBMITTED", "PENDING", "RUNNABLE")) == queued
    assert sum(summary.values()) == len(statuses)


def _random_case(rng: random.Random) -> tuple[int, list[str], dict[str, int]]:
    size = rng.randint(1, 12)
    statuses = [rng.choice(["", *CHILD_STATUSES]) for _ in range(size)]
    described: Counter[str] = Counter()
    for _ in range(rng.randint(0, size)):
        described[rng.choice(CHILD_STATUSES)] += 1
    return size, statuses, dict(described)


@pytest.mark.parametrize("seed", range(4))
def test_summary_invariants(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        size, statuses, described = _random_case(rng)
        tally = tally_of(statuses, described)
        seen = Counter(s for s in statuses if s)
        summary = tally.summary(size)
        case = (size, statuses, described, summary)
        assert sum(summary.values()) == size and all(v > 0 for v in summary.values()), case
        succeeded = min(size, max(seen["SUCCEEDED"], described.get("SUCCEEDED", 0)))
        failed = min(size - succeeded, max(seen["FAILED"], described.get("FAILED", 0)))
        assert (summary.get("SUCCEEDED", 0), summary.get("FAILED", 0)) == (succeeded, failed), case
        rest = size - succeeded - failed
        # Children the events say are in progress are counted in progress (as far as room is left).
        assert sum(summary.get(s, 0) for s in IN_PROGRESS) >= min(rest, sum(seen[s] for s in IN_PROGRESS)), case
        # Once anything started (by the events or the description), the array never reads as all queued.
        if sum(seen[s] for s in STARTED) + sum(described.get(s, 0) for s in STARTED):
            assert any(summary.get(s) for s in STARTED), case


def test_a_description_replaces_the_last_one() -> None:
    tally = tally_of(["", ""], {"FAILED": 2})
    assert tally.summary(2) == {"FAILED": 2}
    tally.describe_seen({"RUNNING": 1, "RUNNABLE": 1})
    assert tally.summary(2) == {"RUNNING": 1, "RUNNABLE": 1}


def test_summary_keys_are_aws_statuses() -> None:
    summary = tally_of(["SUCCEEDED", "FAILED", "RUNNING", "STARTING", "RUNNABLE", "PENDING"]).summary(7)
    assert set(summary) <= set(CHILD_STATUSES)
    assert summary == {"SUCCEEDED": 1, "FAILED": 1, "RUNNING": 1, "STARTING": 1, "RUNNABLE": 2, "PENDING": 1}
