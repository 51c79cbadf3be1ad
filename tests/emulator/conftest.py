"""Fixtures for the emulator tests: one shared emulator (fast steps, roomy concurrency), one with concurrency 2.
Jobs, faults and counters are reset after every test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aws_batch_emulator import Emulator
from tests.emulator.support import BUCKET, QUEUE, STEP, EmulatorClients


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator(port=0, step=STEP, concurrency=8, queue=QUEUE, bucket=BUCKET) as emu:
        yield emu


@pytest.fixture(scope="session")
def small_emulator() -> Iterator[Emulator]:
    """Concurrency 2, so that queued jobs stay RUNNABLE."""
    with Emulator(port=0, step=STEP, concurrency=2, queue=QUEUE, bucket=BUCKET) as emu:
        yield emu


def _clean(emu: Emulator) -> None:
    emu.reset_jobs()
    emu.clear_faults()
    emu.reset_stats()


@pytest.fixture
def emulator_clients(emulator: Emulator) -> Iterator[EmulatorClients]:
    yield EmulatorClients(emulator)
    _clean(emulator)


@pytest.fixture
def small_emulator_clients(small_emulator: Emulator) -> Iterator[EmulatorClients]:
    yield EmulatorClients(small_emulator)
    _clean(small_emulator)


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    """A file path jobs can wait for (`while [ ! -f $GATE ]`), so tests release them when they choose."""
    yield tmp_path / "gate"
