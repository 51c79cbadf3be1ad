"""`aws-array-plugin config check` and `aws-array-plugin propeller-config`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml

from aws_array_plugin import config_check, propeller_config
from aws_array_plugin.config import Config, load_config
from tests.deploy.support import run_cli


def _config_check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    config_check.add_arguments(parser)
    code = config_check.run(parser.parse_args(["check", str(path)]))
    out, err = capsys.readouterr()
    return code, out, err


def _propeller(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    propeller_config.add_arguments(parser)
    code = propeller_config.run(parser.parse_args(list(argv)))
    out, err = capsys.readouterr()
    return code, out, err


# --- config check -----------------------------------------------------------------------------------

def test_config_check_prints_every_effective_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "region: eu-west-1\n"
        "defaultQueue: q\n"
        "allowedRoles: ['arn:aws:iam::123456789012:role/flyte-*']\n"
        "defaultTimeout: 2h\n"
        "status: {refreshInterval: 1m}\n"
    )
    code, out, err = _config_check(path, capsys)
    assert (code, err) == (0, "")
    printed = yaml.safe_load(out)
    # All defaults filled in, camelCase, durations in seconds; loadable as a config again.
    assert printed == config_check.effective(load_config(yaml.safe_load(path.read_text())))
    assert set(printed) == {f.alias for f in Config.model_fields.values()}
    assert printed["defaultTimeout"] == 7200.0
    assert printed["status"]["refreshInterval"] == 60.0
    assert printed["status"]["maxStaleness"] == Config().status.max_staleness
    assert printed["rateLimits"]["describe"] == {"rate": 15.0, "burst": 20}
    assert printed["server"]["gracePeriod"] == 20.0
    assert load_config(printed) == load_config(yaml.safe_load(path.read_text()))


def test_config_check_warns_when_allowed_roles_is_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("defaultQueue: q\n")
    code, out, err = _config_check(path, capsys)
    assert code == 0
    assert err.splitlines() == [
        "warning: allowedRoles is empty: tasks may run as any IAM role the service's own role can pass "
        "(iam:PassRole); list the allowed role ARNs (glob patterns)",
    ]
    assert yaml.safe_load(out)["allowedRoles"] == []


def test_config_check_warns_about_an_unroutable_setup_and_a_forbidden_default_role(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "allowedRoles: ['arn:aws:iam::1:role/flyte-*']\n"
        "defaultRole: arn:aws:iam::1:role/admin\n"
    )
    code, _, err = _config_check(path, capsys)
    assert code == 0
    assert [line.split(":")[1].strip() for line in err.splitlines()] == [
        "neither defaultQueue nor queueRouting is set",
        "defaultRole is not matched by allowedRoles",
    ]


@pytest.mark.parametrize(("text", "message"), [
    ("regoin: eu-west-1\n", "regoin: unknown key"),
    ("defaultTimeout: 30s\n", "defaultTimeout: Value error, AWS Batch needs an attempt timeout of at least 60s"),
    ("rateLimits: {submit: {rate: 0, burst: 1}}\n", "rateLimits.submit.rate"),
    ("server: {tlsCertFile: /a}\n", "tlsCertFile and tlsKeyFile must be set together"),
    ("- a\n- b\n", "must be a mapping"),
    ("a: [\n", "is not valid YAML"),
])
def test_config_check_rejects_invalid_configs_with_exit_2(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    code, out, err = _config_check(path, capsys)
    assert (code, out) == (2, "")
    assert message in err


def test_config_check_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _config_check(tmp_path / "nope.yaml", capsys)
    assert (code, out) == (2, "")
    assert "cannot read config" in err


def test_config_check_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("defaultQueue: q\nallowedRoles: ['arn:aws:iam::1:role/x']\n")
    ok = run_cli("config", "check", str(path))
    assert (ok.returncode, ok.stderr) == (0, "")
    assert yaml.safe_load(ok.stdout)["defaultQueue"] == "q"
    path.write_text("defaultQueue: [q]\n")
    bad = run_cli("config", "check", str(path))
    assert (bad.returncode, bad.stdout) == (2, "")
    assert "defaultQueue" in bad.stderr
    usage = run_cli("config")
    assert usage.returncode == 2 and "check" in usage.stderr


# --- propeller-config --------------------------------------------------------------------------------

def _load(out: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(out)
    return data


def test_propeller_config_for_connector_service(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _propeller(capsys, "--endpoint", "k8s://aws-array-plugin.flyte:8000")
    assert code == 0
    config = _load(out)
    assert set(config) == {"tasks", "plugins"}
    plugins = config["tasks"]["task-plugins"]
    assert "connector-service" in plugins["enabled-plugins"]
    assert plugins["default-for-task-types"]["aws-batch"] == "connector-service"
    assert plugins["default-for-task-types"]["container_array"] == "connector-service"
    assert isinstance(plugins["default-for-task-types"], dict)  # the map form, not a list of maps
    section = config["plugins"]["connector-service"]
    assert set(section) == {"defaultConnector", "supportedTaskTypes", "webApi"}
    assert section["defaultConnector"]["endpoint"] == "k8s://aws-array-plugin.flyte:8000"
    assert section["defaultConnector"]["insecure"] is True
    assert "ListConnectors" in section["defaultConnector"]["timeouts"]
    assert section["supportedTaskTypes"] == ["aws-batch", "container_array"]
    assert section["webApi"]["readRateLimiter"] == {"qps": 50, "burst": 200}


def test_propeller_config_for_agent_service_with_tls(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _propeller(capsys, "--endpoint", "dns:///aap-headless.flyte.svc.cluster.local:8000",
                              "--agent-service", "--tls")
    assert code == 0
    config = _load(out)
    assert "agent-service is deprecated" in out
    plugins = config["tasks"]["task-plugins"]
    assert "agent-service" in plugins["enabled-plugins"] and "connector-service" not in plugins["enabled-plugins"]
    assert {plugins["default-for-task-types"][t] for t in ("aws-batch", "container_array")} == {"agent-service"}
    section = config["plugins"]["agent-service"]
    assert set(section) == {"defaultAgent", "supportedTaskTypes", "webApi"}
    assert section["defaultAgent"]["insecure"] is False
    assert "ListAgents" in section["defaultAgent"]["timeouts"]
    assert section["defaultAgent"]["endpoint"] == "dns:///aap-headless.flyte.svc.cluster.local:8000"


def test_propeller_config_warns_about_an_unbalanced_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _propeller(capsys, "--endpoint", "aws-array-plugin.flyte:8000")
    assert "not load-balanced" in out
    _, out, _ = _propeller(capsys, "--endpoint", "k8s://aws-array-plugin.flyte:8000")
    assert "not load-balanced" not in out


def test_propeller_config_rejects_an_empty_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _propeller(capsys, "--endpoint", " ")
    assert (code, out) == (2, "")
    assert "endpoint must not be empty" in err


def test_propeller_config_for_flyte2(capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = "dns:///aap-headless.flyte.svc.cluster.local:8000"
    code, out, err = _propeller(capsys, "--flyte2", "--endpoint", endpoint)
    assert (code, err) == (0, "")
    assert ">= v2.0.28" in out and "container_array" in out  # the header: backend version, what differs
    config = _load(out)
    # Flyte 2 has no enabled-plugins (every plugin is registered) and no map task type.
    assert config["tasks"] == {"task-plugins": {"default-for-task-types": {"aws-batch": "connector-service"}}}
    section = config["plugins"]["connector-service"]
    assert set(config["plugins"]) == {"connector-service"}
    assert set(section) == {"defaultConnector", "supportedTaskTypes", "webApi"}
    assert section["supportedTaskTypes"] == ["aws-batch"]
    deployment = section["defaultConnector"]
    assert (deployment["endpoint"], deployment["insecure"], deployment["defaultTimeout"]) == (endpoint, True, "10s")
    assert deployment["timeouts"] == {"CreateTask": "10s", "GetTask": "30s", "DeleteTask": "10s",
                                      "ListConnectors": "3s"}
    assert section["webApi"]["readRateLimiter"] == {"qps": 50, "burst": 200}
    _, out, _ = _propeller(capsys, "--flyte2", "--tls", "--endpoint", endpoint)
    assert _load(out)["plugins"]["connector-service"]["defaultConnector"]["insecure"] is False


def test_propeller_config_for_flyte2_rejects_k8s_endpoints_and_agent_service(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _propeller(capsys, "--flyte2", "--endpoint", "k8s://aws-array-plugin.flyte:8000")
    assert (code, out) == (2, "")
    assert "no k8s:// resolver" in err and "dns:///" in err
    result = run_cli("propeller-config", "--flyte2", "--agent-service", "--endpoint", "dns:///aap:8000")
    assert (result.returncode, result.stdout) == (2, "")
    assert "--flyte2 and --agent-service" in result.stderr
    _, out, _ = _propeller(capsys, "--flyte2", "--endpoint", "aws-array-plugin.flyte:8000")
    assert "not load-balanced" in out
