"""What the API refuses before any endpoint runs, and what it writes about every request.

- Card numbers (PANs) anywhere but the test-mode ``card_number`` of ``POST
  /v1/customers``: 422, and the number is in no response, log line or table.
- Bodies over ``KAKIN_API_MAX_BODY_BYTES`` (413), batches over 1,000 events and strings
  over their limits (422); every free string of every request body has a limit.
- Per-key rate limits (429 with ``Retry-After``); health and webhooks are not limited.
- One access-log line per request, with its id and without personal data.

The apps here never reach Temporal (nothing they are asked needs it), so this module
does not start the dev server.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import time
import types
from collections.abc import Iterator
from typing import Any, get_args

import httpx
import pytest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from api import pan_guard
from api.app import create_app
from api.rate_limit import TokenBuckets, parse_rate, retry_after
from api.requests.common import Request
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform.settings import Settings
from kakin.services import api_keys
from kakin.services.api_keys import CreatedKey
from models.repositories.common import new_id
from tests.api.test_api import CUSTOMER, PRICE, request_modules
from tests.helpers import OK_CARD, connect_to, free_ports, running

UNREACHABLE_TEMPORAL = f"127.0.0.1:{free_ports(1)[0]}"


def settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {"stripe_api_key": "sk_test_kakin", "database_url": "sqlite:///x.db"}
    return Settings(**(base | overrides))


def serve(
    sessions: sessionmaker[Session], stripe: StripeGateway, **overrides: Any
) -> Iterator[str]:
    app = create_app(
        settings=settings(**overrides),
        sessions=sessions,
        temporal=connect_to(UNREACHABLE_TEMPORAL),
        stripe=stripe,
    )
    with running(app) as base:
        yield base


@pytest.fixture(scope="module")
def base(pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway) -> Iterator[str]:
    """The API with its default limits."""
    yield from serve(pg_sessions, stripe_gateway)


@pytest.fixture(scope="module")
def tight(pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway) -> Iterator[str]:
    """The API with a 2 KiB body limit and 3 requests per key per hour."""
    yield from serve(
        pg_sessions,
        stripe_gateway,
        api_max_body_bytes=2048,
        api_rate_limit="1/h",
        api_rate_burst=3,
        stripe_webhook_secret="whsec_limits",
    )


@pytest.fixture(scope="module")
def admin(pg_sessions: sessionmaker[Session]) -> CreatedKey:
    return api_keys.create_key(pg_sessions, name="limits admin", role="admin")


def as_admin(url: str, key: CreatedKey, **headers: str) -> httpx.Client:
    return httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {key.secret}", **headers}, timeout=30
    )


def error_of(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}, body
    return dict(body["error"])


def new_pan(prefix: str = "4000", length: int = 16) -> str:
    """A card number no other test uses: random digits plus the Luhn check digit."""
    body = prefix + "".join(random.choice("0123456789") for _ in range(length - len(prefix) - 1))
    check = next(d for d in "0123456789" if pan_guard.luhn(body + d))
    return body + check


def spaced(pan: str, separator: str = " ") -> str:
    return separator.join(pan[i : i + 4] for i in range(0, len(pan), 4))


def server_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the server logged (not the test's own HTTP client, which logs its URLs)."""
    return "\n".join(
        f"{record.getMessage()} {record.exc_text or ''}"
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore"))
    )


def stored_anywhere(sessions: sessionmaker[Session], needle: str) -> list[str]:
    """The tables with a row whose text contains ``needle``."""
    with sessions() as session:
        tables = session.scalars(
            text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            )
        ).all()
        return [
            name
            for name in tables
            if session.scalar(
                text(f'SELECT count(*) FROM "{name}" AS t WHERE t::text LIKE :needle'),
                {"needle": f"%{needle}%"},
            )
        ]


