"""`aws-array-plugin propeller-config`: print the flytepropeller (1.16) configuration that sends the
`aws-batch` and `container_array` task types to this service, or with `--flyte2` the Flyte 2 executor's
configuration that sends `aws-batch` to it.

The output is YAML to merge into propeller's (or the executor's) config: docs/propeller.md and docs/flyte2.md
say where. The Helm chart's NOTES.txt prints the same documents for its release; tests/deploy checks that
they agree.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from aws_array_plugin.task_types import AWS_BATCH, TASK_TYPES

# GetTask polling of all tasks of the plugin shares one limiter (propeller default qps 10, burst 100,
# i.e. about 300 tasks per 30 s resync). Our GetTask answers from the status cache, so raise it.
READ_QPS = 50
READ_BURST = 200

_SCHEMES = ("k8s://", "dns:///", "dns://")
# The oldest Flyte 2 backend whose executor runs connector-service tasks (flyte#7565).
FLYTE2_MIN_BACKEND = "v2.0.28"
# Flyte 2 (flyte@main, checked through v2.0.43) registers no `k8s` gRPC resolver: propeller 1.x does it in its
# controller; the v2 executor does not, so a k8s:// endpoint never connects (grpc.Dial falls back to
# passthrough and dials the literal string).
_FLYTE2_BAD_SCHEME = "k8s:"


def plugin_id(agent_service: bool) -> str:
    return "agent-service" if agent_service else "connector-service"


def _deployment(endpoint: str, *, tls: bool, discovery_timeout_key: str) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "insecure": not tls,
        "defaultTimeout": "10s",
        "timeouts": {
            "CreateTask": "10s",
            # Outputs are read (an array's assembled) inside GetTask; and a few failed GetTasks fail a task
            # for good (6 in propeller 1.16, maxSystemFailures 5 in Flyte 2).
            "GetTask": "30s",
            "DeleteTask": "10s",
            discovery_timeout_key: "3s",
        },
    }


def _check_endpoint(endpoint: str) -> None:
    if not endpoint.strip():
        raise ValueError("endpoint must not be empty")


def build(endpoint: str, *, agent_service: bool = False, tls: bool = False, flyte2: bool = False) -> dict[str, Any]:
    """The propeller config mapping for one endpoint (`k8s://svc.ns:port`, `dns:///host:port` or
    `host:port`); with `flyte2`, the Flyte 2 executor's (see `build_flyte2`)."""
    if flyte2:
        if agent_service:
            raise ValueError("--flyte2 and --agent-service do not go together: "
                             "Flyte 2 has only the connector-service plugin")
        return build_flyte2(endpoint, tls=tls)
    _check_endpoint(endpoint)
    plugin = plugin_id(agent_service)
    discovery_timeout_key = "ListAgents" if agent_service else "ListConnectors"
    deployment = _deployment(endpoint, tls=tls, discovery_timeout_key=discovery_timeout_key)
    section: dict[str, Any] = {
        ("defaultAgent" if agent_service else "defaultConnector"): deployment,
        # Registered at propeller start, so propeller does not depend on discovery (ListAgents) to
        # route these types, and default-for-task-types below takes effect.
        "supportedTaskTypes": list(TASK_TYPES),
        "webApi": {
            "readRateLimiter": {"qps": READ_QPS, "burst": READ_BURST},
        },
    }
    return {
        "tasks": {
            "task-plugins": {
                "enabled-plugins": ["container", "sidecar", plugin],
                "default-for-task-types": {
                    "container": "container",
                    "sidecar": "sidecar",
                    **{task_type: plugin for task_type in TASK_TYPES},
                },
            },
        },
        "plugins": {plugin: section},
    }


