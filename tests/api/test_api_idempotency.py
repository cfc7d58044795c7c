"""``Idempotency-Key`` on POST: replays get the first response, and the work happens once."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.idempotency import RETENTION, prune, request_digest
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform.settings import Settings
from kakin.services import api_keys
from models.db import make_engine, make_session_factory
from models.tables import ApiKey, Customer, IdempotencyKey, Subscription
from tests.api.test_api import CUSTOMER, PRICE
from tests.helpers import client, connect_to, error_of, eventually, running

pytestmark = pytest.mark.devserver

# No worker polls this queue: the workflows started here only need to exist.
TASK_QUEUE = f"billing-idempotency-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def url(
    pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway, dev_env: WorkflowEnvironment
) -> Iterator[str]:
    settings = Settings(
        stripe_api_key="sk_test_kakin", database_url="sqlite:///unused.db", task_queue=TASK_QUEUE
    )
    app = create_app(
        settings=settings,
        sessions=pg_sessions,
        temporal=connect_to(dev_env.client.service_client.config.target_host),
        stripe=stripe_gateway,
    )
    with running(app) as base:
        yield base


def new_key(sessions: sessionmaker[Session], role: str) -> str:
    return api_keys.create_key(sessions, name=f"idempotency {role}", role=role).secret


@pytest.fixture
def service_key(pg_sessions: sessionmaker[Session]) -> str:
    return new_key(pg_sessions, "service")


@pytest.fixture
def admin_key(pg_sessions: sessionmaker[Session]) -> str:
    return new_key(pg_sessions, "admin")


def idem(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def customer_and_price(url: str, service_key: str, admin_key: str) -> tuple[str, str]:
    with client(url, service_key) as http:
        customer_id = http.post("/v1/customers", json=CUSTOMER).json()["id"]
    with client(url, admin_key) as http:
        price_id = http.post("/v1/prices", json=PRICE).json()["id"]
    return customer_id, price_id


async def test_starting_a_subscription_twice_with_one_key_starts_one_workflow(
    url: str,
    service_key: str,
    admin_key: str,
    pg_sessions: sessionmaker[Session],
    dev_env: WorkflowEnvironment,
) -> None:
    customer_id, price_id = customer_and_price(url, service_key, admin_key)
    body = {"customer_id": customer_id, "price_id": price_id}
    with client(url, service_key) as http:
        first = http.post("/v1/subscriptions", json=body, headers=idem("start-1"))
        second = http.post("/v1/subscriptions", json=body, headers=idem("start-1"))
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    assert second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"

    with pg_sessions() as session:
        rows = session.scalars(
            select(Subscription.id).where(Subscription.customer_id == customer_id)
        ).all()
    assert rows == [first.json()["id"]]

    query = f'CustomerId = "{customer_id}"'

    async def listed() -> bool:
        return bool([wf async for wf in dev_env.client.list_workflows(query)])

    await eventually(listed, what="the workflow listed")
    workflows = [wf.id async for wf in dev_env.client.list_workflows(query)]
    assert workflows == [f"subscription-{first.json()['id']}"]


def test_a_replay_returns_the_stored_response_even_when_things_changed_since(
    url: str, service_key: str, pg_sessions: sessionmaker[Session]
) -> None:
    with client(url, service_key) as http:
        first = http.post("/v1/customers", json=CUSTOMER, headers=idem("customer-1"))
        assert first.status_code == 201, first.text
        http.patch(f"/v1/customers/{first.json()['id']}", json={"name": "changed"})
        replay = http.post("/v1/customers", json=CUSTOMER, headers=idem("customer-1"))
    assert (replay.status_code, replay.json()) == (201, first.json())
    with pg_sessions() as session:
        owner = owner_of(pg_sessions, service_key)
        row = session.scalars(
            select(IdempotencyKey).where(IdempotencyKey.api_key_id == owner)
        ).one()
        assert (row.key, row.method, row.path) == ("customer-1", "POST", "/v1/customers")
        assert row.response_status == 201
        assert row.response_body == first.json()
        assert len(row.request_hash) == 64


def test_a_refusal_does_not_use_up_the_key_so_the_corrected_retry_succeeds(
    url: str, service_key: str, admin_key: str, pg_sessions: sessionmaker[Session]
) -> None:
    customer_id, price_id = customer_and_price(url, service_key, admin_key)
    past = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    with client(url, service_key) as http:
        in_the_past = http.post(
            "/v1/subscriptions",
            json={"customer_id": customer_id, "price_id": price_id, "start_at": past},
            headers=idem("start-1"),
        )
        unknown = http.post(
            "/v1/subscriptions",
            json={"customer_id": "cus_nope", "price_id": price_id},
            headers=idem("start-1"),
        )
        corrected = http.post(
            "/v1/subscriptions",
            json={"customer_id": customer_id, "price_id": price_id},
            headers=idem("start-1"),
        )
        replay = http.post(
            "/v1/subscriptions",
            json={"customer_id": customer_id, "price_id": price_id},
            headers=idem("start-1"),
        )
    assert "start_at is in the past" in error_of(in_the_past, 422)["message"]
    assert error_of(unknown, 404)["message"] == "Customer 'cus_nope' does not exist."
    assert "Idempotent-Replayed" not in unknown.headers
    assert corrected.status_code == 201, corrected.text
    assert (replay.status_code, replay.json()) == (201, corrected.json())
    assert replay.headers["Idempotent-Replayed"] == "true"
    with pg_sessions() as session:
        started = session.scalars(
            select(Subscription.id).where(Subscription.customer_id == customer_id)
        ).all()
    assert started == [corrected.json()["id"]]


def test_a_refused_cancel_holds_no_claim_on_its_key(url: str, service_key: str) -> None:
    # Refused (no such subscription): not replayed, and another body with the key is
    # not a "used with a different request body" 409 but a request of its own.
    with client(url, service_key) as http:
        first = http.post(
            "/v1/subscriptions/sub_nope/cancel", json={"reason": "a"}, headers=idem("cancel-1")
        )
        other = http.post(
            "/v1/subscriptions/sub_nope/cancel", json={"reason": "b"}, headers=idem("cancel-1")
        )
    assert error_of(first, 404)["message"] == "Subscription 'sub_nope' does not exist."
    assert error_of(other, 404) == error_of(first, 404)
    assert "Idempotent-Replayed" not in other.headers


def test_the_same_key_with_a_different_body_or_path_is_409(
    url: str, admin_key: str, pg_sessions: sessionmaker[Session]
) -> None:
    email = f"never-{secrets.token_hex(4)}@example.jp"
    with client(url, admin_key) as http:
        first = http.post("/v1/prices", json=PRICE, headers=idem("price-1"))
        assert first.status_code == 201, first.text
        other_body = http.post(
            "/v1/prices", json={**PRICE, "unit_amount": 1}, headers=idem("price-1")
        )
        other_path = http.post(
            "/v1/customers", json={**CUSTOMER, "email": email}, headers=idem("price-1")
        )
    assert error_of(other_body, 409) == {
        "type": "conflict",
        "message": "This Idempotency-Key was used with a different request body; "
        "use a new key for a different request.",
    }
    assert error_of(other_path, 409)["message"] == (
        "This Idempotency-Key was used for POST /v1/prices; use a new key for a different request."
    )
    with pg_sessions() as session:
        emails = session.scalar(
            select(func.count()).select_from(Customer).where(Customer.email == email)
        )
    assert emails == 0


def test_keys_are_scoped_per_api_key(url: str, pg_sessions: sessionmaker[Session]) -> None:
    one, two = new_key(pg_sessions, "service"), new_key(pg_sessions, "service")
    with client(url, one) as first, client(url, two) as second:
        a = first.post("/v1/customers", json=CUSTOMER, headers=idem("shared"))
        b = second.post("/v1/customers", json={**CUSTOMER, "name": "other"}, headers=idem("shared"))
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]
    assert "Idempotent-Replayed" not in b.headers


def owner_of(sessions: sessionmaker[Session], secret: str) -> str:
    with sessions() as session:
        return session.scalars(
            select(ApiKey.id).where(ApiKey.secret_hash == api_keys.hash_secret(secret))
        ).one()


def test_a_key_still_in_progress_is_409(
    url: str, service_key: str, pg_sessions: sessionmaker[Session]
) -> None:
    content = json.dumps(CUSTOMER).encode()
    with pg_sessions() as session:  # as a first request, still running, left it
        session.add(
            IdempotencyKey(
                api_key_id=owner_of(pg_sessions, service_key),
                key="busy",
                method="POST",
                path="/v1/customers",
                request_hash=request_digest(content),
            )
        )
        session.commit()
    with client(url, service_key) as http:
        busy = http.post(
            "/v1/customers",
            content=content,
            headers={**idem("busy"), "Content-Type": "application/json"},
        )
    assert error_of(busy, 409)["message"] == (
        "A request with this Idempotency-Key is still in progress."
    )


def test_an_invalid_request_does_not_take_the_key(
    url: str, service_key: str, pg_sessions: sessionmaker[Session]
) -> None:
    with client(url, service_key) as http:
        invalid = http.post("/v1/customers", json={"name": "x"}, headers=idem("later"))
        assert invalid.status_code == 422
        valid = http.post("/v1/customers", json=CUSTOMER, headers=idem("later"))
    assert valid.status_code == 201, valid.text


def test_concurrent_duplicates_do_the_work_once(
    url: str, service_key: str, pg_sessions: sessionmaker[Session]
) -> None:
    email = f"race-{secrets.token_hex(4)}@example.jp"

    def post(_: int) -> httpx.Response:
        with client(url, service_key) as http:
            return http.post(
                "/v1/customers", json={**CUSTOMER, "email": email}, headers=idem("race")
            )

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(post, range(6)))
    created = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    for response in responses:
        if response.status_code != 201:
            assert error_of(response, 409)["message"] == (
                "A request with this Idempotency-Key is still in progress."
            )
    with pg_sessions() as session:
        count = session.scalar(
            select(func.count()).select_from(Customer).where(Customer.email == email)
        )
    assert count == 1


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_an_idempotency_key_is_1_to_255_characters(url: str, service_key: str, key: str) -> None:
    with client(url, service_key) as http:
        response = http.post("/v1/customers", json=CUSTOMER, headers=idem(key))
    assert "Idempotency-Key" in error_of(response, 422)["message"]


def test_spacing_and_key_order_do_not_make_a_different_body(url: str, service_key: str) -> None:
    spaced = json.dumps(dict(reversed(list(CUSTOMER.items()))), indent=2).encode()
    with client(url, service_key) as http:
        first = http.post("/v1/customers", json=CUSTOMER, headers=idem("canonical"))
        again = http.post(
            "/v1/customers",
            content=spaced,
            headers={**idem("canonical"), "Content-Type": "application/json"},
        )
    assert first.status_code == 201, first.text
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"


# -- retention: keys are forgotten after a day -------------------------------------------


def age_key(sessions: sessionmaker[Session], owner: str, key: str, age: timedelta) -> None:
    """Move a stored key's creation back by ``age``, as if it had been used that long ago."""
    with sessions() as session:
        row = session.scalars(
            select(IdempotencyKey).where(
                IdempotencyKey.api_key_id == owner, IdempotencyKey.key == key
            )
        ).one()
        row.created_at = datetime.now(UTC) - age
        session.commit()


