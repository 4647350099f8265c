"""Keap's errors: a short tree of exceptions, and one table that names each fault and HTTP status Keap answers.

A class exists where a caller handles the error differently or it carries other data. What only tells one
answer from another (Keap's fault category, a REST status) is data: each row of the tables gives the name
dead letters carry (`error_class`, e.g. KeapRecordNotFound) and whether retrying can help. Those names
travel in DLQ messages for up to 14 days and drive redrives: a row's name never changes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from keap_relay.keap.defaults import XMLRPC_SUNSET
from keap_relay.keap.throttle import RateInfo

__all__ = [
    "ErrorKind",
    "KeapAuthError",
    "KeapConnectError",
    "KeapConnectionDropped",
    "KeapError",
    "KeapFault",
    "KeapHTTPError",
    "KeapMalformedResponse",
    "KeapRateLimited",
    "KeapRequestError",
    "KeapTimeout",
    "KeapTransportError",
    "KeapUnsafeResponse",
    "KeapUnsupportedOperation",
    "error_from_fault",
    "error_from_http",
]

# Error text that reaches str()/repr() is capped so an HTML error page cannot flood a log line.
_MAX_MESSAGE = 300


@dataclass(frozen=True)
class ErrorKind:
    """What one answer means: its dead-letter name and whether the same call may succeed later.

    `maybe_delivered`: Keap may have acted on the request, so repeating it is safe only for idempotent calls.
    """

    error_class: str
    transient: bool = False
    maybe_delivered: bool = False


class KeapError(Exception):
    """Base of every error the Keap clients raise.

    `error_class` is the name written to dead letters (ErrorClass): the class's own name unless a `kind` says
    otherwise. `transient` says whether the same call may succeed later; `maybe_delivered` whether Keap may
    have acted on the request.
    """

    transient: bool = False
    maybe_delivered: bool = False

    def __init__(
        self,
        message: str = "",
        *,
        method: str | None = None,
        code: int | None = None,
        http_status: int | None = None,
        kind: ErrorKind | None = None,
    ) -> None:
        self.message = message if len(message) <= _MAX_MESSAGE else message[:_MAX_MESSAGE] + "…"
        self.method = method
        self.code = code
        self.http_status = http_status
        self.error_class = type(self).__name__
        if kind is not None:
            self.error_class, self.transient, self.maybe_delivered = (
                kind.error_class,
                kind.transient,
                kind.maybe_delivered,
            )
        super().__init__(self.message)

    def __str__(self) -> str:
        where = self.method or "Keap"
        code = "" if self.code is None else f" [{self.code}]"
        return f"{where}{code}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{self.error_class}(method={self.method!r}, code={self.code!r}, "
            f"http_status={self.http_status!r}, message={self.message!r})"
        )

    def __reduce__(self) -> tuple:
        # Keyword-only constructor arguments need help to survive pickling (multiprocessing, caches).
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[KeapError], state: dict) -> KeapError:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("message", ""))
    err.__dict__.update(state)
    return err


class KeapRequestError(KeapError, ValueError):
    """The call cannot be sent as given (a bad argument, a value or field with no wire form); nothing was sent."""


# The request errors whose name tells the reader of a dead letter what to fix.
ENCODE = ErrorKind("KeapEncodeError")  # a parameter has no XML-RPC form Keap accepts
UNKNOWN_FIELD = ErrorKind("KeapUnknownField")  # a field with no REST v2 counterpart, or not in the app


class KeapUnsupportedOperation(KeapRequestError):
    """The chosen API has no call for this (e.g. pausing a sequence over REST v2): a routes file to change."""


class KeapFault(KeapError):
    """Keap answered with an XML-RPC fault; `code` is the faultCode, `message` the faultString."""

    @property
    def fault_code(self) -> int | None:
        return self.code

    @property
    def fault_string(self) -> str:
        return self.message


class KeapAuthError(KeapError):
    """The credentials were refused (HTTP 401/403, or an InvalidKey fault)."""


class KeapInvalidKey(KeapFault, KeapAuthError):
    """[InvalidKey]: a fault that is also an auth error, so one `except KeapAuthError` serves both APIs."""


class KeapHTTPError(KeapError):
    """A status Keap (or its proxy) answered instead of a result; `http_status` holds it."""


class KeapRateLimited(KeapHTTPError):
    """HTTP 429 from Keap's proxy: the key's per-second, per-minute or daily budget is spent.

    `retry_after` (seconds, or None when unknown) comes from `Retry-After` or the
    `x-keap-product-*` headers; `rate_info` holds every quota/throttle header parsed.
    """

    transient = True

    def __init__(
        self,
        message: str = "",
        *,
        method: str | None = None,
        code: int | None = 429,
        http_status: int | None = 429,
        retry_after: float | None = None,
        rate_info: RateInfo | None = None,
    ) -> None:
        super().__init__(message, method=method, code=code, http_status=http_status)
        self.retry_after = retry_after
        self.rate_info = rate_info

    def __str__(self) -> str:
        wait = "unknown" if self.retry_after is None else f"{self.retry_after:.3g}s"
        return f"{super().__str__()} (retry after {wait})"


class KeapTransportError(KeapError):
    """The HTTP exchange failed before a full response arrived."""

    transient = True


class KeapConnectError(KeapTransportError):
    """Connecting or sending failed: the request cannot have reached Keap."""


class KeapTimeout(KeapTransportError):
    """No (complete) response within the read timeout: Keap may have acted on the request."""

    maybe_delivered = True


class KeapConnectionDropped(KeapTransportError):
    """The connection closed after the request was sent: Keap may have acted on the request."""

    maybe_delivered = True


class KeapMalformedResponse(KeapError):
    """A response whose body is not a readable answer; Keap did receive the request."""

    transient = True
    maybe_delivered = True


class KeapUnsafeResponse(KeapError):
    """The response carried a DOCTYPE or entity declaration (XXE / billion laughs); refused unread."""


# --- faults ------------------------------------------------------------------------------------------

_DATABASE = ErrorKind("KeapDatabaseError", transient=True)  # Keap's database failed this time
_FAILED_LOGIN = ErrorKind("KeapFailedLogin")
_INVALID_CONFIG = ErrorKind("KeapInvalidConfig")  # usually a wrong key for the app
_INVALID_KEY = ErrorKind("KeapInvalidKey")
_LOADING = ErrorKind("KeapLoadingError")  # e.g. a follow-up sequence or action set that does not exist
_REQUEST_PARSE = ErrorKind("KeapRequestParseError")  # Keap could not read what was sent (e.g. `<nil/>`)

# One row a fault: the `[Category]` that starts Keap's faultString, or else a phrase inside it; the faultCode
# the Ruby gem gives it (None: no code of its own); what it means. A fault is matched by its category, then
# by the first phrase it contains (the specific phrases come before the generic wrappers they appear
# inside), then by its code.
_FAULTS: tuple[tuple[str, int | None, ErrorKind], ...] = (
    ("[InvalidKey]", 2, _INVALID_KEY),
    ("[InvalidConfig]", 1, _INVALID_CONFIG),
    ("[UnexpectedError]", 3, ErrorKind("KeapUnexpectedError")),
    ("[DatabaseError]", 4, _DATABASE),
    ("[RecordNotFound]", 5, ErrorKind("KeapRecordNotFound")),
    ("[Loading]", 6, _LOADING),
    ("[LoadingError]", None, _LOADING),
    ("[NoTableAccess]", 7, ErrorKind("KeapNoTableAccess")),
    ("[NoFieldAccess]", 8, ErrorKind("KeapNoFieldAccess")),
    ("[NoTableFound]", 9, ErrorKind("KeapNoTableFound")),
    ("[NoFieldFound]", 10, ErrorKind("KeapNoFieldFound")),  # often a custom `_Field` the app lacks
    ("[NoFields]", 11, ErrorKind("KeapNoFields")),
    ("[InvalidParameter]", 12, ErrorKind("KeapInvalidParameter")),
    ("[FailedLoginAttempt]", 13, _FAILED_LOGIN),
    ("[NoAccess]", 14, ErrorKind("KeapNoAccess")),
    ("[FailedLoginAttemptPasswordExpired]", 15, _FAILED_LOGIN),
    # The legacy in-app throttle (`ThrottlingException: Maximum number of threads throttled`).
    ("ThrottlingException", None, ErrorKind("KeapThrottledFault", transient=True)),
    ("Statement cancelled", None, ErrorKind("KeapStatementCancelled", transient=True)),  # a long query cut off
    ("No such handler", None, ErrorKind("KeapNoSuchHandler")),  # the method name does not exist
    ("Failed to parse XML-RPC request", 0, _REQUEST_PARSE),
    # An intermittent server error, possibly after acting.
    ("Server encountered exception", None, ErrorKind("KeapServerException", transient=True, maybe_delivered=True)),
    ("Failed to invoke method", None, ErrorKind("KeapInvokeError")),  # Keap rejected an argument
)
_BY_CATEGORY: Mapping[str, ErrorKind] = {key[1:-1]: kind for key, _, kind in _FAULTS if key.startswith("[")}
_BY_PHRASE = tuple((key, kind) for key, _, kind in _FAULTS if not key.startswith("["))
_BY_CODE: Mapping[int, ErrorKind] = {code: kind for _, code, kind in _FAULTS if code is not None}

# Some clients and proxies prefix the string with the code (`[10] [NoFieldFound]...`); skip that.
_CATEGORY_RE = re.compile(r"\s*(?:\[\d+\]\s*)?\[([A-Za-z]+)\]")


def _fault_kind(code: int | None, text: str) -> ErrorKind | None:
    found = _CATEGORY_RE.match(text)
    if found and found.group(1) in _BY_CATEGORY:
        return _BY_CATEGORY[found.group(1)]
    for phrase, kind in _BY_PHRASE:
        if phrase in text:
            return kind
    return None if code is None else _BY_CODE.get(code)


def error_from_fault(fault_code: object, fault_string: object, *, method: str | None = None) -> KeapFault:
    """The exception for an XML-RPC fault struct's two members."""
    text = fault_string if isinstance(fault_string, str) else str(fault_string)
    code = fault_code if isinstance(fault_code, int) and not isinstance(fault_code, bool) else None
    kind = _fault_kind(code, text)
    cls = KeapInvalidKey if kind is _INVALID_KEY else KeapFault
    return cls(text, method=method, code=code, kind=kind)


