"""What the distributions hold: the runtime wheel has the service only; the emulator and the demo live in the
separate aws-array-plugin-devtools distribution (devtools/), and without it `aws-array-plugin emulator` and
`aws-array-plugin demo` say in one line which extra to install (exit code 2, no traceback)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from aws_array_plugin import cli
from tests.deploy.support import REPO

DEVTOOLS_PACKAGES = ("aws_batch_emulator", "aws_array_plugin_demo")
HINT = "pip install 'aws-array-plugin[demo]' (from a checkout: make install)"
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")


def _build_wheel(source: Path, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out),
         str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkout's build inputs (top-level files, the package, devtools/), copied: a build in the checkout
    itself would write build/ and *.egg-info into a tree other test runs share, and pick up stale build/ files."""
    root = tmp_path_factory.mktemp("src")
    for entry in REPO.iterdir():
        if entry.is_file():
            shutil.copy2(entry, root / entry.name)
    for name in ("aws_array_plugin", "devtools"):
        shutil.copytree(REPO / name, root / name, ignore=_SKIP)
    return root


@pytest.fixture(scope="module")
def runtime_wheel(source_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(source_copy, tmp_path_factory.mktemp("wheel"))


def _modules(names: Sequence[str]) -> set[str]:
    """Dotted module names of the .py files of a wheel."""
    return {n.removesuffix(".py").replace("/", ".") for n in names if n.endswith(".py")}


def test_the_runtime_wheel_holds_the_service_and_neither_the_emulator_nor_the_demo(runtime_wheel: Path) -> None:
    names = zipfile.ZipFile(runtime_wheel).namelist()
    modules = _modules(names)
    assert {"aws_array_plugin.cli", "aws_array_plugin.server", "aws_array_plugin.core", "aws_array_plugin.faces.flyte1",
            "aws_array_plugin._proto.resource_meta_pb2"} <= modules  # fmt: skip
    assert "aws_array_plugin/py.typed" in names
    distribution, version = runtime_wheel.name.split("-")[:2]
    assert {n.split("/")[0] for n in names} == {"aws_array_plugin", f"{distribution}-{version}.dist-info"}
    unwanted = [m for m in modules if set(m.split(".")) & {*DEVTOOLS_PACKAGES, "emulator", "demo"}]
    assert unwanted == []


def test_the_devtools_wheel_holds_the_emulator_and_the_demo_only(
    source_copy: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    wheel = _build_wheel(source_copy / "devtools", tmp_path_factory.mktemp("devtools-wheel"))
    assert wheel.name.startswith("aws_array_plugin_devtools-0.1.0-")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = next(zf.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    modules = _modules(names)
    assert {"aws_batch_emulator.server", "aws_batch_emulator.cli", "aws_batch_emulator.__main__",
            "aws_array_plugin_demo.runner", "aws_array_plugin_demo.workflows"} <= modules  # fmt: skip
    assert {f"{p}/py.typed" for p in DEVTOOLS_PACKAGES} <= set(names)
    assert {m.split(".")[0] for m in modules} == set(DEVTOOLS_PACKAGES)  # the service is not in it
    assert "License-Expression: Apache-2.0" in metadata
    requires = [line.removeprefix("Requires-Dist: ") for line in metadata.splitlines()
                if line.startswith("Requires-Dist: ")]  # fmt: skip
    assert {r.split(">")[0].split("<")[0].split("~")[0].split("=")[0] for r in requires} == {
        "aws-array-plugin", "moto[server]", "boto3", "flytekit", "flytekitplugins-awsbatch", "rich", "flyte",
        "aws-array-plugin-flyte", "msgspec"}
    assert not any("==" in r for r in requires)  # compatible ranges, not pins


def test_the_constraints_do_not_pin_the_local_devtools_distribution() -> None:
    lines = [line.split("#")[0].strip() for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines()]
    pins = [line for line in lines if line]
    assert not [p for p in pins if p.lower().replace("_", "-").startswith("aws-array-plugin-devtools")]
    assert not [p for p in pins if p.startswith(("-e", "file:")) or "devtools" in p]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}


def _cli_without(blocked: Sequence[str], argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """`aws-array-plugin ARGV` in a fresh interpreter where the modules `blocked` cannot be imported."""
    code = (
        "import sys\n"
        f"for name in {list(blocked)!r}:\n"
        "    sys.modules[name] = None\n"
        "from aws_array_plugin.cli import main\n"
        f"sys.exit(main({list(argv)!r}))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env=_clean_env(), check=False)  # fmt: skip


def _assert_says_which_extra(proc: subprocess.CompletedProcess[str], command: str) -> None:
    assert proc.returncode == 2, f"{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"aws-array-plugin {command} needs the demo extra")
    assert lines[0].endswith(HINT)


@pytest.mark.parametrize(
    ("blocked", "argv"),
    [
        (DEVTOOLS_PACKAGES, ["emulator", "--help"]),
        (DEVTOOLS_PACKAGES, ["emulator", "--port", "0"]),
        (DEVTOOLS_PACKAGES, ["demo", "--help"]),
        (DEVTOOLS_PACKAGES, ["demo", "--plain"]),
        (["moto"], ["emulator", "--port", "0"]),  # the devtools are there, one of their dependencies is not
        (["flytekit"], ["demo", "--plain"]),
    ],
    ids=["emulator-help", "emulator", "demo-help", "demo", "emulator-without-moto", "demo-without-flytekit"],
)
def test_devtools_commands_without_the_demo_extra_say_which_extra_to_install(
    blocked: Sequence[str], argv: list[str]
) -> None:
    proc = _cli_without(blocked, argv)
    _assert_says_which_extra(proc, argv[0])
    if blocked == DEVTOOLS_PACKAGES:
        assert repr(DEVTOOLS_PACKAGES[argv[0] == "demo"]) in proc.stderr  # names the missing module


def test_the_service_commands_do_not_need_the_devtools() -> None:
    proc = _cli_without(DEVTOOLS_PACKAGES, ["propeller-config", "--endpoint", "dns:///plugin:8000"])
    assert proc.returncode == 0, proc.stderr
    assert "connector-service" in proc.stdout


def test_other_missing_modules_are_not_mistaken_for_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli._COMMANDS, "demo", ("aws_array_plugin_no_such_module", "broken"))
    with pytest.raises(ModuleNotFoundError, match="aws_array_plugin_no_such_module"):
        cli.main(["demo"])


def test_the_installed_runtime_wheel_alone_reports_the_missing_extra(runtime_wheel: Path, tmp_path: Path) -> None:
    """The wheel unpacked into a fresh venv (no pip, no index) that sees this venv's third-party packages but
    not its editable installs (their import hooks are not loaded): as installing the wheel without `[demo]`."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip())  # fmt: skip
    with zipfile.ZipFile(runtime_wheel) as zf:
        zf.extractall(purelib)
    (purelib / "shared-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(python), "-m", "aws_array_plugin", *argv], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path, env=_clean_env(), check=False)  # fmt: skip

    where = run("--help")  # warm-up and a check of the setup: the package comes from the wheel
    assert where.returncode == 0, where.stderr
    probe = subprocess.run(
        [str(python), "-c", "import importlib.util as u, aws_array_plugin as p; "
         "print(p.__file__); print([u.find_spec(m) for m in ('aws_batch_emulator', 'aws_array_plugin_demo')])"],
        capture_output=True, text=True, cwd=tmp_path, env=_clean_env(), check=True,
    )  # fmt: skip
    assert probe.stdout.splitlines() == [str(purelib / "aws_array_plugin" / "__init__.py"), "[None, None]"]
    for argv in (["emulator", "--help"], ["emulator", "--port", "0"], ["demo", "--help"], ["demo"]):
        _assert_says_which_extra(run(*argv), argv[0])
