"""`Batch Job State Change` events of the job engine, delivered through the EventBridge rules of moto's default
event bus, with the faults EventBridge and a stream can show (duplicates, reordering, delays, drops, outages).

The engine hands `EventPublisher.publish` a snapshot of each transition (`unit_change`, `children_change`),
taken under its lock so that it is the state of that moment, and cheap: a few field copies, the JobDetail is
not built yet. A publisher thread renders the JobDetail with the same `views` code as DescribeJobs, wraps it in
AWS's envelope, matches it against the rules and writes it to their targets (`moto_events`), batched. Custom
events (PutEvents from clients) bound for Kinesis targets come through the same thread, so faults apply alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import itertools
import json
import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import Any

from . import moto_events, views
from .faults import EventFaults
from .model import PENDING, RUNNABLE, SUBMITTED, ArrayJob, Attempt, Job, Run, SingleJob


def _json_encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


_encode: Callable[[Any], bytes] = _json_encode
try:  # ~8x faster than json.dumps for a JobDetail; installed with the service, which devtools requires
    from msgspec.json import encode as _msgspec_encode

    _encode = _msgspec_encode
except ImportError:  # pragma: no cover
    pass


_log = logging.getLogger(__name__)
SOURCE = "aws.batch"
DETAIL_TYPE = "Batch Job State Change"
DUPLICATE_MAX_DELAY = 2.0  # s: the second copy of a duplicated event comes at most this much later
_CHUNK = 500  # events rendered, matched and written per round (also moto's PutRecords limit)
_DRAIN = 2000  # queue items taken per round, so one round stays short
TO_PENDING = bytes([SUBMITTED])  # statuses the engine moves children from, in bulk
TO_RUNNABLE = bytes([SUBMITTED, PENDING])
STAT_KEYS = (
    "published",
    "matched",
    "delivered",
    "duplicated",
    "reordered",
    "delayed",
    "dropped",
    "deadLettered",
    "failed",
)


# ---- snapshots (engine thread, under its lock) ---------------------------------------------------------


@dataclass(slots=True)
class UnitChange:
    """A transition of a single job or array parent (`index` -1, `job` a detached copy) or of one child (`job`
    the live parent, of which only fields fixed at submission are read later)."""

    job: Job
    index: int
    at: int  # epoch s
    status: int = 0
    run: Run | None = None
    record: Run | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ChildrenChange:
    """Children moved at once from `moved` statuses to `status`, none dispatched yet (the engine's bulk moves to
    PENDING and RUNNABLE). `before` is the status array they were moved from: the engine replaced it, so it no
    longer changes and needs no copy."""

    job: ArrayJob
    before: bytearray
    moved: bytes
    status: int
    tags: dict[str, str]
    at: int


Change = UnitChange | ChildrenChange


def _freeze_run(run: Run) -> Run:
    # An ended attempt never changes again; a running one does (exit code, reasons): copy it as it is now.
    attempts = [a if a.stopped_at is not None else Attempt(a.number, a.task_id, a.started_at) for a in run.attempts]
    return Run(
        attempts=attempts,
        status_reason=run.status_reason,
        started_at=run.started_at,
        stopped_at=run.stopped_at,
        cancelled=run.cancelled,
        terminated=run.terminated,
    )


def unit_change(job: Job, index: int) -> UnitChange:
    at = int(time.time())
    if isinstance(job, ArrayJob):
        if index >= 0:
            run, record = views.child_record(job, index)
            if run is not None:
                run = record = _freeze_run(run)
            return UnitChange(job, index, at, job.child_status[index], run, record, dict(job.tags))
        # The parent as it is now; its children's statuses and runs are not part of its own event.
        copy: Job = dataclasses.replace(job, tags=dict(job.tags), counts=list(job.counts),
                                        child_status=bytearray(), runs={})
    else:
        assert isinstance(job, SingleJob)
        copy = dataclasses.replace(job, tags=dict(job.tags), run=_freeze_run(job.run))
    return UnitChange(copy, -1, at)


def children_change(job: ArrayJob, before: bytearray, moved: bytes, status: int) -> ChildrenChange:
    return ChildrenChange(job, before, moved, status, dict(job.tags), int(time.time()))


# ---- events and deliveries -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Event:
    body: dict[str, Any]
    account: str
    region: str
    rule: Any = None  # a custom event: the rule moto matched, and its Kinesis targets
    targets: Sequence[Mapping[str, Any]] = ()


@dataclass(slots=True)
class _Delivery:
    """One event for one target, reduced to bytes at once so that the event's dicts die young: kept until the
    batched write, thousands per round, they made the GC's walks cost more than the work itself."""

    rule: Any
    target: Mapping[str, Any]
    data: bytes  # what the target gets: the event's JSON unless the target reshapes it
    event: bytes  # the event's JSON, for a dead-letter queue
    key: str  # Kinesis partition key


