"""The subscription commands ``kakin`` and ``python starter.py`` share (start, cancel,
pause, resume, status, update-card), and ``kakin subscriptions list``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from datetime import datetime
from typing import Any

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import FailureError

from kakin import runtime
from kakin.cli.output import command_group, format_money, format_when, listing, print_list
from kakin.platform.codec import EncryptionKeyError
from kakin.platform.settings import ConfigurationError, Settings
from kakin.services import subscriptions
from kakin.services.errors import InvalidRequestError
from kakin.services.payments import update_payment_method
from kakin.views.subscriptions import SubscriptionOut
from models.payloads import SubscriptionStatus
from models.tables import Subscription

STARTER_DOC = """Start, cancel and inspect subscriptions from a terminal or a script.

    python starter.py start --customer cus_... --price price_... [--trial-days 14]
    python starter.py cancel sub_... --reason "asked by phone" --requested-by support:ken
                                     [--at-period-end]
    python starter.py pause sub_... --reason "travelling" --requested-by support:ken
    python starter.py resume sub_... --requested-by support:ken
    python starter.py status sub_... [--json]
    python starter.py update-card sub_... --card 4242424242424242

Works against any Temporal address (``--temporal-address`` or KAKIN_TEMPORAL_ADDRESS);
the connection options go before the command or after it.
``start`` and ``update-card`` also need the database (KAKIN_DATABASE_URL) and, for the
card, Stripe; ``cancel`` and ``status`` need only Temporal.
"""
COMMANDS = ("start", "cancel", "pause", "resume", "status", "update-card")


def add_subscription_commands(commands: Any) -> None:
    """Register start/cancel/status/update-card on an argparse subparsers object."""
    start = commands.add_parser("start", help="start a subscription for a customer and price")
    start.add_argument("--customer", required=True, help="customer id (cus_...)")
    start.add_argument("--price", required=True, help="price id (price_...)")
    start.add_argument("--quantity", type=int, default=1)
    start.add_argument("--trial-days", type=int, default=0)
    start.add_argument("--start-at", type=datetime.fromisoformat, help="ISO time with zone")
    start.add_argument(
        "--test-clock-speed",
        type=float,
        help="speed up this subscription's calendar (e.g. 86400: a day per second); "
        "refused with a live Stripe key",
    )
    start.set_defaults(handler=_start)

    cancel = commands.add_parser("cancel", help="send the cancel signal")
    cancel.add_argument("subscription_id")
    cancel.add_argument("--reason", required=True, help="why: recorded in the audit log")
    cancel.add_argument("--requested-by", required=True, help="who asked, e.g. support:ken")
    cancel.add_argument(
        "--at-period-end", action="store_true", help="run to the end of the paid period"
    )
    cancel.set_defaults(handler=_cancel)

    pause = commands.add_parser("pause", help="pause billing (validated update)")
    pause.add_argument("subscription_id")
    pause.add_argument("--reason", required=True, help="why: recorded in the audit log")
    pause.add_argument("--requested-by", required=True, help="who asked, e.g. support:ken")
    pause.set_defaults(handler=_pause)

    resume = commands.add_parser("resume", help="resume a paused subscription")
    resume.add_argument("subscription_id")
    resume.add_argument("--requested-by", required=True, help="who asked, e.g. support:ken")
    resume.set_defaults(handler=_resume)

    status = commands.add_parser("status", help="print a subscription's live status")
    status.add_argument("subscription_id")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status)

    card = commands.add_parser("update-card", help="attach a new test card and retry at once")
    card.add_argument("subscription_id")
    card.add_argument("--card", required=True, help="a Stripe test card number")
    card.add_argument("--requested-by", default="cli")
    card.set_defaults(handler=_update_card)

    for command in (start, cancel, pause, resume, status, card):
        runtime.add_connection_options(command, after_command=True)


async def _start(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    subscription_id = await subscriptions.start_subscription(
        client,
        runtime.session_factory(settings),
        task_queue=settings.task_queue,
        customer_id=args.customer,
        price_id=args.price,
        quantity=args.quantity,
        trial_days=args.trial_days,
        start_at=args.start_at,
        test_clock_speed=args.test_clock_speed,
        live_mode=settings.live_mode,
        dunning=settings.dunning_policy,
        stripe_task_queue=settings.stripe_task_queue,
    )
    print(subscription_id)
    return 0


async def _cancel(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    await subscriptions.cancel_subscription(
        client,
        args.subscription_id,
        reason=args.reason,
        at_period_end=args.at_period_end,
        requested_by=args.requested_by,
    )
    when = "at the end of the paid period" if args.at_period_end else "now"
    print(f"cancel sent to {subscriptions.workflow_id(args.subscription_id)} ({when})")
    return 0


async def _pause(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    view = await subscriptions.pause_subscription(
        client, args.subscription_id, reason=args.reason, requested_by=args.requested_by
    )
    print(f"{args.subscription_id} is {view.status}")
    return 0


async def _resume(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    view = await subscriptions.resume_subscription(
        client, args.subscription_id, requested_by=args.requested_by
    )
    print(f"{args.subscription_id} is {view.status}; next renewal {view.next_action_at}")
    return 0


async def _status(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    view = await subscriptions.subscription_status(client, args.subscription_id)
    data = dataclasses.asdict(view)
    if args.json:
        print(json.dumps(data, default=str, ensure_ascii=False, indent=2))
        return 0
    for key, value in data.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        print(f"{key:24} {value if value is not None else '-'}")
    return 0


async def _update_card(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    method = await update_payment_method(
        client,
        runtime.session_factory(settings),
        runtime.stripe_gateway(settings),
        args.subscription_id,
        card_number=args.card,
        requested_by=args.requested_by,
    )
    print(f"payment method {method} attached; the subscription retries at once if unpaid")
    return 0


async def run_command(args: argparse.Namespace) -> int:
    """Connect to Temporal and run the chosen handler; errors become one clear line."""
    try:
        settings = runtime.settings_from(args)
        client = await runtime.temporal_client(settings)
    except (ConfigurationError, EncryptionKeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        print(
            f"error: cannot reach Temporal at {settings.temporal_address}: {error}", file=sys.stderr
        )
        return 2
    try:
        return int(await args.handler(args, settings, client))
    except InvalidRequestError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except WorkflowUpdateFailedError as error:
        # A validated update refused the request: its reason is the cause's message.
        cause = error.cause
        reason = cause.message if isinstance(cause, FailureError) else str(error)
        print(f"error: {reason}", file=sys.stderr)
        return 2
    except Exception as error:  # one line for people; the type says where to look
        if type(error).__name__ == "RPCError" and "not found" in str(error).lower():
            print(f"error: no subscription workflow {args.subscription_id!r}", file=sys.stderr)
            return 2
        raise


def build_starter_parser() -> argparse.ArgumentParser:
    """``python starter.py``'s parser: the subscription commands alone."""
    parser = argparse.ArgumentParser(prog="starter.py", description=STARTER_DOC.split("\n")[0])
    runtime.add_connection_options(parser)
    add_subscription_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def starter_main(argv: list[str] | None = None) -> int:
    return asyncio.run(run_command(build_starter_parser().parse_args(argv)))


