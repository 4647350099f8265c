"""Retry rules against the emulator: fault classes, transient vs permanent, maybe-delivered calls, 429, transport."""

import socket

import pytest

from keap_emulator import EmulatorServer, FaultPlan, QuotaPlan
from keap_emulator.server import DEFAULT_API_KEY
from keap_relay.keap import errors as e
from keap_relay.keap.client import ContactService
from keap_relay.keap.errors import KeapRateLimited, error_from_fault, error_from_http
from keap_relay.keap.session import ClientOptions

KEY = DEFAULT_API_KEY


class FakeClock:
    """Wall clock for the emulator that only moves when the client 'sleeps'."""

    def __init__(self, start: float = 1_800_000_010.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def clock():
    return FakeClock()


@pytest.fixture(scope="module")
def server(clock):
    with EmulatorServer(port=0, api_key=KEY, clock=clock) as emu:
        yield emu


class Sleeps(list):
    """Records each backoff; `then` runs once on the first sleep (e.g. to heal the emulator)."""

    def __init__(self, then=None, clock=None):
        super().__init__()
        self.then = then
        self.clock = clock

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if self.clock is not None:
            self.clock.now += seconds
        if self.then is not None:
            then, self.then = self.then, None
            then()


def client(emu, sleeps=None, **options) -> ContactService:
    """A client that tries 3 times and waits half of each backoff step, recording its sleeps."""
    options = {"max_attempts": 3, "rand": lambda: 0.5, "sleep": sleeps if sleeps is not None else [].append, **options}
    return ContactService(emu.url, KEY, options=ClientOptions(**options))


def seeded_contact(emu) -> int:
    return ContactService(emu.url, KEY).add({"Email": "ada@example.com", "FirstName": "Ada"})


def rpc_calls(emu, method):
    return [c for c in emu.calls() if c["method"] == method]


# ---------------------------------------------------------------- every fault class, through the wire

FAULTS = [
    ((1, "[InvalidConfig]Invalid Configuration"), "KeapInvalidConfig", False),
    ((2, "[InvalidKey]Invalid Key"), "KeapInvalidKey", False),
    ((3, "[UnexpectedError]Unexpected error"), "KeapUnexpectedError", False),
    ((4, "[DatabaseError]Error returning results"), "KeapDatabaseError", True),
    ((5, "[RecordNotFound]Record not found for Id:48872"), "KeapRecordNotFound", False),
    ((6, "[Loading]Error loading follow-up sequence"), "KeapLoadingError", False),
    ((7, "[NoTableAccess]No access"), "KeapNoTableAccess", False),
    ((8, "[NoFieldAccess]No access"), "KeapNoFieldAccess", False),
    ((9, "[NoTableFound]No table"), "KeapNoTableFound", False),
    ((10, "[NoFieldFound]No field found: Contact._LeadScore"), "KeapNoFieldFound", False),
    ((11, "[NoFields]No fields sent for update"), "KeapNoFields", False),
    ((12, "[InvalidParameter]Invalid parameters"), "KeapInvalidParameter", False),
    ((13, "[FailedLoginAttempt]username not found"), "KeapFailedLogin", False),
    ((14, "[NoAccess]No access"), "KeapNoAccess", False),
    ((0, "No such handler: ContactService.nope"), "KeapNoSuchHandler", False),
    ((0, "Failed to parse XML-RPC request: Unknown type: nil"), "KeapRequestParseError", False),
    ((0, "Failed to invoke method load in class X: contactId must be a valid id"), "KeapInvokeError", False),
    (
        (
            0,
            "Server encountered exception: com.infusionsoft.throttle.ThrottlingException: Maximum number of threads "
            "throttled",
        ),
        "KeapThrottledFault",
        True,
    ),
    (
        (0, "Failed to invoke method query in class X: Statement cancelled due to client request"),
        "KeapStatementCancelled",
        True,
    ),
    ((0, "Server encountered exception: java.lang.IllegalStateException"), "KeapServerException", True),
]


@pytest.mark.parametrize(("fault", "name", "transient"), FAULTS, ids=[f[1] + str(f[0][0]) for f in FAULTS])
def test_every_fault_class_is_raised_and_only_transient_ones_retried(emu, fault, name, transient, raises_named):
    cid = seeded_contact(emu)
    emu.set_faults(FaultPlan(rate_fault=1.0, fault=fault, methods={"ContactService.load"}))
    sleeps = Sleeps()
    with raises_named(name) as caught:
        client(emu, sleeps).load(cid, ["Id"])
    assert (caught.value.code, caught.value.message) == fault
    expected_calls = 3 if transient else 1
    assert len(rpc_calls(emu, "ContactService.load")) == expected_calls
    assert len(sleeps) == expected_calls - 1


def test_a_transient_fault_is_retried_and_then_succeeds(emu):
    cid = seeded_contact(emu)
    emu.set_faults(FaultPlan(rate_fault=1.0, fault=(4, "[DatabaseError]Error returning results")))
    sleeps = Sleeps(then=lambda: emu.set_faults(None))
    assert client(emu, sleeps).load(cid, ["Id", "FirstName"]) == {"Id": cid, "FirstName": "Ada"}
    assert [c["fault_code"] for c in rpc_calls(emu, "ContactService.load")] == [4, None]
    assert sleeps == [0.5 * 0.25]  # full jitter: rand() times base on the first retry


def test_backoff_is_exponential_capped_and_jittered(emu, raises_named):
    cid = seeded_contact(emu)
    emu.set_faults(FaultPlan(rate_fault=1.0, fault=(4, "[DatabaseError]x")))
    sleeps = Sleeps()
    cs = client(emu, sleeps, max_attempts=5, backoff_base=0.25, backoff_cap=0.6, rand=lambda: 1.0)
    with raises_named("KeapDatabaseError"):
        cs.load(cid, ["Id"])
    assert sleeps == [0.25, 0.5, 0.6, 0.6]
    sleeps2 = Sleeps()
    with raises_named("KeapDatabaseError"):
        client(emu, sleeps2, max_attempts=3, rand=lambda: 0.0).load(cid, ["Id"])
    assert sleeps2 == [0.0, 0.0]


# ---------------------------------------------------------------- may-have-been-delivered calls


def test_run_action_sequence_dropped_after_apply_is_not_repeated(emu):
    cid = seeded_contact(emu)
    emu.set_faults(FaultPlan(rate_drop=1.0, drop_after_apply=True))
    sleeps = Sleeps()
    with pytest.raises(e.KeapConnectionDropped) as caught:
        client(emu, sleeps).run_action_sequence(cid, 21)
    assert caught.value.maybe_delivered and caught.value.transient
    assert len(rpc_calls(emu, "ContactService.runActionSequence")) == 1
    assert len(emu.model.action_set_runs(cid)) == 1
    assert sleeps == []


def test_add_to_group_dropped_after_apply_is_repeated_safely(emu):
    cid = seeded_contact(emu)
    emu.set_faults(FaultPlan(rate_drop=1.0, drop_after_apply=True))
    sleeps = Sleeps(then=lambda: emu.set_faults(None))
    assert client(emu, sleeps).add_to_group(cid, 101) is True
    assert [c["applied"] for c in rpc_calls(emu, "ContactService.addToGroup")] == [True, True]
    assert emu.model.contact_tags(cid) == {101}


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("add", ({"Email": "new@example.com"},)),
        ("merge", (1, 2)),
        ("reschedule_campaign_step", ([1], 1101)),
        ("run_action_sequence", (1, 21)),
    ],
)
def test_unsafe_methods_are_not_repeated_after_a_drop(emu, method, args):
    emu.set_faults(FaultPlan(rate_drop=1.0))
    with pytest.raises(e.KeapConnectionDropped):
        getattr(client(emu), method)(*args)
    assert len(emu.calls()) == 1


