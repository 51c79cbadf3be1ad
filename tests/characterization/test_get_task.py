"""GetTask's answers for scripted AWS Batch job states, pinned in golden/get_task/<case>.json.

Each case: the real server, a real flytekit template (tests/flyte_app/workflows.py), CreateTask against moto
(SubmitJob goes to moto), then AWS Batch's answers to DescribeJobs / ListJobs scripted step by step
(`ScriptedBatch`), outputs.pb / error.pb written to S3 as the task would, and every GetTask answer recorded:
phase, message, log links, outputs, custom_info, plus the TerminateJob calls the service made.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from flyteidl.admin import agent_pb2

from tests.characterization.conftest import (
    Recorder,
    ScriptedBatch,
    attempt,
    check_golden,
    check_no_orphan_goldens,
    error_pb,
    get_object,
    int_outputs,
    job_detail,
    job_ids,
    literal_map_record,
    normalize,
    plugin_server,
    put_object,
    status_summary,
    stream,
)
from tests.conftest import MotoServer, Plugin
from tests.templates import create_request, literal_map, task_template

SINGLE, ARRAY = "aws-batch", "container_array"
ESSENTIAL = "Essential container in task exited"
DWELL_PASSED = 0.65  # a little past CHAR_CONFIG's misconfigurationDwell (0.5 s)
GRACE_PASSED = 0.45  # a little past CHAR_CONFIG's missingJobGrace (0.3 s)
HOST_GONE = "Host EC2 (instance i-0123456789abcdef0) terminated."


@dataclass
class Ctx:
    name: str
    moto: MotoServer
    batch: ScriptedBatch
    shared: Plugin
    ids: list[str] = field(default_factory=list)
    plugin: Plugin | None = None
    meta: bytes = b""
    task_type: str = SINGLE
    output_prefix: str = ""

    def __post_init__(self) -> None:
        self.rec = Recorder(self.batch, self.ids)

    @contextlib.asynccontextmanager
    async def start(self, config: dict[str, Any] | None = None, *, fresh: bool = False) -> AsyncIterator[Plugin]:
        """The module's shared server (CHAR_CONFIG), or a server of the case's own: with `config` merged into
        CHAR_CONFIG, or `fresh` (a restarted process or another replica, which knows nothing but the meta)."""
        if config is None and not fresh:
            yield self.shared
            return
        async with plugin_server(self.moto, self.batch, config) as plugin:
            yield plugin

    async def create(self, req: agent_pb2.CreateTaskRequest, plugin: Plugin | None = None) -> None:
        plugin = plugin or self.plugin
        assert plugin is not None
        self.task_type = req.template.type
        self.meta = bytes((await plugin.agents.CreateTask(req, timeout=15)).resource_meta)
        self.output_prefix = req.output_prefix
        self.ids.extend(job_ids(self.meta))

    @property
    def job(self) -> str:
        """The task's (first) AWS job id."""
        assert self.ids, "CreateTask submitted no job"
        return self.ids[0]

    def child(self, i: int) -> str:
        return f"{self.output_prefix}/{i}"

    def write(self, relative: str, data: bytes) -> None:
        """An object the task writes under its output prefix (e.g. "0/outputs.pb")."""
        put_object(self.moto, f"{self.output_prefix}/{relative}", data)

    async def get(self, step: str, plugin: Plugin | None = None) -> agent_pb2.Resource:
        plugin = plugin or self.plugin
        assert plugin is not None
        return await self.rec.get(step, plugin, self.meta, self.task_type)


def single_request(name: str, entity: str = "awsbatch_minimal_task") -> agent_pb2.CreateTaskRequest:
    return create_request(task_template(entity), execution=f"char-{name}".replace("_", "-"),
                          inputs=literal_map({"x": 42}, {"x": int}))


def map_request(name: str, xs: list[int]) -> agent_pb2.CreateTaskRequest:
    """flytekit's legacy map task over `square` (min_success_ratio 0.8)."""
    return create_request(task_template("square_legacy_map"), execution=f"char-{name}".replace("_", "-"),
                          inputs=literal_map({"x": xs}, {"x": list[int]}))


