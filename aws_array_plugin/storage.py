"""S3 objects under a task's output prefix: read, write, conditional create and replace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_array_plugin.aws_calls import AwsCalls, AwsRequestError
from aws_array_plugin.s3_uris import split_uri

_MISSING = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchBucket"})
_PRECONDITION = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})


class WriteConflict(Exception):
    """A conditional write lost: the object exists (create) or changed (replace)."""


@dataclass(frozen=True)
class S3Object:
    data: bytes
    etag: str


class S3Store:
    def __init__(self, api: AwsCalls) -> None:
        self._api = api

    async def read(self, uri: str, deadline: float | None = None) -> S3Object | None:
        """The object, or None when it does not exist."""
        bucket, key = split_uri(uri)
        try:
            resp = await self._api.call("s3", "s3", "get_object", deadline=deadline, Bucket=bucket, Key=key)
        except AwsRequestError as exc:
            if exc.code in _MISSING or exc.status == 404:
                return None
            raise
        body: Any = resp["Body"]
        async with body as stream:
            data: bytes = await stream.read()
        return S3Object(data, str(resp.get("ETag", "")))

    async def write(self, uri: str, data: bytes, *, create_only: bool = False, if_match: str | None = None,
                    content_type: str = "application/octet-stream", deadline: float | None = None) -> str:
        """Write and return the new ETag. `create_only` fails if the object exists; `if_match` fails if
        it changed since that ETag. Both raise WriteConflict."""
        bucket, key = split_uri(uri)
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": data, "ContentType": content_type}
        if create_only:
            params["IfNoneMatch"] = "*"
        if if_match:
            params["IfMatch"] = if_match
        try:
            resp = await self._api.call("s3", "s3", "put_object", deadline=deadline, **params)
        except AwsRequestError as exc:
            if exc.code in _PRECONDITION or exc.status in (409, 412):
                raise WriteConflict(uri) from exc
            raise
        return str(resp.get("ETag", ""))
