"""The exactly-once submission protocol on FakeAws: the real S3Store, journal, records and workers, no server, no
emulator, a fake wall clock. Each test names the situation and what must hold: one SubmitJob per attempt, a
cancelled attempt never submitted (or its job terminated), outcomes kept in the record for every replica."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from aws_array_plugin.aws_calls import AwsRequestError, AwsUnavailable
from aws_array_plugin.config import load_config
from aws_array_plugin.job_definitions import JobDefinitions
from aws_array_plugin.job_requests import JobDefinition
from aws_array_plugin.metrics import Metrics
from aws_array_plugin.storage import S3Store
from aws_array_plugin.submissions import JournalRef, Refused, Resolution, Submissions, Submitted, Waiting, record_uri
from aws_array_plugin.submissions.queue import Line
from aws_array_plugin.submissions.record import State, SubmissionRecord, decode, encode
from aws_array_plugin.testing import Call, FakeAws, FakeClock, Proceed

QUEUE = "default"
CLAIM_TIMEOUT = 30.0
MARGIN = 10.0  # min(10 s, claimTimeout / 3)
DEFINITION = JobDefinition("flyte-app-0123abcd", {"jobDefinitionName": "flyte-app-0123abcd", "type": "container",
                                                  "containerProperties": {"image": "ghcr.io/example/app:v1"}})
REASON = "Aborted by Flyte (flytesnacks/development/e1)"


def submissions(aws: FakeAws, clock: FakeClock, **submission: Any) -> Submissions:
    config = load_config({"defaultQueue": QUEUE, "submission": {"createWait": "2s", "claimTimeout": "30s",
                                                                 "workers": 1, **submission}})
    metrics = Metrics()
    return Submissions(aws, S3Store(aws), config, metrics, JobDefinitions(aws, metrics), clock=clock, retry_pause=0)


@contextlib.asynccontextmanager
async def replica(aws: FakeAws, clock: FakeClock, *, start: bool = True, **submission: Any) -> AsyncIterator[Submissions]:
    subs = submissions(aws, clock, **submission)
    if start:
        subs.start()
    try:
        yield subs
    finally:
        await subs.stop()


class Task:
    def __init__(self, name: str) -> None:
        self.name = name
        self.prefix = f"s3://flyte-data/metadata/{name}"
        self.requests = [{"jobName": name, "jobQueue": QUEUE, "jobDefinition": DEFINITION.name}]

    async def submit(self, subs: Submissions) -> Resolution:
        return await subs.submit(self.prefix, self.requests, "aws-batch", definition=DEFINITION)

    def record(self, aws: FakeAws) -> SubmissionRecord:
        data = aws.get(record_uri(self.prefix))
        assert data is not None, "no submission record"
        record = decode(data)
        assert record is not None
        return record


async def until(condition: Callable[[], bool], what: str) -> None:
    """Lets the workers run until `condition` holds (FakeAws answers within a few loop turns)."""
    for _ in range(2_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


async def settled(subs: Submissions, task: Task, journal: JournalRef | None = None) -> Resolution:
    for _ in range(2_000):
        outcome = await subs.resolve(task.prefix, journal=journal)
        if not isinstance(outcome, Waiting):
            return outcome
        await asyncio.sleep(0)
    raise AssertionError(f"{task.name} still waiting: {outcome}")


def journal_writes(aws: FakeAws) -> list[dict[str, Any]]:
    return [p for p in aws.sent("put_object") if "/journal-" in p["Key"]]


def is_record(params: dict[str, Any]) -> bool:
    return str(params["Key"]).endswith("/submission.json")


# -- one replica -----------------------------------------------------------------------------------------------

async def test_a_claim_is_journaled_then_recorded_and_submitted_once() -> None:
    aws, clock, task = FakeAws(), FakeClock(), Task("one")
    async with replica(aws, clock) as subs:
        outcome = await task.submit(subs)
    (sub,) = aws.sent("submit_job")
    assert outcome == Submitted([aws.jobs_named("one")[0]["jobId"]])
    assert sub["jobDefinition"].endswith(f"job-definition/{DEFINITION.name}:1")  # the ARN, put in by the worker
    assert len(journal_writes(aws)) == 1 and len(aws.sent("register_job_definition")) == 1
    record = task.record(aws)
    assert record.state is State.SUBMITTED and record.job_ids == outcome.job_ids
    assert [bool(p.get("IfNoneMatch")) for p in aws.sent("put_object") if is_record(p)] == [True, False]


async def test_a_repeated_submit_on_the_same_replica_gets_the_same_answer_without_a_second_claim() -> None:
    aws, clock, task = FakeAws(), FakeClock(), Task("again")
    async with replica(aws, clock, start=False, createWait="0s") as subs:
        first = await task.submit(subs)
        second = await task.submit(subs)
        assert isinstance(first, Waiting) and first == second and first.journal is not None
        subs.start()
        done = await settled(subs, task)
        assert await task.submit(subs) == done
    assert len(journal_writes(aws)) == 1 and len(aws.sent("submit_job")) == 1


async def test_two_replicas_claiming_one_attempt_at_once_submit_it_once_and_both_answer_its_job() -> None:
    aws, clock, task = FakeAws(), FakeClock(), Task("twice")
    async with replica(aws, clock) as a, replica(aws, clock) as b:
        answers = await asyncio.gather(task.submit(a), task.submit(b))
        assert len(journal_writes(aws)) == 2  # each replica journals a claim of its own
        assert {type(x) for x in answers} <= {Submitted, Waiting}
        assert await settled(a, task) == await settled(b, task) == Submitted([aws.jobs_named("twice")[0]["jobId"]])
    assert len(aws.sent("submit_job")) == 1


async def test_a_second_replica_claiming_a_submitted_attempt_follows_its_record() -> None:
    aws, clock, task = FakeAws(), FakeClock(), Task("later")
    async with replica(aws, clock) as a, replica(aws, clock) as b:
        first = await task.submit(a)
        assert await task.submit(b) == first  # b's conditional create failed before any SubmitJob
    assert len(aws.sent("submit_job")) == 1 and len(aws.sent("describe_job_definitions")) == 1


# -- takeover --------------------------------------------------------------------------------------------------

async def test_a_takeover_after_the_claim_expired_finds_the_job_the_dead_owner_submitted() -> None:
    aws, clock, task = FakeAws(), FakeClock(), Task("orphan")
    dead = asyncio.Event()  # never set: the owner hangs once its SubmitJob reached AWS

    async def submit_then_die(call: Call, proceed: Proceed) -> dict[str, Any]:
        await proceed()
        await dead.wait()
        raise AssertionError("unreachable")

    aws.intercept("submit_job", submit_then_die, times=1)
    async with replica(aws, clock, createWait="0s") as owner, replica(aws, clock) as other:
        await task.submit(owner)
        await until(lambda: len(aws.jobs_named("orphan")) == 1, "the owner's job created")
        held = await other.resolve(task.prefix)  # the claim still holds
        assert isinstance(held, Waiting) and held.detail.endswith(f"on replica {owner.replica}")
        clock.advance(CLAIM_TIMEOUT + 1)
        taken = await other.resolve(task.prefix)
        assert isinstance(taken, Waiting) and taken.detail.endswith("(taken over)")
        assert await settled(other, task) == Submitted([aws.jobs_named("orphan")[0]["jobId"]])
    assert len(aws.sent("submit_job")) == 1 and len(aws.sent("list_jobs")) == 1
    assert task.record(aws).claimed_by == other.replica


async def test_a_claim_left_only_in_a_dead_replicas_journal_is_taken_over_and_submitted_once() -> None:
    aws, clock, task = FakeAws(), FakeClock(), Task("journal-only")
    dead = submissions(aws, clock, createWait="0s")  # never started, never stopped: it just went away
    waiting = await task.submit(dead)
    assert isinstance(waiting, Waiting) and waiting.journal is not None
    async with replica(aws, clock) as other:
        clock.advance(CLAIM_TIMEOUT + 1)
        assert aws.get(record_uri(task.prefix)) is None  # SubmitJob comes after the record: none yet
        assert await settled(other, task, waiting.journal) == Submitted([aws.jobs_named("journal-only")[0]["jobId"]])
    assert len(aws.sent("submit_job")) == 1


async def test_stop_hands_a_queued_claim_over_at_once() -> None:
    aws, clock, task = FakeAws(), FakeClock(), Task("handover")
    async with replica(aws, clock, start=False, createWait="0s") as leaving:
        waiting = await task.submit(leaving)
    assert task.record(aws).claimed_until == 0
    async with replica(aws, clock) as other:
        assert isinstance(waiting, Waiting)
        assert await settled(other, task, waiting.journal) == Submitted([aws.jobs_named("handover")[0]["jobId"]])
    assert len(aws.sent("submit_job")) == 1


# -- cancel ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["on the owner", "on another replica"])
async def test_a_task_cancelled_before_its_submission_is_never_submitted(where: str) -> None:
    aws, clock, task = FakeAws(), FakeClock(), Task("cancel-early")
    async with replica(aws, clock, start=False, createWait="0s") as owner, replica(aws, clock) as other:
        waiting = await task.submit(owner)
        assert isinstance(waiting, Waiting)
        canceller = owner if where == "on the owner" else other
        assert await canceller.cancel(task.prefix, REASON, waiting.journal) == []
        owner.start()
        await until(lambda: owner.backlog == 0, "the owner settled its claim")
        assert await owner.resolve(task.prefix) == await other.resolve(task.prefix) == Refused(REASON)
    assert aws.sent("submit_job") == [] and task.record(aws).state is State.CANCELLED


@pytest.mark.parametrize("where", ["on the owner", "on another replica"])
async def test_a_cancel_between_the_record_and_submit_job_terminates_the_job_and_ends_cancelled(where: str) -> None:
    aws, clock, task = FakeAws(), FakeClock(), Task("cancel-race")
    held = aws.pause("submit_job")
    async with replica(aws, clock) as owner, replica(aws, clock) as other:
        creating = asyncio.create_task(task.submit(owner))
        await held.reached.wait()  # the record was created, SubmitJob is on its way
        assert task.record(aws).state is State.PENDING
        canceller = owner if where == "on the owner" else other
        assert await canceller.cancel(task.prefix, REASON) == []  # no job yet
        held.release()
        assert await creating == Refused(REASON)
    (job,) = aws.jobs_named("cancel-race")
    assert aws.sent("terminate_job") == [{"jobId": job["jobId"], "reason": REASON}]
    assert job["status"] == "FAILED" and job["statusReason"] == REASON
    record = task.record(aws)
    assert record.state is State.CANCELLED and record.job_ids == [job["jobId"]]


async def test_a_cancel_between_submit_job_and_the_final_record_terminates_the_job_and_ends_cancelled() -> None:
    aws, clock, task = FakeAws(), FakeClock(), Task("cancel-late")
    held = aws.pause("put_object", when=lambda p: is_record(p) and b'"state":"submitted"' in p["Body"])
    async with replica(aws, clock) as owner, replica(aws, clock) as other:
        creating = asyncio.create_task(task.submit(owner))
        await held.reached.wait()  # the job exists, its id is not recorded yet
        (job,) = aws.jobs_named("cancel-late")
        assert await other.cancel(task.prefix, REASON) == [job["jobId"]]  # found by name, for DeleteTask to terminate
        held.release()
        assert await creating == Refused(REASON)
    assert {p["jobId"] for p in aws.sent("terminate_job")} == {job["jobId"]}
    record = task.record(aws)
    assert record.state is State.CANCELLED and record.job_ids == [job["jobId"]]
    assert len(aws.sent("submit_job")) == 1


# -- conflicts and refusals ------------------------------------------------------------------------------------

async def test_a_final_record_write_that_loses_to_another_writer_is_written_again_on_the_new_etag() -> None:
    aws, clock, task = FakeAws(), FakeClock(), Task("conflict")

    async def renewed_meanwhile(call: Call, proceed: Proceed) -> dict[str, Any]:
        current = json.loads(aws.get(record_uri(task.prefix)) or b"{}")
        aws.put(record_uri(task.prefix), json.dumps({**current, "claimedUntil": clock() + 99}).encode())
        return await proceed()

    aws.intercept("put_object", renewed_meanwhile, times=1,
                  when=lambda p: is_record(p) and b'"state":"submitted"' in p["Body"])
    async with replica(aws, clock) as subs:
        outcome = await task.submit(subs)
    final_writes = [p for p in aws.sent("put_object") if is_record(p) and b'"state":"submitted"' in p["Body"]]
    assert len(final_writes) == 2 and final_writes[0]["IfMatch"] != final_writes[1]["IfMatch"]
    assert outcome == Submitted([aws.jobs_named("conflict")[0]["jobId"]]) and task.record(aws).state is State.SUBMITTED
    assert len(aws.sent("submit_job")) == 1


async def test_a_submit_job_aws_rejects_is_refused_for_good_in_the_record_and_every_replica_answers_the_same() -> None:
    aws, clock, task = FakeAws(), FakeClock(), Task("rejected")
    aws.fail("submit_job", AwsRequestError("submit_job", "ClientException", "Job queue default is disabled", 400))
    refusal = Refused("AWS Batch rejected the job: ClientException: Job queue default is disabled")
    async with replica(aws, clock) as a, replica(aws, clock) as b:
        assert await task.submit(a) == refusal
        assert await b.resolve(task.prefix) == refusal
        assert await task.submit(b) == refusal
    record = task.record(aws)
    assert record.state is State.FAILED and record.message == refusal.message
    assert len(aws.sent("submit_job")) == 1


async def test_a_job_definition_aws_rejects_fails_the_task_and_submits_nothing() -> None:
    aws, clock, task = FakeAws(), FakeClock(), Task("bad-definition")
    aws.fail("register_job_definition", AwsRequestError("register_job_definition", "ClientException",
                                                        "tag value too long", 400))
    async with replica(aws, clock) as subs:
        outcome = await task.submit(subs)
    assert outcome == Refused("AWS Batch rejected the job definition: ClientException: tag value too long")
    assert aws.sent("submit_job") == [] and task.record(aws).state is State.FAILED


async def test_a_journal_write_failure_fails_every_create_task_of_that_write_and_submits_none() -> None:
    aws, clock = FakeAws(), FakeClock()
    failing = [Task(f"unwritten-{i}") for i in range(3)]
    aws.fail("put_object", AwsUnavailable("put_object", "server_error", "InternalError"),
             when=lambda p: "/journal-" in p["Key"])
    async with replica(aws, clock) as subs:
        answers = await asyncio.gather(*(t.submit(subs) for t in failing), return_exceptions=True)
        assert all(isinstance(a, AwsUnavailable) for a in answers), answers
        assert len(journal_writes(aws)) == 1 and subs.backlog == 0  # one write held all three claims
        assert isinstance(await Task("written").submit(subs), Submitted)
    assert [p["jobName"] for p in aws.sent("submit_job")] == ["written"]


async def test_a_submit_job_whose_answer_was_lost_is_found_by_name_not_submitted_again() -> None:
    aws, clock, task = FakeAws(), FakeClock(), Task("lost-answer")
    aws.fail("submit_job", AwsUnavailable("submit_job", "timeout", "ReadTimeoutError"), landed=True)
    async with replica(aws, clock) as subs:
        outcome = await task.submit(subs)
    assert outcome == Submitted([aws.jobs_named("lost-answer")[0]["jobId"]])
    assert len(aws.sent("submit_job")) == 1 and len(aws.sent("list_jobs")) == 1


@pytest.mark.parametrize("content", [b"{not json", b'{"state": "submitted"}', b"[]"], ids=["corrupt", "foreign", "list"])
async def test_a_record_that_does_not_decode_is_treated_as_missing(content: bytes) -> None:
    aws, clock, task = FakeAws(), FakeClock(), Task("corrupt")
    aws.put(record_uri(task.prefix), content)
    async with replica(aws, clock) as subs:
        outcome = await subs.resolve(task.prefix)
        assert isinstance(outcome, Refused) and outcome.retryable and "is missing" in outcome.message
        assert await subs.cancel(task.prefix, REASON) == []
    assert aws.get(record_uri(task.prefix)) == content


async def test_a_journal_that_does_not_decode_is_treated_as_missing() -> None:
    aws, clock, task = FakeAws(), FakeClock(), Task("corrupt-journal")
    aws.put("s3://flyte-data/metadata/corrupt-journal/_aws_array_plugin/journal-x.json", b'{"entries": 3}')
    ref = JournalRef("s3://flyte-data/metadata/corrupt-journal/_aws_array_plugin/journal-x.json", 0)
    async with replica(aws, clock) as subs:
        outcome = await subs.resolve(task.prefix, journal=ref)
    assert isinstance(outcome, Refused) and outcome.retryable


# -- the claim's margin ----------------------------------------------------------------------------------------

async def test_no_submit_job_starts_within_the_margin_of_the_claims_expiry() -> None:
    """The definition lookup takes most of the claim's time: the SubmitJob that would follow is not sent; the
    worker renews the claim and submits once, with the margin to spare."""
    aws, clock, task = FakeAws(), FakeClock(), Task("margin")
    left_at_submit: list[float] = []

    async def slow_lookup(call: Call, proceed: Proceed) -> dict[str, Any]:
        clock.advance(CLAIM_TIMEOUT - MARGIN / 2)
        return await proceed()

    async def note_claim(call: Call, proceed: Proceed) -> dict[str, Any]:
        left_at_submit.append(task.record(aws).claimed_until - clock())
        return await proceed()

    aws.intercept("describe_job_definitions", slow_lookup, times=1)
    aws.intercept("submit_job", note_claim)
    async with replica(aws, clock) as subs:
        outcome = await task.submit(subs)
    assert [c.operation for c in aws.paced] == ["submit_job"]  # held back, never sent
    assert len(left_at_submit) == 1 and left_at_submit[0] >= MARGIN
    assert outcome == Submitted([aws.jobs_named("margin")[0]["jobId"]])


# -- positions -------------------------------------------------------------------------------------------------

async def test_queued_tasks_report_their_place_in_line_which_closes_up_when_one_leaves() -> None:
    aws, clock = FakeAws(), FakeClock()
    tasks = [Task(f"line-{i}") for i in range(5)]
    async with replica(aws, clock, start=False, createWait="0s") as subs:
        answers = [await t.submit(subs) for t in tasks]
        assert [a.position for a in answers if isinstance(a, Waiting)] == [1, 2, 3, 4, 5]

        async def positions() -> list[int | None]:
            return [r.position if isinstance(r := await subs.resolve(t.prefix), Waiting) else None for t in tasks]

        await subs.cancel(tasks[2].prefix, REASON)  # mid-line
        assert await positions() == [1, 2, None, 3, 4]
        held = aws.pause("submit_job")
        subs.start()
        await held.reached.wait()
        assert await positions() == [0, 1, None, 2, 3]  # the head is being submitted
        held.release()
        await until(lambda: subs.backlog == 0, "the line worked off")
    assert [p["jobName"] for p in aws.sent("submit_job")] == ["line-0", "line-1", "line-3", "line-4"]


def test_the_line_keeps_positions_exact_however_items_leave_or_return_to_the_front() -> None:
    rng = random.Random(14)
    line: Line[int] = Line()
    model: list[int] = []
    for step in range(3_000):
        op = rng.random()
        if op < 0.45:
            line.append(step)
            model.append(step)
        elif op < 0.55 and model:
            item = model.pop(0)
            assert line.pop() == item
            line.push_front(item)
            model.insert(0, item)
        elif op < 0.75 and model:
            assert line.pop() == model.pop(0)
        elif model:
            item = rng.choice(model)
            line.remove(item)
            model.remove(item)
        assert len(line) == len(model) and list(line) == model
        for item in rng.sample(model, min(3, len(model))):
            assert line.position(item) == model.index(item) + 1
    assert line.pop() == (model[0] if model else None)


# -- the record's JSON -----------------------------------------------------------------------------------------

OLD_RECORD: dict[str, Any] = {  # as the dict-based code wrote it (json.dumps, sort_keys)
    "claimedBy": "pod-1-abc123", "claimedUntil": 1700000061.25, "createdAt": 1700000000.5,
    "jobDefinition": DEFINITION.body, "jobIds": ["7f1e"], "jobNames": ["one"],
    "requests": [{"jobName": "one", "jobQueue": QUEUE, "jobDefinition": DEFINITION.name,
                  "containerOverrides": {"environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]}}],
    "state": "submitted", "taskType": "aws-batch", "version": 1,
}


def test_a_record_written_by_the_dict_code_decodes_and_encodes_to_the_same_keys_in_the_same_order() -> None:
    old = json.dumps(OLD_RECORD, sort_keys=True).encode()
    record = decode(old)
    assert record is not None and record.state is State.SUBMITTED and record.job_ids == ["7f1e"]
    expected = {k: v for k, v in OLD_RECORD.items() if k != "jobNames"}  # written, never read: gone
    # The same bytes but for the blanks json.dumps puts after separators (and non-ASCII, kept as UTF-8).
    assert encode(record) == json.dumps(expected, sort_keys=True, separators=(",", ":")).encode()
    assert decode(encode(record)) == record


def test_a_record_without_its_job_definition_does_not_decode() -> None:
    unreleased = {k: v for k, v in OLD_RECORD.items() if k != "jobDefinition"}  # the ARN was in its requests
    assert decode(json.dumps(unreleased).encode()) is None
