"""HTTP/1.1 keep-alive for the emulator's werkzeug server, as AWS endpoints keep connections open.

werkzeug's development server closes every connection after one response, and cannot simply be told not
to: after each response it reads whatever else arrives on the socket for 10 ms, which on a reused
connection would swallow the client's next request. A new TCP connection per call cost the service about a
third of its CPU for a small S3 call, and the emulator more (A/B in `benchmarks/README.md`), which real SDK
clients never pay against AWS. So requests whose body length is known are served here on an
open connection: the body is read in full before the app runs (nothing is left to drain) and the answer is
sent with its length. Anything else (a chunked request body, HTTP/1.0) goes to werkzeug, which closes the
connection after answering.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from typing import Any

from werkzeug.serving import WSGIRequestHandler

log = logging.getLogger(__name__)

_NO_BODY_CODES = frozenset({204, 304})


class KeepAliveRequestHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: don't hold the second for an ACK

    def run_wsgi(self) -> None:
        length = self._body_length()
        if length is None:
            self.close_connection = True
            super().run_wsgi()
            return
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client went away mid-body
            self.close_connection = True
            return
        self.environ = environ = self.make_environ()
        environ["wsgi.input"] = io.BytesIO(body)
        captured: list[Any] = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured[:] = [status, headers]
            return chunks.append  # the legacy write() callable
        try:
            result: Iterable[bytes] = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            log.exception("emulator request %s %s failed", self.command, self.path)
            self.close_connection = True
            self.send_error(500)
            return
        self._answer(str(captured[0]), captured[1], b"".join(chunks))

    def _body_length(self) -> int | None:
        """The request body's length when this request can be served on a kept-alive connection."""
        if self.request_version != "HTTP/1.1" or "Transfer-Encoding" in self.headers:
            return None
        raw = self.headers.get("Content-Length", "0").strip() or "0"
        if not raw.isdigit():
            return None
        return int(raw)

    def _answer(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        code_text, _, reason = status.partition(" ")
        code = int(code_text)
        self.send_response(code, reason)
        has_length = False
        for name, value in headers:
            lower = name.lower()
            if lower in ("connection", "transfer-encoding"):
                continue  # this handler owns the framing
            has_length = has_length or lower == "content-length"
            self.send_header(name, value)
        bodyless = self.command == "HEAD" or code < 200 or code in _NO_BODY_CODES
        if not has_length and not bodyless:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and not bodyless:
            self.wfile.write(body)
