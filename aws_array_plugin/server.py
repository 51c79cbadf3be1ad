"""`aws-array-plugin serve`: one asyncio process with the grpc.aio server, health, reflection and
Prometheus /metrics; SIGTERM stops accepting, lets in-flight RPCs finish within the grace period, exits 0."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_array_plugin.task_types import TASK_TYPE_VERSIONS

log = logging.getLogger("aws_array_plugin")

AGENT_NAME = "AWS Batch (aws-array-plugin)"
# Propeller keeps one version per type name; these are what flytekit serializes.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8000, help="gRPC port (default 8000; 0 picks a free one)")
    parser.add_argument("--metrics-port", type=int, default=9090, help="Prometheus /metrics port (default 9090)")
    parser.add_argument("--health-port", type=int, default=0,
                        help="also serve only grpc.health.v1, in plaintext, on this port (for kubelet gRPC probes "
                             "when the main port uses TLS; default: off)")
    parser.add_argument("--config", help="YAML config file (docs/configuration.md)")
    parser.add_argument("--log-level", default="INFO")


def run(args: argparse.Namespace) -> int:
    from aws_array_plugin.config import ConfigError, load_config_file
    from aws_array_plugin.regions import RegionError

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config_file(args.config)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    try:
        asyncio.run(serve(config, host=args.host, port=args.port, metrics_port=args.metrics_port,
                          health_port=args.health_port or None))
    except RegionError as exc:
        log.error("%s", exc)
        return 2
    return 0


class MetadataService:
    """AgentMetadataService: cheap, static, never fails (propeller calls ListAgents every 10 s)."""

    def __init__(self) -> None:
        from flyteidl.admin import agent_pb2

        agent = agent_pb2.Agent(name=AGENT_NAME, is_sync=False)
        for name, version in TASK_TYPE_VERSIONS.items():
            agent.supported_task_types.append(name)
            agent.supported_task_categories.append(agent_pb2.TaskCategory(name=name, version=version))
        self._agent = agent
        self._list = agent_pb2.ListAgentsResponse(agents=[agent])
        self._get = agent_pb2.GetAgentResponse(agent=agent)

    async def ListAgents(self, request: Any, context: Any) -> Any:
        return self._list

    async def GetAgent(self, request: Any, context: Any) -> Any:
        import grpc

        if request.name and request.name != AGENT_NAME:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no agent named {request.name!r}; this is {AGENT_NAME!r}")
        return self._get


@dataclass
class RunningServer:
    port: int
    metrics_port: int
    health_port: int | None
    stop: asyncio.Event
    deps: Any


def _credentials(config: Any) -> Any:
    import grpc

    s = config.server
    if not s.tls_cert_file:
        return None
    ca = Path(s.tls_client_ca_file).read_bytes() if s.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(Path(s.tls_key_file).read_bytes(), Path(s.tls_cert_file).read_bytes())],
        root_certificates=ca, require_client_auth=ca is not None,
    )


async def serve(config: Any, *, host: str = "0.0.0.0", port: int = 8000, metrics_port: int = 9090,
                health_port: int | None = None, stop: asyncio.Event | None = None,
                started: asyncio.Future[RunningServer] | None = None) -> None:
    """Run until SIGTERM/SIGINT (or `stop` is set). `started` receives the bound ports."""
    import grpc
    from flyteidl.service import agent_pb2 as service_pb2
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection
    from prometheus_client import start_http_server

    from aws_array_plugin.aws_calls import AwsApi
    from aws_array_plugin.grpc_handlers import add_servicer
    from aws_array_plugin.job_definitions import JobDefinitions
    from aws_array_plugin.metrics import Metrics
    from aws_array_plugin.service import AgentService, Deps
    from aws_array_plugin.status_engine import StatusEngine
    from aws_array_plugin.storage import S3Store
    from aws_array_plugin.submissions import Submissions

    metrics = Metrics()
    api = AwsApi(config, metrics)
    if not config.allowed_roles:
        log.warning("allowedRoles is empty: tasks may run as any IAM role the service can pass")
    await api.start()
    store = S3Store(api)
    engine = StatusEngine(api, config.status, metrics)
    submissions = Submissions(api, store, config, metrics, JobDefinitions(api, metrics), on_submitted=engine.seed_all)
    deps = Deps(config, api, store, submissions, engine, metrics)
    submissions.start()
    engine.start()

    s = config.server
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", s.max_receive_message_bytes),
        ("grpc.max_send_message_length", s.max_send_message_bytes),
    ])
    agents = service_pb2.DESCRIPTOR.services_by_name
    add_servicer(server, AgentService(deps), agents["AsyncAgentService"])
    add_servicer(server, MetadataService(), agents["AgentMetadataService"])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    services = [d.full_name for d in service_pb2.DESCRIPTOR.services_by_name.values()
                if d.name in ("AsyncAgentService", "AgentMetadataService")]
    for name in ["", *services, health.SERVICE_NAME]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*services, health.SERVICE_NAME, reflection.SERVICE_NAME], server)

    address = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    creds = _credentials(config)
    bound = server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
    # The kubelet's gRPC probe cannot speak TLS: a plaintext port that serves nothing but health.
    health_server = None
    health_bound = None
    if health_port is not None:
        health_server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
        health_address = f"{host}:{health_port}" if ":" not in host else f"[{host}]:{health_port}"
        health_bound = health_server.add_insecure_port(health_address)
        await health_server.start()
    http_server, _ = start_http_server(metrics_port, addr=host, registry=metrics.registry)
    # Start-up leaves many long-lived objects (botocore's service models above all): a full collection
    # that traverses them stalls the event loop. Frozen, they are never traversed again.
    gc.collect()
    gc.freeze()
    await server.start()
    log.info("serving gRPC on %s:%d%s, metrics on :%d, region %s%s", host, bound, " (TLS)" if creds else "",
             http_server.server_port, api.region, f", plaintext health on :{health_bound}" if health_bound else "")

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread (tests)
            loop.add_signal_handler(sig, stop.set)
    if started is not None and not started.done():
        started.set_result(RunningServer(bound, http_server.server_port, health_bound, stop, deps))
    try:
        await stop.wait()
    finally:
        log.info("stopping: no new RPCs, %.0fs for in-flight ones", s.grace_period)
        for name in ["", *services]:
            await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await server.stop(s.grace_period)
        if health_server is not None:
            await health_server.stop(None)
        await submissions.stop()
        await engine.stop()
        await api.close()
        http_server.shutdown()
        log.info("stopped")
