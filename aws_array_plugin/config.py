"""The service's YAML config: typed, validated at start, every key documented in docs/configuration.md.

Unknown or mistyped keys are errors (a typo must never become a silent default). Keys are camelCase,
as in Flyte's own configs; Python attributes are snake_case.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

AWS_MAX_ARRAY_SIZE = 10_000
DEFAULT_LOG_GROUP = "/aws/batch/job"


class ConfigError(ValueError):
    """The config file cannot be used; the message says which key and why."""


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, strict=False
    )


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from `90`, `90s`, `15m`, `72h`, `1.5d` or a number."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 15m or 72h")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"expected a duration such as 30s, 15m or 72h, got {value!r}")
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


class RoutingMatch(_Model):
    """All given fields must match; glob patterns for strings."""

    project: str | None = None
    domain: str | None = None
    task_name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    gpu: bool | None = None
    interruptible: bool | None = None


class RoutingRule(_Model):
    match: RoutingMatch = Field(default_factory=RoutingMatch)
    queue: str
    share_identifier: str | None = None

    @field_validator("queue")
    @classmethod
    def _queue_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("queue must not be empty")
        return v


class SecretMapping(_Model):
    """A Flyte secret (group, key) and the Secrets Manager or SSM Parameter Store ARN holding it."""

    group: str
    key: str
    value_from: str

    @field_validator("value_from")
    @classmethod
    def _arn(cls, v: str) -> str:
        if not re.match(r"^arn:aws[a-z-]*:(secretsmanager|ssm):", v):
            raise ValueError("valueFrom must be a Secrets Manager or SSM parameter ARN")
        return v


class FargateConfig(_Model):
    """Job definitions for FARGATE need an execution role and network settings."""

    execution_role_arn: str = ""
    assign_public_ip: Literal["ENABLED", "DISABLED"] = "DISABLED"
    platform_version: str = "LATEST"


class JobDefinitionConfig(_Model):
    log_group: str = DEFAULT_LOG_GROUP
    # Empty: the job runs in the service's region and logs there.
    log_region: str = ""
    log_stream_prefix: str = ""
    # Role the ECS agent uses to pull images and read secrets (EC2 and Fargate).
    execution_role_arn: str = ""
    fargate: FargateConfig = Field(default_factory=FargateConfig)
    # Tags put on the job definitions this service registers.
    tags: dict[str, str] = Field(default_factory=dict)


class RateLimit(_Model):
    """Requests per second per replica, and the burst allowed; a deployment of N replicas shares the
    account's quota, so set rate = account quota / N."""

    rate: float = Field(gt=0)
    burst: int = Field(ge=1)


class RateLimits(_Model):
    submit: RateLimit = RateLimit(rate=40, burst=40)
    describe: RateLimit = RateLimit(rate=15, burst=20)
    list: RateLimit = RateLimit(rate=10, burst=20)
    terminate: RateLimit = RateLimit(rate=10, burst=20)
    job_definitions: RateLimit = RateLimit(rate=5, burst=10)
    # The event source: GetRecords, ListShards, heartbeats, the dead-letter queue's depth.
    events: RateLimit = RateLimit(rate=10, burst=20)
    s3: RateLimit = RateLimit(rate=500, burst=500)
    logs: RateLimit = RateLimit(rate=10, burst=20)


class EventsConfig(_Model):
    """Push-first status (docs/architecture.md, "Status events"): AWS Batch's state-change events, read from the
    Kinesis stream an EventBridge rule fills, keep tracked jobs current; DescribeJobs only reconciles."""

    enabled: bool = False
    # Kinesis stream (name or ARN) the EventBridge rule targets; every replica reads all of its shards.
    stream: str = ""
    # Bus the replicas' heartbeat events are put on (the heartbeat rule forwards them to the stream).
    event_bus: str = "default"
    # The rule targets' SQS dead-letter queue (URL): entries there are lost events, so everything is reconciled.
    dead_letter_queue: str = ""
    # A heartbeat goes round the whole delivery (bus, rule, stream, reader) this often...
    heartbeat_interval: float = 15.0
    # ...and when the newest one seen back was sent longer ago than this, the source is unhealthy: poll instead.
    heartbeat_timeout: float = 60.0
    # GetRecords per shard and replica; Kinesis allows 5 reads/s per shard across all readers.
    poll_interval: float = 1.0
    # A job without an event for this long is described once (dropped events are repaired within it).
    reconcile_interval: float = 900.0
    # The rule forwards array children's events (their statuses are counted per array); false: arrays are polled.
    array_child_events: bool = True
    dead_letter_check_interval: float = 60.0

    @field_validator("heartbeat_interval", "heartbeat_timeout", "poll_interval", "reconcile_interval",
                     "dead_letter_check_interval", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)

    @model_validator(mode="after")
    def _usable(self) -> EventsConfig:
        if self.enabled and not self.stream.strip():
            raise ValueError("stream is required when events are enabled")
        if self.heartbeat_timeout < self.heartbeat_interval:
            raise ValueError("heartbeatTimeout must be at least heartbeatInterval (best several times it)")
        if self.poll_interval <= 0 or self.reconcile_interval <= 0:
            raise ValueError("pollInterval and reconcileInterval must be positive")
        return self


