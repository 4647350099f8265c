"""Checking a webhook's authenticity: constant-time compares, HMAC-SHA256 header schemes, the URL token and
the age of a signed timestamp. A failure is a SignatureInvalid whose detail never holds the secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import SignatureInvalid

TOKEN_PARAM = "token"  # noqa: S105 - a query parameter's name: ?token=<secret> for unsigned sources


def constant_time_equal(given: str | bytes, expected: str | bytes) -> bool:
    """Equality in constant time that never raises (hmac.compare_digest refuses non-ASCII str)."""
    a = given.encode("utf-8", "surrogatepass") if isinstance(given, str) else given
    b = expected.encode("utf-8", "surrogatepass") if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


def hmac_sha256(secret: str, message: bytes) -> bytes:
    """The HMAC-SHA256 of `message` under `secret`."""
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def hex_hmac(secret: str, message: bytes) -> str:
    """The HMAC-SHA256 of `message` under `secret`, in lower-case hex."""
    return hmac_sha256(secret, message).hex()


def require_header(headers: Mapping[str, str], name: str, shape: str) -> str:
    """The header's value, trimmed, or SignatureInvalid saying it is missing and what it should hold."""
    value = headers.get(name, "").strip()
    if not value:
        raise SignatureInvalid(f"missing {name} header (expected {shape})")
    return value


class DigestEncoding(NamedTuple):
    """How a digest is written in a header, and whether a received one is compared case-sensitively."""

    encode: Callable[[bytes], str]
    case_sensitive: bool


DIGEST_ENCODINGS: dict[str, DigestEncoding] = {
    "hex": DigestEncoding(bytes.hex, case_sensitive=False),
    "base64": DigestEncoding(lambda digest: base64.b64encode(digest).decode("ascii"), case_sensitive=True),
}


@dataclass(frozen=True)
class HmacHeader:
    """A scheme where one header holds the HMAC-SHA256 of the raw body under the shared secret, as
    `<digest>` or, with a `scheme`, as `<scheme>=<digest>` (the scheme's name in any case)."""

    header: str
    encoding: str  # a key of DIGEST_ENCODINGS
    scheme: str | None = None

    def _digest(self, raw_body: bytes, secret: str) -> str:
        return DIGEST_ENCODINGS[self.encoding].encode(hmac_sha256(secret, raw_body))

    def sign(self, raw_body: bytes, secret: str) -> dict[str, str]:
        """The signature header for `raw_body`, as the vendor sends it."""
        prefix = f"{self.scheme}=" if self.scheme else ""
        return {self.header: prefix + self._digest(raw_body, secret)}

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
        """Raise SignatureInvalid unless the header holds the raw body's HMAC-SHA256 under `secret`."""
        shape = f"{self.scheme}=<{self.encoding}>" if self.scheme else f"<{self.encoding}>"
        given = require_header(headers, self.header, shape)
        if self.scheme:
            name, _, given = given.partition("=")
            if name.strip().lower() != self.scheme or not given:
                raise SignatureInvalid(f"malformed {self.header} header (expected {shape})")
        given = given.strip() if DIGEST_ENCODINGS[self.encoding].case_sensitive else given.strip().lower()
        if not constant_time_equal(given, self._digest(raw_body, secret)):
            raise SignatureInvalid(f"{self.header} does not match the body")


def verify_token(query: Mapping[str, str], secret: str) -> None:
    """Raise SignatureInvalid unless ?token= equals the source's secret (constant time; never echoed)."""
    given = query.get(TOKEN_PARAM, "")
    if not given:
        raise SignatureInvalid(f"missing ?{TOKEN_PARAM}= in the webhook URL (this source authenticates by URL token)")
    if not constant_time_equal(given, secret):
        raise SignatureInvalid(f"?{TOKEN_PARAM}= does not match this source's secret")


def require_recent(timestamp: float, tolerance: float, now: float | None = None) -> None:
    """Raise SignatureInvalid when a signed timestamp is further than `tolerance` seconds from `now` (the
    clock's time unless given)."""
    now = time.time() if now is None else now
    if not math.isfinite(timestamp) or abs(now - timestamp) > tolerance:
        raise SignatureInvalid(f"signed timestamp is outside the {int(tolerance)} s tolerance (clock skew or replay)")
