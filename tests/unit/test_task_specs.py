"""Template -> TaskSpec -> AWS requests: precedence rules, clamps and names, without I/O."""

from __future__ import annotations

import re

import pytest
from flyteidl.core import literals_pb2, tasks_pb2

from aws_array_plugin.config import load_config
from aws_array_plugin.job_requests import array_chunks, image_repository, job_definition, submit_requests
from aws_array_plugin.task_specs import Rejection, build_task_spec, job_name_for
from tests.templates import create_request, literal_map, task_template

CFG = load_config({"defaultQueue": "fallback"})


def spec_for(entity: str = "awsbatch_minimal_task", config: dict | None = None, **kw):  # type: ignore[no-untyped-def]
    req = create_request(task_template(entity), **kw)
    return req, build_task_spec(req, load_config({"defaultQueue": "fallback", **(config or {})}))


def test_queue_from_container_config_later_entry_wins() -> None:
    req = create_request(task_template("awsbatch_minimal_task"))
    req.template.container.config.add(key="dynamic_queue", value="user-q")
    req.template.container.config.add(key="child_queue", value="admin-q")  # FlyteAdmin appends
    assert build_task_spec(req, CFG).queue == "admin-q"


@pytest.mark.parametrize(("rules", "labels", "queue"), [
    ([{"match": {"gpu": True}, "queue": "gpu-q"}], {}, "gpu-q"),
    ([{"match": {"gpu": False}, "queue": "cpu-q"}], {}, "fallback"),
    ([{"match": {"taskName": "*.awsbatch_*"}, "queue": "named"}], {}, "named"),
    ([{"match": {"project": "other"}, "queue": "x"}, {"match": {"domain": "dev*"}, "queue": "dev"}], {}, "dev"),
    ([{"match": {"labels": {"team": "ml"}}, "queue": "ml-q"}], {"team": "ml"}, "ml-q"),
    ([{"match": {"labels": {"team": "ml"}}, "queue": "ml-q"}], {}, "fallback"),
    ([{"match": {"interruptible": True}, "queue": "spot"}], {"interruptible": "true"}, "spot"),
])
def test_queue_routing_rules(rules: list, labels: dict, queue: str) -> None:
    _, spec = spec_for("awsbatch_task", {"queueRouting": rules, "secrets": [
        {"group": "aws-batch", "key": "api-token", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/t"}]},
        labels=labels)
    assert spec.queue == queue


def test_role_precedence_and_allowed_roles() -> None:
    cfg = {"roleAnnotationKey": "iam-role", "defaultRole": "arn:aws:iam::1:role/default"}
    req, spec = spec_for(config=cfg, iam_role="arn:aws:iam::1:role/identity")
    assert spec.role == "arn:aws:iam::1:role/identity"
    req.task_execution_metadata.identity.iam_role = ""
    req.task_execution_metadata.annotations["iam-role"] = "arn:aws:iam::1:role/annotated"
    assert build_task_spec(req, load_config({**cfg, "defaultQueue": "q"})).role == "arn:aws:iam::1:role/annotated"
    del req.task_execution_metadata.annotations["iam-role"]
    assert build_task_spec(req, load_config({**cfg, "defaultQueue": "q"})).role == "arn:aws:iam::1:role/default"
    with pytest.raises(Rejection, match="allowedRoles"):
        build_task_spec(req, load_config({**cfg, "defaultQueue": "q", "allowedRoles": ["arn:aws:iam::2:role/*"]}))


def test_environment_precedence() -> None:
    req = create_request(task_template("awsbatch_task"), env={"LOG_LEVEL": "exec", "FLYTE_FAIL_ON_ERROR": "false"})
    cfg = load_config({"defaultQueue": "q", "defaultEnv": {"APP_MODE": "cfg"}, "secrets": [
        {"group": "aws-batch", "key": "api-token", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/t"}]})
    env = build_task_spec(req, cfg).env
    assert env["LOG_LEVEL"] == "exec"  # execution env over task env
    assert env["APP_MODE"] == "cfg"  # config default env over both
    assert env["FLYTE_FAIL_ON_ERROR"] == "true"  # always


@pytest.mark.parametrize(("timeout_s", "default", "expected"), [(30, "72h", 60), (3600, "72h", 3600),
                                                               (0, "72h", 259200), (0, 0, None)])
def test_timeout(timeout_s: int, default: object, expected: int | None) -> None:
    req = create_request(task_template("awsbatch_minimal_task"))
    req.template.metadata.timeout.seconds = timeout_s
    assert build_task_spec(req, load_config({"defaultQueue": "q", "defaultTimeout": default})).timeout_seconds == expected


@pytest.mark.parametrize(("retries", "attempts"), [(0, 1), (3, 4), (9, 10), (25, 10)])
def test_attempts_clamped_to_aws_range_without_forced_retry(retries: int, attempts: int) -> None:
    req = create_request(task_template("awsbatch_minimal_task"))
    req.template.metadata.retries.retries = retries
    assert build_task_spec(req, CFG).attempts == attempts


@pytest.mark.parametrize(("custom", "version", "inputs", "size", "min_successes"), [
    ({"minSuccessRatio": 0.8, "parallelism": "5"}, 1, [1, 2, 3, 4, 5], 5, 4),
    ({"minSuccesses": "2"}, 1, [1, 2, 3], 3, 2),
    ({}, 1, [1, 2, 3], 3, 3),
    ({"size": "7", "minSuccesses": "6"}, 0, [], 7, 6),
    ({"minSuccessRatio": 0.5}, 1, [1, 2, 3], 3, 2),
])
def test_array_size_and_threshold(custom: dict, version: int, inputs: list, size: int, min_successes: int) -> None:
    req = create_request(task_template("square_legacy_map"), inputs=literal_map({"x": inputs}, {"x": list[int]}))
    req.template.task_type_version = version
    req.template.custom.Clear()
    req.template.custom.update(custom)
    spec = build_task_spec(req, CFG)
    assert (spec.size, spec.min_successes) == (size, min_successes)


@pytest.mark.parametrize(("custom", "field"), [
    ({"minSuccessRatio": 1.5}, "template.custom.minSuccessRatio"),
    ({"minSuccesses": "9"}, "template.custom.minSuccesses"),
    ({"parallelism": "many"}, "template.custom.parallelism"),
])
def test_bad_array_custom(custom: dict, field: str) -> None:
    req = create_request(task_template("square_legacy_map"), inputs=literal_map({"x": [1, 2]}, {"x": list[int]}))
    req.template.custom.Clear()
    req.template.custom.update(custom)
    with pytest.raises(Rejection) as err:
        build_task_spec(req, CFG)
    assert err.value.field == field


def test_offloaded_input_is_rejected() -> None:
    req = create_request(task_template("square_legacy_map"))
    req.inputs.literals["x"].offloaded_metadata.uri = "s3://b/k"
    with pytest.raises(Rejection, match="offloaded"):
        build_task_spec(req, CFG)


def test_job_names_are_deterministic_valid_and_unique_per_attempt() -> None:
    t = task_template("awsbatch_minimal_task")
    a, b = create_request(t, attempt=0), create_request(t, attempt=0)
    assert job_name_for(a) == job_name_for(b)
    assert job_name_for(create_request(t, attempt=1)) != job_name_for(a)
    long = create_request(t, execution="x" * 300, node="n.with.dots/and:colons")
    name = job_name_for(long)
    assert len(name) <= 115 and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name)


def test_fargate_definition_and_resources() -> None:
    req = create_request(task_template("awsbatch_minimal_task"))
    req.template.config["platformCapabilities"] = "FARGATE"
    req.template.container.resources.limits.add(name=tasks_pb2.Resources.CPU, value="250m")
    req.template.container.resources.limits.add(name=tasks_pb2.Resources.MEMORY, value="3Gi")
    cfg = load_config({"defaultQueue": "q", "jobDefinitions": {"fargate": {
        "executionRoleArn": "arn:aws:iam::1:role/exec", "assignPublicIp": "ENABLED"}}})
    spec = build_task_spec(req, cfg)
    assert (spec.resources.vcpus, spec.resources.memory_mib) == ("0.5", 3072)
    jd = job_definition(spec, cfg, "us-east-1").body
    assert jd["platformCapabilities"] == ["FARGATE"]
    assert jd["containerProperties"]["executionRoleArn"] == "arn:aws:iam::1:role/exec"
    assert jd["containerProperties"]["networkConfiguration"] == {"assignPublicIp": "ENABLED"}


def test_definition_name_is_a_content_hash() -> None:
    _, spec = spec_for()
    base = job_definition(spec, CFG, "us-east-1").name
    assert base == job_definition(spec, CFG, "us-east-1").name
    _, other_attempt = spec_for(attempt=3)
    assert job_definition(other_attempt, CFG, "us-east-1").name == base  # per-task settings are not in it
    _, with_role = spec_for(iam_role="arn:aws:iam::1:role/r")
    assert job_definition(with_role, CFG, "us-east-1").name != base
    logs = load_config({"defaultQueue": "q", "jobDefinitions": {"logGroup": "/custom"}})
    body = job_definition(spec, logs, "eu-west-1").body
    assert body["containerProperties"]["logConfiguration"] == {
        "logDriver": "awslogs", "options": {"awslogs-group": "/custom", "awslogs-region": "eu-west-1"}}
    assert job_definition(spec, logs, "eu-west-1").name != base
    assert len(base) <= 128 and base.startswith("flyte-app-")


@pytest.mark.parametrize(("image", "repo"), [
    ("myrepo/test", "test"), ("ubuntu", "ubuntu"), ("registry/test:1.1", "test"), ("ubuntu:1.1", "ubuntu"),
    ("test.custom.domain.net:1234/prefix/key/repo:0.0.2alpha_dev", "repo"), ("localhost:5000/img", "img"),
    ("123.dkr.ecr.us-east-1.amazonaws.com/my.app@sha256:abcd", "my.app"),
])
def test_image_repository(image: str, repo: str) -> None:
    assert image_repository(image) == repo


@pytest.mark.parametrize(("size", "expected"), [
    (0, []), (1, [(0, 1)]), (10_000, [(0, 10_000)]), (10_001, [(0, 5_001), (5_001, 5_000)]),
    (25_000, [(0, 8_334), (8_334, 8_333), (16_667, 8_333)]),
])
def test_array_chunks(size: int, expected: list) -> None:
    assert [(c.offset, c.size) for c in array_chunks(size)] == expected


def test_submit_requests_for_size_one_array_is_a_plain_job() -> None:
    req = create_request(task_template("square_legacy_map"), inputs=literal_map({"x": [7]}, {"x": list[int]}))
    (sub,) = submit_requests(build_task_spec(req, CFG), "arn:jd")
    env = {e["name"]: e["value"] for e in sub["containerOverrides"]["environment"]}
    assert "arrayProperties" not in sub
    assert (env["BATCH_JOB_ARRAY_INDEX_VAR_NAME"], env["FAKE_JOB_ARRAY_INDEX"]) == ("FAKE_JOB_ARRAY_INDEX", "0")


def test_empty_literal_map_has_no_array_size() -> None:
    req = create_request(task_template("square_legacy_map"), inputs=literals_pb2.LiteralMap())
    with pytest.raises(Rejection, match="needs list inputs"):
        build_task_spec(req, CFG)
