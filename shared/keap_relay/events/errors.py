"""Why a webhook request is refused: one exception per answer, each with its HTTP status and JSON error code."""

from __future__ import annotations

from typing import Any


class _Detailed(Exception):
    """An exception whose `detail` is the sentence sent back to the webhook's sender."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class WebhookRejected(_Detailed):
    """A request the ingest path refuses; `status` and `error` become the JSON answer. A subclass states
    its own: `class UnknownSource(WebhookRejected, status=404, error="unknown_source")`."""

    status = 400
    error = "bad_request"

    def __init_subclass__(cls, *, status: int | None = None, error: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if error is not None:
            cls.error = error


class UnknownSource(WebhookRejected, status=404, error="unknown_source"):
    """No adapter of that name, or not one that sends this URL's kind."""


class MethodNotAllowed(WebhookRejected, status=405, error="method_not_allowed"):
    """A method the source does not send (most send only POST)."""


class UnsupportedMediaType(WebhookRejected, status=415, error="unsupported_media_type"):
    """A content type the source does not send."""


class SignatureInvalid(WebhookRejected, status=401, error="unauthorized"):
    """No secret configured, or a missing, malformed, stale or wrong signature or URL token."""


class PayloadTooLarge(WebhookRejected, status=413, error="payload_too_large"):
    """A body over the size ingest accepts."""


class BodyUnparseable(WebhookRejected):
    """A body that cannot be read as the source's content type or vendor format (400 bad_request)."""


class EventRejected(WebhookRejected, status=422, error="invalid_event"):
    """The body parsed but the event fails the canonical schema."""


class EventIgnored(_Detailed):
    """Not a refusal: a genuine delivery of something keap-relay does not act on (a Stripe refund, a
    WooCommerce order not yet paid). It is answered 200 with `detail`, so the vendor does not retry,
    and nothing is queued."""
