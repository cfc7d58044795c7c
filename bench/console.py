"""Issue 14's speed: the console's server time for the dashboard and a customer page.

``python -m bench console [--tiny|--small]`` seeds the analytics bench's history
(``bench.analytics_seed``: 10,000 customers and ~120,000 invoices at ``--small``),
gives one customer 100 invoices more, signs a staff member in to the console served
as ``kakin api`` serves it (uvicorn in its own process), and times ``GET /console/``
(the dashboard: its figures come from the analytics services) and that customer's
page, ``RUNS`` times each after one untimed call. Goal (issue 14): p95 under 300 ms at
the small size.

Two-factor is turned off for the bench's member (test mode allows it): the bench
times pages, not sign-in, which argon2 makes slow on purpose.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg

from bench.analytics_seed import INVOICE_COLUMNS, seed
from bench.common import Figure, Report, percentile, postgres_database, progress
from bench.usage import serving_processes

SIZES = {"tiny": 300, "small": 10_000, "full": 100_000}
RUNS = {"tiny": 5, "small": 20, "full": 10}
GOAL_MS = 300.0
EXTRA_INVOICES = 100
EMAIL, PASSWORD = "ops-admin@example.jp", "quiet-meadow-ledger-77"


def _busiest_customer(url: str) -> str:
    """The customer with the most invoices, given ``EXTRA_INVOICES`` more (copies of
    its own, under new ids and numbers), so its page lists well over 100."""
    copied = ", ".join(
        {"id": "id || '-b' || n", "business_key": "business_key || '-b' || n",
         "number": "number || '-B' || n"}.get(column, column)
        for column in INVOICE_COLUMNS
    )  # fmt: skip
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT customer_id FROM invoices GROUP BY customer_id "
            "ORDER BY count(*) DESC, customer_id LIMIT 1"
        ).fetchone()
        assert row is not None, "the seed wrote no invoice"
        customer_id: str = row[0]
        connection.execute(
            f"INSERT INTO invoices ({', '.join(INVOICE_COLUMNS)}) "
            f"SELECT {copied} FROM (SELECT * FROM invoices WHERE customer_id = %s "
            "ORDER BY id LIMIT 1) AS one, generate_series(1, %s) AS n",
            (customer_id, EXTRA_INVOICES),
        )
        connection.commit()
    return customer_id


def _staff_member(url: str) -> None:
    from kakin.services import staff
    from kakin.services.staff import Origin
    from models.db import make_engine, make_session_factory

    engine = make_engine(url)
    try:
        staff.create_staff(
            make_session_factory(engine), email=EMAIL, name="bench", role="admin",
            password=PASSWORD, locale="ja", actor="bench", origin=Origin(address="bench"),
            now=datetime.now(UTC),
        )  # fmt: skip
    finally:
        engine.dispose()


def _sign_in(http: httpx.Client) -> None:
    form = http.get("/console/sign-in").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token, "the sign-in page has no CSRF token"
    answer = http.post(
        "/console/sign-in",
        data={"csrf_token": token.group(1), "email": EMAIL, "password": PASSWORD},
    )
    assert answer.status_code == 303, answer.text


def _timed(http: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    response = http.get(path)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, f"{path}: {response.status_code}"
    return elapsed


async def run(size: str) -> Report:
    customers, runs = SIZES[size], RUNS[size]
    now = datetime.now(UTC)
    with postgres_database("console") as database:
        progress(f"seeding {customers:,} customers, 24 months of history")
        seeded = seed(database.url, customers, now)
        busiest = _busiest_customer(database.url)
        _staff_member(database.url)
        progress(f"  seeded in {seeded.seconds:,.1f} s; {busiest} has {EXTRA_INVOICES}+ invoices")
        pages = {"dashboard": "/console/", "customer page": f"/console/customers/{busiest}"}
        times: dict[str, list[float]] = {}
        os.environ["KAKIN_CONSOLE_REQUIRE_2FA"] = "false"  # the server process inherits it
        try:
            with (
                serving_processes(database.url, 1) as base,
                httpx.Client(base_url=base, timeout=600) as http,
            ):
                _sign_in(http)
                for name, path in pages.items():
                    first = _timed(http, path)
                    times[name] = [_timed(http, path) for _ in range(runs)]
                    middle = percentile(times[name], 50) or 0.0
                    progress(f"  {name}: first {first * 1000:,.0f} ms, p50 {middle * 1000:,.0f} ms")
        finally:
            del os.environ["KAKIN_CONSOLE_REQUIRE_2FA"]
    figures = []
    for name, values in times.items():
        p50, p95 = percentile(values, 50) or 0.0, percentile(values, 95) or 0.0
        figures.append(
            Figure(
                f"{name} p95",
                p95 * 1000,
                "ms",
                goal=f"< {GOAL_MS:,.0f} ms at 10,000 customers",
                met=p95 * 1000 < GOAL_MS if size == "small" else None,
                notes=f"p50 {p50 * 1000:,.0f} ms, {runs} runs, server time through HTTP",
            )
        )
    details: dict[str, Any] = {
        "seeded": {"customers": customers, "invoices": seeded.invoices},
        "seconds": {name: [round(v, 4) for v in values] for name, values in times.items()},
    }
    return Report(
        command="console",
        params={"size": size, "customers": customers, "runs": runs},
        figures=figures,
        details=details,
    )
