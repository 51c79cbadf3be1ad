"""The demo's Flyte 2 task: a `flyte` SDK task of type `aws-batch` (the SDK plugin `aws-array-plugin-flyte`),
serialized as `flyte deploy` does and run by the job with `a0`, which imports this module from PYTHONPATH (the
demo's service config `defaultEnv`, standing in for the image's code)."""

from __future__ import annotations

import flyte

from aws_array_plugin_flyte import AWSBatch

IMAGE = "ghcr.io/example/aws-array-plugin-demo:latest"  # recorded in the job definition, never pulled

env = flyte.TaskEnvironment(
    name="demo2",
    image=IMAGE,
    resources=flyte.Resources(cpu=1, memory="512Mi"),
    plugin_config=AWSBatch(tags={"app": "aws-array-plugin-demo"}),
)


@env.task
def countdown(n: int) -> str:
    text = ", ".join(str(i) for i in range(n, 0, -1))
    print(f"countdown: counting down from {n}")
    return f"{text}, liftoff! (sum {sum(range(1, n + 1))})"
