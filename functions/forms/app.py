"""Form submissions: webhooks (POST /forms/{source}), the forms work queue, EventBridge and direct invokes."""

from keap_relay.aws.pipeline import lambda_handler_for

handler = lambda_handler_for("form_submission")
