"""`aws-array-plugin demo`: zero configuration, one process tree.

1. starts the emulated AWS (moto + a process runtime: job commands run ON THIS HOST) in threads;
2. starts the plugin's gRPC service on loopback in this event loop;
3. acts as propeller over real gRPC for two real flytekit tasks (`workflows.py`): an `aws-batch` task and
   a legacy map task of 5 whose child 3 fails on purpose (min_success_ratio 0.8): writes inputs.pb, sends
   CreateTask with the rendered args, polls GetTask, reads the failing child's log with GetTaskLogs;
   and, at the same time, as the Flyte 2 executor for one real `flyte` task (`flyte2_workflows.py`, the
   `AWSBatch` plugin config) through the service's flyteidl2 connector face (`flyte2_executor.py`);
4. checks the outcome and exits 0 only if everything behaved as expected.

Heavy imports (moto, flytekit, flyte, rich) happen inside `run`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_array_plugin.server import RunningServer
    from aws_array_plugin_demo.flyte2_executor import ActionAttempt
    from aws_array_plugin_demo.propeller import Attempt
    from aws_array_plugin_demo.view import View
    from aws_batch_emulator import EmulatorInfo

POLL_INTERVAL = 1.0  # seconds between GetTask rounds (propeller's resync is 30 s by default)
MAX_RPC_FAILURES = 5  # propeller gives up on a task after this many failed GetTask calls
NAME, VALUES = "Flyte", [1, 2, 3, 4, 5]
MAP_INPUTS = [3, 1, 4, 13, 5]  # 13 is workflows.UNLUCKY: child 3 fails
COUNTDOWN = 5  # the Flyte 2 task's input
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])  # the directory holding aws_array_plugin_demo/
HOST_WARNING = ("the emulator runs job commands ON THIS HOST as the current user, without containers or "
                "isolation (the job definition's image is recorded, never pulled)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Zero-setup demo: starts an emulated AWS (Batch, S3, CloudWatch Logs) and the plugin service in this\n"
        "process, then drives two real flytekit tasks through it over gRPC as propeller would (an aws-batch\n"
        "task and a legacy map task of 5 with one child failing on purpose) and, as the Flyte 2 executor would,\n"
        "one real Flyte 2 (flyte SDK) aws-batch task. Exits 0 when all three behave as expected.")
    parser.epilog = f"WARNING: {HOST_WARNING}."
    parser.add_argument("--step", type=float, default=0.5,
                        help="emulated AWS Batch: seconds between job status transitions (default 0.5)")
    parser.add_argument("--timeout", type=float, default=90.0,
                        help="fail when the tasks have not finished after this many seconds (default 90)")
    parser.add_argument("--keep-running", action="store_true",
                        help="afterwards leave the emulator and the service up, print their endpoints; Ctrl-C stops")
    parser.add_argument("--plain", action="store_true",
                        help="plain text output even on a terminal (the default when stdout is not a TTY)")


def run(args: argparse.Namespace) -> int:
    # What the demo needs, before anything starts: a missing one is a ModuleNotFoundError, which
    # `aws-array-plugin demo` reports in one line (which extra to install) with exit code 2.
    import boto3  # noqa: F401
    import flyte  # noqa: F401
    import flytekit  # noqa: F401
    import moto  # noqa: F401
    import rich  # noqa: F401

    import aws_array_plugin_flyte  # noqa: F401
    from aws_array_plugin_demo.view import PlainView, RichView

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    view: View = PlainView() if args.plain or not sys.stdout.isatty() else RichView()
    try:
        with _restored_environ():
            return asyncio.run(_demo(args, view))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # setup trouble (ports, moto, the service): say what, then why
        import traceback

        traceback.print_exc()
        print(f"DEMO FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


@contextlib.contextmanager
def _restored_environ() -> Iterator[None]:
    """The service's AWS clients read the emulator endpoint from the environment; put it back afterwards."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class Check:
    ok: bool
    text: str  # what is expected

    @classmethod
    def equal(cls, got: Any, want: Any, text: str) -> Check:
        return cls(True, text) if got == want else cls(False, f"{text} (got {got})")


