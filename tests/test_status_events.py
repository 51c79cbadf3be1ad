"""Push-first status (`status.events`) end to end: three in-process plugin servers read AWS Batch's `Batch Job
State Change` events from the emulator's EventBridge rule and Kinesis stream, while a propeller-like watcher asks
every replica about every open task about every 0.25 s and records each answer (time, replica, phase, message).

Every scenario asserts that each task reaches its right final phase on every live replica (succeeding and failing
singles, an array with a failing child, a succeeding array), that no replica ever answers a phase behind one of
its own earlier answers, and that no answer is behind a phase another replica reported more than
refreshInterval + 1 s earlier. The scenarios then check what their fault is about: none (events do all the work),
duplicated and reordered events, events delayed by a minute, dropped events (repaired by reconciliation),
dead-lettered events (repaired at once), a consumer restart, and the event source down for two minutes (the
replicas poll meanwhile). A one-line summary per scenario is printed (`pytest -s`), with the phase timelines of
the tasks that went wrong.

The delayed, dropped and dead-lettered scenarios found two bugs, now fixed: the submitting replica's array ignored
its children's events until the parent's own first event (the seed had no size), and a failed child described
earlier for a log link (RUNNING) stood in for its failure.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2

from aws_array_plugin.resource_meta import decode
from aws_array_plugin_demo.propeller import TERMINAL, shell
from tests.conftest import Plugin, aws_environment, plugin_server
from tests.support import get, int_outputs, s3, wait_until
from tests.templates import create_request, literal_map, task_template

Phase = execution_pb2.TaskExecution
# Order of progress, to spot an answer that goes back (e.g. RUNNING, then QUEUED).
RANK = {Phase.UNDEFINED: 0, Phase.QUEUED: 1, Phase.WAITING_FOR_RESOURCES: 1, Phase.INITIALIZING: 2,
        Phase.RUNNING: 3, **dict.fromkeys(TERMINAL, 4)}

REFRESH = 2.0  # status.refreshInterval of every scenario
CROSS_WINDOW = REFRESH + 1.0  # how far behind another replica's earlier answer an answer may be
HEARTBEAT_TIMEOUT = 3.0
POLL_EVERY = 0.25  # the watcher's round: every open task on every replica
DESCRIBE_REASONS = ("lookup", "refresh", "reconcile", "gap")


def phase_name(phase: int) -> str:
    return str(Phase.Phase.Name(phase))


# -- tasks ---------------------------------------------------------------------------------------------------

@dataclass
class Answer:
    sent: float  # wall clock when the GetTask was sent
    at: float  # wall clock when its answer came back
    replica: str
    phase: int
    message: str

    @property
    def rank(self) -> int:
        return RANK.get(self.phase, 0)

    @property
    def final(self) -> bool:
        return self.phase in TERMINAL


@dataclass
class Task:
    key: str
    task_type: str
    request: agent_pb2.CreateTaskRequest
    expect: int
    size: int = 0  # array children (0: a single job)
    succeeding: tuple[int, ...] = ()  # children (0 for a single) that write outputs.pb
    meta: bytes | None = None
    created_on: str = ""
    answers: list[Answer] = field(default_factory=list)
    _final: dict[str, Answer] = field(default_factory=dict)  # first final answer per replica

    def record(self, answer: Answer) -> None:
        self.answers.append(answer)
        if answer.final:
            self._final.setdefault(answer.replica, answer)

    def first_final(self, replica: str) -> Answer | None:
        return self._final.get(replica)

    def last(self, replica: str) -> Answer | None:
        return next((a for a in reversed(self.answers) if a.replica == replica), None)

    @property
    def job_name(self) -> str:
        assert self.meta is not None
        return str(decode(self.meta).job_name)


def single(run: str, i: int, ok: bool, seconds: float) -> Task:
    script = f"sleep {seconds}" if ok else f"sleep {seconds}; exit 3"
    req = shell(create_request(task_template("awsbatch_minimal_task"), execution=f"{run}-{i:02d}",
                               inputs=literal_map({"x": i}, {"x": int})), script, retries=0)
    return Task(f"{run}-{i:02d}", "aws-batch", req, Phase.SUCCEEDED if ok else Phase.FAILED,
                succeeding=(0,) if ok else ())


def array(run: str, i: int, seconds: float, failing: tuple[int, ...] = (), size: int = 3, retries: int = 1) -> Task:
    """A legacy map task of `size` children (minSuccessRatio 0.8: one failed child of 2 or 3 fails it); the
    failing children exit 3 after `seconds`, and are retried `retries` times."""
    script = f"sleep {seconds}"
    if failing:
        script += f'; case "$AWS_BATCH_JOB_ARRAY_INDEX" in {"|".join(map(str, failing))}) exit 3;; esac'
    req = shell(create_request(task_template("square_legacy_map"), execution=f"{run}-{i:02d}",
                               inputs=literal_map({"x": list(range(size))}, {"x": list[int]})), script,
                retries=retries if failing else 0)
    return Task(f"{run}-{i:02d}", "container_array", req, Phase.FAILED if failing else Phase.SUCCEEDED, size,
                tuple(c for c in range(size) if c not in failing))


def mixed(run: str, seconds: list[float], array_seconds: float = 1.0) -> list[Task]:
    """Singles of the given lengths (every third one failing), an array with a failing child, a succeeding one."""
    tasks = [single(run, i, ok=i % 3 != 1, seconds=s) for i, s in enumerate(seconds)]
    n = len(tasks)
    return [*tasks, array(run, n, array_seconds, failing=(1,)), array(run, n + 1, array_seconds)]


def run_id(scenario: str) -> str:
    return f"ev{scenario}{uuid.uuid4().hex[:6]}"


# -- replicas ------------------------------------------------------------------------------------------------

def metric(plugin: Plugin, name: str, **labels: str) -> float:
    """Sum of the in-process server's samples of `name` whose labels include `labels`."""
    return float(sum(s.value for family in plugin.running.core.metrics.registry.collect() for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())))