# -- card numbers: the detector --------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "4242424242424242",
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "card: 5555555555554444, exp 12/30",
        "378282246310005",  # Amex, 15 digits
        "6011111111111117",
        "4000056655665556",
        "3056930009020004",  # Diners, 14 digits
        "4222222222222",  # 13 digits
    ],
)
def test_card_numbers_are_recognized(value: str) -> None:
    assert pan_guard.has_card_number(value)
    assert not any(char.isdigit() for char in pan_guard.redact(value).replace("12/30", ""))


@pytest.mark.parametrize(
    "value",
    [
        "4242424242424241",  # fails Luhn
        "424242424242",  # 12 digits
        "42424242424242424242",  # 20 digits
        "2026-11-23T23:41:42+09:00",
        "+81-90-1234-5678",
        "evt_000123",
        "12345678-1234-1234-1234-123456789012",  # a run longer than 19 digits
        "INV-000042",
        # Our own ids hold Luhn-valid digit runs now and then; glued to letters or "_".
        "cus_4242424242424242",
        "sub_ab4242424242424242cd",
    ],
)
def test_other_numbers_are_not(value: str) -> None:
    assert not pan_guard.has_card_number(value)


def test_random_ids_are_never_taken_for_card_numbers() -> None:
    """About one id in a thousand held a Luhn-valid run before ids were exempt."""
    assert not any(pan_guard.has_card_number(new_id("cus")) for _ in range(20_000))


def test_identifier_fields_are_not_scanned() -> None:
    # A client's event id of epoch milliseconds that happens to pass Luhn is still an id.
    millis = next(
        str(n) for n in range(1_732_400_000_000, 1_732_400_000_100) if pan_guard.luhn(str(n))
    )
    body = {"events": [{"event_id": millis, "customer_id": "cus_x", "metric": "calls"}]}
    assert pan_guard.find_in_json(body, method="POST", path="/v1/usage") is None
    assert pan_guard.find_in_json({"reason": millis}, method="POST", path="/x") == "reason"


def test_the_card_number_field_is_allowed_only_on_customer_create() -> None:
    body = {"card_number": OK_CARD, "name": "x"}
    assert pan_guard.find_in_json(body, method="POST", path="/v1/customers") is None
    assert pan_guard.find_in_json(body, method="POST", path="/v1/prices") == "card_number"
    nested = {"metadata": {"card_number": OK_CARD}}
    where = pan_guard.find_in_json(nested, method="POST", path="/v1/customers")
    assert where == "metadata.card_number"


# -- card numbers: refused by the running API ------------------------------------------------

# (method, path, body with {pan} where the number goes); none of them reaches an endpoint.
PAN_CASES: list[tuple[str, str, Any]] = [
    ("POST", "/v1/customers", {**CUSTOMER, "name": "{pan}"}),
    ("POST", "/v1/customers", {**CUSTOMER, "email": "{pan}@example.jp"}),
    ("PATCH", "/v1/customers/cus_x", {"name": "Taro {pan}"}),
    ("POST", "/v1/prices", {**PRICE, "nickname": "{pan}"}),
    (
        "POST",
        "/v1/subscriptions",
        {"customer_id": "cus_x", "price_id": "price_x", "metadata": {"note": "{pan}"}},
    ),
    (
        "POST",
        "/v1/subscriptions",
        {"customer_id": "cus_x", "price_id": "price_x", "metadata": {"{pan}": "key"}},
    ),
    ("POST", "/v1/subscriptions/sub_x/cancel", {"reason": "refund to card {pan} please"}),
    ("POST", "/v1/subscriptions/sub_x/pause", {"reason": "{pan}"}),
    ("POST", "/v1/invoices/in_x/void", {"reason": "{pan}"}),
    (
        "POST",
        "/v1/usage",
        {
            "events": [
                {
                    "event_id": "evt-1",
                    "metric": "calls",
                    "timestamp": "2026-11-23T00:00:00Z",
                    "customer_id": "cus_x",
                    "properties": {"card": {"number": "{pan}"}},
                }
            ]
        },
    ),
    (
        "POST",
        "/v1/usage",
        {
            "event_id": "evt-2",
            "metric": "calls",
            "timestamp": "2026-11-23T00:00:00Z",
            "properties": {"n": "{int}"},
        },
    ),
    ("POST", "/v1/metrics", {"code": "calls", "name": "{pan}", "aggregation": "count"}),
    (
        "POST",
        "/v1/invoices/in_x/credit-notes",
        {"reason": "duplicate", "method": "credit", "memo": "{pan}"},
    ),
]