def _pythonpath() -> str:
    return os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")) if p)


async def _start_server(info: EmulatorInfo) -> tuple[RunningServer, asyncio.Task[None]]:
    from aws_array_plugin.config import load_config
    from aws_array_plugin.server import serve

    os.environ.update(info.client_env())
    os.environ["AWS_REGION"] = info.region
    config = load_config({
        "defaultQueue": info.queue,
        "allowedRoles": [f"arn:aws:iam::{info.account_id}:role/*"],
        "status": {"refreshInterval": "1s", "maxStaleness": "0.5s", "events": {
            # Push-first status: the emulator publishes AWS Batch's state-change events through an EventBridge
            # rule into a Kinesis stream, as deploy/aws/batch-events.cloudformation.yaml sets it up on AWS.
            "enabled": True, "stream": info.event_stream, "deadLetterQueue": info.dead_letter_queue_url,
            "heartbeatInterval": "1s", "heartbeatTimeout": "5s", "pollInterval": "0.2s", "reconcileInterval": "60s",
        }},
        # The image's code: the Flyte 2 job (`a0`) imports the demo's task module from PYTHONPATH.
        "defaultEnv": {"PYTHONPATH": _pythonpath()},
    })
    started: asyncio.Future[RunningServer] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(config, host="127.0.0.1", port=0, metrics_port=0, started=started))
    waiting: set[asyncio.Future[Any]] = {started, task}
    await asyncio.wait(waiting, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if started.done():
        return started.result(), task
    if task.done() and task.exception() is not None:
        raise RuntimeError(f"the plugin service did not start: {task.exception()}")
    task.cancel()
    raise RuntimeError("the plugin service did not start within 30 s")


async def _demo(args: argparse.Namespace, view: View) -> int:
    from aws_array_plugin_demo.view import Section
    from aws_batch_emulator import Emulator

    t0 = time.monotonic()
    view.section(Section("aws-array-plugin demo", [
        "An emulated AWS (moto: Batch, S3, CloudWatch Logs) and the plugin's gRPC service start in this process;",
        "then this demo acts as propeller: it serializes two flytekit tasks as `pyflyte register` does, writes",
        "their inputs.pb to S3, sends CreateTask with the args rendered, polls GetTask and reads logs with",
        "GetTaskLogs. The jobs run flytekit's real pyflyte-execute / pyflyte-map-execute. At the same time it",
        "acts as the Flyte 2 executor for one flyte SDK task (serialized as `flyte deploy` does), over the",
        "service's flyteidl2 connector face; that job runs flyte's real a0.",
        f"WARNING: {HOST_WARNING}; user {getpass.getuser()!r}.",
    ]))
    emulator = Emulator(port=0, step=args.step, concurrency=8, events=True)
    info = emulator.start()
    running: RunningServer | None = None
    server: asyncio.Task[None] | None = None
    try:
        view.note(f"emulated AWS   {info.endpoint}  (region {info.region}, queue {info.queue!r}, "
                  f"bucket {info.bucket!r}, {args.step:g}s per job transition)")
        running, server = await _start_server(info)
        view.note(f"plugin service 127.0.0.1:{running.port} (gRPC), metrics http://127.0.0.1:{running.metrics_port}"
                  "/metrics")
        view.note(await _events_live(running, info))
        code = await _drive(args, view, info, running, t0)
        if args.keep_running and code != 130:
            _keep_running_notice(view, info, running)
            await running.stop.wait()  # the service's own SIGINT/SIGTERM handlers set it
        return code
    finally:
        if running is not None and server is not None:
            running.stop.set()  # serve() then drains and stops
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server, 30)
        emulator.stop()


