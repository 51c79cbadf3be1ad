"""Group commit of submission claims: the CreateTasks of one moment on a replica share one S3 PUT.

A CreateTask must not answer before its claim is durable, and in a burst one S3 PutObject per CreateTask is the
biggest share of a replica's CPU (botocore's fixed cost per call). The journal writes the claims that arrive
while its previous write is in flight as one object, next to the first one's attempt data, and each
CreateTask's resource meta points at its entry. The attempt's own submission record is written later, by the
submission worker right before SubmitJob (a conditional create, so one claim wins however many point at the
attempt), and from then on it takes precedence. A journal is never changed after it is written, so any
replica may cache it. An entry is a `SubmissionRecord` plus the URI of the record it claims.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

import msgspec

from aws_array_plugin.aws_calls import AwsUnavailable
from aws_array_plugin.bounded import BoundedCache
from aws_array_plugin.s3_uris import split_uri
from aws_array_plugin.storage import S3Store, WriteConflict
from aws_array_plugin.submissions.record import SubmissionRecord, encode

log = logging.getLogger(__name__)

JOURNAL_VERSION = 1
# Entries per object: this bounds what a reading replica parses at once on its event loop (an entry is a few KB,
# mostly the SubmitJob request's environment) and holds per cached journal. More claims at once are written as
# several objects at once.
MAX_ENTRIES = 50
# Journals kept parsed: the waiting tasks of a burst poll a few journals over and over.
CACHED_JOURNALS = 32


def journal_uri(record_uri: str) -> str:
    """A new journal's name, next to the submission record of its first entry (where IAM lets us write)."""
    return f"{record_uri.rsplit('/', 1)[0]}/journal-{uuid.uuid4().hex}.json"


@dataclass(frozen=True)
class JournalRef:
    uri: str
    entry: int


class JournalEntry(SubmissionRecord, frozen=True, kw_only=True):
    record: str  # the URI of the submission record this claim is on


class _Journal(msgspec.Struct, frozen=True):
    version: int
    entries: list[JournalEntry]


_DECODER = msgspec.json.Decoder(_Journal)


def _claim(entry: JournalEntry) -> SubmissionRecord:
    return SubmissionRecord(**{name: getattr(entry, name) for name in SubmissionRecord.__struct_fields__})


@dataclass
class _Append:
    record_uri: str
    record: SubmissionRecord
    deadline: float | None
    done: asyncio.Future[JournalRef] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class SubmissionJournal:
    def __init__(self, store: S3Store, max_entries: int = MAX_ENTRIES) -> None:
        self._store = store
        self._max = max_entries
        self._waiting: dict[str, list[_Append]] = {}  # by bucket
        self._writers: dict[str, asyncio.Task[None]] = {}
        self._cache: BoundedCache[str, list[JournalEntry]] = BoundedCache(CACHED_JOURNALS)
        self._reads: dict[str, asyncio.Task[list[JournalEntry] | None]] = {}

    async def append(self, record_uri: str, record: SubmissionRecord, deadline: float | None = None) -> JournalRef:
        """Make `record`, the claim on the attempt whose submission record is `record_uri`, durable. Raises what
        the S3 write raised (AwsUnavailable, AwsRequestError) for every claim of a failed write."""
        bucket, _ = split_uri(record_uri)
        item = _Append(record_uri, record, deadline)
        self._waiting.setdefault(bucket, []).append(item)
        if bucket not in self._writers:
            # Started on the next loop turn, so every CreateTask of this turn joins the first write.
            self._writers[bucket] = asyncio.create_task(self._write_all(bucket), name=f"journal-{bucket}")
        return await item.done

    async def entry(self, ref: JournalRef, record_uri: str, deadline: float | None = None
                    ) -> SubmissionRecord | None:
        """The claim `ref` points at, or None if the journal is gone or unreadable, or the entry is not this
        attempt's."""
        entries = await self._read(ref.uri, deadline)
        if entries is None or not 0 <= ref.entry < len(entries) or entries[ref.entry].record != record_uri:
            return None
        return _claim(entries[ref.entry])

    async def close(self) -> None:
        for task in list(self._writers.values()):
            await asyncio.gather(task, return_exceptions=True)

    async def _write_all(self, bucket: str) -> None:
        try:
            while True:
                batch = [a for a in self._waiting.pop(bucket, []) if not a.done.done()]  # cancelled callers drop out
                if not batch:
                    return
                await asyncio.gather(*(self._write(batch[i:i + self._max]) for i in range(0, len(batch), self._max)))
        finally:
            del self._writers[bucket]

    async def _write(self, batch: list[_Append]) -> None:
        uri = journal_uri(batch[0].record_uri)
        entries = [JournalEntry(record=a.record_uri, **msgspec.structs.asdict(a.record)) for a in batch]
        deadlines = [a.deadline for a in batch if a.deadline is not None]
        body = encode(_Journal(JOURNAL_VERSION, entries))
        try:
            # Written once (If-None-Match): a journal never changes after a replica may have read it.
            await self._store.write(uri, body, create_only=True, content_type="application/json",
                                    deadline=min(deadlines) if deadlines else None)
        except WriteConflict:  # a random name taken: as unlikely as it is harmless to report
            self._fail(batch, AwsUnavailable("put_object", "conflict", f"journal {uri} exists"))
            return
        except Exception as exc:  # every claim of the batch failed the same way
            self._fail(batch, exc)
            return
        for i, a in enumerate(batch):
            if not a.done.done():
                a.done.set_result(JournalRef(uri, i))

    @staticmethod
    def _fail(batch: list[_Append], exc: BaseException) -> None:
        for a in batch:
            if not a.done.done():
                a.done.set_exception(exc)

    async def _read(self, uri: str, deadline: float | None) -> list[JournalEntry] | None:
        cached = self._cache.get(uri)
        if cached is not None:
            return cached
        # Waiting tasks of one journal are polled together: one GET serves them all.
        reading = self._reads.get(uri)
        if reading is None:
            reading = asyncio.create_task(self._fetch(uri, deadline))
            self._reads[uri] = reading
            reading.add_done_callback(lambda _: self._reads.pop(uri, None))
        return await asyncio.shield(reading)

    async def _fetch(self, uri: str, deadline: float | None) -> list[JournalEntry] | None:
        obj = await self._store.read(uri, deadline)
        if obj is None:
            return None
        try:
            entries = _DECODER.decode(obj.data).entries
        except msgspec.DecodeError:
            log.warning("%s is not a submission journal; its claims cannot be read", uri)
            return None
        self._cache.put(uri, entries)
        return entries