def build_flyte2(endpoint: str, *, tls: bool = False) -> dict[str, Any]:
    """The Flyte 2 executor's config mapping (backend >= v2.0.28) for one endpoint (`dns:///host:port` or
    `host:port`; not `k8s://`, which the executor cannot resolve).

    Differs from Flyte 1: no `enabled-plugins` (the v2 executor registers every plugin; the key was removed,
    flyte#7535), only `aws-batch` (no map task type in Flyte 2). `supportedTaskTypes` is what routes the type:
    the executor never asks ListConnectors which types exist, and `default-for-task-types` only names a plugin
    that registered some type at start. The other keys are those of propeller 1.16, in the same places.
    """
    _check_endpoint(endpoint)
    if endpoint.strip().lower().startswith(_FLYTE2_BAD_SCHEME):
        raise ValueError(
            "the Flyte 2 executor has no k8s:// resolver (only flytepropeller 1.x registers one): use "
            "dns:///<service>-headless.<namespace>.svc.cluster.local:<port> (a headless Service; "
            "the chart's service.headless.enabled) or <service>.<namespace>:<port>")
    return {
        "tasks": {
            "task-plugins": {
                "default-for-task-types": {AWS_BATCH: "connector-service"},
            },
        },
        "plugins": {
            "connector-service": {
                "defaultConnector": _deployment(endpoint, tls=tls, discovery_timeout_key="ListConnectors"),
                "supportedTaskTypes": [AWS_BATCH],
                "webApi": {
                    "readRateLimiter": {"qps": READ_QPS, "burst": READ_BURST},
                },
            },
        },
    }


def _flyte2_header(endpoint: str, tls: bool) -> str:
    header = (
        "# Flyte 2 executor configuration for aws-array-plugin (merge into the executor's config).\n"
        f"# Needs a Flyte 2 backend >= {FLYTE2_MIN_BACKEND}: older executors never run connector-service tasks.\n"
        "# Differs from Flyte 1: there is no enabled-plugins list (every plugin is registered) and no\n"
        "# container_array (Flyte 2 has no map task type): flyte.map over an aws-batch task sends one CreateTask,\n"
        "# hence one AWS Batch job, per item. supportedTaskTypes is required: the executor does not route by\n"
        "# discovery.\n"
    )
    if not tls and not endpoint.startswith(_SCHEMES):
        header += "# Note: a plain host:port endpoint is not load-balanced; use dns:/// with a headless Service.\n"
    return header


def render(endpoint: str, *, agent_service: bool = False, tls: bool = False, flyte2: bool = False) -> str:
    """`build` as YAML, with a short comment header."""
    if flyte2:
        body = yaml.safe_dump(build(endpoint, agent_service=agent_service, tls=tls, flyte2=True), sort_keys=False)
        return _flyte2_header(endpoint, tls) + body
    header = (
        "# flytepropeller configuration for aws-array-plugin (merge into propeller's config).\n"
        "# Keep every other plugin you already enable in enabled-plugins and default-for-task-types.\n"
    )
    if agent_service:
        header += "# agent-service is deprecated in propeller 1.16; prefer connector-service.\n"
    if not tls and not endpoint.startswith(_SCHEMES):
        header += "# Note: a plain host:port endpoint is not load-balanced; use k8s:// or dns:///.\n"
    body = yaml.safe_dump(build(endpoint, agent_service=agent_service, tls=tls), sort_keys=False)
    return header + body


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint", required=True,
        help="the service as propeller reaches it: k8s://<svc>.<namespace>:<port>, "
             "dns:///<headless-svc>.<namespace>.svc.cluster.local:<port> or host:port",
    )
    parser.add_argument(
        "--agent-service", action="store_true",
        help="use the deprecated agent-service plugin instead of connector-service",
    )
    parser.add_argument(
        "--tls", action="store_true",
        help="the service's gRPC port uses TLS (insecure: false); propeller trusts its system CA pool",
    )
    parser.add_argument(
        "--flyte2", action="store_true",
        help=f"print the Flyte 2 executor's configuration instead (backend >= {FLYTE2_MIN_BACKEND}; "
             "not with --agent-service)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        text = render(args.endpoint, agent_service=args.agent_service, tls=args.tls, flyte2=args.flyte2)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0