Case = Callable[[Ctx], Awaitable[None]]
CASES: dict[str, Case] = {}


def case(fn: Case) -> Case:
    CASES[fn.__name__] = fn
    return fn


async def single_in_state(ctx: Ctx, step: str, detail: dict[str, Any], config: dict[str, Any] | None = None,
                          files: dict[str, bytes] | None = None, entity: str = "awsbatch_minimal_task") -> None:
    """The common shape: create an aws-batch task, script one state, write the task's files, GetTask once."""
    async with ctx.start(config) as plugin:
        ctx.plugin = plugin
        await ctx.create(single_request(ctx.name, entity))
        for relative, data in (files or {}).items():
            ctx.write(relative, data)
        ctx.batch.set(ctx.job, detail)
        await ctx.get(step)


# -- single jobs: in progress ---------------------------------------------------------------------------------------

@case
async def single_submitted(ctx: Ctx) -> None:
    await single_in_state(ctx, "SUBMITTED", job_detail("SUBMITTED"))


@case
async def single_pending(ctx: Ctx) -> None:
    await single_in_state(ctx, "PENDING", job_detail("PENDING"))


@case
async def single_runnable(ctx: Ctx) -> None:
    await single_in_state(ctx, "RUNNABLE", job_detail("RUNNABLE"))


@case
async def single_runnable_capacity_reason_never_fails(ctx: Ctx) -> None:
    reason = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - There is no Spot capacity available that meets the job requirements."
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(single_request(ctx.name))
        ctx.batch.set(ctx.job, job_detail("RUNNABLE", reason=reason))
        await ctx.get("RUNNABLE with a CAPACITY reason")
        await asyncio.sleep(DWELL_PASSED)  # only MISCONFIGURATION fails
        await ctx.get("still RUNNABLE after the dwell")


@case
async def single_runnable_misconfiguration_fails_after_dwell(ctx: Ctx) -> None:
    reason = ("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is "
              "higher than that can be met by the CE(s) attached to the job queue.")
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(single_request(ctx.name))
        ctx.batch.set(ctx.job, job_detail("RUNNABLE", reason=reason))
        await ctx.get("RUNNABLE with a MISCONFIGURATION reason")
        await asyncio.sleep(DWELL_PASSED)
        await ctx.get("after the dwell")
        await ctx.get("asked again")


@case
async def single_starting(ctx: Ctx) -> None:
    await single_in_state(ctx, "STARTING", job_detail("STARTING"))


@case
async def single_running_with_log_stream(ctx: Ctx) -> None:
    await single_in_state(ctx, "RUNNING", job_detail("RUNNING", stream_name=stream(1)))


@case
async def single_running_without_log_stream_yet(ctx: Ctx) -> None:
    await single_in_state(ctx, "RUNNING", job_detail("RUNNING"))


@case
async def single_running_awslogs_options(ctx: Ctx) -> None:
    log_configuration = {"logDriver": "awslogs", "options": {"awslogs-group": "/flyte/tasks",
                                                             "awslogs-region": "eu-west-1",
                                                             "awslogs-stream-prefix": "flyte"},
                         "secretOptions": []}
    await single_in_state(ctx, "RUNNING, logs to /flyte/tasks in eu-west-1",
                          job_detail("RUNNING", stream_name="flyte/default/0123456789abcdef",
                                     log_configuration=log_configuration))


@case
async def single_running_other_log_driver(ctx: Ctx) -> None:
    log_configuration = {"logDriver": "splunk", "options": {"splunk-url": "https://splunk.example.com"}}
    await single_in_state(ctx, "RUNNING, logs to splunk",
                          job_detail("RUNNING", stream_name=stream(1), log_configuration=log_configuration))


@case
async def single_running_log_group_from_config(ctx: Ctx) -> None:
    await single_in_state(ctx, "RUNNING, jobDefinitions.logGroup /custom/batch",
                          job_detail("RUNNING", stream_name=stream(1)),
                          config={"jobDefinitions": {"logGroup": "/custom/batch"}})


