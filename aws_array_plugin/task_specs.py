"""CreateTaskRequest -> TaskSpec: everything needed to submit, validated, or a Rejection naming the field.

Pure: no I/O. Propeller has already rendered `container.args`; they are used exactly as received.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flyteidl.admin import agent_pb2
from flyteidl.core import literals_pb2, tasks_pb2
from google.protobuf import json_format, struct_pb2

from aws_array_plugin import quantities
from aws_array_plugin.config import Config, RoutingMatch
from aws_array_plugin.s3_uris import split_uri
from aws_array_plugin.task_types import CONTAINER_ARRAY, TASK_TYPES

MAX_ATTEMPTS = 10  # AWS retryStrategy.attempts is 1..10
MIN_TIMEOUT = 60  # AWS attemptDurationSeconds minimum
_NAME_OK = re.compile(r"[^A-Za-z0-9_-]")
_QUEUE_KEYS = ("child_queue", "dynamic_queue")


class Rejection(Exception):
    """The task cannot run as given. `field` is the request path of the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    @property
    def message(self) -> str:
        return f"invalid task: {self.field}: {self.problem}"


@dataclass(frozen=True)
class Resources:
    vcpus: str
    memory_mib: int
    gpus: int


@dataclass(frozen=True)
class TaskSpec:
    task_type: str
    is_array: bool
    image: str
    command: list[str]
    env: dict[str, str]
    queue: str
    share_identifier: str
    role: str
    platform: str  # EC2 | FARGATE
    resources: Resources
    attempts: int
    timeout_seconds: int | None
    tags: dict[str, str]
    propagate_tags: bool | None
    parameters: dict[str, str]
    scheduling_priority: int | None
    secrets: dict[str, str]  # env name -> Secrets Manager / SSM ARN
    size: int  # array children; 1 for aws-batch
    min_successes: int
    output_prefix: str
    output_names: list[str]
    job_name: str
    execution_id: str


def sanitize_name(text: str) -> str:
    return _NAME_OK.sub("-", text)


def job_name_for(request: agent_pb2.CreateTaskRequest) -> str:
    """Deterministic AWS job name (<= 115 chars, leaving room for a "-<chunk>" suffix): readable
    execution/node/attempt plus a hash of the whole attempt identity, so retries, re-runs and
    different tasks never share a name while a repeated CreateTask of one attempt always does."""
    tid = request.task_execution_metadata.task_execution_id
    ex = tid.node_execution_id.execution_id
    identity = "/".join([
        ex.project, ex.domain, ex.name, tid.node_execution_id.node_id, str(tid.retry_attempt),
        tid.task_id.name, tid.task_id.version, request.output_prefix,
    ])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    readable = sanitize_name(f"{ex.name}-{tid.node_execution_id.node_id}-{tid.retry_attempt}").strip("-_")
    name = f"{readable[:100]}-{digest}" if readable else f"flyte-{digest}"
    return name if name[0].isalnum() else f"f{name[:114]}"


def _struct(msg: struct_pb2.Struct, where: str) -> dict[str, Any]:
    _reject_non_finite(msg, where)
    result: dict[str, Any] = json_format.MessageToDict(msg)
    return result


def _reject_non_finite(msg: struct_pb2.Struct | struct_pb2.ListValue, where: str) -> None:
    """A Struct may carry NaN and infinities, which JSON (and so AWS) cannot: name the first one, at any depth."""
    items = msg.fields.items() if isinstance(msg, struct_pb2.Struct) else enumerate(msg.values)
    for key, value in items:
        path = f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]"
        kind = value.WhichOneof("kind")
        if kind == "number_value" and not math.isfinite(value.number_value):
            raise Rejection(path, f"expected a finite number, got {value.number_value}")
        if kind == "struct_value":
            _reject_non_finite(value.struct_value, path)
        elif kind == "list_value":
            _reject_non_finite(value.list_value, path)


def _int_field(custom: Mapping[str, Any], key: str, where: str) -> int | None:
    if key not in custom or custom[key] is None:
        return None
    value = custom[key]
    if isinstance(value, bool):
        raise Rejection(f"{where}.{key}", f"expected an integer, got {value!r}")
    try:
        number = float(value) if isinstance(value, str) else value
        if not isinstance(number, int | float) or not float(number).is_integer():
            raise ValueError
        return int(number)
    except (TypeError, ValueError):
        raise Rejection(f"{where}.{key}", f"expected an integer, got {value!r}") from None


