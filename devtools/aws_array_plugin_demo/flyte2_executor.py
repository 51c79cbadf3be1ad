"""A stand-in for what the Flyte 2 executor does before it calls a connector's CreateTask, for one `aws-batch`
action: the task template as the executor holds it, the paths of the action, the rendered container args, the
inputs file and the `flyteidl2.connector.CreateTaskRequest`; then `Client` makes the executor's calls
(CreateTask, GetTask, DeleteTask with its timeouts) over a real channel. The demo and tests/flyte2 use it.

Each function names the file of flyteorg/flyte@main (v2.0.43, 6fadb90d65af) it reproduces. Only the behaviour a
connector can observe is reproduced; Kubernetes objects, caches and retries of the executor are not.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flyteidl2.connector import connector_pb2, service_pb2_grpc
from flyteidl2.core import execution_pb2, identifier_pb2, literals_pb2, security_pb2, tasks_pb2
from flyteidl2.task import common_pb2
from google.protobuf import json_format, text_format

INPUTS_FILE = "inputs.pb"  # flyteplugins/.../ioutils/paths.go InputsSuffix
OUTPUTS_FILE = "outputs.pb"  # OutputsSuffix
ERROR_FILE = "error.pb"  # ErrorsSuffix
CHECKPOINT_DIR = "_flytecheckpoints"  # CheckpointPrefix
_SHARD_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"  # ioutils/precomputed_shardselector.go: alphabet, then numerals
RUN_START_TIME = "{{.runStartTime}}"


def _fnv1a_32(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def shard_prefix(key: str) -> str:
    """The 2-character base-36 shard of `key`: `NewBase36PrefixShardSelector().GetShardPrefix`
    (flyteplugins/go/tasks/pluginmachinery/ioutils/precomputed_shardselector.go): fnv-1a 32 modulo 36*36."""
    index = _fnv1a_32(key.encode()) % (len(_SHARD_CHARS) ** 2)
    return _SHARD_CHARS[index // len(_SHARD_CHARS)] + _SHARD_CHARS[index % len(_SHARD_CHARS)]


def task_action_name(run_name: str, action_name: str) -> str:
    """The TaskAction CR's name: `buildTaskActionName` (actions/k8s/client.go): `<run>-a0` for the root action
    (action name == run name), else `<run>-<action>`."""
    return f"{run_name}-a0" if action_name == run_name else f"{run_name}-{action_name}"


def action_output_prefix(namespace: str, name: str, run_output_base: str, action_name: str, attempt: int) -> str:
    """`ComputeActionOutputPath` (executor/pkg/plugin/task_exec_context.go):
    `<scheme>://<bucket>/<shard of namespace/name>/<rest of the run base>/<action>/<attempt>`."""
    parts = urlsplit(run_output_base)
    rest = parts.path.strip("/")
    segments = [shard_prefix(f"{namespace}/{name}"), *([rest] if rest else []), action_name, str(attempt)]
    return urlunsplit((parts.scheme, parts.netloc, "/" + "/".join(segments), parts.query, parts.fragment))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Action:
    """One attempt of one action, as the executor's TaskAction spec and status describe it.

    `attempt` is the TaskAction's 1-based `status.attempts`; `input_uri` its `spec.inputUri` (a prefix, or a path
    ending in inputs.pb); `run_output_base` its `spec.runOutputBase`; `env_vars` its `spec.envVars`; `labels` the
    CR's labels (actions/k8s/client.go `newTaskActionCR` sets `flyte.org/*`)."""

    project: str
    domain: str
    run_name: str
    action_name: str
    run_output_base: str
    input_uri: str
    namespace: str = "flyte"
    attempt: int = 1
    env_vars: Mapping[str, str] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    run_start_time: datetime | None = None

    @property
    def name(self) -> str:
        return task_action_name(self.run_name, self.action_name)

    @property
    def retry_attempt(self) -> int:
        """`attemptToRetry` (executor/pkg/plugin/task_exec_metadata.go): attempts 0 and 1 are retry 0."""
        return 0 if self.attempt <= 1 else self.attempt - 1

    @property
    def generated_name(self) -> str:
        """`buildGeneratedName` (task_exec_metadata.go): `<TaskAction name>-<retry>`."""
        return f"{self.name}-{self.retry_attempt}"

    @property
    def input_prefix(self) -> str:
        """task_exec_context.go `NewTaskExecutionContext`: a trailing `/inputs.pb` is stripped from the input URI."""
        suffix = "/" + INPUTS_FILE
        return self.input_uri[: -len(suffix)] if self.input_uri.endswith(suffix) else self.input_uri

    @property
    def input_path(self) -> str:
        return f"{self.input_prefix.rstrip('/')}/{INPUTS_FILE}"

    @property
    def output_prefix(self) -> str:
        return action_output_prefix(self.namespace, self.name, self.run_output_base, self.action_name,
                                    max(self.attempt, 1))

    @property
    def raw_output_prefix(self) -> str:
        """task_exec_context.go: `NewRawOutputPaths(ctx, outputPrefix)`: raw data goes under the output prefix."""
        return self.output_prefix

    @property
    def checkpoint_prefix(self) -> str:
        """ioutils/remote_file_output_writer.go `GetCheckpointPrefix`: `<raw output prefix>/_flytecheckpoints`."""
        return f"{self.raw_output_prefix}/{CHECKPOINT_DIR}"

    @property
    def prev_checkpoint_prefix(self) -> str:
        """task_exec_context.go: only from attempt 2 on, the previous attempt's checkpoint prefix, else ""."""
        if self.attempt < 2:
            return ""
        prev = action_output_prefix(self.namespace, self.name, self.run_output_base, self.action_name,
                                    self.attempt - 1)
        return f"{prev}/{CHECKPOINT_DIR}"