@case
async def single_running_second_attempt(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(single_request(ctx.name))
        first = attempt(stream_name=stream(1), reason=HOST_GONE)
        ctx.batch.set(ctx.job, job_detail("RUNNABLE", attempts=[first]))
        await ctx.get("RUNNABLE again after a host termination")
        ctx.batch.set(ctx.job, job_detail("RUNNING", stream_name=stream(2), attempts=[first]))
        await ctx.get("RUNNING, attempt 2")
        ctx.write("0/outputs.pb", int_outputs(o0=84))
        second = attempt(exit_code=0, stream_name=stream(2), reason=ESSENTIAL, started=1)
        ctx.batch.set(ctx.job, job_detail("SUCCEEDED", exit_code=0, stream_name=stream(2), reason=ESSENTIAL,
                                          attempts=[first, second]))
        await ctx.get("SUCCEEDED on attempt 2")


# -- single jobs: succeeded --------------------------------------------------------------------------------------------

def succeeded(**kw: Any) -> dict[str, Any]:
    return job_detail("SUCCEEDED", exit_code=0, stream_name=stream(1), reason=ESSENTIAL,
                      attempts=[attempt(exit_code=0, stream_name=stream(1), reason=ESSENTIAL)], **kw)


@case
async def single_succeeded_with_outputs(ctx: Ctx) -> None:
    await single_in_state(ctx, "SUCCEEDED", succeeded(), files={"0/outputs.pb": int_outputs(o0=84)})


@case
async def single_succeeded_multiple_outputs(ctx: Ctx) -> None:
    from flytekit.types.file import FlyteFile

    from tests.templates import literal_map as lm

    outputs = lm({"o0": 55, "o1": "hello Flyte", "o2": FlyteFile("s3://flyte-data/raw/report.txt")},
                 {"o0": int, "o1": str, "o2": FlyteFile}).SerializeToString()
    config = {"secrets": [{"group": "aws-batch", "key": "api-token",
                           "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-token"}]}
    await single_in_state(ctx, "SUCCEEDED (awsbatch_task: int, str, FlyteFile)", succeeded(), config=config,
                          files={"0/outputs.pb": outputs}, entity="awsbatch_task")


@case
async def single_succeeded_without_outputs_pb(ctx: Ctx) -> None:
    await single_in_state(ctx, "SUCCEEDED, interface has o0, no outputs.pb", succeeded())


@case
async def single_succeeded_interface_without_outputs(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        req = single_request(ctx.name)
        req.template.interface.outputs.variables.clear()
        await ctx.create(req)
        ctx.batch.set(ctx.job, succeeded())
        await ctx.get("SUCCEEDED, no outputs in the interface, no outputs.pb")


@case
async def single_succeeded_with_error_pb(ctx: Ctx) -> None:
    await single_in_state(ctx, "SUCCEEDED but flytekit wrote error.pb", succeeded(),
                          files={"0/error.pb": error_pb("ValueError: flytekit wrote an error but exited 0",
                                                        recoverable=False)})


@case
async def single_succeeded_outputs_above_inline_limit(ctx: Ctx) -> None:
    async with ctx.start({"outputs": {"inlineMaxBytes": 0}}) as plugin:
        ctx.plugin = plugin
        await ctx.create(single_request(ctx.name))
        ctx.write("0/outputs.pb", int_outputs(o0=84))
        ctx.batch.set(ctx.job, succeeded())
        await ctx.get("SUCCEEDED, outputs larger than outputs.inlineMaxBytes 0")
        ctx.rec.note("<output_prefix>/outputs.pb written by the service",
                     written=literal_map_record(get_object(ctx.moto, f"{ctx.output_prefix}/outputs.pb")))


@case
async def single_terminal_answer_is_final(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(single_request(ctx.name))
        ctx.write("0/outputs.pb", int_outputs(o0=84))
        ctx.batch.set(ctx.job, succeeded())
        await ctx.get("SUCCEEDED")
        ctx.batch.set(ctx.job, job_detail("FAILED", exit_code=1, stream_name=stream(1), reason=ESSENTIAL))
        await ctx.get("AWS now says FAILED")


# -- single jobs: failed ----------------------------------------------------------------------------------------------

def failed(reason: str | None = ESSENTIAL, exit_code: int | None = 1, container_reason: str | None = None,
           stream_name: str | None = None) -> dict[str, Any]:
    stream_name = stream(1) if stream_name is None and exit_code is not None else stream_name
    return job_detail("FAILED", reason=reason, exit_code=exit_code, container_reason=container_reason,
                      stream_name=stream_name,
                      attempts=[attempt(exit_code=exit_code, stream_name=stream_name, reason=reason,
                                        container_reason=container_reason)])


@case
async def single_failed_error_pb_non_recoverable(ctx: Ctx) -> None:
    await single_in_state(ctx, "FAILED, NON_RECOVERABLE error.pb", failed(),
                          files={"0/error.pb": error_pb("ValueError: x must be positive", recoverable=False)})


@case
async def single_failed_error_pb_recoverable(ctx: Ctx) -> None:
    await single_in_state(ctx, "FAILED, RECOVERABLE error.pb", failed(),
                          files={"0/error.pb": error_pb("ConnectionError: S3 unreachable", recoverable=True)})


@case
async def single_failed_error_pb_multiline(ctx: Ctx) -> None:
    message = ("Trace:\n\n    Traceback (most recent call last):\n      File \"app.py\", line 3, in square\n"
               "    ValueError: 13 is unlucky\n\nMessage:\n\n    ValueError: 13 is unlucky\n")
    await single_in_state(ctx, "FAILED, error.pb with a traceback", failed(),
                          files={"0/error.pb": error_pb(message, recoverable=False)})


@case
async def single_failed_container_exit_code(ctx: Ctx) -> None:
    await single_in_state(ctx, "FAILED, exit code 3, no error.pb", failed(exit_code=3))


@case
async def single_failed_host_terminated(ctx: Ctx) -> None:
    await single_in_state(ctx, "FAILED, host terminated, no error.pb", failed(reason=HOST_GONE, exit_code=None))


@case
async def single_failed_out_of_memory(ctx: Ctx) -> None:
    await single_in_state(ctx, "FAILED, container OutOfMemoryError",
                          failed(exit_code=137, container_reason="OutOfMemoryError: Container killed due to memory usage"))


@case
async def single_failed_image_not_found(ctx: Ctx) -> None:
    reason = ("CannotPullContainerError: Error response from daemon: manifest for ghcr.io/example/app:v1 not found: "
              "manifest unknown")
    await single_in_state(ctx, "FAILED, image cannot be pulled",
                          failed(reason="Task failed to start", exit_code=None, container_reason=reason))


@case
async def single_failed_attempt_timeout(ctx: Ctx) -> None:
    await single_in_state(ctx, "FAILED, attempt timeout",
                          failed(reason="Job attempt duration exceeded timeout", exit_code=None))


@case
async def single_failed_exit_code_zero(ctx: Ctx) -> None:
    await single_in_state(ctx, "FAILED, exit code 0, no error.pb", failed(reason=None, exit_code=0))


@case
async def single_failed_no_reason(ctx: Ctx) -> None:
    await single_in_state(ctx, "FAILED, no exit code, no reason", job_detail("FAILED"))


@case
async def single_failed_after_several_attempts(ctx: Ctx) -> None:
    attempts = [attempt(exit_code=1, stream_name=stream(i), reason=ESSENTIAL, started=i) for i in (1, 2, 3)]
    detail = job_detail("FAILED", reason=ESSENTIAL, exit_code=1, stream_name=stream(3), attempts=attempts)
    await single_in_state(ctx, "FAILED after 3 attempts, NON_RECOVERABLE error.pb", detail,
                          files={"0/error.pb": error_pb("ValueError: still wrong", recoverable=False)})


@case
async def single_failed_aborted_by_flyte(ctx: Ctx) -> None:
    """DeleteTask (twice: propeller repeats it), then what AWS reports for the terminated job."""
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(single_request(ctx.name))
        ctx.batch.set(ctx.job, job_detail("RUNNING", stream_name=stream(1)))
        await ctx.get("RUNNING")
        for n in (1, 2):
            await plugin.agents.DeleteTask(agent_pb2.DeleteTaskRequest(
                resource_meta=ctx.meta, task_category=agent_pb2.TaskCategory(name=SINGLE)), timeout=10)
            ctx.rec.note(f"DeleteTask #{n}")
        await ctx.get("after DeleteTask (AWS: FAILED with the abort reason)")


# -- single jobs: AWS does not know the job, or refuses to describe it -----------------------------------------------

@case
async def single_missing_on_the_submitting_replica(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(single_request(ctx.name))
        ctx.batch.forget(ctx.job)
        await ctx.get("DescribeJobs does not return the job")
        await asyncio.sleep(GRACE_PASSED)
        await ctx.get("still not returned, after missingJobGrace")


@case
async def single_missing_on_a_fresh_replica(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(single_request(ctx.name))
    async with ctx.start(fresh=True) as fresh:  # a restarted process or another replica: only the meta
        ctx.batch.forget(ctx.job)
        await ctx.get("fresh replica, DescribeJobs does not return the job", fresh)
        await asyncio.sleep(GRACE_PASSED)
        await ctx.get("still not returned, after missingJobGrace", fresh)


@case
async def single_fresh_replica_answers_from_the_meta(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(single_request(ctx.name))
    async with ctx.start(fresh=True) as fresh:
        ctx.batch.set(ctx.job, job_detail("RUNNING", stream_name=stream(1)))
        await ctx.get("fresh replica, RUNNING", fresh)
        ctx.write("0/outputs.pb", int_outputs(o0=84))
        ctx.batch.set(ctx.job, succeeded())
        await ctx.get("fresh replica, SUCCEEDED", fresh)


@case
async def single_describe_refused(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(single_request(ctx.name))
        ctx.batch.set(ctx.job, job_detail("RUNNING", stream_name=stream(1)))
        await ctx.get("RUNNING")
        ctx.batch.fail("DescribeJobs", "AccessDeniedException",
                       "User is not authorized to perform: batch:DescribeJobs")
        await ctx.get("DescribeJobs refused (AccessDeniedException)")
        async with ctx.start(fresh=True) as fresh:
            await ctx.get("DescribeJobs refused, on a fresh replica", fresh)
        ctx.batch.clear_failures()
        await ctx.get("DescribeJobs answers again")


# -- single jobs: no job at all --------------------------------------------------------------------------------------

@case
async def rejected_template(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(single_request(ctx.name, "awsbatch_task"))  # its secret is not mapped in the config
        await ctx.get("rejected: unmapped secret")


@case
async def foreign_resource_meta(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        ctx.meta = b"not ours"
        await ctx.get("a resource meta this service did not write")


@case
async def job_definition_refused_by_aws(ctx: Ctx) -> None:
    async with ctx.start({"jobDefinitions": {"tags": {"note": "x" * 300}}}) as plugin:
        ctx.plugin = plugin
        req = single_request(ctx.name)
        # A role of its own: tags are not part of a definition's content, so one registered by another case
        # would be found and reused.
        req.task_execution_metadata.identity.iam_role = "arn:aws:iam::123456789012:role/char-bad-definition"
        await ctx.create(req)
        await ctx.get("RegisterJobDefinition refused (a tag value over 256 characters)")


# -- arrays -----------------------------------------------------------------------------------------------------------

def running_child(n: int) -> dict[str, Any]:
    return job_detail("RUNNING", stream_name=stream(100 + n))


def succeeded_child(n: int) -> dict[str, Any]:
    s = stream(100 + n)
    return job_detail("SUCCEEDED", exit_code=0, stream_name=s, reason=ESSENTIAL,
                      attempts=[attempt(exit_code=0, stream_name=s, reason=ESSENTIAL)])


def failed_child(n: int, reason: str = ESSENTIAL, exit_code: int | None = 1) -> dict[str, Any]:
    s = stream(100 + n) if exit_code is not None else None
    return job_detail("FAILED", exit_code=exit_code, stream_name=s, reason=reason,
                      attempts=[attempt(exit_code=exit_code, stream_name=s, reason=reason)])


def parent(status: str, size: int = 5, **counts: int) -> dict[str, Any]:
    return job_detail(status, summary=status_summary(**counts), size=size)


@case
async def array_submitted_without_summary(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [1, 2, 3, 4, 5]))
        ctx.batch.set(ctx.job, job_detail("SUBMITTED", size=5))
        await ctx.get("parent SUBMITTED, no statusSummary yet")


@case
async def array_pending(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [1, 2, 3, 4, 5]))
        ctx.batch.set(ctx.job, parent("PENDING", PENDING=5))
        await ctx.get("parent PENDING, 5 children PENDING")


@case
async def array_runnable_capacity_reason(ctx: Ctx) -> None:
    reason = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - There is no Spot capacity available that meets the job requirements."
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [1, 2, 3, 4, 5]))
        ctx.batch.set(ctx.job, parent("PENDING", RUNNABLE=5))
        ctx.batch.children(ctx.job, {i: job_detail("RUNNABLE", reason=reason) for i in range(5)})
        await ctx.get("children RUNNABLE (first look: the reason is looked up in the background)")
        await asyncio.sleep(0.3)
        await ctx.get("children RUNNABLE with a CAPACITY reason")
        await asyncio.sleep(DWELL_PASSED)  # only MISCONFIGURATION fails
        await ctx.get("after the dwell")


@case
async def array_runnable_misconfiguration_fails_after_dwell(ctx: Ctx) -> None:
    reason = ("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is "
              "higher than that can be met by the CE(s) attached to the job queue.")
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [1, 2, 3, 4, 5]))
        ctx.batch.set(ctx.job, parent("PENDING", RUNNABLE=5))
        ctx.batch.children(ctx.job, {i: job_detail("RUNNABLE", reason=reason) for i in range(5)})
        await ctx.get("children RUNNABLE (first look: the reason is looked up in the background)")
        await asyncio.sleep(0.1)
        await ctx.get("children RUNNABLE with a MISCONFIGURATION reason")
        await asyncio.sleep(DWELL_PASSED)
        await ctx.get("after the dwell")


@case
async def array_running_partially_succeeded(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [1, 2, 3, 4, 5]))
        ctx.batch.set(ctx.job, parent("PENDING", SUCCEEDED=2, RUNNING=2, RUNNABLE=1))
        ctx.batch.children(ctx.job, {0: succeeded_child(0), 1: succeeded_child(1), 2: running_child(2),
                                     3: running_child(3), 4: job_detail("RUNNABLE")})
        await ctx.get("2 succeeded, 2 running, 1 runnable")
        ctx.batch.set(ctx.job, parent("PENDING", SUCCEEDED=3, RUNNING=2))
        ctx.batch.children(ctx.job, {2: succeeded_child(2), 4: running_child(4)})
        await ctx.get("3 succeeded, 2 running (the sample of running children is kept for 300 s)")


@case
async def array_running_many_children(ctx: Ctx) -> None:
    """More children running than status.runningChildLinks (3): links for the first three."""
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [1, 2, 3, 4, 5]))
        ctx.batch.set(ctx.job, parent("PENDING", RUNNING=5))
        ctx.batch.children(ctx.job, {i: running_child(i) for i in range(5)})
        await ctx.get("5 running")


