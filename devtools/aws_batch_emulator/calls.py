"""Which AWS call an HTTP request is: service, operation name, region and account.

Needed before moto sees the request, for per-API counters, fault injection and routing Batch job calls to the
job engine. The service and region come from the SigV4 credential scope; the operation from the protocol:
the Batch REST path, the JSON `X-Amz-Target`, the query `Action`, or (S3) method + path + query.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import parse_qs, unquote

DEFAULT_ACCOUNT = "123456789012"
_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")


@dataclass(frozen=True, slots=True)
class Call:
    service: str  # SigV4 signing name: batch, s3, logs, iam, sts, ...
    operation: str  # e.g. DescribeJobs, GetObject; "Unknown" if it cannot be told
    region: str
    account: str


@cache
def _batch_operations() -> dict[str, str]:
    """`/v1/<lowercased name>` -> operation name, from botocore's Batch model."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("batch")
    table = {}
    for name in model.operation_names:
        uri = model.operation_model(name).http.get("requestUri", "")
        if "{" not in uri:
            table[uri] = name
    return table


_BATCH_TAG_OPS = {"GET": "ListTagsForResource", "POST": "TagResource", "DELETE": "UntagResource"}


def batch_operation(method: str, path: str) -> str:
    if path.startswith("/v1/tags/"):
        return _BATCH_TAG_OPS.get(method, "Unknown")
    return _batch_operations().get(path.rstrip("/"), "Unknown")


def s3_operation(method: str, path: str, query: dict[str, list[str]], headers: dict[str, Any]) -> str:
    """Path-style S3 request (what botocore sends to an IP endpoint) to its operation name."""
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        return "ListBuckets"
    if key:
        if method == "GET":
            return "ListParts" if "uploadId" in query else "GetObject"
        if method == "HEAD":
            return "HeadObject"
        if method == "PUT":
            if "partNumber" in query:
                return "UploadPartCopy" if "HTTP_X_AMZ_COPY_SOURCE" in headers else "UploadPart"
            return "CopyObject" if "HTTP_X_AMZ_COPY_SOURCE" in headers else "PutObject"
        if method == "DELETE":
            return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
        if method == "POST":
            if "uploads" in query:
                return "CreateMultipartUpload"
            if "uploadId" in query:
                return "CompleteMultipartUpload"
        return "Unknown"
    if method == "GET":
        if "location" in query:
            return "GetBucketLocation"
        if "uploads" in query:
            return "ListMultipartUploads"
        return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
    return {"HEAD": "HeadBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(
        method, "DeleteObjects" if method == "POST" and "delete" in query else "Unknown"
    )


def _form_action(environ: dict[str, Any]) -> str | None:
    """`Action=` of a query-protocol call (IAM, STS), from the form body (which is then put back)."""
    if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return None
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    actions = parse_qs(body.decode("utf-8", errors="replace")).get("Action")
    return actions[0] if actions else None


def _account(environ: dict[str, Any], access_key: str) -> str:
    # Same precedence as moto: env, then the x-moto-account-id header, then the access key.
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    header = environ.get("HTTP_X_MOTO_ACCOUNT_ID")
    if header:
        return str(header)
    from moto.iam.models import get_account_id_from

    return str(get_account_id_from(access_key)) if access_key else DEFAULT_ACCOUNT


def classify(environ: dict[str, Any], default_region: str) -> Call:
    method = environ.get("REQUEST_METHOD", "GET")
    path = unquote(environ.get("PATH_INFO", ""))
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    match = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match is None and "X-Amz-Credential" in query:  # presigned URL
        match = _SCOPE.search("Credential=" + query["X-Amz-Credential"][0])
    access_key, region, service = match.groups() if match else ("", default_region, "unknown")
    target = environ.get("HTTP_X_AMZ_TARGET")
    if service == "batch":
        operation = batch_operation(method, path)
    elif service == "s3":
        operation = s3_operation(method, path, query, environ)
    elif target:
        operation = str(target).rpartition(".")[2]
    else:
        operation = (query.get("Action") or [None])[0] or _form_action(environ) or "Unknown"
    return Call(service=service, operation=operation, region=region, account=_account(environ, access_key))
