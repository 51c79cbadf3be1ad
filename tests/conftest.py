"""Shared fixtures: an emulated AWS in server mode on loopback, and the real plugin server started
in-process on a free port, called over a real gRPC channel with flyteidl's own stubs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import grpc
import pytest
from flyteidl.service import agent_pb2_grpc

from aws_array_plugin.config import load_config
from aws_array_plugin.server import RunningServer, serve

REGION = "us-east-1"
BUCKET = "flyte-data"
QUEUE = "default"
ROLE = "arn:aws:iam::123456789012:role/flyte-task"


@dataclass
class MotoServer:
    endpoint: str

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")


@contextlib.contextmanager
def aws_environment(env: dict[str, str]) -> Iterator[None]:
    """The process's AWS environment is `env` meanwhile (no profile, no other region), then what it was."""
    with pytest.MonkeyPatch.context() as patch:  # usable by fixtures of any scope, unlike `monkeypatch`
        for name, value in env.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        patch.delenv("AWS_REGION", raising=False)
        yield


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """moto in server mode (batch_simple: jobs succeed at once), provisioned like a small account."""
    import logging

    import requests
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    requests.post(f"{endpoint}/moto-api/config", json={"batch": {"use_docker": False}}, timeout=10)
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": REGION}
    a = MotoServer(endpoint)
    with aws_environment(env):
        iam, batch = a.client("iam"), a.client("batch")
        role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        batch.create_compute_environment(computeEnvironmentName="flyte-ce", type="UNMANAGED", serviceRole=role)
        batch.create_job_queue(jobQueueName=QUEUE, state="ENABLED", priority=1,
                               computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "flyte-ce"}])
        a.client("s3").create_bucket(Bucket=BUCKET)
        yield a
    server.stop()


@dataclass
class Plugin:
    running: RunningServer
    channel: grpc.aio.Channel
    agents: agent_pb2_grpc.AsyncAgentServiceStub
    metadata: agent_pb2_grpc.AgentMetadataServiceStub
    calls: list[tuple[str, dict[str, Any]]]

    def sent(self, operation: str) -> list[dict[str, Any]]:
        """Parameters of every `operation` (e.g. SubmitJob) the plugin sent to AWS, in order."""
        return [params for op, params in self.calls if op == operation]


StartPlugin = Callable[..., contextlib.AbstractAsyncContextManager[Plugin]]

BASE_CONFIG: dict[str, Any] = {"defaultQueue": QUEUE, "status": {"refreshInterval": "1s", "maxStaleness": "0.5s",
                                                                  "batchWindow": "0.01s"}}


@pytest.fixture(scope="session")
def emulator(moto: MotoServer) -> Iterator[Any]:
    """The project's emulated AWS Batch: jobs really run (as local processes), with AWS's transitions."""
    from aws_batch_emulator import Emulator

    with Emulator(port=0, step=0.2, concurrency=8) as emulator:
        yield emulator


@contextlib.asynccontextmanager
async def plugin_server(config: dict[str, Any], endpoint: str,
                        install: Callable[[Any], None] | None = None) -> AsyncIterator[Plugin]:
    """The real plugin server in-process on a free port, its AWS clients pointed at `endpoint`, its Batch calls
    recorded in `Plugin.calls`; `install(events)` may hook its batch client's botocore events too."""
    cfg = load_config(config)
    started: asyncio.Future[RunningServer] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    # The AWS clients read the endpoint from the environment when the server starts.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", endpoint)
        task = asyncio.create_task(serve(cfg, host="127.0.0.1", port=0, metrics_port=0, stop=stop, started=started))
        await asyncio.wait([started, task], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if not started.done():
        stop.set()
        await task  # raises what made serve fail
        raise RuntimeError("the plugin server did not start")
    running = started.result()
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, dict(params)))

    events = running.core.api.client("batch").meta.events
    events.register("provide-client-params.batch.*", record)
    if install is not None:
        install(events)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield Plugin(running, channel, agent_pb2_grpc.AsyncAgentServiceStub(channel),
                     agent_pb2_grpc.AgentMetadataServiceStub(channel), calls)
    finally:
        await channel.close()
        stop.set()
        await asyncio.wait_for(task, 30)


@pytest.fixture
def start_plugin(moto: MotoServer) -> StartPlugin:
    def start(config: dict[str, Any] | None = None, endpoint: str | None = None
              ) -> contextlib.AbstractAsyncContextManager[Plugin]:
        return plugin_server({**BASE_CONFIG, **(config or {})}, endpoint or moto.endpoint)

    return start
