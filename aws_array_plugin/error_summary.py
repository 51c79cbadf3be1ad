"""Readable failure summaries of array children: one line per distinct message, indexes as ranges.

    [0-2][7]: ValueError: x must be positive
    [3]: ModuleNotFoundError: No module named 'app.nosuch'
    ... and 2 more messages

The most frequent failure comes first, since that is the one to fix; `first_line_of_error` turns flytekit's
multi-line error.pb text into the one line worth grouping by.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable

__all__ = ["first_line_of_error", "format_ranges", "index_ranges", "summarize"]

NO_MESSAGE = "(no error message)"
_ELLIPSIS = "..."
# Below this a truncated line says too little to be worth showing instead of the "... and N more" line.
_MIN_TRUNCATED_LINE = 16


def index_ranges(indexes: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged inclusive ranges: 0,1,5,10,4,3,2,8 -> [(0, 5), (8, 8), (10, 10)]."""
    ranges: list[tuple[int, int]] = []
    for index in sorted(set(indexes)):
        if ranges and index == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], index)
        else:
            ranges.append((index, index))
    return ranges


def format_ranges(indexes: Iterable[int]) -> str:
    """Ranges as text: 0,1,5,10,4,3,2,8 -> "[0-5][8][10]"."""
    return "".join(f"[{a}]" if a == b else f"[{a}-{b}]" for a, b in index_ranges(indexes))


def _one_line(message: str) -> str:
    return re.sub(r"\s*\n\s*", " ", message.strip()) or NO_MESSAGE


def _more(count: int) -> str:
    return f"... and {count} more message{'' if count == 1 else 's'}"


def _truncate(text: str, length: int) -> str:
    if len(text) <= length:
        return text
    if length <= len(_ELLIPSIS):
        return text[: max(length, 0)]
    return text[: length - len(_ELLIPSIS)] + _ELLIPSIS


def summarize(failures: Iterable[tuple[int, str]], max_length: int) -> str:
    """One line per distinct message, "<ranges>: <message>", never longer than max_length characters.

    Messages are grouped as given (pass them through `first_line_of_error` first to group tracebacks by their
    exception); line breaks inside a message become spaces. Most frequent message first, ties by lowest index.
    Whole lines are kept while they fit; the rest is counted in a final "... and N more messages" line. If not
    even the first line fits, it is cut short rather than hidden, so the most common failure is always named.
    """
    if max_length <= 0:
        return ""
    groups: dict[str, set[int]] = {}
    for index, message in failures:
        groups.setdefault(_one_line(message), set()).add(index)
    if not groups:
        return ""
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), min(item[1]), item[0]))
    lines = [f"{format_ranges(indexes)}: {message}" for message, indexes in ordered]

    full = "\n".join(lines)
    if len(full) <= max_length:
        return full

    # Longest prefix of whole lines that still leaves room for the "... and N more" line.
    best = 0
    used = 0  # length of "\n".join(lines[:k])
    for k in range(1, len(lines)):
        used += len(lines[k - 1]) + (1 if k > 1 else 0)
        if used + 1 + len(_more(len(lines) - k)) > max_length:
            break
        best = k
    if best:
        return "\n".join([*lines[:best], _more(len(lines) - best)])

    if len(lines) == 1:
        return _truncate(lines[0], max_length)
    tail = _more(len(lines) - 1)
    room = max_length - len(tail) - 1
    if room >= _MIN_TRUNCATED_LINE:
        return f"{_truncate(lines[0], room)}\n{tail}"
    return _truncate(lines[0], max_length)


_TRACEBACK_HEADER = "Traceback (most recent call last):"
# flytekit's trailers after the message (older `verbose_message` formats).
_TRAILERS = frozenset({"User error.", "SYSTEM ERROR! Contact platform administrators."})
# FlyteException.__str__ is "<ERROR_CODE>: error=<args>"; the code repeats what the type already says.
_FLYTE_CODE = re.compile(r"^(?P<type>\w+): (?:[A-Z]+:)?\w+: error=")
# "flytekit.core.type_engine.TypeTransformerFailedError: ..." -> "TypeTransformerFailedError: ..."
_DOTTED_TYPE = re.compile(r"^(?:\w+\.)+(?=\w+(?::|$))")


def first_line_of_error(message: str, max_length: int = 240) -> str:
    """The line of an error message worth showing and grouping by, e.g. "ValueError: x must be positive".

    Understands flytekit's error.pb text ("Trace:" with the indented traceback, then "Message:" with
    "<ExceptionType>: <value>"), a bare Python traceback (the exception line after the last
    "Traceback (most recent call last):"), and anything else (its first non-empty line). Multi-line exception
    values keep only their first line; the result is at most max_length characters.
    """
    lines = message.strip().splitlines()
    headline = _after_message_header(lines)
    if headline is None:
        headline = _exception_line(lines)
    if headline is None:
        headline = next((line.strip() for line in lines if line.strip()), "")
    headline = _DOTTED_TYPE.sub("", headline)
    headline = _FLYTE_CODE.sub(r"\g<type>: ", headline)
    return _truncate(" ".join(headline.split()), max_length)


def _after_message_header(lines: list[str]) -> str | None:
    """First line of the section after the last "Message:" header (flytekit's `get_traceback_str`)."""
    headers = [i for i, line in enumerate(lines) if line.strip() == "Message:"]
    if not headers:
        return None
    section = textwrap.dedent("\n".join(lines[headers[-1] + 1 :])).splitlines()
    return next((line.strip() for line in section if line.strip() and line.strip() not in _TRAILERS), None)


def _exception_line(lines: list[str]) -> str | None:
    """The exception line of the last traceback: the first line back at the header's indentation."""
    headers = [i for i, line in enumerate(lines) if line.strip() == _TRACEBACK_HEADER]
    if not headers:
        return None
    start = headers[-1]
    indent = len(lines[start]) - len(lines[start].lstrip())
    for line in lines[start + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            return line.strip()
    return next((line.strip() for line in reversed(lines) if line.strip()), None)
