"""The Keap error tree: fault table, HTTP statuses, transient flags, safe messages, rate headers."""

import pickle

import pytest

from keap_relay.keap import errors
from keap_relay.keap.errors import (
    KeapAuthError,
    KeapConnectError,
    KeapConnectionDropped,
    KeapError,
    KeapFault,
    KeapHTTPError,
    KeapRateLimited,
    KeapServerError,
    KeapServiceUnavailable,
    KeapTimeout,
    error_from_fault,
    error_from_http,
)
from keap_relay.keap.throttle import RateInfo

# (faultCode, faultString, class, transient) — strings are Keap's real ones where one was captured.
FAULTS = [
    (2, "[InvalidKey]Invalid Key", errors.KeapInvalidKey, False),
    (
        1,
        "[InvalidConfig]Invalid Configuration: for help setting up your API, please contact Support",
        errors.KeapInvalidConfig,
        False,
    ),
    (5, "[RecordNotFound]Unable to perform update. Record not found for Id:48872", errors.KeapRecordNotFound, False),
    (10, "[NoFieldFound]No field found: Contact._LeadScore", errors.KeapNoFieldFound, False),
    (12, "[InvalidParameter]Invalid dupCheckType", errors.KeapInvalidParameter, False),
    (6, "[Loading]Error loading follow-up sequence", errors.KeapLoadingError, False),
    (4, "[DatabaseError]Error returning results", errors.KeapDatabaseError, True),
    (3, "[UnexpectedError]Something happened", errors.KeapUnexpectedError, False),
    (11, "[NoFields]No fields sent for update", errors.KeapNoFields, False),
    (7, "[NoTableAccess]No access to table Contact", errors.KeapNoTableAccess, False),
    (8, "[NoFieldAccess]No access to field", errors.KeapNoFieldAccess, False),
    (9, "[NoTableFound]No table found", errors.KeapNoTableFound, False),
    (14, "[NoAccess]Access denied", errors.KeapNoAccess, False),
    (13, "[FailedLoginAttempt]username not found: test@test.com", errors.KeapFailedLogin, False),
    (15, "[FailedLoginAttemptPasswordExpired]expired", errors.KeapFailedLogin, False),
    (0, "No such handler: APIEmailService.sendTemplate", errors.KeapNoSuchHandler, False),
    (0, "Failed to parse XML-RPC request: Unknown type: nil", errors.KeapRequestParseError, False),
    (0, "Failed to parse XML-RPC request: Premature end of file.", errors.KeapRequestParseError, False),
    (
        500,
        "Server encountered exception: com.infusionsoft.throttle.ThrottlingException: "
        "Maximum number of threads throttled",
        errors.KeapThrottledFault,
        True,
    ),
    (
        0,
        "Failed to invoke method query in class com.infusionsoft.api.xmlrpc.XmlRpcDataService: "
        "Statement cancelled due to client request",
        errors.KeapStatementCancelled,
        True,
    ),
    (
        0,
        "Server encountered exception: java.lang.IllegalStateException: Cannot create a session",
        errors.KeapServerException,
        True,
    ),
    (
        0,
        "Failed to invoke method addToGroup in class com.infusionsoft.api.xmlrpc.XmlRpcContactService: "
        "contactId must be a valid id",
        errors.KeapInvokeError,
        False,
    ),
    # Prefixed with the code, as some clients and proxies print it.
    (10, "[10] [NoFieldFound]No field found: Referral._DatabaseLandlordID", errors.KeapNoFieldFound, False),
    # No category, no phrase: the code decides.
    (4, "Error returning results", errors.KeapDatabaseError, True),
    (2, "Invalid Access Token", errors.KeapInvalidKey, False),
    # An unknown bracket falls through to the code.
    (6, "[LoadingFailed]odd", errors.KeapLoadingError, False),
]


@pytest.mark.parametrize(("code", "text", "cls", "transient"), FAULTS, ids=[f[1][:40] for f in FAULTS])
def test_fault_table_maps_category_then_phrase_then_code(code, text, cls, transient):
    err = error_from_fault(code, text, method="ContactService.load")
    assert type(err) is cls
    assert err.transient is transient
    assert isinstance(err, KeapFault)
    assert (err.code, err.message, err.method) == (code, text, "ContactService.load")


def test_unknown_faults_are_permanent_plain_faults():
    err = error_from_fault(77, "Brand new failure")
    assert type(err) is KeapFault and not err.transient


def test_a_non_integer_fault_code_is_kept_out_of_code():
    err = error_from_fault("4", "[DatabaseError]x")
    assert type(err) is errors.KeapDatabaseError and err.code is None


def test_invalid_key_fault_is_also_an_auth_error():
    assert isinstance(error_from_fault(2, "[InvalidKey]Invalid Key"), KeapAuthError)


def test_the_category_table_and_code_table_agree():
    for code, cls in errors._CODES.items():
        if code:
            assert cls in set(errors._CATEGORY.values())


@pytest.mark.parametrize(
    ("status", "cls", "transient", "maybe_delivered"),
    [
        (401, KeapAuthError, False, False),
        (403, KeapAuthError, False, False),
        (400, KeapHTTPError, False, False),
        (404, KeapHTTPError, False, False),
        (413, KeapHTTPError, False, False),
        (429, KeapRateLimited, True, False),
        (500, KeapServerError, True, True),
        (502, KeapServerError, True, True),
        (504, KeapServerError, True, True),
        (503, KeapServiceUnavailable, True, False),
    ],
)
def test_http_statuses_map_to_classes_and_retry_flags(status, cls, transient, maybe_delivered):
    err = error_from_http(status, b'{"message": "x"}', method="ContactService.add")
    assert type(err) is cls
    assert (err.transient, err.maybe_delivered) == (transient, maybe_delivered)
    assert (err.code, err.http_status, err.method) == (status, status, "ContactService.add")
    assert str(status) in str(err)