def serialize_task(task: Any, *, project: str, domain: str, version: str, root_dir: Path,
                   org: str | None = None) -> tasks_pb2.TaskTemplate:
    """The task template `flyte deploy` registers: `translate_task_to_wire(task, SerializationContext(...))`, as
    flyte-sdk's `src/flyte/_deploy.py` (`_deploy_task`) calls it, without a code bundle (the image holds the
    code; the default resolver then names the module relative to `root_dir`)."""
    from flyte._internal.runtime.task_serde import translate_task_to_wire
    from flyte.models import SerializationContext

    context = SerializationContext(project=project, domain=domain, org=org, version=version, root_dir=root_dir)
    spec = translate_task_to_wire(task, context)
    template: tasks_pb2.TaskTemplate = spec.task_template
    return template


def embed_task_template(template: tasks_pb2.TaskTemplate, run_start_time: datetime | None) -> bytes:
    """The bytes the executor reads the template from: `embedTaskTemplate` / `substituteRunStartTime`
    (actions/k8s/client.go). `{{.runStartTime}}` in the container args becomes the run's start time, RFC 3339
    UTC in whole seconds (Go's time.RFC3339), when the run has one."""
    if run_start_time is not None and template.HasField("container") and template.container.args:
        template = _copy(template)
        value = run_start_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        args = [arg.replace(RUN_START_TIME, value) for arg in template.container.args]
        del template.container.args[:]
        template.container.args.extend(args)
    data: bytes = template.SerializeToString()
    return data


def _copy(template: tasks_pb2.TaskTemplate) -> tasks_pb2.TaskTemplate:
    copied = tasks_pb2.TaskTemplate()
    copied.CopyFrom(template)
    return copied


def _template_regex(name: str) -> re.Pattern[str]:
    return re.compile(r"(?i){{\s*[\.$]" + name + r"\s*}}")


# The Go regexes of flyteplugins/go/tasks/pluginmachinery/core/template/template.go, in the order `render`
# applies them. `{{.runName}}`, `{{.actionName}}` (and `{{.runStartTime}}`) are not among them.
_INPUT_FILE = _template_regex("Input")
_OUTPUT_PREFIX = _template_regex("OutputPrefix")
_INPUT_PREFIX = _template_regex("InputPrefix")
_RAW_OUTPUT = _template_regex("RawOutputDataPrefix")
_PREV_CHECKPOINT = _template_regex("PrevCheckpointPrefix")
_CHECKPOINT = _template_regex("CheckpointOutputPrefix")
_RETRY_KEY = _template_regex("PerRetryUniqueKey")
_TASK_TEMPLATE = _template_regex("TaskTemplatePath")
_NAMESPACE = _template_regex("Namespace")
_INPUT_VAR = re.compile(r"(?i){{\s*[\.$]Inputs\.(?P<name>[^}\s]+)\s*}}")
_NOT_ALNUM = re.compile(r"[^a-zA-Z0-9_]+")
_NOT_ALPHA_START = re.compile(r"^[^a-zA-Z_]+")