def events_config(info: Any, **events: Any) -> dict[str, Any]:
    cfg = {"enabled": True, "stream": info.event_stream, "deadLetterQueue": info.dead_letter_queue_url,
           "heartbeatInterval": "0.5s", "heartbeatTimeout": f"{HEARTBEAT_TIMEOUT}s", "pollInterval": "0.2s",
           "reconcileInterval": "30s", "deadLetterCheckInterval": "1s"}
    cfg.update({k: f"{v}s" if isinstance(v, int | float) else v for k, v in events.items()})
    return {"defaultQueue": info.queue, "status": {"refreshInterval": f"{REFRESH}s", "maxStaleness": "3s",
                                                   "events": cfg}}


class Cluster:
    """In-process replicas that can be stopped and added while the watcher runs (it holds `lock` per round)."""

    def __init__(self, emulator: Any, config: dict[str, Any]) -> None:
        self.emulator = emulator
        self.config = config
        self.live: dict[str, Plugin] = {}
        self.all: dict[str, Plugin] = {}
        self.lock = asyncio.Lock()
        self._stacks: dict[str, contextlib.AsyncExitStack] = {}

    async def add(self, name: str) -> Plugin:
        stack = contextlib.AsyncExitStack()
        plugin = await stack.enter_async_context(plugin_server(self.config, self.emulator.endpoint))
        self._stacks[name] = stack
        async with self.lock:
            self.live[name] = self.all[name] = plugin
        return plugin

    async def remove(self, name: str) -> None:
        async with self.lock:  # not in the middle of a round: its GetTasks are all answered
            self.live.pop(name)
        await self._stacks.pop(name).aclose()

    async def close(self) -> None:
        for name in list(self._stacks):
            await self._stacks.pop(name).aclose()
        self.live.clear()

    def healthy(self, name: str) -> bool:
        return bool(self.all[name].running.events.healthy)

    def gauges(self, name: str) -> tuple[float, float]:
        """(event_source_healthy, status_polling_fallback) of a replica."""
        p = self.all[name]
        return (metric(p, "aws_array_plugin_event_source_healthy"),
                metric(p, "aws_array_plugin_status_polling_fallback"))

    def describes(self, name: str, reason: str) -> float:
        return metric(self.all[name], "aws_array_plugin_status_describes_total", reason=reason)

    def total(self, name: str, **labels: str) -> float:
        """A metric summed over every replica this scenario started."""
        return sum(metric(p, name, **labels) for p in self.all.values())


