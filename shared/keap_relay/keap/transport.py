"""Transport to Keap (XML-RPC endpoint or REST base): pooled keep-alive connections, split timeouts, typed failures."""

from __future__ import annotations

import http.client
import select
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from keap_relay.keap.errors import KeapConnectError, KeapConnectionDropped, KeapRequestError, KeapTimeout

__all__ = ["HTTPTransport", "Response", "user_agent"]


def user_agent() -> str:
    """`keap-relay/<version>`."""
    from keap_relay import __version__

    return f"keap-relay/{__version__}"


@dataclass(frozen=True)
class Response:
    """One HTTP answer: status, headers (names lower-cased) and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


_SCHEMES: Mapping[str, tuple[type[http.client.HTTPConnection], int]] = {
    "http": (http.client.HTTPConnection, 80),
    "https": (http.client.HTTPSConnection, 443),
}


class HTTPTransport:
    """POSTs bodies to one URL (or sends any verb to paths under it) over a small thread-safe pool of
    keep-alive connections.

    Failures are split by whether the request can have reached the server: connecting or sending
    fails with KeapConnectError (never delivered); a read timeout is KeapTimeout and a connection lost
    after sending is KeapConnectionDropped (both `maybe_delivered`).

    Why not urllib3 or httpx: this runs in the Lambda layer, where every dependency adds to the package
    and to each cold start, and the pool needed here is small (one host, a few idle sockets, a liveness
    check). What a library would add, the client needs in its own terms anyway: the split between
    "never sent" and "maybe delivered" decides whether a call may be repeated.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        connect_timeout: float = 3.05,
        read_timeout: float = 20.0,
        pool_size: int = 8,
        idle_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise KeapRequestError("Keap URL must be http:// or https:// with a host")
        self._conn_class, default_port = _SCHEMES[parts.scheme]
        self._host = parts.hostname
        self._port = parts.port or default_port
        self._path = parts.path or "/"
        self._base_path = parts.path.rstrip("/")
        if parts.query:
            self._path += "?" + parts.query
        self._headers = {"Host": parts.netloc.rpartition("@")[2], **headers}
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._pool_size = max(1, pool_size)
        self._idle_timeout = idle_timeout
        self._ssl_context = ssl_context
        self._clock = clock
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        # The path may carry a query string (e.g. ?access_token=); only the host is shown.
        return f"HTTPTransport(host={self._host!r}, port={self._port}, idle={len(self._idle)})"

    # ---------------------------------------------------------------- pool

    def _checkout(self) -> http.client.HTTPConnection | None:
        now = self._clock()
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn, since = self._idle.pop()  # most recent first: the likeliest to be alive
            if now - since <= self._idle_timeout and not _peer_closed(conn):
                return conn
            conn.close()

    def _checkin(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._pool_size:
                self._idle.append((conn, self._clock()))
                return
        conn.close()

    def _connect(self, method: str | None) -> http.client.HTTPConnection:
        kwargs = {}
        if self._conn_class is http.client.HTTPSConnection:
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()  # once: loading CA certs costs ms
            kwargs["context"] = self._ssl_context
        conn = self._conn_class(self._host, self._port, timeout=self._connect_timeout, **kwargs)
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise KeapConnectError(
                f"connect to {self._host}:{self._port} timed out after {self._connect_timeout:g}s",
                method=method,
            ) from None
        except OSError as exc:  # refused, unreachable, DNS, TLS handshake
            conn.close()
            raise KeapConnectError(
                f"cannot connect to {self._host}:{self._port}: {type(exc).__name__}: {exc}", method=method
            ) from None
        # Connect with one timeout, then wait for answers with another.
        conn.sock.settimeout(self._read_timeout)
        return conn

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    # ---------------------------------------------------------------- exchange

    def post(self, body: bytes, extra_headers: Mapping[str, str] | None = None, method: str | None = None) -> Response:
        """POST `body` to the URL; return the response whatever its status, or raise a KeapTransportError."""
        return self.request("POST", body, extra_headers=extra_headers, method=method)

    def request(
        self,
        verb: str,
        body: bytes | None = None,
        *,
        path: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        method: str | None = None,
    ) -> Response:
        """Send `verb` to the URL itself, or to `path` (with its query) appended to the URL's path.

        Returns the response whatever its status, or raises a KeapTransportError. `method` names the API
        call in errors.
        """
        if path is not None and not path.startswith("/"):
            raise KeapRequestError("a request path must start with /")
        target = self._path if path is None else self._base_path + path
        headers = {**self._headers, **extra_headers} if extra_headers else self._headers
        conn = self._checkout() or self._connect(method)
        try:
            try:
                conn.request(verb, target, body, headers)
            except (OSError, http.client.HTTPException) as exc:
                raise KeapConnectError(
                    f"sending to {self._host}:{self._port} failed: {type(exc).__name__}", method=method
                ) from None
            try:
                resp = conn.getresponse()
                data = resp.read()
            except TimeoutError:
                raise KeapTimeout(
                    f"no complete answer within {self._read_timeout:g}s; Keap may have acted on the request",
                    method=method,
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                raise KeapConnectionDropped(
                    f"connection lost after the request was sent ({type(exc).__name__}); Keap may have acted on it",
                    method=method,
                ) from None
        except BaseException:
            conn.close()
            raise
        if resp.will_close or conn.sock is None:
            conn.close()
        else:
            self._checkin(conn)
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)


def _peer_closed(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle keep-alive socket became readable, i.e. the server closed it (or sent junk)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):  # poll has no FD_SETSIZE ceiling
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True