def per_retry_unique_key(action: Action) -> str:
    """template.go `Render`: the generated name, leading non-letters → "a", other non-alphanumerics → "_"."""
    return _NOT_ALNUM.sub("_", _NOT_ALPHA_START.sub("a", action.generated_name))


def _primitive_text(literal: literals_pb2.Literal) -> str:
    """template.go `serializeLiteral` for the common scalars (primitives, blobs); others are an error there too."""
    scalar = literal.scalar
    if scalar.HasField("blob"):
        uri: str = scalar.blob.uri
        return uri
    p = scalar.primitive
    kind = p.WhichOneof("value")
    text: str
    if kind == "integer":
        return str(p.integer)
    if kind == "boolean":
        return "true" if p.boolean else "false"
    if kind == "string_value":
        text = p.string_value
        return text
    if kind == "float_value":
        return repr(p.float_value)
    raise ValueError(f"input literal not rendered by this stand-in: {literal}")


def render_args(args: Sequence[str], action: Action, inputs: common_pb2.Inputs | None = None,
                task_template_path: str = "inline://taskTemplate") -> list[str]:
    """`template.Render` (flyteplugins/go/tasks/pluginmachinery/core/template/template.go) as the connector
    plugin calls it (flyteplugins/go/tasks/plugins/webapi/connector/plugin.go `Create`): the file and prefix
    placeholders, `{{.perRetryUniqueKey}}`, `{{.taskTemplatePath}}` (the executor's inline reader answers
    `inline://taskTemplate`), `{{.namespace}}` and `{{.inputs.X}}`. An empty previous checkpoint renders as the two
    characters `""`. `{{.runName}}`, `{{.actionName}}` and `{{.runStartTime}}` are left as they are."""
    prev = action.prev_checkpoint_prefix or '""'
    values = {n.name: n.value for n in inputs.literals} if inputs is not None else {}
    rendered = []
    for arg in args:
        val = _INPUT_FILE.sub(lambda _: action.input_path, arg)
        val = _OUTPUT_PREFIX.sub(lambda _: action.output_prefix, val)
        val = _INPUT_PREFIX.sub(lambda _: action.input_prefix, val)
        val = _RAW_OUTPUT.sub(lambda _: action.raw_output_prefix, val)
        val = _PREV_CHECKPOINT.sub(lambda _: prev, val)
        val = _CHECKPOINT.sub(lambda _: action.checkpoint_prefix, val)
        val = _RETRY_KEY.sub(lambda _: per_retry_unique_key(action), val)
        val = _TASK_TEMPLATE.sub(lambda _: task_template_path, val)
        val = _NAMESPACE.sub(lambda _: action.namespace, val)
        val = _INPUT_VAR.sub(lambda m: _primitive_text(values[m.group("name")]), val)
        rendered.append(val)
    return rendered


async def build_inputs(task: Any, **values: Any) -> common_pb2.Inputs:
    """The `flyteidl2.task.Inputs` of a call of `task`, made by the SDK's own converter
    (`flyte._internal.runtime.convert.convert_from_native_to_inputs`, what `flyte.run` uploads)."""
    from flyte._internal.runtime.convert import convert_from_native_to_inputs

    converted = await convert_from_native_to_inputs(task.native_interface, **values)
    inputs: common_pb2.Inputs = converted.proto_inputs
    return inputs


def connector_inputs(inputs: common_pb2.Inputs) -> common_pb2.Inputs:
    """What CreateTask carries: plugin.go `Create` reads the inputs file as a `core.LiteralMap` and rebuilds
    `task.Inputs` from its literals (Go map order: sorted here); `context` is never set."""
    literals = sorted(((n.name, n.value) for n in inputs.literals), key=lambda item: item[0])
    return common_pb2.Inputs(literals=[common_pb2.NamedLiteral(name=k, value=v) for k, v in literals])


