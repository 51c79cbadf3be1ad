"""An array's children counted from their own events (pure).

AWS publishes an event for every child's transition but none when the parent's `statusSummary` changes, so an
array's progress is counted from its children's events: one byte per child holds its latest state
(`job_events.child_code`), so duplicates and reordering never count a child twice or move it back.

The summary the monitor reads combines that tally with the parent's last described summary. Children in a
final state stay there, so the final counts of both are lower bounds of the truth, and their larger is used:
a lost child event cannot hide a failure that DescribeJobs saw. Counts of children in progress are the
tally's once it has heard of as many started children as the description saw, else the larger of the two,
capped by what is left; so an array once running never reads as queued again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from aws_array_plugin.job_events import Order, child_order, child_status

MAX_CHILDREN = 10_000  # AWS's largest array


class ArrayTally:
    __slots__ = ("_codes", "_counts", "described", "dirty")

    def __init__(self) -> None:
        self._codes = bytearray()
        self._counts: Counter[str] = Counter()
        self.described: dict[str, int] = {}
        self.dirty = False

    def apply(self, index: int, code: int) -> Order:
        """A child's new state (its code); 'older' for an index out of AWS's range, which is never counted."""
        if not 0 <= index < MAX_CHILDREN:
            return "older"
        if index >= len(self._codes):
            self._codes.extend(bytes(index + 1 - len(self._codes)))
        known = self._codes[index]
        order = child_order(code, known)
        if order == "newer":
            if known:
                self._counts[child_status(known)] -= 1
            self._counts[child_status(code)] += 1
            self._codes[index] = code
            self.dirty = True
        return order

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in self._counts.items() if v}

    def summary(self, size: int) -> dict[str, int]:
        """The children of an array of `size` by status, as `arrayProperties.statusSummary` would count them."""
        seen, desc = self._counts, self.described
        succeeded = min(size, max(seen["SUCCEEDED"], desc.get("SUCCEEDED", 0)))
        failed = min(size - succeeded, max(seen["FAILED"], desc.get("FAILED", 0)))
        rest = size - succeeded - failed
        started = ("STARTING", "RUNNING", "SUCCEEDED", "FAILED")
        if sum(seen[k] for k in started) >= sum(desc.get(k, 0) for k in started):
            # The events have heard of every child the description saw start: they are the newer news.
            running, starting = min(rest, seen["RUNNING"]), min(rest - min(rest, seen["RUNNING"]), seen["STARTING"])
        else:
            running = min(rest, max(seen["RUNNING"], desc.get("RUNNING", 0)))
            starting = min(rest - running, max(seen["STARTING"], desc.get("STARTING", 0)))
        queued = rest - running - starting
        waiting = max(seen["PENDING"] + seen["SUBMITTED"], desc.get("PENDING", 0) + desc.get("SUBMITTED", 0))
        pending = min(queued, waiting)
        out = {"SUCCEEDED": succeeded, "FAILED": failed, "RUNNING": running, "STARTING": starting,
               "RUNNABLE": queued - pending, "PENDING": pending}
        return {k: v for k, v in out.items() if v}

    def describe_seen(self, summary: Mapping[str, int]) -> None:
        self.described = dict(summary)
        self.dirty = True
