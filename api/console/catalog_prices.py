"""A new price (and its product) from the console, of any pricing model; archiving one.

The form posts plain fields: the tiers are a table of rows ``tier-<n>-up_to``,
``tier-<n>-unit_amount`` and ``tier-<n>-flat_amount`` (blank rows are skipped, so the
form works without script by posting its blank rows; ``catalog.js`` only adds rows),
the tax rates are checkboxes ``tax_rate-<id>``. The body is ``PriceCreate``, the API's
own, and the price is made by ``catalog.create_price`` as ``POST /v1/prices`` makes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from typing import Any, get_args

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy.orm import Session, sessionmaker

from api.console.auth import Admin, ConsoleDenied, form_of, locale_of, origin_of
from api.console.catalog import HOME, decimal_amount, lookups
from api.console.catalog_forms import (
    FORM,
    Errors,
    FormRefused,
    body_of,
    field_named,
    number,
    text_or_none,
    validated,
)
from api.console.messages import translator
from api.console.rendering import render, see_other
from api.deps import deps_of
from api.requests.catalog import PriceCreate, PricingModel
from api.requests.common import IntervalName
from kakin.services import catalog
from kakin.services.errors import NotFoundError
from kakin.services.staff import Origin
from kakin.views.catalog import PriceOut

router = APIRouter(include_in_schema=False)
NEW = HOME + "/prices/new"
BLANK_TIER_ROWS = 4  # a new form's tier table; catalog.js adds rows, a posted form keeps its own
TIER_COLUMNS = ("up_to", "unit_amount", "flat_amount")
MAX_TIER_ROWS = 60  # rows read from a form (the request model takes 50 tiers)
MODELS = get_args(PricingModel)
INTERVALS = get_args(IntervalName)
FIELDS = (*PriceCreate.model_fields, "tiers")
# Words a service's refusal uses for a field of this form (see catalog_forms.field_named).
ALIASES = {
    "tier": "tiers",
    "product": "product_name",
    "intervals": "interval",
    "pricing model": "pricing_model",
    "package": "package_size",
    "tax rate": "tax_rate_ids",
}
_TIER_FIELD = re.compile(r"tier-(\d+)-(up_to|unit_amount|flat_amount)")


def tier_rows(form: Mapping[str, str]) -> list[dict[str, str]]:
    """The tier table as posted, every row (blank ones too, to show it again)."""
    count = max(
        (int(found.group(1)) + 1 for key in form if (found := _TIER_FIELD.fullmatch(key))),
        default=0,
    )
    count = min(count, MAX_TIER_ROWS)
    return [{c: form.get(f"tier-{n}-{c}", "") for c in TIER_COLUMNS} for n in range(count)]


def _padded(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The tier table to show: the rows posted, and blank ones up to the usual count."""
    blank = [dict.fromkeys(TIER_COLUMNS, "") for _ in range(BLANK_TIER_ROWS - len(rows))]
    return rows + blank


def _decimal_text(text: str) -> str | None:
    # The tiers' up_to and unit_amount are decimal strings: "1,000" is 1000 here too.
    found = number(text)
    return None if found is None else str(found)


def price_body(
    form: Mapping[str, str], rows: list[dict[str, str]]
) -> tuple[dict[str, Any], list[int]]:
    """``PriceCreate``'s fields from the form, and the table row of each tier given."""
    filled = [n for n, row in enumerate(rows) if any(value.strip() for value in row.values())]
    tiers = [
        {"up_to": _decimal_text(rows[n]["up_to"])}
        | body_of(
            {
                "unit_amount": _decimal_text(rows[n]["unit_amount"]),
                "flat_amount": number(rows[n]["flat_amount"]),
            }
        )
        for n in filled
    ]
    body = body_of(
        {
            "product_name": form.get("product_name", "").strip(),
            "nickname": form.get("nickname", "").strip(),
            "currency": form.get("currency", "").strip(),
            "interval": form.get("interval") or None,
            "interval_count": number(form.get("interval_count")),
            "pricing_model": form.get("pricing_model") or None,
            "unit_amount": number(form.get("unit_amount")),
            "unit_amount_decimal": _decimal_text(form.get("unit_amount_decimal", "")),
            "package_size": number(form.get("package_size")),
            "tiers": tiers or None,
            "metric": text_or_none(form.get("metric")),
            "tax_rate_ids": [
                key.removeprefix("tax_rate-")
                for key, value in form.items()
                if key.startswith("tax_rate-") and value == "on"
            ],
        }
    )
    return body, filled


def _field_of(filled: list[int]) -> Any:
    def field_of(loc: tuple[Any, ...]) -> str:
        if not loc:
            return FORM
        if loc[0] == "tiers" and len(loc) >= 3 and isinstance(loc[1], int):
            return f"tier-{filled[loc[1]]}-{loc[2]}"
        return str(loc[0])

    return field_of


def _create(sessions: sessionmaker[Session], body: PriceCreate, actor: str, origin: Origin) -> str:
    try:
        return catalog.create_price(
            sessions, **body.service_arguments(), actor=actor, origin=origin
        )
    except catalog.CatalogError as error:
        raise FormRefused({field_named(str(error), FIELDS, ALIASES): str(error)}) from None


async def _form(
    request: Request,
    values: Mapping[str, str],
    rows: list[dict[str, str]],
    errors: Errors,
    *,
    status: int = 200,
) -> Response:
    return render(
        request, "price_form.html.j2", status=status, values=values, rows=rows,
        errors=errors, models=MODELS, intervals=INTERVALS, **await lookups(request),
    )  # fmt: skip


@router.get(NEW)
async def new_price(request: Request, me: Admin) -> Response:
    values = {"currency": "JPY", "interval": "month", "interval_count": "1",
              "pricing_model": "flat"}  # fmt: skip
    return await _form(request, values, _padded([]), {})


@router.post(HOME + "/prices")
async def create_price(request: Request, me: Admin) -> Response:
    form = await form_of(request)  # its CSRF token checked by require_staff
    t = translator(locale_of(request, me.staff))
    rows = tier_rows(form)
    body, filled = price_body(form, rows)
    try:
        price = validated(PriceCreate, body, t, field_of=_field_of(filled))
        price_id = await run_in_threadpool(
            _create, deps_of(request).sessions, price, me.staff.actor, origin_of(request)
        )
    except FormRefused as refused:
        return await _form(request, form, _padded(rows), refused.errors, status=422)
    return see_other(f"{HOME}?created={price_id}#prices")


@router.get(HOME + "/prices/{price_id}/archive")
async def confirm_archive(request: Request, price_id: str, me: Admin) -> Response:
    """Archiving cannot be undone here: the price is shown first, with the button."""
    try:
        price = await run_in_threadpool(
            catalog.get_price, deps_of(request).sessions, price_id, PriceOut.of
        )
    except NotFoundError:
        raise ConsoleDenied(404, "error.not_found") from None
    return render(
        request, "price_archive.html.j2", p=price, amount=decimal_amount, **await lookups(request)
    )


@router.post(HOME + "/prices/{price_id}/archive")
async def archive_price(request: Request, price_id: str, me: Admin) -> Response:
    """As ``POST /v1/prices/{id}/archive``: no new subscriptions; running ones continue."""
    try:
        archive = partial(catalog.archive_price, actor=me.staff.actor, origin=origin_of(request))
        await run_in_threadpool(archive, deps_of(request).sessions, price_id, PriceOut.of)
    except NotFoundError:
        raise ConsoleDenied(404, "error.not_found") from None
    return see_other(f"{HOME}?archived={price_id}#prices")
