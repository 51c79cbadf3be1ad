"""Restart/replica safety and AWS faults, end to end: several `aws-array-plugin serve` processes on one emulated
AWS (a subprocess), driven like propeller drives them (each call to the next pod, CreateTask retried after an
error, GetTask polled until the task is terminal).

- replicas: a burst of CreateTasks over 3 replicas, some repeated on another replica, one replica SIGKILLed in
  the middle of the burst (its accepted but unsubmitted submissions are taken over), some tasks deleted;
- throttling: half of all AWS Batch calls throttled for a minute;
- 5xx bursts: every AWS Batch call answered ServerException for 3 s, several times;
- emulator restart: the whole AWS endpoint refuses connections for 5 s mid-run.

Every scenario asserts: no GetTask answered with a gRPC error, every accepted task reaches its right final phase,
and no duplicate AWS job (each deterministic job name exists once, and the emulator processed exactly one
SubmitJob per job); deleted tasks end with their job terminated and nothing submitted for them afterwards.
Three focused tests pin the situations behind those guarantees down deterministically: a SubmitJob whose job id
cannot be written to the submission record, SubmitJob retries that must stop before the claim could be taken over,
and DeleteTask on another replica than the submission's owner.
Outcome counts are printed (`pytest -s`) for the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2

from aws_array_plugin.resource_meta import decode
from aws_array_plugin_demo.metrics import metric_sum
from aws_array_plugin_demo.propeller import TERMINAL, shell
from aws_batch_emulator.process import EmulatorProcess
from tests.replicas import Propeller, Replica, batch_operations, start_emulator, start_replicas
from tests.support import int_outputs, wait_until
from tests.templates import create_request, literal_map, task_template

# Several server and emulator processes per scenario, and waits of up to a minute.
pytestmark = pytest.mark.slow

Phase = execution_pb2.TaskExecution
# Order of progress, to spot an answer that goes back (e.g. RUNNING, then QUEUED).
RANK = {Phase.UNDEFINED: 0, Phase.QUEUED: 1, Phase.WAITING_FOR_RESOURCES: 1, Phase.INITIALIZING: 2,
        Phase.RUNNING: 3, **dict.fromkeys(TERMINAL, 4)}

CONFIG: dict[str, Any] = {
    "region": "us-east-1",
    "defaultQueue": "default",
    "allowedRoles": ["*"],
    # A low SubmitJob rate, so a backlog of accepted but unsubmitted tasks builds up in each replica.
    "rateLimits": {"submit": {"rate": 10, "burst": 2}},
    "submission": {"claimTimeout": "3s", "createWait": "0.1s"},
    "status": {"refreshInterval": "1s", "maxStaleness": "0.5s", "batchWindow": "0.01s", "answerTimeout": "1s"},
    "server": {"gracePeriod": "2s"},
}


# -- tasks ---------------------------------------------------------------------------------------------------

@dataclass
class Task:
    key: str
    task_type: str
    request: agent_pb2.CreateTaskRequest
    expect: int
    size: int = 0
    delete: str = ""  # "early": right after CreateTask; "running": once it runs
    repeat: bool = False  # CreateTask sent again to another replica
    meta: bytes | None = None
    created_on: Replica | None = None
    create_failures: int = 0
    phases: list[int] = field(default_factory=list)
    final: agent_pb2.Resource | None = None
    deleted_at_ms: int | None = None
    regressions: int = 0  # answers behind the previous one (any replica)
    regressed: list[str] = field(default_factory=list)
    own_regressions: int = 0  # answers behind the previous answer of the same replica
    last_by_replica: dict[str, int] = field(default_factory=dict)
    stale_answers: int = 0

    @property
    def output_prefix(self) -> str:
        return str(self.request.output_prefix)

    @property
    def job_name(self) -> str:
        assert self.meta is not None
        return str(decode(self.meta).job_name)

    @property
    def open(self) -> bool:
        """Propeller still polls it."""
        return self.meta is not None and self.final is None and self.deleted_at_ms is None

    def record(self, resource: agent_pb2.Resource, replica: str) -> None:
        rank = RANK.get(resource.phase, 0)
        if self.phases and rank < RANK.get(self.phases[-1], 0):
            self.regressions += 1
            own = replica in self.last_by_replica and rank < RANK.get(self.last_by_replica[replica], 0)
            self.own_regressions += own
            self.regressed.append(f"{phase_name(self.phases[-1])} -> {phase_name(resource.phase)} "
                                  f"({replica}{', its own last answer was later' if own else ''}): "
                                  f"{resource.message[:200]}")
        self.last_by_replica[replica] = resource.phase
        if not self.phases or self.phases[-1] != resource.phase:
            self.phases.append(resource.phase)
        if "stale" in resource.message or "not available" in resource.message:
            self.stale_answers += 1
        if resource.phase in TERMINAL:
            self.final = resource


def phase_name(phase: int) -> str:
    return str(execution_pb2.TaskExecution.Phase.Name(phase))


def single(run: str, i: int, ok: bool, seconds: float = 0.3, **kw: Any) -> Task:
    script = f"sleep {seconds}" if ok else f"sleep {seconds}; exit 3"
    req = shell(create_request(task_template("awsbatch_minimal_task"), execution=f"{run}-{i:03d}",
                                inputs=literal_map({"x": i}, {"x": int})), script)
    return Task(f"{run}-{i:03d}", "aws-batch", req, Phase.SUCCEEDED if ok else Phase.FAILED, **kw)


def array(run: str, i: int, ok: bool, size: int = 3, seconds: float = 0.2, **kw: Any) -> Task:
    script = f"sleep {seconds}" if ok else "exit 3"
    req = shell(create_request(task_template("square_legacy_map"), execution=f"{run}-{i:03d}",
                                inputs=literal_map({"x": list(range(size))}, {"x": list[int]})), script)
    return Task(f"{run}-{i:03d}", "container_array", req, Phase.SUCCEEDED if ok else Phase.FAILED, size, **kw)


def put_outputs(emulator_process: EmulatorProcess, tasks: list[Task]) -> None:
    """What flytekit would write for the tasks meant to succeed (a SUCCEEDED job without them is retryable)."""
    for t in tasks:
        if t.expect == Phase.SUCCEEDED:
            for child in range(max(t.size, 1)):
                emulator_process.put(f"{t.output_prefix}/{child}/outputs.pb", int_outputs(o0=child))


def mixed(run: str, n: int) -> list[Task]:
    """n tasks, a fifth of them failing on purpose: singles running 1-4 s, arrays of 2 children of 0.5-2 s."""
    tasks = []
    for i in range(n):
        kind = i % 10
        if kind < 5:
            tasks.append(single(run, i, ok=kind != 0, seconds=1 + i % 4))
        else:
            tasks.append(array(run, i, ok=kind != 5, size=2, seconds=0.5 + i % 4 / 2))
    return tasks


# -- driving -------------------------------------------------------------------------------------------------

async def poll_until_done(propeller: Propeller, tasks: list[Task], deadline: float, *, creating: asyncio.Event,
                          interval: float = 0.5,
                          on_answer: Callable[[Task, agent_pb2.Resource], Awaitable[None]] | None = None) -> None:
    """GetTask every open task once per round (each call to the next replica) until all are terminal and no
    more are being created."""
    limit = asyncio.Semaphore(24)

    async def one(t: Task) -> None:
        assert t.meta is not None
        async with limit:
            resource, replica = await propeller.get(t.meta, t.task_type)
        if resource is not None and t.open:
            t.record(resource, replica.name)
            if on_answer is not None:
                await on_answer(t, resource)

    while True:
        open_tasks = [t for t in tasks if t.open]
        if not open_tasks and creating.is_set():
            return
        if time.monotonic() > deadline:
            stuck = {t.key: (t.phases, t.final) for t in open_tasks[:10]}
            raise AssertionError(f"{len(open_tasks)} tasks not terminal in time, e.g. {stuck}")
        await asyncio.gather(*(one(t) for t in open_tasks))
        await asyncio.sleep(interval)


@dataclass
class Outcome:
    tasks: int
    accepted: int
    jobs: int
    submit_calls: int
    duplicates: dict[str, int]
    wrong_phase: list[tuple[str, str, str]]  # (task, expected, what it ended with)
    get_errors: Counter[str]
    create_errors: Counter[str]
    regressions: int
    own_regressions: int
    stale_answers: int
    takeovers: int
    throttled_calls: float
    server_error_calls: float
    seconds: float
    job_names: set[str] = field(default_factory=set)

    def report(self, scenario: str, tasks: list[Task], **extra: Any) -> None:
        """One line of counts (run with -s to see it), then the phase regressions seen."""
        fields = {k: v for k, v in vars(self).items() if k not in ("duplicates", "wrong_phase", "job_names")}
        print(f"\n[{scenario}] duplicates={len(self.duplicates)} wrong_phase={len(self.wrong_phase)} "
              + " ".join(f"{k}={v}" for k, v in {**fields, **extra}.items()))
        for line in [f"{t.key}: {r}" for t in tasks for r in t.regressed][:8]:
            print("  regression", line)

    def assert_sound(self, tasks: list[Task]) -> None:
        assert not self.get_errors, f"GetTask answered gRPC errors: {self.get_errors}"
        assert self.accepted == self.tasks
        assert not self.wrong_phase, f"tasks in the wrong final phase: {self.wrong_phase[:10]}"
        assert not self.duplicates, f"duplicate AWS jobs: {self.duplicates}"
        names = {t.job_name for t in tasks if not t.delete}
        assert names <= self.job_names, f"jobs never submitted: {sorted(names - self.job_names)[:5]}"
        assert self.submit_calls == self.jobs, f"{self.submit_calls} SubmitJob calls created {self.jobs} jobs"


def outcome(emulator_process: EmulatorProcess, run: str, tasks: list[Task], propeller: Propeller, replicas: list[Replica],
            started: float) -> Outcome:
    jobs = emulator_process.jobs_named(run)
    per_name = Counter(j["jobName"] for j in jobs)
    wrong = [(t.key, phase_name(t.expect), f"{phase_name(t.final.phase)}: {t.final.message[:300]}" if t.final else "none")
             for t in tasks if not t.delete and (t.final is None or t.final.phase != t.expect)]
    metrics = [r.metrics() for r in replicas if r.alive]
    result = Outcome(
        tasks=len(tasks),
        accepted=sum(t.meta is not None for t in tasks),
        jobs=len(jobs),
        submit_calls=emulator_process.answered("SubmitJob"),
        duplicates={n: c for n, c in per_name.items() if c > 1},
        wrong_phase=wrong,
        get_errors=propeller.calls.error_codes("GetTask"),
        create_errors=propeller.calls.error_codes("CreateTask"),
        regressions=sum(t.regressions for t in tasks),
        own_regressions=sum(t.own_regressions for t in tasks),
        stale_answers=sum(t.stale_answers for t in tasks),
        takeovers=sum(r.log_text().count("took over abandoned submission") for r in replicas),
        throttled_calls=sum(metric_sum(m, "aws_array_plugin_aws_calls_total", outcome="throttled") for m in metrics),
        server_error_calls=sum(metric_sum(m, "aws_array_plugin_aws_calls_total", outcome="server_error")
                               for m in metrics),
        seconds=round(time.monotonic() - started, 1),
        job_names=set(per_name),
    )
    return result


async def run_with_faults(emulator_process: EmulatorProcess, tmp: Path, run: str, tasks: list[Task], *, replicas: int,
                          gap: float, faults: Callable[[Propeller], Coroutine[Any, Any, float]], timeout: float = 150
                          ) -> tuple[Outcome, float]:
    """Create the tasks one every `gap` s (each retried like propeller until accepted) and poll them all until
    terminal, while `faults(propeller)` runs; it clears its faults and returns when (time.monotonic()) it did.
    Returns the outcome and the drain time: seconds from the faults' end to the last task terminal (0 if before)."""
    await asyncio.to_thread(put_outputs, emulator_process, tasks)
    async with cluster(emulator_process, tmp, replicas) as propeller:
        started = time.monotonic()
        deadline = started + timeout
        creating = asyncio.Event()

        async def create_all() -> None:
            for t in tasks:
                t.meta, t.created_on, t.create_failures = await propeller.create_until_accepted(t.request, deadline)
                await asyncio.sleep(gap)
            creating.set()

        plan = asyncio.create_task(faults(propeller))
        try:
            await asyncio.gather(create_all(), poll_until_done(propeller, tasks, deadline, creating=creating))
            all_done = time.monotonic()
            cleared = await asyncio.wait_for(plan, max(1.0, deadline - time.monotonic()))
        finally:
            plan.cancel()
            await asyncio.to_thread(emulator_process.wait_up, 30)
            emulator_process.clear_faults()
        result = outcome(emulator_process, run, tasks, propeller, propeller.replicas, started)
    return result, round(max(0.0, all_done - cleared), 1)


