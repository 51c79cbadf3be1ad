"""The attempts this replica holds claims on: the line in front of the SubmitJob limiter, with positions, the ones
being submitted, and the outcomes recently settled (so a repeated CreateTask or a GetTask costs no S3 read)."""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aws_array_plugin.bounded import BoundedCache
from aws_array_plugin.submissions.journal import JournalRef
from aws_array_plugin.submissions.outcome import Resolution, Waiting
from aws_array_plugin.submissions.record import Claim

# Settled outcomes remembered by record URI (a few hundred bytes each).
KNOWN_OUTCOMES = 100_000

T = TypeVar("T", bound=Hashable)


class Line(Generic[T]):
    """First in, first out, with each item's position (1 for the head) in O(log n), so a GetTask costs the same
    behind a line of 5,000. Items get increasing sequence numbers (one below the head's when put back in front);
    one leaving from the middle leaves a tombstone, dropped when it reaches the head, so nobody behind it is
    renumbered: a position subtracts the tombstones ahead."""

    def __init__(self) -> None:
        self._items: deque[tuple[int, T]] = deque()  # by seq; the head is never a tombstone
        self._seq: dict[T, int] = {}  # the items in line
        self._gone: list[int] = []  # sorted seqs of the tombstones in _items
        self._next = 0

    def __len__(self) -> int:
        return len(self._seq)

    def __contains__(self, item: object) -> bool:
        return item in self._seq

    def __iter__(self) -> Iterator[T]:
        return iter([item for seq, item in self._items if self._seq.get(item) == seq])

    def append(self, item: T) -> None:
        self._add(item, self._next)
        self._next += 1
        self._items.append((self._seq[item], item))

    def push_front(self, item: T) -> None:
        if not self._items:
            self.append(item)
            return
        self._add(item, self._items[0][0] - 1)
        self._items.appendleft((self._seq[item], item))

    def pop(self) -> T | None:
        if not self._items:
            return None
        _, item = self._items.popleft()
        del self._seq[item]
        self._drop_tombstones()
        return item

    def remove(self, item: T) -> None:
        bisect.insort(self._gone, self._seq.pop(item))
        self._drop_tombstones()

    def position(self, item: T) -> int | None:
        seq = self._seq.get(item)
        if seq is None:
            return None
        return seq - self._items[0][0] + 1 - bisect.bisect_left(self._gone, seq)

    def _add(self, item: T, seq: int) -> None:
        if item in self._seq:
            raise ValueError("already in line")
        self._seq[item] = seq

    def _drop_tombstones(self) -> None:
        while self._items and self._seq.get(self._items[0][1]) != self._items[0][0]:
            self._items.popleft()
            self._gone.pop(0)  # the smallest: tombstones are in seq order too


@dataclass(eq=False)  # identity: kept in sets and in the line
class Pending(Claim):
    """An attempt this replica holds a claim on and has not settled yet."""

    recover: bool = False  # look the jobs up by name before submitting (a takeover, a retry after a failure)
    journal: JournalRef | None = None
    task_type: str = ""
    job_ids: list[str | None] | None = None  # as submitted so far
    announced: bool = False
    done: asyncio.Future[Resolution] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Backlog:
    def __init__(self, on_size: Callable[[int], None]) -> None:
        self.line: Line[Pending] = Line()
        self.active: set[Pending] = set()  # being submitted by a worker
        self.by_uri: dict[str, Pending] = {}
        self.known: BoundedCache[str, Resolution] = BoundedCache(KNOWN_OUTCOMES)
        self._on_size = on_size
        self._wakeup = asyncio.Event()

    def __len__(self) -> int:
        return len(self.line) + len(self.active)

    def position(self, pending: Pending) -> int | None:
        """1 for the head of the line, 0 while being submitted, None when neither."""
        return 0 if pending in self.active else self.line.position(pending)

    def enqueue(self, pending: Pending, *, first: bool = False) -> None:
        if first:
            self.line.push_front(pending)
        else:
            self.line.append(pending)
        self.by_uri[pending.uri] = pending
        self._on_size(len(self))
        self._wakeup.set()

    def unqueue(self, pending: Pending) -> None:
        """Take a task out of the line (cancelled, or claimed by another replica: both rare)."""
        self.line.remove(pending)
        self._on_size(len(self))

    async def next(self) -> Pending:
        """The head of the line, now being submitted; waits for one."""
        while True:
            pending = self.line.pop()
            if pending is not None:
                self.active.add(pending)
                return pending
            self._wakeup.clear()
            await self._wakeup.wait()

    def requeue(self, pending: Pending) -> None:
        """Back to the head of the line after a failed attempt, unless it was settled meanwhile."""
        self.active.discard(pending)
        if self.by_uri.get(pending.uri) is pending:
            self.enqueue(pending, first=True)
        else:
            self._on_size(len(self))

    def settle(self, pending: Pending, outcome: Resolution) -> None:
        """`pending` leaves the backlog with `outcome` (a final one is remembered)."""
        self.active.discard(pending)
        if self.by_uri.get(pending.uri) is pending:
            del self.by_uri[pending.uri]
        self._on_size(len(self))
        if not isinstance(outcome, Waiting):
            self.known.put(pending.uri, outcome)
        if not pending.done.done():
            pending.done.set_result(outcome)
