"""EventBridge delivery on moto's in-process backends: the rules of a default event bus, their matching, and
writes to Kinesis and SQS targets (and dead-letter queues); plus the patches that make moto itself deliver
custom PutEvents to Kinesis targets, and make its Kinesis shards fast and safe for a stream of 300k records.

moto's EventBridge has no Kinesis targets (its `Rule.send_to_targets` raises NotImplementedError for them),
and its shards find the next sequence number by listing every key (`list(records)[-1]`), so each write to a
shard holding n records costs O(n) and a 300k-record stream takes minutes. Both are patched on the classes,
once per process, when an emulator starts; nothing changes for other targets or for small streams.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from moto.events import models as events_models
from moto.events.utils import EventTemplateParser
from moto.kinesis import models as kinesis_models
from moto.sqs.models import sqs_backends

KINESIS_MAX_RECORDS = 500  # PutRecords limits
KINESIS_MAX_BYTES = 5 * 1024 * 1024
KINESIS_MAX_RECORD_BYTES = 1024 * 1024
_SHARD_LOCK = threading.RLock()  # moto's shards are not safe for concurrent writers (HTTP threads + publisher)


class CustomEvents(Protocol):
    """Takes custom (PutEvents) events bound for Kinesis targets: the emulator's event publisher."""

    def custom(self, rule: Any, targets: Sequence[Mapping[str, Any]], event: dict[str, Any]) -> None: ...

    def count_published(self, n: int) -> None: ...


_receiver: contextvars.ContextVar[CustomEvents | None] = contextvars.ContextVar("emulator_events", default=None)


@contextlib.contextmanager
def receiving(publisher: CustomEvents) -> Iterator[None]:
    """Route moto's deliveries to Kinesis targets made in this context (one PutEvents request received by an
    emulator) through that emulator's publisher, so its faults apply."""
    token = _receiver.set(publisher)
    try:
        yield
    finally:
        _receiver.reset(token)


# ---- targets -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    service: str  # "kinesis", "sqs", or another service moto delivers itself
    account: str
    region: str
    name: str  # stream or queue name


@lru_cache(maxsize=4096)
def parse_arn(arn: str) -> Target:
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return Target("", "", "", arn)
    service, region, account, resource = parts[2], parts[3], parts[4], parts[5]
    if service == "kinesis":
        resource = resource.removeprefix("stream/")
    return Target(service, account, region, resource)


def is_kinesis(target: Mapping[str, Any]) -> bool:
    return parse_arn(str(target.get("Arn", ""))).service == "kinesis"


@lru_cache(maxsize=256)
def _path(path: str) -> tuple[str, ...]:
    return tuple(path[2:].split(".")) if path.startswith("$.") else ()


def partition_key(target: Mapping[str, Any], event: Mapping[str, Any]) -> str:
    """`KinesisParameters.PartitionKeyPath` (a `$.a.b` path) of the event, else the event id (as EventBridge)."""
    path = (target.get("KinesisParameters") or {}).get("PartitionKeyPath")
    if isinstance(path, str) and (parts := _path(path)):
        node: Any = event
        for part in parts:
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, str | int | float) and not isinstance(node, bool) and str(node):
            return str(node)[:256]
    return str(event["id"])


def reshaped(target: Mapping[str, Any], event: dict[str, Any]) -> bytes | None:
    """What the target gets instead of the event when it reshapes it (`Input`, `InputPath`, `InputTransformer`,
    the last through moto's own template parser); None: the event itself."""
    if "Input" in target:
        return str(target["Input"]).encode()
    if "InputTransformer" in target:
        transformer = target["InputTransformer"]
        value = EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event={**event, "ingestion-time": datetime.now(UTC).timestamp()},  # type: ignore[typeddict-item]
        )
        return json.dumps(value).encode()
    path = target.get("InputPath")
    if isinstance(path, str) and path.startswith("$"):
        node: Any = event
        for part in path[2:].split(".") if len(path) > 2 else ():
            node = node.get(part) if isinstance(node, Mapping) else None
        return json.dumps(node).encode()
    return None


