"""``kakin credit-note create``: credit a paid invoice (refund or credit)."""

from __future__ import annotations

import argparse
from typing import Any

from kakin import runtime
from kakin.cli.output import command_group, sessions
from kakin.platform.settings import get_settings
from kakin.services import credit_notes


def _credit_note_create(args: argparse.Namespace) -> int:
    settings = get_settings()
    note = credit_notes.issue_credit_note(
        sessions(), runtime.stripe_gateway(settings), invoice_id=args.invoice_id,
        reason=args.reason, method=args.method, actor=f"cli:{args.requested_by}",
        amount=args.amount, memo=args.memo,
    )  # fmt: skip
    print(note)
    return 0


def add_commands(commands: Any) -> None:
    credit = command_group(commands, "credit-note", "credit notes")
    create = credit.add_parser("create", help="credit a paid invoice (refund or credit)")
    create.add_argument("invoice_id")
    create.add_argument(
        "--reason", required=True,
        choices=["duplicate", "fraudulent", "order_change", "product_unsatisfactory"],
    )  # fmt: skip
    create.add_argument("--method", required=True, choices=["refund", "credit"])
    create.add_argument("--amount", type=int, help="minor units (default: all that remains)")
    create.add_argument("--memo", default="")
    create.add_argument("--requested-by", required=True, help="who asks, e.g. support:ken")
    create.set_defaults(handler=_credit_note_create)
