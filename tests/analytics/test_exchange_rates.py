"""The exchange rates of the reporting currency: ``PUT/GET /v1/exchange-rates`` and
``kakin rates set|list``, on a database of this module's own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from kakin.services.api_keys import CreatedKey
from tests.analytics.own_database import keys_of, own_database, serving, sessions_of
from tests.cli.test_cli import kakin
from tests.helpers import client, error_of

RATE = {"currency": "USD", "reporting_currency": "JPY", "rate": "150.12",
        "effective_from": "2027-01-01"}  # fmt: skip


@pytest.fixture(scope="module")
def db() -> Iterator[str]:
    with own_database("rates") as url:
        yield url


@pytest.fixture(scope="module")
def sessions(db: str) -> sessionmaker[Session]:
    return sessions_of(db)


@pytest.fixture(scope="module")
def keys(sessions: sessionmaker[Session]) -> dict[str, CreatedKey]:
    return keys_of(sessions, "rates")


@pytest.fixture(scope="module")
def base(sessions: sessionmaker[Session]) -> Iterator[str]:
    with serving(sessions) as url:
        yield url


def as_role(base: str, keys: dict[str, CreatedKey], role: str) -> httpx.Client:
    return client(base, keys[role].secret)


def listed(http: httpx.Client, **params: str) -> list[dict[str, Any]]:
    response = http.get("/v1/exchange-rates", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["has_more"] is False
    data: list[dict[str, Any]] = body["data"]
    return data


def test_an_admin_enters_a_rate_and_finance_reads_it(
    base: str, keys: dict[str, CreatedKey]
) -> None:
    with as_role(base, keys, "admin") as admin:
        response = admin.put("/v1/exchange-rates", json=RATE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "exchange_rate"
    assert (body["currency"], body["reporting_currency"], body["rate"]) == ("USD", "JPY", "150.12")
    assert body["effective_from"] == "2027-01-01"
    assert body["entered_by"] == f"api-key:{keys['admin'].info.id} (rates admin)"
    with as_role(base, keys, "finance") as finance:
        found = listed(finance, currency="USD", reporting_currency="JPY")
    assert [(r["rate"], r["effective_from"]) for r in found] == [("150.12", "2027-01-01")]


def test_the_same_pair_and_date_again_replaces_the_rate(
    base: str, keys: dict[str, CreatedKey]
) -> None:
    with as_role(base, keys, "admin") as admin:
        for rate in ("151.00", "151.25", "151.25"):  # a PUT: the last one changes nothing
            response = admin.put("/v1/exchange-rates", json={**RATE, "rate": rate})
            assert response.status_code == 200, response.text
        later = {**RATE, "rate": "149.8", "effective_from": "2027-02-01"}
        assert admin.put("/v1/exchange-rates", json=later).status_code == 200
        found = listed(admin, currency="usd")  # codes in any case
    assert [(r["rate"], r["effective_from"]) for r in found] == [
        ("151.25", "2027-01-01"), ("149.8", "2027-02-01"),
    ]  # fmt: skip


def test_only_admin_writes(base: str, keys: dict[str, CreatedKey]) -> None:
    for role in ("finance", "support", "service"):
        with as_role(base, keys, role) as http:
            response = http.put("/v1/exchange-rates", json=RATE)
        assert "may not call PUT /v1/exchange-rates" in error_of(response, 403)["message"]
    with as_role(base, keys, "service") as service:
        assert service.get("/v1/exchange-rates").status_code == 403


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rate": "0"}, "rate must be above 0"),
        ({"rate": "-150"}, "rate must be above 0"),
        ({"rate": "abc"}, "rate 'abc' is not a number"),
        ({"rate": "1.1234567890123"}, "rate may have at most 12 digits after the point"),
        ({"rate": 150.12}, "rate is invalid"),  # a JSON number: never a float
        ({"currency": "JPY"}, "reporting_currency must differ from currency (JPY)"),
        ({"currency": "XXX"}, "currency is invalid: unknown currency 'XXX'"),
        ({"effective_from": "2027-13-01"}, "effective_from is invalid"),
    ],
)
def test_a_rate_that_cannot_be_entered_is_a_422_naming_the_field(
    base: str, keys: dict[str, CreatedKey], change: dict[str, Any], message: str
) -> None:
    with as_role(base, keys, "admin") as admin:
        response = admin.put("/v1/exchange-rates", json={**RATE, **change})
    assert message in error_of(response, 422)["message"]


def test_kakin_rates_set_and_list(db: str) -> None:
    done = kakin(db, "rates", "set", "EUR", "JPY", "161.5", "--from", "2027-01-01",
                 "--entered-by", "finance:aiko")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1 EUR = 161.5 JPY from 2027-01-01 (entered by finance:aiko)"
    done = kakin(db, "rates", "list", "--currency", "EUR")
    assert done.returncode == 0, done.stderr
    header, _, row = done.stdout.splitlines()
    assert header.split()[:3] == ["rate", "from", "entered"]
    assert row.split()[:7] == ["1", "EUR", "=", "161.5", "JPY", "2027-01-01", "finance:aiko"]
    body = json.loads(kakin(db, "rates", "list", "--currency", "EUR", "--json").stdout)
    assert [(r["rate"], r["entered_by"]) for r in body["data"]] == [("161.5", "finance:aiko")]


def test_kakin_rates_set_refuses_a_bad_rate(db: str) -> None:
    done = kakin(db, "rates", "set", "EUR", "JPY", "-1", "--from", "2027-01-01")
    assert done.returncode == 2
    assert "rate must be above 0" in done.stderr
