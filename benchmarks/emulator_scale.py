"""Scale benchmark of the emulator (not a pytest test). Runs the emulator as a subprocess (CLI), tracks 2,000
single jobs and 20 arrays of 5,000 children with a small concurrency, and reports its RSS, SubmitJob rate and
DescribeJobs(100 ids) throughput, both through boto3 (client-bound) and plain http.client (server-bound).

    .venv/bin/python benchmarks/emulator_scale.py [--singles 2000] [--arrays 20] [--size 5000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import subprocess
import sys
import time
import urllib.request
from typing import Any

import boto3
from botocore.config import Config

# moto does not check signatures; the gateway only reads the credential scope.
_AUTH = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/batch/aws4_request, SignedHeaders=host, Signature=0"


def _get(endpoint: str, path: str) -> Any:
    with urllib.request.urlopen(endpoint + path) as resp:
        return json.load(resp)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--singles", type=int, default=2000)
    parser.add_argument("--arrays", type=int, default=20)
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    args = parser.parse_args()

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aws_batch_emulator", "--port", "0", "--concurrency", str(args.concurrency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        startup = time.perf_counter() - t0
        endpoint = info["endpoint"]
        rss_idle = _get(endpoint, "/_emulator/jobs")["rssBytes"]
        cfg = Config(max_pool_connections=32, retries={"total_max_attempts": 1})
        batch = boto3.client(
            "batch",
            config=cfg,
            endpoint_url=endpoint,
            region_name=info["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        batch.register_job_definition(
            jobDefinitionName="bench",
            type="container",
            containerProperties={
                "image": "busybox",
                "command": ["sleep", "600"],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
            },
        )
        t = time.perf_counter()
        singles = [
            batch.submit_job(jobName=f"s{i}", jobQueue="default", jobDefinition="bench")["jobId"]
            for i in range(args.singles)
        ]
        submit_rate = args.singles / (time.perf_counter() - t)
        parents = [
            batch.submit_job(
                jobName=f"a{i}", jobQueue="default", jobDefinition="bench", arrayProperties={"size": args.size}
            )["jobId"]
            for i in range(args.arrays)
        ]
        time.sleep(3)  # everything RUNNABLE, `concurrency` attempts RUNNING
        loaded = _get(endpoint, "/_emulator/jobs")
        pool = singles + [f"{p}:{i}" for p in parents for i in range(args.size)]

        end = time.perf_counter() + args.seconds
        n_boto = 0
        while time.perf_counter() < end:
            batch.describe_jobs(jobs=random.sample(pool, 100))
            n_boto += 1

        host, port = endpoint.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port))
        headers = {"Authorization": _AUTH, "Content-Type": "application/json"}
        end = time.perf_counter() + args.seconds
        n_raw = 0
        while time.perf_counter() < end:
            body = json.dumps({"jobs": random.sample(pool, 100)})
            conn.request("POST", "/v1/describejobs", body=body, headers=headers)
            resp = conn.getresponse()
            assert resp.status == 200 and len(json.loads(resp.read())["jobs"]) == 100
            n_raw += 1
        conn.close()

        t = time.perf_counter()
        for p in parents:
            batch.list_jobs(arrayJobId=p, jobStatus="RUNNABLE", maxResults=1000)
        list_s = (time.perf_counter() - t) / len(parents)
        print(
            json.dumps(
                {
                    "startupSecondsToJsonLine": round(startup, 2),
                    "rssIdleMB": round(rss_idle / 2**20, 1),
                    "rssLoadedMB": round(loaded["rssBytes"] / 2**20, 1),
                    "units": loaded["units"],
                    "submitJobPerSecond": round(submit_rate, 1),
                    "describeJobs100PerSecondBoto3": round(n_boto / args.seconds, 1),
                    "describeJobs100PerSecondRawHttp": round(n_raw / args.seconds, 1),
                    "listJobsArrayRunnable1000Seconds": round(list_s, 4),
                },
                indent=1,
            )
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
