"""Event-loop cost of one DescribeJobs of 100 jobs, through the service's own `AwsApi`, against the emulated
AWS in its own process: botocore's full parse vs the service's decoding (`job_details.decode_describe_jobs`,
which is what the status engine uses). Reports CPU ms per call (this process only: request building, signing,
HTTP, parsing; the emulator's CPU is not counted) and the response size. Both paths run twice, alternating,
to spread the machine's noise.

    .venv/bin/python benchmarks/describe_parse.py [--calls 200] [--jobs 100]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from aws_array_plugin.aws_calls import AwsApi  # noqa: E402
from aws_array_plugin.config import load_config  # noqa: E402
from aws_array_plugin.job_details import decode_describe_jobs  # noqa: E402
from aws_array_plugin.metrics import Metrics  # noqa: E402


def job_ids(endpoint: str, queue: str, n: int) -> tuple[list[str], int]:
    """n jobs shaped like a flytekit task's (command, 10 env vars, log configuration) that stay RUNNABLE."""
    batch = boto3.client("batch", endpoint_url=endpoint, region_name="us-east-1",
                         aws_access_key_id="bench", aws_secret_access_key="bench")
    batch.register_job_definition(jobDefinitionName="describe-parse", type="container", containerProperties={
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/flyte/task:v1",
        "command": ["pyflyte-execute", "--inputs", "s3://bucket/inputs.pb", "--output-prefix", "s3://bucket/out",
                    "--resolver", "flytekit.core.python_auto_container.default_task_resolver", "--", "task-module",
                    "workflows.example", "task-name", "train"],
        "environment": [{"name": f"FLYTE_VAR_{i}", "value": "v" * 40} for i in range(10)],
        "resourceRequirements": [{"type": "VCPU", "value": "4096"}, {"type": "MEMORY", "value": "512"}],
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/aws/batch/job"}},
    })
    ids = [batch.submit_job(jobName=f"describe-parse-{i}", jobQueue=queue, jobDefinition="describe-parse")["jobId"]
           for i in range(n)]
    bodies: list[bytes] = []
    batch.meta.events.register("before-parse.batch.DescribeJobs",
                               lambda response_dict, **_: bodies.append(response_dict["body"]))
    batch.describe_jobs(jobs=ids)
    return ids, len(bodies[-1])


async def cost(ids: list[str], calls: int, decoded: bool) -> dict[str, float]:
    api = AwsApi(load_config({"defaultQueue": "x"}), Metrics())
    await api.start()
    if decoded:
        api.decode_with("batch", "DescribeJobs", decode_describe_jobs)
    try:
        for _ in range(5):  # warm: connections, endpoint resolution, caches
            await api.call("describe", "batch", "describe_jobs", jobs=ids)
        gc.collect()
        cpu = time.process_time()
        for _ in range(calls):
            resp: dict[str, Any] = await api.call("describe", "batch", "describe_jobs", jobs=ids)
        cpu = time.process_time() - cpu
        assert len(resp["jobs"]) == len(ids)
        return {"cpu_ms_per_call": round(cpu * 1000 / calls, 2)}
    finally:
        await api.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--jobs", type=int, default=100)
    args = p.parse_args()
    emu = subprocess.Popen([sys.executable, "-m", "aws_batch_emulator", "--port", "0"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        assert emu.stdout is not None
        info = json.loads(emu.stdout.readline())
        os.environ.update({"AWS_ENDPOINT_URL": info["endpoint"], "AWS_ACCESS_KEY_ID": "bench",
                           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": info["region"]})
        ids, size = job_ids(info["endpoint"], info["queue"], args.jobs)
        sdk, ours = [], []
        for _ in range(2):
            sdk.append(asyncio.run(cost(ids, args.calls // 2, decoded=False)))
            ours.append(asyncio.run(cost(ids, args.calls // 2, decoded=True)))
    finally:
        emu.terminate()
        emu.wait()

    def mean(rows: list[dict[str, float]], key: str) -> float:
        return round(sum(r[key] for r in rows) / len(rows), 2)

    result = {
        "command": "python benchmarks/describe_parse.py " + " ".join(sys.argv[1:]),
        "jobs_per_call": args.jobs, "response_bytes": size, "calls_each": args.calls,
        "botocore_parse": {k: mean(sdk, k) for k in sdk[0]},
        "decode_describe_jobs": {k: mean(ours, k) for k in ours[0]},
    }
    result["cpu_ratio"] = round(result["botocore_parse"]["cpu_ms_per_call"]
                                / result["decode_describe_jobs"]["cpu_ms_per_call"], 1)
    out = ROOT / "benchmarks" / "results" / "describe_parse.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
