"""GET /v1/analytics/*: the figures of a small hand-made ledger, worked by hand.

The ledger is written with ``models.repositories.ledger.append`` (the pipeline's own
writer is built beside this), with fixed event keys, so every module that writes it
(this one, the CLI's) adds it once. It covers the first quarter of 2025 on the
reporting calendar (Asia/Tokyo, the default ``KAKIN_REPORTING_TIME_ZONE``):

    Jan 2025 = [2024-12-31T15:00Z, 2025-01-31T15:00Z)
    Feb 2025 = [2025-01-31T15:00Z, 2025-02-28T15:00Z)
    Mar 2025 = [2025-02-28T15:00Z, 2025-03-31T15:00Z)

JPY: c1 starts at 3,980 (Jan 10), upgrades to 9,800 (Feb 10), is billed 9,800 on
Mar 10 (unpaid; an 800 credit note), gets a 1,000 refund; c2 takes a yearly plan of
117,600 (9,800 a month, Jan 20) and cancels (Mar 15); c3 starts at 5,000 on
2025-01-31T15:30Z, which is February in Tokyo, fails its first payment, and is
recovered at the second retry (Mar 7). USD: c5 at $20.00 (Jan 5) fails its March
renewal, is suspended and written off; c4 starts at $12.50 (Feb 5).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from billing.analytics.ledger import EntryKind
from kakin.services.api_keys import CreatedKey
from models.repositories import ledger as ledger_sql
from tests.helpers import client, error_of

pytestmark = pytest.mark.devserver

K = EntryKind
Q1 = {"from": "2025-01-01", "to": "2025-04-01", "interval": "month"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (event key, kind, occurred at, fields): recorded when it occurred, as a back-fill.
LEDGER: list[tuple[str, EntryKind, str, dict[str, Any]]] = [
    # JPY, January
    ("rpt:s1:start", K.SUBSCRIPTION_STARTED, "2025-01-10T03:00",
     dict(customer_id="rpt_c1", subscription_id="rpt_s1", currency="JPY", mrr_after=3980,
          status_after="active")),
    ("rpt:i1:fin", K.INVOICE_FINALIZED, "2025-01-10T03:00",
     dict(customer_id="rpt_c1", subscription_id="rpt_s1", invoice_id="rpt_i1", currency="JPY",
          amount=3980)),
    ("rpt:i1:ok", K.PAYMENT_SUCCEEDED, "2025-01-10T03:00:05",
     dict(customer_id="rpt_c1", invoice_id="rpt_i1", currency="JPY", amount=3980, attempt=1)),
    ("rpt:i1:paid", K.INVOICE_PAID, "2025-01-10T03:00:05",
     dict(customer_id="rpt_c1", invoice_id="rpt_i1", currency="JPY", amount=3980, attempt=1)),
    ("rpt:s2:start", K.SUBSCRIPTION_STARTED, "2025-01-20T00:00",
     dict(customer_id="rpt_c2", subscription_id="rpt_s2", currency="JPY", mrr_after=9800,
          status_after="active")),  # a yearly 117,600: 117,600 / 12 = 9,800 a month
    ("rpt:i2:fin", K.INVOICE_FINALIZED, "2025-01-20T00:00",
     dict(customer_id="rpt_c2", subscription_id="rpt_s2", invoice_id="rpt_i2", currency="JPY",
          amount=117600)),
    ("rpt:i2:ok", K.PAYMENT_SUCCEEDED, "2025-01-20T00:00:05",
     dict(customer_id="rpt_c2", invoice_id="rpt_i2", currency="JPY", amount=117600, attempt=1)),
    ("rpt:i2:paid", K.INVOICE_PAID, "2025-01-20T00:00:05",
     dict(customer_id="rpt_c2", invoice_id="rpt_i2", currency="JPY", amount=117600, attempt=1)),
    # JPY, February (2025-01-31T15:30Z is 2025-02-01 00:30 in Tokyo)
    ("rpt:s3:start", K.SUBSCRIPTION_STARTED, "2025-01-31T15:30",
     dict(customer_id="rpt_c3", subscription_id="rpt_s3", currency="JPY", mrr_after=5000,
          status_after="active")),
    ("rpt:i3:fin", K.INVOICE_FINALIZED, "2025-01-31T15:30",
     dict(customer_id="rpt_c3", subscription_id="rpt_s3", invoice_id="rpt_i3", currency="JPY",
          amount=5000)),
    ("rpt:i3:fail1", K.PAYMENT_FAILED, "2025-01-31T15:30:05",
     dict(customer_id="rpt_c3", invoice_id="rpt_i3", currency="JPY", amount=5000, attempt=1,
          decline_code="card_declined")),
    ("rpt:s1:up", K.PLAN_CHANGED, "2025-02-10T03:00",
     dict(customer_id="rpt_c1", subscription_id="rpt_s1", currency="JPY", mrr_before=3980,
          mrr_after=9800, status_before="active", status_after="active")),
    ("rpt:i4:fin", K.INVOICE_FINALIZED, "2025-02-10T03:00",
     dict(customer_id="rpt_c1", subscription_id="rpt_s1", invoice_id="rpt_i4", currency="JPY",
          amount=5820)),  # the upgrade's proration
    ("rpt:i4:ok", K.PAYMENT_SUCCEEDED, "2025-02-10T03:00:05",
     dict(customer_id="rpt_c1", invoice_id="rpt_i4", currency="JPY", amount=5820, attempt=1)),
    ("rpt:i4:paid", K.INVOICE_PAID, "2025-02-10T03:00:05",
     dict(customer_id="rpt_c1", invoice_id="rpt_i4", currency="JPY", amount=5820, attempt=1)),
    # JPY, March
    ("rpt:i3:fail2", K.PAYMENT_FAILED, "2025-03-03T15:30",
     dict(customer_id="rpt_c3", invoice_id="rpt_i3", currency="JPY", amount=5000, attempt=2,
          decline_code="card_declined", dunning_step="retry_1")),
    ("rpt:i3:ok", K.PAYMENT_SUCCEEDED, "2025-03-07T15:30",
     dict(customer_id="rpt_c3", invoice_id="rpt_i3", currency="JPY", amount=5000, attempt=3,
          dunning_step="retry_2")),
    ("rpt:i3:paid", K.INVOICE_PAID, "2025-03-07T15:30",
     dict(customer_id="rpt_c3", invoice_id="rpt_i3", currency="JPY", amount=5000, attempt=3,
          dunning_step="retry_2")),
    ("rpt:i5:fin", K.INVOICE_FINALIZED, "2025-03-10T03:00",
     dict(customer_id="rpt_c1", subscription_id="rpt_s1", invoice_id="rpt_i5", currency="JPY",
          amount=9800, due_at=at("2025-03-10T03:00"))),
    ("rpt:s2:cancel", K.CANCELED, "2025-03-15T00:00",
     dict(customer_id="rpt_c2", subscription_id="rpt_s2", currency="JPY", mrr_before=9800,
          mrr_after=0, status_before="active", status_after="canceled")),
    ("rpt:i4:refund", K.REFUND_CREATED, "2025-03-20T00:00",
     dict(customer_id="rpt_c1", invoice_id="rpt_i4", currency="JPY", amount=1000)),
    ("rpt:i5:credit", K.CREDIT_NOTE_ISSUED, "2025-03-25T00:00",
     dict(customer_id="rpt_c1", invoice_id="rpt_i5", currency="JPY", amount=800)),
    # USD
    ("rpt:s5:start", K.SUBSCRIPTION_STARTED, "2025-01-05T00:00",
     dict(customer_id="rpt_c5", subscription_id="rpt_s5", currency="USD", mrr_after=2000,
          status_after="active")),
    ("rpt:i7:fin", K.INVOICE_FINALIZED, "2025-01-05T00:00",
     dict(customer_id="rpt_c5", subscription_id="rpt_s5", invoice_id="rpt_i7", currency="USD",
          amount=2000)),
    ("rpt:i7:ok", K.PAYMENT_SUCCEEDED, "2025-01-05T00:00:05",
     dict(customer_id="rpt_c5", invoice_id="rpt_i7", currency="USD", amount=2000, attempt=1)),
    ("rpt:i7:paid", K.INVOICE_PAID, "2025-01-05T00:00:05",
     dict(customer_id="rpt_c5", invoice_id="rpt_i7", currency="USD", amount=2000, attempt=1)),
    ("rpt:s4:start", K.SUBSCRIPTION_STARTED, "2025-02-05T00:00",
     dict(customer_id="rpt_c4", subscription_id="rpt_s4", currency="USD", mrr_after=1250,
          status_after="active")),
    ("rpt:i6:fin", K.INVOICE_FINALIZED, "2025-02-05T00:00",
     dict(customer_id="rpt_c4", subscription_id="rpt_s4", invoice_id="rpt_i6", currency="USD",
          amount=1250)),
    ("rpt:i6:ok", K.PAYMENT_SUCCEEDED, "2025-02-05T00:00:05",
     dict(customer_id="rpt_c4", invoice_id="rpt_i6", currency="USD", amount=1250, attempt=1)),
    ("rpt:i6:paid", K.INVOICE_PAID, "2025-02-05T00:00:05",
     dict(customer_id="rpt_c4", invoice_id="rpt_i6", currency="USD", amount=1250, attempt=1)),
    ("rpt:i8:fin", K.INVOICE_FINALIZED, "2025-03-05T00:00",
     dict(customer_id="rpt_c5", subscription_id="rpt_s5", invoice_id="rpt_i8", currency="USD",
          amount=2000)),
    ("rpt:i8:fail1", K.PAYMENT_FAILED, "2025-03-05T00:00:05",
     dict(customer_id="rpt_c5", invoice_id="rpt_i8", currency="USD", amount=2000, attempt=1,
          decline_code="insufficient_funds")),
    ("rpt:s5:suspend", K.STATUS_CHANGED, "2025-03-20T00:00",
     dict(customer_id="rpt_c5", subscription_id="rpt_s5", currency="USD", mrr_before=2000,
          mrr_after=0, status_before="past_due", status_after="suspended")),
    ("rpt:i8:off", K.INVOICE_WRITTEN_OFF, "2025-03-25T00:00",
     dict(customer_id="rpt_c5", invoice_id="rpt_i8", currency="USD", amount=2000)),
]  # fmt: skip


def write_ledger(sessions: sessionmaker[Session]) -> None:
    """The hand-made ledger, once however many modules ask (append is per event key)."""
    with sessions() as session:
        for key, kind, when, fields in LEDGER:
            moment = at(when)
            ledger_sql.append(
                session, key, kind=kind, occurred_at=moment, recorded_at=moment, **fields
            )
        session.commit()


@pytest.fixture(scope="module")
def ledger(pg_sessions: sessionmaker[Session]) -> None:
    write_ledger(pg_sessions)


@pytest.fixture(scope="module")
def http(url: str, made_keys: dict[str, CreatedKey], ledger: None) -> Iterator[httpx.Client]:
    with client(url, made_keys["finance"].secret) as session:
        yield session


def report(http: httpx.Client, name: str, **params: str) -> dict[str, Any]:
    response = http.get(f"/v1/analytics/{name}", params={**Q1, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def buckets(body: dict[str, Any], currency: str) -> list[dict[str, Any]]:
    (block,) = [b for b in body["currencies"] if b["currency"] == currency]
    found: list[dict[str, Any]] = block["buckets"]
    return found


def pick(rows: list[dict[str, Any]], *names: str) -> list[tuple[Any, ...]]:
    return [tuple(row[name] for name in names) for row in rows]


# -- the figures -----------------------------------------------------------------------


def test_mrr_movements_per_month_in_tokyo(http: httpx.Client) -> None:
    body = report(http, "mrr", currency="JPY")
    assert body["report"] == "mrr" and body["interval"] == "month"
    assert body["time_zone"] == "Asia/Tokyo"
    assert body["start"] == "2024-12-31T15:00:00Z" and body["end"] == "2025-03-31T15:00:00Z"
    assert [b["currency"] for b in body["currencies"]] == ["JPY"]
    rows = buckets(body, "JPY")
    assert [r["label"] for r in rows] == ["2025-01", "2025-02", "2025-03"]
    names = ("mrr_start", "new", "expansion", "contraction", "churn", "reactivation", "mrr_end")
    assert pick(rows, *names) == [
        # Jan: c1 3,980 + c2 9,800 (117,600 / 12) new = 13,780.
        (0, 13780, 0, 0, 0, 0, 13780),
        # Feb: c3 5,000 new (15:30Z on Jan 31 is Feb 1 in Tokyo); c1 3,980 -> 9,800 is
        # 5,820 expansion: 13,780 + 5,000 + 5,820 = 24,600.
        (13780, 5000, 5820, 0, 0, 0, 24600),
        # Mar: c2 cancels, 9,800 churn: 24,600 - 9,800 = 14,800.
        (24600, 0, 0, 0, 9800, 0, 14800),
    ]
    assert pick(rows, "arr", "customers_end", "subscriptions") == [
        (13780 * 12, 2, 2), (24600 * 12, 3, 3), (14800 * 12, 2, 2),
    ]  # fmt: skip
    assert pick(rows, "new_customers", "churned_customers") == [(2, 0), (1, 0), (0, 1)]
    # MRR's growth: Feb (24,600 - 13,780) / 13,780 = 0.78519 -> 0.7852; Mar (14,800 -
    # 24,600) / 24,600 = -0.39837 -> -0.3984; the 3-month average in Mar: (13,780 +
    # 24,600 + 14,800) / 3 = 17,726.67 (a rate-like figure: four places).
    trends = [r["trend"]["mrr"] for r in rows]
    assert [t["growth"] for t in trends] == [None, "0.7852", "-0.3984"]
    assert trends[2]["moving_average"] == "17726.6667"
    assert trends[0]["year_over_year"] is None  # nothing in 2024


def test_jpy_and_usd_are_never_added(http: httpx.Client) -> None:
    body = report(http, "mrr")  # no currency: a block per currency the ledger holds
    codes = [b["currency"] for b in body["currencies"]]
    assert {"JPY", "USD"} <= set(codes) and codes == sorted(codes)
    usd = buckets(body, "USD")
    # Jan: c5 $20.00 new; Feb: c4 $12.50 new; Mar: c5 suspended, $20.00 churn.
    assert pick(usd, "mrr_start", "new", "churn", "mrr_end") == [
        (0, 2000, 0, 2000), (2000, 1250, 0, 3250), (3250, 0, 2000, 1250),
    ]  # fmt: skip
    assert buckets(body, "JPY")[2]["mrr_end"] == 14800  # not 14,800 + 1,250


def test_revenue(http: httpx.Client) -> None:
    rows = buckets(report(http, "revenue", currency="JPY"), "JPY")
    names = ("invoiced", "collected", "refunded", "credited", "net_collected",
             "failed_payments", "failed_amount")  # fmt: skip
    assert pick(rows, *names) == [
        # Jan: 3,980 + 117,600 = 121,580 invoiced, both paid.
        (121580, 121580, 0, 0, 121580, 0, 0),
        # Feb: c3's 5,000 + the 5,820 proration invoiced; only the proration paid; c3's
        # first attempt failed (15:30:05Z on Jan 31: February).
        (10820, 5820, 0, 0, 5820, 1, 5000),
        # Mar: c1's 9,800 invoiced; c3's 5,000 recovered; a 1,000 refund, an 800 credit
        # note; the retry that failed: 5,000 - 1,000 = 4,000 net.
        (9800, 5000, 1000, 800, 4000, 1, 5000),
    ]
    # Collected's growth in Feb: (5,820 - 121,580) / 121,580 = -0.95213 -> -0.9521.
    assert rows[1]["trend"]["collected"]["growth"] == "-0.9521"
    usd = buckets(report(http, "revenue", currency="USD"), "USD")
    assert pick(usd, "invoiced", "collected", "written_off", "failed_payments") == [
        (2000, 2000, 0, 0), (1250, 1250, 0, 0), (2000, 0, 2000, 1),
    ]  # fmt: skip


def test_customers(http: httpx.Client) -> None:
    rows = buckets(report(http, "customers", currency="JPY"), "JPY")
    names = ("customers_start", "customers", "arpa", "customer_churn_rate",
             "gross_mrr_churn_rate", "net_mrr_churn_rate", "quick_ratio", "ltv")  # fmt: skip
    assert pick(rows, *names) == [
        # Jan: nobody at the start, so no rates; ARPA 13,780 / 2 = 6,890.
        (0, 2, 6890, None, None, None, None, None),
        # Feb: ARPA 24,600 / 3 = 8,200; nobody lost: churn 0 / 2, gross 0 / 13,780; net
        # (0 - 5,820 expansion) / 13,780 = -0.42235 -> -0.4224 (net negative churn);
        # quick ratio (5,000 + 5,820) / 0 has no value, nor LTV (no churn).
        (2, 3, 8200, "0.0000", "0.0000", "-0.4224", None, None),
        # Mar: c2 churns: 1 / 3 = 0.3333; MRR churn 9,800 / 24,600 = 0.39837 -> 0.3984
        # (gross and net: no expansion); quick ratio 0 / 9,800; ARPA 14,800 / 2 = 7,400;
        # LTV 7,400 / (1 / 3) = 22,200.
        (3, 2, 7400, "0.3333", "0.3984", "0.3984", "0.0000", 22200),
    ]


def test_receivables(http: httpx.Client) -> None:
    rows = buckets(report(http, "receivables", currency="JPY"), "JPY")
    names = ("as_of", "current", "days_1_30", "days_31_60", "open_balance", "invoices")
    assert pick(rows, *names) == [
        # End of Jan: everything paid.
        ("2025-01-31T15:00:00Z", 0, 0, 0, 0, 0),
        # End of Feb: c3's 5,000, due 2025-01-31T15:30Z, is 27 days 23.5 hours late.
        ("2025-02-28T15:00:00Z", 0, 5000, 0, 5000, 1),
        # End of Mar: c3 paid; c1's 9,800 less the 800 credit note = 9,000, due Mar 10
        # 03:00Z, 21 days 12 hours late.
        ("2025-03-31T15:00:00Z", 0, 9000, 0, 9000, 1),
    ]
    usd = buckets(report(http, "receivables", currency="USD"), "USD")
    assert [r["open_balance"] for r in usd] == [0, 0, 0]  # c5's March invoice written off


def test_dunning(http: httpx.Client) -> None:
    rows = buckets(report(http, "dunning", currency="JPY"), "JPY")
    assert pick(rows, "first_attempts", "first_attempt_failures", "first_attempt_failure_rate") == [
        (2, 0, "0.0000"),  # Jan: i1, i2 paid at once
        (2, 1, "0.5000"),  # Feb: i3 failed, i4 paid
        (0, 0, None),  # Mar: retries only
    ]
    march = rows[2]
    assert (march["recovered"], march["lost"], march["recovery_rate"]) == (1, 0, "1.0000")
    assert march["recovered_amount"] == 5000
    assert march["recovered_by_step"] == {"retry_2": 5000}
    assert march["recovered_by_decline_code"] == {"card_declined": 5000}
    # From the first failure (2025-01-31T15:30:05Z) to the payment (2025-03-07T15:30Z):
    # 35 days less 5 seconds = 3,024,000 - 5 seconds.
    assert march["time_to_recover_median_seconds"] == 3_023_995
    usd = buckets(report(http, "dunning", currency="USD"), "USD")[2]
    assert (usd["first_attempt_failure_rate"], usd["lost"], usd["lost_amount"]) == (
        "1.0000", 1, 2000,
    )  # fmt: skip
    assert usd["recovery_rate"] == "0.0000"


def test_every_report_says_when_it_was_read(http: httpx.Client) -> None:
    for name in ("mrr", "revenue", "customers", "receivables", "dunning", "forecast"):
        before = datetime.now(UTC)
        body = report(http, name, currency="JPY")
        assert body["object"] == "analytics_report" and body["report"] == name
        assert body["lag_seconds"] == 0
        assert "within 5 seconds" in body["freshness"]
        read = datetime.fromisoformat(body["as_of"])
        assert before - timedelta(seconds=1) <= read <= datetime.now(UTC)


def test_the_forecast_answers_two_windows_per_currency(http: httpx.Client) -> None:
    body = report(http, "forecast", currency="USD")
    (usd,) = body["currencies"]
    assert [w["window"] for w in usd["buckets"]] == ["rest_of_month", "next_month"]
    for window in usd["buckets"]:
        assert window["total"] == window["recurring"] + window["metered"] + window["open_invoices"]
    # Over Q1 one USD episode ended, lost: the observed recovery rate is 0.
    assert usd["buckets"][0]["recovery_rate"] == "0.0000"


# -- a past figure stays, a new entry shows at once -----------------------------------


def test_a_past_month_is_the_same_after_more_entries(
    http: httpx.Client, pg_sessions: sessionmaker[Session]
) -> None:
    first = report(http, "mrr", currency="JPY")
    first_revenue = report(http, "revenue", currency="JPY")
    now = datetime.now(UTC)
    with pg_sessions() as session:
        # A late webhook: a payment dated in February, written now; and a downgrade.
        ledger_sql.append(
            session, "rpt:late:paid", kind=K.INVOICE_PAID, occurred_at=at("2025-02-20T00:00"),
            recorded_at=now, customer_id="rpt_c3", invoice_id="rpt_i9", currency="JPY",
            amount=777,
        )  # fmt: skip
        ledger_sql.append(
            session, "rpt:late:down", kind=K.PLAN_CHANGED, occurred_at=at("2025-02-20T00:00"),
            recorded_at=now, customer_id="rpt_c1", subscription_id="rpt_s1", currency="JPY",
            mrr_before=9800, mrr_after=3980, status_before="active", status_after="active",
        )  # fmt: skip
        session.commit()
    again = report(http, "mrr", currency="JPY")
    assert buckets(again, "JPY") == buckets(first, "JPY")
    assert buckets(report(http, "revenue", currency="JPY"), "JPY") == buckets(first_revenue, "JPY")


def test_a_new_entry_shows_at_once(http: httpx.Client, pg_sessions: sessionmaker[Session]) -> None:
    today = {"from": (datetime.now(UTC) - timedelta(days=2)).date().isoformat(),
             "to": (datetime.now(UTC) + timedelta(days=2)).date().isoformat(),
             "interval": "day", "currency": "JPY"}  # fmt: skip
    before = sum(r["collected"] for r in buckets(report(http, "revenue", **today), "JPY"))
    now = datetime.now(UTC)
    with pg_sessions() as session:
        ledger_sql.append(
            session, f"rpt:now:{now.isoformat()}", kind=K.INVOICE_PAID, occurred_at=now,
            recorded_at=now, customer_id="rpt_c1", invoice_id="rpt_now", currency="JPY",
            amount=1234,
        )  # fmt: skip
        session.commit()
    after = sum(r["collected"] for r in buckets(report(http, "revenue", **today), "JPY"))
    assert after - before == 1234


# -- refusals: 422 naming the field, roles ---------------------------------------------


@pytest.mark.parametrize(
    ("params", "field", "says"),
    [
        ({"from": "2025-04-01", "to": "2025-01-01"}, "to", "to must be after from"),
        ({"from": "2025-01-01", "to": "2025-01-01"}, "to", "to must be after from"),
        ({"from": "2020-01-01", "to": "2025-01-01", "interval": "day"}, "to", "1,000"),
        ({"interval": "year"}, "interval", "interval is invalid"),
        ({"currency": "EUR"}, "currency", "currency EUR has no entries in the ledger"),
        ({"currency": "XYZ1"}, "currency", "currency is invalid"),
        ({"from": "yesterday"}, "from", "from must be a date"),
        ({"to": "2025-04-01T00:00:00"}, "to", "to must carry a UTC offset"),
    ],
)
@pytest.mark.parametrize("name", ["mrr", "forecast"])
def test_a_range_it_cannot_answer_is_a_422_naming_the_field(
    http: httpx.Client, name: str, params: dict[str, str], field: str, says: str
) -> None:
    response = http.get(f"/v1/analytics/{name}", params={**Q1, **params})
    error = error_of(response, 422)
    assert error["type"] == "invalid_request"
    assert error["message"].startswith(f"{field} "), error["message"]
    assert says in error["message"]
    assert error["message"].endswith(".") and "\n" not in error["message"]


def test_finance_reads_the_analytics_and_nothing_else(
    url: str, made_keys: dict[str, CreatedKey], ledger: None
) -> None:
    for role in ("finance", "support", "admin"):
        with client(url, made_keys[role].secret) as http:
            assert http.get("/v1/analytics/mrr", params=Q1).status_code == 200, role
    with client(url, made_keys["service"].secret) as http:
        refused = error_of(http.get("/v1/analytics/mrr", params=Q1), 403)
        assert "this needs a key with the role admin or finance or support" in refused["message"]
    with client(url, made_keys["finance"].secret) as http:
        assert http.get("/v1/customers").status_code == 403
        assert http.get("/v1/invoices").status_code == 403
        write = http.post("/v1/subscriptions/sub_x/cancel", json={"reason": "r"})
        assert error_of(write, 403)["type"] == "permission_error"


def test_the_reports_are_in_the_openapi_document(url: str) -> None:
    with client(url) as http:
        paths = http.get("/openapi.json").json()["paths"]
    for name in ("mrr", "revenue", "customers", "receivables", "dunning", "forecast"):
        operation = paths[f"/v1/analytics/{name}"]["get"]
        assert operation["x-roles"] == ["support", "finance", "admin"]
        params = {p["name"] for p in operation["parameters"]}
        assert params == {"from", "to", "interval", "currency", "reporting_currency"}
        assert "422" in operation["responses"]
