"""Purchases: webhooks (POST /purchases/{source}), the purchases work queue, EventBridge and direct invokes."""

from keap_relay.aws.pipeline import lambda_handler_for

handler = lambda_handler_for("purchase")
