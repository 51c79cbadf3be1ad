"""ListJobs as AWS does it: paged (`maxResults`, opaque `nextToken`), RUNNING-only when neither `jobStatus`
nor `filters` is given, and with a filter: any status, newest first (jobStatus ignored except with
SHARE_IDENTIFIER). Keyset tokens keep pages stable while new jobs arrive.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import BatchClientError
from .model import RUNNING, STATUS_CODES, ArrayJob, Job
from .views import job_summary

DEFAULT_PAGE = 100
MAX_PAGE = 1000
FILTER_NAMES = ("JOB_NAME", "JOB_DEFINITION", "BEFORE_CREATED_AT", "AFTER_CREATED_AT", "SHARE_IDENTIFIER")


@dataclass(frozen=True, slots=True)
class ListQuery:
    status: int | None  # None: every status (a filter was given)
    predicate: Callable[[Job], bool] | None
    max_results: int
    after: int | None  # keyset position from nextToken


def _prefix_match(value: str, pattern: str, *, fold: bool) -> bool:
    if fold:
        value, pattern = value.lower(), pattern.lower()
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def _ms(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise BatchClientError(f"{name} filter value must be epoch milliseconds, got {raw!r}") from None


def _predicate(name: str, values: Sequence[str]) -> Callable[[Job], bool]:
    if name == "JOB_NAME":
        return lambda job: any(_prefix_match(job.spec.job_name, v, fold=True) for v in values)
    if name == "JOB_DEFINITION":

        def by_definition(job: Job) -> bool:
            for v in values:
                if v.startswith("arn:"):
                    if job.spec.jd_arn == v:
                        return True
                elif _prefix_match(job.spec.jd_name, v, fold=False):
                    return True
            return False

        return by_definition
    if name == "BEFORE_CREATED_AT":
        limit = _ms(name, values[0])
        return lambda job: job.created_at < limit
    if name == "AFTER_CREATED_AT":
        limit = _ms(name, values[0])
        return lambda job: job.created_at > limit
    return lambda job: job.spec.share_identifier in values


def _decode_token(token: str, kind: str) -> int:
    try:
        prefix, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if prefix == kind:
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise BatchClientError("Invalid nextToken")


def _encode_token(kind: str, value: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()


def parse_query(body: Mapping[str, Any], *, children: bool) -> ListQuery:
    max_results = body.get("maxResults")
    if max_results is None:
        max_results = DEFAULT_PAGE
    if not isinstance(max_results, int) or not 1 <= max_results <= MAX_PAGE:
        raise BatchClientError(f"maxResults must be between 1 and {MAX_PAGE}")
    raw_status = body.get("jobStatus")
    status: int | None = None
    if raw_status is not None:
        if raw_status not in STATUS_CODES:
            raise BatchClientError(f"Invalid jobStatus {raw_status!r}")
        status = STATUS_CODES[raw_status]
    filters = body.get("filters") or []
    predicate = None
    if filters:
        if len(filters) > 1:
            raise BatchClientError("Only one filter can be used at a time")
        name, values = filters[0].get("name"), filters[0].get("values") or []
        if name not in FILTER_NAMES:
            raise BatchClientError(f"Invalid filter name {name!r}; valid: {', '.join(FILTER_NAMES)}")
        if not values:
            raise BatchClientError(f"Filter {name} needs a value")
        predicate = _predicate(name, [str(v) for v in values])
        if name != "SHARE_IDENTIFIER":
            status = None  # with a filter, jobStatus is ignored and every status is returned
    elif status is None:
        status = RUNNING
    token = body.get("nextToken")
    after = _decode_token(token, "c" if children else "q") if token else None
    return ListQuery(status=status, predicate=predicate, max_results=max_results, after=after)


def _page(items: Iterator[tuple[int, Job, int | None]], query: ListQuery, kind: str) -> dict[str, Any]:
    summaries: list[dict[str, Any]] = []
    last = 0
    for key, job, index in items:
        if len(summaries) == query.max_results:  # one more exists: hand out a token for the rest
            return {"jobSummaryList": summaries, "nextToken": _encode_token(kind, last)}
        summaries.append(job_summary(job, index))
        last = key
    return {"jobSummaryList": summaries}


def list_queue(jobs: Sequence[Job], query: ListQuery) -> dict[str, Any]:
    """Jobs submitted to one queue (singles and array parents, not children), newest first."""

    def matching() -> Iterator[tuple[int, Job, int | None]]:
        for job in reversed(jobs):
            if query.after is not None and job.seq >= query.after:
                continue
            if query.status is not None and job.status != query.status:
                continue
            if query.predicate is not None and not query.predicate(job):
                continue
            yield job.seq, job, None

    return _page(matching(), query, "q")


def list_children(parent: ArrayJob, query: ListQuery) -> dict[str, Any]:
    """Children of one array job, in index order."""
    if query.predicate is not None and not query.predicate(parent):
        return {"jobSummaryList": []}

    def matching() -> Iterator[tuple[int, Job, int | None]]:
        start = 0 if query.after is None else query.after + 1
        if query.status is None:
            indexes: Iterator[int] = iter(range(start, parent.size))
        else:
            indexes = _find_all(parent.child_status, query.status, start)
        for i in indexes:
            yield i, parent, i

    return _page(matching(), query, "c")


def _find_all(statuses: bytearray, code: int, start: int) -> Iterator[int]:
    i = statuses.find(code, start)
    while i != -1:
        yield i
        i = statuses.find(code, i + 1)
