"""The HTTP API, driven with httpx against a running server (uvicorn in a thread)."""

from __future__ import annotations

import http.client
import importlib
import json
import logging
import pkgutil
import re
import types
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

import api.requests
import api.routers
from api.app import create_app
from api.requests.common import Request
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import api_keys, subscriptions
from kakin.services import errors as errors_service
from models.db import make_engine, make_session_factory
from models.tables import Customer
from tests.helpers import OK_CARD, SETTINGS, client, connect_to, error_of, free_ports, running


@pytest.fixture(scope="session")
def api_url(
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    dev_env: WorkflowEnvironment,
) -> Iterator[str]:
    app = create_app(
        settings=SETTINGS,
        sessions=pg_sessions,
        temporal=connect_to(dev_env.client.service_client.config.target_host),
        stripe=stripe_gateway,
    )
    with running(app) as url:
        yield url


@pytest.fixture(scope="session")
def keys(pg_sessions: sessionmaker[Session]) -> dict[str, str]:
    return {
        role: api_keys.create_key(pg_sessions, name=f"test {role}", role=role).secret
        for role in ("service", "support", "admin")
    }


@pytest.fixture
def as_service(api_url: str, keys: dict[str, str]) -> Iterator[httpx.Client]:
    with client(api_url, keys["service"]) as http:
        yield http


@pytest.fixture
def as_support(api_url: str, keys: dict[str, str]) -> Iterator[httpx.Client]:
    with client(api_url, keys["support"]) as http:
        yield http


@pytest.fixture
def as_admin(api_url: str, keys: dict[str, str]) -> Iterator[httpx.Client]:
    with client(api_url, keys["admin"]) as http:
        yield http


CUSTOMER = {
    "email": "hanako@example.jp",
    "name": "佐藤 花子",
    "currency": "JPY",
    "locale": "ja",
    "time_zone": "Asia/Tokyo",
}
PRICE = {"product_name": "Pro プラン", "currency": "JPY", "unit_amount": 3980, "interval": "month"}


# -- health, readiness, OpenAPI ----------------------------------------------------------


