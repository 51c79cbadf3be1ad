"""AWS Batch job ids of array tasks, in one place (pure).

A task of `size` children runs as one AWS array job per chunk (job_requests.array_chunks); AWS names child i of
an array job "<parent id>:<i>", local to its chunk. Flyte's child index is global: chunk offset + local index.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from aws_array_plugin.job_requests import Chunk, array_chunks

_CHILD = re.compile(r"^(.*):(\d+)$")


def child_job_id(parent_id: str, local_index: int) -> str:
    return f"{parent_id}:{local_index}"


def local_index(detail: Mapping[str, Any]) -> int | None:
    """A child's index within its AWS array job: `arrayProperties.index`, else the "<parent>:<i>" suffix."""
    props = detail.get("arrayProperties")
    index = props.get("index") if isinstance(props, Mapping) else None
    if isinstance(index, int) and not isinstance(index, bool):
        return index
    match = _CHILD.match(str(detail.get("jobId", "")))
    return int(match.group(2)) if match else None


def is_child_of(job_id: str, parent_id: str) -> bool:
    match = _CHILD.match(job_id)
    return match is not None and match.group(1) == parent_id


def status_summary(detail: Mapping[str, Any] | None) -> dict[str, int]:
    """An array job's children counted by status (`arrayProperties.statusSummary`); {} for other jobs."""
    props = (detail or {}).get("arrayProperties")
    summary = props.get("statusSummary") if isinstance(props, Mapping) else None
    if not isinstance(summary, Mapping):
        return {}
    return {str(k): int(v) for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)}


_T = TypeVar("_T")


def chunks_with(size: int, per_job: Sequence[_T]) -> list[tuple[Chunk, _T]]:
    """Each chunk of an array task with what stands for the AWS job that runs it (its id, its tracked state)."""
    return list(zip(array_chunks(size), per_job, strict=False))


def job_of_child(size: int, job_ids: Sequence[str], index: int) -> str | None:
    """The AWS job id of Flyte child `index` of an array task (a plain job when size is 1)."""
    if size == 1:
        return job_ids[0] if job_ids and index == 0 else None
    for chunk, parent in chunks_with(size, job_ids):
        if chunk.offset <= index < chunk.offset + chunk.size:
            return child_job_id(parent, index - chunk.offset)
    return None


def with_global_index(child: Mapping[str, Any], chunk: Chunk) -> dict[str, Any]:
    """A child's detail with its Flyte (global) index in `arrayProperties.index`."""
    detail = dict(child)
    local = local_index(child)
    detail["arrayProperties"] = {"index": chunk.offset + (local or 0)}
    return detail
