"""Job records of the emulated Batch: what a submitted job is (`JobSpec`) and how far it got.

Array children are not objects: an `ArrayJob` keeps one status byte per index and a `Run` only for the
children that have been dispatched at least once, so 100,000 queued children cost ~100 KB, not 100k objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .capacity import Requirements

SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED, FAILED = range(7)
STATUS_NAMES: tuple[str, ...] = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
STATUS_CODES: dict[str, int] = {name: code for code, name in enumerate(STATUS_NAMES)}
TERMINAL: frozenset[int] = frozenset((SUCCEEDED, FAILED))
QUEUED: frozenset[int] = frozenset((SUBMITTED, PENDING, RUNNABLE))  # what CancelJob may act on

# statusReason texts AWS Batch uses.
REASON_EXITED = "Essential container in task exited"
REASON_TIMEOUT = "Job attempt duration exceeded timeout"
REASON_START_FAILED = "Task failed to start"
REASON_DEPENDENCY = "Dependent Job failed"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Everything resolved at SubmitJob time (definition + overrides); shared by an array's children."""

    account: str
    region: str
    job_name: str
    queue_name: str
    queue_arn: str
    ce_name: str
    jd_name: str
    jd_arn: str
    container: Mapping[str, Any]  # ContainerDetail as DescribeJobs shows it, before per-attempt fields
    command: tuple[str, ...]
    environment: tuple[tuple[str, str], ...]
    parameters: Mapping[str, str]
    max_attempts: int
    evaluate_on_exit: tuple[Mapping[str, str], ...]
    retry_strategy: Mapping[str, Any] | None
    timeout_seconds: int | None
    log_group: str
    log_region: str  # `awslogs-region`: CloudWatch Logs may live in another region than the job
    stream_prefix: str
    depends_on: tuple[Mapping[str, str], ...] = ()
    propagate_tags: bool = False
    platform_capabilities: tuple[str, ...] = ()
    share_identifier: str | None = None
    scheduling_priority: int | None = None
    # vCPU, memory (MiB) and GPUs, checked against the compute environment.
    needs: Requirements = field(default_factory=Requirements)


@dataclass(slots=True)
class Attempt:
    number: int  # 1-based, as AWS_BATCH_JOB_ATTEMPT
    task_id: str  # 32 hex: the ECS task id, last part of the log stream name (see `log_stream`)
    started_at: int  # epoch ms
    stopped_at: int | None = None
    exit_code: int | None = None
    reason: str | None = None
    status_reason: str | None = None


@dataclass(slots=True)
class Run:
    """Execution record of a single job or of one array child."""

    attempts: list[Attempt] = field(default_factory=list)
    status_reason: str | None = None
    started_at: int | None = None
    stopped_at: int | None = None
    cancelled: bool = False
    terminated: bool = False
    kill_reason: str | None = None  # TerminateJob while STARTING/RUNNING: the attempt ends FAILED with it
    epoch: int = 0  # bumped per dispatch so stale timers of an earlier attempt do nothing


@dataclass(slots=True, eq=False)
class Job:
    job_id: str
    seq: int  # submission order, the ListJobs sort key
    spec: JobSpec
    created_at: int
    tags: dict[str, str]
    status: int = SUBMITTED
    status_reason: str | None = None
    started_at: int | None = None
    stopped_at: int | None = None
    cancelled: bool = False
    terminated: bool = False
    # Why it can never be placed (resources beyond the compute environment): it stays RUNNABLE with this reason.
    unfit: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:batch:{self.spec.region}:{self.spec.account}:job/{self.job_id}"


@dataclass(slots=True, eq=False)
class SingleJob(Job):
    run: Run = field(default_factory=Run)


@dataclass(slots=True, eq=False)
class ArrayJob(Job):
    size: int = 0
    child_status: bytearray = field(default_factory=bytearray)
    counts: list[int] = field(default_factory=lambda: [0] * len(STATUS_NAMES))
    runs: dict[int, Run] = field(default_factory=dict)  # only children dispatched at least once
    next_index: int = 0  # first-attempt dispatch cursor
    summary_updated_at: int = 0
    stop_reason: str | None = None  # Cancel/Terminate on the parent: it ends FAILED with this reason
    child_cancel_reason: str | None = None  # for children cancelled before their first dispatch
    child_cancel_at: int | None = None

    def set_child(self, index: int, status: int, now_ms: int) -> None:
        old = self.child_status[index]
        if old != status:
            self.counts[old] -= 1
            self.counts[status] += 1
            self.child_status[index] = status
            self.summary_updated_at = now_ms

    def all_terminal(self) -> bool:
        return self.counts[SUCCEEDED] + self.counts[FAILED] == self.size


def child_id(parent_id: str, index: int) -> str:
    return f"{parent_id}:{index}"


def log_stream(spec: JobSpec, attempt: Attempt) -> str:
    """AWS's `<prefix>/default/<ecs task id>` (never a `:`); derived, not stored, to keep attempts small."""
    return f"{spec.stream_prefix}/default/{attempt.task_id}"
