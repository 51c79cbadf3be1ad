"""The Helm chart, rendered by Helm's own engine, checked against the Kubernetes schemas, the service's
config model and CLI, and its own values schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python
import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from aws_array_plugin import propeller_config
from aws_array_plugin.config import Config, load_config
from tests.deploy.support import (
    ALL_FEATURES,
    CHART,
    NAMESPACE,
    RELEASE,
    REPO,
    Rendered,
    render,
    run_cli,
)

FULLNAME = f"{RELEASE}-aws-array-plugin"
KUBE_VERSION = "1.30.0"  # the oldest EKS version still in standard support that we test against
CHART_OWNED_SERVER_KEYS = {"tlsCertFile", "tlsKeyFile", "tlsClientCaFile"}


def _values_yaml() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return data


def _schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return data


def _serve_args(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in container, "the image's entrypoint `aws-array-plugin serve` must stay in charge"
    args = container["args"]
    assert len(args) % 2 == 0, args
    return dict(zip(args[::2], args[1::2], strict=True))


def _port(container: dict[str, Any], name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    return int(ports[name])


def _config_from(rendered: Rendered) -> dict[str, Any]:
    cm = rendered.get("ConfigMap", FULLNAME)
    data: dict[str, Any] = yaml.safe_load(cm["data"]["config.yaml"])
    return data


# --- what gets rendered -----------------------------------------------------------------------------

def test_default_render_has_only_the_core_objects(default_render: Rendered) -> None:
    assert default_render.kinds() == ["ConfigMap", "Deployment", "Service", "ServiceAccount"]


def test_every_feature_switched_on_renders_every_object(full_render: Rendered) -> None:
    assert full_render.kinds() == [
        "ConfigMap", "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy",
        "PodDisruptionBudget", "PrometheusRule", "Service", "Service", "ServiceAccount", "ServiceMonitor",
    ]
    names = sorted(o["metadata"]["name"] for o in full_render.objects if o["kind"] == "Service")
    assert names == [FULLNAME, f"{FULLNAME}-headless"]


@pytest.mark.parametrize("which", ["default", "full"])
def test_manifests_match_the_kubernetes_schemas(which: str, default_render: Rendered, full_render: Rendered) -> None:
    rendered = default_render if which == "default" else full_render
    checked = 0
    for obj in rendered.objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs: test_prometheus_operator_objects_match_their_crd_models
        # strict: unknown fields are errors, as `kubectl apply --validate=strict` makes them.
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        assert obj["metadata"]["namespace"] in (NAMESPACE, "grafana")
        checked += 1
    assert checked == (4 if which == "default" else 9)


def test_prometheus_operator_objects_match_their_crd_models(full_render: Rendered) -> None:
    """The operator's CRD models (cloudcoil, generated from the CRDs) accept the objects, and drop no
    field (a field the CRD does not know would be pruned by the API server)."""
    from cloudcoil.models.prometheus_operator import v1

    for kind, model in (("ServiceMonitor", v1.ServiceMonitor), ("PrometheusRule", v1.PrometheusRule)):
        obj = full_render.get(kind)
        parsed = model.model_validate(obj)
        dumped = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
        assert dumped == obj, kind


def test_helm_lint_strict_passes() -> None:
    for values in (None, ALL_FEATURES):
        report = helm_python.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert problems == [] and report["errors"] == [], report


# --- the Deployment agrees with the server ----------------------------------------------------------

@pytest.mark.parametrize("ports", [None, {"grpc": 7000, "metrics": 7100}])
def test_ports_probes_and_serve_args_agree(ports: dict[str, int] | None) -> None:
    rendered = render({"ports": ports} if ports else None)
    grpc_port, metrics_port = (ports or {"grpc": 8000, "metrics": 9090}).values()
    deployment = rendered.get("Deployment", FULLNAME)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = _serve_args(deployment)
    assert args == {
        "--host": "0.0.0.0",
        "--port": str(grpc_port),
        "--metrics-port": str(metrics_port),
        "--config": "/etc/aws-array-plugin/config.yaml",
    }
    assert _port(container, "grpc") == grpc_port
    assert _port(container, "metrics") == metrics_port
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": grpc_port}, probe
    service = rendered.get("Service", FULLNAME)
    by_name = {p["name"]: p for p in service["spec"]["ports"]}
    # k8s:// dials pod IPs at the endpoint's port: the Service port must equal the container port.
    assert by_name["grpc"]["port"] == grpc_port and by_name["grpc"]["targetPort"] == "grpc"
    assert by_name["metrics"]["port"] == metrics_port and by_name["metrics"]["targetPort"] == "metrics"
    # --config names the file of the mounted ConfigMap.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert Path(args["--config"]).parent == Path(mounts["config"])
    assert volumes["config"]["configMap"]["name"] == FULLNAME
    assert Path(args["--config"]).name in rendered.get("ConfigMap", FULLNAME)["data"]
    assert f"k8s://{FULLNAME}.{NAMESPACE}:{grpc_port}" in rendered.notes


def test_dockerfile_entrypoint_is_serve_with_the_chart_default_ports() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["aws-array-plugin", "serve"]' in text
    assert 'CMD ["--host", "0.0.0.0", "--port", "8000", "--metrics-port", "9090"]' in text
    assert re.search(r"^USER 65532:65532$", text, re.M)
    bases = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert len(bases) == 1 and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", bases[0])
    assert "--constraint requirements/constraints.txt" in text
    values = _values_yaml()
    assert values["ports"] == {"grpc": 8000, "metrics": 9090, "health": 8081}
    assert values["podSecurityContext"]["runAsUser"] == 65532


def test_pod_is_locked_down(default_render: Rendered) -> None:
    pod = default_render.get("Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}
    assert container["image"] == "ghcr.io/aws-array-plugin/aws-array-plugin:0.1.0"


def test_image_tag_and_digest() -> None:
    digest = "sha256:" + "ab" * 32
    assert render({"image": {"tag": "1.2.3"}}).get("Deployment")["spec"]["template"]["spec"]["containers"][0][
        "image"] == "ghcr.io/aws-array-plugin/aws-array-plugin:1.2.3"
    assert render({"image": {"repository": "r.example/x", "digest": digest}}).get("Deployment")["spec"]["template"][
        "spec"]["containers"][0]["image"] == f"r.example/x@{digest}"


@pytest.mark.parametrize(("values", "expected"), [
    (None, 5 + 20 + 10),
    ({"config": {"server": {"gracePeriod": 45}}}, 5 + 45 + 10),
    ({"preStopDelaySeconds": 0, "terminationGracePeriodMarginSeconds": 3}, 0 + 20 + 3),
])
def test_termination_grace_period_follows_the_server_grace_period(values: dict[str, Any] | None, expected: int) -> None:
    rendered = render(values)
    pod = rendered.get("Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == expected
    grace = _config_from(rendered)["server"]["gracePeriod"]
    delay = (values or {}).get("preStopDelaySeconds", 5)
    margin = (values or {}).get("terminationGracePeriodMarginSeconds", 10)
    assert expected == delay + grace + margin
    lifecycle = pod["containers"][0].get("lifecycle")
    assert lifecycle == ({"preStop": {"exec": {"command": ["sleep", str(delay)]}}} if delay else None)


def test_config_change_rolls_the_pods() -> None:
    def checksum(values: dict[str, Any] | None) -> str:
        return str(render(values).get("Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum(None) != checksum({"config": {"defaultQueue": "other"}})
    assert checksum(None) == checksum(None)


# --- the ConfigMap is a config the service accepts ---------------------------------------------------

@pytest.mark.parametrize("which", ["default", "full"])
def test_rendered_config_passes_config_check(
    which: str, default_render: Rendered, full_render: Rendered, tmp_path: Path
) -> None:
    rendered = default_render if which == "default" else full_render
    config_file = tmp_path / "config.yaml"
    config_file.write_text(rendered.get("ConfigMap", FULLNAME)["data"]["config.yaml"])
    result = run_cli("config", "check", str(config_file))
    assert result.returncode == 0, result.stderr
    effective = yaml.safe_load(result.stdout)
    assert load_config(effective) == load_config(yaml.safe_load(config_file.read_text()))
    if which == "default":
        assert effective["server"]["gracePeriod"] == 20.0
        assert effective["server"]["tlsCertFile"] == ""
        assert "allowedRoles is empty" in result.stderr
        return
    assert "allowedRoles is empty" not in result.stderr
    assert effective["region"] == "eu-west-1"
    assert effective["defaultTimeout"] == 86400.0
    assert effective["status"]["refreshInterval"] == 15.0
    assert effective["rateLimits"]["submit"] == {"rate": 20.0, "burst": 20}
    assert effective["rateLimits"]["events"] == {"rate": 5.0, "burst": 10}
    assert effective["queueRouting"][0]["match"]["project"] == "ml-*"
    assert effective["server"] == {
        "gracePeriod": 45.0,
        "maxReceiveMessageBytes": 67108864,
        "maxSendMessageBytes": 4194304,
        "tlsCertFile": "/etc/aws-array-plugin-tls/tls.crt",
        "tlsKeyFile": "/etc/aws-array-plugin-tls/tls.key",
        "tlsClientCaFile": "/etc/aws-array-plugin-tls/ca.crt",
    }


# --- status events (config.status.events) -------------------------------------------------------------

EVENTS = ALL_FEATURES["config"]["status"]["events"]


def test_events_are_off_by_default(default_render: Rendered, tmp_path: Path) -> None:
    assert _values_yaml()["config"]["status"]["events"]["enabled"] is False
    events = _config_from(default_render)["status"]["events"]
    assert events["enabled"] is False
    assert load_config(_config_from(default_render)).status.events.enabled is False
    assert "Status events are on" not in default_render.notes
    assert "GetRecords" not in default_render.notes


def test_events_config_renders_into_the_service_config(full_render: Rendered, tmp_path: Path) -> None:
    """Every key given under config.status.events reaches the service's file unchanged, values.yaml's own
    defaults fill the rest, and the service reads them as meant (durations in seconds)."""
    rendered = _config_from(full_render)["status"]["events"]
    assert rendered == {"pollInterval": _values_yaml()["config"]["status"]["events"]["pollInterval"], **EVENTS}
    config_file = tmp_path / "config.yaml"
    config_file.write_text(full_render.get("ConfigMap", FULLNAME)["data"]["config.yaml"])
    result = run_cli("config", "check", str(config_file))
    assert result.returncode == 0, result.stderr
    effective = yaml.safe_load(result.stdout)["status"]["events"]
    assert effective["enabled"] is True
    assert effective["stream"] == EVENTS["stream"]
    assert effective["deadLetterQueue"] == EVENTS["deadLetterQueue"]
    assert effective["arrayChildEvents"] is False
    assert (effective["heartbeatTimeout"], effective["reconcileInterval"], effective["pollInterval"]) == (90.0, 1800.0, 1.0)
    # Keys left out take the service's defaults.
    defaults = Config().status.events
    assert effective["eventBus"] == defaults.event_bus == "default"
    assert effective["heartbeatInterval"] == defaults.heartbeat_interval == 15.0
    # The release notes say the events are on and where the AWS side comes from.
    assert "Status events are on" in full_render.notes
    assert EVENTS["stream"] in full_render.notes
    assert "deploy/aws/batch-events.cloudformation.yaml" in full_render.notes
    assert "deadLetterQueue is empty" not in full_render.notes


def test_events_without_a_stream_fail_the_render() -> None:
    with pytest.raises(helm_python.HelmError, match=r"config\.status\.events\.stream is required"):
        render({"config": {"status": {"events": {"enabled": True}}}})
    with pytest.raises(helm_python.HelmError, match=r"config\.status\.events\.stream is required"):
        render({"config": {"status": {"events": {"enabled": True, "stream": ""}}}})


def test_events_without_a_dead_letter_queue_warn() -> None:
    notes = render({"config": {"status": {"events": {"enabled": True, "stream": "s"}}}}).notes
    assert "Status events are on" in notes
    assert "WARNING: config.status.events.deadLetterQueue is empty" in notes


@pytest.mark.parametrize(("values", "reads"), [
    ({"replicaCount": 2}, None),
    ({"replicaCount": 5}, None),  # 5 GetRecords per second per shard: Kinesis' limit, not over it
    ({"replicaCount": 6}, "6.0"),
    ({"replicaCount": 6, "pollInterval": "1500ms"}, None),
    ({"replicaCount": 3, "pollInterval": "500ms"}, "6.0"),
    ({"replicaCount": 20, "pollInterval": "0.05m"}, "6.7"),
    ({"replicaCount": 2, "autoscaling": {"enabled": True, "maxReplicas": 10}, "pollInterval": 2}, None),
    ({"replicaCount": 2, "autoscaling": {"enabled": True, "maxReplicas": 12}, "pollInterval": "2s"}, "6.0"),
])
def test_notes_warn_when_the_replicas_overrun_the_shard_read_limit(values: dict[str, Any], reads: str | None) -> None:
    events = {"enabled": True, "stream": "s", "deadLetterQueue": "https://sqs.example/q"}
    if "pollInterval" in values:
        events["pollInterval"] = values["pollInterval"]
    chart_values: dict[str, Any] = {k: v for k, v in values.items() if k != "pollInterval"}
    chart_values["config"] = {"status": {"events": events}}
    notes = render(chart_values).notes
    if reads is None:
        assert "GetRecords" not in notes
    else:
        assert f"make {reads} GetRecords calls" in notes
        assert "Kinesis serves 5 per shard" in notes
    # Without events, nothing is read and nothing is said, whatever the replicas.
    assert "GetRecords" not in render({k: v for k, v in chart_values.items() if k != "config"}).notes


def test_tls_mounts_the_secret_and_probes_the_plaintext_health_port(full_render: Rendered) -> None:
    pod = full_render.get("Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert {"name": "tls", "secret": {"secretName": "aws-array-plugin-tls"}} in pod["volumes"]
    assert {"name": "tls", "mountPath": "/etc/aws-array-plugin-tls", "readOnly": True} in container["volumeMounts"]
    # The kubelet's gRPC probe cannot do TLS: it checks the health-only plaintext port the server opens.
    assert container["readinessProbe"]["grpc"] == {"port": 8081}
    assert container["livenessProbe"]["grpc"] == {"port": 8081}
    args = container["args"]
    assert args[args.index("--health-port") + 1] == "8081"
    assert {"name": "health", "containerPort": 8081, "protocol": "TCP"} in container["ports"]
    assert "propeller 1.16 presents none" in full_render.notes


def test_tls_needs_a_secret_name() -> None:
    with pytest.raises(helm_python.HelmError, match=r"tls\.secretName is required"):
        render({"tls": {"enabled": True}})


# --- values and their schema ------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "message"), [
    ({"replicas": 3}, "replicas"),
    ({"config": {"regoin": "eu-west-1"}}, "regoin"),
    ({"config": {"server": {"tlsCertFile": "/x"}}}, "tlsCertFile"),
    ({"config": {"status": {"refreshInterval": "soon"}}}, "refreshInterval"),
    ({"ports": {"grpc": "8000", "metrics": 9090}}, "grpc"),
    ({"prometheusOperator": {"serviceMonitor": {"intervall": "30s"}}}, "intervall"),
    ({"config": {"status": {"events": {"strem": "s"}}}}, "strem"),
    ({"config": {"status": {"events": {"enabled": "yes"}}}}, "enabled"),
    ({"config": {"status": {"events": {"pollInterval": "fast"}}}}, "pollInterval"),
    ({"config": {"status": {"events": {"stream": "arn:aws:sqs:eu-west-1:123456789012:q"}}}}, "stream"),
    # The service reads the dead-letter queue's depth by its URL, not its ARN.
    ({"config": {"status": {"events": {"deadLetterQueue": "arn:aws:sqs:eu-west-1:123456789012:q"}}}},
     "deadLetterQueue"),
    ({"config": {"rateLimits": {"events": {"rate": 10}}}}, "burst"),
])
def test_values_schema_rejects_unknown_or_mistyped_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=message):
        render(values)


def _leaf_paths(data: Any, prefix: str = "") -> list[str]:
    if isinstance(data, dict) and data:
        paths: list[str] = []
        for key, value in data.items():
            paths += _leaf_paths(value, f"{prefix}.{key}" if prefix else key)
        return paths
    return [prefix]


def test_every_value_is_in_the_schema() -> None:
    schema = _schema()
    for path in _leaf_paths(_values_yaml()):
        node = schema
        for part in path.split("."):
            props = node.get("properties")
            if props is None:
                break  # free-form object (e.g. resources, securityContext): typed as a whole
            assert part in props, f"{path} is not in values.schema.json"
            node = props[part]


def test_every_value_is_used_by_a_template() -> None:
    """flyteconnector's chart declares values no template reads; this one must not."""
    templates = "\n".join(p.read_text() for p in (CHART / "templates").iterdir())
    used = set(re.findall(r"\.Values\.([A-Za-z0-9_.]+)", templates))
    for path in _leaf_paths(_values_yaml()):
        parts = path.split(".")
        ancestors = {".".join(parts[: i + 1]) for i in range(len(parts))}
        assert ancestors & used, f"value {path} is not used by any template"