def test_a_key_older_than_a_day_is_a_new_request(
    url: str, service_key: str, pg_sessions: sessionmaker[Session]
) -> None:
    owner = owner_of(pg_sessions, service_key)
    renamed = {**CUSTOMER, "name": "次の日の顧客"}
    with client(url, service_key) as http:
        first = http.post("/v1/customers", json=CUSTOMER, headers=idem("daily"))
        assert first.status_code == 201, first.text
        age_key(pg_sessions, owner, "daily", RETENTION - timedelta(hours=1))
        still_held = http.post("/v1/customers", json=renamed, headers=idem("daily"))
        age_key(pg_sessions, owner, "daily", RETENTION + timedelta(hours=1))
        later = http.post("/v1/customers", json=renamed, headers=idem("daily"))
        replay = http.post("/v1/customers", json=renamed, headers=idem("daily"))
    assert "different request body" in error_of(still_held, 409)["message"]
    assert later.status_code == 201, later.text
    assert "Idempotent-Replayed" not in later.headers
    assert later.json()["id"] != first.json()["id"]
    assert later.json()["name"] == "次の日の顧客"
    # The key now holds the new request: its replay gets the new answer.
    assert (replay.status_code, replay.json()) == (201, later.json())
    assert replay.headers["Idempotent-Replayed"] == "true"