def _subscription_row(row: Subscription) -> dict[str, str]:
    price, customer = row.price, row.customer
    every = (
        price.interval if price.interval_count == 1 else f"{price.interval_count} {price.interval}s"
    )
    amount = format_money(price.unit_amount * row.quantity, price.currency, customer)
    plan = f"{price.product.name} ×{row.quantity}" if row.quantity > 1 else price.product.name
    return {
        "id": row.id,
        "status": row.status + (" (ends)" if row.cancel_at_period_end else ""),
        "customer": customer.name,
        "plan": plan,
        "amount": f"{amount} / {every}",
        "period end": format_when(row.current_period_end, customer.time_zone),
        "created": format_when(row.created_at, customer.time_zone),
    }


def _subscriptions_list(args: argparse.Namespace) -> int:
    return print_list(
        args,
        subscriptions.list_subscriptions,
        view=SubscriptionOut,
        row_of=_subscription_row,
        what="subscriptions",
        right=["amount"],
        status=args.status,
        customer_id=args.customer,
    )


def add_read_commands(commands: Any) -> None:
    listed_group = command_group(commands, "subscriptions", "read subscriptions (stored rows)")
    listed = listed_group.add_parser("list", help="subscriptions, newest first")
    listed.add_argument("--status", choices=[s.value for s in SubscriptionStatus])
    listed.add_argument("--customer", help="only this customer's (cus_...)")
    listing(listed)
    listed.set_defaults(handler=_subscriptions_list)
