from collections.abc import Mapping
from typing import Any

import pytest

from aws_array_plugin.log_links import (
    AttemptLog,
    array_job_links,
    attempt_logs,
    batch_job_console_url,
    child_job_links,
    cloudwatch_log_url,
    log_location,
    single_job_links,
)
from aws_array_plugin.task_status import LogLink

PARENT = "6f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
BATCH_US = "https://us-east-1.console.aws.amazon.com/batch/home?region=us-east-1#jobs/detail/"
LOGS_US = "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logsV2:log-groups/log-group/"
DEFAULT_GROUP = "$252Faws$252Fbatch$252Fjob"  # "/aws/batch/job" as the CloudWatch console escapes it


@pytest.mark.parametrize(
    ("region", "job_id", "expected"),
    [
        ("us-east-1", PARENT, BATCH_US + PARENT),
        # Array child "<parent>:<index>": ':' is kept, as in the console's own child links.
        ("us-east-1", f"{PARENT}:7", f"{BATCH_US}{PARENT}:7"),
        # Multi-node node "<id>#<node>": a second '#' would end up inside the fragment, so it is escaped.
        ("us-east-1", f"{PARENT}#0", f"{BATCH_US}{PARENT}%230"),
        (
            "eu-west-1",
            "j-1",
            "https://eu-west-1.console.aws.amazon.com/batch/home?region=eu-west-1#jobs/detail/j-1",
        ),
        (
            "cn-north-1",
            f"{PARENT}:0",
            f"https://cn-north-1.console.amazonaws.cn/batch/home?region=cn-north-1#jobs/detail/{PARENT}:0",
        ),
        (
            "cn-northwest-1",
            "j-1",
            "https://cn-northwest-1.console.amazonaws.cn/batch/home?region=cn-northwest-1#jobs/detail/j-1",
        ),
        (
            "us-gov-west-1",
            f"{PARENT}:12",
            "https://us-gov-west-1.console.amazonaws-us-gov.com/batch/home?region=us-gov-west-1"
            f"#jobs/detail/{PARENT}:12",
        ),
    ],
)
def test_batch_job_console_url(region: str, job_id: str, expected: str) -> None:
    assert batch_job_console_url(region, job_id) == expected


@pytest.mark.parametrize(
    ("region", "group", "stream", "expected"),
    [
        (
            "us-east-1",
            "/aws/batch/job",
            "flyte-app-5e2a/default/8f14e45fceea167a5a36dedd4bea2543",
            f"{LOGS_US}{DEFAULT_GROUP}/log-events/flyte-app-5e2a$252Fdefault$252F8f14e45fceea167a5a36dedd4bea2543",
        ),
        # Custom group; '_' '.' '-' stay, ':' '$' ' ' '[' ']' are escaped twice like everything else.
        (
            "us-east-1",
            "/flyte/batch_jobs.prod",
            "def:v2/default/a b",
            f"{LOGS_US}$252Fflyte$252Fbatch_jobs.prod/log-events/def$253Av2$252Fdefault$252Fa$2520b",
        ),
        (
            "us-east-1",
            "grp",
            "2024/01/01/[$LATEST]abc",
            f"{LOGS_US}grp/log-events/2024$252F01$252F01$252F$255B$2524LATEST$255Dabc",
        ),
        (
            "cn-north-1",
            "/aws/batch/job",
            "d/default/1",
            "https://cn-north-1.console.amazonaws.cn/cloudwatch/home?region=cn-north-1"
            f"#logsV2:log-groups/log-group/{DEFAULT_GROUP}/log-events/d$252Fdefault$252F1",
        ),
        (
            "us-gov-east-1",
            "/aws/batch/job",
            "d/default/1",
            "https://us-gov-east-1.console.amazonaws-us-gov.com/cloudwatch/home?region=us-gov-east-1"
            f"#logsV2:log-groups/log-group/{DEFAULT_GROUP}/log-events/d$252Fdefault$252F1",
        ),
    ],
)
def test_cloudwatch_log_url(region: str, group: str, stream: str, expected: str) -> None:
    assert cloudwatch_log_url(region, group, stream) == expected


def _awslogs(options: dict[str, str] | None = None, driver: str = "awslogs") -> dict[str, Any]:
    config: dict[str, Any] = {"logDriver": driver, "options": options or {}, "secretOptions": []}
    return {"container": {"logConfiguration": config}}


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ({}, ("/aws/batch/job", "us-east-1")),
        ({"container": {}}, ("/aws/batch/job", "us-east-1")),  # no logConfiguration: Batch's default awslogs
        (_awslogs(), ("/aws/batch/job", "us-east-1")),
        (_awslogs({"awslogs-group": "/flyte/jobs"}), ("/flyte/jobs", "us-east-1")),
        (_awslogs({"awslogs-region": "eu-west-1"}), ("/aws/batch/job", "eu-west-1")),
        (
            _awslogs({"awslogs-group": "/g", "awslogs-region": "us-west-2", "awslogs-stream-prefix": "p"}),
            ("/g", "us-west-2"),
        ),
        ({"container": {"logConfiguration": {"logDriver": "awslogs"}}}, ("/aws/batch/job", "us-east-1")),
        # Drivers that do not write to CloudWatch: no CloudWatch links.
        (_awslogs({"splunk-url": "https://splunk:8088"}, driver="splunk"), None),
        (_awslogs(driver="fluentd"), None),
        (_awslogs(driver="json-file"), None),
    ],
)
def test_log_location(detail: Mapping[str, Any], expected: tuple[str, str] | None) -> None:
    assert log_location(detail, "/aws/batch/job", "us-east-1") == expected


