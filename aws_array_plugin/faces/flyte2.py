"""The Flyte 2 face: flyteidl2's `AsyncConnectorService` and `ConnectorMetadataService`, as the Flyte 2 executor's
`connector-service` plugin calls them (CreateTask, GetTask, DeleteTask; ListConnectors to choose the endpoint).

Flyte 2 runs `aws-batch` tasks only: it has no map task type (`flyte.map` sends one CreateTask per item). Its
`flyteidl2.core` and `flyteidl2.task` messages are wire-compatible with Flyte 1's `flyteidl.core` ones, which the
core's translation reads, so a request is transcoded through its bytes; what differs is handled here: the
executor leaves `{{.runName}}` and `{{.actionName}}` in the `a0` command (filled from the metadata), and the
resource meta records this face, so the `a0` runtime's outputs are read where it writes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import grpc
from flyteidl.admin import agent_pb2 as v1_agent_pb2
from flyteidl2.connector import connector_pb2
from flyteidl2.core import execution_pb2
from flyteidl2.logs.dataplane import payload_pb2
from flyteidl2.task import common_pb2

from aws_array_plugin.config import Config
from aws_array_plugin.core import NewTask, TaskCore
from aws_array_plugin.faces.rpc import CoreCalls, ResourceEncoder
from aws_array_plugin.metrics import Metrics
from aws_array_plugin.resource_meta import FLYTE2
from aws_array_plugin.task_specs import Rejection, TaskSpec, build_task_spec
from aws_array_plugin.task_types import AWS_BATCH, CONTAINER_ARRAY, TASK_TYPE_VERSIONS

CONNECTOR_NAME = "AWS Batch (aws-array-plugin)"
TASK_TYPES = (AWS_BATCH,)  # no map task type in Flyte 2
# Placeholders the executor does not render (flyteplugins webapi/connector plugin.go on flyte@main), with the
# metadata they come from.
_UNRENDERED = ("{{.runName}}", "{{.actionName}}")

# Every phase is set (the executor treats UNDEFINED as a system error); a LiteralMap's bytes are a valid
# task.Outputs (map entries and NamedLiterals share their wire form).
encode_status = ResourceEncoder(connector_pb2.Resource, execution_pb2.TaskLog, common_pb2.Outputs,
                                execution_pb2.TaskExecution.Phase)


def as_flyte1_request(request: connector_pb2.CreateTaskRequest) -> v1_agent_pb2.CreateTaskRequest:
    """The request in the Flyte 1 types the translation reads (fields 1-4 share numbers and wire forms; the
    connection, field 5, is not used), with the placeholders the executor left filled in."""
    v1 = v1_agent_pb2.CreateTaskRequest.FromString(request.SerializeToString())
    tid = v1.task_execution_metadata.task_execution_id
    env = v1.task_execution_metadata.environment_variables
    values = {"{{.runName}}": env.get("RUN_NAME") or tid.node_execution_id.execution_id.name,
              "{{.actionName}}": env.get("ACTION_NAME") or tid.node_execution_id.node_id}
    args = list(v1.template.container.args)
    for placeholder in _UNRENDERED:
        args = [a.replace(placeholder, values[placeholder]) for a in args]
    del v1.template.container.args[:]
    v1.template.container.args.extend(args)
    return v1


def _translate(request: v1_agent_pb2.CreateTaskRequest, config: Config) -> TaskSpec:
    if request.template.type == CONTAINER_ARRAY:
        raise Rejection("template.type", "Flyte 2 has no map task type: `flyte.map` over an aws-batch task runs one "
                                         "job per item")
    if request.template.type not in TASK_TYPES:
        raise Rejection("template.type", f"expected one of {', '.join(TASK_TYPES)}, got {request.template.type!r}")
    if not request.template.custom.fields:
        # The executor itself refuses an empty custom; the SDK plugin always sets it.
        raise Rejection("template.custom", "is empty: declare the task with plugin_config=AWSBatch(...) of "
                                           "aws-array-plugin-flyte")
    # The executor retries a RETRYABLE_FAILED attempt with a new one (its own output prefix): one AWS attempt per
    # Flyte attempt, or an infrastructure failure would run (retries + 1) squared times.
    return dataclasses.replace(build_task_spec(request, config), attempts=1)


def new_task(request: connector_pb2.CreateTaskRequest) -> NewTask:
    ex = request.task_execution_metadata.task_execution_id.node_execution_id.execution_id
    return NewTask(task_type=request.template.type, output_prefix=request.output_prefix,
                   execution_id=f"{ex.project}/{ex.domain}/{ex.name}",
                   translate=lambda config: _translate(as_flyte1_request(request), config), face=FLYTE2)


class ConnectorService:
    """flyteidl2.connector.AsyncConnectorService (GetTaskMetrics answers UNIMPLEMENTED)."""

    def __init__(self, core: TaskCore, metrics: Metrics) -> None:
        self._calls = CoreCalls(core, metrics, FLYTE2)

    async def CreateTask(self, request: connector_pb2.CreateTaskRequest, context: grpc.aio.ServicerContext
                         ) -> connector_pb2.CreateTaskResponse:
        meta = await self._calls.create(context, request.template.type, lambda: new_task(request))
        return connector_pb2.CreateTaskResponse(resource_meta=meta)

    async def GetTask(self, request: connector_pb2.GetTaskRequest, context: grpc.aio.ServicerContext
                      ) -> connector_pb2.GetTaskResponse:
        status = await self._calls.get(context, request.task_category.name, request.resource_meta)
        return connector_pb2.GetTaskResponse(resource=encode_status(status))

    async def DeleteTask(self, request: connector_pb2.DeleteTaskRequest, context: grpc.aio.ServicerContext
                         ) -> connector_pb2.DeleteTaskResponse:
        await self._calls.delete(context, request.task_category.name, request.resource_meta)
        return connector_pb2.DeleteTaskResponse()

    async def GetTaskLogs(self, request: connector_pb2.GetTaskLogsRequest, context: grpc.aio.ServicerContext
                          ) -> AsyncIterator[connector_pb2.GetTaskLogsResponse]:
        page = await self._calls.logs(context, request.resource_meta, None, int(request.lines), request.token)
        if page is None:
            return
        yield connector_pb2.GetTaskLogsResponse(header=connector_pb2.GetTaskLogsResponseHeader(token=page.next_token))
        lines = []
        for line in page.lines:
            entry = payload_pb2.LogLine(message=line.message, originator=payload_pb2.LogLineOriginator.USER)
            entry.timestamp.FromMilliseconds(line.timestamp_ms)
            lines.append(entry)
        yield connector_pb2.GetTaskLogsResponse(body=connector_pb2.GetTaskLogsResponseBody(
            lines=lines, results=[line.message for line in page.lines]))


class ConnectorMetadataService:
    """flyteidl2.connector.ConnectorMetadataService: static, never fails (the executor lists every 10 s)."""

    def __init__(self) -> None:
        connector = connector_pb2.Connector(name=CONNECTOR_NAME)
        for name in TASK_TYPES:
            connector.supported_task_categories.append(
                connector_pb2.TaskCategory(name=name, version=TASK_TYPE_VERSIONS[name]))
        self._list = connector_pb2.ListConnectorsResponse(connectors=[connector])
        self._get = connector_pb2.GetConnectorResponse(connector=connector)

    async def ListConnectors(self, request: connector_pb2.ListConnectorsRequest, context: Any
                             ) -> connector_pb2.ListConnectorsResponse:
        return self._list

    async def GetConnector(self, request: connector_pb2.GetConnectorRequest, context: grpc.aio.ServicerContext
                           ) -> connector_pb2.GetConnectorResponse:
        if request.name and request.name != CONNECTOR_NAME:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"no connector named {request.name!r}; this is {CONNECTOR_NAME!r}")
        return self._get
