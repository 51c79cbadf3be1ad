"""`aws-array-plugin propeller-config`: print the flytepropeller (1.16) configuration that sends the
`aws-batch` and `container_array` task types to this service.

The output is YAML to merge into propeller's config (docs/propeller.md says where). The Helm chart's
NOTES.txt prints the same document for its release; tests/deploy checks that both agree.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from aws_array_plugin.task_types import TASK_TYPES

# The task types this service handles, in the order propeller's docs list them.

# GetTask polling of all tasks of the plugin shares one limiter (propeller default qps 10, burst 100,
# i.e. about 300 tasks per 30 s resync). Our GetTask answers from the status cache, so raise it.
READ_QPS = 50
READ_BURST = 200

_SCHEMES = ("k8s://", "dns:///", "dns://")


def plugin_id(agent_service: bool) -> str:
    return "agent-service" if agent_service else "connector-service"


def build(endpoint: str, *, agent_service: bool = False, tls: bool = False) -> dict[str, Any]:
    """The propeller config mapping for one endpoint (`k8s://svc.ns:port`, `dns:///host:port` or
    `host:port`)."""
    if not endpoint.strip():
        raise ValueError("endpoint must not be empty")
    plugin = plugin_id(agent_service)
    discovery_timeout_key = "ListAgents" if agent_service else "ListConnectors"
    deployment: dict[str, Any] = {
        "endpoint": endpoint,
        "insecure": not tls,
        "defaultTimeout": "10s",
        "timeouts": {
            "CreateTask": "10s",
            # Array outputs are assembled inside GetTask; and 6 failed GetTasks fail a task for good.
            "GetTask": "30s",
            "DeleteTask": "10s",
            discovery_timeout_key: "3s",
        },
    }
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


def render(endpoint: str, *, agent_service: bool = False, tls: bool = False) -> str:
    """`build` as YAML, with a short comment header."""
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


def run(args: argparse.Namespace) -> int:
    try:
        text = render(args.endpoint, agent_service=args.agent_service, tls=args.tls)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0