@case
async def array_running_with_a_failure_below_threshold(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [1, 2, 3, 4, 5]))
        ctx.batch.set(ctx.job, parent("PENDING", SUCCEEDED=1, FAILED=1, RUNNING=2, RUNNABLE=1))
        ctx.batch.children(ctx.job, {0: succeeded_child(0), 1: failed_child(1), 2: running_child(2),
                                     3: running_child(3), 4: job_detail("RUNNABLE")})
        ctx.write("1/error.pb", error_pb("ValueError: bad input 1", recoverable=False))
        await ctx.get("1 failed (allowed: 4 of 5 needed), first look")
        await asyncio.sleep(0.3)  # the failed child is described in the background
        await ctx.get("1 failed, second look")


@case
async def array_succeeded(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [1, 2, 3, 4, 5]))
        for i in range(5):
            ctx.write(f"{i}/outputs.pb", int_outputs(o0=(i + 1) ** 2))
        ctx.batch.set(ctx.job, parent("SUCCEEDED", SUCCEEDED=5))
        ctx.batch.children(ctx.job, {i: succeeded_child(i) for i in range(5)})
        await ctx.get("parent SUCCEEDED, 5 children SUCCEEDED")


@case
async def array_succeeded_summary_lagging(ctx: Ctx) -> None:
    """The parent's status wins over a statusSummary AWS has not caught up with."""
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [1, 2, 3]))
        for i in range(3):
            ctx.write(f"{i}/outputs.pb", int_outputs(o0=(i + 1) ** 2))
        ctx.batch.set(ctx.job, parent("SUCCEEDED", size=3, SUCCEEDED=2, RUNNING=1))
        await ctx.get("parent SUCCEEDED, summary still says 1 RUNNING")