class Watcher:
    """Propeller's GetTask loop, on every replica: each round asks every live replica about every task it has not
    answered final yet (and about the final ones every `final_every` rounds, to see they stay final)."""

    def __init__(self, cluster: Cluster, tasks: list[Task], final_every: int = 4) -> None:
        self.cluster = cluster
        self.tasks = tasks
        self.final_every = final_every
        self.errors: list[str] = []
        self.rounds = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            async with self.cluster.lock:
                calls = [self._ask(t, name, p) for t in self.tasks if t.meta is not None
                         for name, p in self.cluster.live.items()
                         if t.first_final(name) is None or self.rounds % self.final_every == 0]
                await asyncio.gather(*calls)
            self.rounds += 1
            await asyncio.sleep(max(0.05, POLL_EVERY - (time.monotonic() - began)))

    async def _ask(self, t: Task, name: str, plugin: Plugin) -> None:
        assert t.meta is not None
        sent = time.time()
        try:
            resource = await get(plugin, t.meta, t.task_type, timeout=10)
        except grpc.aio.AioRpcError as exc:
            self.errors.append(f"{t.key} on {name}: {exc.code().name} {exc.details()}")
            return
        t.record(Answer(sent, time.time(), name, resource.phase, resource.message))

    def all_final(self) -> bool:
        return all(t.first_final(name) is not None for t in self.tasks for name in self.cluster.live)

    async def until_final(self, timeout: float, what: str = "every task final on every live replica") -> None:
        try:
            await wait_until(self.all_final, timeout, what, interval=0.1)
        except AssertionError:
            open_ = {t.key: {n: phase_name(a.phase) if (a := t.last(n)) else None for n in self.cluster.live}
                     for t in self.tasks if any(t.first_final(n) is None for n in self.cluster.live)}
            raise AssertionError(f"not final within {timeout} s: {open_}") from None


async def start_cluster(emulator: Any, config: dict[str, Any], names: tuple[str, ...] = ("r0", "r1", "r2")
                        ) -> Cluster:
    cluster = Cluster(emulator, config)
    for name in names:
        await cluster.add(name)
    await wait_until(lambda: all(cluster.healthy(n) for n in names), 20, "every replica's event source healthy")
    return cluster


async def create_all(cluster: Cluster, tasks: list[Task]) -> None:
    """Outputs for what must succeed, then every CreateTask, round-robin over the live replicas."""
    client = s3(cluster.emulator)

    def put() -> None:
        for t in tasks:
            for child in t.succeeding:
                bucket, _, key = str(t.request.output_prefix).removeprefix("s3://").partition("/")
                client.put_object(Bucket=bucket, Key=f"{key}/{child}/outputs.pb", Body=int_outputs(o0=child))

    await asyncio.to_thread(put)

    names = list(cluster.live)

    async def create(i: int, t: Task) -> None:
        t.created_on = names[i % len(names)]
        resp = await cluster.live[t.created_on].agents.CreateTask(t.request, timeout=30)
        t.meta = bytes(resp.resource_meta)

    await asyncio.gather(*(create(i, t) for i, t in enumerate(tasks)))


def stopped_at(emulator: Any, tasks: list[Task]) -> dict[str, float]:
    """Each task's AWS job (an array's parent) `stoppedAt`, in epoch seconds, from DescribeJobs."""
    batch = boto3.client("batch", **emulator.info.client_kwargs())
    ids: dict[str, str] = {}
    for t in tasks:
        assert t.meta is not None
        job_ids = list(decode(t.meta).job_ids)
        if not job_ids:
            found = batch.list_jobs(jobQueue=emulator.info.queue,
                                    filters=[{"name": "JOB_NAME", "values": [t.job_name]}])["jobSummaryList"]
            job_ids = [found[0]["jobId"]]
        ids[job_ids[0]] = t.key
    out: dict[str, float] = {}
    jobs = list(ids)
    for start in range(0, len(jobs), 100):
        for job in batch.describe_jobs(jobs=jobs[start:start + 100])["jobs"]:
            out[ids[job["jobId"]]] = job["stoppedAt"] / 1000
    return out


