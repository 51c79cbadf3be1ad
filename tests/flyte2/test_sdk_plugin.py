"""The Flyte 2 SDK plugin (plugins/flyte2, `aws_array_plugin_flyte`): a real `@env.task` with
`plugin_config=AWSBatch(...)`, serialized the way `flyte deploy` does, is an `aws-batch` task whose custom the
service reads, whose container runs `a0`, and whose resources, retries, timeout, env and secrets come from the
SDK's own task settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import tasks_pb2 as v1_tasks_pb2
from flyteidl2.core import tasks_pb2
from google.protobuf import json_format

from aws_array_plugin.config import load_config
from aws_array_plugin.task_specs import build_task_spec
from aws_array_plugin_demo.flyte2_executor import connection_from_custom, serialize_task
from aws_array_plugin_flyte import AWSBatch, AWSBatchFunctionTask
from tests.flyte2 import flyte2_tasks

HERE = Path(__file__).resolve().parent


def _template(task: object) -> tasks_pb2.TaskTemplate:
    return serialize_task(task, project="flytesnacks", domain="development", version="v1", root_dir=HERE)


def test_every_task_of_the_environment_is_an_aws_batch_task() -> None:
    assert isinstance(flyte2_tasks.double, AWSBatchFunctionTask)
    t = _template(flyte2_tasks.double)
    assert (t.type, t.task_type_version) == ("aws-batch", 0)
    assert (t.id.project, t.id.domain, t.id.name, t.id.version) == ("flytesnacks", "development", "batch.double", "v1")
    assert t.metadata.runtime.version == "2.12.1"


def test_custom_carries_the_batch_settings_under_the_services_key_names() -> None:
    custom = json_format.MessageToDict(_template(flyte2_tasks.double).custom)
    assert custom == {
        "version": 1,
        "queue": "gpu-spot",
        "shareIdentifier": "teamA",
        "schedulingPriority": 40,
        "parameters": {"codec": "h264"},
        "platformCapabilities": "EC2",
        "propagateTags": True,
        "tags": {"team": "a"},
    }
    # The executor reads these keys from custom (connection secrets/configs, task type override).
    assert not {"secrets", "configs", "taskType"} & custom.keys()


def test_custom_is_never_empty() -> None:
    t = _template(flyte2_tasks.boom)
    assert t.HasField("custom")
    assert json_format.MessageToDict(t.custom) == {"version": 1, "platformCapabilities": "EC2"}
    # What the executor does with custom before CreateTask: parse it as core.Connection (empty here).
    assert connection_from_custom(t).ListFields() == []


def test_container_runs_a0_with_the_executor_placeholders() -> None:
    c = _template(flyte2_tasks.double).container
    assert c.image == "123456789012.dkr.ecr.us-east-1.amazonaws.com/flyte2-tasks:1"
    assert list(c.command) == []
    assert list(c.args) == [
        "a0",
        "--inputs", "{{.input}}",
        "--outputs-path", "{{.outputPrefix}}",
        "--version", "v1",
        "--raw-data-path", "{{.rawOutputDataPrefix}}",
        "--checkpoint-path", "{{.checkpointOutputPrefix}}",
        "--prev-checkpoint", "{{.prevCheckpointPrefix}}",
        "--run-name", "{{.runName}}",
        "--name", "{{.actionName}}",
        "--run-start-time", "{{.runStartTime}}",
        "--resolver", "flyte._internal.resolvers.default.DefaultTaskResolver",
        "mod", "flyte2_tasks", "instance", "double",
    ]  # fmt: skip


def test_resources_retries_timeout_env_and_secrets_come_from_the_task_settings() -> None:
    t = _template(flyte2_tasks.double)
    requests = {tasks_pb2.Resources.ResourceName.Name(r.name): r.value for r in t.container.resources.requests}
    assert requests == {"CPU": "2", "MEMORY": "3Gi"}
    assert list(t.container.resources.limits) == []
    assert t.metadata.retries.retries == 2
    assert t.metadata.timeout.seconds == 600
    assert {kv.key: kv.value for kv in t.container.env} == {"LOG_LEVEL": "debug"}
    [secret] = t.security_context.secrets
    assert (secret.key, secret.env_var) == ("api-token", "API_TOKEN")
    assert _template(flyte2_tasks.boom).metadata.retries.retries == 0


def test_the_service_reads_the_custom_of_a_flyte2_template() -> None:
    """Cross-check of the key names: the v2 template, transcoded to v1 (wire-compatible), through today's
    build_task_spec. The queue is not read from custom yet (custom `queue` is the proposal)."""
    template = v1_tasks_pb2.TaskTemplate()
    template.ParseFromString(_template(flyte2_tasks.double).SerializeToString())
    template.ClearField("security_context")  # the service maps secrets through its config; not under test here
    request = agent_pb2.CreateTaskRequest(template=template, output_prefix="s3://bucket/run/a1/1")
    ex = request.task_execution_metadata.task_execution_id.node_execution_id.execution_id
    ex.project, ex.domain, ex.name = "flytesnacks", "development", "r1"
    spec = build_task_spec(request, load_config({"defaultQueue": "fallback"}))
    assert spec.task_type == "aws-batch" and spec.platform == "EC2"
    assert spec.parameters == {"codec": "h264"}
    assert spec.scheduling_priority == 40
    assert spec.propagate_tags is True
    assert spec.share_identifier == "teamA"
    assert spec.tags["team"] == "a"
    assert spec.attempts == 3 and spec.timeout_seconds == 600
    assert (spec.resources.vcpus, spec.resources.memory_mib) == ("2", 3072)
    assert spec.command[0] == "a0"


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="scheduling_priority"):
        AWSBatch(scheduling_priority=10_000)
    with pytest.raises(ValueError, match="platform_capabilities"):
        AWSBatch(platform_capabilities="GPU")
    with pytest.raises(ValueError, match="queue"):
        AWSBatch(queue=" ")
    with pytest.raises(TypeError, match="tags"):
        AWSBatch(tags={"n": 1})  # type: ignore[dict-item]
    assert AWSBatch(platform_capabilities="fargate").to_custom()["platformCapabilities"] == "FARGATE"