@case
async def array_succeeded_missing_child_outputs(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [1, 2, 3]))
        ctx.write("0/outputs.pb", int_outputs(o0=1))
        ctx.write("2/outputs.pb", int_outputs(o0=9))
        ctx.batch.set(ctx.job, parent("SUCCEEDED", size=3, SUCCEEDED=3))
        await ctx.get("parent SUCCEEDED, child 1 wrote no outputs.pb")


@case
async def array_failed_below_min_successes_while_running(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [1, 2, 3, 4, 5]))
        ctx.batch.set(ctx.job, parent("PENDING", FAILED=3, RUNNING=1, SUCCEEDED=1))
        ctx.batch.children(ctx.job, {0: failed_child(0), 1: failed_child(1), 2: succeeded_child(2),
                                     3: failed_child(3), 4: running_child(4)})
        ctx.write("0/error.pb", error_pb("ValueError: negative input", recoverable=False))
        ctx.write("1/error.pb", error_pb("ValueError: negative input", recoverable=False))
        ctx.write("3/error.pb", error_pb("KeyError: 'factor'", recoverable=False))
        ctx.write("2/outputs.pb", int_outputs(o0=9))
        await ctx.get("3 of 5 failed (4 needed), 1 still running")
        await ctx.get("asked again")


@case
async def array_failed_mixed_recoverable(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [1, 2, 3, 4, 5]))
        ctx.batch.set(ctx.job, parent("FAILED", FAILED=2, SUCCEEDED=3))
        ctx.batch.children(ctx.job, {0: succeeded_child(0), 1: failed_child(1), 2: succeeded_child(2),
                                     3: succeeded_child(3), 4: failed_child(4, reason=HOST_GONE, exit_code=None)})
        ctx.write("1/error.pb", error_pb("ConnectionError: S3 unreachable", recoverable=True))
        await ctx.get("parent FAILED: child 1 recoverable error.pb, child 4 host terminated")