def fill(body: Any, pan: str) -> Any:
    """``body`` with the card number put in; ``"{int}"`` becomes it as a JSON integer."""
    raw = json.dumps(body).replace('"{int}"', pan.replace(" ", "")).replace("{pan}", pan)
    return json.loads(raw)


@pytest.mark.parametrize(("method", "path", "body"), PAN_CASES)
def test_a_card_number_in_any_field_is_refused_and_kept_nowhere(
    base: str,
    admin: CreatedKey,
    pg_sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: Any,
) -> None:
    pan = new_pan()
    sent = spaced(pan) if "Taro" in json.dumps(body) else pan
    idempotency_key = f"pan-{secrets.token_hex(6)}"
    with caplog.at_level(logging.DEBUG), as_admin(base, admin) as http:
        response = http.request(
            method, path, json=fill(body, sent), headers={"Idempotency-Key": idempotency_key}
        )
    error = error_of(response, 422)
    assert "looks like a card number" in error["message"]
    assert "card_number field" in error["message"]
    for form in {pan, sent}:
        assert form not in response.text
        assert form not in server_log(caplog)
    assert stored_anywhere(pg_sessions, pan) == []
    with pg_sessions() as session:  # the refused request did not use up its key
        held = session.scalar(
            text("SELECT count(*) FROM idempotency_keys WHERE key = :k"), {"k": idempotency_key}
        )
    assert held == 0


def test_the_refusal_names_the_field_not_the_value(base: str, admin: CreatedKey) -> None:
    body = {"customer_id": "cus_x", "price_id": "price_x", "metadata": {"note": new_pan()}}
    with as_admin(base, admin) as http:
        message = error_of(http.post("/v1/subscriptions", json=body), 422)["message"]
    assert message.startswith("metadata.note looks like a card number")


@pytest.mark.parametrize(
    "url",
    ["/v1/customers/{pan}", "/v1/invoices?customer_id={pan}", "/v1/nothing/{spaced}"],
)
def test_a_card_number_in_the_url_is_refused_and_not_logged(
    base: str, admin: CreatedKey, caplog: pytest.LogCaptureFixture, url: str
) -> None:
    pan = new_pan("5100")
    with caplog.at_level(logging.DEBUG), as_admin(base, admin) as http:
        response = http.get(url.format(pan=pan, spaced=spaced(pan, "-")))
    error = error_of(response, 422)
    assert "looks like a card number" in error["message"]
    assert pan not in response.text and pan not in server_log(caplog)
    assert spaced(pan, "-") not in server_log(caplog)