def test_health_answers_without_a_key(api_url: str) -> None:
    with client(api_url) as http:
        response = http.get("/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_when_the_database_and_temporal_answer(api_url: str) -> None:
    with client(api_url) as http:
        response = http.get("/v1/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "temporal": "ok"}}


def test_not_ready_names_temporal_when_it_cannot_be_reached(
    pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway
) -> None:
    closed = free_ports(1)[0]
    app = create_app(
        settings=SETTINGS,
        sessions=pg_sessions,
        temporal=connect_to(f"127.0.0.1:{closed}"),
        stripe=stripe_gateway,
    )
    with running(app) as url, client(url) as http:
        response = http.get("/v1/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == {"database": "ok", "temporal": "unavailable"}
    assert body["error"]["message"] == "Not ready: Temporal cannot be reached."
    assert "database" not in body["error"]["message"]


def test_openapi_lists_the_paths(api_url: str) -> None:
    with client(api_url) as http:
        document = http.get("/openapi.json").json()
    paths = document["paths"]
    for path in (
        "/v1/health",
        "/v1/ready",
        "/v1/customers",
        "/v1/customers/{customer_id}",
        "/v1/customers/{customer_id}/invoices",
        "/v1/customers/{customer_id}/payments",
        "/v1/prices",
        "/v1/prices/{price_id}",
        "/v1/prices/{price_id}/archive",
    ):
        assert path in paths, path
    assert set(paths["/v1/customers/{customer_id}"]) == {"get", "patch"}
    assert "HTTPBearer" in document["components"]["securitySchemes"]


def refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


NO_BODY = {
    ("post", "/v1/prices/{price_id}/archive"),
    ("post", "/v1/invoices/{invoice_id}/retry"),
    ("post", "/v1/webhook-deliveries/{delivery_id}/resend"),
}


def test_the_openapi_document_describes_every_endpoint_with_its_schemas(
    api_url: str, pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway
) -> None:
    with client(api_url) as http:
        document = http.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    paths, schemas = document["paths"], document["components"]["schemas"]

    # Every route of every router module is listed (the card-update page, for people,
    # is not a router module and stays out).
    served = set()
    for module in pkgutil.iter_modules(api.routers.__path__, "api.routers."):
        router = importlib.import_module(module.name).router
        routes = [route for route in router.routes if isinstance(route, APIRoute)]
        served |= {
            (method.lower(), route.path) for route in routes for method in route.methods or ()
        }
    assert {(method, path) for path, ops in paths.items() for method in ops} == served

    for ref in refs(document):  # the document holds together
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert "HTTPValidationError" not in schemas, "a 422 documented in FastAPI's shape, not ours"

    for path, ops in paths.items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            assert op["operationId"] and op["summary"] and op["tags"], where
            in_path = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert in_path == set(re.findall(r"\{(\w+)\}", path)), where
            assert all("schema" in p for p in op.get("parameters", [])), where
            successes = [r for code, r in op["responses"].items() if code.startswith("2")]
            assert len(successes) == 1, where
            assert all("schema" in c for c in successes[0]["content"].values()), where
            for code, response in op["responses"].items():
                if code.startswith(("4", "5")) and path != "/v1/ready":
                    error = response["content"]["application/json"]["schema"]
                    assert error == {"$ref": "#/components/schemas/ErrorBody"}, (where, code)
            if method in {"post", "patch"} and (method, path) not in NO_BODY:
                body = op["requestBody"]["content"]["application/json"]["schema"]
                assert "$ref" in body or body.get("type") == "object" or "anyOf" in body, where
            if path not in {"/v1/health", "/v1/ready", "/v1/webhooks/stripe"}:
                assert op["security"] == [{"HTTPBearer": []}], where
                assert {"401", "403"} <= set(op["responses"]), where

    # The request bodies name their fields and refuse others.
    for name in ("CustomerCreate", "PriceCreate", "SubscriptionCreate", "CancelCreate"):
        assert schemas[name]["properties"], name
        assert schemas[name]["additionalProperties"] is False, name
    assert {"customer_id", "price_id", "metadata"} <= set(
        schemas["SubscriptionCreate"]["properties"]
    )


def test_an_unknown_path_is_a_json_404(as_admin: httpx.Client) -> None:
    error = error_of(as_admin.get("/v1/nothing-here"), 404)
    assert error["type"] == "not_found"
    assert "/v1/nothing-here" in error["message"]


# -- customers -----------------------------------------------------------------------------


def test_create_read_update_a_customer(as_service: httpx.Client, as_support: httpx.Client) -> None:
    response = as_service.post("/v1/customers", json=CUSTOMER)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"].startswith("cus_")
    assert created["object"] == "customer"
    assert {k: created[k] for k in CUSTOMER} == CUSTOMER
    assert created["has_payment_method"] is False

    fetched = as_support.get(f"/v1/customers/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == created

    patched = as_service.patch(
        f"/v1/customers/{created['id']}",
        json={"email": "hanako@example.com", "locale": "en", "time_zone": "Europe/London"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json() == {
        **created,
        "email": "hanako@example.com",
        "locale": "en",
        "time_zone": "Europe/London",
    }
    assert as_support.get(f"/v1/customers/{created['id']}").json() == patched.json()


def test_a_test_card_becomes_a_payment_method_and_is_never_stored_or_echoed(
    as_service: httpx.Client, pg_sessions: sessionmaker[Session]
) -> None:
    response = as_service.post("/v1/customers", json={**CUSTOMER, "card_number": OK_CARD})
    assert response.status_code == 201, response.text
    assert OK_CARD not in response.text
    assert response.json()["has_payment_method"] is True
    with pg_sessions() as session:
        row = session.get(Customer, response.json()["id"])
        assert row is not None
        assert row.stripe_payment_method_id
        assert OK_CARD not in repr(vars(row))


def test_a_card_that_is_not_a_test_card_is_refused_without_echoing_it(
    as_service: httpx.Client,
) -> None:
    number = "5555555555554444999"
    error = error_of(
        as_service.post("/v1/customers", json={**CUSTOMER, "card_number": number}), 422
    )
    assert "card_number" in error["message"]
    assert number not in error["message"]


def test_customers_are_listed_newest_first_in_pages(
    as_service: httpx.Client, as_support: httpx.Client
) -> None:
    made = [
        as_service.post("/v1/customers", json={**CUSTOMER, "email": f"page{n}@example.jp"}).json()[
            "id"
        ]
        for n in range(5)
    ]
    seen: list[str] = []
    starting_after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if starting_after:
            params["starting_after"] = starting_after
        page = as_support.get("/v1/customers", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["object"] == "list"
        assert len(body["data"]) <= 2
        seen += [c["id"] for c in body["data"]]
        if not body["has_more"]:
            break
        starting_after = body["data"][-1]["id"]
    assert len(seen) == len(set(seen))
    newest_first = [i for i in seen if i in made]
    assert newest_first == list(reversed(made))


def test_list_limits(as_support: httpx.Client) -> None:
    assert "limit" in error_of(as_support.get("/v1/customers?limit=101"), 422)["message"]
    assert "limit" in error_of(as_support.get("/v1/customers?limit=0"), 422)["message"]
    unknown = error_of(as_support.get("/v1/customers?starting_after=cus_nope"), 422)
    assert "starting_after" in unknown["message"]


def test_a_new_customer_has_no_invoices_or_payments(
    as_service: httpx.Client, as_support: httpx.Client
) -> None:
    customer_id = as_service.post("/v1/customers", json=CUSTOMER).json()["id"]
    for what in ("invoices", "payments"):
        response = as_support.get(f"/v1/customers/{customer_id}/{what}")
        assert response.status_code == 200, response.text
        assert response.json() == {"object": "list", "data": [], "has_more": False}


@pytest.mark.parametrize(
    "path",
    [
        "/v1/customers/cus_unknown",
        "/v1/customers/cus_unknown/invoices",
        "/v1/customers/cus_unknown/payments",
    ],
)
def test_an_unknown_customer_is_404(as_support: httpx.Client, path: str) -> None:
    error = error_of(as_support.get(path), 404)
    assert error == {"type": "not_found", "message": "Customer 'cus_unknown' does not exist."}


def test_patching_an_unknown_customer_is_404(as_service: httpx.Client) -> None:
    error = error_of(as_service.patch("/v1/customers/cus_unknown", json={"name": "x"}), 404)
    assert error["message"] == "Customer 'cus_unknown' does not exist."


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": "XXY"}, "currency"),
        ({"locale": "fr"}, "locale"),
        ({"time_zone": "Asia/Nowhere"}, "time_zone"),
        ({"email": None}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"name": ""}, "name"),
        ({"card_number": "4242424242424242", "payment_method_id": "pm_1"}, "card_number"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_invalid_customers_are_422_naming_the_field(
    as_service: httpx.Client, change: dict[str, Any], field: str
) -> None:
    body = {**CUSTOMER, **change}
    body = {k: v for k, v in body.items() if v is not None}
    error = error_of(as_service.post("/v1/customers", json=body), 422)
    assert error["type"] == "invalid_request"
    assert field in error["message"]
    assert error["message"].endswith(".")
    assert "\n" not in error["message"]


def test_missing_email_says_it_is_required(as_service: httpx.Client) -> None:
    body = {k: v for k, v in CUSTOMER.items() if k != "email"}
    error = error_of(as_service.post("/v1/customers", json=body), 422)
    assert error["message"] == "email is required."


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"locale": "de"}, "locale"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"currency": "USD"}, "currency"),  # the billing currency cannot change
        ({"email": None}, "email"),
    ],
)
def test_invalid_updates_are_422_naming_the_field(
    as_service: httpx.Client, change: dict[str, Any], field: str
) -> None:
    customer_id = as_service.post("/v1/customers", json=CUSTOMER).json()["id"]
    error = error_of(as_service.patch(f"/v1/customers/{customer_id}", json=change), 422)
    assert field in error["message"]


def test_a_body_that_is_not_json_is_422(as_service: httpx.Client) -> None:
    response = as_service.post(
        "/v1/customers", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert error_of(response, 422)["message"] == "The request body is not valid JSON."


# -- catalog ---------------------------------------------------------------------------------


async def test_create_list_and_archive_a_price(
    as_admin: httpx.Client,
    as_service: httpx.Client,
    pg_sessions: sessionmaker[Session],
    dev_env: WorkflowEnvironment,
) -> None:
    response = as_admin.post("/v1/prices", json={**PRICE, "nickname": "monthly"})
    assert response.status_code == 201, response.text
    price = response.json()
    assert price["id"].startswith("price_")
    assert price["product"]["name"] == "Pro プラン"
    assert price["product"]["id"].startswith("prod_")
    assert (price["unit_amount"], price["currency"], price["interval"]) == (3980, "JPY", "month")
    assert price["interval_count"] == 1
    assert price["active"] is True

    assert as_service.get(f"/v1/prices/{price['id']}").json() == price
    listed = as_service.get("/v1/prices", params={"limit": 100}).json()
    assert price["id"] in [p["id"] for p in listed["data"]]

    archived = as_admin.post(f"/v1/prices/{price['id']}/archive")
    assert archived.status_code == 200, archived.text
    assert archived.json() == {**price, "active": False}
    assert as_service.get(f"/v1/prices/{price['id']}").json()["active"] is False

    customer_id = as_service.post("/v1/customers", json=CUSTOMER).json()["id"]
    with pytest.raises(errors_service.InvalidRequestError, match="archived"):
        await subscriptions.start_subscription(
            dev_env.client,
            pg_sessions,
            task_queue="billing-test-archived",
            customer_id=customer_id,
            price_id=price["id"],
        )


def test_prices_are_paged(as_admin: httpx.Client) -> None:
    made = [
        as_admin.post("/v1/prices", json={**PRICE, "unit_amount": n}).json()["id"] for n in range(3)
    ]
    first = as_admin.get("/v1/prices", params={"limit": 2}).json()
    assert [p["id"] for p in first["data"]] == [made[2], made[1]]
    assert first["has_more"] is True
    second = as_admin.get("/v1/prices", params={"limit": 1, "starting_after": made[1]}).json()
    assert [p["id"] for p in second["data"]] == [made[0]]


@pytest.mark.parametrize("path", ["/v1/prices/price_unknown", "/v1/prices/price_unknown/archive"])
def test_an_unknown_price_is_404(as_admin: httpx.Client, path: str) -> None:
    response = as_admin.post(path) if path.endswith("archive") else as_admin.get(path)
    assert error_of(response, 404) == {
        "type": "not_found",
        "message": "Price 'price_unknown' does not exist.",
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": "ABC"}, "currency"),
        ({"interval": "fortnight"}, "interval"),
        ({"unit_amount": -1}, "unit_amount"),
        ({"unit_amount": 12.5}, "unit_amount"),
        ({"interval_count": 0}, "interval_count"),
        ({"product_name": None}, "product_name"),
        # An amount is an integer, never a string, a float or a boolean.
        ({"unit_amount": "1000"}, "unit_amount is invalid: input should be a valid integer"),
        ({"unit_amount": 1000.0}, "unit_amount is invalid: input should be a valid integer"),
        ({"unit_amount": True}, "unit_amount is invalid: input should be a valid integer"),
        (
            {"pricing_model": "graduated", "tiers": [{"up_to": None, "flat_amount": "100"}]},
            "tiers.0.flat_amount is invalid: input should be a valid integer",
        ),
    ],
)
def test_invalid_prices_are_422_naming_the_field(
    as_admin: httpx.Client, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**PRICE, **change}.items() if v is not None}
    error = error_of(as_admin.post("/v1/prices", json=body), 422)
    assert field in error["message"]


# Amount-like fields that are decimal strings by design (they may be fractional).
DECIMAL_AMOUNTS = {("TierIn", "unit_amount")}
NOT_INTEGERS = ["1000", "1e3", 1000.0, 1000.5, True, None, [1000], {"value": 1000}]


def request_modules() -> list[types.ModuleType]:
    """The modules of ``api.requests``: the request bodies, one module per feature."""
    found = pkgutil.iter_modules(api.requests.__path__, "api.requests.")
    return [importlib.import_module(module.name) for module in found]


def request_models() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for module in request_modules():
        for name, item in vars(module).items():
            if isinstance(item, type) and issubclass(item, Request):
                found[name] = item
    return found


def amount_fields(document: dict[str, Any]) -> set[tuple[str, str, bool]]:
    """(schema, field, is an integer) for every amount-like field of every request body."""
    schemas = document["components"]["schemas"]
    seen: set[str] = set()
    found: set[tuple[str, str, bool]] = set()
    todo = [ref for op in (o for ops in document["paths"].values() for o in ops.values())
            for ref in refs(op.get("requestBody", {}))]  # fmt: skip
    while todo:
        name = todo.pop().removeprefix("#/components/schemas/")
        if name in seen:
            continue
        seen.add(name)
        for field, schema in schemas[name].get("properties", {}).items():
            todo.extend(refs(schema))
            if "amount" in field and not field.endswith("_decimal"):
                kinds = [schema, *schema.get("anyOf", [])]
                found.add((name, field, any(k.get("type") == "integer" for k in kinds)))
    return found


def test_every_amount_of_every_request_body_takes_only_an_integer(api_url: str) -> None:
    with client(api_url) as http:
        document = http.get("/openapi.json").json()
    fields = amount_fields(document)
    assert {("PriceCreate", "unit_amount", True), ("CouponCreate", "amount_off", True)} <= fields
    assert {(name, field) for name, field, integer in fields if not integer} == DECIMAL_AMOUNTS
    models = request_models()
    for name, field, integer in sorted(fields):
        if not integer:
            continue
        for value in NOT_INTEGERS:
            if value is None and not models[name].model_fields[field].is_required():
                continue  # an optional amount may be left out (or null)
            try:
                models[name].model_validate({field: value})
            except ValidationError as error:
                mine = [e for e in error.errors() if e["loc"][:1] == (field,)]
                assert mine and all(e["type"] != "missing" for e in mine), (name, field, value)
            else:
                raise AssertionError(f"{name}.{field} took {value!r}")


# -- authentication and roles -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/customers"),
        ("POST", "/v1/customers"),
        ("GET", "/v1/customers/cus_x"),
        ("GET", "/v1/prices"),
        ("POST", "/v1/prices"),
        ("POST", "/v1/prices/price_x/archive"),
    ],
)
def test_no_key_a_bad_key_or_a_revoked_key_is_401(
    api_url: str, pg_sessions: sessionmaker[Session], method: str, path: str
) -> None:
    revoked = api_keys.create_key(pg_sessions, name="to revoke", role="admin")
    api_keys.revoke_key(pg_sessions, revoked.info.id)
    for key in (None, "kk_admin_not-a-real-key", "garbage", revoked.secret):
        with client(api_url, key) as http:
            response = http.request(method, path, json={})
        error = error_of(response, 401)
        assert error["type"] == "authentication_error"
        assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("role", ["service", "support"])