def submit_rates(propeller: Propeller) -> list[float]:
    """Each live replica's current SubmitJob rate (calls/s) after AIMD back-off."""
    return [round(metric_sum(r.metrics(), "aws_array_plugin_aws_rate_limit", call_class="submit"), 2)
            for r in propeller.live()]


# -- deleted tasks -------------------------------------------------------------------------------------------

@dataclass
class Deleted:
    tasks: int
    jobs: int  # of the deleted tasks' jobs that exist (each was terminated or cancelled)
    late: list[str]  # jobs submitted over 1 s after their task's DeleteTask returned
    not_aborted: list[str]  # jobs of deleted tasks that did not end FAILED by the abort

    def assert_sound(self) -> None:
        assert not self.not_aborted, f"deleted tasks whose job was not terminated: {self.not_aborted}"
        assert not self.late, f"jobs submitted more than 1 s after their task was deleted: {self.late}"


async def settle_deleted(emulator_process: EmulatorProcess, run: str, tasks: list[Task], deadline: float) -> Deleted:
    """Deleted tasks end with their job (if it was submitted) FAILED by the abort, and none is submitted after
    the DeleteTask: waits out the claim expiry of their submission records, then checks."""
    deleted = [t for t in tasks if t.delete]
    assert all(t.deleted_at_ms for t in deleted), [t.key for t in deleted if not t.deleted_at_ms]
    await asyncio.sleep(float(CONFIG["submission"]["claimTimeout"].rstrip("s")) * 2)
    names = {t.job_name: t for t in deleted}
    settle_by = min(deadline, time.monotonic() + 15)  # a terminated job is FAILED within a few status steps
    while True:
        jobs = [j for j in await asyncio.to_thread(emulator_process.jobs_named, run) if j["jobName"] in names]
        if all(j["status"] in ("SUCCEEDED", "FAILED") for j in jobs) or time.monotonic() > settle_by:
            break
        await asyncio.sleep(0.5)

    def where(j: dict[str, Any]) -> str:
        t = names[j["jobName"]]
        had_ids = bool(t.meta and decode(t.meta).job_ids)
        return (f"{t.key} ({t.delete} delete, created on {t.created_on.name if t.created_on else '?'}, "
                f"meta with job ids: {had_ids}, job created {j['createdAt'] - (t.deleted_at_ms or 0)} ms after "
                f"the DeleteTask, submission record {emulator_process.record(t.output_prefix)})")

    return Deleted(
        tasks=len(deleted),
        jobs=len(jobs),
        late=[where(j) for j in jobs if j["createdAt"] > (names[j["jobName"]].deleted_at_ms or 0) + 1000],
        not_aborted=[f"{where(j)}: {j['status']} {j.get('statusReason', '')}" for j in jobs
                     if j["status"] != "FAILED" or not str(j.get("statusReason", "")).startswith("Aborted by Flyte")],
    )


