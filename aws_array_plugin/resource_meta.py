"""Encoding of the resource meta propeller stores for us (protos/aws_array_plugin/v1/resource_meta.proto)."""

from __future__ import annotations

from google.protobuf.message import DecodeError

from aws_array_plugin._proto.resource_meta_pb2 import ARRAY, SINGLE, TASK_KIND_UNSPECIFIED, ResourceMeta

SCHEMA_VERSION = 1

__all__ = ["ARRAY", "SCHEMA_VERSION", "SINGLE", "MetaError", "ResourceMeta", "decode", "encode"]


class MetaError(ValueError):
    """The bytes are not a resource meta this service wrote (or one from a newer version)."""


def encode(meta: ResourceMeta) -> bytes:
    meta.schema_version = SCHEMA_VERSION
    # Deterministic bytes: a repeated CreateTask must return exactly the same meta.
    return meta.SerializeToString(deterministic=True)


def decode(data: bytes) -> ResourceMeta:
    meta = ResourceMeta()
    try:
        meta.ParseFromString(data)
    except DecodeError as exc:
        raise MetaError(f"resource meta is not an aws-array-plugin resource meta ({exc})") from None
    if meta.schema_version == 0 or meta.kind == TASK_KIND_UNSPECIFIED:
        raise MetaError("resource meta is not an aws-array-plugin resource meta")
    if meta.schema_version > SCHEMA_VERSION:
        raise MetaError(
            f"resource meta has schema version {meta.schema_version}; this service reads up to {SCHEMA_VERSION}"
        )
    return meta
