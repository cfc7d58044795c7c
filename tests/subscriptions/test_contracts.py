"""The public names are pinned: this test fails when any of them changes.

Running workflows, recorded histories, support scripts and saved searches in the
Temporal UI depend on these strings. Changing one needs a migration path; then change
the expected value here in the same commit, on purpose.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import sessionmaker
from temporalio import activity, workflow

from activities.invoicing import InvoicingActivities
from activities.notifications import NotificationActivities
from activities.payments import PaymentActivities
from activities.renewals import RenewalActivities
from kakin import contracts as c
from tests.conftest import make_activities
from workflows.subscription import SubscriptionWorkflow


def test_the_public_names_are_what_integrations_rely_on() -> None:
    assert c.WORKFLOW_TYPE == "SubscriptionWorkflow"
    assert c.workflow_id("sub_123") == "subscription-sub_123"
    assert c.DEFAULT_TASK_QUEUE == "billing"
    assert c.SIGNALS == ("cancel", "payment_method_updated", "payment_received")
    assert c.UPDATES == ("pause", "resume", "change_plan", "grant_grace", "waive_invoice")
    assert c.QUERIES == ("status",)
    assert c.ACTIVITIES == (
        "create_invoice",
        "create_final_invoice",
        "finalize_invoice",
        "issue_invoice",
        "render_and_email",
        "render_invoice",
        "change_plan",
        "record_invoice_change",
        "charge_invoice",
        "record_external_payment",
        "record_payment_method",
        "record_subscription_change",
        "send_email",
        "issue_and_charge_invoice",
    )
    assert (
        c.ERROR_INVOICE_NOT_OPEN,
        c.ERROR_LIVE_MODE_REFUSED,
        c.ERROR_PROCESSING,
        c.ERROR_PERMANENT_EMAIL,
        c.ERROR_INVALID_REQUEST,
    ) == (
        "InvoiceNotOpen",
        "LiveModeRefused",
        "Processing",
        "PermanentEmailError",
        "InvalidRequest",
    )
    assert c.PATCHES == (
        "final-usage-invoice",
        "compact-cycle",
        "records-with-email",
        "local-calendar",
        "run-of-renewals",
    )
    assert [key.name for key in c.SEARCH_ATTRIBUTES] == [
        "SubscriptionStatus",
        "CustomerId",
        "PlanId",
        "NextRenewalAt",
    ]
    assert [key.indexed_value_type.name for key in c.SEARCH_ATTRIBUTES] == [
        "KEYWORD",
        "KEYWORD",
        "KEYWORD",
        "DATETIME",
    ]


def test_the_workflow_registers_exactly_the_public_names() -> None:
    definition = workflow._Definition.must_from_class(SubscriptionWorkflow)
    assert definition.name == c.WORKFLOW_TYPE
    assert set(definition.signals) == set(c.SIGNALS)
    assert set(definition.updates) == set(c.UPDATES)
    assert set(definition.queries) == set(c.QUERIES)


def test_the_worker_registers_exactly_the_public_activity_names(tmp_path: Path) -> None:
    # Each activity class names its activities explicitly (name=contracts.ACTIVITY_...):
    # together they define every public name, once.
    defined = [
        definition.name
        for cls in (
            InvoicingActivities,
            PaymentActivities,
            NotificationActivities,
            RenewalActivities,
        )
        for attribute in vars(cls).values()
        if (definition := activity._Definition.from_callable(attribute)) is not None
    ]
    assert sorted(defined) == sorted(c.ACTIVITIES)
    # Built as the worker builds them; nothing is called, so no database is touched.
    activities = make_activities(sessionmaker(), None, tmp_path)  # type: ignore[arg-type]
    names = sorted(activity._Definition.must_from_callable(fn).name for fn in activities.all())
    assert names == sorted(c.ACTIVITIES)
