"""The local API Gateway HTTP API: routes from template.yaml, payload-v2 events, Lambda proxy responses."""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from .fnhost import FunctionError
from .template import ACCOUNT_ID, HttpRoute

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
API_ID = "local"

log = logging.getLogger("keap_relay_local.gateway")

# HTTP APIs pass these bodies as text and base64-encode everything else (form posts included).
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/javascript",
        "application/xml",
        "application/x-yaml",
        "application/graphql",
        "application/ld+json",
    }
)
_TEXT_PREFIXES = ("text/",)
_TEXT_SUFFIXES = ("+json", "+xml")

# Gateway answers in API Gateway's words when the integration fails.
_ERROR_REPLIES = {
    "not_found": (404, "Not Found"),
    "too_large": (413, "Request Entity Too Large"),
    "bad_request": (400, "Bad Request"),
    "function_error": (500, "Internal Server Error"),
    "timeout": (503, "Service Unavailable"),
}
_TIMEOUT_ERRORS = frozenset({"Sandbox.Timedout"})


def is_text_content(content_type: str | None) -> bool:
    """Whether an HTTP API hands this body to Lambda as text (else base64)."""
    if not content_type:
        return True  # no content type: HTTP APIs pass the body through as text
    media = content_type.split(";", 1)[0].strip().lower()
    return media in _TEXT_TYPES or media.startswith(_TEXT_PREFIXES) or media.endswith(_TEXT_SUFFIXES)


def _request_id() -> str:
    return base64.b64encode(os.urandom(10)).decode().rstrip("=")


def build_http_event(
    *,
    route: HttpRoute,
    path_parameters: dict[str, str],
    method: str,
    raw_path: str,
    raw_query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    request_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The API Gateway HTTP API payload format 2.0 event for one request."""
    now = time.time() if now is None else now
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        # Payload 2.0 joins repeated headers with commas.
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    merged.setdefault("x-forwarded-for", source_ip)
    merged.setdefault("x-forwarded-proto", "http")
    merged.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{os.urandom(12).hex()}")
    host = merged.get("host", "127.0.0.1")
    merged.setdefault("x-forwarded-port", host.rsplit(":", 1)[1] if ":" in host else "80")

    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value

    request_id = request_id or _request_id()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = merged
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": merged.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route.route_key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if path_parameters:
        event["pathParameters"] = path_parameters
    text = is_text_content(merged.get("content-type"))
    if body:
        event["body"] = body.decode("utf-8", errors="replace") if text else base64.b64encode(body).decode()
    event["isBase64Encoded"] = bool(body) and not text
    return event


def response_from_result(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """How an HTTP API turns a Lambda result into an HTTP response (payload format 2.0)."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # 2.0 infers a 200 JSON response from any result without a statusCode.
        return 200, [("Content-Type", "application/json")], json.dumps(result).encode()
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(v)) for v in values)
    headers.extend(("Set-Cookie", str(c)) for c in result.get("cookies") or [])
    raw = result.get("body")
    if raw is None:
        body = b""
    elif result.get("isBase64Encoded"):
        body = base64.b64decode(raw)
    else:
        body = (raw if isinstance(raw, str) else json.dumps(raw)).encode()
    return int(result["statusCode"]), headers, body


Invoke = Callable[[str, dict[str, Any]], Any]


class Gateway:
    """ThreadingHTTPServer on 127.0.0.1 standing in for the HTTP API.

    By hand on the standard library rather than on waitress: API Gateway refuses a body over 10 MB from its
    Content-Length alone, with its own JSON answer, before the body is sent; waitress reads a body whole
    before the application sees the request and answers its limits with its own pages.
    """

    def __init__(self, routes: list[HttpRoute], invoke: Invoke, port: int = 3000) -> None:
        self.routes = routes
        self._invoke = invoke
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="gateway", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def find_route(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        # API Gateway prefers the most specific route; $default catches what nothing else takes.
        ordered = sorted(self.routes, key=lambda r: (r.path == "$default", "{" in r.path, r.method == "ANY"))
        for route in ordered:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None

    def handle(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        request_id = _request_id()
        status, out_headers, out_body = self._route(method, target, headers, body, source_ip, request_id)
        # The id the function saw in requestContext.requestId, as API Gateway returns it.
        return status, [*out_headers, ("apigw-requestid", request_id)], out_body

    def _route(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str, request_id: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        raw_path, _, raw_query = target.partition("?")
        found = self.find_route(method, raw_path)
        if found is None:
            return _error_reply("not_found")
        route, params = found
        event = build_http_event(
            route=route,
            path_parameters=params,
            method=method,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=headers,
            body=body,
            source_ip=source_ip,
            request_id=request_id,
        )
        try:
            result = self._invoke(route.function, event)
        except FunctionError as exc:
            log.warning("%s %s → %s failed: %s", method, raw_path, route.function, exc.error_type)
            return _error_reply("timeout" if exc.error_type in _TIMEOUT_ERRORS else "function_error")
        try:
            status, out_headers, out_body = response_from_result(result)
        except (TypeError, ValueError, KeyError):
            log.warning("%s %s → %s returned a malformed response", method, raw_path, route.function)
            return _error_reply("function_error")
        log.info("%s %s → %s %s", method, raw_path, route.function, status)
        return status, out_headers, out_body


def _error_reply(kind: str) -> tuple[int, list[tuple[str, str]], bytes]:
    status, message = _ERROR_REPLIES[kind]
    return status, [("Content-Type", "application/json")], json.dumps({"message": message}).encode()


def _read_chunked(rfile: Any, limit: int) -> bytes | None:
    """Decode a chunked body; None when it exceeds `limit`."""
    parts: list[bytes] = []
    total = 0
    while True:
        size = int(rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        total += size
        if total > limit:
            return None
        parts.append(rfile.read(size))
        rfile.readline()


def _make_handler(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class GatewayHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Keep-alive answers otherwise wait ~40 ms on Nagle + delayed ACK (measured by bench/bench_ingest.py).
        disable_nagle_algorithm = True
        server_version = "keap-relay-local-gateway"

        def _serve(self) -> None:
            body = self._read_body()
            if body is None:
                self.close_connection = True
                self._send(*_error_reply("too_large"))
                return
            self._send(
                *gateway.handle(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
            )

        def _read_body(self) -> bytes | None:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                return _read_chunked(self.rfile, MAX_BODY_BYTES)
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                return None
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            skip = {"content-length", "transfer-encoding", "connection", "date", "server"}
            for name, value in headers:
                if name.lower() not in skip:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.client_address[0], *args)

    return GatewayHandler