def _deliveries(body: dict[str, Any], pairs: Sequence[tuple[Any, Mapping[str, Any]]]) -> list[_Delivery]:
    event = _encode(body)
    return [
        _Delivery(rule, t, moto_events.reshaped(t, body) or event, event, moto_events.partition_key(t, body))
        for rule, t in pairs
    ]


@dataclass(slots=True)
class _Marker:
    """`wait_idle`: done once everything published before it is processed, and what that held back delivered
    (not what was published later: under a steady flow of events and faults something is always held)."""

    done: threading.Event
    below: int = 0  # held deliveries made before it: those with a lower sequence number
    left: int = 0  # how many of them are still held


_WAKE = object()


def _event_id(rng: random.Random) -> str:
    # uuid4's layout from 128 random bits: ~10x cheaper than str(uuid.uuid4()), which reads os.urandom.
    n = rng.getrandbits(128)
    n = (n & ~(0xC000 << 48)) | (0x8000 << 48)
    n = (n & ~(0xF000 << 64)) | (4 << 76)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _write(deliveries: Sequence[_Delivery], counts: Counter[str]) -> None:
    """Write deliveries to their targets: Kinesis batched per stream, SQS one message each. A failed write goes
    to the target's dead-letter queue, as EventBridge's does once its retries are exhausted."""
    streams: dict[moto_events.Target, list[_Delivery]] = {}
    for d in deliveries:
        target = moto_events.parse_arn(str(d.target.get("Arn", "")))
        if target.service == "kinesis":
            streams.setdefault(target, []).append(d)
            continue
        if target.service != "sqs":  # moto's other targets (logs, buses, ...) get custom events only
            counts["failed"] += 1
            continue
        try:
            group = (d.target.get("SqsParameters") or {}).get("MessageGroupId")
            moto_events.send_sqs(target, d.data.decode(), group_id=group)
            counts["delivered"] += 1
        except moto_events.DeliveryError as exc:
            counts["failed"] += 1
            _dead_letter(d, "SQS_ERROR", str(exc), counts)
    for target, group in streams.items():
        records = [(d.key, d.data) for d in group]
        try:
            moto_events.put_kinesis(target, records)
            counts["delivered"] += len(group)
        except Exception as exc:  # the stream is missing, or moto refused the batch
            counts["failed"] += len(group)
            for d in group:
                _dead_letter(d, "RESOURCE_NOT_FOUND", str(exc), counts)


def _dead_letter(d: _Delivery, code: str, message: str, counts: Counter[str]) -> None:
    arn = moto_events.dead_letter_arn(d.target)
    if arn is None:
        return
    attributes = {
        "RULE_ARN": str(getattr(d.rule, "arn", "")),
        "TARGET_ARN": str(d.target.get("Arn", "")),
        "ERROR_CODE": code,
        "ERROR_MESSAGE": message[:256],
    }
    try:
        moto_events.send_sqs(moto_events.parse_arn(arn), d.event.decode(), attributes=attributes)
        counts["deadLettered"] += 1
    except moto_events.DeliveryError:
        counts["failed"] += 1


def deliver_direct(rule: Any, targets: Sequence[Mapping[str, Any]], event: dict[str, Any]) -> None:
    """moto's PutEvents to Kinesis targets when no publisher receives it (an emulator without events): written
    at once, no faults, no counters."""
    _write(_deliveries(event, [(rule, t) for t in targets]), Counter())


# ---- the publisher -------------------------------------------------------------------------------------


