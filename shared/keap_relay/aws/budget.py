"""A calls/second budget for the Keap key shared by every container, counted in DynamoDB."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from ..keap.throttle import RateLimiter

BUDGET_PREFIX = "budget#keap#"
KEEP_SECONDS = 120  # a window's counter is useless a moment later; TTL cleans it up
MAX_WINDOWS_AHEAD = 3600  # never book further than this many windows ahead (a misconfigured tiny rate)


class SharedBudget(RateLimiter):
    """At most `rate` Keap calls per second across all containers: one atomic counter per time window.

    A container books the calls it expects to make together (`expect(n)`, told by the sequence runner) with
    one unconditional `ADD calls :n` on the window's counter, and keeps what it was granted as a lease that
    later calls of the same window take from without a write. The counter's new value says how many of the
    n fit under the limit, so a booking is always one write, whether the window was empty, half full or
    full (a full window sends the caller to the next one, and it waits until that window starts); the
    counter may pass the limit, but only calls under it are granted. A lease dies with its window: slots a
    container booked and did not use are lost, never carried into a window other containers have filled.
    Windows are one second long (rate ≥ 1) or 1/rate seconds holding one call (rate < 1).
    """

    def __init__(self, table: str, rate: float, client: Any | None = None) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"rate must be a positive number of calls per second, not {rate!r}")
        super().__init__(clock=time.time)
        self.table = table
        self.window = 1.0 if rate >= 1 else 1.0 / rate
        self.limit = max(1, int(rate)) if rate >= 1 else 1
        self._client = client
        self._lock = threading.Lock()  # one booking at a time; the runner's threads share the lease
        self._lease_window = -1  # the window the lease's slots belong to
        self._lease = 0  # slots booked in it and not yet used
        self._expected = 0  # calls the runner said are coming, not yet made
        self._full_before = -1  # windows before this one were found full: no need to ask again
        self.writes = 0  # DynamoDB updates made (for the benchmarks and the tests)

    @property
    def client(self) -> Any:
        if self._client is None:
            from .idempotency import dynamodb_client

            self._client = dynamodb_client()
        return self._client

    def __repr__(self) -> str:
        return f"SharedBudget(table={self.table!r}, limit={self.limit} per {self.window:g} s)"

    def expect(self, calls: int) -> None:
        with self._lock:
            self._expected = max(0, calls)

    def book(self, calls: int) -> None:
        """Book the next `calls` now, in the one write a booking is, unless a lease of this window holds some:
        a batch books alongside its idempotency claims, so its first Keap call takes from the lease at once
        instead of waiting for DynamoDB on the event's critical path."""
        with self._lock:
            self._expected = max(0, calls)
            now = self._clock()
            current = int(now // self.window)
            if self._lease > 0 and self._lease_window >= current:
                return
            self._book(now, max(current, self._full_before))

    def reserve(self, now: float) -> float:
        with self._lock:
            current = int(now // self.window)
            if self._lease > 0 and self._lease_window >= current:
                window = self._lease_window
            else:
                window = self._book(now, max(current, self._full_before))
            self._lease -= 1
            self._expected = max(0, self._expected - 1)
            return max(0.0, window * self.window - now)

    def _book(self, now: float, window: int) -> int:
        """Book this call and the expected ones after it in the first window with room; hold them as the lease."""
        wanted = min(self.limit, max(1, self._expected))
        for _ in range(MAX_WINDOWS_AHEAD):
            self.writes += 1
            answer = self.client.update_item(
                TableName=self.table,
                Key={"id": {"S": f"{BUDGET_PREFIX}{window}"}},
                UpdateExpression="ADD calls :n SET expiration = :exp",
                ExpressionAttributeValues={
                    ":n": {"N": str(wanted)},
                    ":exp": {"N": str(int(now) + KEEP_SECONDS)},
                },
                ReturnValues="UPDATED_NEW",
            )
            total = int(answer["Attributes"]["calls"]["N"])
            granted = min(wanted, self.limit - (total - wanted))
            if total >= self.limit:  # full now, by our booking or before it: later bookings start after it
                self._full_before = window + 1
            if granted > 0:
                self._lease_window, self._lease = window, granted
                return window
            window += 1
        self._lease_window, self._lease = window, 1
        return window
