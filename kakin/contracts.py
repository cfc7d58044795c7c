"""The public names other systems rely on, in one place.

Services start and signal workflows by these names, support scripts and the Temporal
UI's saved searches use them, and recorded histories hold them: changing one breaks
running subscriptions or somebody's integration. ``tests/subscriptions/test_contracts.py`` pins
every value, so a change here is deliberate (and needs a migration path).

This module imports nothing of kakin's and does no I/O: workflows, activities,
services and every face may import it.
"""

from __future__ import annotations

from typing import Final

from temporalio.common import SearchAttributeKey

# -- workflow -------------------------------------------------------------------------

WORKFLOW_TYPE: Final = "SubscriptionWorkflow"
WORKFLOW_ID_PREFIX: Final = "subscription-"
DEFAULT_TASK_QUEUE: Final = "billing"  # KAKIN_TASK_QUEUE overrides it


def workflow_id(subscription_id: str) -> str:
    """The workflow id of a subscription: ``subscription-<subscription id>``."""
    return f"{WORKFLOW_ID_PREFIX}{subscription_id}"


# -- messages to a subscription's workflow --------------------------------------------

SIGNAL_CANCEL: Final = "cancel"
SIGNAL_PAYMENT_METHOD_UPDATED: Final = "payment_method_updated"
SIGNAL_PAYMENT_RECEIVED: Final = "payment_received"

UPDATE_PAUSE: Final = "pause"
UPDATE_RESUME: Final = "resume"
UPDATE_CHANGE_PLAN: Final = "change_plan"
UPDATE_GRANT_GRACE: Final = "grant_grace"
UPDATE_WAIVE_INVOICE: Final = "waive_invoice"

QUERY_STATUS: Final = "status"

SIGNALS: Final = (SIGNAL_CANCEL, SIGNAL_PAYMENT_METHOD_UPDATED, SIGNAL_PAYMENT_RECEIVED)
UPDATES: Final = (
    UPDATE_PAUSE,
    UPDATE_RESUME,
    UPDATE_CHANGE_PLAN,
    UPDATE_GRANT_GRACE,
    UPDATE_WAIVE_INVOICE,
)
QUERIES: Final = (QUERY_STATUS,)

# -- activities (their names are in every recorded history) ---------------------------

ACTIVITY_CREATE_INVOICE: Final = "create_invoice"
ACTIVITY_CREATE_FINAL_INVOICE: Final = "create_final_invoice"
ACTIVITY_FINALIZE_INVOICE: Final = "finalize_invoice"
ACTIVITY_ISSUE_INVOICE: Final = "issue_invoice"
ACTIVITY_RENDER_AND_EMAIL: Final = "render_and_email"
ACTIVITY_RENDER_INVOICE: Final = "render_invoice"
ACTIVITY_CHANGE_PLAN: Final = "change_plan"
ACTIVITY_RECORD_INVOICE_CHANGE: Final = "record_invoice_change"
ACTIVITY_CHARGE_INVOICE: Final = "charge_invoice"
ACTIVITY_ISSUE_AND_CHARGE_INVOICE: Final = "issue_and_charge_invoice"
ACTIVITY_RECORD_EXTERNAL_PAYMENT: Final = "record_external_payment"
ACTIVITY_RECORD_PAYMENT_METHOD: Final = "record_payment_method"
ACTIVITY_RECORD_SUBSCRIPTION_CHANGE: Final = "record_subscription_change"
ACTIVITY_SEND_EMAIL: Final = "send_email"

ACTIVITIES: Final = (
    ACTIVITY_CREATE_INVOICE,
    ACTIVITY_CREATE_FINAL_INVOICE,
    ACTIVITY_FINALIZE_INVOICE,
    ACTIVITY_ISSUE_INVOICE,
    ACTIVITY_RENDER_AND_EMAIL,
    ACTIVITY_RENDER_INVOICE,
    ACTIVITY_CHANGE_PLAN,
    ACTIVITY_RECORD_INVOICE_CHANGE,
    ACTIVITY_CHARGE_INVOICE,
    ACTIVITY_RECORD_EXTERNAL_PAYMENT,
    ACTIVITY_RECORD_PAYMENT_METHOD,
    ACTIVITY_RECORD_SUBSCRIPTION_CHANGE,
    ACTIVITY_SEND_EMAIL,
    ACTIVITY_ISSUE_AND_CHARGE_INVOICE,
)

