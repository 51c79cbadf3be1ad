"""Flyte 2 tasks of the tests in tests/flyte2: serialized like `flyte deploy` does, and run by `a0` (which imports
this module as `flyte2_tasks`, with this directory on PYTHONPATH, standing in for the image's code)."""

from __future__ import annotations

import flyte

from aws_array_plugin_flyte import AWSBatch

env = flyte.TaskEnvironment(
    name="batch",
    image="123456789012.dkr.ecr.us-east-1.amazonaws.com/flyte2-tasks:1",
    resources=flyte.Resources(cpu=2, memory="3Gi"),
    env_vars={"LOG_LEVEL": "debug"},
    secrets=[flyte.Secret(key="api-token", as_env_var="API_TOKEN")],
    plugin_config=AWSBatch(
        queue="gpu-spot",
        share_identifier="teamA",
        scheduling_priority=40,
        parameters={"codec": "h264"},
        propagate_tags=True,
        tags={"team": "a"},
    ),
)

plain = flyte.TaskEnvironment(name="plain", image="python:3.11", plugin_config=AWSBatch())


@env.task(retries=2, timeout=600)
def double(x: int) -> int:
    return 2 * x


@env.task
def greet(name: str, times: int) -> str:
    return " ".join([f"hello {name}"] * times)


@plain.task(retries=3)
def triple(x: int) -> int:
    return 3 * x


@plain.task
def boom(x: int) -> int:
    raise ValueError(f"{x} is unlucky")
