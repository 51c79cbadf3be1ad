"""Registers a servicer's methods from the service descriptor, with request parsing that cannot fail into gRPC's
UNKNOWN: bytes that do not parse (truncated, or nested beyond protobuf's depth limit) are answered
INVALID_ARGUMENT with the parser's reason, like any other bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import descriptor, message, message_factory


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


def add_servicer(server: grpc.aio.Server, servicer: object, service: descriptor.ServiceDescriptor) -> None:
    """Like the generated `add_<Service>Servicer_to_server`, for unary and server-streaming methods."""
    handlers = {}
    for method in service.methods:
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        behavior = getattr(servicer, method.name)
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