def _model_keys(model: type[Any]) -> dict[str, Any]:
    """alias -> nested keys (for model fields, including list/dict items of models) or None."""
    from typing import get_args

    from pydantic import BaseModel

    keys: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        nested: Any = None
        candidates = [field.annotation, *get_args(field.annotation)]
        for candidate in candidates:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                nested = _model_keys(candidate)
        keys[field.alias or name] = nested
    return keys


def _schema_keys(node: dict[str, Any]) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for name, sub in node["properties"].items():
        if sub.get("type") == "array" and "properties" in sub.get("items", {}):
            sub = sub["items"]
        keys[name] = _schema_keys(sub) if "properties" in sub else None
    return keys


def test_config_schema_has_exactly_the_service_config_keys() -> None:
    expected = _model_keys(Config)
    for key in CHART_OWNED_SERVER_KEYS:
        del expected["server"][key]
    assert _schema_keys(_schema()["properties"]["config"]) == expected


def test_service_defaults_validate_against_the_config_schema() -> None:
    from aws_array_plugin.config_check import effective

    defaults = effective(Config())
    for key in CHART_OWNED_SERVER_KEYS:
        del defaults["server"][key]
    defaults["server"]["gracePeriod"] = int(defaults["server"]["gracePeriod"])
    jsonschema.Draft202012Validator(_schema()["properties"]["config"]).validate(defaults)