# -- fixtures ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def emulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """One emulated AWS process for the module; every scenario uses its own job names and resets the counters."""
    process = start_emulator(tmp_path_factory.mktemp("emulator"), "--step", "0.05", "--concurrency", "16")
    try:
        yield process
    finally:
        process.stop()


@contextlib.asynccontextmanager
async def cluster(emulator_process: EmulatorProcess, tmp: Path, n: int) -> Any:
    """`n` replicas and a propeller over them; SIGTERMed at the end (they must exit 0)."""
    emulator_process.clear_faults()
    replicas = await asyncio.to_thread(start_replicas, tmp, emulator_process, CONFIG, n)
    for replica in replicas:
        replica.connect()
    propeller = Propeller(replicas)
    emulator_process.reset_stats()
    try:
        yield propeller
    finally:
        await asyncio.to_thread(emulator_process.wait_up, 30)
        emulator_process.clear_faults()
        codes = {r.name: await r.close() for r in replicas}
    assert all(code in (0, None) for code in codes.values()), codes


def run_id(scenario: str) -> str:
    return f"{scenario}{uuid.uuid4().hex[:6]}"


# -- scenarios -----------------------------------------------------------------------------------------------

async def test_replicas_survive_a_sigkill_mid_burst_without_losing_or_duplicating_jobs(
        emulator_process: EmulatorProcess, tmp_path: Path) -> None:
    run = run_id("rep")
    tasks: list[Task] = []
    for i in range(150):
        kind = i % 15
        if kind in (13, 14):  # 20 long tasks, deleted: right after CreateTask, or once running
            delete = "early" if kind == 13 else "running"
            tasks.append(single(run, i, True, 60, delete=delete) if i % 2 else array(run, i, True, 2, 60, delete=delete))
        elif kind < 8:
            tasks.append(single(run, i, ok=kind != 0))
        else:
            tasks.append(array(run, i, ok=kind != 8, size=2 + i % 2))
    for t in tasks[3::10]:
        t.repeat = True
    await asyncio.to_thread(put_outputs, emulator_process, tasks)

    async with cluster(emulator_process, tmp_path, 3) as propeller:
        started = time.monotonic()
        deadline = started + 150
        victim = propeller.replicas[0]
        limit = asyncio.Semaphore(16)
        created = 0
        repeats: list[tuple[Task, bytes]] = []

        async def create(t: Task) -> None:
            nonlocal created
            async with limit:
                t.meta, t.created_on, t.create_failures = await propeller.create_until_accepted(t.request, deadline)
            created += 1
            if created == len(tasks) // 2:
                victim.kill()  # in the middle of the burst: creates in flight to it fail, its backlog is orphaned
            if t.repeat:
                again, _, _ = await propeller.create_until_accepted(
                    t.request, deadline, first=propeller.next(avoid=t.created_on))
                repeats.append((t, again))
            if t.delete == "early":
                await propeller.delete(t.meta, t.task_type, avoid=t.created_on)
                t.deleted_at_ms = int(time.time() * 1000)

        await asyncio.gather(*(create(t) for t in tasks))
        burst_seconds = time.monotonic() - started

        async def delete_once_running(t: Task, resource: agent_pb2.Resource) -> None:
            if t.delete == "running" and resource.phase == Phase.RUNNING:
                assert t.meta is not None
                await propeller.delete(t.meta, t.task_type)
                t.deleted_at_ms = int(time.time() * 1000)

        done = asyncio.Event()
        done.set()
        await poll_until_done(propeller, tasks, deadline, creating=done, on_answer=delete_once_running)
        settled = await settle_deleted(emulator_process, run, tasks, deadline)
        result = outcome(emulator_process, run, tasks, propeller, propeller.replicas, started)

    result.report("replicas", tasks, burst_seconds=round(burst_seconds, 1), repeats=len(repeats),
                  create_retries=sum(t.create_failures for t in tasks), deleted_tasks=settled.tasks,
                  deleted_jobs=settled.jobs, submitted_after_delete=len(settled.late))
    for line in settled.late + settled.not_aborted:
        print("  deleted", line)
    result.assert_sound(tasks)
    assert result.takeovers > 0, "the killed replica left nothing to take over: the scenario did not test it"
    for t, again in repeats:  # a repeated CreateTask names the same attempt and never other jobs
        first, second = decode(t.meta or b""), decode(again)
        assert (second.job_name, second.output_prefix) == (first.job_name, first.output_prefix)
        if first.job_ids and second.job_ids:
            assert list(first.job_ids) == list(second.job_ids)
    settled.assert_sound()