# --- HTTP statuses -----------------------------------------------------------------------------------

NOT_FOUND = ErrorKind("KeapNotFound")  # the contact, tag, sequence or email address does not exist
_BAD_REQUEST = ErrorKind("KeapBadRequest")  # Keap refused the request as sent (a field, a filter, ...)
_SERVER_ERROR = ErrorKind("KeapServerError", transient=True, maybe_delivered=True)  # it may have acted first

# The proxy refused the request (e.g. an XML-RPC brownout): nothing was done.
_UNAVAILABLE = ErrorKind("KeapServiceUnavailable", transient=True)
# Over XML-RPC Keap refuses a call with a fault in a 200, so a 4xx there comes from a proxy and keeps the
# generic name; REST v2 says what went wrong through its statuses.
_REST_STATUSES: Mapping[int, ErrorKind] = {
    400: _BAD_REQUEST,
    404: NOT_FOUND,
    409: ErrorKind("KeapConflict"),  # the request clashes with the record's state
    422: _BAD_REQUEST,
}

# XML-RPC statuses that may mean Keap has browned out or retired XML-RPC (its sunset, reported for 2026-12-31;
# keap-xmlrpc-facts.md §0) -> the way out, which the error and the dead letter's ErrorMessage name. What Keap
# answers then is UNVERIFIED (the sources name the brownouts, not their answer): 503 is what an outage of the
# proxy gives (and the emulator's brownout), 404 / 410 what a removed endpoint would. Their ErrorClass and retry
# flags stay those of the status.
_XMLRPC_SUNSET_STATUSES: Mapping[int, str] = dict.fromkeys(
    (404, 410, 503),
    f"Keap's XML-RPC may be browned out or retired, its sunset reported for {XMLRPC_SUNSET}: "
    "set KEAP_API=rest after `keap-relay routes migrate --to rest`",
)


