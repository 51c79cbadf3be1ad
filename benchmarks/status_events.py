"""Push-first status against polling, in one run (issue: status events).

The emulated AWS publishes AWS Batch's state-change events through an EventBridge rule into a Kinesis stream
(`Emulator(events=True)`). In one process, four groups of real plugin servers track the same tasks:
`events-1` and `events-3` (one and three replicas with `status.events`), `polling-1` and `polling-3` (the
same without). A propeller-like driver sends each task's GetTask to each group once per 30 s, round robin
over a group's replicas.

1. Latency, in `--latency-waves` waves: `--latency-tasks` single jobs (`sleep 45`) created at once; every 0.25 s each group is asked about
   every unfinished task. Latency = the first answer showing RUNNING (or a final phase) minus the job's
   `startedAt` (or `stoppedAt`) in the emulator, both wall-clock ms.
2. Steady state: `--singles` single jobs (`sleep 3600`) and `--arrays` arrays of `--children` (children run
   2 s, every tenth fails), the same load as `describe_calls.py`. After a warm-up, each replica's DescribeJobs
   calls over `--window` seconds, by reason (the `status_describes_total` metric), per 30 s.

    python benchmarks/status_events.py --window 960
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import boto3  # noqa: E402
import grpc  # noqa: E402
from flyteidl.admin import agent_pb2  # noqa: E402
from flyteidl.core import execution_pb2  # noqa: E402
from flyteidl.service import agent_pb2_grpc  # noqa: E402
from harness import ServerProcess, make_log_dir, write_results  # noqa: E402

from aws_array_plugin_demo import workflows  # noqa: E402
from aws_array_plugin_demo.metrics import metric_sum  # noqa: E402
from aws_array_plugin_demo.propeller import create_request, literal_map, serialize, shell  # noqa: E402
from aws_batch_emulator.process import EmulatorProcess  # noqa: E402

CYCLE = 30.0  # propeller's resync, and the polling engine's refreshInterval
PHASE_RANK = {"PENDING": 0, "WAITING_FOR_RESOURCES": 0, "QUEUED": 0, "INITIALIZING": 1, "RUNNING": 2,
              "SUCCEEDED": 3, "FAILED": 3, "RETRYABLE_FAILED": 3}


@dataclass
class Replica:
    """One `aws-array-plugin serve` process (benchmarks/harness.py) and a channel to it."""

    server: ServerProcess
    channel: grpc.aio.Channel
    stub: agent_pb2_grpc.AsyncAgentServiceStub

    def describes(self) -> dict[str, float]:
        text = self.server.metrics_text()
        return {reason: metric_sum(text, "aws_array_plugin_status_describes_total", reason=reason)
                for reason in ("lookup", "refresh", "reconcile", "gap")}

    def events_healthy(self) -> float:
        return metric_sum(self.server.metrics_text(), "aws_array_plugin_event_source_healthy")


@dataclass
class Group:
    name: str
    replicas: list[Replica]
    turn: itertools.count = field(default_factory=itertools.count)

    def next(self) -> Replica:
        return self.replicas[next(self.turn) % len(self.replicas)]


@contextlib.asynccontextmanager
async def replica(config: dict[str, Any], env: dict[str, str], log_dir: Path) -> AsyncIterator[Replica]:
    await asyncio.to_thread(log_dir.mkdir, parents=True, exist_ok=True)
    server = await asyncio.to_thread(ServerProcess, config, env=env, cpus=None, log_dir=log_dir)
    channel = grpc.aio.insecure_channel(server.address)
    try:
        yield Replica(server, channel, agent_pb2_grpc.AsyncAgentServiceStub(channel))
    finally:
        await channel.close()
        await asyncio.to_thread(server.stop)


def configs(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    base: dict[str, Any] = {
        "defaultQueue": "default",
        "status": {"refreshInterval": f"{CYCLE}s", "maxStaleness": f"{CYCLE * 1.2}s", "failedChildDetails": 100},
        "rateLimits": {"submit": {"rate": 400, "burst": 400}, "describe": {"rate": 100, "burst": 100},
                       "list": {"rate": 100, "burst": 100}, "events": {"rate": 50, "burst": 50}},
        "submission": {"createWait": "30s"},
    }
    events = {**base, "status": {**base["status"], "events": {
        "enabled": True, "stream": info["eventStream"], "deadLetterQueue": info["deadLetterQueueUrl"]}}}
    return {"polling": base, "events": events}


async def get(replica: Replica, meta: bytes, kind: str) -> agent_pb2.Resource:
    resp = await replica.stub.GetTask(agent_pb2.GetTaskRequest(
        resource_meta=meta, task_category=agent_pb2.TaskCategory(name=kind)), timeout=30)
    return resp.resource


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def latency_wave(emu: EmulatorProcess, groups: list[Group], creator: Replica, n: int, wave: int
                       ) -> dict[str, list[float]]:
    single_t = serialize(workflows.summarize)
    # Jobs outlast a polling cycle, so polling sees them RUNNING too. No outputs are written: the final phase
    # is RETRYABLE_FAILED ("wrote no outputs"), which is as much a phase change as SUCCEEDED.
    metas = [(await creator.stub.CreateTask(shell(create_request(single_t, execution=f"lat{wave}-{i}"), "sleep 45",
                                                  retries=0), timeout=60)).resource_meta for i in range(n)]
    # first answer (wall time) per (group, task, phase class): RUNNING, or FINAL
    first: dict[tuple[str, int, str], float] = {}
    done: set[tuple[str, int]] = set()

    async def ask(group: Group, i: int, meta: bytes) -> None:
        resource = await get(group.next(), meta, "aws-batch")
        rank = PHASE_RANK.get(execution_pb2.TaskExecution.Phase.Name(resource.phase), 0)
        now = time.time()
        if rank >= 2:
            first.setdefault((group.name, i, "RUNNING"), now)
        if rank >= 3:
            first.setdefault((group.name, i, "FINAL"), now)
            done.add((group.name, i))

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(done) < n * len(groups):
        started = time.monotonic()
        await asyncio.gather(*(ask(g, i, m) for g in groups for i, m in enumerate(metas) if (g.name, i) not in done))
        await asyncio.sleep(max(0.0, 0.25 - (time.monotonic() - started)))
    batch = boto3.client("batch", endpoint_url=emu.endpoint, region_name=emu.info["region"],
                         aws_access_key_id="testing", aws_secret_access_key="testing")
    ids = [json_job_id(creator, m) for m in metas]
    details = {d["jobId"]: d for chunk in range(0, len(ids), 100)
               for d in batch.describe_jobs(jobs=ids[chunk:chunk + 100])["jobs"]}
    out: dict[str, list[float]] = {}
    for group in groups:
        lat = out[group.name] = []
        for i, job_id in enumerate(ids):
            d = details.get(job_id, {})
            for phase, key in (("RUNNING", "startedAt"), ("FINAL", "stoppedAt")):
                seen = first.get((group.name, i, phase))
                if seen is not None and d.get(key):
                    lat.append(max(0.0, seen - d[key] / 1000))
    return out


async def latency_phase(emu: EmulatorProcess, groups: list[Group], creator: Replica, n: int, waves: int
                        ) -> dict[str, Any]:
    samples: dict[str, list[float]] = {g.name: [] for g in groups}
    for wave in range(waves):
        for name, lat in (await latency_wave(emu, groups, creator, n, wave)).items():
            samples[name] += lat
    return {name: {"samples": len(lat), "p50_s": round(percentile(lat, 0.5), 2),
                   "p99_s": round(percentile(lat, 0.99), 2), "max_s": round(max(lat, default=0), 2),
                   "mean_s": round(statistics.fmean(lat), 2) if lat else None}
            for name, lat in samples.items()}


def json_job_id(replica: Replica, meta: bytes) -> str:
    from aws_array_plugin import resource_meta

    decoded = resource_meta.decode(meta)
    return str(decoded.job_ids[0])


async def steady_phase(emu: EmulatorProcess, groups: list[Group], creator: Replica, args: argparse.Namespace
                       ) -> dict[str, Any]:
    single_t = serialize(workflows.summarize)
    map_t = serialize(workflows.square_all)
    inputs = literal_map({"x": list(range(args.children))}, {"x": list[int]})
    script = 'sleep 1; [ $((AWS_BATCH_JOB_ARRAY_INDEX % 10)) -eq 0 ] && exit 1; sleep 1'
    reqs = [(shell(create_request(map_t, execution=f"a{i}", inputs=inputs), script, retries=0), "container_array")
            for i in range(args.arrays)]
    reqs += [(shell(create_request(single_t, execution=f"s{i}"), "sleep 3600", retries=0), "aws-batch")
             for i in range(args.singles)]
    sem = asyncio.Semaphore(64)
    tasks: list[tuple[bytes, str]] = []

    async def create(req: agent_pb2.CreateTaskRequest, kind: str) -> None:
        async with sem:
            tasks.append(((await creator.stub.CreateTask(req, timeout=120)).resource_meta, kind))

    await asyncio.gather(*(create(r, k) for r, k in reqs))

    async def one_get(group: Group, meta: bytes, kind: str) -> None:
        async with sem:
            await get(group.next(), meta, kind)

    async def cycle() -> None:
        start = time.monotonic()
        for n, (meta, kind) in enumerate(tasks):
            delay = start + CYCLE * n / len(tasks) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await asyncio.gather(*(one_get(g, meta, kind) for g in groups))
        rest = start + CYCLE - time.monotonic()
        if rest > 0:
            await asyncio.sleep(rest)

    for _ in range(args.warmup_cycles):
        await cycle()
    before = {g.name: [r.describes() for r in g.replicas] for g in groups}
    t0 = time.monotonic()
    while time.monotonic() - t0 < args.window:
        await cycle()
    seconds = time.monotonic() - t0
    out: dict[str, Any] = {"window_s": round(seconds), "tasks": len(tasks)}
    for g in groups:
        per_replica = []
        for r, b in zip(g.replicas, before[g.name], strict=True):
            after = r.describes()
            by_reason = {k: int(after[k] - b[k]) for k in after}
            total = sum(by_reason.values())
            per_replica.append({"by_reason": by_reason, "total": total,
                                "per_30s": round(total * CYCLE / seconds, 2)})
        out[g.name] = {"replicas": per_replica,
                       "per_30s_per_replica_mean": round(statistics.fmean(p["per_30s"] for p in per_replica), 2),
                       "per_30s_all_replicas": round(sum(p["per_30s"] for p in per_replica), 2)}
    out["emulator_calls"] = emu.stats()
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log_dir = make_log_dir("status_events")
    emu = EmulatorProcess("--step", "0.5", "--concurrency", str(args.concurrency), "--events",
                          log=log_dir / "emulator.log", cwd=ROOT)
    env = emu.client_env()
    cfg = configs(emu.info)
    try:
        async with contextlib.AsyncExitStack() as stack:
            groups = []
            for name, mode, n in (("events-1", "events", 1), ("polling-1", "polling", 1),
                                  ("events-3", "events", 3), ("polling-3", "polling", 3)):
                groups.append(Group(name, [await stack.enter_async_context(
                    replica(cfg[mode], env, log_dir / f"{name}-{i}")) for i in range(n)]))
            creator = groups[1].replicas[0]
            await asyncio.sleep(5)  # the event readers start and their first heartbeats come back
            latency = await latency_phase(emu, groups, creator, args.latency_tasks, args.latency_waves)
            print(json.dumps({"latency": latency}), flush=True)
            steady = await steady_phase(emu, groups, creator, args) if args.window > 0 else {}
            health = {g.name: [r.events_healthy() for r in g.replicas] for g in groups}
    finally:
        emu.stop()
    print(f"logs in {log_dir}", flush=True)
    return {"args": {k: v for k, v in vars(args).items() if k != "out"}, "latency": latency, "steady": steady,
            "event_source_healthy_at_end": health}


def markdown(r: dict[str, Any]) -> str:
    s, lat = r["steady"], r["latency"]
    lines = [] if not s else [
        f"Steady state: {r['args']['singles']} single jobs + {r['args']['arrays']} arrays x "
        f"{r['args']['children']} children, every task asked once per 30 s by each group; window {s['window_s']} s.",
        "",
        "| group | DescribeJobs per 30 s per replica (mean) | all replicas | by reason, each replica |",
        "| --- | --- | --- | --- |",
    ]
    for name in ("events-1", "events-3", "polling-1", "polling-3") if s else ():
        g = s[name]
        reasons = "; ".join(json.dumps(p["by_reason"]) for p in g["replicas"])
        lines.append(f"| {name} | {g['per_30s_per_replica_mean']} | {g['per_30s_all_replicas']} | {reasons} |")
    lines += ["", "Phase-change latency (emulator transition to the first GetTask answer showing it; 0.25 s sampling):",
              "", "| group | samples | p50 s | p99 s | max s |", "| --- | --- | --- | --- | --- |"]
    for name in ("events-1", "events-3", "polling-1", "polling-3"):
        g = lat[name]
        lines.append(f"| {name} | {g['samples']} | {g['p50_s']} | {g['p99_s']} | {g['max_s']} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--singles", type=int, default=2000)
    p.add_argument("--arrays", type=int, default=20)
    p.add_argument("--children", type=int, default=5000)
    p.add_argument("--latency-tasks", type=int, default=15, help="tasks per latency wave")
    p.add_argument("--latency-waves", type=int, default=3)
    p.add_argument("--warmup-cycles", type=int, default=4, help="cycles before measuring: every replica of a "
                   "group has seen every task once (a first sight is a lookup)")
    p.add_argument("--window", type=float, default=960.0, help="measured seconds (> reconcileInterval, 900 s); "
                   "0: the latency phase only")
    p.add_argument("--concurrency", type=int, default=32, help="emulated compute environment slots")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "status_events"))
    args = p.parse_args()
    write_results(asyncio.run(run(args)), Path(args.out), markdown)


if __name__ == "__main__":
    main()
