"""What both Keap clients (XML-RPC and REST v2) share: their options, credentials, pacing and the retry policy."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit, urlunsplit

from keap_relay.keap.errors import KeapError, KeapRateLimited, KeapRequestError, error_from_http
from keap_relay.keap.throttle import RateInfo, RateLimiter, TokenBucket
from keap_relay.keap.transport import HTTPTransport, Response, user_agent

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


@dataclass(frozen=True)
class ClientOptions:
    """How a Keap client connects, retries and paces its calls; one value serves both clients.

    Credentials are not options: they are given to the client, so that options can be shown and shared.
    Transient failures are retried up to `max_attempts` with exponential backoff (`backoff_base` doubling up
    to `backoff_cap`) and full jitter; a 429 is waited out when Keap asks for at most `max_retry_wait`
    seconds. Calls are paced by `rate_limiter`, else by a token bucket of `max_calls_per_second` (default:
    KEAP_MAX_CALLS_PER_SECOND, else none). `sleep`, `rand` and `monotonic` are the clock for tests.
    """

    connect_timeout: float = 3.05
    read_timeout: float = 20.0
    pool_size: int = 8
    max_attempts: int = 4
    backoff_base: float = 0.25
    backoff_cap: float = 8.0
    max_retry_wait: float = 2.0
    max_calls_per_second: float | None = None
    rate_limiter: RateLimiter | None = None
    page_size: int = 200  # contacts per page of a REST v2 list call (1-1000)
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random
    monotonic: Callable[[], float] = time.monotonic


class RetryingClient:
    """What both Keap clients share: the constructor, auth headers, the rate limiter, one exchange and the
    retry loop.

    Transient failures are retried with exponential backoff and full jitter, but a call that may already
    have reached Keap is repeated only when the caller says it is safe. A 429 is waited out when Keap says
    it is short (≤ max_retry_wait), otherwise raised at once for the caller to defer. One instance is safe
    to share between threads.
    """

    content_type: ClassVar[str]
    rest: ClassVar[bool]  # which API answers: REST v2 speaks through statuses and JSON error bodies

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        access_token: str | None = None,
        options: ClientOptions = ClientOptions(),
    ) -> None:
        """`url` defaults from the environment (see each client); a PAT/SAK `api_key` (default KEAP_API_KEY)
        goes in `X-Keap-API-Key`, an OAuth `access_token` in `Authorization: Bearer`."""
        self.url = self._locate(url)
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
        if options.max_attempts < 1:
            raise KeapRequestError("max_attempts must be at least 1")
        self._secret = _Redacted(secret)
        self.options = options
        self.rate_limiter = options.rate_limiter
        if self.rate_limiter is None:
            rate = options.max_calls_per_second if options.max_calls_per_second is not None else _rate_from_env()
            if rate is not None and rate > 0:
                self.rate_limiter = TokenBucket(rate, sleep=options.sleep)
        self.last_rate_info: RateInfo | None = None
        # Told of every answered exchange (HTTP status, its quota headers or None); the AWS layer counts
        # calls and 429s and publishes the quota left through it, so this package stays free of AWS.
        self.on_response: Callable[[int, RateInfo | None], None] | None = None
        self._transport = HTTPTransport(
            self.url,
            headers={
                "Content-Type": self.content_type,
                "Accept": self.content_type.split(";")[0],
                "User-Agent": user_agent(),
                **auth_header,
            },
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
            pool_size=options.pool_size,
        )
        self._start()

    def _start(self) -> None:
        """Set up what one client keeps beyond the shared state (a cache, its lock)."""

    @classmethod
    def _locate(cls, url: str | None) -> str:
        """The URL to talk to, `url` or the environment's."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={_mask_url(self.url)!r}, auth={self.auth!r})"

    def close(self) -> None:
        """Close pooled connections (the client stays usable; new calls reconnect)."""
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, verb: str, body: bytes | None, operation: str, path: str | None = None) -> Response:
        """One exchange: the answer, or the KeapError its status means (its quota headers are kept)."""
        response = self._transport.request(verb, body, path=path, method=operation)
        info = RateInfo.from_headers(response.headers)
        if info is not None:
            self.last_rate_info = info
        if self.on_response is not None:
            self.on_response(response.status, info)
        # XML-RPC answers every call, faults included, with a 200; REST v2 with any 2xx.
        if not (200 <= response.status < 300 if self.rest else response.status == 200):
            raise error_from_http(response.status, response.body, rest=self.rest, method=operation, rate_info=info)
        return response

    def _with_retries(self, operation: str, safe: bool, exchange: Callable[[], Any]) -> Any:
        """Run `exchange` until it succeeds or the policy gives up; the key is scrubbed from what is raised."""
        attempt = 0
        while True:
            attempt += 1
            if self.rate_limiter is not None:
                self.rate_limiter.acquire()
            started = self.options.monotonic()
            try:
                result = exchange()
            except KeapError as err:
                delay = self._retry_delay(err, attempt, safe)
                _log.debug(
                    "keap call %s attempt=%d duration_ms=%.1f outcome=%s code=%s %s",
                    operation,
                    attempt,
                    (self.options.monotonic() - started) * 1000,
                    err.error_class,
                    err.code,
                    "giving up" if delay is None else f"retry_in_s={delay:.3f}",
                )
                if delay is None:
                    raise self._secret.scrub(err) from None
                self.options.sleep(delay)
                continue
            _log.debug(
                "keap call %s attempt=%d duration_ms=%.1f outcome=ok",
                operation,
                attempt,
                (self.options.monotonic() - started) * 1000,
            )
            return result

    def _retry_delay(self, err: KeapError, attempt: int, safe: bool) -> float | None:
        """Seconds to wait before the next attempt, or None to raise `err` now."""
        options = self.options
        if not err.transient or attempt >= options.max_attempts:
            return None
        if err.maybe_delivered and not safe:
            return None
        if isinstance(err, KeapRateLimited) and err.retry_after is not None:
            return err.retry_after if err.retry_after <= options.max_retry_wait else None
        # Full jitter: a random wait up to the capped exponential step spreads out competing threads.
        return options.rand() * min(options.backoff_cap, options.backoff_base * 2 ** (attempt - 1))
