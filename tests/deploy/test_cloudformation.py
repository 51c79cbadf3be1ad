"""deploy/aws/batch-events.cloudformation.yaml: the EventBridge rules, Kinesis stream and dead-letter queue the
push-first status reads. The rules match what AWS Batch and the service send (checked on moto's EventBridge), the
targets carry what the design needs, cfn-lint accepts the template, and its config output is one the service and the
chart accept."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest
import yaml

from aws_array_plugin.config import load_config
from aws_array_plugin.job_events import (
    BATCH_SOURCE,
    HEARTBEAT_SOURCE,
    HEARTBEAT_TYPE,
    JOB_STATE_CHANGE,
    heartbeat_entry,
)
from tests.deploy.support import CHART, REPO

TEMPLATE = REPO / "deploy" / "aws" / "batch-events.cloudformation.yaml"
ACCOUNT = "123456789012"
REGION = "eu-west-1"
QUEUE_ARNS = [f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/flyte-default", f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/gpu"]


# --- reading the template ----------------------------------------------------------------------------

class CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags, read as their long forms (`!Ref X` -> {"Ref": "X"},
    `!GetAtt A.B` -> {"Fn::GetAtt": ["A", "B"]}, `!Sub s` -> {"Fn::Sub": s}, ...)."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct_tag)


def template() -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=CloudFormationLoader)  # a SafeLoader
    return data


def resource(name: str, kind: str) -> dict[str, Any]:
    res: dict[str, Any] = template()["Resources"][name]
    assert res["Type"] == kind, name
    props: dict[str, Any] = res["Properties"]
    return props


def resolve(node: Any, parameters: dict[str, Any]) -> Any:
    """The template's value with Ref to parameters and Fn::If on its conditions worked out (for these tests'
    conditions: Fn::Equals of a parameter and a string)."""
    conditions = template()["Conditions"]

    def holds(name: str) -> bool:
        left, right = (resolve(side, parameters) for side in conditions[name]["Fn::Equals"])
        return bool(left == right)

    if isinstance(node, list):
        return [resolve(item, parameters) for item in node]
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] in parameters:
            return parameters[node["Ref"]]
        if set(node) == {"Fn::If"}:
            condition, when_true, when_false = node["Fn::If"]
            return resolve(when_true if holds(condition) else when_false, parameters)
        return {key: resolve(value, parameters) for key, value in node.items()}
    return node


def parameters(forward_children: str = "true") -> dict[str, Any]:
    return {"JobQueueArns": QUEUE_ARNS, "ForwardArrayChildEvents": forward_children}


def getatt(name: str, attribute: str = "Arn") -> dict[str, Any]:
    return {"Fn::GetAtt": [name, attribute]}


# --- the design, checked -----------------------------------------------------------------------------

def test_parameters_and_outputs() -> None:
    tpl = template()
    params = tpl["Parameters"]
    assert set(params) == {"JobQueueArns", "StreamName", "ShardCount", "RetentionHours", "ForwardArrayChildEvents"}
    assert params["JobQueueArns"]["Type"] == "CommaDelimitedList" and "Default" not in params["JobQueueArns"]
    assert params["ShardCount"]["Default"] == 2
    assert params["RetentionHours"]["Default"] == 24 and params["RetentionHours"]["MinValue"] == 24
    assert params["ForwardArrayChildEvents"]["Default"] == "true"
    assert params["ForwardArrayChildEvents"]["AllowedValues"] == ["true", "false"]
    assert tpl["Conditions"] == {"DropArrayChildEvents": {"Fn::Equals": [{"Ref": "ForwardArrayChildEvents"}, "false"]}}
    outputs = tpl["Outputs"]
    assert {"StreamArn", "DeadLetterQueueUrl", "ServiceConfig"} <= set(outputs)
    assert outputs["StreamArn"]["Value"] == getatt("EventStream")
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": "DeadLetterQueue"}  # an SQS queue's Ref is its URL
    assert outputs["DeadLetterQueueArn"]["Value"] == getatt("DeadLetterQueue")


BATCH_PATTERN = {
    "source": ["aws.batch"],
    "detail-type": ["Batch Job State Change"],
    "detail": {"jobQueue": {"Ref": "JobQueueArns"}},
}
BATCH_PATTERN_WITHOUT_CHILDREN = {
    "source": ["aws.batch"],
    "detail-type": ["Batch Job State Change"],
    "detail": {"jobQueue": {"Ref": "JobQueueArns"}, "arrayProperties": {"index": [{"exists": False}]}},
}


def test_the_batch_rule_matches_the_job_queues_state_changes() -> None:
    rule = resource("BatchEventsRule", "AWS::Events::Rule")
    assert rule["Name"] == "aws-array-plugin-batch-events"
    assert rule["EventBusName"] == "default" and rule["State"] == "ENABLED"
    pattern = rule["EventPattern"]
    # Structurally the design's pattern, the JobQueueArns parameter standing for the list of queue ARNs; the
    # condition only chooses whether array children are dropped.
    keep = {"JobQueueArns": {"Ref": "JobQueueArns"}}
    assert resolve(pattern, {**keep, "ForwardArrayChildEvents": "true"}) == BATCH_PATTERN
    assert resolve(pattern, {**keep, "ForwardArrayChildEvents": "false"}) == BATCH_PATTERN_WITHOUT_CHILDREN
    # ... and what the service decodes as a job event.
    assert pattern["source"] == [BATCH_SOURCE] and pattern["detail-type"] == [JOB_STATE_CHANGE]


def test_the_heartbeat_rule_matches_the_service_heartbeats() -> None:
    rule = resource("HeartbeatsRule", "AWS::Events::Rule")
    assert rule["Name"] == "aws-array-plugin-heartbeats"
    assert rule["EventBusName"] == "default" and rule["State"] == "ENABLED"
    assert rule["EventPattern"] == {"source": ["aws-array-plugin"], "detail-type": ["aws-array-plugin heartbeat"]}
    assert rule["EventPattern"] == {"source": [HEARTBEAT_SOURCE], "detail-type": [HEARTBEAT_TYPE]}


@pytest.mark.parametrize("rule_name", ["BatchEventsRule", "HeartbeatsRule"])
def test_both_rules_target_the_stream_with_retries_and_the_dead_letter_queue(rule_name: str) -> None:
    (target,) = resource(rule_name, "AWS::Events::Rule")["Targets"]
    assert target["Arn"] == getatt("EventStream")
    assert target["RoleArn"] == getatt("EventBridgeTargetRole")
    assert target["DeadLetterConfig"] == {"Arn": getatt("DeadLetterQueue")}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
    if rule_name == "BatchEventsRule":
        # A job's events share a shard, in the order EventBridge wrote them.
        assert target["KinesisParameters"] == {"PartitionKeyPath": "$.detail.jobId"}
    else:
        assert "KinesisParameters" not in target  # EventBridge then partitions by the event id


def test_the_stream_is_encrypted_and_sized_by_the_parameters() -> None:
    stream = resource("EventStream", "AWS::Kinesis::Stream")
    assert stream["Name"] == {"Ref": "StreamName"}
    assert stream["ShardCount"] == {"Ref": "ShardCount"}
    assert stream["RetentionPeriodHours"] == {"Ref": "RetentionHours"}
    assert stream["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert stream["StreamEncryption"] == {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}


def test_only_the_two_rules_may_dead_letter_into_the_queue() -> None:
    assert resource("DeadLetterQueue", "AWS::SQS::Queue")["QueueName"] == "aws-array-plugin-batch-events-dlq"
    policy = resource("DeadLetterQueuePolicy", "AWS::SQS::QueuePolicy")
    assert policy["Queues"] == [{"Ref": "DeadLetterQueue"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == getatt("DeadLetterQueue")
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": [getatt("BatchEventsRule"), getatt("HeartbeatsRule")]},
    }


def test_eventbridge_role_may_only_put_records_on_the_stream() -> None:
    role = resource("EventBridgeTargetRole", "AWS::IAM::Role")
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    (policy,) = role["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == ["kinesis:PutRecord", "kinesis:PutRecords"]
    assert statement["Resource"] == getatt("EventStream")


# --- the patterns on a real EventBridge implementation (moto) --------------------------------------------

def _job_event(queue: str, job_id: str = "4f0c6d8e-0000-4000-8000-000000000001", **detail: Any) -> dict[str, Any]:
    return {
        "Source": "aws.batch", "DetailType": "Batch Job State Change",
        "Resources": [f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{job_id}"],
        "Detail": json.dumps({"jobId": job_id, "jobName": "n0-0", "jobQueue": queue, "status": "RUNNING",
                              "attempts": [], "createdAt": 1764806400000, **detail}),
    }


def _deliveries(pattern: dict[str, Any], entries: list[dict[str, Any]]) -> list[str]:
    """The names (the tests' own labels) of the entries a rule with this pattern delivers to its target."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="target")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="rule", EventPattern=json.dumps(pattern), State="ENABLED")
        events.put_targets(Rule="rule", Targets=[{"Id": "q", "Arn": arn}])
        names = []
        for i, entry in enumerate(entries):
            detail = json.loads(entry["Detail"])
            detail["testLabel"] = str(i)
            assert events.put_events(Entries=[{**entry, "Detail": json.dumps(detail)}])["FailedEntryCount"] == 0
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                break
            for message in messages:
                names.append(json.loads(message["Body"])["detail"]["testLabel"])
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return sorted(names, key=int)


@pytest.mark.parametrize("forward_children", ["true", "false"])
def test_the_rules_deliver_what_the_service_reads_and_nothing_else(forward_children: str) -> None:
    """Each rule, its parameters filled in, on moto's EventBridge: which sample events reach the stream."""
    tpl = template()
    batch = resolve(tpl["Resources"]["BatchEventsRule"]["Properties"]["EventPattern"], parameters(forward_children))
    heartbeats = tpl["Resources"]["HeartbeatsRule"]["Properties"]["EventPattern"]
    parent = "5a1e0000-0000-4000-8000-00000000000a"
    heartbeat = heartbeat_entry("default", "aws-array-plugin-0", 7, 1764806400.0)
    samples = [
        _job_event(QUEUE_ARNS[0]),  # 0: a single job on a listed queue
        _job_event(QUEUE_ARNS[1], status="SUCCEEDED"),  # 1: another listed queue
        _job_event(f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/someone-else"),  # 2: not ours
        _job_event(QUEUE_ARNS[0], job_id=parent, arrayProperties={"size": 10, "statusSummary": {"RUNNING": 3}}),  # 3
        _job_event(QUEUE_ARNS[0], job_id=f"{parent}:3", arrayProperties={"index": 3, "statusSummary": {}}),  # 4
        {**_job_event(QUEUE_ARNS[0]), "DetailType": "Batch Job Queue Blocked"},  # 5: another detail-type
        heartbeat,  # 6: the service's heartbeat
        {**heartbeat, "Source": "someone-else"},  # 7
    ]
    samples = [{key: value for key, value in entry.items() if key != "EventBusName"} for entry in samples]  # moto's bus
    expected_batch = ["0", "1", "3", "4"] if forward_children == "true" else ["0", "1", "3"]
    assert _deliveries(batch, samples) == expected_batch
    assert _deliveries(heartbeats, samples) == ["6"]


# --- the outputs and the linter ---------------------------------------------------------------------

@pytest.mark.parametrize("forward_children", ["true", "false"])
def test_the_service_config_output_is_a_config_the_service_and_the_chart_accept(forward_children: str) -> None:
    import jsonschema  # type: ignore[import-untyped]

    text = template()["Outputs"]["ServiceConfig"]["Value"]["Fn::Sub"]
    stream_arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/aws-array-plugin-batch-events"
    queue_url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/aws-array-plugin-batch-events-dlq"
    values = {"EventStream.Arn": stream_arn, "DeadLetterQueue": queue_url, "ForwardArrayChildEvents": forward_children}
    assert set(re.findall(r"\$\{([^}]+)\}", text)) == set(values)
    for name, value in values.items():
        text = text.replace(f"${{{name}}}", value)
    snippet = yaml.safe_load(text)
    assert snippet == json.loads(text)  # JSON, so it pastes into YAML and into --set-json alike
    events = load_config(snippet).status.events
    assert (events.enabled, events.stream, events.dead_letter_queue) == (True, stream_arn, queue_url)
    assert events.array_child_events is (forward_children == "true")
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["config"]
    jsonschema.Draft202012Validator(schema).validate(snippet)


def test_cfn_lint_accepts_the_template() -> None:
    try:
        from cfnlint.api import lint  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - cfn-lint comes with moto[server] (the demo extra)
        message = "cfn-lint is not installed (it comes with moto[server], the demo extra)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    matches = lint(TEMPLATE.read_text(), regions=["us-east-1", REGION, "us-gov-west-1"])
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []
    # The linter can fail: a target property it does not know, and a retry count above EventBridge's maximum.
    broken = TEMPLATE.read_text().replace("PartitionKeyPath:", "PartitionKey:").replace(
        "MaximumRetryAttempts: 185", "MaximumRetryAttempts: 200")
    found = {m.rule.id for m in lint(broken, regions=[REGION])}
    assert {"E3002", "E3034"} <= found, found


def test_the_template_reads_the_same_with_the_linters_own_decoder() -> None:
    """Our loader agrees with cfn-lint's CloudFormation decoder (so the checks above read what AWS reads)."""
    try:
        from cfnlint.decode.decode import decode_str  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover
        pytest.skip("cfn-lint is not installed")
    decoded, errors = decode_str(TEMPLATE.read_text())
    assert not errors and decoded is not None
    assert json.loads(json.dumps(decoded)) == template()
