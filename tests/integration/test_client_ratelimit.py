"""Client-side pacing: the token bucket, and calls per second as the emulator sees them (fake clock, no waiting)."""

import itertools
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from keap_emulator import EmulatorServer, FaultPlan
from keap_emulator.server import DEFAULT_API_KEY
from keap_relay.keap.client import ContactService
from keap_relay.keap.errors import KeapRequestError
from keap_relay.keap.session import ClientOptions
from keap_relay.keap.throttle import RateLimiter, TokenBucket

KEY = DEFAULT_API_KEY


class FakeTime:
    """One clock for the limiter, the client and the emulator; sleeping moves it, instantly."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds


# ---------------------------------------------------------------- the bucket itself


def test_a_full_bucket_allows_a_burst_then_spaces_calls_at_the_rate():
    bucket = TokenBucket(5, clock=lambda: 0.0)
    waits = [bucket.reserve(0.0) for _ in range(10)]
    assert waits == pytest.approx([0, 0, 0, 0, 0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_the_bucket_refills_with_time_up_to_its_burst():
    bucket = TokenBucket(2, burst=3)
    assert [bucket.reserve(0.0) for _ in range(3)] == [0, 0, 0]
    assert bucket.reserve(0.0) == pytest.approx(0.5)
    # 10 s later the bucket is full again, but holds no more than the burst.
    assert [bucket.reserve(10.0) for _ in range(3)] == [0, 0, 0]
    assert bucket.reserve(10.0) == pytest.approx(0.5)


def test_a_clock_that_steps_back_does_not_mint_tokens():
    bucket = TokenBucket(1, burst=1)
    assert bucket.reserve(100.0) == 0
    assert bucket.reserve(50.0) == pytest.approx(1.0)


def test_concurrent_reservations_are_never_lost():
    bucket = TokenBucket(10)
    with ThreadPoolExecutor(max_workers=8) as pool:
        waits = list(pool.map(lambda _: bucket.reserve(0.0), range(400)))
    # 400 reservations at t=0: 10 free, then one every 0.1 s, each slot handed out exactly once.
    assert sorted(round(w, 6) for w in waits) == [0.0] * 10 + [round(0.1 * i, 6) for i in range(1, 391)]


def test_acquire_sleeps_the_reserved_time():
    fake = FakeTime(0.0)
    bucket = TokenBucket(4, burst=1, clock=fake, sleep=fake.sleep)
    for _ in range(3):
        bucket.acquire()
    assert fake.slept == pytest.approx([0.25, 0.25])


@pytest.mark.parametrize("rate", [0, -1, float("inf"), float("nan")])
def test_a_meaningless_rate_is_refused(rate):
    with pytest.raises(ValueError):
        TokenBucket(rate)


def test_a_limiter_backend_supplies_only_reserve():
    class Fixed(RateLimiter):
        def reserve(self, now):
            return 0.75

    slept: list[float] = []
    assert Fixed(clock=lambda: 0.0, sleep=slept.append).acquire() == 0.75
    assert slept == [0.75]


# ---------------------------------------------------------------- the client, paced, against the emulator


@pytest.fixture
def fake():
    return FakeTime()


@pytest.fixture
def emu(fake):
    with EmulatorServer(port=0, api_key=KEY, clock=fake) as server:
        yield server


def test_calls_per_second_seen_by_keap_stay_within_the_rate(emu, fake):
    limiter = TokenBucket(5, clock=fake, sleep=fake.sleep)
    cs = ContactService(emu.url, KEY, options=ClientOptions(rate_limiter=limiter, sleep=fake.sleep))
    cid = cs.add({"Email": "ada@example.com"})
    for _ in range(24):
        cs.load(cid, ["Id"])
    start = emu.calls()[0]["at"]
    per_second = Counter(int(c["at"] - start) for c in emu.calls())
    # Second 0 holds the burst (5) plus the refill (4); every later whole second exactly the rate.
    assert per_second[0] == 9
    assert all(per_second[s] == 5 for s in range(1, 4))
    assert sum(per_second.values()) == 25
    assert sum(fake.slept) == pytest.approx((25 - 5) / 5)


def test_retries_are_paced_too(emu, fake, raises_named):
    limiter = TokenBucket(1, clock=fake, sleep=fake.sleep)
    cs = ContactService(emu.url, KEY, options=ClientOptions(rate_limiter=limiter, sleep=fake.sleep, rand=lambda: 0.0))
    cid = cs.add({"Email": "ada@example.com"})
    emu.set_faults(FaultPlan(rate_fault=1.0, fault=(4, "[DatabaseError]x")))
    with raises_named("KeapDatabaseError"):
        cs.load(cid, ["Id"])
    ats = [c["at"] for c in emu.calls()]
    assert len(ats) == 1 + cs.options.max_attempts
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(ats))


def test_max_calls_per_second_builds_a_token_bucket(emu):
    cs = ContactService(emu.url, KEY, options=ClientOptions(max_calls_per_second=8))
    assert isinstance(cs.rate_limiter, TokenBucket)
    assert (cs.rate_limiter.rate, cs.rate_limiter.burst) == (8, 8)


def test_pacing_is_off_unless_asked(emu, monkeypatch):
    monkeypatch.delenv("KEAP_MAX_CALLS_PER_SECOND", raising=False)
    assert ContactService(emu.url, KEY).rate_limiter is None


@pytest.mark.parametrize(("raw", "rate"), [("4.5", 4.5), ("0", None), ("", None)])
def test_pacing_from_the_environment(emu, monkeypatch, raw, rate):
    monkeypatch.setenv("KEAP_MAX_CALLS_PER_SECOND", raw)
    limiter = ContactService(emu.url, KEY).rate_limiter
    assert (limiter.rate if limiter else None) == rate


def test_a_garbled_environment_rate_is_a_clear_error(emu, monkeypatch):
    monkeypatch.setenv("KEAP_MAX_CALLS_PER_SECOND", "ten")
    with pytest.raises(KeapRequestError, match="KEAP_MAX_CALLS_PER_SECOND"):
        ContactService(emu.url, KEY)