class EventPublisher:
    """Publishes the engine's transitions as EventBridge events, from its own thread. `publish` (the engine's
    hook) only enqueues; faults are drawn from one seeded generator, two draws per delivery whatever the
    outcome, so with a seed the fault counts depend only on the number of deliveries."""

    def __init__(self, *, faults: EventFaults | None = None, seed: int | None = None) -> None:
        self._queue: SimpleQueue[object] = SimpleQueue()
        self._published = 0  # Batch events, counted by `publish` (always under the engine's lock)
        self._faults = faults or EventFaults()
        self._rng = random.Random(seed)
        self._ids = random.Random()  # event ids: never seeded, so two emulators never share one
        self._lock = threading.Lock()
        self._stats: Counter[str] = Counter()
        self._held: list[tuple[float, int, _Delivery]] = []  # (due, seq, delivery): delayed, reordered, copies
        self._seq = itertools.count()
        self._backlog: deque[object] = deque()
        self._current: Iterator[_Event] | None = None  # an item being expanded (a bulk change of children)
        self._reached: list[_Marker] = []
        self._down_until = 0.0
        self._changed = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._iso = (0, "")

    # ---- lifecycle and control (any thread) ------------------------------------------------------------

    def publish(self, change: Change) -> None:
        """The engine's hook, called under its lock: count and enqueue, nothing more."""
        self._published += _size(change)
        self._queue.put(change)

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="batch-emulator-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; deliveries still queued or held back are discarded."""
        self._stopping = True
        self._changed.set()
        self._queue.put(_WAKE)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def set_faults(self, faults: EventFaults, seed: int | None = None) -> None:
        with self._lock:
            self._faults = faults
            if seed is not None:
                self._rng = random.Random(seed)

    def faults(self) -> EventFaults:
        return self._faults

    def down(self, seconds: float) -> None:
        """An EventBridge outage: nothing is delivered for `seconds`; events are kept, in order of arrival, and
        delivered when it ends (as Batch's durable delivery and EventBridge's 24 h retries do)."""
        if not 0 <= seconds <= 86_400:
            raise ValueError("seconds must be in 0..86400")
        self._down_until = time.monotonic() + seconds
        self._changed.set()

    def up(self) -> None:
        self._down_until = 0.0
        self._changed.set()
        self._queue.put(_WAKE)

    @property
    def down_for(self) -> float:
        """Seconds left of the outage (0: delivering)."""
        return max(0.0, self._down_until - time.monotonic())

    def stats(self) -> dict[str, int]:
        with self._lock:
            out = {key: self._stats[key] for key in STAT_KEYS}
        out["published"] += self._published
        out["pending"] = len(self._held)
        return out

    def reset_stats(self) -> None:
        with self._lock:
            self._stats.clear()
            self._published = 0

    def wait_idle(self, timeout: float | None = None) -> bool:
        """True once everything published so far has been delivered, dropped or failed, the copies and late
        deliveries it caused included (not those of events published since); False on timeout."""
        marker = _Marker(threading.Event())
        self._queue.put(marker)
        return marker.done.wait(timeout)

    # moto_events.CustomEvents: PutEvents from clients, bound for Kinesis targets
    def custom(self, rule: Any, targets: Sequence[Mapping[str, Any]], event: dict[str, Any]) -> None:
        self._queue.put(_Event(event, rule.account_id, rule.region_name, rule, list(targets)))

    def count_published(self, n: int) -> None:
        with self._lock:
            self._stats["published"] += n

    # ---- the thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            wait = self._down_until - time.monotonic()
            if wait > 0:
                self._changed.wait(min(wait, 1.0))
                self._changed.clear()
                continue
            if not self._backlog and self._current is None:
                timeout = min(1.0, max(0.0, self._held[0][0] - time.monotonic())) if self._held else 1.0
                with contextlib.suppress(Empty):
                    self._backlog.append(self._queue.get(timeout=timeout))
            for _ in range(_DRAIN):
                try:
                    self._backlog.append(self._queue.get_nowait())
                except Empty:
                    break
            if self._stopping or self._down_until > time.monotonic():
                continue  # went down meanwhile: the backlog waits
            try:
                self._round()
            except Exception:  # a bug must not end event delivery for the emulator's lifetime
                _log.exception("event publishing round failed")

    def _round(self) -> None:
        counts: Counter[str] = Counter()
        with self._lock:
            faults, rng = self._faults, self._rng
        matchers: dict[tuple[str, str], moto_events.Matcher] = {}
        out: list[_Delivery] = []
        now = time.monotonic()
        for ev in self._next_events(matchers):
            if ev.rule is None:  # a Batch event: the bus's rules decide
                matcher = _matcher(matchers, ev.account, ev.region)
                pairs = [(r, t) for r in matcher.matching(ev.body) for t in list(r.targets)]
            else:  # a custom event: moto matched the rule already
                pairs = [(ev.rule, t) for t in ev.targets]
            counts["matched"] += len(pairs)
            if pairs:
                source = ev.body.get("source")
                for d in _deliveries(ev.body, pairs):
                    self._apply(faults, rng, source, d, out, counts, now)
        while self._held and self._held[0][0] <= now:
            _, seq, d = heapq.heappop(self._held)
            out.append(d)
            for marker in self._reached:
                marker.left -= seq < marker.below
        if out:
            _write(out, counts)
        with self._lock:
            self._stats.update(counts)
        if self._reached:
            for marker in self._reached:
                if marker.left <= 0:
                    marker.done.set()
            self._reached = [m for m in self._reached if m.left > 0]

    def _next_events(self, matchers: dict[tuple[str, str], moto_events.Matcher]) -> Iterator[_Event]:
        """Up to one chunk of events from the backlog, in order of arrival. Batch events are only rendered when
        their account/region's bus has rules."""
        n = 0
        while n < _CHUNK:
            if self._current is not None:
                ev = next(self._current, None)
                if ev is None:
                    self._current = None
                    continue
                n += 1
                yield ev
                continue
            if not self._backlog:
                return
            item = self._backlog.popleft()
            if isinstance(item, _Marker):
                # Everything before it has been through `_apply`: what it holds back has lower numbers.
                item.below, item.left = next(self._seq), len(self._held)
                self._reached.append(item)
            elif isinstance(item, _Event):
                n += 1
                yield item
            elif isinstance(item, UnitChange | ChildrenChange):
                spec = item.job.spec
                # Without a rule on that bus there is nothing to deliver, so nothing to render.
                self._current = self._render(item) if _matcher(matchers, spec.account, spec.region).rules else None

    def _render(self, item: UnitChange | ChildrenChange) -> Iterator[_Event]:
        spec = item.job.spec
        when = self._time(item.at)
        if isinstance(item, UnitChange):
            if item.index < 0:
                detail = views.job_detail(item.job)
            else:
                assert isinstance(item.job, ArrayJob)
                detail = views.child_detail(item.job, item.index, item.status, item.run, item.record, item.tags)
            yield _Event(self._envelope(detail, spec.account, spec.region, when), spec.account, spec.region)
            return
        job = item.job
        # Never dispatched, so no run: only a child that can never be placed has a reason.
        record = Run(status_reason=job.unfit) if item.status == RUNNABLE and job.unfit is not None else None
        for index, before in enumerate(item.before):
            if before in item.moved:
                detail = views.child_detail(job, index, item.status, None, record, item.tags)
                yield _Event(self._envelope(detail, spec.account, spec.region, when), spec.account, spec.region)

    def _envelope(self, detail: dict[str, Any], account: str, region: str, when: str) -> dict[str, Any]:
        return {
            "version": "0",
            "id": _event_id(self._ids),
            "detail-type": DETAIL_TYPE,
            "source": SOURCE,
            "account": account,
            "time": when,
            "region": region,
            "resources": [detail["jobArn"]],
            "detail": detail,
        }

    def _time(self, at: int) -> str:
        if self._iso[0] != at:
            self._iso = (at, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)))
        return self._iso[1]

    def _apply(
        self,
        faults: EventFaults,
        rng: random.Random,
        source: Any,
        d: _Delivery,
        out: list[_Delivery],
        counts: Counter[str],
        now: float,
    ) -> None:
        if not faults.active or (faults.sources is not None and source not in faults.sources):
            out.append(d)
            return
        u, v = rng.random(), rng.random()
        if u < faults.drop:
            counts["dropped"] += 1
            if faults.dead_letter:
                _dead_letter(d, "EMULATOR_INJECTED_DROP", "dropped by the emulator's fault injection", counts)
        elif u < faults.drop + faults.duplicate:
            counts["duplicated"] += 1
            out.append(d)
            self._hold(now + v * DUPLICATE_MAX_DELAY, d)
        elif u < faults.drop + faults.duplicate + faults.reorder:
            counts["reordered"] += 1
            self._hold(now + v * faults.reorder_window, d)
        elif u < faults.drop + faults.duplicate + faults.reorder + faults.delay:
            counts["delayed"] += 1
            self._hold(now + faults.delay_seconds, d)
        else:
            out.append(d)

    def _hold(self, due: float, d: _Delivery) -> None:
        heapq.heappush(self._held, (due, next(self._seq), d))


def _matcher(matchers: dict[tuple[str, str], moto_events.Matcher], account: str, region: str) -> moto_events.Matcher:
    """The rules of an account/region's default bus, read once per round (clients may change them any time)."""
    matcher = matchers.get((account, region))
    if matcher is None:
        matcher = matchers[(account, region)] = moto_events.Matcher(moto_events.bus_rules(account, region))
    return matcher


def _size(item: Change) -> int:
    if isinstance(item, UnitChange):
        return 1
    return sum(item.before.count(status) for status in item.moved)
