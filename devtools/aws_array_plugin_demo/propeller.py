"""What propeller's connector plugin does for one task attempt, over real gRPC (contract doc §4.1-4.3):
serialize the template as `pyflyte register` does, write `<node data dir>/inputs.pb`, render the container
args, send CreateTask with the task execution metadata, poll GetTask, read logs with GetTaskLogs.

flytekit is imported inside the functions that need it (the CLI imports this module lazily anyway).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, identifier_pb2, literals_pb2, tasks_pb2

Phase = execution_pb2.TaskExecution
TERMINAL = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.RETRYABLE_FAILED, Phase.ABORTED})
PROJECT, DOMAIN, VERSION = "flytesnacks", "development", "demo"
IMAGE = "ghcr.io/example/aws-array-plugin-demo:latest"  # recorded in the job definition, never pulled

# Propeller's template.Render variables (case-insensitive, optional spaces), as flytekit uses them.
_PLACEHOLDER = re.compile(r"\{\{\s*\.(\w+)\s*\}\}", re.IGNORECASE)


def phase_name(phase: int) -> str:
    return str(Phase.Phase.Name(phase))


def serialize(entity: Any) -> tasks_pb2.TaskTemplate:
    """The TaskTemplate `pyflyte register` would send to FlyteAdmin for this task."""
    from flytekit.configuration import Image, ImageConfig, SerializationSettings
    from flytekit.tools.translator import get_serializable

    img = Image.look_up_image_info("default", IMAGE)
    settings = SerializationSettings(project=PROJECT, domain=DOMAIN, version=VERSION,
                                     image_config=ImageConfig(default_image=img, images=[img]))
    template: tasks_pb2.TaskTemplate = get_serializable(OrderedDict(), settings, entity).template.to_flyte_idl()
    return template


def literal_map(entity: Any, values: Mapping[str, Any]) -> literals_pb2.LiteralMap:
    """Python inputs -> the LiteralMap propeller writes as inputs.pb, typed by the task's interface."""
    from flytekit.core.context_manager import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine

    ctx = FlyteContextManager.current_context()
    hints = dict(entity.python_interface.inputs)
    lm: literals_pb2.LiteralMap = TypeEngine.dict_to_literal_map(ctx, dict(values), hints).to_flyte_idl()
    return lm


def python_outputs(entity: Any, outputs: literals_pb2.LiteralMap) -> dict[str, Any]:
    """The returned LiteralMap as Python values, typed by the task's interface."""
    from flytekit.core.context_manager import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine
    from flytekit.models.literals import LiteralMap

    ctx = FlyteContextManager.current_context()
    hints = dict(entity.python_interface.outputs)
    values: dict[str, Any] = TypeEngine.literal_map_to_kwargs(ctx, LiteralMap.from_flyte_idl(outputs), hints)
    return values


def render(args: list[str], values: Mapping[str, str]) -> list[str]:
    """Propeller's template.Render for container args; unknown variables are left as they are."""
    lowered = {k.lower(): v for k, v in values.items()}

    def sub(m: re.Match[str]) -> str:
        return lowered.get(m.group(1).lower(), m.group(0))

    return [_PLACEHOLDER.sub(sub, a) for a in args]


@dataclass
class Attempt:
    """One task node's attempt as propeller lays it out in the metadata and raw-data stores."""

    label: str
    entity: Any
    request: agent_pb2.CreateTaskRequest
    inputs_uri: str
    resource_meta: bytes = b""
    resource: agent_pb2.Resource = field(default_factory=agent_pb2.Resource)
    phases: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def task_type(self) -> str:
        return str(self.request.template.type)

    @property
    def task_category(self) -> agent_pb2.TaskCategory:
        t = self.request.template
        return agent_pb2.TaskCategory(name=t.type, version=t.task_type_version)

    @property
    def done(self) -> bool:
        return self.finished is not None


