"""The Flyte 1 face: flyteidl's `AsyncAgentService` and `AgentMetadataService`, as flytepropeller 1.16 calls them.

Decode the request, call the core (faces/rpc.py counts the call and ends a failed one on purpose), encode its
answer. No policy and no AWS call here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2
from google.protobuf import timestamp_pb2

from aws_array_plugin.core import NewTask, TaskCore
from aws_array_plugin.faces.rpc import CoreCalls, ResourceEncoder
from aws_array_plugin.metrics import Metrics
from aws_array_plugin.resource_meta import FLYTE1
from aws_array_plugin.task_logs import CHILD_INDEX_METADATA
from aws_array_plugin.task_specs import build_task_spec
from aws_array_plugin.task_types import TASK_TYPE_VERSIONS

AGENT_NAME = "AWS Batch (aws-array-plugin)"

encode_status = ResourceEncoder(agent_pb2.Resource, execution_pb2.TaskLog, literals_pb2.LiteralMap,
                                execution_pb2.TaskExecution.Phase)


def new_task(request: agent_pb2.CreateTaskRequest) -> NewTask:
    ex = request.task_execution_metadata.task_execution_id.node_execution_id.execution_id
    return NewTask(task_type=request.template.type, output_prefix=request.output_prefix,
                   execution_id=f"{ex.project}/{ex.domain}/{ex.name}",
                   translate=lambda config: build_task_spec(request, config))


class AgentService:
    """flyteidl.service.AsyncAgentService."""

    def __init__(self, core: TaskCore, metrics: Metrics) -> None:
        self._calls = CoreCalls(core, metrics, FLYTE1)

    async def CreateTask(self, request: agent_pb2.CreateTaskRequest, context: grpc.aio.ServicerContext
                         ) -> agent_pb2.CreateTaskResponse:
        meta = await self._calls.create(context, request.template.type, lambda: new_task(request))
        return agent_pb2.CreateTaskResponse(resource_meta=meta)

    async def GetTask(self, request: agent_pb2.GetTaskRequest, context: grpc.aio.ServicerContext
                      ) -> agent_pb2.GetTaskResponse:
        status = await self._calls.get(context, request.task_category.name or request.task_type,
                                       request.resource_meta)
        return agent_pb2.GetTaskResponse(resource=encode_status(status))

    async def DeleteTask(self, request: agent_pb2.DeleteTaskRequest, context: grpc.aio.ServicerContext
                         ) -> agent_pb2.DeleteTaskResponse:
        await self._calls.delete(context, request.task_category.name or request.task_type, request.resource_meta)
        return agent_pb2.DeleteTaskResponse()

    async def GetTaskLogs(self, request: agent_pb2.GetTaskLogsRequest, context: grpc.aio.ServicerContext
                          ) -> AsyncIterator[agent_pb2.GetTaskLogsResponse]:
        page = await self._calls.logs(context, request.resource_meta, _child_index(context), int(request.lines),
                                      request.token)
        if page is None:
            return
        yield agent_pb2.GetTaskLogsResponse(header=agent_pb2.GetTaskLogsResponseHeader(token=page.next_token))
        lines = []
        for line in page.lines:
            ts = timestamp_pb2.Timestamp()
            ts.FromMilliseconds(line.timestamp_ms)
            lines.append(agent_pb2.LogLine(timestamp=ts, message=line.message,
                                           originator=agent_pb2.LogLineOriginator.USER))
        yield agent_pb2.GetTaskLogsResponse(body=agent_pb2.GetTaskLogsResponseBody(
            structured_lines=lines, results=[line.message for line in lines]))


def _child_index(context: grpc.aio.ServicerContext) -> int | None:
    for key, value in context.invocation_metadata() or ():
        if key == CHILD_INDEX_METADATA:
            try:
                return int(value)
            except ValueError:
                return None
    return None


class MetadataService:
    """flyteidl.service.AgentMetadataService: cheap, static, never fails (propeller calls ListAgents every 10 s)."""

    def __init__(self) -> None:
        agent = agent_pb2.Agent(name=AGENT_NAME, is_sync=False)
        for name, version in TASK_TYPE_VERSIONS.items():
            agent.supported_task_types.append(name)
            agent.supported_task_categories.append(agent_pb2.TaskCategory(name=name, version=version))
        self._list = agent_pb2.ListAgentsResponse(agents=[agent])
        self._get = agent_pb2.GetAgentResponse(agent=agent)

    async def ListAgents(self, request: agent_pb2.ListAgentsRequest, context: Any) -> agent_pb2.ListAgentsResponse:
        return self._list

    async def GetAgent(self, request: agent_pb2.GetAgentRequest, context: grpc.aio.ServicerContext
                       ) -> agent_pb2.GetAgentResponse:
        if request.name and request.name != AGENT_NAME:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no agent named {request.name!r}; this is {AGENT_NAME!r}")
        return self._get
