"""Webhook sources: one adapter module per service, each with verify(), parse() and sign().

An adapter module declares, besides those functions:
  KINDS          the canonical kinds it sends (its URL is /forms/, /purchases/ or /unsubscribes/<name>)
  CONTENT_TYPES  the media types its parse() reads
  AUTH           ("signature",), ("token",) or both: by its signature, or by ?token=<secret> in the URL
  and optionally METHODS (default POST), SUCCESS_STATUS (what to answer once queued when the vendor
  counts only 200 as delivered), FIELD_HINTS (where a canonical field comes from, for 422 details),
  handshake(method, headers, raw_body) for a vendor's URL check, and sign_body() when the vendor signs
  inside the body.

What adapters share lives in the private modules beside them, one concern each: _bodies (reading a body by
its content type), _signatures (HMAC header schemes, the URL token, signed-time tolerance), _values (text,
money, times, ids), _event (contact, address, line items, the event) and _form_fields (form labels ->
contact fields). The webhook path loads the package, _signatures, and the request's adapter with its imports.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ._signatures import TOKEN_PARAM, verify_token

__all__ = [
    "DEFAULT_SUCCESS_STATUS",
    "SOURCES",
    "SOURCE_NAMES",
    "TOKEN_PARAM",
    "SignedRequest",
    "Source",
    "adapter",
    "sign_request",
    "source_spec",
    "sources_for",
    "verify_token",
]

# URL source names, each the name of its adapter module here. A vendor adapter is added here and nowhere else.
SOURCE_NAMES: tuple[str, ...] = (
    "generic",
    # forms
    "typeform",
    "jotform",
    "webflow",
    "tally",
    "gravityforms",
    "elementor",
    # purchases
    "shopify",
    "woocommerce",
    "stripe",
    "gumroad",
    "lemonsqueezy",
    # unsubscribes
    "mailchimp",
    "sendgrid",
    "mailgun",
    "postmark",
)
DEFAULT_SUCCESS_STATUS = 202


class _Adapters(Mapping[str, ModuleType]):
    """URL source name -> adapter module, imported on first use: a webhook needs its own adapter only, and a
    cold start that compiles all sixteen (Lambda's layer has no .pyc) would pay for the other fifteen."""

    def __getitem__(self, name: str) -> ModuleType:
        if name not in SOURCE_NAMES:
            raise KeyError(name)
        return importlib.import_module(f"{__name__}.{name}")

    def __iter__(self) -> Iterator[str]:
        return iter(SOURCE_NAMES)

    def __len__(self) -> int:
        return len(SOURCE_NAMES)

    def __contains__(self, name: object) -> bool:
        return name in SOURCE_NAMES

    def __repr__(self) -> str:
        return f"<source adapters: {', '.join(SOURCE_NAMES)}>"


SOURCES: Mapping[str, ModuleType] = _Adapters()


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


@functools.cache
def _spec(name: str) -> Source:
    return _source(name, SOURCES[name])


def adapter(source: str) -> ModuleType | None:
    """The adapter module serving /{kind}/{source}, or None when there is none."""
    return SOURCES.get(source)


def source_spec(source: str) -> Source | None:
    """The declarations of the adapter serving /{kind}/{source}, or None when there is none."""
    return _spec(source) if source in SOURCE_NAMES else None  # a sender's unknown name is never cached


def sources_for(kind: str) -> tuple[str, ...]:
    """The source names a function of `kind` accepts, in registry order (this loads every adapter)."""
    return tuple(name for name in SOURCE_NAMES if kind in _spec(name).kinds)


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
    if source not in SOURCE_NAMES:
        raise KeyError(source)
    spec = _spec(source)
    sign_body = getattr(spec.module, "sign_body", None)
    body = sign_body(raw_body, secret) if sign_body else raw_body
    headers = spec.module.sign(body, secret, **kw)
    query = {TOKEN_PARAM: secret} if spec.auth == ("token",) else {}
    return SignedRequest(body, headers, query)
