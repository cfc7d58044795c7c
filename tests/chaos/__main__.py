"""``python -m tests.chaos``: one fault-injection run; prints the figures, exits 1 on a violation.

python -m tests.chaos --subscriptions 200 --renewals 3     # CI size (a few minutes)
python -m tests.chaos --large                              # 500 subscriptions, 4 renewals
python -m tests.chaos --json result.json --keep            # also write JSON, keep the logs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from tests.chaos.run import ChaosConfig, ChaosResult, run_chaos, timed
from tests.support.encryption import TEST_KEYS

LARGE = {"subscriptions": 500, "renewals": 4, "seconds_per_month": 30.0, "kills": 10}


def format_result(result: ChaosResult) -> str:
    """The figures as plain-text tables: invariants, faults injected, times."""
    lines = []
    width = max(len(item.name) for item in result.report.invariants)
    lines.append(f"{'invariant':<{width}}  {'checked':>8}  {'violations':>10}")
    lines.append("-" * (width + 22))
    for item in result.report.invariants:
        lines.append(f"{item.name:<{width}}  {item.checked:>8}  {item.violations:>10}")
        lines.extend(f"    e.g. {example}" for example in item.examples)
    lines.append("")
    faults = result.faults
    stripe = ", ".join(f"{kind} {n}" for kind, n in faults.stripe_faults.items()) or "none"
    lines.append("faults injected")
    lines.append(f"  worker SIGKILLs       {faults.worker_kills} ({faults.worker_starts} starts)")
    lines.append(
        f"  Stripe faults         {sum(faults.stripe_faults.values())} of "
        f"{faults.stripe_requests} requests: {stripe}"
    )
    lines.append(
        f"  PostgreSQL down       {faults.db_outages}x, {faults.db_outage_seconds:.1f} s in all"
    )
    lines.append(
        f"  email endpoint        {faults.email_failures} requests failed "
        f"({faults.email_outage_seconds:.0f} s of 503)"
    )
    lines.append(
        f"  usage client          {faults.usage_batches} batches, {faults.usage_resends} resent, "
        f"{faults.usage_errors} tries failed and retried"
    )
    lines.append(
        f"  Stripe webhooks       {faults.webhook_events} events, {faults.webhook_deliveries} "
        f"deliveries (copies at once, later copies, reordered, retried), "
        f"{faults.webhook_not_2xx} not 2xx; {faults.card_changes} card changes"
    )
    lines.append("")
    lines.append("figures: " + json.dumps(result.report.figures, ensure_ascii=False))
    lines.append(
        "time: " + ", ".join(f"{name} {timed(value)}" for name, value in result.seconds.items())
    )
    verdict = "PASS" if result.violations == 0 else f"FAIL: {result.violations} violations"
    lines.append(f"result: {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--subscriptions", type=int, default=200)
    parser.add_argument("--renewals", type=int, default=3)
    parser.add_argument("--seconds-per-month", type=float, default=20.0)
    parser.add_argument("--large", action="store_true", help=f"the larger size: {LARGE}")
    parser.add_argument("--kills", type=int, default=5, help="worker SIGKILLs")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--stripe-fault-rate", type=float, default=0.08)
    parser.add_argument("--db-outage", type=float, default=5.0, help="seconds PostgreSQL is down")
    parser.add_argument("--email-outage", type=float, default=10.0, help="seconds of SendGrid 503")
    parser.add_argument("--pdf", action="store_true", help="attach invoice PDFs (CPU heavy)")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--keep", action="store_true", help="keep the run directory and logs")
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)

    os.environ.setdefault("KAKIN_ENCRYPTION_KEYS", TEST_KEYS)
    config = ChaosConfig(
        subscriptions=args.subscriptions,
        renewals=args.renewals,
        seconds_per_month=args.seconds_per_month,
        kills=args.kills,
        seed=args.seed,
        stripe_fault_rate=args.stripe_fault_rate,
        db_outage_seconds=args.db_outage,
        email_outage_seconds=args.email_outage,
        attach_pdf=args.pdf,
        timeout=args.timeout,
        keep=args.keep,
    )
    if args.large:
        config.subscriptions = LARGE["subscriptions"]  # type: ignore[assignment]
        config.renewals = LARGE["renewals"]  # type: ignore[assignment]
        config.seconds_per_month = LARGE["seconds_per_month"]
        config.kills = LARGE["kills"]  # type: ignore[assignment]
    result = asyncio.run(run_chaos(config))
    print(format_result(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result.as_dict(), indent=1, ensure_ascii=False) + "\n")
    return 0 if result.violations == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
