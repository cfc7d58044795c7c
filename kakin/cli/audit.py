"""``kakin audit list``: who did what and why."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from kakin.cli.output import MAX_LIMIT, command_group, format_when, print_list, shorten
from kakin.services import audit
from kakin.views.audit import AuditEntryOut
from models.tables import AuditLog


def _moment(text: str) -> datetime:
    """An ISO 8601 time for --since/--until; a date alone is midnight UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    return value if len(text) > 10 else value.replace(tzinfo=ZoneInfo("UTC"))


def _entry_row(row: AuditLog) -> dict[str, str]:
    return {
        "id": str(row.id),
        "occurred (UTC)": format_when(row.occurred_at, time=True) + "Z",
        "what": f"{row.entity_type} {row.entity_id}",
        "action": row.action,
        "status": f"{row.from_status or '-'} → {row.to_status}" if row.to_status else "",
        "actor": row.actor,
        "reason": shorten(row.reason),
    }


def _audit_list(args: argparse.Namespace) -> int:
    return print_list(
        args,
        audit.list_entries_shaped,
        view=AuditEntryOut,
        row_of=_entry_row,
        what="audit entries",
        right=["id"],
        subscription_id=args.subscription,
        customer_id=args.customer,
        actor=args.actor,
        action=args.audit_action,
        since=args.since,
        until=args.until,
    )


def add_commands(commands: Any) -> None:
    audit_log = command_group(commands, "audit", "read the audit log")
    listed = audit_log.add_parser("list", help="who did what and why, newest first")
    listed.add_argument(
        "--subscription", help="a subscription's entries and its invoices' (sub_...)"
    )
    listed.add_argument(
        "--customer", help="a customer's, its subscriptions' and invoices' (cus_...)"
    )
    listed.add_argument("--actor", help="e.g. support:ken; an API key's by api-key:<key id>")
    listed.add_argument("--action", dest="audit_action", help="e.g. canceled, paused, paid")
    listed.add_argument(
        "--since", type=_moment, help="occurred at or after (ISO 8601; a date is UTC)"
    )
    listed.add_argument("--until", type=_moment, help="occurred before (ISO 8601; a date is UTC)")
    listed.add_argument("--limit", type=int, default=20, help=f"at most {MAX_LIMIT}")
    listed.add_argument("--starting-after", type=int, help="the last id of the previous page")
    listed.add_argument("--json", action="store_true", help="print the HTTP API's JSON")
    listed.set_defaults(handler=_audit_list)