def test_call_treats_methods_outside_the_table_as_unsafe(emu):
    emu.set_faults(FaultPlan(rate_drop=1.0))
    with pytest.raises(e.KeapConnectionDropped):
        client(emu).call("APIEmailService.optOut", "ada@example.com", "unsubscribed")
    assert len(emu.calls()) == 1


def test_read_timeout_on_run_action_sequence_is_not_repeated(emu):
    cid = seeded_contact(emu)
    emu.set_faults(FaultPlan(latency_ms=400))
    sleeps = Sleeps()
    with pytest.raises(e.KeapTimeout) as caught:
        client(emu, sleeps, read_timeout=0.1).run_action_sequence(cid, 21)
    assert caught.value.maybe_delivered
    assert len(rpc_calls(emu, "ContactService.runActionSequence")) == 1
    assert len(emu.model.action_set_runs(cid)) == 1
    assert sleeps == []


def test_read_timeout_on_add_to_group_is_repeated(emu):
    cid = seeded_contact(emu)
    emu.set_faults(FaultPlan(latency_ms=400))
    sleeps = Sleeps(then=lambda: emu.set_faults(None))
    assert client(emu, sleeps, read_timeout=0.1).add_to_group(cid, 102) is True
    assert len(rpc_calls(emu, "ContactService.addToGroup")) == 2
    assert emu.model.contact_tags(cid) == {102}


