"""The emulated AWS as a child process (`python -m aws_batch_emulator` on a free port), for tests and benchmarks
that keep it out of their own process: its endpoint, boto3 clients, and its /_emulator control API. Also
`terminate`, the SIGTERM-then-SIGKILL every child process is stopped with."""

from __future__ import annotations

import functools
import json
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

KEY = "testing"  # the emulator accepts any credentials


def terminate(process: subprocess.Popen[Any], timeout: float = 15) -> int | None:
    """SIGTERM, then SIGKILL if it does not exit within `timeout`; returns the exit code (None if killed)."""
    if process.poll() is not None:
        return process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        return None


class EmulatorProcess:
    """`python -m aws_batch_emulator --port 0 [--workdir W] *flags` as a child process. Its stderr goes to `log`
    (discarded without one); `preexec_fn` runs in the child before the emulator starts (e.g. CPU pinning)."""

    def __init__(self, *flags: str, workdir: Path | None = None, log: Path | None = None, cwd: Path | None = None,
                 env: Mapping[str, str] | None = None, preexec_fn: Callable[[], None] | None = None,
                 start_timeout: float = 60) -> None:
        self.log_path = log
        self._log: IO[str] | None = open(log, "w") if log is not None else None  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aws_batch_emulator", "--port", "0",
             *(["--workdir", str(workdir)] if workdir is not None else []), *flags],
            stdout=subprocess.PIPE, stderr=self._log or subprocess.DEVNULL, text=True, cwd=cwd,
            env=None if env is None else dict(env), preexec_fn=preexec_fn,
        )  # fmt: skip
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], start_timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            terminate(self.process)
            where = f"; see {log}" if log is not None else ""
            raise RuntimeError(f"the emulator printed nothing within {start_timeout:g} s{where}")
        self.info: dict[str, Any] = json.loads(line)
        self.endpoint: str = self.info["endpoint"]

    @property
    def pid(self) -> int:
        return self.process.pid

    def client_env(self) -> dict[str, str]:
        """What a process (the service, flytekit, boto3) needs to use this emulator as its AWS."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": KEY,
                "AWS_DEFAULT_REGION": self.info["region"], "AWS_REGION": self.info["region"],
                "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self, service: str, **config: Any) -> Any:
        """A boto3 client of this emulator; `config`: botocore Config options."""
        import boto3
        from botocore.config import Config

        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.info["region"],
                            aws_access_key_id=KEY, aws_secret_access_key=KEY, config=Config(**config))

    @functools.cached_property
    def batch(self) -> Any:
        """AWS Batch without botocore retries (a test sees every answer)."""
        return self.client("batch", retries={"total_max_attempts": 1})

    @functools.cached_property
    def s3(self) -> Any:
        return self.client("s3")

    def batch_client(self) -> Any:
        """AWS Batch with a few retries and a connection pool for concurrent callers (load generators)."""
        return self.client("batch", retries={"total_max_attempts": 3}, max_pool_connections=16)

    def stop(self) -> None:
        terminate(self.process)
        if self._log is not None:
            self._log.close()

    # -- control API -------------------------------------------------------------------------------
    def control(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.endpoint}/_emulator{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)

    def stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.control("GET", "/stats", timeout=30).items()}

    def injected(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = self.control("GET", "/stats/injected")
        return result

    def answered(self, operation: str) -> int:
        """Calls of `operation` the emulator processed (received minus those answered with an injected fault)."""
        return self.stats().get(operation, 0) - sum(self.injected().get(operation, {}).values())

    def reset_stats(self) -> None:
        self.control("DELETE", "/stats", timeout=30)

    def jobs(self) -> dict[str, Any]:
        """The jobs summary (units and jobs per status)."""
        result: dict[str, Any] = self.control("GET", "/jobs", timeout=30)
        return result

    def set_faults(self, rules: dict[str, Any], seed: int | None = None) -> None:
        self.control("POST", "/faults", {"rules": rules, **({} if seed is None else {"seed": seed})})

    def clear_faults(self) -> None:
        self.control("DELETE", "/faults")

    # -- event delivery (flag --events) ------------------------------------------------------------
    def event_stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.control("GET", "/events/stats").items()}

    def set_event_faults(self, faults: dict[str, Any], seed: int | None = None) -> None:
        """e.g. `{"duplicate": 0.1, "reorder": 0.1, "drop": 0.05, "deadLetter": True}` (see EventFaults)."""
        self.control("POST", "/events/faults", {"faults": faults, **({} if seed is None else {"seed": seed})})

    def clear_event_faults(self) -> None:
        self.control("DELETE", "/events/faults")

    def events_down(self, seconds: float) -> None:
        """An EventBridge outage of `seconds`: events are buffered, then delivered in order of arrival."""
        self.control("POST", "/events/down", {"seconds": seconds})

    def events_up(self) -> None:
        self.control("POST", "/events/up")

    def wait_events_idle(self, timeout: float = 10) -> bool:
        """True once every event published so far is delivered (or dropped); False after `timeout` s."""
        return bool(self.control("POST", "/events/wait", {"timeout": timeout}, timeout=timeout + 10)["idle"])

    def restart(self, downtime: float) -> None:
        """An API outage of `downtime` s (returns once the endpoint is down)."""
        self.control("POST", "/restart", {"downtime": downtime})

    def wait_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.control("GET", "/info")
                return
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    # -- AWS views ---------------------------------------------------------------------------------
    def jobs_named(self, prefix: str) -> list[dict[str, Any]]:
        """Every job of the queue whose name starts with `prefix` (any status), from ListJobs' JOB_NAME filter."""
        jobs: list[dict[str, Any]] = []
        params: dict[str, Any] = {"jobQueue": self.info["queue"], "maxResults": 1000,
                                  "filters": [{"name": "JOB_NAME", "values": [f"{prefix}*"]}]}
        while True:
            resp = self.batch.list_jobs(**params)
            jobs.extend(resp["jobSummaryList"])
            if not resp.get("nextToken"):
                return jobs
            params["nextToken"] = resp["nextToken"]

    def record(self, output_prefix: str) -> dict[str, Any]:
        """The service's submission record of an attempt (state, claim, job ids), without the requests."""
        bucket, _, key = f"{output_prefix}/_aws_array_plugin/submission.json"[5:].partition("/")
        try:
            record: dict[str, Any] = json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except self.s3.exceptions.NoSuchKey:
            return {}
        return {k: v for k, v in record.items() if k not in ("requests", "jobNames")}

    def put(self, uri: str, data: bytes) -> None:
        bucket, _, key = uri[5:].partition("/")
        self.s3.put_object(Bucket=bucket, Key=key, Body=data)
