"""CreateTask through the real server: exact job definitions and SubmitJob requests for real flytekit
templates, idempotency, and every kind of bad input (a recorded rejection, nothing submitted)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, tasks_pb2

from aws_array_plugin.resource_meta import ARRAY, SINGLE, decode
from tests.conftest import QUEUE, ROLE, StartPlugin
from tests.support import get
from tests.templates import create_request, literal_map, task_template

Phase = execution_pb2.TaskExecution


def env_of(req: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in req["containerOverrides"]["environment"]}


@pytest.mark.parametrize("fast", [False, True])
async def test_aws_batch_task_submit_job_and_definition(start_plugin: StartPlugin, moto, fast: bool) -> None:
    config = {"allowedRoles": ["arn:aws:iam::123456789012:role/*"], "defaultEnv": {"TEAM": "ml"},
              "secrets": [{"group": "aws-batch", "key": "api-token",
                           "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-token"}]}
    async with start_plugin(config) as plugin:
        tmpl = task_template("awsbatch_task", fast=fast)
        req = create_request(tmpl, execution=f"e-fast{fast}", iam_role=ROLE, env={"EXEC_ENV": "x"})
        resp = await plugin.agents.CreateTask(req, timeout=10)
        meta = decode(resp.resource_meta)
        assert meta.kind == SINGLE and len(meta.job_ids) == 1 and meta.queue == QUEUE
        assert len(resp.resource_meta) < 1024

        (sub,) = plugin.sent("SubmitJob")
        # Content-addressed: the fast and non-fast templates share one definition (only args differ).
        (jd,) = moto.client("batch").describe_job_definitions(jobDefinitions=[sub["jobDefinition"]])["jobDefinitions"]
        assert jd["platformCapabilities"] == ["EC2"]
        assert jd["revision"] == 1
        props = jd["containerProperties"]
        assert props["image"] == "ghcr.io/example/app:v1"
        assert props["jobRoleArn"] == ROLE
        assert props["secrets"] == [{"name": "_FSEC_AWS-BATCH_API-TOKEN",
                                     "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-token"}]
        assert jd["jobDefinitionName"].startswith("flyte-app-")
        assert jd["tags"]["managed-by"] == "aws-array-plugin"
        assert sub["jobName"] == meta.job_name and len(sub["jobName"]) <= 128
        assert sub["jobQueue"] == QUEUE
        container = req.template.container
        assert sub["containerOverrides"]["command"] == list(container.command) + list(container.args)
        assert sub["containerOverrides"]["command"][-1] == "awsbatch_task"
        assert f"{req.output_prefix}/0" in sub["containerOverrides"]["command"]
        assert sub["containerOverrides"]["resourceRequirements"] == [
            {"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "8192"}, {"type": "GPU", "value": "1"}]
        env = env_of(sub)
        assert env["LOG_LEVEL"] == "debug" and env["APP_MODE"] == "batch" and env["EXEC_ENV"] == "x"
        assert env["TEAM"] == "ml" and env["FLYTE_FAIL_ON_ERROR"] == "true"
        assert env["FLYTE_INTERNAL_EXECUTION_ID"] == f"e-fast{fast}"
        assert env["FLYTE_INTERNAL_EXECUTION_PROJECT"] == "flytesnacks"
        assert env["FLYTE_INTERNAL_TASK_NAME"] == "tests.flyte_app.workflows.awsbatch_task"
        assert env["FLYTE_ATTEMPT_NUMBER"] == "0"
        assert "BATCH_JOB_ARRAY_INDEX_VAR_NAME" not in env
        assert [e["name"] for e in sub["containerOverrides"]["environment"]] == sorted(env)
        assert sub["retryStrategy"] == {"attempts": 4}
        assert sub["timeout"] == {"attemptDurationSeconds": 3600}
        assert sub["parameters"] == {"codec": "mp4", "threads": "4"}
        assert sub["schedulingPriorityOverride"] == 10 and isinstance(sub["schedulingPriorityOverride"], int)
        assert sub["propagateTags"] is True
        assert sub["tags"] == {"team": "ml", "cost-center": "1234", "flyte:project": "flytesnacks",
                               "flyte:domain": "development", "flyte:execution-id": f"e-fast{fast}",
                               "flyte:task-name": "tests.flyte_app.workflows.awsbatch_task"}
        assert "arrayProperties" not in sub


async def test_repeated_create_task_is_idempotent(start_plugin: StartPlugin) -> None:
    # A role of its own: definitions are content-addressed, and other tests share the emulated account.
    role = f"arn:aws:iam::123456789012:role/idempotency-{uuid.uuid4().hex[:8]}"
    async with start_plugin() as plugin:
        req = create_request(task_template("awsbatch_minimal_task"), execution="dup", iam_role=role)
        first = await plugin.agents.CreateTask(req, timeout=10)
        second = await plugin.agents.CreateTask(req, timeout=10)
        assert first.resource_meta == second.resource_meta
        assert len(plugin.sent("SubmitJob")) == 1
        assert len(plugin.sent("RegisterJobDefinition")) == 1
    # A new process (restart or another replica) neither resubmits nor registers a new revision.
    async with start_plugin() as plugin2:
        third = await plugin2.agents.CreateTask(req, timeout=10)
        assert third.resource_meta == first.resource_meta
        assert plugin2.sent("SubmitJob") == [] and plugin2.sent("RegisterJobDefinition") == []
        other = create_request(task_template("awsbatch_minimal_task"), execution="dup2", iam_role=role)
        await plugin2.agents.CreateTask(other, timeout=10)
        assert len(plugin2.sent("SubmitJob")) == 1
        assert plugin2.sent("RegisterJobDefinition") == []  # same content: found by DescribeJobDefinitions


async def test_legacy_map_task_size_5_ratio_08(start_plugin: StartPlugin) -> None:
    async with start_plugin() as plugin:
        inputs = literal_map({"x": [1, 2, 3, 4, 5]}, {"x": list[int]})
        req = create_request(task_template("square_legacy_map"), execution="map5", inputs=inputs)
        meta = decode((await plugin.agents.CreateTask(req, timeout=10)).resource_meta)
        assert meta.kind == ARRAY and meta.size == 5 and meta.min_successes == 4
        assert list(meta.output_names) == ["o0"]
        (sub,) = plugin.sent("SubmitJob")
        assert sub["arrayProperties"] == {"size": 5}
        env = env_of(sub)
        assert env["BATCH_JOB_ARRAY_INDEX_VAR_NAME"] == "AWS_BATCH_JOB_ARRAY_INDEX"
        assert "BATCH_JOB_ARRAY_INDEX_OFFSET" not in env
        assert sub["containerOverrides"]["command"][0] == "pyflyte-map-execute"
        assert sub["retryStrategy"] == {"attempts": 3}
        assert sub["containerOverrides"]["resourceRequirements"] == [
            {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "1024"}]


@pytest.mark.parametrize(("size", "chunks"), [(0, []), (1, [None]), (10_000, [10_000]),
                                              (25_000, [8_334, 8_333, 8_333])])
async def test_array_sizes(start_plugin: StartPlugin, size: int, chunks: list[int | None]) -> None:
    # moto marks every child SUCCEEDED inside SubmitJob, which takes seconds for 10,000 children.
    async with start_plugin({"submission": {"createWait": "25s"}}) as plugin:
        inputs = literal_map({"x": list(range(size))}, {"x": list[int]})
        req = create_request(task_template("square_legacy_map"), execution=f"size{size}", inputs=inputs)
        meta = decode((await plugin.agents.CreateTask(req, timeout=30)).resource_meta)
        subs = plugin.sent("SubmitJob")
        assert [s.get("arrayProperties", {}).get("size") for s in subs] == chunks
        assert meta.size == size and len(meta.job_ids) == len(chunks)
        if size == 1:
            env = env_of(subs[0])
            assert env["BATCH_JOB_ARRAY_INDEX_VAR_NAME"] == "FAKE_JOB_ARRAY_INDEX" and env["FAKE_JOB_ARRAY_INDEX"] == "0"
        if size == 25_000:
            assert [env_of(s)["BATCH_JOB_ARRAY_INDEX_OFFSET"] for s in subs] == ["0", "8334", "16667"]
            assert len({s["jobName"] for s in subs}) == 3
        if size == 0:
            res = await get(plugin, (await plugin.agents.CreateTask(req, timeout=10)).resource_meta, "container_array")
            assert res.phase == Phase.SUCCEEDED
            assert res.outputs.literals["o0"].HasField("collection")
            assert len(res.outputs.literals["o0"].collection.literals) == 0


async def test_queued_tasks_report_their_place_in_line(start_plugin: StartPlugin) -> None:
    """Behind the SubmitJob quota, GetTask says "waiting to submit, position N": 1 for the next to go, in the
    order the tasks were accepted, and the line moves up as tasks leave it."""
    config = {"rateLimits": {"submit": {"rate": 0.1, "burst": 1}}, "submission": {"workers": 2}}
    async with start_plugin(config) as plugin:
        metas = []
        for i in range(7):
            req = create_request(task_template("awsbatch_minimal_task"), execution=f"line-{uuid.uuid4().hex[:6]}-{i}")
            metas.append((await plugin.agents.CreateTask(req, timeout=10)).resource_meta)

        async def positions() -> list[int | None]:
            found = []
            for meta in metas:
                message = (await get(plugin, meta)).message
                found.append(int(message.rsplit("position ", 1)[1].split(":")[0]) if "position " in message else None)
            return found

        # One job submitted (the burst of 1), one task held by each worker at the limiter, the rest in line.
        assert await positions() == [None, None, None, 1, 2, 3, 4]
        for gone in (4, 3):  # mid-line, then the head
            await plugin.agents.DeleteTask(agent_pb2.DeleteTaskRequest(
                resource_meta=metas[gone], task_category=agent_pb2.TaskCategory(name="aws-batch")), timeout=10)
            assert len(plugin.sent("SubmitJob")) == 1
        assert (await positions())[5:] == [1, 2]
        req = create_request(task_template("awsbatch_minimal_task"), execution=f"line-{uuid.uuid4().hex[:6]}-7")
        metas.append((await plugin.agents.CreateTask(req, timeout=10)).resource_meta)
        assert (await positions())[5:] == [1, 2, 3]


async def test_create_tasks_of_one_moment_share_one_journal_write(start_plugin: StartPlugin, moto) -> None:
    """Concurrent CreateTasks behind the SubmitJob quota: their claims go to S3 together, in journal objects, not
    one PutObject each; each resource meta points at its entry. Another replica answers from the journal, and a
    repeated CreateTask there gives one job in all."""
    config = {"rateLimits": {"submit": {"rate": 0.05, "burst": 1}}, "submission": {"workers": 1, "createWait": "0s"}}
    run = uuid.uuid4().hex[:6]
    reqs = [create_request(task_template("awsbatch_minimal_task"), execution=f"jrn-{run}-{i}") for i in range(20)]
    s3 = moto.client("s3")

    def read(uri: str) -> Any:
        bucket, _, key = uri[5:].partition("/")
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    async with start_plugin(config) as plugin:
        keys: list[str] = []
        plugin.running.core.api.client("s3").meta.events.register(
            "provide-client-params.s3.PutObject", lambda params, **_: keys.append(params["Key"]))
        answers = await asyncio.gather(*(plugin.agents.CreateTask(r, timeout=10) for r in reqs))
        metas = [decode(a.resource_meta) for a in answers]
        journals = [k for k in keys if "/_aws_array_plugin/journal-" in k]
        waiting = [i for i, m in enumerate(metas) if not m.job_ids]
        assert len(waiting) >= len(reqs) - 1  # one may have taken the quota's burst of 1
        assert 1 <= len(journals) < len(reqs) / 2, journals
        assert len(keys) - len(journals) <= 2, keys  # only the record of the one job submitted so far
        for i in waiting:
            m = metas[i]
            assert m.journal.endswith(".json") and m.journal.startswith("s3://")
            entry = read(m.journal)["entries"][m.journal_entry]
            assert entry["record"] == f"{m.output_prefix}/_aws_array_plugin/submission.json"
            assert entry["state"] == "pending" and [r["jobName"] for r in entry["requests"]] == [m.job_name]
            assert entry["claimedBy"] == plugin.running.core.submissions.replica
        # The task at the tail of the line: the head may already be in the worker's hands (its record created,
        # waiting for the quota), and then the other replica rightly follows that record instead of submitting.
        positions = {}
        for i in waiting:
            found = re.search(r"position (\d+)", (await get(plugin, answers[i].resource_meta)).message)
            positions[i] = int(found.group(1)) if found else 0
        last = max(waiting, key=lambda i: positions[i])
        assert positions[last] > 1
        async with start_plugin(config) as plugin2:
            res = await get(plugin2, answers[last].resource_meta)
            assert res.phase == Phase.QUEUED, res
            assert f"on replica {plugin.running.core.submissions.replica}" in res.message, res.message
            again = await plugin2.agents.CreateTask(reqs[last], timeout=10)
            assert decode(again.resource_meta).journal != metas[last].journal  # a claim of its own
            for _ in range(100):
                res = await get(plugin2, answers[last].resource_meta)
                if res.phase != Phase.QUEUED:
                    break
                await asyncio.sleep(0.1)
            # moto's jobs succeed without running, so no outputs: the task's own job ran, not a queued one.
            assert "the job succeeded" in res.message, res
            assert [s["jobName"] for s in plugin2.sent("SubmitJob")] == [metas[last].job_name]
            assert read(f"{metas[last].output_prefix}/_aws_array_plugin/submission.json")["state"] == "submitted"
        assert metas[last].job_name not in [s["jobName"] for s in plugin.sent("SubmitJob")]


def _bad_requests() -> list[tuple[str, agent_pb2.CreateTaskRequest, dict, str]]:
    cases = []
    t = task_template("awsbatch_minimal_task")
    r = create_request(t, execution="bad-noimage")
    r.template.container.image = ""
    cases.append(("no image", r, {}, "template.container.image"))
    r = create_request(t, execution="bad-nocontainer")
    r.template.ClearField("container")
    cases.append(("no container", r, {}, "template.container"))
    r = create_request(t, execution="bad-type")
    r.template.type = "spark"
    cases.append(("unknown type", r, {}, "template.type"))
    r = create_request(t, execution="bad-custom")
    r.template.custom.update({"schedulingPriority": "high"})
    cases.append(("malformed custom", r, {}, "template.custom.schedulingPriority"))
    r = create_request(t, execution="bad-qty")
    r.template.container.resources.limits.add(name=tasks_pb2.Resources.MEMORY, value="lots")
    cases.append(("bad quantity", r, {}, "template.container.resources.limits[0]"))
    m = task_template("square_legacy_map")
    r = create_request(m, execution="bad-lengths",
                       inputs=literal_map({"x": [1, 2], "y": [1, 2, 3]}, {"x": list[int], "y": list[int]}))
    cases.append(("list lengths differ", r, {}, "inputs"))
    r = create_request(m, execution="bad-big", inputs=literal_map({"x": list(range(11))}, {"x": list[int]}))
    cases.append(("size over cap", r, {"maxArraySize": 10}, "maxArraySize 10"))
    r = create_request(t, execution="bad-role", iam_role="arn:aws:iam::999999999999:role/admin")
    cases.append(("disallowed role", r, {"allowedRoles": ["arn:aws:iam::123456789012:role/*"]},
                  "task_execution_metadata.identity.iam_role"))
    r = create_request(t, execution="bad-queue")
    cases.append(("no queue", r, {"defaultQueue": ""}, "no job queue"))
    r = create_request(task_template("awsbatch_task"), execution="bad-secret")
    cases.append(("unmapped secret", r, {}, "secret 'aws-batch/api-token'"))
    return cases


@pytest.mark.parametrize(("case", "request_", "config", "expected"), _bad_requests(), ids=lambda v: v if isinstance(v, str) else "")
async def test_bad_input_is_a_recorded_rejection(start_plugin: StartPlugin, case: str, request_: agent_pb2.CreateTaskRequest,
                                                 config: dict, expected: str) -> None:
    async with start_plugin(config) as plugin:
        resp = await plugin.agents.CreateTask(request_, timeout=10)
        meta = decode(resp.resource_meta)
        assert meta.rejection.startswith("invalid task:")
        assert expected in meta.rejection
        assert plugin.sent("SubmitJob") == [] and plugin.sent("RegisterJobDefinition") == []
        res = await get(plugin, resp.resource_meta, request_.template.type)
        assert res.phase == Phase.FAILED and expected in res.message
        await plugin.agents.DeleteTask(agent_pb2.DeleteTaskRequest(resource_meta=resp.resource_meta), timeout=10)


async def test_a_job_definition_aws_rejects_fails_the_task_and_submits_nothing(start_plugin: StartPlugin) -> None:
    """AWS rejects the definition (a tag value over 256 characters): the task fails for good with AWS's reason,
    kept in the submission record, so another replica answers the same; nothing is submitted."""
    config = {"jobDefinitions": {"tags": {"note": "x" * 300}}}
    run = uuid.uuid4().hex[:8]
    # A role of its own: tags are not part of a definition's content, so an existing one would be reused.
    req = create_request(task_template("awsbatch_minimal_task"), execution=f"bad-def-{run}",
                         iam_role=f"arn:aws:iam::123456789012:role/bad-def-{run}")
    async with start_plugin(config) as plugin:
        resp = await plugin.agents.CreateTask(req, timeout=10)
        assert len(plugin.sent("RegisterJobDefinition")) == 1 and plugin.sent("SubmitJob") == []
        res = await get(plugin, resp.resource_meta)
        assert res.phase == Phase.FAILED
        assert "AWS Batch rejected the job definition" in res.message and "256" in res.message
    async with start_plugin(config) as plugin2:  # a repeated CreateTask on a new replica reads the record
        again = (await plugin2.agents.CreateTask(req, timeout=10)).resource_meta
        assert again == resp.resource_meta
        assert (await get(plugin2, again)).message == res.message
        assert plugin2.sent("RegisterJobDefinition") == [] and plugin2.sent("SubmitJob") == []


async def test_list_agents_and_health(start_plugin: StartPlugin) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with start_plugin() as plugin:
        resp = await plugin.metadata.ListAgents(agent_pb2.ListAgentsRequest(), timeout=5)
        (agent,) = resp.agents
        assert not agent.is_sync
        assert [(c.name, c.version) for c in agent.supported_task_categories] == [("aws-batch", 0), ("container_array", 1)]
        assert list(agent.supported_task_types) == ["aws-batch", "container_array"]
        got = await plugin.metadata.GetAgent(agent_pb2.GetAgentRequest(name=agent.name), timeout=5)
        assert got.agent == agent
        health = health_pb2_grpc.HealthStub(plugin.channel)
        for service in ("", "flyteidl.service.AsyncAgentService", "flyteidl.service.AgentMetadataService"):
            r = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert r.status == health_pb2.HealthCheckResponse.SERVING


async def test_get_and_delete_single_job(start_plugin: StartPlugin, moto) -> None:
    async with start_plugin() as plugin:
        req = create_request(task_template("awsbatch_minimal_task"), execution="getdel")
        resp = await plugin.agents.CreateTask(req, timeout=10)
        res = await get(plugin, resp.resource_meta)
        assert res.phase in (Phase.QUEUED, Phase.SUCCEEDED, Phase.RETRYABLE_FAILED)
        assert res.log_links[0].name == "AWS Batch job" and res.log_links[0].ShowWhilePending
        await plugin.agents.DeleteTask(agent_pb2.DeleteTaskRequest(resource_meta=resp.resource_meta), timeout=10)
        await plugin.agents.DeleteTask(agent_pb2.DeleteTaskRequest(resource_meta=resp.resource_meta), timeout=10)
        terms = plugin.sent("TerminateJob")
        assert terms and terms[0]["reason"] == "Aborted by Flyte (flytesnacks/development/getdel)"
        # Unknown or foreign resource meta: still OK.
        await plugin.agents.DeleteTask(agent_pb2.DeleteTaskRequest(resource_meta=b"not ours"), timeout=10)
        bad = await get(plugin, b"not ours")
        assert bad.phase == Phase.FAILED


async def test_submission_records_are_written_without_waiting_for_100_continue(start_plugin: StartPlugin) -> None:
    """The records are small: a PUT that first waits for S3's `100 Continue` pays a round trip for nothing."""
    async with start_plugin() as plugin:
        sent: list[dict[str, str]] = []

        def capture(request, **_) -> None:  # type: ignore[no-untyped-def]
            sent.append({k.lower(): v for k, v in request.headers.items()})

        plugin.running.core.api.client("s3").meta.events.register("before-send.s3.PutObject", capture)
        req = create_request(task_template("awsbatch_minimal_task"), execution="no-expect")
        resp = await plugin.agents.CreateTask(req, timeout=10)
        assert decode(resp.resource_meta).job_ids  # recorded, submitted, recorded again
        assert len(sent) >= 2
        assert all("expect" not in headers for headers in sent)
        assert all(headers.get("if-none-match") == b"*" or "if-match" in headers for headers in sent)
