"""Flyte 2 through the service's second face: real `flyte==2.12.1` tasks declared with the aws-batch task type,
serialized by the SDK as `flyte deploy` does, sent as the Flyte 2 executor sends them (flyteidl2 stubs over a real
channel; args rendered, metadata and environment set by the executor stand-in in
devtools/aws_array_plugin_demo/flyte2_executor.py, each function of which names the flyteorg/flyte@main file it
reproduces), and executed for real by `a0` as jobs of the emulated AWS Batch.

The stand-in replaces only the Flyte 2 executor itself (Go, a Kubernetes controller: it cannot run here).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl2.connector import connector_pb2
from flyteidl2.core import execution_pb2
from flyteidl2.task import common_pb2

from aws_array_plugin.resource_meta import FLYTE2, SINGLE, ResourceMeta, decode, encode
from aws_array_plugin_demo import flyte2_executor as fx
from tests.conftest import BUCKET, Plugin, StartPlugin
from tests.flyte2 import flyte2_tasks
from tests.templates import create_request, task_template

HERE = Path(__file__).resolve().parent
Phase = execution_pb2.TaskExecution
TERMINAL = {Phase.SUCCEEDED, Phase.FAILED, Phase.RETRYABLE_FAILED, Phase.ABORTED}
# The image's code: a0 imports the task module from PYTHONPATH (the job's environment, from the service config).
CONFIG = {"defaultEnv": {"PYTHONPATH": str(HERE)}}


class Executor(fx.Client):
    """What the Flyte 2 executor's connector-service plugin does with a connector task, over the real channel
    (devtools' `flyte2_executor.Client`): actions under the test bucket, task modules relative to this directory."""

    def __init__(self, plugin: Plugin, s3: Any) -> None:
        super().__init__(plugin.channel, s3, bucket=BUCKET, root_dir=HERE,
                         run_start_time=datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC))


async def native_outputs(task: Any, resource: connector_pb2.Resource) -> Any:
    from flyte._internal.runtime.convert import Outputs, convert_outputs_to_native

    return await convert_outputs_to_native(task.native_interface, Outputs(proto_outputs=resource.outputs))


@pytest.fixture
def s3(emulator: Any) -> Any:
    return boto3.client("s3", **emulator.info.client_kwargs())


async def test_a_flyte2_task_runs_on_aws_batch_and_returns_what_it_computed(start_plugin: StartPlugin, emulator: Any,
                                                                            s3: Any) -> None:
    async with start_plugin(CONFIG, endpoint=emulator.endpoint) as plugin:
        executor = Executor(plugin, s3)
        action = executor.action()
        request = await executor.request(flyte2_tasks.triple, action, x=14)
        meta = await executor.create(request)
        assert decode(meta).face == FLYTE2
        res, seen = await executor.until_terminal(meta)
        assert res.phase == Phase.SUCCEEDED, res.message
        assert seen[-1] == Phase.SUCCEEDED and set(seen) <= {Phase.QUEUED, Phase.INITIALIZING, Phase.RUNNING,
                                                             Phase.SUCCEEDED}
        assert await native_outputs(flyte2_tasks.triple, res) == 42
        assert res.log_links[0].name == "AWS Batch job"
        (sub,) = plugin.sent("SubmitJob")
        env = {e["name"]: e["value"] for e in sub["containerOverrides"]["environment"]}
        assert (env["RUN_NAME"], env["ACTION_NAME"], env["_U_RUN_BASE"], env["_U_ORG_NAME"]) == (
            action.run_name, "a1", action.run_output_base, "local")
        command = sub["containerOverrides"]["command"]
        assert command[0] == "a0" and not any("{{" in a for a in command)
        assert command[command.index("--run-name") + 1] == action.run_name
        assert command[command.index("--name") + 1] == "a1"
        assert sub["tags"]["flyte:execution-id"] == action.run_name
        assert sub["tags"]["flyte:task-name"] == "plain.triple"
        assert sub["retryStrategy"] == {"attempts": 1}  # the executor retries a retryable failure itself
        # GetTaskLogs through the Flyte 2 face: the job's CloudWatch stream, where a0 logs the run.
        assert any("Flyte runtime completed" in line for line in await executor.logs(meta))
        # The executor would read <output_prefix>/outputs.pb when the answer has no outputs: a0 wrote it there.
        key = f"{request.output_prefix}/outputs.pb".removeprefix(f"s3://{BUCKET}/")
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


