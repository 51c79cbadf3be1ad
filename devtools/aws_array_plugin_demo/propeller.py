"""What flytepropeller's connector plugin does for one task attempt, over real gRPC (docs/propeller.md is the
in-repo reference): serialize the template as `pyflyte register` does, lay the attempt out in the metadata and
raw-data stores, render the container args as propeller's `template.Render` does, send CreateTask with the task
execution metadata and propeller's timeouts, poll GetTask until a terminal phase, abort with DeleteTask, read logs
with GetTaskLogs. The demo, the tests and the benchmarks all act as propeller through this module.

flytekit is imported inside the functions that need it (the CLI imports this module lazily anyway).
"""

from __future__ import annotations

import asyncio
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
# Propeller's connector-service timeouts (docs/propeller.md); GetTaskLogs has no propeller default.
CREATE_TIMEOUT, GET_TIMEOUT, DELETE_TIMEOUT, LOGS_TIMEOUT = 10.0, 30.0, 10.0, 10.0

# Propeller's template.Render variables (case-insensitive, optional spaces), as flytekit uses them.
_PLACEHOLDER = re.compile(r"\{\{\s*\.(\w+)\s*\}\}", re.IGNORECASE)


def phase_name(phase: int) -> str:
    return str(Phase.Phase.Name(phase))


def serialize(entity: Any, *, version: str = VERSION, image: str = IMAGE,
              fast_distribution: str | None = None) -> tasks_pb2.TaskTemplate:
    """The TaskTemplate `pyflyte register` (with `--fast`: `fast_distribution`) would send to FlyteAdmin."""
    from flytekit.configuration import FastSerializationSettings, Image, ImageConfig, SerializationSettings
    from flytekit.tools.translator import get_serializable

    img = Image.look_up_image_info("default", image)
    settings = SerializationSettings(project=PROJECT, domain=DOMAIN, version=version,
                                     image_config=ImageConfig(default_image=img, images=[img]))
    if fast_distribution is not None:
        settings.fast_serialization_settings = FastSerializationSettings(
            enabled=True, destination_dir=".", distribution_location=fast_distribution)
    template: tasks_pb2.TaskTemplate = get_serializable(OrderedDict(), settings, entity).template.to_flyte_idl()
    return template


def literal_map(values: Mapping[str, Any], hints: Mapping[str, Any]) -> literals_pb2.LiteralMap:
    """Python values -> the LiteralMap propeller writes as inputs.pb, typed by `hints` (name -> Python type)."""
    from flytekit.core.context_manager import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine

    ctx = FlyteContextManager.current_context()
    lm: literals_pb2.LiteralMap = TypeEngine.dict_to_literal_map(ctx, dict(values), dict(hints)).to_flyte_idl()
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


def node_dir(bucket: str, execution: str, node: str) -> str:
    """The node's data directory in propeller's metadata store (inputs.pb, then `<attempt>/` output prefixes)."""
    return f"s3://{bucket}/metadata/propeller/{PROJECT}-{DOMAIN}-{execution}/{node}/data"


def task_execution_metadata(template: tasks_pb2.TaskTemplate, *, execution: str, node: str, attempt: int = 0,
                            labels: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None,
                            iam_role: str = "") -> agent_pb2.TaskExecutionMetadata:
    """The task execution metadata propeller sends: ids of the attempt, namespace, pod labels (`labels` added
    to or replacing the defaults), service account, execution env vars, and the execution identity's role."""
    wf = identifier_pb2.WorkflowExecutionIdentifier(project=PROJECT, domain=DOMAIN, name=execution)
    metadata = agent_pb2.TaskExecutionMetadata(
        task_execution_id=identifier_pb2.TaskExecutionIdentifier(
            task_id=template.id,
            node_execution_id=identifier_pb2.NodeExecutionIdentifier(node_id=node, execution_id=wf),
            retry_attempt=attempt),
        namespace=f"{PROJECT}-{DOMAIN}",
        labels={"execution-id": execution, "task-name": template.id.name.replace(".", "-"), "interruptible": "false",
                **(labels or {})},
        k8s_service_account="default",
        environment_variables=dict(env or {}),
    )
    if iam_role:
        metadata.identity.iam_role = iam_role
    return metadata