async def _drive(args: argparse.Namespace, view: View, info: EmulatorInfo, running: RunningServer,
                 t0: float) -> int:
    import boto3
    import grpc
    from flyteidl.service import agent_pb2_grpc

    from aws_array_plugin.resource_meta import decode
    from aws_array_plugin_demo import flyte2_executor as fx
    from aws_array_plugin_demo import flyte2_workflows, propeller, workflows

    execution = f"demo{uuid.uuid4().hex[:12]}"
    # Propeller passes execution env vars to the job. PYTHONPATH lets the host jobs import the demo module even
    # from a source checkout; PYTHONUNBUFFERED streams print() output to CloudWatch as it happens.
    env = {"PYTHONPATH": _pythonpath(), "PYTHONUNBUFFERED": "1"}
    attempts = [
        propeller.attempt("summarize", workflows.summarize, {"name": NAME, "values": VALUES},
                          bucket=info.bucket, execution=execution, node="n0", env=env),
        propeller.attempt("square_all", workflows.square_all, {"x": MAP_INPUTS},
                          bucket=info.bucket, execution=execution, node="n1", env=env),
    ]
    s3 = boto3.client("s3", **info.client_kwargs())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        client = propeller.Client(agent_pb2_grpc.AsyncAgentServiceStub(channel))
        # Flyte 2: the run `<execution>`, action a1, laid out as the run service and executor do.
        executor = fx.Client(channel, s3, bucket=info.bucket, root_dir=Path(_PACKAGE_ROOT), version=propeller.VERSION)
        # The run's env vars (`flyte.run(env_vars=...)`, the TaskAction's spec.envVars): print() reaches CloudWatch
        # as it happens.
        action = executor.action(execution, "a1", env_vars={"PYTHONUNBUFFERED": "1"})
        flyte2 = fx.ActionAttempt("countdown", flyte2_workflows.countdown, action,
                                  await executor.request(flyte2_workflows.countdown, action, n=COUNTDOWN))
        for a in attempts:
            propeller.put_inputs(s3, a)
            await propeller.create(client, a)
            meta = decode(a.resource_meta)
            what = f"AWS array job of {meta.size} children" if a.task_type == "container_array" else "AWS Batch job"
            view.note(f"CreateTask {a.label} ({a.task_type}) -> {what} {', '.join(meta.job_ids) or '(pending)'}")
        await flyte2.create(executor)
        meta = decode(flyte2.resource_meta)
        view.note(f"CreateTask {flyte2.label} (Flyte 2, {flyte2.task_type}) -> AWS Batch job "
                  f"{', '.join(meta.job_ids) or '(pending)'}")
        everything: list[Attempt | ActionAttempt] = [*attempts, flyte2]
        view.note(f"polling GetTask every {POLL_INTERVAL:g}s (timeout {args.timeout:g}s)")
        outcome = await _poll(client, executor, everything, view, running, args.timeout, t0)
        if outcome == "interrupted":
            view.note("interrupted")
            return 130
        if outcome == "timeout":
            for a in attempts:
                if not a.done:  # as propeller does when a node times out
                    await client.delete(a.resource_meta, a.task_type)
                    view.note(f"DeleteTask {a.label}: terminated after the {args.timeout:g}s timeout")
            if not flyte2.done:  # as the Flyte 2 executor does when an action is aborted or times out
                await executor.delete(flyte2.resource_meta)
                view.note(f"DeleteTask {flyte2.label} (Flyte 2): terminated after the {args.timeout:g}s timeout")
        checks = await _report(view, client, s3, attempts)
        checks.extend(await _report_flyte2(view, executor, s3, flyte2))
        checks.append(_events_check(running))
    elapsed = time.monotonic() - t0
    if outcome == "timeout":
        checks.insert(0, Check(False, f"the tasks did not finish within {args.timeout:g}s (see --timeout, --step)"))
    elif outcome:
        checks.insert(0, Check(False, outcome))
    ok = all(c.ok for c in checks)
    summary = (f"all three tasks (two Flyte 1, one Flyte 2) behaved as expected ({elapsed:.1f}s)" if ok
               else f"{sum(not c.ok for c in checks)} of {len(checks)} checks failed ({elapsed:.1f}s)")
    view.verdict(ok, [summary, *(("ok    " if c.ok else "FAIL  ") + c.text for c in checks)])
    return 0 if ok else 1