async def test_half_of_all_batch_calls_throttled_for_a_minute(emulator_process: EmulatorProcess, tmp_path: Path) -> None:
    run = run_id("thr")
    tasks = mixed(run, 24)
    window = {"start": 0.0, "end": 0.0}
    rates: list[float] = []

    async def throttle_for_a_minute(propeller: Propeller) -> float:
        await asyncio.to_thread(emulator_process.set_faults, {op: {"throttle": 0.5} for op in batch_operations()}, 11)
        window["start"] = time.monotonic()
        await asyncio.sleep(60)
        rates.extend(await asyncio.to_thread(submit_rates, propeller))
        await asyncio.to_thread(emulator_process.clear_faults)
        window["end"] = time.monotonic()
        return window["end"]

    result, drain = await run_with_faults(emulator_process, tmp_path, run, tasks, replicas=2, gap=1.5,
                                          faults=throttle_for_a_minute)
    injected = await asyncio.to_thread(emulator_process.injected)
    throttled_by_aws = sum(v.get("throttle", 0) for v in injected.values())
    result.report("throttling", tasks, injected_throttles=throttled_by_aws,
                  create_retries=sum(t.create_failures for t in tasks), submit_rates_at_end=rates, drain_seconds=drain)
    result.assert_sound(tasks)
    assert window["end"] - window["start"] >= 60
    assert throttled_by_aws >= 10 and result.throttled_calls > 0  # the service saw (and counted) the throttling


