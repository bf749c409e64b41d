"""The fake upstream's HTTP/1.1 server: threads, keep-alive, chunked SSE with a flush per event, faults.

It knows nothing of providers: it reads a request, asks its ``handle`` callback for an `Outcome`, and
writes that out, including the scripted delays, mid-body disconnects and TCP resets.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from spendgate.testing._fake_engine import End, Outcome

__all__ = ["Handle", "HttpServer"]

#: ``(method, path, query, headers with lower-case names, body) -> Outcome``
Handle = Callable[[str, str, str, Mapping[str, str], bytes], Outcome]

_MAX_BODY = 64 * 1024 * 1024


class HttpServer(ThreadingHTTPServer):
    """A threading HTTP server on 127.0.0.1 that can stop promptly, even with idle keep-alive connections."""

    daemon_threads = False
    block_on_close = True
    request_queue_size = 256

    def __init__(self, port: int, handle: Handle) -> None:
        self.handle = handle
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def track(self, conn: socket.socket, *, open_: bool) -> None:
        """Remember (or forget) an open connection, so that `close_connections` can end it."""
        with self._lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_connections(self) -> None:
        """Wake every handler blocked on a connection by shutting the connection down."""
        self.stopping.set()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by the peer or by a fault
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connections that clients drop are normal here; anything else is printed as usual."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)  # pragma: no cover - a bug in the fake itself


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stall
    server: HttpServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the fake records requests instead of logging them."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass  # skip trailers, up to the blank line
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        if not 0 <= length <= _MAX_BODY:
            raise ConnectionError(f"refusing a body of {length} bytes")
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, ConnectionError):
            self.send_error(400, "bad request body")
            self.close_connection = True
            return
        url = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        outcome = self.server.handle(self.command, url.path, url.query, headers, body)
        try:
            self._write(outcome)
        except OSError:  # the client went away (e.g. its timeout fired during our latency)
            self.close_connection = True

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; True if the server is stopping meanwhile."""
        return seconds > 0 and self.server.stopping.wait(seconds)

    def _write(self, outcome: Outcome) -> None:
        if self._wait(outcome.latency_s):
            self.close_connection = True
            return
        if outcome.silent:
            self._abort(outcome.end)
            return
        self.send_response(outcome.status)
        for name, value in outcome.headers:
            self.send_header(name, value)
        if outcome.events is None:
            length = len(outcome.body) if outcome.content_length is None else outcome.content_length
            self.send_header("content-length", str(length))
            self.end_headers()
            self.wfile.write(outcome.body)
        else:
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for i, frame in enumerate(outcome.events):
                if i and self._wait(outcome.chunk_delay_s):
                    self._abort("close")
                    return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            if outcome.end == "complete":
                self.wfile.write(b"0\r\n\r\n")
        self._abort(outcome.end)

    def _abort(self, end: End) -> None:
        """End the connection as ``end`` says: keep it (complete), close it (FIN) or reset it (RST)."""
        if end == "complete":
            return
        self.close_connection = True
        if end == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.connection.close()
        else:
            self.connection.shutdown(socket.SHUT_WR)
