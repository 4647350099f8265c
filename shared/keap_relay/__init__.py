"""keap-relay: webhooks into Keap ContactService sequences."""