def _str_map(custom: Mapping[str, Any], key: str, where: str) -> dict[str, str]:
    value = custom.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str | int | float) for v in value.values()):
        raise Rejection(f"{where}.{key}", "expected a mapping of strings to strings")
    return {str(k): str(v) for k, v in value.items()}


def _queue(template: tasks_pb2.TaskTemplate, custom: Mapping[str, Any], facts: _RoutingFacts,
           config: Config) -> tuple[str, str]:
    """The task's own queue (the Flyte 2 plugin's `queue` in custom, else FlyteAdmin's `child_queue`), else the
    first routing rule that matches, else defaultQueue."""
    queue = ""
    for kv in template.container.config:  # FlyteAdmin appends child_queue: later entries win
        if kv.key in _QUEUE_KEYS and kv.value.strip():
            queue = kv.value.strip()
    own = custom.get("queue")
    if own is not None:
        if not isinstance(own, str):
            raise Rejection("template.custom.queue", f"expected a job queue name or ARN, got {own!r}")
        queue = own.strip() or queue
    share = config.share_identifier
    if queue:
        return queue, share
    for rule in config.queue_routing:
        if _matches(rule.match, facts):
            return rule.queue, rule.share_identifier if rule.share_identifier is not None else share
    if config.default_queue:
        return config.default_queue, share
    raise Rejection(
        "template.container.config",
        "no job queue: set a `child_queue` (FlyteAdmin execution queues), a queueRouting rule that "
        "matches, or defaultQueue in the service config",
    )


@dataclass(frozen=True)
class _RoutingFacts:
    project: str
    domain: str
    task_name: str
    labels: Mapping[str, str]
    gpu: bool
    interruptible: bool


def _glob(pattern: str | None, value: str) -> bool:
    import fnmatch

    return pattern is None or fnmatch.fnmatchcase(value, pattern)


def _matches(m: RoutingMatch, f: _RoutingFacts) -> bool:
    return (
        _glob(m.project, f.project)
        and _glob(m.domain, f.domain)
        and _glob(m.task_name, f.task_name)
        and all(_glob(v, f.labels.get(k, "")) and k in f.labels for k, v in m.labels.items())
        and (m.gpu is None or m.gpu == f.gpu)
        and (m.interruptible is None or m.interruptible == f.interruptible)
    )


def _role(request: agent_pb2.CreateTaskRequest, config: Config) -> str:
    md = request.task_execution_metadata
    role = md.identity.iam_role or request.template.security_context.run_as.iam_role
    if not role and config.role_annotation_key:
        role = md.annotations.get(config.role_annotation_key, "")
    role = role or config.default_role
    if role and not config.role_allowed(role):
        raise Rejection(
            "task_execution_metadata.identity.iam_role",
            f"role {role!r} is not in the service's allowedRoles",
        )
    return role


def _resources(container: tasks_pb2.Container, platform: str, config: Config) -> Resources:
    names = {tasks_pb2.Resources.CPU: "cpu", tasks_pb2.Resources.MEMORY: "memory",
             tasks_pb2.Resources.GPU: "gpu"}
    chosen: dict[str, tuple[str, str]] = {}
    # Limits win over requests, as in the Go plugin; each value is validated where it came from.
    for where, entries in (("requests", container.resources.requests), ("limits", container.resources.limits)):
        for i, entry in enumerate(entries):
            name = names.get(entry.name)
            if name and entry.value.strip():
                chosen[name] = (entry.value.strip(), f"template.container.resources.{where}[{i}]")
    cpu, cpu_at = chosen.get("cpu", (config.default_cpu, "defaultCpu"))
    mem, mem_at = chosen.get("memory", (config.default_memory, "defaultMemory"))
    gpu, gpu_at = chosen.get("gpu", ("0", "gpu"))
    try:
        n_gpus = quantities.gpus(gpu)
    except quantities.QuantityError as exc:
        raise Rejection(gpu_at, str(exc)) from None
    try:
        mib = quantities.memory_mib(mem)
    except quantities.QuantityError as exc:
        raise Rejection(mem_at, str(exc)) from None
    try:
        if platform != "FARGATE":
            return Resources(quantities.vcpus(cpu, fargate=False), mib, n_gpus)
        vcpu, mib = quantities.fargate_resources(cpu, mem)
    except quantities.QuantityError as exc:
        raise Rejection(cpu_at, str(exc)) from None
    if n_gpus:
        raise Rejection(gpu_at, "Fargate jobs cannot request GPUs")
    return Resources(vcpu, mib, 0)


def _literal_length(lit: literals_pb2.Literal) -> int | None:
    if lit.HasField("collection"):
        return len(lit.collection.literals)
    return None


