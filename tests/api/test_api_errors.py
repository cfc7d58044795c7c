"""Every resource's refusals: 401, 403, 404, 409 and 422, each a one-sentence error body.

Every case is a real request to the running app (module fixtures in conftest), on the
dev server with a worker, so a 409 from a subscription is the workflow's own refusal.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api import access
from api.app import create_app
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services.api_keys import CreatedKey
from models.tables import Subscription
from tests.api.test_api import CUSTOMER, PRICE
from tests.api.test_api_subscriptions import stored_subscription
from tests.helpers import (
    OK_CARD,
    SETTINGS,
    as_role,
    client,
    connect_to,
    error_of,
    eventually,
    running,
)
from tests.payments.test_webhooks import SECRET, event, sign

pytestmark = pytest.mark.devserver

# A sentence break inside the message: ". " followed by a capital letter.
SECOND_SENTENCE = re.compile(r"[.!?]\s+[A-Z]")
# A sentence starts with a capital, or with the name of the field it is about.
STARTS = re.compile(r"[A-Z]|[a-z]+(_[a-z]+)* ")


def sentence(response: httpx.Response, status: int) -> str:
    """The error message, checked to be the one error shape and one sentence."""
    message = error_of(response, status)["message"]
    assert STARTS.match(message), message
    assert message.endswith("."), message
    assert "\n" not in message and not SECOND_SENTENCE.search(message[:-1]), message
    return message


@dataclass(frozen=True)
class Billed:
    """A live subscription whose first invoice is paid, and a price in another currency."""

    customer_id: str
    price_id: str
    subscription_id: str
    invoice_id: str
    usd_price_id: str


@pytest.fixture(scope="module")
async def billed(url: str, made_keys: dict[str, CreatedKey], module_worker: Worker) -> Billed:
    def as_(role: str) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {made_keys[role].secret}"}
        return httpx.AsyncClient(base_url=url, headers=headers, timeout=60)

    async with as_("service") as service, as_("admin") as admin:
        customer = await service.post("/v1/customers", json={**CUSTOMER, "card_number": OK_CARD})
        price = await admin.post("/v1/prices", json=PRICE)
        usd = await admin.post("/v1/prices", json={**PRICE, "currency": "USD", "unit_amount": 990})
        customer_id, price_id = customer.json()["id"], price.json()["id"]
        started = await service.post(
            "/v1/subscriptions", json={"customer_id": customer_id, "price_id": price_id}
        )
        assert started.status_code == 201, started.text
        subscription_id = started.json()["id"]
        invoices: list[dict[str, Any]] = []

        async def first_invoice_paid() -> bool:
            listed = await service.get("/v1/invoices", params={"subscription_id": subscription_id})
            invoices[:] = listed.json()["data"]
            return bool(invoices) and invoices[0]["status"] == "paid"

        await eventually(first_invoice_paid, what="the first invoice paid")
    return Billed(customer_id, price_id, subscription_id, invoices[0]["id"], usd.json()["id"])


@pytest.fixture(scope="module")
def canceled_id(pg_sessions: sessionmaker[Session]) -> str:
    """A subscription that has been canceled (its row; the workflow is long gone)."""
    subscription_id = stored_subscription(pg_sessions)
    with pg_sessions() as session:
        session.get_one(Subscription, subscription_id).status = "canceled"
        session.commit()
    return subscription_id


def call(
    url: str, key: str | None, method: str, path: str, body: Any = None, **headers: str
) -> httpx.Response:
    with client(url, key) as http:
        if body is None and method in {"POST", "PATCH"}:
            body = {}
        return http.request(method, path, json=body, headers=headers)


# -- 401: every endpoint but health, readiness and Stripe's wants a valid key ------------------

# The one table of who may call what (api/access.py): the API checks keys against it,
# and these tests hold the API, its OpenAPI document and the README to it.
AUTHENTICATED = sorted(access.ROLES)
PUBLIC = access.PUBLIC
ROLE_NAMES = [str(role) for role in access.ORDER]


def test_the_table_covers_every_endpoint(url: str) -> None:
    with client(url) as http:
        paths = http.get("/openapi.json").json()["paths"]
    documented = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert documented - PUBLIC == set(AUTHENTICATED)
    assert documented >= PUBLIC


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+?)_id\}", lambda m: f"{m.group(1)}_unknown", path)


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED)
@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        ({}, "The request needs an API key in 'Authorization: Bearer'."),
        ({"Authorization": "Bearer kk_admin_forged"}, "The API key is unknown or revoked."),
        ({"Authorization": "Basic a2FraW46a2FraW4="}, "needs an API key"),
    ],
    ids=["no-key", "unknown-key", "not-bearer"],
)
def test_without_a_valid_key_is_401(
    url: str, method: str, path: str, credentials: dict[str, str], message: str
) -> None:
    with httpx.Client(base_url=url, headers=credentials, timeout=30) as http:
        body = {"reason": "r"} if method in {"POST", "PATCH"} else None
        response = http.request(method, concrete(path), json=body)
    assert message in sentence(response, 401)
    assert error_of(response, 401)["type"] == "authentication_error"
    assert response.headers["WWW-Authenticate"] == "Bearer"


# -- 403: the key's role may not: every endpoint with every role, from the table ---------------


@pytest.mark.parametrize("role", ROLE_NAMES)
@pytest.mark.parametrize(("method", "path"), AUTHENTICATED)
def test_every_endpoint_admits_exactly_the_roles_of_the_table(
    url: str, made_keys: dict[str, CreatedKey], method: str, path: str, role: str
) -> None:
    # Unknown ids and empty bodies: an admitted key gets a 404, a 422 or a list, and
    # nothing changes; a key without the role gets the 403 first, before the id is
    # looked up (a 403 does not tell whether the object exists).
    allowed = access.ROLES[(method, path)]
    response = call(url, made_keys[role].secret, method, concrete(path))
    if role in allowed:
        assert response.status_code != 403, response.text
        assert response.status_code < 500, response.text
        return
    needs = " or ".join(sorted(allowed))
    assert sentence(response, 403) == (
        f"A {role} key may not call {method} {concrete(path)}; "
        f"this needs a key with the role {needs}."
    )
    assert error_of(response, 403)["type"] == "permission_error"


def test_admin_keys_may_call_everything_and_a_service_key_may_cancel() -> None:
    assert all(access.ADMIN in roles for roles in access.ROLES.values())
    # The decision of issue 11: a shop's backend cancels on its customer's request.
    assert access.SERVICE in access.ROLES[("POST", "/v1/subscriptions/{subscription_id}/cancel")]


ROLE_MENTION = re.compile(
    r"\(((?:service|support|admin)(?:(?:, | and | or )(?:service|support|admin))*)\)"
)


def test_the_openapi_document_states_the_roles_of_the_table(url: str) -> None:
    with client(url) as http:
        paths = http.get("/openapi.json").json()["paths"]
    for (method, path), roles in access.ROLES.items():
        operation = paths[path][method.lower()]
        names = access.listed(roles)
        assert operation["x-roles"] == names, (method, path)
        description = operation["description"]
        assert description.splitlines()[-1] == f"Roles: {', '.join(names)}.", (method, path)
        # A role named in the prose (say "(support, admin)") is the table's, too.
        for mention in ROLE_MENTION.findall(description):
            said = set(re.split(r", | and | or ", mention)) | {"admin"}
            assert said == set(names), (method, path, mention)


def test_the_readme_role_table_is_the_table() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    row = re.compile(r"^\| `(GET|POST|PATCH|PUT|DELETE) (/v1/\S+)` \|(.*)\|$", re.MULTILINE)
    header = "| endpoint | " + " | ".join(ROLE_NAMES) + " |"
    assert header in readme
    documented = {}
    for method, path, cells in row.findall(readme):
        marks = [cell.strip() for cell in cells.split("|")]
        assert set(marks) <= {"✓", "—"} and len(marks) == len(ROLE_NAMES), (method, path)
        documented[(method, path)] = {
            n for n, mark in zip(ROLE_NAMES, marks, strict=True) if mark == "✓"
        }
    assert documented == {
        endpoint: set(access.listed(roles)) for endpoint, roles in access.ROLES.items()
    }


# -- 404: an unknown id -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "method", "path", "body", "message"),
    [
        ("support", "GET", "/v1/customers/cus_unknown", None, "Customer 'cus_unknown'"),
        ("service", "PATCH", "/v1/customers/cus_unknown", {"name": "x"}, "Customer 'cus_unknown'"),
        ("support", "GET", "/v1/customers/cus_unknown/invoices", None, "Customer 'cus_unknown'"),
        ("support", "GET", "/v1/customers/cus_unknown/payments", None, "Customer 'cus_unknown'"),
        ("service", "GET", "/v1/prices/price_unknown", None, "Price 'price_unknown'"),
        ("admin", "POST", "/v1/prices/price_unknown/archive", None, "Price 'price_unknown'"),
        ("service", "GET", "/v1/subscriptions/sub_unknown", None, "Subscription 'sub_unknown'"),
        (
            "service",
            "POST",
            "/v1/subscriptions/sub_unknown/cancel",
            {"reason": "r"},
            "Subscription 'sub_unknown'",
        ),
        (
            "support",
            "POST",
            "/v1/subscriptions/sub_unknown/pause",
            {"reason": "r"},
            "Subscription 'sub_unknown'",
        ),
        (
            "support",
            "POST",
            "/v1/subscriptions/sub_unknown/resume",
            {},
            "Subscription 'sub_unknown'",
        ),
        (
            "service",
            "POST",
            "/v1/subscriptions/sub_unknown/change_plan",
            {"price_id": "price_unknown"},
            "Subscription 'sub_unknown'",
        ),
        (
            "service",
            "GET",
            "/v1/subscriptions/sub_unknown/change_plan/preview?price_id=price_unknown",
            None,
            "Subscription 'sub_unknown'",
        ),
        (
            "support",
            "POST",
            "/v1/subscriptions/sub_unknown/grace",
            {"days": 3, "reason": "r"},
            "Subscription 'sub_unknown'",
        ),
        ("service", "GET", "/v1/invoices/in_unknown", None, "Invoice 'in_unknown'"),
        ("service", "GET", "/v1/invoices/in_unknown/html", None, "Invoice 'in_unknown'"),
        (
            "support",
            "POST",
            "/v1/invoices/in_unknown/void",
            {"reason": "r"},
            "Invoice 'in_unknown'",
        ),
        (
            "support",
            "POST",
            "/v1/invoices/in_unknown/mark_uncollectible",
            {"reason": "r"},
            "Invoice 'in_unknown'",
        ),
        ("support", "POST", "/v1/invoices/in_unknown/retry", None, "Invoice 'in_unknown'"),
    ],
)
def test_an_unknown_id_is_404(
    url: str,
    made_keys: dict[str, CreatedKey],
    role: str,
    method: str,
    path: str,
    body: Any,
    message: str,
) -> None:
    response = call(url, made_keys[role].secret, method, path, body)
    assert sentence(response, 404) == f"{message} does not exist."
    assert error_of(response, 404)["type"] == "not_found"


def test_what_a_request_refers_to_must_exist_too(
    url: str, made_keys: dict[str, CreatedKey], billed: Billed
) -> None:
    service = made_keys["service"].secret
    subscription = f"/v1/subscriptions/{billed.subscription_id}"
    cases = [
        (
            "POST",
            "/v1/subscriptions",
            {"customer_id": "cus_unknown", "price_id": billed.price_id},
            "Customer 'cus_unknown' does not exist.",
        ),
        (
            "POST",
            "/v1/subscriptions",
            {"customer_id": billed.customer_id, "price_id": "price_unknown"},
            "Price 'price_unknown' does not exist.",
        ),
        (
            "POST",
            f"{subscription}/change_plan",
            {"price_id": "price_unknown"},
            "Price 'price_unknown' does not exist.",
        ),
        (
            "GET",
            f"{subscription}/change_plan/preview?price_id=price_unknown",
            None,
            "Price 'price_unknown' does not exist.",
        ),
    ]
    for method, path, body, message in cases:
        assert sentence(call(url, service, method, path, body), 404) == message, path


def test_an_unknown_endpoint_is_404(url: str, made_keys: dict[str, CreatedKey]) -> None:
    response = call(url, made_keys["admin"].secret, "GET", "/v1/keys")
    assert sentence(response, 404) == "There is no endpoint at GET /v1/keys."
    wrong_method = call(url, made_keys["admin"].secret, "DELETE", "/v1/customers")
    assert sentence(wrong_method, 405) == "DELETE is not allowed on /v1/customers."


LONG_ID = "sub_" + "x" * 4996  # 5,000 characters
WITH_AN_ID = [(m, p) for m, p in AUTHENTICATED if "_id}" in p]


@pytest.mark.parametrize(("method", "path"), WITH_AN_ID)
def test_an_id_in_a_path_is_bounded_like_an_id_in_a_body(
    url: str, made_keys: dict[str, CreatedKey], method: str, path: str
) -> None:
    # The first id too long; any other (an alert under its subscription) a short one.
    name, *others = re.findall(r"\{(\w+)\}", path)
    for other in others:
        path = path.replace(f"{{{other}}}", "x_1")
    response = call(url, made_keys["admin"].secret, method, path.replace(f"{{{name}}}", LONG_ID))
    assert (
        sentence(response, 422) == f"{name} is invalid: string should have at most 40 characters."
    )
    assert "xxxxxxxxxx" not in response.text


def test_a_long_path_is_never_echoed_whole(url: str, made_keys: dict[str, CreatedKey]) -> None:
    nowhere = call(url, made_keys["admin"].secret, "GET", f"/v1/nothing/{LONG_ID}")
    refused = call(url, made_keys["service"].secret, "POST", f"/v1/prices/{LONG_ID}/archive")
    assert sentence(nowhere, 404).startswith("There is no endpoint at GET /v1/nothing/sub_xxx")
    assert sentence(refused, 403).startswith("A service key may not call POST /v1/prices/sub_xxx")
    for response in (nowhere, refused):
        assert len(response.json()["error"]["message"]) < 250, response.text


# -- 409: a conflict with what was asked before, or with the object's state ------------------


@pytest.mark.parametrize(
    ("role", "path", "first", "second"),
    [
        ("service", "/v1/customers", {**CUSTOMER, "name": "A"}, {**CUSTOMER, "name": "B"}),
        ("admin", "/v1/prices", PRICE, {**PRICE, "unit_amount": 1}),
    ],
)
def test_an_idempotency_key_reused_with_another_body_is_409(
    url: str, made_keys: dict[str, CreatedKey], role: str, path: str, first: Any, second: Any
) -> None:
    # The first request succeeded (a refused one would have left the key free).
    key = {"Idempotency-Key": f"errors-{secrets.token_hex(6)}"}
    secret = made_keys[role].secret
    assert call(url, secret, "POST", path, first, **key).status_code == 201
    response = call(url, secret, "POST", path, second, **key)
    assert sentence(response, 409) == (
        "This Idempotency-Key was used with a different request body; "
        "use a new key for a different request."
    )
    assert error_of(response, 409)["type"] == "conflict"


async def test_a_live_subscription_refuses_what_its_state_does_not_allow(
    url: str, made_keys: dict[str, CreatedKey], billed: Billed
) -> None:
    # Async: the module's worker shares this event loop and must answer the updates.
    path = f"/v1/subscriptions/{billed.subscription_id}"
    async with as_role(url, made_keys, "support") as support:
        resume = sentence(await support.post(f"{path}/resume", json={}), 409)
        assert resume == "Only a paused subscription can be resumed; it is active."
        grace = sentence(await support.post(f"{path}/grace", json={"days": 3, "reason": "r"}), 409)
        assert grace == "A grace period is for a subscription in dunning; nothing is overdue."
        for action, done in [("void", "voided"), ("retry", "retried")]:
            response = await support.post(
                f"/v1/invoices/{billed.invoice_id}/{action}", json={"reason": "r"}
            )
            assert sentence(response, 409) == (
                f"Invoice {billed.invoice_id!r} is not the one in collection; "
                f"only an invoice in dunning can be {done}."
            )
        # The refusals changed nothing.
        assert (await support.get(path)).json()["live"]["status"] == "active"
        invoice = await support.get(f"/v1/invoices/{billed.invoice_id}")
        assert invoice.json()["status"] == "paid"


@pytest.mark.parametrize(
    ("role", "action", "body", "message"),
    [
        ("service", "cancel", {"reason": "again"}, "Subscription {id!r} is already canceled."),
        ("support", "pause", {"reason": "r"}, "Subscription {id!r} is canceled."),
        ("support", "resume", {}, "Subscription {id!r} is canceled."),
        ("service", "change_plan", {"price_id": "price_x"}, "Subscription {id!r} is canceled."),
        ("support", "grace", {"days": 1, "reason": "r"}, "Subscription {id!r} is canceled."),
    ],
)
def test_a_canceled_subscription_is_409(
    url: str,
    made_keys: dict[str, CreatedKey],
    canceled_id: str,
    role: str,
    action: str,
    body: Any,
    message: str,
) -> None:
    path = f"/v1/subscriptions/{canceled_id}/{action}"
    response = call(url, made_keys[role].secret, "POST", path, body)
    assert sentence(response, 409) == message.format(id=canceled_id)


# -- 422: a request that cannot be carried out as written ------------------------------------


@pytest.mark.parametrize(
    ("role", "method", "path", "body", "says"),
    [
        ("service", "POST", "/v1/customers", {**CUSTOMER, "currency": "XYZ"}, "currency"),
        ("service", "POST", "/v1/customers", {**CUSTOMER, "email": "not-an-email"}, "email"),
        ("service", "POST", "/v1/customers", {**CUSTOMER, "time_zone": "Mars/Base"}, "time_zone"),
        ("service", "POST", "/v1/customers", {**CUSTOMER, "locale": "fr"}, "locale"),
        ("service", "POST", "/v1/customers", {**CUSTOMER, "name": ""}, "name"),
        ("service", "POST", "/v1/customers", {**CUSTOMER, "vip": True}, "vip"),
        (
            "service",
            "POST",
            "/v1/customers",
            {**CUSTOMER, "card_number": "4111111111111111"},
            "card_number",
        ),
        ("service", "PATCH", "/v1/customers/cus_unknown", {"email": "nope"}, "email"),
        ("admin", "POST", "/v1/prices", {**PRICE, "unit_amount": -1}, "unit_amount"),
        ("admin", "POST", "/v1/prices", {**PRICE, "unit_amount": 1.5}, "unit_amount"),
        ("admin", "POST", "/v1/prices", {**PRICE, "currency": "XYZ"}, "currency"),
        ("admin", "POST", "/v1/prices", {**PRICE, "interval": "fortnight"}, "interval"),
        ("admin", "POST", "/v1/prices", {**PRICE, "interval_count": 0}, "interval_count"),
        ("admin", "POST", "/v1/prices", {"currency": "JPY", "unit_amount": 1}, "product_name"),
        ("service", "GET", "/v1/prices?limit=0", None, "limit"),
        ("service", "POST", "/v1/subscriptions", {"customer_id": "c"}, "price_id"),
        (
            "service",
            "POST",
            "/v1/subscriptions",
            {"customer_id": "c", "price_id": "p", "quantity": -2},
            "quantity",
        ),
        (
            "service",
            "POST",
            "/v1/subscriptions",
            {"customer_id": "c", "price_id": "p", "start_at": "next tuesday"},
            "start_at",
        ),
        (
            "service",
            "POST",
            "/v1/subscriptions",
            {"customer_id": "c", "price_id": "p", "metadata": ["a"]},
            "metadata",
        ),
        (
            "service",
            "POST",
            "/v1/subscriptions",
            {"customer_id": "c", "price_id": "p", "start_at": "1900-01-31T00:00:00+09:00"},
            "start_at is in the past",
        ),
        ("service", "GET", "/v1/subscriptions?status=sleeping", None, "status"),
        ("service", "GET", "/v1/subscriptions?starting_after=sub_unknown", None, "starting_after"),
        ("service", "POST", "/v1/subscriptions/sub_unknown/cancel", {"reason": " "}, "reason"),
        ("support", "POST", "/v1/subscriptions/sub_unknown/pause", {}, "reason"),
        ("support", "POST", "/v1/subscriptions/sub_unknown/resume", {"reason": "x"}, "reason"),
        (
            "support",
            "POST",
            "/v1/subscriptions/sub_unknown/grace",
            {"days": 61, "reason": "r"},
            "days",
        ),
        ("service", "GET", "/v1/subscriptions/sub_unknown/change_plan/preview", None, "price_id"),
        ("service", "GET", "/v1/invoices?status=lost", None, "status"),
        ("service", "GET", "/v1/customers/cus_unknown/payments?starting_after=x", None, "starting"),
        ("support", "POST", "/v1/invoices/in_unknown/void", {}, "reason"),
        ("support", "POST", "/v1/invoices/in_unknown/mark_uncollectible", {"reason": ""}, "reason"),
    ],
)
def test_an_invalid_request_is_422_naming_what_is_wrong(
    url: str,
    made_keys: dict[str, CreatedKey],
    role: str,
    method: str,
    path: str,
    body: Any,
    says: str,
) -> None:
    response = call(url, made_keys[role].secret, method, path, body)
    message = sentence(response, 422)
    assert says in message
    assert error_of(response, 422)["type"] == "invalid_request"
    assert "4111111111111111" not in response.text  # a card number is never echoed


def test_a_request_that_does_not_fit_the_subscription_is_422(
    url: str, made_keys: dict[str, CreatedKey], billed: Billed
) -> None:
    service = made_keys["service"].secret
    path = f"/v1/subscriptions/{billed.subscription_id}"
    another_currency = "Price is in USD but the subscription is billed in JPY."
    change = call(url, service, "POST", f"{path}/change_plan", {"price_id": billed.usd_price_id})
    assert sentence(change, 422) == another_currency
    preview = call(
        url, service, "GET", f"{path}/change_plan/preview?price_id={billed.usd_price_id}"
    )
    assert sentence(preview, 422) == another_currency
    start = call(
        url,
        service,
        "POST",
        "/v1/subscriptions",
        {"customer_id": billed.customer_id, "price_id": billed.usd_price_id},
    )
    assert sentence(start, 422) == "Price is in USD but the customer is billed in JPY."


def test_a_body_that_is_not_a_json_object_is_422(
    url: str, made_keys: dict[str, CreatedKey]
) -> None:
    with client(url, made_keys["service"].secret) as http:
        broken = http.post(
            "/v1/customers", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        a_list = http.post("/v1/customers", json=[CUSTOMER])
        long_key = http.post("/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k" * 256})
    assert sentence(broken, 422) == "The request body is not valid JSON."
    assert sentence(a_list, 422) == "The request body must be a JSON object."
    assert "Idempotency-Key" in sentence(long_key, 422)


# -- webhooks: no API key; the signature, and the configuration, decide ------------------------


def test_webhooks_are_refused_while_no_secret_is_set(url: str) -> None:
    # The module's app has no webhook secret: Stripe must be told to come back later.
    payload = event("customer.updated", {"id": "cus_x", "object": "customer"})
    with httpx.Client(base_url=url, timeout=30) as http:
        response = http.post(
            "/v1/webhooks/stripe", content=payload, headers={"Stripe-Signature": sign(payload)}
        )
    assert sentence(response, 503) == (
        "Webhooks are disabled: KAKIN_STRIPE_WEBHOOK_SECRET is not set."
    )


@pytest.fixture(scope="module")
def webhook_url(
    pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway, dev_env: WorkflowEnvironment
) -> AsyncIterator[str] | Any:
    app = create_app(
        settings=SETTINGS.model_copy(update={"stripe_webhook_secret": SECRET}),
        sessions=pg_sessions,
        temporal=connect_to(dev_env.client.service_client.config.target_host),
        stripe=stripe_gateway,
    )
    with running(app) as base:
        yield base


@pytest.mark.parametrize(
    ("payload", "signed", "message"),
    [
        (event("customer.updated", {}), False, "The Stripe-Signature header is missing."),
        (b"{not json", True, "The body is not JSON."),
        (json.dumps({"id": "nope", "type": "x"}).encode(), True, "The body is not a Stripe event."),
    ],
    ids=["unsigned", "not-json", "not-an-event"],
)
def test_a_webhook_that_is_not_a_signed_stripe_event_is_400(
    webhook_url: str, payload: bytes, signed: bool, message: str
) -> None:
    headers = {"Stripe-Signature": sign(payload)} if signed else {}
    with httpx.Client(base_url=webhook_url, timeout=30) as http:
        response = http.post("/v1/webhooks/stripe", content=payload, headers=headers)
    assert sentence(response, 400) == message
    assert error_of(response, 400)["type"] == "invalid_request"
