"""Process runtime: one job attempt = one host subprocess, watched from the scheduler's event loop.

No thread per process: the output pipe and a pidfd are registered with the loop's selector, so a thousand
running attempts cost file descriptors, not threads. The command runs ON THE HOST as the current user; the
image name is only recorded. stdout and stderr share one pipe, like the awslogs driver's single stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

MAX_EVENT_BYTES = 256 * 1024  # CloudWatch's event size limit; longer lines are split
FLUSH_INTERVAL_S = 0.25  # how stale a running job's log may be
_POLL_INTERVAL_S = 0.05  # exit polling when pidfd_open is unavailable

# Host variables a job may inherit; everything else (credentials, proxies, tokens) stays out, as in a container.
_INHERITED = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SHELL",
    "TERM", "PYTHONPATH", "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
)  # fmt: skip

EMULATOR_KEY = "testing"  # moto accepts any credentials; this is the conventional dummy


class LogWriter(Protocol):
    def __call__(self, events: list[dict[str, object]]) -> None: ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    region: str


def job_environment(
    *,
    endpoint: Endpoint,
    job_env: Sequence[tuple[str, str]],
    batch_vars: Mapping[str, str],
    host_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one attempt: a few host basics < emulator endpoint < job env < AWS_BATCH_* vars."""
    host = os.environ if host_env is None else host_env
    env = {k: host[k] for k in _INHERITED if k in host}
    # pyflyte-execute and friends live next to this interpreter.
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", os.defpath)
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint.url,
            "AWS_ACCESS_KEY_ID": EMULATOR_KEY,
            "AWS_SECRET_ACCESS_KEY": EMULATOR_KEY,
            "AWS_DEFAULT_REGION": endpoint.region,
            "AWS_REGION": endpoint.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "FLYTE_AWS_ENDPOINT": endpoint.url,
            "FLYTE_AWS_ACCESS_KEY_ID": EMULATOR_KEY,
            "FLYTE_AWS_SECRET_ACCESS_KEY": EMULATOR_KEY,
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    env.update(job_env)
    env.update(batch_vars)
    return env


@dataclass(frozen=True, slots=True)
class Exit:
    """How an attempt's process ended. `exit_code` is None when it never started."""

    exit_code: int | None
    start_error: str | None = None


@dataclass(slots=True)
class _LineBuffer:
    write: LogWriter
    partial: bytes = b""
    pending: list[dict[str, object]] = field(default_factory=list)
    last_ms: int = 0

    def feed(self, data: bytes) -> None:
        data = self.partial + data
        *lines, self.partial = data.split(b"\n")
        for line in lines:
            self._add(line)
        while len(self.partial) >= MAX_EVENT_BYTES:
            self._add(self.partial[:MAX_EVENT_BYTES])
            self.partial = self.partial[MAX_EVENT_BYTES:]

    def finish(self) -> None:
        if self.partial:
            self._add(self.partial)
            self.partial = b""
        self.flush()

    def _add(self, line: bytes) -> None:
        line = line.rstrip(b"\r")
        if not line:  # awslogs drops empty lines; CloudWatch rejects empty messages
            return
        # CloudWatch requires non-decreasing timestamps within a batch.
        self.last_ms = max(self.last_ms, int(time.time() * 1000))
        for i in range(0, len(line), MAX_EVENT_BYTES):
            message = line[i : i + MAX_EVENT_BYTES].decode("utf-8", errors="replace")
            self.pending.append({"timestamp": self.last_ms, "message": message})

    def flush(self) -> None:
        if self.pending:
            events, self.pending = self.pending, []
            self.write(events)


class AttemptProcess:
    """A running attempt. Created and driven on the loop thread; `kill()` may be called from any thread."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        proc: subprocess.Popen[bytes],
        logs: _LineBuffer,
        on_exit: Callable[[Exit], None],
    ) -> None:
        self._loop = loop
        self._proc = proc
        self._logs = logs
        self._on_exit = on_exit
        self._lock = threading.Lock()  # orders kill() against reaping, so we never signal a recycled pid
        self._reaped = False
        self._flush_handle: asyncio.TimerHandle | None = None
        assert proc.stdout is not None
        self._out_fd: int | None = proc.stdout.fileno()
        os.set_blocking(self._out_fd, False)
        loop.add_reader(self._out_fd, self._on_output)
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):  # old kernel / non-Linux: poll instead
            loop.call_later(_POLL_INTERVAL_S, self._poll)
        else:
            loop.add_reader(self._pidfd, self._on_exited)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def kill(self) -> bool:
        """SIGKILL the attempt's whole process group; False if it had already exited."""
        with self._lock:
            if self._reaped:
                return False
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            return True

    def reap_blocking(self, timeout: float = 5.0) -> None:
        """After the loop has stopped: kill, reap and close without callbacks (emulator shutdown)."""
        self.kill()
        with self._lock, contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=timeout)
            self._reaped = True
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._out_fd = None

    def _read_once(self) -> bool:
        """Feed one read of the process's output to the log buffer; False when there is nothing more now."""
        assert self._out_fd is not None
        try:
            data = os.read(self._out_fd, 65536)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self._close_output()
            return False
        self._logs.feed(data)
        return True

    def _on_output(self) -> None:
        if self._read_once() and self._logs.pending and self._flush_handle is None:
            self._flush_handle = self._loop.call_later(FLUSH_INTERVAL_S, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        self._logs.flush()

    def _drain(self) -> None:
        while self._out_fd is not None and self._read_once():
            pass

    def _close_output(self) -> None:
        if self._out_fd is not None:
            self._loop.remove_reader(self._out_fd)
            assert self._proc.stdout is not None
            self._proc.stdout.close()
            self._out_fd = None

    def _poll(self) -> None:
        if self._proc.poll() is None:
            self._loop.call_later(_POLL_INTERVAL_S, self._poll)
        else:
            self._on_exited()

    def _on_exited(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        with self._lock:
            # A container's processes all die with it: take down anything the command left behind
            # (before reaping, while the group id cannot have been recycled).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            code = self._proc.wait()
            self._reaped = True
        self._drain()
        self._close_output()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._logs.finish()
        # Docker reports death by signal N as 128 + N (SIGKILL -> 137).
        self._on_exit(Exit(exit_code=128 - code if code < 0 else code))


def launch(
    loop: asyncio.AbstractEventLoop,
    *,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str,
    write_logs: LogWriter,
    on_exit: Callable[[Exit], None],
) -> AttemptProcess | Exit:
    """Start an attempt on the loop thread; returns an `Exit` with `start_error` if it cannot start."""
    if not argv:
        return Exit(exit_code=None, start_error="CannotStartContainerError: no command given")
    try:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group, so kill() reaches its children too
            close_fds=True,
        )
    except OSError as exc:
        return Exit(exit_code=None, start_error=f"CannotStartContainerError: {exc.strerror or exc}: {argv[0]}")
    return AttemptProcess(loop, proc, _LineBuffer(write_logs), on_exit)