# --- propeller, IRSA, network, monitoring -------------------------------------------------------------

def _notes_propeller_config(notes: str, marker: str = "propeller config") -> dict[str, Any]:
    block = notes.split(f"# --- {marker}: begin\n", 1)[1].split(f"# --- {marker}: end", 1)[0]
    data: dict[str, Any] = yaml.safe_load(block)
    return data


@pytest.mark.parametrize("flyte", [1, 2])
@pytest.mark.parametrize("which", ["default", "full"])
def test_notes_print_the_same_propeller_config_as_the_cli(
    which: str, flyte: int, default_render: Rendered, full_render: Rendered
) -> None:
    rendered = default_render if which == "default" else full_render
    if which == "default":
        # Flyte 2's executor has no k8s:// resolver: without the headless Service, a plain host:port.
        endpoint = f"k8s://{FULLNAME}.{NAMESPACE}:8000" if flyte == 1 else f"{FULLNAME}.{NAMESPACE}:8000"
        tls = False
    else:
        endpoint, tls = f"dns:///{FULLNAME}-headless.{NAMESPACE}.svc.cluster.local:8000", True
    marker, flags = ("propeller config", []) if flyte == 1 else ("flyte2 executor config", ["--flyte2"])
    from_notes = _notes_propeller_config(rendered.notes, marker)
    assert from_notes == propeller_config.build(endpoint, tls=tls, flyte2=flyte == 2)
    result = run_cli("propeller-config", *flags, "--endpoint", endpoint, *(["--tls"] if tls else []))
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout) == from_notes
    assert f"propeller-config {' '.join([*flags, ''])}--endpoint {endpoint}{' --tls' if tls else ''}`" in rendered.notes
    # The Flyte 2 block comes after the Flyte 1 one.
    assert rendered.notes.index("# --- propeller config: end") < rendered.notes.index("# --- flyte2 executor config: begin")


