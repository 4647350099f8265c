"""A calls/second budget for the Keap key shared by every container, counted in DynamoDB."""

from __future__ import annotations

import math
import time
from typing import Any

from ..keap.throttle import RateLimiter

BUDGET_PREFIX = "budget#keap#"
KEEP_SECONDS = 120  # a window's counter is useless a moment later; TTL cleans it up
MAX_WINDOWS_AHEAD = 3600  # never book further than this many windows ahead (a misconfigured tiny rate)


class SharedBudget(RateLimiter):
    """At most `rate` Keap calls per second across all containers: one atomic counter per time window.

    Each call books a slot with one conditional DynamoDB update on the current window's counter; a full
    window sends the caller to the next one, and it waits until that window starts. Windows are one second
    long (rate ≥ 1) or 1/rate seconds holding one call (rate < 1).
    """

    def __init__(self, table: str, rate: float, client: Any | None = None) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"rate must be a positive number of calls per second, not {rate!r}")
        super().__init__(clock=time.time)
        self.table = table
        self.window = 1.0 if rate >= 1 else 1.0 / rate
        self.limit = max(1, int(rate)) if rate >= 1 else 1
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from .durability import dynamodb_client

            self._client = dynamodb_client()
        return self._client

    def __repr__(self) -> str:
        return f"SharedBudget(table={self.table!r}, limit={self.limit} per {self.window:g} s)"

    def reserve(self, now: float) -> float:
        errors = self.client.exceptions
        window = int(now // self.window)
        for _ in range(MAX_WINDOWS_AHEAD):
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key={"id": {"S": f"{BUDGET_PREFIX}{window}"}},
                    UpdateExpression="ADD calls :one SET expiration = :exp",
                    ConditionExpression="attribute_not_exists(calls) OR calls < :limit",
                    ExpressionAttributeValues={
                        ":one": {"N": "1"},
                        ":limit": {"N": str(self.limit)},
                        ":exp": {"N": str(int(now) + KEEP_SECONDS)},
                    },
                )
            except errors.ConditionalCheckFailedException:
                window += 1
                continue
            return max(0.0, window * self.window - now)
        return MAX_WINDOWS_AHEAD * self.window
