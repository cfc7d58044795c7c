"""The reporting currency: a small JPY and USD ledger, its figures converted into JPY
by hand with the rates an operator entered.

The ledger (written with ``models.repositories.ledger.append``, in a database of this
module's own so no other module's MRR carries into it) covers the first quarter of 2026
on the reporting calendar (Asia/Tokyo):

    JPY: c1 3,980 a month from Jan 10 (renewed Feb 10, Mar 10); c4 5,000 from Feb 20
         (renewed Mar 20); every invoice paid at once.
    USD: c2 $12.50 from Jan 5 (renewed Feb 5), canceled Mar 3; c3 $20.33 from Feb 5,
         its first payment failed, recovered at the first retry on Mar 8.

Rates: 1 USD = 150.12 JPY from 2026-01-01, 151.505 JPY from 2026-02-15. A bucket
converts at the latest rate effective on or before its first day, so January and
February use 150.12 and March 151.505 (the rate of Feb 15 is not February's: it
came after Feb 1). Each USD bucket total is converted once and rounded half-even to
whole yen:

    $12.50 x 150.12  = 1,876.5     -> 1,876 (a half: to the even neighbour)
    $20.33 x 150.12  = 3,051.9396  -> 3,052
    $32.83 x 150.12  = 4,928.4396  -> 4,928
    $32.83 x 151.505 = 4,973.90915 -> 4,974
    $12.50 x 151.505 = 1,893.8125  -> 1,894
    $20.33 x 151.505 = 3,080.09665 -> 3,080
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from billing.analytics.ledger import EntryKind
from kakin.services import exchange_rates
from models.repositories import ledger as ledger_sql
from tests.analytics.own_database import keys_of, own_database, serving, sessions_of
from tests.cli.test_cli import kakin
from tests.helpers import client, error_of

K = EntryKind
Q1 = {"from": "2026-01-01", "to": "2026-04-01", "interval": "month"}
Entry = tuple[str, EntryKind, datetime, dict[str, Any]]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def paid(invoice: str, customer: str, subscription: str, currency: str, amount: int,
         when: str) -> list[Entry]:  # fmt: skip
    """An invoice finalized and paid at the first attempt, five seconds later."""
    moment, ids = at(when), dict(customer_id=customer, invoice_id=invoice, currency=currency)
    later = moment + timedelta(seconds=5)
    return [
        (f"fx:{invoice}:fin", K.INVOICE_FINALIZED, moment,
         dict(ids, subscription_id=subscription, amount=amount)),
        (f"fx:{invoice}:ok", K.PAYMENT_SUCCEEDED, later, dict(ids, amount=amount, attempt=1)),
        (f"fx:{invoice}:paid", K.INVOICE_PAID, later, dict(ids, amount=amount, attempt=1)),
    ]  # fmt: skip


def started(subscription: str, customer: str, currency: str, mrr: int, when: str) -> Entry:
    return (f"fx:{subscription}:start", K.SUBSCRIPTION_STARTED, at(when),
            dict(customer_id=customer, subscription_id=subscription, currency=currency,
                 mrr_after=mrr, status_after="active"))  # fmt: skip


C3_FAILED = dict(customer_id="c3", invoice_id="i8", currency="USD", amount=2033)
LEDGER: list[Entry] = [
    # JPY
    started("s1", "c1", "JPY", 3980, "2026-01-10T03:00"),
    *paid("i1", "c1", "s1", "JPY", 3980, "2026-01-10T03:00"),
    *paid("i2", "c1", "s1", "JPY", 3980, "2026-02-10T03:00"),
    started("s4", "c4", "JPY", 5000, "2026-02-20T03:00"),
    *paid("i3", "c4", "s4", "JPY", 5000, "2026-02-20T03:00"),
    *paid("i4", "c1", "s1", "JPY", 3980, "2026-03-10T03:00"),
    *paid("i5", "c4", "s4", "JPY", 5000, "2026-03-20T03:00"),
    # USD
    started("s2", "c2", "USD", 1250, "2026-01-05T03:00"),
    *paid("i6", "c2", "s2", "USD", 1250, "2026-01-05T03:00"),
    *paid("i7", "c2", "s2", "USD", 1250, "2026-02-05T03:00"),
    started("s3", "c3", "USD", 2033, "2026-02-05T04:00"),
    ("fx:i8:fin", K.INVOICE_FINALIZED, at("2026-02-05T04:00"),
     dict(C3_FAILED, subscription_id="s3")),
    ("fx:i8:fail1", K.PAYMENT_FAILED, at("2026-02-05T04:00:05"),
     dict(C3_FAILED, attempt=1, decline_code="card_declined")),
    ("fx:s2:cancel", K.CANCELED, at("2026-03-03T03:00"),
     dict(customer_id="c2", subscription_id="s2", currency="USD", mrr_before=1250,
          mrr_after=0, status_before="active", status_after="canceled")),
    ("fx:i8:ok", K.PAYMENT_SUCCEEDED, at("2026-03-08T04:00"),
     dict(C3_FAILED, attempt=2, dunning_step="retry_1")),
    ("fx:i8:paid", K.INVOICE_PAID, at("2026-03-08T04:00"),
     dict(C3_FAILED, attempt=2, dunning_step="retry_1")),
]  # fmt: skip


@pytest.fixture(scope="module")
def db() -> Iterator[str]:
    with own_database("fx") as url:
        sessions = sessions_of(url)
        with sessions() as session:
            for key, kind, moment, fields in LEDGER:
                ledger_sql.append(session, key, kind=kind, occurred_at=moment,
                                  recorded_at=moment, **fields)  # fmt: skip
            session.commit()
        for rate, day in (("150.12", date(2026, 1, 1)), ("151.505", date(2026, 2, 15))):
            exchange_rates.set_rate(
                sessions, currency="USD", reporting_currency="JPY", rate=rate,
                effective_from=day, entered_by="test:fx",
            )  # fmt: skip
        yield url


@pytest.fixture(scope="module")
def sessions(db: str) -> sessionmaker[Session]:
    return sessions_of(db)


@pytest.fixture(scope="module")
def http(sessions: sessionmaker[Session]) -> Iterator[httpx.Client]:
    keys = keys_of(sessions, "fx")
    with serving(sessions) as base, client(base, keys["finance"].secret) as session:
        yield session


def report(http: httpx.Client, name: str, **params: str) -> dict[str, Any]:
    response = http.get(f"/v1/analytics/{name}", params={**Q1, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def pick(rows: list[dict[str, Any]], *names: str) -> list[tuple[Any, ...]]:
    return [tuple(row[name] for name in names) for row in rows]


# -- the converted figures ---------------------------------------------------------------


def test_mrr_in_jpy_sums_each_currency_converted_once(http: httpx.Client) -> None:
    body = report(http, "mrr", reporting_currency="JPY")
    # The currency blocks are as they are: USD stays in cents, never added to yen.
    usd = next(b for b in body["currencies"] if b["currency"] == "USD")["buckets"]
    assert pick(usd, "mrr_start", "new", "churn", "mrr_end") == [
        (0, 1250, 0, 1250), (1250, 2033, 0, 3283), (3283, 0, 1250, 2033),
    ]  # fmt: skip
    converted = body["converted"]
    assert converted["currency"] == "JPY"
    rows = converted["buckets"]
    assert [r["label"] for r in rows] == ["2026-01", "2026-02", "2026-03"]
    names = ("mrr_start", "new", "churn", "mrr_end", "arr", "customers_end")
    assert pick(rows, *names) == [
        # Jan: 3,980 (c1) + $12.50 -> 1,876 new.
        (0, 3980 + 1876, 0, 5856, 5856 * 12, 2),
        # Feb: start 3,980 + 1,876; new 5,000 (c4) + $20.33 -> 3,052; end 8,980 +
        # $32.83 -> 4,928 (converted as a total, not as 1,876 + 3,052 by chance equal).
        (5856, 5000 + 3052, 0, 8980 + 4928, 13908 * 12, 4),
        # Mar at 151.505: start 8,980 + $32.83 -> 4,974 (46 more than February's end:
        # the rate moved, no customer did); churn $12.50 -> 1,894; end 8,980 + $20.33
        # -> 3,080.
        (8980 + 4974, 0, 1894, 8980 + 3080, 12060 * 12, 3),
    ]  # fmt: skip
    assert rows[2]["trend"] == {}  # trends would need rates for the year before
    # The rates used, each with the buckets it converted.
    rates = [(r["currency"], r["reporting_currency"], r["rate"], r["effective_from"],
              r["buckets"], r["entered_by"]) for r in converted["rates"]]  # fmt: skip
    assert rates == [
        ("USD", "JPY", "150.12", "2026-01-01", ["2026-01", "2026-02"], "test:fx"),
        ("USD", "JPY", "151.505", "2026-02-15", ["2026-03"], "test:fx"),
    ]
    assert "half-even" in converted["rounding"]


def test_without_a_reporting_currency_there_is_no_converted_block(http: httpx.Client) -> None:
    assert report(http, "mrr")["converted"] is None


def test_rates_are_recomputed_from_the_converted_amounts(http: httpx.Client) -> None:
    rows = report(http, "customers", reporting_currency="JPY")["converted"]["buckets"]
    names = ("customers_start", "customers", "arpa", "customer_churn_rate",
             "gross_mrr_churn_rate", "net_mrr_churn_rate", "quick_ratio", "ltv")  # fmt: skip
    assert pick(rows, *names) == [
        # Jan: ARPA 5,856 / 2 = 2,928; nobody at the start, so no rates.
        (0, 2, 2928, None, None, None, None, None),
        # Feb: ARPA 13,908 / 4 = 3,477; nobody lost.
        (2, 4, 3477, "0.0000", "0.0000", "0.0000", None, None),
        # Mar: ARPA 12,060 / 3 = 4,020; 1 of 4 churned = 0.25 (USD alone: 1 of 2); gross
        # 1,894 / 13,954 = 0.135732 -> 0.1357, net the same (no expansion); quick ratio
        # 0 / 1,894 = 0; LTV 4,020 / 0.25 = 16,080.
        (4, 3, 4020, "0.2500", "0.1357", "0.1357", "0.0000", 16080),
    ]


def test_revenue_receivables_and_dunning(http: httpx.Client) -> None:
    rows = report(http, "revenue", reporting_currency="JPY")["converted"]["buckets"]
    assert pick(rows, "invoiced", "collected", "net_collected", "failed_payments",
                "failed_amount") == [
        (3980 + 1876, 3980 + 1876, 5856, 0, 0),
        # Feb: 8,980 yen invoiced and paid; $32.83 invoiced -> 4,928, $12.50 paid ->
        # 1,876; c3's $20.33 failed -> 3,052.
        (8980 + 4928, 8980 + 1876, 10856, 1, 3052),
        # Mar: 8,980 yen; c3's $20.33 recovered -> 3,080 at March's rate.
        (8980, 8980 + 3080, 12060, 0, 0),
    ]  # fmt: skip
    rows = report(http, "receivables", reporting_currency="JPY")["converted"]["buckets"]
    # Feb's end: c3's $20.33 open for 23 days -> 3,052 in 1-30; paid in March.
    assert pick(rows, "days_1_30", "open_balance", "invoices") == [
        (0, 0, 0), (3052, 3052, 1), (0, 0, 0),
    ]  # fmt: skip
    body = report(http, "dunning", reporting_currency="JPY")
    rows = body["converted"]["buckets"]
    assert pick(rows, "first_attempts", "first_attempt_failures",
                "first_attempt_failure_rate") == [
        (2, 0, "0.0000"), (4, 1, "0.2500"), (2, 0, "0.0000"),
    ]  # fmt: skip
    march = rows[2]
    assert (march["recovered"], march["recovery_rate"], march["recovered_amount"]) == (
        1, "1.0000", 3080,
    )  # fmt: skip
    assert march["recovered_by_step"] == {"retry_1": 3080}
    assert march["recovered_by_decline_code"] == {"card_declined": 3080}
    # A median of two currencies' episodes is no median: only the USD block has it.
    assert march["time_to_recover_median_seconds"] is None
    usd = next(b for b in body["currencies"] if b["currency"] == "USD")["buckets"]
    assert usd[2]["time_to_recover_median_seconds"] is not None


def test_the_forecast_converts_its_windows(http: httpx.Client) -> None:
    body = report(http, "forecast", reporting_currency="JPY")
    windows = body["converted"]["buckets"]
    assert [w["window"] for w in windows] == ["rest_of_month", "next_month"]
    assert all(w["recovery_rate"] is None for w in windows)  # per currency only


# -- a missing rate is a 422, never a silent 0 or 1 --------------------------------------


def test_a_bucket_without_a_rate_is_a_422_naming_the_currency_and_month(
    http: httpx.Client, sessions: sessionmaker[Session]
) -> None:
    response = http.get("/v1/analytics/mrr", params={**Q1, "reporting_currency": "EUR"})
    message = error_of(response, 422)["message"]
    assert message.startswith(
        "reporting_currency EUR needs a JPY rate effective on or before 2026-01-01 "
        "(the bucket 2026-01) and none is entered"
    ), message
    # JPY has a GBP rate from January, USD only from February: USD's January is missing.
    for code, day in (("JPY", date(2026, 1, 1)), ("USD", date(2026, 2, 1))):
        exchange_rates.set_rate(sessions, currency=code, reporting_currency="GBP",
                                rate="0.0053" if code == "JPY" else "0.79",
                                effective_from=day, entered_by="test:fx")  # fmt: skip
    response = http.get("/v1/analytics/revenue", params={**Q1, "reporting_currency": "GBP"})
    assert (
        "needs a USD rate effective on or before 2026-01-01 (the bucket 2026-01)"
        in (error_of(response, 422)["message"])
    )
    # From February on, every bucket has its rates (one effective on its first day counts).
    body = report(http, "revenue", reporting_currency="GBP", **{"from": "2026-02-01"})
    assert [r["label"] for r in body["converted"]["buckets"]] == ["2026-02", "2026-03"]


def test_an_unknown_reporting_currency_is_a_422(http: httpx.Client) -> None:
    response = http.get("/v1/analytics/mrr", params={**Q1, "reporting_currency": "XXX"})
    assert error_of(response, 422)["message"].startswith("reporting_currency is invalid")


# -- the CLI ------------------------------------------------------------------------------


def test_the_cli_prints_the_block_in_jpy_with_its_rates(db: str) -> None:
    done = kakin(db, "report", "mrr", "--from", "2026-01-01", "--to", "2026-04-01",
                 "--reporting-currency", "JPY")  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    start = lines.index("in JPY")
    march = lines[start + 5]
    assert march.split() == [
        "2026-03", "13,954円", "0円", "0円", "0円", "1,894円", "0円", "12,060円", "144,720円",
        "3", "0円",
    ]  # fmt: skip
    assert "rate: 1 USD = 150.12 JPY from 2026-01-01 (2026-01, 2026-02), entered by test:fx" in (
        lines
    )
    assert "rate: 1 USD = 151.505 JPY from 2026-02-15 (2026-03), entered by test:fx" in lines
    assert any(line.startswith("rounding: Each currency's bucket total") for line in lines)


def test_the_cli_csv_marks_the_converted_rows(db: str) -> None:
    done = kakin(db, "report", "revenue", "--from", "2026-01-01", "--to", "2026-04-01",
                 "--reporting-currency", "JPY", "--csv")  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [r for r in csv.DictReader(io.StringIO(done.stdout)) if r["currency"] == "in JPY"]
    assert [(r["period"], r["collected"]) for r in rows] == [
        ("2026-01", "5856"), ("2026-02", "10856"), ("2026-03", "12060"),
    ]  # fmt: skip


def test_the_cli_refuses_a_bucket_without_a_rate(db: str) -> None:
    done = kakin(db, "report", "mrr", "--from", "2026-01-01", "--to", "2026-04-01",
                 "--reporting-currency", "EUR")  # fmt: skip
    assert done.returncode == 2
    assert "needs a JPY rate effective on or before 2026-01-01 (the bucket 2026-01)" in (
        done.stderr
    )
