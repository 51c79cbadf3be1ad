"""AWS calls per poll cycle while many jobs are tracked (issue: status engine).

Starts the emulated AWS (concurrency kept low so most jobs sit RUNNABLE, as in a busy account) and the
plugin in-process, creates N single jobs and M arrays of K children through real gRPC CreateTask calls,
then acts as propeller: every task gets one GetTask per cycle, spread over the cycle. The emulator counts
the AWS calls it receives. Some array children fail on purpose, so describing newly failed children is
part of the count. Compared in the same run with:
- the Go aws_array plugin's scheme: every cycle it describes each parent and every non-terminal child,
  ceil((parents + live children) / 100) calls, plus one call per parent batch boundary;
- a naive connector: one DescribeJobs per GetTask.

    python benchmarks/describe_calls.py --singles 2000 --arrays 20 --children 5000 --cycles 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from flyteidl.admin import agent_pb2  # noqa: E402
from flyteidl.service import agent_pb2_grpc  # noqa: E402
from harness import write_results  # noqa: E402

from aws_array_plugin.config import load_config  # noqa: E402
from aws_array_plugin.server import RunningServer, serve  # noqa: E402
from aws_array_plugin_demo import workflows  # noqa: E402
from aws_array_plugin_demo.propeller import create_request, literal_map, serialize, shell  # noqa: E402
from aws_batch_emulator import Emulator  # noqa: E402


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import logging
    import os

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    emu = Emulator(port=0, step=0.5, concurrency=args.concurrency)
    info = emu.start()
    os.environ.update(info.client_env())
    cfg = load_config({
        "defaultQueue": "default",
        "status": {"refreshInterval": f"{args.refresh}s", "maxStaleness": f"{args.refresh * 1.2}s",
                   "failedChildDetails": 100},
        "rateLimits": {"submit": {"rate": 400, "burst": 400}, "describe": {"rate": 100, "burst": 100},
                       "list": {"rate": 100, "burst": 100}},
        "submission": {"createWait": "30s"},
    })
    started: asyncio.Future[RunningServer] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(cfg, host="127.0.0.1", port=0, metrics_port=0, stop=stop, started=started))
    running = await started
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)

    single_t = serialize(workflows.summarize)  # the demo's tasks; the jobs run shell scripts
    map_t = serialize(workflows.square_all)
    tasks: list[tuple[bytes, str]] = []
    sem = asyncio.Semaphore(64)

    async def create(req: agent_pb2.CreateTaskRequest, kind: str) -> None:
        async with sem:
            resp = await stub.CreateTask(req, timeout=60)
            tasks.append((resp.resource_meta, kind))

    t0 = time.monotonic()
    inputs = literal_map({"x": list(range(args.children))}, {"x": list[int]})
    # Arrays first, so their children get the compute slots: every tenth child fails after a short run,
    # the others finish after two seconds, so children keep failing during the measured cycles.
    script = 'sleep 1; [ $((AWS_BATCH_JOB_ARRAY_INDEX % 10)) -eq 0 ] && exit 1; sleep 1'
    reqs = [(shell(create_request(map_t, execution=f"a{i}", inputs=inputs), script, retries=0), "container_array")
            for i in range(args.arrays)]
    reqs += [(shell(create_request(single_t, execution=f"s{i}"), "sleep 3600", retries=0), "aws-batch") for i in range(args.singles)]
    await asyncio.gather(*(create(r, k) for r, k in reqs))
    create_seconds = time.monotonic() - t0

    async def get(meta: bytes, kind: str) -> agent_pb2.Resource:
        async with sem:
            resp = await stub.GetTask(agent_pb2.GetTaskRequest(
                resource_meta=meta, task_category=agent_pb2.TaskCategory(name=kind)), timeout=30)
        return resp.resource

    # Warm-up: propeller's first GetTask right after each create, then one full cycle.
    await asyncio.gather(*(get(m, k) for m, k in tasks))
    await asyncio.sleep(args.refresh)
    emu.reset_stats()
    engine = running.core.engine
    engine.describe_calls = 0

    latencies: list[float] = []
    cycles: list[dict[str, int]] = []
    failed_per_cycle: list[int] = []
    for _ in range(args.cycles):
        failed_before = emu.jobs_summary()["units"]["FAILED"]
        before = emu.stats()
        cycle_start = time.monotonic()
        order = list(tasks)
        random.shuffle(order)
        for n, (meta, kind) in enumerate(order):
            due = cycle_start + args.refresh * n / len(order)
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            t = time.monotonic()
            await get(meta, kind)
            latencies.append(time.monotonic() - t)
        rest = cycle_start + args.refresh - time.monotonic()
        if rest > 0:
            await asyncio.sleep(rest)
        after = emu.stats()
        failed_per_cycle.append(emu.jobs_summary()["units"]["FAILED"] - failed_before)
        cycles.append({op: after.get(op, 0) - before.get(op, 0) for op in after if after.get(op, 0) != before.get(op, 0)})

    jobs = emu.jobs_summary()
    await channel.close()
    stop.set()
    await server
    emu.stop()

    parents = args.singles + args.arrays
    live_children = args.arrays * args.children  # almost all still queued or running
    go_scheme = math.ceil((parents + live_children) / 100)
    latencies.sort()
    describe = [c.get("DescribeJobs", 0) for c in cycles]
    return {
        "singles": args.singles, "arrays": args.arrays, "children_per_array": args.children,
        "cycle_seconds": args.refresh, "cycles": cycles,
        "describe_jobs_per_cycle": describe,
        "children_newly_failed_per_cycle": failed_per_cycle,
        "goal_describe_per_cycle": f"ceil({parents}/100) + 1 + newly failed children = {math.ceil(parents / 100) + 1} + ...",
        "go_plugin_scheme_describe_per_cycle": go_scheme,
        "naive_describe_per_cycle": parents,
        "get_task_p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "get_task_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "create_seconds": round(create_seconds, 1),
        "peak_rss_mb_benchmark_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "emulator_jobs": jobs,
    }


def markdown(r: dict[str, Any]) -> str:
    return "\n".join([
        f"Tracked: {r['singles']} single jobs + {r['arrays']} arrays x {r['children_per_array']} children; "
        f"poll cycle {r['cycle_seconds']} s.",
        "",
        "| scheme | DescribeJobs calls per cycle |",
        "| --- | --- |",
        f"| aws-array-plugin (measured, per cycle) | {', '.join(map(str, r['describe_jobs_per_cycle']))} |",
        f"| children that newly failed in each cycle | {', '.join(map(str, r['children_newly_failed_per_cycle']))} |",
        f"| goal | {r['goal_describe_per_cycle']} |",
        f"| Go aws_array plugin scheme (computed) | {r['go_plugin_scheme_describe_per_cycle']} |",
        f"| naive: one DescribeJobs per GetTask (computed) | {r['naive_describe_per_cycle']} |",
        "",
        f"Other AWS calls per cycle: {json.dumps([{k: v for k, v in c.items() if k != 'DescribeJobs'} for c in r['cycles']])}",
        f"GetTask latency during the run: p50 {r['get_task_p50_ms']} ms, p99 {r['get_task_p99_ms']} ms.",
    ])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--singles", type=int, default=2000)
    p.add_argument("--arrays", type=int, default=20)
    p.add_argument("--children", type=int, default=5000)
    p.add_argument("--cycles", type=int, default=3)
    p.add_argument("--refresh", type=float, default=10.0, help="poll cycle (engine refresh) in seconds")
    p.add_argument("--concurrency", type=int, default=32, help="emulated compute environment slots")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "describe_calls"))
    args = p.parse_args()
    write_results(asyncio.run(run(args)), Path(args.out), markdown)


if __name__ == "__main__":
    main()