async def test_bursts_of_batch_server_errors(emulator_process: EmulatorProcess, tmp_path: Path) -> None:
    run = run_id("err")
    tasks = mixed(run, 15)

    rates: list[float] = []

    async def bursts(propeller: Propeller) -> float:
        for _ in range(3):
            await asyncio.to_thread(emulator_process.set_faults, {op: {"error": 1.0} for op in batch_operations()})
            await asyncio.sleep(3)
            await asyncio.to_thread(emulator_process.clear_faults)
            cleared = time.monotonic()
            await asyncio.sleep(3)
        rates.extend(await asyncio.to_thread(submit_rates, propeller))
        return cleared

    result, drain = await run_with_faults(emulator_process, tmp_path, run, tasks, replicas=2, gap=1.0, faults=bursts)
    injected = await asyncio.to_thread(emulator_process.injected)
    errors_by_aws = sum(v.get("error", 0) for v in injected.values())
    result.report("5xx bursts", tasks, injected_errors=errors_by_aws, create_retries=sum(t.create_failures for t in tasks),
                  submit_rates_3s_after_last_burst=rates, drain_seconds=drain)
    result.assert_sound(tasks)
    assert errors_by_aws > 0 and result.server_error_calls > 0


async def test_the_aws_endpoint_goes_away_for_five_seconds(emulator_process: EmulatorProcess, tmp_path: Path) -> None:
    run = run_id("out")
    # One job outlives the outage for sure, so GetTask must answer it from what it knew while AWS is away.
    long_runner = single(run, 100, ok=True, seconds=12)
    tasks = [long_runner, *mixed(run, 20)]
    outage: dict[str, float] = {}

    async def restart_mid_run(propeller: Propeller) -> float:
        await asyncio.sleep(5)
        await wait_until(lambda: Phase.RUNNING in long_runner.phases, 60, "the long job running")
        outage["start"] = time.monotonic()
        await asyncio.to_thread(emulator_process.restart, 5)
        # Asked while AWS is away (the polling rounds may all fall outside it: a round waits for its slowest
        # call), GetTask answers the long job from what it knew, marked stale, never with an error.
        for _ in range(3):
            resource, replica = await propeller.get(long_runner.meta or b"", long_runner.task_type)
            if resource is not None:
                long_runner.record(resource, replica.name)
            await asyncio.sleep(0.4)
        await asyncio.to_thread(emulator_process.wait_up, 30)
        outage["end"] = time.monotonic()
        return outage["end"]

    result, drain = await run_with_faults(emulator_process, tmp_path, run, tasks, replicas=2, gap=0.8, faults=restart_mid_run)
    result.report("restart", tasks, outage_seconds=round(outage["end"] - outage["start"], 1),
                  create_retries=sum(t.create_failures for t in tasks), drain_seconds=drain)
    result.assert_sound(tasks)
    assert outage["end"] - outage["start"] >= 5
    assert long_runner.stale_answers > 0  # GetTask answered during the outage, from what it knew
    # Each replica answers its last known phase: never behind its own previous answer (replicas may differ).
    assert result.own_regressions == 0


