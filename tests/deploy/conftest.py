"""Fixtures of the deployment tests (helpers live in support.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.support import (
    ALL_FEATURES,
    PrometheusServer,
    Rendered,
    render,
    start_prometheus,
    stop_prometheus,
)


@pytest.fixture(scope="session")
def default_render() -> Rendered:
    return render()


@pytest.fixture(scope="session")
def full_render() -> Rendered:
    return render(ALL_FEATURES)


@pytest.fixture(scope="session")
def prometheus() -> Iterator[PrometheusServer]:
    """An idle Prometheus (no targets), for parsing and evaluating PromQL."""
    with tempfile.TemporaryDirectory(prefix="prom-") as tmp:
        server = start_prometheus({"global": {"scrape_interval": "15s"}}, Path(tmp))
        try:
            yield server
        finally:
            stop_prometheus(server)
