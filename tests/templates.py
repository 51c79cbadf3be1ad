"""Task templates serialized by real flytekit (as `pyflyte register` does) from tests/flyte_app, and
CreateTaskRequests built by aws_array_plugin_demo.propeller with args rendered the way propeller's
`template.Render` renders them, in the attempt layout the tests' golden files record (raw output data under
`raw/<execution>-<node>-<attempt>`, checkpoints under `<raw>/_ckpt`)."""

from __future__ import annotations

import functools
import importlib

from flyteidl.admin import agent_pb2
from flyteidl.core import literals_pb2, tasks_pb2

from aws_array_plugin_demo import propeller
from aws_array_plugin_demo.propeller import DOMAIN, PROJECT, literal_map

__all__ = ["DOMAIN", "FAST_DISTRIBUTION", "IMAGE", "PROJECT", "VERSION", "create_request", "literal_map",
           "task_template", "template"]

IMAGE = "ghcr.io/example/app:v1"
VERSION = "v1"
FAST_DISTRIBUTION = "s3://flyte-data/flytesnacks/development/fast3f2a9c1b7e.tar.gz"


@functools.cache
def template(entity_name: str, fast: bool = False, module: str = "tests.flyte_app.workflows") -> bytes:
    entity = getattr(importlib.import_module(module), entity_name)
    serialized = propeller.serialize(entity, version=VERSION, image=IMAGE,
                                     fast_distribution=FAST_DISTRIBUTION if fast else None)
    return bytes(serialized.SerializeToString())


def task_template(entity_name: str, fast: bool = False,
                  module: str = "tests.flyte_app.workflows") -> tasks_pb2.TaskTemplate:
    return tasks_pb2.TaskTemplate.FromString(template(entity_name, fast, module))


def create_request(tmpl: tasks_pb2.TaskTemplate, *, bucket: str = "flyte-data", execution: str = "exec1",
                   node: str = "n0", attempt: int = 0, inputs: literals_pb2.LiteralMap | None = None,
                   iam_role: str = "", env: dict[str, str] | None = None,
                   labels: dict[str, str] | None = None) -> agent_pb2.CreateTaskRequest:
    """What propeller's connector plugin sends for one attempt (propeller.create_request, the tests' layout)."""
    raw = f"s3://{bucket}/raw/{execution}-{node}-{attempt}"
    return propeller.create_request(tmpl, bucket=bucket, execution=execution, node=node, attempt=attempt,
                                    inputs=inputs, iam_role=iam_role, env=env, labels=labels,
                                    raw_output_prefix=raw, checkpoint_prefix=f"{raw}/_ckpt")
