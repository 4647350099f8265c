"""The emulator's HTTP surface on 127.0.0.1: XML-RPC and REST v2 behind auth -> quota -> fault injection.

The HTTP server is the standard library's, by hand, because the faults it plays are below WSGI: a dropped
call closes the connection without a byte of answer (after applying the call, or not), and a delay holds
the answer back on the open connection. A WSGI server (waitress) always answers something, and answers
oversized or malformed requests with its own pages rather than Keap's.
"""

from __future__ import annotations

import hmac
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from keap_emulator.faults import (
    HTML_BODIES,
    OUTAGE_BODY,
    AnswerHolder,
    FaultInjector,
    FaultPlan,
    HeldAnswer,
    HoldPlan,
    Injection,
)
from keap_emulator.model import ContactServiceModel
from keap_emulator.quotas import THROTTLED_BODY, QuotaMeter, QuotaPlan
from keap_emulator.responses import XML_CONTENT_TYPE, ContactServiceResponses, parse_request, render_fault
from keap_emulator.rest import REST_PREFIX, RestResponses, error_body
from keap_emulator.world import World

HOST = "127.0.0.1"
RPC_PATH = "/crm/xmlrpc/v1"
# Keap's current endpoint, its unversioned twin, and the legacy per-app path (facts §1).
RPC_PATHS = frozenset({RPC_PATH, "/crm/xmlrpc", "/api/xmlrpc", "/api/xmlrpc/v1"})
JSON_TYPE = "application/json"
HTML_TYPE = "text/html;charset=UTF-8"
MAX_BODY = 10 * 1024 * 1024

# What Keap's API proxy (not the XML-RPC service) answers for a missing or wrong PAT/SAK (facts §3:
# "401 citing 'invalid access token'"); the exact body is modelled on the proxy's 429 body.
UNAUTHORIZED_BODY = json.dumps(
    {"code": "401", "message": "Invalid Access Token", "status": "Unauthorized", "details": None},
    separators=(",", ":"),
).encode()

_log = logging.getLogger("keap_emulator")

INDEX = """<!doctype html><html><head><title>Keap ContactService emulator</title></head><body>
<h1>Keap ContactService emulator</h1>
<p>XML-RPC: <code>POST /crm/xmlrpc/v1</code> (also <code>/crm/xmlrpc</code>, <code>/api/xmlrpc</code>)
with header <code>X-Keap-API-Key</code> or <code>Authorization: Bearer</code>.</p>
<p>REST v2: <code>/crm/rest/v2/...</code> (contacts, tags, campaign sequences, goals, email status), same auth.</p>
<ul>
<li><a href="/_emulator/state">GET /_emulator/state</a> - everything (JSON)</li>
<li><a href="/_emulator/calls">GET /_emulator/calls</a> - the call log</li>
<li>GET /_emulator/contacts/&lt;id&gt; - one contact with tags, enrolments and runs</li>
<li><a href="/_emulator/faults">GET</a> / POST /_emulator/faults - the fault plan (JSON body)</li>
<li><a href="/_emulator/quota">GET</a> / POST /_emulator/quota - the quota plan
(<code>"pat"</code>, <code>"none"</code> or per_second/per_minute/per_day)</li>
<li>POST /_emulator/reset - back to the seeded world, call log cleared</li>
</ul></body></html>
"""


@dataclass
class Reply:
    """An HTTP answer, or a connection to drop."""

    status: int
    body: bytes = b""
    content_type: str = XML_CONTENT_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False


def _json(value: Any, status: int = 200) -> Reply:
    body = json.dumps(value, indent=2, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))
    return Reply(status, body.encode(), JSON_TYPE)


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None


def _gateway_error(injection: Injection, headers: dict[str, str]) -> Reply:
    status = injection.status or 503
    return Reply(status, HTML_BODIES[status], HTML_TYPE, headers)


def _injected_fault(injection: Injection, headers: dict[str, str]) -> Reply:
    code, string = injection.fault or (3, "[UnexpectedError]Unexpected error")
    return Reply(200, render_fault(code, string), XML_CONTENT_TYPE, headers)


# Injection kind -> the answer sent instead of calling the model (drop and malformed wrap the model call).
_INSTEAD_OF_KEAP: dict[str, Callable[[Injection, dict[str, str]], Reply]] = {
    "outage": lambda _, headers: Reply(503, OUTAGE_BODY, HTML_TYPE, headers),
    "5xx": _gateway_error,
    "429": lambda _, headers: Reply(429, THROTTLED_BODY, JSON_TYPE, {**headers, "Retry-After": "1"}),
    "fault": _injected_fault,
}

