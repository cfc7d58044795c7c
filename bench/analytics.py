"""Issue 13's speed: the analytics endpoints over 24 months of seeded history.

``python -m bench analytics [--tiny|--small|--full]`` seeds a fresh PostgreSQL
database (``bench.analytics_seed``: customers, their subscriptions, invoices and the
ledger entries the history implies, with ``COPY``), prints how long that took, then
times ``GET /v1/analytics/{mrr,revenue,customers,receivables,dunning,forecast}`` for
the 24 monthly buckets ending with the current month, through the real API (uvicorn
in its own process, as ``kakin api`` serves it: ``bench.usage.serving_processes``),
``RUNS`` times each after one untimed call, and "the dashboard": the six in a row.
Goals (issue 13): every endpoint's p95 under 300 ms at the small size (10,000
customers, ~120,000 invoices) and under 1 s at the full size (100,000).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.analytics_seed import report_from as first_bucket
from bench.analytics_seed import seed
from bench.common import Figure, Report, percentile, postgres_database, progress
from bench.usage import serving_processes

SIZES = {"tiny": 300, "small": 10_000, "full": 100_000}
RUNS = {"tiny": 3, "small": 10, "full": 5}
GOALS_MS = {"tiny": 300.0, "small": 300.0, "full": 1000.0}
ENDPOINTS = ("mrr", "revenue", "customers", "receivables", "dunning", "forecast")


def _finance_key(url: str) -> str:
    from kakin.services import api_keys
    from models.db import make_engine, make_session_factory

    engine = make_engine(url)
    try:
        return api_keys.create_key(
            make_session_factory(engine), name="bench finance", role="finance"
        ).secret
    finally:
        engine.dispose()


def _timed(http: httpx.Client, name: str, params: dict[str, str]) -> float:
    started = time.perf_counter()
    response = http.get(f"/v1/analytics/{name}", params=params)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


def _measure(base: str, key: str, params: dict[str, str], runs: int) -> dict[str, list[float]]:
    """Seconds per call: each endpoint ``runs`` times (after one untimed call), then the
    dashboard's six calls in a row ``runs`` times."""
    found: dict[str, list[float]] = {}
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=600) as http:
        for name in ENDPOINTS:
            first = _timed(http, name, params)
            found[name] = [_timed(http, name, params) for _ in range(runs)]
            middle = percentile(found[name], 50) or 0.0
            progress(f"  {name}: first {first * 1000:,.0f} ms, p50 {middle * 1000:,.0f} ms")
        dashboard = []
        for _ in range(runs):
            started = time.perf_counter()
            for name in ENDPOINTS:
                _timed(http, name, params)
            dashboard.append(time.perf_counter() - started)
        found["dashboard"] = dashboard
    return found


def _figures(times: dict[str, list[float]], goal_ms: float) -> list[Figure]:
    figures = []
    for name, values in times.items():
        p50, p95 = percentile(values, 50), percentile(values, 95)
        assert p50 is not None and p95 is not None
        dashboard = name == "dashboard"
        figures.append(
            Figure(
                "dashboard (the six in a row)" if dashboard else f"GET /v1/analytics/{name} p95",
                p95 * 1000,
                "ms",
                goal="" if dashboard else f"< {goal_ms:,.0f}",
                met=None if dashboard else p95 * 1000 < goal_ms,
                notes=f"p50 {p50 * 1000:,.0f} ms over {len(values)} runs",
            )
        )
    return figures


async def run(size: str) -> Report:
    customers, runs = SIZES[size], RUNS[size]
    now = datetime.now(UTC)
    params = {"from": first_bucket(now).isoformat(), "interval": "month"}
    with postgres_database("analytics") as database:
        progress(f"seeding {customers:,} customers, 24 months of history")
        seeded = seed(database.url, customers, now)
        progress(
            f"  seeded in {seeded.seconds:,.1f} s: {seeded.subscriptions:,} subscriptions, "
            f"{seeded.invoices:,} invoices, {seeded.ledger_entries:,} ledger entries"
        )
        key = _finance_key(database.url)
        with serving_processes(database.url, 1) as base:
            progress(f"timing the six endpoints, {runs} runs each, 24 monthly buckets")
            times = _measure(base, key, params, runs)
    figures = [
        Figure(
            "seeding",
            seeded.seconds,
            "s",
            goal="minutes, not hours",
            notes=f"{seeded.ledger_entries:,} ledger entries, {seeded.invoices:,} invoices",
        ),
        *_figures(times, GOALS_MS[size]),
    ]
    details: dict[str, Any] = {
        "seeded": {
            "customers": seeded.customers,
            "subscriptions": seeded.subscriptions,
            "invoices": seeded.invoices,
            "ledger_entries": seeded.ledger_entries,
            "by_kind": dict(sorted(seeded.by_kind.items())),
        },
        "seconds": {name: [round(v, 4) for v in values] for name, values in times.items()},
    }
    return Report(
        command="analytics",
        params={"size": size, "customers": customers, "runs": runs, **params},
        figures=figures,
        details=details,
    )
