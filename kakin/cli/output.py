"""What every ``kakin`` command prints with (tables, money, times, JSON, paging), and the
parser pieces the commands share."""

from __future__ import annotations

import argparse
import json
import unicodedata
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session, sessionmaker

from billing.money import format_amount
from kakin import runtime
from kakin.platform.settings import get_settings
from kakin.services.errors import InvalidCursorError, InvalidRequestError
from models.tables import Customer

MAX_LIMIT = 100


def sessions() -> sessionmaker[Session]:
    return runtime.session_factory(get_settings())


def text_width(text: str) -> int:
    """Columns a string takes in a terminal (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def pad_to(text: str, width: int, *, right: bool = False) -> str:
    gap = " " * max(0, width - text_width(text))
    return gap + text if right else text + gap


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = ()
) -> str:
    """An aligned plain-text table; the columns numbered in ``right`` are right-aligned."""
    widths = [
        max([text_width(h), *(text_width(r[i]) for r in rows)]) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            pad_to(cell, widths[i], right=i in right) for i, cell in enumerate(cells)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def format_when(value: datetime | None, zone: str = "UTC", *, time: bool = False) -> str:
    if value is None:
        return "-"
    local = value.astimezone(zone_of(zone))
    return f"{local:%Y-%m-%d %H:%M}" if time else f"{local:%Y-%m-%d}"


def format_money(amount: int, currency: str, customer: Customer | None) -> str:
    return format_amount(amount, currency, locale=customer.locale if customer else "en")


def print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def page_limit(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= MAX_LIMIT:
        raise InvalidRequestError(f"--limit must be between 1 and {MAX_LIMIT}")
    return int(args.limit)


def fetch_page(fetch: Callable[[], tuple[Sequence[Any], bool]]) -> tuple[list[Any], bool]:
    try:
        rows, more = fetch()
    except InvalidCursorError as error:
        raise InvalidRequestError(str(error)) from None
    return list(rows), bool(more)


def print_more(shown: int, more: bool, what: str) -> None:
    if not shown:
        print(f"no {what}")
    elif more:
        print(f"(the newest {shown} {what}; more with --limit or --starting-after)")


def print_list(
    args: argparse.Namespace,
    list_rows: Callable[..., tuple[Sequence[Any], bool]],
    *,
    view: Any,
    row_of: Callable[[Any], dict[str, str]],
    what: str,
    right: Sequence[str] = (),
    **filters: Any,
) -> int:
    """What a ``... list`` command prints: with ``--json`` the HTTP API's list (each row
    as ``view.of(row)``, the API's response model), else a table of ``row_of(row)``
    (each column's header and cell; the columns named in ``right`` right-aligned).

    ``list_rows`` is a feature service's ``list_...(sessions, shape, *, limit,
    starting_after, **filters)``: it shapes each row inside its session, so the rows'
    relations load while the session is open.
    """

    def fetch(shape: Callable[[Any], Any]) -> tuple[list[Any], bool]:
        page = dict(limit=page_limit(args), starting_after=args.starting_after)
        return fetch_page(lambda: list_rows(sessions(), shape, **page, **filters))

    if args.json:
        rows, more = fetch(lambda row: view.of(row).model_dump(mode="json"))
        print_json({"object": "list", "data": rows, "has_more": more})
        return 0
    rows, more = fetch(row_of)
    if rows:
        headers = list(rows[0])
        at = [headers.index(name) for name in right]
        print(format_table(headers, [list(row.values()) for row in rows], right=at))
    print_more(len(rows), more, what)
    return 0


def shorten(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if text_width(text) <= width else text[: width - 1] + "…"


def listing(parser: argparse.ArgumentParser) -> None:
    """``--limit``, ``--starting-after`` and ``--json`` on a ``... list`` command."""
    parser.add_argument("--limit", type=int, default=20, help=f"at most {MAX_LIMIT}")
    parser.add_argument("--starting-after", help="the last id of the previous page")
    parser.add_argument("--json", action="store_true", help="print JSON")


def command_group(commands: Any, name: str, help: str) -> Any:
    """``kakin NAME ACTION ...``: a command whose actions are subcommands of their own."""
    return commands.add_parser(name, help=help).add_subparsers(dest="action", required=True)
