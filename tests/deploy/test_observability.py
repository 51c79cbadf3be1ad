"""The Grafana dashboard and the alert rules: valid PromQL for a real Prometheus, only metrics the
service exports, the panels and alerts the operators need."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml

from aws_array_plugin.metrics import PREFIX, Metrics
from tests.deploy.support import REPO, PrometheusServer, tool

DASHBOARD = REPO / "deploy" / "grafana" / "aws-array-plugin.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yaml"
ALERT_TESTS = REPO / "tests" / "deploy" / "prometheus" / "alerts_test.yaml"

# Grafana variables, replaced as Grafana would with "All" selected.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$namespace": ".*",
    "$job": ".*",
    "$queue": ".*",
}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables replaced) of every panel target."""
    queries = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"unreplaced variable in {panel['title']}: {expr}"
            queries.append((panel["title"], expr))
    return queries


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def exported_series_names() -> set[str]:
    """Every series name the service's metrics expose (Counter -> _total, Histogram -> _bucket/_sum/_count)."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count", "created")}
        else:
            names.add(family.name)
    return names


def metric_names(expr: str) -> set[str]:
    return set(re.findall(rf"\b{PREFIX}_[a-z0-9_]+", expr))


# --- alerts ------------------------------------------------------------------------------------------

def test_alert_rules_pass_promtool_check() -> None:
    result = subprocess.run([tool("promtool"), "check", "rules", str(ALERTS)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_alert_rules_behave_as_their_unit_tests_say() -> None:
    result = subprocess.run([tool("promtool"), "test", "rules", str(ALERT_TESTS)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", ALERT_TESTS.read_text()))
    assert tested == {rule["alert"] for rule in alert_rules()}, "every alert needs a promtool unit test"


def test_the_alerts_operators_need_exist() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert set(rules) == {
        "AwsArrayPluginAwsThrottling",  # sustained throttling
        "AwsArrayPluginSubmissionBacklogGrowing",  # growing backlog
        "AwsArrayPluginStaleStatuses",  # stale statuses
        "AwsArrayPluginJobsStuckRunnable",  # jobs stuck RUNNABLE
        "AwsArrayPluginRpcErrors",
        "AwsArrayPluginEventsStopped",  # status events on, but the event source is unhealthy
        "AwsArrayPluginEventsDeadLettered",  # EventBridge gave up on events
    }
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert re.fullmatch(r"\d+m", rule["for"]), name
        assert "sum by (namespace, job" in rule["expr"] or "max by (namespace, job" in rule["expr"], name


def test_the_events_stopped_alert_needs_events_on_and_jobs_in_flight() -> None:
    """event_source_healthy is 0 on a replica with events off as well: only the polling fallback (1 only while
    the *enabled* source is unhealthy) tells them apart. The phases are the status engine's in-flight ones."""
    from aws_array_plugin.status_engine import _PHASE_NAMES

    rule = next(r for r in alert_rules() if r["alert"] == "AwsArrayPluginEventsStopped")
    expr = rule["expr"]
    assert "aws_array_plugin_event_source_healthy == 0" in expr
    assert "aws_array_plugin_status_polling_fallback == 1" in expr
    phases = re.search(r'aws_array_plugin_tracked_jobs\{phase=~"([a-z|]+)"\}', expr)
    assert phases, expr
    assert set(phases.group(1).split("|")) == {"queued", "initializing", "running"}
    assert set(phases.group(1).split("|")) <= set(_PHASE_NAMES.values())
    assert rule["for"] == "5m"
    dead = next(r for r in alert_rules() if r["alert"] == "AwsArrayPluginEventsDeadLettered")
    assert 'aws_array_plugin_event_source_gaps_total{cause="dead_letter"}' in dead["expr"]


# --- dashboard ---------------------------------------------------------------------------------------

def test_dashboard_and_alerts_query_only_exported_metrics() -> None:
    exported = exported_series_names()
    used: set[str] = set()
    for _, expr in dashboard_queries():
        used |= metric_names(expr)
    for rule in alert_rules():
        used |= metric_names(rule["expr"])
    for variable in dashboard()["templating"]["list"]:
        used |= metric_names(json.dumps(variable.get("query", "")))
    assert used, "no metric found: is the extraction broken?"
    assert sorted(used - exported) == []


def test_every_dashboard_query_is_valid_promql_for_a_real_prometheus(prometheus: PrometheusServer) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    for title, expr in queries:
        status, body = prometheus.get("/api/v1/query", query=expr)
        assert (status, body["status"]) == (200, "success"), f"{title}: {expr}: {body}"
    # The check can fail: a broken expression is refused.
    status, body = prometheus.get("/api/v1/query", query="sum by (queue (aws_array_plugin_tracked_jobs)")
    assert (status, body["errorType"]) == (400, "bad_data")