def stored_keys(sessions: sessionmaker[Session], owner: str) -> set[str]:
    with sessions() as session:
        return set(
            session.scalars(select(IdempotencyKey.key).where(IdempotencyKey.api_key_id == owner))
        )


def test_expired_keys_are_deleted_when_the_api_next_takes_a_keyed_request(
    postgres_url: str,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    dev_env: WorkflowEnvironment,
    service_key: str,
) -> None:
    # An idle API key's old keys: nobody will reuse them, so only a sweep removes them.
    idle = owner_of(pg_sessions, new_key(pg_sessions, "service"))
    with pg_sessions() as session:
        for key, age in (("old", RETENTION + timedelta(minutes=5)), ("recent", timedelta(hours=1))):
            session.add(
                IdempotencyKey(
                    api_key_id=idle,
                    key=key,
                    method="POST",
                    path="/v1/customers",
                    request_hash="0" * 64,
                    response_status=201,
                    response_body={},
                    created_at=datetime.now(UTC) - age,
                )
            )
        session.commit()
    # A new app on its own session factory: its first keyed request is due a sweep.
    app = create_app(
        settings=Settings(stripe_api_key="sk_test_kakin", database_url="sqlite:///unused.db"),
        sessions=make_session_factory(make_engine(postgres_url)),
        temporal=connect_to(dev_env.client.service_client.config.target_host),
        stripe=stripe_gateway,
    )
    with running(app) as base, client(base, service_key) as http:
        assert stored_keys(pg_sessions, idle) == {"old", "recent"}
        response = http.post("/v1/customers", json=CUSTOMER, headers=idem("sweeper"))
    assert response.status_code == 201, response.text
    assert stored_keys(pg_sessions, idle) == {"recent"}
    assert stored_keys(pg_sessions, owner_of(pg_sessions, service_key)) == {"sweeper"}


def test_prune_deletes_only_expired_keys(database_url: str) -> None:
    sessions = make_session_factory(make_engine(database_url))
    owner = api_keys.create_key(sessions, name="prune", role="service").info.id
    now = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    second = timedelta(seconds=1)
    ages = {"expired": RETENTION + second, "just-under": RETENTION - second, "fresh": second}
    with sessions() as session:
        for key, age in ages.items():
            session.add(
                IdempotencyKey(
                    api_key_id=owner,
                    key=key,
                    method="POST",
                    path="/v1/prices",
                    request_hash="0" * 64,
                    created_at=now - age,
                )
            )
        session.commit()
    assert prune(sessions, now=now) >= 1
    assert stored_keys(sessions, owner) == {"just-under", "fresh"}
