# flytekit's @task is untyped; the tasks are plain flytekit code.
# mypy: disable-error-code="untyped-decorator"
"""The flytekit tasks the demo runs, as a user project would write them.

The demo serializes them like `pyflyte register`; the emulated AWS Batch then runs their `pyflyte-execute` /
`pyflyte-map-execute` command lines on the host, where this module imports as `aws_array_plugin_demo.workflows`.
"""

from __future__ import annotations

from flytekit import Resources, task
from flytekit.core.legacy_map_task import map_task
from flytekitplugins.awsbatch import AWSBatchConfig

UNLUCKY = 13  # the map child that gets this value fails on purpose


@task(
    task_config=AWSBatchConfig(platformCapabilities="EC2", tags={"app": "aws-array-plugin-demo"}),
    requests=Resources(cpu="1", mem="512Mi"),
    environment={"DEMO_GREETING": "hello"},
)
def summarize(name: str, values: list[int]) -> tuple[int, str]:
    """An `aws-batch` task: one AWS Batch job; flytekit writes its outputs under `<output prefix>/0`."""
    import os

    print(f"summarize: {len(values)} values for {name!r}")
    if not values:
        raise ValueError("nothing to summarize: values is empty")
    total = sum(v * v for v in values)
    print(f"summarize: sum of squares = {total}")
    greeting = f"{os.environ.get('DEMO_GREETING', 'hi')} {name}, the sum of squares is {total}"
    print(f"summarize: {greeting}")
    return total, greeting


@task(requests=Resources(cpu="1", mem="256Mi"))
def square(x: int) -> int:
    """The mapped task: each array child squares one element, and the unlucky one raises."""
    print(f"square: got x={x}")
    if x == UNLUCKY:
        raise ValueError(f"{x} is unlucky, refusing to square it")
    print(f"square: {x} * {x} = {x * x}")
    return x * x


# A legacy map task (task type `container_array`): one AWS array job; one failure in five is tolerated.
square_all = map_task(square, min_success_ratio=0.8)