def test_a_drop_before_apply_on_add_is_still_not_repeated(emu):
    # The client cannot tell a drop before from a drop after: it must assume the worst.
    emu.set_faults(FaultPlan(rate_drop=1.0, drop_after_apply=False))
    with pytest.raises(e.KeapConnectionDropped):
        client(emu).add({"Email": "new@example.com"})
    assert [c["applied"] for c in emu.calls()] == [False]
    assert emu.model.contact_ids() == []


def test_a_garbled_answer_is_retried_for_safe_methods(emu):
    cid = seeded_contact(emu)
    emu.set_faults(FaultPlan(rate_malformed=1.0))
    sleeps = Sleeps(then=lambda: emu.set_faults(None))
    assert client(emu, sleeps).load(cid, ["Id"]) == {"Id": cid}
    assert len(rpc_calls(emu, "ContactService.load")) == 2


def test_a_garbled_answer_to_add_is_not_retried(emu):
    emu.set_faults(FaultPlan(rate_malformed=1.0))
    with pytest.raises(e.KeapMalformedResponse):
        client(emu).add({"Email": "new@example.com"})
    assert [c["applied"] for c in emu.calls()] == [True]
    assert len(emu.model.contact_ids()) == 1


# ---------------------------------------------------------------- HTTP statuses


def test_5xx_on_a_safe_method_is_retried_until_attempts_run_out(emu, raises_named):
    cid = seeded_contact(emu)
    emu.set_faults(FaultPlan(rate_5xx=1.0, seed=7))
    with raises_named("KeapServerError") as caught:
        client(emu).load(cid, ["Id"])
    assert caught.value.http_status in (502, 503)
    assert len(rpc_calls(emu, "ContactService.load")) == 3


def test_an_outage_503_is_retried_even_for_add_since_nothing_was_done(emu, clock, raises_named):
    emu.set_faults(FaultPlan(outages=[(clock.now - 10, clock.now + 3600)]))
    with raises_named("KeapServiceUnavailable") as caught:
        client(emu).add({"Email": "new@example.com"})
    assert caught.value.transient and not caught.value.maybe_delivered
    assert len(emu.calls()) == 3
    assert emu.model.contact_ids() == []


@pytest.mark.parametrize(
    ("error", "safe", "retried"),
    [
        (error_from_http(502, b""), False, False),
        (error_from_http(502, b""), True, True),
        (error_from_http(503, b""), False, True),
        (e.KeapTimeout("t"), False, False),
        (e.KeapTimeout("t"), True, True),
        (e.KeapConnectError("c"), False, True),
        (e.KeapMalformedResponse("m"), False, False),
        (error_from_fault(4, "[DatabaseError]d"), False, True),
        (error_from_fault(0, "Server encountered exception: s"), False, False),
        (e.KeapHTTPError("HTTP 400"), True, False),
        (e.KeapUnsafeResponse("u"), True, False),
        (KeapRateLimited("429", retry_after=None), False, True),
        (KeapRateLimited("429", retry_after=1.0), False, True),
        (KeapRateLimited("429", retry_after=30.0), True, False),
    ],
)
def test_retry_decision_table(error, safe, retried):
    cs = ContactService("http://127.0.0.1:9/crm/xmlrpc/v1", KEY, options=ClientOptions(rand=lambda: 1.0))
    assert (cs._retry_delay(error, 1, safe) is not None) is retried
    assert cs._retry_delay(error, cs.options.max_attempts, safe) is None  # never past the last attempt