# -- verdict -------------------------------------------------------------------------------------------------

@dataclass
class Wrong:
    task: Task
    replica: str
    last: Answer | None

    def __str__(self) -> str:
        got = f"{phase_name(self.last.phase)}: {self.last.message[:200]}" if self.last else "no answer"
        return f"{self.task.key} on {self.replica}: expected {phase_name(self.task.expect)}, last answer {got}"


@dataclass
class Regression:
    task: Task
    before: Answer  # the better answer given first
    after: Answer  # the answer behind it
    t0: float

    def __str__(self) -> str:
        return f"{self.task.key}: {_show(self.before, self.t0)} then {_show(self.after, self.t0)}"


@dataclass
class Verdict:
    scenario: str
    answers: int
    wrong: list[Wrong]  # (task, replica): not final, or final in the wrong phase
    own_regressions: list[Regression]
    cross_regressions: list[Regression]
    errors: list[str]
    describes: dict[str, float]
    counters: dict[str, float]
    seconds: float
    timelines: list[str] = field(default_factory=list)  # of tasks with a regression or a wrong final phase

    def report(self, **extra: Any) -> None:
        fields = {"answers": self.answers, "wrong": len(self.wrong), "own_regressions": len(self.own_regressions),
                  "cross_regressions": len(self.cross_regressions), "get_errors": len(self.errors),
                  "describes": {k: int(v) for k, v in self.describes.items()},
                  **{k: int(v) for k, v in self.counters.items()}, "seconds": self.seconds, **extra}
        print(f"\n[events: {self.scenario}] " + " ".join(f"{k}={v}" for k, v in fields.items()))
        problems = [*self.wrong, *self.own_regressions, *self.cross_regressions]
        for line in [*map(str, problems[:6]), *self.errors[:3], *self.timelines[:4]]:
            print("   ", line)

    def assert_sound(self) -> None:
        assert not self.errors, f"GetTask answered gRPC errors: {self.errors[:5]}"
        wrong = [str(w) for w in self.wrong]
        assert not wrong, f"tasks not in their right final phase: {wrong[:10]}"
        own = [str(r) for r in self.own_regressions]
        assert not own, f"a replica answered behind its own earlier answer: {own[:10]}"
        cross = [str(r) for r in self.cross_regressions]
        assert not cross, f"answers behind what another replica reported over {CROSS_WINDOW} s earlier: {cross[:10]}"


def _show(a: Answer, t0: float) -> str:
    return f"{phase_name(a.phase)}@{a.replica} {a.sent - t0:.2f}s ({a.message[:120]!r})"


def own_regressions(t: Task, t0: float) -> list[Regression]:
    """Answers below the best earlier answer of the same replica, or a final answer that changed."""
    out: list[Regression] = []
    best: dict[str, Answer] = {}
    for a in t.answers:
        b = best.get(a.replica)
        if b is not None and (a.rank < b.rank or (b.final and a.phase != b.phase)):
            out.append(Regression(t, b, a, t0))
        if b is None or a.rank > b.rank:
            best[a.replica] = a
    return out


def cross_regressions(t: Task, t0: float) -> list[Regression]:
    """Answers behind a phase another replica had answered more than CROSS_WINDOW s before this one was asked."""
    per: dict[str, tuple[list[float], list[Answer]]] = {}
    for a in sorted(t.answers, key=lambda a: a.at):
        times, best = per.setdefault(a.replica, ([], []))
        times.append(a.at)
        best.append(a if not best or a.rank > best[-1].rank else best[-1])  # best answer so far
    out: list[Regression] = []
    for a in t.answers:
        for replica, (times, best) in per.items():
            if replica == a.replica:
                continue
            i = bisect.bisect_left(times, a.sent - CROSS_WINDOW)
            if i and best[i - 1].rank > a.rank:
                out.append(Regression(t, best[i - 1], a, t0))
                break
    return out


