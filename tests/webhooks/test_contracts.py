"""The outgoing webhooks' public names: workflow types and ids, the signal, the
activities. Recorded histories and running workflows hold them: a change is deliberate."""

from __future__ import annotations

from temporalio import activity, workflow

from activities.webhooks import WebhookActivities
from kakin import contracts as c
from kakin.runtime import WEBHOOK_WORKFLOWS


def test_the_webhook_names_are_pinned() -> None:
    assert c.WEBHOOK_DISPATCH_WORKFLOW == "WebhookDispatchWorkflow"
    assert c.WEBHOOK_DISPATCH_WORKFLOW_ID == "webhook-dispatch"
    assert c.WEBHOOK_DELIVERY_WORKFLOW == "WebhookDeliveryWorkflow"
    assert c.webhook_delivery_workflow_id("wd_1") == "webhook-delivery-wd_1"
    assert c.webhook_delivery_workflow_id("wd_1", 2) == "webhook-delivery-wd_1-2"
    assert c.SIGNAL_WEBHOOK_POKE == "poke"
    assert c.WEBHOOK_ACTIVITIES == ("dispatch_webhooks", "mark_webhooks_dispatched", "try_webhook")
    # None of them is a billing name: the subscription's contracts are untouched.
    assert not set(c.WEBHOOK_ACTIVITIES) & set(c.ACTIVITIES)


def test_the_worker_registers_exactly_these_names() -> None:
    names = [workflow._Definition.must_from_class(cls).name for cls in WEBHOOK_WORKFLOWS]
    assert names == list(c.WEBHOOK_WORKFLOWS)
    defined = [
        d.name
        for attribute in vars(WebhookActivities).values()
        if (d := activity._Definition.from_callable(attribute)) is not None
    ]
    assert sorted(defined) == sorted(c.WEBHOOK_ACTIVITIES)