@case
async def array_failed_children_listed_late(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [1, 2, 3, 4, 5]))
        ctx.batch.set(ctx.job, parent("FAILED", FAILED=2, SUCCEEDED=3))
        await ctx.get("parent FAILED, ListJobs does not list the failed children yet")
        ctx.batch.children(ctx.job, {3: failed_child(3), 4: failed_child(4)})
        ctx.write("3/error.pb", error_pb("ValueError: bad input 3", recoverable=False))
        ctx.write("4/error.pb", error_pb("ValueError: bad input 4", recoverable=False))
        await ctx.get("the failed children are listed now")


@case
async def array_min_success_ratio_met_with_a_failure(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [1, 2, 3, 4, 5]))
        for i in (0, 1, 3, 4):
            ctx.write(f"{i}/outputs.pb", int_outputs(o0=(i + 1) ** 2))
        ctx.write("2/error.pb", error_pb("ValueError: three is unlucky", recoverable=False))
        ctx.batch.set(ctx.job, parent("FAILED", FAILED=1, SUCCEEDED=4))
        ctx.batch.children(ctx.job, {**{i: succeeded_child(i) for i in (0, 1, 3, 4)}, 2: failed_child(2)})
        await ctx.get("parent FAILED, 4 of 5 succeeded (4 needed)")