def create_request(template: tasks_pb2.TaskTemplate, *, bucket: str = "flyte-data", execution: str = "exec1",
                   node: str = "n0", attempt: int = 0, inputs: literals_pb2.LiteralMap | None = None,
                   iam_role: str = "", env: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None,
                   raw_output_prefix: str | None = None, checkpoint_prefix: str | None = None,
                   ) -> agent_pb2.CreateTaskRequest:
    """The CreateTaskRequest propeller's connector plugin sends for one attempt: the template (copied) with its
    args rendered for the attempt's paths, the inputs, the output prefix `<node dir>/<attempt>`, and the task
    execution metadata. The raw output prefix defaults to propeller's sharded layout, the checkpoint prefix to
    `<raw>/_flytecheckpoints`."""
    base = node_dir(bucket, execution, node)
    prefix = f"{base}/{attempt}"
    raw = raw_output_prefix or f"s3://{bucket}/raw/{execution[:2]}/{execution}-{node}-{attempt}"
    t = tasks_pb2.TaskTemplate()
    t.CopyFrom(template)
    rendered = render(list(t.container.args), {
        "input": f"{base}/inputs.pb",
        "inputPrefix": base,
        "outputPrefix": prefix,
        "rawOutputDataPrefix": raw,
        "checkpointOutputPrefix": checkpoint_prefix or f"{raw}/_flytecheckpoints",
        "prevCheckpointPrefix": '""',  # first attempt: propeller renders an empty previous checkpoint as ""
        "perRetryUniqueKey": f"{execution}-{node}-{attempt}",
        "namespace": f"{PROJECT}-{DOMAIN}",
    })
    del t.container.args[:]
    t.container.args.extend(rendered)
    metadata = task_execution_metadata(t, execution=execution, node=node, attempt=attempt, labels=labels, env=env,
                                       iam_role=iam_role)
    return agent_pb2.CreateTaskRequest(inputs=inputs or literals_pb2.LiteralMap(), template=t, output_prefix=prefix,
                                       task_execution_metadata=metadata)


def shell(request: agent_pb2.CreateTaskRequest, script: str, *, retries: int | None = None
          ) -> agent_pb2.CreateTaskRequest:
    """The request with its container command replaced by `sh -c script` (no flytekit in the job); `retries`
    replaces the template's (0: a failing job or child fails at once)."""
    if retries is not None:
        request.template.metadata.retries.retries = retries
    del request.template.container.args[:]
    request.template.container.args.extend(["sh", "-c", script])
    return request


def task_category(task_type: str) -> agent_pb2.TaskCategory:
    """The category propeller sends: the task type and its version (1 for flytekit's `container_array`)."""
    return agent_pb2.TaskCategory(name=task_type, version=1 if task_type == "container_array" else 0)


def get_task_request(resource_meta: bytes, task_type: str, output_prefix: str = "") -> agent_pb2.GetTaskRequest:
    return agent_pb2.GetTaskRequest(resource_meta=resource_meta, task_category=task_category(task_type),
                                    task_type=task_type, output_prefix=output_prefix)


def delete_task_request(resource_meta: bytes, task_type: str) -> agent_pb2.DeleteTaskRequest:
    return agent_pb2.DeleteTaskRequest(resource_meta=resource_meta, task_category=task_category(task_type))


