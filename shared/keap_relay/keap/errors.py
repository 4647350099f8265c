"""Keap error tree: XML-RPC faults, HTTP statuses and transport failures as one family of exceptions."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from keap_relay.keap.throttle import RateInfo

__all__ = [
    "KeapAuthError",
    "KeapBadRequest",
    "KeapConflict",
    "KeapConnectError",
    "KeapConnectionDropped",
    "KeapContactFailed",
    "KeapDatabaseError",
    "KeapEncodeError",
    "KeapError",
    "KeapFailedLogin",
    "KeapFault",
    "KeapHTTPError",
    "KeapInvalidConfig",
    "KeapInvalidKey",
    "KeapInvalidParameter",
    "KeapInvokeError",
    "KeapLoadingError",
    "KeapMalformedResponse",
    "KeapNoAccess",
    "KeapNoFieldAccess",
    "KeapNoFieldFound",
    "KeapNoFields",
    "KeapNoSuchHandler",
    "KeapNoTableAccess",
    "KeapNoTableFound",
    "KeapNotFound",
    "KeapRateLimited",
    "KeapRecordNotFound",
    "KeapRequestError",
    "KeapRequestParseError",
    "KeapServerError",
    "KeapServerException",
    "KeapServiceUnavailable",
    "KeapStatementCancelled",
    "KeapThrottledFault",
    "KeapTimeout",
    "KeapTransportError",
    "KeapUnexpectedError",
    "KeapUnknownField",
    "KeapUnsafeResponse",
    "KeapUnsupportedOperation",
    "error_from_fault",
    "error_from_http",
    "error_from_rest",
]

# Error text that reaches str()/repr() is capped so an HTML error page cannot flood a log line.
_MAX_MESSAGE = 300


class KeapError(Exception):
    """Base of every error the Keap client raises.

    `transient` says whether the same call may succeed later; `maybe_delivered` says whether the request
    may have been acted on by Keap (so repeating it is only safe for idempotent methods).
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
    ) -> None:
        self.message = message if len(message) <= _MAX_MESSAGE else message[:_MAX_MESSAGE] + "…"
        self.method = method
        self.code = code
        self.http_status = http_status
        super().__init__(self.message)

    def __str__(self) -> str:
        where = self.method or "Keap"
        code = "" if self.code is None else f" [{self.code}]"
        return f"{where}{code}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(method={self.method!r}, code={self.code!r}, "
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


# --- requests we refuse to send -------------------------------------------------------------------


class KeapRequestError(KeapError, ValueError):
    """The call cannot be sent as given (bad argument); nothing was sent."""


class KeapEncodeError(KeapRequestError):
    """A parameter has no XML-RPC form Keap accepts; the message names the value's path."""


class KeapUnknownField(KeapRequestError):
    """A contact field with no REST v2 counterpart, or a custom field the app's contact model lacks."""


class KeapUnsupportedOperation(KeapRequestError):
    """The chosen API has no call for this (e.g. pausing a sequence over REST v2)."""


# --- XML-RPC faults -------------------------------------------------------------------------------


class KeapFault(KeapError):
    """Keap answered with an XML-RPC fault; `code` is the faultCode, `message` the faultString."""

    @property
    def fault_code(self) -> int | None:
        return self.code

    @property
    def fault_string(self) -> str:
        return self.message


class KeapAuthError(KeapError):
    """The credentials were refused (HTTP 401, or an InvalidKey fault)."""


class KeapInvalidKey(KeapFault, KeapAuthError):
    """[InvalidKey]: the API key or OAuth access token is not valid."""


class KeapInvalidConfig(KeapFault):
    """[InvalidConfig]: usually a wrong key for the app."""


class KeapUnexpectedError(KeapFault):
    """[UnexpectedError]."""


class KeapDatabaseError(KeapFault):
    """[DatabaseError]: Keap's database failed this time; the same call usually works later."""

    transient = True


class KeapRecordNotFound(KeapFault):
    """[RecordNotFound]: no record with that Id."""


class KeapLoadingError(KeapFault):
    """[Loading]: e.g. a follow-up sequence or action set that does not exist."""


class KeapNoTableAccess(KeapFault):
    """[NoTableAccess]."""


class KeapNoFieldAccess(KeapFault):
    """[NoFieldAccess]."""


class KeapNoTableFound(KeapFault):
    """[NoTableFound]."""


class KeapNoFieldFound(KeapFault):
    """[NoFieldFound]: a field name (often a custom `_Field`) that the app does not have."""


