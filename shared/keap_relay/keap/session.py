"""What both Keap clients (XML-RPC and REST v2) share: credentials, pacing and the retry policy."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

from keap_relay.keap.errors import KeapError, KeapRateLimited, KeapRequestError
from keap_relay.keap.throttle import RateInfo, RateLimiter, TokenBucket
from keap_relay.keap.transport import HTTPTransport, user_agent

_log = logging.getLogger("keap_relay.keap")


def _mask_url(url: str) -> str:
    """The URL with any user info and every query value hidden (an OAuth token can ride in the query)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    if parts.netloc != netloc:
        netloc = "***@" + netloc
    query = "&".join(p.partition("=")[0] + "=***" for p in parts.query.split("&") if p) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _header_safe(secret: str, what: str) -> str:
    secret = secret.strip()  # a key pasted with its newline, or read from a file
    # http.client would reject a bad header value with the value itself in the message.
    if not secret or any(not 33 <= ord(c) < 127 for c in secret):
        raise KeapRequestError(f"{what} must be non-empty printable ASCII without spaces")
    return secret


def _rate_from_env() -> float | None:
    raw = os.environ.get("KEAP_MAX_CALLS_PER_SECOND", "").strip()
    if not raw:
        return None
    try:
        rate = float(raw)
    except ValueError:
        raise KeapRequestError("KEAP_MAX_CALLS_PER_SECOND must be a number") from None
    return rate if rate > 0 else None


class _Redacted:
    """Holds the credential so that it never shows in a repr, and scrubs it from error text."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "<redacted>"

    def scrub(self, err: KeapError) -> KeapError:
        # Keap or a proxy could echo a credential in a fault string or error page.
        if self._value and self._value in err.message:
            err.message = err.message.replace(self._value, "***")
            err.args = (err.message,)
        return err


class RetryingClient:
    """Auth headers, the rate limiter and the retry loop; a client supplies one exchange per attempt.

    Transient failures are retried with exponential backoff and full jitter, but a call that may already
    have reached Keap is repeated only when the caller says it is safe. A 429 is waited out when Keap says
    it is short (≤ max_retry_wait), otherwise raised at once for the caller to defer.
    """

    def _setup(
        self,
        *,
        api_key: str | None,
        access_token: str | None,
        max_attempts: int,
        backoff_base: float,
        backoff_cap: float,
        max_calls_per_second: float | None,
        max_retry_wait: float,
        rate_limiter: RateLimiter | None,
        sleep: Callable[[float], None],
        rand: Callable[[], float],
        monotonic: Callable[[], float],
        url: str,
        content_type: str,
        connect_timeout: float,
        read_timeout: float,
        pool_size: int,
    ) -> None:
        """Set the shared state and the pooled transport that sends `content_type` with the auth header."""
        if access_token is not None:
            if api_key is not None:
                raise KeapRequestError("pass api_key or access_token, not both")
            auth_header = {"Authorization": "Bearer " + _header_safe(access_token, "access_token")}
            self.auth, secret = "bearer", access_token.strip()
        else:
            key = api_key if api_key is not None else os.environ.get("KEAP_API_KEY")
            if not key:
                raise KeapRequestError("no Keap credentials: pass api_key or access_token, or set KEAP_API_KEY")
            auth_header = {"X-Keap-API-Key": _header_safe(key, "api_key")}
            self.auth, secret = "api-key", key.strip()
        if max_attempts < 1:
            raise KeapRequestError("max_attempts must be at least 1")
        self._secret = _Redacted(secret)
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_wait = max_retry_wait
        self._sleep = sleep
        self._rand = rand
        self._monotonic = monotonic
        if rate_limiter is None:
            rate = max_calls_per_second if max_calls_per_second is not None else _rate_from_env()
            if rate is not None and rate > 0:
                rate_limiter = TokenBucket(rate, sleep=sleep)
        self.rate_limiter = rate_limiter
        self.last_rate_info: RateInfo | None = None
        self._transport = HTTPTransport(
            url,
            headers={
                "Content-Type": content_type,
                "Accept": content_type.split(";")[0],
                "User-Agent": user_agent(),
                **auth_header,
            },
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            pool_size=pool_size,
        )

    def close(self) -> None:
        """Close pooled connections (the client stays usable; new calls reconnect)."""
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _with_retries(self, operation: str, safe: bool, exchange: Callable[[], Any]) -> Any:
        """Run `exchange` until it succeeds or the policy gives up; the key is scrubbed from what is raised."""
        attempt = 0
        while True:
            attempt += 1
            if self.rate_limiter is not None:
                self.rate_limiter.acquire()
            started = self._monotonic()
            try:
                result = exchange()
            except KeapError as err:
                delay = self._retry_delay(err, attempt, safe)
                _log.debug(
                    "keap call %s attempt=%d duration_ms=%.1f outcome=%s code=%s %s",
                    operation,
                    attempt,
                    (self._monotonic() - started) * 1000,
                    type(err).__name__,
                    err.code,
                    "giving up" if delay is None else f"retry_in_s={delay:.3f}",
                )
                if delay is None:
                    raise self._secret.scrub(err) from None
                self._sleep(delay)
                continue
            _log.debug(
                "keap call %s attempt=%d duration_ms=%.1f outcome=ok",
                operation,
                attempt,
                (self._monotonic() - started) * 1000,
            )
            return result

    def _retry_delay(self, err: KeapError, attempt: int, safe: bool) -> float | None:
        """Seconds to wait before the next attempt, or None to raise `err` now."""
        if not err.transient or attempt >= self.max_attempts:
            return None
        if err.maybe_delivered and not safe:
            return None
        if isinstance(err, KeapRateLimited) and err.retry_after is not None:
            return err.retry_after if err.retry_after <= self.max_retry_wait else None
        # Full jitter: a random wait up to the capped exponential step spreads out competing threads.
        return self._rand() * min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