def timeline(t: Task, t0: float) -> str:
    """Each replica's phase changes for a task: `r0: QUEUED 0.3, RUNNING 2.1 | r1: ...`."""
    parts = []
    for replica in sorted({a.replica for a in t.answers}):
        changes: list[str] = []
        last = None
        for a in t.answers:
            if a.replica == replica and a.phase != last:
                changes.append(f"{phase_name(a.phase)} {a.sent - t0:.1f}")
                last = a.phase
        parts.append(f"{replica}: {', '.join(changes)}")
    return f"{t.key} ({'array' if t.size else 'single'}, created on {t.created_on}) " + " | ".join(parts)


def verdict(scenario: str, cluster: Cluster, watcher: Watcher, tasks: list[Task], t0: float) -> Verdict:
    wrong = [Wrong(t, name, t.last(name)) for t in tasks for name in cluster.live
             if (last := t.last(name)) is None or last.phase != t.expect]
    own = {t.key: own_regressions(t, t0) for t in tasks}
    cross = {t.key: cross_regressions(t, t0) for t in tasks}
    counters = {
        "applied": cluster.total("aws_array_plugin_events_applied_total"),
        "duplicate": cluster.total("aws_array_plugin_events_duplicate_total"),
        "out_of_order": cluster.total("aws_array_plugin_events_out_of_order_total"),
        "untracked": cluster.total("aws_array_plugin_events_untracked_total"),
    }
    return Verdict(
        scenario=scenario,
        answers=sum(len(t.answers) for t in tasks),
        wrong=wrong,
        own_regressions=[r for t in tasks for r in own[t.key]],
        cross_regressions=[r for t in tasks for r in cross[t.key]],
        errors=list(watcher.errors),
        describes={r: cluster.total("aws_array_plugin_status_describes_total", reason=r) for r in DESCRIBE_REASONS},
        counters=counters,
        seconds=round(time.time() - t0, 1),
        timelines=[timeline(t, t0) for t in tasks if own[t.key] or cross[t.key] or any(w.task is t for w in wrong)],
    )


# -- fixtures ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def events_emulator() -> Iterator[Any]:
    """The emulated AWS with Batch events delivered through EventBridge rules to a Kinesis stream."""
    from aws_batch_emulator import Emulator

    emulator = Emulator(port=0, step=0.2, concurrency=16, events=True)
    info = emulator.start()
    try:
        with aws_environment(info.client_env()):
            yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def emu(events_emulator: Any) -> Iterator[Any]:
    """The module's emulator with delivery faults cleared and event counters reset, before and after."""
    events_emulator.events_up()
    events_emulator.clear_event_faults()
    events_emulator.wait_events_idle(90)
    events_emulator.reset_event_stats()
    yield events_emulator
    events_emulator.events_up()
    events_emulator.clear_event_faults()


@contextlib.asynccontextmanager
async def running(emulator: Any, config: dict[str, Any], tasks: list[Task]) -> Any:
    """Three healthy replicas, the tasks created, the watcher asking; everything stopped at the end."""
    cluster = await start_cluster(emulator, config)
    watcher = Watcher(cluster, tasks)
    try:
        await create_all(cluster, tasks)
        watcher.start()
        yield cluster, watcher
    finally:
        await watcher.stop()
        await cluster.close()


# -- scenarios -----------------------------------------------------------------------------------------------



def lossy_mix(run: str, singles: list[float], array_seconds: float, arrays: int) -> list[Task]:
    """Singles, and `arrays` arrays of 2 (half of them with a failing child): an array's PENDING event (its only
    one before the final one) and its failed child's FAILED event are each lost or late with the fault's share,
    so with enough arrays some surely are. Beyond the emulator's 16 slots the last ones wait a little."""
    tasks = [single(run, i, ok=i % 3 != 1, seconds=s) for i, s in enumerate(singles)]
    n = len(tasks)
    half = arrays // 2
    tasks += [array(run, n + k, array_seconds, failing=(1,), size=2, retries=k % 2) for k in range(half)]
    tasks += [array(run, n + half + k, array_seconds, size=2) for k in range(arrays - half)]
    return tasks


