import pytest

from aws_array_plugin.error_summary import first_line_of_error, format_ranges, index_ranges, summarize

# Real error.pb messages (ErrorDocument.error.message) written by flytekit 1.16.31's `pyflyte-execute` for
# tasks of a scratch module (app/wf.py) that raise ValueError, a multi-line RuntimeError,
# FlyteRecoverableException, and `ValueError(...) from KeyError`. Only the paths were shortened (the
# virtualenv to /venv, the scratch module's directory to /app).
VALUE_ERROR = r"""Trace:

    Traceback (most recent call last):
      File "/venv/lib/python3.11/site-packages/flytekit/core/base_task.py", line 767, in dispatch_execute
        native_outputs = self.execute(**native_inputs)
                         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
      File "/venv/lib/python3.11/site-packages/flytekit/core/python_function_task.py", line 214, in execute
        return self._task_function(**kwargs)
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
      File "/app/wf.py", line 10, in square
        return _check(x) ** 2
               ^^^^^^^^^
      File "/app/wf.py", line 5, in _check
        raise ValueError("x must be positive")
    ValueError: x must be positive

Message:

    ValueError: x must be positive"""

MULTILINE_RUNTIME_ERROR = r"""Trace:

    Traceback (most recent call last):
      File "/venv/lib/python3.11/site-packages/flytekit/core/base_task.py", line 767, in dispatch_execute
        native_outputs = self.execute(**native_inputs)
                         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
      File "/venv/lib/python3.11/site-packages/flytekit/core/python_function_task.py", line 214, in execute
        return self._task_function(**kwargs)
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
      File "/app/wf.py", line 14, in crash
        raise RuntimeError(f"bad input {x}\nsecond line of detail")
    RuntimeError: bad input -3
    second line of detail

Message:

    RuntimeError: bad input -3
    second line of detail"""

RECOVERABLE = r"""Trace:

    Traceback (most recent call last):
      File "/venv/lib/python3.11/site-packages/flytekit/core/base_task.py", line 767, in dispatch_execute
        native_outputs = self.execute(**native_inputs)
                         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
      File "/venv/lib/python3.11/site-packages/flytekit/core/python_function_task.py", line 214, in execute
        return self._task_function(**kwargs)
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
      File "/app/wf.py", line 20, in recov
        raise FlyteRecoverableException("try again later")
    flytekit.exceptions.user.FlyteRecoverableException: USER:Recoverable: error=try again later

Message:

    FlyteRecoverableException: USER:Recoverable: error=try again later"""

CHAINED = r"""Trace:

    Traceback (most recent call last):
      File "/app/wf.py", line 29, in chained
        {}["k"]
        ~~^^^^^
    KeyError: 'k'

    The above exception was the direct cause of the following exception:

    Traceback (most recent call last):
      File "/venv/lib/python3.11/site-packages/flytekit/core/base_task.py", line 767, in dispatch_execute
        native_outputs = self.execute(**native_inputs)
                         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
      File "/venv/lib/python3.11/site-packages/flytekit/core/python_function_task.py", line 214, in execute
        return self._task_function(**kwargs)
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
      File "/app/wf.py", line 31, in chained
        raise ValueError("lookup failed") from e
    ValueError: lookup failed

Message:

    ValueError: lookup failed"""

# A plain Python traceback, as a job that does not run flytekit prints it.
BARE_TRACEBACK = """Traceback (most recent call last):
  File "/app/main.py", line 3, in <module>
    main()
  File "/app/main.py", line 2, in main
    raise botocore.exceptions.NoCredentialsError()
botocore.exceptions.NoCredentialsError: Unable to locate credentials
"""

# flytekit's older `FlyteScopedUserException.verbose_message` shape, with its trailer.
OLD_SCOPED_USER_ERROR = """Traceback (most recent call last):

      File "/app/wf.py", line 5, in square
        raise ValueError("x must be positive")

Message:

    ValueError: x must be positive

User error."""


@pytest.mark.parametrize(
    ("indexes", "ranges", "text"),
    [
        ([], [], ""),
        ([7], [(7, 7)], "[7]"),
        ([0, 1, 5, 10, 4, 3, 2, 8], [(0, 5), (8, 8), (10, 10)], "[0-5][8][10]"),  # Go's rangeCollection case
        ([0, 1, 3], [(0, 1), (3, 3)], "[0-1][3]"),
        ([3, 3, 2, 2], [(2, 3)], "[2-3]"),
        ([9, 11, 10, 0], [(0, 0), (9, 11)], "[0][9-11]"),
        ([9999, 0], [(0, 0), (9999, 9999)], "[0][9999]"),
    ],
)
def test_index_ranges(indexes: list[int], ranges: list[tuple[int, int]], text: str) -> None:
    assert index_ranges(indexes) == ranges
    assert format_ranges(indexes) == text


FAILURES = [
    (0, "ValueError: bad value"),
    (1, "ValueError: bad value"),
    (2, "ValueError: bad value"),
    (7, "ValueError: bad value"),
    (3, "MemoryError"),
    (4, "KeyError: 'k'"),
    (5, "KeyError: 'k'"),
    (6, "OSError: disk full"),
]
FULL = "[0-2][7]: ValueError: bad value\n[4-5]: KeyError: 'k'\n[3]: MemoryError\n[6]: OSError: disk full"


