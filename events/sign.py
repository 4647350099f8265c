"""Re-sign sample events in place after editing them, so their signatures and checksums stay true.

    python events/sign.py events/forms/http-generic.json [more files...]

API Gateway HTTP API samples (payload v2) get `x-relay-signature: sha256=<hex HMAC-SHA256 of the body>`
and a matching `content-length`; the secret is the source's entry in the `WEBHOOK_SECRETS` environment
variable (a JSON object source -> secret) or "local-dev-secret". A body written as a JSON object
instead of a string is serialised compactly first, which is the easy way to edit one.
SQS samples get each record's `md5OfBody` recomputed (and object bodies serialised the same way).
Other files are left alone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_SECRET = "local-dev-secret"  # noqa: S105 - the published local-only secret of the samples
SIGNATURE_HEADER = "x-relay-signature"


def as_body(value: Any) -> str:
    """The exact body string for a sample: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def relay_signature(body: str, secret: str) -> str:
    """The `x-relay-signature` header value for `body` (the generic source's scheme)."""
    digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def secret_for(source: str) -> str:
    """The local signing secret of `source`, from WEBHOOK_SECRETS or the local default."""
    raw = os.environ.get("WEBHOOK_SECRETS", "")
    secrets = json.loads(raw) if raw.strip() else {}
    return str(secrets.get(source, DEFAULT_SECRET))


def _sign_http(event: dict[str, Any]) -> None:
    body = as_body(event.get("body", ""))
    event["body"] = body
    headers = event.setdefault("headers", {})
    source = (event.get("pathParameters") or {}).get("source", "")
    headers[SIGNATURE_HEADER] = relay_signature(body, secret_for(source))
    headers["content-length"] = str(len(body.encode()))


def _checksum_sqs(event: dict[str, Any]) -> None:
    for record in event["Records"]:
        record["body"] = as_body(record["body"])
        # md5 is what SQS itself reports here; it is a checksum, not a security measure.
        record["md5OfBody"] = hashlib.md5(record["body"].encode(), usedforsecurity=False).hexdigest()


# Which kind of sample a file holds, by a key only that kind has: each kind is refreshed its own way.
_REFRESHERS = (
    (lambda e: e.get("version") == "2.0" and "requestContext" in e and e.get("body"), _sign_http),
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
        done = refresh(Path(name))
        print(f"{name}: {'updated' if done else 'no signature or checksum to update'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
