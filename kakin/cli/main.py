"""The ``kakin`` command: run the embedded stack, the worker, and day-to-day operations."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from kakin import runtime
from kakin.cli import (
    alerts,
    audit,
    catalog,
    credit_notes,
    customers,
    invoices,
    keys,
    rates,
    report,
    servers,
    staff,
    subscriptions,
    usage,
    webhooks,
)
from kakin.platform.codec import EncryptionKeyError
from kakin.platform.settings import ConfigurationError
from kakin.services.errors import InvalidRequestError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kakin", description="kakin (課金) subscription billing")
    commands = parser.add_subparsers(dest="command", required=True)
    # The order is the one `kakin --help` lists.
    servers.add_commands(commands)
    customers.add_commands(commands)
    keys.add_commands(commands)
    staff.add_commands(commands)
    invoices.add_commands(commands)
    catalog.add_commands(commands)
    usage.add_commands(commands)
    alerts.add_commands(commands)
    credit_notes.add_commands(commands)
    customers.add_read_commands(commands)
    subscriptions.add_read_commands(commands)
    audit.add_commands(commands)
    report.add_commands(commands)
    rates.add_commands(commands)
    webhooks.add_commands(commands)
    servers.add_http_commands(commands)
    subscriptions.add_subscription_commands(commands)
    runtime.add_connection_options(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        if args.command in subscriptions.COMMANDS:
            runtime.exit_process(asyncio.run(subscriptions.run_command(args)))
        return int(args.handler(args))
    except (InvalidRequestError, EncryptionKeyError, ConfigurationError) as error:
        # A bad KAKIN_* setting is one line naming it, from every command (not a traceback).
        print(f"error: {error}", file=sys.stderr)
        return 2
