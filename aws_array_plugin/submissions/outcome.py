"""Where the submission of an attempt stands, as CreateTask, GetTask and DeleteTask are answered."""

from __future__ import annotations

from dataclasses import dataclass

from aws_array_plugin.submissions.journal import JournalRef
from aws_array_plugin.submissions.record import State, SubmissionRecord

WAITING_FOR_SLOT = "waiting for a SubmitJob slot"
HANDLED_ELSEWHERE = "submission handled by another replica"


@dataclass
class Waiting:
    """Not submitted yet."""

    position: int | None
    detail: str
    # Where the claim is while the attempt has no record yet: the resource meta keeps it.
    journal: JournalRef | None = None


@dataclass
class Submitted:
    job_ids: list[str]


@dataclass
class Refused:
    """AWS rejected the submission (or the task was cancelled before it was submitted)."""

    message: str
    # True when a new attempt may well succeed (the record vanished), False for a definite refusal.
    retryable: bool = False


Resolution = Waiting | Submitted | Refused


def waiting(position: int | None, where: str = "", journal: JournalRef | None = None) -> Waiting:
    """Waiting for a SubmitJob slot; `where` says whose (" on replica x") or how (" (taken over)")."""
    return Waiting(position, WAITING_FOR_SLOT + where, journal)


def outcome_of(record: SubmissionRecord) -> Resolution | None:
    """The final outcome a record holds; None while it is pending."""
    if record.state is State.SUBMITTED:
        return Submitted([str(i) for i in record.job_ids])
    if record.state in (State.FAILED, State.CANCELLED):
        return Refused(record.message or record.state.value)
    return None
