"""`python -m aws_batch_emulator [--port 4566] ...`: the same as `aws-array-plugin emulator`."""

import argparse

from .cli import add_arguments, run

parser = argparse.ArgumentParser(prog="python -m aws_batch_emulator", description="run the emulated AWS")
add_arguments(parser)
raise SystemExit(run(parser.parse_args()))