def test_a_card_number_in_an_idempotency_key_or_request_id_is_kept_nowhere(
    base: str,
    admin: CreatedKey,
    pg_sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pan = new_pan()
    with caplog.at_level(logging.DEBUG), as_admin(base, admin) as http:
        keyed = http.post("/v1/prices", json=PRICE, headers={"Idempotency-Key": pan})
        traced = http.get("/v1/prices", headers={"X-Request-Id": pan})
    assert "Idempotency-Key" in error_of(keyed, 422)["message"]
    assert traced.status_code == 200 and traced.headers["X-Request-Id"] != pan
    assert pan not in server_log(caplog)
    assert stored_anywhere(pg_sessions, pan) == []


def test_a_non_json_body_with_a_card_number_is_refused(base: str, admin: CreatedKey) -> None:
    pan = new_pan()
    with as_admin(base, admin) as http:
        response = http.post(
            "/v1/customers",
            content=f"name=Taro&card={pan}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert pan not in error_of(response, 422)["message"]


def test_the_test_mode_card_number_field_still_works_and_is_not_stored(
    base: str, admin: CreatedKey, pg_sessions: sessionmaker[Session]
) -> None:
    with as_admin(base, admin) as http:
        made = http.post("/v1/customers", json={**CUSTOMER, "card_number": spaced(OK_CARD)})
        assert made.status_code == 201, made.text
        assert made.json()["has_payment_method"] is True
        real = new_pan("4000")  # a card number, but not one of Stripe's test cards
        refused = http.post("/v1/customers", json={**CUSTOMER, "card_number": real})
    assert real not in error_of(refused, 422)["message"]
    assert stored_anywhere(pg_sessions, real) == []


def test_numbers_that_are_not_cards_pass(base: str, admin: CreatedKey) -> None:
    not_a_card = "4242424242424241"  # fails Luhn
    with as_admin(base, admin) as http:
        made = http.post("/v1/prices", json={**PRICE, "nickname": f"order {not_a_card}"})
    assert made.status_code == 201, made.text
    assert made.json()["nickname"] == f"order {not_a_card}"


def test_nul_characters_and_absurd_nesting_are_refused(base: str, admin: CreatedKey) -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = {"a": deep}
    with as_admin(base, admin) as http:
        nul = http.post("/v1/prices", json={**PRICE, "nickname": "a\x00b"})
        nested = http.post(
            "/v1/subscriptions", json={"customer_id": "c", "price_id": "p", "metadata": deep}
        )
        very_deep = http.post(
            "/v1/prices", content=b"[" * 100_000, headers={"Content-Type": "application/json"}
        )
        nul_in_url = http.get("/v1/invoices", params={"customer_id": "a\x00b"})
    assert "NUL" in error_of(nul, 422)["message"]
    assert "levels deep" in error_of(nested, 422)["message"]
    assert error_of(very_deep, 422)["type"] == "invalid_request"
    assert "NUL" in error_of(nul_in_url, 422)["message"]


# -- sizes -----------------------------------------------------------------------------------


def usage_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(text("SELECT count(*) FROM usage_events")) or 0)


def test_a_body_over_one_mebibyte_is_413(
    base: str, admin: CreatedKey, pg_sessions: sessionmaker[Session]
) -> None:
    before = usage_count(pg_sessions)
    event = {"event_id": "e", "metric": "m", "timestamp": "2026-11-23T00:00:00Z"}
    body = {"events": [event], "padding": "x" * (1024 * 1024)}
    with as_admin(base, admin) as http:
        response = http.post("/v1/usage", json=body)
    error = error_of(response, 413)
    assert error["message"] == (
        "The request body is larger than 1024 KiB, the most this API accepts."
    )
    assert usage_count(pg_sessions) == before


def test_a_streamed_body_over_the_limit_is_413_without_a_length(
    tight: str, pg_sessions: sessionmaker[Session]
) -> None:
    key = api_keys.create_key(pg_sessions, name="limits stream", role="admin")

    def chunks() -> Iterator[bytes]:
        yield b'{"nickname": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    with as_admin(tight, key) as http:
        response = http.post(
            "/v1/prices", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert "2 KiB" in error_of(response, 413)["message"]


def test_a_batch_over_1000_events_is_422(base: str, admin: CreatedKey) -> None:
    events = [
        {"event_id": f"e{i}", "metric": "m", "timestamp": "2026-11-23T00:00:00Z"}
        for i in range(1001)
    ]
    with as_admin(base, admin) as http:
        error = error_of(http.post("/v1/usage", json={"events": events}), 422)
    assert error["message"].startswith("events is invalid")


LONG_INPUTS: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/v1/customers", {**CUSTOMER, "name": "x" * 201}, "name"),
    ("POST", "/v1/customers", {**CUSTOMER, "email": "a" * 320 + "@example.jp"}, "email"),
    ("POST", "/v1/customers", {**CUSTOMER, "time_zone": "A" * 65}, "time_zone"),
    ("POST", "/v1/prices", {**PRICE, "currency": "J" * 11}, "currency"),
    ("POST", "/v1/prices", {**PRICE, "tax_rate_ids": ["t" * 41]}, "tax_rate_ids.0"),
    ("POST", "/v1/subscriptions/sub_x/cancel", {"reason": "r" * 1001}, "reason"),
    (
        "POST",
        "/v1/subscriptions",
        {"customer_id": "c", "price_id": "p", "metadata": {f"k{i}": "v" for i in range(51)}},
        "metadata",
    ),
    (
        "POST",
        "/v1/subscriptions",
        {"customer_id": "c", "price_id": "p", "metadata": {"k" * 41: "v"}},
        "metadata",
    ),
    (
        "POST",
        "/v1/subscriptions",
        {"customer_id": "c", "price_id": "p", "metadata": {"k": "v" * 501}},
        "metadata",
    ),
    (
        "POST",
        "/v1/usage",
        {
            "event_id": "e",
            "metric": "m",
            "timestamp": "2026-11-23T00:00:00Z",
            "properties": {"p" * 101: 1},
        },
        "events.0.properties",
    ),
    (
        "POST",
        "/v1/usage",
        {
            "event_id": "e",
            "metric": "m",
            "timestamp": "2026-11-23T00:00:00Z",
            "properties": {f"p{i}": "v" * 100 for i in range(45)},
        },
        "events.0.properties",
    ),
    ("POST", "/v1/tax-rates", {"name": "VAT", "percentage": "1" * 21}, "percentage"),
    (
        "POST",
        "/v1/coupons",
        {"code": "C", "name": "C", "duration": "once", "amount_off": 10**16, "currency": "JPY"},
        "amount_off",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), LONG_INPUTS)
def test_strings_and_numbers_over_their_limits_are_422(
    base: str, admin: CreatedKey, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    with as_admin(base, admin) as http:
        message = error_of(http.request(method, path, json=body), 422)["message"]
    assert message.startswith(field) and " is invalid: " in message, message


def request_models() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    for module in request_modules():
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Request) and value is not Request:
                found.append(value)
    return found


def unbounded_strings(node: Any, where: str = "") -> Iterator[str]:
    """Places in a JSON schema where a free string has no maxLength."""
    if isinstance(node, dict):
        if (
            node.get("type") == "string"
            and "maxLength" not in node
            and not {"enum", "const", "format"} & set(node)
        ):
            yield where or "(root)"
        for key, child in node.items():
            yield from unbounded_strings(child, f"{where}.{key}" if where else key)
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from unbounded_strings(child, f"{where}[{index}]")


def test_every_free_string_in_a_request_body_has_a_length_limit() -> None:
    models = request_models()
    assert len(models) > 10
    unbounded = {
        model.__name__: places
        for model in models
        if (places := list(unbounded_strings(model.model_json_schema())))
    }
    assert unbounded == {}


def test_free_form_dicts_in_requests_are_bounded_too() -> None:
    for model in request_models():
        for name, info in model.model_fields.items():
            annotation = info.annotation
            args = get_args(annotation) if isinstance(annotation, types.UnionType) else ()
            if dict in {getattr(annotation, "__origin__", None), *args}:
                assert any(getattr(m, "max_length", None) for m in info.metadata), (
                    f"{model.__name__}.{name} takes any number of keys"
                )


# -- rate limits -----------------------------------------------------------------------------


def test_rates_parse() -> None:
    assert parse_rate("100/s") == 100
    assert parse_rate("6000/min") == 100
    assert parse_rate("36/h") == pytest.approx(0.01)
    assert parse_rate("off") is None
    with pytest.raises(ValueError, match="is not a rate"):
        parse_rate("fast")


def test_a_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0.0  # another key has its own bucket
    now[0] += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    now[0] += 100
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # never above the burst
    assert buckets.take("a") > 0
    assert retry_after(0.01) == "1" and retry_after(2.2) == "3"


def test_a_key_over_its_rate_gets_429_with_retry_after(
    tight: str, pg_sessions: sessionmaker[Session]
) -> None:
    key = api_keys.create_key(pg_sessions, name="limits rate", role="support")
    other = api_keys.create_key(pg_sessions, name="limits rate other", role="support")
    with as_admin(tight, key) as http, as_admin(tight, other) as http_other:
        answered = [http.get("/v1/prices").status_code for _ in range(3)]
        limited = http.get("/v1/prices")
        unaffected = http_other.get("/v1/prices")
    assert answered == [200, 200, 200]
    error = error_of(limited, 429)
    assert error["type"] == "rate_limit_error"
    assert 3000 <= int(limited.headers["Retry-After"]) <= 3600  # 1/h: about an hour
    assert unaffected.status_code == 200


def test_health_and_webhooks_are_not_limited_by_key(tight: str) -> None:
    with httpx.Client(base_url=tight, timeout=30) as http:
        health = [http.get("/v1/health").status_code for _ in range(6)]
        hooks = [
            http.post(
                "/v1/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": "t=1,v1=x"}
            ).status_code
            for _ in range(4)
        ]
    assert health == [200] * 6
    assert 429 not in hooks  # refused for other reasons (no Temporal here), never limited


