"""Input an adversarial client or a misconfiguration produces, through the real server over a real channel:
each gets a deliberate answer (a phase, or a gRPC status chosen on purpose), never UNKNOWN."""

from __future__ import annotations

import asyncio
import math

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2

from aws_array_plugin.resource_meta import ARRAY, SINGLE, ResourceMeta, decode, encode
from tests.conftest import StartPlugin
from tests.support import get
from tests.templates import create_request, literal_map, task_template

Phase = execution_pb2.TaskExecution


async def logs(plugin, meta: bytes, child: int | None = None) -> list[agent_pb2.GetTaskLogsResponse]:
    metadata = (("child-index", str(child)),) if child is not None else None
    call = plugin.agents.GetTaskLogs(agent_pb2.GetTaskLogsRequest(resource_meta=meta, lines=100), timeout=20,
                                     metadata=metadata)
    return [part async for part in call]


async def test_get_task_logs_when_the_log_group_does_not_exist_says_so_and_where(start_plugin: StartPlugin) -> None:
    """moto's jobs have a log stream, but nothing created the log group: NOT_FOUND naming the group and stream."""
    group = "/aws/batch/no-such-group"
    async with start_plugin({"jobDefinitions": {"logGroup": group}}) as plugin:
        req = create_request(task_template("awsbatch_minimal_task"), execution="logs-missing-group")
        meta = (await plugin.agents.CreateTask(req, timeout=10)).resource_meta
        for _ in range(300):  # moto gives the job its log stream once it ran
            res = await get(plugin, meta)
            if res.phase == Phase.SUCCEEDED or res.phase == Phase.RETRYABLE_FAILED:
                break
            await asyncio.sleep(0.1)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await logs(plugin, meta)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND, raised.value.details()
        assert group in raised.value.details() and "not in CloudWatch" in raised.value.details()


async def test_get_task_logs_of_an_array_child_that_never_ran_is_not_found(start_plugin: StartPlugin) -> None:
    async with start_plugin() as plugin:
        req = create_request(task_template("square_legacy_map"), execution="logs-child",
                             inputs=literal_map({"x": [1, 2, 3]}, {"x": list[int]}))
        meta = (await plugin.agents.CreateTask(req, timeout=10)).resource_meta
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await logs(plugin, meta, child=2)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND, raised.value.details()


NON_FINITE = [("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf)]
CUSTOM_FIELDS = [
    ("square_legacy_map", "minSuccesses", "template.custom.minSuccesses"),
    ("square_legacy_map", "parallelism", "template.custom.parallelism"),
    ("square_legacy_map", "size", "template.custom.size"),
    ("square_legacy_map", "minSuccessRatio", "template.custom.minSuccessRatio"),
    ("square_legacy_map", "someUnknownKey", "template.custom.someUnknownKey"),
    ("awsbatch_task", "schedulingPriority", "template.custom.schedulingPriority"),
    ("awsbatch_task", "someUnknownKey", "template.custom.someUnknownKey"),
    ("awsbatch_task", "tags.team", "template.custom.tags.team"),
    ("awsbatch_task", "nested.deeper.list[1]", "template.custom.nested.deeper.list[1]"),
]


@pytest.mark.parametrize(("entity", "key", "field"), CUSTOM_FIELDS, ids=[c[1] for c in CUSTOM_FIELDS])
@pytest.mark.parametrize(("label", "number"), NON_FINITE, ids=[n[0] for n in NON_FINITE])
async def test_non_finite_numbers_in_custom_are_a_permanent_failure_naming_the_field(
        start_plugin: StartPlugin, entity: str, key: str, field: str, label: str, number: float) -> None:
    tmpl = task_template(entity)
    inputs = literal_map({"x": [1, 2, 3]}, {"x": list[int]}) if entity == "square_legacy_map" else None
    req = create_request(tmpl, execution=f"nonfinite-{label}", inputs=inputs)
    if key == "tags.team":
        req.template.custom.get_or_create_struct("tags")["team"] = number
    elif key.startswith("nested"):
        req.template.custom.get_or_create_struct("nested").get_or_create_struct("deeper")["list"] = [1, number]
    elif key == "size":
        req.template.task_type_version = 0  # version 0 sizes the array from custom.size
        req.template.custom[key] = number
    else:
        req.template.custom[key] = number
    async with start_plugin() as plugin:
        meta = (await plugin.agents.CreateTask(req, timeout=10)).resource_meta
        assert decode(meta).rejection
        res = await get(plugin, meta, req.template.type)
        assert res.phase == Phase.FAILED
        assert field in res.message and "finite" in res.message
        assert plugin.sent("SubmitJob") == [] and plugin.sent("RegisterJobDefinition") == []


def _meta_without_prefix(kind: int) -> bytes:
    meta = ResourceMeta(kind=kind)  # the schema version is set by encode
    return encode(meta)


@pytest.mark.parametrize("kind", [SINGLE, ARRAY], ids=["single", "array"])
async def test_a_resource_meta_without_an_output_prefix_is_answered_on_purpose(start_plugin: StartPlugin,
                                                                              kind: int) -> None:
    meta = _meta_without_prefix(kind)
    async with start_plugin() as plugin:
        res = await get(plugin, meta)
        assert res.phase == Phase.FAILED and "output_prefix" in res.message
        await plugin.agents.DeleteTask(agent_pb2.DeleteTaskRequest(resource_meta=meta), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await logs(plugin, meta)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "output_prefix" in raised.value.details()
