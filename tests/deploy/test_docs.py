"""The operator docs agree with the code: every config key documented with its default, every Go key
mapped, every metric and alert described, the propeller YAML the one the CLI prints."""

from __future__ import annotations

import re
import types
import typing
from typing import Any, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from aws_array_plugin import propeller_config
from aws_array_plugin.config import Config, load_config
from aws_array_plugin.metrics import Metrics
from tests.deploy.support import REPO, duration_paths
from tests.deploy.test_observability import alert_rules

DOCS = REPO / "docs"
CONFIGURATION = DOCS / "configuration.md"
MIGRATION = DOCS / "migration-from-aws-array.md"

# Durations are floats in seconds in the model; the doc shows them as `<seconds>s`.
DURATIONS = duration_paths()

# Every key of the Go plugin's config (`plugins.aws`, `plugins.aws.batch`) and FlyteAdmin's queues: the
# migration guide must say where each went.
GO_KEYS = [
    "region", "accountId", "retries", "logLevel",
    "jobStoreConfig.jacheSize", "jobStoreConfig.parallelism", "jobStoreConfig.batchChunkSize",
    "jobStoreConfig.resyncPeriod", "defCacheSize", "getRateLimiter.rate", "defaultRateLimiter.rate",
    "maxArrayJobSize", "minRetries", "maxRetries", "defaultTimeout", "defaultEnvVars", "maxErrLength",
    "roleAnnotationKey", "outputAssembler.workers", "errorAssembler.workers",
    "queues.executionQueues", "queues.workflowConfigs", "EXECUTION_QUEUE", "child_queue",
]


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted camelCase path, annotation, default or `...` when required) of every field, recursively."""
    out: list[tuple[str, Any, Any]] = []
    for name, field in model.model_fields.items():
        path = prefix + (field.alias or name)
        default = ... if field.is_required() else field.get_default(call_default_factory=True)
        out.append((path, field.annotation, default))
        nested = [c for c in (field.annotation, *get_args(field.annotation))
                  if isinstance(c, type) and issubclass(c, BaseModel)]
        if nested:
            out += _fields(nested[0], path + ("[]." if get_origin(field.annotation) is list else "."))
    return out


def _format_default(path: str, value: Any) -> str:
    if value is ...:
        return "required"
    if isinstance(value, BaseModel):
        return "(section)"
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return '`""`' if value == "" else f"`{value}`"
    if isinstance(value, float):
        return f"`{value:g}s`" if path in DURATIONS else f"`{value:g}`"
    if isinstance(value, int):
        return f"`{value}`"
    if value == {}:
        return "`{}`"
    if value == []:
        return "`[]`"
    raise AssertionError(f"no doc format for {path}={value!r}")


def _type_name(path: str, annotation: Any) -> str:
    if path in DURATIONS:
        return "duration"
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in get_args(annotation) if a is not type(None))
        return _type_name(path, inner) + " or null"
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in get_args(annotation))
    if origin is list:
        return f"list of {_type_name(path, get_args(annotation)[0])}"
    if origin is dict:
        return "map of string to string"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    names: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return names[annotation]


def _rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in CONFIGURATION.read_text().splitlines():
        match = re.match(r"^\| `([^`]+)` \|(.*)\|$", line)
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} documented twice"
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split(" | ")]
    return rows


def test_every_config_key_is_documented_with_its_type_and_default() -> None:
    rows = _rows()
    fields = _fields(Config)
    assert len(fields) > 60
    for path, annotation, default in fields:
        assert path in rows, f"{path} is missing from docs/configuration.md"
        type_cell, default_cell, meaning = rows[path]
        assert type_cell == _type_name(path, annotation), path
        assert default_cell == _format_default(path, default), path
        assert len(meaning) > 5, path
    assert sorted(set(rows) - {p for p, _, _ in fields}) == [], "documented keys the config does not have"


def test_the_configuration_examples_are_valid() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", CONFIGURATION.read_text(), re.S)
    assert blocks
    for block in blocks:
        load_config(yaml.safe_load(block))


def _resolves(path: str) -> bool:
    model: Any = Config
    for part in path.replace("[]", "").split("."):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return False
        by_alias = {(f.alias or n): f for n, f in model.model_fields.items()}
        if part not in by_alias:
            return False
        annotation = by_alias[part].annotation
        nested = [c for c in (annotation, *get_args(annotation)) if isinstance(c, type) and issubclass(c, BaseModel)]
        model = nested[0] if nested else None
    return True


def test_the_migration_guide_maps_every_go_key_to_real_keys() -> None:
    text = MIGRATION.read_text()
    for key in GO_KEYS:
        assert f"`{key}`" in text, f"{key} is not in the migration guide"
    top = {f.alias for f in Config.model_fields.values()}
    ours = [t for t in re.findall(r"`([A-Za-z][\w.\[\]]*)`", text) if t.split(".")[0].replace("[]", "") in top]
    assert len(ours) > 30
    for token in ours:
        assert _resolves(token), f"{token} in the migration guide is not a config key"


def test_observability_doc_lists_every_metric_and_alert() -> None:
    text = (DOCS / "observability.md").read_text()
    for family in Metrics().registry.collect():
        shown = f"{family.name}_total" if family.type == "counter" else family.name
        assert f"| `{shown}` | {family.type} |" in text, shown
    for rule in alert_rules():
        assert f"| `{rule['alert']}` |" in text, rule["alert"]


@pytest.mark.parametrize("agent_service", [False])
def test_the_propeller_doc_shows_what_the_cli_prints(agent_service: bool) -> None:
    text = (DOCS / "propeller.md").read_text()
    block = re.search(r"```yaml\n(tasks:.*?)```", text, re.S)
    assert block
    shown = yaml.safe_load(block.group(1))
    endpoint = shown["plugins"]["connector-service"]["defaultConnector"]["endpoint"]
    assert shown == propeller_config.build(endpoint, agent_service=agent_service)
    for needed in ("supportedTaskTypes", "default-for-task-types", "readRateLimiter", "insecure: false",
                   "flytekit.core.legacy_map_task", "dns:///", "k8s://", "agent-service"):
        assert needed in text, needed


def test_the_flyte2_doc_shows_what_the_cli_prints_and_is_linked() -> None:
    text = (DOCS / "flyte2.md").read_text()
    block = re.search(r"```yaml\n(tasks:.*?)```", text, re.S)
    assert block
    shown = yaml.safe_load(block.group(1))
    endpoint = shown["plugins"]["connector-service"]["defaultConnector"]["endpoint"]
    assert shown == propeller_config.build(endpoint, flyte2=True)
    for needed in ("supportedTaskTypes", "default-for-task-types", propeller_config.FLYTE2_MIN_BACKEND,
                   "aws-array-plugin-flyte", "aws_array_plugin_flyte", "plugins/flyte2", "pip install ./plugins/flyte2",
                   "plugin_config=AWSBatch(", "@env.task", "{{.runName}}", "{{.actionName}}", "error.pb",
                   "container_array", "rateLimits.submit", "readRateLimiter", "k8s://", "iam.md"):
        assert needed in text, needed
    assert "](flyte2.md)" in (DOCS / "propeller.md").read_text()
    assert "](docs/flyte2.md)" in (REPO / "README.md").read_text()
