"""keap-relay: webhooks from forms, shops and email services into Keap ContactService sequences."""

__version__ = "0.1.0"
