"""``kakin webhooks add|list|disable|enable|rotate|deliveries|resend``: outgoing webhook
endpoints (admin work, as ``/v1/webhook-endpoints`` is admin-only).

``add`` and ``rotate`` print the signing secret once; nothing prints it again. The same
service functions as the HTTP API, with ``cli`` (or ``--by``) as who asked.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from kakin import runtime
from kakin.cli.output import command_group, format_table, format_when, print_json, sessions, shorten
from kakin.platform.codec import keyring_from_settings
from kakin.platform.settings import get_settings
from kakin.services import webhook_deliveries, webhook_endpoints
from kakin.services.errors import NotFoundError, ServiceError
from kakin.views.webhook_endpoints import (
    WebhookDeliveryList,
    WebhookDeliveryOut,
    WebhookEndpointList,
    WebhookEndpointOut,
    WebhookEndpointWithSecret,
)


def _refusing(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A service's refusal is one line on stderr and exit 2 (as every kakin command)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (ServiceError, NotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2

    return run


def _show(endpoint: WebhookEndpointOut, *, json: bool) -> None:
    if json:
        print_json(endpoint.model_dump(mode="json"))
        return
    state = "enabled" if endpoint.enabled else f"disabled ({endpoint.disabled_reason})"
    print(f"{endpoint.id}  {endpoint.url}  [{state}]  events: {', '.join(endpoint.enabled_events)}")


def _secret_note(endpoint: WebhookEndpointWithSecret) -> None:
    print(f"signing secret: {endpoint.secret}")
    print("(shown this once: store it where the receiver verifies signatures)")


def _add(args: argparse.Namespace) -> int:
    settings = get_settings()
    created = webhook_endpoints.create_endpoint(
        sessions(), keyring_from_settings(settings), WebhookEndpointWithSecret.with_secret,
        url=args.url, enabled_events=args.events.split(","), description=args.description,
        live_mode=settings.live_mode, created_by=args.by,
    )  # fmt: skip
    if args.json:
        print_json(created.model_dump(mode="json"))
        return 0
    _show(created, json=False)
    _secret_note(created)
    return 0


def _list(args: argparse.Namespace) -> int:
    found = webhook_endpoints.list_endpoints(sessions(), WebhookEndpointOut.of)
    if args.json:
        print_json(WebhookEndpointList(data=found).model_dump(mode="json"))
        return 0
    if not found:
        print("no webhook endpoints: add one with `kakin webhooks add URL --events '*'`")
        return 0
    rows = [
        [e.id, shorten(e.url, 50), "yes" if e.enabled else f"no: {e.disabled_reason}",
         shorten(", ".join(e.enabled_events), 40), format_when(e.created_at)]
        for e in found
    ]  # fmt: skip
    print(format_table(["id", "url", "enabled", "events", "created"], rows))
    return 0


def _enabled(enabled: bool) -> Callable[[argparse.Namespace], int]:
    def change(args: argparse.Namespace) -> int:
        shown = webhook_endpoints.update_endpoint(
            sessions(), args.endpoint_id, WebhookEndpointOut.of, actor=args.by, enabled=enabled,
            live_mode=get_settings().live_mode,
        )  # fmt: skip
        _show(shown, json=args.json)
        return 0

    return change


def _rotate(args: argparse.Namespace) -> int:
    rotated = webhook_endpoints.rotate_secret(
        sessions(), keyring_from_settings(get_settings()), args.endpoint_id,
        WebhookEndpointWithSecret.with_secret, actor=args.by,
        overlap=timedelta(hours=args.overlap_hours),
    )  # fmt: skip
    if args.json:
        print_json(rotated.model_dump(mode="json"))
        return 0
    _secret_note(rotated)
    until = format_when(rotated.secret_rotating_until, time=True)
    print(f"the old secret signs beside it until {until}Z")
    return 0


def _deliveries(args: argparse.Namespace) -> int:
    found = webhook_deliveries.list_deliveries(
        sessions(), args.endpoint_id, WebhookDeliveryOut.of, limit=args.limit, status=args.status
    )
    if args.json:
        print_json(WebhookDeliveryList(data=found).model_dump(mode="json"))
        return 0
    if not found:
        print(f"no deliveries to {args.endpoint_id} yet")
        return 0
    rows = [
        [d.id, d.event_type, d.event_id, d.status, str(d.tries),
         "" if d.last_status_code is None else str(d.last_status_code),
         format_when(d.last_tried_at, time=True) if d.last_tried_at else ""]
        for d in found
    ]  # fmt: skip
    print(format_table(["delivery", "event", "webhook-id", "status", "tries", "last", "tried at"],
                       rows, right=[4, 5]))  # fmt: skip
    return 0


async def _resend_with(args: argparse.Namespace) -> int:
    settings = runtime.settings_from(args)
    client = await runtime.temporal_client(settings)
    shown = await webhook_deliveries.resend(
        runtime.session_factory(settings), client, args.delivery_id, WebhookDeliveryOut.of,
        task_queue=settings.task_queue, requested_by=args.by,
    )  # fmt: skip
    if args.json:
        print_json(shown.model_dump(mode="json"))
    else:
        print(f"{shown.id} ({shown.event_type}, webhook-id {shown.event_id}) is sent again "
              f"(resend {shown.resends})")  # fmt: skip
    return 0


def _resend(args: argparse.Namespace) -> int:
    try:
        code = asyncio.run(_resend_with(args))
    except (ServiceError, NotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        code = 2
    runtime.exit_process(code)  # a Temporal client's threads: see exit_process


def add_commands(commands: Any) -> None:
    hooks = command_group(commands, "webhooks", "outgoing webhook endpoints and deliveries")

    def action(name: str, help: str, handler: Callable[[argparse.Namespace], int]) -> Any:
        parser = hooks.add_parser(name, help=help)
        parser.add_argument("--json", action="store_true", help="print the HTTP API's body")
        parser.add_argument("--by", default="cli", help="who asks, for the audit log")
        parser.set_defaults(handler=_refusing(handler))
        return parser

    add = action("add", "register an endpoint; prints its signing secret once", _add)
    add.add_argument("url", help="where to POST events, e.g. https://example.jp/hooks/kakin")
    add.add_argument(
        "--events", required=True,
        help="comma-separated event types (invoice.paid,subscription.canceled) or '*'",
    )  # fmt: skip
    add.add_argument("--description", default="", help="what it is for")
    action("list", "every endpoint", _list)
    for name, enabled in (("disable", False), ("enable", True)):
        changed = action(name, f"{name} an endpoint", _enabled(enabled))
        changed.add_argument("endpoint_id")
    rotate = action("rotate", "a new signing secret; the old one signs beside it a while", _rotate)
    rotate.add_argument("endpoint_id")
    rotate.add_argument("--overlap-hours", type=float, default=24, help="default 24")
    listed = action("deliveries", "an endpoint's deliveries, newest first", _deliveries)
    listed.add_argument("endpoint_id")
    listed.add_argument("--status", choices=["pending", "delivered", "failed", "skipped"])
    listed.add_argument("--limit", type=int, default=20, help="at most 100")
    resend = action("resend", "send a delivery again (same webhook-id)", _resend)
    resend.add_argument("delivery_id")
    runtime.add_connection_options(resend, after_command=True)
