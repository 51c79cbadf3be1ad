"""SubmitJob: validate a request like AWS does and resolve it, with its job definition, into a `JobSpec`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from . import moto_store
from .capacity import requirements
from .errors import BatchClientError
from .model import JobSpec

JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
ARRAY_MIN, ARRAY_MAX = 2, 10_000
MAX_ATTEMPTS = 10
MAX_EVALUATE_ON_EXIT = 5
MAX_DEPENDENCIES = 20
MAX_TAGS = 50
MAX_PAYLOAD = 30 * 1024  # SubmitJob payload limit
DEFAULT_LOG_GROUP = "/aws/batch/job"
_REF = re.compile(r"Ref::([A-Za-z0-9_]+)")

# ContainerProperties keys that DescribeJobs echoes in `container`.
_CONTAINER_KEYS = (
    "image", "vcpus", "memory", "jobRoleArn", "executionRoleArn", "volumes", "mountPoints",
    "readonlyRootFilesystem", "ulimits", "privileged", "user", "instanceType", "resourceRequirements",
    "linuxParameters", "logConfiguration", "secrets", "networkConfiguration", "fargatePlatformConfiguration",
    "ephemeralStorage", "runtimePlatform", "repositoryCredentials", "enableExecuteCommand",
)  # fmt: skip


def _env_pairs(items: Any, *, what: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items or []:
        name, value = item.get("name"), item.get("value", "")
        if not name:
            raise BatchClientError(f"{what}: environment variable without a name")
        pairs.append((str(name), str(value)))
    return pairs


def _merge_env(base: list[tuple[str, str]], overrides: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    merged = dict(base)
    merged.update(overrides)
    return tuple(merged.items())


def _substitute(command: list[str], parameters: Mapping[str, str]) -> tuple[str, ...]:
    def one(arg: str) -> str:
        return _REF.sub(lambda m: parameters.get(m.group(1), m.group(0)), arg)

    return tuple(one(str(arg)) for arg in command)


def _array_size(body: Mapping[str, Any]) -> int | None:
    props = body.get("arrayProperties") or {}
    size = props.get("size")
    if size is None:
        return None
    if not isinstance(size, int) or not ARRAY_MIN <= size <= ARRAY_MAX:
        raise BatchClientError(f"Array job size must be between {ARRAY_MIN} and {ARRAY_MAX}, got {size}")
    return size


def _retry(body: Mapping[str, Any], jd: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, int, tuple[Any, ...]]:
    strategy = body.get("retryStrategy") or jd.get("retryStrategy") or None
    if not strategy:
        return None, 1, ()
    attempts = strategy.get("attempts", 1)
    if not isinstance(attempts, int) or not 1 <= attempts <= MAX_ATTEMPTS:
        raise BatchClientError(f"retryStrategy.attempts must be between 1 and {MAX_ATTEMPTS}, got {attempts}")
    rules = tuple(strategy.get("evaluateOnExit") or ())
    if len(rules) > MAX_EVALUATE_ON_EXIT:
        raise BatchClientError(f"retryStrategy.evaluateOnExit allows at most {MAX_EVALUATE_ON_EXIT} entries")
    for rule in rules:
        if str(rule.get("action", "")).upper() not in ("RETRY", "EXIT"):
            raise BatchClientError("evaluateOnExit.action must be RETRY or EXIT")
    return dict(strategy), attempts, rules


def _timeout(body: Mapping[str, Any], jd: Mapping[str, Any]) -> int | None:
    timeout = body.get("timeout") or jd.get("timeout") or {}
    seconds = timeout.get("attemptDurationSeconds")
    if seconds is None:
        return None
    # AWS's minimum is 60 s; the emulator accepts 1 s so tests can exercise timeouts quickly.
    if not isinstance(seconds, int) or seconds < 1:
        raise BatchClientError(f"timeout.attemptDurationSeconds must be a positive integer, got {seconds}")
    return seconds


def _container(
    props: Mapping[str, Any], overrides: Mapping[str, Any], command: tuple[str, ...], env: tuple[tuple[str, str], ...]
) -> dict[str, Any]:
    container = {k: props[k] for k in _CONTAINER_KEYS if k in props}
    for key in ("vcpus", "memory", "instanceType"):
        if overrides.get(key) is not None:
            container[key] = overrides[key]
    if overrides.get("resourceRequirements"):
        by_type = {r["type"]: r for r in container.get("resourceRequirements") or []}
        by_type.update({r["type"]: r for r in overrides["resourceRequirements"]})
        container["resourceRequirements"] = list(by_type.values())
    container["command"] = list(command)
    container["environment"] = [{"name": k, "value": v} for k, v in env]
    return container


def build_spec(account: str, region: str, body: Mapping[str, Any], payload_size: int) -> tuple[JobSpec, int | None]:
    """Returns the job's spec and its array size (None for a single job)."""
    if payload_size > MAX_PAYLOAD:
        raise BatchClientError(f"SubmitJob payload exceeds {MAX_PAYLOAD} bytes")
    name = body.get("jobName") or ""
    if not JOB_NAME.fullmatch(name):
        raise BatchClientError(
            "Job name should be 1-128 characters long, start with a letter or number and contain only letters, "
            f"numbers, hyphens (-) and underscores (_): {name!r}"
        )
    for unsupported in ("nodeOverrides", "eksPropertiesOverride", "ecsPropertiesOverride"):
        if body.get(unsupported):
            raise BatchClientError(f"{unsupported} is not supported by the emulator")
    queue = moto_store.find_queue(account, region, str(body.get("jobQueue") or ""))
    if queue is None:
        raise BatchClientError(f"Job queue {body.get('jobQueue')} does not exist")
    jd = moto_store.find_job_definition(account, region, str(body.get("jobDefinition") or ""))
    if jd is None:
        raise BatchClientError(f"Job definition {body.get('jobDefinition')} does not exist")
    if jd.get("type", "container") != "container" or "containerProperties" not in jd:
        raise BatchClientError("Only container job definitions are supported by the emulator")
    size = _array_size(body)
    props: Mapping[str, Any] = jd["containerProperties"] or {}
    overrides: Mapping[str, Any] = body.get("containerOverrides") or {}

    override_env = _env_pairs(overrides.get("environment"), what="containerOverrides")
    if any(k.startswith("AWS_BATCH") for k, _ in override_env):
        raise BatchClientError("Environment variable names starting with AWS_BATCH are reserved")
    env = _merge_env(_env_pairs(props.get("environment"), what="containerProperties"), override_env)
    parameters = {**(jd.get("parameters") or {}), **(body.get("parameters") or {})}
    command = _substitute(list(overrides.get("command") or props.get("command") or []), parameters)

    retry_strategy, max_attempts, rules = _retry(body, jd)
    depends_on = tuple(dict(d) for d in body.get("dependsOn") or () if d.get("jobId"))
    if len(depends_on) > MAX_DEPENDENCIES:
        raise BatchClientError(f"A job can depend on at most {MAX_DEPENDENCIES} jobs")
    tags = body.get("tags") or {}
    if len(tags) > MAX_TAGS:
        raise BatchClientError(f"At most {MAX_TAGS} tags are allowed")
    priority = body.get("schedulingPriorityOverride")
    if priority is not None and (not isinstance(priority, int) or not 0 <= priority <= 9999):
        raise BatchClientError("schedulingPriorityOverride must be between 0 and 9999")

    container = _container(props, overrides, command, env)
    log_config = props.get("logConfiguration") or {}
    awslogs = log_config.get("logDriver", "awslogs") == "awslogs"
    options = (log_config.get("options") or {}) if awslogs else {}
    spec = JobSpec(
        account=account,
        region=region,
        job_name=name,
        queue_name=queue.name,
        queue_arn=queue.arn,
        ce_name=queue.ce_name,
        jd_name=str(jd["jobDefinitionName"]),
        jd_arn=str(jd["jobDefinitionArn"]),
        container=container,
        command=command,
        environment=env,
        parameters=parameters,
        max_attempts=max_attempts,
        evaluate_on_exit=rules,
        retry_strategy=retry_strategy,
        timeout_seconds=_timeout(body, jd),
        log_group=str(options.get("awslogs-group") or DEFAULT_LOG_GROUP),
        log_region=str(options.get("awslogs-region") or region),
        stream_prefix=str(options.get("awslogs-stream-prefix") or jd["jobDefinitionName"]),
        depends_on=depends_on,
        propagate_tags=bool(body.get("propagateTags", jd.get("propagateTags")) or False),
        platform_capabilities=tuple(jd.get("platformCapabilities") or ()),
        share_identifier=body.get("shareIdentifier"),
        scheduling_priority=priority,
        needs=requirements(container),
    )
    return spec, size