class KeapNoFields(KeapFault):
    """[NoFields]: an update with no fields."""


class KeapInvalidParameter(KeapFault):
    """[InvalidParameter]."""


class KeapFailedLogin(KeapFault):
    """[FailedLoginAttempt] / [FailedLoginAttemptPasswordExpired]."""


class KeapNoAccess(KeapFault):
    """[NoAccess]: the key's user may not do this."""


class KeapNoSuchHandler(KeapFault):
    """`No such handler: ...`: the method name does not exist."""


class KeapRequestParseError(KeapFault):
    """`Failed to parse XML-RPC request: ...`: Keap could not read what was sent (e.g. `<nil/>`)."""


class KeapInvokeError(KeapFault):
    """`Failed to invoke method ...`: Keap rejected an argument (e.g. `contactId must be a valid id`)."""


class KeapThrottledFault(KeapFault):
    """Legacy in-app throttle (`ThrottlingException: Maximum number of threads throttled`)."""

    transient = True


class KeapStatementCancelled(KeapFault):
    """`Statement cancelled`: a long query was cut off; retrying usually works."""

    transient = True


class KeapServerException(KeapFault):
    """`Server encountered exception: ...`: an intermittent server error, possibly after acting."""

    transient = True
    maybe_delivered = True


# --- HTTP statuses ----------------------------------------------------------------------------------


class KeapHTTPError(KeapError):
    """A non-200 HTTP status that is not given a more precise class (4xx: permanent)."""


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


class KeapBadRequest(KeapHTTPError):
    """HTTP 400/422 from the REST API: Keap refused the request as sent (a field, a filter, a missing item)."""


class KeapNotFound(KeapHTTPError):
    """HTTP 404 from the REST API: the contact, tag, sequence or email address does not exist."""


class KeapConflict(KeapHTTPError):
    """HTTP 409 from the REST API: the request clashes with the record's state."""


class KeapContactFailed(KeapError):
    """A many-contacts REST call answered FAILED for this contact; the others may have succeeded."""

    transient = True


class KeapServerError(KeapHTTPError):
    """HTTP 5xx: Keap or its proxy failed; it may have acted on the request first."""

    transient = True
    maybe_delivered = True


class KeapServiceUnavailable(KeapServerError):
    """HTTP 503: the proxy refused the request (e.g. an XML-RPC brownout); nothing was done."""

    maybe_delivered = False


# --- transport and body -----------------------------------------------------------------------------


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
    """A 200 response whose body is not a readable XML-RPC response; Keap did receive the request."""

    transient = True
    maybe_delivered = True


class KeapUnsafeResponse(KeapError):
    """The response carried a DOCTYPE or entity declaration (XXE / billion laughs); refused unread."""


# --- fault string → class: one table, read in three passes ---------------------------------------

# Pass 1: the `[Category]` that starts Keap's faultString.
_CATEGORY: Mapping[str, type[KeapFault]] = {
    "InvalidKey": KeapInvalidKey,
    "InvalidConfig": KeapInvalidConfig,
    "UnexpectedError": KeapUnexpectedError,
    "DatabaseError": KeapDatabaseError,
    "RecordNotFound": KeapRecordNotFound,
    "Loading": KeapLoadingError,
    "LoadingError": KeapLoadingError,
    "NoTableAccess": KeapNoTableAccess,
    "NoFieldAccess": KeapNoFieldAccess,
    "NoTableFound": KeapNoTableFound,
    "NoFieldFound": KeapNoFieldFound,
    "NoFields": KeapNoFields,
    "InvalidParameter": KeapInvalidParameter,
    "FailedLoginAttempt": KeapFailedLogin,
    "FailedLoginAttemptPasswordExpired": KeapFailedLogin,
    "NoAccess": KeapNoAccess,
}

# Pass 2: faults without a category, matched by a phrase in the string (first match wins, so the more
# specific phrases come before the generic wrappers they appear inside).
_PHRASES: tuple[tuple[str, type[KeapFault]], ...] = (
    ("ThrottlingException", KeapThrottledFault),
    ("Statement cancelled", KeapStatementCancelled),
    ("No such handler", KeapNoSuchHandler),
    ("Failed to parse XML-RPC request", KeapRequestParseError),
    ("Server encountered exception", KeapServerException),
    ("Failed to invoke method", KeapInvokeError),
)

