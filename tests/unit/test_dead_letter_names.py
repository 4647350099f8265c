"""The ErrorClass every Keap failure writes to dead letters, and whether it is retried: pinned, because dead
letters wait up to 14 days in a DLQ and redrives are decided by these names."""

import pytest

from keap_relay.keap import codec, errors
from keap_relay.keap.client import ContactService
from keap_relay.keap.rest import outcome_error, to_v2_contact
from keap_relay.keap.transport import HTTPTransport
from keap_relay.routing.keap_port import RestPort


def dead_letter_class(err: BaseException) -> str:
    """The ErrorClass the sequence runner writes for `err` (its error_class, else its class name)."""
    return getattr(err, "error_class", None) or type(err).__name__


def raised(action):
    try:
        action()
    except errors.KeapError as err:
        return err
    raise AssertionError("nothing was raised")


# (faultCode, faultString) -> (ErrorClass, transient, maybe_delivered); strings are Keap's real ones where captured.
FAULTS = [
    (2, "[InvalidKey]Invalid Key", "KeapInvalidKey", False, False),
    (1, "[InvalidConfig]Invalid Configuration: please contact Support", "KeapInvalidConfig", False, False),
    (3, "[UnexpectedError]Something happened", "KeapUnexpectedError", False, False),
    (4, "[DatabaseError]Error returning results", "KeapDatabaseError", True, False),
    (5, "[RecordNotFound]Unable to perform update. Record not found for Id:48872", "KeapRecordNotFound", False, False),
    (6, "[Loading]Error loading follow-up sequence", "KeapLoadingError", False, False),
    (6, "[LoadingError]Error loading", "KeapLoadingError", False, False),
    (7, "[NoTableAccess]No access to table Contact", "KeapNoTableAccess", False, False),
    (8, "[NoFieldAccess]No access to field", "KeapNoFieldAccess", False, False),
    (9, "[NoTableFound]No table found", "KeapNoTableFound", False, False),
    (10, "[NoFieldFound]No field found: Contact._LeadScore", "KeapNoFieldFound", False, False),
    (11, "[NoFields]No fields sent for update", "KeapNoFields", False, False),
    (12, "[InvalidParameter]Invalid dupCheckType", "KeapInvalidParameter", False, False),
    (13, "[FailedLoginAttempt]username not found: test@test.com", "KeapFailedLogin", False, False),
    (15, "[FailedLoginAttemptPasswordExpired]expired", "KeapFailedLogin", False, False),
    (14, "[NoAccess]Access denied", "KeapNoAccess", False, False),
    (0, "No such handler: APIEmailService.sendTemplate", "KeapNoSuchHandler", False, False),
    (0, "Failed to parse XML-RPC request: Unknown type: nil", "KeapRequestParseError", False, False),
    (
        500,
        "Server encountered exception: com.infusionsoft.throttle.ThrottlingException: "
        "Maximum number of threads throttled",
        "KeapThrottledFault",
        True,
        False,
    ),
    (
        0,
        "Failed to invoke method query in class com.infusionsoft.api.xmlrpc.XmlRpcDataService: "
        "Statement cancelled due to client request",
        "KeapStatementCancelled",
        True,
        False,
    ),
    (0, "Server encountered exception: java.lang.IllegalStateException: x", "KeapServerException", True, True),
    (0, "Failed to invoke method addToGroup in class X: contactId must be a valid id", "KeapInvokeError", False, False),
    # Prefixed with the code, as some clients and proxies print it.
    (10, "[10] [NoFieldFound]No field found: Referral._X", "KeapNoFieldFound", False, False),
    # No category and no phrase: the code decides.
    *[
        (code, "something else", name, name == "KeapDatabaseError", False)
        for code, name in [
            (0, "KeapRequestParseError"),
            (1, "KeapInvalidConfig"),
            (2, "KeapInvalidKey"),
            (3, "KeapUnexpectedError"),
            (4, "KeapDatabaseError"),
            (5, "KeapRecordNotFound"),
            (6, "KeapLoadingError"),
            (7, "KeapNoTableAccess"),
            (8, "KeapNoFieldAccess"),
            (9, "KeapNoTableFound"),
            (10, "KeapNoFieldFound"),
            (11, "KeapNoFields"),
            (12, "KeapInvalidParameter"),
            (13, "KeapFailedLogin"),
            (14, "KeapNoAccess"),
            (15, "KeapFailedLogin"),
            (77, "KeapFault"),
        ]
    ],
    (6, "[LoadingFailed]an unknown bracket falls through to the code", "KeapLoadingError", False, False),
    ("4", "[Nothing]a code that is not an int counts for nothing", "KeapFault", False, False),
]


