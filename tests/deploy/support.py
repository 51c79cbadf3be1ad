"""Helpers of the deployment tests: the chart rendered by Helm's own engine (helm-python-sdk,
Helm's Go SDK through ctypes: no `helm` binary), the CLI run as a subprocess, and Prometheus tools.

Prometheus: `prometheus` and `promtool` come from PATH (Debian: `apt-get install prometheus`) or from
$PROMETHEUS_BIN / $PROMTOOL_BIN. Without them these tests are skipped on a developer machine and fail
under CI (CI=true), so a missing install never passes silently.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "aws-array-plugin"
RELEASE = "flyte-aws"
NAMESPACE = "flyte"

# Every optional feature of the chart switched on.
ALL_FEATURES: dict[str, Any] = {
    "serviceAccount": {"roleArn": "arn:aws:iam::123456789012:role/aws-array-plugin"},
    "service": {"headless": {"enabled": True}},
    "tls": {"enabled": True, "secretName": "aws-array-plugin-tls", "clientCa": True},
    "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
    "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5},
    "networkPolicy": {
        "enabled": True, "propellerNamespace": "flyte-system",
        "propellerPodLabels": {"app.kubernetes.io/name": "flytepropeller"},
        "monitoringNamespace": "observability",
    },
    "prometheusOperator": {"enabled": True, "serviceMonitor": {"labels": {"release": "kps"}}},
    "grafanaDashboard": {"enabled": True, "namespace": "grafana", "annotations": {"grafana_folder": "Flyte"}},
    "config": {
        "region": "eu-west-1",
        "defaultQueue": "flyte-default",
        "allowedRoles": ["arn:aws:iam::123456789012:role/flyte-*"],
        "queueRouting": [{"match": {"project": "ml-*", "gpu": True}, "queue": "gpu", "shareIdentifier": "ml"}],
        "defaultTimeout": "24h",
        "rateLimits": {"submit": {"rate": 20, "burst": 20}, "events": {"rate": 5, "burst": 10}},
        "status": {
            "refreshInterval": "15s",
            # Push-first status, as deploy/aws/batch-events.cloudformation.yaml's outputs fill it in.
            "events": {
                "enabled": True,
                "stream": "arn:aws:kinesis:eu-west-1:123456789012:stream/aws-array-plugin-batch-events",
                "deadLetterQueue": "https://sqs.eu-west-1.amazonaws.com/123456789012/aws-array-plugin-batch-events-dlq",
                "heartbeatTimeout": "90s",
                "reconcileInterval": "30m",
                "arrayChildEvents": False,
            },
        },
        "server": {"gracePeriod": 45, "maxReceiveMessageBytes": 67108864},
    },
}


@dataclass
class Rendered:
    """One render of the chart: the manifests by kind/name, and NOTES.txt."""

    files: dict[str, str]
    objects: list[dict[str, Any]]
    notes: str

    def get(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [o for o in self.objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self.objects)


def render(values: dict[str, Any] | None = None, *, release: str = RELEASE, namespace: str = NAMESPACE) -> Rendered:
    import helm_python

    with helm_python.Chart.load(CHART) as chart:
        files = chart.render(values, name=release, namespace=namespace, is_install=True)
    objects: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append(doc)
    return Rendered(files, objects, notes)


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`aws-array-plugin ARGS` as a user runs it (the package's CLI in a fresh interpreter)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "aws_array_plugin", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env, check=False,
    )


def tool(name: str) -> str:
    """Path of a Prometheus tool, or skip (developer machine) / fail (CI) when it is missing."""
    path = os.environ.get(f"{name.upper()}_BIN") or shutil.which(name)
    if not path:
        message = f"{name} not found (apt-get install prometheus, or set {name.upper()}_BIN)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrometheusServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, **params: str) -> tuple[int, dict[str, Any]]:
        import json

        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


def start_prometheus(config: dict[str, Any], workdir: Path) -> PrometheusServer:
    """A real Prometheus on loopback with `config`; waits until it is ready."""
    binary = tool("prometheus")
    port = free_port()
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    log = workdir / "prometheus.log"
    process = subprocess.Popen(
        [binary, f"--config.file={config_file}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    server = PrometheusServer(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    stop_prometheus(server)
    raise RuntimeError("prometheus did not become ready within 30 s")


def stop_prometheus(server: PrometheusServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)


def is_duration(model: type[Any], alias: str) -> bool:
    """A config field is a duration when it takes "1m" and means 60 (seconds)."""
    from pydantic import BaseModel, ValidationError

    assert issubclass(model, BaseModel)
    try:
        value = getattr(model.model_validate({alias: "1m"}), next(
            n for n, f in model.model_fields.items() if (f.alias or n) == alias))
    except ValidationError:
        return False
    return isinstance(value, float) and value == 60.0


def duration_paths() -> set[str]:
    """Dotted camelCase paths of every duration key of the service config."""
    from typing import get_args, get_origin

    from pydantic import BaseModel

    from aws_array_plugin.config import Config

    found: set[str] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            alias = field.alias or name
            if field.annotation is float and is_duration(model, alias):
                found.add(prefix + alias)
            nested = [c for c in (field.annotation, *get_args(field.annotation))
                      if isinstance(c, type) and issubclass(c, BaseModel)]
            if nested:
                walk(nested[0], prefix + alias + ("[]." if get_origin(field.annotation) is list else "."))

    walk(Config, "")
    return found
