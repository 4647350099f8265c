"""Why a webhook request is refused: one exception per answer, each with its HTTP status."""

from __future__ import annotations


class WebhookRejected(Exception):
    """A request the ingest path refuses; `status` and `error` become the JSON answer."""

    status = 400
    error = "bad_request"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class UnknownSource(WebhookRejected):
    status, error = 404, "unknown_source"


class MethodNotAllowed(WebhookRejected):
    status, error = 405, "method_not_allowed"


class UnsupportedMediaType(WebhookRejected):
    status, error = 415, "unsupported_media_type"


class SignatureInvalid(WebhookRejected):
    status, error = 401, "unauthorized"


class PayloadTooLarge(WebhookRejected):
    status, error = 413, "payload_too_large"


class BodyUnparseable(WebhookRejected):
    status, error = 400, "bad_request"


class EventRejected(WebhookRejected):
    """The body parsed but the event fails the canonical schema."""

    status, error = 422, "invalid_event"


class EventIgnored(Exception):
    """Not a refusal: a genuine delivery of something keap-relay does not act on (a Stripe refund, a
    WooCommerce order not yet paid). It is answered 200 with `detail`, so the vendor does not retry,
    and nothing is queued."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)