def write_inputs(s3: Any, action: Action, inputs: common_pb2.Inputs) -> str:
    """Upload `<input prefix>/inputs.pb` (what the run service writes before the executor runs the action)
    with a boto3 S3 client; returns its URI."""
    uri = action.input_path
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    s3.put_object(Bucket=bucket, Key=key, Body=inputs.SerializeToString())
    return uri


def _sanitize_label(value: str) -> str:
    """flyteplugins/go/tasks/pluginmachinery/utils/labels.go `SanitizeLabelValue`."""
    if not value:
        return ""
    out = re.sub(r"[^a-zA-Z0-9._-]", "-", value)[:63]
    if re.match(r"^[^a-zA-Z0-9]", out):
        out = "x" + out[1:]
    if re.search(r"[^a-zA-Z0-9]$", out):
        out = out[:-1] + "x"
    return out


_B32_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_FLYTE = "abcdefghijklmnopqrstuvwxyz123456"  # flyteplugins/.../encoding/encoder.go specialEncoderKey


def _encode_secret(secret: security_pb2.Secret) -> str:
    """utils/secrets/marshaler.go `marshalSecret`: the secret in protobuf text format, base32 with Flyte's
    alphabet and no padding (Python's text format may differ from Go's in whitespace)."""
    encoded = base64.b32encode(text_format.MessageToString(secret, as_one_line=True).encode()).decode()
    return encoded.rstrip("=").translate(str.maketrans(_B32_STD, _B32_FLYTE))


def task_execution_metadata(action: Action, template: tasks_pb2.TaskTemplate,
                            default_service_account: str = "") -> connector_pb2.TaskExecutionMetadata:
    """`NewTaskExecutionMetadata` (executor/pkg/plugin/task_exec_metadata.go) seen through
    `buildTaskExecutionMetadata` (webapi/connector/plugin.go): task_execution_id (execution name = run name,
    node id = action name, retry attempt, task id), namespace, labels, annotations, service account,
    environment variables and identity. `max_attempts` and `interruptible` are never set."""
    env = {"ACTION_NAME": action.action_name, "RUN_NAME": action.run_name,
           "_U_RUN_BASE": action.run_output_base, "_U_ORG_NAME": "local"}
    for key, value in action.env_vars.items():
        env.setdefault(key, value)
    labels = {"organization": "flyte", "project": action.project, "domain": action.domain,
              "flyte.org/managed": "true"}
    annotations: dict[str, str] = {}
    if template.security_context.secrets:
        labels["inject-flyte-secrets"] = "true"
        for i, secret in enumerate(template.security_context.secrets):
            annotations[f"flyte.secrets/s{i}"] = _encode_secret(secret)
    for key, value in (("run", action.run_name), ("action", action.action_name),
                       ("task-name", template.id.name)):
        if sanitized := _sanitize_label(value):
            labels[key] = sanitized
    labels["attempt"] = str(action.retry_attempt + 1)
    task_id = identifier_pb2.Identifier()
    task_id.CopyFrom(template.id)
    run_as = template.security_context.run_as
    service_account = run_as.k8s_service_account or default_service_account
    md = connector_pb2.TaskExecutionMetadata(
        task_execution_id=identifier_pb2.TaskExecutionIdentifier(
            task_id=task_id,
            node_execution_id=identifier_pb2.NodeExecutionIdentifier(
                node_id=action.action_name,
                execution_id=identifier_pb2.WorkflowExecutionIdentifier(
                    project=action.project, domain=action.domain, name=action.run_name),
            ),
            retry_attempt=action.retry_attempt,
        ),
        namespace=action.namespace,
        labels={**action.labels, **labels},
        annotations={**action.annotations, **annotations},
        k8s_service_account=service_account,
        environment_variables=env,
    )
    if template.security_context.HasField("run_as"):
        md.identity.CopyFrom(run_as)
    return md