async def test_a_flyte2_task_that_raises_fails_with_its_message(start_plugin: StartPlugin, emulator: Any,
                                                                s3: Any) -> None:
    """a0 exits 0 when the task raises and writes error.pb: the AWS job SUCCEEDS, the task must not."""
    async with start_plugin(CONFIG, endpoint=emulator.endpoint) as plugin:
        executor = Executor(plugin, s3)
        meta = await executor.create(await executor.request(flyte2_tasks.boom, executor.action(), x=13))
        res, _ = await executor.until_terminal(meta)
        # flyte marks a plain exception recoverable: the executor retries it per the task's retries, like Flyte 1
        assert res.phase == Phase.RETRYABLE_FAILED, res.message
        assert "13 is unlucky" in res.message
        assert not res.HasField("outputs")


async def test_flyte_map_over_20_items_is_20_jobs_each_submitted_once(start_plugin: StartPlugin, emulator: Any,
                                                                      s3: Any) -> None:
    """`flyte.map` runs one action per item (flyte-sdk src/flyte/_map.py): the executor sends 20 CreateTasks, and
    repeats some (its resync after a timeout); each action is one AWS job."""
    async with start_plugin(CONFIG, endpoint=emulator.endpoint) as plugin:
        executor = Executor(plugin, s3)
        run = f"r{uuid.uuid4().hex[:10]}"
        requests = [await executor.request(flyte2_tasks.triple, executor.action(run, f"a{i}"), x=i)
                    for i in range(20)]
        metas = await asyncio.gather(*(executor.create(r) for r in requests))
        again = await asyncio.gather(*(executor.create(r) for r in requests[:5]))
        assert again == metas[:5]
        results = await asyncio.gather(*(executor.until_terminal(m, timeout=180) for m in metas))
        assert [r.phase for r, _ in results] == [Phase.SUCCEEDED] * 20
        assert [await native_outputs(flyte2_tasks.triple, r) for r, _ in results] == [3 * i for i in range(20)]
        names = Counter(s["jobName"] for s in plugin.sent("SubmitJob"))
        assert len(names) == 20 and set(names.values()) == {1}


async def test_both_faces_serve_on_one_port_with_a_task_of_each_in_flight(start_plugin: StartPlugin, emulator: Any,
                                                                          s3: Any) -> None:
    from aws_array_plugin_demo import propeller

    async with start_plugin(CONFIG, endpoint=emulator.endpoint) as plugin:
        executor = Executor(plugin, s3)
        v2_meta = await executor.create(await executor.request(flyte2_tasks.triple, executor.action(), x=2))
        v1_request = propeller.shell(create_request(task_template("awsbatch_minimal_task"), execution="both-faces"),
                                     "sleep 20")
        v1_meta = (await plugin.agents.CreateTask(v1_request, timeout=10)).resource_meta
        v1_get = agent_pb2.GetTaskRequest(resource_meta=v1_meta, task_category=agent_pb2.TaskCategory(name="aws-batch"))
        res, _ = await executor.until_terminal(v2_meta)
        assert res.phase == Phase.SUCCEEDED
        # The Flyte 1 task, submitted before the Flyte 2 one finished, is still running: both were in flight.
        assert (await plugin.agents.GetTask(v1_get, timeout=30)).resource.phase not in TERMINAL
        await plugin.agents.DeleteTask(agent_pb2.DeleteTaskRequest(resource_meta=v1_meta), timeout=10)
        # A meta goes back to the face that made it.
        crossed = await executor.get(bytes(v1_meta))
        assert crossed.phase == Phase.FAILED and "Flyte 1" in crossed.message
        crossed_v1 = (await plugin.agents.GetTask(agent_pb2.GetTaskRequest(resource_meta=v2_meta), timeout=30)).resource
        assert crossed_v1.phase == Phase.FAILED and "Flyte 2" in crossed_v1.message
        assert len(plugin.sent("SubmitJob")) == 2