async def _poll(client: Any, executor: Any, attempts: list[Attempt | ActionAttempt], view: View,
                running: RunningServer, limit: float, t0: float) -> str:
    """GetTask until every attempt is terminal. Returns "" or why it stopped early."""
    import grpc

    from aws_array_plugin_demo import propeller
    from aws_array_plugin_demo.flyte2_executor import ActionAttempt

    async def refresh(a: Attempt | ActionAttempt) -> None:
        if isinstance(a, ActionAttempt):
            await a.refresh(executor)
        else:
            await propeller.refresh(client, a)

    started = time.monotonic()
    failures: dict[str, int] = {}
    try:
        while True:
            if running.stop.is_set():
                return "interrupted"
            pending = [a for a in attempts if not a.done]
            results = await asyncio.gather(*(refresh(a) for a in pending), return_exceptions=True)
            for a, result in zip(pending, results, strict=True):
                if isinstance(result, grpc.aio.AioRpcError):
                    failures[a.label] = failures.get(a.label, 0) + 1
                    if failures[a.label] > MAX_RPC_FAILURES:
                        return f"GetTask {a.label} failed {failures[a.label]} times: {result.details()}"
                elif isinstance(result, BaseException):
                    raise result
            view.progress(attempts, time.monotonic() - t0)
            if all(a.done for a in attempts):
                return ""
            if time.monotonic() - started > limit:
                return "timeout"
            await asyncio.sleep(POLL_INTERVAL)
    finally:
        view.stop_progress()


async def _events_live(running: RunningServer, info: EmulatorInfo) -> str:
    """Waits (briefly) for the service's first heartbeat to come back through the event delivery."""
    for _ in range(100):  # 10 s at most
        if running.events.healthy:
            break
        await asyncio.sleep(0.1)
    state = "live" if running.events.healthy else "not live yet (the service polls meanwhile)"
    return f"status events {state}: Batch events -> EventBridge rule -> Kinesis stream {info.event_stream!r}"


def _events_check(running: RunningServer) -> Check:
    registry = running.core.metrics.registry

    def value(name: str, **labels: str) -> int:
        return int(registry.get_sample_value(f"aws_array_plugin_{name}", labels) or 0)

    applied = value("events_applied_total", kind="job") + value("events_applied_total", kind="array_child")
    describes = {r: value("status_describes_total", reason=r) for r in ("lookup", "refresh", "reconcile", "gap")}
    text = (f"the phases came from AWS Batch's events: {applied} applied; DescribeJobs calls by reason "
            f"{', '.join(f'{r} {n}' for r, n in describes.items())}")
    return Check(applied > 0, text)


def _s3_keys(s3: Any, prefix: str) -> list[str]:
    bucket, _, key = prefix.removeprefix("s3://").partition("/")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{key}/").get("Contents", [])
    return sorted(str(o["Key"])[len(key) + 1:] for o in listed)


def _common_lines(a: Attempt | ActionAttempt) -> list[str]:
    from aws_array_plugin_demo import propeller

    took = f" after {a.finished - a.started:.1f}s" if a.finished is not None else ""
    lines = [f"phase      {propeller.phase_name(a.resource.phase)}{took}  ({' -> '.join(a.phases) or 'none'})"]
    message = a.resource.message.splitlines() or [""]
    lines.append(f"message    {message[0]}")
    lines.extend(f"           {m}" for m in message[1:])
    return lines


LINKS_NOTE = "log links  (as the Flyte console would show them; they point at the real AWS console)"


