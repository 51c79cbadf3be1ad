"""Encoding of the resource meta propeller stores for us (protos/aws_array_plugin/v1/resource_meta.proto)."""

from __future__ import annotations

import re

from google.protobuf.message import DecodeError

from aws_array_plugin._proto.resource_meta_pb2 import ARRAY, SINGLE, TASK_KIND_UNSPECIFIED, ResourceMeta
from aws_array_plugin.job_requests import array_chunks
from aws_array_plugin.s3_uris import split_uri

SCHEMA_VERSION = 1
# Far above any array this service accepts (config maxArraySize is at most this), so a forged meta cannot make
# GetTask plan millions of chunks.
MAX_META_ARRAY_SIZE = 10_000_000
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")

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
    if meta.kind not in (SINGLE, ARRAY):
        raise MetaError(f"resource meta has an unknown task kind {meta.kind}")
    if not meta.rejection:
        _check_usable(meta)
    return meta


def _check_usable(meta: ResourceMeta) -> None:
    """Every field GetTask, DeleteTask and GetTaskLogs rely on, checked once here: the scheduler stores the
    meta and hands it back, so it is input like any other."""
    try:
        split_uri(meta.output_prefix)
    except ValueError as exc:
        raise MetaError(f"resource meta lacks a usable output_prefix ({exc})") from None
    if not _REGION.fullmatch(meta.region):
        raise MetaError(f"resource meta lacks a usable region (got {meta.region!r})")
    if meta.journal:
        try:
            split_uri(meta.journal)
        except ValueError as exc:
            raise MetaError(f"resource meta has an unusable journal ({exc})") from None
    if any(not job_id for job_id in meta.job_ids):
        raise MetaError("resource meta has an empty job id")
    if meta.kind == SINGLE:
        if len(meta.job_ids) > 1:
            raise MetaError(f"resource meta of a single job has {len(meta.job_ids)} job ids")
        return
    if meta.size > MAX_META_ARRAY_SIZE:
        raise MetaError(f"resource meta has an array size {meta.size} above {MAX_META_ARRAY_SIZE}")
    if meta.min_successes > meta.size:
        raise MetaError(f"resource meta needs {meta.min_successes} successes of an array of {meta.size}")
    chunks = len(array_chunks(meta.size))
    if meta.job_ids and len(meta.job_ids) != chunks:
        raise MetaError(f"resource meta of an array of {meta.size} has {len(meta.job_ids)} job ids, not {chunks}")