def test_429_carries_retry_after_and_rate_info():
    info = RateInfo(throttle_available=0, observed_at=0.0)
    err = error_from_http(429, b'{"code":"429","message":"Quota Exceeded"}', retry_after=1.5, rate_info=info)
    assert isinstance(err, KeapRateLimited)
    assert err.retry_after == 1.5 and err.rate_info is info
    assert "Quota Exceeded" in str(err) and "1.5s" in str(err)


def test_transport_errors_say_whether_the_request_may_have_arrived():
    assert KeapConnectError.transient and not KeapConnectError.maybe_delivered
    assert KeapTimeout.transient and KeapTimeout.maybe_delivered
    assert KeapConnectionDropped.transient and KeapConnectionDropped.maybe_delivered
    assert errors.KeapUnsafeResponse.transient is False
    assert errors.KeapMalformedResponse.transient and errors.KeapMalformedResponse.maybe_delivered


def test_str_and_repr_name_method_code_and_fault_string():
    err = error_from_fault(6, "[Loading]Error loading follow-up sequence", method="ContactService.addToCampaign")
    assert str(err) == "ContactService.addToCampaign [6]: [Loading]Error loading follow-up sequence"
    assert repr(err) == (
        "KeapLoadingError(method='ContactService.addToCampaign', code=6, http_status=None, "
        "message='[Loading]Error loading follow-up sequence')"
    )


def test_long_bodies_are_cut_short_in_messages():
    err = error_from_http(502, b"<html>" + b"x" * 10_000 + b"</html>")
    assert len(err.message) < 400
    assert len(str(err)) < 450


def test_errors_survive_pickling_with_their_attributes():
    original = error_from_http(429, b"slow down", method="ContactService.load", retry_after=3.0)
    copy = pickle.loads(pickle.dumps(original))
    assert type(copy) is KeapRateLimited
    assert (copy.method, copy.code, copy.retry_after, str(copy)) == (
        original.method,
        original.code,
        original.retry_after,
        str(original),
    )
    fault = pickle.loads(pickle.dumps(error_from_fault(4, "[DatabaseError]x", method="m")))
    assert (type(fault), fault.code, fault.transient) == (errors.KeapDatabaseError, 4, True)


def test_every_error_is_a_keap_error():
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, KeapError), name


# ---------------------------------------------------------------- rate headers

SAK_HEADERS = {
    "x-keap-product-throttle-limit": "240",
    "x-keap-product-throttle-time-unit": "minute",
    "x-keap-product-throttle-interval": "1",
    "x-keap-product-throttle-available": "238",
    "x-keap-product-throttle-used": "2",
    "x-keap-product-quota-limit": "30000",
    "x-keap-product-quota-time-unit": "day",
    "x-keap-product-quota-interval": "1",
    "x-keap-product-quota-available": "29998",
    "x-keap-product-quota-used": "2",
    "x-keap-product-quota-expiry-time": "1764201600000",
    "x-keap-product-spike-limit": "25",
    "content-type": "text/xml",
}


def test_rate_headers_are_parsed_into_fields():
    info = RateInfo.from_headers(SAK_HEADERS, now=1000.0)
    assert info is not None
    assert (info.throttle_limit, info.throttle_available, info.throttle_used) == (240, 238, 2)
    assert (info.throttle_time_unit, info.throttle_interval) == ("minute", 1)
    assert (info.quota_limit, info.quota_available, info.quota_time_unit) == (30000, 29998, "day")
    assert info.quota_expiry_time == 1764201600.0  # epoch ms → s
    assert info.spike_limit == 25
    assert info.observed_at == 1000.0
    assert info.retry_after(1000.0) is None  # budgets left: nothing to wait for


def test_no_rate_headers_no_rate_info():
    assert RateInfo.from_headers({"content-type": "text/xml"}) is None


def test_retry_after_header_in_seconds_wins_and_counts_down():
    info = RateInfo.from_headers(
        {**SAK_HEADERS, "x-keap-product-throttle-available": "0", "retry-after": "7"}, now=100.0
    )
    assert info.retry_after(100.0) == 7.0
    assert info.retry_after(103.0) == 4.0
    assert info.retry_after(200.0) == 0.0


def test_retry_after_as_an_http_date():
    info = RateInfo.from_headers({"retry-after": "Thu, 01 Jan 1970 00:01:40 GMT"}, now=90.0)
    assert info.retry_after(90.0) == pytest.approx(10.0)


def test_exhausted_daily_quota_waits_until_its_expiry_time():
    info = RateInfo.from_headers({**SAK_HEADERS, "x-keap-product-quota-available": "0"}, now=1764200000.0)
    assert info.retry_after(1764200000.0) == pytest.approx(1600.0)


def test_exhausted_throttle_without_expiry_waits_at_most_one_window():
    info = RateInfo.from_headers({**SAK_HEADERS, "x-keap-product-throttle-available": "0"}, now=50.0)
    assert info.retry_after(50.0) == 60.0
    assert info.retry_after(80.0) == 30.0


def test_garbled_rate_headers_are_ignored_not_fatal():
    info = RateInfo.from_headers({"x-keap-product-throttle-available": "lots", "retry-after": "soon"}, now=0.0)
    assert info is not None and info.throttle_available is None and info.retry_after(0.0) is None
