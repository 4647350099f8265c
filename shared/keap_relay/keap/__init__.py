"""Keap (Infusionsoft): XML-RPC codec, transport, ContactService and REST v2 clients, error tree; no AWS code.

Names are loaded from their modules on first use, so that importing one light module of this package
(`keap_relay.keap.defaults`, from the webhook path) does not load the clients.
"""

from __future__ import annotations

import importlib
from typing import Any

# Where each public name lives; `from keap_relay.keap import X` finds it there.
_HOMES = ("defaults", "errors", "session", "client", "rest", "v2_contact", "throttle", "codec")


def __getattr__(name: str) -> Any:
    if name.startswith("_"):
        raise AttributeError(name)
    for home in _HOMES:
        module = importlib.import_module(f"{__name__}.{home}")
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
