"""Re-sign sample events in place after editing them, so their signatures and checksums stay true.

    python events/sign.py events/forms/http-generic.json [more files...]
    python events/sign.py events/*/*.json

API Gateway HTTP API samples (payload v2) are signed the way their source's vendor signs (the adapter's
own sign(): Stripe-Signature, X-Shopify-Hmac-Sha256, ...; x-relay-signature for `generic`), or get
?token=<secret> in the URL for the sources that authenticate by token, and a matching `content-length`.
The secret is the source's entry in the `WEBHOOK_SECRETS` environment variable (a JSON object source ->
secret) when it has one, else in events/local-secrets.json (the local stack's defaults). A body written
as a JSON object instead of a string is serialised compactly first, which is the easy way to edit one.
Signatures with a timestamp (Stripe, Webflow, SendGrid, Mailgun) are made for now, so those samples go
stale: the demo re-signs every sample as it sends it.
SQS samples get each record's `md5OfBody` recomputed (and object bodies serialised the same way).
Other files are left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent

try:
    from keap_relay.events import sources
    from keap_relay_local.defaults import DEFAULT_WEBHOOK_SECRETS, LOCAL_SECRETS_FILE, LOCAL_WEBHOOK_SECRET
except ImportError:  # run with a Python that lacks the editable install: use the checkout's shared/ and local/
    sys.path[:0] = [str(HERE.parent / "shared"), str(HERE.parent / "local")]
    from keap_relay.events import sources
    from keap_relay_local.defaults import DEFAULT_WEBHOOK_SECRETS, LOCAL_SECRETS_FILE, LOCAL_WEBHOOK_SECRET


def as_body(value: Any) -> str:
    """The exact body string for a sample: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def secret_for(source: str) -> str:
    """The local signing secret of `source`: WEBHOOK_SECRETS, else events/local-secrets.json."""
    raw = os.environ.get("WEBHOOK_SECRETS", "")
    secrets = json.loads(raw) if raw.strip() else {}
    return str(secrets.get(source) or DEFAULT_WEBHOOK_SECRETS.get(source) or LOCAL_WEBHOOK_SECRET)


def _set_query(event: dict[str, Any], query: dict[str, str]) -> None:
    params = {**(event.get("queryStringParameters") or {}), **query}
    event["queryStringParameters"] = params
    event["rawQueryString"] = urlencode(params)


def _sign_http(event: dict[str, Any]) -> None:
    source = (event.get("pathParameters") or {}).get("source", "")
    method = event.get("requestContext", {}).get("http", {}).get("method", "POST")
    headers = event.setdefault("headers", {})
    secret = secret_for(source)
    if method != "POST":  # a vendor's URL check (Mailchimp's GET): only the URL's token to refresh
        signed = sources.sign_request(source, b"", secret)
        if signed.query:
            _set_query(event, signed.query)
        return
    body = as_body(event.get("body", ""))
    # A path without an adapter of its own is signed the generic way (x-relay-signature).
    signed = sources.sign_request(source if sources.adapter(source) else "generic", body.encode(), secret)
    event["body"] = body = signed.body.decode()
    for name, value in signed.headers.items():
        if name != "content-type" or "content-type" not in headers:  # the sample's own type (and charset) stays
            headers[name] = value
    if signed.query:
        _set_query(event, signed.query)
    headers["content-length"] = str(len(body.encode()))


def _checksum_sqs(event: dict[str, Any]) -> None:
    for record in event["Records"]:
        record["body"] = as_body(record["body"])
        # md5 is what SQS itself reports here; it is a checksum, not a security measure.
        record["md5OfBody"] = hashlib.md5(record["body"].encode(), usedforsecurity=False).hexdigest()


def _is_http(event: dict[str, Any]) -> bool:
    if event.get("version") != "2.0" or "requestContext" not in event:
        return False
    source = sources.source_spec((event.get("pathParameters") or {}).get("source", ""))
    return bool(event.get("body")) or (source is not None and source.by_token)


# Which kind of sample a file holds, by a key only that kind has: each kind is refreshed its own way.
_REFRESHERS = (
    (_is_http, _sign_http),
    (lambda e: isinstance(e.get("Records"), list), _checksum_sqs),
)


def refresh(path: Path) -> bool:
    """Re-sign or re-checksum the sample at `path` in place; False when it needs neither."""
    event = json.loads(path.read_text(encoding="utf-8"))
    for applies, fix in _REFRESHERS:
        if isinstance(event, dict) and applies(event):
            fix(event)
            path.write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            return True
    return False


def main(argv: list[str]) -> int:
    """Refresh every file named on the command line; report what was done to each."""
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for name in argv:
        if Path(name).resolve() == LOCAL_SECRETS_FILE:
            continue
        done = refresh(Path(name))
        print(f"{name}: {'updated' if done else 'no signature or checksum to update'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