class Client:
    """Propeller's calls to one AsyncAgentService stub, with propeller's timeouts (`deadline`: the gRPC one)."""

    def __init__(self, stub: Any) -> None:
        self.stub = stub

    async def create(self, request: agent_pb2.CreateTaskRequest, deadline: float = CREATE_TIMEOUT) -> bytes:
        resp = await self.stub.CreateTask(request, timeout=deadline)
        return bytes(resp.resource_meta)

    async def get(self, resource_meta: bytes, task_type: str, output_prefix: str = "",
                  deadline: float = GET_TIMEOUT) -> agent_pb2.Resource:
        resp = await self.stub.GetTask(get_task_request(resource_meta, task_type, output_prefix), timeout=deadline)
        resource: agent_pb2.Resource = resp.resource
        return resource

    async def delete(self, resource_meta: bytes, task_type: str, deadline: float = DELETE_TIMEOUT) -> None:
        await self.stub.DeleteTask(delete_task_request(resource_meta, task_type), timeout=deadline)

    async def logs(self, resource_meta: bytes, task_type: str, child: int | None = None, lines: int = 200,
                   deadline: float = LOGS_TIMEOUT) -> list[str]:
        """CloudWatch lines of the job (or of array child `child`, metadata `child-index`) through GetTaskLogs."""
        metadata = (("child-index", str(child)),) if child is not None else None
        call = self.stub.GetTaskLogs(agent_pb2.GetTaskLogsRequest(
            resource_meta=resource_meta, lines=lines, task_category=task_category(task_type)),
            metadata=metadata, timeout=deadline)
        out: list[str] = []
        async for part in call:
            if part.HasField("body"):
                out.extend(line.message for line in part.body.structured_lines)
        return out

    async def until_terminal(self, resource_meta: bytes, task_type: str, *, within: float, interval: float = 0.5,
                             until: frozenset[int] = TERMINAL) -> tuple[agent_pb2.Resource, list[int]]:
        """GetTask every `interval` s until the phase is in `until`: (last resource, phases seen in order)."""
        seen: list[int] = []
        deadline = time.monotonic() + within
        while True:
            resource = await self.get(resource_meta, task_type)
            if not seen or seen[-1] != resource.phase:
                seen.append(resource.phase)
            if resource.phase in until:
                return resource, seen
            if time.monotonic() > deadline:
                raise AssertionError(f"not terminal within {within} s: phases {[phase_name(p) for p in seen]}, "
                                     f"last {resource}")
            await asyncio.sleep(interval)


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
    def done(self) -> bool:
        return self.finished is not None


def attempt(label: str, entity: Any, inputs: Mapping[str, Any], *, bucket: str, execution: str, node: str,
            env: Mapping[str, str], retry: int = 0) -> Attempt:
    """The CreateTaskRequest propeller would send for a flytekit task, with the pod labels propeller adds."""
    template = serialize(entity)
    request = create_request(
        template, bucket=bucket, execution=execution, node=node, attempt=retry, env=env,
        inputs=literal_map(inputs, dict(entity.python_interface.inputs)),
        labels={"project": PROJECT, "domain": DOMAIN, "workflow-name": "demo-workflow", "shard-key": "7",
                "node-id": node, "task-name": template.id.name.replace(".", "-").replace("_", "-")})
    return Attempt(label, entity, request, f"{node_dir(bucket, execution, node)}/inputs.pb")


def put_inputs(s3: Any, a: Attempt) -> None:
    """Propeller writes the node's inputs before the task starts; the job reads them with flytekit."""
    bucket, _, key = a.inputs_uri.removeprefix("s3://").partition("/")
    s3.put_object(Bucket=bucket, Key=key, Body=a.request.inputs.SerializeToString(deterministic=True))


async def create(client: Client, a: Attempt) -> None:
    a.resource_meta = await client.create(a.request)
    a.started = time.monotonic()


async def refresh(client: Client, a: Attempt) -> None:
    a.resource = await client.get(a.resource_meta, a.task_type, a.request.output_prefix)
    name = phase_name(a.resource.phase)
    if not a.phases or a.phases[-1] != name:
        a.phases.append(name)
    if a.resource.phase in TERMINAL and a.finished is None:
        a.finished = time.monotonic()


async def log_lines(client: Client, a: Attempt, child: int | None = None, lines: int = 200) -> list[str]:
    """CloudWatch lines of the job (or of array child `child`) through GetTaskLogs."""
    return await client.logs(a.resource_meta, a.task_type, child, lines)