def connection_from_custom(template: tasks_pb2.TaskTemplate) -> security_pb2.Connection:
    """plugin.go `Create`: `utils.UnmarshalStruct(custom, &core.Connection{})` (jsonpb, unknown keys allowed;
    a nil custom is an error: "nil Struct Object passed"). Secret values are not resolved here."""
    if not template.HasField("custom"):
        raise ValueError("nil Struct Object passed")
    connection = security_pb2.Connection()
    json_format.ParseDict(json_format.MessageToDict(template.custom), connection, ignore_unknown_fields=True)
    return connection


def create_task_request(template_bytes: bytes, action: Action,
                        inputs: common_pb2.Inputs | None) -> connector_pb2.CreateTaskRequest:
    """plugin.go `Create`: the template read from the embedded bytes, its container args rendered, the inputs,
    the action's output prefix, the execution metadata and the connection from `custom`."""
    template = tasks_pb2.TaskTemplate()
    template.ParseFromString(template_bytes)
    if template.HasField("container"):
        rendered = render_args(list(template.container.args), action, inputs)
        del template.container.args[:]
        template.container.args.extend(rendered)
    request = connector_pb2.CreateTaskRequest(
        template=template,
        output_prefix=action.output_prefix,
        task_execution_metadata=task_execution_metadata(action, template),
        connection=connection_from_custom(template),
    )
    if inputs is not None:
        request.inputs.CopyFrom(connector_inputs(inputs))
    return request


# The Flyte 2 executor's defaultConnector timeouts (docs/flyte2.md, `propeller-config --flyte2`), in seconds.
TIMEOUTS = {"CreateTask": 10.0, "GetTask": 30.0, "DeleteTask": 10.0, "ListConnectors": 3.0}
Phase = execution_pb2.TaskExecution
TERMINAL = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.RETRYABLE_FAILED, Phase.ABORTED})
TASK_CATEGORY = ("aws-batch", 0)  # what the executor's connector plugin sends: the task type and its version


def phase_name(phase: int) -> str:
    return str(Phase.Phase.Name(phase))