async def test_events_alone_keep_every_replica_current(emu: Any) -> None:
    tasks = mixed(run_id("ok"), [1, 2, 3, 1, 4, 2])
    t0 = time.time()
    async with running(emu, events_config(emu.info), tasks) as (cluster, watcher):
        await watcher.until_final(60)
        refresh = {n: cluster.describes(n, "refresh") for n in cluster.live}
        applied = {n: metric(p, "aws_array_plugin_events_applied_total") for n, p in cluster.live.items()}
        gauges = {n: cluster.gauges(n) for n in cluster.live}
        result = verdict("no faults", cluster, watcher, tasks, t0)
    result.report(event_stats=emu.event_stats())
    result.assert_sound()
    assert all(g == (1.0, 0.0) for g in gauges.values()), f"(healthy, fallback) per replica: {gauges}"
    assert not any(refresh.values()), f"polling DescribeJobs while the event source is healthy: {refresh}"
    assert all(applied.values()), f"events applied per replica: {applied}"


async def test_duplicated_and_reordered_events_never_move_a_task_back(emu: Any) -> None:
    tasks = mixed(run_id("dup"), [1, 2, 3, 1, 4, 2, 3])
    emu.set_event_faults({"duplicate": 0.3, "reorder": 0.3, "reorderWindow": 3, "sources": ["aws.batch"]}, seed=1)
    t0 = time.time()
    async with running(emu, events_config(emu.info), tasks) as (cluster, watcher):
        await watcher.until_final(60)
        await asyncio.to_thread(emu.wait_events_idle, 30)  # the last copies and late deliveries too
        await asyncio.sleep(2)
        refresh = {n: cluster.describes(n, "refresh") for n in cluster.live}
        result = verdict("duplicate+reorder", cluster, watcher, tasks, t0)
    stats = emu.event_stats()
    result.report(event_stats=stats)
    result.assert_sound()
    assert stats["duplicated"] > 0 and stats["reordered"] > 0, stats
    assert not any(refresh.values()), f"polling DescribeJobs while the event source is healthy: {refresh}"
    assert result.counters["duplicate"] > 0, "no replica counted a duplicate event"
    assert result.counters["out_of_order"] > 0, "no replica counted an out-of-order event"


@pytest.mark.slow
async def test_events_delayed_a_minute_arrive_without_moving_a_task_back(emu: Any) -> None:
    tasks = lossy_mix(run_id("late"), [1, 2, 3, 4], array_seconds=8, arrays=10)
    emu.set_event_faults({"delay": 0.5, "delaySeconds": 60, "sources": ["aws.batch"]}, seed=2)
    t0 = time.time()
    async with running(emu, events_config(emu.info, reconcileInterval=20), tasks) as (cluster, watcher):
        await watcher.until_final(60)
        ended = round(time.time() - t0, 1)
        counted = cluster.total("aws_array_plugin_events_received_total", kind="job")
        pending = emu.event_stats()["pending"]
        delivered = await asyncio.to_thread(emu.wait_events_idle, 90)
        await asyncio.sleep(4)  # read and applied by every replica, and asked about afterwards
        late = cluster.total("aws_array_plugin_events_received_total", kind="job") - counted
        result = verdict("delayed 60 s", cluster, watcher, tasks, t0)
    stats = emu.event_stats()
    result.report(final_at=ended, held_at_final=pending, job_events_after_final=int(late), event_stats=stats)
    result.assert_sound()
    assert delivered, "the delayed events were never delivered"
    assert stats["delayed"] > 0 and pending > 0, "no event was still held back once the tasks ended"
    assert late > 0, "the delayed events did not reach the replicas while they were watched"