@pytest.mark.parametrize(
    ("failures", "max_length", "expected"),
    [
        # Go's errorcollector case, most frequent first instead of alphabetical.
        (
            [
                (0, "duplicate message"),
                (1, "duplicate message"),
                (3, "duplicate message"),
                (2, "unique message"),
            ],
            1000,
            "[0-1][3]: duplicate message\n[2]: unique message",
        ),
        ([], 100, ""),
        ([(0, "x")], 0, ""),
        ([(0, "x")], -5, ""),
        (FAILURES, 1000, FULL),
        (FAILURES, len(FULL), FULL),
        # One character short: the last line gives way to the count.
        (FAILURES, len(FULL) - 1, FULL.rsplit("\n", 1)[0] + "\n... and 1 more message"),
        (FAILURES, 70, "[0-2][7]: ValueError: bad value\n... and 3 more messages"),
        (FAILURES, 55, "[0-2][7]: ValueError: bad value\n... and 3 more messages"),
        # Not even the first line fits next to the count: it is cut short, not hidden.
        (FAILURES, 54, "[0-2][7]: ValueError: bad v...\n... and 3 more messages"),
        (FAILURES, 40, "[0-2][7]: Val...\n... and 3 more messages"),
        # Too small for both: the most common failure wins.
        (FAILURES, 20, "[0-2][7]: ValueEr..."),
        (FAILURES, 3, "[0-"),
        ([(0, "a very long single message")], 20, "[0]: a very long ..."),
        # Ties on count: lowest first index first.
        ([(5, "b"), (1, "a"), (3, "c")], 100, "[1]: a\n[3]: c\n[5]: b"),
        # Duplicate reports of an index count once.
        ([(0, "a"), (0, "a"), (1, "b"), (2, "b")], 100, "[1-2]: b\n[0]: a"),
        # One line per message: line breaks inside a message become spaces; blank messages get a placeholder.
        (
            [(0, "RuntimeError: bad input\n  second line\n"), (1, "  ")],
            100,
            "[0]: RuntimeError: bad input second line\n[1]: (no error message)",
        ),
        # "messages" counts distinct messages, with 2+ digits.
        ([(i, f"error {i}") for i in range(12)], 37, "[0]: error 0\n... and 11 more messages"),
    ],
)
def test_summarize(failures: list[tuple[int, str]], max_length: int, expected: str) -> None:
    result = summarize(failures, max_length)
    assert result == expected
    assert len(result) <= max(max_length, 0)


def test_summarize_large_array_stays_within_budget() -> None:
    failures = [(i, f"ValueError: bad value {i % 250}") for i in range(10_000)]
    result = summarize(failures, 2000)
    assert len(result) <= 2000
    assert result.startswith("[0][250][500]")
    assert result.splitlines()[-1].startswith("... and ")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (VALUE_ERROR, "ValueError: x must be positive"),
        (MULTILINE_RUNTIME_ERROR, "RuntimeError: bad input -3"),
        (RECOVERABLE, "FlyteRecoverableException: try again later"),
        (CHAINED, "ValueError: lookup failed"),
        (BARE_TRACEBACK, "NoCredentialsError: Unable to locate credentials"),
        (OLD_SCOPED_USER_ERROR, "ValueError: x must be positive"),
        # The trace alone (no Message section): the exception line of the last traceback.
        (VALUE_ERROR.split("\nMessage:")[0], "ValueError: x must be positive"),
        (CHAINED.split("\nMessage:")[0], "ValueError: lookup failed"),
        (
            "FlyteDataNotFoundException: USER:ValueError: error=Value error!  Received: s3://b/i. Not found",
            "FlyteDataNotFoundException: Value error! Received: s3://b/i. Not found",
        ),
        # Not a traceback: the first non-empty line.
        ("\n  Essential container in task exited\n", "Essential container in task exited"),
        ("Job Failed.", "Job Failed."),
        ("", ""),
        ("ValueError: a.b is not valid", "ValueError: a.b is not valid"),
        ("x" * 300, "x" * 237 + "..."),
    ],
)
def test_first_line_of_error(message: str, expected: str) -> None:
    assert first_line_of_error(message) == expected


def test_first_line_of_error_max_length() -> None:
    assert first_line_of_error(VALUE_ERROR, max_length=14) == "ValueError:..."


def test_summaries_of_real_flytekit_errors() -> None:
    failures = [
        (0, VALUE_ERROR),
        (1, VALUE_ERROR),
        (2, MULTILINE_RUNTIME_ERROR),
        (3, VALUE_ERROR),
        (5, CHAINED),
    ]
    summary = summarize(((i, first_line_of_error(m)) for i, m in failures), 1000)
    assert summary.splitlines() == [
        "[0-1][3]: ValueError: x must be positive",
        "[2]: RuntimeError: bad input -3",
        "[5]: ValueError: lookup failed",
    ]
