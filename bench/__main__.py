"""``python -m bench {cycles,cost,spike,memory,usage,analytics,forecast,all} [--tiny|...]``.

Progress goes to stderr; the figures go to stdout as a table and then as JSON (or
the JSON to ``--json PATH``). ``all`` runs every command but ``analytics``. Sizes:
``--full`` (the issue's sizes, the default), ``--small`` (CI-sized, ``all --small`` in
a few minutes), ``--tiny`` (the test suite).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import Report, progress, quiet_core_logs, write_output

# What ``all`` runs: issue 6's figures (tests/e2e/test_bench.py holds it to them).
COMMANDS = ("cycles", "cost", "spike", "memory", "usage")
# Run on their own: issue 13's analytics and forecast backtest and issue 14's console
# seed their own history.
OTHERS = ("analytics", "forecast", "console")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="kakin benchmarks (issue 6)"
    )
    parser.add_argument("command", choices=[*COMMANDS, *OTHERS, "all"])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", dest="size", action="store_const", const="full")
    size.add_argument("--small", dest="size", action="store_const", const="small")
    size.add_argument("--tiny", dest="size", action="store_const", const="tiny")
    parser.set_defaults(size="full")
    parser.add_argument("--json", type=Path, help="write the JSON here instead of stdout")
    parser.add_argument("-n", type=int, help="cycles: subscriptions (overrides the size)")
    parser.add_argument("-m", type=int, help="spike: subscriptions due at once")
    parser.add_argument("-k", type=int, help="memory: idle workflows per kind")
    parser.add_argument(
        "--stripe-limit", type=float, default=25.0,
        help="spike: Stripe's rate limit in requests/s (25 test mode, 100 live)",
    )  # fmt: skip
    parser.add_argument(
        "--spike-queue", choices=["both", "main_queue", "stripe_queue"], default="both",
        help="spike: where the charges run (both: one variant after the other)",
    )  # fmt: skip
    parser.add_argument(
        "--activity-workers", type=int, default=None, metavar="K",
        help="cycles: activity-only worker processes beside the workflow worker (0: one process)",
    )  # fmt: skip
    parser.add_argument(
        "--steady", action="store_true",
        help="cycles: time each subscription's second cycle (a renewal), not its first",
    )  # fmt: skip
    return parser


def _jobs(args: argparse.Namespace) -> dict[str, Callable[[], Awaitable[Report]]]:
    from bench import analytics, console, cost, cycles, forecast_backtest, memory, spike, usage

    return {
        "cycles": lambda: cycles.run(
            args.n or cycles.SIZES[args.size],
            activity_workers=(
                cycles.DEFAULT_ACTIVITY_WORKERS
                if args.activity_workers is None
                else args.activity_workers
            ),
            steady=args.steady,
        ),
        "cost": lambda: cost.run(),
        "spike": lambda: spike.run(
            args.m or spike.SIZES[args.size],
            limit=args.stripe_limit,
            variants=[v for v in spike.VARIANTS if args.spike_queue in ("both", v.key)],
        ),
        "memory": lambda: memory.run(args.k or memory.SIZES[args.size]),
        "usage": lambda: usage.run(args.size),
        "analytics": lambda: analytics.run(args.size),
        "forecast": lambda: forecast_backtest.run(args.size),
        "console": lambda: console.run(args.size),
    }


async def _main(args: argparse.Namespace) -> list[Report]:
    # SIGTERM stops like Ctrl-C: cancel, so every ``finally`` stops its servers.
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    jobs = _jobs(args)
    names = list(COMMANDS) if args.command == "all" else [args.command]
    reports = []
    for name in names:
        progress(f"== {name} ({args.size}) ==")
        started = time.monotonic()
        report = await jobs[name]()
        report.seconds = time.monotonic() - started
        reports.append(report)
    return reports


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    # An activity failing on a 429 is what the spike measures, not news: the limiter
    # counts them. Keep real errors.
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
    logging.getLogger("temporalio.worker").setLevel(logging.ERROR)
    quiet_core_logs()
    reports = asyncio.run(_main(args))
    write_output(reports, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