class StatusConfig(_Model):
    # Tracked jobs are refreshed in the background at this period (propeller's own resync is 30 s).
    refresh_interval: float = 30.0
    # A status younger than this is served from memory without an AWS call.
    max_staleness: float = 35.0
    # Jobs nobody asked about for this long are forgotten.
    idle_eviction: float = 600.0
    max_tracked_jobs: int = Field(default=200_000, ge=1)
    # How long to gather concurrent GetTask lookups into one DescribeJobs call.
    batch_window: float = 0.02
    # How long GetTask waits for a fresh status before answering with the last known one.
    answer_timeout: float = 2.0
    # A submitted job DescribeJobs keeps not finding for this long fails the attempt (retryable).
    missing_job_grace: float = 600.0
    # A RUNNABLE job whose reason is MISCONFIGURATION:* for longer than this fails the task.
    misconfiguration_dwell: float = 600.0
    # Running array children shown with log links.
    running_child_links: int = Field(default=3, ge=0, le=20)
    # Failed array children described for their reason, exit code and log link.
    failed_child_details: int = Field(default=100, ge=0, le=10_000)
    # A failing array answers RUNNING for at most this long while its failed children's errors are collected,
    # so its final answer says why (permanent or retryable) instead of guessing.
    failure_details_wait: float = 120.0
    events: EventsConfig = Field(default_factory=EventsConfig)

    @field_validator("refresh_interval", "max_staleness", "idle_eviction", "batch_window",
                     "misconfiguration_dwell", "answer_timeout", "missing_job_grace", "failure_details_wait",
                     mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)


class OutputsConfig(_Model):
    # Concurrent S3 reads when assembling array outputs.
    read_concurrency: int = Field(default=32, ge=1, le=1024)
    # Assembled outputs larger than this are written to <output_prefix>/outputs.pb instead of inline.
    inline_max_bytes: int = Field(default=1 << 20, ge=0, le=3 << 20)
    # Error documents of failed children read to build the failure summary.
    max_error_documents: int = Field(default=50, ge=0, le=10_000)
    max_error_length: int = Field(default=2000, ge=100, le=100_000)


class SubmissionConfig(_Model):
    # How long CreateTask waits for its SubmitJob before answering with a queued task (the job is
    # submitted later, from its durable claim: a journal entry, then the submission record).
    create_wait: float = 0.5
    # A claimed submission whose replica went silent for this long is taken over by another.
    claim_timeout: float = 60.0
    # Concurrent SubmitJob workers per replica (the submit rate limit paces them together).
    workers: int = Field(default=8, ge=1, le=256)

    @field_validator("create_wait", "claim_timeout", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)


class ServerConfig(_Model):
    # Seconds in-flight RPCs get to finish after SIGTERM.
    grace_period: float = 20.0
    max_receive_message_bytes: int = Field(default=64 << 20, ge=4 << 20)
    max_send_message_bytes: int = Field(default=4 << 20, ge=1 << 20)
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # With a client CA, clients must present a certificate it signed (mutual TLS).
    tls_client_ca_file: str = ""

    @field_validator("grace_period", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tlsCertFile and tlsKeyFile must be set together")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ValueError("tlsClientCaFile needs tlsCertFile and tlsKeyFile")
        return self


class Config(_Model):
    # AWS region; empty: AWS_REGION / AWS_DEFAULT_REGION / the SDK's own resolution.
    region: str = ""
    default_queue: str = ""
    queue_routing: list[RoutingRule] = Field(default_factory=list)
    role_annotation_key: str = ""
    default_role: str = ""
    # Glob patterns of role ARNs tasks may run as; empty allows every role (startup warns).
    allowed_roles: list[str] = Field(default_factory=list)
    # Attempt timeout when the task sets none; 0 disables it. AWS needs at least 60 s.
    default_timeout: float = 72 * 3600.0
    max_array_size: int = Field(default=100_000, ge=0)
    # Resources of tasks that request none (Kubernetes quantities, like propeller's k8s defaults).
    default_cpu: str = "1"
    default_memory: str = "1Gi"
    # Environment added to every job (overrides task env, not FLYTE_FAIL_ON_ERROR).
    default_env: dict[str, str] = Field(default_factory=dict)
    # Tags added to every job (task tags and Flyte's own tags win).
    default_tags: dict[str, str] = Field(default_factory=dict)
    share_identifier: str = ""
    secrets: list[SecretMapping] = Field(default_factory=list)
    job_definitions: JobDefinitionConfig = Field(default_factory=JobDefinitionConfig)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    status: StatusConfig = Field(default_factory=StatusConfig)
    outputs: OutputsConfig = Field(default_factory=OutputsConfig)
    submission: SubmissionConfig = Field(default_factory=SubmissionConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)

    @field_validator("default_timeout", mode="before")
    @classmethod
    def _timeout(cls, v: Any) -> float:
        seconds = parse_duration(v)
        if 0 < seconds < 60:
            raise ValueError("AWS Batch needs an attempt timeout of at least 60s (0 disables it)")
        return seconds

    @field_validator("allowed_roles")
    @classmethod
    def _globs(cls, v: list[str]) -> list[str]:
        for pattern in v:
            if not pattern.strip():
                raise ValueError("allowedRoles entries must not be empty")
        return v

    def role_allowed(self, role: str) -> bool:
        return not self.allowed_roles or any(fnmatch.fnmatchcase(role, p) for p in self.allowed_roles)

    def secret_arn(self, group: str, key: str) -> str | None:
        for s in self.secrets:
            if s.group == group and s.key == key:
                return s.value_from
        return None


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


def load_config(data: dict[str, Any] | None, source: str = "<inline>") -> Config:
    try:
        return Config.model_validate(data or {})
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def load_config_file(path: str | Path | None) -> Config:
    if path is None:
        return Config()
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {p} is not valid YAML: {exc}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"config {p} must be a mapping of keys to values")
    return load_config(raw, str(p))
