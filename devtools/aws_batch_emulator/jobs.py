"""Job engine: the AWS Batch job state machine for single and array jobs.

One asyncio loop in one daemon thread advances every job (timers for the status steps, the output pipes and
exit notifications of running attempts); there is no thread per job. API threads (the HTTP server) call the
public methods; all state is guarded by one lock. Flow of a unit (a single job or one array child):

    SUBMITTED -step-> [PENDING while dependencies run] -> RUNNABLE -step, free slot-> STARTING -step-> RUNNING
    -> process exits (RUNNING lasts at least one step) -> SUCCEEDED | FAILED | RUNNABLE again (retry)

An array parent is SUBMITTED, then PENDING while its children are queued or running, then SUCCEEDED when
all children succeeded or FAILED once all are terminal and any failed (never RUNNABLE/STARTING/RUNNING).

With an event publisher (`publish`), every later status change of a unit or parent is handed to it as a
snapshot (`events`), after the change is complete, so the event's detail is what DescribeJobs shows then.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from . import events, listing, runtime, views
from .capacity import Capacity
from .errors import BatchClientError
from .model import (
    FAILED,
    PENDING,
    QUEUED,
    REASON_DEPENDENCY,
    REASON_EXITED,
    REASON_START_FAILED,
    REASON_TIMEOUT,
    RUNNABLE,
    RUNNING,
    STARTING,
    STATUS_NAMES,
    SUBMITTED,
    SUCCEEDED,
    TERMINAL,
    ArrayJob,
    Attempt,
    Job,
    JobSpec,
    Run,
    SingleJob,
    child_id,
    log_stream,
)
from .runtime import AttemptProcess, Endpoint, Exit, LogWriter

_TO_RUNNABLE = bytes.maketrans(bytes([SUBMITTED, PENDING]), bytes([RUNNABLE, RUNNABLE]))
_TO_PENDING = bytes.maketrans(bytes([SUBMITTED]), bytes([PENDING]))


class LogSink(Protocol):
    """Where attempts' output goes (CloudWatch Logs of the emulator)."""

    def open_stream(self, account: str, region: str, group: str, stream: str) -> LogWriter: ...


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class _Queued:
    """A runnable-queue entry: one unit, or (index None) an array's first-attempt cursor."""

    job: Job
    index: int | None
    due: float  # loop time before which it may not start (RUNNABLE lasts at least one step)


@dataclass(slots=True)
class _Active:
    proc: AttemptProcess | None
    running_since: float
    timeout: asyncio.TimerHandle | None = None
    timed_out: bool = False


Unit = tuple[Job, int]  # index -1 for a single job