def _array_size(request: agent_pb2.CreateTaskRequest, custom: Mapping[str, Any]) -> int:
    template = request.template
    if template.task_type_version == 0:
        size = _int_field(custom, "size", "template.custom")
        return 1 if size is None else size
    lengths = {}
    for name, lit in request.inputs.literals.items():
        if lit.HasField("offloaded_metadata"):
            raise Rejection(f"inputs.{name}", "offloaded input literals are not supported for map tasks")
        n = _literal_length(lit)
        if n is not None:
            lengths[name] = n
    if not lengths:
        if not request.inputs.literals:
            raise Rejection("inputs", "a map task needs list inputs to size the array, and there are none")
        raise Rejection("inputs", "cannot size the array: no input is a list")
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(lengths.items()))
        raise Rejection("inputs", f"all map task input lists must have the same length ({detail})")
    return next(iter(lengths.values()))


def _min_successes(custom: Mapping[str, Any], size: int) -> int:
    explicit = _int_field(custom, "minSuccesses", "template.custom")
    if explicit is not None:
        if explicit < 0 or explicit > size:
            raise Rejection("template.custom.minSuccesses", f"must be between 0 and the array size {size}")
        return explicit
    ratio = custom.get("minSuccessRatio", 1.0)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0.0 <= float(ratio) <= 1.0:
        raise Rejection("template.custom.minSuccessRatio", f"expected a number in [0, 1], got {ratio!r}")
    return min(size, math.ceil(float(ratio) * size - 1e-9))


def _secrets(template: tasks_pb2.TaskTemplate, config: Config) -> dict[str, str]:
    result: dict[str, str] = {}
    for i, secret in enumerate(template.security_context.secrets):
        arn = config.secret_arn(secret.group, secret.key)
        if arn is None:
            ref = f"{secret.group}/{secret.key}" if secret.key else secret.group
            raise Rejection(
                f"template.security_context.secrets[{i}]",
                f"secret {ref!r} is not mapped to an ARN in the service config `secrets`",
            )
        # flytekit reads secrets from _FSEC_<GROUP>_<KEY> (upper case, other characters kept).
        name = "_FSEC_" + secret.group.upper() + (f"_{secret.key.upper()}" if secret.key else "")
        result[name] = arn
    return result


def _env(request: agent_pb2.CreateTaskRequest, config: Config) -> dict[str, str]:
    md = request.task_execution_metadata
    tid = md.task_execution_id
    ex = tid.node_execution_id.execution_id
    env: dict[str, str] = {}
    for kv in request.template.container.env:
        env[kv.key] = kv.value
    env.update(md.environment_variables)
    env.update({
        "FLYTE_INTERNAL_EXECUTION_ID": ex.name,
        "FLYTE_INTERNAL_EXECUTION_PROJECT": ex.project,
        "FLYTE_INTERNAL_EXECUTION_DOMAIN": ex.domain,
        "FLYTE_INTERNAL_TASK_PROJECT": tid.task_id.project,
        "FLYTE_INTERNAL_TASK_DOMAIN": tid.task_id.domain,
        "FLYTE_INTERNAL_TASK_NAME": tid.task_id.name,
        "FLYTE_INTERNAL_TASK_VERSION": tid.task_id.version,
        "FLYTE_ATTEMPT_NUMBER": str(tid.retry_attempt),
    })
    if "workflow-name" in md.labels:
        env["FLYTE_INTERNAL_EXECUTION_WORKFLOW"] = md.labels["workflow-name"]
    env.update(config.default_env)
    # A user error must fail the AWS job, or AWS reports SUCCEEDED for a failed task.
    env["FLYTE_FAIL_ON_ERROR"] = "true"
    return env


def _timeout(template: tasks_pb2.TaskTemplate, config: Config) -> int | None:
    seconds = template.metadata.timeout.seconds + template.metadata.timeout.nanos / 1e9
    if seconds <= 0:
        seconds = config.default_timeout
    if seconds <= 0:
        return None
    timeout: int = math.ceil(seconds)
    return max(MIN_TIMEOUT, timeout)


def _tags(request: agent_pb2.CreateTaskRequest, custom_tags: dict[str, str], config: Config) -> dict[str, str]:
    tid = request.task_execution_metadata.task_execution_id
    ex = tid.node_execution_id.execution_id
    tags = dict(config.default_tags)
    tags.update(custom_tags)
    # Flyte's own tags last, so cost attribution cannot be spoofed by a task.
    tags.update({
        "flyte:project": ex.project,
        "flyte:domain": ex.domain,
        "flyte:execution-id": ex.name,
        "flyte:task-name": tid.task_id.name,
    })
    return {k[:128]: v[:256] for k, v in tags.items() if k}