def test_irsa_role_annotation(default_render: Rendered, full_render: Rendered) -> None:
    assert "annotations" not in default_render.get("ServiceAccount")["metadata"]
    sa = full_render.get("ServiceAccount")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ALL_FEATURES["serviceAccount"]["roleArn"]}
    assert sa["automountServiceAccountToken"] is False
    assert full_render.get("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    assert "serviceAccount.roleArn is empty" in default_render.notes
    assert "serviceAccount.roleArn is empty" not in full_render.notes


def test_network_policy_admits_propeller_to_grpc_and_monitoring_to_metrics(full_render: Rendered) -> None:
    policy = full_render.get("NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "aws-array-plugin", "app.kubernetes.io/instance": RELEASE,
    }
    grpc_rule, metrics_rule = policy["ingress"]
    assert grpc_rule == {
        "from": [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "flyte-system"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "flytepropeller"}},
        }],
        "ports": [{"port": "grpc", "protocol": "TCP"}],
    }
    assert metrics_rule == {
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}],
        "ports": [{"port": "metrics", "protocol": "TCP"}],
    }


def test_autoscaling_and_disruption_budget(default_render: Rendered, full_render: Rendered) -> None:
    assert default_render.get("Deployment")["spec"]["replicas"] == 2
    assert "replicas" not in full_render.get("Deployment")["spec"]
    hpa = full_render.get("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    pdb = full_render.get("PodDisruptionBudget")["spec"]
    assert pdb == {"minAvailable": 1, "selector": {"matchLabels": hpa_selector(full_render)}}


def hpa_selector(rendered: Rendered) -> dict[str, str]:
    labels: dict[str, str] = rendered.get("Deployment")["spec"]["selector"]["matchLabels"]
    return labels


def test_headless_service_is_for_grpc_only(full_render: Rendered) -> None:
    headless = full_render.get("Service", f"{FULLNAME}-headless")["spec"]
    assert headless["clusterIP"] == "None"
    assert [p["name"] for p in headless["ports"]] == ["grpc"]
    assert headless["selector"] == hpa_selector(full_render)


def test_service_monitor_scrapes_the_metrics_port_of_the_main_service_only(full_render: Rendered) -> None:
    monitor = full_render.get("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    spec = monitor["spec"]
    assert spec["endpoints"][0]["port"] == "metrics"

    def selected(service: dict[str, Any]) -> bool:
        labels = service["metadata"]["labels"]
        match = all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items())
        return match and all(e["key"] not in labels for e in spec["selector"]["matchExpressions"])

    services = [o for o in full_render.objects if o["kind"] == "Service"]
    assert [s["metadata"]["name"] for s in services if selected(s)] == [FULLNAME]


def test_prometheus_rule_is_the_alerts_file(full_render: Rendered) -> None:
    alerts_file = REPO / "deploy" / "prometheus" / "alerts.yaml"
    assert alerts_file.is_symlink()
    assert alerts_file.resolve() == (CHART / "rules" / "alerts.yaml").resolve()
    assert full_render.get("PrometheusRule")["spec"] == yaml.safe_load(alerts_file.read_text())


def test_dashboard_configmap_is_the_dashboard_file(full_render: Rendered) -> None:
    dashboard_file = REPO / "deploy" / "grafana" / "aws-array-plugin.json"
    assert dashboard_file.is_symlink()
    assert dashboard_file.resolve() == (CHART / "dashboards" / "aws-array-plugin.json").resolve()
    cm = full_render.get("ConfigMap", f"{FULLNAME}-dashboard")
    assert cm["metadata"]["namespace"] == "grafana"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Flyte"}
    assert json.loads(cm["data"]["aws-array-plugin.json"]) == json.loads(dashboard_file.read_text())


def test_long_release_names_keep_the_headless_name_a_dns_label() -> None:
    release = "a" * 53  # Helm's maximum release name
    rendered = render({"service": {"headless": {"enabled": True}}}, release=release)
    names = [o["metadata"]["name"] for o in rendered.objects]
    assert max(len(n) for n in names) <= 63
    assert len(rendered.get("Service", next(n for n in names if n.endswith("-headless")))["metadata"]["name"]) <= 63
