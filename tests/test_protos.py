"""The committed generated code matches protos/ (regenerated with the pinned grpcio-tools)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_is_current(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run([str(ROOT / "scripts" / "gen_protos.sh"), str(tmp_path)], check=True, env=env)
    for name in ("resource_meta_pb2.py", "resource_meta_pb2.pyi"):
        assert (tmp_path / name).read_text() == (ROOT / "aws_array_plugin" / "_proto" / name).read_text(), name
