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

log = logging.getLogger("aws_array_plugin")



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


@dataclass
class RunningServer:
    port: int
    metrics_port: int
    health_port: int | None
    stop: asyncio.Event
    core: Any  # the TaskCore: config, api, store, submissions, engine, metrics
    events: Any = None  # the EventSource, with status.events


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
    from flyteidl2.connector import service_pb2 as connector_service_pb2
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection
    from prometheus_client import start_http_server

    from aws_array_plugin.aws_calls import AwsApi
    from aws_array_plugin.core import TaskCore
    from aws_array_plugin.event_source import EventSource
    from aws_array_plugin.faces import flyte1, flyte2
    from aws_array_plugin.grpc_handlers import add_servicer
    from aws_array_plugin.job_definitions import JobDefinitions
    from aws_array_plugin.metrics import Metrics
    from aws_array_plugin.monitor import Monitor, MonitorPolicy
    from aws_array_plugin.status_engine import StatusEngine
    from aws_array_plugin.storage import S3Store
    from aws_array_plugin.submissions import Submissions
    from aws_array_plugin.task_logs import TaskLogs

    metrics = Metrics()
    api = AwsApi(config, metrics)
    if not config.allowed_roles:
        log.warning("allowedRoles is empty: tasks may run as any IAM role the service can pass")
    await api.start()
    store = S3Store(api)
    engine = StatusEngine(api, config.status, metrics)
    submissions = Submissions(api, store, config, metrics, JobDefinitions(api, metrics), on_submitted=engine.seed_all)
    monitor = Monitor(engine, store, MonitorPolicy.from_config(config), metrics)
    core = TaskCore(config, api, store, submissions, engine, metrics, monitor,
                    TaskLogs(api, engine, config.job_definitions.log_group))
    submissions.start()
    engine.start()
    events = EventSource(api, config.status.events, engine, metrics) if config.status.events.enabled else None
    if events is not None:
        events.start()

    s = config.server
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", s.max_receive_message_bytes),
        ("grpc.max_send_message_length", s.max_send_message_bytes),
    ])
    agents = service_pb2.DESCRIPTOR.services_by_name
    connectors = connector_service_pb2.DESCRIPTOR.services_by_name
    faces = [
        (flyte1.AgentService(core, metrics), agents["AsyncAgentService"]),
        (flyte1.MetadataService(), agents["AgentMetadataService"]),
        (flyte2.ConnectorService(core, metrics), connectors["AsyncConnectorService"]),
        (flyte2.ConnectorMetadataService(), connectors["ConnectorMetadataService"]),
    ]
    for servicer, descriptor in faces:
        add_servicer(server, servicer, descriptor)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    services = [descriptor.full_name for _, descriptor in faces]
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
        started.set_result(RunningServer(bound, http_server.server_port, health_bound, stop, core, events))
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
        if events is not None:
            await events.stop()
        await engine.stop()
        await api.close()
        http_server.shutdown()
        log.info("stopped")
