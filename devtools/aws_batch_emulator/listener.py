"""The emulator's HTTP listener: a threaded werkzeug server on loopback with keep-alive connections (see
`keep_alive`), served from a daemon thread, that can go away for an outage and come back on the same port with
the same app (and so the same state).

An outage (`outage(downtime)`) looks to clients like an AWS endpoint that stopped answering:

- the listening socket is closed and its port held by a socket that is bound but does not listen, so new
  connections are refused (ECONNREFUSED) and no other program can take the port meanwhile;
- idle keep-alive connections are closed (a client reusing a pooled connection sees it dropped), and a
  request arriving on a connection that is still open is not answered (the connection is closed);
- requests already being processed when it starts are answered (so an outage never leaves a SubmitJob
  half done: the job exists and its submitter got the answer).

After `downtime` seconds the held socket starts listening and the server serves again.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

_POLL = 0.05  # serve_forever's poll interval: shutdown() waits up to this long


class Listener:
    """Owns the werkzeug server: `start()`, `stop()`, `outage(downtime)`."""

    def __init__(self, host: str, port: int, app: Callable[..., Any], base_handler: type[Any]) -> None:
        from werkzeug.serving import make_server

        from .keep_alive import KeepAliveRequestHandler

        listener = self

        class Handler(KeepAliveRequestHandler, base_handler):  # type: ignore[misc]
            def setup(self) -> None:
                super().setup()
                listener._track(self.connection)

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    listener._untrack(self.connection)

            def handle_one_request(self) -> None:
                if listener.down:  # a request on a connection opened before the outage: not answered
                    self.close_connection = True
                    return
                super().handle_one_request()

            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        self._host = host
        self._server: Any = make_server(host, port, app, threaded=True, request_handler=Handler)
        self.port = int(self._server.server_address[1])
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        self._held: socket.socket | None = None  # bound, not listening: the port during an outage
        self._timer: threading.Timer | None = None
        self._up = threading.Event()
        self._stopped = False
        self.down = False  # read by handler threads without the lock (a bool is atomic)
        self.outages = 0

    @property
    def app(self) -> Callable[..., Any]:
        app: Callable[..., Any] = self._server.app
        return app

    @app.setter
    def app(self, app: Callable[..., Any]) -> None:
        self._server.app = app

    # ---- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._serve()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            timer, self._timer = self._timer, None
            held, self._held = self._held, None
        if timer is not None:
            timer.cancel()
        if held is not None:
            held.close()
        self._halt()
        self._server.server_close()
        self._up.clear()

    # ---- outages ---------------------------------------------------------------------------------------

    @property
    def is_up(self) -> bool:
        return self._up.is_set()

    def wait_up(self, timeout: float | None = None) -> bool:
        return self._up.wait(timeout)

    def outage(self, downtime: float) -> None:
        """Stop answering now, come back on the same port after `downtime` s; returns once the endpoint is down."""
        if downtime < 0:
            raise ValueError("downtime must be >= 0")
        with self._lock:
            if self.down and not self._stopped:
                raise RuntimeError("the endpoint is already down")
            if self._stopped or self._thread is None:
                raise RuntimeError("the emulator is not running")
            self.down = True
            self._up.clear()
            self.outages += 1
        self._halt()  # serve_forever returns and werkzeug closes the listening socket
        held = self._hold_port()
        with self._lock:
            self._held = held
            connections = list(self._connections)
        for connection in connections:
            # EOF for a handler waiting for the next request; one busy with a request still writes its answer.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)
        timer = threading.Timer(downtime, self._come_back)
        timer.name, timer.daemon = "aws-emulator-outage", True
        with self._lock:
            if self._stopped:
                return
            self._timer = timer
        timer.start()

    def _come_back(self) -> None:
        with self._lock:
            if self._stopped or self._held is None:
                return
            held, self._held, self._timer = self._held, None, None
            held.listen(self._server.request_queue_size)
            self._server.socket = held
            self.down = False
            self._serve()  # under the lock: a concurrent stop() then halts this thread

    # ---- internals -------------------------------------------------------------------------------------

    def _serve(self) -> None:
        thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": _POLL}, name="aws-emulator-http", daemon=True
        )
        self._thread = thread
        thread.start()
        self._up.set()

    def _halt(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:  # shutdown() would wait forever for a loop that never ran
            self._server.shutdown()
            thread.join(timeout=10)

    def _hold_port(self) -> socket.socket:
        """Bind the port again without listening (connections are refused); retried briefly in case the
        kernel still counts the old listener."""
        deadline = time.monotonic() + 5
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self._host, self.port))
                return sock
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)
        if self.down:  # accepted just before the outage began
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)
