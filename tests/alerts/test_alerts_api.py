"""Alerts through the HTTP API: who may set and read them, what a bad alert is told,
a cap refused per event by ``POST /v1/usage`` and raised by support (audited), and the
email sent from the API's own ingestion."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import api_keys
from models.tables import AuditLog
from tests.api.test_api_limits import serve
from tests.usage.test_usage_ingestion import at, metered_subscription


@pytest.fixture(scope="module")
def outbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("alerts-outbox")


@pytest.fixture(scope="module")
def base(
    pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway, outbox: Path
) -> Iterator[str]:
    yield from serve(pg_sessions, stripe_gateway, outbox_dir=outbox)


@pytest.fixture(scope="module")
def keys(pg_sessions: sessionmaker[Session]) -> dict[str, str]:
    return {
        str(role): api_keys.create_key(pg_sessions, name=f"alerts {role}", role=role).secret
        for role in api_keys.Role
    }


def as_role(base: str, keys: dict[str, str], role: str) -> httpx.Client:
    return httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {keys[role]}"}, timeout=30
    )


def event(subscription_id: str, code: str, event_id: str, gb: int, day: float) -> dict[str, Any]:
    return {"event_id": event_id, "metric": code, "timestamp": at(day).isoformat(),
            "subscription_id": subscription_id, "properties": {"gb": gb}}  # fmt: skip


def test_roles_and_what_a_bad_alert_is_told(
    base: str, keys: dict[str, str], pg_sessions: sessionmaker[Session]
) -> None:
    customer_id, subscription_id, _ = metered_subscription(pg_sessions)
    alerts = f"/v1/subscriptions/{subscription_id}/alerts"
    body = {"watches": "bill", "budget": 5000, "thresholds": [{"percent": 80}, {"percent": 100}]}
    with as_role(base, keys, "finance") as finance:
        assert finance.post(alerts, json=body).status_code == 403
        assert finance.get(alerts).status_code == 403
        assert finance.get(f"/v1/customers/{customer_id}/alerts").status_code == 403
    with as_role(base, keys, "service") as service:
        made = service.post(alerts, json=body)
        assert made.status_code == 201, made.text
        alert = made.json()
        assert (alert["levels"], alert["currency"], alert["current"]) == (
            ["4000", "5000"],
            "JPY",
            "1000",
        )
        assert [a["id"] for a in service.get(alerts).json()["data"]] == [alert["id"]]
        # Descending thresholds, a percent without a budget, a cap on a bill alert.
        for wrong, says in [
            ({**body, "thresholds": [{"value": 5000}, {"value": 4000}]}, "ascending"),
            ({"watches": "bill", "thresholds": [{"percent": 50}]}, "needs a budget"),
            ({**body, "hard_cap": 10}, "hard cap is for a usage alert"),
            ({"watches": "usage", "metric": "nope", "thresholds": [{"value": 1}]}, "no metric"),
        ]:
            answer = service.post(alerts, json=wrong)
            assert answer.status_code in (404, 422) and says in answer.json()["error"]["message"], (
                answer.text
            )
        # A customer's alert is not reachable under a subscription, nor the other way.
        other = service.post(f"/v1/customers/{customer_id}/alerts", json=body).json()
        assert service.get(f"{alerts}/{other['id']}").status_code == 404
        assert service.get(f"/v1/customers/{customer_id}/alerts/{alert['id']}").status_code == 404
        assert service.delete(f"{alerts}/{alert['id']}").json()["deleted"] is True
        assert service.get(f"{alerts}/{alert['id']}").status_code == 404


def test_a_cap_refuses_per_event_and_support_raises_it(
    base: str, keys: dict[str, str], pg_sessions: sessionmaker[Session], outbox: Path
) -> None:
    _, subscription_id, code = metered_subscription(pg_sessions)
    alerts = f"/v1/subscriptions/{subscription_id}/alerts"
    body = {"watches": "usage", "metric": code, "thresholds": [{"value": 50}], "hard_cap": 100}
    with as_role(base, keys, "service") as service:
        alert = service.post(alerts, json=body).json()
        events = [event(subscription_id, code, f"u{n}", gb, n) for n, gb in enumerate((60, 40, 5))]
        receipt = service.post("/v1/usage", json={"events": events}).json()
        assert [r["status"] for r in receipt["results"]] == ["accepted", "accepted", "rejected"]
        assert "usage cap of 100" in receipt["results"][2]["reason"]
        shown = service.get(f"{alerts}/{alert['id']}").json()
        assert (shown["current"], shown["cap_reached"], shown["fired"]) == (
            "100",
            True,
            ["50", "cap:100"],
        )
        # The subscription shows the cap too (Temporal is out of reach here: live is null).
        [cap] = service.get(f"/v1/subscriptions/{subscription_id}").json()["usage_caps"]
        assert cap == {"alert_id": alert["id"], "metric": code, "cap": "100", "used": "100",
                       "reached": True}  # fmt: skip
    sent = [p.read_text() for p in outbox.glob("alert_*.html")]
    assert any(subscription_id in page and "50 Storage" in page for page in sent)
    with as_role(base, keys, "support") as support:
        raised = support.patch(
            f"{alerts}/{alert['id']}", json={"hard_cap": 200, "reason": "asked by phone"}
        )
        assert raised.status_code == 200 and raised.json()["cap_reached"] is False
    with as_role(base, keys, "service") as service:
        receipt = service.post("/v1/usage", json={"events": events}).json()
        assert [r["status"] for r in receipt["results"]] == ["duplicate", "duplicate", "accepted"]
    with pg_sessions() as session:
        changed = (AuditLog.entity_id == alert["id"], AuditLog.action == "usage_cap_changed")
        audit = session.scalars(select(AuditLog).where(*changed)).one()
        assert audit.actor.startswith("api-key:") and "alerts support" in audit.actor
        assert (audit.reason, audit.details["from"], audit.details["to"]) == (
            "asked by phone",
            "100",
            "200",
        )
