"""The submission record of an attempt, `<output_prefix>/_aws_array_plugin/submission.json`: one typed struct,
its JSON, and its conditional reads and writes.

A claim in a journal has the same fields (journal.py adds the record's URI). The JSON keys are camelCase and
sorted, as they were when the record was a dict written with `json.dumps(sort_keys=True)`; msgspec writes them
without blanks. Only this package reads records: one that does not decode (corrupt, foreign, or from before the
record held its job definition) is treated as missing.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from aws_array_plugin.storage import S3Store

log = logging.getLogger(__name__)

RECORD_NAME = "_aws_array_plugin/submission.json"
RECORD_VERSION = 1


def record_uri(output_prefix: str) -> str:
    return f"{output_prefix.rstrip('/')}/{RECORD_NAME}"


class State(enum.Enum):
    PENDING = "pending"  # claimed, not (known to be) submitted
    SUBMITTED = "submitted"  # job ids recorded
    FAILED = "failed"  # AWS rejected the definition or a SubmitJob: for good
    CANCELLED = "cancelled"  # DeleteTask came first: never to be submitted


class SubmissionRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    version: int
    state: State
    task_type: str
    requests: list[dict[str, Any]]  # SubmitJob requests; the worker puts the definition's ARN in
    job_definition: dict[str, Any]  # RegisterJobDefinition parameters, found or registered before SubmitJob
    job_ids: list[str | None]  # one per request, as submitted so far
    claimed_by: str  # the replica that may submit
    claimed_until: float  # wall-clock time after which another replica may take the claim over
    created_at: float
    message: str | None = None  # why it failed or was cancelled


_ENCODER = msgspec.json.Encoder(order="sorted")
_DECODER = msgspec.json.Decoder(SubmissionRecord)


def encode(value: msgspec.Struct) -> bytes:
    """JSON with sorted keys, for records and journals alike."""
    return _ENCODER.encode(value)


def decode(data: bytes) -> SubmissionRecord | None:
    try:
        return _DECODER.decode(data)
    except msgspec.DecodeError:
        return None


@dataclass(eq=False)
class Claim:
    """A claim on an attempt: its record as read or last written, and the ETag a conditional write needs (None
    while the claim is only in a journal: the next write then creates the record, If-None-Match)."""

    uri: str
    record: SubmissionRecord
    etag: str | None


class Records:
    def __init__(self, store: S3Store) -> None:
        self._store = store

    async def read(self, uri: str, deadline: float | None = None,
                   journaled: Callable[[], Awaitable[SubmissionRecord | None]] | None = None) -> Claim | None:
        """The record and its ETag. Where no record exists, the claim `journaled` reads from a journal entry (ETag
        None: the record may have been created since, and the conditional create then fails, as it should).
        None when there is neither, or the record does not decode."""
        obj = await self._store.read(uri, deadline)
        if obj is None:
            entry = await journaled() if journaled is not None else None
            return Claim(uri, entry, None) if entry is not None else None
        record = decode(obj.data)
        if record is None:
            log.warning("%s is not a submission record; the attempt cannot be tracked", uri)
            return None
        return Claim(uri, record, obj.etag)

    async def put(self, uri: str, record: SubmissionRecord, etag: str | None) -> str:
        """Replace the record read with `etag` (If-Match), or create it (If-None-Match) when `etag` is None;
        WriteConflict if another writer came first. Returns the new ETag."""
        return await self._store.write(uri, encode(record), if_match=etag, create_only=etag is None,
                                       content_type="application/json")

    async def write(self, claim: Claim, record: SubmissionRecord) -> None:
        """`put` over what `claim` holds; on success the claim holds `record` and its new ETag."""
        claim.etag = await self.put(claim.uri, record, claim.etag)
        claim.record = record
