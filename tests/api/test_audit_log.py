"""Reading the audit log: ``GET /v1/audit-log`` and ``kakin audit list``.

The rows are written as kakin writes them (``audit_sql.audit``, what the activities and
services call); each test makes customers of its own, so the filters isolate them from
what other tests wrote to the same database. The API runs on PostgreSQL and SQLite;
the CLI runs as a person runs it, in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform.settings import Settings
from kakin.services import api_keys, catalog
from models.db import make_engine, make_session_factory
from models.repositories import audit as audit_sql
from models.repositories.common import new_id
from models.tables import Customer, Invoice, Subscription

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2027, 1, 31, 0, 0, tzinfo=UTC)
SETTINGS = Settings(stripe_api_key="sk_test_kakin", database_url="sqlite:///unused.db")
FIELDS = {
    "object", "id", "entity_type", "entity_id", "action", "from_status", "to_status",
    "actor", "reason", "details", "occurred_at", "recorded_at",
}  # fmt: skip


@dataclass
class Story:
    """Two customers' audit trails; ``entries`` in the order they were written."""

    customer: str
    other_customer: str
    subscription: str  # paused and resumed; its invoice was finalized and paid
    second_subscription: str  # canceled by a service key
    other_subscription: str
    invoice: str
    key_actor: str
    entries: list[tuple[str, str, datetime]]  # (entity id, action, occurred at)


def tell(sessions: sessionmaker[Session]) -> Story:
    price = catalog.create_price(
        sessions, product_name="Pro plan", currency="JPY", unit_amount=3980
    )
    with sessions() as session:
        customers = [new_id("cus"), new_id("cus")]
        for customer in customers:
            session.add(
                Customer(
                    id=customer,
                    email="taro@example.jp",
                    name="山田 太郎",
                    currency="JPY",
                    locale="ja",
                    time_zone="Asia/Tokyo",
                )
            )
        subscriptions = [new_id("sub") for _ in range(3)]
        for subscription, customer in zip(
            subscriptions, [customers[0], customers[0], customers[1]], strict=True
        ):
            session.add(
                Subscription(
                    id=subscription,
                    customer_id=customer,
                    price_id=price,
                    status="active",
                    workflow_id=f"subscription-{subscription}",
                )
            )
        session.flush()
        invoice = new_id("in")
        session.add(
            Invoice(
                id=invoice,
                business_key=f"invoice:{invoice}",
                currency="JPY",
                subscription_id=subscriptions[0],
                customer_id=customers[0],
                status="paid",
                period_start=T0,
                period_end=T0 + timedelta(days=28),
                issued_at=T0,
            )
        )
        session.flush()
        key_actor = f"api-key:{new_id('key')} (shop backend)"
        written = [
            ("invoice", invoice, "finalized", "draft", "open", "workflow", "", T0),
            ("invoice", invoice, "paid", "open", "paid", "workflow", "", T0 + timedelta(hours=1)),
            ("subscription", subscriptions[0], "paused", "active", "paused", "support:ken",
             "山田様 travelling until March", T0 + timedelta(days=1)),
            ("subscription", subscriptions[1], "canceled", "active", "canceled", key_actor,
             "customer asked in the shop", T0 + timedelta(days=2)),
            ("customer", customers[0], "payment_method_updated", None, None, "cli", "",
             T0 + timedelta(days=3)),
            ("subscription", subscriptions[2], "canceled", "active", "canceled", "support:ken",
             "other customer", T0 + timedelta(days=4)),
            ("subscription", subscriptions[0], "resumed", "paused", "active", "support:ken", "",
             T0 + timedelta(days=5)),
        ]  # fmt: skip
        for entity_type, entity_id, action, before, after, actor, reason, at in written:
            audit_sql.audit(
                session,
                entity_type=entity_type,
                entity_id=entity_id,
                action=action,
                from_status=before,
                to_status=after,
                actor=actor,
                reason=reason,
                occurred_at=at,
                details={"n": len(reason)},
            )
            session.flush()  # ids in the order written
        session.commit()
    return Story(
        customer=customers[0],
        other_customer=customers[1],
        subscription=subscriptions[0],
        second_subscription=subscriptions[1],
        other_subscription=subscriptions[2],
        invoice=invoice,
        key_actor=key_actor,
        entries=[(w[1], w[2], w[7]) for w in written],
    )


@pytest.fixture
def sessions(database_url: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(database_url))


@dataclass
class Api:
    story: Story
    clients: dict[str, httpx.AsyncClient]


