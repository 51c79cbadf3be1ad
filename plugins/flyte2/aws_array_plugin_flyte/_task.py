"""The `aws-batch` task type for the Flyte 2 SDK: a config dataclass and the function task it selects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flyte.extend import AsyncFunctionTaskTemplate, TaskPluginRegistry
from flyte.models import SerializationContext

TASK_TYPE = "aws-batch"
TASK_TYPE_VERSION = 0
# Version of the layout of `template.custom` written below. Always present: the Flyte 2 executor fails a
# connector task whose custom is empty ("nil Struct Object passed").
CUSTOM_VERSION = 1
PLATFORMS = ("EC2", "FARGATE")
# Keys the Flyte 2 executor itself reads from custom (connection secrets/configs, task type override).
_EXECUTOR_KEYS = frozenset({"secrets", "configs", "taskType"})


def _str_map(name: str, value: Mapping[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise TypeError(f"AWSBatch.{name} must map strings to strings, got {value!r}")
    return dict(value)


@dataclass(frozen=True, kw_only=True)
class AWSBatch:
    """How the AWS Batch job of each task of the environment is submitted (SubmitJob settings).

    Args:
        queue: the AWS Batch job queue (name or ARN). Unset: the service's queueRouting or defaultQueue.
        share_identifier: the fair-share identifier (queues with a scheduling policy).
        scheduling_priority: schedulingPriorityOverride, 0..9999 (fair-share queues).
        parameters: SubmitJob `parameters` (the `Ref::name` placeholders of the job definition).
        platform_capabilities: "EC2" or "FARGATE".
        propagate_tags: propagate the job's tags to its ECS task.
        tags: tags of the job (the service adds its own `flyte:*` tags, which win).
    """

    queue: str | None = None
    share_identifier: str | None = None
    scheduling_priority: int | None = None
    parameters: Mapping[str, str] | None = None
    platform_capabilities: str = "EC2"
    propagate_tags: bool | None = None
    tags: Mapping[str, str] | None = field(default=None)

    def __post_init__(self) -> None:
        for name in ("queue", "share_identifier"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"AWSBatch.{name} must be a non-empty string, got {value!r}")
        priority = self.scheduling_priority
        if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)
                                     or not 0 <= priority <= 9999):
            raise ValueError(f"AWSBatch.scheduling_priority must be an integer in 0..9999, got {priority!r}")
        if not isinstance(self.platform_capabilities, str) or self.platform_capabilities.upper() not in PLATFORMS:
            raise ValueError(f"AWSBatch.platform_capabilities must be EC2 or FARGATE, "
                             f"got {self.platform_capabilities!r}")
        if self.propagate_tags is not None and not isinstance(self.propagate_tags, bool):
            raise TypeError(f"AWSBatch.propagate_tags must be a bool, got {self.propagate_tags!r}")
        # Frozen: normalise through object.__setattr__ (copies, so later changes to the caller's dicts don't leak in).
        object.__setattr__(self, "parameters", _str_map("parameters", self.parameters))
        object.__setattr__(self, "tags", _str_map("tags", self.tags))
        object.__setattr__(self, "platform_capabilities", self.platform_capabilities.upper())

    def to_custom(self) -> dict[str, Any]:
        """`template.custom`, with the key names aws-array-plugin reads for `aws-batch` tasks. Unset fields are
        left out; `version` and `platformCapabilities` are always there."""
        custom: dict[str, Any] = {"version": CUSTOM_VERSION, "platformCapabilities": self.platform_capabilities}
        if self.queue is not None:
            custom["queue"] = self.queue.strip()
        if self.share_identifier is not None:
            custom["shareIdentifier"] = self.share_identifier.strip()
        if self.scheduling_priority is not None:
            custom["schedulingPriority"] = self.scheduling_priority
        if self.parameters:
            custom["parameters"] = dict(self.parameters)
        if self.propagate_tags is not None:
            custom["propagateTags"] = self.propagate_tags
        if self.tags:
            custom["tags"] = dict(self.tags)
        assert not _EXECUTOR_KEYS & custom.keys()
        return custom


@dataclass(kw_only=True)
class AWSBatchFunctionTask(AsyncFunctionTaskTemplate):  # type: ignore[type-arg]
    """A function task that runs as one AWS Batch job. The job runs the task's usual `a0` container command;
    without a backend (local `flyte.run`) the function runs in-process, like any other task."""

    task_type: str = TASK_TYPE
    task_type_version: int = TASK_TYPE_VERSION
    plugin_config: AWSBatch

    def custom_config(self, sctx: SerializationContext) -> dict[str, Any]:
        return self.plugin_config.to_custom()


TaskPluginRegistry.register(AWSBatch, AWSBatchFunctionTask)
