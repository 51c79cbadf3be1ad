"""Seeded random mutations of real flytekit CreateTaskRequests and of resource metas, sent over real gRPC to the
real server (AWS through moto). Every call must end in a deliberate answer within its deadline: OK, or a status
the service chooses on purpose, never UNKNOWN, INTERNAL or UNAVAILABLE (AWS is healthy here, so UNAVAILABLE would
be the service's own guard catching something nobody anticipated). A rejected template submits nothing, each
accepted one is submitted at most once, and afterwards the server is healthy and runs a valid task.

`FUZZ_SEED=<n>` replays a run; `FUZZ_CASES=<n>` changes its size. The seed and a count of each answer kind are
printed.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections import Counter
from typing import Any

import boto3
import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2, tasks_pb2
from google.protobuf import descriptor, message, struct_pb2

from aws_array_plugin.resource_meta import MetaError, ResourceMeta, decode, encode
from tests.conftest import REGION, StartPlugin
from tests.templates import create_request, literal_map, task_template

Phase = execution_pb2.TaskExecution
OK = "OK"
# What a client may get on purpose for bad input (RESOURCE_EXHAUSTED: gRPC's own message size limit).
DELIBERATE = {OK, "INVALID_ARGUMENT", "FAILED_PRECONDITION", "NOT_FOUND", "OUT_OF_RANGE", "PERMISSION_DENIED",
              "RESOURCE_EXHAUSTED"}
DEADLINE = 15.0
CUSTOM_KEYS = ["minSuccesses", "minSuccessRatio", "parallelism", "size", "schedulingPriority",
               "schedulingPriorityOverride", "shareIdentifier", "platformCapabilities", "tags", "parameters",
               "propagateTags", "childQueue", "unknownKey"]
QUANTITIES = ["", "0", "-1", "1e400", "nan", "inf", "12Qi", "∞", "1.5.5", "9" * 400, "0.000000001m", " 1Gi", "1Gi ",
              "1Ei", "100000000000000"]


def _strings(rng: random.Random) -> str:
    return rng.choice([
        "", " ", "x" * rng.choice([300, 5_000, 200_000]), "ünïcødé-名前-🚀", "\x00\x01\x7f", "../../etc/passwd",
        "s3://", "s3:///key", "s3://bucket", "{{.input}}", "%s%n", "-" * 130, "a\nb\rc", "\ud7ff",
    ])


def _values(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice([math.nan, math.inf, -math.inf])
    if kind == 1:
        return rng.choice([-1, 0, 1, 2**31, 2**63, -(2**63), 1e308, 0.5, 3.7, 10_001, 100_001])
    if kind == 2:
        return _strings(rng)
    if kind == 3:
        return rng.choice([True, False])
    if kind == 4:
        return None
    if kind == 5:
        return rng.choice(["1", "1.0", "high", "EC2", "FARGATE", "0x10"])
    if kind == 6:
        return [_values(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["a", "b", "", "ü"]): _values(rng, depth + 1) for _ in range(rng.randrange(4))}


def _deep(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        node = {"n": node}
    return node


def _set_fields(msg: message.Message, path: str = "") -> list[tuple[message.Message, descriptor.FieldDescriptor, str]]:
    """Every field set in `msg`, at any depth (not inside Struct values, mutated on their own)."""
    found = []
    for fd, value in msg.ListFields():
        found.append((msg, fd, f"{path}.{fd.name}"))
        if fd.message_type is None or fd.message_type.full_name.startswith("google.protobuf.Struct"):
            continue
        if fd.is_repeated:
            if fd.message_type.GetOptions().map_entry:
                continue
            for i, item in enumerate(value[:3]):
                found.extend(_set_fields(item, f"{path}.{fd.name}[{i}]"))
        else:
            found.extend(_set_fields(value, f"{path}.{fd.name}"))
    return found


def _string_fields(msg: message.Message) -> list[tuple[message.Message, descriptor.FieldDescriptor]]:
    return [(m, fd) for m, fd, _ in _set_fields(msg)
            if fd.type == fd.TYPE_STRING and not fd.is_repeated]


def _mutate_request(rng: random.Random, req: agent_pb2.CreateTaskRequest) -> str:
    """One or more mutations, in place; returns what was done (for failure messages)."""
    done = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        kind = rng.randrange(11)
        if kind == 0:
            fields = _set_fields(req)
            msg, fd, path = rng.choice(fields)
            msg.ClearField(fd.name)
            done.append(f"deleted {path}")
        elif kind == 1:
            key = rng.choice(CUSTOM_KEYS)
            value = _values(rng)
            req.template.custom.update({key: value})
            done.append(f"custom.{key}={value!r:.60}")
        elif kind == 2:
            strings = _string_fields(req)
            msg, fd = rng.choice(strings)
            value = _strings(rng)
            setattr(msg, fd.name, value)
            done.append(f"{fd.full_name}={value!r:.40}")
        elif kind == 3:
            env = {f"VAR_{i}": _strings(rng)[:50] for i in range(rng.choice([2_000, 5_000]))}
            if rng.random() < 0.5:
                req.task_execution_metadata.environment_variables.update(env)
            else:
                req.template.container.env.extend(literals_pb2.KeyValuePair(key=k, value=v) for k, v in env.items())
            done.append(f"{len(env)} env vars")
        elif kind == 4:
            req.template.custom.update({"nested": _deep(rng.choice([10, 30, 45]))})
            done.append("deeply nested custom")
        elif kind == 5:
            odd = rng.choice(["empty", "lengths", "scalar", "nested", "map", "many", "offloaded"])
            if odd == "empty":
                lm = literal_map({"x": []}, {"x": list[int]})
            elif odd == "lengths":
                lm = literal_map({"x": [1, 2], "y": [1, 2, 3]}, {"x": list[int], "y": list[int]})
            elif odd == "scalar":
                lm = literal_map({"x": 3}, {"x": int})
            elif odd == "nested":
                lm = literal_map({"x": [[1], [2, 3]]}, {"x": list[list[int]]})
            elif odd == "map":
                lm = literal_map({"x": {"a": 1}}, {"x": dict[str, int]})
            elif odd == "many":
                lm = literal_map({"x": list(range(rng.choice([10_001, 20_000, 150_000])))}, {"x": list[int]})
            else:
                lm = literals_pb2.LiteralMap()
                lm.literals["x"].offloaded_metadata.uri = "s3://flyte-data/offloaded"
            req.inputs.CopyFrom(lm)
            done.append(f"inputs {odd}")
        elif kind == 6:
            res = req.template.container.resources
            entry = (res.requests if rng.random() < 0.5 else res.limits).add()
            entry.name = rng.choice([*tasks_pb2.Resources.ResourceName.values(), 99])
            entry.value = rng.choice(QUANTITIES)
            done.append(f"resource {entry.name}={entry.value!r:.20}")
        elif kind == 7:
            req.template.type = rng.choice(["aws-batch", "container_array", "python-task", "", "AWS-BATCH", "ü"])
            req.template.task_type_version = rng.choice([0, 1, 2, -1, 2**31 - 1])
            done.append(f"type {req.template.type!r} v{req.template.task_type_version}")
        elif kind == 8:
            md = req.template.metadata
            md.retries.retries = rng.choice([0, 10, 11, 2**32 - 1])
            md.timeout.seconds = rng.choice([-5, 0, 1, 59, 10**11])
            md.timeout.nanos = rng.choice([0, -1, 999_999_999])
            done.append("retries/timeout")
        elif kind == 9:
            req.output_prefix = rng.choice(["", "s3://", "s3://flyte-data", "gs://b/k", "s3://no-such-bucket/x",
                                            req.output_prefix + "/", req.output_prefix + "/ü", "/local/path"])
            done.append(f"output_prefix {req.output_prefix!r}")
        else:
            req.template.config[rng.choice(["platformCapabilities", "x", ""])] = _strings(rng)[:100]
            req.task_execution_metadata.labels[_strings(rng)[:60]] = _strings(rng)[:60]
            req.task_execution_metadata.annotations[_strings(rng)[:60]] = _strings(rng)[:60]
            done.append("config/labels/annotations")
    return "; ".join(done)


def _mutate_meta(rng: random.Random, valid: list[bytes]) -> tuple[bytes, str]:
    base = rng.choice(valid)
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 200)), "random bytes"
    if kind == 1:
        return base[:rng.randrange(0, max(1, len(base)))], "truncated"
    if kind == 2:
        data = bytearray(base)
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        return bytes(data), "bit flips"
    meta = ResourceMeta.FromString(base)
    if kind == 3:
        fields = [fd.name for fd, _ in meta.ListFields()]
        dropped = rng.sample(fields, rng.randrange(1, len(fields) + 1))
        for name in dropped:
            meta.ClearField(name)
        meta.schema_version = 1
        return meta.SerializeToString(), f"valid encoding without {dropped}"
    if kind == 4:
        choice = rng.randrange(7)
        if choice == 0:
            meta.size = rng.choice([1, 10_001, 10_000_000, 2**32 - 1])
        elif choice == 1:
            meta.job_ids.append(rng.choice(["", "no-such-job", "x" * 5000, "a:b:c", "ü"]))
        elif choice == 2:
            meta.min_successes = rng.choice([2**32 - 1, 7])
        elif choice == 3:
            meta.journal = rng.choice(["s3://flyte-data/none.json", "s3://", "not a uri", meta.output_prefix])
            meta.journal_entry = rng.choice([0, 3, 2**32 - 1])
        elif choice == 4:
            meta.region = rng.choice(["", "mars-north-1", "us-east-1x", "ü"])
        elif choice == 5:
            meta.kind = rng.choice([0, 3, 99])
        else:
            meta.execution_id = _strings(rng)
        return encode(meta), "valid encoding, odd field"
    meta.schema_version = rng.choice([0, 2, 2**32 - 1])
    return meta.SerializeToString(), f"schema version {meta.schema_version}"


async def _answer(call: Any) -> tuple[str, Any]:
    try:
        return OK, await call
    except grpc.aio.AioRpcError as exc:
        return exc.code().name, exc.details()


async def _logs(plugin: Any, meta: bytes, rng: random.Random) -> tuple[str, Any]:
    metadata = None
    if rng.random() < 0.5:
        metadata = (("child-index", rng.choice(["0", "1", "-1", "x", "99999999999"])),)
    call = plugin.agents.GetTaskLogs(agent_pb2.GetTaskLogsRequest(resource_meta=meta, lines=rng.choice([0, 10, 2**40])),
                                     timeout=DEADLINE, metadata=metadata)

    async def drain() -> list[Any]:
        return [part async for part in call]

    return await _answer(drain())


def _bases() -> list[agent_pb2.CreateTaskRequest]:
    items = literal_map({"x": [1, 2, 3, 4]}, {"x": list[int]})
    return [
        create_request(task_template("awsbatch_task"), execution="fuzz"),
        create_request(task_template("awsbatch_task", fast=True), execution="fuzz"),
        create_request(task_template("awsbatch_minimal_task"), execution="fuzz"),
        create_request(task_template("square_legacy_map"), execution="fuzz", inputs=items),
    ]


def _rename(req: agent_pb2.CreateTaskRequest, n: int) -> None:
    """A distinct attempt per case (the output prefix is the attempt's identity)."""
    req.output_prefix = req.output_prefix.replace("/fuzz/", f"/fuzz-{n}/").replace("-fuzz/", f"-fuzz-{n}/")
    req.task_execution_metadata.task_execution_id.node_execution_id.execution_id.name = f"fuzz-{n}"


async def test_fuzzed_requests_and_resource_metas_get_deliberate_answers(start_plugin: StartPlugin, moto,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    seed = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    cases = int(os.environ.get("FUZZ_CASES", "300"))
    rng = random.Random(seed)
    with capsys.disabled():
        print(f"\nfuzz seed {seed} ({cases} cases): replay with FUZZ_SEED={seed}")
    answers: Counter[str] = Counter()
    accepted_names: set[str] = set()
    valid_metas: list[bytes] = []
    started = time.monotonic()
    config = {"status": {"refreshInterval": "1s", "maxStaleness": "0.5s", "batchWindow": "0.01s",
                         "answerTimeout": "2s"}}
    async with start_plugin(config) as plugin:
        bases = _bases()
        for base in bases:  # a few valid metas to mutate
            meta = (await plugin.agents.CreateTask(base, timeout=DEADLINE)).resource_meta
            valid_metas.append(bytes(meta))
            accepted_names.add(decode(meta).job_name)
        for n in range(cases):
            if n % 3 != 2:
                req = agent_pb2.CreateTaskRequest()
                req.CopyFrom(rng.choice(bases))
                _rename(req, n)
                what = _mutate_request(rng, req)
                code, resp = await _answer(plugin.agents.CreateTask(req, timeout=DEADLINE))
                answers[f"CreateTask {code}"] += 1
                assert code in DELIBERATE, f"case {n} (seed {seed}): {what}: CreateTask {code}: {resp}"
                if code != OK:
                    continue
                raw = bytes(resp.resource_meta)
                meta = decode(raw)
                if meta.job_name:  # translated (AWS may still have refused the job: then it is FAILED too)
                    accepted_names.add(meta.job_name)
                if meta.rejection:
                    answers["CreateTask rejected"] += 1
                else:
                    valid_metas.append(raw)
                code, got = await _answer(plugin.agents.GetTask(
                    agent_pb2.GetTaskRequest(resource_meta=raw, task_category=agent_pb2.TaskCategory(
                        name=req.template.type)), timeout=DEADLINE))
                assert code == OK, f"case {n} (seed {seed}): {what}: GetTask {code}: {got}"
                phase = Phase.Phase.Name(got.resource.phase)
                answers[f"GetTask {phase}"] += 1
                assert got.resource.phase != Phase.UNDEFINED, f"case {n} (seed {seed}): {what}: no phase"
                if meta.rejection:
                    assert got.resource.phase == Phase.FAILED, f"case {n} (seed {seed}): {what}: {got}"
            else:
                raw, what = _mutate_meta(rng, valid_metas)
                try:
                    decode(raw)
                    usable = True
                except MetaError:
                    usable = False
                code, got = await _answer(plugin.agents.GetTask(agent_pb2.GetTaskRequest(resource_meta=raw),
                                                                timeout=DEADLINE))
                assert code == OK, f"case {n} (seed {seed}): meta {what} {raw!r}: GetTask {code}: {got}"
                assert got.resource.phase != Phase.UNDEFINED, f"case {n} (seed {seed}): meta {what}: no phase"
                if not usable:
                    assert got.resource.phase == Phase.FAILED, f"case {n} (seed {seed}): meta {what}: {got}"
                answers[f"GetTask(meta) {Phase.Phase.Name(got.resource.phase)}"] += 1
                code, got = await _answer(plugin.agents.DeleteTask(agent_pb2.DeleteTaskRequest(resource_meta=raw),
                                                                   timeout=DEADLINE))
                answers[f"DeleteTask {code}"] += 1
                assert code in DELIBERATE, f"case {n} (seed {seed}): meta {what}: DeleteTask {code}: {got}"
                code, got = await _logs(plugin, raw, rng)
                answers[f"GetTaskLogs {code}"] += 1
                assert code in DELIBERATE, f"case {n} (seed {seed}): meta {what}: GetTaskLogs {code}: {got}"

        # Nothing rejected was submitted, nothing accepted twice (chunks of split arrays are "<name>-<i>").
        submitted = Counter(params["jobName"] for params in plugin.sent("SubmitJob"))
        for name, count in submitted.items():
            assert count == 1, f"seed {seed}: {name} submitted {count} times"
            base = name.rsplit("-", 1)[0]
            assert name in accepted_names or base in accepted_names, f"seed {seed}: {name} was never accepted"

        # Still healthy, and a valid task runs to the end.
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        health = await health_pb2_grpc.HealthStub(plugin.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        req = create_request(task_template("awsbatch_minimal_task"), execution=f"fuzz-after-{seed}")
        outputs = literal_map({"o0": 4}, {"o0": int}).SerializeToString()
        bucket, _, key = f"{req.output_prefix}/0/outputs.pb"[5:].partition("/")
        boto3.client("s3", endpoint_url=moto.endpoint, region_name=REGION, aws_access_key_id="testing",
                     aws_secret_access_key="testing").put_object(Bucket=bucket, Key=key, Body=outputs)
        meta = (await plugin.agents.CreateTask(req, timeout=DEADLINE)).resource_meta
        for _ in range(200):
            res = (await plugin.agents.GetTask(agent_pb2.GetTaskRequest(resource_meta=meta), timeout=DEADLINE)).resource
            if res.phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.RETRYABLE_FAILED):
                break
            await asyncio.sleep(0.1)
        assert res.phase == Phase.SUCCEEDED, res.message
        assert res.outputs.literals["o0"].scalar.primitive.integer == 4

    with capsys.disabled():
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(answers.items()))
        print(f"fuzz seed {seed}: {cases} cases in {time.monotonic() - started:.0f}s; {summary}")


def test_struct_values_carry_non_finite_numbers() -> None:
    """The premise of the non-finite cases: protobuf itself accepts them in a Struct."""
    s = struct_pb2.Struct()
    s.update({"x": math.nan})
    assert math.isnan(struct_pb2.Struct.FromString(s.SerializeToString())["x"])