# -- focused -------------------------------------------------------------------------------------------------

async def test_a_job_is_submitted_once_even_when_recording_it_fails(emulator_process: EmulatorProcess, tmp_path: Path) -> None:
    """SubmitJob succeeds, then S3 refuses the write of the job id to the submission record long enough for the
    replica to give up and retry the submission later: the retry must record the job it already has (or find
    it with ListJobs), never submit a second one."""
    run = run_id("rec")
    task = single(run, 0, True, 1)
    await asyncio.to_thread(put_outputs, emulator_process, [task])
    async with cluster(emulator_process, tmp_path, 1) as propeller:
        replica = propeller.replicas[0]
        emulator_process.set_faults({"SubmitJob": {"latencyMs": 1500}})  # keeps the SubmitJob in flight for a moment
        task.meta, _, _ = await propeller.create_until_accepted(task.request, time.monotonic() + 30)
        await wait_until(lambda: emulator_process.stats().get("SubmitJob"), 10, "SubmitJob sent")
        emulator_process.set_faults({"PutObject": {"error": 1.0}})  # the job will exist; writing its id down fails
        await wait_until(lambda: "postponed" in replica.log_text(), 40, "the replica gave the record write up")
        emulator_process.clear_faults()
        done = asyncio.Event()
        done.set()
        await poll_until_done(propeller, [task], time.monotonic() + 60, creating=done)
        jobs = await asyncio.to_thread(emulator_process.jobs_named, run)
        submits = await asyncio.to_thread(emulator_process.answered, "SubmitJob")
        print(f"\n[record write fails] jobs={len(jobs)} submit_calls={submits} "
              f"final={task.final and phase_name(task.final.phase)}")
        assert (len(jobs), submits) == (1, 1), f"one task, {len(jobs)} AWS jobs: {[j['jobId'] for j in jobs]}"
        assert task.final is not None and task.final.phase == Phase.SUCCEEDED, task.final
    # Leaving the block SIGTERMs the replica: it must still exit 0 (its background tasks survived the S3 errors).


