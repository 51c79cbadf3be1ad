"""Task outputs and error documents in S3: `<prefix>/0/` for aws-batch (flytekit's `/0` quirk),
`<prefix>/<i>/` for array children, assembled into one collection per output variable."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from flyteidl.core import errors_pb2, literals_pb2

from aws_array_plugin.phases import ErrorDocument
from aws_array_plugin.storage import S3Store

_NONE = literals_pb2.Literal(scalar=literals_pb2.Scalar(none_type=literals_pb2.Void()))


def child_prefix(output_prefix: str, index: int) -> str:
    return f"{output_prefix.rstrip('/')}/{index}"


def parse_error_document(data: bytes) -> ErrorDocument:
    doc = errors_pb2.ErrorDocument()
    doc.ParseFromString(data)
    err = doc.error
    return ErrorDocument(code=err.code, message=err.message,
                         recoverable=err.kind == errors_pb2.ContainerError.RECOVERABLE)


async def read_error_document(store: S3Store, prefix: str) -> ErrorDocument | None:
    obj = await store.read(f"{prefix}/error.pb")
    return parse_error_document(obj.data) if obj else None


async def read_outputs(store: S3Store, prefix: str) -> literals_pb2.LiteralMap | None:
    obj = await store.read(f"{prefix}/outputs.pb")
    if obj is None:
        return None
    outputs = literals_pb2.LiteralMap()
    outputs.ParseFromString(obj.data)
    return outputs


async def assemble_array_outputs(store: S3Store, output_prefix: str, size: int, names: Sequence[str],
                                 concurrency: int) -> literals_pb2.LiteralMap:
    """One collection per output variable in index order; a child without outputs.pb (it failed and the
    success threshold allowed it) contributes a `none` literal to every variable."""
    result = literals_pb2.LiteralMap()
    if not names:
        return result
    collections = {n: result.literals[n].collection for n in names}
    if size == 0:
        for c in collections.values():
            c.SetInParent()
        return result
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> literals_pb2.LiteralMap | None:
        async with gate:
            return await read_outputs(store, child_prefix(output_prefix, i))

    window = max(concurrency * 8, 256)  # bounded memory for huge arrays
    for start in range(0, size, window):
        chunk = await asyncio.gather(*(one(i) for i in range(start, min(size, start + window))))
        for child in chunk:
            for name, coll in collections.items():
                lit = child.literals.get(name) if child is not None else None
                coll.literals.append(lit if lit is not None else _NONE)
    return result
