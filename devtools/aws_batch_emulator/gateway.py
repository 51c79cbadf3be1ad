"""The WSGI app in front of moto: counts and faults every AWS call, answers Batch job calls from the job
engine, serves the `/_emulator/*` control API, and hands everything else to moto unchanged.

EventBridge calls reach moto with the emulator's event publisher in context (`moto_events.receiving`), so
PutEvents to Kinesis targets is delivered through it, with its faults.

S3 object writes go to moto one at a time: moto checks `If-Match` / `If-None-Match` and then writes, so two
concurrent conditional writes could both pass the check; S3 makes them atomic (one wins, the other gets 412).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from werkzeug.wsgi import get_input_stream

from . import batch_api, calls, moto_events
from .faults import CallStats, FaultInjector, fault_response

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
StartResponse = Callable[..., Any]
CONTROL_PREFIX = "/_emulator"
# S3 calls that change objects: serialized so that conditional writes are atomic, as in S3.
S3_WRITES = frozenset({"PutObject", "CopyObject", "DeleteObject", "DeleteObjects", "CompleteMultipartUpload"})


def respond(start_response: StartResponse, status: int, body: bytes, headers: list[tuple[str, str]]) -> list[bytes]:
    all_headers = [*headers, ("Content-Length", str(len(body))), ("x-amzn-RequestId", str(uuid.uuid4()))]
    start_response(f"{status} {HTTPStatus(status).phrase}", all_headers)
    return [body]


def respond_json(start_response: StartResponse, status: int, payload: Any) -> list[bytes]:
    headers = [("Content-Type", "application/json")]
    if status >= 400 and isinstance(payload, dict) and "__type" in payload:
        headers.append(("x-amzn-ErrorType", str(payload["__type"])))
    return respond(start_response, status, json.dumps(payload).encode(), headers)


def read_body(environ: dict[str, Any]) -> bytes:
    data: bytes = get_input_stream(environ).read()
    return data


class Gateway:
    def __init__(
        self,
        *,
        moto_app: WsgiApp,
        jobs_api: batch_api.BatchJobsApi,
        control: WsgiApp,
        stats: CallStats,
        faults: FaultInjector,
        default_region: str,
        events: moto_events.CustomEvents | None = None,
    ) -> None:
        self._moto = moto_app
        self._jobs = jobs_api
        self._control = control
        self._stats = stats
        self._faults = faults
        self._region = default_region
        self._events = events
        self._s3_writes = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX + "/") or path == CONTROL_PREFIX:
            return self._control(environ, start_response)
        if path.startswith("/moto-api") or path == "/favicon.ico":
            return self._moto(environ, start_response)
        call = calls.classify(environ, self._region)
        self._stats.count(call.operation)
        latency, fault = self._faults.decide(call.operation)
        if latency:
            time.sleep(latency)  # this request's own server thread; others are unaffected
        if fault is not None:
            self._stats.count_injected(call.operation, fault.kind)
            status, headers, body = fault_response(call.service, fault)
            return respond(start_response, status, body, headers)
        path_unquoted = unquote(path)
        if batch_api.owns(call, path_unquoted):
            method = environ.get("REQUEST_METHOD", "GET")
            raw = read_body(environ)
            status, payload = self._jobs.handle(call, method, path_unquoted, environ.get("QUERY_STRING", ""), raw)
            return respond_json(start_response, status, payload)
        if call.service == "s3" and call.operation in S3_WRITES:
            with self._s3_writes:
                return list(self._moto(environ, start_response))
        if call.service == "events" and self._events is not None:
            with moto_events.receiving(self._events):
                return list(self._moto(environ, start_response))  # moto delivers while answering
        return self._moto(environ, start_response)
