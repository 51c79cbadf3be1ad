"""Every AWS call of the service goes through `AwsApi.call`: paced by its call class's limiter,
retried with full-jitter back-off on throttling, 5xx and timeouts, counted in metrics.

Callers see two exceptions only: `AwsRequestError` (AWS refused the request; retrying cannot help)
and `AwsUnavailable` (AWS kept throttling or failing; try again later).

The core depends on the `AwsCalls` protocol, not on `AwsApi`: `aws_array_plugin.testing.FakeAws` is the in-memory
implementation its unit tests run on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any, Protocol

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError
from botocore.handlers import add_expect_header

from aws_array_plugin import __version__
from aws_array_plugin.config import Config
from aws_array_plugin.metrics import Metrics
from aws_array_plugin.rate_limits import AdaptiveLimiter, full_jitter_backoff
from aws_array_plugin.regions import resolve_region

log = logging.getLogger(__name__)

THROTTLE_CODES = frozenset({
    "TooManyRequestsException", "ThrottlingException", "Throttling", "ThrottledException", "SlowDown",
    "RequestLimitExceeded", "RequestThrottled", "RequestThrottledException", "LimitExceededException",
    "ProvisionedThroughputExceededException", "KMSThrottlingException",
})
SERVER_CODES = frozenset({
    "ServerException", "InternalError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException",
    "InternalServerError", "RequestTimeout", "RequestTimeoutException",
})
USER_AGENT_EXTRA = f"aws-array-plugin/{__version__}"
CALL_CLASSES = ("submit", "describe", "list", "terminate", "job_definitions", "s3", "logs", "events")


class AwsCalls(Protocol):
    """What the service uses of `AwsApi`: the one entry point of every AWS call, and a faster decoder for a
    response. `AwsApi` is the real one; `aws_array_plugin.testing.FakeAws` answers from memory."""

    @property
    def region(self) -> str: ...

    async def call(self, call_class: str, service: str, operation: str, /, *, max_attempts: int = ...,
                   deadline: float | None = None, retry_timeouts: bool = True, **params: Any) -> dict[str, Any]:
        """`operation` (snake_case) of `service` with `params`, paced by `call_class`'s limiter. Raises
        AwsRequestError or AwsUnavailable only. No attempt starts after `deadline` (a time.monotonic() instant)."""
        ...

    def decode_with(self, service: str, operation: str, decode: Callable[[bytes], dict[str, Any] | None]) -> None:
        """Answer `operation` (CamelCase) with what `decode` makes of a successful response body."""
        ...


class AwsRequestError(Exception):
    """AWS rejected the request itself (4xx other than throttling)."""

    def __init__(self, operation: str, code: str, message: str, status: int) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.message = message
        self.status = status


class AwsUnavailable(Exception):
    """AWS throttled, failed or timed out on every attempt."""

    def __init__(self, operation: str, outcome: str, detail: str) -> None:
        super().__init__(f"{operation}: {outcome}: {detail}")
        self.operation = operation
        self.outcome = outcome


def classify(exc: BaseException) -> tuple[str, str, int]:
    """(outcome, code, http status) of a failed call: throttled, server_error, timeout or client_error."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if status == 429 or code in THROTTLE_CODES:
            return "throttled", code, status
        if status >= 500 or code in SERVER_CODES:
            return "server_error", code, status
        return "client_error", code, status
    if isinstance(exc, ConnectionError | HTTPClientError | aiohttp.ClientError | TimeoutError | OSError):
        return "timeout", type(exc).__name__, 0
    if isinstance(exc, BotoCoreError):
        return "timeout", type(exc).__name__, 0
    raise exc


