"""`aws-array-plugin emulator`: run the emulated AWS until SIGINT/SIGTERM; SIGHUP makes an API outage of
`--hup-downtime` seconds (same as `POST /_emulator/restart`).

Prints one JSON line on startup (endpoint, region, queue, bucket, ...; with `--events` the event stream, its
dead-letter queue and rules) for scripts to read. Job commands run on the host as the current user; the server
binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any


def _op_value(kind: type[float] | type[int]) -> Any:
    def parse(text: str) -> tuple[str, float | int]:
        op, sep, value = text.rpartition("=")
        if not sep or not op:
            raise argparse.ArgumentTypeError(f"expected OPERATION=VALUE (e.g. DescribeJobs=0.3), got {text!r}")
        try:
            return op, kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad value in {text!r}") from None

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=4566, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--region", default="us-east-1", help="region to pre-provision (default us-east-1)")
    parser.add_argument("--step", type=float, default=0.5, help="seconds per job status step (default 0.5)")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="job attempts running at once, like a CE's max vCPUs (default 8)"
    )
    parser.add_argument(
        "--max-vcpus", type=float, default=256.0,
        help="max vCPUs of the compute environment: a job needing more stays RUNNABLE (default 256)",
    )  # fmt: skip
    parser.add_argument(
        "--gpus", type=int, default=0, help="GPUs of the compute environment: a job needing more stays RUNNABLE"
    )
    parser.add_argument(
        "--max-memory-mib", type=int, default=None,
        help="memory (MiB) of the largest instance: a job needing more stays RUNNABLE (default: no limit)",
    )  # fmt: skip
    parser.add_argument("--hup-downtime", type=float, default=5.0, help="seconds of API outage on SIGHUP (default 5)")
    parser.add_argument("--queue", default="default", help="name of the pre-provisioned job queue")
    parser.add_argument("--bucket", default="flyte-data", help="name of the pre-provisioned S3 bucket")
    parser.add_argument(
        "--throttle", action="append", default=[], type=_op_value(float), metavar="OP=SHARE",
        help="answer this share of OP calls (or * for all) with throttling (Batch: HTTP 429); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--server-errors", action="append", default=[], type=_op_value(float), metavar="OP=SHARE",
        help="answer this share of OP calls with a 5xx ServerException; repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--latency", action="append", default=[], type=_op_value(int), metavar="OP=MS",
        help="add MS milliseconds to every OP call; repeatable",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=None, help="seed for fault injection draws (API and events)")
    parser.add_argument(
        "--events", action="store_true",
        help="publish Batch job state change events through EventBridge rules to a Kinesis stream",
    )  # fmt: skip
    for name, what in (
        ("duplicate", "delivered twice (the copy up to 2 s later)"),
        ("reorder", "held back behind later events (up to --event-reorder-window s)"),
        ("delay", "delivered --event-delay-seconds later"),
        ("drop", "never delivered (with --event-dead-letter: sent to the target's dead-letter queue)"),
    ):
        parser.add_argument(
            f"--event-{name}", type=float, default=0.0, metavar="SHARE", help=f"share of event deliveries {what}"
        )
    parser.add_argument("--event-reorder-window", type=float, default=3.0, metavar="S", help="default 3")
    parser.add_argument("--event-delay-seconds", type=float, default=60.0, metavar="S", help="default 60")
    parser.add_argument(
        "--event-dead-letter", action="store_true", help="dropped events go to the target's dead-letter queue"
    )
    parser.add_argument(
        "--event-fault-source", action="append", default=None, metavar="SOURCE",
        help="event faults apply only to events of this source (e.g. aws.batch); repeatable (default: all)",
    )  # fmt: skip
    parser.add_argument("--workdir", default=None, help="working directory of job processes (default: a temp dir)")


def fault_rules(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    rules: dict[str, dict[str, Any]] = {}
    for field, pairs in (("throttle", args.throttle), ("error", args.server_errors), ("latencyMs", args.latency)):
        for op, value in pairs:
            rules.setdefault(op, {})[field] = value
    return rules


def event_faults(args: argparse.Namespace) -> dict[str, Any]:
    """The event fault flags as `EventFaults` JSON."""
    return {
        "duplicate": args.event_duplicate,
        "reorder": args.event_reorder,
        "reorderWindow": args.event_reorder_window,
        "delay": args.event_delay,
        "delaySeconds": args.event_delay_seconds,
        "drop": args.event_drop,
        "deadLetter": args.event_dead_letter,
        "sources": args.event_fault_source,
    }


def run(args: argparse.Namespace) -> int:
    from .server import Emulator, run_forever

    if args.concurrency < 1 or args.step < 0 or args.hup_downtime < 0:
        print("--concurrency must be >= 1, --step and --hup-downtime >= 0", file=sys.stderr)
        return 2
    try:
        emulator = Emulator(
            port=args.port,
            region=args.region,
            step=args.step,
            concurrency=args.concurrency,
            queue=args.queue,
            bucket=args.bucket,
            faults=fault_rules(args),
            seed=args.seed,
            workdir=args.workdir,
            max_vcpus=args.max_vcpus,
            gpus=args.gpus,
            max_memory_mib=args.max_memory_mib,
            events=args.events,
            event_faults=event_faults(args),
        )
        info = emulator.start()
    except (OSError, ValueError) as exc:
        print(f"emulator failed to start: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def outage() -> None:
        try:
            emulator.restart(args.hup_downtime, wait=False)
            print(f"SIGHUP: API outage of {args.hup_downtime:g} s", file=sys.stderr, flush=True)
        except RuntimeError as exc:
            print(f"SIGHUP ignored: {exc}", file=sys.stderr, flush=True)

    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=outage, daemon=True).start())
    print(json.dumps(info.to_json()), flush=True)
    print(
        f"emulated AWS on {info.endpoint} (queue {info.queue!r}, bucket {info.bucket!r}); "
        "job commands run on this host as the current user. Ctrl-C to stop.",
        file=sys.stderr,
        flush=True,
    )
    run_forever(emulator, stop)
    return 0
