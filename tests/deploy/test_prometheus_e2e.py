"""End to end: `aws-array-plugin serve` (a subprocess) runs tasks on the emulated AWS, a real Prometheus
scrapes its /metrics, and the dashboard's queries and the alert rules work on what it scraped."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from aws_array_plugin_demo.propeller import TERMINAL, shell
from aws_batch_emulator.process import EmulatorProcess, terminate
from tests.deploy.support import REPO, PrometheusServer, free_port, start_prometheus, stop_prometheus
from tests.deploy.test_observability import ALERTS, GRAFANA_VARIABLES, dashboard
from tests.replicas import start_emulator, subprocess_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCRAPE = "1s"
# Queries (panel title, legend) whose series only exist when something is wrong, which this run does not provoke.
NO_DATA_EXPECTED = {
    ("Jobs stuck RUNNABLE by reason", "{{reason}}"),  # needs a queue whose compute environments cannot place a job
}
# The run has status.events off: the event source's labelled series (per event kind, per gap cause) may not
# exist at all, while its unlabelled ones show 0. Their panels may be empty, and need not be.
EVENTS_OFF_MAY_BE_EMPTY = {
    ("Events received and applied by kind", "received {{kind}}"),
    ("Events received and applied by kind", "applied {{kind}}"),
    ("Duplicate, out-of-order and untracked events", "duplicate"),
    ("Duplicate, out-of-order and untracked events", "out of order"),
    ("Duplicate, out-of-order and untracked events", "untracked"),
    ("Event lag", "p50"),
    ("Event lag", "p99"),
    ("Event source healthy and polling fallback", "healthy {{pod}}"),
    ("Event source healthy and polling fallback", "polling fallback {{pod}}"),
    ("Stream behind and heartbeat age", "behind {{pod}}"),
    ("Stream behind and heartbeat age", "heartbeat age {{pod}}"),
    ("Event source gaps by cause", "{{cause}}"),
}
# Metrics declared in aws_array_plugin/metrics.py that the server does not set yet. Their panels are expected
# to be empty, and the test fails as soon as one of them has data: then remove it from here.
NOT_YET_EXPORTED: set[str] = set()


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[EmulatorProcess]:
    process = start_emulator(tmp_path, "--step", "0.05", "--concurrency", "8", "--throttle", "DescribeJobs=0.3",
                             "--throttle", "SubmitJob=0.3", "--seed", "7")
    try:
        yield process
    finally:
        process.stop()


def _wait_serving(channel: grpc.Channel, process: subprocess.Popen[Any], log: Path, timeout: float = 60) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
            if status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"serve did not become SERVING: {log.read_text()[-3000:]}")


def _requests(info: dict[str, Any]) -> list[tuple[str, Any]]:
    """(task type, CreateTaskRequest): two aws-batch tasks and a legacy map task of 6, child 3 failing."""
    from tests.templates import create_request, literal_map, task_template

    requests = []
    for i in range(2):
        req = create_request(task_template("awsbatch_minimal_task"), bucket=info["bucket"], execution=f"single{i}",
                             inputs=literal_map({"x": i}, {"x": int}))
        requests.append(("aws-batch", shell(req, "exit 0")))
    req = create_request(task_template("square_legacy_map"), bucket=info["bucket"], execution="map6",
                         inputs=literal_map({"x": list(range(6))}, {"x": list[int]}))
    requests.append(("container_array", shell(req, 'test "${AWS_BATCH_JOB_ARRAY_INDEX:-0}" != 3')))
    return requests


def _query(prometheus: PrometheusServer, expr: str) -> list[dict[str, Any]]:
    status, body = prometheus.get("/api/v1/query", query=expr)
    assert (status, body["status"]) == (200, "success"), f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_prometheus_scrapes_a_running_plugin_and_the_dashboard_shows_data(
    emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    from flyteidl.admin import agent_pb2
    from flyteidl.service import agent_pb2_grpc

    grpc_port, metrics_port = free_port(), free_port()
    config = {
        "region": emulator_process.info["region"],
        "defaultQueue": emulator_process.info["queue"],
        "allowedRoles": ["*"],
        "status": {"refreshInterval": "1s", "maxStaleness": "1s"},
        "server": {"gracePeriod": "5s"},
    }
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = subprocess_env(emulator_process.client_env())
    log = tmp_path / "serve.log"
    plugin = subprocess.Popen(
        [sys.executable, "-m", "aws_array_plugin", "serve", "--host", "127.0.0.1", "--port", str(grpc_port),
         "--metrics-port", str(metrics_port), "--config", str(config_file)],
        stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=REPO, env=env,
    )
    prom_dir = tmp_path / "prometheus"
    prom_dir.mkdir()
    prometheus = None
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        _wait_serving(channel, plugin, log)
        prometheus = start_prometheus({
            "global": {"scrape_interval": SCRAPE, "evaluation_interval": SCRAPE},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{
                "job_name": "aws-array-plugin",
                "scrape_interval": SCRAPE,
                "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"],
                                    "labels": {"namespace": "flyte", "pod": "aws-array-plugin-0"}}],
            }],
        }, prom_dir)

        agents = agent_pb2_grpc.AsyncAgentServiceStub(channel)
        metas = []
        for task_type, req in _requests(emulator_process.info):
            resp = agents.CreateTask(req, timeout=30)
            metas.append((task_type, resp.resource_meta, req.output_prefix))
        phases: dict[int, int] = {}
        deadline = time.monotonic() + 60
        while len(phases) < len(metas) and time.monotonic() < deadline:
            for i, (task_type, meta, prefix) in enumerate(metas):
                if i in phases:
                    continue
                res = agents.GetTask(agent_pb2.GetTaskRequest(
                    task_type=task_type, resource_meta=meta, output_prefix=prefix,
                    task_category=agent_pb2.TaskCategory(name=task_type, version=1 if task_type == "container_array" else 0),
                ), timeout=30).resource
                if res.phase in TERMINAL:
                    phases[i] = res.phase
            time.sleep(0.3)
        assert len(phases) == len(metas), f"tasks did not finish: {phases}; {log.read_text()[-3000:]}"

        deadline = time.monotonic() + 20
        while True:
            targets = prometheus.get("/api/v1/targets")[1]["data"]["activeTargets"]
            if [t["health"] for t in targets] == ["up"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert [t["health"] for t in targets] == ["up"], targets

        variables = dict(GRAFANA_VARIABLES, **{"$__rate_interval": "1m"})
        queries: dict[tuple[str, str], str] = {}
        for panel in dashboard()["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for name, value in variables.items():
                    expr = expr.replace(name, value)
                queries[(panel["title"], target.get("legendFormat", ""))] = expr
        expected_empty = NO_DATA_EXPECTED | {key for key, expr in queries.items()
                                             if any(metric in expr for metric in NOT_YET_EXPORTED)}
        assert set(queries) >= EVENTS_OFF_MAY_BE_EMPTY, "a panel of the Events row was renamed: update this test"
        # Rates need two scrapes of a series inside their window: poll until the picture is complete.
        deadline = time.monotonic() + 20
        while True:
            empty = {key for key, expr in queries.items() if not _query(prometheus, expr)}
            if expected_empty <= empty <= expected_empty | EVENTS_OFF_MAY_BE_EMPTY or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert sorted(empty - EVENTS_OFF_MAY_BE_EMPTY) == sorted(expected_empty - EVENTS_OFF_MAY_BE_EMPTY), \
            f"queries without data: {sorted(empty)}"
        assert expected_empty <= empty, f"queries with data that should have none: {sorted(expected_empty - empty)}"
        for metric in NOT_YET_EXPORTED:
            assert _query(prometheus, f"count({metric})") == [], f"{metric} is exported now: update NOT_YET_EXPORTED"

        # The figures behind the panels are the run's: 3 CreateTasks, DescribeJobs throttled by the emulator.
        created = _query(prometheus, 'sum(aws_array_plugin_rpc_requests_total{method="CreateTask", outcome="ok"})')
        assert float(created[0]["value"][1]) == 3.0
        throttled = _query(prometheus, 'sum(aws_array_plugin_aws_calls_total{operation="describe_jobs", '
                                       'outcome="throttled"})')
        assert float(throttled[0]["value"][1]) >= 1.0
        if "aws_array_plugin_tracked_jobs" not in NOT_YET_EXPORTED:
            queues = {r["metric"]["queue"] for r in _query(prometheus, "aws_array_plugin_tracked_jobs")}
            assert queues == {emulator_process.info["queue"]}

        # Every alert rule evaluates on the real series without error.
        groups = prometheus.get("/api/v1/rules")[1]["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert len(rules) == 7
        assert {r["name"]: r["health"] for r in rules} == {r["name"]: "ok" for r in rules}
    finally:
        if prometheus is not None:
            stop_prometheus(prometheus)
        code = terminate(plugin)
    # SIGTERM: the server drains and exits 0.
    assert code == 0, log.read_text()[-3000:]
