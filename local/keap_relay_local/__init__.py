"""The local stack (dev only, never deployed): keap-relay's AWS parts stood in for on 127.0.0.1, and its CLI."""
