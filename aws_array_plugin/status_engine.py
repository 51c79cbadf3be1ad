"""One shared, batched view of AWS Batch jobs for every GetTask of the process.

- Lookups of many GetTasks are coalesced into DescribeJobs calls of up to 100 ids.
- Every job someone asked about recently is refreshed in the background once per `refreshInterval`,
  all of them together, so a poll cycle costs ceil(tracked jobs / 100) calls and GetTask is answered
  from memory.
- Arrays are tracked by their parent alone (its `statusSummary` counts the children); children are
  described only when they fail (reason, exit code, log stream), plus a small sample of running ones for
  log links.
- Memory is a cache: jobs nobody asked about for `idleEviction` are dropped, and a fresh process
  rebuilds everything from the resource meta.
- With `status.events` (docs/architecture.md, "Status events"), AWS Batch's state-change events keep tracked
  jobs current while the event source is healthy (`apply`): then DescribeJobs only reconciles, a job once per
  `reconcileInterval` without an event, and every job after a gap. Events and DescribeJobs answers both carry
  versions (job_events), so neither moves a job back. An unhealthy source means polling again, by itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aws_array_plugin import job_events
from aws_array_plugin.array_tally import ArrayTally
from aws_array_plugin.aws_calls import AwsCalls, AwsRequestError, AwsUnavailable
from aws_array_plugin.background import cancel_and_wait
from aws_array_plugin.batch_ids import local_index, status_summary
from aws_array_plugin.bounded import BoundedCache
from aws_array_plugin.config import StatusConfig
from aws_array_plugin.job_details import decode_describe_jobs, slim
from aws_array_plugin.job_events import JobEvent, Order, Version
from aws_array_plugin.metrics import Metrics
from aws_array_plugin.phases import TERMINAL_STATUSES, blocking_reason
from aws_array_plugin.terminations import terminate_jobs

log = logging.getLogger(__name__)

MAX_IDS_PER_CALL = 100
# Why a describe is made (the metric's reason), most urgent first: a batch counts as its most urgent id's.
_REASONS = ("lookup", "gap", "reconcile", "refresh")
_PHASE_NAMES = {"SUBMITTED": "queued", "PENDING": "queued", "RUNNABLE": "queued", "STARTING": "initializing",
                "RUNNING": "running", "SUCCEEDED": "succeeded", "FAILED": "failed"}
@dataclass(slots=True)
class TrackedJob:
    job_id: str
    detail: dict[str, Any] | None = None
    fetched_at: float = 0.0
    requested_at: float = 0.0
    error: str | None = None
    missing_since: float | None = None
    blocked_reason: str | None = None
    blocked_since: float | None = None
    terminated: str | None = None
    # Arrays only.
    failed_children: dict[int, dict[str, Any]] = field(default_factory=dict)
    failed_listed: int = 0
    running_children: list[dict[str, Any]] = field(default_factory=list)
    running_sampled_at: float = 0.0
    # Why its RUNNABLE children wait (AWS puts the reason on them, never on the parent).
    child_blocked_reason: str | None = None
    child_blocked_since: float | None = None
    child_reason_checked: float = -1e9
    # Array children are looked at on demand only, never refreshed in the background.
    background: bool = True
    # A describe of this job is queued or in flight.
    refreshing: bool = False
    # The version of `detail` (job_events): nothing older replaces it.
    version: Version | None = None
    # Arrays, with events: the children's states from their own events.
    tally: ArrayTally | None = None

    @property
    def status(self) -> str:
        return str(self.detail.get("status", "")) if self.detail else ""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class StatusEngine:
    def __init__(self, api: AwsCalls, config: StatusConfig, metrics: Metrics,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time) -> None:
        self._api = api
        self._cfg = config
        self._wall = wall_clock
        # Events keep jobs current only while the source says it is healthy (set_events_live).
        self._events_live = False
        self._reasons: dict[str, str] = {}
        self._metrics = metrics
        self._clock = clock
        # Jobs asked about, least recently asked first; past maxTrackedJobs the oldest is forgotten.
        self._jobs: BoundedCache[str, TrackedJob] = BoundedCache(config.max_tracked_jobs, on_evict=self._evicted)
        # Background-refreshed jobs, least recently described first (for topping up partial batches).
        self._by_fetch: OrderedDict[str, TrackedJob] = OrderedDict()
        self._queued: list[str] = []
        self._pending: set[str] = set()  # queued or being described
        self._waiting: dict[str, asyncio.Future[None]] = {}  # only for callers that wait
        self._kick = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight = asyncio.Semaphore(4)
        self._describing: set[asyncio.Task[None]] = set()
        self._served_age = 0.0
        self._child_lookups: dict[str, asyncio.Task[None]] = {}
        self.describe_calls = 0
        if config.events.enabled:
            metrics.status_polling_fallback.set(1)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._api.decode_with("batch", "DescribeJobs", decode_describe_jobs)
        self._tasks = [asyncio.create_task(self._flusher(), name="describe-flusher"),
                       asyncio.create_task(self._refresher(), name="status-refresher")]

    async def stop(self) -> None:
        await cancel_and_wait([*self._tasks, *self._child_lookups.values()])

    def __len__(self) -> int:
        return len(self._jobs)

    # -- queries -----------------------------------------------------------------------------------
    def seed(self, job_id: str, queue: str, status: str = "SUBMITTED", *, array_size: int | None = None) -> None:
        """A job this replica just submitted: its first GetTask needs no AWS call. The queue (name or ARN, as
        submitted) labels it in the gauges until DescribeJobs tells more; an array's size lets its children's
        events be counted before its own first event or describe."""
        job = self._track(job_id)
        if job.detail is None:
            job.detail = {"jobId": job_id, "status": status, "jobQueue": queue}
            if array_size is not None:
                job.detail["arrayProperties"] = {"size": array_size, "statusSummary": {}}
            job.fetched_at = self._clock()
            self._by_fetch[job_id] = job  # a candidate to fill partial DescribeJobs calls, like a described job

    def seed_all(self, jobs: Iterable[tuple[str, str, int | None]]) -> None:
        """(job id, queue, array size or None) of each job just submitted."""
        for job_id, queue, array_size in jobs:
            self.seed(job_id, queue, array_size=array_size)

    async def jobs(self, job_ids: Iterable[str], *, background: bool = True) -> list[TrackedJob]:
        """Fresh-enough state of each job; waits for one coalesced DescribeJobs when needed. When AWS
        fails, jobs keep their last known detail and carry `error`."""
        now = self._clock()
        wanted = [self._track(i) for i in job_ids]
        for job in wanted:
            job.requested_at = now
            job.background = job.background and background
        stale = [j.job_id for j in wanted if not j.terminal and now - j.fetched_at > self._stale_after(j)]
        futures = [self._wait_for(i) for i in stale]
        if futures:
            # Answer within the RPC's budget: a slow or throttled AWS leaves the describe running in the
            # background and the caller gets the last known state (`refreshing` still set).
            await asyncio.wait(futures, timeout=self._cfg.answer_timeout)
        now = self._clock()
        for job in wanted:
            if job.tally is not None and job.tally.dirty:
                self._summarize(job)
            if job.detail is not None and not job.terminal and not self._pushed(job):
                self._served_age = max(self._served_age, now - job.fetched_at)
        return wanted

    def age(self, job: TrackedJob) -> float:
        return self._clock() - job.fetched_at

    def _evicted(self, job_id: str, _: TrackedJob) -> None:
        self._by_fetch.pop(job_id, None)

    def _track(self, job_id: str) -> TrackedJob:
        job = self._jobs.get(job_id)
        if job is None:
            job = TrackedJob(job_id, requested_at=self._clock())
            self._jobs.put(job_id, job)
        return job

    def _enqueue(self, job_ids: Iterable[str], reason: str) -> int:
        """Queue for describe the ids not already queued or in flight; returns how many were queued."""
        new = [i for i in job_ids if i not in self._pending]
        for job_id in new:
            self._reasons[job_id] = reason
        if new:
            self._pending.update(new)
            self._queued.extend(new)
            self._kick.set()
            for job_id in new:
                job = self._jobs.peek(job_id)
                if job is not None:
                    job.refreshing = True
        return len(new)

    def _wait_for(self, job_id: str) -> asyncio.Future[None]:
        self._enqueue((job_id,), "lookup")
        fut = self._waiting.get(job_id)
        if fut is None:
            fut = self._waiting[job_id] = asyncio.get_running_loop().create_future()
        return fut

    # -- batching ----------------------------------------------------------------------------------
    async def _flusher(self) -> None:
        while True:
            await self._kick.wait()
            if len(self._queued) < MAX_IDS_PER_CALL:
                await asyncio.sleep(self._cfg.batch_window)
            batch, self._queued = self._queued[:MAX_IDS_PER_CALL], self._queued[MAX_IDS_PER_CALL:]
            if not self._queued:
                self._kick.clear()
            if batch and len(batch) < MAX_IDS_PER_CALL:
                batch += self._due_soon(MAX_IDS_PER_CALL - len(batch), set(batch))
            if batch:
                await self._inflight.acquire()
                task = asyncio.create_task(self._describe(batch))
                self._describing.add(task)
                task.add_done_callback(self._describing.discard)
                await asyncio.sleep(0)  # let waiting GetTasks run between the calls of a refresh pass

    def _due_soon(self, room: int, taken: set[str]) -> list[str]:
        """Tracked jobs halfway to their next refresh, to fill a partial DescribeJobs call: the call costs
        the same, and the refresh cycle then finds them fresh."""
        now = self._clock()
        half = self._cfg.refresh_interval * 0.5
        extra: list[str] = []
        for job in self._by_fetch.values():
            if len(extra) >= room or now - job.fetched_at < half:
                break  # ordered by last describe: the rest are fresher
            if self._pushed(job) and now - job.fetched_at < self._cfg.events.reconcile_interval * 0.5:
                continue
            if job.background and not job.terminal and not job.refreshing and job.job_id not in taken:
                job.refreshing = True
                self._pending.add(job.job_id)
                extra.append(job.job_id)
        return extra

    async def _describe(self, ids: list[str]) -> None:
        try:
            self.describe_calls += 1
            self._metrics.describe_batch_size.observe(len(ids))
            reasons = {self._reasons.pop(i, "refresh") for i in ids}
            self._metrics.status_describes.labels(next(r for r in _REASONS if r in reasons)).inc()
            try:
                resp = await self._api.call("describe", "batch", "describe_jobs", jobs=ids)
                error = None
            except (AwsUnavailable, AwsRequestError) as exc:
                resp, error = {}, str(exc)
            now = self._clock()
            found = {d["jobId"]: d for d in resp.get("jobs", [])}
            for job_id in ids:
                job = self._jobs.peek(job_id)
                if job is not None:
                    job.refreshing = False
                    if error is not None:
                        job.error = error
                    elif job_id in found:
                        self._offer(job, slim(found[job_id]), int(self._wall() * 1000), now, current=True)
                    else:
                        job.error = None
                        job.missing_since = job.missing_since or now
                        job.fetched_at = now
                fut = self._waiting.pop(job_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(None)
        finally:
            self._pending.difference_update(ids)
            self._inflight.release()

    def _offer(self, job: TrackedJob, fresh: dict[str, Any], time_ms: int, now: float, *, current: bool) -> Order:
        """A state of the job (slimmed), from an event or a describe (`current`: AWS's state right now), taken
        when newer than the known one."""
        v = job_events.version(fresh, time_ms)
        order = job_events.compare(v, job.version)
        if order == "newer":
            job.version = v
            self._update(job, fresh, now)
        elif current:
            # An event newer than this answer came first: the job is at least as current as the answer.
            job.fetched_at = now
            job.error = None
            job.missing_since = None
        return order

    def _update(self, job: TrackedJob, fresh: dict[str, Any], now: float) -> None:
        if fresh != job.detail:
            # An unchanged job keeps its old objects: replacing thousands of details every cycle would
            # promote them all to the oldest generation and set off a full collection each cycle.
            job.detail = fresh
        job.fetched_at = now
        if job.background and not job.terminal:
            self._by_fetch[job.job_id] = job
            self._by_fetch.move_to_end(job.job_id)
        else:
            self._by_fetch.pop(job.job_id, None)
        job.error = None
        job.missing_since = None
        reason = blocking_reason(job.detail)
        if reason != job.blocked_reason:
            job.blocked_reason = reason
            job.blocked_since = now if reason else None
        if job.tally is not None:
            job.tally.describe_seen(status_summary(job.detail))
            self._summarize(job)

    # -- events ------------------------------------------------------------------------------------------
    def apply(self, events: Iterable[JobEvent]) -> None:
        """Events from the event source, in the order read. Only tracked jobs (and tracked arrays' children)
        are touched; the rest are counted and dropped."""
        now, wall = self._clock(), self._wall()
        m = self._metrics
        for event in events:
            order: Order | None = None
            job = self._jobs.peek(event.job_id)
            if job is not None:
                order = self._offer(job, event.detail, event.version[2], now, current=False)
                if order == "newer" and job.background and _lacks_final_details(job.detail):
                    self._enqueue((job.job_id,), "reconcile")  # what a failure summary or a log link reads
            if event.parent_id is not None and event.index is not None:
                parent = self._jobs.peek(event.parent_id)
                if parent is not None and not parent.terminal:
                    child_order = self._child_event(parent, event)
                    order = child_order if order is None or order == "older" else order
            if order is None:
                m.events_untracked.inc()
            elif order == "newer":
                m.events_applied.labels(event.kind).inc()
                m.event_lag.observe(max(0.0, wall - event.time))
            elif order == "duplicate":
                m.events_duplicate.inc()
            else:
                m.events_out_of_order.inc()

    def _child_event(self, parent: TrackedJob, event: JobEvent) -> Order:
        assert event.index is not None
        if parent.tally is None:
            parent.tally = ArrayTally()
            parent.tally.describe_seen(status_summary(parent.detail))
        order = parent.tally.apply(event.index, job_events.child_code(event.detail))
        if order != "newer":
            return order
        status = event.status
        if status == "FAILED" and len(parent.failed_children) < self._cfg.failed_child_details:
            # What a failure summary needs (reason, exit code, log stream) came with the event: no lookup.
            parent.failed_children[event.index] = event.detail
            parent.failed_listed = len(parent.failed_children)
        running = [c for c in parent.running_children if c.get("jobId") != event.job_id]
        if status == "RUNNING" and len(running) < self._cfg.running_child_links:
            running.append(event.detail)
            parent.running_sampled_at = self._clock()
        parent.running_children = running
        return order

    def _summarize(self, job: TrackedJob) -> None:
        """An array parent's summary from its children's events and its last description (array_tally)."""
        tally = job.tally
        if tally is None or job.detail is None:
            return
        tally.dirty = False
        props = job.detail.get("arrayProperties") or {}
        size = props.get("size")
        if job.terminal or not isinstance(size, int):
            return  # a final parent's own summary is AWS's last word; without a size there is nothing to count
        summary = tally.summary(size)
        if summary != props.get("statusSummary"):
            job.detail = {**job.detail, "arrayProperties": {**props, "statusSummary": summary}}

    def set_events_live(self, live: bool) -> None:
        """The event source's health: while live, events keep jobs current and DescribeJobs only reconciles."""
        if live == self._events_live:
            return
        self._events_live = live
        self._metrics.status_polling_fallback.set(0 if live else 1)
        if not live:
            log.warning("status events unhealthy: polling every tracked job again")
            self.refresh_once()
        else:
            log.info("status events healthy: DescribeJobs only reconciles")

    def reconcile_all(self, cause: str) -> int:
        """Describe every tracked, unfinished job once: events may have been lost (`cause`)."""
        self._metrics.event_source_gaps.labels(cause).inc()
        due = [job_id for job_id, job in self._jobs.items() if job.background and not job.terminal]
        log.info("status events: reconciling %d tracked jobs (%s)", len(due), cause)
        return self._enqueue(due, "gap")

    def _pushed(self, job: TrackedJob) -> bool:
        """Whether events keep this job current (so no news is good news until reconcileInterval). Array
        children looked up on demand are not: nothing reconciles them, and a lookup wants AWS's word."""
        if not self._events_live or not job.background:
            return False
        if self._cfg.events.array_child_events:
            return True
        if job.version is None:
            return False  # known only from its submission: it may be an array, whose progress events do not tell
        props = (job.detail or {}).get("arrayProperties") or {}
        return "size" not in props  # an array whose children's events the rule filters out is polled

    def _stale_after(self, job: TrackedJob) -> float:
        return self._cfg.events.reconcile_interval if self._pushed(job) else self._cfg.max_staleness

    @property
    def events_live(self) -> bool:
        return self._events_live

    # -- background refresh --------------------------------------------------------------------------
    async def _refresher(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.refresh_interval)
            try:
                self.refresh_once()
                await asyncio.sleep(0)  # GetTasks waiting meanwhile go first
                self._publish_gauges()
            except Exception:  # never let the loop die
                log.exception("status refresh failed")

    def refresh_once(self) -> int:
        """Queue every tracked, unfinished, recently requested job for one describe; evict idle ones.
        Returns how many were queued. It runs on the event loop in one piece, so it stays one cheap pass."""
        now = self._clock()
        idle_since = now - self._cfg.idle_eviction
        # Whatever would be older than maxStaleness at the next pass goes now (the pass can run a little
        # late): otherwise its GetTask would find it stale first and describe it alone.
        fetched_before = now - max(0.0, self._cfg.max_staleness - self._cfg.refresh_interval * 1.1)
        # With live events a job is only described when it had no news for reconcileInterval.
        reconcile_before = now - max(0.0, self._cfg.events.reconcile_interval - self._cfg.refresh_interval * 1.1)
        idle: list[str] = []
        due: list[str] = []
        quiet: list[str] = []
        for job_id, job in self._jobs.items():
            if job.requested_at < idle_since:
                idle.append(job_id)
            elif not job.background or job.terminal:
                continue
            elif self._pushed(job):
                if job.fetched_at <= reconcile_before:
                    quiet.append(job_id)
            elif job.fetched_at <= fetched_before:
                due.append(job_id)
        for job_id in idle:
            self._jobs.pop(job_id)
            self._by_fetch.pop(job_id, None)
        return self._enqueue(due, "refresh") + self._enqueue(quiet, "reconcile")

    def _publish_gauges(self) -> None:
        jobs: dict[tuple[str, str], int] = {}
        children: dict[tuple[str, str], int] = {}
        blocked: dict[str, int] = {}
        for j in self._jobs.values():
            if not j.background or j.detail is None:
                continue  # array children are counted through their parent's summary
            if j.tally is not None and j.tally.dirty:
                self._summarize(j)
            queue = str(j.detail.get("jobQueue", "")).rsplit("/", 1)[-1]
            summary = status_summary(j.detail)
            phase = _PHASE_NAMES.get(j.status, "unknown")
            if summary and phase == "queued" and any(summary.get(s) for s in ("STARTING", "RUNNING", "SUCCEEDED")):
                phase = "running"  # an array parent is never RUNNING itself
            jobs[(phase, queue)] = jobs.get((phase, queue), 0) + 1
            for status, n in summary.items():
                children[(status, queue)] = children.get((status, queue), 0) + int(n)
            if j.blocked_reason:
                key = j.blocked_reason.split(" ")[0][:80]
                blocked[key] = blocked.get(key, 0) + 1
        m = self._metrics
        for gauge, values in ((m.tracked_jobs, jobs), (m.array_children, children)):
            gauge.clear()
            for labels, n in values.items():
                gauge.labels(*labels).set(n)
        m.runnable_stuck.clear()
        for reason, n in blocked.items():
            m.runnable_stuck.labels(reason).set(n)
        m.status_age.set(self._served_age)
        m.status_polling_fallback.set(1 if self._cfg.events.enabled and not self._events_live else 0)
        self._served_age = 0.0

    # -- actions -------------------------------------------------------------------------------------
    async def terminate(self, job_ids: Iterable[str], reason: str, *, again: bool = False) -> None:
        """Terminate tracked jobs (terminations.terminate_jobs), once per job unless `again` (an abort the user
        asked for is always sent)."""
        for job_id in job_ids:
            job = self._jobs.peek(job_id)
            if job is not None and job.terminated and not again:
                continue
            await terminate_jobs(self._api, [job_id], reason)
            if job is not None:
                job.terminated = reason

    # -- array children: looked up in the background, so a GetTask never waits on them -------------------
    def _in_background(self, key: str, make: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        task = self._child_lookups.get(key)
        if task is None or task.done():
            task = asyncio.create_task(self._quietly(make()), name=f"children-{key}")
            self._child_lookups[key] = task
            task.add_done_callback(lambda t: self._child_lookups.pop(key, None)
                                   if self._child_lookups.get(key) is t else None)
        return task

    async def _quietly(self, lookup: Awaitable[None]) -> None:
        try:
            await lookup
        except (AwsUnavailable, AwsRequestError) as exc:
            log.info("array children lookup postponed: %s", exc)

    async def failed_children(self, parent: TrackedJob, failed_count: int, limit: int, *,
                              wait: bool = False) -> list[dict[str, Any]]:
        """Failed children of an array (up to `limit`), listed when the failed count grew, then described
        for their log streams. Returns the ones known now, by index; `wait` waits for the lookup (for a
        final failure summary)."""
        want = min(failed_count, limit)
        if parent.failed_listed < want:
            task = self._in_background(f"{parent.job_id}/failed", lambda: self._list_failed(parent, want))
            if wait:
                await asyncio.wait([task], timeout=self._cfg.answer_timeout * 5)
        return [parent.failed_children[i] for i in sorted(parent.failed_children)]

    async def _list_failed(self, parent: TrackedJob, want: int) -> None:
        token: str | None = None
        listed: list[dict[str, Any]] = []
        while len(listed) < want:
            params: dict[str, Any] = {"arrayJobId": parent.job_id, "jobStatus": "FAILED",
                                      "maxResults": min(100, max(1, want))}
            if token:
                params["nextToken"] = token
            resp = await self._api.call("list", "batch", "list_jobs", **params)
            listed.extend(resp.get("jobSummaryList", []))
            token = resp.get("nextToken")
            if not token:
                break
        new_ids = [s["jobId"] for s in listed if _index(s) not in parent.failed_children][:want]
        for job_id in new_ids:
            known = self._jobs.peek(job_id)
            if known is not None and known.status != "FAILED":
                known.fetched_at = -math.inf  # known from before it failed (a running sample): describe it again
        details = await self.jobs(new_ids, background=False)
        for d in details:
            if d.detail is not None and d.status == "FAILED":
                parent.failed_children[_index(d.detail)] = d.detail
        # Children whose describe failed are looked up again next time.
        parent.failed_listed = len(parent.failed_children)

    def blocked_children_reason(self, parent: TrackedJob) -> str | None:
        """AWS's reason the array's queued children cannot start, looked up on one RUNNABLE child at most
        once per refresh interval (in the background). `child_blocked_since` marks when it first appeared."""
        now = self._clock()
        if now - parent.child_reason_checked >= self._cfg.refresh_interval:
            parent.child_reason_checked = now
            self._in_background(f"{parent.job_id}/blocked", lambda: self._check_blocked(parent))
        return parent.child_blocked_reason

    async def _check_blocked(self, parent: TrackedJob) -> None:
        resp = await self._api.call("list", "batch", "list_jobs", arrayJobId=parent.job_id, jobStatus="RUNNABLE",
                                    maxResults=1)
        summaries = resp.get("jobSummaryList", [])
        reason = blocking_reason({"status": "RUNNABLE", "statusReason": summaries[0].get("statusReason")}
                                 ) if summaries else None
        if reason != parent.child_blocked_reason:
            parent.child_blocked_reason = reason
            parent.child_blocked_since = self._clock() if reason else None

    async def running_children(self, parent: TrackedJob, k: int, resample_after: float = 300.0) -> list[dict[str, Any]]:
        """A small sample of running children for log links, re-sampled in the background at most every
        `resample_after` seconds. Only the very first sample is waited for (briefly): propeller publishes
        links with the first RUNNING answer, not with later answers in the same phase."""
        now = self._clock()
        if self._pushed(parent) and parent.tally is not None and parent.running_children:
            return parent.running_children[:k]  # kept current by the children's RUNNING events
        if k > 0 and (not parent.running_children or now - parent.running_sampled_at >= resample_after):
            first = parent.running_sampled_at == 0.0 and not parent.running_children
            parent.running_sampled_at = now
            task = self._in_background(f"{parent.job_id}/running", lambda: self._sample_running(parent, k))
            if first:
                await asyncio.wait([task], timeout=self._cfg.answer_timeout)
        return parent.running_children[:k]

    async def _sample_running(self, parent: TrackedJob, k: int) -> None:
        resp = await self._api.call("list", "batch", "list_jobs", arrayJobId=parent.job_id, jobStatus="RUNNING",
                                    maxResults=k)
        ids = [s["jobId"] for s in resp.get("jobSummaryList", [])][:k]
        details = await self.jobs(ids, background=False)
        parent.running_children = [d.detail for d in details if d.detail is not None]
        if not parent.running_children:
            parent.running_sampled_at = -1e9  # none seen running yet: look again next time, without waiting


def _lacks_final_details(detail: dict[str, Any] | None) -> bool:
    """A single job's final state without what its answer reads (exit code, log stream, attempts): AWS's event
    documentation promises a detail that only "resembles" DescribeJobs', so an event that lacks them is
    completed by one describe."""
    if not detail or str(detail.get("status")) not in TERMINAL_STATUSES or detail.get("arrayProperties"):
        return False
    container = detail.get("container") or {}
    return not detail.get("attempts") and "exitCode" not in container and "logStreamName" not in container


def _index(detail: dict[str, Any]) -> int:
    index = local_index(detail)
    return -1 if index is None else index
