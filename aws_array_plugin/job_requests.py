"""TaskSpec -> the AWS requests that run it: a content-addressed job definition and SubmitJob request(s).

Pure. Per-task settings (command, env, resources, retries, timeout, tags) go on SubmitJob so that one
job definition serves every task with the same image, role and platform settings.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from aws_array_plugin.config import AWS_MAX_ARRAY_SIZE, DEFAULT_LOG_GROUP, Config
from aws_array_plugin.task_specs import TaskSpec, sanitize_name

INDEX_VAR_NAME = "BATCH_JOB_ARRAY_INDEX_VAR_NAME"
INDEX_OFFSET = "BATCH_JOB_ARRAY_INDEX_OFFSET"
FAKE_INDEX = "FAKE_JOB_ARRAY_INDEX"
MANAGED_BY_TAG = "managed-by"
MANAGED_BY = "aws-array-plugin"

# The image repository: the last path segment without tag or digest (as the Go plugin names definitions).
_REPOSITORY = re.compile(r"^(?:([^/]+)/)?(?:([^/]+)/)*?([^@:/]+)(?:[@:][^/]+)?$")


@dataclass(frozen=True)
class JobDefinition:
    name: str
    body: dict[str, Any]  # RegisterJobDefinition parameters, name included


@dataclass(frozen=True)
class Chunk:
    index: int
    offset: int
    size: int


def image_repository(image: str) -> str:
    m = _REPOSITORY.match(image)
    return m.group(3) if m else image


def chunk_count(size: int, max_chunk: int = AWS_MAX_ARRAY_SIZE) -> int:
    """How many AWS jobs run an array task of `size` children."""
    return -(-size // max_chunk) if size > 0 else 0


def array_chunks(size: int, max_chunk: int = AWS_MAX_ARRAY_SIZE) -> list[Chunk]:
    """Balanced split of `size` children into AWS array jobs of at most `max_chunk` (never a chunk of 1,
    which AWS rejects, unless the whole array is 1)."""
    n = chunk_count(size, max_chunk)
    if n == 0:
        return []
    base, extra = divmod(size, n)
    chunks, offset = [], 0
    for i in range(n):
        length = base + (1 if i < extra else 0)
        chunks.append(Chunk(i, offset, length))
        offset += length
    return chunks


def chunk_job_name(base: str, chunk: int, n_chunks: int) -> str:
    return base if n_chunks <= 1 else f"{base}-{chunk}"


def job_definition(spec: TaskSpec, config: Config, region: str) -> JobDefinition:
    jd = config.job_definitions
    fargate = spec.platform == "FARGATE"
    props: dict[str, Any] = {
        "image": spec.image,
        # Placeholders: every SubmitJob overrides them with the task's own resources.
        "resourceRequirements": [
            {"type": "VCPU", "value": "0.25" if fargate else "1"},
            {"type": "MEMORY", "value": "512" if fargate else "128"},
        ],
    }
    if spec.role:
        props["jobRoleArn"] = spec.role
    execution_role = (jd.fargate.execution_role_arn if fargate else "") or jd.execution_role_arn
    if execution_role:
        props["executionRoleArn"] = execution_role
    log_options = {}
    if jd.log_group != DEFAULT_LOG_GROUP or jd.log_region or jd.log_stream_prefix:
        log_options["awslogs-group"] = jd.log_group
        log_options["awslogs-region"] = jd.log_region or region
        if jd.log_stream_prefix:
            log_options["awslogs-stream-prefix"] = jd.log_stream_prefix
    if log_options:
        props["logConfiguration"] = {"logDriver": "awslogs", "options": log_options}
    if spec.secrets:
        props["secrets"] = [{"name": k, "valueFrom": v} for k, v in sorted(spec.secrets.items())]
    if fargate:
        props["networkConfiguration"] = {"assignPublicIp": jd.fargate.assign_public_ip}
        props["fargatePlatformConfiguration"] = {"platformVersion": jd.fargate.platform_version}
    content = {"type": "container", "platformCapabilities": [spec.platform], "containerProperties": props}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    name = f"flyte-{sanitize_name(image_repository(spec.image))[:90]}-{digest[:20]}"
    tags = {**jd.tags, MANAGED_BY_TAG: MANAGED_BY}
    return JobDefinition(name=name, body={"jobDefinitionName": name, **content, "tags": tags})


def _env_list(env: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in sorted(env.items())]


def submit_requests(spec: TaskSpec, job_definition: str) -> list[dict[str, Any]]:
    """One SubmitJob request per AWS job: one for aws-batch, ceil(size/10000) for arrays (none for 0).
    `job_definition` is its name, or ARN, as SubmitJob takes it."""
    if spec.is_array and spec.size == 0:
        return []
    resources = [{"type": "VCPU", "value": spec.resources.vcpus},
                 {"type": "MEMORY", "value": str(spec.resources.memory_mib)}]
    if spec.resources.gpus:
        resources.append({"type": "GPU", "value": str(spec.resources.gpus)})
    chunks = array_chunks(spec.size) if spec.is_array else [Chunk(0, 0, 1)]
    requests = []
    for chunk in chunks:
        env = _env_list(spec.env)
        if spec.is_array and spec.size == 1:
            env += [{"name": INDEX_VAR_NAME, "value": FAKE_INDEX}, {"name": FAKE_INDEX, "value": "0"}]
        elif spec.is_array:
            env.append({"name": INDEX_VAR_NAME, "value": "AWS_BATCH_JOB_ARRAY_INDEX"})
            if len(chunks) > 1:
                env.append({"name": INDEX_OFFSET, "value": str(chunk.offset)})
        request: dict[str, Any] = {
            "jobName": chunk_job_name(spec.job_name, chunk.index, len(chunks)),
            "jobQueue": spec.queue,
            "jobDefinition": job_definition,
            "containerOverrides": {"command": list(spec.command), "environment": env,
                                   "resourceRequirements": resources},
            "retryStrategy": {"attempts": spec.attempts},
            "tags": dict(spec.tags),
        }
        if spec.is_array and spec.size > 1:
            request["arrayProperties"] = {"size": chunk.size}
        if spec.timeout_seconds:
            request["timeout"] = {"attemptDurationSeconds": spec.timeout_seconds}
        if spec.propagate_tags is not None:
            request["propagateTags"] = spec.propagate_tags
        if spec.parameters:
            request["parameters"] = dict(spec.parameters)
        if spec.scheduling_priority is not None:
            request["schedulingPriorityOverride"] = spec.scheduling_priority
        if spec.share_identifier:
            request["shareIdentifier"] = spec.share_identifier
        requests.append(request)
    return requests
