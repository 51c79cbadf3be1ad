"""deploy/iam/policy.json allows every AWS action the service calls, and no more than it should."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from typing import Any

from aws_array_plugin.aws_calls import CALL_CLASSES
from aws_array_plugin.submissions import journal_uri, record_uri
from tests.deploy.support import REPO

PACKAGE = REPO / "aws_array_plugin"  # the emulator and the demo are in devtools/, not in the package
POLICY = REPO / "deploy" / "iam" / "policy.json"

# IAM prefix of each boto service name the service uses.
IAM_PREFIX = {"batch": "batch", "s3": "s3", "logs": "logs", "kinesis": "kinesis", "events": "events", "sqs": "sqs"}
# Operations whose IAM action is not the operation's own name.
SPECIAL_ACTIONS = {
    ("s3", "head_object"): "s3:GetObject",
    ("s3", "list_objects_v2"): "s3:ListBucket",
}
# Calls the brief names; they must be allowed even before the code that makes them lands.
KNOWN_ACTIONS = {
    "batch:SubmitJob", "batch:DescribeJobs", "batch:ListJobs", "batch:TerminateJob", "batch:CancelJob",
    "batch:RegisterJobDefinition", "batch:DescribeJobDefinitions", "batch:TagResource",
    "s3:GetObject", "s3:PutObject", "logs:GetLogEvents", "iam:PassRole",
    # The event source (config status.events): reading the stream, heartbeats, the dead-letter queue's depth.
    "kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords", "kinesis:DescribeStreamSummary",
    "events:PutEvents", "sqs:GetQueueAttributes",
}
EVENT_SOURCE_STATEMENTS = {
    "ReadEventStream": (
        ["kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords", "kinesis:DescribeStreamSummary"],
        "arn:${AWS_PARTITION}:kinesis:${AWS_REGION}:${AWS_ACCOUNT_ID}:stream/${EVENT_STREAM_NAME}",
    ),
    "SendHeartbeats": (
        ["events:PutEvents"],
        "arn:${AWS_PARTITION}:events:${AWS_REGION}:${AWS_ACCOUNT_ID}:event-bus/${EVENT_BUS_NAME}",
    ),
    "ReadDeadLetterQueue": (
        ["sqs:GetQueueAttributes"],
        "arn:${AWS_PARTITION}:sqs:${AWS_REGION}:${AWS_ACCOUNT_ID}:${DEAD_LETTER_QUEUE_NAME}",
    ),
}


def iam_action(service: str, operation: str) -> str:
    special = SPECIAL_ACTIONS.get((service, operation))
    if special:
        return special
    return f"{IAM_PREFIX[service]}:{''.join(part.capitalize() for part in operation.split('_'))}"


def aws_calls_in_code() -> set[tuple[str, str, str]]:
    """(file, service, operation) of every `<x>.call(<class>, "<service>", "<operation>", ...)`."""
    found: set[tuple[str, str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if "_proto" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "call"):
                continue
            args = node.args
            first = args[0] if args else None
            if not (isinstance(first, ast.Constant) and first.value in CALL_CLASSES):
                continue  # not AwsApi.call (e.g. subprocess.call)
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            assert len(args) >= 3, f"{where}: AwsApi.call needs (call_class, service, operation)"
            service, operation = args[1], args[2]
            assert isinstance(service, ast.Constant) and isinstance(service.value, str), \
                f"{where}: the service must be a literal string (so this test can see it)"
            assert isinstance(operation, ast.Constant) and isinstance(operation.value, str), \
                f"{where}: the operation must be a literal string (so this test can see it)"
            found.add((where, service.value, operation.value))
    return found


def policy_actions() -> dict[str, list[dict[str, Any]]]:
    policy = json.loads(POLICY.read_text())
    assert policy["Version"] == "2012-10-17"
    actions: dict[str, list[dict[str, Any]]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in listed:
            assert "*" not in action, f"wildcard action {action}"
            actions.setdefault(action, []).append(statement)
    return actions


def test_every_aws_call_of_the_service_is_allowed() -> None:
    calls = aws_calls_in_code()
    assert any(service == "batch" for _, service, _ in calls), "found no AwsApi.call at all: is the scan broken?"
    allowed = policy_actions()
    missing = sorted(f"{iam_action(s, o)} ({where})" for where, s, o in calls if iam_action(s, o) not in allowed)
    assert missing == []


def test_the_policy_allows_the_known_actions_and_nothing_else() -> None:
    from_code = {iam_action(s, o) for _, s, o in aws_calls_in_code()}
    assert set(policy_actions()) == KNOWN_ACTIONS | from_code | {"s3:ListBucket"}


def test_the_operation_name_mapping() -> None:
    assert iam_action("batch", "describe_job_definitions") == "batch:DescribeJobDefinitions"
    assert iam_action("logs", "get_log_events") == "logs:GetLogEvents"
    assert iam_action("s3", "head_object") == "s3:GetObject"
    assert iam_action("kinesis", "get_shard_iterator") == "kinesis:GetShardIterator"
    assert iam_action("sqs", "get_queue_attributes") == "sqs:GetQueueAttributes"


def _statements() -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in json.loads(POLICY.read_text())["Statement"]}


def test_the_event_source_statements_are_scoped_to_its_own_resources() -> None:
    """Each AWS resource of the event source has its own statement, naming only that resource and only the
    read (or, for heartbeats, put) actions the replicas need."""
    statements = _statements()
    for sid, (actions, resource) in EVENT_SOURCE_STATEMENTS.items():
        statement = statements[sid]
        listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert sorted(listed) == sorted(actions), sid
        assert statement["Resource"] == resource, sid
    # No other statement grants them (a wider resource elsewhere would undo the scoping).
    owner = {action: sid for sid, (actions, _) in EVENT_SOURCE_STATEMENTS.items() for action in actions}
    for action, found in policy_actions().items():
        if action in owner:
            assert [s["Sid"] for s in found] == [owner[action]], action
    # The replicas only read the stream and the queue: EventBridge's own role writes to them
    # (deploy/aws/batch-events.cloudformation.yaml), and nothing may change the rules.
    allowed = set(policy_actions())
    assert not allowed & {"kinesis:PutRecord", "kinesis:PutRecords", "sqs:SendMessage", "sqs:ReceiveMessage",
                          "sqs:DeleteMessage", "sqs:PurgeQueue", "events:PutRule", "events:PutTargets"}


def test_heartbeats_may_only_carry_the_service_source() -> None:
    """events:source is a multivalued key of PutEvents (one value per entry): every entry must be the service's
    heartbeat source, and a request without one is not let through by the empty set."""
    from aws_array_plugin.job_events import HEARTBEAT_SOURCE

    statement = _statements()["SendHeartbeats"]
    assert statement["Condition"] == {
        "ForAllValues:StringEquals": {"events:source": [HEARTBEAT_SOURCE]},
        "Null": {"events:source": "false"},
    }
    # The heartbeat rule forwards exactly that source to the stream.
    from tests.deploy.test_cloudformation import resource

    assert resource("HeartbeatsRule", "AWS::Events::Rule")["EventPattern"]["source"] == [HEARTBEAT_SOURCE]


def test_the_event_source_resources_are_the_cloudformation_ones() -> None:
    """With the template's defaults filled in, the placeholders name what the template creates."""
    from tests.deploy.test_cloudformation import resource, template

    names = {
        "EVENT_STREAM_NAME": template()["Parameters"]["StreamName"]["Default"],
        "EVENT_BUS_NAME": resource("BatchEventsRule", "AWS::Events::Rule")["EventBusName"],
        "DEAD_LETTER_QUEUE_NAME": resource("DeadLetterQueue", "AWS::SQS::Queue")["QueueName"],
    }
    assert resource("HeartbeatsRule", "AWS::Events::Rule")["EventBusName"] == names["EVENT_BUS_NAME"]
    doc = (REPO / "docs" / "iam.md").read_text()
    for placeholder, value in names.items():
        assert f"{placeholder}={value}" in doc, f"docs/iam.md's example does not fill {placeholder} with {value}"


