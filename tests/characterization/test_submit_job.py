"""What CreateTask sends to AWS Batch for real flytekit templates, pinned in golden/submit_job/<case>.json.

Every `aws-batch` and `container_array` entity of tests/flyte_app/workflows.py, plus the variants the suite
uses (fast registration, role and env from the execution metadata, child_queue, retry attempt, GPU, service
configuration of queues, roles, logs, Fargate). Each case runs in an empty account, so the job definition it
needs is always registered by it: recorded are the RegisterJobDefinition and SubmitJob parameters as sent, and
the resource meta returned to propeller (it is stored by propeller, so its content is part of the contract).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import tasks_pb2

from tests.characterization.conftest import (
    SECOND_QUEUE,
    ScriptedBatch,
    check_golden,
    check_no_orphan_goldens,
    job_ids,
    normalize,
    plugin_server,
    resource_meta_record,
)
from tests.conftest import ROLE, MotoServer
from tests.templates import create_request, literal_map, task_template

SECRETS = [{"group": "aws-batch", "key": "api-token",
            "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-token"}]


def _x(value: int) -> Any:
    return literal_map({"x": value}, {"x": int})


def _xs(values: list[int]) -> Any:
    return literal_map({"x": values}, {"x": list[int]})


def _awsbatch_task(fast: bool) -> agent_pb2.CreateTaskRequest:
    from flytekit.types.file import FlyteFile

    inputs = literal_map({"x": 1, "name": "Flyte", "values": [1, 2, 3], "data": FlyteFile("s3://flyte-data/in.txt")},
                         {"x": int, "name": str, "values": list[int], "data": FlyteFile})
    return create_request(task_template("awsbatch_task", fast=fast), execution="sub-awsbatch", iam_role=ROLE,
                          env={"EXEC_ENV": "x"}, inputs=inputs)


def _child_queue() -> agent_pb2.CreateTaskRequest:
    req = create_request(task_template("awsbatch_minimal_task"), execution="sub-child-queue", inputs=_x(1))
    req.template.container.config.add(key="child_queue", value=SECOND_QUEUE)  # what FlyteAdmin appends
    return req


def _gpu() -> agent_pb2.CreateTaskRequest:
    req = create_request(task_template("awsbatch_minimal_task"), execution="sub-gpu", inputs=_x(1))
    req.template.container.resources.limits.add(name=tasks_pb2.Resources.GPU, value="1")
    return req


def _fargate() -> agent_pb2.CreateTaskRequest:
    req = create_request(task_template("awsbatch_minimal_task"), execution="sub-fargate", inputs=_x(1))
    req.template.config["platformCapabilities"] = "FARGATE"  # AWSBatchConfig(platformCapabilities="FARGATE")
    req.template.custom.update({"platformCapabilities": "FARGATE"})
    return req


# case -> (request, service configuration merged into CHAR_CONFIG)
CASES: dict[str, tuple[Callable[[], agent_pb2.CreateTaskRequest], dict[str, Any]]] = {
    "awsbatch_task": (lambda: _awsbatch_task(False),
                      {"allowedRoles": ["arn:aws:iam::123456789012:role/*"], "defaultEnv": {"TEAM": "ml"},
                       "secrets": SECRETS}),
    "awsbatch_task_fast": (lambda: _awsbatch_task(True),
                           {"allowedRoles": ["arn:aws:iam::123456789012:role/*"], "defaultEnv": {"TEAM": "ml"},
                            "secrets": SECRETS}),
    "awsbatch_minimal_task": (lambda: create_request(task_template("awsbatch_minimal_task"), execution="sub-minimal",
                                                     inputs=_x(1)), {}),
    "awsbatch_minimal_task_fast": (lambda: create_request(task_template("awsbatch_minimal_task", fast=True),
                                                          execution="sub-minimal-fast", inputs=_x(1)), {}),
    "awsbatch_minimal_task_child_queue": (_child_queue, {}),
    "awsbatch_minimal_task_retry_attempt_2": (
        lambda: create_request(task_template("awsbatch_minimal_task"), execution="sub-retry", attempt=2, inputs=_x(1),
                               labels={"workflow-name": "tests.flyte_app.workflows.some_wf"}), {}),
    "awsbatch_minimal_task_gpu": (_gpu, {}),
    "awsbatch_minimal_task_fargate": (_fargate, {"jobDefinitions": {"fargate": {
        "executionRoleArn": "arn:aws:iam::123456789012:role/ecs-task-execution"}}}),
    "awsbatch_minimal_task_service_settings": (
        lambda: create_request(task_template("awsbatch_minimal_task"), execution="sub-settings", inputs=_x(1)),
        {"defaultRole": "arn:aws:iam::123456789012:role/flyte-default", "shareIdentifier": "ml",
         "defaultTags": {"owner": "platform"}, "defaultTimeout": "2h", "defaultEnv": {"TEAM": "ml"},
         "jobDefinitions": {"logGroup": "/flyte/tasks", "logStreamPrefix": "flyte",
                            "executionRoleArn": "arn:aws:iam::123456789012:role/ecs-task-execution",
                            "tags": {"team": "platform"}}}),
    "batch_square": (lambda: create_request(task_template("batch_square"), execution="sub-batch-square",
                                            inputs=_x(3)), {}),
    "batch_square_queue_routing": (
        lambda: create_request(task_template("batch_square"), execution="sub-routing", inputs=_x(3)),
        {"queueRouting": [{"match": {"taskName": "*batch_square*"}, "queue": SECOND_QUEUE,
                           "shareIdentifier": "gpu-share"}]}),
    "square_legacy_map_5": (lambda: create_request(task_template("square_legacy_map"), execution="sub-map5",
                                                   inputs=_xs([1, 2, 3, 4, 5])), {}),
    "square_legacy_map_5_fast": (lambda: create_request(task_template("square_legacy_map", fast=True),
                                                        execution="sub-map5-fast", inputs=_xs([1, 2, 3, 4, 5])), {}),
    "square_legacy_map_1": (lambda: create_request(task_template("square_legacy_map"), execution="sub-map1",
                                                   inputs=_xs([7])), {}),
    "square_legacy_map_0": (lambda: create_request(task_template("square_legacy_map"), execution="sub-map0",
                                                   inputs=_xs([])), {}),
    "square_legacy_map_role_and_env": (
        lambda: create_request(task_template("square_legacy_map"), execution="sub-map-role", iam_role=ROLE,
                               env={"EXEC_ENV": "x"}, inputs=_xs([1, 2, 3])), {}),
    "batch_square_legacy_map_10": (lambda: create_request(task_template("batch_square_legacy_map"),
                                                          execution="sub-batch-map", inputs=_xs(list(range(10)))), {}),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_submit_job(name: str, fresh_account: MotoServer) -> None:
    make, config = CASES[name]
    req = make()
    async with plugin_server(fresh_account, ScriptedBatch(), config) as plugin:
        meta = bytes((await plugin.agents.CreateTask(req, timeout=15)).resource_meta)
        record = {
            "case": name,
            "task_type": req.template.type,
            "RegisterJobDefinition": plugin.sent("RegisterJobDefinition"),
            "SubmitJob": plugin.sent("SubmitJob"),
            "resource_meta": resource_meta_record(meta),
        }
    check_golden("submit_job", name, normalize(record, job_ids(meta)))


def test_every_golden_file_has_a_case() -> None:
    check_no_orphan_goldens("submit_job", list(CASES))