class Client:
    """What the Flyte 2 executor's connector-service plugin does with one connector task, over a real gRPC channel
    (`flyteidl2.connector` stubs, the executor's timeouts): actions laid out under `bucket`, tasks serialized
    relative to `root_dir` (where the job's code is importable from), inputs written to S3 with the boto3 client
    `s3`, then CreateTask, GetTask, DeleteTask."""

    def __init__(self, channel: Any, s3: Any, *, bucket: str, root_dir: Path, project: str = "flytesnacks",
                 domain: str = "development", version: str = "v1", run_start_time: datetime | None = None) -> None:
        self.connectors = service_pb2_grpc.AsyncConnectorServiceStub(channel)
        self.metadata = service_pb2_grpc.ConnectorMetadataServiceStub(channel)
        self.s3 = s3
        self.bucket, self.root_dir, self.project, self.domain, self.version = (bucket, root_dir, project, domain,
                                                                              version)
        self.run_start_time = run_start_time

    def action(self, run: str | None = None, action: str = "a1", *, env_vars: Mapping[str, str] | None = None
               ) -> Action:
        """An action of run `run` (a new one by default) with the run service's layout under the bucket."""
        run = run or f"r{uuid.uuid4().hex[:10]}"
        base = f"s3://{self.bucket}/metadata/{self.project}/{self.domain}/{run}"
        start = self.run_start_time or datetime.now(UTC).replace(microsecond=0)
        return Action(project=self.project, domain=self.domain, run_name=run, action_name=action,
                      namespace="flyte", run_output_base=base, input_uri=f"{base}/{action}/inputs",
                      env_vars=dict(env_vars or {}), run_start_time=start)

    async def request(self, task: Any, action: Action, **values: Any) -> connector_pb2.CreateTaskRequest:
        """Serialize `task` as `flyte deploy` does, write the call's inputs.pb, build the CreateTaskRequest."""
        template = serialize_task(task, project=action.project, domain=action.domain, version=self.version,
                                  root_dir=self.root_dir)
        inputs = await build_inputs(task, **values)
        write_inputs(self.s3, action, inputs)
        return create_task_request(embed_task_template(template, action.run_start_time), action, inputs)

    async def create(self, request: connector_pb2.CreateTaskRequest) -> bytes:
        resp = await self.connectors.CreateTask(request, timeout=TIMEOUTS["CreateTask"])
        return bytes(resp.resource_meta)

    async def get(self, meta: bytes) -> connector_pb2.Resource:
        name, version = TASK_CATEGORY
        resp = await self.connectors.GetTask(connector_pb2.GetTaskRequest(
            resource_meta=meta, task_category=connector_pb2.TaskCategory(name=name, version=version)),
            timeout=TIMEOUTS["GetTask"])
        resource: connector_pb2.Resource = resp.resource
        return resource

    async def delete(self, meta: bytes) -> None:
        name, version = TASK_CATEGORY
        await self.connectors.DeleteTask(connector_pb2.DeleteTaskRequest(
            resource_meta=meta, task_category=connector_pb2.TaskCategory(name=name, version=version)),
            timeout=TIMEOUTS["DeleteTask"])

    async def logs(self, meta: bytes, lines: int = 200) -> list[str]:
        """The job's log lines through GetTaskLogs (header, then bodies with `results`); not an executor call in
        v2.0.43 (its connector plugin does not read logs), but the service answers it."""
        name, version = TASK_CATEGORY
        call = self.connectors.GetTaskLogs(connector_pb2.GetTaskLogsRequest(
            resource_meta=meta, lines=lines, task_category=connector_pb2.TaskCategory(name=name, version=version)),
            timeout=TIMEOUTS["GetTask"])
        out: list[str] = []
        async for part in call:
            if part.HasField("body"):
                out.extend(part.body.results)
        return out

    async def until_terminal(self, meta: bytes, timeout: float = 90, interval: float = 0.2,  # noqa: ASYNC109
                             ) -> tuple[connector_pb2.Resource, list[int]]:
        """GetTask every `interval` s until a terminal phase: (last resource, phases seen in order). UNDEFINED is
        a system error for the executor, and so an AssertionError here, as is not finishing within `timeout`."""
        seen: list[int] = []
        deadline = time.monotonic() + timeout
        while True:
            res = await self.get(meta)
            assert res.phase != Phase.UNDEFINED, "an UNDEFINED phase is a system error for the executor"
            if not seen or seen[-1] != res.phase:
                seen.append(res.phase)
            if res.phase in TERMINAL:
                return res, seen
            assert time.monotonic() < deadline, f"phases {seen}, last message {res.message!r}"
            await asyncio.sleep(interval)


async def native_outputs(task: Any, resource: connector_pb2.Resource) -> Any:
    """GetTask's `resource.outputs` as the task's Python value(s), decoded by the SDK (what the run reads back)."""
    from flyte._internal.runtime.convert import Outputs, convert_outputs_to_native

    return await convert_outputs_to_native(task.native_interface, Outputs(proto_outputs=resource.outputs))


@dataclasses.dataclass
class ActionAttempt:
    """One Flyte 2 action in flight, as the demo shows it next to propeller's attempts (same fields the view reads:
    label, task_type, resource_meta, resource, phases)."""

    label: str
    task: Any
    action: Action
    request: connector_pb2.CreateTaskRequest
    resource_meta: bytes = b""
    resource: connector_pb2.Resource = dataclasses.field(default_factory=connector_pb2.Resource)
    phases: list[str] = dataclasses.field(default_factory=list)
    started: float = dataclasses.field(default_factory=time.monotonic)
    finished: float | None = None
    face: str = "Flyte 2"

    @property
    def task_type(self) -> str:
        return str(self.request.template.type)

    @property
    def done(self) -> bool:
        return self.finished is not None

    async def create(self, client: Client) -> None:
        self.resource_meta = await client.create(self.request)
        self.started = time.monotonic()

    async def refresh(self, client: Client) -> None:
        self.resource = await client.get(self.resource_meta)
        name = phase_name(self.resource.phase)
        if not self.phases or self.phases[-1] != name:
            self.phases.append(name)
        if self.resource.phase in TERMINAL and self.finished is None:
            self.finished = time.monotonic()