@pytest.mark.slow  # ~20 s
async def test_dropped_events_are_repaired_within_the_reconcile_interval(emu: Any) -> None:
    reconcile = 8.0
    tasks = lossy_mix(run_id("drop"), [1, 3, 5], array_seconds=8, arrays=8)
    emu.set_event_faults({"drop": 0.5, "deadLetter": False, "sources": ["aws.batch"]}, seed=3)
    t0 = time.time()
    async with running(emu, events_config(emu.info, reconcileInterval=reconcile), tasks) as (cluster, watcher):
        await watcher.until_final(90)
        stops = await asyncio.to_thread(stopped_at, emu, tasks)
        reconciled = {n: cluster.describes(n, "reconcile") for n in cluster.live}
        lags = {(t.key, n): a.at - stops[t.key] for t in tasks for n in cluster.live if (a := t.first_final(n))}
        result = verdict("drop 0.5", cluster, watcher, tasks, t0)
    bound = reconcile + REFRESH + 3
    late = {k: round(v, 1) for k, v in lags.items() if v > bound}
    stats = emu.event_stats()
    result.report(max_final_lag=round(max(lags.values()), 1), event_stats=stats)
    result.assert_sound()
    assert stats["dropped"] > 0, stats
    assert not late, f"first final answers later than reconcileInterval + refreshInterval + 3 s ({bound} s) " \
                     f"after stoppedAt: {late}"
    assert sum(reconciled.values()) > 0, f"no reason=reconcile DescribeJobs: {reconciled}"