def test_only_admin_keys_change_the_catalog(api_url: str, keys: dict[str, str], role: str) -> None:
    with client(api_url, keys[role]) as http:
        error = error_of(http.post("/v1/prices", json=PRICE), 403)
        assert error["type"] == "permission_error"
        assert role in error["message"]
        error_of(http.post("/v1/prices/price_x/archive"), 403)


def test_support_keys_read_but_do_not_create_or_change_customers(
    as_support: httpx.Client, as_service: httpx.Client
) -> None:
    customer_id = as_service.post("/v1/customers", json=CUSTOMER).json()["id"]
    error_of(as_support.post("/v1/customers", json=CUSTOMER), 403)
    error_of(as_support.patch(f"/v1/customers/{customer_id}", json={"name": "x"}), 403)
    assert as_support.get(f"/v1/customers/{customer_id}").status_code == 200


def test_a_used_key_records_when(
    as_support: httpx.Client, pg_sessions: sessionmaker[Session], keys: dict[str, str]
) -> None:
    as_support.get("/v1/customers")
    with pg_sessions() as session:
        from models.tables import ApiKey

        row = session.scalars(
            select(ApiKey).where(ApiKey.secret_hash == api_keys.hash_secret(keys["support"]))
        ).one()
        assert row.last_used_at is not None


