"""What every face does around a core call, whatever its protocol: count and time it by method and task type,
give the core the caller's time budget, end a failed call with a status chosen on purpose, and encode the core's
answer into the protocol's `Resource` (the two generations' messages share field names)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import message, struct_pb2

from aws_array_plugin.core import NewTask, TaskCore
from aws_array_plugin.grpc_handlers import abort, budget
from aws_array_plugin.metrics import Metrics
from aws_array_plugin.resource_meta import Face
from aws_array_plugin.task_status import LogPage, Phase, TaskStatus
from aws_array_plugin.task_types import metric_label

_T = TypeVar("_T")


class ResourceEncoder:
    """TaskStatus to a protocol's Resource, given its Resource, TaskLog and outputs message types and its task
    phase enum (both generations number the phases alike; the names are looked up once, not per answer)."""

    def __init__(self, resource: type[Any], task_log: type[message.Message], outputs: type[message.Message],
                 phases: Any) -> None:
        self._resource = resource
        self._task_log = task_log
        self._outputs = outputs
        self._phases = {phase: phases.Value(phase.value) for phase in Phase}

    def __call__(self, status: TaskStatus) -> Any:
        resource = self._resource(phase=self._phases[status.phase], message=status.message)
        resource.log_links.extend(self._task_log(uri=link.uri, name=link.name, ShowWhilePending=link.show_while_pending)
                                  for link in status.links)
        if status.custom:
            custom = struct_pb2.Struct()
            custom.update(status.custom)
            resource.custom_info.CopyFrom(custom)
        if status.outputs is not None:
            resource.outputs.CopyFrom(self._outputs.FromString(status.outputs))
        return resource


class CoreCalls:
    def __init__(self, core: TaskCore, metrics: Metrics, face: Face.ValueType) -> None:
        self._core = core
        self._metrics = metrics
        self._face = face

    async def _measured(self, method: str, task_type: str, body: Callable[[], Awaitable[_T]]) -> _T:
        started = time.monotonic()
        outcome = "error"
        try:
            result = await body()
            outcome = "ok"
            return result
        finally:
            label = metric_label(task_type)
            self._metrics.rpc_requests.labels(method, label, outcome).inc()
            self._metrics.rpc_latency.labels(method, label).observe(time.monotonic() - started)

    async def create(self, context: grpc.aio.ServicerContext, task_type: str, task: Callable[[], NewTask]) -> bytes:
        limit = budget(context, None)
        try:
            return await self._measured("CreateTask", task_type or "unknown",
                                        lambda: self._core.create(task(), limit))
        except Exception as exc:
            await abort(context, "CreateTask", exc)
            raise

    async def get(self, context: grpc.aio.ServicerContext, task_type: str, meta: bytes) -> TaskStatus:
        return await self._measured("GetTask", task_type or "unknown",
                                    lambda: self._core.get(meta, budget(context), self._face))

    async def delete(self, context: grpc.aio.ServicerContext, task_type: str, meta: bytes) -> None:
        try:
            await self._measured("DeleteTask", task_type or "unknown",
                                 lambda: self._core.delete(meta, budget(context), self._face))
        except Exception as exc:
            await abort(context, "DeleteTask", exc)
            raise

    async def logs(self, context: grpc.aio.ServicerContext, meta: bytes, child: int | None, lines: int,
                   token: str) -> LogPage | None:
        """The page, or None when the call was ended with a status (nothing more to send)."""
        try:
            return await self._core.logs(meta, child, lines, token, budget(context), self._face)
        except Exception as exc:
            await abort(context, "GetTaskLogs", exc)
            return None
