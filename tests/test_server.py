"""Server process behaviour: metrics, SIGTERM, config errors, gRPC message size."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import MotoServer, StartPlugin
from tests.templates import create_request, literal_map, task_template


async def test_metrics_count_rpcs_by_method_and_task_type(start_plugin: StartPlugin) -> None:
    async with start_plugin() as plugin:
        req = create_request(task_template("awsbatch_minimal_task"), execution="metrics")
        resp = await plugin.agents.CreateTask(req, timeout=10)
        await plugin.agents.GetTask(agent_pb2.GetTaskRequest(
            resource_meta=resp.resource_meta, task_category=agent_pb2.TaskCategory(name="aws-batch")), timeout=10)
        url = f"http://127.0.0.1:{plugin.running.metrics_port}/metrics"
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    assert 'aws_array_plugin_rpc_requests_total{method="CreateTask",outcome="ok",task_type="aws-batch"} 1.0' in text
    assert 'aws_array_plugin_rpc_requests_total{method="GetTask",outcome="ok",task_type="aws-batch"} 1.0' in text
    assert re.search(r'aws_array_plugin_rpc_latency_seconds_count\{method="CreateTask",task_type="aws-batch"\} 1\.0', text)
    assert re.search(r'aws_array_plugin_aws_calls_total\{operation="submit_job",outcome="ok"\} 1\.0', text)
    assert 'aws_array_plugin_submissions_total{outcome="submitted",task_type="aws-batch"} 1.0' in text
    assert 'aws_array_plugin_aws_rate_limit{call_class="submit"} 40.0' in text


@pytest.mark.slow  # building and sending a request over 4 MiB: most of this module's time
async def test_large_requests_are_accepted(start_plugin: StartPlugin) -> None:
    """Above gRPC's default 4 MiB receive limit (a map task over ~600k integers)."""
    async with start_plugin({"maxArraySize": 10}) as plugin:
        inputs = literal_map({"x": list(range(600_000))}, {"x": list[int]})
        req = create_request(task_template("square_legacy_map"), execution="big", inputs=inputs)
        assert req.ByteSize() > 4 << 20
        resp = await plugin.agents.CreateTask(req, timeout=30)
        # Accepted and validated: here it is over the configured cap, a clean rejection.
        from aws_array_plugin.resource_meta import decode

        assert "maxArraySize 10" in decode(resp.resource_meta).rejection


def _serve(moto: MotoServer, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "AWS_ENDPOINT_URL": moto.endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    return subprocess.Popen([sys.executable, "-m", "aws_array_plugin", "serve", "--host", "127.0.0.1", "--port", "0",
                             "--metrics-port", "0", *extra], env=env, stderr=subprocess.PIPE, text=True)


def _wait_port(proc: subprocess.Popen[str]) -> int:
    assert proc.stderr is not None
    for line in proc.stderr:
        m = re.search(r"serving gRPC on 127\.0\.0\.1:(\d+)", line)
        if m:
            return int(m.group(1))
    raise AssertionError(f"server exited with {proc.wait()}")


async def test_sigterm_stops_cleanly_with_exit_0(moto: MotoServer, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("defaultQueue: default\nserver:\n  gracePeriod: 5s\n")
    proc = _serve(moto, "--config", str(cfg))
    try:
        port = await asyncio.to_thread(_wait_port, proc)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            status = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            agents = await agent_pb2_grpc.AgentMetadataServiceStub(ch).ListAgents(agent_pb2.ListAgentsRequest(),
                                                                                  timeout=5)
            assert len(agents.agents) == 1
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("defaultQeue: default\nrateLimits:\n  submit: {rate: fast, burst: 1}\n")
    out = subprocess.run([sys.executable, "-m", "aws_array_plugin", "serve", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "defaultQeue: unknown key" in out.stderr
    assert "rateLimits.submit.rate" in out.stderr


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


async def test_tls_port_with_a_plaintext_health_port(moto: MotoServer, tmp_path: Path) -> None:
    from aws_array_plugin.config import load_config
    from aws_array_plugin.server import RunningServer, serve

    cert, key = _self_signed(tmp_path)
    cfg = load_config({"defaultQueue": "default", "server": {"tlsCertFile": str(cert), "tlsKeyFile": str(key)}})
    started: asyncio.Future[RunningServer] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(cfg, host="127.0.0.1", port=0, metrics_port=0, health_port=0, stop=stop,
                                     started=started))
    running = await asyncio.wait_for(started, 30)
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{running.port}", creds) as ch:
            agents = await agent_pb2_grpc.AgentMetadataServiceStub(ch).ListAgents(agent_pb2.ListAgentsRequest(),
                                                                                  timeout=5)
            assert len(agents.agents) == 1
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            try:
                await agent_pb2_grpc.AgentMetadataServiceStub(ch).ListAgents(agent_pb2.ListAgentsRequest(), timeout=3)
                raise AssertionError("a plaintext call to the TLS port succeeded")
            except grpc.aio.AioRpcError as exc:
                assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        assert running.health_port
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.health_port}") as ch:
            status = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            try:  # nothing but health there
                await agent_pb2_grpc.AgentMetadataServiceStub(ch).ListAgents(agent_pb2.ListAgentsRequest(), timeout=3)
                raise AssertionError("the health port served ListAgents")
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
