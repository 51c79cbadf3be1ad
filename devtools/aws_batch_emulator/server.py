"""`Emulator`: moto's server app behind our gateway, on a loopback-only werkzeug server in a daemon thread,
plus the job engine's scheduler thread. Usable in-process (tests, the demo) or via the CLI.

    with Emulator(port=0, step=0.1, concurrency=8) as emu:      # start() is implied
        batch = boto3.client("batch", **emu.info.client_kwargs())

Job commands run ON THE HOST as the current user (see the package docstring).

With `events=True` it also publishes AWS Batch `Batch Job State Change` events through EventBridge rules to a
pre-provisioned Kinesis stream, with fault injection on their delivery (`events`, `moto_events`).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .capacity import DEFAULT_MAX_VCPUS, Capacity
from .faults import CallStats, EventFaults, FaultInjector, FaultRule, FaultSpec
from .runtime import EMULATOR_KEY

if TYPE_CHECKING:
    from .events import EventPublisher
    from .listener import Listener

HOST = "127.0.0.1"  # loopback only, never 0.0.0.0: jobs run arbitrary commands on this host
DEFAULT_REGION = "us-east-1"
DEFAULT_QUEUE = "default"
DEFAULT_BUCKET = "flyte-data"
_NOISY_LOGGERS = ("werkzeug", "moto", "botocore.credentials", "flask_cors")


@dataclass(frozen=True, slots=True)
class EmulatorInfo:
    endpoint: str
    port: int
    region: str
    account_id: str
    queue: str
    queue_arn: str
    compute_environment: str
    bucket: str
    role_arn: str
    log_group: str
    # Event delivery (`events=True` only): Batch events and heartbeats reach this stream through these rules.
    event_stream: str | None = None
    event_stream_arn: str | None = None
    dead_letter_queue_url: str | None = None
    dead_letter_queue_arn: str | None = None
    event_rule: str | None = None
    event_rule_arn: str | None = None
    heartbeat_rule: str | None = None

    def to_json(self) -> dict[str, Any]:
        events = {
            "eventStream": self.event_stream,
            "eventStreamArn": self.event_stream_arn,
            "deadLetterQueueUrl": self.dead_letter_queue_url,
            "deadLetterQueueArn": self.dead_letter_queue_arn,
            "eventRule": self.event_rule,
            "eventRuleArn": self.event_rule_arn,
            "heartbeatRule": self.heartbeat_rule,
        }
        return {
            "endpoint": self.endpoint,
            "port": self.port,
            "region": self.region,
            "accountId": self.account_id,
            "queue": self.queue,
            "queueArn": self.queue_arn,
            "computeEnvironment": self.compute_environment,
            "bucket": self.bucket,
            "roleArn": self.role_arn,
            "logGroup": self.log_group,
            **({} if self.event_stream is None else events),
        }

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for a boto3/aiobotocore client of the emulator."""
        return {
            "endpoint_url": self.endpoint,
            "region_name": self.region,
            "aws_access_key_id": EMULATOR_KEY,
            "aws_secret_access_key": EMULATOR_KEY,
        }

    def client_env(self) -> dict[str, str]:
        """Environment variables pointing an AWS SDK (or a subprocess) at the emulator."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": EMULATOR_KEY,
            "AWS_SECRET_ACCESS_KEY": EMULATOR_KEY,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }


def quiet_logs() -> None:
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


class Emulator:
    """An emulated AWS (Batch, S3, CloudWatch Logs, IAM, STS) with a process runtime for Batch jobs."""

    def __init__(
        self,
        *,
        port: int = 0,
        region: str = DEFAULT_REGION,
        step: float = 0.5,
        concurrency: int = 8,
        queue: str = DEFAULT_QUEUE,
        bucket: str = DEFAULT_BUCKET,
        faults: FaultSpec | None = None,
        seed: int | None = None,
        workdir: str | None = None,
        max_vcpus: float = DEFAULT_MAX_VCPUS,
        gpus: int = 0,
        max_memory_mib: int | None = None,
        events: bool = False,
        event_faults: EventFaults | Mapping[str, Any] | None = None,
    ) -> None:
        self._port = port
        self._region = region
        self._step = step
        self._concurrency = concurrency
        self._queue = queue
        self._bucket = bucket
        self._workdir = workdir
        self._own_workdir = False
        self._stats = CallStats()
        self._faults = FaultInjector(seed)
        self._faults.set(faults or {})  # validates early: a bad rule fails here, not half-way through start()
        self._capacity = Capacity(max_vcpus=max_vcpus, gpus=gpus, max_memory_mib=max_memory_mib)
        self._events_enabled = events
        self._seed = seed
        self._event_faults = _event_faults(event_faults)  # validated early, like `faults`
        if self._event_faults.active and not events:
            raise ValueError("event faults need events=True (CLI: --events)")
        self._info: EmulatorInfo | None = None
        self._listener: Listener | None = None
        self._engine: Any = None
        self._events: EventPublisher | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> EmulatorInfo:
        if self._info is not None:
            return self._info
        quiet_logs()
        # Heavy imports only now: moto takes ~1 s to import.
        from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app

        from . import moto_events
        from .batch_api import BatchJobsApi
        from .control import Control
        from .events import EventPublisher, deliver_direct
        from .gateway import Gateway
        from .jobs import JobEngine
        from .listener import Listener
        from .moto_dispatch import MotoDispatcher
        from .moto_store import MotoLogSink
        from .provisioning import LOG_GROUP, provision, provision_events
        from .runtime import Endpoint

        # Kinesis targets for moto's own PutEvents, and fast shards: harmless for everything else.
        moto_events.install(deliver_direct)
        publisher = EventPublisher(faults=self._event_faults, seed=self._seed) if self._events_enabled else None

        # Bind first (port 0 picks a free one); the app is set once the endpoint is known.
        listener = Listener(HOST, self._port, lambda e, s: [], MotoRequestHandler)
        port = listener.port
        if self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="aws-array-plugin-emulator-")
            self._own_workdir = True
        endpoint = f"http://{HOST}:{port}"
        engine = JobEngine(
            step=self._step,
            concurrency=self._concurrency,
            logs=MotoLogSink(),
            endpoint=Endpoint(url=endpoint, region=self._region),
            workdir=self._workdir,
            capacity=self._capacity,
            publish=None if publisher is None else publisher.publish,
        )
        control = Control(
            info=lambda: self.info.to_json(),
            engine=engine,
            stats=self._stats,
            faults=self._faults,
            restart=lambda downtime: self.restart(downtime, wait=False),
            events=publisher,
        )
        listener.app = Gateway(
            moto_app=MotoDispatcher(create_backend_app),
            jobs_api=BatchJobsApi(engine),
            control=control,
            stats=self._stats,
            faults=self._faults,
            default_region=self._region,
            events=publisher,
        )
        self._listener, self._engine, self._events = listener, engine, publisher
        try:
            made = provision(self._region, queue=self._queue, bucket=self._bucket)
            delivery = (
                provision_events(self._region, account=made.account_id, queue_arn=made.queue_arn, endpoint=endpoint)
                if publisher is not None
                else None
            )
        except BaseException:
            self.stop()
            raise
        self._info = EmulatorInfo(
            endpoint=endpoint,
            port=port,
            region=self._region,
            account_id=made.account_id,
            queue=made.queue_name,
            queue_arn=made.queue_arn,
            compute_environment=made.compute_environment,
            bucket=made.bucket,
            role_arn=made.role_arn,
            log_group=LOG_GROUP,
            **({} if delivery is None else delivery.info_fields()),
        )
        if publisher is not None:
            publisher.start()
        engine.start()
        listener.start()
        return self._info

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        if self._engine is not None:
            self._engine.stop()
        if self._events is not None:
            self._events.stop()
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._listener = self._engine = self._info = self._events = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- state and control -----------------------------------------------------------------------------

    @property
    def info(self) -> EmulatorInfo:
        if self._info is None:
            raise RuntimeError("emulator is not started")
        return self._info

    @property
    def endpoint(self) -> str:
        return self.info.endpoint

    def set_faults(self, rules: FaultSpec, seed: int | None = None) -> None:
        """Replace the fault rules, e.g. `{"DescribeJobs": FaultRule(throttle=0.3), "*": {"latencyMs": 20}}`."""
        self._faults.set(rules, seed=seed)

    def clear_faults(self) -> None:
        self._faults.set({})

    def faults(self) -> dict[str, FaultRule]:
        return self._faults.rules()

    def stats(self) -> dict[str, int]:
        """Calls received per operation name since start or the last reset (injected faults included)."""
        return self._stats.snapshot()

    def injected(self) -> dict[str, dict[str, int]]:
        """Calls answered with an injected fault, per operation and kind: `{"SubmitJob": {"throttle": 3}}`."""
        return self._stats.injected()

    def reset_stats(self) -> None:
        self._stats.reset()

    def jobs_summary(self) -> dict[str, Any]:
        if self._engine is None:
            raise RuntimeError("emulator is not started")
        summary: dict[str, Any] = self._engine.summary()
        return summary

    # ---- events (events=True) --------------------------------------------------------------------------

    @property
    def _publisher(self) -> EventPublisher:
        if self._info is None:
            raise RuntimeError("emulator is not started")
        if self._events is None:
            raise RuntimeError("events are not enabled: Emulator(events=True), CLI --events")
        return self._events

    def set_event_faults(self, faults: EventFaults | Mapping[str, Any], seed: int | None = None) -> None:
        """Replace the faults of event delivery, e.g. `EventFaults(duplicate=0.1)` or `{"drop": 0.2,
        "deadLetter": True}`; `seed` reseeds their draws."""
        self._publisher.set_faults(_event_faults(faults), seed=seed)

    def event_faults(self) -> EventFaults:
        return self._publisher.faults()

    def clear_event_faults(self) -> None:
        self._publisher.set_faults(EventFaults())

    def events_down(self, seconds: float) -> None:
        """An EventBridge outage: no event is delivered for `seconds`; they are delivered, in order of arrival,
        when it ends (or at `events_up()`)."""
        self._publisher.down(seconds)

    def events_up(self) -> None:
        self._publisher.up()

    def event_stats(self) -> dict[str, int]:
        """Event counters since start or the last reset: published, matched (event x target deliveries due),
        delivered (copies written), duplicated, reordered, delayed, dropped, deadLettered, failed; and pending
        (deliveries held back right now)."""
        return self._publisher.stats()

    def reset_event_stats(self) -> None:
        self._publisher.reset_stats()

    def wait_events_idle(self, timeout: float | None = 10.0) -> bool:
        """Wait until every event published so far is delivered, dropped or failed (none held back or buffered
        by an outage); False on timeout."""
        return self._publisher.wait_idle(timeout)

    # ---- outages ---------------------------------------------------------------------------------------

    def restart(self, downtime: float, *, wait: bool = True) -> None:
        """An API outage: the endpoint stops answering (new connections are refused, idle keep-alive ones are
        closed; requests already in progress are answered) and comes back after `downtime` s on the same port
        with the same state. Jobs keep running meanwhile. Returns when the endpoint is back, or with
        `wait=False` as soon as it is down. Raises RuntimeError if it is already down."""
        if self._listener is None:
            raise RuntimeError("emulator is not started")
        self._listener.outage(downtime)
        if wait and not self._listener.wait_up(downtime + 30):
            raise RuntimeError("the endpoint did not come back")

    @property
    def is_up(self) -> bool:
        """False during an outage (`restart`) and when stopped."""
        return self._listener is not None and self._listener.is_up

    def wait_up(self, timeout: float | None = None) -> bool:
        """Wait until the endpoint answers again after an outage; False on timeout."""
        return self._listener is not None and self._listener.wait_up(timeout)

    def reset_jobs(self) -> None:
        """Forget all jobs, killing running attempts (queues, definitions and S3 data stay)."""
        if self._engine is not None:
            self._engine.reset()


def _event_faults(faults: EventFaults | Mapping[str, Any] | None) -> EventFaults:
    if faults is None:
        return EventFaults()
    return faults if isinstance(faults, EventFaults) else EventFaults.from_json(faults)


def run_forever(emulator: Emulator, stop: threading.Event) -> None:
    """Block until `stop` is set (signal handlers set it), then stop the emulator."""
    try:
        while not stop.wait(0.5):
            pass
    finally:
        with contextlib.suppress(Exception):
            emulator.stop()