def dead_letter_arn(target: Mapping[str, Any]) -> str | None:
    arn = (target.get("DeadLetterConfig") or {}).get("Arn")
    return str(arn) if arn else None


# ---- rules and matching --------------------------------------------------------------------------------


def bus_rules(account: str, region: str) -> list[Any]:
    """Enabled event-pattern rules of the default bus (scheduled rules and disabled ones match nothing)."""
    try:
        bus = events_models.events_backends[account][region].event_buses["default"]
    except KeyError:
        return []
    return [r for r in list(bus.rules.values()) if r.state == "ENABLED" and r.event_pattern.get_pattern()]


def _leaf_paths(pattern: Mapping[str, Any], prefix: tuple[str, ...], out: set[tuple[str, ...]]) -> None:
    for key, value in pattern.items():
        if key == "$or" and isinstance(value, list):
            for sub in value:
                if isinstance(sub, Mapping):
                    _leaf_paths(sub, prefix, out)
        elif isinstance(value, Mapping):
            _leaf_paths(value, (*prefix, key), out)
        else:
            out.add((*prefix, key))


class Matcher:
    """moto's own `EventPattern` matching, without its per-rule cost: `EventPattern.matches_event` copies the
    event through JSON and flattens all of it for every rule (~50 us for a JobDetail). Here an event is read
    only at the paths the rules look at, giving exactly the entries moto's `_flatten_dict` would make there,
    and moto's `_does_event_match` decides once per rule and distinct set of values at its paths (to a rule on
    source, detail-type and queue, the Batch events of one queue all look alike). Falls back to
    `matches_event` if moto's internals change."""

    def __init__(self, rules: Sequence[Any]) -> None:
        self.rules = rules
        per_rule: list[set[tuple[str, ...]]] = []
        for rule in rules:
            own: set[tuple[str, ...]] = set()
            _leaf_paths(rule.event_pattern.get_pattern(), (), own)
            per_rule.append(own)
        paths = sorted(set().union(*per_rule)) if per_rule else []
        self._paths = [(".".join(p), p) for p in paths]
        position = {p: i for i, p in enumerate(paths)}
        self._picks = [tuple(sorted(position[p] for p in own)) for own in per_rule]
        self._fast = all(hasattr(r.event_pattern, "_does_event_match") for r in rules)
        self._decided: list[dict[tuple[Any, ...], bool]] = [{} for _ in rules]

    def _values(self, event: Mapping[str, Any]) -> list[Any]:
        values: list[Any] = []
        for _, parts in self._paths:
            node: Any = event
            for part in parts:
                # moto's flattening descends into non-empty dicts only: anything else is a leaf.
                if not isinstance(node, dict) or not node:
                    node = _MISSING
                    break
                node = node.get(part, _MISSING)
            if isinstance(node, dict) and node:
                node = _MISSING  # not a leaf: moto flattens it further
            values.append(node)
        return values

    def flat(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The entries of moto's flattened event at the rules' paths."""
        return {k: v for (k, _), v in zip(self._paths, self._values(event), strict=True) if v is not _MISSING}

    def matching(self, event: Mapping[str, Any]) -> list[Any]:
        if not self.rules:
            return []
        if not self._fast:
            return [r for r in self.rules if r.event_pattern.matches_event(event)]
        values = self._values(event)
        flat: dict[str, Any] | None = None
        out = []
        for rule, picks, decided in zip(self.rules, self._picks, self._decided, strict=True):
            key = tuple([values[i] for i in picks])
            try:
                matched = decided.get(key)
            except TypeError:  # a list or dict value: not cacheable
                matched, key = None, ()
            if matched is None:
                if flat is None:
                    flat = {k: v for (k, _), v in zip(self._paths, values, strict=True) if v is not _MISSING}
                matched = bool(rule.event_pattern._does_event_match(flat, rule.event_pattern.get_pattern()))
                if key and len(decided) < _MAX_DECIDED:
                    decided[key] = matched
            if matched:
                out.append(rule)
        return out


_MISSING = object()
_MAX_DECIDED = 4096


# ---- writes --------------------------------------------------------------------------------------------


class DeliveryError(Exception):
    """A target could not take the event (e.g. the stream or queue does not exist)."""


def put_kinesis(target: Target, records: Sequence[tuple[str, bytes]]) -> None:
    """Write (partition key, data) records to a stream as moto's PutRecords does (its `Stream.put_record` per
    record, then its CloudWatch metrics once per call of at most 500 records and 5 MiB), minus its size check,
    which base64-decodes every record again: ours are checked before encoding."""
    try:
        backend: Any = kinesis_models.kinesis_backends[target.account][target.region]
    except KeyError:
        raise DeliveryError(f"no Kinesis in {target.region!r}") from None
    stream = backend.streams.get(target.name)
    if stream is None:
        raise DeliveryError(f"stream {target.name} does not exist")
    start = 0
    while start < len(records):
        end, size = start, 0
        while end < len(records) and end - start < KINESIS_MAX_RECORDS:
            record_size = len(records[end][0]) + len(records[end][1])
            if record_size > KINESIS_MAX_RECORD_BYTES:
                raise DeliveryError(f"a record of {record_size} bytes is over Kinesis' 1 MiB")
            if size + record_size > KINESIS_MAX_BYTES and end > start:
                break
            size += record_size
            end += 1
        direct = not getattr(stream, "lambda_event_source_mappings", None)  # else moto also invokes Lambdas
        for key, data in records[start:end]:
            encoded = base64.b64encode(data).decode("ascii")
            if direct:
                stream.get_shard_for_key(key, None).put_record(key, encoded, None)
            else:
                stream.put_record(key, None, encoded)
        metrics = getattr(backend, "_send_stream_metrics", None)
        if metrics is not None:
            metrics(stream.stream_name, incoming_bytes=size, incoming_records=end - start)
        start = end


def send_sqs(
    target: Target, body: str, *, group_id: str | None = None, attributes: Mapping[str, str] | None = None
) -> None:
    try:
        backend = sqs_backends[target.account][target.region]
        message_attributes = {k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()}
        backend.send_message(
            queue_name=target.name, message_body=body, message_attributes=message_attributes, group_id=group_id
        )
    except Exception as exc:  # moto raises its own errors (queue missing, FIFO without dedup id, ...)
        raise DeliveryError(f"SQS {target.name}: {exc}") from exc


# ---- custom events: moto's PutEvents -------------------------------------------------------------------


def custom_envelope(event: Mapping[str, Any]) -> dict[str, Any]:
    """moto's event message as EventBridge delivers it: `time` in ISO 8601 UTC to the second (moto keeps epoch
    seconds), without moto's internal `ingestion-time`."""
    out = {k: v for k, v in event.items() if k != "ingestion-time"}
    when = out.get("time")
    if isinstance(when, int | float) and not isinstance(when, bool):
        out["time"] = datetime.fromtimestamp(int(when), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


DirectDelivery = Callable[[Any, Sequence[Mapping[str, Any]], dict[str, Any]], None]
_direct: list[DirectDelivery] = []  # delivery without a publisher (events not enabled): set by `install`


class _OtherTargets:
    """A rule seen with only some of its targets, for moto's own dispatch of the non-Kinesis ones."""

    def __init__(self, rule: Any, targets: list[dict[str, Any]]) -> None:
        self._rule = rule
        self.targets = targets

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rule, name)


