"""Lookups in moto's in-process backends (with `provisioning`, the only code that reaches into them).

moto stays the source of truth for queues, compute environments and job definitions (registered through the
normal API), and holds the CloudWatch Logs that job attempts write. Imported lazily (moto is heavy).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from moto.batch.models import batch_backends
from moto.logs.models import logs_backends

from .runtime import LogWriter


@dataclass(frozen=True, slots=True)
class QueueInfo:
    name: str
    arn: str
    ce_name: str


def _batch(account: str, region: str) -> Any:
    return batch_backends[account][region]


def find_queue(account: str, region: str, identifier: str) -> QueueInfo | None:
    queue = _batch(account, region).get_job_queue(identifier)
    if queue is None:
        return None
    envs = list(getattr(queue, "environments", []) or [])
    ce_name = str(envs[0].name) if envs else ""
    return QueueInfo(name=str(queue.name), arn=str(queue.arn), ce_name=ce_name)


def find_job_definition(account: str, region: str, identifier: str) -> dict[str, Any] | None:
    """A job definition by ARN, `name:revision` or `name` (latest ACTIVE revision), as DescribeJobDefinitions
    shows it."""
    backend = _batch(account, region)
    if identifier.startswith("arn:"):
        found = backend.get_job_definition_by_arn(identifier)
    elif ":" in identifier:
        name, _, revision = identifier.rpartition(":")
        found = backend.get_job_definition_by_name_revision(name, revision) if revision.isdigit() else None
    else:
        active = [jd for jd in backend.get_job_definitions(identifier) if jd.status == "ACTIVE"]
        found = max(active, key=lambda jd: jd.revision) if active else None
    if found is None:
        return None
    described: dict[str, Any] = found.describe()
    return described


class MotoLogSink:
    """Writes attempt output to moto's CloudWatch Logs; the group is created on demand (as Batch does for
    `/aws/batch/job`)."""

    def open_stream(self, account: str, region: str, group: str, stream: str) -> LogWriter:
        try:
            backend = logs_backends[account][region]
        except KeyError:  # not a region moto knows (a typo in awslogs-region): drop the output
            return lambda events: None
        if group not in backend.groups:
            with contextlib.suppress(Exception):  # lost a race with a concurrent CreateLogGroup
                backend.create_log_group(group, {})
        backend.ensure_log_stream(group, stream)

        def write(events: list[dict[str, object]]) -> None:
            backend.put_log_events(group, stream, events)

        return write
