"""`aws-array-plugin` command line: each subcommand lives in its own module, which provides
`add_arguments(parser)` and `run(args) -> int`, imported only when that subcommand runs."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module, help)
_COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("aws_array_plugin.server", "run the gRPC plugin service"),
    "emulator": ("aws_batch_emulator.cli", "run the embedded emulated AWS (moto + process runtime)"),
    "demo": ("aws_array_plugin_demo.runner", "zero-setup demo: emulator, service and real flytekit tasks"),
    "config": ("aws_array_plugin.config_check", "validate a config file and print the effective settings"),
    "propeller-config": ("aws_array_plugin.propeller_config", "print the propeller YAML for an endpoint"),
}
# Subcommands from the separate aws-array-plugin-devtools distribution (the `demo` extra), not the runtime
# product, and the top-level modules that distribution and its dependencies provide: a ModuleNotFoundError
# for one of these means "the extra is not installed", said in one line instead of a traceback.
_DEVTOOLS_COMMANDS = frozenset({"emulator", "demo"})
_DEVTOOLS_MODULES = frozenset({
    "aws_batch_emulator", "aws_array_plugin_demo", "moto", "boto3", "flytekit", "flytekitplugins", "rich",
    "werkzeug", "flask", "flask_cors", "flyte", "aws_array_plugin_flyte",
})
INSTALL_HINT = "pip install 'aws-array-plugin[demo]' (from a checkout: make install)"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Only the chosen subcommand's module is imported (the others may need optional extras)."""
    parser = argparse.ArgumentParser(prog="aws-array-plugin", description="Run Flyte tasks on AWS Batch.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        args = build_parser(command if command in _COMMANDS else None).parse_args(argv)
        result: int = importlib.import_module(args._module).run(args)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if command not in _DEVTOOLS_COMMANDS or missing not in _DEVTOOLS_MODULES:
            raise
        print(f"aws-array-plugin {command} needs the demo extra (module {missing!r} is not installed): "
              f"{INSTALL_HINT}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