async def test_list_connectors_health_and_reflection_name_the_flyte2_services(start_plugin: StartPlugin,
                                                                              s3: Any) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with start_plugin() as plugin:
        executor = Executor(plugin, s3)
        (connector,) = (await executor.metadata.ListConnectors(connector_pb2.ListConnectorsRequest(), timeout=3)
                        ).connectors
        assert [(c.name, c.version) for c in connector.supported_task_categories] == [("aws-batch", 0)]
        got = await executor.metadata.GetConnector(connector_pb2.GetConnectorRequest(name=connector.name), timeout=3)
        assert got.connector == connector
        health = health_pb2_grpc.HealthStub(plugin.channel)
        for service in ("flyteidl2.connector.AsyncConnectorService", "flyteidl2.connector.ConnectorMetadataService",
                        "flyteidl.service.AsyncAgentService"):
            r = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert r.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(plugin.channel)
        answers = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name async for a in answers for s in a.list_services_response.service}
        assert {"flyteidl2.connector.AsyncConnectorService", "flyteidl.service.AsyncAgentService"} <= names
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await executor.connectors.GetTaskMetrics(connector_pb2.GetTaskMetricsRequest(), timeout=3)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def _bad_requests() -> list[tuple[str, Any, dict[str, Any], str]]:
    """(case, how to spoil a valid request, service config, what the failure must name)."""
    def empty_custom(r: connector_pb2.CreateTaskRequest) -> None:
        r.template.ClearField("custom")

    def malformed_custom(r: connector_pb2.CreateTaskRequest) -> None:
        r.template.custom.update({"schedulingPriority": "high"})

    def bad_queue(r: connector_pb2.CreateTaskRequest) -> None:
        r.template.custom.update({"queue": 7})

    def unknown_type(r: connector_pb2.CreateTaskRequest) -> None:
        r.template.type = "python-task"

    def map_type(r: connector_pb2.CreateTaskRequest) -> None:
        r.template.type = "container_array"

    def no_image(r: connector_pb2.CreateTaskRequest) -> None:
        r.template.container.image = ""

    def bad_role(r: connector_pb2.CreateTaskRequest) -> None:
        r.task_execution_metadata.identity.iam_role = "arn:aws:iam::999999999999:role/admin"

    return [
        ("empty custom", empty_custom, {}, "template.custom"),
        ("malformed custom", malformed_custom, {}, "template.custom.schedulingPriority"),
        ("queue not a string", bad_queue, {}, "template.custom.queue"),
        ("unknown type", unknown_type, {}, "template.type"),
        ("map task type", map_type, {}, "Flyte 2 has no map task type"),
        ("missing image", no_image, {}, "template.container.image"),
        ("disallowed role", bad_role, {"allowedRoles": ["arn:aws:iam::123456789012:role/*"]},
         "task_execution_metadata.identity.iam_role"),
    ]


async def test_bad_flyte2_input_is_a_named_permanent_failure_and_submits_nothing(start_plugin: StartPlugin,
                                                                                  s3: Any) -> None:
    cases = _bad_requests()
    for case, spoil, config, expected in cases:
        async with start_plugin(config) as plugin:
            executor = Executor(plugin, s3)
            request = await executor.request(flyte2_tasks.triple, executor.action(), x=1)
            spoil(request)
            meta = await executor.create(request)
            assert decode(meta).rejection, case
            res = await executor.get(meta)
            assert res.phase == Phase.FAILED, (case, res.message)
            assert expected in res.message, (case, res.message)
            await executor.connectors.DeleteTask(connector_pb2.DeleteTaskRequest(resource_meta=meta), timeout=10)
            assert plugin.sent("SubmitJob") == [] and plugin.sent("RegisterJobDefinition") == [], case


@pytest.mark.parametrize("meta", [b"not ours", b"", encode(ResourceMeta(kind=SINGLE, face=FLYTE2))],
                         ids=["garbage", "empty", "no output prefix"])
async def test_a_bad_resource_meta_is_failed_on_get_and_ok_on_delete(start_plugin: StartPlugin, s3: Any,
                                                                     meta: bytes) -> None:
    async with start_plugin() as plugin:
        executor = Executor(plugin, s3)
        res = await executor.get(meta)
        assert res.phase == Phase.FAILED and "resource meta" in res.message
        await executor.connectors.DeleteTask(connector_pb2.DeleteTaskRequest(resource_meta=meta), timeout=10)


def test_outputs_and_literal_maps_share_their_wire_form() -> None:
    """The premise of answering a LiteralMap's bytes as task.Outputs."""
    from flyteidl.core import literals_pb2

    lm = literals_pb2.LiteralMap()
    lm.literals["o0"].scalar.primitive.integer = 42
    outputs = common_pb2.Outputs.FromString(lm.SerializeToString())
    assert [(n.name, n.value.scalar.primitive.integer) for n in outputs.literals] == [("o0", 42)]
