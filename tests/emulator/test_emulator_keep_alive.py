"""The emulator keeps HTTP/1.1 connections open as AWS endpoints do, and never mistakes the next request on a
connection for the rest of the previous one (werkzeug's server alone would: it closes every connection and
reads whatever follows a response)."""

from __future__ import annotations

import http.client
import socket
import uuid
from typing import BinaryIO

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from aws_batch_emulator import Emulator
from aws_batch_emulator.runtime import EMULATOR_KEY
from tests.emulator.support import BUCKET


def signed(emulator: Emulator, method: str, key: str, body: bytes = b"") -> tuple[str, dict[str, str]]:
    """Path and headers of an S3 request signed like an SDK would sign it."""
    info = emulator.info
    request = AWSRequest(method=method, url=f"{info.endpoint}/{BUCKET}/{key}", data=body)
    request.headers["Content-Length"] = str(len(body))
    S3SigV4Auth(Credentials(EMULATOR_KEY, EMULATOR_KEY), "s3", info.region).add_auth(request)
    return f"/{BUCKET}/{key}", {k: str(v) for k, v in request.headers.items()}


def raw_request(emulator: Emulator, method: str, key: str, body: bytes = b"") -> bytes:
    path, headers = signed(emulator, method, key, body)
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{emulator.info.port}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_answer(reader: BinaryIO) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 answer framed by Content-Length, leaving the stream at the next one."""
    status = int(reader.readline().split()[1])
    length = 0
    while (line := reader.readline().strip()):
        name, _, value = line.decode().partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, reader.read(length)


def test_one_connection_serves_many_calls(emulator: Emulator) -> None:
    key = f"keep-alive/{uuid.uuid4().hex}"
    conn = http.client.HTTPConnection("127.0.0.1", emulator.info.port, timeout=10)
    answers = []
    for method, body in [("PUT", b"hello"), ("GET", b""), ("HEAD", b""), ("PUT", b"again"), ("GET", b"")]:
        path, headers = signed(emulator, method, key, body)
        conn.request(method, path, body=body, headers=headers)
        sock = conn.sock
        response = conn.getresponse()
        answers.append((method, response.status, response.read()))
        assert response.getheader("Connection", "").lower() != "close"
        assert conn.sock is sock is not None, "the server closed the connection"
    conn.close()
    assert [(m, s) for m, s, _ in answers] == [("PUT", 200), ("GET", 200), ("HEAD", 200), ("PUT", 200), ("GET", 200)]
    assert answers[1][2] == b"hello" and answers[2][2] == b"" and answers[4][2] == b"again"


def test_back_to_back_requests_are_each_answered(emulator: Emulator) -> None:
    """Both requests are on the wire before the first answer: the second must be read as a request."""
    key = f"keep-alive/{uuid.uuid4().hex}"
    with socket.create_connection(("127.0.0.1", emulator.info.port), timeout=10) as sock:
        sock.sendall(raw_request(emulator, "PUT", key, b"x" * 1000) + raw_request(emulator, "GET", key))
        reader = sock.makefile("rb")
        answers = [read_answer(reader), read_answer(reader)]
    assert answers == [(200, b""), (200, b"x" * 1000)]


def test_a_chunked_body_is_served_then_the_connection_closed(emulator: Emulator) -> None:
    key = f"keep-alive/{uuid.uuid4().hex}"
    path, headers = signed(emulator, "PUT", key, b"chunked body")
    del headers["Content-Length"]
    conn = http.client.HTTPConnection("127.0.0.1", emulator.info.port, timeout=10)
    conn.request("PUT", path, body=iter([b"chunked ", b"body"]), encode_chunked=True, headers=headers)
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    assert response.getheader("Connection", "").lower() == "close"
    conn.close()
    path, headers = signed(emulator, "GET", key)
    conn.request("GET", path, headers=headers)
    assert conn.getresponse().read() == b"chunked body"
    conn.close()