_installed = False
_install_lock = threading.Lock()


def install(direct: DirectDelivery) -> None:
    """Patch moto (once per process): Kinesis targets of PutEvents rules, and O(1), locked shard writes and
    reads. `direct` delivers events that no emulator publisher receives (an emulator without events)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
        _direct.append(direct)
        _patch_rule_dispatch()
        _patch_put_events()
        _patch_shards()


def _patch_rule_dispatch() -> None:
    rule_class: Any = events_models.Rule
    original = rule_class.send_to_targets

    def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        kinesis = [t for t in self.targets if is_kinesis(t)]
        if not kinesis:
            original(self, original_event, transform_input)
            return
        others = [t for t in self.targets if not is_kinesis(t)]
        if others:  # moto's own dispatch, as before
            original(_OtherTargets(self, others), original_event, transform_input)
        if self.state != "ENABLED" or not self.event_pattern.matches_event(original_event):
            return  # a disabled rule delivers nothing (moto ignores the state for its own targets)
        event = custom_envelope(original_event)
        receiver = _receiver.get()
        if receiver is not None:
            receiver.custom(self, kinesis, event)
        else:
            _direct[0](self, kinesis, event)

    rule_class.send_to_targets = send_to_targets


def _patch_put_events() -> None:
    backend_class: Any = events_models.EventsBackend
    original = backend_class.put_events

    def put_events(self: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = original(self, events)
        receiver = _receiver.get()
        if receiver is not None:
            receiver.count_published(sum(1 for e in entries if "EventId" in e))
        return entries

    backend_class.put_events = put_events


def _patch_shards() -> None:
    shard: Any = kinesis_models.Shard
    original_get_records = shard.get_records
    original_at = shard.get_sequence_number_at

    def get_max_sequence_number(self: Any) -> int:
        return next(reversed(self.records), 0)

    def get_min_sequence_number(self: Any) -> int:
        return next(iter(self.records), 0)

    record_class: Any = kinesis_models.Record
    probe = record_class("k", "", 1, None)
    # moto's Record reads the clock twice through slow helpers (~6 us); made here with one read when its
    # fields are the ones known (else moto's own constructor).
    fast = set(vars(probe)) == {
        "partition_key", "data", "sequence_number", "explicit_hash_key", "created_at_datetime", "created_at"
    }  # fmt: skip
    with contextlib.suppress(ValueError):
        record_class.instances_tracked.remove(probe)

    def new_record(partition_key: str, data: str, number: int, explicit_hash_key: str) -> Any:
        if not fast:
            return record_class(partition_key, data, number, explicit_hash_key)
        record = record_class.__new__(record_class)
        now = time.time()
        record.partition_key, record.data, record.sequence_number = partition_key, data, number
        record.explicit_hash_key = explicit_hash_key
        record.created_at_datetime = datetime.fromtimestamp(now, UTC).replace(tzinfo=None)  # naive UTC, as moto
        record.created_at = now
        return record

    def put_record(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
        with _SHARD_LOCK:
            number = next(reversed(self.records), 0) + 1
            self.records[number] = new_record(partition_key, data, number, explicit_hash_key)
        return str(number)

    def get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
        with _SHARD_LOCK:
            records = self.records
            last = int(last_sequence_id)
            if not records:
                return [], last, 0
            first, top = next(iter(records)), next(reversed(records))
            if top - first + 1 != len(records):  # not consecutive numbers: moto's own scan
                scanned: tuple[list[Any], int, int] = original_get_records(self, last_sequence_id, limit)
                return scanned
            start = max(last + 1, first)
            end = top if limit is None else min(top, start + limit - 1)
            found = [records[n] for n in range(start, end + 1)]
            if not found:
                return [], last, 0
            behind = int((records[top].created_at - found[-1].created_at) * 1000)
            return found, found[-1].sequence_number, behind

    def get_sequence_number_at(self: Any, at_timestamp: float) -> int:
        with _SHARD_LOCK:
            number: int = original_at(self, at_timestamp)
            return number

    shard.get_max_sequence_number = get_max_sequence_number
    shard.get_min_sequence_number = get_min_sequence_number
    shard.put_record = put_record
    shard.get_records = get_records
    shard.get_sequence_number_at = get_sequence_number_at