@pytest.mark.parametrize(("code", "text", "name", "transient", "maybe_delivered"), FAULTS)
def test_each_fault_keeps_its_dead_letter_name_and_retry_flags(code, text, name, transient, maybe_delivered):
    err = errors.error_from_fault(code, text, method="ContactService.load")
    assert isinstance(err, errors.KeapFault)
    assert (dead_letter_class(err), err.transient, err.maybe_delivered) == (name, transient, maybe_delivered)


# HTTP status -> ErrorClass over either API.
STATUS_NAMES = {
    401: "KeapAuthError",
    403: "KeapAuthError",
    413: "KeapHTTPError",
    429: "KeapRateLimited",
    500: "KeapServerError",
    502: "KeapServerError",
    503: "KeapServiceUnavailable",
    504: "KeapServerError",
}
# REST v2 names its refusals; over XML-RPC they are KeapHTTPError.
REST_STATUS_NAMES = {400: "KeapBadRequest", 404: "KeapNotFound", 409: "KeapConflict", 422: "KeapBadRequest"}
# (transient, maybe_delivered) where retrying can help; every other status is permanent.
STATUS_RETRY = {429: (True, False), 500: (True, True), 502: (True, True), 503: (True, False), 504: (True, True)}


@pytest.mark.parametrize("status", sorted({**STATUS_NAMES, **REST_STATUS_NAMES}))
def test_each_http_status_keeps_its_dead_letter_name_and_retry_flags(status):
    body = b'{"code": 1, "message": "x", "status": "X"}'
    names = {
        "xmlrpc": STATUS_NAMES.get(status, "KeapHTTPError"),
        "rest": REST_STATUS_NAMES.get(status) or STATUS_NAMES[status],
    }
    for api, name in names.items():
        err = errors.error_from_http(status, body, rest=api == "rest", method="m")
        flags = (err.transient, err.maybe_delivered)
        assert (dead_letter_class(err), flags) == (name, STATUS_RETRY.get(status, (False, False))), api
        assert (err.code, err.http_status) == (status, status)


def test_a_rest_contact_outcome_keeps_its_dead_letter_name():
    missing = outcome_error("rest.applyTags", 5, "CONTACT_DOES_NOT_EXIST")
    failed = outcome_error("rest.applyTags", 5, "FAILED")
    assert (dead_letter_class(missing), missing.transient, missing.maybe_delivered) == ("KeapNotFound", False, False)
    assert (dead_letter_class(failed), failed.transient, failed.maybe_delivered) == ("KeapContactFailed", True, False)
    assert outcome_error("rest.applyTags", 5, "ALREADY_APPLIED") is None


def test_what_the_client_detects_itself_keeps_its_dead_letter_name():
    port = RestPort.__new__(RestPort)
    found = {
        "KeapEncodeError": raised(lambda: codec.encode_call("ContactService.add", [{"Email": object()}])),
        "KeapUnknownField": raised(lambda: to_v2_contact({"NoSuchField": "x"}, {})),
        "KeapUnsupportedOperation": raised(lambda: port.pause_sequence(1, 2)),
        "KeapRequestError": raised(lambda: ContactService("http://127.0.0.1:9/x", "k").load(0, ["Id"])),
        "KeapMalformedResponse": raised(lambda: codec.decode_response(b"<methodResponse/>", "m")),
        "KeapUnsafeResponse": raised(lambda: codec.decode_response(b"<!DOCTYPE r><methodResponse/>", "m")),
    }
    for name, err in found.items():
        assert dead_letter_class(err) == name
    assert [(err.transient, err.maybe_delivered) for err in found.values()] == [
        (False, False),
        (False, False),
        (False, False),
        (False, False),
        (True, True),
        (False, False),
    ]


def test_transport_failures_keep_their_dead_letter_names():
    # A port nothing listens on: connecting fails, so the request cannot have reached Keap.
    refused = raised(lambda: HTTPTransport("http://127.0.0.1:9/crm/xmlrpc/v1", headers={}).post(b"<x/>"))
    assert (dead_letter_class(refused), refused.transient, refused.maybe_delivered) == ("KeapConnectError", True, False)
    for name, maybe_delivered in (("KeapTimeout", True), ("KeapConnectionDropped", True)):
        err = getattr(errors, name)("x")
        assert (dead_letter_class(err), err.transient, err.maybe_delivered) == (name, True, maybe_delivered)
