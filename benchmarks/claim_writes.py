"""Cost of a CreateTask's one AWS call, the submission record's conditional create (S3 PutObject with
`If-None-Match: *`), made as the service makes it (`AwsApi` + `S3Store`) against the emulated AWS in its own
process, with `--concurrency` calls in flight. Reports calls/s, this process's CPU per call (request building,
signing, HTTP) and the emulator's CPU per call. Runs `--rounds` rounds to show the machine's noise.

`--ab N` adds an A/B of the same writes with botocore's `Expect: 100-continue` put back (the service drops it):
the two clients alternate in N batches of 50 calls each, so the machine's drift hits both alike.

    .venv/bin/python benchmarks/claim_writes.py [--calls 1000] [--concurrency 20] [--rounds 2] [--ab 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from botocore.handlers import add_expect_header  # noqa: E402
from harness import cpu_seconds, start_emulator  # noqa: E402

from aws_array_plugin.aws_calls import AwsApi  # noqa: E402
from aws_array_plugin.config import load_config  # noqa: E402
from aws_array_plugin.metrics import Metrics  # noqa: E402
from aws_array_plugin.storage import S3Store  # noqa: E402

RECORD = json.dumps({"state": "pending", "requests": [{"jobName": "x" * 60, "containerOverrides": {
    "command": ["pyflyte-execute", "--inputs", "s3://b/inputs.pb"] * 4}}]}).encode()


async def started_api() -> AwsApi:
    api = AwsApi(load_config({"defaultQueue": "x", "rateLimits": {"s3": {"rate": 100_000, "burst": 100_000}}}),
                 Metrics())
    await api.start()
    return api


async def claim(store: S3Store, gate: asyncio.Semaphore, key: str) -> None:
    """One submission record's conditional create, as CreateTask makes it."""
    async with gate:
        await store.write(key, RECORD, create_only=True, content_type="application/json")


async def one_round(bucket: str, emulator_pid: int, calls: int, concurrency: int) -> dict[str, float]:
    api = await started_api()
    store = S3Store(api)
    prefix = f"s3://{bucket}/claims/{uuid.uuid4().hex}"
    gate = asyncio.Semaphore(concurrency)
    try:
        # warm: connections, endpoint resolution
        await asyncio.gather(*(claim(store, gate, f"{prefix}/warm-{i}") for i in range(concurrency)))
        emu0, cpu0, t0 = cpu_seconds(emulator_pid), time.process_time(), time.monotonic()
        await asyncio.gather(*(claim(store, gate, f"{prefix}/{i}/submission.json") for i in range(calls)))
        elapsed, cpu, emu = time.monotonic() - t0, time.process_time() - cpu0, cpu_seconds(emulator_pid) - emu0
        return {"calls_per_s": round(calls / elapsed, 1), "service_cpu_ms_per_call": round(cpu * 1000 / calls, 2),
                "emulator_cpu_ms_per_call": round(emu * 1000 / calls, 2)}
    finally:
        await api.close()


async def expect_ab(bucket: str, emulator_pid: int, batches: int, concurrency: int, batch: int = 50
                    ) -> dict[str, dict[str, float]]:
    """The service's client against the same client with botocore's `Expect: 100-continue` handler back."""
    apis = {"service": await started_api(), "with_100_continue": await started_api()}
    apis["with_100_continue"].client("s3").meta.events.register("before-call.s3", add_expect_header)
    totals = {name: [0.0, 0.0, 0.0] for name in apis}  # wall, own CPU, emulator CPU
    gate = asyncio.Semaphore(concurrency)
    prefix = f"s3://{bucket}/claims-ab/{uuid.uuid4().hex}"
    try:
        stores = {name: S3Store(api) for name, api in apis.items()}
        for name, store in stores.items():  # warm
            await asyncio.gather(*(claim(store, gate, f"{prefix}/{name}/warm-{i}") for i in range(concurrency)))
        for b in range(batches):
            for name in (list(stores) if b % 2 == 0 else list(stores)[::-1]):
                emu0, cpu0, t0 = cpu_seconds(emulator_pid), time.process_time(), time.monotonic()
                await asyncio.gather(*(claim(stores[name], gate, f"{prefix}/{name}/{b}-{i}") for i in range(batch)))
                for k, v in enumerate((time.monotonic() - t0, time.process_time() - cpu0,
                                       cpu_seconds(emulator_pid) - emu0)):
                    totals[name][k] += v
    finally:
        for api in apis.values():
            await api.close()
    calls = batches * batch
    return {name: {"calls": calls, "calls_per_s": round(calls / wall, 1),
                   "service_cpu_ms_per_call": round(cpu * 1000 / calls, 3),
                   "emulator_cpu_ms_per_call": round(emu * 1000 / calls, 3)}
            for name, (wall, cpu, emu) in totals.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--ab", type=int, default=0, metavar="N", help="A/B against Expect: 100-continue, N batches")
    args = p.parse_args()
    emu = start_emulator(step=0.5, concurrency=4, cpus=None, log_dir=Path(tempfile.mkdtemp(prefix="claim-writes-")))
    rounds: list[dict[str, Any]] = []
    try:
        os.environ.update(emu.client_env())
        for _ in range(args.rounds):
            rounds.append(asyncio.run(one_round(emu.info["bucket"], emu.pid, args.calls, args.concurrency)))
            print(json.dumps(rounds[-1]), flush=True)
        ab = asyncio.run(expect_ab(emu.info["bucket"], emu.pid, args.ab, args.concurrency)) if args.ab else {}
        for name, figures in ab.items():
            print(name, json.dumps(figures), flush=True)
    finally:
        emu.stop()
    result = {"command": "python benchmarks/claim_writes.py " + " ".join(sys.argv[1:]),
              "calls": args.calls, "concurrency": args.concurrency, "rounds": rounds,
              **({"expect_100_continue_ab": ab} if ab else {})}
    out = ROOT / "benchmarks" / "results" / "claim_writes.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
