"""Encoding of the resource meta propeller stores for us (protos/aws_array_plugin/v1/resource_meta.proto)."""

from __future__ import annotations

import re

from google.protobuf.message import DecodeError

from aws_array_plugin._proto.resource_meta_pb2 import (
    ARRAY,
    FACE_UNSPECIFIED,
    FLYTE1,
    FLYTE2,
    SINGLE,
    TASK_KIND_UNSPECIFIED,
    Face,
    ResourceMeta,
)
from aws_array_plugin.job_requests import chunk_count
from aws_array_plugin.s3_uris import split_uri

SCHEMA_VERSION = 1
# Far above any array this service accepts (config maxArraySize is at most this), so a forged meta cannot make
# GetTask plan millions of chunks.
MAX_META_ARRAY_SIZE = 10_000_000
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")

__all__ = [
    "ARRAY",
    "FLYTE1",
    "FLYTE2",
    "SCHEMA_VERSION",
    "SINGLE",
    "Face",
    "MetaError",
    "ResourceMeta",
    "check_face",
    "decode",
    "encode",
    "face_of",
    "task_prefix",
]
FACE_NAMES = {FLYTE1: "Flyte 1 (flyteidl Agent services)", FLYTE2: "Flyte 2 (flyteidl2 connector services)"}


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
    if meta.face not in (FACE_UNSPECIFIED, FLYTE1, FLYTE2):
        raise MetaError(f"resource meta has an unknown face {meta.face}")
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
    if meta.face == FLYTE2 and meta.kind != SINGLE:
        raise MetaError("resource meta of a Flyte 2 task must be of a single job")
    if meta.kind == SINGLE:
        if len(meta.job_ids) > 1:
            raise MetaError(f"resource meta of a single job has {len(meta.job_ids)} job ids")
        return
    if meta.size > MAX_META_ARRAY_SIZE:
        raise MetaError(f"resource meta has an array size {meta.size} above {MAX_META_ARRAY_SIZE}")
    if meta.min_successes > meta.size:
        raise MetaError(f"resource meta needs {meta.min_successes} successes of an array of {meta.size}")
    chunks = chunk_count(meta.size)
    if meta.job_ids and len(meta.job_ids) != chunks:
        raise MetaError(f"resource meta of an array of {meta.size} has {len(meta.job_ids)} job ids, not {chunks}")


def face_of(meta: ResourceMeta) -> Face.ValueType:
    """The face that created the task (metas written before faces were recorded are Flyte 1's)."""
    return meta.face or FLYTE1


def check_face(meta: ResourceMeta, face: Face.ValueType) -> None:
    if face_of(meta) != face:
        raise MetaError(f"resource meta was created by the {FACE_NAMES[face_of(meta)]} face; send it back there")


def task_prefix(meta: ResourceMeta) -> str:
    """Where a single job's outputs.pb and error.pb are: flytekit (Flyte 1) writes under <output_prefix>/0,
    the Flyte 2 runtime under <output_prefix> itself."""
    return meta.output_prefix if face_of(meta) == FLYTE2 else f"{meta.output_prefix}/0"