def _summary(body: bytes, rest: bool) -> str:
    """What a status's body says: REST's JSON error (`{code, message, status, details}`) as `STATUS: message`,
    else the start of the raw text."""
    if rest:
        try:
            doc = json.loads(body[:65536])
        except ValueError:
            doc = None
        if isinstance(doc, dict) and (doc.get("message") or doc.get("status")):
            status, message = str(doc.get("status") or "").strip(), str(doc.get("message") or "").strip()
            return f" {status}: {message}" if status and message else f" {status or message}"
    text = body[:_MAX_MESSAGE].decode("utf-8", "replace").strip() or "(empty body)"
    return f" {text}" if rest else f": {text}"


def error_from_http(
    status: int,
    body: bytes,
    *,
    rest: bool = False,
    method: str | None = None,
    rate_info: RateInfo | None = None,
) -> KeapError:
    """The exception for a status answered instead of a result (the body is summarised, never echoed whole).

    `rest`: the answer came from the REST v2 API. `rate_info` (the answer's quota headers) sets how long a
    429 asks to wait.
    """
    way_out = None if rest else _XMLRPC_SUNSET_STATUSES.get(status)
    # The way out comes before Keap's text, which the message's cap may cut.
    message = f"HTTP {status}{f' ({way_out})' if way_out else ''}{_summary(body, rest)}"
    if status in (401, 403):
        return KeapAuthError(message, method=method, code=status, http_status=status)
    if status == 429:
        wait = rate_info.retry_after(rate_info.observed_at) if rate_info is not None else None
        return KeapRateLimited(message, method=method, retry_after=wait, rate_info=rate_info)
    kind = _REST_STATUSES.get(status) if rest else None
    if status >= 500:
        kind = _UNAVAILABLE if status == 503 else _SERVER_ERROR
    return KeapHTTPError(message, method=method, code=status, http_status=status, kind=kind)