def attempt(label: str, entity: Any, inputs: Mapping[str, Any], *, bucket: str, execution: str, node: str,
            env: Mapping[str, str], retry: int = 0) -> Attempt:
    """The CreateTaskRequest propeller would send: rendered args, inputs, output prefix, execution metadata."""
    template = serialize(entity)
    node_dir = f"s3://{bucket}/metadata/propeller/{PROJECT}-{DOMAIN}-{execution}/{node}/data"
    output_prefix = f"{node_dir}/{retry}"
    raw = f"s3://{bucket}/raw/{execution[:2]}/{execution}-{node}-{retry}"
    rendered = render(list(template.container.args), {
        "input": f"{node_dir}/inputs.pb",
        "inputPrefix": node_dir,
        "outputPrefix": output_prefix,
        "rawOutputDataPrefix": raw,
        "checkpointOutputPrefix": f"{raw}/_flytecheckpoints",
        "prevCheckpointPrefix": '""',  # first attempt: propeller renders an empty previous checkpoint as ""
        "perRetryUniqueKey": f"{execution}-{node}-{retry}",
        "namespace": f"{PROJECT}-{DOMAIN}",
    })
    del template.container.args[:]
    template.container.args.extend(rendered)
    wf = identifier_pb2.WorkflowExecutionIdentifier(project=PROJECT, domain=DOMAIN, name=execution)
    metadata = agent_pb2.TaskExecutionMetadata(
        task_execution_id=identifier_pb2.TaskExecutionIdentifier(
            task_id=template.id,
            node_execution_id=identifier_pb2.NodeExecutionIdentifier(node_id=node, execution_id=wf),
            retry_attempt=retry),
        namespace=f"{PROJECT}-{DOMAIN}",
        labels={"project": PROJECT, "domain": DOMAIN, "execution-id": execution, "workflow-name": "demo-workflow",
                "shard-key": "7", "node-id": node, "task-name": template.id.name.replace(".", "-").replace("_", "-"),
                "interruptible": "false"},
        k8s_service_account="default",
        environment_variables=dict(env),
    )
    request = agent_pb2.CreateTaskRequest(inputs=literal_map(entity, inputs), template=template,
                                          output_prefix=output_prefix, task_execution_metadata=metadata)
    return Attempt(label, entity, request, f"{node_dir}/inputs.pb")


def put_inputs(s3: Any, a: Attempt) -> None:
    """Propeller writes the node's inputs before the task starts; the job reads them with flytekit."""
    bucket, _, key = a.inputs_uri.removeprefix("s3://").partition("/")
    s3.put_object(Bucket=bucket, Key=key, Body=a.request.inputs.SerializeToString(deterministic=True))


async def create(stub: Any, a: Attempt) -> None:
    resp = await stub.CreateTask(a.request, timeout=10)  # propeller's default CreateTask timeout
    a.resource_meta = bytes(resp.resource_meta)
    a.started = time.monotonic()


async def refresh(stub: Any, a: Attempt) -> None:
    req = agent_pb2.GetTaskRequest(resource_meta=a.resource_meta, task_category=a.task_category,
                                   task_type=a.task_type, output_prefix=a.request.output_prefix)
    resp = await stub.GetTask(req, timeout=10)
    a.resource = resp.resource
    name = phase_name(a.resource.phase)
    if not a.phases or a.phases[-1] != name:
        a.phases.append(name)
    if a.resource.phase in TERMINAL and a.finished is None:
        a.finished = time.monotonic()


async def log_lines(stub: Any, a: Attempt, child: int | None = None, lines: int = 200) -> list[str]:
    """CloudWatch lines of the job (or of array child `child`) through GetTaskLogs."""
    metadata = (("child-index", str(child)),) if child is not None else None
    call = stub.GetTaskLogs(agent_pb2.GetTaskLogsRequest(resource_meta=a.resource_meta, lines=lines,
                                                         task_category=a.task_category),
                            metadata=metadata, timeout=10)
    out: list[str] = []
    async for part in call:
        if part.HasField("body"):
            out.extend(line.message for line in part.body.structured_lines)
    return out
