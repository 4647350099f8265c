"""Keap-proxy-like quotas: fixed windows, x-keap-product-* headers, the 429, with an injected clock."""

import json
import urllib.error
import urllib.request

import pytest

from keap_emulator import EmulatorServer, QuotaPlan
from keap_emulator.quotas import QuotaMeter

KEY = "quota-key"
DAY = 86400
# 2027-01-15 00:00:00 UTC, plus a little: a window start everywhere
MIDNIGHT = 1_800_000_000 - (1_800_000_000 % DAY)
THROTTLED = {"code": "429", "message": "Quota Exceeded", "status": "Request Throttled", "details": None}


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock():
    return Clock(MIDNIGHT + 0.25)


@pytest.fixture
def emu(clock):
    with EmulatorServer(port=0, api_key=KEY, clock=clock) as server:
        yield server


def add_to_group(emu, contact_id=1, key=KEY):
    """One addToGroup over HTTP: (status, headers, body)."""
    body = (
        "<?xml version='1.0'?><methodCall><methodName>ContactService.addToGroup</methodName><params>"
        f"<param><value>k</value></param><param><value><i4>{contact_id}</i4></value></param>"
        "<param><value><i4>100</i4></value></param></params></methodCall>"
    ).encode()
    request = urllib.request.Request(emu.url, body, {"X-Keap-API-Key": key, "Content-Type": "text/xml"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def applications(emu):
    return len(emu.model.tag_applications())


def test_quotas_are_off_by_default(emu):
    emu.model.add({"FirstName": "a"})
    for _ in range(15):
        status, headers, _ = add_to_group(emu)
        assert status == 200
    assert not [h for h in headers if h.lower().startswith("x-keap-product")]


def test_pat_plan_allows_ten_per_second_then_429s_without_applying(emu, clock):
    emu.model.add({"FirstName": "a"})
    emu.set_quota(QuotaPlan.pat())
    for i in range(10):
        status, headers, _ = add_to_group(emu)
        assert status == 200
        assert headers["x-keap-product-throttle-used"] == str(i + 1)
    assert headers["x-keap-product-throttle-limit"] == "240"
    assert headers["x-keap-product-throttle-time-unit"] == "minute"
    assert headers["x-keap-product-throttle-interval"] == "1"
    assert headers["x-keap-product-throttle-available"] == "230"
    assert headers["x-keap-product-quota-limit"] == "30000"
    assert headers["x-keap-product-quota-time-unit"] == "day"
    assert headers["x-keap-product-quota-interval"] == "1"
    assert headers["x-keap-product-quota-used"] == "10"
    assert headers["x-keap-product-quota-available"] == "29990"
    assert headers["x-keap-product-quota-expiry-time"] == str((MIDNIGHT + DAY) * 1000)

    status, headers, body = add_to_group(emu)
    assert status == 429
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == THROTTLED
    assert headers["Retry-After"] == "1"
    assert headers["x-keap-product-throttle-used"] == "10"  # the refused call is not counted
    assert applications(emu) == 10
    assert emu.calls()[-1]["http_status"] == 429 and emu.calls()[-1]["applied"] is False

    clock.t += 1
    status, headers, _ = add_to_group(emu)
    assert status == 200
    assert headers["x-keap-product-throttle-used"] == "11"
    assert applications(emu) == 11


def test_minute_window(emu, clock):
    emu.model.add({"FirstName": "a"})
    emu.set_quota(QuotaPlan(per_minute=3))
    for _ in range(3):
        clock.t += 1
        assert add_to_group(emu)[0] == 200
    status, headers, _ = add_to_group(emu)
    assert status == 429
    assert headers["Retry-After"] == "57"  # 3.25 s into the minute
    assert "x-keap-product-quota-limit" not in headers
    clock.t = MIDNIGHT + 59.9
    assert add_to_group(emu)[0] == 429
    clock.t = MIDNIGHT + 60
    status, headers, _ = add_to_group(emu)
    assert status == 200
    assert headers["x-keap-product-throttle-available"] == "2"


def test_day_window_resets_at_utc_midnight(emu, clock):
    emu.model.add({"FirstName": "a"})
    emu.set_quota(QuotaPlan(per_day=2))
    assert add_to_group(emu)[0] == 200
    clock.t += 3600
    status, headers, _ = add_to_group(emu)
    assert status == 200
    assert headers["x-keap-product-quota-available"] == "0"
    clock.t += 3600
    status, headers, body = add_to_group(emu)
    assert status == 429 and json.loads(body) == THROTTLED
    assert headers["Retry-After"] == str(DAY - 2 * 3600)  # ceil of the 0.25 s short of it
    clock.t = MIDNIGHT + DAY
    status, headers, _ = add_to_group(emu)
    assert status == 200
    assert headers["x-keap-product-quota-used"] == "1"
    assert headers["x-keap-product-quota-expiry-time"] == str((MIDNIGHT + 2 * DAY) * 1000)


def test_unauthenticated_calls_do_not_spend_quota(emu):
    emu.model.add({"FirstName": "a"})
    emu.set_quota(QuotaPlan(per_second=1))
    assert add_to_group(emu, key="wrong")[0] == 401
    assert add_to_group(emu)[0] == 200
    assert add_to_group(emu)[0] == 429


def test_quota_can_be_switched_over_http(emu):
    def post(body):
        request = urllib.request.Request(emu.base_url + "/_emulator/quota", json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    assert post({"plan": "pat"}) == {"per_second": 10, "per_minute": 240, "per_day": 30000}
    assert emu.quota == QuotaPlan.pat()
    assert post({"per_second": 2}) == {"per_second": 2, "per_minute": None, "per_day": None}
    assert post("none") is None
    assert emu.quota is None
    request = urllib.request.Request(emu.base_url + "/_emulator/quota", b'{"per_hour": 5}')
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=5)
    assert excinfo.value.code == 400


def test_meter_only_second_window_reports_it_as_throttle(clock):
    meter = QuotaMeter(QuotaPlan(per_second=2), clock)
    assert meter.take().allowed and meter.take().allowed
    refused = meter.take()
    assert not refused.allowed and refused.retry_after == 1
    assert refused.headers["x-keap-product-throttle-time-unit"] == "second"
    meter.reset()
    assert meter.take().allowed


def test_plans_are_validated():
    with pytest.raises(ValueError):
        QuotaPlan(per_second=0)
    with pytest.raises(ValueError):
        QuotaPlan.from_dict({"plan": "pat", "per_second": 3})
    assert QuotaPlan.from_dict({}) is None
    assert QuotaPlan.from_dict("pat") == QuotaPlan(10, 240, 30000)