def test_pass_role_only_to_ecs_tasks_and_only_named_roles() -> None:
    (statement,) = policy_actions()["iam:PassRole"]
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    assert resources and all(":role/${" in r for r in resources), resources


def test_s3_writes_only_where_the_service_writes() -> None:
    (statement,) = policy_actions()["s3:PutObject"]
    assert sorted(r.split("${METADATA_PREFIX}*", 1)[1] for r in statement["Resource"]) == [
        "/_aws_array_plugin/journal-*.json", "/_aws_array_plugin/submission.json", "/outputs.pb",
    ]
    # The names the service writes under an attempt's output prefix are the ones the policy allows.
    prefix = "s3://flyte-data/metadata/propeller/p-d-exec/n0/data/0"
    record = record_uri(prefix)
    written = [record, journal_uri(record), f"{prefix}/outputs.pb"]
    patterns = [r.replace("arn:${AWS_PARTITION}:s3:::${METADATA_BUCKET}/${METADATA_PREFIX}", "s3://flyte-data/metadata/")
                for r in statement["Resource"]]
    assert all(any(fnmatch.fnmatchcase(uri, p) for p in patterns) for uri in written), (written, patterns)
    (read,) = policy_actions()["s3:GetObject"]
    assert read["Resource"].endswith("${METADATA_BUCKET}/${METADATA_PREFIX}*")


def test_only_describe_and_list_calls_use_a_wildcard_resource() -> None:
    for action, statements in policy_actions().items():
        for statement in statements:
            if statement["Resource"] == "*":
                assert action in {"batch:DescribeJobs", "batch:ListJobs", "batch:DescribeJobDefinitions"}, action


def test_placeholders_are_documented() -> None:
    text = POLICY.read_text()
    doc = (REPO / "docs" / "iam.md").read_text()
    placeholders = set(re.findall(r"\$\{([A-Z_]+)\}", text))
    assert placeholders >= {"AWS_PARTITION", "AWS_REGION", "AWS_ACCOUNT_ID", "METADATA_BUCKET"}
    for name in placeholders:
        assert f"`{name}`" in doc, f"docs/iam.md does not explain ${{{name}}}"

