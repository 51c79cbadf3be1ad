#!/usr/bin/env bash
# Regenerates aws_array_plugin/_proto from protos/ with the pinned grpcio-tools and mypy-protobuf.
# tests/test_protos.py checks that the committed code matches what this produces.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$here/aws_array_plugin/_proto"}
py=${PYTHON:-python}
export PATH="$(dirname "$(command -v "$py")"):$PATH"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" -m grpc_tools.protoc -I "$here/protos" --python_out="$tmp" --mypy_out="$tmp" \
  "$here/protos/aws_array_plugin/v1/resource_meta.proto"
mkdir -p "$out"
cp "$tmp/aws_array_plugin/v1/resource_meta_pb2.py" "$tmp/aws_array_plugin/v1/resource_meta_pb2.pyi" "$out/"
# Generated code imports itself by its proto path; keep it inside our package instead.
touch "$out/__init__.py"
