"""Embedded emulated AWS for tests, benchmarks and the demo: moto (Batch, S3, CloudWatch Logs, IAM, STS) behind
a gateway that adds what moto lacks for AWS Batch jobs: a process runtime, real status transitions with timing,
retries, timeouts, array parents as AWS has them, AWS's limits, fault injection and per-API call counters.

WARNING: job commands run ON THE HOST, as the current user, with no isolation: a job definition's image is
recorded, never pulled or used. The server listens on 127.0.0.1 only. Never point untrusted clients at it.

    from aws_batch_emulator import Emulator
    with Emulator(step=0.1, concurrency=4) as emu:
        info = emu.info                      # endpoint, region, queue ("default"), bucket ("flyte-data")

With `events=True`, job state changes are also published as EventBridge events to a Kinesis stream.

Or as a process: `aws-array-plugin emulator --port 4566` / `python -m aws_batch_emulator`; it prints one
JSON line with the endpoint. See docs/emulator.md.
"""

from .faults import EventFaults, FaultRule
from .server import Emulator, EmulatorInfo

__all__ = ["Emulator", "EmulatorInfo", "EventFaults", "FaultRule"]