# The same for REST v2: the proxy's pages and 429 are shared; an outage and a service error are JSON there.
_INSTEAD_OF_REST: dict[str, Callable[[Injection, dict[str, str]], Reply]] = {
    **_INSTEAD_OF_KEAP,
    "outage": lambda _, headers: Reply(
        503, error_body(503, "The API is unavailable during a scheduled outage"), JSON_TYPE, headers
    ),
    "fault": lambda injection, headers: Reply(
        500, error_body(500, (injection.fault or (3, "Unexpected error"))[1]), JSON_TYPE, headers
    ),
}


DEFAULT_API_KEY = "local-dev-key"  # the emulator's published key; not a secret


class EmulatorServer:
    """Keap's ContactService over XML-RPC/HTTP on 127.0.0.1, with quotas, fault injection and inspection."""

    def __init__(
        self,
        port: int = 0,
        db: str | Path = ":memory:",
        api_key: str = DEFAULT_API_KEY,
        seed: World | str | Path | dict[str, Any] | None = None,
        quota: QuotaPlan | None = None,
        faults: FaultPlan | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must be a non-empty string")
        self._port = port
        self._api_key = api_key.encode()
        self._clock = clock
        self._sleep = sleep
        self.model = ContactServiceModel(db, world=seed, clock=clock)
        self._responses = ContactServiceResponses(self.model)
        self._rest = RestResponses(self.model)
        self._quota = QuotaMeter(quota, clock)
        self._faults = FaultInjector(faults, clock)
        self._holds = AnswerHolder()
        self._calls: list[dict[str, Any]] = []
        self._calls_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = self.base_url if self._httpd else "stopped"
        return f"EmulatorServer({state})"

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> EmulatorServer:
        """Bind 127.0.0.1 and serve in a background thread."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((HOST, self._port), _Handler)
        self._httpd.emulator = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="keap-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; the model stays readable."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (useful with port=0)."""
        return self.address[1]

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the host is always 127.0.0.1."""
        if self._httpd is None:
            raise RuntimeError("the emulator is not started")
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>"""
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The XML-RPC endpoint, shaped like Keap's: http://127.0.0.1:<port>/crm/xmlrpc/v1"""
        return self.base_url + RPC_PATH

    @property
    def rest_url(self) -> str:
        """The REST base, shaped like Keap's SDK base: http://127.0.0.1:<port>/crm (v2 paths sit under /rest/v2)."""
        return self.base_url + "/crm"

    # ---------------------------------------------------------------- control

    @property
    def faults(self) -> FaultPlan:
        """The fault plan in effect."""
        return self._faults.plan

    def set_faults(self, plan: FaultPlan | None) -> None:
        """Replace the fault plan (None: no faults)."""
        self._faults.set_plan(plan)

    def hold_answers(self, plan: HoldPlan | None, on_hold: Callable[[HeldAnswer], None] | None = None) -> None:
        """Hold back the answers of applied calls (a crash window opened on purpose; None: no holds).

        `on_hold` hears of each held call on the emulator's thread; the answer goes out on `release()`.
        """
        self._holds.set_plan(plan, on_hold)

    @property
    def quota(self) -> QuotaPlan | None:
        """The quota plan in effect, or None."""
        return self._quota.plan

    def set_quota(self, plan: QuotaPlan | None) -> None:
        """Replace the quota plan (None: no limits); counts start afresh."""
        self._quota.set_plan(plan)

    def calls(self) -> list[dict[str, Any]]:
        """The call log of both surfaces: at, method, path, http_status, fault_code, applied, injected, surface."""
        with self._calls_lock:
            return [dict(c) for c in self._calls]

    def reset(self) -> None:
        """Back to the seeded world; clears the call log and quota counts and reseeds fault draws."""
        self.model.reset()
        self._quota.reset()
        self._faults.reset()
        self._rest.left_out.clear()
        with self._calls_lock:
            self._calls.clear()

    def leave_out(self, *properties: str) -> None:
        """Leave these properties out of REST contact answers even when asked for (as Keap may); reset clears."""
        self._rest.left_out = set(properties)

    # ---------------------------------------------------------------- the RPC pipeline

    def _authorised(self, headers: Mapping[str, str]) -> bool:
        offered = headers.get("X-Keap-API-Key")
        if offered is None:
            scheme, _, token = (headers.get("Authorization") or "").partition(" ")
            offered = token.strip() if scheme.lower() == "bearer" else None
        return offered is not None and hmac.compare_digest(offered.encode(), self._api_key)

    def handle_rpc(self, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one XML-RPC POST: auth, then quota, then fault injection, then the model."""
        call = parse_request(body)

        def dispatch() -> tuple[int, bytes, bool, int | None]:
            result = self._responses.dispatch(call)
            return 200, result.body, result.applied, result.fault_code

        return self._answer(
            "xmlrpc", call.method, path, headers, dispatch, _INSTEAD_OF_KEAP, XML_CONTENT_TYPE, lambda: call.params
        )

    def handle_rest(self, verb: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one REST v2 request: auth, then quota, then fault injection (surface "rest"), then the model."""
        operation = self._rest.operation(verb, path) or f"{verb} {path}"

        def dispatch() -> tuple[int, bytes, bool, int | None]:
            result = self._rest.dispatch(verb, path, query, body)
            return result.status, result.body, result.applied, None

        return self._answer(
            "rest", operation, path, headers, dispatch, _INSTEAD_OF_REST, JSON_TYPE, lambda: _json_or_none(body)
        )

    def _answer(
        self,
        surface: str,
        operation: str | None,
        path: str,
        headers: Mapping[str, str],
        dispatch: Callable[[], tuple[int, bytes, bool, int | None]],
        instead: Mapping[str, Callable[[Injection, dict[str, str]], Reply]],
        content_type: str,
        params: Callable[[], Any] = lambda: None,
    ) -> Reply:
        """One call through the layers, written to the call log. `params` gives the request to a held answer."""
        entry: dict[str, Any] = {
            "at": self._clock(),
            "method": operation,
            "path": path,
            "http_status": None,
            "fault_code": None,
            "applied": False,
            "injected": None,
            "surface": surface,
        }
        reply = self._layers(surface, operation, headers, dispatch, instead, content_type, entry, params)
        entry["http_status"] = None if reply.drop else reply.status
        with self._calls_lock:
            self._calls.append(entry)
        _log.info(
            "%s -> %s%s%s",
            operation,
            entry["http_status"] or "dropped",
            f" fault {entry['fault_code']}" if entry["fault_code"] is not None else "",
            f" [injected {entry['injected']}]" if entry["injected"] else "",
        )
        return reply

    def _layers(
        self,
        surface: str,
        operation: str | None,
        headers: Mapping[str, str],
        dispatch: Callable[[], tuple[int, bytes, bool, int | None]],
        instead: Mapping[str, Callable[[Injection, dict[str, str]], Reply]],
        content_type: str,
        entry: dict[str, Any],
        params: Callable[[], Any],
    ) -> Reply:
        if not self._authorised(headers):
            return Reply(401, UNAUTHORIZED_BODY, JSON_TYPE)
        verdict = self._quota.take()
        if not verdict.allowed:
            # Keap does not document Retry-After; clients must not depend on it.
            return Reply(429, THROTTLED_BODY, JSON_TYPE, {**verdict.headers, "Retry-After": str(verdict.retry_after)})
        injection = self._faults.decide(operation, surface)
        entry["injected"] = injection.kind
        delay = injection.latency_s
        canned = instead.get(injection.kind or "")
        if canned is not None:
            reply = canned(injection, verdict.headers)
            reply.delay_s = delay
            if surface == "xmlrpc":  # an injected XML-RPC fault is logged with its code, as a real one is
                entry["fault_code"] = injection.fault[0] if injection.fault else None
            return reply
        if injection.kind == "drop" and not injection.after_apply:
            return Reply(0, drop=True, delay_s=delay)
        status, body, entry["applied"], entry["fault_code"] = dispatch()
        if injection.kind is None and entry["applied"]:
            held = self._holds.hold(operation, surface, params, entry["at"])
            if held is not None:
                entry["held_s"] = held.wait()  # only held calls carry it
        if injection.kind == "drop":
            return Reply(0, drop=True, delay_s=delay)
        if injection.kind == "malformed":
            body = body[: len(body) // 2]
        return Reply(status, body, content_type, verdict.headers, delay)

    # ---------------------------------------------------------------- inspection and control over HTTP

    def handle_control(self, method: str, path: str, body: bytes) -> Reply:
        """GET/POST under /_emulator/ and the index at /."""
        if method == "GET":
            if path == "/":
                return Reply(200, INDEX.encode(), HTML_TYPE)
            if path == "/_emulator/state":
                return _json(self.model.snapshot())
            if path == "/_emulator/calls":
                return _json(self.calls())
            if path == "/_emulator/faults":
                return _json(self.faults.to_dict())
            if path == "/_emulator/quota":
                return _json(self.quota.to_dict() if self.quota else None)
            if path.startswith("/_emulator/contacts/"):
                return self._contact_view(path.rsplit("/", 1)[1])
        elif method == "POST":
            if path == "/_emulator/reset":
                self.reset()
                return _json({"reset": True})
            if path in ("/_emulator/faults", "/_emulator/quota"):
                try:
                    data = json.loads(body or b"null")
                    if path == "/_emulator/faults":
                        self.set_faults(FaultPlan.from_dict(data))
                        return _json(self.faults.to_dict())
                    self.set_quota(QuotaPlan.from_dict(data))
                    return _json(self.quota.to_dict() if self.quota else None)
                except (ValueError, TypeError) as exc:
                    return _json({"error": str(exc)}, 400)
        return _json({"error": f"no such endpoint: {method} {path}"}, 404)

    def _contact_view(self, raw_id: str) -> Reply:
        if not raw_id.isdigit():
            return _json({"error": "contact id must be an integer"}, 400)
        cid = int(raw_id)
        contact = self.model.get_contact(cid)
        if contact is None:
            return _json({"error": f"no contact {cid}"}, 404)
        return _json(
            {
                "contact": contact,
                "tags": sorted(self.model.contact_tags(cid)),
                "enrolments": self.model.enrolments(cid),
                "sequence_starts": self.model.sequence_starts(cid),
                "tag_events": self.model.tag_applications(cid),
                "action_set_runs": self.model.action_set_runs(cid),
                "goal_runs": self.model.goal_runs(cid),
            }
        )


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    emulator: EmulatorServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up before its answer (a killed function, a read timeout) is routine here: the
        # answer is lost, as with real Keap. Anything else is the emulator's bug and is printed as before.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive, as Keap's Tomcat offers it; every answer carries a Content-Length.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the client's delayed ACK adds ~40 ms a call.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def version_string(self) -> str:
        return "Apache-Coyote/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # Silenced: the call log and the `keap_emulator` logger say what happened, without headers.
        return

    # ---------------------------------------------------------------- reading

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if length < 0 or length > MAX_BODY:
            return None
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes | None:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip() or b"x", 16)
            except ValueError:
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    # ---------------------------------------------------------------- writing

    def _send(self, reply: Reply) -> None:
        if reply.delay_s > 0:
            self.server.emulator._sleep(reply.delay_s)
        if reply.drop:
            # Close without a byte of answer: the client sees the connection reset or closed.
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _path(self) -> str:
        return urlsplit(self.path).path.rstrip("/") or "/"

    def _is_rest(self, path: str) -> bool:
        return path == REST_PREFIX or path.startswith(REST_PREFIX + "/")

    def _rest(self, body: bytes | None = None) -> None:
        if body is None:
            body = self._read_body()
            if body is None:
                self.close_connection = True
                self._send(Reply(413, error_body(413, "request body too large or unreadable"), JSON_TYPE))
                return
        path = self._path()
        self._send(self.server.emulator.handle_rest(self.command, path, urlsplit(self.path).query, self.headers, body))

    # ---------------------------------------------------------------- verbs

    def do_POST(self) -> None:
        body = self._read_body()
        if body is None:
            self.close_connection = True
            self._send(Reply(413, b'{"error":"request body too large or unreadable"}', JSON_TYPE))
            return
        path = self._path()
        emulator = self.server.emulator
        if path in RPC_PATHS:
            self._send(emulator.handle_rpc(path, self.headers, body))
        elif self._is_rest(path):
            self._rest(body)
        else:
            self._send(emulator.handle_control("POST", path, body))

    def do_GET(self) -> None:
        path = self._path()
        if path in RPC_PATHS:
            self._not_allowed()
        elif self._is_rest(path) and self.command == "GET":
            self._rest()
        else:
            self._send(self.server.emulator.handle_control("GET", path, b""))

    def do_HEAD(self) -> None:
        self.do_GET()

    def _not_allowed(self) -> None:
        if self._is_rest(self._path()):
            self._rest()
            return
        self._read_body()
        self._send(Reply(405, b'{"error":"method not allowed; XML-RPC is POST"}', JSON_TYPE, {"Allow": "POST"}))

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed
