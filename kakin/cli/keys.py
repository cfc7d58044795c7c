"""``kakin keys create|list|revoke``: API keys for the HTTP API."""

from __future__ import annotations

import argparse
from typing import Any

from kakin.cli.output import command_group, sessions
from kakin.services import api_keys
from kakin.services.errors import InvalidRequestError, NotFoundError


def _keys_create(args: argparse.Namespace) -> int:
    try:
        created = api_keys.create_key(sessions(), name=args.name, role=args.role)
    except ValueError as error:
        raise InvalidRequestError(str(error)) from None
    print(f"created {created.info.id} ({created.info.role}) for {created.info.name}")
    print("the key, shown this once only (kakin keeps just its hash):")
    print(created.secret)
    return 0


def _keys_list(_: argparse.Namespace) -> int:
    keys = api_keys.list_keys(sessions())
    if not keys:
        print("no API keys: create one with `kakin keys create --name N --role R`")
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}Z" if key.revoked_at else "active"
        used = f"{key.last_used_at:%Y-%m-%d %H:%M}Z" if key.last_used_at else "never"
        print(
            f"{key.id}  {key.role:<7}  {key.prefix}...  {state:<24}  last used {used}  {key.name}"
        )
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    try:
        key = api_keys.revoke_key(sessions(), args.key_id)
    except NotFoundError as error:
        raise InvalidRequestError(str(error)) from None
    print(f"revoked {key.id} ({key.role}, {key.name})")
    return 0


def add_commands(commands: Any) -> None:
    keys = command_group(commands, "keys", "API keys for the HTTP API")
    create = keys.add_parser("create", help="create a key (printed once, stored hashed)")
    create.add_argument("--name", required=True, help="who uses it, e.g. 'shop backend'")
    create.add_argument("--role", required=True, choices=[r.value for r in api_keys.Role])
    create.set_defaults(handler=_keys_create)
    keys.add_parser("list", help="list keys (never their secrets)").set_defaults(handler=_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key; it is refused from then on")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=_keys_revoke)
