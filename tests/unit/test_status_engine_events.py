"""The status engine fed by AWS Batch state-change events (status_engine.apply and the reconcile-only polling
around it), on the in-memory FakeAws with a fake clock. Events are real-shaped EventBridge envelopes decoded by
job_events.decode, as the event source hands them over."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from aws_array_plugin.config import load_config
from aws_array_plugin.job_events import JobEvent, decode
from aws_array_plugin.metrics import Metrics
from aws_array_plugin.status_engine import StatusEngine, TrackedJob
from aws_array_plugin.testing import FakeAws, FakeClock

QUEUE = "default"
REGION = "us-east-1"
ACCOUNT = "123456789012"
T0 = datetime(2026, 12, 4, 3, 10, 0, tzinfo=UTC).timestamp()
REFRESH, STALENESS, RECONCILE = 30.0, 35.0, 300.0


def event(job_id: str, status: str, at: float, *, attempts: int = 0, **fields: Any) -> JobEvent:
    """The decoded `Batch Job State Change` event of `job_id` reaching `status` at `at` (epoch seconds)."""
    detail: dict[str, Any] = {
        "jobArn": f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{job_id}", "jobName": "task", "jobId": job_id,
        "jobQueue": f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/{QUEUE}", "status": status,
        "attempts": [{"container": {"exitCode": 1, "logStreamName": f"task/default/{n}"},
                      "statusReason": "Essential container in task exited"} for n in range(attempts)],
        "createdAt": int(T0 * 1000) - 60_000, "dependsOn": [], "parameters": {}, "tags": {},
        "jobDefinition": f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/task:1",
        "container": {"image": "busybox", "command": ["true"], "environment": []}, "platformCapabilities": ["EC2"],
    }
    if ":" in job_id:
        detail["arrayProperties"] = {"index": int(job_id.rsplit(":", 1)[1]), "statusSummary": {}}
    detail.update(fields)
    data = json.dumps({"version": "0", "id": f"{job_id}-{status}-{at}", "detail-type": "Batch Job State Change",
                       "source": "aws.batch", "account": ACCOUNT,
                       "time": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION,
                       "resources": [detail["jobArn"]], "detail": detail}).encode()
    decoded = decode(data)
    assert isinstance(decoded, JobEvent)
    return decoded


def summary_of(job: TrackedJob) -> Any:
    assert job.detail is not None
    return job.detail["arrayProperties"]["statusSummary"]


@dataclass
class World:
    aws: FakeAws
    clock: FakeClock
    metrics: Metrics
    engine: StatusEngine

    def value(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(f"aws_array_plugin_{name}", labels) or 0.0

    def describes(self) -> list[list[str]]:
        return [list(p["jobs"]) for p in self.aws.sent("describe_jobs")]

    def described(self, job_id: str) -> int:
        return sum(ids.count(job_id) for ids in self.describes())

    def apply(self, *events: JobEvent) -> None:
        self.engine.apply(events)

    async def settle(self) -> None:
        """Until no describe is queued or in flight."""
        for _ in range(500):
            await asyncio.sleep(0)
            if not self.engine._pending:
                return
        raise AssertionError("describes still pending")

    async def until(self, done: Callable[[], bool]) -> None:
        for _ in range(500):
            if done():
                return
            await asyncio.sleep(0)
        raise AssertionError("condition never met")

    async def track(self, *job_ids: str) -> list[TrackedJob]:
        jobs = await self.engine.jobs(job_ids)
        await self.settle()
        return jobs

    def job(self, job_id: str) -> TrackedJob:
        found = self.engine._jobs.peek(job_id)
        assert found is not None
        return found


def make_world(status: dict[str, Any] | None = None, events: dict[str, Any] | None = None) -> World:
    config = load_config({"defaultQueue": QUEUE, "status": {
        "refreshInterval": f"{REFRESH}s", "maxStaleness": f"{STALENESS}s", "batchWindow": "0s",
        "idleEviction": "10h", **(status or {}),
        "events": {"enabled": True, "stream": "s", "reconcileInterval": f"{RECONCILE}s", **(events or {})}}})
    clock = FakeClock(T0)
    aws, metrics = FakeAws(clock=clock), Metrics()
    engine = StatusEngine(aws, config.status, metrics, clock=clock, wall_clock=clock)
    return World(aws, clock, metrics, engine)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = make_world()
    w.engine.start()
    yield w
    await w.engine.stop()


@pytest.fixture
async def arrays_polled() -> AsyncIterator[World]:
    w = make_world(events={"arrayChildEvents": False})
    w.engine.start()
    yield w
    await w.engine.stop()


# -- (a) duplicates and reordering ------------------------------------------------------------------------------

STATES = ("RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED")


@pytest.mark.parametrize("order", list(itertools.permutations(STATES)), ids="-".join)
def test_duplicated_and_reordered_events_never_move_a_job_back(order: tuple[str, ...]) -> None:
    w = make_world()
    w.engine.set_events_live(True)
    w.engine.seed("job-1", QUEUE)
    at = {s: T0 + 1 + n for n, s in enumerate(STATES)}  # the times AWS went through them
    rank = STATES.index
    best = -1
    newer = 0
    for status in order:
        w.apply(event("job-1", status, at[status]))
        if rank(status) > best:
            best, newer = rank(status), newer + 1
        assert w.job("job-1").status == STATES[best]
    for status in order:  # every event delivered again
        w.apply(event("job-1", status, at[status]))
        assert w.job("job-1").status == "SUCCEEDED"
    assert w.job("job-1").terminal
    assert w.value("events_applied_total", kind="job") == newer
    assert w.value("events_out_of_order_total") == (4 - newer) + 3
    assert w.value("events_duplicate_total") == 1
    assert w.value("events_untracked_total") == 0


def test_a_redelivered_non_final_event_is_a_duplicate() -> None:
    w = make_world()
    w.engine.seed("job-1", QUEUE)
    running = event("job-1", "RUNNING", T0 + 5)
    w.apply(running, running, event("job-1", "RUNNING", T0 + 5))
    assert w.value("events_applied_total", kind="job") == 1
    assert w.value("events_duplicate_total") == 2
    # The same status with a later time is news (a RUNNABLE job's new reason, say).
    w.apply(event("job-1", "RUNNING", T0 + 6, statusReason="x"))
    assert w.value("events_applied_total", kind="job") == 2
    assert w.job("job-1").detail == event("job-1", "RUNNING", T0 + 6, statusReason="x").detail


def test_event_lag_is_observed_from_the_event_time() -> None:
    w = make_world()
    w.engine.seed("job-1", QUEUE)
    w.clock.advance(3)
    w.apply(event("job-1", "RUNNING", T0))
    assert w.value("event_lag_seconds_count") == 1
    assert w.value("event_lag_seconds_sum") == pytest.approx(3.0)


# -- (b) an answer older than an applied event ---------------------------------------------------------------

OLD_ANSWER = [
    # (AWS's state when the answer left, the newer event applied while it was in flight, the state kept)
    ("RUNNABLE", 0, "RUNNING", 0, "RUNNING"),
    ("RUNNING", 0, "SUCCEEDED", 1, "SUCCEEDED"),
    ("STARTING", 0, "FAILED", 1, "FAILED"),
    ("RUNNING", 0, "RUNNABLE", 1, "RUNNABLE"),  # the retry's RUNNABLE is newer than the answer's RUNNING
]


@pytest.mark.parametrize(("answer", "answer_attempts", "status", "attempts", "kept"), OLD_ANSWER,
                         ids=[f"{c[0]}-vs-{c[2]}" for c in OLD_ANSWER])
async def test_an_answer_older_than_an_applied_event_does_not_move_the_job_back(
        world: World, answer: str, answer_attempts: int, status: str, attempts: int, kept: str) -> None:
    job_id = world.aws.add_job("task", QUEUE, status="RUNNABLE")
    await world.track(job_id)
    world.aws.update_job(job_id, status=answer, attempts=[{"container": {}}] * answer_attempts)
    world.clock.advance(STALENESS + 1)
    held = world.aws.pause("describe_jobs")
    lookup = asyncio.create_task(world.engine.jobs([job_id]))
    await held.reached.wait()
    applied = event(job_id, status, world.clock.now - 1, attempts=attempts)
    world.apply(applied)
    world.clock.advance(0.5)  # the answer arrives after the event was applied
    held.release()
    [job] = await lookup
    await world.settle()
    assert (job.status, job.detail) == (kept, applied.detail)
    assert job.version == applied.version
    assert job.fetched_at == world.clock.now  # the answer still says the job is current
    assert world.described(job_id) == 2


async def test_an_answer_newer_than_the_event_is_taken(world: World) -> None:
    job_id = world.aws.add_job("task", QUEUE, status="RUNNABLE")
    await world.track(job_id)
    world.aws.update_job(job_id, status="SUCCEEDED", attempts=[{"container": {"exitCode": 0}}])
    world.clock.advance(STALENESS + 1)
    held = world.aws.pause("describe_jobs")
    lookup = asyncio.create_task(world.engine.jobs([job_id]))
    await held.reached.wait()
    world.apply(event(job_id, "RUNNING", world.clock.now - 1))
    held.release()
    [job] = await lookup
    assert job.status == "SUCCEEDED"
    world.apply(event(job_id, "RUNNING", world.clock.now))  # the RUNNING event redelivered: no way back
    assert job.status == "SUCCEEDED"


# -- (c) retries -----------------------------------------------------------------------------------------------

def test_a_retried_jobs_new_attempt_is_applied_after_running() -> None:
    w = make_world()
    w.engine.seed("job-1", QUEUE)
    steps = [
        # (event, status after it)
        (event("job-1", "RUNNING", T0 + 1), "RUNNING"),
        (event("job-1", "RUNNABLE", T0 + 2, attempts=1), "RUNNABLE"),  # attempt 1 failed: retried
        (event("job-1", "RUNNING", T0 + 1), "RUNNABLE"),  # attempt 1's RUNNING, redelivered late
        (event("job-1", "STARTING", T0 + 3, attempts=1), "STARTING"),
        (event("job-1", "RUNNING", T0 + 4, attempts=1), "RUNNING"),
        (event("job-1", "RUNNABLE", T0 + 2, attempts=1), "RUNNING"),  # late
        (event("job-1", "SUCCEEDED", T0 + 5, attempts=2), "SUCCEEDED"),
        (event("job-1", "RUNNABLE", T0 + 9, attempts=3), "SUCCEEDED"),  # nothing leaves a final state
    ]
    for n, (e, status) in enumerate(steps):
        w.apply(e)
        assert w.job("job-1").status == status, n
    assert len(w.job("job-1").detail["attempts"]) == 2  # type: ignore[index]
    assert w.value("events_applied_total", kind="job") == 5
    assert w.value("events_out_of_order_total") == 3


# -- (d) untracked jobs ----------------------------------------------------------------------------------------

async def test_events_for_untracked_jobs_are_counted_and_create_nothing(world: World) -> None:
    done = world.aws.add_job("done", QUEUE, status="SUCCEEDED", size=2)
    await world.track(done)
    tracked = len(world.engine)
    world.apply(
        event("stranger", "RUNNING", T0),
        event("stranger:3", "FAILED", T0),  # a child of an untracked array
        event(f"{done}:0", "RUNNING", T0),  # a child of a finished array
    )
    assert world.value("events_untracked_total") == 3
    assert world.value("events_applied_total", kind="job") == 0
    assert world.value("events_applied_total", kind="array_child") == 0
    assert len(world.engine) == tracked
    assert world.engine._jobs.peek("stranger") is None and world.engine._jobs.peek("stranger:3") is None
    assert world.job(done).tally is None
    world.engine.refresh_once()
    await world.settle()
    assert world.describes() == [[done]]


# -- (e) reconcile-only polling while events are live ---------------------------------------------------------

POLLING = [
    # (events live, seconds between a job's events (0: none), describes of it over 900 s, reason)
    (True, 0, 3, "reconcile"),  # quiet: once per reconcileInterval (a pass early, at 270, 540, 810 s)
    (True, 60, 0, "reconcile"),  # news every minute: never described
    (True, 240, 0, "reconcile"),
    (False, 0, 30, "refresh"),  # polled every refreshInterval
    (False, 60, 30, "refresh"),  # events change nothing about polling while the source is not healthy
]


@pytest.mark.parametrize(("live", "every", "describes", "reason"), POLLING,
                         ids=[f"live={c[0]}-every={c[1]}s" for c in POLLING])
async def test_refresh_describes_only_quiet_jobs_while_events_are_live(
        world: World, live: bool, every: int, describes: int, reason: str) -> None:
    job_id = world.aws.add_job("task", QUEUE, status="RUNNABLE")
    world.engine.seed(job_id, QUEUE)
    if live:
        world.engine.set_events_live(True)
    else:
        world.engine.set_events_live(True)
        world.engine.set_events_live(False)  # the source went unhealthy: that pass polls once more
        await world.settle()
        world.aws.calls.clear()
    for t in range(int(REFRESH), 901, int(REFRESH)):
        world.clock.advance(REFRESH / 2)
        if every and t % every == 0:  # news between two passes: the same status, a new reason
            world.apply(event(job_id, "RUNNABLE", world.clock.now, statusReason=f"CAPACITY:t={t}"))
        world.clock.advance(REFRESH / 2)
        world.engine.refresh_once()
        await world.settle()
    assert world.value("events_applied_total", kind="job") == (900 // every if every else 0)
    assert world.described(job_id) == describes
    assert world.value("status_describes_total", reason=reason) == describes
    other = {"reconcile": "refresh", "refresh": "reconcile"}[reason]
    assert world.value("status_describes_total", reason=other) == 0
    assert world.value("status_polling_fallback") == (0 if live else 1)


async def test_jobs_with_recent_events_are_left_out_and_quiet_ones_reconciled(world: World) -> None:
    ids = [world.aws.add_job(f"task-{n}", QUEUE, status="RUNNABLE") for n in range(4)]
    await world.track(*ids)
    world.aws.calls.clear()
    world.engine.set_events_live(True)
    world.clock.advance(200)
    world.apply(event(ids[0], "RUNNING", world.clock.now), event(ids[1], "STARTING", world.clock.now))
    assert world.engine.refresh_once() == 0
    world.clock.advance(100)  # 300 s since the last describe; 100 s since ids[0] and ids[1] had news
    assert world.engine.refresh_once() == 2
    await world.settle()
    assert world.describes() == [[ids[2], ids[3]]]
    assert world.value("status_describes_total", reason="reconcile") == 1
    assert world.value("status_describes_total", reason="refresh") == 0


# -- (f) reconcile everything after a gap ----------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 100, 101, 250])
async def test_reconcile_all_describes_every_unfinished_job(world: World, n: int) -> None:
    ids = [world.aws.add_job(f"task-{i}", QUEUE, status="RUNNING") for i in range(n)]
    world.engine.seed_all((i, QUEUE, None) for i in ids)
    world.engine.set_events_live(True)
    finished = world.aws.add_job("finished", QUEUE, status="SUCCEEDED")
    await world.track(finished)
    child = world.aws.add_job("child-host", QUEUE, status="RUNNING")
    await world.engine.jobs([child], background=False)  # looked at on demand only (an array's child)
    await world.settle()
    world.aws.calls.clear()
    assert world.engine.reconcile_all("dead_letter") == n
    await world.settle()
    calls = world.describes()
    assert len(calls) == math.ceil(n / 100)
    assert sorted(i for c in calls for i in c) == sorted(ids)
    assert all(len(c) <= 100 for c in calls)
    assert world.value("event_source_gaps_total", cause="dead_letter") == 1
    assert world.value("status_describes_total", reason="gap") == len(calls)


async def test_reconcile_all_does_not_queue_a_job_twice(world: World) -> None:
    ids = [world.aws.add_job(f"task-{i}", QUEUE, status="RUNNING") for i in range(3)]
    world.engine.seed_all((i, QUEUE, None) for i in ids)
    assert world.engine.reconcile_all("heartbeat_missed") == 3
    assert world.engine.reconcile_all("read_failed") == 0  # all still queued
    await world.settle()
    assert world.describes() == [ids]
    assert world.value("event_source_gaps_total", cause="heartbeat_missed") == 1
    assert world.value("event_source_gaps_total", cause="read_failed") == 1


# -- (g) GetTask lookups ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("live", "age", "described"), [
    (True, STALENESS + 1, False),  # older than maxStaleness, but events keep it current
    (True, RECONCILE - 1, False),
    (True, RECONCILE + 1, True),  # no news for reconcileInterval: described
    (False, STALENESS - 1, False),
    (False, STALENESS + 1, True),
])
async def test_get_task_describes_an_event_fresh_job_only_when_not_live(world: World, live: bool, age: float,
                                                                         described: bool) -> None:
    job_id = world.aws.add_job("task", QUEUE, status="RUNNABLE")
    world.engine.seed(job_id, QUEUE)
    world.engine.set_events_live(True)
    world.apply(event(job_id, "RUNNING", world.clock.now))
    if not live:
        world.engine.set_events_live(False)
        await world.settle()
    world.aws.calls.clear()
    world.clock.advance(age)
    [job] = await world.engine.jobs([job_id])
    await world.settle()
    assert world.describes() == ([[job_id]] if described else [])
    assert world.value("status_describes_total", reason="lookup") == (1 if described else 0)
    # The answer (the fake was never moved on from RUNNABLE) is older than the event: the job stays RUNNING.
    assert job.status == "RUNNING"
    assert job.fetched_at == (world.clock.now if described else world.clock.now - age)


# -- (h) arrays fed by their children's events -------------------------------------------------------------------

async def test_child_events_feed_an_array_parents_summary_failures_and_running_children(world: World) -> None:
    parent_id = world.aws.add_job("map", QUEUE, status="PENDING", size=5)
    [parent] = await world.track(parent_id)
    world.engine.set_events_live(True)
    world.aws.calls.clear()
    now = world.clock.now
    failed = event(f"{parent_id}:1", "FAILED", now, attempts=1, statusReason="Essential container in task exited",
                   container={"exitCode": 3, "logStreamName": "map/default/abc", "reason": "bad input"})
    running = event(f"{parent_id}:0", "RUNNING", now)
    world.apply(
        event(f"{parent_id}:0", "STARTING", now), running, event(f"{parent_id}:0", "RUNNABLE", now),
        failed, failed,
        event(f"{parent_id}:2", "SUCCEEDED", now, attempts=1), event(f"{parent_id}:2", "RUNNING", now),
        event(f"{parent_id}:3", "RUNNABLE", now),
    )
    assert world.value("events_applied_total", kind="array_child") == 5
    assert world.value("events_duplicate_total") == 1
    assert world.value("events_out_of_order_total") == 2
    world.clock.advance(STALENESS + 1)
    [parent] = await world.engine.jobs([parent_id])
    assert parent.detail is not None
    assert summary_of(parent) == {"RUNNING": 1, "FAILED": 1, "SUCCEEDED": 1, "RUNNABLE": 2}
    assert parent.detail["arrayProperties"]["size"] == 5
    assert parent.failed_children == {1: failed.detail}
    assert parent.failed_children[1]["container"]["exitCode"] == 3
    assert await world.engine.failed_children(parent, 1, 100) == [failed.detail]
    assert await world.engine.running_children(parent, 3) == [running.detail]
    await world.settle()
    assert world.aws.sent("list_jobs") == []
    assert world.describes() == []  # events keep the parent current: no describe either
    # Child 0 finishes: it leaves the running sample, and the summary follows.
    world.apply(event(f"{parent_id}:0", "SUCCEEDED", now + 5, attempts=1))
    [parent] = await world.engine.jobs([parent_id])
    assert summary_of(parent) == {"FAILED": 1, "SUCCEEDED": 2, "RUNNABLE": 2}
    assert parent.running_children == []


async def test_running_children_are_sampled_again_once_events_are_not_live(world: World) -> None:
    parent_id = world.aws.add_job("map", QUEUE, status="PENDING", size=2)
    world.aws.set_children(parent_id, [{"status": "RUNNING"}, {"status": "RUNNING"}])
    [parent] = await world.track(parent_id)
    world.engine.set_events_live(True)
    world.apply(event(f"{parent_id}:1", "RUNNING", world.clock.now))
    world.clock.advance(400)  # past running_children's resample period
    assert [c["jobId"] for c in await world.engine.running_children(parent, 3)] == [f"{parent_id}:1"]
    assert world.aws.sent("list_jobs") == []
    world.engine.set_events_live(False)
    await world.engine.running_children(parent, 3)
    await world.until(lambda: len(parent.running_children) == 2)
    assert [p["jobStatus"] for p in world.aws.sent("list_jobs")] == ["RUNNING"]
    assert sorted(c["jobId"] for c in parent.running_children) == [f"{parent_id}:0", f"{parent_id}:1"]


async def test_a_described_summary_and_child_events_combine(world: World) -> None:
    parent_id = world.aws.add_job("map", QUEUE, status="PENDING", size=4)
    world.aws.update_job(parent_id, arrayProperties={"statusSummary": {"FAILED": 1, "RUNNING": 2, "RUNNABLE": 1}})
    await world.track(parent_id)
    world.engine.set_events_live(True)
    # Child 3's failure event was lost; 0 and 1 succeed, and a late RUNNABLE for 2 arrives.
    world.apply(event(f"{parent_id}:0", "SUCCEEDED", world.clock.now, attempts=1),
                event(f"{parent_id}:1", "SUCCEEDED", world.clock.now, attempts=1),
                event(f"{parent_id}:2", "RUNNABLE", world.clock.now))
    [parent] = await world.engine.jobs([parent_id])
    assert parent.detail is not None
    # The events heard of 2 started children, the description saw 3: its RUNNING count (capped) still holds.
    assert summary_of(parent) == {"SUCCEEDED": 2, "FAILED": 1, "RUNNING": 1}
    # A new description replaces the old one in the combination.
    world.aws.update_job(parent_id, arrayProperties={"statusSummary": {"SUCCEEDED": 1, "FAILED": 2, "RUNNABLE": 1}})
    world.clock.advance(RECONCILE + 1)
    [parent] = await world.engine.jobs([parent_id])
    assert world.described(parent_id) == 2
    assert summary_of(parent) == {"SUCCEEDED": 2, "FAILED": 2}


async def test_a_finished_parents_own_summary_is_kept(world: World) -> None:
    parent_id = world.aws.add_job("map", QUEUE, status="PENDING", size=2)
    await world.track(parent_id)
    world.engine.set_events_live(True)
    world.apply(event(f"{parent_id}:0", "SUCCEEDED", world.clock.now, attempts=1))
    final = {"SUCCEEDED": 2}
    world.apply(event(parent_id, "SUCCEEDED", world.clock.now + 1, arrayProperties={"size": 2, "statusSummary": final}))
    [parent] = await world.engine.jobs([parent_id])
    assert parent.status == "SUCCEEDED"
    assert parent.detail is not None and summary_of(parent) == final


# -- (i) arrays polled when the rule drops children's events -------------------------------------------------------

async def test_without_child_events_arrays_are_polled_and_singles_reconciled(arrays_polled: World) -> None:
    w = arrays_polled
    single = w.aws.add_job("task", QUEUE, status="RUNNING")
    array = w.aws.add_job("map", QUEUE, status="PENDING", size=3)
    await w.track(single, array)
    w.engine.set_events_live(True)
    w.aws.calls.clear()
    passes = 0
    for _ in range(int(RECONCILE // REFRESH)):
        w.clock.advance(REFRESH)
        w.engine.refresh_once()
        await w.settle()
        passes += 1
    calls = w.describes()
    assert len(calls) == passes and all(array in c for c in calls)  # one call per pass, for the array
    # The single only rides along in the array's calls (a partial call is topped up for free), at most once per
    # half reconcileInterval: it never costs a call of its own.
    assert 1 <= w.described(single) <= 2
    assert w.value("status_describes_total", reason="refresh") == passes
    # GetTask: the array goes by maxStaleness, the single by reconcileInterval.
    w.aws.calls.clear()
    w.clock.advance(STALENESS + 1)
    await w.engine.jobs([single, array])
    await w.settle()
    assert w.describes() == [[array]]


async def test_without_child_events_a_just_submitted_array_is_polled(arrays_polled: World) -> None:
    w = arrays_polled
    array = w.aws.add_job("map", QUEUE, status="PENDING", size=3)
    w.engine.seed(array, QUEUE, array_size=3)  # as Submissions does right after SubmitJob
    w.engine.set_events_live(True)
    for _ in range(3):
        w.clock.advance(REFRESH)
        w.engine.refresh_once()
        await w.settle()
    assert w.described(array) >= 2


@pytest.mark.parametrize(("fields", "described"), [
    ({"container": {}}, True),  # a final state with nothing a failure summary or a link reads
    ({"container": {"exitCode": 3}}, False),
    ({"container": {"logStreamName": "task/default/1"}}, False),
    ({}, False),  # one attempt with its exit code and log stream (event()'s default below)
], ids=["bare", "exit-code", "log-stream", "attempts"])
async def test_a_final_event_without_its_details_is_completed_by_one_describe(
        world: World, fields: dict[str, Any], described: bool) -> None:
    job_id = world.aws.add_job("task", QUEUE, status="RUNNING")
    await world.track(job_id)
    before = world.described(job_id)
    world.engine.set_events_live(True)
    world.aws.update_job(job_id, status="FAILED")
    world.apply(event(job_id, "FAILED", T0 + 5, attempts=0 if fields else 1, **fields))
    await world.settle()
    assert world.job(job_id).status == "FAILED"
    assert world.described(job_id) - before == (1 if described else 0)
