"""moto's WSGI application on an HTTP/1.1 keep-alive server bound to loopback.

`python -m moto.server` and `ThreadedMotoServer` run moto on werkzeug's development server, which answers
every request with `Connection: close`, so each boto3 call opens a new TCP connection. botocore keeps its
connections alive against AWS; a local stack or benchmark that pays a connect per call measures a cost the
deployed functions never pay. This server serves the same application (`DomainDispatcherApplication` over
`create_backend_app`, with moto's request handler quirks) and keeps connections open between requests.

    python -m keap_relay_local.motohttp -H 127.0.0.1 -p 5000
"""

from __future__ import annotations

import argparse
import contextlib
import io
import ipaddress
import logging
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

log = logging.getLogger("keap_relay_local.motohttp")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# A connection with no request for this long is closed. Longer than any SQS long poll (20 s) and than
# botocore's pool would keep a connection idle in a run; it only stops leaked connections pinning threads.
IDLE_TIMEOUT = 120.0
MAX_LINE = 65536  # request line, header and chunk-size lines, as http.server limits them
MAX_BODY = 256 * 1024 * 1024  # moto holds a body in memory anyway; a larger one is a broken client
STOP_GRACE = 5.0  # how long stop() waits for requests in flight to be answered
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_STATUS = re.compile(r"[1-9][0-9]{2}(?: [^\r\n]*)?")
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


