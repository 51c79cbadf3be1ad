"""The repository as a product: no tracked file names a path that exists only on a developer's machine, the
version is declared once (the package's `__version__`, read by the build), the license is an SPDX expression,
and the one lock (requirements/constraints.txt) pins everything the `test` extra installs."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

import aws_array_plugin

REPO = Path(__file__).resolve().parents[2]

# Absolute paths of a developer's machine or of one checkout: a workspace or home directory, a virtualenv
# given by its absolute location, a scratch directory under /tmp (pip build trees, pytest's tmp dirs, ad-hoc
# work dirs). Container and system paths stay legitimate: /opt/<app>, /usr/..., /etc/..., /proc/..., /dev/null,
# /tmp itself (the chart's emptyDir mount, HOME=/tmp in the image) and a single file in /tmp. The directory
# names are joined here so that this file does not match its own rules.
_START = r"(?<![\w.~$-])/"  # a path's first slash, not the middle of a word, URL host or relative path
_WORKSPACE = "|".join(["work", "root", "workspace", "workspaces"])
MACHINE_PATH = re.compile("|".join([
    _START + rf"(?:{_WORKSPACE})/",                 # a workspace: the checkout, its venv, shared documents
    _START + r"(?:home|Users)/[\w.-]+/",            # a user's home directory
    _START + r"tmp/[\w.+-]+/",                      # a scratch directory under /tmp
    _START + r"tmp/pip-",                           # pip's build and requirement trees
    _START + r"(?:private/)?var/folders/",          # macOS per-user temp
    _START + r"(?:[\w.+-]+/)*\.venv(?:/|\b)",       # a virtualenv named by its absolute location
    r"\b[A-Za-z]:\\(?:Users|home)\\",               # a Windows home directory
]))


def _p(*parts: str) -> str:
    return "/" + "/".join(parts)


@pytest.mark.parametrize("text", [
    f"{_p('work', 'venv', 'bin', 'python')} benchmarks/load.py",
    f'File "{_p("work", "main", "aws_array_plugin", "x.py")}", line 3',
    f"see {_p('work', 'shared', 'docs', 'contract.md')}",
    f"cd {_p('root', 'aws-array-plugin')}/ && make",
    f"HOME is {_p('home', 'alice', 'src')}",
    f"{_p('Users', 'bob', 'code', 'x.py')}",
    f'File "{_p("tmp", "errpb", "app", "wf.py")}"',
    f"{_p('tmp', 'pip-build-env-1abc')}",
    f"{_p('srv', 'ci', '.venv', 'bin', 'pytest')}",
    f"{_p('private', 'var', 'folders', 'xy', 'T')}",
])
def test_machine_paths_are_recognised(text: str) -> None:
    assert MACHINE_PATH.search(text), text


@pytest.mark.parametrize("text", [
    "RUN python -m venv /opt/aws-array-plugin && /opt/aws-array-plugin/bin/pip install .",
    "mountPath: /tmp",
    "HOME=/tmp",
    "envsubst < policy.json > /tmp/aws-array-plugin-policy.json",
    'out_path = "/tmp/report.txt"',
    "--shell /usr/sbin/nologin; /etc/ssl/certs; /proc/self/stat; > /dev/null",
    '"HOME": "/home/u"',
    ".venv/bin/python benchmarks/load.py burst --tag NAME",
    "VENV := .venv",
    'File "/venv/lib/python3.11/site-packages/flytekit/core/base_task.py"',
    f"https://github.com{_p('root', 'project', 'x.py')} and s3://bucket{_p('home', 'user', 'key')}",
    "cd ./.venv/bin; ls ~/.cache/pip",
])
def test_legitimate_paths_are_allowed(text: str) -> None:
    assert not MACHINE_PATH.search(text), MACHINE_PATH.search(text)


def tracked_files() -> list[Path]:
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    if Path(top).resolve() != REPO:
        pytest.skip("the repository is not a git checkout of its own")
    return [REPO / name for name in listed.decode().split("\0") if name]


def test_no_tracked_file_holds_a_path_of_a_developer_machine() -> None:
    files = tracked_files()
    assert len(files) > 50, "git ls-files listed almost nothing: the check would be vacuous"
    hits = []
    for path in files:
        if path.is_symlink() or not path.is_file():  # symlinks are checked as their targets; deleted files skipped
            continue
        data = path.read_bytes()
        if b"\0" in data:  # binary (protobuf fixtures)
            continue
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
            if MACHINE_PATH.search(line):
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:160]}")
    assert not hits, "absolute paths of a developer machine in tracked files:\n" + "\n".join(hits)


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_version_is_declared_once_and_matches_the_installed_metadata() -> None:
    pyproject = _pyproject()
    assert "version" not in pyproject["project"] and "version" in pyproject["project"].get("dynamic", [])
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "aws_array_plugin.__version__"}
    assert importlib.metadata.version("aws-array-plugin") == aws_array_plugin.__version__


def test_the_license_is_an_spdx_expression() -> None:
    assert _pyproject()["project"]["license"] == "Apache-2.0"


def _installed_closure(name: str, extras: tuple[str, ...] = ()) -> dict[str, str]:
    """{canonical name: installed version} of a distribution and everything it requires, extras included."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, str] = {}
    pending = [(name, extras)]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while pending:
        dist_name, dist_extras = pending.pop()
        key = (str(canonicalize_name(dist_name)), tuple(sorted(dist_extras)))
        if key in seen:
            continue
        seen.add(key)
        dist = importlib.metadata.distribution(dist_name)
        found[key[0]] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in dist_extras or ("",)):
                continue
            pending.append((req.name, tuple(req.extras)))
    return found


def test_the_lock_pins_every_package_of_the_test_extra_at_its_installed_version() -> None:
    from packaging.utils import canonicalize_name

    pinned = {}
    for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[str(canonicalize_name(name))] = version.strip()
    local = {"aws-array-plugin", "aws-array-plugin-devtools", "aws-array-plugin-flyte"}
    assert not local & pinned.keys(), "the lock pins a distribution of this repository"
    needed = {n: v for n, v in _installed_closure("aws-array-plugin", ("test",)).items()
              if n not in local | {"pip", "setuptools", "wheel"}}
    assert len(needed) > 50, "the test extra's requirements were not found: the check would be vacuous"
    wrong = {n: (pinned.get(n), v) for n, v in needed.items() if pinned.get(n) != v}
    assert not wrong, f"requirements/constraints.txt is stale (pinned, installed): {wrong}"