async def test_no_submit_job_starts_near_the_expiry_of_its_claim(emulator_process: EmulatorProcess, tmp_path: Path) -> None:
    """AWS throttles every SubmitJob and S3 refuses every write, so the owner keeps retrying while its claim can
    no longer be renewed. A SubmitJob started after `claimedUntil - margin` could reach AWS after another
    replica took the claim over and looked the job up by name (finding nothing): a second job. The owner must
    stop trying by then, and submit exactly once when AWS recovers."""
    run = run_id("margin")
    task = single(run, 0, True, 0.3)
    await asyncio.to_thread(put_outputs, emulator_process, [task])
    async with cluster(emulator_process, tmp_path, 1) as propeller:
        emulator_process.set_faults({"SubmitJob": {"throttle": 1.0}})
        task.meta, _, _ = await propeller.create_until_accepted(task.request, time.monotonic() + 30)
        await wait_until(lambda: emulator_process.stats().get("SubmitJob"), 10, "the first SubmitJob attempt")
        emulator_process.set_faults({"SubmitJob": {"throttle": 1.0}, "PutObject": {"error": 1.0}})
        attempts: list[float] = []  # when the emulator had received each further SubmitJob
        seen = emulator_process.stats().get("SubmitJob", 0)

        async def final_claim() -> float:
            await asyncio.sleep(0.3)  # a renewal already on its way lands or fails; none can follow
            return float((await asyncio.to_thread(emulator_process.record, task.output_prefix))["claimedUntil"])

        reading = asyncio.create_task(final_claim())
        while not reading.done() or time.time() < reading.result() + 4:
            now = emulator_process.stats().get("SubmitJob", 0)
            attempts += [time.time()] * (now - seen)
            seen = now
            await asyncio.sleep(0.02)
        emulator_process.clear_faults()
        claimed_until = reading.result()
        margin = min(10.0, 3.0 / 3)  # claimTimeout 3 s
        done = asyncio.Event()
        done.set()
        await poll_until_done(propeller, [task], time.monotonic() + 60, creating=done)
        jobs = await asyncio.to_thread(emulator_process.jobs_named, run)
        late = [round(t - (claimed_until - margin), 2) for t in attempts if t > claimed_until - margin + 0.25]
        print(f"\n[claim margin] attempts once S3 writes failed={len(attempts)} "
              f"seconds past claimedUntil-margin of the late ones={late} jobs={len(jobs)}")
        assert attempts, "the owner kept retrying SubmitJob at first"
        assert not late, f"SubmitJob attempts started within the claim's last {margin} s: {late}"
        assert len(jobs) == 1 and await asyncio.to_thread(emulator_process.answered, "SubmitJob") == 1
        assert task.final is not None and task.final.phase == Phase.SUCCEEDED, task.final


async def test_create_task_answers_while_job_definition_calls_are_throttled(emulator_process: EmulatorProcess,
                                                                           tmp_path: Path) -> None:
    """DescribeJobDefinitions and RegisterJobDefinition throttled for seconds (a backfill of many new images can do
    that): CreateTask still answers at once, since finding the definition is the submission worker's business,
    GetTask reports the tasks as waiting to be submitted, and each job is submitted once AWS lets the calls in."""
    run = run_id("defs")
    tasks = [single(run, i, True, 0.3) for i in range(3)]
    await asyncio.to_thread(put_outputs, emulator_process, tasks)
    async with cluster(emulator_process, tmp_path, 1) as propeller:
        emulator_process.set_faults({"DescribeJobDefinitions": {"throttle": 1.0}, "RegisterJobDefinition": {"throttle": 1.0}})
        for t in tasks:
            t.meta, _, t.create_failures = await propeller.create_until_accepted(t.request, time.monotonic() + 30)
        await wait_until(lambda: emulator_process.stats().get("DescribeJobDefinitions", 0) >= 3, 20, "definition lookups retried")
        for t in tasks:
            res, _ = await propeller.get(t.meta, t.task_type)
            assert res is not None and res.phase == Phase.QUEUED and "waiting" in res.message, res
        assert await asyncio.to_thread(emulator_process.answered, "SubmitJob") == 0
        emulator_process.clear_faults()
        done = asyncio.Event()
        done.set()
        await poll_until_done(propeller, tasks, time.monotonic() + 60, creating=done)
        jobs = await asyncio.to_thread(emulator_process.jobs_named, run)
        print(f"\n[definitions throttled] create failures={[t.create_failures for t in tasks]} jobs={len(jobs)} "
              f"finals={[t.final and phase_name(t.final.phase) for t in tasks]}")
        assert [t.create_failures for t in tasks] == [0, 0, 0]
        assert len(jobs) == 3 and await asyncio.to_thread(emulator_process.answered, "SubmitJob") == 3
        assert all(t.final is not None and t.final.phase == Phase.SUCCEEDED for t in tasks)


