"""Keap's call budget: the quota/throttle headers it reports, and a client-side rate limiter."""

from __future__ import annotations

import email.utils
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

__all__ = ["RateInfo", "RateLimiter", "TokenBucket"]

_PREFIX = "x-keap-product-"

# Keap reports windows as an interval plus a unit word.
_UNIT_SECONDS: Mapping[str, float] = {
    "second": 1.0,
    "seconds": 1.0,
    "minute": 60.0,
    "minutes": 60.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "day": 86400.0,
    "days": 86400.0,
    "month": 30 * 86400.0,
    "months": 30 * 86400.0,
}

# Expiry times arrive in epoch milliseconds; anything this large cannot be epoch seconds.
_EPOCH_MS_THRESHOLD = 1e11


def _to_int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        try:
            return int(float(text))
        except (ValueError, OverflowError):
            return None


def _to_unit(text: str) -> str | None:
    return text.strip().lower() or None


def _to_epoch_seconds(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value / 1000.0 if value > _EPOCH_MS_THRESHOLD else value


@dataclass(frozen=True)
class RateInfo:
    """The latest `x-keap-product-*` headers, parsed; None where Keap did not send one.

    `observed_at` is the wall-clock time (epoch seconds) the response arrived; `retry_after_header`
    is `Retry-After` in seconds from then.
    """

    quota_limit: int | None = None
    quota_available: int | None = None
    quota_used: int | None = None
    quota_interval: int | None = None
    quota_time_unit: str | None = None
    quota_expiry_time: float | None = None
    throttle_limit: int | None = None
    throttle_available: int | None = None
    throttle_used: int | None = None
    throttle_interval: int | None = None
    throttle_time_unit: str | None = None
    throttle_expiry_time: float | None = None
    spike_limit: int | None = None
    retry_after_header: float | None = None
    observed_at: float = 0.0

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], now: float | None = None) -> RateInfo | None:
        """Parse lower-cased response headers; None when there is nothing rate-related in them."""
        now = time.time() if now is None else now
        values: dict[str, object] = {}
        for name, raw in headers.items():
            if name.startswith(_PREFIX):
                field = name[len(_PREFIX) :].replace("-", "_")
                parse = _PARSERS.get(field)
                if parse is not None:
                    values[field] = parse(raw)
        retry_after = _parse_retry_after(headers.get("retry-after"), now)
        if not values and retry_after is None:
            return None
        return cls(**values, retry_after_header=retry_after, observed_at=now)  # type: ignore[arg-type]

    def retry_after(self, now: float | None = None) -> float | None:
        """Seconds until a call may succeed: `Retry-After`, else the exhausted budgets; None if unknown."""
        now = time.time() if now is None else now
        elapsed = max(0.0, now - self.observed_at)
        if self.retry_after_header is not None:
            return max(0.0, self.retry_after_header - elapsed)
        waits = [w for w in (self._window_wait("quota", now), self._window_wait("throttle", now)) if w is not None]
        return max(waits) if waits else None

    def _window_wait(self, kind: str, now: float) -> float | None:
        available = getattr(self, f"{kind}_available")
        if available is None or available > 0:
            return None
        expiry = getattr(self, f"{kind}_expiry_time")
        if expiry is not None:
            return max(0.0, expiry - now)
        # No reset time given: the window length is the longest the budget can stay empty.
        unit = _UNIT_SECONDS.get(getattr(self, f"{kind}_time_unit") or "")
        if unit is None:
            return None
        interval = getattr(self, f"{kind}_interval") or 1
        return max(0.0, interval * unit - (now - self.observed_at))


# Header suffix (dashes → underscores) → parser; the dataclass field of the same name receives it.
_PARSERS: Mapping[str, Callable[[str], object]] = {
    f.name: (
        _to_unit if f.name.endswith("time_unit") else _to_epoch_seconds if f.name.endswith("expiry_time") else _to_int
    )
    for f in fields(RateInfo)
    if f.name not in ("retry_after_header", "observed_at")
}


def _parse_retry_after(raw: str | None, now: float) -> float | None:
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


class RateLimiter:
    """Policy for pacing calls: `acquire()` blocks until the caller may make one call.

    Subclasses supply only `reserve(now)`, which books one call and returns how long the caller must
    wait for it; a shared backend (e.g. a DynamoDB budget) can implement it with one atomic update.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> float:
        """Wait for a call slot; returns the seconds waited."""
        wait = self.reserve(self._clock())
        if wait > 0:
            self._sleep(wait)
        return wait

    def reserve(self, now: float) -> float:
        """Book one call at time `now`; return the seconds to wait before making it."""
        raise NotImplementedError

    def expect(self, calls: int) -> None:
        """A hint that `calls` calls (this one included) follow soon; a shared budget books them together."""
        return None


class TokenBucket(RateLimiter):
    """In-process token bucket: `rate` calls per second on average, bursts of up to `burst` (default `rate`).

    Callers book slots ahead (the balance may go negative), so concurrent threads queue fairly and each
    sleeps outside the lock.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"rate must be a positive number of calls per second, not {rate!r}")
        super().__init__(clock=clock, sleep=sleep)
        self.rate = float(rate)
        self.burst = max(1.0, float(burst if burst is not None else rate))
        self._tokens = self.burst
        self._stamp: float | None = None
        self._lock = threading.Lock()

    def reserve(self, now: float) -> float:
        with self._lock:
            if self._stamp is not None and now > self._stamp:
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            if self._stamp is None or now > self._stamp:
                self._stamp = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate:g}, burst={self.burst:g})"
