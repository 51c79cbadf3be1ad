"""A tiny flytekit task that the emulator runs for real through `pyflyte-execute` (see test_emulator_flytekit)."""

from flytekit import task


@task
def double(x: int) -> int:
    if x < 0:
        raise ValueError("negative input")
    return x * 2