async def test_a_deleted_task_is_never_submitted_later_nor_left_running(emulator_process: EmulatorProcess, tmp_path: Path) -> None:
    """DeleteTask on another replica than the one holding the task's submission: (1) the owner is alive with the
    task still queued: it must not submit it afterwards; (2) the owner died with its SubmitJob in flight (AWS
    created the job, the id was never recorded): the job must still be terminated."""
    run = run_id("del")
    queued = [single(run, i, True, 60, delete="early") for i in range(30)]
    orphan = single(run, 30, True, 60, delete="early")
    async with cluster(emulator_process, tmp_path, 2) as propeller:
        owner = propeller.replicas[0]
        deadline = time.monotonic() + 90

        async def create_then_delete(t: Task) -> None:
            t.meta, t.created_on, _ = await propeller.create_until_accepted(t.request, deadline, first=owner)
            await propeller.delete(t.meta, t.task_type, avoid=owner)
            t.deleted_at_ms = int(time.time() * 1000)

        await asyncio.gather(*(create_then_delete(t) for t in queued))  # a backlog at 10 SubmitJob/s
        await wait_until(lambda: metric_sum(owner.metrics(), "aws_array_plugin_submission_backlog") == 0, 30,
                         "the owner worked its backlog off")

        emulator_process.set_faults({"SubmitJob": {"latencyMs": 1000}})
        orphan.meta, orphan.created_on, _ = await propeller.create_until_accepted(orphan.request, deadline, first=owner)
        await wait_until(lambda: emulator_process.stats().get("SubmitJob", 0) > len(emulator_process.jobs_named(run)), 10, "SubmitJob sent")
        owner.kill()  # before the answer of its SubmitJob, which AWS still carries out
        emulator_process.clear_faults()
        await wait_until(lambda: any(j["jobName"] == orphan.job_name for j in emulator_process.jobs_named(run)), 10, "job created")
        await propeller.delete(orphan.meta, orphan.task_type)
        orphan.deleted_at_ms = int(time.time() * 1000)
        settled = await settle_deleted(emulator_process, run, [*queued, orphan], deadline)
    print(f"\n[delete] tasks={settled.tasks} jobs={settled.jobs} submitted_after_delete={len(settled.late)} "
          f"not_terminated={len(settled.not_aborted)}")
    for line in settled.late + settled.not_aborted:
        print("  deleted", line)
    settled.assert_sound()


async def test_a_create_task_whose_claim_cannot_be_written_fails_and_is_never_submitted(emulator_process: EmulatorProcess,
                                                                                        tmp_path: Path) -> None:
    """S3 refuses every write: the journal that would hold the claims of a group of concurrent CreateTasks cannot be
    written, so each of them fails with UNAVAILABLE (propeller retries the task) and none is ever submitted, even
    once S3 is back. The next CreateTasks are accepted and run."""
    run = run_id("journal")
    failing = [single(run, i, True, 0.3) for i in range(5)]
    later = [single(run, 10 + i, True, 0.3) for i in range(3)]
    await asyncio.to_thread(put_outputs, emulator_process, later)
    async with cluster(emulator_process, tmp_path, 1) as propeller:
        replica = propeller.replicas[0]
        emulator_process.set_faults({"PutObject": {"error": 1.0}})
        answers = await asyncio.gather(*(propeller.create(t.request, replica) for t in failing))
        codes = [error.code().name if error else "OK" for _, _, error in answers]
        emulator_process.clear_faults()
        for t in later:
            t.meta, _, t.create_failures = await propeller.create_until_accepted(t.request, time.monotonic() + 30)
        done = asyncio.Event()
        done.set()
        await poll_until_done(propeller, later, time.monotonic() + 60, creating=done)
        await asyncio.sleep(1.0)  # a stray submission of the failed ones would have had its slot by now
        jobs = await asyncio.to_thread(emulator_process.jobs_named, run)
        print(f"\n[journal write fails] codes={codes} jobs={sorted(j['jobName'] for j in jobs)}")
        assert codes == ["UNAVAILABLE"] * len(failing)
        assert sorted(j["jobName"] for j in jobs) == sorted(t.job_name for t in later)
        assert await asyncio.to_thread(emulator_process.answered, "SubmitJob") == len(later)
        assert all(t.final is not None and t.final.phase == Phase.SUCCEEDED for t in later)