def build_task_spec(request: agent_pb2.CreateTaskRequest, config: Config) -> TaskSpec:
    """Raises Rejection for anything that cannot be submitted."""
    template = request.template
    if template.type not in TASK_TYPES:
        raise Rejection("template.type", f"unsupported task type {template.type!r}; served: {', '.join(TASK_TYPES)}")
    if not template.HasField("container"):
        raise Rejection("template.container", "the task has no container target")
    if not template.container.image.strip():
        raise Rejection("template.container.image", "the container has no image")
    try:
        split_uri(request.output_prefix.rstrip("/"))
    except ValueError:
        raise Rejection("output_prefix", f"must be an s3:// URI with a bucket and a key, got "
                        f"{request.output_prefix!r}") from None
    md = request.task_execution_metadata
    if not md.HasField("task_execution_id") or not md.task_execution_id.node_execution_id.execution_id.name:
        raise Rejection("task_execution_metadata.task_execution_id", "missing the execution identifier")

    custom = _struct(template.custom, "template.custom") if template.HasField("custom") else {}
    is_array = template.type == CONTAINER_ARRAY
    where = "template.custom"
    if is_array:
        size = _array_size(request, custom)
        if size < 0:
            raise Rejection("template.custom.size", "must not be negative")
        if size > config.max_array_size:
            raise Rejection(
                "inputs" if template.task_type_version >= 1 else "template.custom.size",
                f"array size {size} is above the service's maxArraySize {config.max_array_size}",
            )
        min_successes = _min_successes(custom, size)
        _int_field(custom, "parallelism", where)
        custom_tags: dict[str, str] = {}
        parameters: dict[str, str] = {}
        priority = None
        propagate = None
    else:
        size, min_successes = 1, 1
        custom_tags = _str_map(custom, "tags", where)
        parameters = _str_map(custom, "parameters", where)
        raw_priority = custom.get("schedulingPriority", custom.get("schedulingPriorityOverride"))
        priority = None
        if raw_priority is not None:
            key = "schedulingPriority" if "schedulingPriority" in custom else "schedulingPriorityOverride"
            priority = _int_field(custom, key, where)
            if priority is not None and not 0 <= priority <= 9999:
                raise Rejection(f"{where}.{key}", "must be between 0 and 9999")
        propagate = custom.get("propagateTags")
        if propagate is not None and not isinstance(propagate, bool):
            raise Rejection(f"{where}.propagateTags", f"expected true or false, got {propagate!r}")

    platform = (template.config.get("platformCapabilities") or custom.get("platformCapabilities") or "EC2")
    if not isinstance(platform, str) or platform.upper() not in ("EC2", "FARGATE"):
        raise Rejection("template.config.platformCapabilities", f"expected EC2 or FARGATE, got {platform!r}")
    platform = platform.upper()
    resources = _resources(template.container, platform, config)

    tid = md.task_execution_id
    ex = tid.node_execution_id.execution_id
    facts = _RoutingFacts(
        project=ex.project, domain=ex.domain, task_name=template.id.name or tid.task_id.name,
        labels=dict(md.labels), gpu=resources.gpus > 0,
        interruptible=md.labels.get("interruptible") == "true" or template.metadata.interruptible,
    )
    queue, share = _queue(template, custom, facts, config)
    custom_share = custom.get("shareIdentifier") if not is_array else None
    if custom_share is not None and not isinstance(custom_share, str):
        raise Rejection(f"{where}.shareIdentifier", "expected a string")
    share = custom_share or share

    retries = template.metadata.retries.retries
    return TaskSpec(
        task_type=template.type,
        is_array=is_array,
        image=template.container.image.strip(),
        command=[*template.container.command, *template.container.args],
        env=_env(request, config),
        queue=queue,
        share_identifier=share,
        role=_role(request, config),
        platform=platform,
        resources=resources,
        attempts=max(1, min(retries + 1, MAX_ATTEMPTS)),
        timeout_seconds=_timeout(template, config),
        tags=_tags(request, custom_tags, config),
        propagate_tags=propagate,
        parameters=parameters,
        scheduling_priority=priority,
        secrets=_secrets(template, config),
        size=size,
        min_successes=min_successes,
        output_prefix=request.output_prefix.rstrip("/"),
        output_names=sorted(template.interface.outputs.variables.keys()),
        job_name=job_name_for(request),
        execution_id=f"{ex.project}/{ex.domain}/{ex.name}",
    )