class _BadRequest(Exception):
    """A request this server will not pass to moto; answered with `status` and the connection closed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _ClientGone(Exception):
    """The client closed the connection before sending the whole body."""


@dataclass
class _Connection:
    thread: threading.Thread = field(default_factory=threading.current_thread)
    busy: bool = False


class _Handler(MotoRequestHandler):
    """One connection: requests are read, answered and the connection kept until the client closes it.

    moto's handler (underscore headers kept) builds the WSGI environ; everything around it is replaced,
    because werkzeug's `run_wsgi` forces `Connection: close` and drains the socket after each answer.
    """

    server: _Server
    protocol_version = "HTTP/1.1"
    # http.server omits the status line of an error answer when it takes a request for HTTP/0.9, which is
    # how it treats a request line it cannot parse: a malformed request must still get a readable 400.
    default_request_version = "HTTP/1.0"
    # An answer is one write, but 100 Continue and http.server's errors are two: with Nagle the second
    # would wait for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT

    def setup(self) -> None:
        super().setup()
        self.server.opened(self)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.closed(self)

    def handle_one_request(self) -> None:
        try:
            line = self.rfile.readline(MAX_LINE + 1)
            if line in (b"\r\n", b"\n"):  # RFC 9112 2.2: an empty line before a request is to be ignored
                line = self.rfile.readline(MAX_LINE + 1)
        except OSError:  # idle past the timeout, or shut down by stop()
            self.close_connection = True
            return
        if not line:
            self.close_connection = True
            return
        self.server.busy(self, True)
        try:
            self.raw_requestline = line
            if len(line) > MAX_LINE:
                self.requestline, self.request_version, self.command = "", self.default_request_version, ""
                self.send_error(414)
                return
            if self.parse_request():  # when it fails it has sent the error and marked the connection to close
                self.run_wsgi()
        finally:
            if self.server.busy(self, False):
                self.close_connection = True

    def run_wsgi(self) -> None:
        self.server.count_request()
        try:
            body, chunked = self._read_body()
        except _BadRequest as exc:
            self.send_error(exc.status, exc.reason)
            return
        except _ClientGone:
            self.close_connection = True
            return
        environ = self.make_environ()
        # The body was read whole above, so the application reads it from memory and can never read past
        # it into the next request on the connection.
        environ["wsgi.input"] = io.BytesIO(body)
        environ.pop("wsgi.input_terminated", None)
        if chunked:
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ["CONTENT_LENGTH"] = str(len(body))
        try:
            status, headers, content = self._call(environ)
            head, content = self._response(status, headers, content)
        except Exception as exc:
            # Only the exception's type: its text may carry request data.
            log.warning("moto failed on %s %s: %s", self.command, self.path.split("?", 1)[0], type(exc).__name__)
            self.close_connection = True
            status, headers = "500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")]
            head, content = self._response(status, headers, b"Internal Server Error\n")
        self.wfile.write(head + content)
        self.log_request(status[:3], len(content))

    def _read_body(self) -> tuple[bytes, bool]:
        """(body, was it chunked): the request's whole body, so the next request starts where it ends."""
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if encodings:
            if lengths:  # which one frames the body is how requests get smuggled: refuse both
                raise _BadRequest(400, "Content-Length with Transfer-Encoding")
            if [e.strip().lower() for e in ",".join(encodings).split(",")] != ["chunked"]:
                raise _BadRequest(501, "Transfer-Encoding other than chunked")
            return self._read_chunked(), True
        if not lengths:
            return b"", False
        values = {v.strip() for v in ",".join(lengths).split(",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise _BadRequest(400, "Invalid Content-Length")
        size = int(values.pop())
        if size > MAX_BODY:
            raise _BadRequest(413, "Body too large")
        body = self.rfile.read(size)
        if len(body) < size:
            raise _ClientGone
        return body, False

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self._line()
            size_text = line.split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_text):
                raise _BadRequest(400, "Invalid chunk size")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                raise _BadRequest(413, "Body too large")
            data = self.rfile.read(size)
            if len(data) < size:
                raise _ClientGone
            parts.append(data)
            if self._line() not in (b"\r\n", b"\n"):
                raise _BadRequest(400, "Chunk longer than its size")
        for _ in range(100):  # trailer fields, which moto has no use for
            if self._line() in (b"\r\n", b"\n"):
                return b"".join(parts)
        raise _BadRequest(400, "Too many trailer fields")

    def _line(self) -> bytes:
        line = self.rfile.readline(MAX_LINE + 1)
        if not line:
            raise _ClientGone
        if len(line) > MAX_LINE or not line.endswith(b"\n"):
            raise _BadRequest(400, "Line too long")
        return line

    def _call(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        """Run the application to the end, so a failure anywhere in it can still be answered with a 500."""
        started: list[Any] = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            if started and not exc_info:
                raise AssertionError("start_response called twice")
            started[:] = [status, list(headers)]  # nothing is sent before the end, so an error may replace them
            return chunks.append

        result = self.server.app(environ, start_response)
        try:
            for data in result:
                chunks.append(data)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not started:
            raise RuntimeError("the application returned without calling start_response")
        return started[0], started[1], b"".join(chunks)

    def _response(self, status: str, headers: list[tuple[str, str]], content: bytes) -> tuple[bytes, bytes]:
        """(status line and headers, body to send): framed by Content-Length, so the connection stays usable."""
        if not _STATUS.fullmatch(status):
            raise ValueError("invalid status")
        code = int(status[:3])
        bodiless = self.command == "HEAD" or code < 200 or code in (204, 304)
        lines = [f"{self.protocol_version} {status}"]
        given = {name.lower() for name, _ in headers}
        if "server" not in given:  # moto's services name themselves (amazon.com); one Server header only
            lines.append(f"Server: {self.version_string()}")
        if "date" not in given:
            lines.append(f"Date: {self.date_time_string()}")
        for name, value in headers:
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value or ":" in name:
                raise ValueError("invalid header")
            lower = name.lower()
            # A HEAD answer's Content-Length is the length of the GET body it stands for: keep the app's.
            if lower in _HOP_BY_HOP and not (lower == "content-length" and bodiless):
                continue
            lines.append(f"{name}: {value}")
        if not bodiless:
            lines.append(f"Content-Length: {len(content)}")
        if self.close_connection:
            lines.append("Connection: close")
        elif self.request_version == "HTTP/1.0":
            lines.append("Connection: keep-alive")  # an HTTP/1.0 client that asked for it is told it got it
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head, b"" if bodiless else content

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # After a request line that did not parse, http.server has set neither the command nor the path.
        path = getattr(self, "path", "").split("?", 1)[0]
        log.debug('"%s %s %s" %s %s', self.command or "-", path, self.request_version, code, size)

    def log_error(self, format: str, *args: Any) -> None:
        log.debug("client error: " + format, *args)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A thread per connection; knows its connections, so stop() can close the idle ones."""

    daemon_threads = True
    block_on_close = False  # close() waits for the handler threads itself, within STOP_GRACE
    allow_reuse_address = True
    request_queue_size = 128
    # What werkzeug's make_environ (through moto's handler) reads from its server.
    ssl_context = None
    multithread = True
    multiprocess = False
    _server_version = "keap-relay-motohttp"  # http.server appends "Python/3.x"

    def __init__(self, address: tuple[str, int], app: WSGIApp) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self._lock = threading.Lock()
        self._open: dict[_Handler, _Connection] = {}
        self._closing = False
        self.connections_accepted = 0
        self.requests_served = 0

    def opened(self, handler: _Handler) -> None:
        with self._lock:
            self.connections_accepted += 1
            self._open[handler] = _Connection()
            closing = self._closing
        if closing:  # accepted just as stop() began: it must not wait for a request that will not come
            _shutdown(handler.connection)

    def closed(self, handler: _Handler) -> None:
        with self._lock:
            self._open.pop(handler, None)

    def busy(self, handler: _Handler, busy: bool) -> bool:
        """Mark a connection as answering a request or idle; True when it should close (the server stops)."""
        with self._lock:
            conn = self._open.get(handler)
            if conn is not None:
                conn.busy = busy
            return self._closing

    def count_request(self) -> None:
        with self._lock:
            self.requests_served += 1

    def close(self, grace: float = STOP_GRACE) -> None:
        """Close idle connections now, the others once their answer is sent; wait for them up to `grace` s."""
        with self._lock:
            self._closing = True
            conns = list(self._open.items())
        for handler, conn in conns:
            if not conn.busy:
                _shutdown(handler.connection)
        deadline = time.monotonic() + grace
        for _, conn in conns:
            conn.thread.join(max(0.0, deadline - time.monotonic()))
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("connection from %s ended by %s", client_address, type(sys.exc_info()[1]).__name__)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the client
        sock.shutdown(socket.SHUT_RDWR)


def _loopback(ip_address: str) -> str:
    try:
        if ipaddress.IPv4Address(ip_address).is_loopback:
            return ip_address
    except ValueError:
        pass
    raise ValueError(f"motohttp binds an IPv4 loopback address only, not {ip_address!r}")


class MotoHTTPServer:
    """Drop-in for moto's `ThreadedMotoServer` (start/stop/get_host_and_port), with kept-alive connections.

    `port=0` picks a free port; `get_host_and_port()` tells which. `app` defaults to moto's application.
    """

    def __init__(
        self, ip_address: str = "127.0.0.1", port: int = 0, verbose: bool = False, *, app: WSGIApp | None = None
    ) -> None:
        self._address = (_loopback(ip_address), port)
        self._verbose = verbose
        self._app = app
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("already started")
        app = self._app or DomainDispatcherApplication(create_backend_app)
        self._server = _Server(self._address, app)  # bound here, so a port in use fails start() itself
        if self._verbose:
            host, port = self.get_host_and_port()
            print(f"moto (keep-alive) on http://{host}:{port}", flush=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="motohttp", daemon=True
        )
        self._thread.start()

    def get_host_and_port(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("call start() first")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted since start(): with keep-alive, far fewer than requests."""
        return self._server.connections_accepted if self._server else 0

    @property
    def requests_served(self) -> int:
        return self._server.requests_served if self._server else 0

    def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.shutdown()
        server.close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def main(argv: list[str] | None = None) -> None:
    """`python -m keap_relay_local.motohttp`: moto on loopback with keep-alive, until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m keap_relay_local.motohttp", description=__doc__.split("\n")[0])
    parser.add_argument("-H", "--host", default="127.0.0.1", help="IPv4 loopback address to bind")
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)), help="0: any")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    try:
        _loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.verbose:
        log.setLevel(logging.DEBUG)

    from .moto_sqs_move import install as install_message_move_tasks

    # The actions moto lacks are patched into this process, the one that serves moto, as the local stack does.
    install_message_move_tasks()

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = MotoHTTPServer(args.host, args.port, verbose=True)
    server.start()
    # moto builds some callback URLs (Lambda, Batch) from MOTO_PORT, which `python -m moto.server` sets too.
    os.environ.setdefault("MOTO_PORT", str(server.get_host_and_port()[1]))
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
