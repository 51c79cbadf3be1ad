"""Task templates serialized by real flytekit (as `pyflyte register` does), and CreateTaskRequests with
args rendered the way propeller's `template.Render` renders them: `{{.input}}`, `{{.outputPrefix}}`,
`{{.rawOutputDataPrefix}}` and the checkpoint prefixes replaced by the attempt's paths (see docs/demo.md)."""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Any

from flyteidl.admin import agent_pb2
from flyteidl.core import identifier_pb2, literals_pb2, tasks_pb2

IMAGE = "ghcr.io/example/app:v1"
PROJECT, DOMAIN, VERSION = "flytesnacks", "development", "v1"
FAST_DISTRIBUTION = "s3://flyte-data/flytesnacks/development/fast3f2a9c1b7e.tar.gz"


def _settings(fast: bool) -> Any:
    from flytekit.configuration import FastSerializationSettings, Image, ImageConfig, SerializationSettings

    img = Image.look_up_image_info("default", IMAGE)
    s = SerializationSettings(project=PROJECT, domain=DOMAIN, version=VERSION,
                              image_config=ImageConfig(default_image=img, images=[img]))
    if fast:
        s.fast_serialization_settings = FastSerializationSettings(
            enabled=True, destination_dir=".", distribution_location=FAST_DISTRIBUTION)
    return s


@functools.cache
def template(entity_name: str, fast: bool = False, module: str = "tests.flyte_app.workflows") -> bytes:
    import importlib

    from flytekit.tools.translator import get_serializable

    entity = getattr(importlib.import_module(module), entity_name)
    spec = get_serializable(OrderedDict(), _settings(fast), entity)
    return bytes(spec.template.to_flyte_idl().SerializeToString())


def task_template(entity_name: str, fast: bool = False,
                  module: str = "tests.flyte_app.workflows") -> tasks_pb2.TaskTemplate:
    return tasks_pb2.TaskTemplate.FromString(template(entity_name, fast, module))


def literal_map(values: dict[str, Any], hints: dict[str, Any]) -> literals_pb2.LiteralMap:
    from flytekit.core.context_manager import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine

    ctx = FlyteContextManager.current_context()
    return TypeEngine.dict_to_literal_map(ctx, values, hints).to_flyte_idl()


def render(args: list[str], input_path: str, output_prefix: str, raw: str) -> list[str]:
    out = []
    for a in args:
        a = a.replace("{{.input}}", input_path).replace("{{.outputPrefix}}", output_prefix)
        a = a.replace("{{.rawOutputDataPrefix}}", raw).replace("{{.checkpointOutputPrefix}}", f"{raw}/_ckpt")
        a = a.replace("{{.prevCheckpointPrefix}}", '""')
        out.append(a)
    return out


def create_request(tmpl: tasks_pb2.TaskTemplate, *, bucket: str = "flyte-data", execution: str = "exec1",
                   node: str = "n0", attempt: int = 0, inputs: literals_pb2.LiteralMap | None = None,
                   iam_role: str = "", env: dict[str, str] | None = None,
                   labels: dict[str, str] | None = None) -> agent_pb2.CreateTaskRequest:
    """What propeller's connector plugin sends for one attempt."""
    base = f"s3://{bucket}/metadata/propeller/{PROJECT}-{DOMAIN}-{execution}/{node}/data"
    prefix = f"{base}/{attempt}"
    t = tasks_pb2.TaskTemplate()
    t.CopyFrom(tmpl)
    rendered = render(list(t.container.args), f"{base}/inputs.pb", prefix, f"s3://{bucket}/raw/{execution}-{node}-{attempt}")
    del t.container.args[:]
    t.container.args.extend(rendered)
    wf = identifier_pb2.WorkflowExecutionIdentifier(project=PROJECT, domain=DOMAIN, name=execution)
    md = agent_pb2.TaskExecutionMetadata(
        task_execution_id=identifier_pb2.TaskExecutionIdentifier(
            task_id=t.id, node_execution_id=identifier_pb2.NodeExecutionIdentifier(node_id=node, execution_id=wf),
            retry_attempt=attempt),
        namespace=f"{PROJECT}-{DOMAIN}",
        labels={"execution-id": execution, "task-name": t.id.name.replace(".", "-"), "interruptible": "false",
                **(labels or {})},
        k8s_service_account="default",
        environment_variables=env or {},
    )
    if iam_role:
        md.identity.iam_role = iam_role
    return agent_pb2.CreateTaskRequest(inputs=inputs or literals_pb2.LiteralMap(), template=t, output_prefix=prefix,
                                       task_execution_metadata=md)