def _attempt(stream: str | None, exit_code: int = 1) -> dict[str, Any]:
    container: dict[str, Any] = {"exitCode": exit_code, "containerInstanceArn": "arn:...", "taskArn": "arn:..."}
    if stream is not None:
        container["logStreamName"] = stream
    return {"container": container, "startedAt": 1700000000000, "stoppedAt": 1700000060000, "statusReason": "x"}


def _job(
    job_id: str,
    status: str,
    attempts: list[dict[str, Any]],
    current: str | None,
    *,
    index: int | None = None,
    log_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A job detail shaped like boto3's DescribeJobs answer."""
    container: dict[str, Any] = {"image": "ghcr.io/example/app:v1", "vcpus": 1, "memory": 1024}
    if current is not None:
        container["logStreamName"] = current
    if log_config is not None:
        container["logConfiguration"] = log_config
    job: dict[str, Any] = {
        "jobArn": f"arn:aws:batch:us-east-1:123456789012:job/{job_id}",
        "jobName": "flyte-job",
        "jobId": job_id,
        "jobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/q",
        "status": status,
        "attempts": attempts,
        "createdAt": 1700000000000,
        "container": container,
    }
    if index is not None:
        job["arrayProperties"] = {"index": index}
    return job


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        (_job("j", "SUBMITTED", [], None), []),
        (_job("j", "RUNNABLE", [], None), []),
        (_job("j", "RUNNING", [], "d/default/a1"), [AttemptLog(1, "d/default/a1", "RUNNING")]),
        # Done: the current stream repeats the last attempt's and is not listed twice.
        (
            _job("j", "SUCCEEDED", [_attempt("d/default/a1", 0)], "d/default/a1"),
            [AttemptLog(1, "d/default/a1", "SUCCEEDED")],
        ),
        (_job("j", "FAILED", [_attempt("d/default/a1")], "d/default/a1"), [AttemptLog(1, "d/default/a1", "FAILED")]),
        # Retried: earlier attempts failed, the current one runs.
        (
            _job("j", "RUNNING", [_attempt("d/default/a1"), _attempt("d/default/a2")], "d/default/a3"),
            [
                AttemptLog(1, "d/default/a1", "FAILED"),
                AttemptLog(2, "d/default/a2", "FAILED"),
                AttemptLog(3, "d/default/a3", "RUNNING"),
            ],
        ),
        (
            _job("j", "SUCCEEDED", [_attempt("d/default/a1"), _attempt("d/default/a2", 0)], "d/default/a2"),
            [AttemptLog(1, "d/default/a1", "FAILED"), AttemptLog(2, "d/default/a2", "SUCCEEDED")],
        ),
        # An attempt that never ran (e.g. CannotPullContainerError) has no stream but still counts.
        (
            _job("j", "RUNNING", [_attempt(None)], "d/default/a2"),
            [AttemptLog(2, "d/default/a2", "RUNNING")],
        ),
        # Waiting for a retry: the previous attempt's stream is still in `container`.
        (_job("j", "RUNNABLE", [_attempt("d/default/a1")], "d/default/a1"), [AttemptLog(1, "d/default/a1", "FAILED")]),
        ({"jobId": "j", "status": "RUNNING"}, []),
        ({"jobId": "j", "attempts": None, "container": {"logStreamName": "s"}}, [AttemptLog(1, "s", "UNKNOWN")]),
    ],
)
def test_attempt_logs(detail: Mapping[str, Any], expected: list[AttemptLog]) -> None:
    assert attempt_logs(detail) == expected


def _links(logs: list[LogLink]) -> list[tuple[str, str, bool]]:
    return [(log.name, log.uri, log.show_while_pending) for log in logs]


def test_single_job_links_before_any_detail() -> None:
    assert _links(single_job_links("us-east-1", PARENT)) == [("AWS Batch job", BATCH_US + PARENT, True)]


def test_single_job_links_retried_job() -> None:
    detail = _job(PARENT, "RUNNING", [_attempt("flyte-app/default/a1")], "flyte-app/default/a2")
    assert _links(single_job_links("us-east-1", PARENT, detail)) == [
        ("AWS Batch job", BATCH_US + PARENT, True),
        ("CloudWatch logs (attempt 1)", f"{LOGS_US}{DEFAULT_GROUP}/log-events/flyte-app$252Fdefault$252Fa1", False),
        ("CloudWatch logs (attempt 2)", f"{LOGS_US}{DEFAULT_GROUP}/log-events/flyte-app$252Fdefault$252Fa2", False),
    ]


