"""The event source: AWS Batch's state-change events read from a Kinesis stream, fed to the status engine.

Delivery (docs/architecture.md, "Status events"): an EventBridge rule sends the service's job queues' events to
one Kinesis stream and every replica reads every shard itself, so each replica sees every transition it may be
asked about. Reading starts a little before the process did (AT_TIMESTAMP), resumes after the last record read
when an iterator expires, and follows shards that appear after a reshard.

Health is measured end to end: each replica puts a heartbeat event on the bus every `heartbeatInterval`; a
second rule forwards it to the same stream. While the newest heartbeat of its own seen back was sent within
`heartbeatTimeout`, events are live; otherwise (EventBridge, the stream or the reads are down or far behind)
the engine polls. When the source is healthy again, and whenever the dead-letter queue gains entries or an
iterator cannot resume, every tracked job is reconciled once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_array_plugin import job_events
from aws_array_plugin.aws_calls import AwsCalls, AwsRequestError, AwsUnavailable
from aws_array_plugin.background import cancel_and_wait
from aws_array_plugin.config import EventsConfig
from aws_array_plugin.job_events import Heartbeat, JobEvent
from aws_array_plugin.metrics import Metrics
from aws_array_plugin.status_engine import StatusEngine

log = logging.getLogger(__name__)

_RECORDS_PER_READ = 10_000  # Kinesis' largest GetRecords
_DECODE_SLICE = 500  # records decoded between yields to the event loop
_SHARD_LIST_INTERVAL = 60.0
_START_MARGIN = 5.0  # read from a little before the start: a job described at start misses no transition
GAP_CAUSES = ("start", "heartbeat_missed", "read_failed", "iterator_lost", "dead_letter")


def replica_name() -> str:
    """This process among the replicas: the pod's name where there is one, made unique per start."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class EventSource:
    def __init__(self, api: AwsCalls, config: EventsConfig, engine: StatusEngine, metrics: Metrics, *,
                 replica: str | None = None, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._api = api
        self._cfg = config
        self._engine = engine
        self._metrics = metrics
        self.replica = replica or replica_name()
        self._clock = clock
        self._wall = wall_clock
        self._started_wall = 0.0
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._behind: dict[str, float] = {}
        self._last_sequence: dict[str, str] = {}  # per shard: where a reader resumes
        self._heartbeats_sent = 0
        self._newest_heartbeat: float | None = None  # sentAt of the newest own heartbeat seen back
        self._heartbeat_seen_at: float | None = None
        self._read_failing_since: float | None = None
        self._healthy = False
        self._dead_letters: int | None = None
        self._gap_cause = "start"  # why the next return to health reconciles everything
        self.records_read = 0

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._started_wall = self._wall()
        self._metrics.event_source_healthy.set(0)
        for cause in GAP_CAUSES:
            self._metrics.event_source_gaps.labels(cause)  # at 0 from the start, so increase() sees the first one
        self._tasks = [asyncio.create_task(self._follow_shards(), name="event-shards"),
                       asyncio.create_task(self._heartbeat_loop(), name="event-heartbeats"),
                       asyncio.create_task(self._health_loop(), name="event-health")]
        if self._cfg.dead_letter_queue:
            self._tasks.append(asyncio.create_task(self._dead_letter_loop(), name="event-dead-letters"))

    async def stop(self) -> None:
        await cancel_and_wait([*self._tasks, *self._readers.values()])
        self._readers.clear()

    @property
    def healthy(self) -> bool:
        return self._healthy

    def _stream(self) -> dict[str, Any]:
        stream = self._cfg.stream
        return {"StreamARN": stream} if stream.startswith("arn:") else {"StreamName": stream}

    # -- shards ------------------------------------------------------------------------------------
    async def _follow_shards(self) -> None:
        first = True
        while True:
            try:
                for shard_id in await self._list_shards():
                    reader = self._readers.get(shard_id)
                    if reader is not None and reader.done() and not reader.cancelled() and reader.exception():
                        # A reader that died of a bug resumes after its last record; what it missed is described.
                        log.error("event stream reader of shard %s failed", shard_id, exc_info=reader.exception())
                        self._engine.reconcile_all("read_failed")
                        reader = None
                    if reader is None:
                        # Shards there at start are read from just before it; later ones (a reshard) whole.
                        position = ({"ShardIteratorType": "AT_TIMESTAMP",
                                     "Timestamp": datetime.fromtimestamp(self._started_wall - _START_MARGIN, UTC)}
                                    if first or shard_id in self._last_sequence else
                                    {"ShardIteratorType": "TRIM_HORIZON"})
                        self._readers[shard_id] = asyncio.create_task(self._read(shard_id, position),
                                                                      name=f"event-shard-{shard_id}")
                first = False
            except (AwsUnavailable, AwsRequestError) as exc:
                self._read_failed(f"ListShards: {exc}")
            await asyncio.sleep(_SHARD_LIST_INTERVAL if not first else self._cfg.poll_interval)

    async def _list_shards(self) -> list[str]:
        shards: list[str] = []
        params: dict[str, Any] = self._stream()
        while True:
            resp = await self._api.call("events", "kinesis", "list_shards", **params)
            shards.extend(str(s["ShardId"]) for s in resp.get("Shards", []))
            token = resp.get("NextToken")
            if not token:
                return shards
            params = {"NextToken": token}

    async def _iterator(self, shard_id: str, position: dict[str, Any]) -> str:
        resp = await self._api.call("events", "kinesis", "get_shard_iterator", ShardId=shard_id, **position,
                                    **self._stream())
        return str(resp["ShardIterator"])

    async def _read(self, shard_id: str, position: dict[str, Any]) -> None:
        """Read one shard until it closes (after a reshard), forever otherwise."""
        iterator: str | None = None
        while True:
            started = self._clock()
            try:
                if iterator is None:
                    iterator = await self._resume(shard_id, position, self._last_sequence.get(shard_id))
                resp = await self._api.call("events", "kinesis", "get_records", ShardIterator=iterator,
                                            Limit=_RECORDS_PER_READ)
            except AwsRequestError as exc:
                iterator = None
                if exc.code != "ExpiredIteratorException":
                    self._read_failed(f"shard {shard_id}: {exc}")
                    await asyncio.sleep(self._cfg.poll_interval)
                continue
            except AwsUnavailable as exc:
                self._read_failed(f"shard {shard_id}: {exc}")
                await asyncio.sleep(self._cfg.poll_interval)
                continue
            self._read_failing_since = None
            records = resp.get("Records", [])
            if records:
                self._last_sequence[shard_id] = str(records[-1]["SequenceNumber"])
                try:
                    await self._handle(records)
                except Exception:  # a reader must outlive any record; the engine reconciles what it missed
                    log.exception("event records of shard %s not applied", shard_id)
                    self._engine.reconcile_all("read_failed")
            self._behind[shard_id] = float(resp.get("MillisBehindLatest", 0) or 0) / 1000
            self._metrics.event_stream_behind.set(max(self._behind.values()))
            iterator = resp.get("NextShardIterator")
            if iterator is None:
                log.info("event stream shard %s closed", shard_id)
                self._behind.pop(shard_id, None)
                return
            if len(records) < _RECORDS_PER_READ or not self._behind[shard_id]:
                # One read per pollInterval, counted from its start: the shard's read quota is what is shared.
                await asyncio.sleep(max(0.0, self._cfg.poll_interval - (self._clock() - started)))

    async def _resume(self, shard_id: str, position: dict[str, Any], last_sequence: str | None) -> str:
        if last_sequence is None:
            return await self._iterator(shard_id, position)
        try:
            return await self._iterator(shard_id, {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                                                   "StartingSequenceNumber": last_sequence})
        except AwsRequestError as exc:
            # The record is past the stream's retention: what came between is lost.
            log.warning("event stream shard %s cannot resume after %s (%s): reading from its oldest record",
                        shard_id, last_sequence, exc)
            self._engine.reconcile_all("iterator_lost")
            return await self._iterator(shard_id, {"ShardIteratorType": "TRIM_HORIZON"})

    async def _handle(self, records: list[dict[str, Any]]) -> None:
        received = self._metrics.events_received
        for start in range(0, len(records), _DECODE_SLICE):
            jobs: list[JobEvent] = []
            for record in records[start:start + _DECODE_SLICE]:
                event = job_events.decode(record.get("Data", b""))
                self.records_read += 1
                if isinstance(event, JobEvent):
                    received.labels(event.kind).inc()
                    jobs.append(event)
                elif isinstance(event, Heartbeat):
                    received.labels("heartbeat").inc()
                    self._heartbeat_back(event)
                else:
                    received.labels("other").inc()
            self._engine.apply(jobs)
            await asyncio.sleep(0)

    def _read_failed(self, why: str) -> None:
        if self._read_failing_since is None:
            self._read_failing_since = self._clock()
            log.warning("event stream read failed: %s", why)

    # -- heartbeats and health -------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        while True:
            self._heartbeats_sent += 1
            entry = job_events.heartbeat_entry(self._cfg.event_bus, self.replica, self._heartbeats_sent, self._wall())
            try:
                resp = await self._api.call("events", "events", "put_events", Entries=[entry], max_attempts=2)
                if resp.get("FailedEntryCount"):
                    log.warning("heartbeat event refused: %s", resp.get("Entries"))
            except (AwsUnavailable, AwsRequestError) as exc:
                log.info("heartbeat event not sent: %s", exc)
            await asyncio.sleep(self._cfg.heartbeat_interval)

    def _heartbeat_back(self, heartbeat: Heartbeat) -> None:
        if heartbeat.replica != self.replica:
            return  # another replica's: it checks its own
        if self._newest_heartbeat is None or heartbeat.sent_at > self._newest_heartbeat:
            self._newest_heartbeat = heartbeat.sent_at
        self._heartbeat_seen_at = self._wall()
        self.check_health()

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.check_health()

    def check_health(self) -> None:
        now = self._wall()
        if self._heartbeat_seen_at is not None:
            self._metrics.event_heartbeat_age.set(now - self._heartbeat_seen_at)
        healthy = self._newest_heartbeat is not None and now - self._newest_heartbeat <= self._cfg.heartbeat_timeout
        if healthy == self._healthy:
            return
        self._healthy = healthy
        self._metrics.event_source_healthy.set(1 if healthy else 0)
        self._engine.set_events_live(healthy)
        if healthy:
            # Whatever happened before (the start, an outage), events from now on are complete: catch up once.
            self._engine.reconcile_all(self._gap_cause)
        else:
            self._gap_cause = "read_failed" if self._read_failing_since is not None else "heartbeat_missed"
            log.warning("status events unhealthy (%s): no heartbeat of this replica back through the stream for "
                        "%.0fs", self._gap_cause, now - (self._newest_heartbeat or self._started_wall))

    # -- dead letters ----------------------------------------------------------------------------------
    async def _dead_letter_loop(self) -> None:
        while True:
            try:
                resp = await self._api.call("events", "sqs", "get_queue_attributes",
                                            QueueUrl=self._cfg.dead_letter_queue,
                                            AttributeNames=["ApproximateNumberOfMessages"])
                count = int(resp.get("Attributes", {}).get("ApproximateNumberOfMessages", 0))
                if self._dead_letters is not None and count > self._dead_letters:
                    log.warning("event dead-letter queue grew from %d to %d: events were lost",
                                self._dead_letters, count)
                    self._engine.reconcile_all("dead_letter")
                self._dead_letters = count
            except (AwsUnavailable, AwsRequestError) as exc:
                log.info("dead-letter queue not checked: %s", exc)
            await asyncio.sleep(self._cfg.dead_letter_check_interval)
