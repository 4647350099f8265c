"""The local stack's published, local-only credentials: one home for the dev secret and the emulator key."""

from __future__ import annotations

import json
from pathlib import Path

from keap_emulator.server import DEFAULT_API_KEY as EMULATOR_API_KEY

ROOT = Path(__file__).resolve().parents[2]
# The local webhook secrets, one per source; the samples in events/ are signed with them.
LOCAL_SECRETS_FILE = ROOT / "events" / "local-secrets.json"
DEFAULT_WEBHOOK_SECRETS: dict[str, str] = json.loads(LOCAL_SECRETS_FILE.read_text("utf-8"))
# The work queues' visibility timeout locally (the template's 180 s): a failed record is retried after seconds.
DEFAULT_VISIBILITY_TIMEOUT = 2
# The generic source's secret: what tests, benchmarks and the demo sign `x-relay-signature` with.
LOCAL_WEBHOOK_SECRET: str = DEFAULT_WEBHOOK_SECRETS["generic"]

__all__ = [
    "DEFAULT_VISIBILITY_TIMEOUT",
    "DEFAULT_WEBHOOK_SECRETS",
    "EMULATOR_API_KEY",
    "LOCAL_SECRETS_FILE",
    "LOCAL_WEBHOOK_SECRET",
    "ROOT",
]
