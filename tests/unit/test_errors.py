"""The Keap errors' behaviour beyond their names (see test_dead_letter_names): data kept, safe messages,
pickling, rate headers."""

import pickle

import pytest

from keap_relay.keap import errors
from keap_relay.keap.errors import (
    KeapAuthError,
    KeapError,
    KeapFault,
    KeapRateLimited,
    error_from_fault,
    error_from_http,
)
from keap_relay.keap.throttle import RateInfo


def test_a_fault_keeps_keaps_code_string_and_the_method():
    err = error_from_fault(5, "[RecordNotFound]Record not found for Id:48872", method="ContactService.load")
    assert isinstance(err, KeapFault)
    assert (err.code, err.message, err.method) == (
        5,
        "[RecordNotFound]Record not found for Id:48872",
        "ContactService.load",
    )
    assert (err.fault_code, err.fault_string) == (err.code, err.message)
    assert error_from_fault(True, "x").code is None  # a boolean is no faultCode


def test_refused_credentials_are_an_auth_error_over_either_api():
    assert isinstance(error_from_fault(2, "[InvalidKey]Invalid Key"), KeapFault)
    assert isinstance(error_from_fault(2, "[InvalidKey]Invalid Key"), KeapAuthError)
    assert isinstance(error_from_http(401, b""), KeapAuthError)
    assert isinstance(error_from_http(403, b"", rest=True), KeapAuthError)


def test_an_http_error_names_its_status_and_keeps_the_method():
    err = error_from_http(502, b'{"message": "x"}', method="ContactService.add")
    assert (err.code, err.http_status, err.method) == (502, 502, "ContactService.add")
    assert str(err) == 'ContactService.add [502]: HTTP 502: {"message": "x"}'
    assert error_from_http(500, b"").message == "HTTP 500: (empty body)"


def test_429_carries_retry_after_and_rate_info():
    info = RateInfo(retry_after_header=1.5, observed_at=0.0)
    err = error_from_http(429, b'{"code":"429","message":"Quota Exceeded"}', rate_info=info)
    assert isinstance(err, KeapRateLimited)
    assert err.retry_after == 1.5 and err.rate_info is info
    assert "Quota Exceeded" in str(err) and "1.5s" in str(err)
    assert error_from_http(429, b"").retry_after is None  # no headers: unknown, not zero


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
    original = error_from_http(
        429, b"slow down", method="ContactService.load", rate_info=RateInfo(retry_after_header=3.0)
    )
    copy = pickle.loads(pickle.dumps(original))
    assert type(copy) is KeapRateLimited
    assert (copy.method, copy.code, copy.retry_after, str(copy)) == (
        original.method,
        original.code,
        original.retry_after,
        str(original),
    )
    fault = pickle.loads(pickle.dumps(error_from_fault(4, "[DatabaseError]x", method="m")))
    assert (fault.error_class, fault.code, fault.transient) == ("KeapDatabaseError", 4, True)


def test_every_exception_class_is_a_keap_error():
    classes = [obj for name in errors.__all__ if isinstance(obj := getattr(errors, name), type)]
    assert [cls for cls in classes if issubclass(cls, Exception) and not issubclass(cls, KeapError)] == []


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
