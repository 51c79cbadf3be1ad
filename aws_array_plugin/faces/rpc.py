"""What every face does around a core call, whatever its protocol: count and time it by method and task type,
give the core the caller's time budget, and end a failed call with a status chosen on purpose."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from aws_array_plugin.core import NewTask, TaskCore
from aws_array_plugin.grpc_handlers import abort, budget
from aws_array_plugin.metrics import Metrics
from aws_array_plugin.resource_meta import Face
from aws_array_plugin.task_status import LogPage, TaskStatus
from aws_array_plugin.task_types import metric_label

_T = TypeVar("_T")


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
        remaining = context.time_remaining()
        limit = max(0.5, remaining * 0.8) if remaining else None
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
