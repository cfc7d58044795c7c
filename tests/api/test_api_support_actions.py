"""Pause and resume over HTTP (support and admin keys), against the dev server and a worker."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.worker import Worker

from kakin.services.api_keys import CreatedKey
from kakin.views.subscriptions import SubscriptionStatusOut
from models.payloads import StatusView
from models.tables import AuditLog
from tests.api.test_api_subscriptions import customer_and_price, stored_subscription
from tests.helpers import as_role, client, error_of, eventually

pytestmark = pytest.mark.devserver


def actor(made_keys: dict[str, CreatedKey], role: str) -> str:
    info = made_keys[role].info
    return f"api-key:{info.id} ({info.name})"


async def test_support_pauses_and_resumes_a_subscription(
    url: str,
    made_keys: dict[str, CreatedKey],
    module_worker: Worker,
    pg_sessions: sessionmaker[Session],
) -> None:
    customer_id, price_id = customer_and_price(url, made_keys)
    async with (
        as_role(url, made_keys, "service") as service,
        as_role(url, made_keys, "support") as support,
    ):
        created = await service.post(
            "/v1/subscriptions", json={"customer_id": customer_id, "price_id": price_id}
        )
        assert created.status_code == 201, created.text
        subscription_id = created.json()["id"]

        async def first_invoice_paid() -> bool:
            listed = await support.get("/v1/invoices", params={"subscription_id": subscription_id})
            return [i["status"] for i in listed.json()["data"]] == ["paid"]

        await eventually(first_invoice_paid, timeout=30, what="the first invoice paid")

        path = f"/v1/subscriptions/{subscription_id}"
        headers = {"Idempotency-Key": f"pause-{subscription_id}"}
        body = {"reason": "the customer is travelling"}
        paused = await support.post(f"{path}/pause", json=body, headers=headers)
        assert paused.status_code == 200, paused.text
        view = paused.json()
        assert view["object"] == "subscription_status"
        assert (view["subscription_id"], view["status"]) == (subscription_id, "paused")
        assert (view["next_action"], view["next_action_at"]) == ("resume", None)
        assert view["price_id"] == price_id
        assert set(view) - {"object"} == {f.name for f in dataclasses.fields(StatusView)}

        replayed = await support.post(f"{path}/pause", json=body, headers=headers)
        assert replayed.status_code == 200, replayed.text
        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert replayed.json() == view

        def audited() -> bool:
            with pg_sessions() as session:
                rows = session.scalars(
                    select(AuditLog).where(
                        AuditLog.entity_id == subscription_id, AuditLog.to_status == "paused"
                    )
                ).all()
                return [(r.actor, r.reason) for r in rows] == [
                    (actor(made_keys, "support"), "the customer is travelling")
                ]

        await eventually(audited, timeout=30, what="the pause in the audit log")

        again = await support.post(f"{path}/pause", json={"reason": "twice"})
        assert error_of(again, 409) == {
            "type": "conflict",
            "message": "Only an active or trialing subscription can be paused; it is paused.",
        }

        resumed = await support.post(f"{path}/resume", json={})
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["status"] == "active"
        assert resumed.json()["next_action"] == "renew"

        def resume_audited() -> bool:
            with pg_sessions() as session:
                rows = session.scalars(
                    select(AuditLog).where(
                        AuditLog.entity_id == subscription_id, AuditLog.from_status == "paused"
                    )
                ).all()
                return [(r.to_status, r.actor) for r in rows] == [
                    ("active", actor(made_keys, "support"))
                ]

        await eventually(resume_audited, timeout=30, what="the resume in the audit log")

        not_paused = await support.post(f"{path}/resume")  # no body at all is fine too
        assert error_of(not_paused, 409)["message"] == (
            "Only a paused subscription can be resumed; it is active."
        )

        # admin may too; the subscription is left canceled
        async with as_role(url, made_keys, "admin") as admin:
            by_admin = await admin.post(f"{path}/pause", json={"reason": "admin check"})
            assert by_admin.status_code == 200, by_admin.text
            assert by_admin.json()["status"] == "paused"
        canceled = await support.post(f"{path}/cancel", json={"reason": "end of the test"})
        assert canceled.status_code == 202, canceled.text


@pytest.mark.parametrize(
    ("action", "body"), [("pause", {"reason": "r"}), ("resume", {})], ids=["pause", "resume"]
)
def test_service_keys_may_not_pause_or_resume(
    url: str, made_keys: dict[str, CreatedKey], action: str, body: dict[str, Any]
) -> None:
    with client(url, made_keys["service"].secret) as http:
        response = http.post(f"/v1/subscriptions/sub_x/{action}", json=body)
    assert error_of(response, 403)["message"] == (
        f"A service key may not call POST /v1/subscriptions/sub_x/{action}; "
        "this needs a key with the role admin or support."
    )


@pytest.mark.parametrize(
    ("action", "body"), [("pause", {"reason": "r"}), ("resume", {})], ids=["pause", "resume"]
)
def test_unknown_subscriptions_are_404(
    url: str, made_keys: dict[str, CreatedKey], action: str, body: dict[str, Any]
) -> None:
    with client(url, made_keys["support"].secret) as http:
        response = http.post(f"/v1/subscriptions/sub_unknown/{action}", json=body)
    assert error_of(response, 404) == {
        "type": "not_found",
        "message": "Subscription 'sub_unknown' does not exist.",
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "reason is required."),
        ({"reason": ""}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"reason": "x", "until": "tomorrow"}, "until is not an accepted field."),
    ],
)
def test_a_pause_needs_a_reason(
    url: str,
    made_keys: dict[str, CreatedKey],
    pg_sessions: sessionmaker[Session],
    body: dict[str, Any],
    message: str,
) -> None:
    subscription_id = stored_subscription(pg_sessions)
    with client(url, made_keys["support"].secret) as http:
        error = error_of(http.post(f"/v1/subscriptions/{subscription_id}/pause", json=body), 422)
    assert message in error["message"]


@pytest.mark.parametrize(
    ("action", "body"), [("pause", {"reason": "r"}), ("resume", {})], ids=["pause", "resume"]
)
def test_a_subscription_whose_workflow_has_ended_is_409(
    url: str,
    made_keys: dict[str, CreatedKey],
    pg_sessions: sessionmaker[Session],
    action: str,
    body: dict[str, Any],
) -> None:
    subscription_id = stored_subscription(pg_sessions)
    with client(url, made_keys["admin"].secret) as http:
        response = http.post(f"/v1/subscriptions/{subscription_id}/{action}", json=body)
    assert error_of(response, 409)["message"] == (
        f"Subscription {subscription_id!r} has ended; its workflow no longer runs."
    )


def test_the_status_fields_follow_the_status_query() -> None:
    fields = set(SubscriptionStatusOut.model_fields) - {"object"}
    assert fields == {f.name for f in dataclasses.fields(StatusView)}


def test_the_openapi_document_lists_pause_and_resume(url: str) -> None:
    with client(url) as http:
        paths = http.get("/openapi.json").json()["paths"]
    assert "post" in paths["/v1/subscriptions/{subscription_id}/pause"]
    assert "post" in paths["/v1/subscriptions/{subscription_id}/resume"]
