"""``kakin alerts add|list|show|update|remove``: budgets, spend and usage alerts, hard caps.

Thresholds are given as ``80%`` (of ``--budget``) or ``5000`` (money in the currency's
minor unit, usage in the metric's unit); ``--every`` adds a recurring step after the
last. Raising a cap (``update --hard-cap``) is audited with ``--requested-by`` and
``--reason``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from kakin import runtime
from kakin.adapters.rendering import make_template_env
from kakin.cli.output import (
    command_group,
    format_money,
    format_table,
    format_when,
    print_json,
    sessions,
)
from kakin.platform.settings import get_settings
from kakin.services import alerts
from kakin.services.alert_emails import AlertMail
from kakin.services.errors import InvalidRequestError, NotFoundError
from kakin.views.alerts import AlertOut


def alert_mail() -> AlertMail:
    """What the CLI's ingestion sends alert emails with, from the settings."""
    settings = get_settings()
    return AlertMail(runtime.mailer(settings), make_template_env(), runtime.seller(settings))


def threshold(text: str) -> alerts.Threshold:
    """``80%`` of the budget, or an absolute ``5000``."""
    try:
        if text.endswith("%"):
            return alerts.Threshold(percent=Decimal(text[:-1]))
        return alerts.Threshold(value=Decimal(text))
    except InvalidOperation:
        raise InvalidRequestError(f"a threshold is 80% or 5000, not {text!r}") from None


def _number(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        raise InvalidRequestError(f"{text!r} is not a number") from None


def _found(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except NotFoundError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2

    return run


def _shown(value: str | None, item: AlertOut) -> str:
    if value is None:
        return "—"
    if item.currency is not None:
        return format_money(int(Decimal(value)), item.currency, None)
    return f"{Decimal(value).normalize():,f}"


def _print(found: list[AlertOut], as_json: bool) -> None:
    if as_json:
        print_json([item.model_dump(mode="json") for item in found])
        return
    if not found:
        print("no alerts")
        return
    rows = [
        [
            item.id,
            item.watches if item.metric is None else f"usage of {item.metric}",
            _shown(item.budget, item),
            ", ".join(_shown(level, item) for level in item.levels),
            _shown(item.current, item),
            ", ".join(item.fired) or "—",
            "—"
            if item.hard_cap is None
            else _shown(item.hard_cap, item) + (" (reached)" if item.cap_reached else ""),
        ]
        for item in found
    ]
    headers = ["alert", "watches", "budget", "thresholds", "now", "fired", "hard cap"]
    print(format_table(headers, rows, right=(2, 4)))
    first = found[0]
    if first.period_start is not None and first.period_end is not None:
        start, end = format_when(first.period_start, "UTC"), format_when(first.period_end, "UTC")
        print(f"period  {start} – {end} (UTC)")


@_found
def _add(args: argparse.Namespace) -> int:
    spec = alerts.AlertSpec(
        watches=args.watches,
        name=args.name or "",
        metric=args.metric,
        budget=_number(args.budget),
        thresholds=tuple(threshold(text) for text in args.threshold),
        recurring=None if args.every is None else threshold(args.every),
        hard_cap=_number(args.hard_cap),
    )
    made = alerts.create_alert(
        sessions(), spec, subscription_id=args.subscription, customer_id=args.customer,
        currency=args.currency, actor=f"cli:{args.requested_by}",
    )  # fmt: skip
    _print([AlertOut.of(made)], args.json)
    return 0


@_found
def _list(args: argparse.Namespace) -> int:
    if (args.subscription is None) == (args.customer is None):
        raise InvalidRequestError("give --subscription or --customer")
    found = alerts.list_alerts(
        sessions(), subscription_id=args.subscription, customer_id=args.customer
    )
    _print([AlertOut.of(item) for item in found], args.json)
    return 0


@_found
def _show(args: argparse.Namespace) -> int:
    _print([AlertOut.of(alerts.get_alert(sessions(), args.alert))], args.json)
    return 0


@_found
def _update(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    if args.name is not None:
        changes["name"] = args.name
    if args.budget is not None:
        changes["budget"] = _number(args.budget)
    if args.threshold:
        changes["thresholds"] = tuple(threshold(text) for text in args.threshold)
    if args.every is not None:
        changes["recurring"] = None if args.every == "none" else threshold(args.every)
    if args.hard_cap is not None:
        changes["hard_cap"] = None if args.hard_cap == "none" else _number(args.hard_cap)
    if not changes:
        raise InvalidRequestError("nothing to change: give --hard-cap, --budget, --threshold...")
    changed = alerts.update_alert(
        sessions(), args.alert, changes, actor=f"cli:{args.requested_by}", reason=args.reason
    )
    _print([AlertOut.of(changed)], args.json)
    return 0


@_found
def _remove(args: argparse.Namespace) -> int:
    alerts.delete_alert(
        sessions(), args.alert, actor=f"cli:{args.requested_by}", reason=args.reason
    )
    print(f"removed {args.alert}")
    return 0


def _terms(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--name")
    parser.add_argument("--budget", help="money in minor units (3980 = 3,980円), or a quantity")
    parser.add_argument(
        "--threshold", action="append", required=required,
        help="80%% (of the budget) or 5000; repeat, ascending",
    )  # fmt: skip
    parser.add_argument("--every", help="a recurring step after the last threshold (1000, 10%%)")
    parser.add_argument("--hard-cap", help="usage past it in the period is refused")
    parser.add_argument("--requested-by", required=True, help="who asks, e.g. support:ken")
    parser.add_argument("--json", action="store_true")


def add_commands(commands: Any) -> None:
    group = command_group(commands, "alerts", "budgets, spend and usage alerts, hard caps")
    add = group.add_parser("add", help="set an alert on a subscription or a customer")
    owner = add.add_mutually_exclusive_group(required=True)
    owner.add_argument("--subscription")
    owner.add_argument("--customer")
    add.add_argument("--watches", choices=alerts.WATCHES, required=True)
    add.add_argument("--metric", help="a usage alert's metric code")
    add.add_argument("--currency", help="a customer's money alert (default its currency)")
    _terms(add, required=True)
    add.set_defaults(handler=_add)
    listed = group.add_parser("list", help="the alerts of a subscription or a customer")
    listed.add_argument("--subscription")
    listed.add_argument("--customer")
    listed.add_argument("--json", action="store_true")
    listed.set_defaults(handler=_list)
    show = group.add_parser("show", help="one alert, where it stands this period")
    show.add_argument("alert")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_show)
    update = group.add_parser("update", help="change an alert; raise or lower its hard cap")
    update.add_argument("alert")
    _terms(update, required=False)
    update.add_argument("--reason", default="", help="kept in the audit log")
    update.set_defaults(handler=_update)
    remove = group.add_parser("remove", help="remove an alert")
    remove.add_argument("alert")
    remove.add_argument("--requested-by", required=True)
    remove.add_argument("--reason", default="")
    remove.set_defaults(handler=_remove)