def test_variable_queries_select_existing_series(prometheus: PrometheusServer) -> None:
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert match, variable["name"]
        selector = match.group(1)
        for name, value in GRAFANA_VARIABLES.items():
            selector = selector.replace(name, value)
        status, body = prometheus.get("/api/v1/series", **{"match[]": selector})
        assert (status, body["status"]) == (200, "success"), f"{variable['name']}: {body}"


def test_dashboard_has_the_panels_operators_need() -> None:
    titles = {panel["title"] for panel in dashboard()["panels"]}
    for needed in (
        "Jobs by phase and queue",  # job phases over time per queue
        "Array progress by queue",  # array progress
        "Submission backlog",  # submission backlog
        "SubmitJob rate against the allowed rate",  # submit rate against the quota
        "AWS throttles by operation",
        "AWS call latency p99 by operation",  # AWS latency
        "GetTask latency",  # p50 / p99
        "Status freshness",
    ):
        assert needed in titles, needed
    get_task = next(p for p in dashboard()["panels"] if p["title"] == "GetTask latency")
    assert [t["legendFormat"] for t in get_task["targets"]] == ["p50", "p99"]
    assert "histogram_quantile(0.5," in get_task["targets"][0]["expr"]
    assert "histogram_quantile(0.99," in get_task["targets"][1]["expr"]


EVENTS_PANELS = {
    # title: (metrics the panel shows, legends)
    "Events received and applied by kind": (
        {"events_received_total", "events_applied_total"}, ["received {{kind}}", "applied {{kind}}"]),
    "Duplicate, out-of-order and untracked events": (
        {"events_duplicate_total", "events_out_of_order_total", "events_untracked_total"},
        ["duplicate", "out of order", "untracked"]),
    "Event lag": ({"event_lag_seconds_bucket"}, ["p50", "p99"]),
    "DescribeJobs by reason": ({"status_describes_total"}, ["{{reason}}"]),
    "Event source healthy and polling fallback": (
        {"event_source_healthy", "status_polling_fallback"}, ["healthy {{pod}}", "polling fallback {{pod}}"]),
    "Stream behind and heartbeat age": (
        {"event_stream_behind_seconds", "event_heartbeat_age_seconds"}, ["behind {{pod}}", "heartbeat age {{pod}}"]),
    "Event source gaps by cause": ({"event_source_gaps_total"}, ["{{cause}}"]),
}


def test_dashboard_has_an_events_row_with_every_event_metric() -> None:
    panels = dashboard()["panels"]
    rows = [p for p in panels if p["type"] == "row"]
    (row,) = [r for r in rows if r["title"] == "Events"]
    after = [r["gridPos"]["y"] for r in rows if r["gridPos"]["y"] > row["gridPos"]["y"]]
    end = min(after, default=10**6)
    in_row = {p["title"]: p for p in panels if p["type"] != "row" and row["gridPos"]["y"] < p["gridPos"]["y"] < end}
    assert set(in_row) == set(EVENTS_PANELS)
    for title, (metrics, legends) in EVENTS_PANELS.items():
        targets = in_row[title]["targets"]
        shown = set().union(*(metric_names(t["expr"]) for t in targets))
        assert shown == {f"{PREFIX}_{m}" for m in metrics}, title
        assert [t["legendFormat"] for t in targets] == legends, title
    lag = in_row["Event lag"]["targets"]
    assert lag[0]["expr"].startswith("histogram_quantile(0.5,") and lag[1]["expr"].startswith("histogram_quantile(0.99,")
    # Every metric of the event source is on the dashboard.
    event_metrics = {f.name for f in Metrics().registry.collect()
                     if f.name.startswith((f"{PREFIX}_event", f"{PREFIX}_status_describes", f"{PREFIX}_status_polling"))}
    on_dashboard = {re.sub(r"_(total|bucket)$", "", m) for _, (ms, _) in EVENTS_PANELS.items() for m in ms}
    assert event_metrics == {f"{PREFIX}_{m}" for m in on_dashboard}


def test_dashboard_is_well_formed() -> None:
    dash = dashboard()
    assert dash["uid"] == "aws-array-plugin"
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert variables == {"datasource", "namespace", "job", "queue"}
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        own = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not own & cells, f"{panel['title']} overlaps another panel"
        cells |= own
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            # Every query is scoped by the dashboard's namespace and job selectors.
            for selector in re.findall(rf"{PREFIX}_[a-z0-9_]+\{{([^}}]*)\}}", target["expr"]):
                assert 'namespace=~"$namespace"' in selector and 'job=~"$job"' in selector, target["expr"]
            assert re.findall(rf"{PREFIX}_[a-z0-9_]+(?!\{{|[a-z0-9_])", target["expr"]) == [], target["expr"]


@pytest.mark.parametrize("quantile", ["0.5", "0.99"])
def test_latency_quantiles_aggregate_by_le(quantile: str) -> None:
    for _, expr in dashboard_queries():
        if expr.startswith(f"histogram_quantile({quantile},"):
            assert re.search(r"sum by \(le(, \w+)?\) \(rate\(\w+_bucket\{", expr), expr
