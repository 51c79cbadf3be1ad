"""Helpers for multi-process tests: the emulated AWS as a subprocess (`start_emulator`, an `EmulatorProcess`),
`aws-array-plugin serve` replicas as subprocesses (`Replica`: start, SIGKILL, SIGTERM, /metrics), and a
propeller-like client that sends each call to the next live replica (`Propeller`, propeller's requests and
timeouts from aws_array_plugin_demo.propeller), recording every gRPC error it gets."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import yaml
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

from aws_array_plugin_demo import propeller
from aws_batch_emulator.process import EmulatorProcess, terminate

REPO = Path(__file__).resolve().parents[1]
SERVING = re.compile(r"serving gRPC on 127\.0\.0\.1:(\d+)(?: \(TLS\))?, metrics on :(\d+)")


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment without AWS settings (each process gets its own), with the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


def start_emulator(workdir: Path, *flags: str) -> EmulatorProcess:
    """The emulated AWS as a subprocess of the test, with the repo importable (its jobs may run flytekit code)."""
    return EmulatorProcess(*flags, workdir=workdir, cwd=REPO, env=subprocess_env())


def batch_operations() -> list[str]:
    """Every AWS Batch API operation name (for fault rules covering all of Batch and nothing else)."""
    import botocore.session

    return list(botocore.session.get_session().get_service_model("batch").operation_names)


@dataclass
class Replica:
    """One `aws-array-plugin serve` process with its own log file."""

    name: str
    config: Path
    log: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    metrics_port: int = 0
    channel: grpc.aio.Channel | None = None
    stub: agent_pb2_grpc.AsyncAgentServiceStub | None = None
    killed: bool = False

    def spawn(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aws_array_plugin", "serve", "--host", "127.0.0.1", "--port", "0",
             "--metrics-port", "0", "--config", str(self.config)],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, cwd=REPO, env=self.env,
        )  # fmt: skip

    def wait_serving(self, timeout: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = SERVING.search(self.log_text())
            if found:
                self.port, self.metrics_port = int(found.group(1)), int(found.group(2))
                return
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}: {self.log_text()[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not start serving: {self.log_text()[-3000:]}")

    def connect(self) -> None:
        """The gRPC channel, made in the running event loop."""
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = agent_pb2_grpc.AsyncAgentServiceStub(self.channel)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None and not self.killed

    def kill(self) -> None:
        """SIGKILL: no graceful hand-over of anything."""
        assert self.process is not None
        self.killed = True
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    async def close(self) -> int | None:
        """Close the channel and SIGTERM the process; its exit code (None if it was killed)."""
        if self.channel is not None:
            await self.channel.close()
        if self.process is None or self.killed:
            return None
        return await asyncio.to_thread(terminate, self.process)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
            text: str = response.read().decode()
            return text


def start_replicas(tmp: Path, emulator: EmulatorProcess, config: dict[str, Any], n: int) -> list[Replica]:
    """`n` serve processes on one config, started in parallel; connect() them inside the event loop."""
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = subprocess_env(emulator.client_env())
    replicas = [Replica(f"replica-{i}", path, tmp / f"replica-{i}.log", env) for i in range(n)]
    for replica in replicas:
        replica.spawn()
    for replica in replicas:
        replica.wait_serving()
    return replicas


@dataclass
class CallLog:
    """gRPC outcomes per method: OK count and every error (code, details)."""

    ok: Counter[str] = field(default_factory=Counter)
    errors: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def error(self, method: str, exc: grpc.aio.AioRpcError) -> None:
        self.errors.setdefault(method, []).append((exc.code().name, (exc.details() or "")[:300]))

    def error_codes(self, method: str) -> Counter[str]:
        return Counter(code for code, _ in self.errors.get(method, []))


class Propeller:
    """Sends each call to the next live replica, like propeller's round-robin over the pods behind a Service."""

    def __init__(self, replicas: list[Replica]) -> None:
        self.replicas = replicas
        self._turn = itertools.count()
        self.calls = CallLog()

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.alive]

    def next(self, avoid: Replica | None = None) -> Replica:
        live = self.live()
        assert live, "no live replica"
        for _ in range(len(live) + 1):
            replica = live[next(self._turn) % len(live)]
            if replica is not avoid or len(live) == 1:
                return replica
        return live[0]

    async def create(self, request: agent_pb2.CreateTaskRequest, replica: Replica | None = None
                     ) -> tuple[bytes | None, Replica, grpc.aio.AioRpcError | None]:
        replica = replica or self.next()
        assert replica.stub is not None
        try:
            resp = await replica.stub.CreateTask(request, timeout=propeller.CREATE_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            self.calls.error("CreateTask", exc)
            return None, replica, exc
        self.calls.ok["CreateTask"] += 1
        return bytes(resp.resource_meta), replica, None

    async def create_until_accepted(self, request: agent_pb2.CreateTaskRequest, deadline: float,
                                    first: Replica | None = None) -> tuple[bytes, Replica, int]:
        """CreateTask, retried on the next replica after an error as propeller retries a failed create.
        Returns (resource meta, replica that accepted it, failed tries)."""
        failures = 0
        replica = first
        while True:
            meta, used, error = await self.create(request, replica)
            if meta is not None:
                return meta, used, failures
            assert error is not None
            failures += 1
            assert time.monotonic() < deadline, f"CreateTask never accepted: {error.code().name} {error.details()}"
            replica = self.next(avoid=used)
            await asyncio.sleep(min(2.0, 0.2 * failures))

    async def get(self, meta: bytes, task_type: str) -> tuple[agent_pb2.Resource | None, Replica]:
        """GetTask on the next replica: (resource, replica), resource None after a gRPC error."""
        replica = self.next()
        assert replica.stub is not None
        try:
            resp = await replica.stub.GetTask(propeller.get_task_request(meta, task_type), timeout=propeller.GET_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            if replica.alive:  # not an answer of a replica killed meanwhile
                self.calls.error("GetTask", exc)
            return None, replica
        self.calls.ok["GetTask"] += 1
        return resp.resource, replica

    async def delete(self, meta: bytes, task_type: str, avoid: Replica | None = None) -> None:
        """DeleteTask, retried on another replica after an error (as propeller does on its next round)."""
        for attempt in range(10):
            replica = self.next(avoid=avoid)
            assert replica.stub is not None
            try:
                await replica.stub.DeleteTask(propeller.delete_task_request(meta, task_type),
                                              timeout=propeller.DELETE_TIMEOUT)
                self.calls.ok["DeleteTask"] += 1
                return
            except grpc.aio.AioRpcError as exc:
                self.calls.error("DeleteTask", exc)
                await asyncio.sleep(0.5 * (attempt + 1))
        raise AssertionError("DeleteTask kept failing")

    async def close(self) -> None:
        for replica in self.replicas:
            with contextlib.suppress(Exception):
                await replica.close()