@case
async def array_of_one(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [7]))
        ctx.batch.set(ctx.job, job_detail("RUNNABLE"))
        await ctx.get("one plain job, RUNNABLE")
        ctx.batch.set(ctx.job, job_detail("RUNNING", stream_name=stream(1)))
        await ctx.get("RUNNING")
        ctx.write("0/outputs.pb", int_outputs(o0=49))
        ctx.batch.set(ctx.job, succeeded())
        await ctx.get("SUCCEEDED")


@case
async def array_of_one_failed(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [7]))
        ctx.write("0/error.pb", error_pb("ValueError: seven is not allowed", recoverable=False))
        ctx.batch.set(ctx.job, failed())
        await ctx.get("one plain job, FAILED with error.pb")


@case
async def array_of_one_misconfigured(ctx: Ctx) -> None:
    reason = ("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is "
              "higher than that can be met by the CE(s) attached to the job queue.")
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [7]))
        ctx.batch.set(ctx.job, job_detail("RUNNABLE", reason=reason))
        await ctx.get("one plain job, RUNNABLE with a MISCONFIGURATION reason")
        await asyncio.sleep(DWELL_PASSED)
        await ctx.get("after the dwell")


@case
async def array_empty(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, []))
        await ctx.get("map over an empty list")
        await plugin.agents.DeleteTask(agent_pb2.DeleteTaskRequest(
            resource_meta=ctx.meta, task_category=agent_pb2.TaskCategory(name=ARRAY, version=1)), timeout=10)
        ctx.rec.note("DeleteTask")


