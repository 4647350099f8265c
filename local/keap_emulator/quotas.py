"""Keap's API-proxy rate limits: fixed per-second, per-minute and per-day windows, headers and the 429."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

# The proxy's answer when a window is exhausted (facts §2): JSON, not an XML-RPC fault.
THROTTLED_BODY = json.dumps(
    {"code": "429", "message": "Quota Exceeded", "status": "Request Throttled", "details": None},
    separators=(",", ":"),
).encode()

# plan field -> (window length in seconds, the time unit Keap's headers name). Day windows are aligned on
# the epoch, so they reset at 00:00 UTC as Keap's daily quota does.
_WINDOWS: dict[str, tuple[int, str]] = {
    "per_second": (1, "second"),
    "per_minute": (60, "minute"),
    "per_day": (86400, "day"),
}
# Which window each header family describes, in order of preference: Keap reports the per-minute
# throttle and the daily quota; the per-second spike policy has no metrics of its own.
_HEADER_FAMILIES: dict[str, tuple[str, ...]] = {
    "throttle": ("per_minute", "per_second"),
    "quota": ("per_day",),
}


@dataclass(frozen=True)
class QuotaPlan:
    """Limits per fixed window; None switches that window off."""

    per_second: int | None = None
    per_minute: int | None = None
    per_day: int | None = None

    def __post_init__(self) -> None:
        for name in _WINDOWS:
            limit = getattr(self, name)
            if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
                raise ValueError(f"{name} must be a positive integer or None")

    @classmethod
    def pat(cls) -> QuotaPlan:
        """Keap's published limits for a Personal Access Token / Service Account Key."""
        return cls(per_second=10, per_minute=240, per_day=30000)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | str | None) -> QuotaPlan | None:
        """`None`, `{}`, `"none"`, `{"plan": "none"}` -> off; `"pat"`, `{"plan": "pat"}`; or the fields."""
        if isinstance(data, dict) and "plan" in data:
            extra = set(data) - {"plan"}
            if extra:
                raise ValueError(f"'plan' cannot be combined with {sorted(extra)}")
            data = data["plan"]
        if data is None or data in ("none", {}):
            return None
        if data == "pat":
            return cls.pat()
        if not isinstance(data, dict):
            raise ValueError('a quota is "pat", "none", or an object of per_second/per_minute/per_day')
        unknown = set(data) - set(_WINDOWS)
        if unknown:
            raise ValueError(f"unknown quota fields {sorted(unknown)}")
        plan = cls(**data)
        return plan if plan.enabled else None

    def to_dict(self) -> dict[str, int | None]:
        """The plan as JSON-ready values."""
        return asdict(self)

    @property
    def enabled(self) -> bool:
        """Whether any window is limited."""
        return any(getattr(self, name) is not None for name in _WINDOWS)


@dataclass(frozen=True)
class Verdict:
    """Whether a call may pass, the headers to send either way, and when to retry if not."""

    allowed: bool
    headers: dict[str, str]
    retry_after: int | None = None


class QuotaMeter:
    """Counts calls in fixed windows of a QuotaPlan against an injected clock."""

    def __init__(self, plan: QuotaPlan | None = None, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._plan = plan if plan is not None and plan.enabled else None
        self._used: dict[str, tuple[float, int]] = {}

    @property
    def plan(self) -> QuotaPlan | None:
        """The plan in effect, or None when quotas are off."""
        return self._plan

    def set_plan(self, plan: QuotaPlan | None) -> None:
        """Change the plan; counting starts afresh."""
        with self._lock:
            self._plan = plan if plan is not None and plan.enabled else None
            self._used.clear()

    def reset(self) -> None:
        """Forget all counts."""
        with self._lock:
            self._used.clear()

    def take(self) -> Verdict:
        """Count one call if every window has room; otherwise refuse it without counting."""
        with self._lock:
            plan = self._plan
            if plan is None:
                return Verdict(True, {})
            now = self._clock()
            windows: dict[str, tuple[int, float, int]] = {}  # name -> (limit, window start, used)
            for name, (length, _) in _WINDOWS.items():
                limit = getattr(plan, name)
                if limit is None:
                    continue
                start = math.floor(now / length) * length
                prev_start, used = self._used.get(name, (start, 0))
                windows[name] = (limit, start, used if prev_start == start else 0)
            exhausted = [name for name, (limit, _, used) in windows.items() if used >= limit]
            if not exhausted:
                windows = {n: (limit, start, used + 1) for n, (limit, start, used) in windows.items()}
            self._used = {n: (start, used) for n, (_, start, used) in windows.items()}
            headers = self._headers(windows)
            if not exhausted:
                return Verdict(True, headers)
            wait = max(windows[n][1] + _WINDOWS[n][0] - now for n in exhausted)
            return Verdict(False, headers, retry_after=max(1, math.ceil(wait)))

    @staticmethod
    def _headers(windows: dict[str, tuple[int, float, int]]) -> dict[str, str]:
        headers: dict[str, str] = {}
        for family, candidates in _HEADER_FAMILIES.items():
            name = next((c for c in candidates if c in windows), None)
            if name is None:
                continue
            limit, start, used = windows[name]
            length, unit = _WINDOWS[name]
            prefix = f"x-keap-product-{family}-"
            headers[prefix + "limit"] = str(limit)
            headers[prefix + "time-unit"] = unit
            headers[prefix + "interval"] = "1"
            headers[prefix + "available"] = str(max(0, limit - used))
            headers[prefix + "used"] = str(used)
            if family == "quota":
                headers[prefix + "expiry-time"] = str(int((start + length) * 1000))
        return headers