async def test_dead_lettered_events_make_every_replica_reconcile_at_once(emu: Any) -> None:
    run = run_id("dlq")
    tasks = [single(run, i, ok=i % 3 != 1, seconds=s) for i, s in enumerate([1, 2, 3, 1, 4])]
    tasks += [array(run, 5, 3, failing=(1,), retries=0), array(run, 6, 1, failing=(1,)), array(run, 7, 1)]
    sqs = boto3.client("sqs", **emu.info.client_kwargs())

    def depth() -> int:
        attrs = sqs.get_queue_attributes(QueueUrl=emu.info.dead_letter_queue_url,
                                         AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"])

    before = depth()
    emu.set_event_faults({"drop": 1.0, "deadLetter": True, "sources": ["aws.batch"]}, seed=4)
    t0 = time.time()
    async with running(emu, events_config(emu.info, reconcileInterval=600), tasks) as (cluster, watcher):
        await watcher.until_final(60, "every task final long before reconcileInterval (600 s)")
        stops = await asyncio.to_thread(stopped_at, emu, tasks)
        gaps = {n: metric(p, "aws_array_plugin_event_source_gaps_total", cause="dead_letter")
                for n, p in cluster.live.items()}
        lags = [a.at - stops[t.key] for t in tasks for n in cluster.live if (a := t.first_final(n))]
        result = verdict("dead letters", cluster, watcher, tasks, t0)
    grown = await asyncio.to_thread(depth) - before
    result.report(dead_letter_growth=grown, dead_letter_gaps=gaps, max_final_lag=round(max(lags), 1),
                  event_stats=emu.event_stats())
    result.assert_sound()
    assert grown > 0, "the dead-letter queue did not grow"
    assert all(gaps.values()), f"event_source_gaps_total{{cause=dead_letter}} per replica: {gaps}"
    assert max(lags) < 15, f"a final answer came {max(lags):.1f} s after its job stopped (reconcileInterval 600 s)"


async def test_a_replica_replaced_mid_run_catches_up(emu: Any) -> None:
    tasks = mixed(run_id("rst"), [2, 6, 9, 3, 10, 7], array_seconds=6)
    t0 = time.time()
    async with running(emu, events_config(emu.info), tasks) as (cluster, watcher):
        await wait_until(lambda: sum(any(a.phase == Phase.RUNNING for a in t.answers) for t in tasks) >= 5, 30,
                         "tasks running")
        assert not watcher.all_final()
        await cluster.remove("r1")
        restarted = time.time() - t0
        fresh = await cluster.add("r3")
        await watcher.until_final(60)
        start_gaps = metric(fresh, "aws_array_plugin_event_source_gaps_total", cause="start")
        applied = metric(fresh, "aws_array_plugin_events_applied_total")
        result = verdict("consumer restart", cluster, watcher, tasks, t0)
        open_at_restart = sum(1 for t in tasks if (a := t.first_final("r0")) is None or a.at - t0 > restarted)
    result.report(restarted_at=round(restarted, 1), open_at_restart=open_at_restart, r3_start_gaps=int(start_gaps),
                  r3_applied=int(applied))
    result.assert_sound()
    assert set(cluster.all) == {"r0", "r1", "r2", "r3"}, cluster.all
    assert open_at_restart >= 3, "too few tasks still running when the replica was replaced"
    assert start_gaps >= 1, "the fresh replica did not count a start gap"


@pytest.mark.slow
async def test_the_event_source_down_for_two_minutes(emu: Any) -> None:
    outage = 120.0
    run = run_id("down")
    # Singles ending during the outage and after it, an array with a failing child, a succeeding array, and an
    # array that outlasts the outage.
    tasks = [single(run, 0, True, 2), single(run, 1, False, 8), single(run, 2, True, 15), single(run, 3, True, 50),
             single(run, 4, True, outage + 6), single(run, 5, False, outage + 9),
             array(run, 6, 4, failing=(1,)), array(run, 7, 5), array(run, 8, outage + 4)]
    lasting = {t.key for t in tasks[4:6]} | {tasks[8].key}
    ending = [t for t in tasks if t.key not in lasting]
    t0 = time.time()
    async with running(emu, events_config(emu.info), tasks) as (cluster, watcher):
        names = list(cluster.live)
        emu.events_down(outage)
        down_at = time.time()
        fell_back: dict[str, float] = {}

        def all_fell_back() -> bool:
            for n in names:
                if n not in fell_back and cluster.gauges(n) == (0.0, 1.0):
                    fell_back[n] = time.time() - down_at
            return len(fell_back) == len(names)

        await wait_until(all_fell_back, HEARTBEAT_TIMEOUT + 2, "every replica healthy 0 and fallback 1",
                         interval=0.05)
        # Answered by polling meanwhile: every task that ends during the outage is final on every replica.
        await wait_until(lambda: all(t.first_final(n) for t in ending for n in names), outage - 10,
                         "tasks ending during the outage final on every replica")
        during = {n: cluster.gauges(n) for n in names}
        refresh = {n: cluster.describes(n, "refresh") for n in names}
        still_down = time.time() < down_at + outage
        await asyncio.sleep(max(0.0, down_at + outage - time.time()))
        await wait_until(lambda: all(cluster.gauges(n) == (1.0, 0.0) for n in names), HEARTBEAT_TIMEOUT + 15,
                         "every replica healthy again after the outage")
        recovered = round(time.time() - down_at - outage, 1)
        missed = {n: metric(cluster.live[n], "aws_array_plugin_event_source_gaps_total", cause="heartbeat_missed")
                  for n in names}
        await watcher.until_final(60)
        delivered = await asyncio.to_thread(emu.wait_events_idle, 60)
        await asyncio.sleep(4)
        result = verdict("events down 120 s", cluster, watcher, tasks, t0)
    late_finals = [t.key for t in ending for n in names
                   if (a := t.first_final(n)) is None or a.at >= down_at + outage]
    result.report(fell_back_after={n: round(s, 1) for n, s in fell_back.items()}, recovered_after=recovered,
                  heartbeat_missed_gaps=missed, event_stats=emu.event_stats())
    result.assert_sound()
    assert still_down, "the tasks meant to end during the outage ended after it"
    assert not late_finals, f"tasks not final before the outage ended: {late_finals}"
    assert all(g == (0.0, 1.0) for g in during.values()), f"(healthy, fallback) during the outage: {during}"
    assert all(refresh.values()), f"reason=refresh DescribeJobs per replica during the outage: {refresh}"
    assert all(missed.values()), f"event_source_gaps_total{{cause=heartbeat_missed}} per replica: {missed}"
    assert delivered, "the buffered events were never delivered"