class JobEngine:
    def __init__(
        self,
        *,
        step: float,
        concurrency: int,
        logs: LogSink,
        endpoint: Endpoint,
        workdir: str,
        capacity: Capacity | None = None,
        publish: Callable[[events.Change], None] | None = None,
    ) -> None:
        if step < 0 or concurrency < 1:
            raise ValueError("step must be >= 0 and concurrency >= 1")
        self.step = step
        self.concurrency = concurrency
        self.capacity = capacity or Capacity()
        self._logs = logs
        self._endpoint = endpoint
        self._workdir = workdir
        self._publish = publish  # the event publisher's queue (None: no events, and no cost)
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._by_queue: dict[tuple[str, str, str], list[Job]] = {}
        self._seq = itertools.count(1)
        self._runnable: deque[_Queued] = deque()
        self._active: dict[tuple[str, int], _Active] = {}  # units holding a slot (STARTING or RUNNING)
        self._waiters: dict[str, list[Job]] = {}  # dependency id -> jobs waiting on it
        self._waiting: set[str] = set()  # ids of jobs held PENDING by dependencies
        self._generation = 0  # bumped by reset(): timers of older jobs then do nothing
        self._dispatch_timer: asyncio.TimerHandle | None = None
        self._dispatch_queued = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=main, name="batch-emulator-scheduler", daemon=True)
        self._thread.start()
        ready.wait()

    def stop(self) -> None:
        with self._lock:
            self._kill_all()
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None
        for active in list(self._active.values()):
            if active.proc is not None:
                active.proc.reap_blocking()
        self._active.clear()
        loop.close()

    def reset(self) -> None:
        """Forget every job (running attempts are killed)."""
        with self._lock:
            self._kill_all()
            self._generation += 1
            self._jobs.clear()
            self._by_queue.clear()
            self._runnable.clear()
            self._active.clear()
            self._waiters.clear()
            self._waiting.clear()
            # Pending dispatch callbacks belong to the old generation and will be ignored.
            self._dispatch_queued = False
            self._dispatch_timer = None

    def _kill_all(self) -> None:
        for active in self._active.values():
            if active.proc is not None:
                active.proc.kill()

    # ---- scheduling helpers ----------------------------------------------------------------------------

    @property
    def _ev(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("job engine is not started")
        return self._loop

    def _guarded(self, generation: int, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            if generation == self._generation:
                fn(*args)

    def _later(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` under the lock after `delay` s on the loop; callable from any thread."""
        loop = self._ev
        call = partial(loop.call_later, delay, self._guarded, self._generation, fn, *args)
        if threading.current_thread() is self._thread:
            call()
        else:
            loop.call_soon_threadsafe(call)

    def _kick(self) -> None:
        if not self._dispatch_queued:
            self._dispatch_queued = True
            self._later(0, self._dispatch)

    # ---- API (any thread) ------------------------------------------------------------------------------

    def submit(self, spec: JobSpec, *, array_size: int | None, tags: Mapping[str, str]) -> Job:
        now = now_ms()
        with self._lock:
            for dep in spec.depends_on:
                if self._resolve(dep.get("jobId", ""), spec.account, spec.region) is None:
                    raise BatchClientError(f"Dependent job {dep.get('jobId')!r} does not exist")
            job_id = str(uuid.uuid4())
            job: Job
            if array_size is None:
                job = SingleJob(job_id=job_id, seq=next(self._seq), spec=spec, created_at=now, tags=dict(tags))
            else:
                job = ArrayJob(
                    job_id=job_id,
                    seq=next(self._seq),
                    spec=spec,
                    created_at=now,
                    tags=dict(tags),
                    size=array_size,
                    child_status=bytearray([SUBMITTED]) * array_size,
                    summary_updated_at=now,
                )
                job.counts[SUBMITTED] = array_size
            job.unfit = self.capacity.unfit_reason(spec.needs)
            self._jobs[job_id] = job
            self._by_queue.setdefault((spec.account, spec.region, spec.queue_arn), []).append(job)
            self._later(self.step, self._after_submitted, job)
            return job

    def describe(self, account: str, region: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        with self._lock:
            for raw in ids:
                unit = self._resolve(raw, account, region)
                if unit is None:
                    continue  # AWS silently omits unknown ids
                job, index = unit
                key = child_id(job.job_id, index) if index >= 0 else job.job_id
                if key not in seen:
                    seen.add(key)
                    out.append(views.job_detail(job, index if index >= 0 else None))
        return out

    def list_queue(self, account: str, region: str, queue_arn: str, query: listing.ListQuery) -> dict[str, Any]:
        with self._lock:
            return listing.list_queue(self._by_queue.get((account, region, queue_arn), []), query)

    def list_children(self, account: str, region: str, array_job_id: str, query: listing.ListQuery) -> dict[str, Any]:
        with self._lock:
            unit = self._resolve(array_job_id, account, region)
            if unit is None or unit[1] >= 0 or not isinstance(unit[0], ArrayJob):
                return {"jobSummaryList": []}
            return listing.list_children(unit[0], query)

    def cancel(self, account: str, region: str, job_id: str, reason: str) -> None:
        """CancelJob: only queued units (SUBMITTED/PENDING/RUNNABLE) end FAILED; others are left alone."""
        self._stop(account, region, job_id, reason, terminate=False)

    def terminate(self, account: str, region: str, job_id: str, reason: str) -> None:
        """TerminateJob: queued units are cancelled, STARTING/RUNNING ones killed; all end FAILED."""
        self._stop(account, region, job_id, reason, terminate=True)

    def tags(self, account: str, region: str, job_id: str) -> dict[str, str] | None:
        with self._lock:
            unit = self._resolve(job_id, account, region)
            return None if unit is None else dict(unit[0].tags)

    def update_tags(
        self, account: str, region: str, job_id: str, add: Mapping[str, str], remove: Sequence[str]
    ) -> bool:
        with self._lock:
            unit = self._resolve(job_id, account, region)
            if unit is None:
                return False
            unit[0].tags.update(add)
            for key in remove:
                unit[0].tags.pop(key, None)
            return True

    def summary(self) -> dict[str, Any]:
        """Counts for benchmarks and the control API: jobs, children and units per status."""
        with self._lock:
            statuses = [0] * len(STATUS_NAMES)
            arrays = children = 0
            for job in self._jobs.values():
                if isinstance(job, ArrayJob):
                    arrays += 1
                    children += job.size
                    statuses = [a + b for a, b in zip(statuses, job.counts, strict=True)]
                else:
                    statuses[job.status] += 1
            return {
                "jobs": len(self._jobs),
                "arrayJobs": arrays,
                "arrayChildren": children,
                "units": dict(zip(STATUS_NAMES, statuses, strict=True)),
                "activeAttempts": len(self._active),
                "concurrency": self.concurrency,
                "capacity": self.capacity.to_json(),
            }

    # ---- lookups ---------------------------------------------------------------------------------------

    def _resolve(self, raw: str, account: str, region: str) -> Unit | None:
        """A job id or job ARN (also `<parent>:<index>` for a child) to a unit in the caller's account/region."""
        job_id = raw.rsplit(":job/", 1)[-1] if raw.startswith("arn:") else raw
        job = self._jobs.get(job_id)
        index = -1
        if job is None and ":" in job_id:
            parent_id, _, tail = job_id.rpartition(":")
            parent = self._jobs.get(parent_id)
            if isinstance(parent, ArrayJob) and tail.isdigit() and int(tail) < parent.size:
                job, index = parent, int(tail)
        if job is None or job.spec.account != account or job.spec.region != region:
            return None
        return job, index

    @staticmethod
    def _status(job: Job, index: int) -> int:
        return job.child_status[index] if isinstance(job, ArrayJob) and index >= 0 else job.status

    @staticmethod
    def _run(job: Job, index: int, *, create: bool = False) -> Run | None:
        if isinstance(job, SingleJob):
            return job.run
        assert isinstance(job, ArrayJob)
        run = job.runs.get(index)
        if run is None and create:
            run = job.runs[index] = Run()
        return run

    def _set_status(self, job: Job, index: int, status: int) -> None:
        if isinstance(job, ArrayJob) and index >= 0:
            job.set_child(index, status, now_ms())
        else:
            job.status = status

    def _emit(self, job: Job, index: int) -> None:
        """A unit (or, index -1, a single job or parent) has just changed status: publish its event."""
        if self._publish is not None:
            self._publish(events.unit_change(job, index))

    def _emit_children(self, job: ArrayJob, before: bytearray, moved: bytes, status: int) -> None:
        if self._publish is not None and job.child_status != before:
            self._publish(events.children_change(job, before, moved, status))

    # ---- transitions (loop thread, under the lock) -----------------------------------------------------

    def _after_submitted(self, job: Job) -> None:
        if job.status != SUBMITTED:  # cancelled meanwhile
            return
        state = self._dependency_state(job)
        if state == FAILED:
            self._fail_whole(job, REASON_DEPENDENCY)
        elif state == PENDING:
            job.status = PENDING
            if isinstance(job, ArrayJob):
                before = job.child_status
                job.child_status = bytearray(before.translate(_TO_PENDING))
                job.counts[PENDING] += job.counts[SUBMITTED]
                job.counts[SUBMITTED] = 0
                self._emit(job, -1)
                self._emit_children(job, before, events.TO_PENDING, PENDING)
            else:
                self._emit(job, -1)
            self._waiting.add(job.job_id)
            for dep in job.spec.depends_on:
                unit = self._resolve(dep["jobId"], job.spec.account, job.spec.region)
                if unit is not None and self._status(*unit) not in TERMINAL:
                    dep_job, index = unit
                    dep_id = child_id(dep_job.job_id, index) if index >= 0 else dep_job.job_id
                    self._waiters.setdefault(dep_id, []).append(job)
        else:
            self._make_runnable(job)

    def _dependency_state(self, job: Job) -> int:
        state = RUNNABLE
        for dep in job.spec.depends_on:
            unit = self._resolve(dep.get("jobId", ""), job.spec.account, job.spec.region)
            if unit is None:
                continue
            status = self._status(*unit)
            if status == FAILED:
                return FAILED
            if status != SUCCEEDED:
                state = PENDING
        return state

    def _notify(self, unit_id: str) -> None:
        for job in self._waiters.pop(unit_id, ()):
            if job.job_id not in self._waiting or job.status in TERMINAL:
                continue
            state = self._dependency_state(job)
            if state == FAILED:
                self._waiting.discard(job.job_id)
                self._fail_whole(job, REASON_DEPENDENCY)
            elif state == RUNNABLE:
                self._waiting.discard(job.job_id)
                self._make_runnable(job)

    def _make_runnable(self, job: Job) -> None:
        """Queue the job for a slot; one that can never fit the compute environment stays RUNNABLE, unqueued,
        with AWS's reason (a single job's own statusReason; an array's children show it, never the parent)."""
        due = self._ev.time() + self.step
        if isinstance(job, ArrayJob):
            was = job.status
            job.status = PENDING  # parents never show RUNNABLE
            before = job.child_status
            job.child_status = bytearray(before.translate(_TO_RUNNABLE))
            job.counts[RUNNABLE] += job.counts[SUBMITTED] + job.counts[PENDING]
            job.counts[SUBMITTED] = job.counts[PENDING] = 0
            job.summary_updated_at = now_ms()
            if was != PENDING:
                self._emit(job, -1)
            self._emit_children(job, before, events.TO_RUNNABLE, RUNNABLE)
            if job.unfit is None:
                self._runnable.append(_Queued(job, None, due))
        else:
            job.status = RUNNABLE
            if job.unfit is not None:
                job.status_reason = job.unfit
            else:
                self._runnable.append(_Queued(job, -1, due))
            self._emit(job, -1)
        self._kick()

    def _dispatch(self) -> None:
        """Start queued units, first come first served, while slots are free."""
        self._dispatch_queued = False
        if self._dispatch_timer is not None:
            self._dispatch_timer.cancel()
            self._dispatch_timer = None
        now = self._ev.time()
        while len(self._active) < self.concurrency and self._runnable:
            head = self._runnable[0]
            if head.due > now:
                self._dispatch_timer = self._ev.call_later(
                    head.due - now, self._guarded, self._generation, self._dispatch
                )
                return
            job = head.job
            if head.index is None:
                assert isinstance(job, ArrayJob)
                index = job.child_status.find(RUNNABLE, job.next_index)
                if index == -1:
                    self._runnable.popleft()
                    continue
                job.next_index = index + 1
            else:
                self._runnable.popleft()
                index = head.index
                if self._status(job, index) != RUNNABLE:
                    continue
            self._start(job, index)

    def _start(self, job: Job, index: int) -> None:
        run = self._run(job, index, create=True)
        assert run is not None
        run.epoch += 1
        self._set_status(job, index, STARTING)
        self._emit(job, index)
        self._active[(job.job_id, index)] = _Active(proc=None, running_since=0.0)
        self._later(self.step, self._to_running, job, index, run.epoch)

    def _to_running(self, job: Job, index: int, epoch: int) -> None:
        run = self._run(job, index)
        if run is None or run.epoch != epoch or self._status(job, index) != STARTING:
            return
        key = (job.job_id, index)
        if run.kill_reason is not None:  # terminated while STARTING: no attempt was made
            self._active.pop(key, None)
            self._finish(job, index, FAILED, run.kill_reason, terminated=True)
            return
        spec = job.spec
        now = now_ms()
        attempt = Attempt(number=len(run.attempts) + 1, task_id=uuid.uuid4().hex, started_at=now)
        run.attempts.append(attempt)
        self._set_status(job, index, RUNNING)
        if isinstance(job, ArrayJob):
            run.started_at = now
            if job.started_at is None:
                job.started_at = now
        else:
            job.started_at = now
        self._emit(job, index)
        writer = self._logs.open_stream(spec.account, spec.log_region, spec.log_group, log_stream(spec, attempt))
        unit_id = child_id(job.job_id, index) if index >= 0 else job.job_id
        batch_vars = {
            "AWS_BATCH_JOB_ID": unit_id,
            "AWS_BATCH_JOB_ATTEMPT": str(attempt.number),
            "AWS_BATCH_CE_NAME": spec.ce_name,
            "AWS_BATCH_JQ_NAME": spec.queue_name,
        }
        if index >= 0:
            batch_vars["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
        env = runtime.job_environment(endpoint=self._endpoint, job_env=spec.environment, batch_vars=batch_vars)
        active = _Active(proc=None, running_since=self._ev.time())
        self._active[key] = active
        on_exit = partial(self._guarded, self._generation, self._on_exit, job, index, epoch)
        started = runtime.launch(
            self._ev, argv=spec.command, env=env, cwd=self._workdir, write_logs=writer, on_exit=on_exit
        )
        if isinstance(started, Exit):
            self._on_exit(job, index, epoch, started)
            return
        active.proc = started
        if spec.timeout_seconds is not None:
            active.timeout = self._ev.call_later(
                spec.timeout_seconds, self._guarded, self._generation, self._on_timeout, key, epoch
            )

    def _on_timeout(self, key: tuple[str, int], epoch: int) -> None:
        active = self._active.get(key)
        job = self._jobs.get(key[0])
        run = None if job is None else self._run(job, key[1])
        if active is None or active.proc is None or run is None or run.epoch != epoch:
            return
        active.timed_out = True
        active.proc.kill()

    def _on_exit(self, job: Job, index: int, epoch: int, result: Exit) -> None:
        run = self._run(job, index)
        active = self._active.get((job.job_id, index))
        if run is None or active is None or run.epoch != epoch:
            return
        if active.timeout is not None:
            active.timeout.cancel()
        killed = active.timed_out or run.kill_reason is not None
        # A poller should see RUNNING even for an instant command: RUNNING lasts at least one step.
        delay = active.running_since + self.step - self._ev.time()
        if delay > 0 and not killed:
            self._later(delay, self._complete, job, index, epoch, result, active.timed_out)
        else:
            self._complete(job, index, epoch, result, active.timed_out)

    def _complete(self, job: Job, index: int, epoch: int, result: Exit, timed_out: bool) -> None:
        run = self._run(job, index)
        if run is None or run.epoch != epoch or self._active.pop((job.job_id, index), None) is None:
            return
        self._kick()  # a slot is free
        attempt = run.attempts[-1]
        attempt.stopped_at = now_ms()
        attempt.exit_code = result.exit_code
        if result.start_error is not None:
            attempt.reason = result.start_error
            attempt.status_reason = REASON_START_FAILED
        elif timed_out:
            attempt.status_reason = REASON_TIMEOUT
        elif run.kill_reason is not None:
            attempt.status_reason = run.kill_reason
        else:
            attempt.status_reason = REASON_EXITED
        if timed_out:  # AWS does not retry an attempt that timed out
            self._finish(job, index, FAILED, REASON_TIMEOUT)
        elif run.kill_reason is not None:
            self._finish(job, index, FAILED, run.kill_reason, terminated=True)
        elif result.exit_code == 0:
            self._finish(job, index, SUCCEEDED, REASON_EXITED)
        elif self._should_retry(job, run, attempt):
            self._set_status(job, index, RUNNABLE)
            self._emit(job, index)
            self._runnable.append(_Queued(job, index, self._ev.time() + self.step))
            self._kick()
        else:
            self._finish(job, index, FAILED, attempt.status_reason)

    def _should_retry(self, job: Job, run: Run, attempt: Attempt) -> bool:
        if len(run.attempts) >= job.spec.max_attempts:
            return False
        if isinstance(job, ArrayJob) and job.stop_reason is not None:
            return False  # the parent was cancelled or terminated
        exit_code = "" if attempt.exit_code is None else str(attempt.exit_code)
        for rule in job.spec.evaluate_on_exit:
            if (
                fnmatch.fnmatchcase(exit_code, rule.get("onExitCode", "*"))
                and fnmatch.fnmatchcase(attempt.reason or "", rule.get("onReason", "*"))
                and fnmatch.fnmatchcase(attempt.status_reason or "", rule.get("onStatusReason", "*"))
            ):
                return str(rule.get("action", "")).upper() == "RETRY"
        return True  # no rule matched: AWS retries

    def _finish(
        self,
        job: Job,
        index: int,
        status: int,
        reason: str | None,
        *,
        cancelled: bool = False,
        terminated: bool = False,
    ) -> None:
        """Put a unit in a terminal status; frees its slot and settles the parent and dependents."""
        now = now_ms()
        if self._active.pop((job.job_id, index), None) is not None:
            self._kick()
        if isinstance(job, ArrayJob) and index >= 0:
            run = self._run(job, index)
            if run is None:  # cancelled before its first dispatch: the parent keeps the shared reason
                job.child_cancel_reason = job.child_cancel_reason or reason
                job.child_cancel_at = job.child_cancel_at or now
            else:
                run.status_reason, run.stopped_at = reason, now
                run.cancelled |= cancelled
                run.terminated |= terminated
            job.set_child(index, status, now)
            self._emit(job, index)
            if self._waiters:
                self._notify(child_id(job.job_id, index))
            if job.all_terminal():
                self._settle_parent(job, now)
            return
        job.status, job.status_reason, job.stopped_at = status, reason, now
        job.cancelled |= cancelled
        job.terminated |= terminated
        self._emit(job, -1)
        self._notify(job.job_id)

    def _settle_parent(self, job: ArrayJob, now: int) -> None:
        if job.status in TERMINAL:
            return
        failed = job.counts[FAILED] > 0 or job.stop_reason is not None
        job.status = FAILED if failed else SUCCEEDED
        job.status_reason = job.stop_reason
        job.stopped_at = now
        self._emit(job, -1)
        self._waiting.discard(job.job_id)
        self._notify(job.job_id)

    def _fail_whole(self, job: Job, reason: str) -> None:
        """Fail a job that never started (dependency failed): an array fails with all its children."""
        if isinstance(job, ArrayJob):
            job.stop_reason = job.stop_reason or reason
            for status in QUEUED:
                self._fail_children(job, status, reason, cancelled=False)
            self._settle_parent(job, now_ms())
        else:
            self._finish(job, -1, FAILED, reason)

    def _fail_children(self, job: ArrayJob, status: int, reason: str, *, cancelled: bool) -> None:
        i = job.child_status.find(status)
        while i != -1:
            self._finish(job, i, FAILED, reason, cancelled=cancelled)
            i = job.child_status.find(status, i + 1)

    def _stop(self, account: str, region: str, raw_id: str, reason: str, *, terminate: bool) -> None:
        with self._lock:
            unit = self._resolve(raw_id, account, region)
            if unit is None:
                return  # AWS answers 200 for unknown ids
            job, index = unit
            if isinstance(job, ArrayJob) and index < 0:
                if job.status in TERMINAL:
                    return
                job.stop_reason = job.stop_reason or reason
                for status in QUEUED:
                    self._fail_children(job, status, reason, cancelled=True)
                if terminate:
                    for status in (STARTING, RUNNING):
                        i = job.child_status.find(status)
                        while i != -1:
                            self._kill_unit(job, i, reason)
                            i = job.child_status.find(status, i + 1)
                if job.all_terminal():
                    self._settle_parent(job, now_ms())
                return
            status = self._status(job, index)
            if status in QUEUED:
                if index < 0:
                    self._waiting.discard(job.job_id)
                self._finish(job, index, FAILED, reason, cancelled=True)
            elif terminate and status in (STARTING, RUNNING):
                self._kill_unit(job, index, reason)

    def _kill_unit(self, job: Job, index: int, reason: str) -> None:
        run = self._run(job, index)
        if run is None or run.kill_reason is not None:
            return
        run.kill_reason = reason
        active = self._active.get((job.job_id, index))
        if active is not None and active.proc is not None:
            active.proc.kill()  # the exit callback finishes the unit as FAILED with `reason`
