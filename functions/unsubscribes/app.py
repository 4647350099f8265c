"""Unsubscribes: webhooks (POST /unsubscribes/{source}), the unsubscribes work queue, EventBridge and direct invokes."""

from keap_relay.aws.pipeline import lambda_handler_for

handler = lambda_handler_for("unsubscribe")