# Pass 3: faultCode, as the Ruby gem maps them, for strings that say nothing recognisable.
_CODES: Mapping[int, type[KeapFault]] = {
    0: KeapRequestParseError,
    1: KeapInvalidConfig,
    2: KeapInvalidKey,
    3: KeapUnexpectedError,
    4: KeapDatabaseError,
    5: KeapRecordNotFound,
    6: KeapLoadingError,
    7: KeapNoTableAccess,
    8: KeapNoFieldAccess,
    9: KeapNoTableFound,
    10: KeapNoFieldFound,
    11: KeapNoFields,
    12: KeapInvalidParameter,
    13: KeapFailedLogin,
    14: KeapNoAccess,
    15: KeapFailedLogin,
}

# Some clients and proxies prefix the string with the code (`[10] [NoFieldFound]...`); skip that.
_CATEGORY_RE = re.compile(r"\s*(?:\[\d+\]\s*)?\[([A-Za-z]+)\]")


def fault_class(fault_code: object, fault_string: str) -> type[KeapFault]:
    """The KeapFault subclass for a fault, by category, then phrase, then code."""
    found = _CATEGORY_RE.match(fault_string)
    if found and found.group(1) in _CATEGORY:
        return _CATEGORY[found.group(1)]
    for phrase, cls in _PHRASES:
        if phrase in fault_string:
            return cls
    if isinstance(fault_code, int):
        return _CODES.get(fault_code, KeapFault)
    return KeapFault


def error_from_fault(fault_code: object, fault_string: object, *, method: str | None = None) -> KeapFault:
    """Build the exception for an XML-RPC fault struct's two members."""
    text = fault_string if isinstance(fault_string, str) else str(fault_string)
    code = fault_code if isinstance(fault_code, int) and not isinstance(fault_code, bool) else None
    return fault_class(code, text)(text, method=method, code=code)


# --- HTTP status → class --------------------------------------------------------------------------

_STATUS: Mapping[int, type[KeapHTTPError | KeapAuthError]] = {
    401: KeapAuthError,
    403: KeapAuthError,
    429: KeapRateLimited,
    503: KeapServiceUnavailable,
}


def error_from_http(
    status: int,
    body: bytes,
    *,
    method: str | None = None,
    retry_after: float | None = None,
    rate_info: RateInfo | None = None,
) -> KeapError:
    """Build the exception for a non-200 HTTP response (the body is summarised, never echoed whole)."""
    summary = body[:_MAX_MESSAGE].decode("utf-8", "replace").strip() or "(empty body)"
    message = f"HTTP {status}: {summary}"
    cls = _STATUS.get(status) or (KeapServerError if status >= 500 else KeapHTTPError)
    if cls is KeapRateLimited:
        return KeapRateLimited(
            message,
            method=method,
            code=status,
            http_status=status,
            retry_after=retry_after,
            rate_info=rate_info,
        )
    return cls(message, method=method, code=status, http_status=status)


# --- REST v2: HTTP status (and Keap's JSON error body) → class -----------------------------------

_REST_STATUS: Mapping[int, type[KeapError]] = {
    400: KeapBadRequest,
    401: KeapAuthError,
    403: KeapAuthError,
    404: KeapNotFound,
    409: KeapConflict,
    422: KeapBadRequest,
    429: KeapRateLimited,
    503: KeapServiceUnavailable,
}


def _rest_summary(body: bytes) -> str:
    """`STATUS: message` from Keap's JSON error body (`{code, message, status, details}`), else the raw text."""
    try:
        doc = json.loads(body[:65536])
    except ValueError:
        doc = None
    if isinstance(doc, dict) and (doc.get("message") or doc.get("status")):
        status, message = str(doc.get("status") or "").strip(), str(doc.get("message") or "").strip()
        return f"{status}: {message}" if status and message else status or message
    return body[:_MAX_MESSAGE].decode("utf-8", "replace").strip() or "(empty body)"


def error_from_rest(
    status: int,
    body: bytes,
    *,
    method: str | None = None,
    retry_after: float | None = None,
    rate_info: RateInfo | None = None,
) -> KeapError:
    """Build the exception for a non-2xx REST v2 response, reading Keap's JSON error body when there is one."""
    message = f"HTTP {status} {_rest_summary(body)}"
    cls = _REST_STATUS.get(status) or (KeapServerError if status >= 500 else KeapHTTPError)
    if cls is KeapRateLimited:
        return KeapRateLimited(
            message, method=method, code=status, http_status=status, retry_after=retry_after, rate_info=rate_info
        )
    return cls(message, method=method, code=status, http_status=status)
