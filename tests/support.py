"""Helpers shared by the service tests: GetTask over a test's plugin, an S3 client of the emulator, outputs.pb of
int values, and polling (sync `wait_for`, and `wait_until` for async tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import boto3
from flyteidl.admin import agent_pb2

from aws_array_plugin_demo import propeller
from tests.conftest import Plugin
from tests.templates import literal_map


async def get(plugin: Plugin, meta: bytes, task_type: str = "aws-batch", timeout: float = 30) -> agent_pb2.Resource:
    """GetTask of `meta` as propeller sends it."""
    resp = await plugin.agents.GetTask(propeller.get_task_request(meta, task_type), timeout=timeout)
    resource: agent_pb2.Resource = resp.resource
    return resource


def s3(emulator: Any) -> Any:
    """A boto3 S3 client of an in-process emulator."""
    return boto3.client("s3", **emulator.info.client_kwargs())


def int_outputs(**values: int) -> bytes:
    """outputs.pb as flytekit writes it for int outputs (`o0=3`)."""
    return bytes(literal_map(values, dict.fromkeys(values, int)).SerializeToString())


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.01,
             what: str = "condition") -> Any:
    """Poll until `predicate()` is truthy; return its value or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s; last value {value!r}")
        time.sleep(interval)


async def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """`wait_for` in a worker thread (the predicate may block), so the event loop runs meanwhile."""
    return await asyncio.to_thread(wait_for, predicate, timeout, interval, what)