class AwsApi:
    """One aiobotocore session and one client per service, reused for the life of the process."""

    def __init__(self, config: Config, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.region = resolve_region(config.region)
        self._stack = AsyncExitStack()
        self._clients: dict[str, Any] = {}
        limits = config.rate_limits
        self.limiters: dict[str, AdaptiveLimiter] = {
            name: AdaptiveLimiter(
                name, getattr(limits, name).rate, getattr(limits, name).burst,
                on_change=lambda n, r: metrics.aws_rate.labels(n).set(r),
            )
            for name in CALL_CLASSES
        }

    async def start(self) -> None:
        session = get_session()
        # Retries are ours (paced, counted, jittered); the SDK makes exactly one attempt.
        cfg = AioConfig(
            region_name=self.region,
            retries={"total_max_attempts": 1},
            # Our requests are built by code, not users: skip re-validating them, and checksum only where
            # the API requires it (S3 conditional PUTs of small records), which saves CPU per call.
            parameter_validation=False,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=64,
            # Names this service (and version) in CloudTrail's userAgent after the SDK's own name, version and
            # platform. Given once here, botocore does not rebuild the User-Agent for every request.
            user_agent=session.user_agent(),
            user_agent_extra=USER_AGENT_EXTRA,
            connect_timeout=5,
            read_timeout=30,
        )
        services = ["batch", "s3", "logs"]
        if self.config.status.events.enabled:
            services += ["kinesis", "events", "sqs"]
        for service in services:
            self._clients[service] = await self._stack.enter_async_context(
                session.create_client(service, config=cfg)
            )
        # botocore asks S3 for a go-ahead (`Expect: 100-continue`) before sending any PUT body. Nearly all our PUTs
        # are submission records of a few hundred bytes, for which the wait only adds a round trip per write.
        self._clients["s3"].meta.events.unregister("before-call.s3", add_expect_header)

    async def close(self) -> None:
        await self._stack.aclose()
        self._clients.clear()

    def client(self, service: str) -> Any:
        return self._clients[service]

    def decode_with(self, service: str, operation: str, decode: Callable[[bytes], dict[str, Any] | None]) -> None:
        """Answer `operation` (CamelCase) with what `decode` makes of a successful response body, instead of
        the SDK's parse: botocore builds every field of the model in Python, which for a big response (a
        DescribeJobs of 100 jobs) holds the event loop long enough to delay every other call
        (benchmarks/README.md, `describe_parse`). When `decode` returns None, and for errors, the SDK parses
        as usual."""
        def handler(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
            body = response_dict.get("body")
            if not 200 <= int(response_dict.get("status_code", 0)) < 300 or not isinstance(body, bytes):
                return
            decoded = decode(body)
            if decoded is not None:
                customized_response_dict.update(decoded)
                response_dict["body"] = b"{}"

        client = self._clients[service]
        client.meta.events.register(f"before-parse.{client.meta.service_model.service_id.hyphenize()}.{operation}",
                                    handler)

    async def call(
        self,
        call_class: str,
        service: str,
        operation: str,
        /,
        *,
        max_attempts: int = 6,
        deadline: float | None = None,
        retry_timeouts: bool = True,
        **params: Any,
    ) -> dict[str, Any]:
        """Call `operation` (snake_case) with `params`. `deadline` is a time.monotonic() instant after
        which no new attempt starts (nor a wait for the limiter ends). `retry_timeouts=False` for calls
        that must not be repeated blindly when the request may have reached AWS."""
        limiter = self.limiters[call_class]
        method = getattr(self._clients[service], operation)
        attempt = 0
        while True:
            attempt += 1
            if deadline is not None:
                try:
                    await asyncio.wait_for(limiter.acquire(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    raise AwsUnavailable(operation, "paced", "no rate-limit slot before the deadline") from None
            else:
                await limiter.acquire()
            started = time.monotonic()
            try:
                result: dict[str, Any] = await method(**params)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # classified below; anything unexpected is re-raised by classify
                self.metrics.aws_latency.labels(operation).observe(time.monotonic() - started)
                outcome, code, status = classify(exc)
                self.metrics.aws_calls.labels(operation, outcome).inc()
                if outcome == "client_error":
                    limiter.on_success()
                    msg = str(exc.response.get("Error", {}).get("Message", "")) if isinstance(
                        exc, ClientError) else str(exc)
                    raise AwsRequestError(operation, code, msg, status) from exc
                if outcome in ("throttled", "server_error"):
                    limiter.on_throttle()
                if outcome == "timeout" and not retry_timeouts:
                    raise AwsUnavailable(operation, outcome, code or str(exc)) from exc
                delay = full_jitter_backoff(attempt)
                out_of_time = deadline is not None and time.monotonic() + delay >= deadline
                if attempt >= max_attempts or out_of_time:
                    log.warning("AWS %s gave up after %d attempts: %s %s", operation, attempt, outcome, code)
                    raise AwsUnavailable(operation, outcome, code or str(exc)) from exc
                await asyncio.sleep(delay)
                continue
            self.metrics.aws_latency.labels(operation).observe(time.monotonic() - started)
            self.metrics.aws_calls.labels(operation, "ok").inc()
            limiter.on_success()
            return result
