"""`aws-array-plugin config check FILE`: validate a service config file and print the effective
settings (every default filled in, camelCase keys, durations in seconds) as YAML.

Exit status: 0 when the file is valid, 2 when it is not (the error goes to stderr). Warnings about
risky but valid settings also go to stderr, so stdout stays a clean YAML document.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from aws_array_plugin.config import Config, ConfigError, load_config_file

EXIT_OK = 0
EXIT_INVALID = 2


def effective(config: Config) -> dict[str, Any]:
    """The config as the service uses it, with camelCase keys (loadable again by `load_config`)."""
    data: dict[str, Any] = config.model_dump(mode="json", by_alias=True)
    return data


def warnings(config: Config) -> list[str]:
    """Valid settings that are probably mistakes in production."""
    found: list[str] = []
    if not config.allowed_roles:
        found.append(
            "allowedRoles is empty: tasks may run as any IAM role the service's own role can pass "
            "(iam:PassRole); list the allowed role ARNs (glob patterns)"
        )
    if not config.default_queue and not config.queue_routing:
        found.append(
            "neither defaultQueue nor queueRouting is set: tasks without a child_queue "
            "(FlyteAdmin execution queues) are rejected"
        )
    if config.default_role and config.allowed_roles and not config.role_allowed(config.default_role):
        found.append("defaultRole is not matched by allowedRoles: tasks falling back to it are rejected")
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="config_command", required=True)
    check = sub.add_parser(
        "check", help="validate a config file and print the effective settings",
        description="Validate a config file and print the effective settings as YAML (exit 0), or "
                    "the validation error (exit 2).",
    )
    check.add_argument("file", metavar="FILE", help="the YAML config file (as passed to serve --config)")


def run(args: argparse.Namespace) -> int:
    # Only one action exists; the subparser is required, so args.config_command == "check".
    try:
        config = load_config_file(args.file)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    for warning in warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    sys.stdout.write(yaml.safe_dump(effective(config), sort_keys=False, default_flow_style=False))
    return EXIT_OK