async def _report(view: View, client: Any, s3: Any, attempts: list[Attempt]) -> list[Check]:
    import grpc

    from aws_array_plugin_demo import propeller, workflows
    from aws_array_plugin_demo.view import Section, children_text, links, pretty_log

    batch, mapped = attempts
    checks: list[Check] = []

    # aws-batch: one job; flytekit wrote <prefix>/0/outputs.pb, the service returned it inline.
    total = sum(v * v for v in VALUES)
    want_batch = {"o0": total, "o1": f"hello {NAME}, the sum of squares is {total}"}
    got_batch = _decode(workflows.summarize, batch)
    keys = _s3_keys(s3, batch.request.output_prefix)
    checks.append(Check.equal(propeller.phase_name(batch.resource.phase), "SUCCEEDED", f"{batch.label}: SUCCEEDED"))
    checks.append(Check.equal(got_batch, want_batch, f"{batch.label}: outputs {want_batch}"))
    checks.append(Check("0/outputs.pb" in keys, f"{batch.label}: flytekit wrote <output prefix>/0/outputs.pb"))
    view.section(Section(f"{batch.label} (aws-batch)", [
        *_common_lines(batch),
        f"outputs    {_format(got_batch)}   (GetTask resource.outputs, decoded with flytekit's TypeEngine)",
        f"expected   {_format(want_batch)}",
        f"S3         {batch.request.output_prefix}/ holds: {', '.join(keys)}",
        LINKS_NOTE,
    ], ok=all(c.ok for c in checks), links=links(batch)))

    # legacy map task: one AWS array job; outputs assembled from <prefix>/<i>/outputs.pb, None where a child failed.
    failing = MAP_INPUTS.index(workflows.UNLUCKY)
    want_map = {"o0": [None if x == workflows.UNLUCKY else x * x for x in MAP_INPUTS]}
    got_map = _decode(workflows.square_all, mapped)
    keys = _s3_keys(s3, mapped.request.output_prefix)
    info = mapped.resource.custom_info
    children = {k: int(v) for k, v in dict(info["children"]).items()} if "children" in info else {}
    map_checks = [
        Check.equal((propeller.phase_name(mapped.resource.phase), children.get("succeeded"), children.get("failed")),
                    ("SUCCEEDED", len(MAP_INPUTS) - 1, 1),
                    f"{mapped.label}: SUCCEEDED with 1 of {len(MAP_INPUTS)} children failed (min_success_ratio 0.8)"),
        Check.equal(got_map, want_map, f"{mapped.label}: outputs {want_map}"),
        Check(f"{failing}/error.pb" in keys, f"{mapped.label}: child {failing} wrote error.pb"),
    ]
    view.section(Section(f"{mapped.label} (container_array, legacy map task of {len(MAP_INPUTS)})", [
        *_common_lines(mapped),
        f"children   {children_text(mapped)}",
        f"inputs     x = {MAP_INPUTS}",
        f"outputs    {_format(got_map)}   (None where the child failed)",
        f"expected   {_format(want_map)}",
        f"S3         {mapped.request.output_prefix}/ holds: {', '.join(keys)}",
        LINKS_NOTE,
    ], ok=all(c.ok for c in map_checks), links=links(mapped)))
    checks.extend(map_checks)

    # Logs through the service: the aws-batch job's, and the failing child's (metadata child-index).
    for a, child in ((batch, None), (mapped, failing)):
        where = f"{a.label} child {child}" if child is not None else a.label
        error = ""
        try:
            raw = await propeller.log_lines(client, a, child=child)
        except grpc.aio.AioRpcError as exc:  # shown in the section; the check below fails
            raw, error = [], f"GetTaskLogs failed: {exc.code().name}: {exc.details()}"
        lines, hidden = pretty_log(raw)
        if error:
            lines.append(error)
        if hidden:
            lines.append(f"({hidden} line(s) of flytekit's aiohttp 'Unclosed client session' shutdown noise hidden)")
        how = f"metadata child-index={child}" if child is not None else "no metadata"
        if child is None:
            ok = any(f"sum of squares = {total}" in line for line in raw)
            checks.append(Check(ok, f"{where}: log shows the task's print() output"))
        else:
            ok = any(f"ValueError: {workflows.UNLUCKY} is unlucky" in line for line in raw)
            checks.append(Check(ok, f"{where}: log shows its ValueError traceback"))
        view.section(Section(f"logs of {where} (GetTaskLogs, {how})", lines or ["(no lines)"], ok=ok))
    return checks


