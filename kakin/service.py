"""Split into kakin/services/customers.py, subscriptions.py and payments.py; these
re-exports go when every import has moved."""

from kakin.services.catalog import create_price
from kakin.services.customers import create_customer
from kakin.services.errors import InvalidRequestError
from kakin.services.payments import (
    claim_payment_method,
    report_payment,
    retry_payment_now,
    update_payment_method,
)
from kakin.services.subscriptions import (
    cancel_subscription,
    change_plan,
    grant_grace,
    handle,
    pause_subscription,
    preview_plan_change,
    resume_subscription,
    start_subscription,
    subscription_status,
    waive_invoice,
    workflow_id,
)

__all__ = [
    "InvalidRequestError",
    "cancel_subscription",
    "change_plan",
    "claim_payment_method",
    "create_customer",
    "create_price",
    "grant_grace",
    "handle",
    "pause_subscription",
    "preview_plan_change",
    "report_payment",
    "resume_subscription",
    "retry_payment_now",
    "start_subscription",
    "subscription_status",
    "update_payment_method",
    "waive_invoice",
    "workflow_id",
]
