"""The Flyte task types this service runs: the one place that names them."""

from __future__ import annotations

AWS_BATCH = "aws-batch"  # one AWS Batch job
CONTAINER_ARRAY = "container_array"  # flytekit's legacy map task: one AWS array job (split above 10,000)
TASK_TYPES: tuple[str, ...] = (AWS_BATCH, CONTAINER_ARRAY)
# Version advertised for each type (propeller matches on the name; flytekit serializes the map task as 1).
TASK_TYPE_VERSIONS: dict[str, int] = {AWS_BATCH: 0, CONTAINER_ARRAY: 1}


def metric_label(task_type: str) -> str:
    """A bounded label value: whatever a client sends as a type must not create a metric series."""
    return task_type if task_type in TASK_TYPES else "other"