def test_an_unexpected_error_is_logged_with_its_request_id_and_keeps_the_connection(
    stripe_gateway: StripeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    # A real fault: the database is not there, so checking the key fails unexpectedly.
    gone = make_session_factory(make_engine(f"postgresql://127.0.0.1:{free_ports(1)[0]}/x"))
    app = create_app(
        settings=SETTINGS, sessions=gone, temporal=connect_to("x:1"), stripe=stripe_gateway
    )
    with running(app) as url, caplog.at_level(logging.INFO):
        host, port = urlsplit(url).hostname or "", urlsplit(url).port or 0
        connection = http.client.HTTPConnection(host, port, timeout=30)
        connection.request("GET", "/v1/customers", headers={"Authorization": "Bearer kk_service_x"})
        failed = connection.getresponse()
        body = json.loads(failed.read())
        kept = connection.sock
        connection.request("GET", "/v1/health")
        health = connection.getresponse()
        health.read()
        assert connection.sock is kept, "the server dropped the kept-alive connection"
        connection.close()
    assert failed.status == 500
    assert body == {
        "error": {"type": "api_error", "message": "An internal error occurred; it has been logged."}
    }
    request_id = failed.getheader("X-Request-Id") or ""
    assert request_id.startswith("req_")
    assert health.status == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.name for r in errors] == ["kakin.api"]  # no bare traceback from uvicorn
    assert request_id in errors[0].getMessage()
    assert "GET /v1/customers" in errors[0].getMessage()
