"""``kakin staff create|list|disable|reset-2fa``: the console's staff accounts.

The first admin is created here; they sign in at ``/console/sign-in`` and set up
two-factor there. The password is asked for without echo on a terminal; otherwise it
comes from ``--password-stdin`` (one line) or ``KAKIN_STAFF_PASSWORD``, never from an
argument (it would sit in the shell's history and in ``ps``).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime
from typing import Any

from kakin.cli.output import command_group, format_table, format_when, sessions
from kakin.services import staff
from kakin.services.errors import ConflictError, InvalidRequestError, NotFoundError
from kakin.services.staff import Origin, StaffRole

PASSWORD_VARIABLE = "KAKIN_STAFF_PASSWORD"


def _actor() -> str:
    """Who ran the command, as the audit log keeps it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"cli:{user}"


def _origin() -> Origin:
    return Origin(address="cli", user_agent="kakin staff")


def read_password(args: argparse.Namespace) -> str:
    """The new staff member's password: stdin, the environment, or a no-echo prompt."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if os.environ.get(PASSWORD_VARIABLE):
        return os.environ[PASSWORD_VARIABLE]
    if not sys.stdin.isatty():
        raise InvalidRequestError(
            f"no password: pass --password-stdin or set {PASSWORD_VARIABLE} "
            "(without a terminal there is no prompt)"
        )
    password = getpass.getpass("password (at least 12 characters): ")
    if getpass.getpass("the same password again: ") != password:
        raise InvalidRequestError("the two passwords differ")
    return password


def _create(args: argparse.Namespace) -> int:
    password = read_password(args)
    try:
        made = staff.create_staff(
            sessions(), email=args.email, name=args.name, role=args.role, password=password,
            locale=args.locale, actor=_actor(), origin=_origin(), now=datetime.now(UTC),
        )  # fmt: skip
    except ConflictError as error:
        raise InvalidRequestError(str(error)) from None
    print(f"created {made.id} ({made.role}) for {made.name} <{made.email}>")
    print("they sign in at /console/sign-in and set up two-factor authentication there")
    return 0


def _list(_: argparse.Namespace) -> int:
    members = staff.list_staff(sessions())
    if not members:
        print("no staff: create the first admin with `kakin staff create ... --role admin`")
        return 0
    rows = [
        [
            m.email,
            m.name,
            m.role.value,
            m.locale,
            "on" if m.two_factor else "off",
            f"disabled {format_when(m.disabled_at)}" if m.disabled_at else "active",
            format_when(m.last_sign_in_at, time=True),
        ]
        for m in members
    ]
    headers = ["email", "name", "role", "locale", "2fa", "state", "last sign-in (UTC)"]
    print(format_table(headers, rows))
    return 0


def _disable(args: argparse.Namespace) -> int:
    try:
        member = staff.disable_staff(
            sessions(), args.email, actor=_actor(), origin=_origin(), now=datetime.now(UTC)
        )
    except NotFoundError as error:
        raise InvalidRequestError(str(error)) from None
    print(f"disabled {member.email}: no more sign-ins, every session ended")
    return 0


def _reset_two_factor(args: argparse.Namespace) -> int:
    try:
        member = staff.reset_two_factor(
            sessions(), args.email, actor=_actor(), origin=_origin(), now=datetime.now(UTC)
        )
    except NotFoundError as error:
        raise InvalidRequestError(str(error)) from None
    print(
        f"two-factor reset for {member.email}: sessions ended; "
        "they set it up again at their next sign-in"
    )
    return 0


def add_commands(commands: Any) -> None:
    group = command_group(commands, "staff", "staff accounts of the console (/console)")
    create = group.add_parser("create", help="create a staff member (the first admin, say)")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=[r.value for r in StaffRole])
    create.add_argument("--locale", default="ja", choices=list(staff.LOCALES))
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help=f"read the password from stdin (else {PASSWORD_VARIABLE}, else a prompt)",
    )
    create.set_defaults(handler=_create)
    group.add_parser("list", help="list staff members").set_defaults(handler=_list)
    disable = group.add_parser("disable", help="disable a staff member and end their sessions")
    disable.add_argument("email")
    disable.set_defaults(handler=_disable)
    reset = group.add_parser("reset-2fa", help="forget their authenticator and recovery codes")
    reset.add_argument("email")
    reset.set_defaults(handler=_reset_two_factor)