@pytest.fixture
async def api(sessions: sessionmaker[Session], stripe_gateway: StripeGateway) -> AsyncIterator[Api]:
    async def no_temporal() -> Any:
        raise AssertionError("the audit log never needs Temporal")

    app = create_app(
        settings=SETTINGS, sessions=sessions, temporal=no_temporal, stripe=stripe_gateway
    )
    story = tell(sessions)
    transport = httpx.ASGITransport(app=app)
    clients: dict[str, httpx.AsyncClient] = {}
    for role in ("service", "support", "admin", "none"):
        headers = {}
        if role != "none":
            secret = api_keys.create_key(sessions, name=f"audit {role}", role=role).secret
            headers = {"Authorization": f"Bearer {secret}"}
        clients[role] = httpx.AsyncClient(
            transport=transport, base_url="http://kakin", headers=headers
        )
    try:
        yield Api(story, clients)
    finally:
        for http in clients.values():
            await http.aclose()


def actions(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(entry["entity_id"], entry["action"]) for entry in body["data"]]


def newest_first(story: Story, *keep: str) -> list[tuple[str, str]]:
    return [(entity, action) for entity, action, _ in reversed(story.entries) if entity in keep]


async def test_support_and_admin_keys_read_it_service_keys_may_not(api: Api) -> None:
    params = {"customer_id": api.story.customer}
    for role in ("support", "admin"):
        answer = await api.clients[role].get("/v1/audit-log", params=params)
        assert answer.status_code == 200, (role, answer.text)
    refused = await api.clients["service"].get("/v1/audit-log", params=params)
    assert refused.status_code == 403
    assert "support" in refused.json()["error"]["message"]
    assert (await api.clients["none"].get("/v1/audit-log")).status_code == 401


async def test_a_customers_trail_newest_first_with_every_field(api: Api) -> None:
    story = api.story
    answer = await api.clients["support"].get(
        "/v1/audit-log", params={"customer_id": story.customer}
    )
    body = answer.json()
    assert body["object"] == "list" and body["has_more"] is False
    # The customer's own entry, both its subscriptions' and its invoice's; not the other's.
    assert actions(body) == newest_first(
        story, story.customer, story.subscription, story.second_subscription, story.invoice
    )
    ids = [entry["id"] for entry in body["data"]]
    assert ids == sorted(ids, reverse=True)
    paused = next(e for e in body["data"] if e["action"] == "paused")
    assert set(paused) == FIELDS
    assert paused == {
        **paused,
        "object": "audit_entry",
        "entity_type": "subscription",
        "entity_id": story.subscription,
        "from_status": "active",
        "to_status": "paused",
        "actor": "support:ken",
        "reason": "山田様 travelling until March",
        "details": {"n": len("山田様 travelling until March")},
    }
    assert datetime.fromisoformat(paused["occurred_at"]) == T0 + timedelta(days=1)
    assert datetime.fromisoformat(paused["recorded_at"]).tzinfo is not None


async def test_filters_by_subscription_actor_action_and_time(api: Api) -> None:
    story, http = api.story, api.clients["admin"]

    async def get(**params: str) -> list[tuple[str, str]]:
        answer = await http.get("/v1/audit-log", params=params)
        assert answer.status_code == 200, answer.text
        return actions(answer.json())

    # A subscription's trail includes its invoices'.
    assert await get(subscription_id=story.subscription) == [
        (story.subscription, "resumed"),
        (story.subscription, "paused"),
        (story.invoice, "paid"),
        (story.invoice, "finalized"),
    ]
    mine = {"customer_id": story.customer}
    assert await get(**mine, actor="support:ken") == [
        (story.subscription, "resumed"),
        (story.subscription, "paused"),
    ]
    # An API key's entries by its id alone; a prefix of an id is not that key.
    key = story.key_actor.split(" ")[0]
    assert await get(actor=key) == [(story.second_subscription, "canceled")]
    assert await get(actor=key[:-2]) == []
    assert await get(actor=story.key_actor) == [(story.second_subscription, "canceled")]
    assert await get(**mine, action="canceled") == [(story.second_subscription, "canceled")]
    assert await get(action="canceled", actor="support:ken", customer_id=story.other_customer) == [
        (story.other_subscription, "canceled")
    ]
    # since included, until excluded; any zone (09:00 in Tokyo is midnight UTC).
    assert await get(**mine, since="2027-02-01T09:00:00+09:00", until="2027-02-05T00:00:00Z") == [
        (story.customer, "payment_method_updated"),
        (story.second_subscription, "canceled"),
        (story.subscription, "paused"),
    ]
    assert await get(subscription_id=story.subscription, customer_id=story.other_customer) == []


