"""Prometheus metrics of the service, all under one prefix. The Grafana dashboard and the alert rules
under deploy/ query these names; tests check that every query finds its series."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "aws_array_plugin"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """One instance per process (tests make their own registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.rpc_requests = Counter(
            f"{PREFIX}_rpc_requests", "gRPC requests served, by method, task type and outcome (ok, error).",
            ["method", "task_type", "outcome"], registry=r,
        )
        self.rpc_latency = Histogram(
            f"{PREFIX}_rpc_latency_seconds", "gRPC request latency by method and task type.",
            ["method", "task_type"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.submissions = Counter(
            f"{PREFIX}_submissions", "CreateTask outcomes: submitted, deduplicated, queued, rejected, failed.",
            ["task_type", "outcome"], registry=r,
        )
        self.submission_backlog = Gauge(
            f"{PREFIX}_submission_backlog", "Accepted submissions waiting for a SubmitJob slot.", registry=r,
        )
        self.aws_calls = Counter(
            f"{PREFIX}_aws_calls", "AWS API calls by operation and outcome (ok, throttled, server_error, "
            "client_error, timeout).", ["operation", "outcome"], registry=r,
        )
        self.aws_latency = Histogram(
            f"{PREFIX}_aws_call_latency_seconds", "AWS API call latency by operation.",
            ["operation"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.aws_rate = Gauge(
            f"{PREFIX}_aws_rate_limit", "Current allowed rate (calls/s) of each AWS call class, after "
            "adaptive back-off.", ["call_class"], registry=r,
        )
        self.tracked_jobs = Gauge(
            f"{PREFIX}_tracked_jobs", "AWS jobs the status engine tracks, by Flyte phase and queue.",
            ["phase", "queue"], registry=r,
        )
        self.array_children = Gauge(
            f"{PREFIX}_array_children", "Children of tracked array jobs by AWS status and queue.",
            ["status", "queue"], registry=r,
        )
        self.status_age = Gauge(
            f"{PREFIX}_status_age_seconds", "Age of the oldest job status served by the last GetTask cycle.",
            registry=r,
        )
        self.describe_batch_size = Histogram(
            f"{PREFIX}_describe_jobs_batch_size", "Job ids per DescribeJobs call.",
            buckets=(1, 5, 10, 25, 50, 75, 100), registry=r,
        )
        self.job_definition_registrations = Counter(
            f"{PREFIX}_job_definition_registrations", "Job definitions registered (a new content hash).",
            registry=r,
        )
        self.stale_answers = Counter(
            f"{PREFIX}_stale_answers", "GetTask answers given from an old status because AWS failed.",
            registry=r,
        )
        self.runnable_stuck = Gauge(
            f"{PREFIX}_jobs_runnable_stuck", "Tracked jobs RUNNABLE with a blocking reason, by reason.",
            ["reason"], registry=r,
        )
        # -- status events (docs/architecture.md, "Status events") --
        self.events_received = Counter(
            f"{PREFIX}_events_received", "Events read from the event stream, by kind (job, array_child, heartbeat, "
            "other).", ["kind"], registry=r,
        )
        self.events_applied = Counter(
            f"{PREFIX}_events_applied", "Events that moved a tracked job (or an array's child) forward, by kind.",
            ["kind"], registry=r,
        )
        self.events_duplicate = Counter(
            f"{PREFIX}_events_duplicate", "Events for a state already known (a redelivery).", registry=r,
        )
        self.events_out_of_order = Counter(
            f"{PREFIX}_events_out_of_order", "Events older than the state already known, ignored.", registry=r,
        )
        self.events_untracked = Counter(
            f"{PREFIX}_events_untracked", "Events for jobs this replica does not track.", registry=r,
        )
        self.event_lag = Histogram(
            f"{PREFIX}_event_lag_seconds", "From an event's time (1 s resolution) to its application.",
            buckets=(0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0), registry=r,
        )
        self.status_describes = Counter(
            f"{PREFIX}_status_describes", "DescribeJobs calls of the status engine by why: lookup (a GetTask needed "
            "it), refresh (polling), reconcile (no event for reconcileInterval), gap (the event source lost events).",
            ["reason"], registry=r,
        )
        self.event_source_healthy = Gauge(
            f"{PREFIX}_event_source_healthy", "1 while this replica's heartbeats come back through the event "
            "stream in time.", registry=r,
        )
        self.status_polling_fallback = Gauge(
            f"{PREFIX}_status_polling_fallback", "1 while the engine polls because the event source is unhealthy.",
            registry=r,
        )
        self.event_source_gaps = Counter(
            f"{PREFIX}_event_source_gaps", "Times every tracked job was reconciled because events may be lost, by "
            "cause (start, heartbeat_missed, read_failed, iterator_lost, dead_letter).", ["cause"], registry=r,
        )
        self.event_stream_behind = Gauge(
            f"{PREFIX}_event_stream_behind_seconds", "How far this replica's reading is behind the stream's tip "
            "(the largest MillisBehindLatest of its shards).", registry=r,
        )
        self.event_heartbeat_age = Gauge(
            f"{PREFIX}_event_heartbeat_age_seconds", "Since this replica last saw its own heartbeat come back.",
            registry=r,
        )
