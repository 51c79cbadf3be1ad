"""What every gRPC face shares: registering a servicer with request parsing that cannot fail into gRPC's UNKNOWN
(bytes that do not parse, truncated or nested beyond protobuf's depth limit, are answered INVALID_ARGUMENT with
the parser's reason), the core's error reasons as status codes, and the time budget of a call."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, overload

import grpc
from google.protobuf import descriptor, message, message_factory

from aws_array_plugin.task_status import Reason, TaskError

log = logging.getLogger(__name__)

NO_DEADLINE_BUDGET = 30.0  # seconds, for a caller that sets no deadline (the schedulers always do)
STATUS_CODES = {reason: getattr(grpc.StatusCode, reason.value) for reason in Reason}


@overload
def budget(context: grpc.aio.ServicerContext) -> float: ...
@overload
def budget(context: grpc.aio.ServicerContext, without_deadline: None) -> float | None: ...


def budget(context: grpc.aio.ServicerContext, without_deadline: float | None = NO_DEADLINE_BUDGET) -> float | None:
    """Time to answer within the caller's deadline, with a margin to send the answer (`without_deadline` when
    the caller set none)."""
    remaining = context.time_remaining()
    return max(0.5, remaining * 0.8) if remaining else without_deadline


async def abort(context: grpc.aio.ServicerContext, method: str, exc: Exception) -> None:
    """End an RPC with a status chosen on purpose: a TaskError's, else UNAVAILABLE for what nobody anticipated
    (logged with its traceback), never gRPC's UNKNOWN."""
    if isinstance(exc, TaskError):
        await context.abort(STATUS_CODES[exc.reason], exc.message)
    log.error("%s failed unexpectedly", method, exc_info=exc)
    await context.abort(grpc.StatusCode.UNAVAILABLE,
                        f"aws-array-plugin could not answer {method} ({type(exc).__name__}); retry later")


class Undecodable:
    """Stands in for a request whose bytes do not parse."""

    def __init__(self, type_name: str, error: str) -> None:
        self.type_name = type_name
        self.error = error

    def details(self) -> str:
        return f"the request is not a valid {self.type_name}: {self.error}"


def _parser(cls: type[message.Message]) -> Callable[[bytes], message.Message | Undecodable]:
    def parse(data: bytes) -> message.Message | Undecodable:
        try:
            return cls.FromString(data)
        except message.DecodeError as exc:
            return Undecodable(cls.DESCRIPTOR.full_name, str(exc))

    return parse


def _unary(behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
           ) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.details())
        return await behavior(request, context)

    return handle


def _streaming(behavior: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]
               ) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.details())
        async for item in behavior(request, context):
            yield item

    return handle


def _unimplemented(name: str, streaming: bool) -> Callable[[Any, grpc.aio.ServicerContext], Any]:
    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not served by aws-array-plugin")

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not served by aws-array-plugin")
        yield None

    return stream if streaming else unary


def add_servicer(server: grpc.aio.Server, servicer: object, service: descriptor.ServiceDescriptor) -> None:
    """Like the generated `add_<Service>Servicer_to_server`, for unary and server-streaming methods; a method the
    servicer does not define answers UNIMPLEMENTED."""
    handlers = {}
    for method in service.methods:
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        behavior = getattr(servicer, method.name, None) or _unimplemented(f"{service.full_name}/{method.name}",
                                                                         method.server_streaming)
        if method.client_streaming:
            raise ValueError(f"{service.full_name}.{method.name}: client streaming is not supported")
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _streaming(behavior), request_deserializer=_parser(request_cls),
                response_serializer=response_cls.SerializeToString)
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(behavior), request_deserializer=_parser(request_cls),
                response_serializer=response_cls.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