async def test_pages_newest_first_never_skip_or_repeat(api: Api) -> None:
    story, http = api.story, api.clients["support"]
    seen: list[tuple[str, str]] = []
    pages = []
    after: int | None = None
    while True:
        params: dict[str, Any] = {"customer_id": story.customer, "limit": 2}
        if after is not None:
            params["starting_after"] = after
        body = (await http.get("/v1/audit-log", params=params)).json()
        pages.append(len(body["data"]))
        seen += actions(body)
        if not body["has_more"]:
            break
        after = body["data"][-1]["id"]
    assert pages == [2, 2, 2]
    assert seen == newest_first(
        story, story.customer, story.subscription, story.second_subscription, story.invoice
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "2027-02-01T00:00:00"}, "since"),  # no zone
        (
            {"since": "2027-02-02T00:00:00Z", "until": "2027-02-01T00:00:00Z"},
            "since must be before until",
        ),
        ({"starting_after": 2**31 - 2}, "starting_after"),
        ({"limit": 101}, "limit"),
        ({"actor": "x" * 201}, "actor"),
    ],
    ids=["naive-time", "empty-range", "unknown-cursor", "limit", "long-actor"],
)
async def test_bad_filters_are_422_naming_them(
    api: Api, params: dict[str, Any], field: str
) -> None:
    answer = await api.clients["support"].get("/v1/audit-log", params=params)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["error"]["message"]


# -- kakin audit list ------------------------------------------------------------------


def kakin(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAKIN_DATABASE_URL": url, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "kakin.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


async def test_kakin_audit_list_prints_a_table_and_the_apis_json(
    postgres_url: str, pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway
) -> None:
    story = tell(pg_sessions)
    shown = kakin(postgres_url, "audit", "list", "--customer", story.customer)
    assert shown.returncode == 0, shown.stderr
    header, rule, *rows = shown.stdout.splitlines()
    assert header.split()[:4] == ["id", "occurred", "(UTC)", "what"]
    assert set(rule.replace(" ", "")) == {"-"}
    expected = newest_first(
        story, story.customer, story.subscription, story.second_subscription, story.invoice
    )
    assert len(rows) == len(expected)
    for row, (entity, action) in zip(rows, expected, strict=True):
        assert row.split()[4:6] == [entity, action], row  # id, date, time, type, id, action
    paused = next(row for row in rows if row.split()[5] == "paused")
    assert "2027-02-01 00:00Z" in paused and "active → paused" in paused
    assert "support:ken" in paused and "山田様 travelling until March" in paused
    # aligned: the action column starts under its header (CJK counted as two columns)
    assert all(
        row.index(action) == header.index("action")
        for row, (_, action) in zip(rows, expected, strict=True)
    )

    filtered = kakin(
        postgres_url,
        "audit",
        "list",
        "--customer",
        story.customer,
        "--actor",
        "support:ken",
        "--since",
        "2027-02-01",
        "--until",
        "2027-02-05T09:00+09:00",
        "--json",
    )
    assert filtered.returncode == 0, filtered.stderr
    printed = json.loads(filtered.stdout)
    assert actions(printed) == [(story.subscription, "paused")]

    # The same shape, field for field, as GET /v1/audit-log with the same filters.
    app = create_app(
        settings=SETTINGS,
        sessions=pg_sessions,
        temporal=lambda: None,  # type: ignore[arg-type,return-value]
        stripe=stripe_gateway,
    )
    secret = api_keys.create_key(pg_sessions, name="audit cli", role="support").secret
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://kakin",
        headers={"Authorization": f"Bearer {secret}"},
    ) as http:
        answer = await http.get(
            "/v1/audit-log",
            params={
                "customer_id": story.customer,
                "actor": "support:ken",
                "since": "2027-02-01T00:00:00Z",
                "until": "2027-02-05T00:00:00Z",
                "limit": 20,
            },
        )
    assert printed == answer.json()

    paged = json.loads(
        kakin(
            postgres_url,
            "audit",
            "list",
            "--subscription",
            story.subscription,
            "--limit",
            "3",
            "--json",
        ).stdout
    )
    assert paged["has_more"] is True and len(paged["data"]) == 3
    rest = kakin(
        postgres_url,
        "audit",
        "list",
        "--subscription",
        story.subscription,
        "--starting-after",
        str(paged["data"][-1]["id"]),
    )
    assert rest.returncode == 0 and len(rest.stdout.splitlines()) == 3  # header, rule, one row
    assert " finalized " in rest.stdout.splitlines()[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2027-02-01T00:00"], "since needs a time zone"),
        (["--starting-after", "2147483646"], "starting_after"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_kakin_audit_list_refuses_bad_filters_in_one_line(
    postgres_url: str, args: list[str], message: str
) -> None:
    result = kakin(postgres_url, "audit", "list", *args)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