@pytest.mark.parametrize(
    ("region", "log_config", "default_group", "cloudwatch"),
    [
        # The job definition's own group and region win over the defaults.
        (
            "us-east-1",
            {"logDriver": "awslogs", "options": {"awslogs-group": "/flyte/jobs", "awslogs-region": "us-west-2"}},
            "/aws/batch/job",
            "https://us-west-2.console.aws.amazon.com/cloudwatch/home?region=us-west-2"
            "#logsV2:log-groups/log-group/$252Fflyte$252Fjobs/log-events/s$252Fdefault$252F1",
        ),
        (
            "us-east-1",
            None,
            "/custom/default",
            f"{LOGS_US}$252Fcustom$252Fdefault/log-events/s$252Fdefault$252F1",
        ),
        (
            "cn-northwest-1",
            None,
            "/aws/batch/job",
            "https://cn-northwest-1.console.amazonaws.cn/cloudwatch/home?region=cn-northwest-1"
            f"#logsV2:log-groups/log-group/{DEFAULT_GROUP}/log-events/s$252Fdefault$252F1",
        ),
        (
            "us-gov-west-1",
            {"logDriver": "awslogs", "options": {"awslogs-group": "/gov/jobs"}},
            "/aws/batch/job",
            "https://us-gov-west-1.console.amazonaws-us-gov.com/cloudwatch/home?region=us-gov-west-1"
            "#logsV2:log-groups/log-group/$252Fgov$252Fjobs/log-events/s$252Fdefault$252F1",
        ),
        ("us-east-1", {"logDriver": "splunk", "options": {"splunk-url": "https://s"}}, "/aws/batch/job", None),
    ],
)
def test_single_job_links_log_location(
    region: str, log_config: dict[str, Any] | None, default_group: str, cloudwatch: str | None
) -> None:
    detail = _job("j-1", "SUCCEEDED", [_attempt("s/default/1", 0)], "s/default/1", log_config=log_config)
    links = _links(single_job_links(region, "j-1", detail, default_log_group=default_group))
    console = ("AWS Batch job", batch_job_console_url(region, "j-1"), True)
    assert links == [console] + ([("CloudWatch logs (attempt 1)", cloudwatch, False)] if cloudwatch else [])


def test_child_job_links() -> None:
    child = _job(f"{PARENT}:7", "FAILED", [_attempt("d/default/c7")], "d/default/c7", index=7)
    assert _links(child_job_links("us-east-1", child)) == [
        ("Child 7 logs (attempt 1, FAILED)", f"{LOGS_US}{DEFAULT_GROUP}/log-events/d$252Fdefault$252Fc7", False),
    ]


@pytest.mark.parametrize(
    ("child", "name"),
    [
        # No arrayProperties.index: the index comes from the child id "<parent>:<index>".
        ({"jobId": f"{PARENT}:12", "status": "RUNNING", "container": {"logStreamName": "s"}}, "Child 12"),
        ({"jobId": "plain-job", "status": "RUNNING", "container": {"logStreamName": "s"}}, "Job plain-job"),
        ({"status": "RUNNING", "container": {"logStreamName": "s"}}, "Job ?"),
    ],
)
def test_child_job_links_without_index(child: Mapping[str, Any], name: str) -> None:
    assert [log.name for log in child_job_links("us-east-1", child)] == [f"{name} logs (attempt 1, RUNNING)"]


def test_array_job_links() -> None:
    children = [
        _job(f"{PARENT}:10", "RUNNING", [_attempt("d/default/c10a")], "d/default/c10b", index=10),
        _job(f"{PARENT}:2", "FAILED", [_attempt("d/default/c2a"), _attempt("d/default/c2b")], "d/default/c2b", index=2),
        _job(f"{PARENT}:3", "RUNNABLE", [], None, index=3),  # no stream yet: no link
        _job(
            f"{PARENT}:4",
            "FAILED",
            [_attempt("d/default/c4")],
            "d/default/c4",
            index=4,
            log_config={"logDriver": "splunk", "options": {}},
        ),
    ]

    def logs(stream: str) -> str:
        return f"{LOGS_US}{DEFAULT_GROUP}/log-events/d$252Fdefault$252F{stream}"

    assert _links(array_job_links("us-east-1", PARENT, children)) == [
        ("AWS Batch array job", BATCH_US + PARENT, True),
        ("Child 2 logs (attempt 1, FAILED)", logs("c2a"), False),
        ("Child 2 logs (attempt 2, FAILED)", logs("c2b"), False),
        ("Child 10 logs (attempt 1, FAILED)", logs("c10a"), False),
        ("Child 10 logs (attempt 2, RUNNING)", logs("c10b"), False),
    ]


def test_array_job_links_parent_only() -> None:
    assert _links(array_job_links("us-gov-west-1", PARENT)) == [
        (
            "AWS Batch array job",
            f"https://us-gov-west-1.console.amazonaws-us-gov.com/batch/home?region=us-gov-west-1#jobs/detail/{PARENT}",
            True,
        )
    ]


def test_links_are_plain_values() -> None:
    (console,) = single_job_links("us-east-1", PARENT)
    assert console == LogLink(name="AWS Batch job", uri=BATCH_US + PARENT, show_while_pending=True)
