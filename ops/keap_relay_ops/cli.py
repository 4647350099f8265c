"""`keap-relay`: the operator's entry point (placeholder until the commands move here)."""

from keap_relay_local.cli import main

__all__ = ["main"]