@case
async def array_aborted_by_flyte(ctx: Ctx) -> None:
    async with ctx.start() as plugin:
        ctx.plugin = plugin
        await ctx.create(map_request(ctx.name, [1, 2, 3]))
        ctx.batch.set(ctx.job, parent("PENDING", size=3, RUNNING=3))
        ctx.batch.children(ctx.job, {i: running_child(i) for i in range(3)})
        await ctx.get("3 running")
        await plugin.agents.DeleteTask(agent_pb2.DeleteTaskRequest(
            resource_meta=ctx.meta, task_category=agent_pb2.TaskCategory(name=ARRAY, version=1)), timeout=10)
        ctx.rec.note("DeleteTask")
        await ctx.get("after DeleteTask (AWS: parent and children FAILED with the abort reason)")


@pytest.fixture(scope="module")
def batch() -> ScriptedBatch:
    return ScriptedBatch()


@pytest.fixture(scope="module")
async def shared_plugin(moto: MotoServer, batch: ScriptedBatch) -> AsyncIterator[Plugin]:
    async with plugin_server(moto, batch) as plugin:
        yield plugin


@pytest.mark.parametrize("name", list(CASES))
async def test_get_task(name: str, moto: MotoServer, batch: ScriptedBatch, shared_plugin: Plugin) -> None:
    ctx = Ctx(name, moto, batch, shared_plugin)
    try:
        await CASES[name](ctx)
    finally:
        batch.clear_failures()
    record = {"case": name, "task_type": ctx.task_type, "steps": ctx.rec.steps}
    check_golden("get_task", name, normalize(record, ctx.ids))


def test_every_golden_file_has_a_case() -> None:
    check_no_orphan_goldens("get_task", list(CASES))
