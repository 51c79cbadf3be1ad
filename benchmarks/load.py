"""Scale benchmark: a load generator that acts as propeller over real gRPC against the plugin server and the
emulated AWS, each in its own process (server pinned to one core, emulator + this generator on the other).

Scenarios (default: all), each writing benchmarks/results/<scenario>.json and .md:

  burst   5,000 CreateTasks at once (200 in flight, 10 s deadline each) with SubmitJob paced at 40/s:
          CreateTask latency, deadline errors, GetTask until every task has its job, exactly-once check
          (emulator SubmitJob count and each deterministic job name once), achieved submit rate.
  track   2,000 single jobs + 20 arrays x 5,000 children tracked; GetTask once per task per poll cycle:
          AWS calls per API per cycle against the goal, the Go aws_array plugin's scheme and a naive
          connector; then GetTask driven open-loop at 1,000/s: latency, achieved rate, server CPU, peak RSS.
  delete  ~10% of tasks get DeleteTask (propeller abort), some before their SubmitJob, some while running:
          TerminateJob calls, jobs end FAILED "Aborted by Flyte (...)", nothing is ever (re)submitted.

    .venv/bin/python benchmarks/load.py                 # all three (about 7 minutes)
    .venv/bin/python benchmarks/load.py track --cycles 3 --cycle 10 --rate 1000 --seconds 20
    .venv/bin/python benchmarks/load.py track --profile --cycles 1 --seconds 10   # server under cProfile
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import math
import os
import random
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import grpc  # noqa: E402
from flyteidl.admin import agent_pb2  # noqa: E402
from flyteidl.service import agent_pb2_grpc  # noqa: E402
from harness import (  # noqa: E402
    EMULATOR_NICE,
    JobMix,
    ServerProcess,
    bucket_counts,
    bucket_delta,
    cpu_seconds,
    cpu_split,
    diff_counts,
    go_describe_batched,
    go_describe_formula,
    latency_summary,
    make_log_dir,
    reset_peak_rss,
    server_side,
    start_emulator,
)

from aws_array_plugin.rate_limits import AdaptiveLimiter  # noqa: E402
from aws_array_plugin_demo import propeller, workflows  # noqa: E402
from aws_array_plugin_demo.metrics import metric_samples  # noqa: E402
from aws_array_plugin_demo.propeller import DOMAIN, PROJECT, TERMINAL, Phase, shell  # noqa: E402
from aws_batch_emulator.process import EmulatorProcess  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
GET_TASK = "/flyteidl.service.AsyncAgentService/GetTask"
PHASE_NAME = {v: k for k, v in Phase.Phase.items()}
_POSITION = re.compile(r"position (\d+)")
BATCH_SIZE_METRIC = "aws_array_plugin_describe_jobs_batch_size"


# -- tasks and the propeller-like client ----------------------------------------------------------------------
@dataclass(eq=False)
class Task:
    execution: str
    kind: str  # aws-batch | container_array
    request: agent_pb2.CreateTaskRequest
    job_name: str
    size: int = 1
    meta: bytes = b""
    get_request: bytes = b""
    created_with_ids: bool = False
    has_job: bool = False
    last: agent_pb2.Resource | None = None
    deleted: str = ""  # "", "before-submit" (no job id known to propeller's meta), "running"


class TaskFactory:
    def __init__(self) -> None:
        self.single = propeller.serialize(workflows.summarize)  # the demo's tasks; the jobs run shell scripts
        self.mapped = propeller.serialize(workflows.square_all)  # min_success_ratio 0.8

    def make(self, execution: str, kind: str, script: str, size: int = 1) -> Task:
        from aws_array_plugin.task_specs import job_name_for

        if kind == "aws-batch":
            req = shell(propeller.create_request(self.single, execution=execution), script, retries=0)
        else:
            inputs = propeller.literal_map({"x": list(range(size))}, {"x": list[int]})
            req = shell(propeller.create_request(self.mapped, execution=execution, inputs=inputs), script, retries=0)
        return Task(execution, kind, req, job_name_for(req), size)


@dataclass
class Call:
    latency: float
    code: str  # "OK" or the gRPC status code name
    resource: agent_pb2.Resource | None = None


class Propeller:
    """The calls propeller's connector plugin makes, over one gRPC channel."""

    def __init__(self, address: str, stamp_creates: bool = False, read_qps: float = 0.0) -> None:
        self.channel = grpc.aio.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)])
        # Propeller's `webApi.readRateLimiter` (default qps 10, burst 100) in front of every GetTask; 0: none.
        self._reads = AdaptiveLimiter("get_task", read_qps, 100) if read_qps > 0 else None
        # For the server's probe: when each CreateTask was sent (wall clock), to split its time at the server.
        self._stamp = stamp_creates
        self.stub = agent_pb2_grpc.AsyncAgentServiceStub(self.channel)
        # Pre-serialized requests, raw responses: keeps the generator's own CPU per GetTask small.
        self._get_raw = self.channel.unary_unary(GET_TASK)

    async def close(self) -> None:
        await self.channel.close()

    async def create(self, task: Task, deadline: float) -> Call:
        t = time.perf_counter()
        try:
            metadata = (("x-sent", repr(time.time())),) if self._stamp else None
            resp = await self.stub.CreateTask(task.request, timeout=deadline, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            return Call(time.perf_counter() - t, exc.code().name)
        latency = time.perf_counter() - t
        from aws_array_plugin.resource_meta import decode

        task.meta = resp.resource_meta
        task.created_with_ids = bool(decode(resp.resource_meta).job_ids)
        task.get_request = propeller.get_task_request(resp.resource_meta, task.kind).SerializeToString()
        return Call(latency, "OK")

    async def get(self, task: Task, deadline: float = 30.0) -> Call:
        if self._reads is not None:
            await self._reads.acquire()
        t = time.perf_counter()
        try:
            raw = await self._get_raw(task.get_request, timeout=deadline)
        except grpc.aio.AioRpcError as exc:
            return Call(time.perf_counter() - t, exc.code().name)
        latency = time.perf_counter() - t
        resource = agent_pb2.GetTaskResponse.FromString(raw).resource
        task.last = resource
        return Call(latency, "OK", resource)

    async def delete(self, task: Task, deadline: float = 10.0) -> Call:
        t = time.perf_counter()
        try:
            await self.stub.DeleteTask(propeller.delete_task_request(task.meta, task.kind), timeout=deadline)
        except grpc.aio.AioRpcError as exc:
            return Call(time.perf_counter() - t, exc.code().name)
        return Call(time.perf_counter() - t, "OK")


def children_counts(resource: agent_pb2.Resource) -> dict[str, int]:
    fields = resource.custom_info.fields
    if "children" not in fields:
        return {}
    return {k: int(v.number_value) for k, v in fields["children"].struct_value.fields.items()}


def is_waiting(resource: agent_pb2.Resource) -> bool:
    return bool(resource.phase == Phase.QUEUED and resource.message.startswith("waiting to submit"))


def queue_position(task: Task) -> int:
    m = _POSITION.search(task.last.message) if task.last is not None else None
    return int(m.group(1)) if m else 0


def job_mix(tasks: Iterable[Task]) -> JobMix:
    """What propeller last saw of each task, as the Go plugin would track it."""
    mix = JobMix()
    for t in tasks:
        r = t.last
        if r is None or r.phase in TERMINAL:
            continue
        if t.kind == "aws-batch":
            mix.live_singles += 1
        else:
            c = children_counts(r)
            mix.live_array_children.append(t.size - c.get("succeeded", 0) - c.get("failed", 0) if c else t.size)
    return mix


# -- load shapes ----------------------------------------------------------------------------------------------
async def gather_bounded(calls: Iterable[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[Any]]) -> Any:
        async with sem:
            return await call()

    return await asyncio.gather(*(one(c) for c in calls))


async def poll_cycle(client: Propeller, tasks: list[Task], seconds: float, rng: random.Random,
                     in_flight: int = 256) -> list[Call]:
    """One propeller resync: every task gets one GetTask, spread evenly over the cycle (random order), sent
    on schedule without waiting for earlier answers (up to `in_flight` outstanding). Returns when the cycle's
    time is up and every answer is in."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    order = list(tasks)
    rng.shuffle(order)
    sem = asyncio.Semaphore(in_flight)
    calls: list[Call] = []

    async def one(task: Task) -> None:
        try:
            calls.append(await client.get(task))
        finally:
            sem.release()

    pending: set[asyncio.Task[None]] = set()
    for n, task in enumerate(order):
        delay = start + seconds * n / max(1, len(order)) - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await sem.acquire()
        job = asyncio.create_task(one(task))
        pending.add(job)
        job.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)
    rest = start + seconds - loop.time()
    if rest > 0:
        await asyncio.sleep(rest)
    return calls


@dataclass
class RateRun:
    target_rate: float
    seconds: float
    calls: list[Call] = field(default_factory=list)
    behind_schedule: list[float] = field(default_factory=list)  # send time - intended send time
    from_schedule: list[float] = field(default_factory=list)  # answer time - intended send time
    elapsed: float = 0.0
    server_cpu: float = 0.0
    aws_calls: dict[str, int] = field(default_factory=dict)
    window: tuple[float, float] = (0.0, 0.0)  # wall-clock start and end, to match the server's loop probe
    loop_probe: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        ok = [c.latency for c in self.calls if c.code == "OK"]
        errors = Counter(c.code for c in self.calls if c.code != "OK")
        phases = Counter(PHASE_NAME[c.resource.phase] for c in self.calls if c.resource is not None)
        return {
            "target_rate": self.target_rate,
            "seconds": self.seconds,
            "calls": len(self.calls),
            "achieved_rate": round(len(self.calls) / self.elapsed, 1) if self.elapsed else 0.0,
            "latency": latency_summary(ok),
            "latency_from_intended_send": latency_summary(self.from_schedule),
            "generator_behind_schedule_p99_ms": latency_summary(self.behind_schedule)["p99_ms"],
            "errors": dict(errors),
            "phases": dict(phases),
            "server_cpu_cores": round(self.server_cpu / self.elapsed, 3) if self.elapsed else 0.0,
            "server_cpu_ms_per_get_task": round(self.server_cpu * 1000 / max(1, len(self.calls)), 3),
            "aws_calls": self.aws_calls,
            **({"server_event_loop": self.loop_probe} if self.loop_probe else {}),
        }


async def paced(client: Propeller, tasks: list[Task], rate: float, seconds: float, rng: random.Random) -> RateRun:
    """Open loop: GetTask of a random tracked task every 1/rate s, whatever the answers do."""
    loop = asyncio.get_running_loop()
    run = RateRun(rate, seconds)
    n = int(rate * seconds)
    start = loop.time() + 0.05
    pending: set[asyncio.Task[None]] = set()

    async def one(task: Task, due: float) -> None:
        sent = loop.time()
        call = await client.get(task, deadline=10)
        run.behind_schedule.append(sent - due)
        run.from_schedule.append(loop.time() - due)
        run.calls.append(call)

    for i in range(n):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        job = asyncio.create_task(one(rng.choice(tasks), due))
        pending.add(job)
        job.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)
    run.elapsed = loop.time() - start
    return run


async def closed_loop(client: Propeller, tasks: list[Task], in_flight: int, seconds: float,
                      rng: random.Random) -> RateRun:
    """Saturation: `in_flight` callers, each sending its next GetTask as soon as the last one is answered."""
    loop = asyncio.get_running_loop()
    run = RateRun(0, seconds)
    start = loop.time()
    end = start + seconds

    async def worker() -> None:
        while loop.time() < end:
            run.calls.append(await client.get(rng.choice(tasks), deadline=10))

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    run.elapsed = loop.time() - start
    return run


# -- one scenario's processes -------------------------------------------------------------------------------------
class Bench(contextlib.AsyncExitStack):
    """Emulator and server processes for one scenario, the client, and their resource figures."""

    def __init__(self, name: str, args: argparse.Namespace, *, emu_step: float, emu_concurrency: int,
                 config: dict[str, Any], emu_nice: int = 0) -> None:
        super().__init__()
        self.name = name
        self.args = args
        self.emu_step = emu_step
        self.emu_concurrency = emu_concurrency
        self.emu_nice = emu_nice
        self.config = config
        self.server_cpus, self.other_cpus = cpu_split()
        self.log_dir = make_log_dir(name)
        self.emu: EmulatorProcess
        self.server: ServerProcess
        self.client: Propeller
        self.profile = self.log_dir / f"{name}.prof" if args.profile else None
        self.probe = bool(getattr(args, "probe", False))

    async def __aenter__(self) -> Bench:
        await super().__aenter__()
        try:
            return await self._start()
        except BaseException:
            await self.aclose()  # `async with` does not call __aexit__ when __aenter__ fails: stop what started
            raise

    async def _start(self) -> Bench:
        if self.other_cpus:
            os.sched_setaffinity(0, self.other_cpus)
        self.commit = service_commit()  # what the server process is about to import
        self.emu = await asyncio.to_thread(start_emulator, step=self.emu_step, concurrency=self.emu_concurrency,
                                           nice=self.emu_nice,
                                           cpus=self.other_cpus, log_dir=self.log_dir)
        self.push(lambda *_: self.emu.stop())
        self.server = await asyncio.to_thread(ServerProcess, self.config, env=self.emu.client_env(),
                                              cpus=self.server_cpus, log_dir=self.log_dir, profile=self.profile,
                                              probe=self.probe, slow_callback_ms=self.args.slow_callback_ms)
        self.push(lambda *_: self._stop_server())
        self.client = Propeller(self.server.address, stamp_creates=self.probe,
                                read_qps=float(getattr(self.args, "read_qps", 0.0) or 0.0))
        self.push_async_callback(self.client.close)
        self.started = time.monotonic()
        self.cpu_start = self.cpu()
        print(f"[{self.name}] emulator pid {self.emu.pid} ({self.emu.endpoint}), server pid {self.server.pid} "
              f"({self.server.address}), cores: server {sorted(self.server_cpus or [])}, "
              f"generator+emulator {sorted(self.other_cpus or [])}; logs in {self.log_dir}", flush=True)
        return self

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of the server, the emulator (without its job processes) and this generator."""
        return {"server": self.server.cpu(), "emulator": cpu_seconds(self.emu.pid), "generator": cpu_seconds(os.getpid()),
                "at": time.monotonic()}

    @staticmethod
    def cores(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """Average cores used by each process between two `cpu()` snapshots."""
        wall = max(1e-9, after["at"] - before["at"])
        return {k: round((after[k] - before[k]) / wall, 3) for k in after if k != "at"}

    def _stop_server(self) -> None:
        self.server_errors = self.server.errors_logged()
        self.server_exit = self.server.stop()
        if self.profile is not None and self.profile.exists():
            write_profile(self.profile, RESULTS / f"{self.name}_profile.txt")

    def environment(self) -> dict[str, Any]:
        return {
            "cpu_count": os.cpu_count(),
            "server_cores": sorted(self.server_cpus or []),
            "generator_and_emulator_cores": sorted(self.other_cpus or []),
            "python": sys.version.split()[0],
            "emulator": {"step_seconds": self.emu_step, "concurrency": self.emu_concurrency, "nice": self.emu_nice},
            "generator_gc": "off during each measured GetTask run",
            "server_config": self.config,
            "profiled": self.profile is not None,
            "service_commit": self.commit,
            "event_loop_probe": self.probe,
        }

    def resources(self) -> dict[str, Any]:
        mem = self.server.memory()
        emu_jobs = self.emu.jobs()
        wall = time.monotonic() - self.started
        return {"server_peak_rss_mb": mem.get("VmHWM"), "server_rss_mb": mem.get("VmRSS"),
                "emulator_rss_mb": round(emu_jobs.get("rssBytes", 0) / 2**20, 1),
                "wall_seconds": round(wall, 1),
                # Average cores used since the processes were up (the emulator's job processes are not counted).
                "cpu_cores_average": self.cores(self.cpu_start, self.cpu()),
                "server_side_metrics": server_side(self.server.metrics_text())}


def loop_report(lags: list[tuple[float, float]], slow: list[tuple[float, str, float]],
                window: tuple[float, float], gc_pauses: list[tuple[float, int, float]] | None = None) -> dict[str, Any]:
    """The server's event-loop stalls during one load run, and what asyncio's debug mode says ran long."""
    start, end = window
    mine = [lag for t, lag in lags if start <= t <= end]
    by_what: dict[str, list[float]] = {}
    for t, what, seconds in slow:
        if start <= t <= end + 1:
            by_what.setdefault(what, []).append(seconds)
    return {
        "stalls_over_5ms": sum(1 for lag in mine if lag > 0.005),
        "stalls_over_10ms": sum(1 for lag in mine if lag > 0.010),
        "stalled_ms_total": round(sum(mine) * 1000, 1),
        "max_stall_ms": round(max(mine, default=0.0) * 1000, 1),
        "gc_pauses_over_2ms": [{"generation": g, "ms": round(d * 1000, 1)} for t, g, d in gc_pauses or []
                               if start <= t <= end],
        "slow_callbacks": {
            what: {"count": len(v), "total_ms": round(sum(v) * 1000, 1), "max_ms": round(max(v) * 1000, 1)}
            for what, v in sorted(by_what.items(), key=lambda kv: -sum(kv[1]))[:12]
        },
    }


def service_commit() -> str:
    """HEAD of the checkout, marked "+dirty" when aws_array_plugin/ has uncommitted changes."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "aws_array_plugin"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def write_profile(prof: Path, out: Path) -> None:
    import io
    import pstats

    buf = io.StringIO()
    stats = pstats.Stats(str(prof), stream=buf)
    stats.strip_dirs()
    buf.write("== by own time (tottime) ==\n")
    stats.sort_stats("tottime").print_stats(45)
    buf.write("== by cumulative time ==\n")
    stats.sort_stats("cumulative").print_stats(60)
    out.write_text(buf.getvalue())
    print(f"profile: {out}")


async def list_jobs_by_prefix(emu: EmulatorProcess, prefix: str) -> list[dict[str, Any]]:
    """Every job whose name starts with `prefix` (any status): ListJobs with a JOB_NAME filter, all pages."""

    def run() -> list[dict[str, Any]]:
        batch = emu.batch_client()
        out: list[dict[str, Any]] = []
        token = None
        while True:
            params: dict[str, Any] = {"jobQueue": emu.info["queue"], "maxResults": 1000,
                                      "filters": [{"name": "JOB_NAME", "values": [f"{prefix}*"]}]}
            if token:
                params["nextToken"] = token
            resp = batch.list_jobs(**params)
            out.extend(resp.get("jobSummaryList", []))
            token = resp.get("nextToken")
            if not token:
                return out

    return await asyncio.to_thread(run)


def _windows(pairs: list[tuple[float, float]], width: float) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for at, value in pairs:
        out.setdefault(int(at // width), []).append(value)
    return out


def max_in_window(times: list[float], window: float) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# -- burst --------------------------------------------------------------------------------------------------------
async def burst(args: argparse.Namespace) -> dict[str, Any]:
    factory = TaskFactory()
    run_id = uuid.uuid4().hex[:5]
    prefix = f"b{run_id}-"
    tasks = [factory.make(f"{prefix}{i}", "aws-batch", "sleep 600") for i in range(args.tasks)]
    config: dict[str, Any] = {"defaultQueue": "default",
                              "rateLimits": {"submit": {"rate": args.submit_rate, "burst": int(args.submit_rate)}},
                              "server": {"gracePeriod": "2s"}}
    if args.create_wait is not None:
        config["submission"] = {"createWait": args.create_wait}
    rng = random.Random(1)
    async with Bench("burst", args, emu_step=0.5, emu_concurrency=4, config=config) as b:
        reset_peak_rss(b.server.pid)
        stats0 = b.emu.stats()
        cpu0 = b.server.cpu()
        cpus0 = b.cpu()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        wall0 = time.time()
        first_gets: list[Call] = []
        get_sem = asyncio.Semaphore(64)
        bg: set[asyncio.Task[None]] = set()
        finished_at: list[float] = []

        async def first_get(task: Task) -> None:
            async with get_sem:
                first_gets.append(await b.client.get(task))

        started_at: list[tuple[float, float]] = []  # (sent, latency) of each CreateTask, from the burst start

        async def create(task: Task) -> Call:
            sent = loop.time() - t0
            call = await b.client.create(task, args.deadline)
            finished_at.append(loop.time() - t0)
            started_at.append((sent, call.latency))
            if call.code == "OK":  # propeller's syncOnCreate: the first GetTask is queued at once
                job = asyncio.create_task(first_get(task))
                bg.add(job)
                job.add_done_callback(bg.discard)
            return call

        creates: list[Call] = await gather_bounded([lambda t=t: create(t) for t in tasks], args.in_flight)  # type: ignore[misc]
        create_seconds = loop.time() - t0
        cpu_create = b.server.cpu() - cpu0
        cores_create = b.cores(cpus0, b.cpu())
        create_window = (wall0, time.time())
        await asyncio.gather(*bg)
        print(f"[burst] {len(tasks)} CreateTasks in {create_seconds:.1f} s: "
              f"{latency_summary(c.latency for c in creates if c.code == 'OK')}", flush=True)

        # Propeller's resync: GetTask every task still waiting for its SubmitJob, until all have their job.
        cycles: list[dict[str, Any]] = []
        poll_latencies: list[float] = [c.latency for c in first_gets if c.code == "OK"]
        poll_errors: Counter[str] = Counter(c.code for c in first_gets if c.code != "OK")
        positions_seen: list[int] = []
        failures: list[str] = []
        # A naive connector describes the job on every GetTask that has one.
        gets_with_job = sum(1 for c in first_gets if c.resource is not None and not is_waiting(c.resource))
        time_limit = t0 + args.tasks / args.submit_rate * 2 + 120
        stats_prev = b.emu.stats()
        for t in tasks:
            t.has_job = t.created_with_ids or (t.last is not None and not is_waiting(t.last))
        while True:
            pending = [t for t in tasks if not t.has_job]
            if not pending or loop.time() > time_limit:
                break
            started = loop.time() - t0
            calls = await poll_cycle(b.client, pending, args.resync, rng)
            for c in calls:
                if c.code != "OK":
                    poll_errors[c.code] += 1
                    continue
                poll_latencies.append(c.latency)
                assert c.resource is not None
                m = _POSITION.search(c.resource.message)
                if is_waiting(c.resource):
                    if m:
                        positions_seen.append(int(m.group(1)))
                else:
                    gets_with_job += 1
            for t in pending:
                if t.last is not None and not is_waiting(t.last):
                    t.has_job = True
                    if t.last.phase in TERMINAL:
                        failures.append(f"{t.execution}: {PHASE_NAME[t.last.phase]} {t.last.message[:200]}")
            stats_now = b.emu.stats()
            cycles.append({"t": round(started, 1), "polled": len(pending),
                           "still_waiting": sum(1 for t in tasks if not t.has_job),
                           "aws_calls": diff_counts(stats_now, stats_prev)})
            stats_prev = stats_now
        all_have_jobs_at = loop.time() - t0
        cpu_total = b.server.cpu() - cpu0
        stats = diff_counts(b.emu.stats(), stats0)
        server_metrics = b.server.metrics_text()

        # Exactly once: every deterministic job name appears once among all jobs of this run.
        jobs = await list_jobs_by_prefix(b.emu, prefix)
        names = Counter(j["jobName"] for j in jobs)
        expected = {t.job_name for t in tasks}
        created_at = sorted(j["createdAt"] / 1000 for j in jobs)
        span = created_at[-1] - created_at[0] if len(created_at) > 1 else 0.0
        resources = b.resources()
        env = b.environment()

    create_loop = loop_report(b.server.loop_lags(), b.server.slow_callbacks(), create_window,
                              b.server.gc_pauses()) if b.probe else {}
    splits = b.server.create_splits() if b.probe else []
    create_split = {
        "before_handler": latency_summary(a for _, a, _ in splits),
        "in_handler": latency_summary(h for _, _, h in splits),
    } if splits else {}
    ok = [c for c in creates if c.code == "OK"]
    errors = Counter(c.code for c in creates if c.code != "OK")
    latency = latency_summary(c.latency for c in ok)
    submit_calls = stats.get("SubmitJob", 0)
    duplicates = {n: k for n, k in names.items() if k > 1}
    queued_outcomes = metric_samples(server_metrics, "aws_array_plugin_submissions_total")
    result = {
        "scenario": "burst",
        "command": " ".join(["python benchmarks/load.py", *sys.argv[1:]]),
        "environment": env,
        "tasks": args.tasks,
        "client_in_flight": args.in_flight,
        "create_deadline_seconds": args.deadline,
        "submit_rate_limit": args.submit_rate,
        "create_wait": args.create_wait or "0.5s (default)",
        "create": {
            "latency": latency,
            "errors": dict(errors),
            "deadline_exceeded": errors.get("DEADLINE_EXCEEDED", 0),
            "answered_with_job_ids": sum(1 for t in tasks if t.created_with_ids),
            "answered_waiting_to_submit": sum(1 for t in tasks if t.meta and not t.created_with_ids),
            "all_answered_after_seconds": round(create_seconds, 2),
            # Slow CreateTasks by when they were sent: {second: [count, p99 ms]} per 2 s window.
            "latency_by_send_window": {
                f"{w * 2}-{w * 2 + 2}s": [len(v), latency_summary(v)["p99_ms"]]
                for w, v in sorted(_windows(started_at, 2.0).items())
            },
            "completion_since_burst_start_p99_s": round(sorted(finished_at)[max(0, math.ceil(len(finished_at) * .99) - 1)], 2),
            "server_cpu_cores_during_creates": round(cpu_create / create_seconds, 3),
            # Includes the background SubmitJob work and the first GetTasks of the same seconds.
            "server_cpu_ms_per_create": round(cpu_create * 1000 / args.tasks, 2),
            "creates_per_second": round(args.tasks / create_seconds, 1),
            "cpu_cores_during_creates": cores_create,
            **({"server_event_loop_during_creates": create_loop} if create_loop else {}),
            **({"time_split_at_server": create_split} if create_split else {}),
            "server_submission_outcomes": queued_outcomes,
        },
        "poll": {
            "resync_seconds": args.resync,
            "read_qps": args.read_qps or "unlimited",
            "get_task_calls": len(poll_latencies) + sum(poll_errors.values()),
            "latency": latency_summary(poll_latencies),
            "errors": dict(poll_errors),
            "max_position_seen": max(positions_seen, default=0),
            "all_have_their_job_after_seconds": round(all_have_jobs_at, 1),
            "tasks_without_job": sum(1 for t in tasks if not t.has_job),
            "terminal_while_waiting": failures[:10],
            "cycles": cycles,
        },
        "exactly_once": {
            "emulator_submit_job_calls": submit_calls,
            "jobs_found_by_name": len(jobs),
            "distinct_names": len(names),
            "duplicate_names": len(duplicates),
            "missing_names": len(expected - set(names)),
            "unexpected_names": len(set(names) - expected),
            "ok": submit_calls == args.tasks and len(jobs) == args.tasks and not duplicates and set(names) == expected,
        },
        "submit_rate": {
            "limit_per_second": args.submit_rate,
            "achieved_per_second": round((len(created_at) - 1) / span, 2) if span else None,
            "max_jobs_in_any_1s_window": max_in_window(created_at, 1.0),
            "first_to_last_submit_seconds": round(span, 1),
        },
        "aws_calls_total": stats,
        "server_cpu_cores_whole_run": round(cpu_total / all_have_jobs_at, 3),
        "resources": resources,
        "comparison": {
            "go_plugin_submit_seconds_at_its_15_per_s_limiter": round(args.tasks / 15, 1),
            "go_plugin_describe_on_insert": args.tasks,
            "naive_describe_calls": gets_with_job,
        },
    }
    result["targets"] = {
        "create_p99_under_1s": latency["p99_ms"] < 1000,
        "zero_deadline_errors": not errors,
        "exactly_once": result["exactly_once"]["ok"],
    }
    return result


def burst_md(r: dict[str, Any]) -> str:
    c, p, e, s = r["create"], r["poll"], r["exactly_once"], r["submit_rate"]
    lat = c["latency"]
    aws = r["aws_calls_total"]
    return "\n".join([
        f"### burst: {r['tasks']:,} CreateTasks at once, SubmitJob paced at {r['submit_rate_limit']:g}/s",
        "",
        f"`{r['command']}` ({r['client_in_flight']} CreateTasks in flight, {r['create_deadline_seconds']:g} s deadline "
        f"each; server on core {r['environment']['server_cores']}; emulator concurrency "
        f"{r['environment']['emulator']['concurrency']}; GetTask resync {p['resync_seconds']:g} s, "
        + (f"GetTask read limiter {p['read_qps']:g}/s)" if isinstance(p.get("read_qps"), int | float)
           else "no GetTask read limiter)"),
        "",
        "| measure | value | target |",
        "| --- | --- | --- |",
        f"| CreateTask latency p50 / p99 / max | {lat['p50_ms']:.0f} / {lat['p99_ms']:.0f} / {lat['max_ms']:.0f} ms | "
        f"p99 < 1,000 ms: {'met' if r['targets']['create_p99_under_1s'] else 'NOT met'} |",
        f"| CreateTask errors (DEADLINE_EXCEEDED) | {sum(c['errors'].values())} ({c['deadline_exceeded']}) | "
        f"0: {'met' if r['targets']['zero_deadline_errors'] else 'NOT met'} |",
        f"| all {r['tasks']:,} CreateTasks answered after | {c['all_answered_after_seconds']} s "
        f"({c['creates_per_second']:g}/s; server CPU {c['server_cpu_ms_per_create']} ms per CreateTask) | |",
        f"| answered with job id / \"waiting to submit\" | {c['answered_with_job_ids']:,} / "
        f"{c['answered_waiting_to_submit']:,} | |",
        f"| CPU during the creates: server / emulator / generator | {c['cpu_cores_during_creates']['server']:.2f} / "
        f"{c['cpu_cores_during_creates']['emulator']:.2f} / {c['cpu_cores_during_creates']['generator']:.2f} cores | |",
        f"| server-side CreateTask time (handler, mean; `submission.createWait` {r['create_wait']}) | "
        f"{r['resources']['server_side_metrics']['rpc_latency']['CreateTask']['mean_ms']:.0f} ms | |",
        *([f"| CreateTask time before the handler starts (sent to accepted) / in the handler, p50 / p99 | "
           f"{c['time_split_at_server']['before_handler']['p50_ms']:.0f} / "
           f"{c['time_split_at_server']['before_handler']['p99_ms']:.0f} ms / "
           f"{c['time_split_at_server']['in_handler']['p50_ms']:.0f} / "
           f"{c['time_split_at_server']['in_handler']['p99_ms']:.0f} ms | |"] if "time_split_at_server" in c else []),
        f"| SubmitJob calls (emulator) / jobs found by name / distinct names | {e['emulator_submit_job_calls']:,} / "
        f"{e['jobs_found_by_name']:,} / {e['distinct_names']:,} | exactly once: "
        f"{'met' if e['ok'] else 'NOT met'} |",
        f"| duplicate / missing / unexpected job names | {e['duplicate_names']} / {e['missing_names']} / "
        f"{e['unexpected_names']} | 0 / 0 / 0 |",
        f"| submit rate achieved (first to last SubmitJob) | {s['achieved_per_second']} jobs/s over "
        f"{s['first_to_last_submit_seconds']} s (max {s['max_jobs_in_any_1s_window']} in any 1 s) | "
        f"{s['limit_per_second']:g}/s |",
        f"| every task has its job (GetTask) after | {p['all_have_their_job_after_seconds']} s "
        f"(largest \"position N\" seen: {p['max_position_seen']:,}) | |",
        f"| GetTask while waiting: calls, p50 / p99 / max | {p['get_task_calls']:,}, {p['latency']['p50_ms']} / "
        f"{p['latency']['p99_ms']} / {p['latency']['max_ms']} ms, errors {sum(p['errors'].values())} | |",
        f"| AWS calls, whole run | {', '.join(f'{k} {v:,}' for k, v in aws.items())} | |",
        f"| server peak RSS / CPU whole run | {r['resources']['server_peak_rss_mb']} MB / "
        f"{r['server_cpu_cores_whole_run']:.2f} cores | |",
        "",
        f"Go `aws_array` plugin, same burst: SubmitJob inside propeller's round behind its 15/s limiter "
        f"({r['comparison']['go_plugin_submit_seconds_at_its_15_per_s_limiter']} s for all) and one immediate "
        f"DescribeJobs per inserted task ({r['comparison']['go_plugin_describe_on_insert']:,} calls); a naive connector "
        f"would have made {r['comparison']['naive_describe_calls']:,} DescribeJobs for these GetTasks "
        f"(measured: {aws.get('DescribeJobs', 0):,}).",
    ])


# -- track --------------------------------------------------------------------------------------------------------
async def track(args: argparse.Namespace) -> dict[str, Any]:
    factory = TaskFactory()
    run_id = uuid.uuid4().hex[:5]
    # Every tenth child fails after a second, the others succeed after two, so children keep finishing and
    # failing during the measured cycles; single jobs sit RUNNABLE behind them (a busy account).
    child_script = 'sleep 1; [ $((AWS_BATCH_JOB_ARRAY_INDEX % 10)) -eq 0 ] && exit 1; sleep 1'
    arrays = [factory.make(f"t{run_id}-a{i}", "container_array", child_script, args.children)
              for i in range(args.arrays)]
    singles = [factory.make(f"t{run_id}-s{i}", "aws-batch", "sleep 3600") for i in range(args.singles)]
    tasks = arrays + singles
    cycle = args.cycle
    refresh = args.refresh_interval or cycle
    config = {"defaultQueue": "default",
              "status": {"refreshInterval": f"{refresh:g}s", "maxStaleness": f"{refresh * 1.2:g}s"},
              # Setup only: the tracked jobs are submitted quickly; the limits that matter here are the defaults.
              "rateLimits": {"submit": {"rate": 200, "burst": 200}},
              "server": {"gracePeriod": "2s"}}
    rng = random.Random(2)
    # The emulator yields its core to the generator here: this scenario measures GetTask latency, which the
    # generator must read on time. (In burst and delete the emulator's S3 is the bottleneck: no nice there.)
    async with Bench("track", args, emu_step=0.5, emu_concurrency=args.emu_concurrency, config=config,
                     emu_nice=EMULATOR_NICE) as b:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        create_calls: list[Call] = []
        first_gets: list[Call] = []

        async def create_then_get(task: Task) -> None:
            create_calls.append(await b.client.create(task, 60))
            first_gets.append(await b.client.get(task))

        # Arrays first so their children get the compute slots.
        await gather_bounded([lambda t=t: create_then_get(t) for t in arrays], 20)  # type: ignore[misc]
        await gather_bounded([lambda t=t: create_then_get(t) for t in singles], 100)  # type: ignore[misc]
        setup_seconds = loop.time() - t0
        create_errors = Counter(c.code for c in create_calls if c.code != "OK")
        print(f"[track] {len(tasks)} tasks created in {setup_seconds:.1f} s (errors {dict(create_errors)})", flush=True)

        async def one_cycle(label: str, seconds: float) -> tuple[dict[str, Any], list[Call]]:
            """One resync of every task, with the AWS calls it caused and the Go/naive figures for the same mix."""
            before = b.emu.stats()
            sizes_before = bucket_counts(b.server.metrics_text(), BATCH_SIZE_METRIC)
            failed_before = b.emu.jobs()["units"]["FAILED"]
            mix_before = job_mix(tasks)
            calls = await poll_cycle(b.client, tasks, seconds, rng)
            aws = diff_counts(b.emu.stats(), before)
            sizes = bucket_delta(bucket_counts(b.server.metrics_text(), BATCH_SIZE_METRIC), sizes_before)
            failed = b.emu.jobs()["units"]["FAILED"] - failed_before
            mix = mix_before if mix_before.live_parents else job_mix(tasks)
            record = {
                "cycle": label,
                "seconds": seconds,
                "get_task_calls": len(calls),
                "get_task_errors": sum(1 for c in calls if c.code != "OK"),
                "tasks_waiting_to_submit": sum(1 for t in tasks if t.last is not None and is_waiting(t.last)),
                "aws_calls": aws,
                "describe_jobs": aws.get("DescribeJobs", 0),
                "describe_ids_per_call": sizes,
                "children_newly_failed": failed,
                "goal": math.ceil(len(tasks) / 100) + 1 + failed,
                "go_formula": go_describe_formula(mix),
                "go_batched": go_describe_batched(mix),
                "naive": sum(1 for t in tasks if t.last is not None and t.last.phase not in TERMINAL),
                "live_children": sum(mix.live_array_children),
            }
            print(f"[track] cycle {label}: {aws} (ids per call {sizes}; newly failed children {failed})", flush=True)
            return record, calls

        # Warm-up: resync until every task has its job (the first cycles also carry the describes of jobs
        # submitted after their CreateTask answered), plus one more; then the measured cycles.
        warmup: list[dict[str, Any]] = []
        settled = False
        while len(warmup) < 6:
            record, _ = await one_cycle(f"warm-up {len(warmup) + 1}", min(cycle, 10.0))
            warmup.append(record)
            if settled:
                break
            settled = record["tasks_waiting_to_submit"] == 0
        cycles: list[dict[str, Any]] = []
        cycle_latencies: list[float] = []
        for i in range(args.cycles):
            record, calls = await one_cycle(str(i + 1), cycle)
            cycles.append(record)
            cycle_latencies.extend(c.latency for c in calls if c.code == "OK")

        # Throughput: GetTask open-loop at the target rate, then a search down if p99 misses the target.
        mem_before_tp = b.server.memory()

        async def measured(run: Callable[[], Awaitable[RateRun]]) -> RateRun:
            s0, c0, w0 = b.emu.stats(), b.server.cpu(), time.time()
            # The generator's own collector pauses would count as GetTask latency: none while measuring.
            gc.collect()
            gc.disable()
            try:
                r = await run()
            finally:
                gc.enable()
            r.server_cpu = b.server.cpu() - c0
            r.aws_calls = diff_counts(b.emu.stats(), s0)
            r.window = (w0, time.time())
            return r

        runs = [await measured(lambda: paced(b.client, tasks, args.rate, args.seconds, rng))]
        print(f"[track] {args.rate}/s: {runs[0].summary()['latency']}", flush=True)
        if runs[-1].summary()["latency"]["p99_ms"] >= args.p99_target_ms:
            for rate in (r for r in (800, 600, 500, 400, 300, 200, 100) if r < args.rate):
                runs.append(await measured(lambda rate=rate: paced(b.client, tasks, rate, 10, rng)))  # type: ignore[misc]
                print(f"[track] {rate}/s: {runs[-1].summary()['latency']}", flush=True)
                if runs[-1].summary()["latency"]["p99_ms"] < args.p99_target_ms:
                    break
        saturation = await measured(lambda: closed_loop(b.client, tasks, args.saturation_in_flight, 10, rng))
        print(f"[track] saturation: {saturation.summary()['achieved_rate']}/s", flush=True)
        server_metrics = b.server.metrics_text()
        resources = b.resources()
        env = b.environment()
        emu_jobs = b.emu.jobs()

    if b.probe:  # the server has stopped: its loop probe and asyncio's slow-callback log are complete
        lags, slow, pauses = b.server.loop_lags(), b.server.slow_callbacks(), b.server.gc_pauses()
        for r in [*runs, saturation]:
            r.loop_probe = loop_report(lags, slow, r.window, pauses)
        probe_summary = b.server.probe_summary()
    else:
        probe_summary = {}
    describe = [c["describe_jobs"] for c in cycles]
    tp = [r.summary() for r in runs]
    sat = saturation.summary()
    result = {
        "scenario": "track",
        "command": " ".join(["python benchmarks/load.py", *sys.argv[1:]]),
        "environment": env,
        "singles": args.singles, "arrays": args.arrays, "children_per_array": args.children,
        "tracked_children": args.arrays * args.children,
        "p99_target_ms": args.p99_target_ms,
        "cycle_seconds": cycle,
        "refresh_interval_seconds": refresh,
        "warmup_cycles": warmup,
        # The Go plugin describes each task once on insert (syncOnCreate): one call per single job (id + `:0`),
        # ceil((1 + children) / 100) per array.
        "go_describe_on_insert": args.singles + args.arrays * math.ceil((1 + args.children) / 100),
        "describe_jobs_during_warmup": sum(c["describe_jobs"] for c in warmup),
        "setup": {"seconds": round(setup_seconds, 1), "create_errors": dict(create_errors),
                  "create_latency": latency_summary(c.latency for c in create_calls if c.code == "OK")},
        "cycles": cycles,
        "get_task_latency_during_cycles": latency_summary(cycle_latencies),
        "throughput": tp,
        "saturation": {**sat, "in_flight": args.saturation_in_flight},
        "server_rss_before_throughput_mb": mem_before_tp,
        "resources": resources,
        "server_stale_answers": metric_samples(server_metrics, "aws_array_plugin_stale_answers_total"),
        "emulator_jobs_at_end": emu_jobs,
        **({"server_probe": probe_summary} if probe_summary else {}),
    }
    first = tp[0]
    best = next((r for r in tp if r["latency"]["p99_ms"] < args.p99_target_ms), None)
    result["targets"] = {
        "describe_at_goal": bool(cycles) and all(c["describe_jobs"] <= c["goal"] for c in cycles),
        "describe_jobs_per_cycle": describe,
        "get_task_p99_under_10ms_at_target_rate": first["latency"]["p99_ms"] < args.p99_target_ms
        and first["achieved_rate"] >= 0.97 * args.rate and not first["errors"],
        "max_paced_rate_with_p99_under_target": best["target_rate"] if best else None,
        "peak_rss_under_500mb": (resources["server_peak_rss_mb"] or 0) < 500,
    }
    return result


def _api_count(api: str, cycle: dict[str, Any]) -> str:
    return str(cycle["aws_calls"].get(api, 0))


def track_md(r: dict[str, Any]) -> str:
    cyc = [*r["warmup_cycles"], *r["cycles"]]
    apis = sorted({k for c in cyc for k in c["aws_calls"]})
    head = "| scheme | " + " | ".join(f"{c['cycle']}" for c in cyc) + " |"
    rule = "| --- |" + " --- |" * len(cyc)

    def row(name: str, cell: Callable[[dict[str, Any]], str]) -> str:
        return f"| {name} | " + " | ".join(cell(c) for c in cyc) + " |"

    parents = r["singles"] + r["arrays"]
    lines = [
        f"### track: {r['singles']:,} single jobs + {r['arrays']} arrays x {r['children_per_array']:,} children "
        f"({r['tracked_children']:,} children), poll cycle {r['cycle_seconds']:g} s",
        "",
        f"`{r['command']}` (server on core {r['environment']['server_cores']}; emulator concurrency "
        f"{r['environment']['emulator']['concurrency']}: children run through a few slots, every tenth fails, the "
        f"single jobs stay RUNNABLE behind them; `status.refreshInterval` {r['refresh_interval_seconds']:g} s, "
        f"`maxStaleness` 1.2x; creating the {parents:,} tasks took {r['setup']['seconds']} s, then warm-up cycles "
        "until every task had its job, plus one)",
        "",
        "AWS calls per poll cycle (every task gets one GetTask per cycle, spread over it):",
        "",
        head, rule,
        row("**DescribeJobs, aws-array-plugin (measured)**", lambda c: f"**{c['describe_jobs']}**"),
        row("ids per DescribeJobs call (server histogram)",
            lambda c: ", ".join(f"{k}: {v}" for k, v in c["describe_ids_per_call"].items()) or "-"),
        row(f"goal: ceil({parents}/100) + 1 + newly failed children",
            lambda c: f"{c['goal']} (= {c['goal'] - 1 - c['children_newly_failed']} + 1 + {c['children_newly_failed']})"),
        row("Go aws_array plugin, formula ceil((parents + live children)/100)", lambda c: f"{c['go_formula']:,}"),
        row("Go aws_array plugin, its real batching (phantom `:0` child per single job)",
            lambda c: f"{c['go_batched']:,}"),
        row("naive connector: one DescribeJobs per GetTask", lambda c: f"{c['naive']:,}"),
        row("tasks still waiting for SubmitJob after the cycle", lambda c: str(c["tasks_waiting_to_submit"])),
    ]
    for api in apis:
        if api != "DescribeJobs":
            lines.append(row(f"{api} (measured)", functools.partial(_api_count, api)))
    lines += ["", f"Creating and first describing the tasks: the Go plugin's immediate describe on insert costs "
                  f"{r['go_describe_on_insert']:,} DescribeJobs; aws-array-plugin made {r['describe_jobs_during_warmup']:,} "
                  "in the warm-up cycles (creation included)."]
    g = r["get_task_latency_during_cycles"]
    if g["count"]:
        lines += ["", f"GetTask latency during the measured cycles ({g['count']:,} calls, "
                      f"{parents / r['cycle_seconds']:.0f}/s): p50 {g['p50_ms']} ms, p99 {g['p99_ms']} ms, "
                      f"max {g['max_ms']} ms."]
    probe = any("server_event_loop" in t for t in r["throughput"])
    lines += [
        "",
        "GetTask throughput over the tracked tasks (open loop: sent on schedule whatever the answers do; latency per "
        "call, and from the intended send time):",
        "",
        "| load | achieved | p50 | p99 | max | p99 from intended send | errors | server CPU | AWS calls during the run |"
        + (" server loop stalls > 10 ms (max) | full (gen-2) GC pauses |" if probe else ""),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- | --- |" if probe else ""),
    ]
    for t in [*r["throughput"], {**r["saturation"], "target_rate": None}]:
        load = f"open loop {t['target_rate']:g}/s for {t['seconds']:g} s" if t["target_rate"] else \
            f"closed loop, {r['saturation']['in_flight']} in flight, {t['seconds']:g} s"
        lat, lfs = t["latency"], t["latency_from_intended_send"]
        ev = t.get("server_event_loop", {})
        lines.append(
            f"| {load} | {t['achieved_rate']:,}/s | {lat['p50_ms']} ms | {lat['p99_ms']} ms | {lat['max_ms']} ms | "
            f"{str(lfs['p99_ms']) + ' ms' if t['target_rate'] else '-'} | {sum(t['errors'].values())} | "
            f"{t['server_cpu_cores']:.2f} cores ({t['server_cpu_ms_per_get_task']} ms/GetTask) | "
            f"{', '.join(f'{k} {v}' for k, v in t['aws_calls'].items()) or 'none'} |"
            + (f" {ev.get('stalls_over_10ms')} ({ev.get('max_stall_ms')} ms) | "
               + (", ".join(f"{g['ms']:g} ms" for g in ev.get("gc_pauses_over_2ms", []) if g["generation"] == 2)
                  or "none") + " |" if probe else ""))
    res, tg = r["resources"], r["targets"]
    first = r["throughput"][0]
    lines += [
        "",
        f"Server peak RSS (VmHWM, whole run) {res['server_peak_rss_mb']} MB; emulator RSS {res['emulator_rss_mb']} MB.",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
    ]
    if r["cycles"]:
        lines.append(f"| DescribeJobs per cycle at the goal (measured cycles) | "
                     f"{', '.join(map(str, tg['describe_jobs_per_cycle']))} | {'yes' if tg['describe_at_goal'] else 'NO'} |")
    lines += [
        f"| GetTask p99 < {r.get('p99_target_ms', 10):g} ms at {first['target_rate']:g}/s | {first['latency']['p99_ms']} ms "
        f"at {first['achieved_rate']:,}/s | {'yes' if tg['get_task_p99_under_10ms_at_target_rate'] else 'NO'} |",
        f"| peak RSS < 500 MB | {res['server_peak_rss_mb']} MB | {'yes' if tg['peak_rss_under_500mb'] else 'NO'} |",
    ]
    if not tg["get_task_p99_under_10ms_at_target_rate"]:
        best = tg["max_paced_rate_with_p99_under_target"]
        lines.append(f"| highest paced rate with p99 < 10 ms | {f'{best:g}/s' if best else 'none of those tried'} | |")
    return "\n".join(lines)


# -- delete -------------------------------------------------------------------------------------------------------
async def delete(args: argparse.Namespace) -> dict[str, Any]:
    factory = TaskFactory()
    run_id = uuid.uuid4().hex[:5]
    prefix = f"d{run_id}-"
    tasks = [factory.make(f"{prefix}s{i}", "aws-batch", "sleep 600") for i in range(args.delete_singles)]
    tasks += [factory.make(f"{prefix}a{i}", "container_array", "sleep 600", args.delete_children)
              for i in range(args.delete_arrays)]
    rng = random.Random(3)
    rng.shuffle(tasks)
    config = {"defaultQueue": "default", "server": {"gracePeriod": "2s"},
              "status": {"refreshInterval": "5s", "maxStaleness": "6s"}}
    n_delete = max(2, round(len(tasks) * args.delete_share))
    async with Bench("delete", args, emu_step=0.5, emu_concurrency=32, config=config) as b:
        loop = asyncio.get_running_loop()
        stats0 = b.emu.stats()
        t0 = loop.time()
        creates = await gather_bounded([lambda t=t: b.client.create(t, 10) for t in tasks], 200)  # type: ignore[misc]
        create_errors = Counter(c.code for c in creates if c.code != "OK")
        await gather_bounded([lambda t=t: b.client.get(t) for t in tasks], 64)  # type: ignore[misc]
        # Wave A, while SubmitJob is still working through the queue: tasks propeller knows as "waiting to
        # submit" (no job id in their resource meta). A fresh GetTask gives their current queue positions; most
        # come from the back of the queue, three from its head (being submitted right now: the race between
        # DeleteTask's cancel and a SubmitJob in flight).
        pending = [t for t in tasks if not t.created_with_ids]
        await gather_bounded([lambda t=t: b.client.get(t) for t in pending], 64)  # type: ignore[misc]
        waiting = [t for t in pending if t.last is not None and is_waiting(t.last)]
        waiting.sort(key=queue_position)  # position 0: a worker is submitting it now
        head = [t for t in waiting if t.kind == "aws-batch"][:3]
        back = [t for t in reversed(waiting) if t.kind == "aws-batch" and t not in head][: n_delete // 2 - 4]
        wave_a = head + back + [t for t in reversed(waiting) if t.kind == "container_array"][:1]
        a_started = loop.time() - t0
        a_calls = await gather_bounded([lambda t=t: b.client.delete(t) for t in wave_a], 64)  # type: ignore[misc]
        a_seconds = loop.time() - t0 - a_started
        for t in wave_a:
            t.deleted = "before-submit"
        # Then every remaining task gets its job; wave B deletes running and RUNNABLE ones.
        deadline = loop.time() + len(tasks) / 40 * 2 + 60
        while loop.time() < deadline:
            await poll_cycle(b.client, [t for t in tasks if not t.deleted], 2.0, rng)
            live = [t for t in tasks if not t.deleted]
            if all(t.last is not None and not is_waiting(t.last) for t in live) and \
                    sum(1 for t in live if t.last is not None and t.last.phase == Phase.RUNNING) >= 10:
                break
        live = [t for t in tasks if not t.deleted]
        running = [t for t in live if t.last is not None and t.last.phase == Phase.RUNNING]
        queued = [t for t in live if t.last is not None and t.last.phase != Phase.RUNNING]
        want_b = n_delete - len(wave_a)
        wave_b = rng.sample(running, min(len(running), want_b // 2))
        wave_b += [t for t in queued if t.kind == "container_array"][:1]
        wave_b += rng.sample([t for t in queued if t.kind == "aws-batch"], want_b - len(wave_b))
        b_started = loop.time() - t0
        b_calls = await gather_bounded([lambda t=t: b.client.delete(t) for t in wave_b], 64)  # type: ignore[misc]
        b_seconds = loop.time() - t0 - b_started
        for t in wave_b:
            t.deleted = "running"
        # Propeller may call DeleteTask again (a retried abort): it must stay harmless.
        repeats = wave_b[:5]
        repeat_calls = await gather_bounded([lambda t=t: b.client.delete(t) for t in repeats], 8)  # type: ignore[misc]
        # Keep polling everything for a while (deleted tasks too, as after a propeller restart): nothing may
        # be submitted again.
        submits_after_deletes = b.emu.stats().get("SubmitJob", 0)
        for _ in range(3):
            await poll_cycle(b.client, tasks, 2.0, rng)
        stats = diff_counts(b.emu.stats(), stats0)
        submits_late = b.emu.stats().get("SubmitJob", 0) - submits_after_deletes
        deleted = wave_a + wave_b
        jobs = await list_jobs_by_prefix(b.emu, prefix)
        resources = b.resources()
        env = b.environment()
        seconds = loop.time() - t0

    by_name: dict[str, list[dict[str, Any]]] = {}
    for j in jobs:
        by_name.setdefault(j["jobName"], []).append(j)
    checks: list[dict[str, Any]] = []
    for t in deleted:
        found = by_name.get(t.job_name, [])
        reason = f"Aborted by Flyte ({PROJECT}/{DOMAIN}/{t.execution})"
        summary = ((found[0].get("arrayProperties") or {}).get("statusSummary") or {}) if found else {}
        live_children = sum(v for k, v in summary.items() if k not in ("SUCCEEDED", "FAILED"))
        checks.append({
            "execution": t.execution, "kind": t.kind, "wave": t.deleted, "jobs": len(found),
            "status": found[0]["status"] if found else None,
            "status_reason": found[0].get("statusReason") if found else None,
            "live_children": live_children,
            "get_task_after": f"{PHASE_NAME[t.last.phase]}: {t.last.message[:120]}" if t.last else None,
            "ok": len(found) == 0 or (len(found) == 1 and found[0]["status"] == "FAILED"
                                      and found[0].get("statusReason") == reason and live_children == 0),
        })
    kept = [t for t in tasks if not t.deleted]
    kept_ok = sum(1 for t in kept if len(by_name.get(t.job_name, [])) == 1
                  and by_name[t.job_name][0]["status"] != "FAILED")
    submitted_deleted = sum(1 for c in checks if c["jobs"])
    cancelled_before_submit = sum(1 for c in checks if not c["jobs"])
    expected_terminate = submitted_deleted + sum(1 for t in repeats if by_name.get(t.job_name))
    all_calls = a_calls + b_calls + repeat_calls
    result = {
        "scenario": "delete",
        "command": " ".join(["python benchmarks/load.py", *sys.argv[1:]]),
        "environment": env,
        "tasks": len(tasks),
        "singles": args.delete_singles, "arrays": args.delete_arrays, "children_per_array": args.delete_children,
        "create_errors": dict(create_errors),
        "deleted": len(deleted),
        "deletes_in_flight": 64,
        "wave_a": {"at_seconds": round(a_started, 1), "tasks": len(wave_a), "took_seconds": round(a_seconds, 2),
                   "submitted_anyway": sum(1 for c in checks if c["wave"] == "before-submit" and c["jobs"])},
        "wave_b": {"at_seconds": round(b_started, 1), "tasks": len(wave_b), "took_seconds": round(b_seconds, 2),
                   "running_in_aws": sum(1 for t in wave_b if t in running)},
        "repeated_deletes": len(repeats),
        "delete_latency": latency_summary(c.latency for c in all_calls if c.code == "OK"),
        "delete_errors": dict(Counter(c.code for c in all_calls if c.code != "OK")),
        "terminate_job_calls": stats.get("TerminateJob", 0),
        "terminate_job_expected": expected_terminate,
        "cancelled_before_submit": cancelled_before_submit,
        "submit_job_calls": stats.get("SubmitJob", 0),
        "jobs_found_by_name": len(jobs),
        "submit_job_after_deletes": submits_late,
        "deleted_checks_ok": sum(1 for c in checks if c["ok"]),
        "deleted_checks_failed": [c for c in checks if not c["ok"]],
        "deleted_sample": checks[:3] + [c for c in checks if c["wave"] == "running"][:3],
        "kept_tasks_with_one_live_job": kept_ok,
        "kept_tasks": len(kept),
        "aws_calls_total": stats,
        "resources": resources,
        "seconds": round(seconds, 1),
        "go_plugin_terminate_calls": len(deleted) + len(repeats) + len(tasks),
    }
    result["targets"] = {
        "every_deleted_job_failed_with_abort_reason": not result["deleted_checks_failed"],
        "never_resubmitted": submits_late == 0 and max((len(v) for v in by_name.values()), default=0) <= 1
        and stats.get("SubmitJob", 0) == len(jobs) == len(tasks) - cancelled_before_submit,
        "terminate_calls_as_expected": stats.get("TerminateJob", 0) == expected_terminate,
    }
    return result


def delete_md(r: dict[str, Any]) -> str:
    t = r["targets"]
    return "\n".join([
        f"### delete: {r['tasks']} tasks ({r['singles']} single jobs + {r['arrays']} arrays x "
        f"{r['children_per_array']}), {r['deleted']} get DeleteTask",
        "",
        f"`{r['command']}` (SubmitJob at the default 40/s; emulator concurrency "
        f"{r['environment']['emulator']['concurrency']})",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| wave A: DeleteTask while still waiting for SubmitJob (t = {r['wave_a']['at_seconds']} s) | "
        f"{r['wave_a']['tasks']} tasks in {r['wave_a']['took_seconds']} s; {r['cancelled_before_submit']} never submitted, "
        f"{r['wave_a']['submitted_anyway']} were submitted meanwhile and terminated |",
        f"| wave B: DeleteTask of submitted tasks (t = {r['wave_b']['at_seconds']} s) | {r['wave_b']['tasks']} tasks in "
        f"{r['wave_b']['took_seconds']} s, "
        f"{r['wave_b']['running_in_aws']} of them RUNNING |",
        f"| repeated DeleteTask (propeller retry) | {r['repeated_deletes']} |",
        f"| DeleteTask latency ({r['deletes_in_flight']} in flight) p50 / p99 / max; errors | {r['delete_latency']['p50_ms']} / {r['delete_latency']['p99_ms']} / "
        f"{r['delete_latency']['max_ms']} ms; {sum(r['delete_errors'].values())} |",
        f"| TerminateJob calls (expected: one per submitted deleted task + one per repeat) | "
        f"{r['terminate_job_calls']} ({r['terminate_job_expected']}) |",
        f"| deleted tasks whose job ended FAILED with `Aborted by Flyte (<execution>)`, no live child, or that was "
        f"never submitted | {r['deleted_checks_ok']} of {r['deleted']} |",
        f"| SubmitJob calls / jobs found by name / tasks - cancelled before submit | {r['submit_job_calls']} / "
        f"{r['jobs_found_by_name']} / {r['tasks'] - r['cancelled_before_submit']} |",
        f"| SubmitJob calls after the deletes (3 more GetTask cycles of every task) | {r['submit_job_after_deletes']} |",
        f"| kept tasks with exactly one live job | {r['kept_tasks_with_one_live_job']} of {r['kept_tasks']} |",
        f"| AWS calls, whole run | {', '.join(f'{k} {v:,}' for k, v in r['aws_calls_total'].items())} |",
        "",
        f"Targets: every deleted job FAILED with the abort reason: {'met' if t['every_deleted_job_failed_with_abort_reason'] else 'NOT met'}; "
        f"never (re)submitted: {'met' if t['never_resubmitted'] else 'NOT met'}; TerminateJob count as expected: "
        f"{'met' if t['terminate_calls_as_expected'] else 'NOT met'}. The Go plugin would call TerminateJob once per "
        f"abort and once more at Finalize of every task ({r['go_plugin_terminate_calls']} here), and cannot abort a "
        "submission that has not happened yet (it submits inside propeller's round).",
    ])


# -- main -------------------------------------------------------------------------------------------------------
Scenario = Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]]
SCENARIOS: dict[str, tuple[Scenario, Callable[[dict[str, Any]], str]]] = {
    "burst": (burst, burst_md),
    "track": (track, track_md),
    "delete": (delete, delete_md),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    p.add_argument("--tag", default="", help="suffix of the result files (results/<scenario>-<tag>.json)")
    p.add_argument("--probe", action="store_true",
                   help="start the server through benchmarks/serve_probe.py with its event-loop stall probe "
                        "(diagnostics; a little overhead)")
    p.add_argument("--slow-callback-ms", type=float, default=0.0,
                   help="with --probe: asyncio debug mode, logging callbacks slower than this (heavy overhead)")
    p.add_argument("--profile", action="store_true",
                   help="run the server under cProfile; writes results/<scenario>.prof and <scenario>_profile.txt")
    g = p.add_argument_group("burst")
    g.add_argument("--tasks", type=int, default=5000)
    g.add_argument("--in-flight", type=int, default=200, help="concurrent CreateTasks (propeller's workers)")
    g.add_argument("--deadline", type=float, default=10.0, help="CreateTask deadline (propeller: 10 s)")
    g.add_argument("--submit-rate", type=float, default=40.0, help="rateLimits.submit rate and burst")
    g.add_argument("--resync", type=float, default=10.0, help="GetTask resync while waiting (propeller: 30 s)")
    g.add_argument("--read-qps", type=float, default=0.0,
                   help="propeller's read rate limiter in front of every GetTask (propeller: 10/s, burst 100); "
                        "0 (default): none, every created task is polled at once")
    g.add_argument("--create-wait", default=None, help="submission.createWait (default: the service's, 0.5s)")
    g = p.add_argument_group("track")
    g.add_argument("--singles", type=int, default=2000)
    g.add_argument("--arrays", type=int, default=20)
    g.add_argument("--children", type=int, default=5000)
    g.add_argument("--cycle", type=float, default=10.0,
                   help="poll cycle and status.refreshInterval, seconds (propeller's resync default is 30 s)")
    g.add_argument("--cycles", type=int, default=3)
    g.add_argument("--refresh-interval", type=float, default=None,
                   help="status.refreshInterval, seconds (default: --cycle; maxStaleness is 1.2x)")
    g.add_argument("--emu-concurrency", type=int, default=8)
    g.add_argument("--rate", type=float, default=1000.0, help="paced GetTask rate of the throughput phase")
    g.add_argument("--seconds", type=float, default=20.0, help="duration of the throughput phase")
    g.add_argument("--p99-target-ms", type=float, default=10.0)
    g.add_argument("--saturation-in-flight", type=int, default=32)
    g = p.add_argument_group("delete")
    g.add_argument("--delete-singles", type=int, default=400)
    g.add_argument("--delete-arrays", type=int, default=10)
    g.add_argument("--delete-children", type=int, default=50)
    g.add_argument("--delete-share", type=float, default=0.1)
    args = p.parse_args(argv)
    args.scenarios = args.scenarios or list(SCENARIOS)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    return args


def render(result: dict[str, Any]) -> str:
    heading, _, body = SCENARIOS[result["scenario"]][1](result).partition("\n")
    return (f"{heading}\n\nMeasured {result['finished_at']} ({result['wall_seconds']:g} s), service at commit "
            f"`{result['environment']['service_commit']}`.\n{body}")


def main() -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    if sys.argv[1:2] == ["--render"]:  # rewrite results/*.md from their .json (after a change of format)
        for path in sys.argv[2:]:
            result = json.loads(Path(path).read_text())
            if result.get("scenario") in SCENARIOS:  # describe_calls.json is not ours
                Path(path).with_suffix(".md").write_text(render(result) + "\n")
        return 0
    args = parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in args.scenarios:
        run, _ = SCENARIOS[name]
        started = time.monotonic()
        result = asyncio.run(run(args))
        result["wall_seconds"] = round(time.monotonic() - started, 1)
        result["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        suffix = (f"-{args.tag}" if args.tag else "") + ("_profiled" if args.profile else "") + \
            ("_probed" if args.probe else "")
        (RESULTS / f"{name}{suffix}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        text = render(result)
        (RESULTS / f"{name}{suffix}.md").write_text(text + "\n")
        print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