# ---------------------------------------------------------------- 429


def test_injected_429_is_waited_out_for_its_retry_after(emu):
    cid = seeded_contact(emu)
    emu.set_faults(FaultPlan(rate_429=1.0))
    sleeps = Sleeps(then=lambda: emu.set_faults(None))
    assert client(emu, sleeps).load(cid, ["Id"]) == {"Id": cid}
    assert sleeps == [1.0]  # the emulator's Retry-After, not the backoff
    assert [c["http_status"] for c in rpc_calls(emu, "ContactService.load")] == [429, 200]


def test_a_short_per_second_quota_429_is_waited_out(emu, clock):
    cid = seeded_contact(emu)
    emu.set_quota(QuotaPlan(per_second=1))
    sleeps = Sleeps(clock=clock)
    cs = client(emu, sleeps)
    cs.load(cid, ["Id"])
    assert cs.load(cid, ["Email"]) == {"Email": "ada@example.com"}  # second in the same second: 429, wait, retry
    assert sleeps == [1.0]
    assert [c["http_status"] for c in rpc_calls(emu, "ContactService.load")] == [200, 429, 200]


def test_a_long_quota_429_is_raised_at_once_for_the_queue_to_defer(emu):
    cid = seeded_contact(emu)
    emu.set_quota(QuotaPlan(per_minute=2))
    sleeps = Sleeps()
    cs = client(emu, sleeps)
    cs.load(cid, ["Id"])
    cs.load(cid, ["Id"])
    assert cs.last_rate_info.throttle_limit == 2 and cs.last_rate_info.throttle_available == 0
    with pytest.raises(KeapRateLimited) as caught:
        cs.load(cid, ["Id"])
    err = caught.value
    assert err.transient and err.http_status == 429
    assert err.retry_after > cs.options.max_retry_wait
    assert err.rate_info.throttle_available == 0 and err.rate_info.throttle_limit == 2
    assert "Quota Exceeded" in str(err)
    assert sleeps == []
    assert [c["http_status"] for c in rpc_calls(emu, "ContactService.load")] == [200, 200, 429]


def test_max_retry_wait_decides_what_counts_as_short(emu):
    cid = seeded_contact(emu)
    emu.set_faults(FaultPlan(rate_429=1.0))
    with pytest.raises(KeapRateLimited) as caught:
        client(emu, max_retry_wait=0.5).load(cid, ["Id"])
    assert caught.value.retry_after == 1.0
    assert len(rpc_calls(emu, "ContactService.load")) == 1


def test_quota_headers_are_kept_from_every_response(emu):
    cid = seeded_contact(emu)
    emu.set_quota(QuotaPlan.pat())
    cs = client(emu)
    assert cs.last_rate_info is None
    cs.load(cid, ["Id"])
    info = cs.last_rate_info
    assert (info.quota_limit, info.throttle_limit, info.throttle_time_unit) == (30000, 240, "minute")
    assert info.quota_used >= 1 and info.quota_expiry_time > 0


# ---------------------------------------------------------------- transport failures


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_cannot_have_reached_keap_so_even_add_is_retried():
    sleeps = Sleeps()
    cs = ContactService(
        f"http://127.0.0.1:{closed_port()}/crm/xmlrpc/v1",
        KEY,
        options=ClientOptions(max_attempts=3, sleep=sleeps, rand=lambda: 1.0),
    )
    with pytest.raises(e.KeapConnectError) as caught:
        cs.add({"Email": "ada@example.com"})
    assert caught.value.transient and not caught.value.maybe_delivered
    assert caught.value.method == "ContactService.add"
    assert sleeps == [0.25, 0.5]


def test_a_dead_pooled_connection_is_replaced_not_failed(emu):
    cid = seeded_contact(emu)
    cs = client(emu)
    cs.load(cid, ["Id"])
    # The idle keep-alive connection dies (simulated by shutting it down from our side).
    ((conn, _),) = cs._transport._idle
    conn.sock.shutdown(socket.SHUT_RDWR)
    assert cs.load(cid, ["Id"]) == {"Id": cid}
