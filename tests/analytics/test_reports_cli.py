"""``kakin report ...`` on the hand-made ledger of test_reports_api: the table, --json
(the API's body) and --csv, run as a person would in a subprocess."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from kakin.cli.output import text_width
from tests.analytics.test_reports_api import write_ledger
from tests.cli.test_cli import kakin

Q1 = ("--from", "2025-01-01", "--to", "2025-04-01")


@pytest.fixture(scope="module")
def db(postgres_url: str, pg_sessions: sessionmaker[Session]) -> str:
    write_ledger(pg_sessions)
    return postgres_url


def run(db: str, *args: str) -> str:
    done = kakin(db, "report", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_table_reads_as_the_customer_reads_money(db: str) -> None:
    out = run(db, "mrr", *Q1, "--currency", "JPY")
    lines = out.splitlines()
    assert lines[0].startswith("mrr from 2024-12-31T15:00:00Z to 2025-03-31T15:00:00Z by month")
    assert "(Asia/Tokyo)" in lines[0] and lines[0].endswith("lag 0 s")
    assert lines[2] == "JPY"
    header, rule, *rows = lines[3:]
    assert header.split()[:3] == ["period", "MRR", "start"]
    assert set(rule) <= {"-", " "}
    # Feb: 13,780 + 5,000 new + 5,820 expansion = 24,600 (ARR 295,200), 3 customers.
    assert rows[1].split() == [
        "2025-02", "13,780円", "5,000円", "5,820円", "0円", "0円", "0円", "24,600円",
        "295,200円", "3", "0円",
    ]  # fmt: skip
    # Aligned: every row's cells end where the header's do (円 takes two columns).
    assert len({text_width(line) for line in (header, *rows)}) == 1


def test_usd_amounts_and_rates(db: str) -> None:
    out = run(db, "dunning", *Q1, "--currency", "USD")
    march = next(line for line in out.splitlines() if line.startswith("2025-03"))
    # One first attempt, failed (100%); the episode lost: $20.00, recovery 0%.
    assert march.split() == [
        "2025-03", "1", "1", "100.00%", "0", "1", "0.00%", "$0.00", "$20.00", "-",
    ]  # fmt: skip
    out = run(db, "revenue", *Q1, "--currency", "USD")
    feb = next(line for line in out.splitlines() if line.startswith("2025-02"))
    assert feb.split()[1:4] == ["$12.50", "$0.00", "$12.50"]


def test_json_is_the_api_body(db: str) -> None:
    body: dict[str, Any] = json.loads(run(db, "customers", *Q1, "--currency", "JPY", "--json"))
    assert body["object"] == "analytics_report" and body["report"] == "customers"
    assert body["lag_seconds"] == 0
    (block,) = body["currencies"]
    march = block["buckets"][2]
    assert (march["arpa"], march["customer_churn_rate"], march["ltv"]) == (7400, "0.3333", 22200)


def test_csv_for_spreadsheets(db: str) -> None:
    rows = list(csv.DictReader(io.StringIO(run(db, "receivables", *Q1, "--csv"))))
    jpy = [r for r in rows if r["currency"] == "JPY"]
    usd = [r for r in rows if r["currency"] == "USD"]
    assert [r["period"] for r in jpy] == ["2025-01", "2025-02", "2025-03"]
    assert [r["open_balance"] for r in jpy] == ["0", "5000", "9000"]  # yen: no decimals
    assert [r["open_balance"] for r in usd] == ["0.00", "0.00", "0.00"]  # dollars
    assert jpy[1]["days_1_30"] == "5000" and jpy[1]["start"] == "2025-01-31T15:00:00Z"


def test_every_report_runs_and_a_bad_range_names_the_field(db: str) -> None:
    for name in ("mrr", "revenue", "customers", "receivables", "dunning", "forecast"):
        assert "JPY" in run(db, name, *Q1, "--currency", "JPY")
    refused = kakin(db, "report", "mrr", "--from", "2025-04-01", "--to", "2025-01-01")
    assert refused.returncode == 2
    assert refused.stderr.strip() == "error: to must be after from"
    refused = kakin(db, "report", "mrr", "--currency", "EUR")
    assert refused.returncode == 2 and "error: currency EUR has no entries" in refused.stderr
    refused = kakin(db, "report", "mrr", "--interval", "year")
    assert (
        refused.returncode == 2 and "error: interval must be day, week or month" in refused.stderr
    )
