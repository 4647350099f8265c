"""Webhook sources: one adapter module per service, each with verify(), parse() and sign().

An adapter module declares, besides those functions:
  KINDS          the canonical kinds it sends (its URL is /forms/, /purchases/ or /unsubscribes/<name>)
  CONTENT_TYPES  the media types its parse() reads
  AUTH           ("signature",), ("token",) or both: by its signature, or by ?token=<secret> in the URL
  and optionally METHODS (default POST), SUCCESS_STATUS (what to answer once queued when the vendor
  counts only 200 as delivered), FIELD_HINTS (where a canonical field comes from, for 422 details),
  handshake(method, headers, raw_body) for a vendor's URL check, and sign_body() when the vendor signs
  inside the body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from . import (
    elementor,
    generic,
    gravityforms,
    gumroad,
    jotform,
    lemonsqueezy,
    mailchimp,
    mailgun,
    postmark,
    sendgrid,
    shopify,
    stripe,
    tally,
    typeform,
    webflow,
    woocommerce,
)
from ._common import TOKEN_PARAM

# URL source name -> adapter module. A vendor adapter is added here and nowhere else.
SOURCES: dict[str, ModuleType] = {
    "generic": generic,
    # forms
    "typeform": typeform,
    "jotform": jotform,
    "webflow": webflow,
    "tally": tally,
    "gravityforms": gravityforms,
    "elementor": elementor,
    # purchases
    "shopify": shopify,
    "woocommerce": woocommerce,
    "stripe": stripe,
    "gumroad": gumroad,
    "lemonsqueezy": lemonsqueezy,
    # unsubscribes
    "mailchimp": mailchimp,
    "sendgrid": sendgrid,
    "mailgun": mailgun,
    "postmark": postmark,
}
DEFAULT_SUCCESS_STATUS = 202


@dataclass(frozen=True)
class Source:
    """One adapter's declarations, with the defaults filled in."""

    name: str
    module: ModuleType
    kinds: tuple[str, ...]
    content_types: tuple[str, ...]
    auth: tuple[str, ...]
    methods: tuple[str, ...] = ("POST",)
    success_status: int = DEFAULT_SUCCESS_STATUS
    field_hints: Mapping[str, str] = field(default_factory=dict)
    handshake: Callable[[str, Mapping[str, str], bytes], dict[str, Any] | None] | None = None

    @property
    def by_token(self) -> bool:
        return "token" in self.auth

    @property
    def by_signature(self) -> bool:
        return "signature" in self.auth


def _source(name: str, module: ModuleType) -> Source:
    return Source(
        name=name,
        module=module,
        kinds=tuple(module.KINDS),
        content_types=tuple(module.CONTENT_TYPES),
        auth=tuple(module.AUTH),
        methods=tuple(getattr(module, "METHODS", ("POST",))),
        success_status=int(getattr(module, "SUCCESS_STATUS", DEFAULT_SUCCESS_STATUS)),
        field_hints=dict(getattr(module, "FIELD_HINTS", {})),
        handshake=getattr(module, "handshake", None),
    )


_SPECS: dict[str, Source] = {name: _source(name, module) for name, module in SOURCES.items()}


def adapter(source: str) -> ModuleType | None:
    """The adapter module serving /{kind}/{source}, or None when there is none."""
    return SOURCES.get(source)


def source_spec(source: str) -> Source | None:
    """The declarations of the adapter serving /{kind}/{source}, or None when there is none."""
    return _SPECS.get(source)


def sources_for(kind: str) -> tuple[str, ...]:
    """The source names a function of `kind` accepts, in registry order."""
    return tuple(name for name, spec in _SPECS.items() if kind in spec.kinds)


@dataclass(frozen=True)
class SignedRequest:
    """A body as the vendor would send it: the (possibly re-signed) bytes, headers and URL query."""

    body: bytes
    headers: dict[str, str]
    query: dict[str, str] = field(repr=False)  # holds the token of token sources: a secret


def sign_request(source: str, raw_body: bytes, secret: str, **kw: Any) -> SignedRequest:
    """Sign `raw_body` the vendor's way with `secret` (tests, the demo, events/sign.py).

    Keyword arguments go to the adapter's sign() (e.g. timestamp=, topic=); a token source gets
    ?token=<secret>; a source that signs inside its body (Mailgun) gets its body re-signed.
    """
    spec = _SPECS[source]
    sign_body = getattr(spec.module, "sign_body", None)
    body = sign_body(raw_body, secret) if sign_body else raw_body
    headers = spec.module.sign(body, secret, **kw)
    query = {TOKEN_PARAM: secret} if spec.auth == ("token",) else {}
    return SignedRequest(body, headers, query)