async def _report_flyte2(view: View, executor: Any, s3: Any, a: ActionAttempt) -> list[Check]:
    """The Flyte 2 task: SUCCEEDED, its output decoded with the SDK equal to what the demo computes, and a0's
    outputs.pb under the action's output prefix (where the executor would read it); its print() in the job's log."""
    import grpc

    from aws_array_plugin_demo import flyte2_executor as fx
    from aws_array_plugin_demo.view import Section, links, pretty_log

    want = f"{', '.join(str(i) for i in range(COUNTDOWN, 0, -1))}, liftoff! (sum {COUNTDOWN * (COUNTDOWN + 1) // 2})"
    got: Any = None
    if a.resource.HasField("outputs"):
        try:
            got = await fx.native_outputs(a.task, a.resource)
        except Exception as exc:  # wrong types from the service: shown, and the output check fails
            got = f"<undecodable: {exc}>"
    keys = _s3_keys(s3, a.request.output_prefix)
    checks = [
        Check.equal(fx.phase_name(a.resource.phase), "SUCCEEDED", f"{a.label} (Flyte 2): SUCCEEDED"),
        Check.equal(got, want, f"{a.label} (Flyte 2): output {want!r}"),
        Check(fx.OUTPUTS_FILE in keys, f"{a.label} (Flyte 2): a0 wrote <output prefix>/{fx.OUTPUTS_FILE}"),
    ]
    view.section(Section(f"{a.label} (Flyte 2, aws-batch, flyte SDK task with plugin_config=AWSBatch())", [
        *_common_lines(a),
        f"run/action {a.action.run_name}/{a.action.action_name} (flyteidl2.connector.AsyncConnectorService)",
        f"inputs     n = {COUNTDOWN}",
        f"output     {got!r}   (GetTask resource.outputs, decoded with the flyte SDK)",
        f"expected   {want!r}",
        f"S3         {a.request.output_prefix}/ holds: {', '.join(keys) or '(nothing)'}",
        LINKS_NOTE,
    ], ok=all(c.ok for c in checks), links=links(a)))
    error = ""
    try:
        raw = await executor.logs(a.resource_meta)
    except grpc.aio.AioRpcError as exc:  # shown in the section; the check below fails
        raw, error = [], f"GetTaskLogs failed: {exc.code().name}: {exc.details()}"
    lines, _ = pretty_log(raw)
    ok = any(f"counting down from {COUNTDOWN}" in line for line in raw)
    checks.append(Check(ok, f"{a.label} (Flyte 2): log shows the task's print() output"))
    view.section(Section(f"logs of {a.label} (Flyte 2 GetTaskLogs)", [*lines, *([error] if error else [])]
                         or ["(no lines)"], ok=ok))
    return checks


def _decode(entity: Any, a: Attempt) -> dict[str, Any]:
    from aws_array_plugin_demo import propeller

    if not a.resource.HasField("outputs"):
        return {}
    try:
        return propeller.python_outputs(entity, a.resource.outputs)
    except Exception as exc:  # wrong types from the service: shown, and the output check fails
        return {"<undecodable>": str(exc)}


def _format(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {v!r}" for k, v in sorted(values.items())) or "(none)"


def _keep_running_notice(view: View, info: EmulatorInfo, running: RunningServer) -> None:
    from aws_array_plugin_demo.view import Section

    env = " ".join(f"{k}={v}" for k, v in info.client_env().items() if k != "AWS_EC2_METADATA_DISABLED")
    view.section(Section("still running (Ctrl-C stops both)", [
        f"emulated AWS    {info.endpoint}  (region {info.region}, queue {info.queue}, bucket {info.bucket})",
        f"plugin gRPC     127.0.0.1:{running.port}  (flyteidl AsyncAgentService, plaintext)",
        f"metrics         http://127.0.0.1:{running.metrics_port}/metrics",
        f"try             {env} aws batch list-jobs --job-queue {info.queue} --filters name=JOB_NAME,values='*'",
        f"                grpcurl -plaintext 127.0.0.1:{running.port} list",
        f"WARNING: {HOST_WARNING}.",
    ]))
