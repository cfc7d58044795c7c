"""``kakin usage report|show``: usage events and the open period's cost so far."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from kakin.cli.alerts import alert_mail
from kakin.cli.output import (
    command_group,
    format_money,
    format_table,
    format_when,
    print_json,
    sessions,
)
from kakin.services import invoices
from kakin.services.errors import InvalidRequestError
from kakin.services.usage import UsageEventIn, ingest


def _usage_report(args: argparse.Namespace) -> int:
    """One event from the options, or JSON lines from ``--file`` (``-`` for stdin)."""
    if args.file:
        stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
        with stream:
            raw = [json.loads(line) for line in stream if line.strip()]
    else:
        if not (args.event_id and args.metric):
            raise InvalidRequestError("give --event-id and --metric, or --file")
        properties = dict(item.split("=", 1) for item in args.property or [])
        raw = [{"event_id": args.event_id, "metric": args.metric,
                "timestamp": args.timestamp or datetime.now(UTC).isoformat(),
                "customer_id": args.customer, "subscription_id": args.subscription,
                "properties": properties}]  # fmt: skip
    events = []
    for item in raw:
        try:
            events.append(
                UsageEventIn(
                    event_id=str(item["event_id"]),
                    metric=str(item["metric"]),
                    timestamp=datetime.fromisoformat(item["timestamp"]),
                    properties=dict(item.get("properties") or {}),
                    customer_id=item.get("customer_id"),
                    subscription_id=item.get("subscription_id"),
                )
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidRequestError(f"event {item!r} is malformed: {error}") from None
    status = 0
    mail = alert_mail()
    for start in range(0, len(events), 1000):
        for result in ingest(sessions(), events[start : start + 1000], mail=mail):
            line = f"{result.status:9}  {result.event_id}"
            print(f"{line}  {result.reason}".rstrip())
            status = 1 if result.status == "rejected" else status
    return status


def _usage_show(args: argparse.Namespace) -> int:
    lines, currency, customer, start, end = invoices.usage_so_far(
        sessions(),
        args.subscription,
        lambda subscription, lines: (
            lines,
            subscription.price.currency,
            subscription.customer,
            subscription.current_period_start,
            subscription.current_period_end,
        ),
    )
    if args.json:
        print_json(
            {
                "subscription_id": args.subscription,
                "period_start": start,
                "period_end": end,
                "currency": currency,
                "lines": [
                    {
                        "description": x.description,
                        "quantity": x.usage_quantity,
                        "amount": x.amount,
                        "details": x.details,
                    }
                    for x in lines
                ],
                "amount": sum(x.amount for x in lines),
            }
        )
        return 0
    zone = customer.time_zone
    print(f"period  {format_when(start, zone)} – {format_when(end, zone)} ({zone})")
    rows = [[x.description, x.usage_quantity or "", format_money(x.amount, currency, customer)]
            for x in lines]  # fmt: skip
    print(format_table(["metered price", "usage so far", "cost so far"], rows, right=(1, 2)))
    print(f"total so far  {format_money(sum(x.amount for x in lines), currency, customer)}")
    return 0


def add_commands(commands: Any) -> None:
    usage = command_group(commands, "usage", "usage events")
    report = usage.add_parser("report", help="report usage (one event, or JSON lines)")
    report.add_argument("--file", help="JSON lines, one event each ('-': stdin)")
    report.add_argument("--event-id")
    report.add_argument("--metric")
    report.add_argument("--customer")
    report.add_argument("--subscription")
    report.add_argument("--timestamp", help="ISO time with zone (default: now)")
    report.add_argument("--property", action="append", help="NAME=VALUE, repeat")
    report.set_defaults(handler=_usage_report)
    show = usage.add_parser("show", help="the open period's usage and its cost so far")
    show.add_argument("subscription")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_usage_show)
