"""Pre-provisioning of what a fresh account needs before jobs can be submitted: the IAM role, an UNMANAGED
compute environment, the job queue, the S3 bucket and the `/aws/batch/job` log group; and, for event delivery
(`provision_events`), the Kinesis stream, its dead-letter queue and the two EventBridge rules.

Done on moto's backends directly rather than over HTTP: creating four boto3 clients alone costs ~0.3 s of the
< 2 s start budget. Idempotent, because moto's state is per process: a second emulator in the same process
finds it all in place.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from moto.batch.models import batch_backends
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.events.models import events_backends
from moto.iam.models import iam_backends
from moto.kinesis.models import kinesis_backends
from moto.logs.models import logs_backends
from moto.s3.models import s3_backends
from moto.sqs.models import sqs_backends
from moto.utilities.utils import get_partition

ROLE_NAME = "aws-array-plugin-emulator-batch"
COMPUTE_ENVIRONMENT = "emulator-ce"
LOG_GROUP = "/aws/batch/job"
EVENT_STREAM = "aws-array-plugin-batch-events"
EVENT_STREAM_SHARDS = 2
EVENT_DLQ = "aws-array-plugin-batch-events-dlq"
EVENT_RULE = "aws-array-plugin-batch-events"
HEARTBEAT_RULE = "aws-array-plugin-heartbeats"
HEARTBEAT_PATTERN = {"source": ["aws-array-plugin"], "detail-type": ["aws-array-plugin heartbeat"]}
_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


@dataclass(frozen=True, slots=True)
class Provisioned:
    account_id: str
    role_arn: str
    compute_environment: str
    queue_name: str
    queue_arn: str
    bucket: str


def account_id() -> str:
    """The account moto answers for by default (what `MOTO_ACCOUNT_ID` says, if set)."""
    return os.environ.get("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)


def provision(region: str, *, queue: str, bucket: str) -> Provisioned:
    account = account_id()
    if region not in batch_backends[account].regions:
        raise ValueError(f"unknown AWS region {region!r}")
    partition = get_partition(region)
    iam = iam_backends[account][partition]
    role = next((r for r in iam.roles.values() if r.name == ROLE_NAME), None)
    if role is None:
        role = iam.create_role(
            role_name=ROLE_NAME,
            assume_role_policy_document=json.dumps(_TRUST),
            path="/",
            permissions_boundary=None,
            description="service role of the emulator's compute environment",
            tags=[],
            max_session_duration=None,
        )
    batch = batch_backends[account][region]
    if batch.get_compute_environment_by_name(COMPUTE_ENVIRONMENT) is None:
        unmanaged: Any = None  # an UNMANAGED environment has no computeResources (moto's hint says dict)
        batch.create_compute_environment(
            compute_environment_name=COMPUTE_ENVIRONMENT,
            _type="UNMANAGED",
            state="ENABLED",
            compute_resources=unmanaged,
            service_role=role.arn,
        )
    job_queue = batch.get_job_queue_by_name(queue)
    if job_queue is None:
        job_queue = batch.create_job_queue(
            queue_name=queue,
            priority="1",
            schedule_policy=None,
            state="ENABLED",
            compute_env_order=[{"order": "1", "computeEnvironment": COMPUTE_ENVIRONMENT}],
        )
    s3 = s3_backends[account][partition]
    if bucket not in s3.buckets:
        s3.create_bucket(bucket, region)
    logs = logs_backends[account][region]
    if LOG_GROUP not in logs.groups:
        logs.create_log_group(LOG_GROUP, {})
    envs = list(getattr(job_queue, "environments", []) or [])  # an existing queue may use another CE
    return Provisioned(
        account_id=account,
        role_arn=str(role.arn),
        compute_environment=str(envs[0].name) if envs else COMPUTE_ENVIRONMENT,
        queue_name=queue,
        queue_arn=str(job_queue.arn),
        bucket=bucket,
    )


def batch_event_pattern(queue_arn: str) -> dict[str, Any]:
    """The pre-provisioned rule's pattern: state changes of the jobs of that queue."""
    return {"source": ["aws.batch"], "detail-type": ["Batch Job State Change"], "detail": {"jobQueue": [queue_arn]}}


@dataclass(frozen=True, slots=True)
class ProvisionedEvents:
    stream: str
    stream_arn: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str
    rule: str
    rule_arn: str
    heartbeat_rule: str

    def info_fields(self) -> dict[str, str]:
        """As `EmulatorInfo` keyword arguments."""
        return {
            "event_stream": self.stream,
            "event_stream_arn": self.stream_arn,
            "dead_letter_queue_url": self.dead_letter_queue_url,
            "dead_letter_queue_arn": self.dead_letter_queue_arn,
            "event_rule": self.rule,
            "event_rule_arn": self.rule_arn,
            "heartbeat_rule": self.heartbeat_rule,
        }


def provision_events(region: str, *, account: str, queue_arn: str, endpoint: str) -> ProvisionedEvents:
    """The Kinesis stream (2 shards), its SQS dead-letter queue, the rule sending the queue's Batch events to the
    stream (partition key: the job id; dead letters to the queue) and the heartbeat rule (partition key: the
    event id). Idempotent; a second emulator in the process re-points the rules at its own queue."""
    kinesis = kinesis_backends[account][region]
    if EVENT_STREAM not in kinesis.streams:
        kinesis.create_stream(EVENT_STREAM, EVENT_STREAM_SHARDS)
    stream_arn = str(kinesis.streams[EVENT_STREAM].arn)
    sqs = sqs_backends[account][region]
    dlq = sqs.queues.get(EVENT_DLQ) or sqs.create_queue(EVENT_DLQ)
    events = events_backends[account][region]
    rule = events.put_rule(
        EVENT_RULE,
        description="AWS Batch job state changes of the emulator's queue, to the event stream",
        event_pattern=json.dumps(batch_event_pattern(queue_arn)),
        state="ENABLED",
    )
    events.put_targets(
        EVENT_RULE,
        None,
        [
            {
                "Id": "event-stream",
                "Arn": stream_arn,
                "KinesisParameters": {"PartitionKeyPath": "$.detail.jobId"},
                "DeadLetterConfig": {"Arn": str(dlq.queue_arn)},
            }
        ],
    )
    events.put_rule(
        HEARTBEAT_RULE,
        description="aws-array-plugin heartbeats, to the event stream",
        event_pattern=json.dumps(HEARTBEAT_PATTERN),
        state="ENABLED",
    )
    events.put_targets(HEARTBEAT_RULE, None, [{"Id": "event-stream", "Arn": stream_arn}])
    return ProvisionedEvents(
        stream=EVENT_STREAM,
        stream_arn=stream_arn,
        dead_letter_queue_url=str(dlq.url(urlparse(endpoint))),
        dead_letter_queue_arn=str(dlq.queue_arn),
        rule=EVENT_RULE,
        rule_arn=str(rule.arn),
        heartbeat_rule=HEARTBEAT_RULE,
    )