def test_a_webhook_body_that_is_not_utf8_is_400_not_500(tight: str) -> None:
    # Found by the fuzzer: the stripe SDK decoded the body before checking the signature.
    with httpx.Client(base_url=tight, timeout=30) as http:
        response = http.post(
            "/v1/webhooks/stripe", content=b"^\xd3\x8e\xaa", headers={"Stripe-Signature": "t=1"}
        )
    assert "not UTF-8" in error_of(response, 400)["message"]


# -- request ids and the access log ----------------------------------------------------------


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        json.loads(record.getMessage())
        for record in caplog.records
        if record.name == "kakin.api.access"
    ]


def access_line(caplog: pytest.LogCaptureFixture, request_id: str) -> dict[str, Any]:
    """The access line of one request. The in-process server writes it after the answer
    has gone, so the test may read the log first: wait for it (a few seconds at most)."""
    deadline = time.monotonic() + 5
    while True:
        found = [line for line in access_lines(caplog) if line["request_id"] == request_id]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, f"{len(found)} access lines for {request_id}"
            return found[0]
        time.sleep(0.02)


def test_each_request_has_an_id_and_one_access_line_without_personal_data(
    base: str, admin: CreatedKey, caplog: pytest.LogCaptureFixture
) -> None:
    email = f"hanako.{secrets.token_hex(3)}@example.jp"
    with caplog.at_level(logging.INFO, logger="kakin.api.access"), as_admin(base, admin) as http:
        made = http.post(
            "/v1/customers",
            json={**CUSTOMER, "email": email, "card_number": OK_CARD},
            headers={"X-Request-Id": "req-test-0001"},
        )
        customer_id = made.json()["id"]
        read = http.get(f"/v1/customers/{customer_id}")
        generated = read.headers["X-Request-Id"]
        # Read while the level is still INFO: the server logs after it has answered.
        line = access_line(caplog, "req-test-0001")
        read_line = access_line(caplog, generated)
    assert made.status_code == 201, made.text
    assert made.headers["X-Request-Id"] == "req-test-0001"
    assert generated.startswith("req_") and generated != "req-test-0001"
    assert line["method"] == "POST" and line["path"] == "/v1/customers"
    assert line["status"] == 201 and line["key_id"] == admin.info.id
    assert isinstance(line["duration_ms"], float)
    assert read_line["path"] == f"/v1/customers/{customer_id}"
    logged = server_log(caplog)
    assert email not in logged and CUSTOMER["name"] not in logged and OK_CARD not in logged


def test_a_malformed_request_id_is_replaced_and_errors_carry_the_id(
    base: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="kakin.api.access"),
        httpx.Client(base_url=base, timeout=30) as http,
    ):
        response = http.get("/v1/customers", headers={"X-Request-Id": "bad id {json}"})
        rid = response.headers["X-Request-Id"]
        line = access_line(caplog, rid)
    error_of(response, 401)
    assert rid.startswith("req_")
    assert line["status"] == 401 and line["key_id"] is None
