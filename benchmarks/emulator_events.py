"""Throughput of the emulator's event publishing, engine transition to Kinesis record (not a pytest module).

    .venv/bin/python benchmarks/emulator_events.py [--arrays 20] [--size 5000] [--read]

Submits `arrays` arrays of `size` children that can never be placed (so no process runs and the engine is not
the bottleneck): each child publishes RUNNABLE at once, then FAILED when its parent is cancelled, and each
parent PENDING and FAILED. Prints events per second from the first publish until every event is in the stream;
`--read` then reads the whole stream back with GetRecords over HTTP and checks the count.
"""

from __future__ import annotations

import argparse
import json
import time

import boto3

from aws_batch_emulator import Emulator
from aws_batch_emulator.control import rss_bytes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arrays", type=int, default=20)
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--read", action="store_true", help="read the stream back and count the records")
    args = parser.parse_args()
    with Emulator(port=0, step=0.01, concurrency=4, max_vcpus=1, events=True) as emu:
        kwargs = emu.info.client_kwargs()
        batch = boto3.client("batch", **kwargs)
        batch.register_job_definition(
            jobDefinitionName="events-throughput",
            type="container",
            containerProperties={
                "image": "x",
                "command": ["true"],
                "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "512"}],
            },
        )
        expected = args.arrays * (2 * args.size + 2)
        rss_before = rss_bytes()
        start = time.monotonic()
        parents = [
            batch.submit_job(
                jobName=f"tp-{i}",
                jobQueue=emu.info.queue,
                jobDefinition="events-throughput",
                arrayProperties={"size": args.size},
            )["jobId"]
            for i in range(args.arrays)
        ]
        while emu.event_stats()["published"] < args.arrays * (args.size + 1):
            time.sleep(0.01)
        for parent in parents:
            batch.cancel_job(jobId=parent, reason="throughput run")
        submitted = time.monotonic()
        while (stats := emu.event_stats())["delivered"] < expected:
            time.sleep(0.01)
        done = time.monotonic()
        assert stats["published"] == stats["matched"] == expected and stats["failed"] == 0, stats
        print(
            json.dumps(
                {
                    "events": expected,
                    "seconds": round(done - start, 2),
                    "eventsPerSecond": round(expected / (done - start)),
                    "submitAndCancelSeconds": round(submitted - start, 2),
                    "rssGrowthMB": round((rss_bytes() - rss_before) / 1e6),
                }
            )
        )
        if args.read:
            kinesis = boto3.client("kinesis", **kwargs)
            stream = emu.info.event_stream
            total, begin = 0, time.monotonic()
            for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
                it = kinesis.get_shard_iterator(
                    StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
                while True:
                    page = kinesis.get_records(ShardIterator=it, Limit=10000)
                    total += len(page["Records"])
                    it = page["NextShardIterator"]
                    if not page["Records"]:
                        break
            print(json.dumps({"recordsRead": total, "readSeconds": round(time.monotonic() - begin, 2)}))


if __name__ == "__main__":
    main()