# -- application error types (ApplicationError.type, matched by retry policies) ---------

ERROR_INVOICE_NOT_OPEN: Final = "InvoiceNotOpen"  # the invoice was paid or written off
ERROR_LIVE_MODE_REFUSED: Final = "LiveModeRefused"  # a test clock against a live key
ERROR_PROCESSING: Final = "Processing"  # Stripe is still processing the payment
ERROR_PERMANENT_EMAIL: Final = "PermanentEmailError"  # the provider refused for good
ERROR_INVALID_REQUEST: Final = "InvalidRequest"  # an update the workflow refuses

# -- patch ids (workflow.patched): each is in the histories of running workflows --------

PATCH_FINAL_USAGE_INVOICE: Final = "final-usage-invoice"
PATCH_COMPACT_CYCLE: Final = "compact-cycle"
PATCH_RECORDS_WITH_EMAIL: Final = "records-with-email"
PATCH_LOCAL_CALENDAR: Final = "local-calendar"
PATCH_RUN_OF_RENEWALS: Final = "run-of-renewals"

PATCHES: Final = (
    PATCH_FINAL_USAGE_INVOICE,
    PATCH_COMPACT_CYCLE,
    PATCH_RECORDS_WITH_EMAIL,
    PATCH_LOCAL_CALENDAR,
    PATCH_RUN_OF_RENEWALS,
)

# -- outgoing webhooks (workflows of their own: the subscription's histories are untouched) --

WEBHOOK_DISPATCH_WORKFLOW: Final = "WebhookDispatchWorkflow"
WEBHOOK_DISPATCH_WORKFLOW_ID: Final = "webhook-dispatch"  # one per namespace and task queue
WEBHOOK_DELIVERY_WORKFLOW: Final = "WebhookDeliveryWorkflow"
WEBHOOK_DELIVERY_ID_PREFIX: Final = "webhook-delivery-"
SIGNAL_WEBHOOK_POKE: Final = "poke"  # look at the ledger now, not at the next poll

ACTIVITY_DISPATCH_WEBHOOKS: Final = "dispatch_webhooks"
ACTIVITY_MARK_WEBHOOKS_DISPATCHED: Final = "mark_webhooks_dispatched"
ACTIVITY_TRY_WEBHOOK: Final = "try_webhook"

WEBHOOK_WORKFLOWS: Final = (WEBHOOK_DISPATCH_WORKFLOW, WEBHOOK_DELIVERY_WORKFLOW)
WEBHOOK_ACTIVITIES: Final = (
    ACTIVITY_DISPATCH_WEBHOOKS,
    ACTIVITY_MARK_WEBHOOKS_DISPATCHED,
    ACTIVITY_TRY_WEBHOOK,
)


def webhook_delivery_workflow_id(delivery_id: str, run: int = 0) -> str:
    """``webhook-delivery-<delivery id>`` for the first run, ``...-<n>`` for the n-th resend."""
    return f"{WEBHOOK_DELIVERY_ID_PREFIX}{delivery_id}" + (f"-{run}" if run else "")


# -- search attributes (not encrypted: never names, emails or card data) ---------------

SUBSCRIPTION_STATUS = SearchAttributeKey.for_keyword("SubscriptionStatus")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
PLAN_ID = SearchAttributeKey.for_keyword("PlanId")
NEXT_RENEWAL_AT = SearchAttributeKey.for_datetime("NextRenewalAt")

SEARCH_ATTRIBUTES: Final = (SUBSCRIPTION_STATUS, CUSTOMER_ID, PLAN_ID, NEXT_RENEWAL_AT)
